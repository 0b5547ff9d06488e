//! Label columns added to a lake by Lance schema evolution: a left join on `doc_id` commits one
//! new version with the new columns, null for documents the labels do not mention. Tokens are
//! not rewritten, and a refused import commits nothing.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, RecordBatchIterator, UInt32Array};
use serde::Serialize;
use tokenlake_schemas::columns;

use crate::{Lake, LakeError, Result};

/// What an import added.
#[derive(Debug, Clone, Serialize)]
pub struct LabelImport {
    pub version: u64,
    /// Name and Arrow type of each new column.
    pub columns: Vec<(String, String)>,
    pub labelled_docs: u64,
    pub lake_docs: u64,
}

impl Lake {
    /// Refuses labels whose doc_ids repeat or are not in the latest version; returns how many
    /// documents are labelled and how many the lake has.
    async fn check_label_ids(&self, ids: &[u64], verb: &str) -> Result<(u64, u64)> {
        let refuse = |reason: String| LakeError::Labels {
            lake: self.location.to_string(),
            reason,
        };
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(refuse(format!("doc_id {} is labelled twice", w[0])));
        }
        let known = self.doc_ids().await?;
        let unknown: Vec<u64> = sorted
            .iter()
            .copied()
            .filter(|id| known.binary_search(id).is_err())
            .collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().take(5).map(u64::to_string).collect();
            return Err(refuse(format!(
                "{} doc_ids are not in the latest version (e.g. {}); nothing was {verb}",
                unknown.len(),
                shown.join(", ")
            )));
        }
        Ok((sorted.len() as u64, known.len() as u64))
    }

    /// Adds the label columns of `labels` (`doc_id` first, then one column per label) to the
    /// latest version as one new version. Refused, with nothing committed, when a column
    /// already exists or is reserved, a doc_id repeats, or a doc_id is not in the lake.
    pub async fn add_label_columns(&self, labels: RecordBatch) -> Result<LabelImport> {
        let refuse = |reason: String| LakeError::Labels {
            lake: self.location.to_string(),
            reason,
        };
        let schema = labels.schema();
        let lake_schema = self.latest.schema();
        let mut added = Vec::new();
        for field in schema.fields().iter().skip(1) {
            let name = field.name();
            if name.starts_with('_') || name.is_empty() {
                return Err(refuse(format!("column name {name:?} is reserved")));
            }
            if lake_schema.field(name).is_some() {
                return Err(refuse(format!(
                    "column {name:?} already exists; labels add new columns (name it differently, \
                     e.g. {name}_v2)"
                )));
            }
            added.push((name.clone(), field.data_type().to_string()));
        }
        let Some(ids) = labels.column_by_name(columns::DOC_ID) else {
            return Err(refuse("the labels have no doc_id column".into()));
        };
        let (labelled, lake_docs) = self
            .check_label_ids(ids.as_primitive::<UInt64Type>().values(), "imported")
            .await?;
        let mut dataset = self.latest.clone();
        let reader = RecordBatchIterator::new([Ok(labels.clone())], Arc::clone(&schema));
        dataset
            .merge(reader, columns::DOC_ID, columns::DOC_ID)
            .await
            .map_err(LakeError::lance(format!(
                "adding label columns to lake {}",
                self.location
            )))?;
        tracing::info!(lake = %self.location, version = dataset.version_id(), "labels committed");
        Ok(LabelImport {
            version: dataset.version_id(),
            columns: added,
            labelled_docs: labelled,
            lake_docs,
        })
    }
}

/// The output of [`Lake::label_fragments`]: fragments with new data files, not yet committed.
pub struct LabelFragments {
    pub fragments: Vec<lance::table::format::Fragment>,
    pub schema: lance::datatypes::Schema,
    pub described: Vec<(String, String)>,
    pub labelled: u64,
    pub lake_docs: u64,
}

/// Fragments whose label columns are written at once.
const LABEL_WRITERS: usize = 4;

impl Lake {
    /// The latest version's fragments with the label columns of `labels` written into new
    /// data files (nothing is committed), and the schema they make: the first half of
    /// [`Lake::write_label_columns`], which a sharded commit shares.
    /// (Public for `tokenlake bench labels`, which times it.)
    pub async fn label_fragments(&self, labels: &RecordBatch) -> Result<LabelFragments> {
        let refuse = |reason: String| LakeError::Labels {
            lake: self.location.to_string(),
            reason,
        };
        let lance_error =
            |what: &str| LakeError::lance(format!("{what} of lake {}", self.location));
        let schema = labels.schema();
        if schema.fields().first().map(|f| f.name().as_str()) != Some(columns::DOC_ID) {
            return Err(refuse("the labels' first column must be doc_id".into()));
        }
        let lake_schema = self.latest.schema();
        let (mut existing, mut added) = (vec![0usize], vec![0usize]);
        let mut described = Vec::new();
        for (i, field) in schema.fields().iter().enumerate().skip(1) {
            let name = field.name();
            if name.starts_with('_') || name.is_empty() {
                return Err(refuse(format!("column name {name:?} is reserved")));
            }
            match lake_schema.field(name) {
                Some(_)
                    if tokenlake_schemas::DocumentsSchema::is_ingest_column(name)
                        && name != columns::LANG =>
                {
                    return Err(refuse(format!(
                        "column {name:?} is written by ingest, not by labels"
                    )));
                }
                Some(f) => {
                    let lake_type = f.data_type();
                    if &lake_type != field.data_type() {
                        return Err(refuse(format!(
                            "column {name:?} is {lake_type} in the lake, but the labels give {}",
                            field.data_type()
                        )));
                    }
                    existing.push(i);
                }
                None => added.push(i),
            }
            described.push((name.clone(), field.data_type().to_string()));
        }
        let (labelled, lake_docs) = self
            .check_label_ids(
                labels.column(0).as_primitive::<UInt64Type>().values(),
                "written",
            )
            .await?;
        let part = |columns: &[usize]| -> Result<Option<RecordBatch>> {
            if columns.len() < 2 {
                return Ok(None);
            }
            Ok(Some(
                labels.project(columns).map_err(|e| refuse(e.to_string()))?,
            ))
        };
        let (update, merge) = (part(&existing)?, part(&added)?);
        // Each fragment is given only its own rows' labels: Lance joins what it is given by
        // doc_id, so handing every fragment the whole batch would cost fragments × documents.
        // The doc_id → label row map is built once.
        let label_rows: HashMap<u64, u32> = labels
            .column(0)
            .as_primitive::<UInt64Type>()
            .values()
            .iter()
            .enumerate()
            .map(|(row, &id)| (id, row as u32))
            .collect();
        let label_rows = &label_rows;
        let (update, merge) = (&update, &merge);
        let reader =
            |batch: RecordBatch| RecordBatchIterator::new([Ok(batch.clone())], batch.schema());
        let dataset = Arc::new(self.latest.clone());
        let one = |fragment: lance::dataset::fragment::FileFragment| {
            let dataset = dataset.clone();
            async move {
                let ids = fragment
                    .scan()
                    .project(&[columns::DOC_ID])
                    .map_err(lance_error("reading a fragment's doc ids"))?
                    .try_into_batch()
                    .await
                    .map_err(lance_error("reading a fragment's doc ids"))?;
                let rows: UInt32Array = ids
                    .column(0)
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .filter_map(|id| label_rows.get(id).copied())
                    .collect();
                let own = |batch: &RecordBatch| {
                    arrow_select::take::take_record_batch(batch, &rows)
                        .map_err(|e| refuse(e.to_string()))
                };
                let mut fragment = fragment;
                if let Some(update) = update
                    && !rows.is_empty()
                {
                    let (metadata, _) = fragment
                        .update_columns(reader(own(update)?), columns::DOC_ID, columns::DOC_ID)
                        .await
                        .map_err(lance_error("rewriting label columns"))?;
                    fragment =
                        lance::dataset::fragment::FileFragment::new(dataset.clone(), metadata);
                }
                match merge {
                    Some(merge) => {
                        let (metadata, schema) = fragment
                            .merge_columns(reader(own(merge)?), columns::DOC_ID, columns::DOC_ID)
                            .await
                            .map_err(lance_error("adding label columns"))?;
                        Ok::<_, LakeError>((metadata, Some(schema)))
                    }
                    None => Ok((fragment.metadata().clone(), None)),
                }
            }
        };
        // A few fragments at a time: each is a read of its doc ids and a write of its columns.
        let written: Vec<_> = futures::stream::iter(dataset.get_fragments().into_iter().map(one))
            .buffered(LABEL_WRITERS)
            .try_collect()
            .await?;
        let mut new_schema = dataset.schema().clone();
        let mut fragments = Vec::with_capacity(written.len());
        for (metadata, schema) in written {
            if let Some(schema) = schema {
                new_schema = schema;
            }
            fragments.push(metadata);
        }
        Ok(LabelFragments {
            fragments,
            schema: new_schema,
            described,
            labelled,
            lake_docs,
        })
    }
}

impl Lake {
    /// Writes the label columns of `labels` (`doc_id` first) to the latest version as one new
    /// version: columns the lake lacks are added, columns it has are overwritten for the
    /// documents `labels` names (others keep their values). This is how curation re-labels a
    /// lake after a later ingest or with new thresholds. Ingest columns other than `lang`
    /// cannot be written this way, and a doc_id that is not in the lake refuses the write.
    ///
    /// Lance's distributed-write protocol, one fragment at a time: the existing columns are
    /// rewritten into a new data file of the fragment (`update_columns`), the new ones joined
    /// into another (`merge_columns`), and one `Merge` transaction publishes every fragment
    /// and the new schema, so readers see all of it or none.
    pub async fn write_label_columns(
        &self,
        labels: RecordBatch,
        properties: crate::CommitProperties,
    ) -> Result<LabelImport> {
        use lance::dataset::CommitBuilder;
        use lance::dataset::transaction::{Operation, TransactionBuilder};

        let lance_error =
            |what: &str| LakeError::lance(format!("{what} of lake {}", self.location));
        let LabelFragments {
            fragments,
            schema: new_schema,
            described,
            labelled,
            lake_docs,
        } = self.label_fragments(&labels).await?;
        let dataset = Arc::new(self.latest.clone());
        let transaction = TransactionBuilder::new(
            dataset.version().version,
            Operation::Merge {
                fragments,
                schema: new_schema,
                preserves_nullability: true,
            },
        )
        .transaction_properties(Some(Arc::new(properties.into_iter().collect())))
        .build();
        let committed = CommitBuilder::new(dataset.clone())
            .execute(transaction)
            .await
            .map_err(lance_error("committing labels"))?;
        tracing::info!(lake = %self.location, version = committed.version_id(), "labels committed");
        Ok(LabelImport {
            version: committed.version_id(),
            columns: described,
            labelled_docs: labelled,
            lake_docs,
        })
    }
}
