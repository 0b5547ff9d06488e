//! One ingest run: check everything that can be checked, then stream
//! read → tokenize (in parallel) → Arrow batches → one Lance commit.
//!
//! Memory is bounded by the chunk size times the depth of the channels, whatever the size of
//! the inputs, plus 8 bytes per document already in the lake and 16 per new one (for skipping
//! documents that are already stored).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokenlake_lake::{CommitProperties, Lake};
use tokenlake_schemas::DocumentsSchema;

use crate::documents::{DocumentBatches, Shared};
use crate::input::probe_input;
use crate::options::IngestOptions;
use crate::reader::spawn_reader;
use crate::rejects::RejectsWriter;
use crate::shard::ShardRows;
use crate::{IngestError, IngestProgress, LakeTokenizer, Result};

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub ingest_id: String,
    pub lake: String,
    /// The version committed, or `None` when every document was already in the lake or
    /// rejected, in which case nothing was committed.
    pub version: Option<u64>,
    pub previous_version: Option<u64>,
    pub docs_read: u64,
    pub docs_written: u64,
    pub docs_already_present: u64,
    pub docs_rejected: u64,
    pub tokens_written: u64,
    pub input_bytes: u64,
    /// Where the rejected lines are: a path, or a URI for a remote lake.
    pub rejects_file: Option<String>,
    /// A shard's manifest (where its results wait for `tokenlake commit`).
    pub shard_manifest: Option<String>,
    pub elapsed_secs: f64,
}

/// Runs one ingest. Everything that can fail before writing (options, tokenizer, inputs, the
/// lake's own tokenizer) is checked first; after that, any error or `cancel` aborts the Lance
/// write before its commit, leaving the lake at its previous version.
// Kept as one function: checks, the reader, the batch producer and the one commit are a sequence
// whose order decides what a failure leaves behind (nothing); each step is commented.
pub async fn ingest(
    options: IngestOptions,
    progress: Arc<IngestProgress>,
    cancel: Arc<AtomicBool>,
) -> Result<IngestSummary> {
    let started = Instant::now();
    check_options(&options)?;
    let (tokenizer, inputs) = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let tokenizer = LakeTokenizer::load(&options.tokenizer)?;
            let inputs = options
                .inputs
                .iter()
                .map(|p| probe_input(p, &options.text_field))
                .collect::<Result<Vec<_>>>()?;
            Ok((tokenizer, inputs))
        })
        .await
        .expect("preflight task panicked")?
    };
    let info = tokenizer.schema_info();
    let lake = Lake::open_if_exists(&options.lake).await?;
    let (previous_version, existing_ids) = match &lake {
        Some(lake) => {
            lake.check_tokenizer(&info)?;
            (Some(lake.latest_version()), lake.doc_ids().await?)
        }
        None => (None, Vec::new()),
    };
    // Fragments are written against the version read; the commit checks what others
    // committed since.
    let base = lake;

    let ingest_id = new_ingest_id();
    tracing::info!(
        %ingest_id,
        lake = %options.lake,
        inputs = inputs.len(),
        previous_version,
        stored_docs = existing_ids.len(),
        "ingest started"
    );
    Lake::save_tokenizer(&options.lake, tokenizer.sha256(), tokenizer.json()).await?;
    let lake_rejects = options.lake.rejects_uri(&ingest_id);
    // A remote lake's rejects are written locally first and uploaded once the run is over.
    let upload_rejects = options.rejects.is_none() && !lake_rejects.is_local();
    let rejects_path = match (&options.rejects, lake_rejects.local_path()) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => path.to_path_buf(),
        (None, None) => std::env::temp_dir().join(format!("tokenlake-{ingest_id}.rejects.jsonl")),
    };
    progress
        .input_bytes_total
        .store(inputs.iter().map(|i| i.size).sum(), Ordering::Relaxed);

    let shared = Arc::new(Mutex::new(Shared {
        rejects: RejectsWriter::new(rejects_path),
        error: None,
    }));
    let input_names: Vec<String> = match &options.input_names {
        Some(names) => names.clone(),
        None => inputs
            .iter()
            .map(|i| i.path.display().to_string())
            .collect(),
    };
    let shard_rows = options
        .shard
        .as_ref()
        .map(|shard| ShardRows::new(shard.labeller.clone()));
    let (chunks, reader_thread) = spawn_reader(&options, inputs, progress.clone(), cancel.clone());
    let mut batches = DocumentBatches {
        schema: DocumentsSchema::ingest_schema(&info),
        width: info.token_width,
        tokenizer: Arc::new(tokenizer),
        ingest_id: ingest_id.clone(),
        inputs: input_names.clone(),
        default_source: options.source.clone(),
        keep_text: options.keep_text,
        text_transform: options.text_transform.clone(),
        existing_ids,
        seen: HashSet::new(),
        chunks,
        cancel: cancel.clone(),
        progress: progress.clone(),
        shared: shared.clone(),
        shard_rows: shard_rows.clone(),
        first: None,
    };

    // Pull the first batch before touching the lake, so a run that adds nothing commits
    // nothing.
    let (batches, has_rows) = tokio::task::spawn_blocking(move || {
        let first = batches.next_batch();
        let has_rows = matches!(first, Some(Ok(_)));
        batches.first = first;
        (batches, has_rows)
    })
    .await
    .expect("tokenizing task panicked");
    let first_failed = matches!(batches.first, Some(Err(_)));

    let mut fragments = Vec::new();
    let version = if options.shard.is_some() {
        // A shard writes even nothing: its manifest says that it finished.
        let result = if has_rows {
            Lake::write_uncommitted(&options.lake, base.as_ref(), batches).await
        } else {
            drop(batches);
            Ok(Vec::new())
        };
        if let Some(err) = shared.lock().expect("ingest state poisoned").error.take() {
            return Err(err);
        }
        if first_failed || cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted);
        }
        fragments = result?;
        None
    } else if has_rows {
        let properties = CommitProperties::from([
            ("tokenlake.operation".into(), "ingest".into()),
            ("tokenlake.ingest_id".into(), ingest_id.clone()),
            ("tokenlake.source".into(), options.source.clone()),
            ("tokenlake.inputs".into(), input_names.join("\n")),
            (
                "tokenlake.tokenizer_sha256".into(),
                info.tokenizer_sha256.clone(),
            ),
        ]);
        // Written uncommitted, then committed as one version that leaves out documents
        // another ingest committed meanwhile (two ingests of overlapping inputs at once).
        let written = Lake::write_uncommitted(&options.lake, base.as_ref(), batches).await;
        if let Some(err) = shared.lock().expect("ingest state poisoned").error.take() {
            return Err(err);
        }
        if first_failed || cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted);
        }
        Lake::commit_ingest(
            &options.lake,
            previous_version,
            tokenlake_lake::ShardSchema::from_info(&info),
            written?,
            properties,
        )
        .await?
    } else {
        drop(batches);
        if first_failed || cancel.load(Ordering::Relaxed) {
            let err = shared.lock().expect("ingest state poisoned").error.take();
            return Err(err.unwrap_or(IngestError::Interrupted));
        }
        None
    };
    reader_thread.join().expect("input reader thread panicked");

    let rejects_file = {
        let mut shared = shared.lock().expect("ingest state poisoned");
        let writer = std::mem::replace(&mut shared.rejects, RejectsWriter::new(PathBuf::new()));
        writer.finish()?
    };
    // The version is committed by now: a failed upload must not turn the run into an error,
    // so the rejects then stay in the local file, which the summary names.
    let rejects_file = match rejects_file {
        Some(local) if upload_rejects => {
            let uploaded = match options.lake.storage() {
                Ok(storage) => storage
                    .upload_file(&local, &lake_rejects)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match uploaded {
                Ok(()) => {
                    let _ = std::fs::remove_file(&local);
                    Some(lake_rejects.to_string())
                }
                Err(e) => {
                    tracing::warn!(error = %e, local = %local.display(), "could not upload the rejects; they stay in the local file");
                    Some(local.display().to_string())
                }
            }
        }
        other => other.map(|p| p.display().to_string()),
    };
    let get = IngestProgress::get;
    let mut summary = IngestSummary {
        ingest_id,
        lake: options.lake.to_string(),
        version,
        previous_version,
        docs_read: get(&progress.docs_read),
        docs_written: get(&progress.docs_written),
        docs_already_present: get(&progress.docs_already_present),
        docs_rejected: get(&progress.docs_rejected),
        tokens_written: get(&progress.tokens_written),
        input_bytes: get(&progress.input_bytes_read),
        rejects_file,
        shard_manifest: None,
        elapsed_secs: 0.0,
    };
    if let (Some(shard), Some(rows)) = (&options.shard, &shard_rows) {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted);
        }
        let ipc = rows.lock().expect("shard rows poisoned").ipc()?;
        let s = &summary;
        let manifest = tokenlake_lake::ShardManifest {
            set: shard.set.clone(),
            index: shard.spec.index,
            count: shard.spec.count,
            inputs_digest: tokenlake_lake::inputs_digest(&shard.all_inputs),
            inputs: input_names.clone(),
            base_version: previous_version,
            schema: tokenlake_lake::ShardSchema::from_info(&info),
            pipeline: shard.labeller.as_ref().map(|l| l.fingerprint()),
            ingest_id: s.ingest_id.clone(),
            documents_file: format!("shard-{:05}-{}.arrow", shard.spec.index, s.ingest_id),
            fragments,
            docs_read: s.docs_read,
            docs_written: s.docs_written,
            docs_already_present: s.docs_already_present,
            docs_rejected: s.docs_rejected,
            tokens_written: s.tokens_written,
            input_bytes: s.input_bytes,
            rejects_file: s.rejects_file.clone(),
        };
        let uri = Lake::save_shard(&options.lake, &manifest, ipc.into()).await?;
        summary.shard_manifest = Some(uri.to_string());
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn check_options(options: &IngestOptions) -> Result<()> {
    let bad = |reason: &str| Err(IngestError::Options(reason.to_string()));
    // A shard's block is empty when there are more shards than inputs; it still finishes.
    if options.inputs.is_empty() && options.shard.is_none() {
        return bad("no input files given");
    }
    if options
        .input_names
        .as_ref()
        .is_some_and(|names| names.len() != options.inputs.len())
    {
        return bad("input_names must name every input");
    }
    if options.source.trim().is_empty() {
        return bad("--source must name the source, e.g. --source web");
    }
    if options.text_field.is_empty() {
        return bad("--text-field must not be empty");
    }
    if options.chunk_docs == 0 || options.chunk_bytes == 0 {
        return bad("chunk sizes must be positive");
    }
    Ok(())
}

/// `ing-<UTC time>-<8 hex digits>`: sortable by time and unique across concurrent runs.
fn new_ingest_id() -> String {
    let now = chrono::Utc::now();
    let salt = xxhash_rust::xxh3::xxh3_64(
        format!(
            "{}/{}/{:?}",
            now.timestamp_nanos_opt().unwrap_or_default(),
            std::process::id(),
            std::thread::current().id()
        )
        .as_bytes(),
    );
    format!("ing-{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), salt as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::path::Path;
    use tokenlake_lake::LakeLocation;

    fn tokenizer_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tokenizer.json")
    }

    /// One input line of a generated file and what the ingest must make of it.
    #[derive(Debug, Clone)]
    enum Line {
        Doc { id: u8, text: String },
        BadJson,
        NoText,
        Empty,
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            6 => (0u8..40, "[a-z ]{1,40}").prop_map(|(id, text)| Line::Doc { id, text }),
            1 => Just(Line::BadJson),
            1 => Just(Line::NoText),
            1 => Just(Line::Empty),
        ]
    }

    fn write_input(path: &Path, lines: &[Line]) {
        let mut out = std::fs::File::create(path).unwrap();
        for l in lines {
            match l {
                Line::Doc { id, text } => {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"id": id.to_string(), "text": text})
                    )
                }
                Line::BadJson => writeln!(out, "{{\"id\": "),
                Line::NoText => writeln!(out, "{{\"id\": \"x\"}}"),
                Line::Empty => writeln!(out, "{{\"id\": \"e\", \"text\": \"\"}}"),
            }
            .unwrap();
        }
    }

    fn run(lake: &LakeLocation, input: &Path) -> IngestSummary {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut options = IngestOptions::new(
            lake.clone(),
            vec![input.to_path_buf()],
            "web",
            tokenizer_path(),
        );
        // Small chunks so that generated inputs span several batches.
        options.chunk_docs = 3;
        runtime
            .block_on(ingest(
                options,
                Arc::new(IngestProgress::default()),
                Arc::new(AtomicBool::new(false)),
            ))
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Every line is accounted for exactly once: written, already present (same id earlier
        /// in the run or in an earlier version) or rejected; a second run of the same input
        /// adds nothing.
        #[test]
        fn every_line_is_written_skipped_or_rejected(
            first in proptest::collection::vec(line(), 0..30),
            second in proptest::collection::vec(line(), 0..30),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let lake = LakeLocation::parse(dir.path().join("lake").to_str().unwrap()).unwrap();
            let mut ids = HashSet::new();
            for (round, lines) in [&first, &second].into_iter().enumerate() {
                let input = dir.path().join(format!("in{round}.jsonl"));
                write_input(&input, lines);
                let summary = run(&lake, &input);
                let rejected = lines.iter().filter(|l| !matches!(l, Line::Doc { .. })).count();
                let new = lines
                    .iter()
                    .filter(|l| matches!(l, Line::Doc { id, .. } if ids.insert(*id)))
                    .count();
                prop_assert_eq!(summary.docs_read as usize, lines.len());
                prop_assert_eq!(summary.docs_rejected as usize, rejected);
                prop_assert_eq!(summary.docs_written as usize, new);
                prop_assert_eq!(
                    summary.docs_already_present as usize,
                    lines.len() - rejected - new
                );
                prop_assert_eq!(summary.version.is_some(), new > 0);
                let again = run(&lake, &input);
                prop_assert_eq!(again.docs_written, 0);
                prop_assert_eq!(again.version, None);
            }
        }
    }

    /// A `memory://` lake lives as long as the process: a second run finds the first run's
    /// documents, and a remote lake's rejects are uploaded beside it.
    #[test]
    fn a_memory_lake_keeps_its_versions_and_rejects_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeLocation::parse("memory://pipeline-test/lake").unwrap();
        let input = dir.path().join("in.jsonl");
        let lines = [
            Line::Doc {
                id: 1,
                text: "one two three".into(),
            },
            Line::Doc {
                id: 2,
                text: "four five six seven".into(),
            },
            Line::BadJson,
        ];
        write_input(&input, &lines);
        let first = run(&lake, &input);
        assert_eq!((first.version, first.docs_written), (Some(1), 2));
        let rejects = first.rejects_file.expect("one line was rejected");
        assert!(
            rejects.starts_with("memory://pipeline-test/lake/rejects/"),
            "{rejects}"
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let stored = runtime.block_on(async {
            let uri = tokenlake_storage::StorageUri::parse(&rejects).unwrap();
            lake.storage().unwrap().read(&uri).await.unwrap()
        });
        assert!(String::from_utf8_lossy(&stored).contains("\"line\":3"));
        let again = run(&lake, &input);
        assert_eq!((again.version, again.docs_already_present), (None, 2));
    }

    #[test]
    fn ingest_ids_sort_by_time_and_differ() {
        let a = new_ingest_id();
        let b = new_ingest_id();
        assert!(a.starts_with("ing-2") && a.len() == "ing-20261127T190400Z-0123abcd".len());
        assert_ne!(a, b);
    }
}
