//! One partition's candidate task: merges the partition's sorted keys of the rows indexed
//! before with the new rows' keys (sorted within the memory budget), walks each group, and
//! writes the edges the in-memory index would have unioned for the new rows, reduced to a
//! spanning forest, as one run sorted by `(row, kind, earlier)`. The merged keys are written
//! too: they are the partition's sorted run for the next increment.
//!
//! The edges of a group are those of [`super::super::Deduplicator::add`]: a URL, exact or
//! MinHash-band group links each row to its first row; a fine-band group checks each row
//! against the 64 rows before it; a SimHash group checks every earlier row within distance 3.
//! Checks estimate the Jaccard similarity from the rows' signatures. An edge whose rows are
//! already joined by edges that come before it in `(row, kind)` order is left out (within a
//! group while walking, then across the task's edges): it cannot change a label.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::{DupKind, NEAR_MIN_JACCARD, SIMHASH_MAX_DISTANCE, estimated_jaccard};
use super::keys::{self, Group, KEY_RECORD, KeyRecord};
use super::minhashes::{Signature, Signatures};
use super::runs::{ExternalSort, RunWriter};
use super::union::kind_of_code;

/// Fine-band members checked before each row, latest first (as the in-memory index).
const FINE_WALK: usize = 64;

pub const EDGE_RECORD: usize = 17;
pub type EdgeRecord = [u8; EDGE_RECORD];

pub fn encode_edge(row: u64, kind: DupKind, earlier: u64) -> EdgeRecord {
    let mut r = [0u8; EDGE_RECORD];
    r[..8].copy_from_slice(&row.to_be_bytes());
    r[8] = kind as u8 + 1;
    r[9..].copy_from_slice(&earlier.to_be_bytes());
    r
}

pub fn decode_edge(r: &EdgeRecord) -> (u64, DupKind, u64) {
    let row = u64::from_be_bytes(r[..8].try_into().expect("8 bytes"));
    let earlier = u64::from_be_bytes(r[9..].try_into().expect("8 bytes"));
    let kind = kind_of_code(r[8]).unwrap_or(DupKind::MinHash);
    (row, kind, earlier)
}

/// What one task read, checked and wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TaskStats {
    pub partition: u32,
    pub key_records: u64,
    pub groups: u64,
    /// Groups with more than one member.
    pub shared_groups: u64,
    pub largest_group: u64,
    pub jaccard_checks: u64,
    /// Edges found before and after the spanning-forest reduction.
    pub edges_found: u64,
    pub edges_kept: u64,
    /// Bytes the task held at most in its own structures: the sort buffers, the largest
    /// group with its signatures, the forest.
    pub peak_bytes: u64,
}

pub struct CandidateTask<'a> {
    pub partition: u32,
    /// The partition's sorted keys of the rows before `first_new`, if any.
    pub base: Option<PathBuf>,
    /// The new rows' keys for this partition, unsorted, one file per writer.
    pub new_keys: Vec<PathBuf>,
    pub first_new: u64,
    pub signatures: &'a Signatures,
    /// Where the merged sorted keys and the edges go.
    pub sorted_out: PathBuf,
    pub edges_out: PathBuf,
    /// Scratch directory for spilled sort chunks.
    pub scratch: PathBuf,
    /// Memory for each of the task's two sorts.
    pub sort_budget: usize,
    /// Set to stop the task at its next check.
    pub stop: &'a AtomicBool,
}

/// Records read between two looks at the stop flag.
const STOP_CHECK: u64 = 1 << 16;

fn interrupted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the candidate task was stopped")
}

impl CandidateTask<'_> {
    pub fn run(&self) -> io::Result<TaskStats> {
        let mut stats = TaskStats {
            partition: self.partition,
            ..TaskStats::default()
        };
        if self.stop.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        let mut sort = ExternalSort::<KEY_RECORD>::new(
            &self.scratch,
            &format!("keys-{}-{}", self.partition, std::process::id()),
            self.sort_budget,
        );
        let key_sort_bytes = sort.budget_bytes();
        let mut read = 0u64;
        for path in &self.new_keys {
            for r in super::runs::RunReader::<KEY_RECORD>::open(path)? {
                sort.push(r?)?;
                read += 1;
                if read.is_multiple_of(STOP_CHECK) && self.stop.load(Ordering::Relaxed) {
                    return Err(interrupted());
                }
            }
        }
        let base: Vec<PathBuf> = self.base.iter().cloned().collect();
        let merged = sort.merge_with(&base)?;
        let mut sorted_out = RunWriter::<KEY_RECORD>::create(&self.sorted_out)?;
        let mut edges = ExternalSort::<EDGE_RECORD>::new(
            &self.scratch,
            &format!("edges-{}-{}", self.partition, std::process::id()),
            self.sort_budget,
        );
        let mut walker = GroupWalker {
            first_new: self.first_new,
            signatures: self.signatures,
            stats: &mut stats,
            members: Vec::new(),
            cache: HashMap::new(),
            local: Vec::new(),
            group_peak: 0,
        };
        let mut current: Option<(u8, u64)> = None;
        for record in merged {
            let record: KeyRecord = record?;
            sorted_out.push(&record)?;
            let (space, key, row) = keys::decode(&record);
            let group = (space, keys::group_key(space, key));
            if current != Some(group) {
                if let Some((space, _)) = current {
                    walker.walk(space, &mut edges)?;
                }
                current = Some(group);
            }
            walker.members.push((row, key));
            walker.stats.key_records += 1;
            if walker.stats.key_records.is_multiple_of(STOP_CHECK)
                && self.stop.load(Ordering::Relaxed)
            {
                return Err(interrupted());
            }
        }
        if let Some((space, _)) = current {
            walker.walk(space, &mut edges)?;
        }
        let group_peak = walker.group_peak;
        sorted_out.finish()?;
        let edge_sort_bytes = edges.budget_bytes();

        // The spanning forest of the task's edges in (row, kind) order: an edge whose rows are
        // joined already by earlier edges adds nothing.
        let mut forest: HashMap<u64, u64> = HashMap::new();
        let mut out = RunWriter::<EDGE_RECORD>::create(&self.edges_out)?;
        for record in edges.merge_with(&[])? {
            let record = record?;
            let (row, _, earlier) = decode_edge(&record);
            let (a, b) = (find(&mut forest, row), find(&mut forest, earlier));
            if a != b {
                forest.insert(a.max(b), a.min(b));
                out.push(&record)?;
                stats.edges_kept += 1;
            }
        }
        out.finish()?;
        let forest_bytes = forest.capacity() * 8 / 7 * 17;
        stats.peak_bytes = (key_sort_bytes + group_peak).max(edge_sort_bytes + forest_bytes) as u64;
        Ok(stats)
    }
}

fn find(forest: &mut HashMap<u64, u64>, mut i: u64) -> u64 {
    while let Some(&p) = forest.get(&i) {
        if let Some(&gp) = forest.get(&p) {
            forest.insert(i, gp);
        }
        i = p;
    }
    i
}

struct GroupWalker<'a, 's> {
    first_new: u64,
    signatures: &'a Signatures,
    stats: &'s mut TaskStats,
    /// The current group's `(row, key)`s.
    members: Vec<(u64, u64)>,
    /// Signatures of the group's rows read so far.
    cache: HashMap<u64, Option<Signature>>,
    /// Union-find over the group's members, by position.
    local: Vec<u32>,
    group_peak: usize,
}

impl GroupWalker<'_, '_> {
    fn walk(&mut self, space: u8, edges: &mut ExternalSort<EDGE_RECORD>) -> io::Result<()> {
        let n = self.members.len();
        self.stats.groups += 1;
        self.stats.largest_group = self.stats.largest_group.max(n as u64);
        let any_new = self.members.iter().any(|m| m.0 >= self.first_new);
        if n > 1 {
            self.stats.shared_groups += 1;
        }
        if n > 1 && any_new {
            match keys::group_of_space(space) {
                Group::First(kind) => {
                    // In row order already: the key is the whole group.
                    let first = self.members[0].0;
                    for i in 1..n {
                        let row = self.members[i].0;
                        if row >= self.first_new {
                            self.emit(edges, row, kind, first)?;
                        }
                    }
                }
                Group::Window => self.walk_checked(edges, DupKind::MinHash)?,
                Group::Pairs => {
                    // Key order within the group; the walk goes in row order.
                    self.members.sort_unstable();
                    self.walk_checked(edges, DupKind::SimHash)?
                }
            }
        }
        let bytes = self.members.capacity() * 16
            + self.local.capacity() * 4
            + self.cache.capacity() * 8 / 7 * (8 + std::mem::size_of::<Option<Signature>>());
        self.group_peak = self.group_peak.max(bytes);
        self.members.clear();
        self.cache.clear();
        Ok(())
    }

    /// Checks each new row against earlier members, latest first, skipping those already
    /// joined to it within this group: for a fine band (`MinHash`) the 64 before it, for a
    /// SimHash table (`SimHash`) every one within distance 3.
    fn walk_checked(
        &mut self,
        edges: &mut ExternalSort<EDGE_RECORD>,
        kind: DupKind,
    ) -> io::Result<()> {
        self.local.clear();
        self.local.extend(0..self.members.len() as u32);
        for p in 0..self.members.len() {
            let (row, key) = self.members[p];
            if row < self.first_new {
                continue;
            }
            for q in (0..p).rev() {
                let (earlier, earlier_key) = self.members[q];
                if kind == DupKind::MinHash && p - q > FINE_WALK {
                    break;
                }
                if kind == DupKind::SimHash
                    && (key ^ earlier_key).count_ones() > SIMHASH_MAX_DISTANCE
                {
                    continue;
                }
                let (a, b) = (
                    local_find(&mut self.local, p),
                    local_find(&mut self.local, q),
                );
                if a == b {
                    continue;
                }
                self.stats.jaccard_checks += 1;
                if self.similar(row, earlier)? {
                    self.local[a.max(b)] = a.min(b) as u32;
                    self.emit(edges, row, kind, earlier)?;
                }
            }
        }
        Ok(())
    }

    fn signature(&mut self, row: u64) -> io::Result<Option<Signature>> {
        if let Some(s) = self.cache.get(&row) {
            return Ok(*s);
        }
        let s = self.signatures.read(row)?;
        self.cache.insert(row, s);
        Ok(s)
    }

    fn similar(&mut self, a: u64, b: u64) -> io::Result<bool> {
        let (Some(x), Some(y)) = (self.signature(a)?, self.signature(b)?) else {
            return Ok(false); // a row without words shares no shingles
        };
        Ok(estimated_jaccard(&x, &y) >= NEAR_MIN_JACCARD)
    }

    fn emit(
        &mut self,
        edges: &mut ExternalSort<EDGE_RECORD>,
        row: u64,
        kind: DupKind,
        earlier: u64,
    ) -> io::Result<()> {
        self.stats.edges_found += 1;
        edges.push(encode_edge(row, kind, earlier))
    }
}

fn local_find(parent: &mut [u32], mut i: usize) -> usize {
    while parent[i] as usize != i {
        let gp = parent[parent[i] as usize];
        parent[i] = gp;
        i = gp as usize;
    }
    i
}

/// The path of partition `p`'s file `name` under `dir`.
pub fn partition_path(dir: &Path, p: u32, name: &str) -> PathBuf {
    dir.join(format!("p{p:05}.{name}"))
}
