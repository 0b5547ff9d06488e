//! One shard of a sharded ingest (`tokenlake ingest --shard I/N`): the same pipeline as a single
//! ingest over this shard's contiguous block of the shared input list, but its fragments are
//! written without a commit, and every row written is also kept in the shard's documents file
//! (its doc_id and, when a labeller is given, its labels and dedup fingerprint) for
//! `tokenlake commit`, which publishes all shards as one version.

use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use tokenlake_lake::ShardSpec;
use tokenlake_schemas::columns;

use crate::{IngestError, Result};

/// Labels the rows a shard writes (curation's per-document labels and fingerprints, which need
/// nothing but the document itself).
pub trait ShardLabeller: Send + Sync {
    /// For a batch about to be written: the batch to write instead (the labeller may rewrite
    /// ingest columns, e.g. `lang` with the detected language) and its side columns, one row
    /// per row, kept in the shard's documents file.
    fn label(&self, batch: RecordBatch) -> std::result::Result<(RecordBatch, RecordBatch), String>;

    /// The side columns' schema (without `doc_id`).
    fn side_schema(&self) -> Arc<Schema>;

    /// Names the labelling, so that the commit can refuse shards labelled differently.
    fn fingerprint(&self) -> String;
}

/// Which shard this run is.
#[derive(Clone)]
pub struct ShardOptions {
    pub spec: ShardSpec,
    /// The set of shards this one belongs to (a name under `LAKE/shards/`).
    pub set: String,
    /// The whole input list, as every shard was given it.
    pub all_inputs: Vec<String>,
    pub labeller: Option<Arc<dyn ShardLabeller>>,
}

impl std::fmt::Debug for ShardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardOptions")
            .field("spec", &self.spec)
            .field("set", &self.set)
            .field("inputs", &self.all_inputs.len())
            .field("labelled", &self.labeller.is_some())
            .finish()
    }
}

/// The rows a shard wrote, for its documents file.
pub(crate) struct ShardRows {
    labeller: Option<Arc<dyn ShardLabeller>>,
    schema: Arc<Schema>,
    batches: Vec<RecordBatch>,
}

impl ShardRows {
    pub(crate) fn new(labeller: Option<Arc<dyn ShardLabeller>>) -> Arc<Mutex<ShardRows>> {
        let mut fields = vec![Field::new(columns::DOC_ID, DataType::UInt64, false)];
        if let Some(l) = &labeller {
            fields.extend(l.side_schema().fields().iter().map(|f| f.as_ref().clone()));
        }
        Arc::new(Mutex::new(ShardRows {
            labeller,
            schema: Arc::new(Schema::new(fields)),
            batches: Vec::new(),
        }))
    }

    /// Keeps `batch`'s rows (labelled first, when there is a labeller); returns what to write.
    pub(crate) fn take(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let ids: ArrayRef = batch
            .column_by_name(columns::DOC_ID)
            .cloned()
            .unwrap_or_else(|| Arc::new(UInt64Array::from(Vec::<u64>::new())));
        let (batch, mut side) = match &self.labeller {
            Some(labeller) => {
                let (batch, side) = labeller.label(batch).map_err(IngestError::Labels)?;
                if side.num_rows() != batch.num_rows() {
                    return Err(IngestError::Labels(format!(
                        "the labeller gave {} rows for {}",
                        side.num_rows(),
                        batch.num_rows()
                    )));
                }
                (batch, side.columns().to_vec())
            }
            None => (batch, Vec::new()),
        };
        side.insert(0, ids);
        let kept = RecordBatch::try_new(self.schema.clone(), side).map_err(IngestError::Batch)?;
        self.batches.push(kept);
        Ok(batch)
    }

    /// The documents file: Arrow IPC of every kept row, in order.
    pub(crate) fn ipc(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut out, &self.schema)
            .map_err(IngestError::Batch)?;
        for batch in &self.batches {
            writer.write(batch).map_err(IngestError::Batch)?;
        }
        writer.finish().map_err(IngestError::Batch)?;
        drop(writer);
        Ok(out)
    }
}
