//! Piece checksums for a plan built without the tokens (a sealed store's, `store.rs`): one pass
//! over the store's chunks in token order, so that windows over it fetch exactly the tokens a
//! sample reads, as over a plan built where the tokens are.
//!
//! The pass lists every part of a document the plan's samples read (concat windows' first and
//! last pieces, bins' truncated documents) with where its checksum goes in `plan.idx`, sorts
//! them by document, reads the chunks that hold those documents in order (a few at once),
//! checks each document against its checksum, hashes its parts and writes their checksums into
//! the index, then marks the manifest.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use xxhash_rust::xxh3::xxh3_64;

use crate::build::{DOC_ENTRY, PlanManifest, START_WORDS, window_parts};
use crate::error::{PlanError, Result};
use crate::mmap::MappedFile;
use crate::plan::entry;
use crate::publish::{COMPLETE_MARKER, write_file};
use crate::recipe::Packing;
use crate::token_cache::CachedDoc;
use crate::window::ChunkSource;
use tokenlake_lake::Progress;

/// Chunks read at once.
const READS: usize = 8;

/// One part of a document a sample reads, and where its checksum goes in `plan.idx`.
struct Part {
    doc: CachedDoc,
    from: u64,
    tokens: u64,
    at: u64,
}

/// Adds the piece checksums to the plan in `dir` (built without the tokens, not yet shared:
/// its index is written in place), reading the tokens from `source`, chunks of `chunk_bytes`.
/// Returns the number of parts checksummed.
pub async fn add_piece_checksums(
    dir: &Path,
    source: Arc<dyn ChunkSource>,
    chunk_bytes: u64,
    progress: &Progress,
) -> Result<u64> {
    let manifest_path = dir.join(COMPLETE_MARKER);
    let text = std::fs::read(&manifest_path).map_err(PlanError::io(format!(
        "reading {}",
        manifest_path.display()
    )))?;
    let mut manifest: PlanManifest =
        serde_json::from_slice(&text).map_err(|e| PlanError::CacheCorrupt {
            path: manifest_path.display().to_string(),
            reason: e.to_string(),
        })?;
    if manifest.piece_checksums {
        return Ok(0);
    }
    let width = u64::from(manifest.token_width);
    let index_path = dir.join("plan.idx");
    let mut parts = list_parts(&manifest, &index_path)?;
    parts.sort_unstable_by_key(|p| (p.doc.offset, p.from));
    progress.start("checksumming the parts of documents", parts.len() as u64);

    // The bytes of each chunk that the listed documents cover.
    let mut wanted: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for p in &parts {
        let (start, end) = (
            p.doc.offset * width,
            (p.doc.offset + u64::from(p.doc.len)) * width,
        );
        for c in start / chunk_bytes..=(end - 1) / chunk_bytes {
            let lo = start.max(c * chunk_bytes) - c * chunk_bytes;
            let hi = end.min((c + 1) * chunk_bytes) - c * chunk_bytes;
            let range = wanted.entry(c).or_insert((lo, hi));
            *range = (range.0.min(lo), range.1.max(hi));
        }
    }
    let reads = wanted.clone().into_iter().map(|(c, (lo, hi))| {
        let source = source.clone();
        async move { (c, lo, source.read(c, lo..hi).await) }
    });
    let mut chunks = futures::stream::iter(reads).buffered(READS);
    let mut loaded: VecDeque<(u64, u64, Bytes)> = VecDeque::new();
    let mut sums = Vec::with_capacity(parts.len());
    let mut checked: Option<(u64, Vec<u8>)> = None;
    for p in &parts {
        let (start, end) = (
            p.doc.offset * width,
            (p.doc.offset + u64::from(p.doc.len)) * width,
        );
        let (first, last) = (start / chunk_bytes, (end - 1) / chunk_bytes);
        while loaded.front().is_some_and(|(c, ..)| *c < first) {
            loaded.pop_front();
        }
        while loaded.back().is_none_or(|(c, ..)| *c < last) {
            let (c, lo, got) = chunks.next().await.expect("every wanted chunk is read");
            let got = got.map_err(|e| PlanError::Fetch {
                reason: format!("chunk {c} of the token store: {e}"),
            })?;
            loaded.push_back((c, lo, got));
        }
        if checked.as_ref().is_none_or(|(at, _)| *at != p.doc.offset) {
            let mut bytes = Vec::with_capacity((end - start) as usize);
            for (c, lo, got) in &loaded {
                let (from, to) = (
                    start.max(c * chunk_bytes + lo),
                    end.min(c * chunk_bytes + lo + got.len() as u64),
                );
                if from < to {
                    let base = c * chunk_bytes + lo;
                    bytes.extend_from_slice(&got[(from - base) as usize..(to - base) as usize]);
                }
            }
            if bytes.len() as u64 != end - start || xxh3_64(&bytes) != p.doc.checksum {
                return Err(PlanError::Store(format!(
                    "the document at token {} does not match its checksum in the store's \
                     chunks: the store is damaged; publish it again",
                    p.doc.offset
                )));
            }
            checked = Some((p.doc.offset, bytes));
        }
        let bytes = &checked.as_ref().expect("checked above").1;
        let from = ((p.from - p.doc.offset) * width) as usize;
        sums.push((
            p.at,
            xxh3_64(&bytes[from..from + (p.tokens * width) as usize]),
        ));
        progress.add(1);
    }

    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&index_path)
        .map_err(PlanError::io(format!("opening {}", index_path.display())))?;
    for (at, sum) in &sums {
        file.write_all_at(&sum.to_le_bytes(), *at)
            .map_err(PlanError::io(format!("writing {}", index_path.display())))?;
    }
    file.sync_all()
        .map_err(PlanError::io(format!("writing {}", index_path.display())))?;
    manifest.piece_checksums = true;
    let tmp = dir.join(format!(".{COMPLETE_MARKER}.tmp"));
    write_file(
        &tmp,
        &serde_json::to_vec(&manifest).expect("manifest serialises"),
    )?;
    std::fs::rename(&tmp, &manifest_path).map_err(PlanError::io(format!(
        "writing {}",
        manifest_path.display()
    )))?;
    Ok(sums.len() as u64)
}

/// Every part of a document the plan's samples read, with where its checksum goes.
fn list_parts(manifest: &PlanManifest, index_path: &Path) -> Result<Vec<Part>> {
    let index = MappedFile::open(index_path)?;
    let missing = || PlanError::CacheCorrupt {
        path: index_path.display().to_string(),
        reason: "an epoch lacks an index its packing needs".into(),
    };
    let l = manifest.sample_len;
    let mut parts = Vec::new();
    for component in &manifest.components {
        for epoch in &component.epochs {
            match component.packing {
                Packing::Concat => {
                    let (order, starts) = (
                        epoch.order.ok_or_else(missing)?,
                        epoch.starts.ok_or_else(missing)?,
                    );
                    let entries = index.u32s(order.offset, order.len)?;
                    let windows = index.u64s(starts.offset, starts.len)?;
                    for w in 0..(starts.len as usize / START_WORDS) {
                        let at = w * START_WORDS;
                        let start = (windows.get(at), windows.get(at + 1));
                        let found = window_parts(|p| entry(entries, p), start, l);
                        for (j, part) in found.into_iter().enumerate() {
                            if let Some((doc, from, tokens)) = part {
                                parts.push(Part {
                                    doc,
                                    from,
                                    tokens,
                                    at: starts.offset + ((at + 2 + j) * 8) as u64,
                                });
                            }
                        }
                    }
                }
                Packing::Bin => {
                    let (offsets, docs, sums) = (
                        epoch.bin_offsets.ok_or_else(missing)?,
                        epoch.bin_docs.ok_or_else(missing)?,
                        epoch.bin_checksums.ok_or_else(missing)?,
                    );
                    let offsets_of = index.u64s(offsets.offset, offsets.len)?;
                    let entries = index.u32s(docs.offset, docs.len)?;
                    debug_assert_eq!(docs.len as usize % DOC_ENTRY, 0);
                    for b in 0..sums.len as usize {
                        // A document longer than a bin is alone in it.
                        let doc = entry(entries, offsets_of.get(b) as usize);
                        if u64::from(doc.len) > l {
                            parts.push(Part {
                                doc,
                                from: doc.offset,
                                tokens: l,
                                at: sums.offset + (b * 8) as u64,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(parts)
}
