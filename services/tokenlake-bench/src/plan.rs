//! Benchmarks of the planner on synthetic documents: plan build time and index size, resume
//! latency anywhere in the plan, and micro-batch assembly against plain memcpy of the same
//! bytes in the same run. `tokenlake bench plan|stream` prints them.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokenlake_schemas::TokenWidth;

use tokenlake_plan::{
    CachedDoc, ComponentSelection, MicroBatch, Plan, Progress, RankSpec, RankStream, Recipe,
    Result, SplitMix64, TokenCache, TokenCacheBuilder, mix64, open_or_build,
};

/// The benchmark recipe: a Ziya2-like stage-1 mixture of two concat components and one
/// bin-packed supervised component grouped by task, sized to about one epoch of the data.
pub(crate) fn recipe(total_tokens: u64) -> Recipe {
    recipe_weighted(total_tokens, [0.7, 0.2, 0.1])
}

/// The benchmark recipe with the stage's weights of web, books and sft.
pub(crate) fn recipe_weighted(total_tokens: u64, [web, books, sft]: [f64; 3]) -> Recipe {
    let text = format!(
        r#"
seq_len = 4096
seed = 1234
eos_token = 2
pad_token = 0
[components.web]
filter = "synthetic"
packing = "concat"
[components.books]
filter = "synthetic"
packing = "concat"
[components.sft]
filter = "synthetic"
packing = "bin"
task = "task"
[[stages]]
name = "stage1"
tokens = {total_tokens}
weights = {{ web = {web:.4}, books = {books:.4}, sft = {sft:.4} }}
"#
    );
    Recipe::parse(&text, "bench recipe").expect("the benchmark recipe is valid")
}

/// Document lengths shaped like a web corpus: many short pages, a long tail of long ones
/// (mean about 1 600 tokens).
fn doc_len(rng: &mut SplitMix64) -> u32 {
    match rng.below(10) {
        0..=2 => 20 + rng.below(180) as u32,
        3..=7 => 200 + rng.below(1800) as u32,
        _ => 2000 + rng.below(6000) as u32,
    }
}

/// Builds a cache of `docs` documents (real random tokens when `write_tokens`, else a sparse
/// file) split 70/20/10 over the three components.
pub(crate) fn synthetic_cache(dir: &Path, docs: u64, write_tokens: bool) -> Result<TokenCache> {
    let mut builder = if write_tokens {
        TokenCacheBuilder::new(dir, TokenWidth::U16)?
    } else {
        TokenCacheBuilder::synthetic(dir, TokenWidth::U16)?
    };
    let mut rng = SplitMix64::new(42);
    let mut selections = vec![ComponentSelection::default(); 3];
    selections[1].groups = Some(Vec::new());
    let mut tokens = Vec::new();
    for d in 0..docs {
        let len = doc_len(&mut rng);
        let doc_id = mix64(d);
        let index = if write_tokens {
            tokens.clear();
            tokens.extend((0..len).flat_map(|_| (3 + rng.below(8000) as u16).to_le_bytes()));
            builder.push(doc_id, &tokens)?
        } else {
            builder.push_len(doc_id, len)?
        };
        // components are sorted by name: books, sft, web
        let c = match d % 10 {
            0..=1 => 0,
            2 => 1,
            _ => 2,
        };
        selections[c].members.push(index);
        if c == 1 {
            let task = ["qa", "chat", "code", "math"][(d / 10 % 4) as usize];
            selections[1]
                .groups
                .as_mut()
                .expect("grouped")
                .push(Some(task.to_string()));
        }
    }
    builder.finish(selections)
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanFigures {
    pub docs: u64,
    pub tokens: u64,
    pub samples: u64,
    pub token_cache_build: Duration,
    pub plan_build: Duration,
    pub plan_index_bytes: u64,
    pub token_cache_index_bytes: u64,
    /// Opening the plan afresh and reading one sample at the start, middle and end.
    pub resume: [(u64, Duration); 3],
}

/// Plans `docs` synthetic documents in `dir` (which should be empty) and measures it.
pub fn bench_plan(dir: &Path, docs: u64) -> Result<PlanFigures> {
    let progress = Progress::default();
    let started = Instant::now();
    let cache = synthetic_cache(&dir.join("tokens"), docs, false)?;
    let token_cache_build = started.elapsed();
    let recipe = recipe(cache.tokens());
    let started = Instant::now();
    let (plan, plan_dir) = open_or_build(&recipe, cache.clone(), dir, &progress)?;
    let plan_build = started.elapsed();
    let total = plan.total_samples();
    let mut resume = [(0, Duration::ZERO); 3];
    let mut out = vec![0u8; plan.sample_bytes()];
    let mut spans = Vec::new();
    for (slot, g) in resume.iter_mut().zip([0, total / 2, total - 1]) {
        let started = Instant::now();
        let cache = TokenCache::open(cache.dir())?;
        let plan = Plan::open(&plan_dir, cache)?;
        plan.read_sample(g, &mut out, &mut spans)?;
        *slot = (g, started.elapsed());
    }
    Ok(PlanFigures {
        docs,
        tokens: cache.tokens(),
        samples: total,
        token_cache_build,
        plan_build,
        plan_index_bytes: plan.index_bytes(),
        token_cache_index_bytes: cache.size_bytes() - cache.tokens() * 2,
        resume,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    pub docs: u64,
    pub samples: u64,
    pub bytes: u64,
    pub micro_batch: u32,
    /// Assembling the micro-batches (plan lookups, copies, EOS and padding, spans).
    pub assemble: Duration,
    /// The first assembly pass, page faults of a fresh mapping included.
    pub assemble_first_pass: Duration,
    /// memcpy of exactly the samples' document pieces from the same mapped token cache into
    /// the same batch buffer: the bytes assembly copies, without the plan.
    pub memcpy_same_bytes: Duration,
    /// memcpy of as many bytes read front to back: what the random placement of shuffled
    /// samples costs on top.
    pub memcpy_sequential: Duration,
}

impl StreamFigures {
    pub fn tokens_per_s(&self, d: Duration) -> f64 {
        (self.bytes / 2) as f64 / d.as_secs_f64()
    }
}

const ROUNDS: usize = 5;

/// The benchmark recipe's plan over `docs` synthetic documents with real tokens, built in
/// `dir` (or reused from it); also the plan's directory.
pub fn synthetic_plan(dir: &Path, docs: u64) -> Result<(Recipe, Plan, std::path::PathBuf)> {
    let cache = synthetic_cache(&dir.join("tokens"), docs, true)?;
    let recipe = recipe(cache.tokens());
    let (plan, plan_dir) = open_or_build(&recipe, cache, dir, &Progress::default())?;
    Ok((recipe, plan, plan_dir))
}

/// Streams `samples` samples of a plan over `docs` synthetic documents with real tokens and
/// times it against memcpy of the same bytes, in the same run: the best of [`ROUNDS`] rounds
/// each, after a first assembly pass has mapped the pages all of them read.
pub fn bench_stream(
    dir: &Path,
    docs: u64,
    samples: u64,
    micro_batch: u32,
) -> Result<StreamFigures> {
    let (_, plan, _) = synthetic_plan(dir, docs)?;
    let spec = RankSpec::new(0, 1, micro_batch)?;
    let steps =
        (samples / u64::from(micro_batch)).min(plan.total_samples() / u64::from(micro_batch));
    let mut checksum = 0u64;

    let mut batch = MicroBatch::default();
    let mut assemble_pass = |checksum: &mut u64| -> Result<Duration> {
        let started = Instant::now();
        let mut stream = RankStream::new(&plan, spec, None)?;
        for _ in 0..steps {
            stream.next_batch(&mut batch)?;
            *checksum = checksum.wrapping_add(u64::from(batch.tokens[batch.tokens.len() / 2]));
        }
        Ok(started.elapsed())
    };
    let assemble_first_pass = assemble_pass(&mut checksum)?;
    let mut copies = BatchCopies::record(&plan, spec, steps)?;

    // Best of rounds that take turns, so that neither side gains from running later or warmer.
    let (mut assemble, mut memcpy_same_bytes, mut memcpy_sequential) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        assemble = assemble.min(assemble_pass(&mut checksum)?);
        memcpy_same_bytes = memcpy_same_bytes.min(copies.same_bytes());
        memcpy_sequential = memcpy_sequential.min(copies.sequential());
    }
    std::hint::black_box(checksum);
    Ok(StreamFigures {
        docs,
        samples: steps * u64::from(micro_batch),
        bytes: copies.bytes(),
        micro_batch,
        assemble,
        assemble_first_pass,
        memcpy_same_bytes,
        memcpy_sequential,
    })
}

/// Plain memcpy baselines for a rank's micro-batches: the document pieces its batches copy,
/// recorded from one assembly pass, copied again from the same mapped token cache into a
/// batch-sized buffer without the plan. Any delivery of those batches moves at least these
/// bytes from where they lie, so this is the floor a transport is measured against.
pub struct BatchCopies<'a> {
    source: &'a [u8],
    /// (source byte, length, target byte); a target of `usize::MAX` ends a micro-batch.
    pieces: Vec<(usize, usize, usize)>,
    sink: Vec<u8>,
    bytes: u64,
    checksum: u64,
}

impl<'a> BatchCopies<'a> {
    /// Records the first `steps` micro-batches of `spec` in `plan`.
    pub fn record(plan: &'a Plan, spec: RankSpec, steps: u64) -> Result<BatchCopies<'a>> {
        let cache = plan.token_cache().ok_or_else(|| {
            tokenlake_plan::PlanError::InvalidRequest(
                "the copy baseline reads a full local token cache".into(),
            )
        })?;
        let width = plan.token_width().bytes();
        let sample_bytes = plan.sample_bytes();
        let mut stream = RankStream::new(plan, spec, None)?;
        let mut batch = MicroBatch::default();
        let mut pieces = Vec::new();
        let mut batches = 0u64;
        for _ in 0..steps {
            if !stream.next_batch(&mut batch)? {
                break;
            }
            batches += 1;
            for i in 0..batch.samples.len() {
                for span in batch.sample_spans(i) {
                    let doc = doc_by_id(cache, span.doc_id);
                    let len = span.len.min(doc.len.saturating_sub(span.offset)) as usize;
                    let from = (doc.offset + u64::from(span.offset)) as usize * width;
                    pieces.push((
                        from,
                        len * width,
                        i * sample_bytes + span.position as usize * width,
                    ));
                }
            }
            pieces.push((0, 0, usize::MAX));
        }
        let batch_bytes = sample_bytes * spec.micro_batch as usize;
        Ok(BatchCopies {
            source: cache.token_bytes(0, cache.tokens()),
            pieces,
            sink: vec![0u8; batch_bytes],
            bytes: batches * batch_bytes as u64,
            checksum: 0,
        })
    }

    /// The bytes of the recorded batches.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// memcpy of exactly the recorded pieces, from the cache into the batch buffer.
    pub fn same_bytes(&mut self) -> Duration {
        let started = Instant::now();
        for &(from, len, to) in &self.pieces {
            if to == usize::MAX {
                self.checksum = self
                    .checksum
                    .wrapping_add(u64::from(self.sink[self.sink.len() / 2]));
                continue;
            }
            self.sink[to..to + len].copy_from_slice(&self.source[from..from + len]);
        }
        std::hint::black_box(self.checksum);
        started.elapsed()
    }

    /// memcpy of as many bytes, batch by batch, read front to back from the cache: what the
    /// random placement of shuffled samples costs on top.
    pub fn sequential(&mut self) -> Duration {
        let started = Instant::now();
        let n = self.sink.len();
        let (mut copied, mut at) = (0u64, 0usize);
        while copied < self.bytes {
            if at + n > self.source.len() {
                at = 0;
            }
            self.sink.copy_from_slice(&self.source[at..at + n]);
            self.checksum = self.checksum.wrapping_add(u64::from(self.sink[n / 2]));
            at += n;
            copied += n as u64;
        }
        std::hint::black_box(self.checksum);
        started.elapsed()
    }
}

/// The cached document with `doc_id` (documents are sorted by id).
fn doc_by_id(cache: &TokenCache, doc_id: u64) -> CachedDoc {
    let (mut lo, mut hi) = (0u64, cache.docs());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if cache.doc(mid).doc_id < doc_id {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    cache.doc(lo)
}
