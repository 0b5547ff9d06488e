//! The token store: a token cache published once into object storage, for nodes that stream a
//! selection larger than their disk (window mode, `window.rs`).
//!
//! One store per (lake version, selection), named by the same key as the local token cache
//! (`tokens/<key>` locally, `<store root>/<key>/` in object storage), immutable once its
//! manifest is there:
//! - `chunks/<pp>/<n>.bin`: the flat token file cut into chunks of `chunk_bytes` (the last may
//!   be shorter); `<pp>` is a hash of the chunk number, so consecutive chunks land under
//!   different prefixes and a node's reads spread over the store's partitions;
//! - `docs.bin`, `component-N.members`, `component-N.groups`: as in the local cache (records
//!   with global offsets and each document's checksum);
//! - `plans/<plan dir>/`: plan indexes built once (`plan.idx`, then `manifest.json`), which
//!   nodes download instead of rebuilding;
//! - `manifest.json`: the cache's manifest plus the chunk layout, written last.
//!
//! Fingerprints are the cache's, so a plan over the store is the same plan, with the same id,
//! as over a local cache of the same selection.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokenlake_lake::{ObjectStorage, StorageUri};

use crate::error::{PlanError, Result};
use crate::plan_index::{IndexSource, PAGE_SUMS, page_sums_of_file};
use crate::publish::COMPLETE_MARKER;
use crate::token_cache::{
    ComponentManifest, ComponentSelection, TokenCache, TokenCacheBuilder, TokenManifest,
};
use crate::window::{ChunkSource, ReadFuture};
use tokenlake_lake::Progress;

/// Layout version of a token store.
pub const STORE_FORMAT: u32 = 1;
/// Default chunk size: large enough that a store of 8 TB is 128 k objects, small enough that
/// publishing holds one chunk per upload in memory.
pub const DEFAULT_CHUNK_BYTES: u64 = 64 << 20;
/// Chunks uploaded at once while publishing.
const UPLOADS: usize = 4;

/// A store's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreManifest {
    pub store_format: u32,
    pub chunk_bytes: u64,
    pub chunks: u64,
    /// A store sealed from shards: where each shard's chunks live. Each shard's tokens start
    /// at a chunk boundary of the store's flat token space, so global chunk `n` is chunk
    /// `n - first_chunk` of the shard that holds it. Empty for a store published whole.
    #[serde(default)]
    pub parts: Vec<StorePart>,
    pub cache: TokenManifest,
}

/// One shard's chunks in a sealed store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorePart {
    /// Where the shard's store is, relative to the store's root (`shards/I-of-N/`).
    pub prefix: String,
    pub first_chunk: u64,
    pub chunks: u64,
}

impl StoreManifest {
    /// Bytes of the store's tokens.
    pub fn token_bytes(&self) -> u64 {
        self.cache.tokens * u64::from(self.cache.token_width)
    }

    /// Where global chunk `n` lives, relative to the store's root.
    pub fn chunk_object(&self, n: u64) -> String {
        match self
            .parts
            .iter()
            .find(|p| p.first_chunk <= n && n < p.first_chunk + p.chunks)
        {
            Some(part) => format!("{}{}", part.prefix, chunk_key(n - part.first_chunk)),
            None => chunk_key(n),
        }
    }

    /// Whether the chunks cover the tokens: all of them for a store published whole; for a
    /// sealed one, shards that follow each other from chunk 0.
    fn layout_is_whole(&self) -> bool {
        if self.chunk_bytes == 0 {
            return false;
        }
        if self.parts.is_empty() {
            return self.chunks == self.token_bytes().div_ceil(self.chunk_bytes);
        }
        let mut next = 0;
        for part in &self.parts {
            if part.first_chunk != next {
                return false;
            }
            next += part.chunks;
        }
        next == self.chunks
    }
}

/// Where chunk `n` of a store lives, relative to the store's root.
pub fn chunk_key(n: u64) -> String {
    let prefix = crate::rng::mix64(n ^ 0x0063_6875_6e6b) & 0xffff;
    format!("chunks/{prefix:04x}/{n:012}.bin")
}

/// One store in object storage.
#[derive(Debug, Clone)]
pub struct TokenStore {
    pub storage: ObjectStorage,
    pub root: StorageUri,
    pub manifest: StoreManifest,
}

impl TokenStore {
    /// The store at `root`, or `None` when none was published there (no manifest).
    pub async fn open(storage: &ObjectStorage, root: &StorageUri) -> Result<Option<TokenStore>> {
        let uri = root.join(COMPLETE_MARKER);
        let Some(bytes) = storage.read_if_exists(&uri).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| PlanError::CacheCorrupt {
            path: uri.to_string(),
            reason,
        };
        let manifest: StoreManifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if manifest.store_format != STORE_FORMAT {
            return Err(corrupt(format!(
                "store format {} is not {STORE_FORMAT}: it was written by another release; \
                 publish the selection again with `tokenlake materialise`",
                manifest.store_format
            )));
        }
        if manifest.cache.format != crate::token_cache::FORMAT {
            return Err(corrupt(format!(
                "token cache format {} is not {}: publish the selection again with `tokenlake \
                 materialise`",
                manifest.cache.format,
                crate::token_cache::FORMAT
            )));
        }
        manifest.cache.width().map_err(corrupt)?;
        if !manifest.layout_is_whole() {
            return Err(corrupt("its chunk layout does not cover its tokens".into()));
        }
        Ok(Some(TokenStore {
            storage: storage.clone(),
            root: root.clone(),
            manifest,
        }))
    }

    /// Publishes `cache` at `root`: chunks and indexes first, the manifest last, so a store
    /// appears complete or not at all. A store already complete there is kept (they are
    /// immutable and named by content); an interrupted publish leaves chunks that the next one
    /// overwrites.
    pub async fn publish(
        cache: &TokenCache,
        storage: &ObjectStorage,
        root: &StorageUri,
        chunk_bytes: u64,
        progress: &Progress,
    ) -> Result<TokenStore> {
        if let Some(store) = Self::open(storage, root).await? {
            return Ok(store);
        }
        if !cache.manifest().has_checksums() {
            return Err(PlanError::Store(
                "a synthetic token cache has no real tokens to publish".into(),
            ));
        }
        // Whole tokens per chunk: a shard's tokens then start at a token boundary.
        let w = cache.width().bytes() as u64;
        let chunk_bytes = (chunk_bytes - chunk_bytes % w).max(w);
        let cancel = progress.cancel_token().flag();
        let dir = cache.dir();
        for name in index_files(cache.components()) {
            upload_file(storage, &dir.join(&name), &root.join(&name)).await?;
        }
        let total = cache.tokens() * cache.width().bytes() as u64;
        let chunks = total.div_ceil(chunk_bytes);
        progress.start("publishing the token store", total);
        let tokens = cache.token_bytes(0, cache.tokens());
        futures::stream::iter(0..chunks)
            .map(|n| {
                let from = (n * chunk_bytes) as usize;
                let to = ((n + 1) * chunk_bytes).min(total) as usize;
                let body = Bytes::copy_from_slice(&tokens[from..to]);
                let uri = root.join(&chunk_key(n));
                async move {
                    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err(PlanError::Cancelled);
                    }
                    let len = body.len() as u64;
                    storage.write(&uri, body).await?;
                    progress.add(len);
                    Ok(())
                }
            })
            .buffer_unordered(UPLOADS)
            .try_collect::<()>()
            .await?;
        let manifest = StoreManifest {
            store_format: STORE_FORMAT,
            chunk_bytes,
            chunks,
            parts: Vec::new(),
            cache: (**cache.manifest()).clone(),
        };
        Self::write_manifest(storage, root, manifest).await
    }

    /// Writes a store's manifest, the last of its objects: the store exists from then on.
    async fn write_manifest(
        storage: &ObjectStorage,
        root: &StorageUri,
        manifest: StoreManifest,
    ) -> Result<TokenStore> {
        storage
            .write(
                &root.join(COMPLETE_MARKER),
                Bytes::from(serde_json::to_vec_pretty(&manifest).expect("manifest serialises")),
            )
            .await?;
        Ok(TokenStore {
            storage: storage.clone(),
            root: root.clone(),
            manifest,
        })
    }

    /// Seals shards' stores (`shards/I-of-N/` under `root`, each published whole by one task
    /// of a sharded build) into the store at `root`: the records of every shard, their offsets
    /// moved to where each shard's chunks start in the store's flat token space, sorted and
    /// fingerprinted as a cache of the whole selection would be (so the plan id is the one a
    /// store published whole gets), then the manifest, last. The index is built in `work`.
    pub async fn seal(
        storage: &ObjectStorage,
        root: &StorageUri,
        shards: u32,
        components: &[(bool, String)],
        work: &Path,
    ) -> Result<TokenStore> {
        if let Some(store) = Self::open(storage, root).await? {
            return Ok(store);
        }
        let mut opened = Vec::with_capacity(shards as usize);
        let mut missing = Vec::new();
        for i in 0..shards {
            let prefix = shard_prefix(i, shards);
            match Self::open(storage, &root.join(&prefix)).await? {
                Some(store) => opened.push((prefix, store)),
                None => missing.push(i.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(PlanError::Store(format!(
                "shards {} of {shards} have not published (run `tokenlake materialise RECIPE \
                 --shard I/{shards}` for each); nothing was sealed",
                missing.join(", ")
            )));
        }
        let chunk_bytes = opened[0].1.manifest.chunk_bytes;
        let width =
            opened[0]
                .1
                .manifest
                .cache
                .width()
                .map_err(|reason| PlanError::CacheCorrupt {
                    path: root.to_string(),
                    reason,
                })?;
        for (prefix, store) in &opened {
            let m = &store.manifest;
            if m.chunk_bytes != chunk_bytes
                || m.cache.token_width != width.bytes() as u8
                || m.cache.components.len() != components.len()
            {
                return Err(PlanError::Store(format!(
                    "shard {prefix} was built with other chunks, token width or components than \
                     shard {}; build every shard with the same recipe and --chunk-mib",
                    opened[0].0
                )));
            }
        }
        let w = width.bytes() as u64;
        let tmp = crate::publish::temp_dir_for(work)?;
        let built = async {
            let mut builder = TokenCacheBuilder::records_only(work, width)?;
            let mut selections: Vec<ComponentSelection> = components
                .iter()
                .map(|(grouped, _)| ComponentSelection {
                    members: Vec::new(),
                    groups: grouped.then(Vec::new),
                })
                .collect();
            let mut parts = Vec::with_capacity(opened.len());
            let mut first_chunk = 0;
            for (i, (prefix, store)) in opened.iter().enumerate() {
                let index = store.download_index(&tmp.join(i.to_string())).await?;
                let base = first_chunk * chunk_bytes / w;
                let mut global = Vec::with_capacity(index.docs() as usize);
                for d in 0..index.docs() {
                    let doc = index.doc(d);
                    global.push(builder.push_record(
                        doc.doc_id,
                        base + doc.offset,
                        doc.len,
                        doc.checksum,
                    )?);
                }
                for (c, selection) in selections.iter_mut().enumerate() {
                    let members = index.members(c);
                    let values = index.components()[c].groups.as_deref();
                    let groups = index.groups(c);
                    for m in 0..members.len() {
                        selection.members.push(global[members.get(m) as usize]);
                        if let (Some(out), Some(values), Some(groups)) =
                            (selection.groups.as_mut(), values, groups)
                        {
                            out.push(values[groups.get(m) as usize].clone());
                        }
                    }
                }
                parts.push(StorePart {
                    prefix: prefix.clone(),
                    first_chunk,
                    chunks: store.manifest.chunks,
                });
                first_chunk += store.manifest.chunks;
            }
            let cache = builder.finish(selections)?;
            for name in index_files(cache.components()) {
                upload_file(storage, &cache.dir().join(&name), &root.join(&name)).await?;
            }
            let manifest = StoreManifest {
                store_format: STORE_FORMAT,
                chunk_bytes,
                chunks: first_chunk,
                parts,
                cache: (**cache.manifest()).clone(),
            };
            Self::write_manifest(storage, root, manifest).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&tmp);
        built
    }

    /// Ranged reads of the store's chunks, wherever its manifest says each lives.
    pub fn chunks(&self) -> Arc<StoreChunks> {
        Arc::new(StoreChunks {
            storage: self.storage.clone(),
            root: self.root.clone(),
            manifest: Arc::new(self.manifest.clone()),
        })
    }

    /// Downloads the store's record table and component indexes (no tokens) into `dir`, as an
    /// index-only token cache: what a plan build needs.
    pub async fn download_index(&self, dir: &Path) -> Result<TokenCache> {
        let tmp = crate::publish::temp_dir_for(dir)?;
        let result = async {
            for name in &index_files(&self.manifest.cache.components) {
                let bytes = self.storage.read(&self.root.join(name)).await?;
                crate::publish::write_file(&tmp.join(name), &bytes)?;
            }
            crate::publish::write_file(
                &tmp.join(COMPLETE_MARKER),
                &serde_json::to_vec_pretty(&self.manifest.cache).expect("manifest serialises"),
            )?;
            crate::publish::publish_dir(&tmp, dir)?;
            TokenCache::open_index(dir)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Where the plan index `plan_dir` is published beside the store and its manifest, or
    /// `None` when it is not (the manifest is written last).
    async fn plan_manifest(&self, plan_dir: &str) -> Result<Option<(StorageUri, Bytes)>> {
        let root = self.root.join(&format!("plans/{plan_dir}"));
        let manifest = self
            .storage
            .read_if_exists(&root.join(COMPLETE_MARKER))
            .await?;
        Ok(manifest.map(|m| (root, m)))
    }

    /// The plan index `plan_dir` published beside the store, to be read page by page: its
    /// manifest, size, page checksums and a reader of its bytes. `None` when it was not
    /// published, or was published without page checksums (by an older tokenlake; see
    /// [`TokenStore::download_plan`]).
    pub async fn published_plan(&self, plan_dir: &str) -> Result<Option<PublishedPlan>> {
        let Some((root, manifest)) = self.plan_manifest(plan_dir).await? else {
            return Ok(None);
        };
        let Some(sums) = self.storage.read_if_exists(&root.join(PAGE_SUMS)).await? else {
            return Ok(None);
        };
        let uri = root.join("plan.idx");
        let len = self
            .storage
            .size_if_exists(&uri)
            .await?
            .ok_or_else(|| PlanError::Store(format!("{uri} is missing beside its manifest")))?;
        Ok(Some(PublishedPlan {
            manifest,
            len,
            sums,
            source: Arc::new(StoreIndex {
                storage: self.storage.clone(),
                uri,
            }),
        }))
    }

    /// The plan index `plan_dir` published beside the store, downloaded into `target`;
    /// `false` when none was published.
    pub async fn download_plan(
        &self,
        plan_dir: &str,
        target: &Path,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<bool> {
        let Some((root, manifest)) = self.plan_manifest(plan_dir).await? else {
            return Ok(false);
        };
        let tmp = crate::publish::temp_dir_for(target)?;
        let result = async {
            let path = tmp.join("plan.idx");
            download_parallel(
                &self.storage,
                &root.join("plan.idx"),
                &path,
                DOWNLOAD_PART,
                cancel,
            )
            .await?;
            crate::publish::write_file(&tmp.join(COMPLETE_MARKER), &manifest)?;
            crate::publish::publish_dir(&tmp, target)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.map(|()| true)
    }

    /// Publishes the plan index in `dir` beside the store with its page checksums (what a
    /// cold node reads it page by page with, `plan_index.rs`), its manifest last.
    pub async fn publish_plan(&self, plan_dir: &str, dir: &Path) -> Result<()> {
        let root = self.root.join(&format!("plans/{plan_dir}"));
        upload_file(&self.storage, &dir.join("plan.idx"), &root.join("plan.idx")).await?;
        let index = dir.join("plan.idx");
        let sums = tokio::task::spawn_blocking(move || page_sums_of_file(&index))
            .await
            .map_err(|e| PlanError::Store(format!("checksumming the plan index: {e}")))??;
        self.storage
            .write(&root.join(PAGE_SUMS), Bytes::from(sums))
            .await?;
        upload_file(
            &self.storage,
            &dir.join(COMPLETE_MARKER),
            &root.join(COMPLETE_MARKER),
        )
        .await
    }
}

/// A plan index published beside a store, as a cold node reads it page by page.
pub struct PublishedPlan {
    pub manifest: Bytes,
    pub len: u64,
    pub sums: Bytes,
    pub source: Arc<dyn IndexSource>,
}

/// Ranged reads of a published `plan.idx`.
struct StoreIndex {
    storage: ObjectStorage,
    uri: StorageUri,
}

impl IndexSource for StoreIndex {
    fn read(&self, range: Range<u64>) -> ReadFuture {
        let (storage, uri) = (self.storage.clone(), self.uri.clone());
        Box::pin(async move {
            storage
                .read_range(&uri, range)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The chunks of the token store at `root` (its manifest says where each lives).
pub struct StoreChunks {
    pub storage: ObjectStorage,
    pub root: StorageUri,
    pub manifest: Arc<StoreManifest>,
}

impl ChunkSource for StoreChunks {
    fn read(&self, chunk: u64, range: Range<u64>) -> ReadFuture {
        let storage = self.storage.clone();
        let uri = self.root.join(&self.manifest.chunk_object(chunk));
        Box::pin(async move {
            storage
                .read_range(&uri, range)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Bytes of one ranged GET when downloading a plan index, and how many run at once: a single
/// stream from object storage gives about 100 MB/s, so a plan index of 100 GB (2·10⁹
/// documents) would take a cold node a quarter of an hour; sixteen at once take it to what
/// the node's network carries. The parts in flight are held in memory: 128 MiB.
const DOWNLOAD_PART: u64 = 8 << 20;
const DOWNLOADS: usize = 16;

/// Downloads the object at `uri` into a new file at `path` with ranged GETs, several at once.
async fn download_parallel(
    storage: &ObjectStorage,
    uri: &StorageUri,
    path: &Path,
    part: u64,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let size = storage
        .size_if_exists(uri)
        .await?
        .ok_or_else(|| PlanError::Store(format!("{uri} is missing beside its manifest")))?;
    let file = std::fs::File::create(path)
        .map_err(PlanError::io(format!("creating {}", path.display())))?;
    file.set_len(size)
        .map_err(PlanError::io(format!("sizing {}", path.display())))?;
    let file = &file;
    futures::stream::iter((0..size.div_ceil(part)).map(|n| {
        let range = n * part..((n + 1) * part).min(size);
        async move {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(PlanError::Cancelled);
            }
            let bytes = storage.read_range(uri, range.clone()).await?;
            if bytes.len() as u64 != range.end - range.start {
                return Err(PlanError::Store(format!(
                    "{uri}: bytes {}..{} came back {} bytes long",
                    range.start,
                    range.end,
                    bytes.len()
                )));
            }
            file.write_all_at(&bytes, range.start)
                .map_err(PlanError::io(format!("writing {}", path.display())))
        }
    }))
    .buffer_unordered(DOWNLOADS)
    .try_collect::<()>()
    .await?;
    file.sync_all()
        .map_err(PlanError::io(format!("writing {}", path.display())))
}

/// Where shard `shard` of `shards` publishes, relative to the store's root.
pub fn shard_prefix(shard: u32, shards: u32) -> String {
    format!("shards/{shard}-of-{shards}/")
}

/// A cache's files other than its tokens and manifest, for its components.
fn index_files(components: &[ComponentManifest]) -> Vec<String> {
    let mut names = vec!["docs.bin".to_string()];
    for (c, component) in components.iter().enumerate() {
        names.push(format!("component-{c}.members"));
        if component.groups.is_some() {
            names.push(format!("component-{c}.groups"));
        }
    }
    names
}

async fn upload_file(storage: &ObjectStorage, local: &Path, uri: &StorageUri) -> Result<()> {
    storage.upload_file(local, uri).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object downloaded in parts, several at once, is the object; one that is missing is
    /// named.
    #[tokio::test]
    async fn a_download_in_parts_is_the_object() {
        let uri = StorageUri::parse("memory://store-tests/plans/p/plan.idx").unwrap();
        let storage = ObjectStorage::for_uri(&uri, &Default::default()).unwrap();
        let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        storage
            .write(&uri, Bytes::from(body.clone()))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        for part in [1, 7, 999, 1000, 4096] {
            let path = dir.path().join(format!("plan-{part}.idx"));
            download_parallel(&storage, &uri, &path, part, &stop)
                .await
                .unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), body, "parts of {part}");
        }
        let missing = StorageUri::parse("memory://store-tests/plans/q/plan.idx").unwrap();
        let err = download_parallel(&storage, &missing, &dir.path().join("q"), 7, &stop)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
