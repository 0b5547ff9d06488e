//! Curation state persisted in the lake (`<lake>/curation/state-<docs>-<hash>.bin`): the
//! doc_ids of the first documents of a version, in row order, and the fingerprint of the
//! pipeline that labelled them. The lake's de-duplication index ([`crate::dedup_store`]) is
//! tagged with the name of the state whose documents it covers; the next curation starts from
//! that state when its documents are a prefix of the version it curates, so documents checked
//! before are neither read nor fingerprinted again.
//!
//! A state is named by what it covers, not by a version number, so a state written by a run
//! whose commit then failed is harmless: it is used only where its documents match. The file
//! ends with an XXH3 checksum; a damaged state is ignored (and curation starts over).

use bytes::Bytes;
use tokenlake_lake::{Lake, LakeError, LakeLocation};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"TLCURATE";
/// 3: the de-duplication index is a partitioned index of its own, no longer inside the state
/// (a state of an older format is ignored, and curation starts over).
const FORMAT: u32 = 3;

pub struct CurationState {
    pub doc_ids: Vec<u64>,
    pub pipeline: String,
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
        let mut out = Vec::with_capacity(self.doc_ids.len() * 8 + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(self.pipeline.len() as u32).to_le_bytes());
        out.extend_from_slice(self.pipeline.as_bytes());
        out.extend_from_slice(&(self.doc_ids.len() as u64).to_le_bytes());
        self.doc_ids
            .iter()
            .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
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
        let (ids, rest) = rest.split_at_checked(count.checked_mul(8)?)?;
        let doc_ids = ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        rest.is_empty().then(|| CurationState {
            doc_ids,
            pipeline: String::from_utf8_lossy(pipeline).into_owned(),
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

    /// The saved state `name` (the tag of the lake's de-duplication index) when its documents
    /// are the first documents of `doc_ids` (a version's doc_ids in row order).
    pub async fn load_prefix(
        lake: &Lake,
        name: &str,
        doc_ids: &[u64],
    ) -> Result<Option<CurationState>, LakeError> {
        let Some(count) = name
            .strip_prefix("state-")
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return Ok(None);
        };
        if count > doc_ids.len() || name != Self::file_name(&doc_ids[..count]) {
            return Ok(None);
        }
        let storage = lake.location().storage()?;
        let uri = lake.location().curation_uri(name);
        let Some(bytes) = storage.read_if_exists(&uri).await? else {
            return Ok(None);
        };
        match Self::decode(&bytes) {
            Some(state) if state.doc_ids == doc_ids[..state.doc_ids.len()] => Ok(Some(state)),
            _ => {
                tracing::warn!(state = %uri, "ignoring a damaged curation state");
                Ok(None)
            }
        }
    }
}
