//! Each row's MinHash signature (the 112 low 16-bit minimums), in segments of consecutive
//! rows with a fixed stride, so a candidate task reads a row's signature with one positioned
//! read and holds only the signatures of the group it is walking. A segment is written once,
//! by the writer of its rows, and never changed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::super::PERMUTATIONS;
use super::runs::WRITE_BUFFER;

/// One byte saying whether the row has a signature (documents without words have none), then
/// the signature, little-endian.
pub const STRIDE: usize = 1 + PERMUTATIONS * 2;

pub type Signature = [u16; PERMUTATIONS];

pub struct SegmentWriter {
    out: BufWriter<File>,
}

impl SegmentWriter {
    pub fn create(path: &Path) -> io::Result<SegmentWriter> {
        Ok(SegmentWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER * 4, File::create(path)?),
        })
    }

    pub fn push(&mut self, minhash: &[u16]) -> io::Result<()> {
        let mut record = [0u8; STRIDE];
        if minhash.len() == PERMUTATIONS {
            record[0] = 1;
            for (chunk, h) in record[1..].chunks_exact_mut(2).zip(minhash) {
                chunk.copy_from_slice(&h.to_le_bytes());
            }
        }
        self.out.write_all(&record)
    }

    pub fn finish(self) -> io::Result<()> {
        self.out
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    }
}

/// A segment on disk: rows `first_row..first_row + rows`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub first_row: u64,
    pub rows: u64,
    /// The file's name in the index's `segments/` directory.
    pub file: String,
}

/// The signatures of every row, across segments.
pub struct Signatures {
    /// Sorted by first row, contiguous.
    segments: Vec<(u64, u64, File)>,
}

impl Signatures {
    /// Opens each segment, `(directory, segment)`.
    pub fn open(segments: &[(PathBuf, Segment)]) -> io::Result<Signatures> {
        let mut open = Vec::with_capacity(segments.len());
        for (dir, s) in segments {
            let path: PathBuf = dir.join(&s.file);
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            if len != s.rows * STRIDE as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} holds {len} bytes, not the {} of its {} rows (damaged or cut short)",
                        path.display(),
                        s.rows * STRIDE as u64,
                        s.rows
                    ),
                ));
            }
            open.push((s.first_row, s.rows, file));
        }
        open.sort_by_key(|s| s.0);
        Ok(Signatures { segments: open })
    }

    /// Row `row`'s signature, or `None` when it has none.
    pub fn read(&self, row: u64) -> io::Result<Option<Signature>> {
        let at = self.segments.partition_point(|s| s.0 <= row);
        let Some((first, rows, file)) = at.checked_sub(1).map(|i| &self.segments[i]) else {
            return Err(missing(row));
        };
        if row >= first + rows {
            return Err(missing(row));
        }
        let mut record = [0u8; STRIDE];
        file.read_exact_at(&mut record, (row - first) * STRIDE as u64)?;
        if record[0] == 0 {
            return Ok(None);
        }
        let mut sig = [0u16; PERMUTATIONS];
        for (h, chunk) in sig.iter_mut().zip(record[1..].chunks_exact(2)) {
            *h = u16::from_le_bytes([chunk[0], chunk[1]]);
        }
        Ok(Some(sig))
    }
}

fn missing(row: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no signature segment holds row {row}: the index is missing a segment"),
    )
}
