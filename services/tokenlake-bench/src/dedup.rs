//! De-duplication as the corpus grows: today's in-memory index against the partitioned
//! pipeline ([`DedupIndex`]) over the same synthetic fingerprints, and SimHash candidate
//! generation against the index's size: the ten pair-of-blocks tables the
//! de-duplication index uses ([`SimHashTables`]) beside the four 16-bit block tables it used
//! before, measured in the same run over the same synthetic hashes (a share of them planted
//! within distance 3 of an earlier one). The figure that matters is comparisons per document
//! as the index grows: constant means linear time, growing with N means quadratic.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tokenlake_curate::dedup::pipeline::{DedupIndex, task_sort_budget};
use tokenlake_curate::dedup::{
    Deduplicator, Fingerprint, PERMUTATIONS, SIMHASH_MAX_DISTANCE, SimHashTables,
};
use tokenlake_plan::SplitMix64;

#[derive(Debug, Clone, Serialize)]
pub struct DedupFigures {
    pub scheme: &'static str,
    pub docs: u64,
    pub secs: f64,
    pub docs_per_sec: f64,
    /// Hashes compared with each new one, on average over the run.
    pub comparisons_per_doc: f64,
    /// Pairs within distance 3 found (the same for every scheme: both are complete).
    pub matches: u64,
    /// Heap bytes of the scheme's tables per document, at the end.
    pub table_bytes_per_doc: f64,
}

/// `docs` hashes: a third random, the rest an earlier hash with 0 to 3 bits flipped.
pub fn synthetic_hashes(docs: u64, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    let mut hashes = Vec::with_capacity(docs as usize);
    for i in 0..docs {
        let sim = if i < 16 || rng.next_u64().is_multiple_of(3) {
            rng.next_u64()
        } else {
            let mut sim = hashes[(rng.next_u64() % hashes.len() as u64) as usize];
            for _ in 0..rng.next_u64() % 4 {
                sim ^= 1 << (rng.next_u64() % 64);
            }
            sim
        };
        hashes.push(sim);
    }
    hashes
}

/// Adds every hash to `scheme`, looking up each one's candidates first.
fn measure(
    name: &'static str,
    hashes: &[u64],
    mut lookup: impl FnMut(u64, &mut dyn FnMut(u32)),
    mut insert: impl FnMut(u64, u32),
    heap_bytes: impl Fn() -> usize,
) -> DedupFigures {
    let started = Instant::now();
    let (mut comparisons, mut matches) = (0u64, 0u64);
    let mut found: Vec<u32> = Vec::new();
    for (idx, &sim) in hashes.iter().enumerate() {
        found.clear();
        lookup(sim, &mut |m| {
            comparisons += 1;
            if (hashes[m as usize] ^ sim).count_ones() <= SIMHASH_MAX_DISTANCE {
                found.push(m);
            }
        });
        // A pair may meet in several tables; it is one match.
        found.sort_unstable();
        found.dedup();
        matches += found.len() as u64;
        insert(sim, idx as u32);
    }
    let secs = started.elapsed().as_secs_f64();
    DedupFigures {
        scheme: name,
        docs: hashes.len() as u64,
        secs,
        docs_per_sec: hashes.len() as f64 / secs.max(1e-9),
        comparisons_per_doc: comparisons as f64 / hashes.len().max(1) as f64,
        matches,
        table_bytes_per_doc: heap_bytes() as f64 / hashes.len().max(1) as f64,
    }
}

/// Both schemes over `docs` synthetic hashes.
pub fn measure_simhash_candidates(docs: u64) -> Vec<DedupFigures> {
    let hashes = synthetic_hashes(docs, 7);
    let mut pairs = SimHashTables::default();
    let tables = std::cell::RefCell::new(&mut pairs);
    let ten = measure(
        "10 pair-of-blocks tables",
        &hashes,
        |sim, each| tables.borrow().for_each_candidate(sim, each),
        |sim, idx| tables.borrow_mut().insert(sim, idx),
        || tables.borrow().heap_bytes(),
    );
    let blocks: std::cell::RefCell<[HashMap<u16, Vec<u32>>; 4]> = Default::default();
    let four = measure(
        "4 16-bit block tables (before)",
        &hashes,
        |sim, each| {
            for (b, table) in blocks.borrow().iter().enumerate() {
                if let Some(bucket) = table.get(&((sim >> (16 * b)) as u16)) {
                    bucket.iter().for_each(|&m| each(m));
                }
            }
        },
        |sim, idx| {
            for (b, table) in blocks.borrow_mut().iter_mut().enumerate() {
                table.entry((sim >> (16 * b)) as u16).or_default().push(idx);
            }
        },
        || {
            blocks
                .borrow()
                .iter()
                .map(|t| {
                    t.capacity() * 8 / 7 * (std::mem::size_of::<(u16, Vec<u32>)>() + 1)
                        + t.values().map(|v| v.capacity() * 4).sum::<usize>()
                })
                .sum()
        },
    );
    vec![ten, four]
}

/// A stream of synthetic fingerprints with planted clusters, no text needed: of every 20
/// documents about 13 are new, 2 exact copies of a recent one, 2 near copies (some minimums
/// replaced, a few SimHash bits flipped), 1 has a recent document's URL and other content, and
/// 1 has no words. Copies come from the last 4,096 documents, so the stream's memory is
/// bounded whatever its length; the same seed gives the same stream.
pub struct SyntheticCorpus {
    rng: SplitMix64,
    recent: Vec<([u64; PERMUTATIONS], Fingerprint)>,
    made: u64,
}

const RECENT: usize = 4096;

impl SyntheticCorpus {
    pub fn new(seed: u64) -> SyntheticCorpus {
        SyntheticCorpus {
            rng: SplitMix64::new(seed),
            recent: Vec::with_capacity(RECENT),
            made: 0,
        }
    }
}

impl Iterator for SyntheticCorpus {
    type Item = Fingerprint;

    fn next(&mut self) -> Option<Fingerprint> {
        let rng = &mut self.rng;
        let pick = if self.recent.is_empty() {
            19
        } else {
            rng.next_u64() % 20
        };
        let earlier = (rng.next_u64() % self.recent.len().max(1) as u64) as usize;
        let fresh = |rng: &mut SplitMix64| -> [u64; PERMUTATIONS] {
            std::array::from_fn(|_| rng.next_u64())
        };
        let (mins, print) = match pick {
            0 => {
                let print = Fingerprint {
                    url: None,
                    exact: rng.next_u64() % 64,
                    simhash: None,
                    bands: None,
                    fine_bands: None,
                    minhash: Vec::new(),
                };
                self.made += 1;
                return Some(print);
            }
            1 | 2 => {
                let (mins, print) = &self.recent[earlier];
                (*mins, print.clone())
            }
            3 | 4 => {
                let (mut mins, print) = self.recent[earlier].clone();
                for _ in 0..10 + rng.next_u64() % 30 {
                    mins[(rng.next_u64() % PERMUTATIONS as u64) as usize] = rng.next_u64();
                }
                let mut sim = print.simhash.unwrap_or_default();
                for _ in 0..rng.next_u64() % 4 {
                    sim ^= 1 << (rng.next_u64() % 64);
                }
                let exact = rng.next_u64();
                (
                    mins,
                    Fingerprint::from_minimums(None, exact, Some(sim), &mins),
                )
            }
            5 => {
                let url = self.recent[earlier].1.url.or(Some(rng.next_u64()));
                let mins = fresh(rng);
                let (exact, sim) = (rng.next_u64(), rng.next_u64());
                (
                    mins,
                    Fingerprint::from_minimums(url, exact, Some(sim), &mins),
                )
            }
            _ => {
                let mins = fresh(rng);
                let url = rng.next_u64().is_multiple_of(2).then(|| rng.next_u64());
                let (exact, sim) = (rng.next_u64(), rng.next_u64());
                (
                    mins,
                    Fingerprint::from_minimums(url, exact, Some(sim), &mins),
                )
            }
        };
        if self.recent.len() < RECENT {
            self.recent.push((mins, print.clone()));
        } else {
            self.recent[(self.made % RECENT as u64) as usize] = (mins, print.clone());
        }
        self.made += 1;
        Some(print)
    }
}

/// One size of the de-duplication benchmark, by one method.
#[derive(Debug, Clone, Serialize)]
pub struct DedupRunFigures {
    pub method: &'static str,
    pub docs: u64,
    pub secs: f64,
    pub docs_per_sec: f64,
    /// Peak resident memory of the process while its largest step ran (for the pipeline, the
    /// largest candidate task, tasks run one at a time), and the budget it had.
    pub peak_rss_bytes: u64,
    pub budget_bytes: Option<u64>,
    /// Bytes of the committed index on disk per document (sorted key runs and signatures),
    /// for the pipeline; an update holds about twice as much while it runs.
    pub disk_bytes_per_doc: f64,
    /// Edges kept per document, for the pipeline.
    pub edges_per_doc: f64,
    /// Memory of the labels' union-find (pipeline) or of the whole index (in memory), per
    /// document.
    pub memory_bytes_per_doc: f64,
    pub duplicates: u64,
    /// Seconds of the pipeline's steps: keys, candidates, union.
    pub step_secs: Option<[f64; 3]>,
}

/// The process's peak resident memory since the last [`reset_peak_rss`], if Linux says.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak (Linux's `clear_refs` 5); false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Today's in-memory index over `docs` synthetic documents.
pub fn measure_in_memory_index(docs: u64) -> DedupRunFigures {
    reset_peak_rss();
    let started = Instant::now();
    let mut dedup = Deduplicator::default();
    for print in SyntheticCorpus::new(23).take(docs as usize) {
        dedup.add(&print);
    }
    let labels = dedup.labels();
    let secs = started.elapsed().as_secs_f64();
    DedupRunFigures {
        method: "in-memory index",
        docs,
        secs,
        docs_per_sec: docs as f64 / secs.max(1e-9),
        peak_rss_bytes: peak_rss_bytes().unwrap_or_default(),
        budget_bytes: None,
        disk_bytes_per_doc: 0.0,
        edges_per_doc: 0.0,
        memory_bytes_per_doc: dedup.heap_bytes() as f64 / docs.max(1) as f64,
        duplicates: labels.iter().filter(|l| l.is_dup).count() as u64,
        step_secs: None,
    }
}

/// The partitioned pipeline over the same documents, in `dir`: one writer, then every
/// partition's candidate task one at a time (so the peak is one task's), then the union.
/// Each task's sorts get their share of `task_budget` ([`task_sort_budget`]).
pub fn measure_pipeline(
    docs: u64,
    partitions: u32,
    task_budget: u64,
    dir: &std::path::Path,
) -> std::io::Result<DedupRunFigures> {
    let started = Instant::now();
    let mut index = DedupIndex::open_or_create(dir, partitions)?;
    let mut writer = index.writer("bench", 0)?;
    for print in SyntheticCorpus::new(23).take(docs as usize) {
        writer.add(&print)?;
    }
    writer.finish()?;
    let keys_secs = started.elapsed().as_secs_f64();
    let mut peak = 0u64;
    let mut edges = 0u64;
    for p in 0..partitions {
        reset_peak_rss();
        let stats = index.candidates(p, task_sort_budget(task_budget))?;
        peak = peak.max(peak_rss_bytes().unwrap_or_default());
        edges += stats.edges_kept;
    }
    let candidates_secs = started.elapsed().as_secs_f64() - keys_secs;
    reset_peak_rss();
    let mut duplicates = 0u64;
    let union = index.union(|row, label, _| {
        duplicates += u64::from(label.is_dup(row));
    })?;
    let union_peak = peak_rss_bytes().unwrap_or_default();
    index.commit("bench")?;
    let disk = index.disk_bytes()?;
    let secs = started.elapsed().as_secs_f64();
    Ok(DedupRunFigures {
        method: "partitioned pipeline",
        docs,
        secs,
        docs_per_sec: docs as f64 / secs.max(1e-9),
        peak_rss_bytes: peak.max(union_peak),
        budget_bytes: Some(task_budget),
        disk_bytes_per_doc: disk as f64 / docs.max(1) as f64,
        edges_per_doc: edges as f64 / docs.max(1) as f64,
        memory_bytes_per_doc: union.union_bytes as f64 / docs.max(1) as f64,
        duplicates,
        step_secs: Some([
            keys_secs,
            candidates_secs,
            secs - keys_secs - candidates_secs,
        ]),
    })
}
