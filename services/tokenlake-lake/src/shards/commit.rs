//! The one commit of a sharded ingest (see the module above): every shard's fragments published as
//! exactly one version, repeats across shards deleted (deletion files), and label columns,
//! when given, written into old and new fragments alike in the same version.

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchIterator};
use lance::dataset::fragment::write::FragmentCreateBuilder;
use lance::dataset::transaction::{Operation, TransactionBuilder};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteParams};
use lance::datatypes::Schema as LanceSchema;
use lance::io::{ObjectStore, ObjectStoreRegistry};
use lance::table::format::Fragment;
use tokenlake_schemas::DocumentsSchema;

use super::{ShardSchema, inserted_fragments, shard_error};
use crate::{CommitProperties, Lake, LakeError, LakeLocation, Result};

impl Lake {
    /// Publishes a shard set as one version (see the module doc).
    // Kept as one function: the steps of one Lance transaction (check the base version, delete
    // repeats, add label data files, commit), which only make sense together.
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
            let columns_of = labels.new.first().unwrap_or(&labels.old).schema();
            let names: Vec<String> = columns_of
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
    use lance::dataset::fragment::FileFragment;

    let lance_error = |what: &str| LakeError::lance(format!("{what} of lake {location}"));
    let uri = location.documents_uri();
    let (staged, numbered) = staged(location, schema, &fragments).await?;
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

/// A dataset made of uncommitted `fragments` alone (numbered from 0, as returned), to read
/// them before they are published.
async fn staged(
    location: &LakeLocation,
    schema: &LanceSchema,
    fragments: &[Fragment],
) -> Result<(Arc<lance::Dataset>, Vec<Fragment>)> {
    use lance::dataset::builder::DatasetBuilder;
    use tokenlake_schemas::prost::Message;

    let lance_error = |what: &str| LakeError::lance(format!("{what} of lake {location}"));
    let mut numbered = fragments.to_vec();
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
    let staged = DatasetBuilder::from_uri(location.documents_uri())
        .with_store_params(location.lance_params())
        .with_serialized_manifest(&bytes)
        .map_err(lance_error("reading uncommitted fragments"))?
        .load()
        .await
        .map_err(lance_error("reading uncommitted fragments"))?;
    Ok((Arc::new(staged), numbered))
}

/// Commits a run's uncommitted fragments at most this many times before giving up on
/// writers that keep committing first.
const COMMIT_ATTEMPTS: usize = 8;

impl Lake {
    /// Publishes one ingest's uncommitted `fragments` (documents new at `base_version`) as
    /// one version, safely beside other writers: when other ingests committed since
    /// `base_version`, the documents they added are dropped from these fragments (deletion
    /// files) before the commit, and a commit that loses a race to another writer (Lance
    /// refuses it: this commit replaces the fragment list) is checked and tried again. So two
    /// ingests of overlapping inputs, in one process or two, on one host or many, leave each
    /// doc_id once. Returns the version, or `None` when other writers had committed every one
    /// of these documents.
    pub async fn commit_ingest(
        location: &LakeLocation,
        base_version: Option<u64>,
        schema: ShardSchema,
        fragments: Vec<Fragment>,
        properties: CommitProperties,
    ) -> Result<Option<u64>> {
        let info = schema
            .info()
            .map_err(|e| shard_error(location, "ingest", e))?;
        let ingest_schema = LanceSchema::try_from(DocumentsSchema::ingest_schema(&info).as_ref())
            .map_err(LakeError::lance(format!(
            "laying out the schema of lake {location}"
        )))?;
        let mut ours: Option<Vec<Vec<u64>>> = None;
        for attempt in 1..=COMMIT_ATTEMPTS {
            let lake = Lake::open_if_exists(location).await?;
            let latest = lake.as_ref().map(Lake::latest_version);
            let deleted_rows: Vec<Vec<u32>> = match &lake {
                Some(lake) if latest != base_version => {
                    // Others committed since this run read the lake: drop what they added.
                    if ours.is_none() {
                        ours = Some(fragment_doc_ids(location, &ingest_schema, &fragments).await?);
                    }
                    // Sorted, 8 bytes a document (a hash set would take twice that).
                    let theirs = lake.doc_ids().await?;
                    ours.as_ref()
                        .expect("read above")
                        .iter()
                        .map(|ids| {
                            ids.iter()
                                .enumerate()
                                .filter(|(_, id)| theirs.binary_search(id).is_ok())
                                .map(|(row, _)| row as u32)
                                .collect()
                        })
                        .collect()
                }
                _ => vec![Vec::new(); fragments.len()],
            };
            let kept: usize = fragments
                .iter()
                .zip(&deleted_rows)
                .map(|(f, d)| f.physical_rows.unwrap_or_default() - d.len())
                .sum();
            if kept == 0 {
                tracing::info!(lake = %location, "other writers committed every document of this ingest");
                return Ok(None);
            }
            let repeats: usize = deleted_rows.iter().map(Vec::len).sum();
            if repeats > 0 {
                tracing::info!(lake = %location, repeats, "documents other writers committed meanwhile are left out");
            }
            let commit = ShardCommit {
                set: "ingest".into(),
                base_version: latest,
                schema: schema.clone(),
                fragments: fragments.clone(),
                deleted_rows,
                labels: None,
                properties: properties.clone(),
            };
            match Lake::commit_shards(location, commit).await {
                Ok(version) => return Ok(Some(version)),
                Err(e) => {
                    // Lost a race: the lake moved since it was read. Anything else is an error.
                    let now = Lake::open_if_exists(location)
                        .await?
                        .map(|l| l.latest_version());
                    if now == latest || attempt == COMMIT_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::info!(lake = %location, attempt, error = %e, "another writer committed first; checking again");
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// The doc_id of every row of each uncommitted fragment, in row order.
async fn fragment_doc_ids(
    location: &LakeLocation,
    schema: &LanceSchema,
    fragments: &[Fragment],
) -> Result<Vec<Vec<u64>>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    use lance::dataset::fragment::FileFragment;

    let (staged, numbered) = staged(location, schema, fragments).await?;
    let mut out = Vec::with_capacity(numbered.len());
    for fragment in numbered {
        let batch = FileFragment::new(staged.clone(), fragment)
            .scan()
            .project(&[tokenlake_schemas::columns::DOC_ID])
            .map_err(LakeError::lance(format!(
                "reading doc ids of lake {location}"
            )))?
            .try_into_batch()
            .await
            .map_err(LakeError::lance(format!(
                "reading doc ids of lake {location}"
            )))?;
        out.push(
            batch
                .column(0)
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec(),
        );
    }
    Ok(out)
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
    /// Labels of the lake's documents that change (joined by doc_id): any of them, any of the
    /// label columns the lake has; the others keep their values. For a new lake, no rows, with
    /// every label column (the columns the commit adds).
    pub old: RecordBatch,
    /// Per new fragment, a row for each of its physical rows, in order, with every label
    /// column (all of them the same).
    pub new: Vec<RecordBatch>,
}
