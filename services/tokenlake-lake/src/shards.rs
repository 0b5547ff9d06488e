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

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use lance::dataset::fragment::write::FragmentCreateBuilder;
use lance::dataset::transaction::{Operation, TransactionBuilder};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteParams};
use lance::datatypes::Schema as LanceSchema;
use lance::io::{ObjectStore, ObjectStoreRegistry};
use lance::table::format::Fragment;
use serde::{Deserialize, Serialize};
use tokenlake_schemas::{DocumentsSchema, LakeSchemaInfo, TokenWidth};

use crate::{CommitProperties, Lake, LakeError, LakeLocation, Result, StorageUri};

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

fn shard_error(location: &LakeLocation, set: &str, reason: impl Into<String>) -> LakeError {
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
            mode: if base.is_some() {
                lance::dataset::WriteMode::Append
            } else {
                lance::dataset::WriteMode::Create
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

    /// Publishes a shard set as one version (see the module doc).
    pub async fn commit_shards(location: &LakeLocation, commit: ShardCommit) -> Result<u64> {
        let ShardCommit {
            set,
            base_version,
            schema,
            mut fragments,
            deleted_rows,
            labels,
            properties,
        } = commit;
        let refuse = |reason: String| shard_error(location, &set, reason);
        let lance_error = |what: &str| LakeError::lance(format!("{what} of lake {location}"));
        let lake = Lake::open_if_exists(location).await?;
        let latest = lake.as_ref().map(Lake::latest_version);
        if latest != base_version {
            return Err(refuse(format!(
                "the shards read {} but the lake is now at {}; run the shards again",
                base_version.map_or("no lake".into(), |v| format!("version {v}")),
                latest.map_or("no lake".into(), |v| format!("version {v}")),
            )));
        }
        if deleted_rows.len() != fragments.len() {
            return Err(refuse("one deletion list per fragment is needed".into()));
        }
        if let Some(l) = &labels
            && l.new.len() != fragments.len()
        {
            return Err(refuse("one label batch per new fragment is needed".into()));
        }
        let uri = location.documents_uri();
        let params = WriteParams {
            store_params: Some(location.lance_params()),
            ..WriteParams::default()
        };

        // The old fragments (label columns rewritten when given) and the schema they make.
        let info = schema.info().map_err(&refuse)?;
        let (old_fragments, mut final_schema) = match (&lake, &labels) {
            (Some(lake), Some(labels)) => {
                let prepared = lake.label_fragments(&labels.old).await?;
                (prepared.fragments, prepared.schema)
            }
            (Some(lake), None) => (
                lake.latest
                    .get_fragments()
                    .iter()
                    .map(|f| f.metadata().clone())
                    .collect(),
                lake.latest.schema().clone(),
            ),
            (None, _) => {
                let arrow = DocumentsSchema::ingest_schema(&info);
                let lance = LanceSchema::try_from(arrow.as_ref())
                    .map_err(lance_error("laying out the schema"))?;
                (Vec::new(), lance)
            }
        };
        if let (None, Some(labels)) = (&lake, &labels) {
            // A new lake: the label columns join the ingest columns, numbered after them.
            let added: Vec<arrow_schema::Field> = labels
                .old
                .schema()
                .fields()
                .iter()
                .skip(1)
                .filter(|f| final_schema.field(f.name()).is_none())
                .map(|f| f.as_ref().clone())
                .collect();
            let max = final_schema.max_field_id();
            final_schema
                .extend(&added)
                .map_err(lance_error("adding label columns"))?;
            final_schema.set_field_id(max);
        }

        // A new lake's first version cannot carry deletion files (Lance renumbers the fragments
        // of an Overwrite), so there the fragments holding repeats are written again without
        // them.
        let mut new_labels = labels.as_ref().map(|l| l.new.clone());
        let mut deleted_rows = deleted_rows;
        if lake.is_none() && deleted_rows.iter().any(|d| !d.is_empty()) {
            let ingest = LanceSchema::try_from(DocumentsSchema::ingest_schema(&info).as_ref())
                .map_err(lance_error("laying out the schema"))?;
            (fragments, deleted_rows, new_labels) =
                rewrite_without_repeats(location, &ingest, fragments, deleted_rows, new_labels)
                    .await?;
        }

        // New fragments take ids after every old one (a new lake's are numbered from 0, as the
        // first version numbers them), so their deletion files can be named before the commit.
        let first_id = match &lake {
            Some(lake) => lake
                .latest
                .manifest()
                .max_fragment_id()
                .map_or(1, |m| m + 1)
                .max(1),
            None => 0,
        };
        let read_version = base_version.unwrap_or(0);
        let (object_store, base_path) = ObjectStore::from_uri_and_params(
            Arc::new(ObjectStoreRegistry::default()),
            &uri,
            &location.lance_params(),
        )
        .await
        .map_err(lance_error("opening the store"))?;
        for (k, (fragment, deleted)) in fragments.iter_mut().zip(&deleted_rows).enumerate() {
            fragment.id = first_id + k as u64;
            if deleted.is_empty() {
                continue;
            }
            let vector =
                lance_core::utils::deletion::DeletionVector::from_iter(deleted.iter().copied());
            fragment.deletion_file = lance_table::io::deletion::write_deletion_file(
                &base_path,
                fragment.id,
                read_version,
                &vector,
                &object_store,
            )
            .await
            .map_err(lance_error("writing a deletion file"))?;
        }

        // Label columns of the new fragments: one more data file each, rows aligned.
        if let (Some(labels), Some(new_labels)) = (&labels, &new_labels) {
            let names: Vec<String> = labels
                .old
                .schema()
                .fields()
                .iter()
                .skip(1)
                .map(|f| f.name().clone())
                .filter(|n| !DocumentsSchema::is_ingest_column(n))
                .collect();
            let projected = final_schema
                .project(&names)
                .map_err(lance_error("projecting the label columns"))?;
            for (fragment, batch) in fragments.iter_mut().zip(new_labels) {
                let rows = fragment.physical_rows.unwrap_or_default();
                if batch.num_rows() != rows {
                    return Err(refuse(format!(
                        "fragment {} has {rows} rows but {} label rows",
                        fragment.id,
                        batch.num_rows()
                    )));
                }
                let columns: Vec<&str> = names.iter().map(String::as_str).collect();
                let indices: Vec<usize> = columns
                    .iter()
                    .map(|c| batch.schema().index_of(c))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| refuse(e.to_string()))?;
                let part = batch.project(&indices).map_err(|e| refuse(e.to_string()))?;
                let reader = RecordBatchIterator::new([Ok(part.clone())], part.schema());
                let written = FragmentCreateBuilder::new(&uri)
                    .schema(&projected)
                    .write_params(&params)
                    .write(reader, None)
                    .await
                    .map_err(lance_error("writing label columns"))?;
                fragment.files.extend(written.files);
            }
        }

        let properties = Some(Arc::new(properties.into_iter().collect()));
        let committed = match &lake {
            Some(lake) => {
                let mut all = old_fragments;
                all.extend(fragments);
                let transaction = TransactionBuilder::new(
                    lake.latest_version(),
                    Operation::Merge {
                        fragments: all,
                        schema: final_schema,
                        preserves_nullability: true,
                    },
                )
                .transaction_properties(properties)
                .build();
                CommitBuilder::new(Arc::new(lake.latest.clone()))
                    .execute(transaction)
                    .await
            }
            None => {
                let transaction = TransactionBuilder::new(
                    0,
                    Operation::Overwrite {
                        fragments,
                        schema: final_schema,
                        config_upsert_values: None,
                        initial_bases: None,
                    },
                )
                .transaction_properties(properties)
                .build();
                CommitBuilder::new(uri.as_str())
                    .with_store_params(location.lance_params())
                    .execute(transaction)
                    .await
            }
        }
        .map_err(lance_error("committing the shards"))?;
        tracing::info!(lake = %location, version = committed.version_id(), set, "shards committed");
        Ok(committed.version_id())
    }
}

/// The fragments an uncommitted insert wrote.
fn inserted_fragments(
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

type Rewritten = (Vec<Fragment>, Vec<Vec<u32>>, Option<Vec<RecordBatch>>);

/// Writes the fragments that hold repeats again without those rows (their label rows
/// filtered alike), reading them through a dataset made of the uncommitted fragments alone.
async fn rewrite_without_repeats(
    location: &LakeLocation,
    schema: &LanceSchema,
    fragments: Vec<Fragment>,
    deleted_rows: Vec<Vec<u32>>,
    labels: Option<Vec<RecordBatch>>,
) -> Result<Rewritten> {
    use lance::dataset::builder::DatasetBuilder;
    use lance::dataset::fragment::FileFragment;
    use tokenlake_schemas::prost::Message;

    let lance_error = |what: &str| LakeError::lance(format!("{what} of lake {location}"));
    let uri = location.documents_uri();
    let mut numbered = fragments.clone();
    for (k, f) in numbered.iter_mut().enumerate() {
        f.id = k as u64;
    }
    let manifest = lance_table::format::Manifest::new(
        schema.clone(),
        Arc::new(numbered.clone()),
        lance_table::format::DataStorageFormat::default(),
        std::collections::HashMap::new(),
    );
    let bytes = lance_table::format::pb::Manifest::from(&manifest).encode_to_vec();
    let staged = DatasetBuilder::from_uri(&uri)
        .with_store_params(location.lance_params())
        .with_serialized_manifest(&bytes)
        .map_err(lance_error("reading the shards' fragments"))?
        .load()
        .await
        .map_err(lance_error("reading the shards' fragments"))?;
    let staged = Arc::new(staged);
    let params = WriteParams {
        store_params: Some(location.lance_params()),
        mode: lance::dataset::WriteMode::Create,
        ..WriteParams::default()
    };
    let (mut out_fragments, mut out_deleted) = (Vec::new(), Vec::new());
    let mut out_labels = labels.as_ref().map(|_| Vec::new());
    for (k, (fragment, deleted)) in numbered.into_iter().zip(deleted_rows).enumerate() {
        let label = labels.as_ref().map(|l| l[k].clone());
        if deleted.is_empty() {
            out_fragments.push(fragments[k].clone());
            out_deleted.push(deleted);
            if let (Some(out), Some(label)) = (out_labels.as_mut(), label) {
                out.push(label);
            }
            continue;
        }
        let rows = fragment.physical_rows.unwrap_or_default();
        let mut keep = vec![true; rows];
        deleted.iter().for_each(|&r| keep[r as usize] = false);
        let mask = arrow_array::BooleanArray::from(keep);
        let batch = FileFragment::new(staged.clone(), fragment)
            .scan()
            .try_into_batch()
            .await
            .map_err(lance_error("reading a shard's fragment"))?;
        let kept = arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| {
            LakeError::lance(format!("filtering a fragment of lake {location}"))(e.into())
        })?;
        let transaction = InsertBuilder::new(uri.as_str())
            .with_params(&params)
            .execute_uncommitted(vec![kept])
            .await
            .map_err(lance_error("rewriting a shard's fragment"))?;
        let written = inserted_fragments(transaction, location, "rewriting a shard's fragment")?;
        let label = match label {
            Some(label) => Some(
                arrow_select::filter::filter_record_batch(&label, &mask).map_err(|e| {
                    LakeError::lance(format!("filtering labels of lake {location}"))(e.into())
                })?,
            ),
            None => None,
        };
        let mut at = 0usize;
        for f in written {
            let n = f.physical_rows.unwrap_or_default();
            if let (Some(out), Some(label)) = (out_labels.as_mut(), &label) {
                out.push(label.slice(at, n));
            }
            at += n;
            out_fragments.push(f);
            out_deleted.push(Vec::new());
        }
    }
    Ok((out_fragments, out_deleted, out_labels))
}

/// What [`Lake::commit_shards`] publishes.
pub struct ShardCommit {
    pub set: String,
    pub base_version: Option<u64>,
    pub schema: ShardSchema,
    /// Every shard's fragments, in shard order.
    pub fragments: Vec<Fragment>,
    /// Per fragment: the row offsets to delete (documents an earlier shard wrote).
    pub deleted_rows: Vec<Vec<u32>>,
    pub labels: Option<ShardLabels>,
    pub properties: CommitProperties,
}

/// Label columns for a sharded commit, `doc_id` first in each batch.
pub struct ShardLabels {
    /// The lake's documents (joined by doc_id); every one of them.
    pub old: RecordBatch,
    /// Per new fragment, a row for each of its physical rows, in order.
    pub new: Vec<RecordBatch>,
}
