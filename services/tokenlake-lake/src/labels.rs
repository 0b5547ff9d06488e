//! Label columns added to a lake by Lance schema evolution: a left join on `doc_id` commits one
//! new version with the new columns, null for documents the labels do not mention. Tokens are
//! not rewritten, and a refused import commits nothing.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, RecordBatchIterator};
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
        let mut ids: Vec<u64> = ids.as_primitive::<UInt64Type>().values().to_vec();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(refuse(format!("doc_id {} is labelled twice", w[0])));
        }
        let known = self.doc_ids().await?;
        let unknown: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| known.binary_search(id).is_err())
            .collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().take(5).map(u64::to_string).collect();
            return Err(refuse(format!(
                "{} doc_ids are not in the latest version (e.g. {}); nothing was imported",
                unknown.len(),
                shown.join(", ")
            )));
        }
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
            labelled_docs: ids.len() as u64,
            lake_docs: known.len() as u64,
        })
    }
}
