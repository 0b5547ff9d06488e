//! Reading and writing objects tokenlake owns beside Lance's tables (tokenizers, rejects,
//! reports, inputs), wherever the lake lives, with bounded retries and errors that name the
//! object.

use std::io::Write;
use std::path::Path as LocalPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use crate::counting::{CountingStore, RequestCounts};
use crate::memory::memory_store;
use crate::{Result, StorageError, StorageOptions, StorageUri};

/// Side files above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
const PART_SIZE: usize = 8 << 20;

/// The retry policy, from the options Lance reads too (`client_max_retries`,
/// `client_retry_timeout`), so a lake's table and its side files fail alike. object_store backs
/// off exponentially with random jitter on 5xx (503 SlowDown included), 429 and timeouts.
pub fn retry_config(options: &StorageOptions) -> Result<RetryConfig> {
    let number = |key: &str, default: u64| -> Result<u64> {
        match options.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| StorageError::Option {
                key: key.to_string(),
                reason: format!("{v:?} is not a whole number"),
            }),
        }
    };
    Ok(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: number("client_max_retries", 10)? as usize,
        retry_timeout: Duration::from_secs(number("client_retry_timeout", 180)?),
    })
}

/// An object store that holds `uri`'s objects.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
}

impl ObjectStorage {
    /// The store for `uri`: the local file system, the process's memory store, or the S3
    /// bucket (credentials from `options`, else the AWS environment and credential chain).
    pub fn for_uri(uri: &StorageUri, options: &StorageOptions) -> Result<ObjectStorage> {
        let store: Arc<dyn ObjectStore> = match uri {
            StorageUri::Local(_) => Arc::new(LocalFileSystem::new()),
            StorageUri::Memory { .. } => memory_store(),
            StorageUri::S3 { bucket, .. } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config(options)?);
                // Lance-only keys (retry bounds, `allow_http` spelled Lance's way) are not
                // object_store config keys; plain HTTP is set from the option or environment.
                for (key, value) in options.iter() {
                    if let Ok(k) = key.parse() {
                        builder = builder.with_config(k, value);
                    }
                }
                builder = builder.with_allow_http(options.allow_http());
                Arc::new(builder.build().map_err(|source| StorageError::Object {
                    op: "opening",
                    uri: uri.to_string(),
                    source,
                })?)
            }
        };
        Ok(ObjectStorage { store })
    }

    /// The same store, counting its requests into `counts`.
    pub fn counted(self, counts: Arc<RequestCounts>) -> ObjectStorage {
        ObjectStorage {
            store: Arc::new(CountingStore::new(self.store, counts)),
        }
    }

    fn path(uri: &StorageUri) -> Path {
        Path::from(uri.object_key())
    }

    /// The whole object.
    pub async fn read(&self, uri: &StorageUri) -> Result<Bytes> {
        self.read_if_exists(uri)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                uri: uri.to_string(),
            })
    }

    pub async fn read_if_exists(&self, uri: &StorageUri) -> Result<Option<Bytes>> {
        let got = match self.store.get(&Self::path(uri)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(object_err("reading", uri, source)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(|source| object_err("reading", uri, source))
    }

    /// Bytes `range` of the object, in one ranged request. A store may return fewer bytes
    /// than asked near the object's end; the caller checks what it got.
    pub async fn read_range(&self, uri: &StorageUri, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&Self::path(uri), range)
            .await
            .map_err(|source| object_err("reading", uri, source))
    }

    pub async fn exists(&self, uri: &StorageUri) -> Result<bool> {
        Ok(self.size_if_exists(uri).await?.is_some())
    }

    /// The object's size, or `None` when there is no object at `uri`.
    pub async fn size_if_exists(&self, uri: &StorageUri) -> Result<Option<u64>> {
        match self.store.head(&Self::path(uri)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(object_err("checking", uri, source)),
        }
    }

    /// Writes the object in one request: readers see the old object or the new one, never a
    /// part (on local disks object_store writes a staging file and renames it).
    pub async fn write(&self, uri: &StorageUri, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Self::path(uri), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| object_err("writing", uri, source))
    }

    /// Uploads a local file: one request when small, a multipart upload above
    /// [`MULTIPART_THRESHOLD`] (aborted on failure, so no half object appears). Returns bytes.
    pub async fn upload_file(&self, local: &LocalPath, uri: &StorageUri) -> Result<u64> {
        let size = std::fs::metadata(local)
            .map_err(|source| StorageError::Io {
                context: format!("reading {}", local.display()),
                source,
            })?
            .len();
        if size <= MULTIPART_THRESHOLD {
            let bytes = tokio::fs::read(local)
                .await
                .map_err(|source| StorageError::Io {
                    context: format!("reading {}", local.display()),
                    source,
                })?;
            self.write(uri, Bytes::from(bytes)).await?;
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&Self::path(uri))
            .await
            .map_err(|source| object_err("starting an upload of", uri, source))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|source| StorageError::Io {
                context: format!("reading {}", local.display()),
                source,
            })?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            use tokio::io::AsyncReadExt;
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Io {
                        context: format!("reading {}", local.display()),
                        source,
                    });
                }
            };
            if n == 0 {
                break;
            }
            if let Err(source) = writer.wait_for_capacity(4).await {
                return Err(object_err("uploading", uri, source));
            }
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map_err(|source| object_err("finishing the upload of", uri, source))?;
        Ok(size)
    }

    /// Streams the object into `out`, adding to `fetched` as it goes; stops with
    /// [`StorageError::Interrupted`] once `cancel` is set. Returns the bytes written.
    pub async fn download(
        &self,
        uri: &StorageUri,
        out: &mut impl Write,
        fetched: &AtomicU64,
        cancel: &AtomicBool,
    ) -> Result<u64> {
        let got = self
            .store
            .get(&Self::path(uri))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => StorageError::NotFound {
                    uri: uri.to_string(),
                },
                source => object_err("reading", uri, source),
            })?;
        let mut stream = got.into_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|source| object_err("reading", uri, source))?
        {
            out.write_all(&chunk).map_err(|source| StorageError::Io {
                context: format!("saving {uri}"),
                source,
            })?;
            written += chunk.len() as u64;
            fetched.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if cancel.load(Ordering::Relaxed) {
                return Err(StorageError::Interrupted);
            }
        }
        Ok(written)
    }

    /// Every object under `prefix` (a "directory"), in key order.
    pub async fn list(&self, prefix: &StorageUri) -> Result<Vec<(StorageUri, u64)>> {
        let key = prefix.object_key();
        let path = (!key.is_empty()).then(|| Path::from(key));
        let mut metas: Vec<ObjectMeta> = self
            .store
            .list(path.as_ref())
            .map(|r| r.map_err(|source| object_err("listing", prefix, source)))
            .try_collect()
            .await?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(metas
            .into_iter()
            .map(|m| (prefix.with_object_key(m.location.as_ref()), m.size))
            .collect())
    }

    /// Deletes the object; a missing one is fine.
    pub async fn delete(&self, uri: &StorageUri) -> Result<()> {
        match self.store.delete(&Self::path(uri)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(object_err("deleting", uri, source)),
        }
    }
}

fn object_err(op: &'static str, uri: &StorageUri, source: object_store::Error) -> StorageError {
    StorageError::Object {
        op,
        uri: uri.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn side_files_round_trip_small_and_in_parts_and_requests_are_counted() {
        let root = StorageUri::parse("memory://store-test/lake").unwrap();
        let counts = Arc::new(RequestCounts::default());
        let storage = ObjectStorage::for_uri(&root, &StorageOptions::new())
            .unwrap()
            .counted(counts.clone());
        let dir = tempfile::tempdir().unwrap();
        for (name, size) in [("small.bin", 1000usize), ("large.bin", (20 << 20) + 3)] {
            let local = dir.path().join(name);
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&local, &bytes).unwrap();
            let uri = root.join(name);
            assert_eq!(
                storage.upload_file(&local, &uri).await.unwrap(),
                size as u64
            );
            let mut back = Vec::new();
            let fetched = AtomicU64::new(0);
            let n = storage
                .download(&uri, &mut back, &fetched, &AtomicBool::new(false))
                .await
                .unwrap();
            assert_eq!((n, fetched.into_inner()), (size as u64, size as u64));
            assert!(back == bytes, "{name} came back different");
        }
        let totals = counts.totals();
        assert_eq!(totals.gets, 2);
        assert_eq!(totals.get_bytes, 1000 + (20 << 20) + 3);

        let listed = storage.list(&root).await.unwrap();
        let names: Vec<String> = listed.iter().map(|(u, _)| u.to_string()).collect();
        assert_eq!(
            names,
            [
                "memory://store-test/lake/large.bin",
                "memory://store-test/lake/small.bin"
            ]
        );
        assert!(storage.exists(&root.join("small.bin")).await.unwrap());
        storage.delete(&root.join("small.bin")).await.unwrap();
        assert!(!storage.exists(&root.join("small.bin")).await.unwrap());
        let err = storage.read(&root.join("small.bin")).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("memory://store-test/lake/small.bin"),
            "{err}"
        );
    }

    #[test]
    fn retry_bounds_come_from_the_options() {
        let options =
            StorageOptions::from_pairs(&["client_max_retries=2", "client_retry_timeout=5"])
                .unwrap();
        let retry = retry_config(&options).unwrap();
        assert_eq!(retry.max_retries, 2);
        assert_eq!(retry.retry_timeout, Duration::from_secs(5));
        let bad = StorageOptions::from_pairs(&["client_max_retries=many"]).unwrap();
        assert!(retry_config(&bad).unwrap_err().to_string().contains("many"));
    }
}
