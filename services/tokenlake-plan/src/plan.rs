//! An opened plan: random access to any global sample in O(log epochs + BLEND_BLOCK), with
//! no replay, reading the memory-mapped plan index and token cache.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokenlake_schemas::TokenWidth;

use crate::build::{BLEND_BLOCK, DOC_ENTRY, FORMAT, PlanManifest, START_WORDS};
use crate::cursor::{Cursor, PlanId};
use crate::error::{PlanError, Result};
use crate::mmap::{MappedFile, U32s};
use crate::publish::COMPLETE_MARKER;
use crate::recipe::Packing;
use crate::token_cache::{CachedDoc, TokenCache, TokenManifest};
use crate::window::{DocRef, Window};

/// A piece of one document inside a sample. `offset` and `len` count in the document's unit
/// (its tokens then one EOS; offset `n_tokens` is the EOS); `position` is where the piece
/// starts in the sample. Tokens outside every span are padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub doc_id: u64,
    pub offset: u32,
    pub len: u32,
    pub position: u32,
}

/// A span on the wire (`tokenlake.v1.DocSpan`), both ways: the one conversion every transport
/// uses (the shared-memory ring's record converts from the wire form, in `tokenlake-ring`).
impl From<&tokenlake_schemas::proto::DocSpan> for Span {
    fn from(s: &tokenlake_schemas::proto::DocSpan) -> Self {
        Span {
            doc_id: s.doc_id,
            offset: s.offset,
            len: s.len,
            position: s.position,
        }
    }
}

impl From<&Span> for tokenlake_schemas::proto::DocSpan {
    fn from(s: &Span) -> Self {
        tokenlake_schemas::proto::DocSpan {
            doc_id: s.doc_id,
            offset: s.offset,
            len: s.len,
            position: s.position,
        }
    }
}

/// Where a sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SampleMeta {
    /// Global sample index.
    pub index: u64,
    pub stage: u16,
    pub component: u16,
    pub epoch: u32,
    /// Packed sample number inside its epoch (before the shuffle), unique per epoch.
    pub packed: u64,
}

/// Where a plan's tokens come from.
#[derive(Clone)]
pub(crate) enum Tokens {
    /// The node's full token cache, memory-mapped.
    Cache(TokenCache),
    /// A token store, fetched ahead into a bounded window (`window.rs`).
    Window(Arc<Window>),
}

pub struct Plan {
    manifest: Arc<PlanManifest>,
    index: MappedFile,
    data: Arc<TokenManifest>,
    tokens: Tokens,
    width: TokenWidth,
    eos: [u8; 4],
    pad: [u8; 4],
}

impl Plan {
    /// Opens the plan in `dir` over its token cache.
    pub fn open(dir: &Path, cache: TokenCache) -> Result<Plan> {
        let data = cache.manifest().clone();
        Self::open_over(dir, data, Tokens::Cache(cache))
    }

    /// Opens the plan in `dir` over the selection `data` describes, reading its tokens
    /// through `window`.
    pub fn open_windowed(dir: &Path, data: TokenManifest, window: Arc<Window>) -> Result<Plan> {
        Self::open_over(dir, Arc::new(data), Tokens::Window(window))
    }

    fn open_over(dir: &Path, data: Arc<TokenManifest>, tokens: Tokens) -> Result<Plan> {
        let path = dir.join(COMPLETE_MARKER);
        let corrupt = |reason: String| PlanError::CacheCorrupt {
            path: path.display().to_string(),
            reason,
        };
        let text =
            std::fs::read(&path).map_err(PlanError::io(format!("reading {}", path.display())))?;
        let manifest: PlanManifest =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not {FORMAT}",
                manifest.format
            )));
        }
        if manifest.token_width != data.token_width {
            return Err(corrupt("its token width is not the token cache's".into()));
        }
        if manifest.plan_id.data != data.fingerprint {
            return Err(corrupt(
                "it was built over another selection than its token cache's".into(),
            ));
        }
        let width = data.width().map_err(corrupt)?;
        let index = MappedFile::open(&dir.join("plan.idx"))?;
        let encode = |token: u32| {
            let mut b = [0u8; 4];
            match width {
                TokenWidth::U16 => b[..2].copy_from_slice(&(token as u16).to_le_bytes()),
                TokenWidth::U32 => b.copy_from_slice(&token.to_le_bytes()),
            }
            b
        };
        let (eos, pad) = (encode(manifest.eos_token), encode(manifest.pad_token));
        Ok(Plan {
            manifest: Arc::new(manifest),
            index,
            data,
            tokens,
            width,
            eos,
            pad,
        })
    }

    pub fn id(&self) -> PlanId {
        self.manifest.plan_id
    }

    pub fn total_samples(&self) -> u64 {
        self.manifest.total_samples
    }

    pub fn sample_len(&self) -> u64 {
        self.manifest.sample_len
    }

    pub fn seq_len(&self) -> u64 {
        self.manifest.seq_len
    }

    pub fn token_width(&self) -> TokenWidth {
        self.width
    }

    /// Bytes of one sample's tokens.
    pub fn sample_bytes(&self) -> usize {
        self.manifest.sample_len as usize * self.width.bytes()
    }

    pub fn component_name(&self, c: u16) -> &str {
        &self.manifest.components[usize::from(c)].name
    }

    pub fn stage_name(&self, s: u16) -> &str {
        &self.manifest.stages[usize::from(s)].name
    }

    /// Every stage's name, by number.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.manifest.stages.iter().map(|s| s.name.as_str())
    }

    /// Every component's name, by number.
    pub fn component_names(&self) -> impl Iterator<Item = &str> {
        self.manifest.components.iter().map(|c| c.name.as_str())
    }

    /// The local token cache the plan reads, or `None` in window mode.
    pub fn token_cache(&self) -> Option<&TokenCache> {
        match &self.tokens {
            Tokens::Cache(cache) => Some(cache),
            Tokens::Window(_) => None,
        }
    }

    /// The window the plan reads through, in window mode.
    pub fn window(&self) -> Option<&Arc<Window>> {
        match &self.tokens {
            Tokens::Cache(_) => None,
            Tokens::Window(window) => Some(window),
        }
    }

    /// What the plan's selection holds: documents, tokens, components, fingerprint.
    pub fn data(&self) -> &TokenManifest {
        &self.data
    }

    /// Bytes of the plan index on disk.
    pub fn index_bytes(&self) -> u64 {
        self.index.bytes().len() as u64
    }

    pub(crate) fn manifest(&self) -> &PlanManifest {
        &self.manifest
    }

    /// The cursor after `consumed` samples.
    pub fn cursor(&self, consumed: u64) -> Cursor {
        Cursor {
            plan: self.id(),
            consumed,
        }
    }

    /// Checks that `cursor` was made by this plan and returns the samples it consumed.
    pub fn resume(&self, cursor: &Cursor) -> Result<u64> {
        let differences = self.id().differences(&cursor.plan);
        if !differences.is_empty() {
            return Err(PlanError::CursorMismatch {
                differences: differences.join("; "),
            });
        }
        if cursor.consumed > self.total_samples() {
            return Err(PlanError::InvalidRequest(format!(
                "the cursor is at sample {} but the plan has only {}",
                cursor.consumed,
                self.total_samples()
            )));
        }
        Ok(cursor.consumed)
    }

    /// Where global sample `g` comes from.
    pub fn locate(&self, g: u64) -> Result<SampleMeta> {
        let m = &self.manifest;
        if g >= m.total_samples {
            return Err(PlanError::InvalidRequest(format!(
                "sample {g} is past the end of the plan ({} samples)",
                m.total_samples
            )));
        }
        let s = m.stages.partition_point(|st| st.start <= g) - 1;
        let stage = &m.stages[s];
        let i = g - stage.start;
        let blend = self.index.slice(stage.blend.offset, stage.blend.len)?;
        let c = blend[i as usize];
        let block = i / BLEND_BLOCK;
        let n_components = m.components.len() as u64;
        let checkpoints = self
            .index
            .u64s(stage.checkpoints.offset, stage.checkpoints.len)?;
        let before_block = checkpoints.get((block * n_components + u64::from(c)) as usize);
        let in_block = count_byte(&blend[(block * BLEND_BLOCK) as usize..i as usize], c);
        let k = stage.base[usize::from(c)] + before_block + in_block;
        let component = &m.components[usize::from(c)];
        let e = component.epochs.partition_point(|ep| ep.first <= k) - 1;
        let epoch = &component.epochs[e];
        let shuffle = self.index.u64s(epoch.shuffle.offset, epoch.shuffle.len)?;
        let packed = shuffle.get((k - epoch.first) as usize);
        Ok(SampleMeta {
            index: g,
            stage: s as u16,
            component: u16::from(c),
            epoch: e as u32,
            packed,
        })
    }

    /// Writes global sample `g`'s tokens into `out` (exactly [`sample_bytes`] long) and its
    /// document spans into `spans` (cleared first).
    ///
    /// [`sample_bytes`]: Plan::sample_bytes
    pub fn read_sample(&self, g: u64, out: &mut [u8], spans: &mut Vec<Span>) -> Result<SampleMeta> {
        spans.clear();
        let mut pieces = Vec::new();
        let meta = self.locate(g)?;
        self.resolve(&meta, &mut pieces, spans)?;
        match self.window() {
            None => self.copy_pieces(&pieces, out),
            Some(window) => {
                // One sample at random: fetched at once, released after.
                let docs = doc_refs(&pieces);
                window.reserve(&docs, true);
                let waited = window.wait(&docs);
                if waited.is_ok() {
                    self.copy_pieces(&pieces, out);
                }
                window.release(&docs);
                waited?;
            }
        }
        Ok(meta)
    }

    /// Starts loading the first index entry that resolving `meta` reads: its window's start
    /// (concat) or its bin's bounds (bins). See [`Plan::resolve`].
    pub(crate) fn prefetch_window(&self, meta: &SampleMeta) -> Result<()> {
        let (packing, epoch) = self.epoch(meta);
        let packed = meta.packed as usize;
        match packing {
            Packing::Concat => section64(&self.index, epoch.starts)?.prefetch(START_WORDS * packed),
            Packing::Bin => section64(&self.index, epoch.bin_offsets)?.prefetch(packed),
        }
        Ok(())
    }

    /// Starts loading the second: the window's first document entry, found through the entry
    /// [`Plan::prefetch_window`] asked for, which is there by now.
    pub(crate) fn prefetch_first_document(&self, meta: &SampleMeta) -> Result<()> {
        let (packing, epoch) = self.epoch(meta);
        let packed = meta.packed as usize;
        let (entries, first) = match packing {
            Packing::Concat => {
                let starts = section64(&self.index, epoch.starts)?;
                (
                    section(&self.index, epoch.order)?,
                    starts.get(START_WORDS * packed),
                )
            }
            Packing::Bin => {
                let offsets = section64(&self.index, epoch.bin_offsets)?;
                (section(&self.index, epoch.bin_docs)?, offsets.get(packed))
            }
        };
        // A window's entries are consecutive: the first two lines cover several documents,
        // and the CPU's own prefetcher follows on from there.
        let at = first as usize * DOC_ENTRY;
        entries.prefetch(at);
        entries.prefetch(at + 16);
        Ok(())
    }

    fn epoch(&self, meta: &SampleMeta) -> (Packing, &crate::build::EpochIndex) {
        let component = &self.manifest.components[usize::from(meta.component)];
        (component.packing, &component.epochs[meta.epoch as usize])
    }

    /// Works out where a located sample's tokens come from without copying them: appends its
    /// pieces and spans, and starts loading each piece's first tokens.
    ///
    /// Resolving a sample is a chain of cache misses (window start → document entries →
    /// tokens), each in a random place. A micro-batch therefore locates all its samples, then
    /// prefetches every window start ([`Plan::prefetch_window`]), then every first document
    /// entry ([`Plan::prefetch_first_document`]), then resolves them, then copies: the misses
    /// of different samples overlap instead of following each other.
    pub(crate) fn resolve(
        &self,
        meta: &SampleMeta,
        pieces: &mut Vec<Piece>,
        spans: &mut Vec<Span>,
    ) -> Result<()> {
        self.resolve_with(meta, pieces, spans, self.manifest.piece_checksums)
    }

    /// The ranges of the token store that window mode fetches for global sample `g`: with
    /// `parts`, what a plan built over the tokens names (each part of a document alone),
    /// else whole documents. Benchmarks model a window's traffic with it.
    pub fn fetch_ranges(&self, g: u64, parts: bool) -> Result<Vec<DocRef>> {
        let (mut pieces, mut spans) = (Vec::new(), Vec::new());
        let meta = self.locate(g)?;
        self.resolve_with(&meta, &mut pieces, &mut spans, parts)?;
        Ok(doc_refs(&pieces))
    }

    fn resolve_with(
        &self,
        meta: &SampleMeta,
        pieces: &mut Vec<Piece>,
        spans: &mut Vec<Span>,
        piece_sums: bool,
    ) -> Result<()> {
        let (packing, epoch) = self.epoch(meta);
        let l = self.manifest.sample_len;
        let packed = meta.packed as usize;
        let mut filled = 0u64;
        let cache = self.token_cache();
        // `sum`: the checksum of the piece's tokens when the piece is part of its document and
        // the index holds it; a window then fetches those tokens alone, else the document.
        let mut piece = |doc: CachedDoc, offset: u64, take: u64, position: u64, sum: u64| {
            let from_doc = take.min(u64::from(doc.len).saturating_sub(offset));
            if from_doc > 0
                && let Some(cache) = cache
            {
                // The copy then finds the piece's first line there.
                cache.prefetch_token(doc.offset + offset);
            }
            let part = from_doc < u64::from(doc.len) && piece_sums;
            pieces.push(Piece {
                source: doc.offset + offset,
                tokens: from_doc as u32,
                eos: from_doc < take,
                position: position as u32,
                fetch: if part {
                    DocRef {
                        offset: doc.offset + offset,
                        len: from_doc as u32,
                        checksum: sum,
                    }
                } else {
                    DocRef {
                        offset: doc.offset,
                        len: doc.len,
                        checksum: doc.checksum,
                    }
                },
            });
            spans.push(Span {
                doc_id: doc.doc_id,
                offset: offset as u32,
                len: take as u32,
                position: position as u32,
            });
        };
        match packing {
            Packing::Concat => {
                let order = section(&self.index, epoch.order)?;
                let starts = section64(&self.index, epoch.starts)?;
                let at = START_WORDS * packed;
                let mut position = starts.get(at) as usize;
                let mut offset = starts.get(at + 1);
                let (head, tail) = (starts.get(at + 2), starts.get(at + 3));
                let mut first = true;
                while filled < l {
                    let doc = entry(order, position);
                    let take = (u64::from(doc.len) + 1 - offset).min(l - filled);
                    // Only the first and last pieces can be parts (see `build.rs`).
                    let sum = if first { head } else { tail };
                    piece(doc, offset, take, filled, sum);
                    first = false;
                    filled += take;
                    position += 1;
                    offset = 0;
                }
            }
            Packing::Bin => {
                let offsets = section64(&self.index, epoch.bin_offsets)?;
                let docs = section(&self.index, epoch.bin_docs)?;
                let sum = match epoch.bin_checksums {
                    Some(_) => section64(&self.index, epoch.bin_checksums)?.get(packed),
                    None => 0,
                };
                for d in offsets.get(packed)..offsets.get(packed + 1) {
                    let doc = entry(docs, d as usize);
                    let take = (u64::from(doc.len) + 1).min(l - filled);
                    piece(doc, 0, take, filled, sum);
                    filled += take;
                }
                if filled < l {
                    pieces.push(Piece::padding(filled as u32, (l - filled) as u32));
                }
            }
        }
        Ok(())
    }

    /// Copies resolved pieces of one sample into `out` (exactly [`sample_bytes`] long).
    ///
    /// [`sample_bytes`]: Plan::sample_bytes
    pub(crate) fn copy_pieces(&self, pieces: &[Piece], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.sample_bytes(),
            "output buffer is not one sample long"
        );
        let w = self.width.bytes();
        let mut served = 0;
        for p in pieces {
            let at = p.position as usize * w;
            if p.source == PADDING {
                fill(&mut out[at..at + p.tokens as usize * w], &self.pad[..w]);
                continue;
            }
            let n = p.tokens as usize * w;
            match &self.tokens {
                Tokens::Cache(cache) => out[at..at + n]
                    .copy_from_slice(cache.token_bytes(p.source, u64::from(p.tokens))),
                Tokens::Window(_) if n == 0 => {}
                Tokens::Window(window) => {
                    let doc = window.bytes(&p.fetch);
                    let from = (p.source - p.fetch.offset) as usize * w;
                    out[at..at + n].copy_from_slice(&doc[from..from + n]);
                    served += n as u64;
                }
            }
            if p.eos {
                out[at + n..at + n + w].copy_from_slice(&self.eos[..w]);
            }
        }
        if let Tokens::Window(window) = &self.tokens {
            window.served(served);
        }
    }
}

/// What `pieces` fetch in window mode (documents, or parts of them), each once. Padding and a
/// document's lone EOS fetch nothing, so no empty range is ever fetched.
pub(crate) fn doc_refs(pieces: &[Piece]) -> Vec<DocRef> {
    let mut docs: Vec<DocRef> = pieces
        .iter()
        .filter(|p| p.source != PADDING && p.tokens > 0)
        .map(|p| p.fetch)
        .collect();
    docs.sort_unstable_by_key(|d| (d.offset, d.len));
    docs.dedup_by_key(|d| (d.offset, d.len));
    docs
}

/// Where a run of a sample's tokens comes from: `tokens` tokens of the token cache from token
/// `source`, then one EOS when `eos`, written at `position`; or padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    source: u64,
    tokens: u32,
    eos: bool,
    position: u32,
    /// What window mode fetches and checks for it: the piece's own tokens when it is part of a
    /// document and the index holds its checksum, else its whole document.
    fetch: DocRef,
}

const PADDING: u64 = u64::MAX;

impl Piece {
    fn padding(position: u32, tokens: u32) -> Piece {
        Piece {
            source: PADDING,
            tokens,
            eos: false,
            position,
            fetch: DocRef {
                offset: PADDING,
                len: 0,
                checksum: 0,
            },
        }
    }
}

/// Document entry `i` of an epoch's order or bins (see [`DOC_ENTRY`]).
#[inline]
pub(crate) fn entry(entries: U32s<'_>, i: usize) -> CachedDoc {
    // the two-word fields are little-endian u64s: low word first
    let b = entries.words(i * DOC_ENTRY, DOC_ENTRY);
    CachedDoc {
        offset: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
        len: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        doc_id: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
        checksum: u64::from_le_bytes(b[20..28].try_into().expect("8 bytes")),
    }
}

fn section(index: &MappedFile, s: Option<crate::build::Section>) -> Result<crate::mmap::U32s<'_>> {
    let s = s.ok_or_else(|| PlanError::CacheCorrupt {
        path: index.path().display().to_string(),
        reason: "an epoch lacks an index its packing needs".into(),
    })?;
    index.u32s(s.offset, s.len)
}

fn section64(
    index: &MappedFile,
    s: Option<crate::build::Section>,
) -> Result<crate::mmap::U64s<'_>> {
    let s = s.ok_or_else(|| PlanError::CacheCorrupt {
        path: index.path().display().to_string(),
        reason: "an epoch lacks an index its packing needs".into(),
    })?;
    index.u64s(s.offset, s.len)
}

fn fill(out: &mut [u8], pattern: &[u8]) {
    for chunk in out.chunks_exact_mut(pattern.len()) {
        chunk.copy_from_slice(pattern);
    }
}

/// Occurrences of `byte` in `bytes`, counted in chunks small enough for a `u8` sum so that the
/// compiler vectorises it.
fn count_byte(bytes: &[u8], byte: u8) -> u64 {
    bytes
        .chunks(128)
        .map(|chunk| {
            u64::from(
                chunk
                    .iter()
                    .map(|&b| u8::from(b == byte))
                    .fold(0u8, u8::wrapping_add),
            )
        })
        .sum()
}
