//! Curation state persisted in the lake (`<lake>/curation/state-<docs>-<hash>.bin`): the
//! de-duplication index over the first documents of a version, in row order, their doc_ids,
//! and the fingerprint of the pipeline that labelled them. The next curation starts from the
//! largest state whose documents are a prefix of the version it curates, so documents
//! checked before are neither read nor fingerprinted again.
//!
//! A state is named by what it covers, not by a version number, so a state written by a run
//! whose commit then failed is harmless: it is used only where its documents match. The file
//! ends with an XXH3 checksum; a damaged state is ignored (and curation starts over).

use bytes::Bytes;
use tokenlake_lake::{Lake, LakeError, LakeLocation};
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::Deduplicator;

const MAGIC: &[u8; 8] = b"TLCURATE";
/// 2: the SimHash tables are rebuilt from the hashes, not stored (a state of format 1 is
/// ignored, and curation starts over).
const FORMAT: u32 = 2;

pub struct CurationState {
    pub doc_ids: Vec<u64>,
    pub pipeline: String,
    pub dedup: Deduplicator,
}

impl CurationState {
    pub fn file_name(doc_ids: &[u64]) -> String {
        let mut bytes = Vec::with_capacity(doc_ids.len() * 8);
        doc_ids
            .iter()
            .for_each(|d| bytes.extend_from_slice(&d.to_le_bytes()));
        format!("state-{:012}-{:016x}.bin", doc_ids.len(), xxh3_64(&bytes))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.doc_ids.len() * 1000 + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(self.pipeline.len() as u32).to_le_bytes());
        out.extend_from_slice(self.pipeline.as_bytes());
        out.extend_from_slice(&(self.doc_ids.len() as u64).to_le_bytes());
        self.doc_ids
            .iter()
            .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        self.dedup.encode(&mut out);
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<CurationState> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxh3_64(body) != u64::from_le_bytes(sum.try_into().ok()?) {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let (format, rest) = rest.split_at_checked(4)?;
        if u32::from_le_bytes(format.try_into().ok()?) != FORMAT {
            return None;
        }
        let (len, rest) = rest.split_at_checked(4)?;
        let (pipeline, rest) =
            rest.split_at_checked(u32::from_le_bytes(len.try_into().ok()?) as usize)?;
        let (count, rest) = rest.split_at_checked(8)?;
        let count = usize::try_from(u64::from_le_bytes(count.try_into().ok()?)).ok()?;
        let (ids, mut rest) = rest.split_at_checked(count.checked_mul(8)?)?;
        let doc_ids = ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let dedup = Deduplicator::decode(&mut rest)?;
        (rest.is_empty() && dedup.len() == count).then(|| CurationState {
            doc_ids,
            pipeline: String::from_utf8_lossy(pipeline).into_owned(),
            dedup,
        })
    }

    /// Writes the state beside the lake's tables; returns its file name.
    pub async fn save(&self, lake: &LakeLocation) -> Result<String, LakeError> {
        let name = Self::file_name(&self.doc_ids);
        let storage = lake.storage()?;
        storage
            .write(&lake.curation_uri(&name), Bytes::from(self.encode()))
            .await?;
        Ok(name)
    }

    /// The largest saved state whose documents are the first documents of `doc_ids` (a
    /// version's doc_ids in row order), with its file name.
    pub async fn load_prefix(
        lake: &Lake,
        doc_ids: &[u64],
    ) -> Result<Option<(String, CurationState)>, LakeError> {
        let storage = lake.location().storage()?;
        let mut candidates: Vec<(usize, String, tokenlake_lake::StorageUri)> = Vec::new();
        for (uri, _) in storage.list(&lake.location().curation_uri("")).await? {
            let name = uri
                .to_string()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let Some(count) = name
                .strip_prefix("state-")
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if count <= doc_ids.len() && name == Self::file_name(&doc_ids[..count]) {
                candidates.push((count, name, uri));
            }
        }
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (_, name, uri) in candidates {
            let bytes = storage.read(&uri).await?;
            match Self::decode(&bytes) {
                Some(state) if state.doc_ids == doc_ids[..state.doc_ids.len()] => {
                    return Ok(Some((name, state)));
                }
                _ => tracing::warn!(state = %uri, "ignoring a damaged curation state"),
            }
        }
        Ok(None)
    }
}
