//! `tokenlake curate`: reads the latest version's documents in ingest order, computes their
//! curation labels and adds them as one new version (Lance schema evolution: tokens are not
//! rewritten). Interrupted or failed runs commit nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::Serialize;
use tokenlake_lake::{Lake, LakeError};
use tokenlake_schemas::columns;

use crate::dedup::{Deduplicator, Fingerprint, Fingerprinter};

#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    #[error(transparent)]
    Lake(#[from] LakeError),

    #[error(
        "lake {lake} is curated already: column {column:?} exists (curation adds its columns once; \
         curate a lake whose latest version lacks them)"
    )]
    AlreadyCurated { lake: String, column: String },

    #[error(
        "document {doc_id} of lake {lake} has no text (ingested with --keep-text false); \
         curation reads the texts"
    )]
    NoText { lake: String, doc_id: u64 },

    #[error("interrupted: nothing was committed")]
    Interrupted,

    #[error("building the label columns: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Live counters for a progress bar.
#[derive(Debug, Default)]
pub struct CurateProgress {
    pub docs_total: AtomicU64,
    pub docs_done: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurateSummary {
    pub lake: String,
    pub version: u64,
    pub docs: u64,
    pub duplicates: u64,
    pub clusters_with_copies: u64,
    /// Duplicates by how they were found.
    pub by_kind: BTreeMap<String, u64>,
    /// Heap memory of the de-duplication index at its largest (it grows with the documents).
    pub index_bytes: u64,
    pub elapsed_secs: f64,
}

/// The de-duplication columns of every document of `lake`'s latest version, in row order.
pub async fn dedup_columns(
    lake: &Lake,
    progress: &CurateProgress,
    cancel: &AtomicBool,
) -> Result<(RecordBatch, u64), CurateError> {
    let lake_name = lake.location().to_string();
    progress
        .docs_total
        .store(lake.latest_rows().await?, Ordering::Relaxed);
    let mut dedup = Deduplicator::default();
    let mut doc_ids: Vec<u64> = Vec::new();
    let mut failure: Option<CurateError> = None;
    let scan = lake
        .scan_latest(&[columns::DOC_ID, columns::URL, columns::TEXT], |batch| {
            if cancel.load(Ordering::Relaxed) {
                failure = Some(CurateError::Interrupted);
                return Err(LakeError::Labels {
                    lake: lake_name.clone(),
                    reason: "interrupted".into(),
                });
            }
            let ids = batch.column(0).as_primitive::<UInt64Type>();
            let urls = batch.column(1).as_string::<i32>();
            let texts = batch.column(2).as_string::<i32>();
            if let Some(i) = (0..batch.num_rows()).find(|&i| texts.is_null(i)) {
                failure = Some(CurateError::NoText {
                    lake: lake_name.clone(),
                    doc_id: ids.value(i),
                });
                return Err(LakeError::Labels {
                    lake: lake_name.clone(),
                    reason: "no text".into(),
                });
            }
            // Fingerprints in parallel; the index takes them in row order.
            let prints: Vec<Fingerprint> = (0..batch.num_rows())
                .into_par_iter()
                .map_init(Fingerprinter::default, |f, i| {
                    let url = (!urls.is_null(i))
                        .then(|| urls.value(i))
                        .filter(|u| !u.is_empty());
                    f.fingerprint(url, texts.value(i))
                })
                .collect();
            for fp in &prints {
                dedup.add(fp);
            }
            doc_ids.extend(ids.values().iter());
            progress
                .docs_done
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(())
        })
        .await;
    if let Some(f) = failure {
        return Err(f);
    }
    scan?;
    let index_bytes = dedup.heap_bytes() as u64;
    let labels = dedup.labels();
    let cluster: UInt64Array = labels.iter().map(|l| doc_ids[l.keeper as usize]).collect();
    let is_dup: BooleanArray = labels.iter().map(|l| Some(l.is_dup)).collect();
    let kind: StringArray = labels.iter().map(|l| l.kind.map(|k| k.name())).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns::DOC_ID, DataType::UInt64, false),
        Field::new(columns::DUP_CLUSTER, DataType::UInt64, false),
        Field::new(columns::IS_DUP, DataType::Boolean, false),
        Field::new(columns::DUP_KIND, DataType::Utf8, true),
    ]));
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(doc_ids)),
        Arc::new(cluster),
        Arc::new(is_dup),
        Arc::new(kind),
    ];
    Ok((RecordBatch::try_new(schema, arrays)?, index_bytes))
}

/// Curates the latest version of `lake` and commits the labels as one new version.
pub async fn curate(
    lake: &Lake,
    progress: &CurateProgress,
    cancel: &AtomicBool,
) -> Result<CurateSummary, CurateError> {
    let started = Instant::now();
    // Checked before the scan (which the label merge would refuse only at its end).
    for column in [columns::DUP_CLUSTER, columns::IS_DUP, columns::DUP_KIND] {
        if lake.has_column(column) {
            return Err(CurateError::AlreadyCurated {
                lake: lake.location().to_string(),
                column: column.to_string(),
            });
        }
    }
    let (labels, index_bytes) = dedup_columns(lake, progress, cancel).await?;
    if cancel.load(Ordering::Relaxed) {
        return Err(CurateError::Interrupted);
    }
    let kinds = labels.column(3).as_string::<i32>();
    let mut by_kind = BTreeMap::new();
    for k in kinds.iter().flatten() {
        *by_kind.entry(k.to_string()).or_insert(0u64) += 1;
    }
    let is_dup = labels.column(2).as_boolean();
    let duplicates = is_dup.true_count() as u64;
    let clusters = labels.column(1).as_primitive::<UInt64Type>();
    let mut with_copies: Vec<u64> = (0..labels.num_rows())
        .filter(|&i| is_dup.value(i))
        .map(|i| clusters.value(i))
        .collect();
    with_copies.sort_unstable();
    with_copies.dedup();
    let docs = labels.num_rows() as u64;
    let import = lake.add_label_columns(labels).await?;
    Ok(CurateSummary {
        lake: lake.location().to_string(),
        version: import.version,
        docs,
        duplicates,
        clusters_with_copies: with_copies.len() as u64,
        by_kind,
        index_bytes,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}
