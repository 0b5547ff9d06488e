//! Building a plan's indexes: the blend of every stage and, per component, each epoch's document
//! order, sample boundaries and sample shuffle. Written once into `plan.idx` (little-endian
//! arrays) described by `manifest.json`, then only ever memory-mapped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::blend::{Blender, Weights};
use crate::cursor::PlanId;
use crate::error::{PlanError, Result};
use crate::packing::{concat_starts, pack_bins};
use crate::publish::{COMPLETE_MARKER, publish_dir, temp_dir_for, write_file};
use crate::recipe::{Packing, Recipe};
use crate::rng::{derive_seed, permutation};
use crate::token_cache::{CachedDoc, TokenCache};
use tokenlake_lake::Progress;

/// Layout version of a plan index; part of its directory's name (see [`plan_dir_name`]).
/// Format 2: `u64` document and sample positions, each document entry with its checksum.
pub(crate) const FORMAT: u32 = 2;

/// The directory of plan `id` under `plans/`: a release that changes the layout builds new
/// indexes beside the old ones instead of misreading them.
pub fn plan_dir_name(id: &PlanId) -> String {
    format!("{}-f{FORMAT}", id.hex())
}
/// Blend positions per checkpoint of per-component counts: finding a sample's place in its
/// component scans at most this many bytes.
pub(crate) const BLEND_BLOCK: u64 = 256;
/// More epochs than this means a component far too small for its weight; the plan would be
/// mostly repetition and its index would grow without bound.
pub const MAX_EPOCHS: usize = 100_000;

/// `u32`s per document entry of an epoch: its token cache record copied in visiting order
/// (token offset as two words, length, doc_id as two words, checksum as two words). Reading a
/// sample then walks one contiguous run of entries instead of jumping to each document's
/// record: the copy costs 28 bytes per document and epoch, makes micro-batch assembly about a
/// third faster, and lets a node that holds only the plan index fetch and check any document
/// (`window.rs`) without the token store's record table.
pub(crate) const DOC_ENTRY: usize = 7;

/// The entries of the members at `positions`, in that order.
fn doc_entries<'a>(
    cache: &'a TokenCache,
    members: crate::mmap::U64s<'a>,
    positions: &'a [u64],
) -> impl Iterator<Item = u32> + 'a {
    positions.iter().flat_map(move |&p| {
        let d = cache.doc(members.get(p as usize));
        [
            d.offset as u32,
            (d.offset >> 32) as u32,
            d.len,
            d.doc_id as u32,
            (d.doc_id >> 32) as u32,
            d.checksum as u32,
            (d.checksum >> 32) as u32,
        ]
    })
}

/// `u64`s per concat window in `starts`: position, offset, head and tail piece checksums.
pub(crate) const START_WORDS: usize = 4;

/// The checksum of `tokens` tokens of the cache from token `from`, or 0 when the cache holds no
/// real tokens (an index-only or synthetic cache).
fn piece_checksum(cache: &TokenCache, with_tokens: bool, from: u64, tokens: u64) -> u64 {
    if with_tokens {
        xxh3_64(cache.token_bytes(from, tokens))
    } else {
        0
    }
}

/// The parts of documents a concat window starting at `(position, offset)` reads: its first and
/// last pieces where they are parts (see [`EpochIndex::starts`]), each as the document it is
/// part of (`doc(position)`) and the piece's first token and length.
pub(crate) fn window_parts(
    doc: impl Fn(usize) -> CachedDoc,
    (position, offset): (u64, u64),
    sample_len: u64,
) -> [Option<(CachedDoc, u64, u64)>; 2] {
    let (mut position, mut offset) = (position as usize, offset);
    let mut filled = 0;
    let mut parts = [None, None];
    let mut first = true;
    while filled < sample_len {
        let d = doc(position);
        let take = (u64::from(d.len) + 1 - offset).min(sample_len - filled);
        let from_doc = take.min(u64::from(d.len).saturating_sub(offset));
        filled += take;
        let partial = from_doc > 0 && from_doc < u64::from(d.len);
        if partial && first {
            parts[0] = Some((d, d.offset + offset, from_doc));
        } else if partial && filled >= sample_len {
            parts[1] = Some((d, d.offset + offset, from_doc));
        }
        first = false;
        position += 1;
        offset = 0;
    }
    parts
}

/// The head and tail checksums of a concat window (0 for pieces that are whole documents, or
/// without the tokens).
fn window_checksums(
    cache: &TokenCache,
    with_tokens: bool,
    members: crate::mmap::U64s<'_>,
    order: &[u64],
    start: (u64, u32),
    sample_len: u64,
) -> [u64; 2] {
    if !with_tokens {
        return [0, 0];
    }
    let doc = |p: usize| cache.doc(members.get(order[p] as usize));
    window_parts(doc, (start.0, u64::from(start.1)), sample_len).map(|part| {
        part.map_or(0, |(_, from, tokens)| {
            piece_checksum(cache, true, from, tokens)
        })
    })
}

const PURPOSE_ORDER: u64 = 1;
const PURPOSE_SAMPLES: u64 = 2;

/// A little-endian array inside `plan.idx`: `len` entries from byte `offset`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Section {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanManifest {
    pub format: u32,
    pub plan_id: PlanId,
    pub seq_len: u64,
    pub sample_len: u64,
    pub eos_token: u32,
    pub pad_token: u32,
    pub token_width: u8,
    pub total_samples: u64,
    /// Whether the index holds the checksum of every piece that is part of a document (window
    /// starts' head and tail, bins' truncated documents): built where the tokens are (a full
    /// cache), so a window fetches exactly those tokens; without them (a plan built from a
    /// token store's records alone) a window fetches such documents whole.
    #[serde(default)]
    pub piece_checksums: bool,
    pub stages: Vec<StageIndex>,
    pub components: Vec<ComponentIndex>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StageIndex {
    pub name: String,
    /// Global index of the stage's first sample.
    pub start: u64,
    pub samples: u64,
    /// One byte per position: the component it streams.
    pub blend: Section,
    /// Per block of [`BLEND_BLOCK`] positions, each component's count before the block
    /// (`u64`, block-major).
    pub checkpoints: Section,
    /// Samples each component streamed in earlier stages: stages continue a component's
    /// stream rather than restarting it.
    pub base: Vec<u64>,
    /// Samples each component streams in this stage.
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ComponentIndex {
    pub name: String,
    pub packing: Packing,
    pub docs: u64,
    pub tokens: u64,
    /// Samples the whole plan takes from this component.
    pub samples_used: u64,
    pub epochs: Vec<EpochIndex>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EpochIndex {
    /// Component-local index of the epoch's first sample.
    pub first: u64,
    pub samples: u64,
    /// Concat: the component's documents in shuffled order, as [`DOC_ENTRY`] entries.
    pub order: Option<Section>,
    /// Concat: each window as [`START_WORDS`] `u64`s: its start (position in order, offset in
    /// unit), then the checksums of its first and last pieces where they are parts of a
    /// document (0 otherwise, or without [`PlanManifest::piece_checksums`]).
    pub starts: Option<Section>,
    /// Bin: bin b holds documents `bin_docs[bin_offsets[b]..bin_offsets[b + 1]]` (`u64`
    /// offsets), as [`DOC_ENTRY`] entries.
    pub bin_offsets: Option<Section>,
    pub bin_docs: Option<Section>,
    /// Bin: per bin, the checksum of its truncated document's piece (`u64`, 0 when none).
    #[serde(default)]
    pub bin_checksums: Option<Section>,
    /// Packed sample of each epoch position (`u64`).
    pub shuffle: Section,
    pub dropped_tokens: u64,
    pub truncated_tokens: u64,
    pub padding_tokens: u64,
}

struct SectionWriter {
    file: BufWriter<File>,
    offset: u64,
}

impl SectionWriter {
    fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(PlanError::io("writing plan.idx"))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn align(&mut self) -> Result<()> {
        let pad = (8 - self.offset % 8) % 8;
        self.bytes(&[0u8; 8][..pad as usize])
    }

    fn u32s(&mut self, values: impl IntoIterator<Item = u32>) -> Result<Section> {
        self.words(values.into_iter().map(u32::to_le_bytes))
    }

    fn u64s(&mut self, values: impl IntoIterator<Item = u64>) -> Result<Section> {
        self.words(values.into_iter().map(u64::to_le_bytes))
    }

    /// An aligned section of fixed-width little-endian words, written in blocks.
    fn words<const N: usize>(&mut self, values: impl Iterator<Item = [u8; N]>) -> Result<Section> {
        self.align()?;
        let offset = self.offset;
        let mut len = 0;
        let mut chunk = Vec::with_capacity(1 << 16);
        for v in values {
            chunk.extend_from_slice(&v);
            len += 1;
            if chunk.len() >= 1 << 16 {
                self.bytes(&chunk)?;
                chunk.clear();
            }
        }
        self.bytes(&chunk)?;
        Ok(Section { offset, len })
    }
}

/// Refuses, before anything is written or allocated, stages that would take more than
/// [`MAX_EPOCHS`] epochs of a component: the blend costs a byte per sample and its checkpoints
/// memory per 256, so a budget of `samples = 1e15` over a small selection would fill the disk
/// long before the epochs themselves reached the limit. The bound is relative to the selection:
/// an epoch holds at most a component's tokens over `sample_len` samples (concat) or one sample
/// per document (bin).
fn check_budgets(recipe: &Recipe, cache: &TokenCache) -> Result<()> {
    let sample_len = recipe.sample_len;
    for (c, component) in recipe.components.iter().enumerate() {
        // What the blender gives the component, within one sample per stage.
        let wanted: f64 = recipe
            .stages
            .iter()
            .map(|stage| {
                let total: f64 = stage.weights.iter().sum();
                if total > 0.0 {
                    stage.samples as f64 * stage.weights[c] / total + 1.0
                } else {
                    0.0
                }
            })
            .sum();
        if wanted < 1.0 {
            continue;
        }
        let members = cache.members(c);
        let n = members.len();
        if n == 0 {
            return Err(recipe.component_error(c, "it selects no documents; check its filter"));
        }
        let per_epoch = match component.packing {
            Packing::Concat => {
                let tokens: u64 = (0..n)
                    .map(|m| u64::from(cache.doc(members.get(m)).len) + 1)
                    .sum();
                if tokens < sample_len {
                    return Err(recipe.component_error(c, format!(
                        "its {n} documents hold {tokens} tokens with EOS, fewer than one sample \
                         of {sample_len}; select more documents or use packing = \"bin\""
                    )));
                }
                tokens / sample_len
            }
            Packing::Bin => n as u64,
        };
        if wanted > MAX_EPOCHS as f64 * per_epoch as f64 {
            return Err(recipe.component_error(
                c,
                format!(
                    "it would need more than {MAX_EPOCHS} epochs over its {n} documents for the \
                     {wanted:.0} samples the stages take from it; lower its weight or select more \
                     documents"
                ),
            ));
        }
    }
    Ok(())
}

/// Builds the plan `plan_id` of `recipe` over `cache` into directory `target`. The directory
/// appears complete or not at all; `cancel` stops the build between steps.
pub fn build_plan(
    recipe: &Recipe,
    cache: &TokenCache,
    plan_id: PlanId,
    target: &Path,
    progress: &Progress,
) -> Result<()> {
    let cancel = progress.cancel_token().flag();
    let tmp = temp_dir_for(target)?;
    let result = build_into(recipe, cache, plan_id, &tmp, progress, cancel)
        .and_then(|()| publish_dir(&tmp, target));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

// Kept as one function: the plan index's sections are written in file order, each from the one
// before.
fn build_into(
    recipe: &Recipe,
    cache: &TokenCache,
    plan_id: PlanId,
    dir: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    check_budgets(recipe, cache)?;
    let index_path = dir.join("plan.idx");
    let file = File::create(&index_path)
        .map_err(PlanError::io(format!("creating {}", index_path.display())))?;
    let mut out = SectionWriter {
        file: BufWriter::with_capacity(1 << 20, file),
        offset: 0,
    };
    let n_components = recipe.components.len();
    let sample_len = recipe.sample_len;
    let with_tokens = cache.has_tokens() && cache.manifest().has_checksums();
    progress.start("building the plan index", recipe.total_samples());
    let check_cancel = || {
        if cancel.load(Ordering::Relaxed) {
            Err(PlanError::Cancelled)
        } else {
            Ok(())
        }
    };

    // Stages: which component each position streams.
    let mut stages = Vec::with_capacity(recipe.stages.len());
    let mut base = vec![0u64; n_components];
    let mut start = 0u64;
    for stage in &recipe.stages {
        let mut blender = Blender::new(Weights::new(&stage.weights));
        let mut counts = vec![0u64; n_components];
        let mut checkpoints = Vec::new();
        out.align()?;
        let blend_offset = out.offset;
        let mut chunk = Vec::with_capacity(1 << 20);
        for i in 0..stage.samples {
            if i % BLEND_BLOCK == 0 {
                checkpoints.extend_from_slice(&counts);
            }
            let c = blender.next_component();
            counts[c] += 1;
            chunk.push(c as u8);
            if chunk.len() == 1 << 20 {
                out.bytes(&chunk)?;
                chunk.clear();
                progress.add(1 << 20);
                check_cancel()?;
            }
        }
        out.bytes(&chunk)?;
        let blend = Section {
            offset: blend_offset,
            len: stage.samples,
        };
        let checkpoints = out.u64s(checkpoints)?;
        stages.push(StageIndex {
            name: stage.name.clone(),
            start,
            samples: stage.samples,
            blend,
            checkpoints,
            base: base.clone(),
            counts: counts.clone(),
        });
        for (b, n) in base.iter_mut().zip(&counts) {
            *b += n;
        }
        start += stage.samples;
    }

    // Components: as many epochs as the stages consume.
    let mut components = Vec::with_capacity(n_components);
    for (c, component) in recipe.components.iter().enumerate() {
        check_cancel()?;
        let used = base[c];
        let members = cache.members(c);
        let n = members.len() as u64;
        let units: Vec<u64> = (0..n)
            .map(|m| u64::from(cache.doc(members.get(m as usize)).len) + 1)
            .collect();
        let name_hash = xxh3_64(component.name.as_bytes());
        let seed = |epoch: usize, purpose: u64| {
            derive_seed(recipe.seed, &[name_hash, epoch as u64, purpose])
        };
        let mut epochs: Vec<EpochIndex> = Vec::new();
        if used > 0 && n == 0 {
            return Err(recipe.component_error(c, "it selects no documents; check its filter"));
        }
        let mut covered = 0u64;
        while covered < used {
            check_cancel()?;
            if epochs.len() == MAX_EPOCHS {
                return Err(recipe.component_error(c, format!(
                    "it would need more than {MAX_EPOCHS} epochs over its {n} documents for the \
                     {used} samples the stages take from it; lower its weight or select more documents"
                )));
            }
            let e = epochs.len();
            let order = permutation(n, seed(e, PURPOSE_ORDER));
            let epoch = match component.packing {
                Packing::Concat => {
                    let (starts, dropped) =
                        concat_starts(n, |p| units[order[p as usize] as usize], sample_len);
                    if starts.is_empty() {
                        let total: u64 = units.iter().sum();
                        return Err(recipe.component_error(c, format!(
                            "its {n} documents hold {total} tokens with EOS, fewer than one sample \
                             of {sample_len}; select more documents or use packing = \"bin\""
                        )));
                    }
                    let samples = starts.len() as u64;
                    let order_section = out.u32s(doc_entries(cache, members, &order))?;
                    let starts_section = out.u64s(starts.iter().flat_map(|&(p, o)| {
                        let [head, tail] = window_checksums(
                            cache,
                            with_tokens,
                            members,
                            &order,
                            (p, o),
                            sample_len,
                        );
                        [p, u64::from(o), head, tail]
                    }))?;
                    let shuffle = out.u64s(permutation(samples, seed(e, PURPOSE_SAMPLES)))?;
                    EpochIndex {
                        first: covered,
                        samples,
                        order: Some(order_section),
                        starts: Some(starts_section),
                        bin_offsets: None,
                        bin_docs: None,
                        bin_checksums: None,
                        shuffle,
                        dropped_tokens: dropped,
                        truncated_tokens: 0,
                        padding_tokens: 0,
                    }
                }
                Packing::Bin => {
                    let groups = cache.groups(c);
                    let n_groups = cache.components()[c].groups.as_ref().map_or(1, |g| g.len());
                    let bins = pack_bins(
                        &order,
                        |m| groups.map_or(0, |g| g.get(m as usize)),
                        n_groups,
                        |m| units[m as usize],
                        sample_len,
                    );
                    let samples = (bins.offsets.len() - 1) as u64;
                    let bin_offsets = out.u64s(bins.offsets.iter().copied())?;
                    let bin_docs = out.u32s(doc_entries(cache, members, &bins.docs))?;
                    // A document longer than a bin is alone in it, cut to the bin.
                    let bin_checksums = out.u64s(bins.offsets.windows(2).map(|b| {
                        let doc = cache.doc(members.get(bins.docs[b[0] as usize] as usize));
                        if u64::from(doc.len) > sample_len {
                            piece_checksum(cache, with_tokens, doc.offset, sample_len)
                        } else {
                            0
                        }
                    }))?;
                    let shuffle = out.u64s(permutation(samples, seed(e, PURPOSE_SAMPLES)))?;
                    EpochIndex {
                        first: covered,
                        samples,
                        order: None,
                        starts: None,
                        bin_offsets: Some(bin_offsets),
                        bin_docs: Some(bin_docs),
                        bin_checksums: Some(bin_checksums),
                        shuffle,
                        dropped_tokens: 0,
                        truncated_tokens: bins.truncated,
                        padding_tokens: bins.padding,
                    }
                }
            };
            covered += epoch.samples;
            epochs.push(epoch);
        }
        components.push(ComponentIndex {
            name: component.name.clone(),
            packing: component.packing,
            docs: n,
            tokens: cache.components()[c].tokens,
            samples_used: used,
            epochs,
        });
    }
    out.file
        .flush()
        .map_err(PlanError::io("writing plan.idx"))?;
    out.file
        .get_ref()
        .sync_all()
        .map_err(PlanError::io("writing plan.idx"))?;

    let manifest = PlanManifest {
        format: FORMAT,
        plan_id,
        seq_len: recipe.seq_len,
        sample_len,
        eos_token: recipe.eos_token,
        pad_token: recipe.pad_token,
        token_width: cache.width().bytes() as u8,
        total_samples: start,
        piece_checksums: with_tokens,
        stages,
        components,
    };
    write_file(
        &dir.join(COMPLETE_MARKER),
        &serde_json::to_vec(&manifest).expect("manifest serialises"),
    )?;
    Ok(())
}
