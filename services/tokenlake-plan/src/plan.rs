//! An opened plan: random access to any global sample in O(log epochs + BLEND_BLOCK), with
//! no replay, reading the memory-mapped plan index and token cache.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokenlake_schemas::TokenWidth;

use crate::build::Section;
use crate::build::{BLEND_BLOCK, DOC_ENTRY, FORMAT, PlanManifest, START_WORDS};
use crate::cursor::{Cursor, PlanId};
use crate::error::{PlanError, Result};
use crate::mmap::{MappedFile, U32s};
use crate::plan_index::PlanIndex;
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
    index: PlanIndex,
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
        let text =
            std::fs::read(&path).map_err(PlanError::io(format!("reading {}", path.display())))?;
        let index = PlanIndex::Mapped(MappedFile::open(&dir.join("plan.idx"))?);
        Self::from_parts(&path, &text, index, data, tokens)
    }

    /// Opens a plan from its manifest `text` over `index` (a paged index on a cold node), in
    /// window mode.
    pub(crate) fn open_paged(
        manifest_path: &Path,
        text: &[u8],
        index: PlanIndex,
        data: TokenManifest,
        window: Arc<Window>,
    ) -> Result<Plan> {
        Self::from_parts(
            manifest_path,
            text,
            index,
            Arc::new(data),
            Tokens::Window(window),
        )
    }

    fn from_parts(
        path: &Path,
        text: &[u8],
        index: PlanIndex,
        data: Arc<TokenManifest>,
        tokens: Tokens,
    ) -> Result<Plan> {
        let corrupt = |reason: String| PlanError::CacheCorrupt {
            path: path.display().to_string(),
            reason,
        };
        let manifest: PlanManifest =
            serde_json::from_slice(text).map_err(|e| corrupt(e.to_string()))?;
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

    /// Bytes of the plan index.
    pub fn index_bytes(&self) -> u64 {
        self.index.len()
    }

    /// Whether the plan reads its index page by page and does not have it whole yet.
    pub(crate) fn index_is_paged(&self) -> bool {
        self.index.mapped().is_none()
    }

    /// What a plan index read page by page on a cold node did (`plan_index.rs`); `None`
    /// when the index was on the node when the plan opened.
    pub fn index_metrics(&self) -> Option<crate::plan_index::IndexMetrics> {
        self.index.metrics()
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
        let block = i / BLEND_BLOCK;
        let from = block * BLEND_BLOCK;
        // The sample's component, and how often it comes earlier in the block.
        let (c, in_block) = self.index.read(
            self.element(stage.blend, i, 1)? - (i - from),
            i - from + 1,
            |b| {
                let (&c, before) = b.split_last().expect("one byte at least");
                (c, count_byte(before, c))
            },
        )?;
        let n_components = m.components.len() as u64;
        let before_block = self.index.u64_at(self.element(
            stage.checkpoints,
            block * n_components + u64::from(c),
            8,
        )?)?;
        let k = stage.base[usize::from(c)] + before_block + in_block;
        let component = &m.components[usize::from(c)];
        let e = component.epochs.partition_point(|ep| ep.first <= k) - 1;
        let epoch = &component.epochs[e];
        let packed = self
            .index
            .u64_at(self.element(epoch.shuffle, k - epoch.first, 8)?)?;
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
        let packed = meta.packed;
        let at = match packing {
            Packing::Concat => {
                self.element(self.need(epoch.starts)?, START_WORDS as u64 * packed, 8)?
            }
            Packing::Bin => self.element(self.need(epoch.bin_offsets)?, packed, 8)?,
        };
        self.index.prefetch(at);
        Ok(())
    }

    /// Starts loading the second: the window's first document entry, found through the entry
    /// [`Plan::prefetch_window`] asked for, which is there by now.
    pub(crate) fn prefetch_first_document(&self, meta: &SampleMeta) -> Result<()> {
        let (packing, epoch) = self.epoch(meta);
        let packed = meta.packed;
        let (entries, first) = match packing {
            Packing::Concat => (
                self.need(epoch.order)?,
                self.u64_of(epoch.starts, START_WORDS as u64 * packed)?,
            ),
            Packing::Bin => (
                self.need(epoch.bin_docs)?,
                self.u64_of(epoch.bin_offsets, packed)?,
            ),
        };
        // A window's entries are consecutive: the first two lines cover several documents,
        // and the CPU's own prefetcher follows on from there.
        let at = self.element(entries, first * DOC_ENTRY as u64, 4)?;
        self.index.prefetch(at);
        self.index.prefetch(at + 64);
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

    /// The byte ranges of the plan index that locating and resolving global sample `g` reads,
    /// in order: the blend, checkpoint and shuffle entries, then its window's start (or bin's
    /// bounds), then its document entries. A cold node reading the index page by page fetches
    /// their pages (`plan_index.rs`); `bench window` models that with them.
    pub fn index_reads(&self, g: u64) -> Result<Vec<std::ops::Range<u64>>> {
        let Some(map) = self.index.mapped() else {
            return Err(PlanError::InvalidRequest(
                "index reads are recorded over an index on the node".into(),
            ));
        };
        // A twin over the same map that notes its reads; the plan's own reads note nothing.
        let twin = Plan {
            manifest: self.manifest.clone(),
            index: PlanIndex::Recording(map.clone(), Default::default()),
            data: self.data.clone(),
            tokens: self.tokens.clone(),
            width: self.width,
            eos: self.eos,
            pad: self.pad,
        };
        let meta = twin.locate(g)?;
        twin.resolve(&meta, &mut Vec::new(), &mut Vec::new())?;
        let PlanIndex::Recording(_, reads) = twin.index else {
            unreachable!("the twin records")
        };
        Ok(reads.into_inner().unwrap_or_else(|p| p.into_inner()))
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
        let packed = meta.packed;
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
                let order = self.need(epoch.order)?;
                let words = START_WORDS as u64;
                // The window's last word's place is checked, so all four are in the section.
                self.element(self.need(epoch.starts)?, words * packed + words - 1, 8)?;
                let at = self.element(self.need(epoch.starts)?, words * packed, 8)?;
                let [start, start_offset, head, tail] = self.index.read(at, 8 * words, |b| {
                    std::array::from_fn(|w| {
                        u64::from_le_bytes(b[w * 8..w * 8 + 8].try_into().expect("8 bytes"))
                    })
                })?;
                let (mut position, mut offset) = (start, start_offset);
                let mut first = true;
                while filled < l {
                    let doc = self.entry(order, position)?;
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
                let docs = self.need(epoch.bin_docs)?;
                let sum = match epoch.bin_checksums {
                    Some(sums) => self.u64_of(Some(sums), packed)?,
                    None => 0,
                };
                let (from, to) = (
                    self.u64_of(epoch.bin_offsets, packed)?,
                    self.u64_of(epoch.bin_offsets, packed + 1)?,
                );
                for d in from..to {
                    let doc = self.entry(docs, d)?;
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

    /// An index section the epoch's packing needs, or an error naming the index.
    fn need(&self, s: Option<Section>) -> Result<Section> {
        s.ok_or_else(|| self.corrupt("an epoch lacks an index its packing needs".into()))
    }

    /// The byte offset of element `i` (of `size` bytes) of section `s`, checked against the
    /// section's length: a damaged index is an error, never a read of another section.
    #[inline]
    fn element(&self, s: Section, i: u64, size: u64) -> Result<u64> {
        if i >= s.len {
            return Err(self.corrupt(format!(
                "element {i} of a section of {} is asked for",
                s.len
            )));
        }
        Ok(s.offset + i * size)
    }

    /// `u64` number `i` of section `s`.
    #[inline]
    fn u64_of(&self, s: Option<Section>, i: u64) -> Result<u64> {
        self.index.u64_at(self.element(self.need(s)?, i, 8)?)
    }

    /// Document entry `i` of the entries in section `s` (of u32 words).
    #[inline]
    fn entry(&self, s: Section, i: u64) -> Result<CachedDoc> {
        let words = DOC_ENTRY as u64;
        // One check for the entry's last word covers all of them.
        let last = self.element(s, i * words + words - 1, 4)?;
        self.index
            .read(last + 4 - 4 * words, 4 * words, parse_entry)
    }

    fn corrupt(&self, reason: String) -> PlanError {
        PlanError::CacheCorrupt {
            path: self.index.path().display().to_string(),
            reason,
        }
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
    parse_entry(entries.words(i * DOC_ENTRY, DOC_ENTRY))
}

/// A document entry's [`DOC_ENTRY`] words.
#[inline]
fn parse_entry(b: &[u8]) -> CachedDoc {
    // the two-word fields are little-endian u64s: low word first
    CachedDoc {
        offset: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
        len: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        doc_id: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
        checksum: u64::from_le_bytes(b[20..28].try_into().expect("8 bytes")),
    }
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
