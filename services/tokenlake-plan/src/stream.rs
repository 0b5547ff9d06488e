//! One rank's view of a plan: step t of rank r of W with micro-batch b is global samples
//! `[c + t·b·W + r·b, c + t·b·W + (r+1)·b)`, where c is the cursor's consumed count. The
//! global order never depends on W, so resuming with another W at a step boundary loses and
//! repeats nothing.

use crate::cursor::Cursor;
use crate::error::{PlanError, Result};
use crate::plan::{Piece, Plan, SampleMeta, Span};

/// Which slice of the global stream a rank reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankSpec {
    pub rank: u32,
    pub world: u32,
    pub micro_batch: u32,
}

impl RankSpec {
    pub fn new(rank: u32, world: u32, micro_batch: u32) -> Result<RankSpec> {
        if world == 0 || micro_batch == 0 {
            return Err(PlanError::InvalidRequest(
                "world size and micro-batch must be at least 1".into(),
            ));
        }
        if rank >= world {
            return Err(PlanError::InvalidRequest(format!(
                "rank {rank} is not in a world of {world} (ranks are 0..={})",
                world - 1
            )));
        }
        Ok(RankSpec {
            rank,
            world,
            micro_batch,
        })
    }

    /// Samples all ranks consume per step.
    pub fn global_batch(&self) -> u64 {
        u64::from(self.micro_batch) * u64::from(self.world)
    }
}

/// One micro-batch: `samples.len()` samples of `sample_bytes` each in `tokens`; the spans of
/// sample i are `spans[span_offsets[i]..span_offsets[i + 1]]`.
#[derive(Debug, Default, Clone)]
pub struct MicroBatch {
    pub step: u64,
    pub samples: Vec<SampleMeta>,
    pub tokens: Vec<u8>,
    pub spans: Vec<Span>,
    pub span_offsets: Vec<u32>,
}

impl MicroBatch {
    pub fn sample_spans(&self, i: usize) -> &[Span] {
        &self.spans[self.span_offsets[i] as usize..self.span_offsets[i + 1] as usize]
    }
}

pub struct RankStream<'p> {
    plan: &'p Plan,
    spec: RankSpec,
    start: u64,
    step: u64,
    pieces: Vec<Piece>,
    piece_offsets: Vec<usize>,
}

impl<'p> RankStream<'p> {
    /// A stream from the plan's start, or from `cursor` (refused when another plan made it).
    pub fn new(plan: &'p Plan, spec: RankSpec, cursor: Option<&Cursor>) -> Result<Self> {
        let start = match cursor {
            Some(c) => plan.resume(c)?,
            None => 0,
        };
        Ok(RankStream {
            plan,
            spec,
            start,
            step: 0,
            pieces: Vec::new(),
            piece_offsets: Vec::new(),
        })
    }

    /// Whole steps left; a last step the plan cannot fill for every rank is not streamed.
    pub fn steps_left(&self) -> u64 {
        (self.plan.total_samples() - self.start) / self.spec.global_batch() - self.step
    }

    /// The cursor after the steps streamed so far (the same on every rank).
    pub fn cursor(&self) -> Cursor {
        self.plan
            .cursor(self.start + self.step * self.spec.global_batch())
    }

    /// Fills `batch` with the next step; false at the end of the plan.
    pub fn next_batch(&mut self, batch: &mut MicroBatch) -> Result<bool> {
        if !self.locate_next(batch)? {
            return Ok(false);
        }
        let mut tokens = std::mem::take(&mut batch.tokens);
        tokens.resize(self.batch_bytes(), 0);
        self.copy_located(&mut tokens);
        batch.tokens = tokens;
        self.step += 1;
        Ok(true)
    }

    /// The next micro-batch with its tokens assembled straight into `out` (at least
    /// [`RankStream::batch_bytes`] long, e.g. a shared-memory slot) instead of
    /// `batch.tokens`, which is left empty; `false` at the end of the plan.
    pub fn next_batch_into(&mut self, batch: &mut MicroBatch, out: &mut [u8]) -> Result<bool> {
        if !self.locate_next(batch)? {
            return Ok(false);
        }
        batch.tokens.clear();
        let len = self.batch_bytes();
        self.copy_located(&mut out[..len]);
        self.step += 1;
        Ok(true)
    }

    /// Bytes of one micro-batch's tokens.
    pub fn batch_bytes(&self) -> usize {
        self.plan.sample_bytes() * self.spec.micro_batch as usize
    }

    /// Locates and resolves the next step's samples into `batch` (all but the tokens).
    fn locate_next(&mut self, batch: &mut MicroBatch) -> Result<bool> {
        if self.steps_left() == 0 {
            return Ok(false);
        }
        let b = u64::from(self.spec.micro_batch);
        let first =
            self.start + self.step * self.spec.global_batch() + u64::from(self.spec.rank) * b;
        batch.step = self.step;
        batch.samples.clear();
        batch.spans.clear();
        batch.span_offsets.clear();
        batch.span_offsets.push(0);
        // Locate every sample, prefetch in stages, then resolve each, then copy: see
        // `Plan::resolve`.
        self.pieces.clear();
        self.piece_offsets.clear();
        self.piece_offsets.push(0);
        for i in 0..b {
            batch.samples.push(self.plan.locate(first + i)?);
        }
        for meta in &batch.samples {
            self.plan.prefetch_window(meta)?;
        }
        for meta in &batch.samples {
            self.plan.prefetch_first_document(meta)?;
        }
        for meta in &batch.samples {
            self.plan
                .resolve(meta, &mut self.pieces, &mut batch.spans)?;
            batch.span_offsets.push(batch.spans.len() as u32);
            self.piece_offsets.push(self.pieces.len());
        }
        Ok(true)
    }

    /// Copies the located samples' tokens into `out` (exactly one micro-batch long).
    fn copy_located(&self, out: &mut [u8]) {
        let size = self.plan.sample_bytes();
        for (i, out) in out.chunks_exact_mut(size).enumerate() {
            let pieces = &self.pieces[self.piece_offsets[i]..self.piece_offsets[i + 1]];
            self.plan.copy_pieces(pieces, out);
        }
    }
}
