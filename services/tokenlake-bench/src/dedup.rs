//! SimHash candidate generation against the index's size: the ten pair-of-blocks tables the
//! de-duplication index uses ([`SimHashTables`]) beside the four 16-bit block tables it used
//! before, measured in the same run over the same synthetic hashes (a share of them planted
//! within distance 3 of an earlier one). The figure that matters is comparisons per document
//! as the index grows: constant means linear time, growing with N means quadratic.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tokenlake_curate::dedup::{SIMHASH_MAX_DISTANCE, SimHashTables};
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
