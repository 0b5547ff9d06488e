//! The local token cache: the plan's documents as one flat token file plus fixed-size records,
//! in the spirit of Megatron's `.bin`/`.idx`, so serving a sample is a memcpy from a mapping.
//!
//! Layout of a cache directory:
//! - `tokens.bin`: every selected document's token ids back to back, little-endian, at the
//!   lake's token width, in the order the lake was scanned;
//! - `docs.bin`: one 32-byte record per document, sorted by `(doc_id, checksum)`:
//!   `doc_id u64, offset u64 (in tokens), len u32, reserved u32, checksum u64` where the
//!   checksum is the XXH3-64 of the document's token bytes (what a fetched document is checked
//!   against, see `window.rs`); a document's index is its position here, so indexes never
//!   depend on where rows sit in the lake;
//! - `component-N.members`: the component's documents as ascending `u64` indexes;
//! - `component-N.groups`: for bin packing by task, one `u32` group per member, groups numbered
//!   in the sorted order of their values;
//! - `manifest.json`: sizes, group values and the fingerprints, written last.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenlake_schemas::TokenWidth;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::error::{PlanError, Result};
use crate::mmap::{MappedFile, U32s, U64s};
use crate::publish::{COMPLETE_MARKER, publish_dir, temp_dir_for, write_file};

/// Layout version of a token cache; part of its directory's key, so a release that changes the
/// layout builds new caches instead of misreading old ones.
/// Format 2: 32-byte records with each document's checksum, `u64` member indexes.
pub(crate) const FORMAT: u32 = 2;
const DOC_RECORD: u64 = 32;

/// One document of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedDoc {
    pub doc_id: u64,
    /// Position of its first token in `tokens.bin`, in tokens.
    pub offset: u64,
    pub len: u32,
    /// XXH3-64 of the document's token bytes.
    pub checksum: u64,
}

/// Which documents one component selected, by the indexes `push` returned, and the task value
/// of each when the component packs bins by task.
#[derive(Debug, Clone, Default)]
pub struct ComponentSelection {
    pub members: Vec<u64>,
    pub groups: Option<Vec<Option<String>>>,
}

/// What a token cache (or a token store, `store.rs`) holds: written last as `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenManifest {
    pub format: u32,
    pub token_width: u8,
    pub docs: u64,
    pub tokens: u64,
    /// See [`TokenCache::fingerprint`].
    pub fingerprint: u64,
    pub components: Vec<ComponentManifest>,
    /// XXH3-64 of `tokens.bin` and of `docs.bin`, checked before a cache filled by another
    /// process is used (absent in synthetic caches, whose tokens are not real).
    #[serde(default)]
    checksums: Option<FileChecksums>,
}

impl TokenManifest {
    /// The width its `token_width` byte names, or why it names none.
    pub fn width(&self) -> std::result::Result<TokenWidth, String> {
        match self.token_width {
            2 => Ok(TokenWidth::U16),
            4 => Ok(TokenWidth::U32),
            w => Err(format!("token width {w}")),
        }
    }

    /// Whether its tokens are real (synthetic caches record no checksums).
    pub fn has_checksums(&self) -> bool {
        self.checksums.is_some()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct FileChecksums {
    tokens: u64,
    docs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentManifest {
    pub docs: u64,
    pub tokens: u64,
    pub fingerprint: u64,
    /// Task values in group-number order; `None` is documents without a task.
    pub groups: Option<Vec<Option<String>>>,
}

struct PushedDoc {
    doc_id: u64,
    offset: u64,
    len: u32,
    hash: u64,
}

/// Writes a token cache: documents are pushed in any order, then [`finish`] sorts them.
///
/// [`finish`]: TokenCacheBuilder::finish
pub struct TokenCacheBuilder {
    target: PathBuf,
    tmp: PathBuf,
    width: TokenWidth,
    tokens: Option<BufWriter<File>>,
    tokens_hash: Xxh3,
    n_tokens: u64,
    docs: Vec<PushedDoc>,
    /// A cache of records only (see [`TokenCacheBuilder::records_only`]): the tokens its
    /// records count, where `n_tokens` is the end of the furthest one.
    records_only: Option<u64>,
}

impl TokenCacheBuilder {
    /// Starts a cache that will live at `target` once finished.
    pub fn new(target: &Path, width: TokenWidth) -> Result<Self> {
        let tmp = temp_dir_for(target)?;
        let path = tmp.join("tokens.bin");
        let file =
            File::create(&path).map_err(PlanError::io(format!("creating {}", path.display())))?;
        Ok(TokenCacheBuilder {
            target: target.to_path_buf(),
            tmp,
            width,
            tokens: Some(BufWriter::with_capacity(1 << 20, file)),
            tokens_hash: Xxh3::new(),
            n_tokens: 0,
            docs: Vec::new(),
            records_only: None,
        })
    }

    /// A cache of records alone, their offsets and checksums given (no tokens file): the index
    /// of a token store sealed from shards (`store.rs`), whose tokens stay in object storage.
    /// It opens with [`TokenCache::open_index`]; plans build over it.
    pub fn records_only(target: &Path, width: TokenWidth) -> Result<Self> {
        let mut builder = Self::new(target, width)?;
        builder.tokens = None;
        builder.records_only = Some(0);
        Ok(builder)
    }

    /// Adds a document's record to a records-only cache; returns its push index.
    pub fn push_record(
        &mut self,
        doc_id: u64,
        offset: u64,
        len: u32,
        checksum: u64,
    ) -> Result<u64> {
        let Some(real) = self.records_only.as_mut() else {
            panic!("push_record on a cache with tokens; use push");
        };
        *real += u64::from(len);
        let index = self.docs.len() as u64;
        self.docs.push(PushedDoc {
            doc_id,
            offset,
            len,
            hash: checksum,
        });
        self.n_tokens = self.n_tokens.max(offset + u64::from(len));
        Ok(index)
    }

    /// A cache whose documents have lengths but all-zero tokens, stored as a sparse file: what
    /// the planner benchmarks use to plan ten million documents without writing their tokens.
    pub fn synthetic(target: &Path, width: TokenWidth) -> Result<Self> {
        let mut builder = Self::new(target, width)?;
        builder.tokens = None;
        Ok(builder)
    }

    pub fn width(&self) -> TokenWidth {
        self.width
    }

    /// Adds one document given its token ids as little-endian bytes at the cache's width;
    /// returns its push index.
    pub fn push(&mut self, doc_id: u64, token_bytes: &[u8]) -> Result<u64> {
        let w = self.width.bytes();
        debug_assert_eq!(token_bytes.len() % w, 0);
        let len = (token_bytes.len() / w) as u64;
        let file = self
            .tokens
            .as_mut()
            .expect("push on a synthetic cache; use push_len");
        file.write_all(token_bytes)
            .map_err(PlanError::io("writing the token cache"))?;
        self.tokens_hash.update(token_bytes);
        self.record(doc_id, len, xxh3_64(token_bytes))
    }

    /// Adds a document of `len` zero tokens to a synthetic cache.
    pub fn push_len(&mut self, doc_id: u64, len: u32) -> Result<u64> {
        assert!(self.tokens.is_none(), "push_len on a real cache; use push");
        self.record(
            doc_id,
            u64::from(len),
            xxh3_64(&u64::from(len).to_le_bytes()),
        )
    }

    fn record(&mut self, doc_id: u64, len: u64, hash: u64) -> Result<u64> {
        let index = self.docs.len() as u64;
        let len = u32::try_from(len).map_err(|_| {
            PlanError::InvalidRequest(format!(
                "document {doc_id:016x} has more than u32::MAX tokens"
            ))
        })?;
        self.docs.push(PushedDoc {
            doc_id,
            offset: self.n_tokens,
            len,
            hash,
        });
        self.n_tokens += u64::from(len);
        Ok(index)
    }

    pub fn docs(&self) -> usize {
        self.docs.len()
    }

    /// Sorts the documents, writes the indexes and the manifest and moves the cache into place.
    // Kept as one function: the token cache's files are written and published in one order that
    // keeps a half-built cache invisible.
    pub fn finish(mut self, components: Vec<ComponentSelection>) -> Result<TokenCache> {
        let tokens_path = self.tmp.join("tokens.bin");
        let real_tokens = self.tokens.is_some();
        match self.tokens.take() {
            Some(mut file) => file
                .flush()
                .map_err(PlanError::io("writing the token cache"))?,
            None if self.records_only.is_some() => std::fs::remove_file(&tokens_path)
                .map_err(PlanError::io(format!("removing {}", tokens_path.display())))?,
            None => File::options()
                .write(true)
                .open(&tokens_path)
                .and_then(|f| f.set_len(self.n_tokens * self.width.bytes() as u64))
                .map_err(PlanError::io(format!("sizing {}", tokens_path.display())))?,
        }

        // Sorting by content makes document indexes, and so the plan, independent of the
        // order the lake's fragments were scanned in.
        // The keys are copied out first: sorting indexes that point into `docs` would cost two
        // cache misses per comparison.
        let mut keys: Vec<(u64, u64, u32, u64)> = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.doc_id, d.hash, d.len, i as u64))
            .collect();
        keys.sort_unstable();
        let sorted: Vec<u64> = keys.into_iter().map(|k| k.3).collect();
        let mut rank = vec![0u64; sorted.len()];
        let mut records = Vec::with_capacity(sorted.len() * DOC_RECORD as usize);
        for (position, &i) in sorted.iter().enumerate() {
            rank[i as usize] = position as u64;
            let d = &self.docs[i as usize];
            records.extend_from_slice(&d.doc_id.to_le_bytes());
            records.extend_from_slice(&d.offset.to_le_bytes());
            records.extend_from_slice(&d.len.to_le_bytes());
            records.extend_from_slice(&0u32.to_le_bytes());
            records.extend_from_slice(&d.hash.to_le_bytes());
        }
        write_file(&self.tmp.join("docs.bin"), &records)?;
        let checksums = real_tokens.then(|| FileChecksums {
            tokens: self.tokens_hash.digest(),
            docs: xxh3_64(&records),
        });
        drop(records);

        let mut manifests = Vec::with_capacity(components.len());
        let mut data = Xxh3::new();
        data.update(&[self.width.bytes() as u8]);
        for (c, selection) in components.into_iter().enumerate() {
            let grouped = selection.groups.is_some();
            if let Some(groups) = &selection.groups {
                assert_eq!(
                    groups.len(),
                    selection.members.len(),
                    "one group per member"
                );
            }
            let mut members: Vec<(u64, Option<String>)> = match selection.groups {
                Some(groups) => selection
                    .members
                    .iter()
                    .zip(groups)
                    .map(|(&m, g)| (rank[m as usize], g))
                    .collect(),
                None => selection
                    .members
                    .iter()
                    .map(|&m| (rank[m as usize], None))
                    .collect(),
            };
            members.sort_unstable();
            members.dedup_by_key(|m| m.0);
            let mut fp = Xxh3::new();
            let mut tokens = 0u64;
            let mut member_bytes = Vec::with_capacity(members.len() * 8);
            for (m, group) in &members {
                let d = &self.docs[sorted[*m as usize] as usize];
                tokens += u64::from(d.len);
                member_bytes.extend_from_slice(&m.to_le_bytes());
                fp.update(&d.doc_id.to_le_bytes());
                fp.update(&d.len.to_le_bytes());
                fp.update(&d.hash.to_le_bytes());
                match group {
                    Some(g) => {
                        fp.update(&(g.len() as u64).to_le_bytes());
                        fp.update(g.as_bytes());
                    }
                    None => fp.update(&u64::MAX.to_le_bytes()),
                }
            }
            write_file(
                &self.tmp.join(format!("component-{c}.members")),
                &member_bytes,
            )?;
            drop(member_bytes);
            let groups = if grouped {
                let mut values: Vec<Option<String>> =
                    members.iter().map(|(_, g)| g.clone()).collect();
                values.sort_unstable();
                values.dedup();
                let mut bytes = Vec::with_capacity(members.len() * 4);
                for (_, g) in &members {
                    let id = values.binary_search(g).expect("interned") as u32;
                    bytes.extend_from_slice(&id.to_le_bytes());
                }
                write_file(&self.tmp.join(format!("component-{c}.groups")), &bytes)?;
                Some(values)
            } else {
                None
            };
            let fingerprint = fp.digest();
            data.update(&fingerprint.to_le_bytes());
            manifests.push(ComponentManifest {
                docs: members.len() as u64,
                tokens,
                fingerprint,
                groups,
            });
        }

        let manifest = TokenManifest {
            format: FORMAT,
            token_width: self.width.bytes() as u8,
            docs: self.docs.len() as u64,
            tokens: self.records_only.unwrap_or(self.n_tokens),
            fingerprint: data.digest(),
            components: manifests,
            checksums,
        };
        write_file(
            &self.tmp.join(COMPLETE_MARKER),
            &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
        )?;
        publish_dir(&self.tmp, &self.target)?;
        match self.records_only {
            Some(_) => TokenCache::open_index(&self.target),
            None => TokenCache::open(&self.target),
        }
    }
}

impl Drop for TokenCacheBuilder {
    /// An unfinished cache (an error, Ctrl-C) leaves no temporary directory behind.
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// An opened token cache.
#[derive(Clone)]
pub struct TokenCache {
    dir: PathBuf,
    width: TokenWidth,
    /// `None` in an index-only cache (records and members, no tokens): what a node in window
    /// mode downloads from a token store to build a plan it found no published index for.
    tokens: Option<MappedFile>,
    docs: MappedFile,
    members: Vec<MappedFile>,
    groups: Vec<Option<MappedFile>>,
    manifest: std::sync::Arc<TokenManifest>,
}

impl TokenCache {
    pub fn open(dir: &Path) -> Result<TokenCache> {
        Self::open_with(dir, true)
    }

    /// A cache of records and members only: plans can be built over it, not read.
    pub fn open_index(dir: &Path) -> Result<TokenCache> {
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, with_tokens: bool) -> Result<TokenCache> {
        let manifest_path = dir.join(COMPLETE_MARKER);
        let corrupt = |reason: String| PlanError::CacheCorrupt {
            path: manifest_path.display().to_string(),
            reason,
        };
        let text = std::fs::read(&manifest_path).map_err(PlanError::io(format!(
            "reading {}",
            manifest_path.display()
        )))?;
        let manifest: TokenManifest =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not {FORMAT}",
                manifest.format
            )));
        }
        let width = manifest.width().map_err(corrupt)?;
        let tokens = if with_tokens {
            let tokens = MappedFile::open(&dir.join("tokens.bin"))?;
            tokens.expect_random_access();
            if tokens.bytes().len() as u64 != manifest.tokens * width.bytes() as u64 {
                return Err(corrupt("tokens.bin has the wrong size".into()));
            }
            Some(tokens)
        } else {
            None
        };
        let docs = MappedFile::open(&dir.join("docs.bin"))?;
        if docs.bytes().len() as u64 != manifest.docs * DOC_RECORD {
            return Err(corrupt("docs.bin has the wrong size".into()));
        }
        let mut members = Vec::new();
        let mut groups = Vec::new();
        for (c, component) in manifest.components.iter().enumerate() {
            let m = MappedFile::open(&dir.join(format!("component-{c}.members")))?;
            if m.bytes().len() as u64 != component.docs * 8 {
                return Err(corrupt(format!("component-{c}.members has the wrong size")));
            }
            members.push(m);
            groups.push(match component.groups {
                Some(_) => Some(MappedFile::open(
                    &dir.join(format!("component-{c}.groups")),
                )?),
                None => None,
            });
        }
        Ok(TokenCache {
            dir: dir.to_path_buf(),
            width,
            tokens,
            docs,
            members,
            groups,
            manifest: std::sync::Arc::new(manifest),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks `tokens.bin` and `docs.bin` against the checksums the builder recorded: a cache
    /// damaged on disk, or copied in part, is found before it serves a single batch. Reads both
    /// files once (XXH3 runs at memory speed).
    pub fn verify(&self) -> Result<()> {
        let Some(expected) = self.manifest.checksums else {
            return Ok(());
        };
        let found = FileChecksums {
            tokens: xxh3_64(self.token_file().bytes()),
            docs: xxh3_64(self.docs.bytes()),
        };
        if found != expected {
            return Err(PlanError::CacheCorrupt {
                path: self.dir.display().to_string(),
                reason: format!(
                    "checksums differ from its manifest (tokens {:016x} vs {:016x}, docs {:016x} vs {:016x})",
                    found.tokens, expected.tokens, found.docs, expected.docs
                ),
            });
        }
        Ok(())
    }

    /// Bytes the cache's files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        crate::cache_dir::dir_bytes(&self.dir)
    }

    pub fn width(&self) -> TokenWidth {
        self.width
    }

    /// Fingerprint of the selected data: every component's documents, their token contents and
    /// task values. Equal fingerprints mean equal plans for equal recipes and seeds.
    pub fn fingerprint(&self) -> u64 {
        self.manifest.fingerprint
    }

    pub fn docs(&self) -> u64 {
        self.manifest.docs
    }

    pub fn tokens(&self) -> u64 {
        self.manifest.tokens
    }

    pub fn components(&self) -> &[ComponentManifest] {
        &self.manifest.components
    }

    pub fn manifest(&self) -> &std::sync::Arc<TokenManifest> {
        &self.manifest
    }

    #[inline]
    pub fn doc(&self, index: u64) -> CachedDoc {
        let at = index as usize * DOC_RECORD as usize;
        let r = &self.docs.bytes()[at..at + DOC_RECORD as usize];
        CachedDoc {
            doc_id: u64::from_le_bytes(r[0..8].try_into().expect("8")),
            offset: u64::from_le_bytes(r[8..16].try_into().expect("8")),
            len: u32::from_le_bytes(r[16..20].try_into().expect("4")),
            checksum: u64::from_le_bytes(r[24..32].try_into().expect("8")),
        }
    }

    fn token_file(&self) -> &MappedFile {
        self.tokens
            .as_ref()
            .expect("tokens read from an index-only token cache")
    }

    /// Whether the cache holds its tokens (see [`TokenCache::open_index`]).
    pub fn has_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// `len` tokens of the flat token file from token `offset`, as stored bytes.
    #[inline]
    pub fn token_bytes(&self, offset: u64, len: u64) -> &[u8] {
        let w = self.width.bytes();
        &self.token_file().bytes()[offset as usize * w..(offset + len) as usize * w]
    }

    /// Starts loading the token at `offset` (see [`crate::mmap::prefetch`]).
    #[inline]
    pub fn prefetch_token(&self, offset: u64) {
        let at = offset as usize * self.width.bytes();
        crate::mmap::prefetch(self.token_file().bytes().get(at..).unwrap_or_default());
    }

    /// Component `c`'s documents, ascending.
    pub fn members(&self, c: usize) -> U64s<'_> {
        self.members[c]
            .u64s(0, self.manifest.components[c].docs)
            .expect("sized at open")
    }

    /// Component `c`'s group per member, when it packs bins by task.
    pub fn groups(&self, c: usize) -> Option<U32s<'_>> {
        self.groups[c].as_ref().map(|g| {
            g.u32s(0, self.manifest.components[c].docs)
                .expect("sized at open")
        })
    }

    /// Bytes the cache takes on disk (sparse token files count in full).
    pub fn size_bytes(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.bytes().len() as u64)
            + self.docs.bytes().len() as u64
            + self
                .members
                .iter()
                .map(|m| m.bytes().len() as u64)
                .sum::<u64>()
            + self
                .groups
                .iter()
                .flatten()
                .map(|m| m.bytes().len() as u64)
                .sum::<u64>()
    }
}
