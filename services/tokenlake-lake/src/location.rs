//! Where a lake lives: a local directory, `s3://bucket/prefix` or `memory://name/prefix`, with
//! the storage options used to reach it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokenlake_storage::{ObjectStorage, RequestCounts, StorageOptions, StorageUri};

use crate::{DOCUMENTS_TABLE, LakeError, Result};

/// A lake's root, from which the documents table and the side files are found.
#[derive(Debug, Clone)]
pub struct LakeLocation {
    root: StorageUri,
    options: StorageOptions,
    /// When set, every request Lance and tokenlake make for this lake is counted here
    /// (benchmarks report GETs per million tokens).
    counts: Option<Arc<RequestCounts>>,
}

impl PartialEq for LakeLocation {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.options == other.options
    }
}

impl Eq for LakeLocation {}

impl LakeLocation {
    /// Parses a LAKE argument: a directory path, `file://`, `s3://` or `memory://` URI.
    pub fn parse(location: &str) -> Result<Self> {
        let root = StorageUri::parse(location).map_err(|e| LakeError::InvalidLocation {
            location: location.to_string(),
            reason: match e {
                tokenlake_storage::StorageError::InvalidUri { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        Ok(LakeLocation {
            root,
            options: StorageOptions::new(),
            counts: None,
        })
    }

    /// The same lake reached with `options` (endpoint, credentials …).
    pub fn with_options(mut self, options: StorageOptions) -> Self {
        self.options = options;
        self
    }

    /// The same lake, counting every object-store request into `counts`.
    pub fn with_request_counts(mut self, counts: Arc<RequestCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    pub fn root(&self) -> &StorageUri {
        &self.root
    }

    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The directory, when the lake is on this machine's file system.
    pub fn local_root(&self) -> Option<&Path> {
        self.root.local_path()
    }

    /// The URI Lance opens for the documents table (`<lake>/documents.lance`).
    pub fn documents_uri(&self) -> String {
        self.root.join(DOCUMENTS_TABLE).as_uri()
    }

    /// What Lance needs to reach the documents table.
    pub fn lance_params(&self) -> lance::io::ObjectStoreParams {
        tokenlake_storage::lance_store_params(&self.root, &self.options, self.counts.clone())
    }

    /// The store that holds the lake's side files.
    pub fn storage(&self) -> Result<ObjectStorage> {
        let storage = ObjectStorage::for_uri(&self.root, &self.options)?;
        Ok(match &self.counts {
            Some(counts) => storage.counted(counts.clone()),
            None => storage,
        })
    }

    /// Content-addressed copy of a tokenizer, so the lake can always be detokenized.
    pub fn tokenizer_uri(&self, sha256: &str) -> StorageUri {
        self.root.join(&format!("tokenizers/{sha256}.json"))
    }

    /// Where an ingest keeps the lines it could not read.
    pub fn rejects_uri(&self, ingest_id: &str) -> StorageUri {
        self.root.join(&format!("rejects/{ingest_id}.jsonl"))
    }

    /// Where curation keeps its state (the persisted de-duplication indexes).
    pub fn curation_uri(&self, name: &str) -> StorageUri {
        self.root.join(&format!("curation/{name}"))
    }

    /// Where side files written for humans (reports) go.
    pub fn reports_uri(&self, name: &str) -> StorageUri {
        self.root.join(&format!("reports/{name}"))
    }
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_file_s3_and_memory_uris_are_lakes_other_schemes_are_not() {
        let lake = LakeLocation::parse("/data/lake").unwrap();
        assert_eq!(lake.documents_uri(), "/data/lake/documents.lance");
        assert_eq!(LakeLocation::parse("file:///data/lake").unwrap(), lake);
        assert!(
            LakeLocation::parse("relative")
                .unwrap()
                .local_root()
                .unwrap()
                .is_absolute()
        );
        let s3 = LakeLocation::parse("s3://corpus/lakes/web").unwrap();
        assert_eq!(s3.documents_uri(), "s3://corpus/lakes/web/documents.lance");
        assert_eq!(
            s3.tokenizer_uri("ab").to_string(),
            "s3://corpus/lakes/web/tokenizers/ab.json"
        );
        assert!(s3.local_root().is_none());
        let err = LakeLocation::parse("gs://bucket/lake")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gs://"), "{err}");
        assert!(LakeLocation::parse(" ").is_err());
    }
}
