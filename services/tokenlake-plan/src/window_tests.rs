//! Window mode against full mode: over random recipes, world sizes, micro-batches, cursors,
//! horizons and bounds, and through a store that is slow, throttles, truncates and corrupts,
//! a windowed plan streams exactly the full cache's bytes, spans and cursors.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::cursor::Cursor;
use crate::plan::Plan;
use crate::plan_index::{IndexSource, Layout, PagedTarget, PlanIndex, page_sums};
use crate::proptests::{case, plan_or_expected_error, read_all};
use crate::publish::COMPLETE_MARKER;
use crate::stream::{MicroBatch, RankSpec, RankStream};
use crate::window::{ChunkSource, Horizon, ReadFuture, Window, WindowOptions};

/// What a store does wrong, per request, before it answers right.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// A throttling answer (503 Slow Down).
    Throttle,
    /// A body cut short.
    Truncate,
    /// A body with one byte changed.
    Corrupt,
    /// The right bytes, late (past the hedging threshold).
    Slow,
}

/// A token store's chunks in memory, with faults injected: each distinct read fails
/// `faults_per_read` times (kinds cycling from a seed) before it succeeds.
struct FaultyChunks {
    chunks: Vec<Bytes>,
    faults_per_read: u32,
    seed: u64,
    seen: Mutex<HashMap<(u64, u64, u64), u32>>,
    injected: Mutex<Vec<Fault>>,
}

impl FaultyChunks {
    fn new(tokens: &[u8], chunk_bytes: usize, faults_per_read: u32, seed: u64) -> FaultyChunks {
        FaultyChunks {
            chunks: tokens
                .chunks(chunk_bytes.max(1))
                .map(Bytes::copy_from_slice)
                .collect(),
            faults_per_read,
            seed,
            seen: Mutex::new(HashMap::new()),
            injected: Mutex::new(Vec::new()),
        }
    }
}

impl ChunkSource for FaultyChunks {
    fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture {
        let body = self.chunks[chunk as usize].slice(range.start as usize..range.end as usize);
        let key = (chunk, range.start, range.end);
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(key).or_default();
            *n += 1;
            *n - 1
        };
        let fault = (n < self.faults_per_read).then(|| {
            let kinds = [
                Fault::Throttle,
                Fault::Truncate,
                Fault::Corrupt,
                Fault::Slow,
            ];
            let pick = crate::rng::mix64(self.seed ^ chunk ^ (range.start << 20) ^ u64::from(n));
            kinds[(pick % 4) as usize]
        });
        if let Some(fault) = fault {
            self.injected.lock().unwrap().push(fault);
        }
        Box::pin(async move {
            match fault {
                None => Ok(body),
                Some(Fault::Throttle) => Err("503 Slow Down".to_string()),
                Some(Fault::Truncate) => Ok(body.slice(..body.len() / 2)),
                Some(Fault::Corrupt) if body.is_empty() => Err("connection reset".to_string()),
                Some(Fault::Corrupt) => {
                    let mut bad = body.to_vec();
                    bad[0] ^= 0x5a;
                    Ok(Bytes::from(bad))
                }
                Some(Fault::Slow) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(body)
                }
            }
        })
    }
}

/// A published plan index is one object: its reads are reads of "chunk" 0.
impl IndexSource for FaultyChunks {
    fn read(&self, range: Range<u64>) -> ReadFuture {
        ChunkSource::read(self, 0, range)
    }
}

fn plan_dir(root: &Path) -> PathBuf {
    std::fs::read_dir(root.join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("one plan")
}

/// `plan`'s twin that reads its tokens through a window over `source`.
fn windowed(
    plan: &Plan,
    dir: &Path,
    source: Arc<dyn ChunkSource>,
    chunk_bytes: u64,
    options: WindowOptions,
) -> Plan {
    let window = Window::new(source, chunk_bytes, plan.token_width().bytes(), options).unwrap();
    Plan::open_windowed(&plan_dir(dir), plan.data().clone(), Arc::new(window)).unwrap()
}

/// As [`windowed`], over the same plan built again from the records alone (as a node without
/// the tokens builds it): no piece checksums, so parts of documents are fetched whole.
fn windowed_from_records(
    plan: &Plan,
    dir: &Path,
    source: Arc<dyn ChunkSource>,
    chunk_bytes: u64,
    options: WindowOptions,
) -> Plan {
    let text = std::fs::read_to_string(dir.join("recipe.toml")).unwrap();
    let recipe = crate::recipe::Recipe::parse(&text, "case.toml").unwrap();
    let index = crate::token_cache::TokenCache::open_index(&dir.join("tokens")).unwrap();
    let target = dir.join("from-records");
    if !target.exists() {
        crate::build::build_plan(&recipe, &index, plan.id(), &target, &Default::default()).unwrap();
    }
    let window = Window::new(source, chunk_bytes, plan.token_width().bytes(), options).unwrap();
    let opened = Plan::open_windowed(&target, plan.data().clone(), Arc::new(window)).unwrap();
    assert!(!opened.manifest().piece_checksums);
    opened
}

#[allow(clippy::too_many_arguments)]
/// `plan`'s twin in window mode on a cold node: its index is read page by page (pages of
/// `page` bytes) from `index`, an in-memory copy of the published one, and with `fill` the
/// rest is downloaded in the background into `<dir>/cold/`. Returns where the whole index
/// lands.
fn paged(
    plan: &Plan,
    dir: &Path,
    source: Arc<dyn ChunkSource>,
    chunk_bytes: u64,
    options: WindowOptions,
    index: Arc<dyn IndexSource>,
    page: u64,
    fill: bool,
) -> (Plan, PathBuf) {
    let window =
        Arc::new(Window::new(source, chunk_bytes, plan.token_width().bytes(), options).unwrap());
    let from = plan_dir(dir);
    let bytes = std::fs::read(from.join("plan.idx")).unwrap();
    let manifest = std::fs::read(from.join(COMPLETE_MARKER)).unwrap();
    let target = dir.join("cold").join(from.file_name().unwrap());
    let at = PagedTarget {
        tmp: crate::publish::temp_dir_for(&target).unwrap(),
        target: target.clone(),
        manifest: manifest.clone(),
    };
    let sums = page_sums(&bytes, page);
    let runtime = window.runtime();
    let layout = Layout {
        len: bytes.len() as u64,
        page,
        sums: &sums,
    };
    let index = PlanIndex::paged(index, layout, at, options, &runtime, fill).unwrap();
    let opened = Plan::open_paged(
        &target.join(COMPLETE_MARKER),
        &manifest,
        index,
        plan.data().clone(),
        window,
    )
    .unwrap();
    (opened, target)
}

/// The plan index of the plan built in `dir`, as one object for [`paged`].
fn index_object(dir: &Path, faults: u32, seed: u64) -> Arc<FaultyChunks> {
    let bytes = std::fs::read(plan_dir(dir).join("plan.idx")).unwrap();
    Arc::new(FaultyChunks::new(&bytes, usize::MAX, faults, seed))
}

fn all_tokens(plan: &Plan) -> Vec<u8> {
    let cache = plan.token_cache().unwrap();
    cache.token_bytes(0, cache.tokens()).to_vec()
}

type Step = (u64, Vec<u64>, Vec<u8>, Vec<crate::plan::Span>, Vec<u32>);

/// Every step of a rank from `cursor`: indexes, tokens, spans, span offsets; and the cursor.
fn steps(plan: &Plan, spec: RankSpec, cursor: Option<&Cursor>, limit: u64) -> (Vec<Step>, Cursor) {
    let mut stream = RankStream::new(plan, spec, cursor).unwrap();
    let mut batch = MicroBatch::default();
    let mut out = Vec::new();
    while (out.len() as u64) < limit && stream.next_batch(&mut batch).unwrap() {
        out.push((
            batch.step,
            batch.samples.iter().map(|m| m.index).collect(),
            batch.tokens.clone(),
            batch.spans.clone(),
            batch.span_offsets.clone(),
        ));
    }
    (out, stream.cursor())
}

fn options(max_bytes: u64, horizon: Horizon) -> WindowOptions {
    WindowOptions {
        max_bytes,
        horizon,
        concurrency: 4,
        hedge_after: Duration::from_millis(5),
        // Each part of a document may fail its first `faults` reads: a document of up to five
        // chunk parts (the cases' documents under chunks of 16 bytes or more) needs at most
        // ten failed attempts.
        attempts: 16,
        backoff: Duration::from_millis(1),
        attempt_timeout: Duration::from_secs(10),
    }
}

fn horizons() -> impl Strategy<Value = Horizon> {
    prop_oneof![
        Just(Horizon::Samples(1)),
        (2u64..40).prop_map(Horizon::Samples),
        Just(Horizon::Seconds(0.5)),
        Just(Horizon::Unbounded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn window_mode_streams_the_full_cache_exactly(
        case in case(),
        world in 1u32..5,
        micro_batch in 1u32..4,
        cut in 0u64..50,
        horizon in horizons(),
        max_bytes in prop_oneof![Just(1u64), 2u64..200, Just(1u64 << 30)],
        chunk_bytes in prop_oneof![Just(16u64), 17u64..64, Just(1u64 << 20)],
        faults in 0u32..3,
        seed in any::<u64>(),
        from_records in any::<bool>(),
        index_page in prop_oneof![Just(0u64), 1u64..300, Just(crate::plan_index::PAGE)],
        fill in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(full) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        std::fs::write(dir.path().join("recipe.toml"), crate::proptests::recipe_text(&case)).unwrap();
        prop_assert!(full.manifest().piece_checksums, "a plan built over real tokens holds them");
        let source = Arc::new(FaultyChunks::new(&all_tokens(&full), chunk_bytes as usize, faults, seed));
        let opts = options(max_bytes, horizon);
        // A cold node reads the index page by page (`index_page` > 0), with or without the
        // background fill, through a store that fails as the chunks' does.
        let window = if from_records {
            windowed_from_records(&full, dir.path(), source.clone(), chunk_bytes, opts)
        } else if index_page > 0 {
            let index = index_object(dir.path(), faults, seed ^ 1);
            paged(&full, dir.path(), source.clone(), chunk_bytes, opts, index, index_page, fill).0
        } else {
            windowed(&full, dir.path(), source.clone(), chunk_bytes, opts)
        };
        let cursor = full.cursor(cut.min(full.total_samples()));
        for rank in 0..world {
            let spec = RankSpec::new(rank, world, micro_batch).unwrap();
            for from in [None, Some(&cursor)] {
                let (expected, expected_end) = steps(&full, spec, from, u64::MAX);
                let (got, end) = steps(&window, spec, from, u64::MAX);
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(end, expected_end);
            }
            // A stream dropped half-way gives back what it reserved ahead.
            let _ = steps(&window, spec, None, 1);
        }
        let m = window.window().unwrap().metrics();
        prop_assert_eq!((m.slab_bytes, m.documents), (0, 0), "every reservation was released");
        prop_assert!(m.bytes_served <= full.total_samples() * full.sample_bytes() as u64 * 4);
        // Every fault was met and none reached a batch (the streams are equal). Whether a bad
        // body is counted depends on the race a hedge or an earlier failed part wins, so that
        // count is checked where nothing races (`window.rs`).
        if faults > 0 && m.fetches > 0 {
            prop_assert!(!source.injected.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn random_access_through_a_window_reads_the_full_cache(case in case(), faults in 0u32..2, seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(full) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let source = Arc::new(FaultyChunks::new(&all_tokens(&full), 7, faults, seed));
        let window = windowed(&full, dir.path(), source, 7, options(64, Horizon::Unbounded));
        prop_assert_eq!(read_all(&window), read_all(&full));
    }
}

fn lockstep(plan: &Plan, full: &Plan, ranks: &[u32], world: u32) {
    let spec = |rank| RankSpec::new(rank, world, 1).unwrap();
    let mut windowed: Vec<RankStream<'_>> = ranks
        .iter()
        .map(|&r| RankStream::new(plan, spec(r), None).unwrap())
        .collect();
    let mut local: Vec<RankStream<'_>> = ranks
        .iter()
        .map(|&r| RankStream::new(full, spec(r), None).unwrap())
        .collect();
    let (mut got, mut want) = (MicroBatch::default(), MicroBatch::default());
    loop {
        for (w, l) in windowed.iter_mut().zip(local.iter_mut()) {
            let more = w.next_batch(&mut got).unwrap();
            assert_eq!(more, l.next_batch(&mut want).unwrap());
            if !more {
                return;
            }
            assert_eq!(got.tokens, want.tokens);
        }
    }
}

/// Ranks of one node share one window and its bound: each reserves ahead up to its share, both
/// stream the full cache's bytes, and the slab never passes the bound.
#[test]
fn ranks_of_one_node_share_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 160);
    let bound = 600;
    let source = Arc::new(FaultyChunks::new(&all_tokens(&full), 1 << 20, 0, 0));
    let shared = windowed(
        &full,
        dir.path(),
        source,
        1 << 20,
        options(bound, Horizon::Unbounded),
    );
    lockstep(&shared, &full, &[0, 1, 2], 3);
    let m = shared.window().unwrap().metrics();
    assert!(m.slab_high_water <= bound, "{m:?}");
    assert_eq!((m.slab_bytes, m.documents), (0, 0));
}

/// A plan built over the tokens names each part of a document a sample reads, with its
/// checksum: a window fetches the tokens served and no others. Built from the records alone,
/// it fetches the whole document for each part.
#[test]
fn parts_of_documents_are_fetched_alone_when_the_plan_holds_their_checksums() {
    // One epoch: every window cuts a document.
    let dir = tempfile::tempdir().unwrap();
    let (case, full) = cut_documents(dir.path(), 80);
    std::fs::write(
        dir.path().join("recipe.toml"),
        crate::proptests::recipe_text(&case),
    )
    .unwrap();
    let tokens = all_tokens(&full);
    let source = || Arc::new(FaultyChunks::new(&tokens, 1 << 20, 0, 0));
    let spec = RankSpec::new(0, 1, 1).unwrap();
    // One step ahead: a document is not held from one of its parts' samples to the next. No
    // hedges: a second request racing the first may bring the same bytes twice.
    let opts = WindowOptions {
        hedge_after: Duration::from_secs(60),
        ..options(1 << 20, Horizon::Samples(1))
    };

    let parts = windowed(&full, dir.path(), source(), 1 << 20, opts);
    let (a, _) = steps(&parts, spec, None, u64::MAX);
    let (b, _) = steps(&full, spec, None, u64::MAX);
    assert_eq!(a, b);
    let m = parts.window().unwrap().metrics();
    assert_eq!(m.bytes_fetched, m.bytes_served, "{m:?}");

    let whole = windowed_from_records(&full, dir.path(), source(), 1 << 20, opts);
    let (c, _) = steps(&whole, spec, None, u64::MAX);
    assert_eq!(c, b);
    let m = whole.window().unwrap().metrics();
    assert!(m.bytes_fetched > m.bytes_served * 3 / 2, "{m:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A plan built from the records alone and then given its piece checksums by a pass over
    /// the store's chunks is, byte for byte, the plan built where the tokens are.
    #[test]
    fn a_pass_over_the_chunks_gives_a_plan_built_without_tokens_its_piece_checksums(
        case in case(),
        chunk_bytes in prop_oneof![Just(2u64), 4u64..64, Just(1u64 << 20)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(full) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let recipe = crate::recipe::Recipe::parse(&crate::proptests::recipe_text(&case), "case.toml").unwrap();
        let index = crate::token_cache::TokenCache::open_index(&dir.path().join("tokens")).unwrap();
        let target = dir.path().join("from-records");
        crate::build::build_plan(&recipe, &index, full.id(), &target, &Default::default()).unwrap();
        let chunk_bytes = chunk_bytes - chunk_bytes % 2;
        let source = Arc::new(FaultyChunks::new(&all_tokens(&full), chunk_bytes as usize, 0, 0));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime
            .block_on(crate::piece_sums::add_piece_checksums(&target, source, chunk_bytes, &Default::default()))
            .unwrap();
        let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
        let built = plan_dir(dir.path());
        prop_assert!(read(&built, "plan.idx") == read(&target, "plan.idx"), "plan.idx differs");
        let manifest = |dir: &Path| -> serde_json::Value {
            serde_json::from_slice(&read(dir, "manifest.json")).unwrap()
        };
        prop_assert_eq!(manifest(&built), manifest(&target));
    }
}

/// One concat component of 64 documents of 41 units under windows of 32 (most documents feed
/// two or three samples), `samples` long, planned over a full cache in `dir`.
fn cut_documents(dir: &Path, samples: u64) -> (crate::proptests::Case, Plan) {
    let docs: Vec<Vec<u16>> = (0..64u16).map(|d| vec![3 + d; 40]).collect();
    let case = crate::proptests::Case::single_concat(docs, 32, samples);
    let order: Vec<usize> = (0..case.docs.len()).collect();
    let full = plan_or_expected_error(&case, dir, &order).unwrap();
    (case, full)
}

/// A store that answers nothing while `down` is set.
struct Outage {
    chunks: Vec<Bytes>,
    down: std::sync::atomic::AtomicBool,
}

impl ChunkSource for Outage {
    fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture {
        let got = if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            Err("503 Slow Down".to_string())
        } else {
            Ok(self.chunks[chunk as usize].slice(range.start as usize..range.end as usize))
        };
        Box::pin(async move { got })
    }
}

/// A step whose ranges could not be fetched fails; asked again once the store answers, the
/// stream gives that same step, and then the rest, exactly.
#[test]
fn a_failed_step_is_served_again_when_the_store_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 80);
    let source = Arc::new(Outage {
        chunks: vec![Bytes::from(all_tokens(&full))],
        down: std::sync::atomic::AtomicBool::new(false),
    });
    let opts = WindowOptions {
        attempts: 2,
        ..options(1 << 20, Horizon::Unbounded)
    };
    let windowed = windowed(&full, dir.path(), source.clone(), 1 << 20, opts);
    let spec = RankSpec::new(0, 1, 2).unwrap();
    let (mut stream, mut local) = (
        RankStream::new(&windowed, spec, None).unwrap(),
        RankStream::new(&full, spec, None).unwrap(),
    );
    let (mut got, mut want) = (MicroBatch::default(), MicroBatch::default());
    assert!(stream.next_batch(&mut got).unwrap());
    assert!(local.next_batch(&mut want).unwrap());
    assert_eq!(got.tokens, want.tokens);
    // The store goes down; ranges reserved ahead may already be in. Fail a step that needs
    // one not yet fetched: drain what is held, then ask once more.
    source
        .down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failed = false;
    for _ in 0..40 {
        match stream.next_batch(&mut got) {
            Ok(more) => {
                assert!(more);
                assert!(local.next_batch(&mut want).unwrap());
                assert_eq!(got.tokens, want.tokens);
            }
            Err(e) => {
                assert!(e.to_string().contains("503"), "{e}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the outage reached a step");
    source
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    while local.next_batch(&mut want).unwrap() {
        assert!(stream.next_batch(&mut got).unwrap());
        assert_eq!((got.step, &got.tokens), (want.step, &want.tokens));
    }
    assert!(!stream.next_batch(&mut got).unwrap());
    assert_eq!(stream.cursor(), local.cursor());
    drop(stream);
    let m = windowed.window().unwrap().metrics();
    assert_eq!((m.slab_bytes, m.documents), (0, 0));
}

/// Waits until a paged index reports itself whole, for at most ten seconds.
fn wait_whole(plan: &Plan) -> crate::plan_index::IndexMetrics {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = plan.index_metrics().expect("a paged index");
        if m.complete || std::time::Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A cold node streams from an index it reads page by page, with the rest downloading behind;
/// once whole, the index is the published one, in the node's cache, and a later open maps it.
#[test]
fn a_cold_node_streams_from_index_pages_then_keeps_the_whole_index() {
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 160);
    let tokens = Arc::new(FaultyChunks::new(&all_tokens(&full), 1 << 20, 0, 0));
    let opts = options(1 << 20, Horizon::Unbounded);
    let index = index_object(dir.path(), 1, 7);
    let (cold, target) = paged(
        &full,
        dir.path(),
        tokens.clone(),
        1 << 20,
        opts,
        index,
        256,
        true,
    );
    let spec = RankSpec::new(1, 2, 2).unwrap();
    assert_eq!(
        steps(&cold, spec, None, u64::MAX),
        steps(&full, spec, None, u64::MAX)
    );
    let m = wait_whole(&cold);
    assert!(m.complete, "{m:?}");
    assert_eq!(m.bytes_present, m.bytes);
    assert!(m.retries > 0, "each read failed once first: {m:?}");
    let published = std::fs::read(plan_dir(dir.path()).join("plan.idx")).unwrap();
    assert_eq!(std::fs::read(target.join("plan.idx")).unwrap(), published);
    assert!(target.join(COMPLETE_MARKER).is_file());
    // Reads now go through the map, and so does a later open.
    assert_eq!(
        steps(&cold, spec, None, u64::MAX),
        steps(&full, spec, None, u64::MAX)
    );
    let window = Window::new(tokens, 1 << 20, full.token_width().bytes(), opts).unwrap();
    let warm = Plan::open_windowed(&target, full.data().clone(), Arc::new(window)).unwrap();
    assert!(warm.index_metrics().is_none());
    assert_eq!(
        steps(&warm, spec, None, u64::MAX),
        steps(&full, spec, None, u64::MAX)
    );
}

/// A published index whose every first answer is corrupted: each page is fetched again and
/// checked, never read as it came.
#[test]
fn a_corrupted_index_page_is_fetched_again_never_read() {
    struct CorruptFirst {
        bytes: Bytes,
        seen: Mutex<std::collections::HashSet<(u64, u64)>>,
    }
    impl IndexSource for CorruptFirst {
        fn read(&self, range: Range<u64>) -> ReadFuture {
            let body = self.bytes.slice(range.start as usize..range.end as usize);
            let first = self.seen.lock().unwrap().insert((range.start, range.end));
            Box::pin(async move {
                let mut body = body.to_vec();
                if first {
                    body[0] ^= 0xff;
                }
                Ok(Bytes::from(body))
            })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 120);
    let bytes = Bytes::from(std::fs::read(plan_dir(dir.path()).join("plan.idx")).unwrap());
    let index = Arc::new(CorruptFirst {
        bytes,
        seen: Mutex::default(),
    });
    let tokens = Arc::new(FaultyChunks::new(&all_tokens(&full), 1 << 20, 0, 0));
    // No hedges and no fill: every page is fetched once by the read that needs it.
    let opts = WindowOptions {
        hedge_after: Duration::from_secs(60),
        ..options(1 << 20, Horizon::Samples(1))
    };
    let (cold, _) = paged(&full, dir.path(), tokens, 1 << 20, opts, index, 128, false);
    let spec = RankSpec::new(0, 1, 1).unwrap();
    assert_eq!(
        steps(&cold, spec, None, u64::MAX),
        steps(&full, spec, None, u64::MAX)
    );
    let m = cold.index_metrics().unwrap();
    assert_eq!(m.corrupt, m.page_fetches, "{m:?}");
    assert!(m.page_fetches > 1 && !m.complete, "{m:?}");
}

/// Index pages that cannot be fetched fail the stream as the store being unavailable, with
/// the bytes named; nothing is served.
#[test]
fn an_index_the_store_does_not_give_fails_the_stream_as_unavailable() {
    struct Down;
    impl IndexSource for Down {
        fn read(&self, _range: Range<u64>) -> ReadFuture {
            Box::pin(async { Err("503 Slow Down".to_string()) })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 40);
    let tokens = Arc::new(FaultyChunks::new(&all_tokens(&full), 1 << 20, 0, 0));
    let opts = WindowOptions {
        attempts: 2,
        ..options(1 << 20, Horizon::Unbounded)
    };
    let (cold, _) = paged(
        &full,
        dir.path(),
        tokens,
        1 << 20,
        opts,
        Arc::new(Down),
        128,
        true,
    );
    let mut stream = RankStream::new(&cold, RankSpec::new(0, 1, 1).unwrap(), None).unwrap();
    let err = stream.next_batch(&mut MicroBatch::default()).unwrap_err();
    assert!(
        matches!(&err, crate::PlanError::Fetch { reason } if reason.contains("plan index bytes")),
        "{err}"
    );
    use tokenlake_schemas::ServiceError;
    assert_eq!(err.error_code(), tokenlake_schemas::ErrorCode::Unavailable);
}

/// A look-ahead read does not wait for index pages: it starts their GETs and steps aside; a
/// read that waits gets them.
#[test]
fn reads_without_waiting_start_index_pages_and_step_aside() {
    struct Gated {
        bytes: Bytes,
        open: Arc<std::sync::atomic::AtomicBool>,
    }
    impl IndexSource for Gated {
        fn read(&self, range: Range<u64>) -> ReadFuture {
            let body = self.bytes.slice(range.start as usize..range.end as usize);
            let open = self.open.clone();
            Box::pin(async move {
                while !open.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(body)
            })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = cut_documents(dir.path(), 40);
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let index = Arc::new(Gated {
        bytes: Bytes::from(std::fs::read(plan_dir(dir.path()).join("plan.idx")).unwrap()),
        open: open.clone(),
    });
    let tokens = Arc::new(FaultyChunks::new(&all_tokens(&full), 1 << 20, 0, 0));
    let opts = options(1 << 20, Horizon::Unbounded);
    let (cold, _) = paged(&full, dir.path(), tokens, 1 << 20, opts, index, 64, false);
    let pending = crate::plan_index::without_waiting(|| cold.locate(3));
    assert!(
        matches!(pending, Err(crate::PlanError::IndexPending)),
        "{pending:?}"
    );
    assert!(cold.index_metrics().unwrap().page_fetches > 0);
    open.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(cold.locate(3).unwrap(), full.locate(3).unwrap());
}
