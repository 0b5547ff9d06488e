//! Megatron-Core's indexed dataset (`megatron/core/datasets/indexed_dataset.py`): a `.bin` of
//! every sequence's token ids back to back, and an `.idx` that says where each one starts.
//!
//! The `.idx` layout, little-endian throughout:
//!
//! | field             | type              | value                                      |
//! |-------------------|-------------------|--------------------------------------------|
//! | magic             | 9 bytes           | `MMIDIDX\0\0`                              |
//! | version           | u64               | 1                                          |
//! | dtype code        | u8                | 8 = uint16, 4 = int32                      |
//! | sequence count    | u64               | N                                          |
//! | document count    | u64               | N + 1 (the document index has a leading 0) |
//! | sequence lengths  | N × i32           | tokens per sequence                        |
//! | sequence pointers | N × i64           | byte offset of each sequence in `.bin`     |
//! | document indices  | (N + 1) × i64     | 0, 1, …, N: one sequence per document      |

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tokenlake_schemas::TokenWidth;

use crate::error::{ExportError, Result};

pub const INDEX_MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
pub const INDEX_VERSION: u64 = 1;

/// Megatron's dtype code and item size for a lake's token width: `uint16` when every id fits
/// (as Megatron's own `DType.optimal_dtype` picks for vocabularies under 65,500), else `int32`.
pub fn dtype(width: TokenWidth) -> (u8, usize) {
    match width {
        TokenWidth::U16 => (8, 2),
        TokenWidth::U32 => (4, 4),
    }
}

/// Writes `PREFIX.bin` and `PREFIX.idx` as `.partial` files; [`MegatronWriter::finish`]
/// completes the index and the caller publishes both by renaming.
pub struct MegatronWriter {
    bin: BufWriter<File>,
    bin_path: PathBuf,
    width: TokenWidth,
    lengths: Vec<i32>,
    tokens: u64,
    /// Appended to every document, as Megatron's `preprocess_data.py --append-eod` does, so
    /// documents stay apart when Megatron concatenates them into samples.
    eos: Option<u32>,
}

impl MegatronWriter {
    pub fn create(bin_path: &Path, width: TokenWidth, eos: Option<u32>) -> Result<MegatronWriter> {
        if let (TokenWidth::U16, Some(eos)) = (width, eos)
            && eos > u32::from(u16::MAX)
        {
            return Err(ExportError::Invalid {
                message: format!(
                    "the end-of-document token {eos} does not fit the lake's 16-bit token ids"
                ),
            });
        }
        let file = File::create(bin_path).map_err(ExportError::io(bin_path))?;
        Ok(MegatronWriter {
            bin: BufWriter::with_capacity(1 << 20, file),
            bin_path: bin_path.to_path_buf(),
            width,
            lengths: Vec::new(),
            tokens: 0,
            eos,
        })
    }

    /// Appends one document's token ids (as stored: u16 or u32 values widened to u32).
    pub fn push(&mut self, ids: impl ExactSizeIterator<Item = u32>) -> Result<()> {
        let len = ids.len() + usize::from(self.eos.is_some());
        let len = i32::try_from(len).map_err(|_| ExportError::Invalid {
            message: format!("a document of {len} tokens is longer than Megatron's i32 lengths"),
        })?;
        for id in ids.chain(self.eos) {
            match self.width {
                TokenWidth::U16 => self.bin.write_all(&(id as u16).to_le_bytes()),
                TokenWidth::U32 => {
                    let id = i32::try_from(id).map_err(|_| ExportError::Invalid {
                        message: format!("token id {id} does not fit Megatron's int32 tokens"),
                    })?;
                    self.bin.write_all(&id.to_le_bytes())
                }
            }
            .map_err(ExportError::io(&self.bin_path))?;
        }
        self.lengths.push(len);
        self.tokens += len as u64;
        Ok(())
    }

    pub fn documents(&self) -> u64 {
        self.lengths.len() as u64
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Flushes the `.bin` and writes the whole `.idx` to `idx_path`.
    pub fn finish(mut self, idx_path: &Path) -> Result<()> {
        self.bin.flush().map_err(ExportError::io(&self.bin_path))?;
        self.bin
            .get_ref()
            .sync_all()
            .map_err(ExportError::io(&self.bin_path))?;
        let file = File::create(idx_path).map_err(ExportError::io(idx_path))?;
        let mut idx = BufWriter::new(file);
        let (code, item_size) = dtype(self.width);
        let n = self.lengths.len() as u64;
        let mut out = Vec::with_capacity(34 + self.lengths.len() * 20 + 8);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.push(code);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(n + 1).to_le_bytes());
        for len in &self.lengths {
            out.extend_from_slice(&len.to_le_bytes());
        }
        let mut pointer = 0i64;
        for len in &self.lengths {
            out.extend_from_slice(&pointer.to_le_bytes());
            pointer += i64::from(*len) * item_size as i64;
        }
        for i in 0..=n as i64 {
            out.extend_from_slice(&i.to_le_bytes());
        }
        idx.write_all(&out).map_err(ExportError::io(idx_path))?;
        idx.flush().map_err(ExportError::io(idx_path))?;
        idx.get_ref()
            .sync_all()
            .map_err(ExportError::io(idx_path))?;
        Ok(())
    }
}

/// Reads an exported pair back (the layout above, checked field by field): each document's
/// token ids. Used by tests and by `export` to verify what it wrote.
pub fn read(bin_path: &Path, idx_path: &Path) -> Result<Vec<Vec<u32>>> {
    let bad = |what: &str| ExportError::Invalid {
        message: format!("{}: {what}", idx_path.display()),
    };
    let idx = std::fs::read(idx_path).map_err(ExportError::io(idx_path))?;
    let bin = std::fs::read(bin_path).map_err(ExportError::io(bin_path))?;
    if idx.len() < 34 || &idx[..9] != INDEX_MAGIC {
        return Err(bad("not a Megatron index (no MMIDIDX header)"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(idx[at..at + 8].try_into().expect("8 bytes"));
    if u64_at(9) != INDEX_VERSION {
        return Err(bad("index version is not 1"));
    }
    let item_size = match idx[17] {
        8 => 2,
        4 => 4,
        code => {
            return Err(bad(&format!(
                "dtype code {code} is neither uint16 nor int32"
            )));
        }
    };
    let n = u64_at(18) as usize;
    if u64_at(26) != n as u64 + 1 || idx.len() != 34 + n * 4 + n * 8 + (n + 1) * 8 {
        return Err(bad("counts and length disagree"));
    }
    let mut docs = Vec::with_capacity(n);
    for i in 0..n {
        let len_at = 34 + i * 4;
        let len = i32::from_le_bytes(idx[len_at..len_at + 4].try_into().expect("4 bytes")) as usize;
        let start = u64_at(34 + n * 4 + i * 8) as usize;
        let bytes = bin
            .get(start..start + len * item_size)
            .ok_or_else(|| bad(&format!("sequence {i} runs past the end of the .bin")))?;
        docs.push(if item_size == 2 {
            bytes
                .chunks_exact(2)
                .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
                .collect()
        } else {
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u32)
                .collect()
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads_back_with_the_documented_layout() {
        for (width, eos) in [(TokenWidth::U16, Some(2)), (TokenWidth::U32, None)] {
            let dir = tempfile::tempdir().unwrap();
            let (bin, idx) = (dir.path().join("x.bin"), dir.path().join("x.idx"));
            let docs: Vec<Vec<u32>> = vec![vec![5, 6, 7], vec![], vec![65_000, 1]];
            let mut w = MegatronWriter::create(&bin, width, eos).unwrap();
            for d in &docs {
                w.push(d.iter().copied()).unwrap();
            }
            w.finish(&idx).unwrap();
            let expected: Vec<Vec<u32>> = docs
                .iter()
                .map(|d| d.iter().copied().chain(eos).collect())
                .collect();
            assert_eq!(read(&bin, &idx).unwrap(), expected);
            let raw = std::fs::read(&idx).unwrap();
            assert_eq!(&raw[..9], b"MMIDIDX\x00\x00");
            assert_eq!(raw[17], dtype(width).0);
            // Three sequences, four document boundaries.
            assert_eq!(u64::from_le_bytes(raw[18..26].try_into().unwrap()), 3);
            assert_eq!(u64::from_le_bytes(raw[26..34].try_into().unwrap()), 4);
        }
    }

    #[test]
    fn an_eos_that_does_not_fit_16_bits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = MegatronWriter::create(&dir.path().join("x.bin"), TokenWidth::U16, Some(70_000))
            .err()
            .unwrap();
        assert!(err.to_string().contains("70000"), "{err}");
    }
}
