//! The ingest's writing side: the record-batch reader Lance pulls from, which tokenizes each
//! chunk in parallel, skips documents already stored, rejects what is not a document, and
//! keeps the input order, so the same inputs always give the same rows in the same order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use crossbeam_channel::Receiver;
use rayon::prelude::*;
use tokenlake_schemas::TokenWidth;

use crate::batch::{DocRow, build_batch};
use crate::options::TextTransform;
use crate::reader::Chunk;
use crate::rejects::{RejectRecord, RejectsWriter};
use crate::shard::ShardRows;
use crate::{IngestError, IngestProgress, LakeTokenizer, Result, doc_id};

/// State shared between the batch producer (run by Lance on its own thread) and the caller.
pub(crate) struct Shared {
    pub(crate) rejects: RejectsWriter,
    /// The real cause when the producer fails; Lance only sees a wrapped copy.
    pub(crate) error: Option<IngestError>,
}

/// The record-batch reader Lance pulls from: tokenizes each chunk in parallel and keeps the
/// input order, so the same inputs always give the same rows in the same order.
pub(crate) struct DocumentBatches {
    pub(crate) schema: SchemaRef,
    pub(crate) width: TokenWidth,
    pub(crate) tokenizer: Arc<LakeTokenizer>,
    pub(crate) ingest_id: String,
    pub(crate) inputs: Vec<String>,
    pub(crate) default_source: String,
    pub(crate) keep_text: bool,
    pub(crate) text_transform: Option<TextTransform>,
    /// Sorted ids of the documents already in the lake.
    pub(crate) existing_ids: Vec<u64>,
    /// Ids written by this run.
    pub(crate) seen: HashSet<u64>,
    pub(crate) chunks: Receiver<Result<Chunk>>,
    /// Checked before each chunk too, so a stop does not wait for the chunks already queued.
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) progress: Arc<IngestProgress>,
    pub(crate) shared: Arc<Mutex<Shared>>,
    /// A shard keeps every row it writes (and labels it, given a labeller).
    pub(crate) shard_rows: Option<Arc<Mutex<ShardRows>>>,
    pub(crate) first: Option<std::result::Result<RecordBatch, ArrowError>>,
}

impl DocumentBatches {
    pub(crate) fn next_batch(&mut self) -> Option<std::result::Result<RecordBatch, ArrowError>> {
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Some(Err(self.fail(IngestError::Interrupted)));
            }
            let chunk = match self.chunks.recv() {
                Err(_) => return None,
                Ok(Err(err)) => return Some(Err(self.fail(err))),
                Ok(Ok(chunk)) => chunk,
            };
            match self.process(chunk) {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue,
                Err(err) => return Some(Err(self.fail(err))),
            }
        }
    }

    fn fail(&mut self, err: IngestError) -> ArrowError {
        let message = err.to_string();
        self.shared.lock().expect("ingest state poisoned").error = Some(err);
        ArrowError::ExternalError(message.into())
    }

    fn process(&mut self, chunk: Chunk) -> Result<Option<RecordBatch>> {
        let width = self.width;
        let tokenizer = &self.tokenizer;
        let default_source = &self.default_source;
        let keep_text = self.keep_text;
        let transform = self.text_transform.as_ref().map(|t| &*t.0);
        let input = chunk.input;
        // `into_par_iter` on a Vec keeps the order, so rows come out in input order.
        let tokenized: Vec<(u64, std::result::Result<DocRow, String>)> = chunk
            .records
            .into_par_iter()
            .map(|record| {
                let line = record.line;
                let row = record.doc.and_then(|doc| {
                    if doc.text.is_empty() {
                        return Err("empty text".to_string());
                    }
                    let source = doc.source.unwrap_or_else(|| default_source.clone());
                    let id = doc_id(&source, doc.id.as_deref(), &doc.text);
                    let text = match transform.and_then(|t| t(&doc.text)) {
                        Some(t) if t.trim().is_empty() => {
                            return Err("empty text after preprocessing".to_string());
                        }
                        Some(t) => t,
                        None => doc.text,
                    };
                    let tokens = tokenizer.encode(&text)?;
                    if let Some(&id) = tokens.iter().find(|&&id| !width.holds(id)) {
                        return Err(format!("token id {id} does not fit {width}"));
                    }
                    Ok(DocRow {
                        doc_id: id,
                        n_chars: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
                        source,
                        lang: doc.lang,
                        url: doc.url,
                        text: keep_text.then_some(text),
                        tokens,
                        input,
                        line,
                    })
                });
                (line, row)
            })
            .collect();

        let mut rows = Vec::with_capacity(tokenized.len());
        let (mut rejected, mut present, mut tokens) = (0u64, 0u64, 0u64);
        {
            let mut shared = self.shared.lock().expect("ingest state poisoned");
            for (line, result) in tokenized {
                match result {
                    Err(reason) => {
                        rejected += 1;
                        shared.rejects.write(&RejectRecord {
                            input: &self.inputs[input],
                            line,
                            reason: &reason,
                        })?;
                    }
                    Ok(row) => {
                        let stored = self.existing_ids.binary_search(&row.doc_id).is_ok();
                        if stored || !self.seen.insert(row.doc_id) {
                            present += 1;
                        } else {
                            tokens += row.tokens.len() as u64;
                            rows.push(row);
                        }
                    }
                }
            }
        }
        let p = &self.progress;
        IngestProgress::add(&p.docs_rejected, rejected);
        IngestProgress::add(&p.docs_already_present, present);
        if rows.is_empty() {
            return Ok(None);
        }
        let batch = build_batch(&self.schema, width, &self.ingest_id, &self.inputs, &rows)
            .map_err(IngestError::Batch)?;
        let batch = match &self.shard_rows {
            Some(kept) => kept.lock().expect("shard rows poisoned").take(batch)?,
            None => batch,
        };
        IngestProgress::add(&p.docs_written, rows.len() as u64);
        IngestProgress::add(&p.tokens_written, tokens);
        Ok(Some(batch))
    }
}

impl Iterator for DocumentBatches {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.first.take() {
            Some(first) => Some(first),
            None => self.next_batch(),
        }
    }
}

impl RecordBatchReader for DocumentBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
