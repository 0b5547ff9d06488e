//! `tokenlake curate`: labels every document of a lake version with the whole pipeline
//! (language, perplexity and tier, rule signals and flags, duplicates) and commits the labels
//! as one new version (Lance schema evolution: tokens are not rewritten). Interrupted or
//! failed runs commit nothing.
//!
//! Curation is incremental. The persisted state ([`crate::state`]) covers the documents that
//! were curated before; when the pipeline is unchanged, their per-document labels are read
//! back from the lake and only the documents added since are read and labelled, and checked
//! against the de-duplication index of everything before them. Population labels (tiers,
//! duplicate clusters) are recomputed for every document, since new documents can move them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, StringBuilder, UInt8Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::Serialize;
use tokenlake_lake::{CommitProperties, Lake, LakeError, Progress, VersionSpec};
use tokenlake_schemas::columns;

use crate::config::Pipeline;
use crate::dedup::Fingerprint;
use crate::dedup::pipeline::DEFAULT_PARTITIONS;
use crate::dedup::pipeline::{RowLabel, task_sort_budget};
use crate::dedup_store::LakeDedupIndex;
use crate::labeler::{DocLabels, Labeler, StageSeconds, quality_tiers};
use crate::rules::{RuleSet, SIGNALS, SignalKind, keeps};
use crate::state::CurationState;

/// Label columns curation writes besides the rule signals; their names are the schema's.
pub mod label_columns {
    pub use tokenlake_schemas::columns::{
        ENCODING_REPAIRS, LANG_SCORE, PPL, PREPROCESS_CHANGED, QUALITY_TIER, RULE_FLAGS,
    };
}
use label_columns::*;

#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    #[error(transparent)]
    Lake(#[from] LakeError),

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

impl tokenlake_schemas::ServiceError for CurateError {
    fn error_code(&self) -> tokenlake_schemas::ErrorCode {
        use tokenlake_schemas::ErrorCode;
        match self {
            CurateError::Lake(e) => e.error_code(),
            // The lake was ingested without texts: curating it cannot work until re-ingested.
            CurateError::NoText { .. } => ErrorCode::FailedPrecondition,
            CurateError::Interrupted => ErrorCode::Cancelled,
            CurateError::Arrow(_) => ErrorCode::Internal,
        }
    }
}

pub struct CurateOptions {
    /// Which version's documents to label (the labels are committed on top of the latest).
    pub version: VersionSpec,
    pub pipeline: Pipeline,
    /// Label every document again even where stored labels could be reused.
    pub recompute: bool,
    pub dedup: DedupOptions,
}

/// How the de-duplication index runs in-process.
#[derive(Debug, Clone, Copy)]
pub struct DedupOptions {
    /// Partitions of a new index (an existing one keeps its own).
    pub partitions: u32,
    /// Memory for the candidate tasks running at once, together.
    pub budget_bytes: u64,
}

impl Default for DedupOptions {
    fn default() -> Self {
        DedupOptions {
            partitions: DEFAULT_PARTITIONS,
            budget_bytes: 2 << 30,
        }
    }
}

impl Default for CurateOptions {
    fn default() -> Self {
        CurateOptions {
            version: VersionSpec::Latest,
            pipeline: Pipeline::default_pipeline(),
            recompute: false,
            dedup: DedupOptions::default(),
        }
    }
}

/// Runs the index's pending update in-process (the candidate tasks not already done, on the
/// rayon pool's threads with the budget shared between them, then the union), calling
/// `each(row, label, changed)` for every row in order; returns how many tasks ran here.
pub(crate) fn update_index(
    store: &LakeDedupIndex,
    options: &DedupOptions,
    progress: &Progress,
    each: impl FnMut(u64, RowLabel, bool),
) -> Result<u32, CurateError> {
    let index = store.index();
    let threads = rayon::current_num_threads().max(1);
    let ran = index
        .missing_candidates(
            task_sort_budget(options.budget_bytes / threads as u64),
            threads,
            progress.cancel_token().flag(),
        )
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => CurateError::Interrupted,
            _ => store.io_error(e).into(),
        })?;
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    index.union(each).map_err(|e| store.io_error(e))?;
    Ok(ran)
}

#[derive(Debug, Clone, Serialize)]
pub struct CurateSummary {
    pub lake: String,
    /// The version committed with the labels.
    pub version: u64,
    /// The version whose documents were labelled.
    pub curated_version: u64,
    pub docs: u64,
    /// Documents read and labelled by this run; the others' per-document labels were reused.
    pub labelled: u64,
    pub reused: u64,
    pub duplicates: u64,
    pub clusters_with_copies: u64,
    /// Duplicates by how they were found.
    pub by_kind: BTreeMap<String, u64>,
    /// Documents each rule set would drop.
    pub failing: BTreeMap<String, u64>,
    /// Documents per language (`?` for none).
    pub languages: BTreeMap<String, u64>,
    /// Bytes of the de-duplication index on disk during the update.
    pub index_bytes: u64,
    /// The persisted curation state this run started from and the one it wrote.
    pub state_reused: Option<String>,
    pub state_written: String,
    pub pipeline: String,
    /// Seconds per stage, summed over worker threads.
    pub stage_seconds: StageSeconds,
    pub elapsed_secs: f64,
}

impl CurateSummary {
    /// What the labels say of the documents: their count, duplicates and the clusters that
    /// have copies, duplicates by kind, failures per rule set, languages. The rest is left
    /// for the caller.
    fn counts_of(labels: &[DocLabels], dup: &[RowLabel]) -> CurateSummary {
        let is_dup = |(row, d): &(usize, &RowLabel)| d.is_dup(*row as u64);
        let mut keepers: Vec<u64> = dup
            .iter()
            .enumerate()
            .filter(is_dup)
            .map(|(_, d)| d.keeper)
            .collect();
        keepers.sort_unstable();
        keepers.dedup();
        let mut summary = CurateSummary {
            lake: String::new(),
            version: 0,
            curated_version: 0,
            docs: labels.len() as u64,
            labelled: 0,
            reused: 0,
            duplicates: dup.iter().enumerate().filter(is_dup).count() as u64,
            clusters_with_copies: keepers.len() as u64,
            by_kind: BTreeMap::new(),
            failing: BTreeMap::new(),
            languages: BTreeMap::new(),
            index_bytes: 0,
            state_reused: None,
            state_written: String::new(),
            pipeline: String::new(),
            stage_seconds: StageSeconds::default(),
            elapsed_secs: 0.0,
        };
        for d in dup.iter().filter_map(|d| d.kind) {
            *summary.by_kind.entry(d.name().to_string()).or_insert(0) += 1;
        }
        for set in RuleSet::ALL {
            let n = labels.iter().filter(|l| !keeps(l.rule_flags, set)).count() as u64;
            summary.failing.insert(set.name().to_string(), n);
        }
        for l in labels {
            let key = l.lang.clone().unwrap_or_else(|| "?".into());
            *summary.languages.entry(key).or_insert(0) += 1;
        }
        summary
    }
}

/// The per-document label columns, in the order they are written.
pub(crate) fn per_document_fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new(columns::LANG, DataType::Utf8, true),
        Field::new(LANG_SCORE, DataType::Float32, true),
        Field::new(ENCODING_REPAIRS, DataType::UInt32, true),
        Field::new(PREPROCESS_CHANGED, DataType::Boolean, true),
        Field::new(PPL, DataType::Float32, true),
    ];
    for s in SIGNALS {
        let t = match s.kind {
            SignalKind::Count => DataType::UInt32,
            SignalKind::Ratio => DataType::Float32,
        };
        fields.push(Field::new(s.column, t, true));
    }
    fields.push(Field::new(RULE_FLAGS, DataType::UInt64, true));
    fields
}

/// Every column curation writes, `doc_id` first.
pub fn label_schema() -> Schema {
    let mut fields = vec![Field::new(columns::DOC_ID, DataType::UInt64, false)];
    fields.extend(per_document_fields());
    fields.push(Field::new(QUALITY_TIER, DataType::UInt8, true));
    for set in RuleSet::ALL {
        fields.push(Field::new(set.keep_column(), DataType::Boolean, true));
    }
    fields.push(Field::new(columns::DUP_CLUSTER, DataType::UInt64, true));
    fields.push(Field::new(columns::IS_DUP, DataType::Boolean, true));
    fields.push(Field::new(columns::DUP_KIND, DataType::Utf8, true));
    Schema::new(fields)
}

/// Reads the stored per-document labels of one batch whose columns from `at` on are
/// [`per_document_fields`].
pub(crate) fn stored_labels(batch: &RecordBatch, at: usize, out: &mut Vec<DocLabels>) {
    let column = |k: usize| batch.column(at + k);
    let lang = column(0).as_string::<i32>();
    let score = column(1).as_primitive::<Float32Type>();
    let repairs = column(2).as_primitive::<UInt32Type>();
    let changed = column(3).as_boolean();
    let ppl = column(4).as_primitive::<Float32Type>();
    let flags = column(5 + SIGNALS.len()).as_primitive::<UInt64Type>();
    for i in 0..batch.num_rows() {
        let mut signals = [0f32; SIGNALS.len()];
        for (k, s) in SIGNALS.iter().enumerate() {
            let col = column(5 + k);
            signals[k] = match s.kind {
                SignalKind::Count => col.as_primitive::<UInt32Type>().value(i) as f32,
                SignalKind::Ratio => col.as_primitive::<Float32Type>().value(i),
            };
        }
        out.push(DocLabels {
            lang: (!lang.is_null(i)).then(|| lang.value(i).to_string()),
            lang_score: (!score.is_null(i)).then(|| score.value(i)),
            encoding_repairs: repairs.value(i),
            preprocess_changed: changed.value(i),
            ppl: (!ppl.is_null(i)).then(|| ppl.value(i)),
            signals,
            rule_flags: flags.value(i),
        });
    }
}

/// Curates `options.version` of `lake` and commits the labels as one new version.
// Kept as one function: its phases (row ids, what can be reused, texts, population labels, the
// state, the commit) are one sequence whose order is the crash-safety argument; each is commented
// where it starts.
pub async fn curate(
    lake: &Lake,
    options: &CurateOptions,
    progress: &Progress,
) -> Result<CurateSummary, CurateError> {
    let started = Instant::now();
    let lake_name = lake.location().to_string();
    let dataset = lake.checkout(&options.version).await?;
    let curated_version = dataset.version().version;
    let pipeline = &options.pipeline;
    let per_doc = per_document_fields();
    let per_doc_names: Vec<&str> = per_doc.iter().map(|f| f.name().as_str()).collect();
    let labelled_before = per_doc_names
        .iter()
        .all(|c| *c == columns::LANG || dataset.schema().field(c).is_some());

    // Pass 1, no texts: doc_ids in row order, and which rows carry labels.
    let mut doc_ids: Vec<u64> = Vec::new();
    let mut has_labels: Vec<bool> = Vec::new();
    let mut first_pass: Vec<&str> = vec![columns::DOC_ID];
    if labelled_before {
        first_pass.push(RULE_FLAGS);
    }
    lake.scan_version(&dataset, &first_pass, None, |batch| {
        doc_ids.extend(batch.column(0).as_primitive::<UInt64Type>().values().iter());
        match batch.columns().get(1) {
            Some(flags) => has_labels.extend((0..batch.num_rows()).map(|i| !flags.is_null(i))),
            None => has_labels.extend(std::iter::repeat_n(false, batch.num_rows())),
        }
        Ok(())
    })
    .await?;
    let docs = doc_ids.len();

    // The index covers the documents of the state it is tagged with, when those are the
    // first documents of this version; otherwise it starts over.
    let mut index = LakeDedupIndex::open(lake.location(), None, options.dedup.partitions).await?;
    index.discard_pending()?;
    let tag = index.index().tag().to_string();
    let state = match index.index().covered() {
        0 => None,
        covered => CurationState::load_prefix(lake, &tag, &doc_ids)
            .await?
            .filter(|s| s.doc_ids.len() as u64 == covered),
    };
    if state.is_none() && index.index().covered() > 0 {
        index.reset()?;
    }
    let state_reused = state.as_ref().map(|_| tag);
    let covered = state.as_ref().map_or(0, |s| s.doc_ids.len());
    // Stored per-document labels are reused when they were made by this pipeline and cover
    // exactly the state's documents (a state from a run that did not commit covers more).
    let reuse = !options.recompute
        && labelled_before
        && state
            .as_ref()
            .is_some_and(|s| s.pipeline == pipeline.fingerprint)
        && has_labels[..covered].iter().all(|&h| h)
        && has_labels[covered..].iter().all(|&h| !h);
    let mut keys = index
        .index()
        .writer("curate", covered as u64)
        .map_err(|e| index.io_error(e))?;
    let mut key_failure: Option<std::io::Error> = None;
    let mut labels: Vec<DocLabels> = Vec::with_capacity(docs);
    if reuse {
        lake.scan_version(
            &dataset,
            &[&[columns::DOC_ID][..], &per_doc_names].concat(),
            Some(&format!("{RULE_FLAGS} IS NOT NULL")),
            |batch| {
                stored_labels(batch, 1, &mut labels);
                Ok(())
            },
        )
        .await?;
        if labels.len() != covered {
            return Err(LakeError::Labels {
                lake: lake_name,
                reason: format!(
                    "read {} stored labels for {covered} curated documents; run with --recompute",
                    labels.len()
                ),
            }
            .into());
        }
    }
    let start_row = labels.len();

    // Pass 2: the texts of the documents to label (all of them, or those added since).
    progress
        .total
        .store((docs - start_row) as u64, Ordering::Relaxed);
    let filter = reuse.then(|| format!("{RULE_FLAGS} IS NULL"));
    let lang_score_stored = labelled_before && dataset.schema().field(LANG_SCORE).is_some();
    let mut text_columns = vec![columns::DOC_ID, columns::URL, columns::TEXT, columns::LANG];
    if lang_score_stored {
        text_columns.push(LANG_SCORE);
    }
    let mut seconds = StageSeconds::default();
    let mut failure: Option<CurateError> = None;
    let mut row = start_row;
    let scan = lake
        .scan_version(&dataset, &text_columns, filter.as_deref(), |batch| {
            if progress.is_cancelled() {
                failure = Some(CurateError::Interrupted);
                return Err(LakeError::Labels {
                    lake: lake_name.clone(),
                    reason: "interrupted".into(),
                });
            }
            let ids = batch.column(0).as_primitive::<UInt64Type>();
            let urls = batch.column(1).as_string::<i32>();
            let texts = batch.column(2).as_string::<i32>();
            let langs = batch.column(3).as_string::<i32>();
            let scores = batch
                .columns()
                .get(4)
                .map(|c| c.as_primitive::<Float32Type>());
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
            if ids.values()[..] != doc_ids[row..row + batch.num_rows()] {
                return Err(LakeError::Labels {
                    lake: lake_name.clone(),
                    reason: "the documents to label are not the ones after the curated ones; \
                             run with --recompute"
                        .into(),
                });
            }
            // Labels and fingerprints in parallel; the index takes them in row order.
            let results: Vec<(DocLabels, Option<Fingerprint>, StageSeconds)> = (0..batch
                .num_rows())
                .into_par_iter()
                .map_init(
                    || Labeler::new(pipeline),
                    |labeler, i| {
                        // A language that an earlier curation detected (it has a score) is
                        // detected again; one the input declared is kept.
                        let detected = scores.is_some_and(|s| !s.is_null(i));
                        let declared = (!langs.is_null(i) && !detected).then(|| langs.value(i));
                        let url = (!urls.is_null(i))
                            .then(|| urls.value(i))
                            .filter(|u| !u.is_empty());
                        let fingerprint = row + i >= covered;
                        let (l, f) = labeler.label(declared, url, texts.value(i), fingerprint);
                        (l, f, labeler.last.clone())
                    },
                )
                .collect();
            for (l, f, spent) in results {
                if let Some(f) = f
                    && key_failure.is_none()
                    && let Err(e) = keys.add(&f)
                {
                    key_failure = Some(e);
                }
                seconds.add(&spent);
                labels.push(l);
            }
            row += batch.num_rows();
            progress
                .done
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(())
        })
        .await;
    if let Some(f) = failure {
        return Err(f);
    }
    scan?;
    if let Some(e) = key_failure {
        return Err(index.io_error(e).into());
    }
    let indexed = keys.finish().map_err(|e| index.io_error(e))?;
    if labels.len() != docs || covered + indexed.rows as usize != docs {
        return Err(LakeError::Labels {
            lake: lake_name,
            reason: format!(
                "labelled {} and indexed {} of {docs} documents; run with --recompute",
                labels.len(),
                covered + indexed.rows as usize
            ),
        }
        .into());
    }
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }

    // Population labels.
    let langs: Vec<Option<String>> = labels.iter().map(|l| l.lang.clone()).collect();
    let ppls: Vec<Option<f32>> = labels.iter().map(|l| l.ppl).collect();
    let tiers = quality_tiers(&langs, &ppls, pipeline.config.perplexity.tiers);
    let mut dup: Vec<RowLabel> = Vec::with_capacity(docs);
    update_index(&index, &options.dedup, progress, |_, label, _| {
        dup.push(label)
    })?;
    let index_bytes = index.index().disk_bytes().unwrap_or_default();

    let batch = build_batch(&doc_ids, 0, &doc_ids, &labels, &tiers, &dup)?;
    let mut summary = CurateSummary {
        lake: lake_name.clone(),
        curated_version,
        labelled: (docs - start_row) as u64,
        reused: start_row as u64,
        index_bytes,
        state_reused,
        pipeline: pipeline.fingerprint.clone(),
        stage_seconds: seconds,
        ..CurateSummary::counts_of(&labels, &dup)
    };
    // The state first: a committed version always has its state; a state without a commit is
    // never mistaken for one (see `reuse`). The index is committed after the version: one
    // tagged with a state the lake never committed would be reused with labels it lacks.
    let state = CurationState {
        doc_ids,
        pipeline: pipeline.fingerprint.clone(),
    };
    summary.state_written = state.save(lake.location()).await?;
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    let properties = CommitProperties::from([
        ("tokenlake.operation".to_string(), "curate".to_string()),
        (
            "tokenlake.curated_version".to_string(),
            curated_version.to_string(),
        ),
        (
            "tokenlake.pipeline".to_string(),
            pipeline.fingerprint.clone(),
        ),
        (
            "tokenlake.curation_state".to_string(),
            summary.state_written.clone(),
        ),
        crate::config::rules_property(&pipeline.config.rules),
    ]);
    let import = lake.write_label_columns(batch, properties).await?;
    summary.version = import.version;
    // Failing here costs the next curation a new index, never a wrong label.
    if let Err(e) = index.commit(&summary.state_written).await {
        tracing::warn!(error = %e, lake = %lake_name, "could not commit the de-duplication index; the next curation rebuilds it");
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Every label column of consecutive rows from `first_row`: `doc_ids`, `labels`, `tiers` and
/// `dup` are theirs; a keeper's doc_id is `keeper_ids[keeper]`.
pub(crate) fn build_batch(
    doc_ids: &[u64],
    first_row: u64,
    keeper_ids: &[u64],
    labels: &[DocLabels],
    tiers: &[Option<u8>],
    dup: &[RowLabel],
) -> Result<RecordBatch, CurateError> {
    let n = labels.len();
    let mut arrays: Vec<ArrayRef> =
        vec![Arc::new(arrow_array::UInt64Array::from(doc_ids.to_vec()))];
    arrays.extend(per_document_columns(labels));
    let mut tier = UInt8Builder::with_capacity(n);
    tiers.iter().for_each(|t| tier.append_option(*t));
    arrays.push(Arc::new(tier.finish()));
    for set in RuleSet::ALL {
        let mut b = BooleanBuilder::with_capacity(n);
        labels
            .iter()
            .for_each(|l| b.append_value(keeps(l.rule_flags, set)));
        arrays.push(Arc::new(b.finish()));
    }
    let mut cluster = UInt64Builder::with_capacity(n);
    let mut is_dup = BooleanBuilder::with_capacity(n);
    let mut kind = StringBuilder::with_capacity(n, n);
    for (i, d) in dup.iter().enumerate() {
        cluster.append_value(keeper_ids[d.keeper as usize]);
        is_dup.append_value(d.is_dup(first_row + i as u64));
        kind.append_option(d.kind.map(|k| k.name()));
    }
    arrays.push(Arc::new(cluster.finish()));
    arrays.push(Arc::new(is_dup.finish()));
    arrays.push(Arc::new(kind.finish()));
    Ok(RecordBatch::try_new(Arc::new(label_schema()), arrays)?)
}

/// The per-document label columns of `labels`, in [`per_document_fields`] order.
pub(crate) fn per_document_columns(labels: &[DocLabels]) -> Vec<ArrayRef> {
    let n = labels.len();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut lang = StringBuilder::with_capacity(n, n * 2);
    let mut score = Float32Builder::with_capacity(n);
    let mut repairs = UInt32Builder::with_capacity(n);
    let mut changed = BooleanBuilder::with_capacity(n);
    let mut ppl = Float32Builder::with_capacity(n);
    for l in labels {
        lang.append_option(l.lang.as_deref());
        score.append_option(l.lang_score);
        repairs.append_value(l.encoding_repairs);
        changed.append_value(l.preprocess_changed);
        ppl.append_option(l.ppl);
    }
    arrays.push(Arc::new(lang.finish()));
    arrays.push(Arc::new(score.finish()));
    arrays.push(Arc::new(repairs.finish()));
    arrays.push(Arc::new(changed.finish()));
    arrays.push(Arc::new(ppl.finish()));
    for (k, s) in SIGNALS.iter().enumerate() {
        match s.kind {
            SignalKind::Count => {
                let mut b = UInt32Builder::with_capacity(n);
                labels
                    .iter()
                    .for_each(|l| b.append_value(l.signals[k] as u32));
                arrays.push(Arc::new(b.finish()));
            }
            SignalKind::Ratio => {
                let mut b = Float32Builder::with_capacity(n);
                labels.iter().for_each(|l| b.append_value(l.signals[k]));
                arrays.push(Arc::new(b.finish()));
            }
        }
    }
    let mut flags = UInt64Builder::with_capacity(n);
    labels.iter().for_each(|l| flags.append_value(l.rule_flags));
    arrays.push(Arc::new(flags.finish()));
    arrays
}
