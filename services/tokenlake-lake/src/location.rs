//! Where a lake lives. Today a local directory; the same type will carry `s3://` prefixes.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{DOCUMENTS_TABLE, LakeError, Result};

/// A lake's root, from which the documents table and the side files are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeLocation {
    root: PathBuf,
}

impl LakeLocation {
    /// Parses a LAKE argument: a directory path or a `file://` URI.
    pub fn parse(location: &str) -> Result<Self> {
        let invalid = |reason: &str| LakeError::InvalidLocation {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        if location.trim().is_empty() {
            return Err(invalid("empty path"));
        }
        let path = if let Some(rest) = location.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if let Some((scheme, _)) = location.split_once("://") {
            return Err(invalid(&format!(
                "the {scheme}:// scheme is not supported yet; use a local directory"
            )));
        } else {
            PathBuf::from(location)
        };
        let absolute = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(LakeError::io("reading the current directory"))?
                .join(path)
        };
        // Drops `.` components so messages show `/data/lake`, not `/data/./lake`.
        let root = absolute.components().collect();
        Ok(LakeLocation { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The URI Lance opens for the documents table (`<lake>/documents.lance`).
    pub fn documents_uri(&self) -> String {
        self.root
            .join(DOCUMENTS_TABLE)
            .to_string_lossy()
            .into_owned()
    }

    pub(crate) fn documents_path(&self) -> PathBuf {
        self.root.join(DOCUMENTS_TABLE)
    }

    /// Content-addressed copy of a tokenizer, so the lake can always be detokenized.
    pub fn tokenizer_path(&self, sha256: &str) -> PathBuf {
        self.root.join("tokenizers").join(format!("{sha256}.json"))
    }

    /// Where an ingest writes the lines it could not read.
    pub fn rejects_path(&self, ingest_id: &str) -> PathBuf {
        self.root.join("rejects").join(format!("{ingest_id}.jsonl"))
    }
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_uris_are_lakes_other_schemes_are_not_yet() {
        let lake = LakeLocation::parse("/data/lake").unwrap();
        assert_eq!(lake.documents_uri(), "/data/lake/documents.lance");
        assert_eq!(LakeLocation::parse("file:///data/lake").unwrap(), lake);
        assert!(
            LakeLocation::parse("relative")
                .unwrap()
                .root()
                .is_absolute()
        );
        let err = LakeLocation::parse("gs://bucket/lake")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gs://"), "{err}");
        assert!(LakeLocation::parse(" ").is_err());
    }
}
