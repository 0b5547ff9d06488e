//! Where something lives: a local path (or `file://` URI), an `s3://bucket/prefix`, or a
//! `memory://name` store that lasts as long as the process (for tests).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StorageUri {
    /// An absolute local path without `.` components.
    Local(PathBuf),
    /// `s3://bucket/key`; `key` has no leading or trailing `/` and may be empty.
    S3 { bucket: String, key: String },
    /// `memory://name/key`.
    Memory { name: String, key: String },
}

impl StorageUri {
    /// Parses a path, `file://`, `s3://` or `memory://` URI; a relative path is made absolute
    /// against the working directory.
    pub fn parse(uri: &str) -> Result<StorageUri> {
        let invalid = |reason: &str| StorageError::InvalidUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        if uri.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            return Self::local(PathBuf::from(rest));
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            check_bucket(bucket).map_err(|r| invalid(&r))?;
            return Ok(StorageUri::S3 {
                bucket: bucket.to_string(),
                key: clean_key(key).map_err(|r| invalid(&r))?,
            });
        }
        if let Some(rest) = uri.strip_prefix("memory://") {
            let (name, key) = rest.split_once('/').unwrap_or((rest, ""));
            if name.is_empty() {
                return Err(invalid("memory:// needs a name, as in memory://test/lake"));
            }
            return Ok(StorageUri::Memory {
                name: name.to_string(),
                key: clean_key(key).map_err(|r| invalid(&r))?,
            });
        }
        if let Some((scheme, _)) = uri.split_once("://") {
            return Err(invalid(&format!(
                "the {scheme}:// scheme is not supported; use a local path, file://, s3:// or memory://"
            )));
        }
        Self::local(PathBuf::from(uri))
    }

    fn local(path: PathBuf) -> Result<StorageUri> {
        let absolute = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|source| StorageError::Io {
                    context: "reading the current directory".into(),
                    source,
                })?
                .join(path)
        };
        // Drops `.` components so messages show `/data/lake`, not `/data/./lake`.
        Ok(StorageUri::Local(absolute.components().collect()))
    }

    pub fn is_local(&self) -> bool {
        matches!(self, StorageUri::Local(_))
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, StorageUri::S3 { .. })
    }

    /// The local path, for what must be a file on this machine.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            StorageUri::Local(p) => Some(p),
            _ => None,
        }
    }

    /// `self/relative`, where `relative` is `/`-separated.
    pub fn join(&self, relative: &str) -> StorageUri {
        let relative = relative.trim_matches('/');
        let joined = |key: &str| {
            if key.is_empty() {
                relative.to_string()
            } else if relative.is_empty() {
                key.to_string()
            } else {
                format!("{key}/{relative}")
            }
        };
        match self {
            StorageUri::Local(p) => StorageUri::Local(p.join(relative)),
            StorageUri::S3 { bucket, key } => StorageUri::S3 {
                bucket: bucket.clone(),
                key: joined(key),
            },
            StorageUri::Memory { name, key } => StorageUri::Memory {
                name: name.clone(),
                key: joined(key),
            },
        }
    }

    /// The URI as Lance and object_store take it: a plain path for local files.
    pub fn as_uri(&self) -> String {
        self.to_string()
    }

    /// The object at `key` (spelled as [`Self::object_key`] spells it) in the same store.
    pub(crate) fn with_object_key(&self, key: &str) -> StorageUri {
        match self {
            StorageUri::Local(_) => StorageUri::Local(format!("/{key}").into()),
            StorageUri::S3 { bucket, .. } => StorageUri::S3 {
                bucket: bucket.clone(),
                key: key.to_string(),
            },
            StorageUri::Memory { name, .. } => StorageUri::Memory {
                name: name.clone(),
                key: key
                    .strip_prefix(&format!("{name}/"))
                    .or_else(|| (key == name).then_some(""))
                    .unwrap_or(key)
                    .to_string(),
            },
        }
    }

    /// The object key inside its store (the path without the bucket), for object_store.
    pub(crate) fn object_key(&self) -> String {
        match self {
            StorageUri::Local(p) => p.to_string_lossy().trim_start_matches('/').to_string(),
            StorageUri::S3 { key, .. } => key.clone(),
            StorageUri::Memory { name, key } if key.is_empty() => name.clone(),
            StorageUri::Memory { name, key } => format!("{name}/{key}"),
        }
    }
}

impl fmt::Display for StorageUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_key = |f: &mut fmt::Formatter<'_>, scheme: &str, root: &str, key: &str| {
            if key.is_empty() {
                write!(f, "{scheme}://{root}")
            } else {
                write!(f, "{scheme}://{root}/{key}")
            }
        };
        match self {
            StorageUri::Local(p) => write!(f, "{}", p.display()),
            StorageUri::S3 { bucket, key } => with_key(f, "s3", bucket, key),
            StorageUri::Memory { name, key } => with_key(f, "memory", name, key),
        }
    }
}

/// S3's bucket naming rules, checked here so a typo is reported before any request.
fn check_bucket(bucket: &str) -> std::result::Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name {bucket:?} must be 3 to 63 characters long"
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
    {
        return Err(format!(
            "bucket name {bucket:?} may only hold lowercase letters, digits, '-' and '.', not {c:?}"
        ));
    }
    if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "bucket name {bucket:?} must start and end with a letter or digit"
        ));
    }
    Ok(())
}

fn clean_key(key: &str) -> std::result::Result<String, String> {
    let key = key.trim_matches('/');
    if key.split('/').any(|part| part == ".." || part == ".") {
        return Err("'.' and '..' are not allowed in an object key".into());
    }
    if key.contains("//") {
        return Err("an object key may not hold an empty segment ('//')".into());
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_uris_parse() {
        let local = StorageUri::parse("/data/./lake").unwrap();
        assert_eq!(local, StorageUri::Local("/data/lake".into()));
        assert_eq!(StorageUri::parse("file:///data/lake").unwrap(), local);
        assert!(
            StorageUri::parse("relative")
                .unwrap()
                .local_path()
                .unwrap()
                .is_absolute()
        );
        let s3 = StorageUri::parse("s3://corpus-lake/team/lake/").unwrap();
        assert_eq!(
            s3,
            StorageUri::S3 {
                bucket: "corpus-lake".into(),
                key: "team/lake".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://corpus-lake/team/lake");
        assert_eq!(
            s3.join("documents.lance").to_string(),
            "s3://corpus-lake/team/lake/documents.lance"
        );
        assert_eq!(
            StorageUri::parse("s3://bucket")
                .unwrap()
                .join("x")
                .to_string(),
            "s3://bucket/x"
        );
        assert_eq!(
            StorageUri::parse("memory://t/lake").unwrap().to_string(),
            "memory://t/lake"
        );
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (uri, expect) in [
            ("gs://bucket/lake", "gs://"),
            ("s3://Bad_Bucket/lake", "lowercase"),
            ("s3://ab/lake", "3 to 63"),
            ("s3://bucket/a/../b", "'..'"),
            ("memory://", "needs a name"),
            (" ", "empty"),
        ] {
            let err = StorageUri::parse(uri).unwrap_err().to_string();
            assert!(err.contains(expect), "{uri}: {err}");
        }
    }
}
