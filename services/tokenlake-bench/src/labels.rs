//! Label writes against the number of fragments: the lake's write (each fragment given only
//! its own rows' labels, [`Lake::label_fragments`]) beside the write it replaced (every
//! fragment given the whole label batch, which Lance joins by doc_id each time), in the same
//! run over the same lake and labels. Neither commits: the figure is the fragments' writes.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Float32Array, RecordBatch, RecordBatchIterator, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use serde::Serialize;
use tokenlake_lake::{Lake, LakeError, LakeLocation, Result, VersionSpec};
use tokenlake_schemas::columns;

#[derive(Debug, Clone, Serialize)]
pub struct LabelWriteFigures {
    pub rows: u64,
    pub fragments: u64,
    pub per_fragment_secs: f64,
    pub whole_batch_secs: f64,
}

impl LabelWriteFigures {
    pub fn speedup(&self) -> f64 {
        self.whole_batch_secs / self.per_fragment_secs.max(1e-9)
    }
}

/// A new label column (`bench_score`) for every document of `lake`.
async fn labels_for(lake: &Lake) -> Result<RecordBatch> {
    let ids: Vec<u64> = lake.doc_ids().await?;
    let scores = Float32Array::from_iter_values(ids.iter().map(|&id| (id % 1000) as f32));
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns::DOC_ID, DataType::UInt64, false),
        Field::new("bench_score", DataType::Float32, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from(ids)), Arc::new(scores)],
    )
    .map_err(|e| LakeError::Labels {
        lake: lake.location().to_string(),
        reason: e.to_string(),
    })
}

/// Times both writes of one new label column over the lake at `location` (already written).
pub async fn measure_label_writes(location: &LakeLocation) -> Result<LabelWriteFigures> {
    let lake = Lake::open(location).await?;
    let labels = labels_for(&lake).await?;
    let dataset = Arc::new(lake.checkout(&VersionSpec::Latest).await?);
    let fragments = dataset.get_fragments();

    let started = Instant::now();
    let written = lake.label_fragments(&labels).await?;
    let per_fragment_secs = started.elapsed().as_secs_f64();
    assert_eq!(written.fragments.len(), fragments.len());

    let started = Instant::now();
    for mut fragment in fragments.iter().cloned() {
        let reader = RecordBatchIterator::new([Ok(labels.clone())], labels.schema());
        fragment
            .merge_columns(reader, columns::DOC_ID, columns::DOC_ID)
            .await
            .map_err(|source| LakeError::Lance {
                context: "the whole-batch label write".into(),
                source,
            })?;
    }
    let whole_batch_secs = started.elapsed().as_secs_f64();
    Ok(LabelWriteFigures {
        rows: labels.num_rows() as u64,
        fragments: fragments.len() as u64,
        per_fragment_secs,
        whole_batch_secs,
    })
}
