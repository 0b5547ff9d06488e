//! Input patterns: `s3://raw/cc/*.jsonl.zst`, a single object, or a prefix holding objects.

use crate::{ObjectStorage, Result, StorageError, StorageOptions, StorageUri};

/// The objects `pattern` names, in key order, with their sizes. A pattern without wildcards is
/// that object, or every object under it when it is a prefix; one that matches nothing is an
/// error naming it.
pub async fn expand_pattern(
    pattern: &str,
    options: &StorageOptions,
) -> Result<Vec<(StorageUri, u64)>> {
    let uri = StorageUri::parse(pattern)?;
    let storage = ObjectStorage::for_uri(&uri, options)?;
    let key = uri.object_key();
    let has_wildcard = |s: &str| s.contains(['*', '?', '[']);
    let found = if has_wildcard(&key) {
        // List from the longest prefix without wildcards, then match the rest segment-wise.
        let fixed: Vec<&str> = key.split('/').take_while(|s| !has_wildcard(s)).collect();
        let root = uri.with_object_key(&fixed.join("/"));
        let matcher = glob::Pattern::new(&key).map_err(|e| StorageError::InvalidUri {
            uri: pattern.to_string(),
            reason: format!("bad wildcard pattern: {e}"),
        })?;
        let strict = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        storage
            .list(&root)
            .await?
            .into_iter()
            .filter(|(object, _)| matcher.matches_with(&object.object_key(), strict))
            .collect()
    } else if let Some(size) = storage.size_if_exists(&uri).await? {
        vec![(uri.clone(), size)]
    } else {
        // A prefix: every object under it.
        storage.list(&uri).await?
    };
    if found.is_empty() {
        return Err(StorageError::NotFound {
            uri: format!("{pattern} (no object matches)"),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn wildcards_prefixes_and_single_objects() {
        let options = StorageOptions::new();
        let root = StorageUri::parse("memory://pattern-test/raw").unwrap();
        let storage = ObjectStorage::for_uri(&root, &options).unwrap();
        for key in [
            "cc/a.jsonl.zst",
            "cc/b.jsonl.zst",
            "cc/b.txt",
            "cc/deep/c.jsonl.zst",
        ] {
            storage
                .write(&root.join(key), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let keys = |found: Vec<(StorageUri, u64)>| -> Vec<String> {
            found.into_iter().map(|(u, _)| u.to_string()).collect()
        };
        assert_eq!(
            keys(
                expand_pattern("memory://pattern-test/raw/cc/*.jsonl.zst", &options)
                    .await
                    .unwrap()
            ),
            [
                "memory://pattern-test/raw/cc/a.jsonl.zst",
                "memory://pattern-test/raw/cc/b.jsonl.zst"
            ]
        );
        assert_eq!(
            expand_pattern("memory://pattern-test/raw/cc", &options)
                .await
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            keys(
                expand_pattern("memory://pattern-test/raw/cc/b.txt", &options)
                    .await
                    .unwrap()
            ),
            ["memory://pattern-test/raw/cc/b.txt"]
        );
        let err = expand_pattern("memory://pattern-test/raw/cc/*.parquet", &options)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("*.parquet") && err.contains("no object"),
            "{err}"
        );
    }
}
