//! A plan's index as the plan reads it: memory-mapped whole, or read page by page while it
//! downloads.
//!
//! A node that has the whole index maps it (`mmap.rs`). A cold node in window mode does not
//! wait for the whole index before its first batch. The index is about 55 bytes per document
//! and epoch: 111 GB at 2·10⁹ documents, two minutes at 1 GB/s. Instead the node:
//! - reads the pages its steps need from the index published beside the token store, by
//!   ranged GETs of [`PAGE`] bytes, each checked against the page checksums published with
//!   it (`plan.idx.pages`, 8 bytes per page: 1/8192 of the index);
//! - meanwhile downloads the rest in order in the background, in parts of [`FILL_PART`];
//! - once every page is there, renames the file into the node's cache like a downloaded index
//!   and maps it, and so do later opens.
//!
//! A cold node's first batch then waits for a handful of pages whatever the index's size.
//!
//! Pages of the file being filled are read with `pread` into a buffer, never through a
//! mapping, so no reference ever covers bytes that are still being written.

use std::cell::Cell;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{PlanError, Result};
use crate::mmap::MappedFile;
use crate::window::{ReadFuture, Tallies, WindowOptions, retried};

/// Bytes of one page: what a step's random reads (a window's start, a few document entries)
/// fetch on a cold node. Latency, not size, dominates a GET this small.
pub const PAGE: u64 = 64 << 10;
/// Bytes of one background GET, and how many run at once: 16 × 8 MiB held in memory.
pub const FILL_PART: u64 = 8 << 20;
const FILL_GETS: usize = 16;
/// Page GETs in flight at once per index. A read's pages are a run of one or two (its reads
/// are a few words, or a blend block of 256 bytes), so reads hold at most 64 × 128 KiB; the
/// fill's parts take permits too, so its 16 × 8 MiB are within the same count.
const PAGE_GETS: usize = 64;

/// Name of the page checksums published beside a plan index.
pub const PAGE_SUMS: &str = "plan.idx.pages";

/// The XXH3-64 of each `page` bytes of `index` (the last page may be shorter),
/// little-endian; published with [`PAGE`].
pub fn page_sums(index: &[u8], page: u64) -> Vec<u8> {
    index
        .chunks(page as usize)
        .flat_map(|page| xxh3_64(page).to_le_bytes())
        .collect()
}

/// [`page_sums`] of the file at `path`, read a part at a time.
pub(crate) fn page_sums_of_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file =
        File::open(path).map_err(PlanError::io(format!("opening {}", path.display())))?;
    let mut sums = Vec::new();
    let mut part = vec![0u8; FILL_PART as usize];
    loop {
        // Fill the part unless the file ends first: every page but the last is whole.
        let mut got = 0;
        while got < part.len() {
            match file.read(&mut part[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PlanError::io(format!("reading {}", path.display()))(e)),
            }
        }
        sums.extend(page_sums(&part[..got], PAGE));
        if got < part.len() {
            return Ok(sums);
        }
    }
}

/// Ranged reads of a published plan index: bytes `range` of its `plan.idx`.
pub trait IndexSource: Send + Sync + 'static {
    fn read(&self, range: Range<u64>) -> ReadFuture;
}

/// A plan's index.
pub(crate) enum PlanIndex {
    Mapped(MappedFile),
    Paged(PagedHandle),
    /// A mapped index that notes every read (`Plan::index_reads`, for `bench window`); a
    /// variant of its own so that other reads pay nothing for it.
    Recording(MappedFile, std::sync::Mutex<Vec<Range<u64>>>),
}

impl PlanIndex {
    /// Bytes of the index.
    pub(crate) fn len(&self) -> u64 {
        match self {
            PlanIndex::Mapped(map) | PlanIndex::Recording(map, _) => map.bytes().len() as u64,
            PlanIndex::Paged(paged) => paged.0.len,
        }
    }

    /// The whole index mapped, once it is on this node.
    #[inline]
    pub(crate) fn mapped(&self) -> Option<&MappedFile> {
        match self {
            PlanIndex::Mapped(map) | PlanIndex::Recording(map, _) => Some(map),
            PlanIndex::Paged(paged) => paged.0.whole.get(),
        }
    }

    /// Calls `f` with bytes `offset..offset + len` of the index. A paged index fetches the
    /// pages it lacks first; inside [`without_waiting`] it only starts fetching them and
    /// answers [`PlanError::IndexPending`].
    #[inline]
    pub(crate) fn read<R>(&self, offset: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        if let PlanIndex::Recording(_, reads) = self {
            reads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(offset..offset + len);
        }
        if let Some(map) = self.mapped() {
            return Ok(f(map.slice(offset, len)?));
        }
        let PlanIndex::Paged(paged) = self else {
            unreachable!("a mapped index answered above")
        };
        let bytes = paged.0.read(offset, len)?;
        Ok(f(&bytes))
    }

    /// The little-endian u64 at byte `offset`.
    #[inline]
    pub(crate) fn u64_at(&self, offset: u64) -> Result<u64> {
        self.read(offset, 8, |b| {
            u64::from_le_bytes(b.try_into().expect("8 bytes read"))
        })
    }

    /// Starts loading the bytes at `offset`: a CPU prefetch on a mapped index, the page's GET
    /// on a paged one. Never waits and never fails; the read that follows reports any error.
    #[inline]
    pub(crate) fn prefetch(&self, offset: u64) {
        match self.mapped() {
            Some(map) => {
                if let Some(bytes) = map.bytes().get(offset as usize..) {
                    crate::mmap::prefetch(bytes);
                }
            }
            None => {
                if let PlanIndex::Paged(paged) = self
                    && offset < paged.0.len
                {
                    let page = offset / paged.0.page;
                    let _ = paged.0.ensure(page..page + 1, false);
                }
            }
        }
    }

    /// What the paged index did; `None` for an index mapped from the start.
    pub(crate) fn metrics(&self) -> Option<IndexMetrics> {
        match self {
            PlanIndex::Mapped(_) | PlanIndex::Recording(..) => None,
            PlanIndex::Paged(paged) => Some(paged.0.metrics()),
        }
    }

    /// Where the index lives, for error messages.
    pub(crate) fn path(&self) -> &Path {
        match self {
            PlanIndex::Mapped(map) | PlanIndex::Recording(map, _) => map.path(),
            PlanIndex::Paged(paged) => &paged.0.path,
        }
    }
}

thread_local! {
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with reads of a paged index that do not wait for pages: a read that lacks some
/// starts their GETs and fails with [`PlanError::IndexPending`]. A stream's look-ahead uses it
/// so that the step it serves next never waits behind index pages of later steps.
pub(crate) fn without_waiting<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_WAIT.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(NO_WAIT.with(|w| w.replace(true)));
    f()
}

/// What a paged index did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct IndexMetrics {
    pub bytes: u64,
    /// Bytes on the node; `bytes` once the fill is complete.
    pub bytes_present: u64,
    /// GETs of pages a read needed before the fill brought them.
    pub page_fetches: u64,
    pub fill_fetches: u64,
    pub corrupt: u64,
    pub retries: u64,
    pub complete: bool,
}

/// The owner's handle on a paged index: the background fill stops when the plan that opened
/// it is dropped.
pub(crate) struct PagedHandle(Arc<Paged>);

impl Drop for PagedHandle {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// A published index's size, page size and page checksums.
pub(crate) struct Layout<'a> {
    pub len: u64,
    pub page: u64,
    pub sums: &'a [u8],
}

/// Where a paged index fills, and where it goes once whole.
pub(crate) struct PagedTarget {
    /// A temporary directory (`publish::temp_dir_for`) the index is filled in.
    pub tmp: PathBuf,
    /// The plan's directory in the node's cache.
    pub target: PathBuf,
    /// Its manifest, written beside the index once whole.
    pub manifest: Vec<u8>,
}

struct Paged {
    source: Arc<dyn IndexSource>,
    /// The file being filled: full length from the start, sparse until filled.
    file: File,
    path: PathBuf,
    len: u64,
    page: u64,
    sums: Vec<u64>,
    options: WindowOptions,
    state: Mutex<Pages>,
    changed: Condvar,
    whole: OnceLock<MappedFile>,
    stop: AtomicBool,
    counters: Counters,
    runtime: tokio::runtime::Handle,
    /// GETs of pages in flight at once, reads' and the fill's together: a node's streams may
    /// ask for many pages ahead, and each GET holds its body in memory until it is written.
    permits: tokio::sync::Semaphore,
}

#[derive(Default)]
struct Counters {
    page_fetches: AtomicU64,
    fill_fetches: AtomicU64,
    corrupt: AtomicU64,
    retries: AtomicU64,
    hedges: AtomicU64,
}

/// Which pages are on the node, which are being fetched, and which failed.
struct Pages {
    have: Vec<u64>,
    fetching: Vec<u64>,
    present: u64,
    /// A page whose fetch ran out of attempts, with why; the next read that needs it reports
    /// it once, and a later read fetches the page again.
    failed: std::collections::HashMap<u64, String>,
}

impl Pages {
    /// Marks the pages of `pages` that nobody has or fetches as being fetched, and returns
    /// them as runs of consecutive pages, each one GET.
    fn claim(&mut self, pages: Range<u64>) -> Vec<Range<u64>> {
        let mut runs: Vec<Range<u64>> = Vec::new();
        for p in pages {
            if bit(&self.have, p) || bit(&self.fetching, p) {
                continue;
            }
            set(&mut self.fetching, p, true);
            match runs.last_mut() {
                Some(run) if run.end == p => run.end = p + 1,
                _ => runs.push(p..p + 1),
            }
        }
        runs
    }
}

fn bit(bits: &[u64], i: u64) -> bool {
    bits[(i / 64) as usize] & (1 << (i % 64)) != 0
}

fn set(bits: &mut [u64], i: u64, on: bool) {
    let (word, mask) = ((i / 64) as usize, 1u64 << (i % 64));
    if on {
        bits[word] |= mask;
    } else {
        bits[word] &= !mask;
    }
}

impl PlanIndex {
    /// A paged index over `source`, of `len` bytes with the checksums `sums` of its pages of
    /// `page` bytes ([`PAGE`] as published; tests take smaller ones), filled in
    /// `at.tmp` and moved to `at.target` once whole. Fetches run on `runtime`; with `fill`, a
    /// background download brings every page in order.
    pub(crate) fn paged(
        source: Arc<dyn IndexSource>,
        Layout { len, page, sums }: Layout<'_>,
        at: PagedTarget,
        options: WindowOptions,
        runtime: &tokio::runtime::Handle,
        fill: bool,
    ) -> Result<PlanIndex> {
        if page == 0 {
            return Err(PlanError::InvalidRequest(
                "index pages must be at least a byte".into(),
            ));
        }
        let path = at.tmp.join("plan.idx");
        let pages = len.div_ceil(page);
        if sums.len() as u64 != pages * 8 {
            return Err(PlanError::Store(format!(
                "the plan index is {len} bytes ({pages} pages of {page}) but its page \
                 checksums cover {} pages",
                sums.len() / 8
            )));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(PlanError::io(format!("creating {}", path.display())))?;
        file.set_len(len)
            .map_err(PlanError::io(format!("sizing {}", path.display())))?;
        let words = pages.div_ceil(64) as usize;
        let paged = Arc::new(Paged {
            source,
            file,
            path,
            len,
            page,
            sums: sums
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
            options,
            state: Mutex::new(Pages {
                have: vec![0; words],
                fetching: vec![0; words],
                present: 0,
                failed: Default::default(),
            }),
            changed: Condvar::new(),
            whole: OnceLock::new(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            runtime: runtime.clone(),
            permits: tokio::sync::Semaphore::new(PAGE_GETS),
        });
        if fill {
            runtime.spawn(fill_all(paged.clone(), at));
        }
        Ok(PlanIndex::Paged(PagedHandle(paged)))
    }
}

impl Paged {
    fn pages(&self) -> MutexGuard<'_, Pages> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(self: &Arc<Self>, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).filter(|&end| end <= self.len);
        let Some(end) = end else {
            return Err(PlanError::CacheCorrupt {
                path: self.path.display().to_string(),
                reason: format!(
                    "{len} bytes at offset {offset} are past its end ({} bytes)",
                    self.len
                ),
            });
        };
        let mut bytes = vec![0; len as usize];
        if len == 0 {
            return Ok(bytes);
        }
        let no_wait = NO_WAIT.with(Cell::get);
        self.ensure(offset / self.page..(end - 1) / self.page + 1, !no_wait)?;
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(PlanError::io(format!("reading {}", self.path.display())))?;
        Ok(bytes)
    }

    /// Makes sure `pages` are on the node: starts GETs for those nobody fetches, then, with
    /// `wait`, waits for them all; without, answers [`PlanError::IndexPending`] while some
    /// are missing.
    fn ensure(self: &Arc<Self>, pages: Range<u64>, wait: bool) -> Result<()> {
        let mut state = self.pages();
        loop {
            if pages.clone().all(|p| bit(&state.have, p)) {
                return Ok(());
            }
            if let Some(reason) = pages.clone().find_map(|p| state.failed.remove(&p)) {
                return Err(PlanError::Fetch { reason });
            }
            let runs = state.claim(pages.clone());
            if !runs.is_empty() {
                drop(state);
                for run in runs {
                    self.counters.page_fetches.fetch_add(1, Ordering::Relaxed);
                    let paged = self.clone();
                    self.runtime.spawn(async move {
                        let got = paged.fetch(run.clone()).await;
                        paged.arrived(run, got, true);
                    });
                }
                state = self.pages();
                continue;
            }
            if !wait {
                return Err(PlanError::IndexPending);
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Bytes of pages `run`, each checked against its checksum; retried as a window's
    /// documents are.
    async fn fetch(&self, run: Range<u64>) -> std::result::Result<Bytes, String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "the plan index is closing".to_string())?;
        let range = run.start * self.page..(run.end * self.page).min(self.len);
        let c = &self.counters;
        let tallies = Tallies {
            retries: &c.retries,
            hedges: &c.hedges,
            corrupt: &c.corrupt,
        };
        let check = |bytes: &Bytes| {
            if bytes.len() as u64 != range.end - range.start {
                return Err(format!(
                    "{} bytes came back for {} asked",
                    bytes.len(),
                    range.end - range.start
                ));
            }
            for (p, page) in run.clone().zip(bytes.chunks(self.page as usize)) {
                if xxh3_64(page) != self.sums[p as usize] {
                    return Err(format!("page {p} did not match its checksum"));
                }
            }
            Ok(())
        };
        retried(
            &self.options,
            range.start,
            tallies,
            || self.source.read(range.clone()),
            check,
        )
        .await
        .map_err(|last| {
            format!(
                "plan index bytes {}..{} could not be fetched {last}",
                range.start, range.end
            )
        })
    }

    /// Writes fetched pages into the file and marks them present, or (with `report`) records
    /// why they could not be fetched for the reads that wait for them; wakes every reader.
    fn arrived(&self, run: Range<u64>, got: std::result::Result<Bytes, String>, report: bool) {
        let written = got.and_then(|bytes| {
            self.file
                .write_all_at(&bytes, run.start * self.page)
                .map_err(|e| format!("writing {}: {e}", self.path.display()))
        });
        let mut state = self.pages();
        for p in run {
            set(&mut state.fetching, p, false);
            match &written {
                Ok(()) => {
                    if !bit(&state.have, p) {
                        set(&mut state.have, p, true);
                        state.present += 1;
                    }
                }
                Err(reason) if report => {
                    state.failed.insert(p, reason.clone());
                }
                Err(_) => {}
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    fn metrics(&self) -> IndexMetrics {
        let present = self.pages().present;
        let c = &self.counters;
        IndexMetrics {
            bytes: self.len,
            bytes_present: (present * self.page).min(self.len),
            page_fetches: c.page_fetches.load(Ordering::Relaxed),
            fill_fetches: c.fill_fetches.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            complete: self.whole.get().is_some(),
        }
    }
}

/// The background fill: every page nobody has fetched, in order, [`FILL_GETS`] parts at once;
/// then the whole index moves into the node's cache and is mapped. A part that cannot be
/// fetched leaves the index paged (reads fetch its pages when they need them) and is reported
/// in the log.
async fn fill_all(paged: Arc<Paged>, at: PagedTarget) {
    let pages_per_part = (FILL_PART / paged.page).max(1);
    let total_pages = paged.len.div_ceil(paged.page);
    let parts = total_pages.div_ceil(pages_per_part);
    let failed = futures::stream::iter(0..parts)
        .map(|part| {
            let paged = paged.clone();
            async move {
                if paged.stop.load(Ordering::Relaxed) {
                    return false;
                }
                let pages = part * pages_per_part..((part + 1) * pages_per_part).min(total_pages);
                // Reads that need a page the fill claimed wait for it.
                let runs = paged.pages().claim(pages);
                let mut ok = true;
                for run in runs {
                    paged.counters.fill_fetches.fetch_add(1, Ordering::Relaxed);
                    let got = paged.fetch(run.clone()).await;
                    ok &= got.is_ok();
                    // A page the fill could not fetch is fetched by the read that needs it.
                    paged.arrived(run, got, false);
                }
                ok
            }
        })
        .buffer_unordered(FILL_GETS)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    if paged.stop.load(Ordering::Relaxed) {
        return;
    }
    // Pages a read claimed while the fill passed are waited for.
    let complete = {
        let mut state = paged.pages();
        while state.present < total_pages
            && failed == 0
            && (0..total_pages).any(|p| bit(&state.fetching, p))
        {
            state = paged.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.present == total_pages
    };
    if !complete {
        tracing::warn!(
            index = %paged.path.display(),
            "the plan index could not be downloaded whole; its pages are fetched as reads need them"
        );
        return;
    }
    let finished = tokio::task::spawn_blocking({
        let paged = paged.clone();
        move || finish(&paged, &at)
    })
    .await;
    match finished {
        Ok(Ok(map)) => {
            let _ = paged.whole.set(map);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "keeping the plan index paged"),
        Err(e) => tracing::warn!(error = %e, "keeping the plan index paged"),
    }
}

/// Syncs the filled index, writes its manifest and moves it into the node's cache; maps it.
fn finish(paged: &Paged, at: &PagedTarget) -> Result<MappedFile> {
    paged
        .file
        .sync_all()
        .map_err(PlanError::io(format!("writing {}", paged.path.display())))?;
    crate::publish::write_file(&at.tmp.join(crate::publish::COMPLETE_MARKER), &at.manifest)?;
    crate::publish::publish_dir(&at.tmp, &at.target)?;
    let map = MappedFile::open(&at.target.join("plan.idx"))?;
    map.expect_random_access();
    Ok(map)
}
