//! Curation's part of a sharded ingest: each shard labels the documents it writes (the
//! per-document labels and the dedup fingerprint need nothing but the document), and the commit
//! runs the steps that need every document: it drops rows that repeat a document an earlier
//! shard wrote, adds the fingerprints to the de-duplication index in row order, computes the
//! population labels (quality tiers, duplicate clusters) over the whole lake, and publishes the
//! documents and all label columns as one version. The result equals a single ingest of the
//! same inputs followed by `tokenlake curate`, in one version instead of two.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, StringBuilder, UInt8Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt8Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::Serialize;
use tokenlake_ingest::ShardLabeller;
use tokenlake_lake::{
    CommitProperties, Lake, LakeError, LakeLocation, Progress, ShardCommit, ShardLabels,
    VersionSpec,
};
use tokenlake_schemas::columns;

use crate::config::Pipeline;
use crate::curate::label_columns::{PPL, QUALITY_TIER, RULE_FLAGS};
use crate::curate::{
    CurateError, build_batch, label_schema, per_document_columns, per_document_fields,
    stored_labels,
};
use crate::curate::{DedupOptions, update_index};
use crate::dedup::Fingerprint;
use crate::dedup::pipeline::RowLabel;
use crate::dedup_store::LakeDedupIndex;
use crate::labeler::{DocLabels, Labeler, quality_tiers_by};
use crate::state::CurationState;

/// The shard documents file's column holding each row's encoded fingerprint.
const FINGERPRINT: &str = "fingerprint";

/// Labels a shard's rows with a curation pipeline (see [`ShardLabeller`]).
pub struct PipelineLabeller {
    pipeline: Arc<Pipeline>,
}

impl PipelineLabeller {
    pub fn new(pipeline: Pipeline) -> PipelineLabeller {
        PipelineLabeller {
            pipeline: Arc::new(pipeline),
        }
    }
}

impl ShardLabeller for PipelineLabeller {
    fn label(&self, batch: RecordBatch) -> Result<(RecordBatch, RecordBatch), String> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("the batch has no {name} column"))
        };
        let ids = column(columns::DOC_ID)?
            .as_primitive::<UInt64Type>()
            .clone();
        let urls = column(columns::URL)?.as_string::<i32>().clone();
        let texts = column(columns::TEXT)?.as_string::<i32>().clone();
        let langs = column(columns::LANG)?.as_string::<i32>().clone();
        if let Some(i) = (0..batch.num_rows()).find(|&i| texts.is_null(i)) {
            return Err(format!(
                "document {} has no text (--keep-text false): a labelled shard reads the texts",
                ids.value(i)
            ));
        }
        let pipeline = &*self.pipeline;
        // As `curate` labels a document it reads for the first time: the input's language is
        // kept, the detector decides the others.
        let results: Vec<(DocLabels, Option<Fingerprint>)> = (0..batch.num_rows())
            .into_par_iter()
            .map_init(
                || Labeler::new(pipeline),
                |labeler, i| {
                    let declared = (!langs.is_null(i)).then(|| langs.value(i));
                    let url = (!urls.is_null(i))
                        .then(|| urls.value(i))
                        .filter(|u| !u.is_empty());
                    labeler.label(declared, url, texts.value(i), true)
                },
            )
            .collect();
        let mut fingerprints = BinaryBuilder::new();
        let mut bytes = Vec::new();
        let mut labels = Vec::with_capacity(results.len());
        for (l, f) in results {
            bytes.clear();
            f.expect("asked for").encode(&mut bytes);
            fingerprints.append_value(&bytes);
            labels.push(l);
        }
        let mut side = per_document_columns(&labels);
        side.push(Arc::new(fingerprints.finish()));
        let side = RecordBatch::try_new(self.side_schema(), side).map_err(|e| e.to_string())?;
        // The stored `lang` is the labelled one, as `curate` rewrites it.
        let lang: ArrayRef = Arc::new(StringArray::from_iter(
            labels.iter().map(|l| l.lang.as_deref()),
        ));
        let at = batch
            .schema()
            .index_of(columns::LANG)
            .map_err(|e| e.to_string())?;
        let mut written = batch.columns().to_vec();
        written[at] = lang;
        let batch = RecordBatch::try_new(batch.schema(), written).map_err(|e| e.to_string())?;
        Ok((batch, side))
    }

    fn side_schema(&self) -> Arc<Schema> {
        let mut fields = per_document_fields();
        fields.push(Field::new(FINGERPRINT, DataType::Binary, false));
        Arc::new(Schema::new(fields))
    }

    fn fingerprint(&self) -> String {
        self.pipeline.fingerprint.clone()
    }
}

/// How a commit de-duplicates (see [`crate::dedup_store`]).
#[derive(Debug, Clone, Default)]
pub struct CommitDedup {
    pub options: DedupOptions,
    /// A remote lake's index working directory, on a filesystem the candidate tasks reach.
    pub work: Option<std::path::PathBuf>,
    /// Write the set's de-duplication keys and stop: `tokenlake dedup candidates` runs the
    /// partitions' tasks next (anywhere that reaches the index), then the commit, which runs
    /// any task still missing itself.
    pub prepare_only: bool,
}

/// What `tokenlake commit` did.
#[derive(Debug, Clone, Serialize)]
pub struct ShardCommitSummary {
    pub lake: String,
    pub set: String,
    pub shards: u32,
    pub version: u64,
    pub previous_version: Option<u64>,
    /// Rows the shards wrote, and those of them that repeat a document an earlier shard wrote
    /// (deleted in the version, as a single ingest would not have written them).
    pub rows_written: u64,
    pub repeats_deleted: u64,
    pub docs_added: u64,
    pub docs_read: u64,
    pub docs_already_present: u64,
    pub docs_rejected: u64,
    pub ingest_ids: Vec<String>,
    /// With labels: the pipeline, the duplicates and clusters over the whole lake.
    pub pipeline: Option<String>,
    pub duplicates: Option<u64>,
    pub clusters_with_copies: Option<u64>,
    /// Only the de-duplication keys were written (`prepare_only`); nothing was committed.
    pub prepared_only: bool,
    /// Where the de-duplication index was updated, and its partitions' candidate tasks that
    /// this process ran (the others ran before, elsewhere).
    pub dedup_index: Option<String>,
    pub dedup_tasks_run: Option<u32>,
    /// Documents already in the lake whose population labels (tier, duplicate cluster) the
    /// new documents changed: the only lake rows the commit rewrites.
    pub lake_docs_relabelled: Option<u64>,
    pub elapsed_secs: f64,
}

/// One shard's rows, read back from its documents file.
struct ShardRows {
    doc_ids: Vec<u64>,
    labels: Vec<DocLabels>,
    fingerprints: Vec<Fingerprint>,
}

fn refuse(location: &LakeLocation, set: &str, reason: impl Into<String>) -> CurateError {
    CurateError::Lake(LakeError::Shards {
        lake: location.to_string(),
        set: set.to_string(),
        reason: reason.into(),
    })
}

/// Publishes the shard set `set` of `location` as one version (see the module doc), with the
/// labels that need the whole population (duplicate clusters across shards, quality tiers);
/// the lake's `Lake::commit_shards` writes it. Shards
/// that labelled their documents need `pipeline` to be the one they labelled with. Nothing is
/// committed when a shard is missing, the shards disagree, or the lake moved since they ran,
/// or when `progress` is cancelled before the commit.
// Kept as one function: load the shards, check them against each other, then label across shards
// and commit: one sequence whose refusals must all come before anything is written.
pub async fn label_and_commit_shards(
    location: &LakeLocation,
    set: &str,
    pipeline: &Pipeline,
    dedup: &CommitDedup,
    progress: &Progress,
) -> Result<ShardCommitSummary, CurateError> {
    let started = Instant::now();
    let shard_set = Lake::load_shard_set(location, set).await?;
    progress.start("reading the shards", shard_set.shards.len() as u64);
    let first = &shard_set.shards[0];
    let labelled = first.pipeline.clone();
    if dedup.prepare_only && labelled.is_none() {
        return Err(refuse(
            location,
            set,
            "the shards were written without labels (no --pipeline), so there is nothing to de-duplicate; commit them",
        ));
    }
    if let Some(fp) = &labelled
        && *fp != pipeline.fingerprint
    {
        return Err(refuse(
            location,
            set,
            format!(
                "the shards labelled with pipeline {fp}, not with the given {}; commit with the pipeline the shards ran with",
                pipeline.fingerprint
            ),
        ));
    }

    // Every shard's rows, and which of them repeat an earlier shard's.
    let mut fragments = Vec::new();
    let mut deleted_rows: Vec<Vec<u32>> = Vec::new();
    let mut shards: Vec<ShardRows> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut repeats = 0u64;
    for manifest in &shard_set.shards {
        let batches = Lake::read_shard_documents(location, manifest).await?;
        let mut rows = ShardRows {
            doc_ids: Vec::new(),
            labels: Vec::new(),
            fingerprints: Vec::new(),
        };
        for batch in &batches {
            rows.doc_ids
                .extend(batch.column(0).as_primitive::<UInt64Type>().values());
            if labelled.is_some() {
                stored_labels(batch, 1, &mut rows.labels);
                let prints = batch
                    .column_by_name(FINGERPRINT)
                    .ok_or_else(|| refuse(location, set, "a labelled shard without fingerprints"))?
                    .as_binary::<i32>();
                for i in 0..prints.len() {
                    let mut bytes = prints.value(i);
                    let f = Fingerprint::decode(&mut bytes).ok_or_else(|| {
                        refuse(
                            location,
                            set,
                            format!("shard {}: a damaged fingerprint", manifest.index),
                        )
                    })?;
                    rows.fingerprints.push(f);
                }
            }
        }
        let physical: usize = manifest
            .fragments
            .iter()
            .map(|f| f.physical_rows.unwrap_or_default())
            .sum();
        if physical != rows.doc_ids.len() {
            return Err(refuse(
                location,
                set,
                format!(
                    "shard {} wrote {physical} rows but its documents file lists {}; run it again",
                    manifest.index,
                    rows.doc_ids.len()
                ),
            ));
        }
        let mut at = 0usize;
        for fragment in &manifest.fragments {
            let n = fragment.physical_rows.unwrap_or_default();
            let mut deleted = Vec::new();
            for (offset, id) in rows.doc_ids[at..at + n].iter().enumerate() {
                if !seen.insert(*id) {
                    deleted.push(offset as u32);
                }
            }
            repeats += deleted.len() as u64;
            deleted_rows.push(deleted);
            fragments.push(fragment.clone());
            at += n;
        }
        shards.push(rows);
        progress.add(1);
        if progress.is_cancelled() {
            return Err(CurateError::Interrupted);
        }
    }
    progress.start("labelling across shards and committing", 0);
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }

    let lake = Lake::open_if_exists(location).await?;
    let previous_version = lake.as_ref().map(Lake::latest_version);
    let mut summary = ShardCommitSummary {
        lake: location.to_string(),
        set: set.to_string(),
        shards: first.count,
        version: 0,
        previous_version,
        rows_written: shards.iter().map(|s| s.doc_ids.len() as u64).sum(),
        repeats_deleted: repeats,
        docs_added: 0,
        docs_read: shard_set.shards.iter().map(|s| s.docs_read).sum(),
        docs_already_present: shard_set
            .shards
            .iter()
            .map(|s| s.docs_already_present)
            .sum::<u64>()
            + repeats,
        docs_rejected: shard_set.shards.iter().map(|s| s.docs_rejected).sum(),
        ingest_ids: shard_set
            .shards
            .iter()
            .map(|s| s.ingest_id.clone())
            .collect(),
        pipeline: labelled.clone(),
        duplicates: None,
        clusters_with_copies: None,
        prepared_only: false,
        dedup_index: None,
        dedup_tasks_run: None,
        lake_docs_relabelled: None,
        elapsed_secs: 0.0,
    };
    summary.docs_added = summary.rows_written - repeats;
    let inputs: Vec<String> = shard_set
        .shards
        .iter()
        .flat_map(|s| s.inputs.iter().cloned())
        .collect();
    let mut properties = CommitProperties::from([
        ("tokenlake.operation".into(), "sharded-ingest".into()),
        ("tokenlake.shard_set".into(), set.to_string()),
        ("tokenlake.shards".into(), first.count.to_string()),
        ("tokenlake.ingest_ids".into(), summary.ingest_ids.join("\n")),
        ("tokenlake.inputs".into(), inputs.join("\n")),
        (
            "tokenlake.tokenizer_sha256".into(),
            first.schema.tokenizer_sha256.clone(),
        ),
    ]);

    let labels = match &labelled {
        None => None,
        Some(_) => {
            let fragment_rows: Vec<usize> = fragments
                .iter()
                .map(|f| f.physical_rows.unwrap_or_default())
                .collect();
            let rows = SetRows {
                shards: &shards,
                fragment_rows: &fragment_rows,
                deleted_rows: &deleted_rows,
            };
            let population = population_labels(
                location,
                set,
                lake.as_ref(),
                pipeline,
                dedup,
                progress,
                rows,
            )
            .await?;
            let Population::Labelled(labelled) = population else {
                summary.prepared_only = true;
                summary.elapsed_secs = started.elapsed().as_secs_f64();
                return Ok(summary);
            };
            let Labelled {
                labels,
                state_name,
                duplicates,
                clusters,
                index,
                tasks_run,
            } = *labelled;
            summary.dedup_index = Some(index.index().dir().display().to_string());
            summary.dedup_tasks_run = Some(tasks_run);
            summary.lake_docs_relabelled = Some(labels.old.num_rows() as u64);
            summary.duplicates = Some(duplicates);
            summary.clusters_with_copies = Some(clusters);
            properties.insert("tokenlake.pipeline".into(), pipeline.fingerprint.clone());
            let (key, rules) = crate::config::rules_property(&pipeline.config.rules);
            properties.insert(key, rules);
            properties.insert("tokenlake.curation_state".into(), state_name.clone());
            Some((labels, state_name, index))
        }
    };
    let (labels, index) = match labels {
        Some((labels, state, index)) => (Some(labels), Some((state, index))),
        None => (None, None),
    };
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    summary.version = Lake::commit_shards(
        location,
        ShardCommit {
            set: set.to_string(),
            base_version: first.base_version,
            schema: first.schema.clone(),
            fragments,
            deleted_rows,
            labels,
            properties,
        },
    )
    .await?;
    // The index after the version (see `curate`); failing here costs the next curation a
    // new index, never a wrong label, so the committed version is still reported.
    if let Some((state, mut index)) = index
        && let Err(e) = index.commit(&state).await
    {
        tracing::warn!(error = %e, set, "could not commit the de-duplication index; the next curation rebuilds it");
    }
    // Committed: the set's files have done their work (a failure here leaves them, and a
    // second commit then refuses, since the lake has moved).
    if let Err(e) = Lake::remove_shard_set(location, set).await {
        tracing::warn!(error = %e, set, "could not remove the committed shard set's files");
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What [`population_labels`] made: the labels, or (when only preparing) nothing yet.
enum Population {
    Prepared,
    Labelled(Box<Labelled>),
}

struct Labelled {
    labels: ShardLabels,
    state_name: String,
    duplicates: u64,
    clusters: u64,
    index: LakeDedupIndex,
    tasks_run: u32,
}

/// The shard set's rows: each shard's, each fragment's count, and the rows of each fragment
/// that repeat an earlier shard's document.
struct SetRows<'a> {
    shards: &'a [ShardRows],
    fragment_rows: &'a [usize],
    deleted_rows: &'a [Vec<u32>],
}

/// The label columns of the lake after the commit: the lake's documents (curated before with
/// this pipeline, whose stored labels and index are reused) and the shards' kept rows, with
/// tiers and duplicate clusters over all of them. The new rows get every label column; the
/// lake's rows only the population labels that changed (`quality_tier` and the duplicate
/// columns), so of them the commit holds what the population labels need: doc_id, language,
/// perplexity and tier, about 20 bytes a document. Saves the curation state the version will
/// name; returns the labels, the state's name, and the duplicates and clusters with copies.
// Kept as one function: tiers and duplicate clusters across shards are computed from the same row
// order in one pass.
async fn population_labels(
    location: &LakeLocation,
    set: &str,
    lake: Option<&Lake>,
    pipeline: &Pipeline,
    dedup: &CommitDedup,
    progress: &Progress,
    rows: SetRows<'_>,
) -> Result<Population, CurateError> {
    let SetRows {
        shards,
        fragment_rows,
        deleted_rows,
    } = rows;
    let mut doc_ids: Vec<u64> = Vec::new();
    // Per document: its language (an index into `lang_names`), perplexity and stored tier.
    let mut langs: Vec<Option<u16>> = Vec::new();
    let mut lang_names: Vec<String> = Vec::new();
    let mut lang_of: HashMap<String, u16> = HashMap::new();
    let mut intern = |lang: Option<&str>| -> Result<Option<u16>, CurateError> {
        let Some(lang) = lang else { return Ok(None) };
        if let Some(&i) = lang_of.get(lang) {
            return Ok(Some(i));
        }
        let i = u16::try_from(lang_names.len())
            .map_err(|_| refuse(location, set, "more than 65,535 languages"))?;
        lang_names.push(lang.to_string());
        lang_of.insert(lang.to_string(), i);
        Ok(Some(i))
    };
    let mut ppls: Vec<Option<f32>> = Vec::new();
    let mut stored_tiers: Vec<Option<u8>> = Vec::new();
    let mut index =
        LakeDedupIndex::open(location, dedup.work.as_deref(), dedup.options.partitions).await?;
    if let Some(lake) = lake {
        let dataset = lake.checkout(&VersionSpec::Latest).await?;
        let has_flags = dataset.schema().field(RULE_FLAGS).is_some();
        let mut first_pass = vec![columns::DOC_ID];
        if has_flags {
            first_pass.push(RULE_FLAGS);
        }
        let mut curated = true;
        lake.scan_version(&dataset, &first_pass, None, |batch| {
            doc_ids.extend(batch.column(0).as_primitive::<UInt64Type>().values());
            curated &= batch.columns().get(1).is_some_and(|f| f.null_count() == 0);
            Ok(())
        })
        .await?;
        let state = CurationState::load_prefix(lake, index.index().tag(), &doc_ids)
            .await?
            .filter(|s| {
                s.doc_ids.len() == doc_ids.len()
                    && index.index().covered() == doc_ids.len() as u64
                    && s.pipeline == pipeline.fingerprint
            });
        match state {
            Some(_) if curated => {}
            _ if doc_ids.is_empty() => index.reset()?,
            _ => {
                return Err(refuse(
                    location,
                    set,
                    format!(
                        "the lake's {} documents are not all curated with pipeline {}; run `tokenlake curate {location}` with it first, then commit",
                        doc_ids.len(),
                        pipeline.fingerprint
                    ),
                ));
            }
        }
        // Preparing writes only the set's keys: the lake's labels are for the commit.
        if !doc_ids.is_empty() && !dedup.prepare_only {
            let scan = [columns::DOC_ID, columns::LANG, PPL, QUALITY_TIER];
            let mut failed = None;
            lake.scan_version(&dataset, &scan, None, |batch| {
                let lang = batch.column(1).as_string::<i32>();
                let ppl = batch.column(2).as_primitive::<Float32Type>();
                let tier = batch.column(3).as_primitive::<UInt8Type>();
                for i in 0..batch.num_rows() {
                    match intern((!lang.is_null(i)).then(|| lang.value(i))) {
                        Ok(l) => langs.push(l),
                        Err(e) => failed = Some(e),
                    }
                    ppls.push((!ppl.is_null(i)).then(|| ppl.value(i)));
                    stored_tiers.push((!tier.is_null(i)).then(|| tier.value(i)));
                }
                Ok(())
            })
            .await?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if !dedup.prepare_only && langs.len() != doc_ids.len() {
            return Err(refuse(
                location,
                set,
                format!(
                    "read {} stored labels for the lake's {} documents",
                    langs.len(),
                    doc_ids.len()
                ),
            ));
        }
    }
    if lake.is_none() && index.index().covered() > 0 {
        index.reset()?;
    }
    let old = doc_ids.len();

    // The shards' kept rows, in row order, into the labels (and the index's keys, unless a
    // prepared commit wrote them already); every row (kept or a repeat) remembers the row of
    // the new rows' label batch that holds its document.
    let kept = shards.iter().map(|s| s.doc_ids.len()).sum::<usize>()
        - deleted_rows.iter().map(Vec::len).sum::<usize>();
    let writer = format!("commit-{set}");
    let prepared = index.index().pending().is_ok_and(|(pending, _)| {
        matches!(&pending[..], [w] if w.writer == writer && w.first_row == old as u64 && w.rows == kept as u64)
    });
    let mut keys = if prepared {
        None
    } else {
        index.discard_pending()?;
        Some(
            index
                .index()
                .writer(&writer, old as u64)
                .map_err(|e| index.io_error(e))?,
        )
    };
    let mut labels: Vec<DocLabels> = Vec::with_capacity(kept);
    let mut row_of: HashMap<u64, u32> = HashMap::new();
    let mut all_rows: Vec<u64> = Vec::new();
    let mut deleted = deleted_rows.iter().zip(fragment_rows).flat_map(|(d, &n)| {
        let mut flags = vec![false; n];
        d.iter().for_each(|&r| flags[r as usize] = true);
        flags
    });
    for shard in shards {
        for (i, &id) in shard.doc_ids.iter().enumerate() {
            all_rows.push(id);
            if deleted.next().unwrap_or(false) {
                continue;
            }
            row_of.insert(id, (doc_ids.len() - old) as u32);
            doc_ids.push(id);
            // Preparing writes only keys: the labels are for the commit.
            if !dedup.prepare_only {
                let label = &shard.labels[i];
                langs.push(intern(label.lang.as_deref())?);
                ppls.push(label.ppl);
                labels.push(label.clone());
            }
            if let Some(keys) = &mut keys {
                keys.add(&shard.fingerprints[i])
                    .map_err(|e| index.io_error(e))?;
            }
        }
    }
    if let Some(keys) = keys {
        keys.finish().map_err(|e| index.io_error(e))?;
    }
    if dedup.prepare_only {
        return Ok(Population::Prepared);
    }
    let tiers = quality_tiers_by(|i| langs[i], &ppls, pipeline.config.perplexity.tiers);
    drop((langs, ppls));

    // Duplicate labels: every new row's, and the lake rows' whose cluster or tier changed.
    let mut duplicates = 0u64;
    let mut keepers = vec![0u8; doc_ids.len().div_ceil(8)];
    let mut new_dup: Vec<RowLabel> = Vec::with_capacity(kept);
    let mut changed_old: Vec<(u64, RowLabel)> = Vec::new();
    let tasks_run = update_index(&index, &dedup.options, progress, |row, label, changed| {
        if label.is_dup(row) {
            duplicates += 1;
            keepers[label.keeper as usize / 8] |= 1 << (label.keeper % 8);
        }
        let r = row as usize;
        if r >= old {
            new_dup.push(label);
        } else if changed || tiers[r] != stored_tiers[r] {
            changed_old.push((row, label));
        }
    })?;
    let clusters = keepers.iter().map(|b| u64::from(b.count_ones())).sum();
    let batch = build_batch(
        &doc_ids[old..],
        old as u64,
        &doc_ids,
        &labels,
        &tiers[old..],
        &new_dup,
    )?;
    let mut new = Vec::with_capacity(fragment_rows.len());
    let mut at = 0usize;
    for &n in fragment_rows {
        let rows: UInt32Array = all_rows[at..at + n].iter().map(|id| row_of[id]).collect();
        new.push(arrow_select::take::take_record_batch(&batch, &rows)?);
        at += n;
    }
    let old_labels = if old == 0 {
        // A new (or empty) lake: the label columns come with the new fragments; the schema of
        // all of them is what the commit adds.
        batch.slice(0, 0)
    } else {
        population_changes(&doc_ids, &tiers, &changed_old)?
    };
    let state = CurationState {
        doc_ids,
        pipeline: pipeline.fingerprint.clone(),
    };
    let state_name = state.save(location).await?;
    Ok(Population::Labelled(Box::new(Labelled {
        labels: ShardLabels {
            old: old_labels,
            new,
        },
        state_name,
        duplicates,
        clusters,
        index,
        tasks_run,
    })))
}

/// The population label columns (`quality_tier` and the duplicate columns) of the lake rows
/// in `changed`, with their doc_ids first: all that a commit rewrites of the rows it did not
/// add.
fn population_changes(
    doc_ids: &[u64],
    tiers: &[Option<u8>],
    changed: &[(u64, RowLabel)],
) -> Result<RecordBatch, CurateError> {
    let schema = label_schema();
    let names = [
        columns::DOC_ID,
        QUALITY_TIER,
        columns::DUP_CLUSTER,
        columns::IS_DUP,
        columns::DUP_KIND,
    ];
    let fields: Vec<Field> = names
        .iter()
        .map(|n| schema.field_with_name(n).cloned())
        .collect::<Result<_, _>>()?;
    let n = changed.len();
    let mut ids = UInt64Builder::with_capacity(n);
    let mut tier = UInt8Builder::with_capacity(n);
    let mut cluster = UInt64Builder::with_capacity(n);
    let mut is_dup = BooleanBuilder::with_capacity(n);
    let mut kind = StringBuilder::with_capacity(n, n);
    for &(row, label) in changed {
        ids.append_value(doc_ids[row as usize]);
        tier.append_option(tiers[row as usize]);
        cluster.append_value(doc_ids[label.keeper as usize]);
        is_dup.append_value(label.is_dup(row));
        kind.append_option(label.kind.map(|k| k.name()));
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(tier.finish()),
        Arc::new(cluster.finish()),
        Arc::new(is_dup.finish()),
        Arc::new(kind.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}
