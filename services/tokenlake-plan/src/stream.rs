//! One rank's view of a plan: step t of rank r of W with micro-batch b is global samples
//! `[c + t·b·W + r·b, c + t·b·W + (r+1)·b)`, where c is the cursor's consumed count. The
//! global order never depends on W, so resuming with another W at a step boundary loses and
//! repeats nothing.

use std::collections::VecDeque;
use std::time::Instant;

use crate::cursor::Cursor;
use crate::error::{PlanError, Result};
use crate::plan::{Piece, Plan, SampleMeta, Span, doc_refs};
use crate::plan_index::without_waiting;
use crate::window::{DocRef, Horizon, Window};

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
    /// Window mode: the steps reserved ahead, in order, from the one served next.
    ahead: VecDeque<Located>,
    /// Window mode: the next step to reserve (a located step the window had no room for waits
    /// in `blocked`).
    frontier: u64,
    blocked: Option<Located>,
    /// Bytes of the documents reserved ahead (each step's, counted per step).
    ahead_bytes: u64,
    /// Seconds between this stream's steps (an average), for a horizon in seconds.
    step_seconds: Option<f64>,
    last_step: Option<Instant>,
    /// Window mode: fetches this stream started that have not finished.
    queued: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether its first reservation pass has run (`prime_index`).
    primed: bool,
}

/// Steps past the first whose index pages are still coming that a reservation pass starts the
/// index pages of (`reserve_ahead`): enough to keep a trainer fed through the three stages of
/// dependent index reads a step takes on a cold node, few enough that a pass costs little.
pub const PENDING_STEPS: u64 = 16;

/// Rounds of [`RankStream::prime_index`]: one per stage of a step's dependent index reads
/// (locate, window start, document entries), and one to spare.
const PRIMING_ROUNDS: usize = 4;

/// One step located and resolved ahead of its turn.
struct Located {
    samples: Vec<SampleMeta>,
    spans: Vec<Span>,
    span_offsets: Vec<u32>,
    pieces: Vec<Piece>,
    piece_offsets: Vec<usize>,
    docs: Vec<DocRef>,
    bytes: u64,
}

impl<'p> RankStream<'p> {
    /// A stream from the plan's start, or from `cursor` (refused when another plan made it).
    pub fn new(plan: &'p Plan, spec: RankSpec, cursor: Option<&Cursor>) -> Result<Self> {
        let start = match cursor {
            Some(c) => plan.resume(c)?,
            None => 0,
        };
        if let Some(window) = plan.window() {
            window.join();
        }
        Ok(RankStream {
            plan,
            spec,
            start,
            step: 0,
            pieces: Vec::new(),
            piece_offsets: Vec::new(),
            ahead: VecDeque::new(),
            frontier: 0,
            blocked: None,
            ahead_bytes: 0,
            step_seconds: None,
            last_step: None,
            queued: Default::default(),
            primed: false,
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
        if let Some(window) = self.plan.window() {
            let mut tokens = std::mem::take(&mut batch.tokens);
            tokens.resize(self.batch_bytes(), 0);
            let more = self.next_windowed(window, batch, &mut tokens)?;
            batch.tokens = tokens;
            return Ok(more);
        }
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
        if let Some(window) = self.plan.window() {
            batch.tokens.clear();
            let len = self.batch_bytes();
            return self.next_windowed(window, batch, &mut out[..len]);
        }
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
        self.pieces.clear();
        self.piece_offsets.clear();
        self.piece_offsets.push(0);
        resolve_samples(
            self.plan,
            first..first + b,
            &mut batch.samples,
            &mut batch.spans,
            &mut batch.span_offsets,
            &mut self.pieces,
            &mut self.piece_offsets,
        )?;
        Ok(true)
    }

    /// Window mode: reserves ahead, waits for the next step's documents, copies them into
    /// `out` and releases them.
    fn next_windowed(
        &mut self,
        window: &Window,
        batch: &mut MicroBatch,
        out: &mut [u8],
    ) -> Result<bool> {
        if self.steps_left() == 0 {
            return Ok(false);
        }
        let now = Instant::now();
        if let Some(last) = self.last_step.replace(now) {
            let seconds = now.duration_since(last).as_secs_f64();
            self.step_seconds = Some(match self.step_seconds {
                Some(average) => 0.8 * average + 0.2 * seconds,
                None => seconds,
            });
        }
        self.reserve_ahead(window)?;
        let step = self
            .ahead
            .pop_front()
            .expect("the next step is always reserved");
        self.ahead_bytes -= step.bytes;
        let waited = window.wait(&step.docs);
        if waited.is_ok() {
            let size = self.plan.sample_bytes();
            for (i, out) in out.chunks_exact_mut(size).enumerate() {
                let pieces = &step.pieces[step.piece_offsets[i]..step.piece_offsets[i + 1]];
                self.plan.copy_pieces(pieces, out);
            }
        }
        window.release(&step.docs);
        if let Err(e) = waited {
            // Nothing reserved ahead survives a failure: a retry reserves again from this
            // step, and a range that failed is fetched afresh once no step holds it.
            self.forget_ahead(window);
            return Err(e);
        }
        batch.step = self.step;
        batch.samples = step.samples;
        batch.spans = step.spans;
        batch.span_offsets = step.span_offsets;
        self.step += 1;
        Ok(true)
    }

    /// Gives back every step reserved ahead; the next reservation starts from the step
    /// served next.
    fn forget_ahead(&mut self, window: &Window) {
        for step in self.ahead.drain(..) {
            window.release(&step.docs);
        }
        self.blocked = None;
        self.ahead_bytes = 0;
        self.frontier = self.step;
    }

    /// Steps this stream may reserve past the one it serves next.
    fn horizon_steps(&self, window: &Window) -> u64 {
        let b = u64::from(self.spec.micro_batch);
        match window.options().horizon {
            Horizon::Unbounded => u64::MAX,
            Horizon::Samples(samples) => samples.div_ceil(b),
            Horizon::Seconds(seconds) => match self.step_seconds {
                Some(step) if step > 0.0 => (seconds / step).ceil() as u64,
                _ => u64::MAX,
            },
        }
    }

    /// Locates and reserves steps from the frontier up to the horizon while this stream's
    /// share of the window has room; the step served next is always reserved.
    fn reserve_ahead(&mut self, window: &Window) -> Result<()> {
        let end = self.step + self.steps_left();
        if self.frontier < self.step {
            self.frontier = self.step;
        }
        let horizon = self.horizon_steps(window);
        let reach = self.step.saturating_add(1).saturating_add(horizon).min(end);
        if !self.primed {
            self.primed = true;
            self.prime_index(reach)?;
        }
        let ahead = horizon.min(crate::window::ramp(self.step));
        let limit = self.step.saturating_add(1).saturating_add(ahead).min(end);
        let (share, queue) = (window.share(), window.stream_queue());
        while self.frontier < limit {
            if !self.ahead.is_empty()
                && self.queued.load(std::sync::atomic::Ordering::Relaxed) >= queue
            {
                break;
            }
            let located = match self.blocked.take() {
                Some(located) => located,
                None if self.ahead.is_empty() => self.locate_step(self.frontier)?,
                // A later step does not make the next one wait for its index pages (a cold
                // node reads the index page by page, `plan_index.rs`): their GETs start, and
                // a later pass reserves it.
                None => match without_waiting(|| self.locate_step(self.frontier)) {
                    Ok(located) => located,
                    Err(PlanError::IndexPending) => {
                        // The steps after it start theirs too, so that a cold node's
                        // look-ahead advances a stage of index reads per step for all of them,
                        // not for one step at a time.
                        let last = reach.min(self.frontier.saturating_add(1 + PENDING_STEPS));
                        for step in self.frontier + 1..last {
                            let _ = without_waiting(|| self.locate_step(step));
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                },
            };
            let next = self.ahead.is_empty();
            if !next && self.ahead_bytes + located.bytes > share {
                self.blocked = Some(located);
                break;
            }
            if !window.reserve_for(&located.docs, next, Some(&self.queued)) {
                self.blocked = Some(located);
                break;
            }
            self.ahead_bytes += located.bytes;
            self.ahead.push_back(located);
            self.frontier += 1;
        }
        Ok(())
    }

    /// On a cold node (a plan index read page by page), a stream's first pass gets the index
    /// pages of its first [`PENDING_STEPS`] steps (up to `reach`) before it serves: each
    /// round starts the next stage of pages for every step, then waits for the first step
    /// still lacking some while the others' come. A step takes about three stages of
    /// dependent reads, so the first batch waits a few GETs more and the look-ahead starts
    /// full instead of stalling the next steps.
    fn prime_index(&mut self, reach: u64) -> Result<()> {
        if !self.plan.index_is_paged() {
            return Ok(());
        }
        let steps = self.frontier..reach.min(self.frontier.saturating_add(1 + PENDING_STEPS));
        for _ in 0..PRIMING_ROUNDS {
            let mut pending = None;
            for step in steps.clone() {
                match without_waiting(|| self.locate_step(step)) {
                    Ok(_) => {}
                    Err(PlanError::IndexPending) => {
                        pending.get_or_insert(step);
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(step) = pending else {
                return Ok(());
            };
            self.locate_step(step)?;
        }
        Ok(())
    }

    /// Step `step`'s samples located and resolved, with the documents they read.
    fn locate_step(&mut self, step: u64) -> Result<Located> {
        let b = u64::from(self.spec.micro_batch);
        let first = self.start + step * self.spec.global_batch() + u64::from(self.spec.rank) * b;
        let mut located = Located {
            samples: Vec::with_capacity(b as usize),
            spans: Vec::new(),
            span_offsets: vec![0],
            pieces: Vec::new(),
            piece_offsets: vec![0],
            docs: Vec::new(),
            bytes: 0,
        };
        resolve_samples(
            self.plan,
            first..first + b,
            &mut located.samples,
            &mut located.spans,
            &mut located.span_offsets,
            &mut located.pieces,
            &mut located.piece_offsets,
        )?;
        located.docs = doc_refs(&located.pieces);
        let window = self.plan.window().expect("window mode");
        located.bytes = located.docs.iter().map(|d| window.doc_bytes(d)).sum();
        Ok(located)
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

/// Locates and resolves global samples `samples`, appending to the step's lists. Every sample
/// is located, then each stage of index reads is started for all before any is waited for
/// (window starts, then first document entries), then each is resolved: the misses of
/// different samples overlap, whether they are cache lines of a mapped index or GETs of a
/// paged one (see `Plan::resolve`).
#[allow(clippy::too_many_arguments)]
fn resolve_samples(
    plan: &Plan,
    samples: std::ops::Range<u64>,
    metas: &mut Vec<SampleMeta>,
    spans: &mut Vec<Span>,
    span_offsets: &mut Vec<u32>,
    pieces: &mut Vec<Piece>,
    piece_offsets: &mut Vec<usize>,
) -> Result<()> {
    let from = metas.len();
    for g in samples {
        metas.push(plan.locate(g)?);
    }
    for meta in &metas[from..] {
        plan.prefetch_window(meta)?;
    }
    for meta in &metas[from..] {
        plan.prefetch_first_document(meta)?;
    }
    for meta in &metas[from..] {
        plan.resolve(meta, pieces, spans)?;
        span_offsets.push(spans.len() as u32);
        piece_offsets.push(pieces.len());
    }
    Ok(())
}

impl Drop for RankStream<'_> {
    /// Steps reserved ahead and never served give their documents back.
    fn drop(&mut self) {
        if let Some(window) = self.plan.window() {
            self.forget_ahead(window);
            window.leave();
        }
    }
}
