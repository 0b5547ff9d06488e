//! Read-only memory maps of the plan and token cache files, and little-endian views of them.
//!
//! This is the crate's only `unsafe`: [`memmap2::Mmap::map`] is unsafe because another process
//! could truncate or rewrite a mapped file underneath us. Cache files are written once under a
//! temporary name, renamed into place and never modified afterwards (a rebuilt cache gets a new
//! directory), so a mapping always sees complete, immutable bytes. [`prefetch`], a hint to the
//! CPU, is the other.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{PlanError, Result};

/// A whole file mapped read-only; cheap to clone and share between threads.
#[derive(Clone)]
pub struct MappedFile {
    path: Arc<PathBuf>,
    // Empty files cannot be mapped on every platform; they are kept as `None`.
    map: Option<Arc<Mmap>>,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile> {
        let file =
            File::open(path).map_err(PlanError::io(format!("opening {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(PlanError::io(format!("reading {}", path.display())))?
            .len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: cache files are immutable once renamed into place (see the module doc).
            let map = unsafe { Mmap::map(&file) }
                .map_err(PlanError::io(format!("mapping {}", path.display())))?;
            Some(Arc::new(map))
        };
        Ok(MappedFile {
            path: Arc::new(path.to_path_buf()),
            map,
        })
    }

    /// Tells the kernel that reads will jump around (shuffled samples): a page fault then
    /// reads that page alone instead of a readahead window the sample will not use.
    pub fn expect_random_access(&self) {
        if let Some(map) = &self.map {
            // Advice only; a kernel that ignores it reads ahead as usual.
            let _ = map.advise(memmap2::Advice::Random);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().map(|m| &m[..]).unwrap_or(&[])
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `u32` array of `len` entries at byte `offset`, or an error naming the file when the
    /// file is shorter than its manifest says.
    pub fn u32s(&self, offset: u64, len: u64) -> Result<U32s<'_>> {
        Ok(U32s(self.slice(offset, len * 4)?))
    }

    pub fn u64s(&self, offset: u64, len: u64) -> Result<U64s<'_>> {
        Ok(U64s(self.slice(offset, len * 8)?))
    }

    pub fn slice(&self, offset: u64, len: u64) -> Result<&[u8]> {
        let bytes = self.bytes();
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= bytes.len() as u64);
        match end {
            Some(end) => Ok(&bytes[offset as usize..end as usize]),
            None => Err(PlanError::CacheCorrupt {
                path: self.path.display().to_string(),
                reason: format!(
                    "{len} bytes at offset {offset} are past its end ({} bytes)",
                    bytes.len()
                ),
            }),
        }
    }
}

/// Asks the CPU to start loading the cache line that holds `bytes[0]`, without waiting for it.
///
/// Assembling a shuffled batch is a chain of cache misses (sample → window start → document
/// entry → tokens), each a random place in a large mapping. Hinting every sample's next load
/// before taking any of them lets the misses of a whole batch overlap; an ordinary load would
/// do the same but holds the CPU's reorder window until its line arrives, which at a hundred
/// pieces a batch fills it. Nothing happens for an empty slice.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees; the pointer is in
    // bounds of a live slice regardless.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::hint::black_box(bytes[0]);
}

/// A little-endian `u32` array inside a mapped file. Entries are decoded on access, which keeps
/// the code free of alignment assumptions and costs nothing measurable next to a page fault.
#[derive(Clone, Copy)]
pub struct U32s<'a>(&'a [u8]);

impl<'a> U32s<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.0[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
    }

    /// The raw bytes of `n` entries from entry `i`: one bounds check for a record of words.
    #[inline]
    pub fn words(&self, i: usize, n: usize) -> &'a [u8] {
        &self.0[i * 4..(i + n) * 4]
    }

    /// Starts loading entry `i` (see [`prefetch`]); nothing when it is out of bounds.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.0.get(i * 4..).unwrap_or_default());
    }
}

#[derive(Clone, Copy)]
pub struct U64s<'a>(&'a [u8]);

impl<'a> U64s<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Starts loading entry `i` (see [`prefetch`]); nothing when it is out of bounds.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.0.get(i * 8..).unwrap_or_default());
    }

    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }
}
