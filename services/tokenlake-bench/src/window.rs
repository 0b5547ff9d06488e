//! `tokenlake bench window`: a discrete-event simulation of one node of a large world reading
//! a token store through a window, driven by a real plan index over a synthetic lake.
//!
//! Every range a rank fetches comes from the plan ([`Plan::fetch_ranges`]); the reservation
//! policy is the one `RankStream` follows in window mode (`services/tokenlake-plan/src/
//! stream.rs`): at each step a rank reserves its steps ahead while they fit its share of the
//! bound (the bound over the node's ranks) and the horizon, the step it serves next always
//! goes through, and a range leaves the slab when no reserved step holds it. Object storage is
//! a latency model: lognormal (p50 and p99 given), a tail of slow answers, bursts of 503s;
//! requests hold one of `concurrency` slots, are hedged past `hedge_after` and retried with
//! doubling backoff, as `window.rs` does. Trainers take a step when every rank of the node has
//! its micro-batch; the time they wait is the stall.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::Range;
use std::path::Path;

use serde::Serialize;
use tokenlake_plan::{DocRef, Plan, Result, SplitMix64, WindowOptions, open_or_build};

use crate::plan::{recipe, synthetic_cache};

/// A model's appetite, in tokens per second per node of 8 GPUs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub model: &'static str,
    pub tokens_per_s: f64,
}

/// A 7 B model on H100s takes about 30 k tokens/s per node; smaller models scale inversely
/// with their parameters (training FLOPs are 6·N per token).
pub const RATES: [Rate; 3] = [
    Rate {
        model: "7B",
        tokens_per_s: 30_000.0,
    },
    Rate {
        model: "1B",
        tokens_per_s: 210_000.0,
    },
    Rate {
        model: "125M",
        tokens_per_s: 1_680_000.0,
    },
];

/// Object storage as the simulation sees it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_s: f64,
    pub p99_s: f64,
    /// Fraction of requests that take `slow_s`.
    pub slow_fraction: f64,
    pub slow_s: f64,
    /// Every `burst_every_s`, for `burst_s`, each request fails with 503 with this probability.
    pub burst_every_s: f64,
    pub burst_s: f64,
    pub burst_failure: f64,
    /// Transfer rate of one request, bytes per second.
    pub bytes_per_s: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            p50_s: 0.020,
            p99_s: 0.200,
            slow_fraction: 0.001,
            slow_s: 2.0,
            burst_every_s: 60.0,
            burst_s: 2.0,
            burst_failure: 0.5,
            bytes_per_s: 50e6,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WindowBench {
    pub docs: u64,
    pub world: u32,
    pub ranks: u32,
    pub micro_batch: u32,
    /// Simulated seconds per rate.
    pub seconds: f64,
    pub window: WindowOptions,
    pub latency: Latency,
    /// Bandwidth a cold node downloads the plan index at, bytes per second.
    pub index_bytes_per_s: f64,
    /// Fetch parts of documents whole, as a plan without piece checksums does (a sealed
    /// store's, or one built from a store's records).
    pub whole_documents: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowFigures {
    pub model: &'static str,
    pub tokens_per_s: f64,
    pub simulated_s: f64,
    pub steps: u64,
    /// Seconds trainers waited for data after the first batch, over the seconds since.
    pub stall_fraction: f64,
    pub gets_per_million_tokens: f64,
    /// Bytes fetched for the steps served (the window's contents at the end left out) over
    /// the token bytes those steps copied.
    pub fetched_over_served: f64,
    pub slab_high_water_bytes: u64,
    /// From a cold node's start (no plan index on it: the index is read page by page from the
    /// store while the rest downloads behind) to the first step's batches on every rank.
    pub first_batch_s: f64,
    /// Baseline, same run: a cold node that downloads the whole index first, at
    /// `index_bytes_per_s`, then streams (`index_download_s` plus the first batch from a
    /// local index).
    pub baseline_whole_index_first_batch_s: f64,
    /// GETs of index pages reads needed before the background download brought them.
    pub index_page_gets: u64,
    /// When the background download has brought the whole index.
    pub index_whole_s: f64,
    pub misses: u64,
    pub retries: u64,
    pub hedges: u64,
    /// Baseline, same run and store: the stall when each rank reads only the step it serves
    /// next (no read-ahead).
    pub baseline_next_step_stall_fraction: f64,
    /// Baseline, same run and store: bytes fetched over served when parts of documents are
    /// fetched whole (a plan without piece checksums).
    pub baseline_whole_documents_fetched_over_served: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub docs: u64,
    pub tokens: u64,
    pub plan_index_bytes: u64,
    /// Seconds a cold node takes to download the plan index at `index_bytes_per_s`.
    pub index_download_s: f64,
    pub world: u32,
    pub ranks: u32,
    pub micro_batch: u32,
    pub window_bytes: u64,
    pub whole_documents: bool,
    pub latency: Latency,
    pub rates: Vec<WindowFigures>,
}

/// Builds the synthetic plan in `dir` and simulates every rate of [`RATES`].
pub fn bench_window(dir: &Path, bench: &WindowBench) -> Result<WindowReport> {
    let cache = synthetic_cache(&dir.join("tokens"), bench.docs, false)?;
    let recipe = recipe(cache.tokens());
    let (plan, _) = open_or_build(&recipe, cache.clone(), dir, &Default::default())?;
    let next_step = WindowBench {
        window: WindowOptions {
            horizon: tokenlake_plan::Horizon::Samples(0),
            ..bench.window
        },
        ..*bench
    };
    let whole = WindowBench {
        whole_documents: true,
        ..*bench
    };
    let rates = RATES
        .iter()
        .map(|rate| {
            let mut figures = simulate(&plan, bench, *rate)?;
            figures.baseline_whole_index_first_batch_s =
                simulate_with(&plan, bench, *rate, IndexStart::Whole)?.first_batch_s;
            figures.baseline_next_step_stall_fraction =
                simulate(&plan, &next_step, *rate)?.stall_fraction;
            figures.baseline_whole_documents_fetched_over_served =
                simulate(&plan, &whole, *rate)?.fetched_over_served;
            Ok(figures)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WindowReport {
        docs: bench.docs,
        tokens: cache.tokens(),
        plan_index_bytes: plan.index_bytes(),
        index_download_s: plan.index_bytes() as f64 / bench.index_bytes_per_s,
        world: bench.world,
        ranks: bench.ranks,
        micro_batch: bench.micro_batch,
        window_bytes: bench.window.max_bytes,
        whole_documents: bench.whole_documents,
        latency: bench.latency,
        rates,
    })
}

/// One step of one rank, reserved: the ranges it reads, their bytes, and the token bytes its
/// samples copy from them.
struct Reserved {
    /// When its index pages were there.
    located: f64,
    ranges: Vec<DocRef>,
    bytes: u64,
    served: u64,
}

/// Chunks of the store (as `tokenlake materialise` cuts them): a range across a boundary
/// takes one GET per chunk.
const CHUNK_BYTES: u64 = 64 << 20;

struct Slot {
    refs: u64,
    bytes: u64,
    ready_at: f64,
    /// GETs it took (retries and hedges included).
    gets: u64,
}

/// The simulated store and the node's request slots.
struct Store<'a> {
    latency: &'a Latency,
    options: &'a WindowOptions,
    rng: SplitMix64,
    mu: f64,
    sigma: f64,
    slots: BinaryHeap<Reverse<Time>>,
    gets: u64,
    bytes: u64,
    retries: u64,
    hedges: u64,
}

/// Seconds, ordered by `f64::total_cmp` (never NaN here).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Store<'_> {
    fn uniform(&mut self) -> f64 {
        (self.rng.below(1 << 53) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// One request's answer time, or `None` for a 503.
    fn answer(&mut self, at: f64, bytes: u64) -> (f64, bool) {
        let l = self.latency;
        // Bursts come half-way through each period, so a cold start is not always in one.
        let in_burst = ((at + l.burst_every_s / 2.0) % l.burst_every_s) < l.burst_s;
        if in_burst && self.uniform() < l.burst_failure {
            return (l.p50_s, false);
        }
        let seconds = if self.uniform() < l.slow_fraction {
            l.slow_s
        } else {
            // Box–Muller: one standard normal from two uniforms.
            let z = (-2.0 * self.uniform().ln()).sqrt()
                * (2.0 * std::f64::consts::PI * self.uniform()).cos();
            (self.mu + self.sigma * z).exp()
        };
        (seconds + bytes as f64 / l.bytes_per_s, true)
    }

    /// One ranged GET issued at `at`: when its body is there (hedged and retried as the
    /// window does).
    fn get(&mut self, at: f64, bytes: u64) -> f64 {
        let mut issue = at;
        for attempt in 0..self.options.attempts {
            if attempt > 0 {
                self.retries += 1;
                let base = self.options.backoff.as_secs_f64() * f64::from(1u32 << (attempt - 1));
                issue += base * (0.5 + self.uniform() / 2.0);
            }
            let Reverse(Time(free)) = self.slots.pop().expect("slots");
            let start = issue.max(free);
            self.gets += 1;
            let (took, ok) = self.answer(start, bytes);
            let hedge = self.options.hedge_after.as_secs_f64();
            let done = if took > hedge {
                self.hedges += 1;
                self.gets += 1;
                let (second, second_ok) = self.answer(start + hedge, bytes);
                match (ok, second_ok) {
                    (true, true) => start + took.min(hedge + second),
                    (true, false) => start + took,
                    (false, true) => start + hedge + second,
                    (false, false) => {
                        self.slots
                            .push(Reverse(Time(start + took.max(hedge + second))));
                        issue = start + took.max(hedge + second);
                        continue;
                    }
                }
            } else if ok {
                start + took
            } else {
                self.slots.push(Reverse(Time(start + took)));
                issue = start + took;
                continue;
            };
            self.slots.push(Reverse(Time(done)));
            self.bytes += bytes;
            return done;
        }
        // Out of attempts: the stream would fail; the simulation counts it as very late.
        issue + 3600.0
    }
}

/// How a cold node gets its plan index.
#[derive(Debug, Clone, Copy, PartialEq)]
enum IndexStart {
    /// Page by page as reads need them, the rest downloading behind (what nodes do).
    Paged,
    /// The whole index downloaded first (the baseline).
    Whole,
}

/// A cold node's plan index as `plan_index.rs` reads it: the manifest and page checksums
/// first (one GET each), then pages by ranged GETs as reads need them, while a background
/// download brings every page in order at `index_bytes_per_s`.
struct IndexModel {
    /// When the page checksums are on the node, and the download starts.
    start: f64,
    bytes_per_s: f64,
    len: u64,
    /// Pages fetched on demand: when each is there.
    fetched: HashMap<u64, f64>,
    gets: u64,
    /// GETs and bytes of the store's that were the index's, not tokens.
    store_gets: u64,
    store_bytes: u64,
    /// The baseline: nothing is read before the whole index is there.
    whole: bool,
}

/// Pages of the published index (`tokenlake_plan::INDEX_PAGE`).
const PAGE: u64 = tokenlake_plan::INDEX_PAGE;

impl IndexModel {
    fn new(len: u64, bytes_per_s: f64, how: IndexStart, store: &mut Store<'_>) -> IndexModel {
        let manifest = store.get(0.0, 4 << 10);
        let start = match how {
            IndexStart::Paged => store.get(manifest, len.div_ceil(PAGE) * 8),
            // Every page is there once the download is done.
            IndexStart::Whole => manifest + len as f64 / bytes_per_s,
        };
        IndexModel {
            start,
            bytes_per_s: if how == IndexStart::Whole {
                f64::INFINITY
            } else {
                bytes_per_s
            },
            len,
            fetched: HashMap::new(),
            gets: 0,
            store_gets: store.gets,
            store_bytes: store.bytes,
            whole: how == IndexStart::Whole,
        }
    }

    fn whole_at(&self) -> f64 {
        self.start + self.len as f64 / self.bytes_per_s
    }

    /// When the download in order has brought page `p`.
    fn filled_at(&self, p: u64) -> f64 {
        self.start + ((p + 1) * PAGE).min(self.len) as f64 / self.bytes_per_s
    }

    fn present(&self, p: u64, at: f64) -> bool {
        self.filled_at(p) <= at || self.fetched.get(&p).is_some_and(|&t| t <= at)
    }

    /// When page `p`, asked for at `at`, is there: at once, when a GET already on its way or
    /// the download brings it, or after a GET of its own.
    fn page(&mut self, p: u64, at: f64, store: &mut Store<'_>) -> f64 {
        if self.present(p, at) {
            return at;
        }
        let filled = self.filled_at(p);
        if self.whole {
            return filled.max(at);
        }
        let done = match self.fetched.get(&p) {
            Some(&t) => t,
            None => {
                self.gets += 1;
                let (gets, bytes) = (store.gets, store.bytes);
                let t = store.get(at.max(self.start), PAGE).min(filled);
                self.store_gets += store.gets - gets;
                self.store_bytes += store.bytes - bytes;
                self.fetched.insert(p, t);
                t
            }
        };
        done.min(filled).max(at)
    }

    /// When every page of `read`, asked for at `at`, is there.
    fn read(&mut self, read: &Range<u64>, at: f64, store: &mut Store<'_>) -> f64 {
        pages(read)
            .map(|p| self.page(p, at, store))
            .fold(at, f64::max)
    }

    /// The index reads of one step's samples (`Plan::index_reads`), waited for in
    /// `RankStream`'s stages: each sample's locate reads (blend, checkpoint, shuffle) in turn,
    /// then every sample's window start at once, then each sample's document entries, the
    /// samples side by side. When they are all there.
    fn wait(&mut self, samples: &[Vec<Range<u64>>], at: f64, store: &mut Store<'_>) -> f64 {
        let mut t = at;
        for reads in samples {
            for read in reads.iter().take(LOCATE_READS) {
                t = self.read(read, t, store);
            }
        }
        let starts = samples
            .iter()
            .filter_map(|reads| reads.get(LOCATE_READS))
            .map(|read| self.read(read, t, store))
            .fold(t, f64::max);
        samples
            .iter()
            .map(|reads| {
                reads
                    .iter()
                    .skip(LOCATE_READS + 1)
                    .fold(starts, |t, read| self.read(read, t, store))
            })
            .fold(starts, f64::max)
    }

    /// A look-ahead step's reads, not waited for (`plan_index::without_waiting`): true when
    /// every page is there at `at`; else the GETs of the first stage that lacks some start
    /// and the step waits for a later pass.
    fn ready(&mut self, samples: &[Vec<Range<u64>>], at: f64, store: &mut Store<'_>) -> bool {
        let stages = [0..LOCATE_READS, LOCATE_READS..LOCATE_READS + 1];
        for stage in stages {
            let missing: Vec<Range<u64>> = samples
                .iter()
                .flat_map(|reads| reads.get(stage.clone()).unwrap_or_default())
                .filter(|read| pages(read).any(|p| !self.present(p, at)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                for read in &missing {
                    self.read(read, at, store);
                }
                return false;
            }
        }
        let mut ready = true;
        for reads in samples {
            for read in reads.iter().skip(LOCATE_READS + 1) {
                if pages(read).any(|p| !self.present(p, at)) {
                    self.read(read, at, store);
                    ready = false;
                }
            }
        }
        ready
    }
}

/// Reads that locate a sample (blend, checkpoint, shuffle) before its window is resolved.
const LOCATE_READS: usize = 3;

fn pages(read: &Range<u64>) -> Range<u64> {
    read.start / PAGE..read.end.max(read.start + 1).div_ceil(PAGE)
}

fn simulate(plan: &Plan, bench: &WindowBench, rate: Rate) -> Result<WindowFigures> {
    simulate_with(plan, bench, rate, IndexStart::Paged)
}

// Kept as one function: the event loop's state (slab, ranks' reservations, store, clock) is
// shared by every step of it.
fn simulate_with(
    plan: &Plan,
    bench: &WindowBench,
    rate: Rate,
    how: IndexStart,
) -> Result<WindowFigures> {
    let o = &bench.window;
    let width = plan.token_width().bytes() as u64;
    let sample_tokens = plan.sample_len();
    let b = u64::from(bench.micro_batch);
    let global = b * u64::from(bench.world);
    let step_s = (b * u64::from(bench.ranks) * sample_tokens) as f64 / rate.tokens_per_s;
    let total_steps = plan.total_samples() / global;
    let steps = ((bench.seconds / step_s) as u64).clamp(1, total_steps);
    let share = o.max_bytes / u64::from(bench.ranks).max(1);
    let horizon_steps = match o.horizon {
        tokenlake_plan::Horizon::Samples(n) => n.div_ceil(b),
        tokenlake_plan::Horizon::Seconds(s) => (s / step_s).ceil() as u64,
        tokenlake_plan::Horizon::Unbounded => u64::MAX,
    };
    let sigma = (bench.latency.p99_s / bench.latency.p50_s).ln() / 2.326;
    let mut store = Store {
        latency: &bench.latency,
        options: o,
        rng: SplitMix64::new(rate.tokens_per_s as u64),
        mu: bench.latency.p50_s.ln(),
        sigma,
        slots: (0..o.concurrency).map(|_| Reverse(Time(0.0))).collect(),
        gets: 0,
        bytes: 0,
        retries: 0,
        hedges: 0,
    };
    let mut index = IndexModel::new(plan.index_bytes(), bench.index_bytes_per_s, how, &mut store);
    let mut slab: HashMap<(u64, u32), Slot> = HashMap::new();
    // Per rank, when each fetch it started and that has not finished will be done: what
    // `RankStream` counts against `Window::stream_queue`.
    let mut queued: Vec<BinaryHeap<Reverse<Time>>> =
        (0..bench.ranks).map(|_| BinaryHeap::new()).collect();
    let stream_queue = (2 * o.concurrency / bench.ranks as usize).max(2);
    let (mut slab_bytes, mut high_water, mut misses) = (0u64, 0u64, 0u64);
    let mut ahead: Vec<VecDeque<Reserved>> = (0..bench.ranks).map(|_| VecDeque::new()).collect();
    let mut frontier = vec![0u64; bench.ranks as usize];
    let mut ahead_bytes = vec![0u64; bench.ranks as usize];
    let (mut clock, mut stalled, mut served, mut first_batch) = (0.0f64, 0.0f64, 0u64, None);
    for step in 0..steps {
        let mut ready = clock;
        for r in 0..bench.ranks as usize {
            // Reserve ahead, as `RankStream::reserve_ahead`.
            let limit = step
                .saturating_add(1)
                .saturating_add(horizon_steps.min(tokenlake_plan::ramp(step)))
                .min(total_steps);
            let mut now = clock;
            let reach = step
                .saturating_add(1)
                .saturating_add(horizon_steps)
                .min(total_steps);
            // A stream's first pass on a cold node gets the index pages of its first steps,
            // all at once in stages (`RankStream::prime_index`).
            if step == 0 {
                let mut primed = now;
                for s in 0..reach.min(1 + tokenlake_plan::PENDING_STEPS) {
                    let first = s * global + r as u64 * b;
                    let reads = (first..first + b)
                        .map(|g| plan.index_reads(g))
                        .collect::<Result<Vec<_>>>()?;
                    primed = primed.max(index.wait(&reads, now, &mut store));
                }
                now = primed;
            }
            while frontier[r] < limit {
                while queued[r].peek().is_some_and(|Reverse(Time(t))| *t <= clock) {
                    queued[r].pop();
                }
                if !ahead[r].is_empty() && queued[r].len() >= stream_queue {
                    break;
                }
                let s = frontier[r];
                let first = s * global + r as u64 * b;
                // The step's index pages: waited for when it is served next, else only
                // started (a later pass reserves it).
                let reads = (first..first + b)
                    .map(|g| plan.index_reads(g))
                    .collect::<Result<Vec<_>>>()?;
                // A pass that waited for the next step's index goes on from when it came.
                let located = if ahead[r].is_empty() {
                    now = index.wait(&reads, now, &mut store);
                    now
                } else if index.ready(&reads, now, &mut store) {
                    now
                } else {
                    // The steps after it start their pages too (`RankStream::reserve_ahead`).
                    let last = reach.min(s + 1 + tokenlake_plan::PENDING_STEPS);
                    for later in s + 1..last {
                        let first = later * global + r as u64 * b;
                        let reads = (first..first + b)
                            .map(|g| plan.index_reads(g))
                            .collect::<Result<Vec<_>>>()?;
                        index.ready(&reads, now, &mut store);
                    }
                    break;
                };
                let (mut ranges, mut step_served) = (Vec::new(), 0);
                for g in first..first + b {
                    // What the samples copy: their pieces' tokens, whatever is fetched.
                    step_served += plan
                        .fetch_ranges(g, true)?
                        .iter()
                        .map(|d| u64::from(d.len) * width)
                        .sum::<u64>();
                    ranges.extend(plan.fetch_ranges(g, !bench.whole_documents)?);
                }
                ranges.sort_unstable_by_key(|d| (d.offset, d.len));
                ranges.dedup_by_key(|d| (d.offset, d.len));
                let bytes: u64 = ranges.iter().map(|d| u64::from(d.len) * width).sum();
                let next = ahead[r].is_empty();
                let new: u64 = ranges
                    .iter()
                    .filter(|d| !slab.contains_key(&(d.offset, d.len)))
                    .map(|d| u64::from(d.len) * width)
                    .sum();
                if !next && (ahead_bytes[r] + bytes > share || slab_bytes + new > o.max_bytes) {
                    break;
                }
                for d in &ranges {
                    let key = (d.offset, d.len);
                    if let Some(slot) = slab.get_mut(&key) {
                        slot.refs += 1;
                        continue;
                    }
                    if next {
                        misses += 1;
                    }
                    let len = u64::from(d.len) * width;
                    let (from, to) = (d.offset * width, d.offset * width + len);
                    let mut ready_at = located;
                    let gets_before = store.gets;
                    for chunk in from / CHUNK_BYTES..=(to - 1) / CHUNK_BYTES {
                        let part =
                            to.min((chunk + 1) * CHUNK_BYTES) - from.max(chunk * CHUNK_BYTES);
                        ready_at = ready_at.max(store.get(located, part));
                    }
                    queued[r].push(Reverse(Time(ready_at)));
                    slab.insert(
                        key,
                        Slot {
                            refs: 1,
                            bytes: len,
                            ready_at,
                            gets: store.gets - gets_before,
                        },
                    );
                }
                slab_bytes += new;
                high_water = high_water.max(slab_bytes);
                ahead_bytes[r] += bytes;
                ahead[r].push_back(Reserved {
                    located,
                    ranges,
                    bytes,
                    served: step_served,
                });
                frontier[r] += 1;
            }
            let step_ranges = ahead[r].front().expect("the next step is reserved");
            ready = ready.max(step_ranges.located);
            for d in &step_ranges.ranges {
                ready = ready.max(slab[&(d.offset, d.len)].ready_at);
            }
        }
        // The cold start is its own figure; the stall is the steady state's.
        if first_batch.is_some() {
            stalled += ready - clock;
        }
        first_batch.get_or_insert(ready);
        // Served: every rank copies its step, then releases it.
        for r in 0..bench.ranks as usize {
            let done = ahead[r].pop_front().expect("reserved");
            ahead_bytes[r] -= done.bytes;
            served += done.served;
            for d in &done.ranges {
                let key = (d.offset, d.len);
                let slot = slab.get_mut(&key).expect("held");
                slot.refs -= 1;
                if slot.refs == 0 {
                    slab_bytes -= slot.bytes;
                    slab.remove(&key);
                }
            }
        }
        clock = ready + step_s;
    }
    // Ranges fetched for steps reserved but not yet served when the simulation stops would
    // count against the steps it served: they are the window's contents, not waste.
    let held: u64 = slab.values().map(|s| s.bytes).sum();
    let held_gets: u64 = slab.values().map(|s| s.gets).sum();
    let served_tokens = served / width;
    Ok(WindowFigures {
        model: rate.model,
        tokens_per_s: rate.tokens_per_s,
        simulated_s: clock,
        steps,
        stall_fraction: stalled / (clock - first_batch.unwrap_or(0.0)).max(1e-9),
        gets_per_million_tokens: (store.gets - held_gets - index.store_gets) as f64 * 1e6
            / served_tokens.max(1) as f64,
        fetched_over_served: (store.bytes - index.store_bytes).saturating_sub(held) as f64
            / served.max(1) as f64,
        slab_high_water_bytes: high_water,
        first_batch_s: first_batch.unwrap_or(0.0),
        misses,
        retries: store.retries,
        hedges: store.hedges,
        baseline_whole_index_first_batch_s: 0.0,
        index_page_gets: index.gets,
        index_whole_s: index.whole_at(),
        baseline_next_step_stall_fraction: 0.0,
        baseline_whole_documents_fetched_over_served: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(horizon: tokenlake_plan::Horizon, p50_s: f64) -> WindowBench {
        WindowBench {
            docs: 20_000,
            world: 16,
            ranks: 4,
            micro_batch: 1,
            seconds: 30.0,
            window: WindowOptions {
                max_bytes: 64 << 20,
                horizon,
                ..WindowOptions::default()
            },
            latency: Latency {
                p50_s,
                p99_s: p50_s,
                slow_fraction: 0.0,
                burst_failure: 0.0,
                ..Latency::default()
            },
            index_bytes_per_s: 1e9,
            whole_documents: false,
        }
    }

    /// Reading ahead hides the store's latency; reading only the next step does not, and a
    /// 1B-model node then waits about one request latency per step.
    #[test]
    fn reading_ahead_hides_latency_and_fetches_what_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let ahead =
            bench_window(dir.path(), &bench(tokenlake_plan::Horizon::Unbounded, 0.05)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let next_only = bench_window(
            dir.path(),
            &bench(tokenlake_plan::Horizon::Samples(0), 0.05),
        )
        .unwrap();
        // The 125M model's 1,000 GETs/s are near what 64 slots at 50 ms serve (1,280/s): it
        // stalls on the slots, read ahead or not.
        for a in &ahead.rates[..2] {
            assert_eq!(a.stall_fraction, 0.0, "{a:?}");
        }
        for (a, n) in ahead.rates.iter().zip(&next_only.rates) {
            assert!(
                a.fetched_over_served > 0.99 && a.fetched_over_served < 1.01,
                "{a:?}"
            );
            // Manifest, page checksums, a step's index pages in stages, then its tokens.
            assert!(
                a.first_batch_s < 0.6,
                "a cold start takes a few latencies: {a:?}"
            );
            assert!(n.stall_fraction > a.stall_fraction, "{n:?}");
        }
        // The report's own baselines, from the same run, say the same.
        for a in &ahead.rates {
            assert!(
                a.baseline_next_step_stall_fraction > a.stall_fraction,
                "{a:?}"
            );
            assert!(
                a.baseline_whole_documents_fetched_over_served >= 1.0,
                "{a:?}"
            );
        }
        let one_b = &next_only.rates[1];
        assert!(one_b.stall_fraction > 0.1, "{one_b:?}");
    }

    /// A cold node whose index would take minutes to download whole streams its first batch
    /// after a few GETs, and does not stall while the rest comes.
    #[test]
    fn a_cold_node_does_not_wait_for_the_whole_index() {
        let dir = tempfile::tempdir().unwrap();
        let slow_index = WindowBench {
            // The index downloads in about a hundred seconds.
            index_bytes_per_s: 0.0,
            ..bench(tokenlake_plan::Horizon::Unbounded, 0.02)
        };
        let cache_probe =
            bench_window(dir.path(), &bench(tokenlake_plan::Horizon::Unbounded, 0.02)).unwrap();
        let slow_index = WindowBench {
            index_bytes_per_s: cache_probe.plan_index_bytes as f64 / 100.0,
            ..slow_index
        };
        let dir = tempfile::tempdir().unwrap();
        let r = bench_window(dir.path(), &slow_index).unwrap();
        for f in &r.rates[..2] {
            assert!(f.first_batch_s < 0.6, "{f:?}");
            assert!(f.baseline_whole_index_first_batch_s > 99.0, "{f:?}");
            assert!(f.index_page_gets > 0 && f.index_whole_s > 99.0, "{f:?}");
            assert!(f.stall_fraction < 0.001, "{f:?}");
        }
    }
}
