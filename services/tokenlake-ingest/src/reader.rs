//! The ingest's reading side: the inputs one after another on a thread of its own, as chunks
//! of records into a bounded channel (a full channel blocks the reader, which bounds memory).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::input::{FieldNames, InputSpec, Record, read_records};
use crate::options::IngestOptions;
use crate::{IngestError, IngestProgress, Result};

/// A chunk of records from one input, in input order.
pub(crate) struct Chunk {
    pub(crate) input: usize,
    pub(crate) records: Vec<Record>,
}

/// Reads the inputs one after another on a thread of its own and sends chunks of records; a
/// full channel blocks it, which bounds memory.
pub(crate) fn spawn_reader(
    options: &IngestOptions,
    inputs: Vec<InputSpec>,
    progress: Arc<IngestProgress>,
    cancel: Arc<AtomicBool>,
) -> (Receiver<Result<Chunk>>, JoinHandle<()>) {
    let (tx, rx) = bounded::<Result<Chunk>>(2);
    let fields = FieldNames {
        text: options.text_field.clone(),
        id: options.id_field.clone(),
        url: options.url_field.clone(),
        lang: options.lang_field.clone(),
        source: options.source_field.clone(),
    };
    let (chunk_docs, chunk_bytes) = (options.chunk_docs, options.chunk_bytes);
    let handle = std::thread::Builder::new()
        .name("ingest-reader".into())
        .spawn(move || {
            let result = read_all(
                &inputs,
                &fields,
                &progress,
                &cancel,
                chunk_docs,
                chunk_bytes,
                &tx,
            );
            if let Err(err) = result {
                // The consumer reports the error; a closed channel means it already stopped.
                let _ = tx.send(Err(err));
            }
        })
        .expect("spawning the input reader thread");
    (rx, handle)
}

pub(crate) fn read_all(
    inputs: &[InputSpec],
    fields: &FieldNames,
    progress: &Arc<IngestProgress>,
    cancel: &AtomicBool,
    chunk_docs: usize,
    chunk_bytes: usize,
    tx: &Sender<Result<Chunk>>,
) -> Result<()> {
    for (index, input) in inputs.iter().enumerate() {
        let mut records = Vec::with_capacity(chunk_docs);
        let mut bytes = 0usize;
        let send = |records: Vec<Record>| -> Result<()> {
            tx.send(Ok(Chunk {
                input: index,
                records,
            }))
            .map_err(|_| IngestError::Interrupted)
        };
        read_records(input, fields, progress, cancel, &mut |record| {
            IngestProgress::add(&progress.docs_read, 1);
            bytes += record.doc.as_ref().map_or(0, |d| d.text.len());
            records.push(record);
            if records.len() >= chunk_docs || bytes >= chunk_bytes {
                bytes = 0;
                send(std::mem::replace(
                    &mut records,
                    Vec::with_capacity(chunk_docs),
                ))?;
            }
            Ok(())
        })?;
        if !records.is_empty() {
            send(records)?;
        }
    }
    Ok(())
}
