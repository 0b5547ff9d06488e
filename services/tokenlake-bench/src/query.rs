//! Figures for `tokenlake bench query`: the label GROUP BY researchers run most (documents,
//! tokens and mean perplexity per source, language and quality tier, duplicates left out) over a
//! synthetic lake of a given size, next to reading the same columns with a plain Lance scan and
//! grouping them by hand (what the query would cost without a SQL engine).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{ListBuilder, UInt16Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt8Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray,
    UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use serde::Serialize;
use tokenlake_schemas::{DocumentsSchema, LakeSchemaInfo, SCHEMA_VERSION, TokenWidth, columns};

use tokenlake_lake::{Lake, LakeError, LakeLocation, Result, VersionSpec, plan_query, query_error};

/// The query measured: what `tokenlake query` users ask of curation labels first.
pub const GROUP_BY_SQL: &str = "SELECT source, lang, quality_tier, COUNT(*) AS docs, \
     SUM(n_tokens) AS tokens, AVG(ppl) AS mean_ppl FROM documents WHERE NOT is_dup \
     GROUP BY source, lang, quality_tier";

const SOURCES: [&str; 8] = [
    "web", "books", "code", "papers", "wiki", "forums", "news", "zh-web",
];
const LANGS: [&str; 6] = ["en", "zh", "code", "de", "fr", "ja"];
const BATCH_ROWS: usize = 65_536;

#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub rows: u64,
    /// Writing the synthetic lake (not part of the query; shown so the run explains itself).
    pub write_secs: f64,
    /// Best of the runs: a Lance scan of the query's columns, grouped by hand.
    pub scan_secs: f64,
    /// Best of the runs: planning and running [`GROUP_BY_SQL`] to its last row.
    pub query_secs: f64,
    /// Groups the query returned (the hand-grouped scan must find as many).
    pub groups: u64,
}

impl QueryFigures {
    pub fn query_over_scan(&self) -> f64 {
        self.query_secs / self.scan_secs
    }

    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.query_secs
    }
}

/// Writes a lake of `rows` documents with curation-like labels at `location` (one version).
/// Token lists are empty: the figures are about label columns, and `n_tokens` carries the
/// counts the query sums.
pub async fn write_synthetic_label_lake(location: &LakeLocation, rows: u64) -> Result<Lake> {
    let info = LakeSchemaInfo {
        schema_version: SCHEMA_VERSION,
        token_width: TokenWidth::U16,
        tokenizer_sha256: "0".repeat(64),
        vocab_size: 1 << 16,
    };
    let ingest = DocumentsSchema::ingest_schema(&info);
    let mut fields: Vec<Field> = ingest.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([
        Field::new(columns::PPL, DataType::Float32, true),
        Field::new(columns::QUALITY_TIER, DataType::UInt8, true),
        Field::new(columns::IS_DUP, DataType::Boolean, true),
    ]);
    let schema = Arc::new(Schema::new_with_metadata(fields, ingest.metadata().clone()));
    let batch_schema = schema.clone();
    let batches = (0..rows.div_ceil(BATCH_ROWS as u64)).map(move |b| {
        let start = b * BATCH_ROWS as u64;
        let n = (rows - start).min(BATCH_ROWS as u64) as usize;
        synthetic_batch(&batch_schema, start, n)
    });
    let reader = RecordBatchIterator::new(batches, schema);
    Lake::append(location, reader, Default::default()).await?;
    Lake::open(location).await
}

/// Rows `start..start + n`, the same for every run: a splitmix64 stream seeded by row number.
fn synthetic_batch(
    schema: &Arc<Schema>,
    start: u64,
    n: usize,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let mix = |row: u64, salt: u64| {
        let mut z = row
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let rows = start..start + n as u64;
    let doc_id = UInt64Array::from_iter_values(rows.clone().map(|r| mix(r, 1)));
    let source = StringArray::from_iter_values(
        rows.clone()
            .map(|r| SOURCES[(mix(r, 2) % SOURCES.len() as u64) as usize]),
    );
    let lang = StringArray::from_iter(
        rows.clone()
            .map(|r| Some(LANGS[(mix(r, 3) % LANGS.len() as u64) as usize])),
    );
    let no_text = StringArray::from(vec![None::<&str>; n]);
    let mut tokens = ListBuilder::new(UInt16Builder::new())
        .with_field(DocumentsSchema::token_item_field(TokenWidth::U16));
    for _ in 0..n {
        tokens.append(true);
    }
    let n_tokens = UInt32Array::from_iter_values(rows.clone().map(|r| (mix(r, 4) % 4096) as u32));
    let n_chars = UInt32Array::from_iter_values(n_tokens.values().iter().map(|t| t * 4));
    let ingest_id = StringArray::from_iter_values(rows.clone().map(|_| "ing-bench"));
    let input_path = StringArray::from_iter_values(rows.clone().map(|_| "synthetic"));
    let input_row = UInt64Array::from_iter_values(rows.clone());
    let ppl = Float32Array::from_iter_values(
        rows.clone()
            .map(|r| 10.0 + (mix(r, 5) % 100_000) as f32 / 100.0),
    );
    let tier = UInt8Array::from_iter_values(rows.clone().map(|r| (mix(r, 6) % 3) as u8));
    let is_dup = BooleanArray::from_iter(rows.map(|r| Some(mix(r, 7) % 10 == 0)));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(doc_id),
        Arc::new(source),
        Arc::new(lang),
        Arc::new(no_text.clone()),
        Arc::new(no_text),
        Arc::new(tokens.finish()),
        Arc::new(n_tokens),
        Arc::new(n_chars),
        Arc::new(ingest_id),
        Arc::new(input_path),
        Arc::new(input_row),
        Arc::new(ppl),
        Arc::new(tier),
        Arc::new(is_dup),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// Times [`GROUP_BY_SQL`] and the hand-grouped scan `runs` times each on `lake` and keeps the
/// best of each (the first run also warms the page cache for the other).
pub async fn measure_group_by(lake: &Lake, runs: usize, write_secs: f64) -> Result<QueryFigures> {
    let rows = lake.latest_rows().await?;
    let (mut scan_secs, mut query_secs) = (f64::INFINITY, f64::INFINITY);
    let (mut by_hand, mut by_query) = (Totals::default(), Totals::default());
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        by_hand = group_by_hand(lake).await?;
        scan_secs = scan_secs.min(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let frame = plan_query(lake, &VersionSpec::Latest, GROUP_BY_SQL).await?;
        let mut stream = frame.execute_stream().await.map_err(query_error)?;
        by_query = Totals::default();
        while let Some(batch) = stream.next().await {
            by_query.add_result(&batch.map_err(query_error)?);
        }
        query_secs = query_secs.min(started.elapsed().as_secs_f64());
    }
    // A figure for a wrong answer is worth nothing: both ways must agree.
    let means_agree = (by_hand.sum_of_means - by_query.sum_of_means).abs()
        <= 1e-6 * by_hand.sum_of_means.abs().max(1.0);
    if (by_hand.groups, by_hand.docs, by_hand.tokens)
        != (by_query.groups, by_query.docs, by_query.tokens)
        || !means_agree
    {
        return Err(LakeError::QueryEngine {
            message: format!(
                "the query and the hand-grouped scan disagree: {by_query:?} against {by_hand:?}"
            ),
        });
    }
    Ok(QueryFigures {
        rows,
        write_secs,
        scan_secs,
        query_secs,
        groups: by_query.groups,
    })
}

/// What both ways of grouping must agree on.
#[derive(Debug, Default)]
struct Totals {
    groups: u64,
    docs: u64,
    tokens: u64,
    /// Summed over groups, so every group's mean counts.
    sum_of_means: f64,
}

impl Totals {
    /// Adds rows of [`GROUP_BY_SQL`]'s result (columns 3..6: docs, tokens, mean_ppl).
    fn add_result(&mut self, batch: &RecordBatch) {
        let docs = batch.column(3).as_primitive::<Int64Type>();
        let tokens = batch.column(4).as_primitive::<UInt64Type>();
        let means = batch.column(5).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            self.groups += 1;
            self.docs += docs.value(i) as u64;
            self.tokens += tokens.value(i);
            self.sum_of_means += means.value(i);
        }
    }
}

/// The baseline: the query's columns read with a Lance scan, grouped in a hash map.
async fn group_by_hand(lake: &Lake) -> Result<Totals> {
    #[derive(Default)]
    struct Group {
        docs: u64,
        tokens: u64,
        ppl_sum: f64,
    }
    let mut groups: HashMap<(String, String, Option<u8>), Group> = HashMap::new();
    let wanted = [
        columns::SOURCE,
        columns::LANG,
        columns::QUALITY_TIER,
        columns::IS_DUP,
        columns::N_TOKENS,
        columns::PPL,
    ];
    lake.scan_latest(&wanted, |batch| {
        let source = batch.column(0).as_string::<i32>();
        let lang = batch.column(1).as_string::<i32>();
        let tier = batch.column(2).as_primitive::<UInt8Type>();
        let is_dup = batch.column(3).as_boolean();
        let tokens = batch.column(4).as_primitive::<UInt32Type>();
        let ppl = batch.column(5).as_primitive::<Float32Type>();
        // Per batch on borrowed keys, then merged: one String pair per group, not per row.
        let mut local: HashMap<(&str, &str, Option<u8>), Group> = HashMap::new();
        for i in 0..batch.num_rows() {
            if is_dup.is_null(i) || is_dup.value(i) {
                continue;
            }
            let key = (
                source.value(i),
                if lang.is_null(i) { "" } else { lang.value(i) },
                (!tier.is_null(i)).then(|| tier.value(i)),
            );
            let g = local.entry(key).or_default();
            g.docs += 1;
            g.tokens += u64::from(tokens.value(i));
            g.ppl_sum += f64::from(ppl.value(i));
        }
        for ((s, l, t), g) in local {
            let total = groups.entry((s.to_string(), l.to_string(), t)).or_default();
            total.docs += g.docs;
            total.tokens += g.tokens;
            total.ppl_sum += g.ppl_sum;
        }
        Ok(())
    })
    .await?;
    let mut totals = Totals::default();
    for g in groups.values() {
        totals.groups += 1;
        totals.docs += g.docs;
        totals.tokens += g.tokens;
        totals.sum_of_means += g.ppl_sum / g.docs as f64;
    }
    Ok(totals)
}
