//! Sorted runs of fixed-width records, sorted within a memory budget: what every step of the
//! partitioned de-duplication reads and writes. Records are compared as bytes, so every field
//! is written big-endian and a record's byte order is its tuple order.
//!
//! An [`ExternalSort`] keeps records in memory up to its budget, writes each full buffer to a
//! sorted chunk file, and [`Merge`]s the chunks (and any runs that are already sorted) into one
//! ordered stream: memory is the budget plus one read buffer per chunk, whatever the input.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes each open run reads ahead.
const READ_BUFFER: usize = 64 * 1024;
/// Bytes each run being written buffers.
pub(super) const WRITE_BUFFER: usize = 16 * 1024;

/// Writes records to a run file through a buffer.
pub struct RunWriter<const W: usize> {
    out: BufWriter<File>,
    records: u64,
}

impl<const W: usize> RunWriter<W> {
    pub fn create(path: &Path) -> io::Result<RunWriter<W>> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER, File::create(path)?),
            records: 0,
        })
    }

    pub fn push(&mut self, record: &[u8; W]) -> io::Result<()> {
        self.records += 1;
        self.out.write_all(record)
    }

    /// Flushes and syncs the file; returns how many records it holds.
    pub fn finish(self) -> io::Result<u64> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.records)
    }
}

/// Reads a run file's records in order.
pub struct RunReader<const W: usize> {
    input: BufReader<File>,
}

impl<const W: usize> RunReader<W> {
    pub fn open(path: &Path) -> io::Result<RunReader<W>> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len % W as u64 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {len} bytes, not a whole number of {W}-byte records (damaged or cut short)",
                    path.display()
                ),
            ));
        }
        Ok(RunReader {
            input: BufReader::with_capacity(READ_BUFFER, file),
        })
    }
}

impl<const W: usize> Iterator for RunReader<W> {
    type Item = io::Result<[u8; W]>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = [0u8; W];
        match self.input.read_exact(&mut record) {
            Ok(()) => Some(Ok(record)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Sorts any number of records in `budget` bytes of memory, spilling sorted chunks to
/// `scratch` (removed when the merge that reads them is dropped).
pub struct ExternalSort<const W: usize> {
    scratch: PathBuf,
    name: String,
    capacity: usize,
    buffer: Vec<[u8; W]>,
    chunks: Vec<PathBuf>,
}

impl<const W: usize> ExternalSort<W> {
    /// Chunk files are `scratch/<name>.sort-<k>`.
    pub fn new(scratch: &Path, name: &str, budget: usize) -> ExternalSort<W> {
        ExternalSort {
            scratch: scratch.to_path_buf(),
            name: name.to_string(),
            capacity: (budget / W).max(1024),
            buffer: Vec::new(),
            chunks: Vec::new(),
        }
    }

    pub fn push(&mut self, record: [u8; W]) -> io::Result<()> {
        if self.buffer.len() == self.capacity {
            self.spill()?;
        }
        self.buffer.push(record);
        Ok(())
    }

    /// Bytes the sort holds in memory at most.
    pub fn budget_bytes(&self) -> usize {
        self.capacity * W
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let path = self
            .scratch
            .join(format!("{}.sort-{}", self.name, self.chunks.len()));
        let mut out = RunWriter::<W>::create(&path)?;
        self.chunks.push(path);
        for r in &self.buffer {
            out.push(r)?;
        }
        out.finish()?;
        self.buffer.clear();
        Ok(())
    }

    /// Every record pushed, and every record of the already sorted `runs`, in order.
    pub fn merge_with(mut self, runs: &[PathBuf]) -> io::Result<Merge<W>> {
        self.buffer.sort_unstable();
        let mut sources = Vec::with_capacity(self.chunks.len() + runs.len() + 1);
        for path in self.chunks.iter().chain(runs) {
            sources.push(Source::File(RunReader::open(path)?));
        }
        sources.push(Source::Memory(std::mem::take(&mut self.buffer).into_iter()));
        Merge::new(sources, std::mem::take(&mut self.chunks))
    }
}

enum Source<const W: usize> {
    File(RunReader<W>),
    Memory(std::vec::IntoIter<[u8; W]>),
}

impl<const W: usize> Source<W> {
    fn next(&mut self) -> Option<io::Result<[u8; W]>> {
        match self {
            Source::File(r) => r.next(),
            Source::Memory(m) => m.next().map(Ok),
        }
    }
}

/// The ordered union of sorted sources (duplicates kept).
pub struct Merge<const W: usize> {
    sources: Vec<Source<W>>,
    heap: BinaryHeap<Reverse<([u8; W], usize)>>,
    /// Chunk files this merge owns and removes when dropped.
    owned: Vec<PathBuf>,
}

impl<const W: usize> Merge<W> {
    fn new(mut sources: Vec<Source<W>>, owned: Vec<PathBuf>) -> io::Result<Merge<W>> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(r) = s.next() {
                heap.push(Reverse((r?, i)));
            }
        }
        Ok(Merge {
            sources,
            heap,
            owned,
        })
    }

    /// The ordered union of sorted run files.
    pub fn of_runs(runs: &[PathBuf]) -> io::Result<Merge<W>> {
        let sources = runs
            .iter()
            .map(|p| RunReader::open(p).map(Source::File))
            .collect::<io::Result<Vec<_>>>()?;
        Merge::new(sources, Vec::new())
    }
}

impl<const W: usize> Iterator for Merge<W> {
    type Item = io::Result<[u8; W]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.sources.len() == 1 {
            // One source (the usual first increment): no heap to keep.
            return match self.heap.pop() {
                Some(Reverse((record, _))) => Some(Ok(record)),
                None => self.sources[0].next(),
            };
        }
        let Reverse((record, i)) = self.heap.pop()?;
        match self.sources[i].next() {
            Some(Ok(next)) => {
                debug_assert!(next >= record, "a source is not sorted");
                self.heap.push(Reverse((next, i)));
            }
            Some(Err(e)) => return Some(Err(e)),
            None => {}
        }
        Some(Ok(record))
    }
}

impl<const W: usize> Drop for Merge<W> {
    fn drop(&mut self) {
        for path in &self.owned {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sort_over_its_budget_spills_and_merges_into_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<PathBuf> = (0..2)
            .map(|k| {
                let path = dir.path().join(format!("run-{k}"));
                let mut w = RunWriter::<4>::create(&path).unwrap();
                for v in (k..600u32).step_by(7) {
                    w.push(&v.to_be_bytes()).unwrap();
                }
                w.finish().unwrap();
                path
            })
            .collect();
        // 1,024 records of memory at least: 5,000 records make four chunks.
        let mut sort = ExternalSort::<4>::new(dir.path(), "t", 16);
        let mut expected: Vec<u32> = Vec::new();
        let mut state = 17u32;
        for _ in 0..5000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            sort.push(state.to_be_bytes()).unwrap();
            expected.push(state);
        }
        assert_eq!(sort.chunks.len(), 4);
        for k in 0..2 {
            expected.extend((k..600u32).step_by(7));
        }
        expected.sort_unstable();
        let merged: Vec<u32> = sort
            .merge_with(&runs)
            .unwrap()
            .map(|r| u32::from_be_bytes(r.unwrap()))
            .collect();
        assert_eq!(merged, expected);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "the chunks are removed: {left:?}");
    }

    #[test]
    fn a_run_cut_short_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut");
        std::fs::write(&path, [0u8; 10]).unwrap();
        let err = RunReader::<4>::open(&path).err().unwrap();
        assert!(err.to_string().contains("not a whole number"), "{err}");
    }
}
