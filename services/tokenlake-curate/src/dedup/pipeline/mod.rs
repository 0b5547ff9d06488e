//! De-duplication as a partitioned pipeline whose work grows linearly with the documents and
//! whose memory per task is bounded, with the labels of the in-memory
//! [`Deduplicator`](super::Deduplicator) exactly.
//!
//! The labels are a pure function of the edges between documents and their row order (see
//! [`union`]), and every edge comes from one group of rows that share a key, walked in row
//! order (see [`candidates`]). So the work splits the way datatrove and NeMo Curator split it:
//!
//! 1. **Keys** — whoever fingerprints rows (a `curate` run, each shard of an ingest) writes
//!    every key of every row as a fixed-width record, hash-partitioned by group into `P`
//!    files, and the rows' MinHash signatures as one segment ([`KeyWriter`]).
//! 2. **Candidates** — one task per partition sorts the new keys within its memory budget,
//!    merges them with the partition's sorted keys of the rows indexed before, walks each
//!    group and writes the group's edges for the new rows ([`DedupIndex::candidates`]).
//! 3. **Union** — one ordered union-find over the edges of every partition, merged in
//!    `(row, kind)` order, starting from the labels the index stored for the rows indexed
//!    before, gives every row's label and says which changed ([`DedupIndex::union`]); then the
//!    merged runs and the labels become the index ([`DedupIndex::commit`]).
//!
//! The index is a directory: `manifest.json` (partitions, rows covered, signature segments,
//! the caller's tag for what the rows are), `runs/` (each partition's sorted keys of the
//! covered rows, named by the count), `labels-<covered>` (9 bytes a row: keeper and kind),
//! `segments/`, and, during an update, `pending/<writer>/` and `step/`. Every file is written whole before
//! the manifest names it, and the manifest is replaced by a rename, so an update interrupted
//! at any point leaves the index it started from.
//!
//! Costs per document: at most 54 key records of 17 bytes (918 bytes of runs), a 225-byte
//! signature and a 9-byte label on disk; in the union, 5 bytes of memory (9 above 2³² rows); in a candidate task,
//! the sort budget, the largest group and the task's spanning forest.

mod candidates;
mod keys;
mod minhashes;
mod runs;
mod union;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use candidates::TaskStats;
pub use keys::MAX_KEYS;
pub use minhashes::STRIDE as SIGNATURE_BYTES;
pub use union::{OrderedUnion, RowLabel};

use super::Fingerprint;
use candidates::{CandidateTask, EDGE_RECORD, decode_edge, partition_path};
use keys::KEY_RECORD;
use minhashes::{Segment, SegmentWriter, Signatures};
use runs::{Merge, RunReader, RunWriter};
use union::kind_of_code;

/// A stored label: the keeper's row (u64, little-endian) and the kind's code.
const LABEL_RECORD: usize = 9;

fn encode_label(l: RowLabel) -> [u8; LABEL_RECORD] {
    let mut r = [0u8; LABEL_RECORD];
    r[..8].copy_from_slice(&l.keeper.to_le_bytes());
    r[8] = l.kind.map_or(0, |k| k as u8 + 1);
    r
}

fn decode_label(r: &[u8; LABEL_RECORD]) -> RowLabel {
    RowLabel {
        keeper: u64::from_le_bytes(r[..8].try_into().expect("8 bytes")),
        kind: kind_of_code(r[8]),
    }
}

/// The manifest's format; another is refused by name.
const FORMAT: u32 = 1;
pub const DEFAULT_PARTITIONS: u32 = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    partitions: u32,
    /// Rows `0..covered` are in the runs, segments and labels.
    covered: u64,
    segments: Vec<Segment>,
    /// What the covered rows are, in the caller's words (a curation state's name).
    #[serde(default)]
    tag: String,
}

/// What one writer wrote, recorded beside its files when it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenKeys {
    pub writer: String,
    pub first_row: u64,
    pub rows: u64,
    pub key_records: u64,
}

/// What [`DedupIndex::status`] says.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub dir: String,
    pub partitions: u32,
    pub covered: u64,
    pub tag: String,
    pub pending_rows: u64,
    pub writers: Vec<String>,
    /// Partitions whose candidate task has not finished for the pending rows.
    pub missing: Vec<u32>,
}

/// What a union did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnionStats {
    pub rows: u64,
    pub new_rows: u64,
    pub edges: u64,
    /// Labels reported: every new row's and the old rows' that changed.
    pub changed: u64,
    pub union_bytes: u64,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Holds the index directory `dir` (created if need be) for one update at a time: a second is
/// refused while the returned file is open.
pub fn lock_dir(dir: &Path) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::create(dir.join(".lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another update of the de-duplication index in {} is running; wait for it to finish",
                dir.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Empties an index directory but for the lock file of whoever holds it.
pub fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == ".lock" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Each sort's share of one candidate task's memory budget: a task holds two sorts at once,
/// besides its largest group and its forest.
pub fn task_sort_budget(task_budget: u64) -> usize {
    (task_budget / 4).max(1 << 20) as usize
}

/// A persisted, incremental de-duplication index (see the module doc).
pub struct DedupIndex {
    dir: PathBuf,
    manifest: Manifest,
}

impl DedupIndex {
    /// Opens the index in `dir`, or creates an empty one with `partitions` partitions.
    pub fn open_or_create(dir: &Path, partitions: u32) -> io::Result<DedupIndex> {
        if dir.join("manifest.json").exists() {
            return DedupIndex::open(dir);
        }
        if partitions == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a de-duplication index needs at least one partition",
            ));
        }
        for sub in ["runs", "segments", "pending", "step", "scratch"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let index = DedupIndex {
            dir: dir.to_path_buf(),
            manifest: Manifest {
                format: FORMAT,
                partitions,
                covered: 0,
                segments: Vec::new(),
                tag: String::new(),
            },
        };
        index.write_manifest()?;
        Ok(index)
    }

    pub fn open(dir: &Path) -> io::Result<DedupIndex> {
        let path = dir.join("manifest.json");
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if manifest.format != FORMAT {
            return Err(invalid(format!(
                "{} is of format {}; this build reads format {FORMAT}",
                path.display(),
                manifest.format
            )));
        }
        Ok(DedupIndex {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn partitions(&self) -> u32 {
        self.manifest.partitions
    }

    /// Rows whose keys the index holds (`0..covered`).
    pub fn covered(&self) -> u64 {
        self.manifest.covered
    }

    /// The tag the last commit gave the covered rows.
    pub fn tag(&self) -> &str {
        &self.manifest.tag
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Empties the index (keeping its partition count), for a caller whose rows are no longer
    /// the ones it covers.
    pub fn reset(&mut self) -> io::Result<()> {
        empty_dir(&self.dir)?;
        for sub in ["runs", "segments", "pending", "step", "scratch"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        self.manifest.covered = 0;
        self.manifest.segments.clear();
        self.manifest.tag.clear();
        self.write_manifest()
    }

    /// Removes what an update that never committed left (its writers and task outputs).
    pub fn discard_pending(&self) -> io::Result<()> {
        for sub in ["pending", "step", "scratch"] {
            let dir = self.dir.join(sub);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
        }
        Ok(())
    }

    fn labels_path(&self, covered: u64) -> PathBuf {
        self.dir.join(format!("labels-{covered}"))
    }

    fn write_manifest(&self) -> io::Result<()> {
        let tmp = self.dir.join("manifest.json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.manifest).map_err(io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(tmp, self.dir.join("manifest.json"))
    }

    fn run_path(&self, p: u32, covered: u64) -> PathBuf {
        partition_path(&self.dir.join("runs"), p, &format!("keys-{covered}"))
    }

    /// A writer for rows `first_row..` named `name` (one per shard or run).
    pub fn writer(&self, name: &str, first_row: u64) -> io::Result<KeyWriter> {
        KeyWriter::create(
            &self.dir.join("pending").join(name),
            name,
            first_row,
            self.manifest.partitions,
        )
    }

    /// The finished writers waiting to be merged, checked to cover `covered..end` without
    /// gap or overlap; returns them and `end`.
    pub fn pending(&self) -> io::Result<(Vec<WrittenKeys>, u64)> {
        let mut written = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("pending"))? {
            let path = entry?.path().join("written.json");
            if let Ok(bytes) = std::fs::read(&path) {
                let w: WrittenKeys = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                written.push(w);
            }
        }
        written.sort_by_key(|w| w.first_row);
        let mut end = self.manifest.covered;
        for w in &written {
            if w.first_row != end {
                return Err(invalid(format!(
                    "writer {} starts at row {}, but the rows before it end at {end}: a writer is missing or overlaps",
                    w.writer, w.first_row
                )));
            }
            end += w.rows;
        }
        Ok((written, end))
    }

    fn signatures(&self, pending: &[WrittenKeys]) -> io::Result<Signatures> {
        let mut segments: Vec<(PathBuf, Segment)> = self
            .manifest
            .segments
            .iter()
            .map(|s| (self.dir.join("segments"), s.clone()))
            .collect();
        for w in pending {
            segments.push((
                self.dir.join("pending").join(&w.writer),
                Segment {
                    first_row: w.first_row,
                    rows: w.rows,
                    file: "signatures".into(),
                },
            ));
        }
        Signatures::open(&segments)
    }

    /// Step 2 for partition `p`: the candidate task, within `sort_budget` bytes for each of
    /// its two sorts. Its outputs go to `step/` and are named by the rows they cover, so a task
    /// run again (after a crash, or twice by a scheduler) writes the same files.
    pub fn candidates(&self, p: u32, sort_budget: usize) -> io::Result<TaskStats> {
        let (pending, end) = self.pending()?;
        let never = AtomicBool::new(false);
        self.candidates_of(
            p,
            &pending,
            end,
            &self.signatures(&pending)?,
            sort_budget,
            &never,
        )
    }

    fn candidates_of(
        &self,
        p: u32,
        pending: &[WrittenKeys],
        end: u64,
        signatures: &Signatures,
        sort_budget: usize,
        stop: &AtomicBool,
    ) -> io::Result<TaskStats> {
        if p >= self.manifest.partitions {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "partition {p} of an index with {} partitions",
                    self.manifest.partitions
                ),
            ));
        }
        let step = self.dir.join("step");
        let covered = self.manifest.covered;
        let task = CandidateTask {
            partition: p,
            base: (covered > 0).then(|| self.run_path(p, covered)),
            new_keys: pending
                .iter()
                .map(|w| partition_path(&self.dir.join("pending").join(&w.writer), p, "keys"))
                .collect(),
            first_new: covered,
            signatures,
            // Process-unique temporary names: a task run twice at once (the commit and a
            // scheduler's retry) must not write one file from two processes.
            sorted_out: partition_path(&step, p, &format!("keys-{end}.{}.tmp", std::process::id())),
            edges_out: partition_path(&step, p, &format!("edges-{end}.{}.tmp", std::process::id())),
            scratch: self.dir.join("scratch"),
            sort_budget,
            stop,
        };
        let stats = task.run()?;
        std::fs::rename(
            &task.sorted_out,
            partition_path(&step, p, &format!("keys-{end}")),
        )?;
        std::fs::rename(
            &task.edges_out,
            partition_path(&step, p, &format!("edges-{end}")),
        )?;
        let done = partition_path(&step, p, &format!("done-{end}.json"));
        let tmp = partition_path(&step, p, &format!("done-{end}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&stats).map_err(io::Error::other)?)?;
        std::fs::rename(tmp, done)?;
        Ok(stats)
    }

    /// Every partition's candidate task, `threads` at a time (each within `sort_budget`).
    pub fn all_candidates(&self, sort_budget: usize, threads: usize) -> io::Result<Vec<TaskStats>> {
        let (pending, end) = self.pending()?;
        let partitions: Vec<u32> = (0..self.manifest.partitions).collect();
        let never = AtomicBool::new(false);
        self.run_candidates(&partitions, &pending, end, sort_budget, threads, &never)
    }

    /// The candidate tasks not done yet for the pending rows (some may have run elsewhere:
    /// `tokenlake dedup candidates`); returns how many ran. Once `stop` is set, the tasks end
    /// at their next check with an `Interrupted` error, leaving only finished tasks' files.
    pub fn missing_candidates(
        &self,
        sort_budget: usize,
        threads: usize,
        stop: &AtomicBool,
    ) -> io::Result<u32> {
        let (pending, end) = self.pending()?;
        let missing = self.missing(end);
        self.run_candidates(&missing, &pending, end, sort_budget, threads, stop)?;
        Ok(missing.len() as u32)
    }

    /// The partitions whose candidate task has not finished for rows up to `end`.
    fn missing(&self, end: u64) -> Vec<u32> {
        let step = self.dir.join("step");
        (0..self.manifest.partitions)
            .filter(|&p| !partition_path(&step, p, &format!("done-{end}.json")).exists())
            .collect()
    }

    fn run_candidates(
        &self,
        partitions: &[u32],
        pending: &[WrittenKeys],
        end: u64,
        sort_budget: usize,
        threads: usize,
        stop: &AtomicBool,
    ) -> io::Result<Vec<TaskStats>> {
        let signatures = self.signatures(pending)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(io::Error::other)?;
        pool.install(|| {
            partitions
                .par_iter()
                .map(|&p| self.candidates_of(p, pending, end, &signatures, sort_budget, stop))
                .collect()
        })
    }

    /// Step 3: the labels after the pending rows are added, starting from the labels stored
    /// for the covered rows. `each(row, label, changed)` is called for every row in order;
    /// `changed` is true for every new row and every covered row whose label changed (all a
    /// caller that stores labels needs to write). Needs every partition's candidate task done;
    /// the labels are kept in `step/` for the commit.
    pub fn union(&self, mut each: impl FnMut(u64, RowLabel, bool)) -> io::Result<UnionStats> {
        let (_, end) = self.pending()?;
        let covered = self.manifest.covered;
        let step = self.dir.join("step");
        let mut edge_runs = Vec::new();
        for p in 0..self.manifest.partitions {
            if !partition_path(&step, p, &format!("done-{end}.json")).exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the candidate task of partition {p} has not finished for rows up to {end}; run it first"
                    ),
                ));
            }
            edge_runs.push(partition_path(&step, p, &format!("edges-{end}")));
        }
        let stored = || -> io::Result<Box<dyn Iterator<Item = io::Result<RowLabel>>>> {
            Ok(if covered == 0 {
                Box::new(std::iter::empty())
            } else {
                Box::new(
                    RunReader::<LABEL_RECORD>::open(&self.labels_path(covered))?
                        .map(|r| r.map(|r| decode_label(&r))),
                )
            })
        };
        let mut failed: io::Result<()> = Ok(());
        let (mut union, count) = OrderedUnion::new(
            end,
            stored()?.map_while(|r| r.map_err(|e| failed = Err(e)).ok()),
        )
        .map_err(invalid)?;
        failed?;
        if count != covered {
            return Err(invalid(format!(
                "the index stores {count} labels for the {covered} rows it covers: damaged"
            )));
        }
        let mut stats = UnionStats {
            rows: end,
            new_rows: end - covered,
            union_bytes: union.heap_bytes() as u64,
            ..UnionStats::default()
        };
        for record in Merge::<EDGE_RECORD>::of_runs(&edge_runs)? {
            let (row, kind, earlier) = decode_edge(&record?);
            if earlier >= row || row < covered || row >= end {
                return Err(invalid(format!(
                    "edge {row} → {earlier} does not join a new row to an earlier one: a damaged edge run"
                )));
            }
            union.union(row, earlier, kind);
            stats.edges += 1;
        }
        let tmp = step.join(format!("labels-{end}.tmp"));
        let mut out = RunWriter::<LABEL_RECORD>::create(&tmp)?;
        let mut old = stored()?;
        for row in 0..end {
            let label = union.label(row);
            out.push(&encode_label(label))?;
            let was = if row < covered {
                Some(
                    old.next()
                        .ok_or_else(|| invalid("the stored labels ended early".into()))??,
                )
            } else {
                None
            };
            let changed = was != Some(label);
            stats.changed += u64::from(changed);
            each(row, label, changed);
        }
        out.finish()?;
        std::fs::rename(tmp, step.join(format!("labels-{end}")))?;
        Ok(stats)
    }

    /// Makes the pending rows part of the index: the merged runs replace the old ones, the
    /// writers' signatures become segments, and the manifest names them (the last step, by
    /// rename), with `tag` saying what the rows are. Call after [`DedupIndex::union`].
    pub fn commit(&mut self, tag: &str) -> io::Result<()> {
        let (pending, end) = self.pending()?;
        let old = self.manifest.covered;
        let step = self.dir.join("step");
        std::fs::rename(step.join(format!("labels-{end}")), self.labels_path(end)).map_err(
            |e| {
                io::Error::new(
                    e.kind(),
                    format!("no labels to commit (run the union first): {e}"),
                )
            },
        )?;
        for p in 0..self.manifest.partitions {
            std::fs::rename(
                partition_path(&step, p, &format!("keys-{end}")),
                self.run_path(p, end),
            )?;
        }
        for w in &pending {
            let file = format!("{}-{}.signatures", w.first_row, w.rows);
            std::fs::rename(
                self.dir.join("pending").join(&w.writer).join("signatures"),
                self.dir.join("segments").join(&file),
            )?;
            self.manifest.segments.push(Segment {
                first_row: w.first_row,
                rows: w.rows,
                file,
            });
        }
        self.manifest.covered = end;
        self.manifest.tag = tag.to_string();
        self.write_manifest()?;
        // The manifest names the new files; the rest is garbage.
        if old > 0 && old != end {
            for p in 0..self.manifest.partitions {
                let _ = std::fs::remove_file(self.run_path(p, old));
            }
            let _ = std::fs::remove_file(self.labels_path(old));
        }
        for w in &pending {
            let _ = std::fs::remove_dir_all(self.dir.join("pending").join(&w.writer));
        }
        let _ = std::fs::remove_dir_all(&step);
        std::fs::create_dir_all(&step)?;
        Ok(())
    }

    /// Where an update stands: rows covered and pending, and the partitions whose candidate
    /// task has not finished.
    pub fn status(&self) -> io::Result<IndexStatus> {
        let (pending, end) = self.pending()?;
        Ok(IndexStatus {
            dir: self.dir.display().to_string(),
            partitions: self.manifest.partitions,
            covered: self.manifest.covered,
            tag: self.manifest.tag.clone(),
            pending_rows: end - self.manifest.covered,
            writers: pending.into_iter().map(|w| w.writer).collect(),
            missing: if end > self.manifest.covered {
                self.missing(end)
            } else {
                Vec::new()
            },
        })
    }

    /// Bytes of the index's files on disk.
    pub fn disk_bytes(&self) -> io::Result<u64> {
        fn walk(dir: &Path) -> io::Result<u64> {
            let mut total = 0;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                total += if meta.is_dir() {
                    walk(&entry.path())?
                } else {
                    meta.len()
                };
            }
            Ok(total)
        }
        walk(&self.dir)
    }
}

/// Writes the keys and signatures of consecutive rows (step 1).
pub struct KeyWriter {
    dir: PathBuf,
    name: String,
    first_row: u64,
    rows: u64,
    records: u64,
    partitions: Vec<RunWriter<KEY_RECORD>>,
    signatures: SegmentWriter,
}

impl KeyWriter {
    fn create(dir: &Path, name: &str, first_row: u64, partitions: u32) -> io::Result<KeyWriter> {
        if dir.exists() {
            // A writer that did not finish (or one run again): start it over.
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        Ok(KeyWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            first_row,
            rows: 0,
            records: 0,
            partitions: (0..partitions)
                .map(|p| RunWriter::create(&partition_path(dir, p, "keys")))
                .collect::<io::Result<_>>()?,
            signatures: SegmentWriter::create(&dir.join("signatures"))?,
        })
    }

    /// Adds the next row's fingerprint; returns its row.
    pub fn add(&mut self, fp: &Fingerprint) -> io::Result<u64> {
        let row = self.first_row + self.rows;
        let partitions = self.partitions.len() as u32;
        let mut failed = Ok(());
        keys::for_each_key(fp, |space, key| {
            if failed.is_ok() {
                let p = keys::partition(space, key, partitions);
                failed = self.partitions[p as usize].push(&keys::encode(space, key, row));
                self.records += 1;
            }
        });
        failed?;
        self.signatures.push(&fp.minhash)?;
        self.rows += 1;
        Ok(row)
    }

    /// Syncs the files and records the writer as finished (the last file it writes).
    pub fn finish(self) -> io::Result<WrittenKeys> {
        for w in self.partitions {
            w.finish()?;
        }
        self.signatures.finish()?;
        let written = WrittenKeys {
            writer: self.name,
            first_row: self.first_row,
            rows: self.rows,
            key_records: self.records,
        };
        let tmp = self.dir.join("written.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&written).map_err(io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.dir.join("written.json"))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests;
