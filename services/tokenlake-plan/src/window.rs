//! Window mode: a node streams a selection larger than its disk by fetching, ahead of each rank,
//! exactly the documents the plan says it will read next, and freeing each after its last use
//! within the look-ahead.
//!
//! The plan is the oracle: every rank's future samples, and so the documents they need, are
//! known from its cursor on. A [`RankStream`](crate::RankStream) over a windowed plan walks its
//! own steps from the cursor to a horizon and *reserves* each step's documents here; a reserved
//! document is fetched once (ranged GETs of the token store's chunks, bounded in number,
//! retried with jitter, hedged past a latency threshold), checked against the checksum its plan
//! entry carries, and kept in the slab until every step that reserved it has been served. The
//! slab is bounded in bytes: a stream reserves ahead only while the slab has room, so the node
//! holds at most the bound (plus the step being served, when one step alone is larger). Ranks
//! of one process share one window, so a document two ranks need is fetched once.
//!
//! The bytes served are the token store's bytes, checked: the stream is the full-cache stream,
//! byte for byte, whatever the horizon, the bound or the store's faults.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{Either, select};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{PlanError, Result};
use crate::rng::SplitMix64;

/// How far ahead a rank's stream reserves documents, besides the slab's byte bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Horizon {
    /// This many of the rank's own samples past the one it reads next.
    Samples(u64),
    /// As many samples as the rank consumes in this many seconds, at the rate measured between
    /// its steps (only the byte bound limits it before the first measurement).
    Seconds(f64),
    /// Only the byte bound limits it.
    Unbounded,
}

impl std::str::FromStr for Horizon {
    type Err = String;

    /// `123` (samples), `30s` (seconds) or `unbounded`.
    fn from_str(s: &str) -> std::result::Result<Horizon, String> {
        let s = s.trim();
        if s == "unbounded" {
            return Ok(Horizon::Unbounded);
        }
        if let Some(seconds) = s.strip_suffix('s') {
            return match seconds.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(Horizon::Seconds(v)),
                _ => Err(format!("{s:?} is not a positive number of seconds")),
            };
        }
        match s.parse::<u64>() {
            Ok(v) if v > 0 => Ok(Horizon::Samples(v)),
            _ => Err(format!(
                "{s:?}: a horizon is a positive number of samples, seconds such as \"30s\", or \
                 \"unbounded\""
            )),
        }
    }
}

/// Steps a stream may reserve past the one it serves next, after serving `served` steps: one,
/// then doubling with each step served (slow start). A cold stream's first requests are then
/// for the steps it needs first, not queued behind its whole horizon, so the first batch comes
/// in a few request latencies whatever the horizon and bound.
pub fn ramp(served: u64) -> u64 {
    1u64 << served.min(40)
}

/// How a window fetches and how much it holds.
#[derive(Debug, Clone, Copy)]
pub struct WindowOptions {
    /// The slab's bound: bytes of documents fetched or being fetched.
    pub max_bytes: u64,
    pub horizon: Horizon,
    /// Ranged GETs in flight at once, for the whole window.
    pub concurrency: usize,
    /// A second request for the same bytes is sent when the first has not answered by then.
    pub hedge_after: Duration,
    /// Attempts per document before its stream fails.
    pub attempts: u32,
    /// First retry's delay; doubled per attempt, with jitter.
    pub backoff: Duration,
    /// One attempt's limit.
    pub attempt_timeout: Duration,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            max_bytes: 1 << 30,
            horizon: Horizon::Unbounded,
            concurrency: 64,
            hedge_after: Duration::from_millis(500),
            attempts: 8,
            backoff: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// A range of the token store a plan names with its checksum: a whole document (from its plan
/// entry) or the part of one that a sample reads (from the plan's piece checksums): where its
/// tokens start, how many there are, and the XXH3-64 of their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocRef {
    pub offset: u64,
    pub len: u32,
    pub checksum: u64,
}

/// A boxed future of one ranged read.
pub type ReadFuture = Pin<Box<dyn Future<Output = std::result::Result<Bytes, String>> + Send>>;

/// Ranged reads of a token store's chunks. The store's own implementation reads object
/// storage; tests wrap it to inject faults.
pub trait ChunkSource: Send + Sync + 'static {
    /// Bytes `range` of chunk `chunk`.
    fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture;
}

/// What a window did, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct WindowMetrics {
    /// Seconds streams waited for documents they needed at once.
    pub stall_seconds: f64,
    /// Ranged GETs sent (hedges and retries included).
    pub fetches: u64,
    pub bytes_fetched: u64,
    /// Token bytes copied into batches.
    pub bytes_served: u64,
    /// Documents a stream needed for the step it was serving that nothing had reserved ahead.
    pub misses: u64,
    pub retries: u64,
    /// Bodies whose length or checksum was wrong (fetched again, never served).
    pub corrupt: u64,
    pub hedges: u64,
    pub slab_bytes: u64,
    pub slab_high_water: u64,
    pub in_flight: u64,
    /// Documents in the slab.
    pub documents: u64,
}

#[derive(Default)]
struct Counters {
    stall_nanos: AtomicU64,
    fetches: AtomicU64,
    bytes_fetched: AtomicU64,
    bytes_served: AtomicU64,
    misses: AtomicU64,
    retries: AtomicU64,
    corrupt: AtomicU64,
    hedges: AtomicU64,
    in_flight: AtomicU64,
    /// Fetches started and not finished, waiting for a request slot or in flight.
    queued: AtomicU64,
    /// The number of the next fetch started.
    fetch_ids: AtomicU64,
}

enum SlotState {
    Fetching,
    Ready(Bytes),
    Failed(String),
}

struct Slot {
    /// Which fetch fills it: a range released and reserved again gets a new slot, which the
    /// earlier fetch, still running, must not fill (it may fail after the store came back).
    fetch: u64,
    /// Reservations not yet released: one per (step, stream) that needs the document.
    refs: u64,
    bytes: u64,
    state: SlotState,
}

#[derive(Default)]
struct Slab {
    /// By `(offset, len)`: a document and a part of it are different ranges.
    docs: HashMap<(u64, u32), Slot>,
    bytes: u64,
    high_water: u64,
    /// Streams reading through the window: each may reserve ahead up to its share.
    streams: u64,
}

/// What fetch tasks share with the window (never the runtime they run on, so that the last
/// reference is never dropped on one of its own threads).
struct Shared {
    source: Arc<dyn ChunkSource>,
    chunk_bytes: u64,
    width: u64,
    options: WindowOptions,
    slab: Mutex<Slab>,
    ready: Condvar,
    counters: Counters,
    permits: tokio::sync::Semaphore,
}

/// The slab of documents and the fetcher that fills it; shared by every stream of a plan.
pub struct Window {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Window {
    /// A window over the store's chunks of `chunk_bytes`, for tokens of `width` bytes.
    pub fn new(
        source: Arc<dyn ChunkSource>,
        chunk_bytes: u64,
        width: usize,
        options: WindowOptions,
    ) -> Result<Window> {
        if options.max_bytes == 0 || options.concurrency == 0 || options.attempts == 0 {
            return Err(PlanError::InvalidRequest(
                "a window needs a positive byte bound, concurrency and number of attempts".into(),
            ));
        }
        // A few threads suffice: fetches wait on the network, not the CPU.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokenlake-window")
            .enable_all()
            .build()
            .map_err(PlanError::io("starting the window's fetcher"))?;
        Ok(Window {
            shared: Arc::new(Shared {
                source,
                chunk_bytes: chunk_bytes.max(1),
                width: width as u64,
                options,
                slab: Mutex::new(Slab::default()),
                ready: Condvar::new(),
                counters: Counters::default(),
                permits: tokio::sync::Semaphore::new(options.concurrency),
            }),
            runtime: Some(runtime),
        })
    }

    /// The runtime the window fetches on; a paged plan index fetches its pages there too.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("running until dropped")
            .handle()
            .clone()
    }

    pub fn options(&self) -> &WindowOptions {
        &self.shared.options
    }

    fn slab(&self) -> MutexGuard<'_, Slab> {
        // A panic while holding the lock leaves counts that are still consistent.
        self.shared
            .slab
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Bytes a document takes in the slab.
    pub fn doc_bytes(&self, doc: &DocRef) -> u64 {
        u64::from(doc.len) * self.shared.width
    }

    /// Counts a stream in (its share of the bound shrinks as others join).
    pub(crate) fn join(&self) {
        self.slab().streams += 1;
    }

    pub(crate) fn leave(&self) {
        let mut slab = self.slab();
        slab.streams = slab.streams.saturating_sub(1);
        drop(slab);
        self.shared.ready.notify_all();
    }

    /// Fetches one stream may have queued (waiting for a request slot or in flight) before it
    /// reserves more ahead: two rounds of its share of the request slots. Beyond it, what a
    /// stream needs next would wait behind what it, or another stream, needs later.
    pub(crate) fn stream_queue(&self) -> u64 {
        let streams = self.slab().streams.max(1);
        (2 * self.shared.options.concurrency as u64 / streams).max(2)
    }

    /// Each stream's share of the bound for reserving ahead.
    pub(crate) fn share(&self) -> u64 {
        let streams = self.slab().streams.max(1);
        (self.shared.options.max_bytes / streams).max(1)
    }

    /// Reserves `docs` for one step and starts fetching those not in the slab. Without `force`
    /// nothing is reserved (`false`) when the new documents would take the slab past its bound;
    /// `force` is for the step a stream serves next, which must go through (its missing
    /// documents are counted as misses).
    pub(crate) fn reserve(&self, docs: &[DocRef], force: bool) -> bool {
        self.reserve_for(docs, force, None)
    }

    /// [`Window::reserve`], counting the fetches it starts in `queued` until they finish.
    pub(crate) fn reserve_for(
        &self,
        docs: &[DocRef],
        force: bool,
        queued: Option<&Arc<AtomicU64>>,
    ) -> bool {
        let mut slab = self.slab();
        let mut new: HashSet<(u64, u32)> = HashSet::new();
        let mut new_bytes = 0;
        for d in docs {
            if !slab.docs.contains_key(&(d.offset, d.len)) && new.insert((d.offset, d.len)) {
                new_bytes += self.doc_bytes(d);
            }
        }
        if !force && slab.bytes + new_bytes > self.shared.options.max_bytes {
            return false;
        }
        if force {
            self.shared
                .counters
                .misses
                .fetch_add(new.len() as u64, Ordering::Relaxed);
        }
        for d in docs {
            let bytes = self.doc_bytes(d);
            let slot = slab.docs.entry((d.offset, d.len)).or_insert_with(|| {
                let runtime = self.runtime.as_ref().expect("running until dropped");
                self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
                if let Some(queued) = queued {
                    queued.fetch_add(1, Ordering::Relaxed);
                }
                let id = self
                    .shared
                    .counters
                    .fetch_ids
                    .fetch_add(1, Ordering::Relaxed);
                runtime.spawn(fetch(self.shared.clone(), *d, id, queued.cloned()));
                Slot {
                    fetch: id,
                    refs: 0,
                    bytes,
                    state: SlotState::Fetching,
                }
            });
            slot.refs += 1;
        }
        slab.bytes += new_bytes;
        slab.high_water = slab.high_water.max(slab.bytes);
        true
    }

    /// Waits until every one of `docs` (reserved) is fetched and checked; the error of one
    /// that could not be.
    pub(crate) fn wait(&self, docs: &[DocRef]) -> Result<()> {
        let mut slab = self.slab();
        let mut since: Option<Instant> = None;
        loop {
            let mut pending = false;
            for d in docs {
                match slab.docs.get(&(d.offset, d.len)).map(|s| &s.state) {
                    Some(SlotState::Ready(_)) => {}
                    Some(SlotState::Fetching) => pending = true,
                    Some(SlotState::Failed(reason)) => {
                        return Err(PlanError::Fetch {
                            reason: reason.clone(),
                        });
                    }
                    None => {
                        return Err(PlanError::InvalidRequest(format!(
                            "document at token {} was read before it was reserved",
                            d.offset
                        )));
                    }
                }
            }
            if !pending {
                break;
            }
            since.get_or_insert_with(Instant::now);
            slab = self
                .shared
                .ready
                .wait(slab)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        if let Some(since) = since {
            self.shared
                .counters
                .stall_nanos
                .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The checked bytes of a reserved, fetched range (see [`Window::wait`]).
    pub(crate) fn bytes(&self, doc: &DocRef) -> Bytes {
        match self
            .slab()
            .docs
            .get(&(doc.offset, doc.len))
            .map(|s| &s.state)
        {
            Some(SlotState::Ready(bytes)) => bytes.clone(),
            _ => panic!(
                "tokens {} (+{}) read before they were fetched",
                doc.offset, doc.len
            ),
        }
    }

    pub(crate) fn served(&self, bytes: u64) {
        self.shared
            .counters
            .bytes_served
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Releases one step's reservation of `docs`; a document no step holds any more leaves
    /// the slab.
    pub(crate) fn release(&self, docs: &[DocRef]) {
        let mut slab = self.slab();
        for d in docs {
            let Some(slot) = slab.docs.get_mut(&(d.offset, d.len)) else {
                continue;
            };
            slot.refs -= 1;
            if slot.refs == 0 {
                let bytes = slot.bytes;
                slab.docs.remove(&(d.offset, d.len));
                slab.bytes -= bytes;
            }
        }
    }

    pub fn metrics(&self) -> WindowMetrics {
        let c = &self.shared.counters;
        let slab = self.slab();
        WindowMetrics {
            stall_seconds: c.stall_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            fetches: c.fetches.load(Ordering::Relaxed),
            bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            slab_bytes: slab.bytes,
            slab_high_water: slab.high_water,
            in_flight: c.in_flight.load(Ordering::Relaxed),
            documents: slab.docs.len() as u64,
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // A plan may be dropped on an async thread, where a runtime must not block to stop.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Fetches one range into its slot (if a step still holds that slot) and wakes the waiters.
async fn fetch(shared: Arc<Shared>, doc: DocRef, id: u64, queued: Option<Arc<AtomicU64>>) {
    let result = fetch_checked(&shared, doc).await;
    shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
    if let Some(queued) = queued {
        queued.fetch_sub(1, Ordering::Relaxed);
    }
    let mut slab = shared
        .slab
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if let Some(slot) = slab.docs.get_mut(&(doc.offset, doc.len))
        && slot.fetch == id
    {
        slot.state = match result {
            Ok(bytes) => SlotState::Ready(bytes),
            Err(reason) => SlotState::Failed(reason),
        };
    }
    drop(slab);
    shared.ready.notify_all();
}

/// The document's bytes, checked against its length and checksum; retried with exponential
/// backoff and jitter until the attempts run out.
async fn fetch_checked(shared: &Arc<Shared>, doc: DocRef) -> std::result::Result<Bytes, String> {
    let expected = u64::from(doc.len) * shared.width;
    let c = &shared.counters;
    let tallies = Tallies {
        retries: &c.retries,
        hedges: &c.hedges,
        corrupt: &c.corrupt,
    };
    let check = |bytes: &Bytes| {
        if bytes.len() as u64 == expected && xxh3_64(bytes) == doc.checksum {
            Ok(())
        } else {
            Err(format!(
                "its bytes did not match its checksum ({} bytes, {expected} expected)",
                bytes.len()
            ))
        }
    };
    retried(
        &shared.options,
        doc.offset ^ doc.checksum,
        tallies,
        || read_doc(shared.clone(), doc),
        check,
    )
    .await
    .map_err(|last| {
        format!(
            "document at token {} ({} tokens) of the token store could not be fetched {last}",
            doc.offset, doc.len
        )
    })
}

/// Where a fetch counts its retries, hedges and bodies that failed their check.
pub(crate) struct Tallies<'a> {
    pub retries: &'a AtomicU64,
    pub hedges: &'a AtomicU64,
    pub corrupt: &'a AtomicU64,
}

/// Bytes from `read` that `check` accepts: each attempt hedged past `hedge_after` and bounded
/// by `attempt_timeout`, retried with doubling backoff and full jitter (seeded by `seed`)
/// until `attempts` run out; then why the last attempt failed.
pub(crate) async fn retried<F, Fut>(
    o: &WindowOptions,
    seed: u64,
    tallies: Tallies<'_>,
    read: F,
    check: impl Fn(&Bytes) -> std::result::Result<(), String>,
) -> std::result::Result<Bytes, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<Bytes, String>>,
{
    let mut jitter = SplitMix64::new(seed);
    let mut last = String::new();
    for attempt in 0..o.attempts {
        if attempt > 0 {
            tallies.retries.fetch_add(1, Ordering::Relaxed);
            let base = o.backoff.saturating_mul(1 << (attempt - 1).min(10));
            // Full jitter: a burst of throttled requests does not come back in step.
            let delay = base.mul_f64(0.5 + jitter.below(1 << 20) as f64 / (1 << 21) as f64);
            tokio::time::sleep(delay.min(Duration::from_secs(10))).await;
        }
        match tokio::time::timeout(o.attempt_timeout, hedged(o, tallies.hedges, &read)).await {
            Ok(Ok(bytes)) => match check(&bytes) {
                Ok(()) => return Ok(bytes),
                Err(e) => {
                    tallies.corrupt.fetch_add(1, Ordering::Relaxed);
                    last = e;
                }
            },
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer in {:?}", o.attempt_timeout),
        }
    }
    Err(format!("in {} attempts: {last}", o.attempts))
}

/// One read; a second one races it when the first is slow.
async fn hedged<F, Fut>(
    o: &WindowOptions,
    hedges: &AtomicU64,
    read: &F,
) -> std::result::Result<Bytes, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<Bytes, String>>,
{
    let first = Box::pin(read());
    let timer = Box::pin(tokio::time::sleep(o.hedge_after));
    match select(first, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), first)) => {
            hedges.fetch_add(1, Ordering::Relaxed);
            let second = Box::pin(read());
            match select(first, second).await {
                Either::Left((result, _)) | Either::Right((result, _)) => result,
            }
        }
    }
}

/// The document's bytes, one ranged GET per chunk it spans.
async fn read_doc(shared: Arc<Shared>, doc: DocRef) -> std::result::Result<Bytes, String> {
    let w = shared.width;
    let (start, end) = (doc.offset * w, (doc.offset + u64::from(doc.len)) * w);
    if start == end {
        return Ok(Bytes::new());
    }
    let c = shared.chunk_bytes;
    let mut parts = Vec::new();
    for chunk in start / c..=(end - 1) / c {
        let from = start.max(chunk * c) - chunk * c;
        let to = end.min((chunk + 1) * c) - chunk * c;
        let _permit = shared
            .permits
            .acquire()
            .await
            .map_err(|_| "the window is closing".to_string())?;
        let counters = &shared.counters;
        counters.fetches.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let got = shared.source.read(chunk, from..to).await;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let got = got?;
        counters
            .bytes_fetched
            .fetch_add(got.len() as u64, Ordering::Relaxed);
        parts.push(got);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Bytes::from(parts.concat())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks held in memory.
    struct Chunks(Vec<Bytes>);

    impl ChunkSource for Chunks {
        fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture {
            let bytes = self.0[chunk as usize].slice(range.start as usize..range.end as usize);
            Box::pin(async move { Ok(bytes) })
        }
    }

    /// Options without hedging: tests that count requests must not race a second one, which
    /// a loaded machine can make slow enough to send.
    fn unhedged() -> WindowOptions {
        WindowOptions {
            hedge_after: Duration::from_secs(60),
            ..WindowOptions::default()
        }
    }

    fn chunks(tokens: &[u8], chunk_bytes: usize) -> Arc<dyn ChunkSource> {
        Arc::new(Chunks(
            tokens
                .chunks(chunk_bytes)
                .map(Bytes::copy_from_slice)
                .collect(),
        ))
    }

    /// Token offsets past 2³² (a store of more than 4 G tokens) address the right chunk and
    /// range: the window's arithmetic is u64 throughout. The chunk source here stands for
    /// chunks far into such a store without materialising the ones before.
    #[test]
    fn offsets_past_two_to_the_32_read_the_right_bytes() {
        struct Far {
            first_chunk: u64,
            chunk: Bytes,
        }
        impl ChunkSource for Far {
            fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture {
                let got = if chunk == self.first_chunk || chunk == self.first_chunk + 1 {
                    let base = (chunk - self.first_chunk) as usize * 16;
                    Ok(self
                        .chunk
                        .slice(base + range.start as usize..base + range.end as usize))
                } else {
                    Err(format!("chunk {chunk} is not there"))
                };
                Box::pin(async move { got })
            }
        }
        // Tokens of 4 bytes, chunks of 16 bytes: token 2^32 + 2 is in chunk 2^30, byte 8.
        let offset = (1u64 << 32) + 2;
        let bytes: Vec<u8> = (0..32u8).collect();
        let source = Arc::new(Far {
            first_chunk: 1 << 30,
            chunk: Bytes::from(bytes.clone()),
        });
        let doc_bytes = &bytes[8..20]; // spans two chunks
        let doc = DocRef {
            offset,
            len: 3,
            checksum: xxh3_64(doc_bytes),
        };
        let window = Window::new(source, 16, 4, unhedged()).unwrap();
        assert!(window.reserve(&[doc], true));
        window.wait(&[doc]).unwrap();
        assert_eq!(&window.bytes(&doc)[..], doc_bytes);
        let m = window.metrics();
        assert_eq!(m.fetches, 2, "one ranged GET per chunk the document spans");
        assert_eq!(m.bytes_fetched, 12);
    }

    #[test]
    fn the_bound_holds_ahead_and_gives_way_for_the_step_served_next() {
        let tokens: Vec<u8> = (0..=255u8).collect();
        let docs: Vec<DocRef> = (0..4)
            .map(|i| DocRef {
                offset: i * 16,
                len: 16,
                checksum: xxh3_64(&tokens[i as usize * 16..i as usize * 16 + 16]),
            })
            .collect();
        let options = WindowOptions {
            max_bytes: 32,
            ..WindowOptions::default()
        };
        let window = Window::new(chunks(&tokens, 64), 64, 1, options).unwrap();
        assert!(window.reserve(&docs[0..2], false));
        assert!(
            !window.reserve(&docs[2..3], false),
            "a third document ahead would pass the bound"
        );
        assert!(
            window.reserve(&docs[0..1], false),
            "a document already held costs nothing"
        );
        assert!(
            window.reserve(&docs[2..4], true),
            "the step served next goes through"
        );
        assert_eq!(window.metrics().misses, 2);
        window.wait(&docs).unwrap();
        window.release(&docs[0..1]);
        assert_eq!(window.metrics().slab_bytes, 64, "doc 0 is still held once");
        window.release(&docs);
        let m = window.metrics();
        assert_eq!((m.slab_bytes, m.documents), (0, 0));
        assert_eq!(m.slab_high_water, 64);
    }

    /// Two streams that need the same range hold it together: it is fetched once and leaves
    /// the slab when the last of them has served it.
    #[test]
    fn a_range_two_streams_reserve_is_fetched_once() {
        let tokens: Vec<u8> = (0..64u8).collect();
        let doc = DocRef {
            offset: 8,
            len: 8,
            checksum: xxh3_64(&tokens[8..16]),
        };
        let window = Window::new(chunks(&tokens, 64), 64, 1, unhedged()).unwrap();
        assert!(window.reserve(&[doc], false));
        assert!(window.reserve(&[doc], true));
        window.wait(&[doc]).unwrap();
        window.release(&[doc]);
        assert_eq!(
            window.metrics().documents,
            1,
            "still held by the other stream"
        );
        window.release(&[doc]);
        let m = window.metrics();
        assert_eq!((m.fetches, m.bytes_fetched, m.documents), (1, 8, 0));
        assert_eq!(m.misses, 0, "the second reservation found it reserved");
    }

    /// A range released while its fetch runs and reserved again gets a fetch of its own: the
    /// first one, failing late, leaves the new slot alone.
    #[test]
    fn a_stale_fetch_does_not_fill_the_slot_of_a_range_reserved_again() {
        type Answer = std::result::Result<Bytes, String>;
        struct Scripted(Mutex<std::collections::VecDeque<tokio::sync::oneshot::Receiver<Answer>>>);
        impl ChunkSource for Scripted {
            fn read(&self, _chunk: u64, _range: Range<u64>) -> ReadFuture {
                let next = self
                    .0
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("a scripted answer");
                Box::pin(async move { next.await.unwrap_or_else(|_| Err("dropped".into())) })
            }
        }
        let tokens: Vec<u8> = (0..16u8).collect();
        let doc = DocRef {
            offset: 0,
            len: 8,
            checksum: xxh3_64(&tokens[..8]),
        };
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let (second_tx, second_rx) = tokio::sync::oneshot::channel();
        let source = Arc::new(Scripted(Mutex::new([first_rx, second_rx].into())));
        let options = WindowOptions {
            attempts: 1,
            ..unhedged()
        };
        let window = Window::new(source, 64, 1, options).unwrap();
        assert!(window.reserve(&[doc], true));
        window.release(&[doc]);
        assert!(window.reserve(&[doc], true));
        // The first fetch fails after the range was reserved again; the second succeeds.
        first_tx.send(Err("503 Slow Down".into())).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        second_tx
            .send(Ok(Bytes::copy_from_slice(&tokens[..8])))
            .unwrap();
        window.wait(&[doc]).unwrap();
        assert_eq!(&window.bytes(&doc)[..], &tokens[..8]);
    }

    /// A body corrupted once is counted, fetched again and served right.
    #[test]
    fn a_corrupted_body_is_counted_and_fetched_again() {
        struct CorruptOnce {
            bytes: Bytes,
            reads: AtomicU64,
        }
        impl ChunkSource for CorruptOnce {
            fn read(&self, _chunk: u64, range: Range<u64>) -> ReadFuture {
                let body = self.bytes.slice(range.start as usize..range.end as usize);
                let first = self.reads.fetch_add(1, Ordering::Relaxed) == 0;
                Box::pin(async move {
                    Ok(if first {
                        let mut bad = body.to_vec();
                        bad[3] ^= 1;
                        Bytes::from(bad)
                    } else {
                        body
                    })
                })
            }
        }
        let tokens: Vec<u8> = (0..32u8).collect();
        let doc = DocRef {
            offset: 4,
            len: 8,
            checksum: xxh3_64(&tokens[4..12]),
        };
        let options = WindowOptions {
            backoff: Duration::from_millis(1),
            ..unhedged()
        };
        let source = Arc::new(CorruptOnce {
            bytes: Bytes::from(tokens.clone()),
            reads: AtomicU64::new(0),
        });
        let window = Window::new(source, 64, 1, options).unwrap();
        assert!(window.reserve(&[doc], true));
        window.wait(&[doc]).unwrap();
        assert_eq!(&window.bytes(&doc)[..], &tokens[4..12]);
        let m = window.metrics();
        assert_eq!((m.corrupt, m.retries, m.fetches), (1, 1, 2));
    }

    #[test]
    fn a_document_that_never_matches_its_checksum_fails_its_stream_without_being_served() {
        let tokens = vec![7u8; 64];
        let doc = DocRef {
            offset: 0,
            len: 8,
            checksum: 12345,
        };
        let options = WindowOptions {
            attempts: 3,
            backoff: Duration::from_millis(1),
            ..WindowOptions::default()
        };
        let window = Window::new(chunks(&tokens, 64), 64, 1, options).unwrap();
        assert!(window.reserve(&[doc], true));
        let err = window.wait(&[doc]).unwrap_err().to_string();
        assert!(err.contains("in 3 attempts"), "{err}");
        assert!(err.contains("checksum"), "{err}");
        let m = window.metrics();
        assert_eq!((m.corrupt, m.retries), (3, 2));
    }

    #[test]
    fn horizons_parse_as_samples_seconds_or_unbounded() {
        assert_eq!("64".parse::<Horizon>(), Ok(Horizon::Samples(64)));
        assert_eq!("2.5s".parse::<Horizon>(), Ok(Horizon::Seconds(2.5)));
        assert_eq!("unbounded".parse::<Horizon>(), Ok(Horizon::Unbounded));
        for bad in ["0", "-3", "0s", "fast", ""] {
            assert!(bad.parse::<Horizon>().is_err(), "{bad:?}");
        }
    }
}
