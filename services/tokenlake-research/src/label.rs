//! `tokenlake similarity`: every document of the latest version scored against a target set,
//! committed as three label columns in one new version (or nothing, on error or interrupt).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::Serialize;
use tokenlake_lake::{CommitProperties, Lake, LakeError};
use tokenlake_schemas::columns;

use crate::similarity::{CONTAMINATION_N, NgramOverlap, SimilarityModel};

#[derive(Debug, thiserror::Error)]
pub enum SimilarityError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Targets(#[from] crate::targets::TargetError),
    #[error("{0}")]
    Invalid(String),
    #[error("interrupted: nothing was committed")]
    Interrupted,
}

/// The label columns a similarity run named `name` writes.
pub struct SimilarityColumns {
    /// f32: the model's score against the nearest target.
    pub score: String,
    /// u32: distinct 13-grams shared with the targets.
    pub overlap: String,
    /// bool: at least one shared 13-gram.
    pub contaminated: String,
}

impl SimilarityColumns {
    /// Refuses names that would not be plain SQL identifiers.
    pub fn for_name(name: &str) -> Result<SimilarityColumns, SimilarityError> {
        let ok = !name.is_empty()
            && name.len() <= 48
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(SimilarityError::Invalid(format!(
                "target set name {name:?} must be lowercase letters, digits and underscores, \
                 starting with a letter (it names the columns sim_NAME, ngram{CONTAMINATION_N}_NAME \
                 and contaminated_NAME)"
            )));
        }
        Ok(SimilarityColumns {
            score: format!("sim_{name}"),
            overlap: format!("ngram{CONTAMINATION_N}_{name}"),
            contaminated: format!("contaminated_{name}"),
        })
    }
}

pub struct SimilarityOptions {
    pub name: String,
    /// Where the targets came from, recorded with the commit.
    pub target_files: Vec<String>,
    pub targets: Vec<String>,
    pub model: Arc<dyn SimilarityModel>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimilaritySummary {
    pub version: u64,
    pub targets: u64,
    pub documents: u64,
    pub contaminated: u64,
    pub columns: Vec<String>,
    pub model: String,
    /// Highest scores, for a first look: (doc_id, score, shared 13-grams).
    pub top: Vec<(u64, f32, u32)>,
    pub elapsed_secs: f64,
}

// Kept as one function: read targets, score every document, commit: one job whose cancel points sit
// between its steps.
pub async fn label_similarity(
    lake: &Lake,
    options: &SimilarityOptions,
    progress: &tokenlake_lake::Progress,
) -> Result<SimilaritySummary, SimilarityError> {
    let started = Instant::now();
    let names = SimilarityColumns::for_name(&options.name)?;
    if options.targets.is_empty() {
        return Err(SimilarityError::Invalid("the target set is empty".into()));
    }
    let overlap = NgramOverlap::new(&options.targets);
    // Documents stored without text are read through the lake's own tokenizer.
    let dataset = lake.checkout(&tokenlake_lake::VersionSpec::Latest).await?;
    let (_, mut missing) = lake
        .scan_version_stream(&dataset, &[columns::DOC_ID], Some("text IS NULL"))
        .await?;
    let tokenizer = match futures::StreamExt::next(&mut missing).await {
        Some(_) => {
            let json = lake.tokenizer_json().await?;
            Some(tokenizers::Tokenizer::from_bytes(&json).map_err(|e| {
                SimilarityError::Invalid(format!("the lake's tokenizer cannot be loaded: {e}"))
            })?)
        }
        None => None,
    };
    drop(missing);

    let (rows, mut batches) = lake
        .scan_version_stream(
            &dataset,
            &[columns::DOC_ID, columns::TEXT, columns::TOKENS],
            None,
        )
        .await?;
    progress.total.store(rows, Ordering::Relaxed);
    let (mut ids, mut scores, mut counts): (Vec<u64>, Vec<f32>, Vec<u32>) =
        (Vec::new(), Vec::new(), Vec::new());
    while let Some(batch) = futures::StreamExt::next(&mut batches).await {
        if progress.is_cancelled() {
            return Err(SimilarityError::Interrupted);
        }
        let batch = batch?;
        let texts = batch_texts(&batch, tokenizer.as_ref())?;
        let labelled: Vec<(f32, u32)> = texts
            .par_iter()
            .map(|t| (options.model.score(t), overlap.count(t)))
            .collect();
        ids.extend(batch.column(0).as_primitive::<UInt64Type>().values());
        for (s, c) in labelled {
            scores.push(s);
            counts.push(c);
        }
        progress
            .done
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
    }
    if progress.is_cancelled() {
        return Err(SimilarityError::Interrupted);
    }

    let contaminated: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns::DOC_ID, DataType::UInt64, false),
        Field::new(&names.score, DataType::Float32, true),
        Field::new(&names.overlap, DataType::UInt32, true),
        Field::new(&names.contaminated, DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(ids.clone())) as ArrayRef,
            Arc::new(Float32Array::from(scores.clone())),
            Arc::new(UInt32Array::from(counts.clone())),
            Arc::new(BooleanArray::from(contaminated.clone())),
        ],
    )
    .map_err(|e| SimilarityError::Invalid(format!("building the label batch: {e}")))?;
    let model = options.model.describe();
    let properties = CommitProperties::from([
        ("tokenlake.operation".to_string(), "similarity".to_string()),
        (
            "tokenlake.similarity.name".to_string(),
            options.name.clone(),
        ),
        (
            "tokenlake.similarity.targets".to_string(),
            options.target_files.join(","),
        ),
        (
            "tokenlake.similarity.target_count".to_string(),
            options.targets.len().to_string(),
        ),
        ("tokenlake.similarity.model".to_string(), model.clone()),
    ]);
    let import = lake.write_label_columns(batch, properties).await?;

    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(ids[a].cmp(&ids[b])));
    Ok(SimilaritySummary {
        version: import.version,
        targets: options.targets.len() as u64,
        documents: ids.len() as u64,
        contaminated: contaminated.iter().filter(|&&c| c).count() as u64,
        columns: vec![names.score, names.overlap, names.contaminated],
        model,
        top: order
            .into_iter()
            .take(10)
            .map(|i| (ids[i], scores[i], counts[i]))
            .collect(),
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// Each row's text, or its tokens decoded where no text was stored.
fn batch_texts(
    batch: &RecordBatch,
    tokenizer: Option<&tokenizers::Tokenizer>,
) -> Result<Vec<String>, SimilarityError> {
    let texts = batch.column(1).as_string::<i32>();
    let tokens = batch.column(2).as_list::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            if !texts.is_null(i) {
                return Ok(texts.value(i).to_string());
            }
            let ids = tokens.value(i);
            let ids: Vec<u32> = match ids.data_type() {
                DataType::UInt16 => ids
                    .as_primitive::<UInt16Type>()
                    .values()
                    .iter()
                    .map(|&t| u32::from(t))
                    .collect(),
                _ => ids.as_primitive::<UInt32Type>().values().to_vec(),
            };
            let tokenizer = tokenizer.expect("loaded when some text is missing");
            tokenizer
                .decode(&ids, true)
                .map_err(|e| SimilarityError::Invalid(format!("decoding tokens: {e}")))
        })
        .collect()
}
