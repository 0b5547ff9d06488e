//! Sharded ingest, the lake's side: Lance's distributed write. Each shard writes its documents
//! as fragments that no version names yet and leaves a manifest (the fragments' metadata, its
//! counts) and a documents file (every row's doc_id, and labels and dedup fingerprints when the
//! shard labelled) under `LAKE/shards/<set>/`. One commit then publishes the fragments of all
//! shards as exactly one version: rows that repeat a document an earlier shard wrote are
//! deleted (deletion files, as a single ingest would have skipped them), and label columns, when
//! given, are written into old and new fragments alike in the same version.
//!
//! A shard's manifest is written last, in one request, so a shard that died left none and the
//! commit refuses to run; re-running the shard replaces its manifest, and the fragments of the
//! failed run are referenced by nothing (`lance` cleanup removes such files).

mod commit;

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use lance::dataset::transaction::Operation;
use lance::dataset::{InsertBuilder, WriteParams};
use lance::table::format::Fragment;
use serde::{Deserialize, Serialize};
use tokenlake_schemas::{LakeSchemaInfo, TokenWidth};

pub use commit::{ShardCommit, ShardLabels};

use crate::{Lake, LakeError, LakeLocation, Result, StorageUri};

/// Which shard of how many: `I/N`, 0 ≤ I < N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    pub fn parse(text: &str) -> std::result::Result<ShardSpec, String> {
        let bad = || format!("{text:?} is not a shard: give I/N with 0 ≤ I < N, e.g. 0/3");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }

    /// This shard's contiguous block of a list of `len` items: the blocks of shards 0..N cover
    /// the list once, in order, so the shards' rows in shard order are a single run's rows.
    pub fn block(&self, len: usize) -> Range<usize> {
        let at = |i: u32| (len as u128 * u128::from(i) / u128::from(self.count)) as usize;
        at(self.index)..at(self.index + 1)
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The token columns' description, as the first ingest into a lake fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSchema {
    pub schema_version: u32,
    pub token_width_bytes: u8,
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
}

impl ShardSchema {
    pub fn from_info(info: &LakeSchemaInfo) -> ShardSchema {
        ShardSchema {
            schema_version: info.schema_version,
            token_width_bytes: info.token_width.bytes() as u8,
            tokenizer_sha256: info.tokenizer_sha256.clone(),
            vocab_size: info.vocab_size,
        }
    }

    pub fn info(&self) -> Result<LakeSchemaInfo, String> {
        let token_width = match self.token_width_bytes {
            2 => TokenWidth::U16,
            4 => TokenWidth::U32,
            w => return Err(format!("token width of {w} bytes")),
        };
        if !tokenlake_schemas::is_sha256_hex(&self.tokenizer_sha256) {
            return Err(format!(
                "tokenizer digest {:?} is not a SHA-256 digest",
                self.tokenizer_sha256
            ));
        }
        Ok(LakeSchemaInfo {
            schema_version: self.schema_version,
            token_width,
            tokenizer_sha256: self.tokenizer_sha256.clone(),
            vocab_size: self.vocab_size,
        })
    }
}

/// What a finished shard leaves for the commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardManifest {
    pub set: String,
    pub index: u32,
    pub count: u32,
    /// A digest of the whole input list, the same for every shard of one set.
    pub inputs_digest: String,
    /// This shard's block of it.
    pub inputs: Vec<String>,
    /// The version whose documents the shard skipped as already stored (None: no lake yet).
    pub base_version: Option<u64>,
    pub schema: ShardSchema,
    /// The curation pipeline's fingerprint when the shard labelled its documents.
    pub pipeline: Option<String>,
    pub ingest_id: String,
    /// The fragments written, in row order, not yet in any version.
    pub fragments: Vec<Fragment>,
    /// The Arrow IPC file beside this manifest: a row per written row, in order.
    pub documents_file: String,
    pub docs_read: u64,
    pub docs_written: u64,
    pub docs_already_present: u64,
    pub docs_rejected: u64,
    pub tokens_written: u64,
    pub input_bytes: u64,
    pub rejects_file: Option<String>,
}

impl ShardManifest {
    pub fn spec(&self) -> ShardSpec {
        ShardSpec {
            index: self.index,
            count: self.count,
        }
    }
}

/// A digest of an input list, to tell shards of one set from shards given another list.
pub fn inputs_digest(inputs: &[String]) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(inputs.join("\n").as_bytes())
    )
}

fn manifest_name(index: u32, count: u32) -> String {
    format!("shard-{index:05}-of-{count:05}.json")
}

pub(crate) fn shard_error(
    location: &LakeLocation,
    set: &str,
    reason: impl Into<String>,
) -> LakeError {
    LakeError::Shards {
        lake: location.to_string(),
        set: set.to_string(),
        reason: reason.into(),
    }
}

/// A set name is a path segment of the lake: letters, digits, `-`, `_` and `.`.
pub fn check_set_name(set: &str) -> std::result::Result<(), String> {
    if set.is_empty()
        || set.starts_with('.')
        || !set
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "shard set {set:?} must be letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(())
}

impl LakeLocation {
    /// Where the shards of `set` leave their manifests and documents files.
    pub fn shards_uri(&self, set: &str) -> StorageUri {
        self.root().join(&format!("shards/{set}"))
    }
}

/// Every shard of a set, complete and consistent, in shard order.
#[derive(Debug, Clone)]
pub struct ShardSet {
    pub set: String,
    pub shards: Vec<ShardManifest>,
}

impl Lake {
    /// Writes `batches` as fragments of the documents table without committing them; the
    /// fragments of a lake that does not exist yet are laid out for the schema of its first
    /// version (`info`).
    pub async fn write_uncommitted(
        location: &LakeLocation,
        base: Option<&Lake>,
        batches: impl RecordBatchReader + Send + 'static,
    ) -> Result<Vec<Fragment>> {
        if let (None, Some(root)) = (base, location.local_root()) {
            std::fs::create_dir_all(root)
                .map_err(LakeError::io(format!("creating lake directory {location}")))?;
        }
        let params = WriteParams {
            store_params: Some(location.lance_params()),
            // Nothing is committed here. Without a base, Overwrite rather than Create: Create
            // refuses once another writer has made the lake meanwhile, and which of two first
            // writers makes the lake is the commit's to decide (`Lake::commit_ingest`).
            mode: if base.is_some() {
                lance::dataset::WriteMode::Append
            } else {
                lance::dataset::WriteMode::Overwrite
            },
            ..WriteParams::default()
        };
        let uri = location.documents_uri();
        let builder = match base {
            Some(lake) => InsertBuilder::new(Arc::new(lake.latest.clone())),
            None => InsertBuilder::new(uri.as_str()),
        };
        let transaction = builder
            .with_params(&params)
            .execute_uncommitted_stream(Box::new(batches) as Box<dyn RecordBatchReader + Send>)
            .await
            .map_err(LakeError::lance(format!(
                "writing uncommitted fragments to lake {location}"
            )))?;
        inserted_fragments(transaction, location, "writing uncommitted fragments")
    }

    /// Leaves a finished shard's results: the documents file first, then the manifest (the
    /// sign that the shard finished), each in one request.
    pub async fn save_shard(
        location: &LakeLocation,
        manifest: &ShardManifest,
        documents_ipc: bytes::Bytes,
    ) -> Result<StorageUri> {
        let storage = location.storage()?;
        let dir = location.shards_uri(&manifest.set);
        storage
            .write(&dir.join(&manifest.documents_file), documents_ipc)
            .await?;
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| {
            shard_error(
                location,
                &manifest.set,
                format!("encoding the manifest: {e}"),
            )
        })?;
        let uri = dir.join(&manifest_name(manifest.index, manifest.count));
        storage.write(&uri, bytes::Bytes::from(json)).await?;
        Ok(uri)
    }

    /// Reads every shard manifest of `set` and checks that they make one complete set: the same
    /// shard count, input list, lake version and pipeline, and no shard missing.
    pub async fn load_shard_set(location: &LakeLocation, set: &str) -> Result<ShardSet> {
        check_set_name(set).map_err(|e| shard_error(location, set, e))?;
        let storage = location.storage()?;
        let dir = location.shards_uri(set);
        let mut shards: Vec<ShardManifest> = Vec::new();
        for (uri, _) in storage.list(&dir).await? {
            let name = uri.to_string();
            let Some(file) = name.rsplit('/').next() else {
                continue;
            };
            if !(file.starts_with("shard-") && file.ends_with(".json")) {
                continue;
            }
            let bytes = storage.read(&uri).await?;
            let manifest: ShardManifest = serde_json::from_slice(&bytes).map_err(|e| {
                shard_error(
                    location,
                    set,
                    format!("{file} is not a shard manifest: {e}"),
                )
            })?;
            shards.push(manifest);
        }
        let Some(first) = shards.first().cloned() else {
            return Err(shard_error(
                location,
                set,
                format!("no shard has finished (nothing under {dir})"),
            ));
        };
        let count = first.count;
        if let Some(other) = shards.iter().find(|s| s.count != count) {
            return Err(shard_error(
                location,
                set,
                format!(
                    "shards of different splits: {} of {count} and {} of {}; re-run them with one --shard I/N count",
                    first.index, other.index, other.count
                ),
            ));
        }
        shards.retain(|s| s.count == count);
        shards.sort_by_key(|s| s.index);
        let missing: Vec<String> = (0..count)
            .filter(|i| shards.binary_search_by_key(i, |s| s.index).is_err())
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(shard_error(
                location,
                set,
                format!(
                    "shard{} {} of {count} did not finish (no manifest); run {} again, then commit",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    if missing.len() > 1 { "them" } else { "it" },
                ),
            ));
        }
        for s in &shards {
            let differs = |what: &str| {
                Err(shard_error(
                    location,
                    set,
                    format!(
                        "shard {} of {count} has another {what} than shard 0; every shard of a set must run with the same",
                        s.index
                    ),
                ))
            };
            if s.inputs_digest != first.inputs_digest {
                return differs("input list");
            }
            if s.base_version != first.base_version {
                return differs("lake version (the lake changed while the shards ran)");
            }
            if s.pipeline != first.pipeline {
                return differs("curation pipeline");
            }
            if s.schema != first.schema {
                return differs("tokenizer");
            }
        }
        Ok(ShardSet {
            set: set.to_string(),
            shards,
        })
    }

    /// A shard's documents file.
    pub async fn read_shard_documents(
        location: &LakeLocation,
        manifest: &ShardManifest,
    ) -> Result<Vec<RecordBatch>> {
        let uri = location
            .shards_uri(&manifest.set)
            .join(&manifest.documents_file);
        let bytes = location.storage()?.read(&uri).await?;
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| {
                shard_error(
                    location,
                    &manifest.set,
                    format!("{} is not an Arrow file: {e}", manifest.documents_file),
                )
            })?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                shard_error(
                    location,
                    &manifest.set,
                    format!("reading {}: {e}", manifest.documents_file),
                )
            })
    }

    /// Removes a committed set's files (the fragments stay: the version names them).
    pub async fn remove_shard_set(location: &LakeLocation, set: &str) -> Result<()> {
        let storage = location.storage()?;
        for (uri, _) in storage.list(&location.shards_uri(set)).await? {
            storage.delete(&uri).await?;
        }
        if let Some(root) = location.local_root() {
            let _ = std::fs::remove_dir(root.join("shards").join(set));
            let _ = std::fs::remove_dir(root.join("shards"));
        }
        Ok(())
    }
}

/// The fragments an uncommitted insert wrote.
pub(crate) fn inserted_fragments(
    transaction: lance::dataset::transaction::Transaction,
    location: &LakeLocation,
    what: &str,
) -> Result<Vec<Fragment>> {
    match transaction.operation {
        Operation::Append { fragments } | Operation::Overwrite { fragments, .. } => Ok(fragments),
        other => Err(LakeError::lance(format!("{what} of lake {location}"))(
            lance::Error::internal(format!("an insert gave a {other} transaction")),
        )),
    }
}
