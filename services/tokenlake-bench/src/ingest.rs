//! Stage-by-stage ingest throughput, so a full ingest can be reported against baselines
//! measured in the same run: reading and parsing alone, then reading, parsing and tokenizing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use tokenlake_ingest::{IngestProgress, LakeTokenizer, Result, for_each_text};

/// Throughput of one stage over the same inputs.
#[derive(Debug, Clone, Serialize)]
pub struct StageFigures {
    pub stage: String,
    pub docs: u64,
    pub tokens: u64,
    pub input_bytes: u64,
    pub secs: f64,
}

impl StageFigures {
    pub fn docs_per_sec(&self) -> f64 {
        self.docs as f64 / self.secs.max(1e-9)
    }

    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.secs.max(1e-9)
    }
}

/// Decompresses and parses every input, keeping nothing: the floor under any ingest.
pub fn measure_read(inputs: &[PathBuf], text_field: &str) -> Result<StageFigures> {
    run_stage("read + parse", inputs, text_field, None)
}

/// Reads, parses and tokenizes every input in chunks of 1,024 documents on all cores, as the
/// ingest does, without writing anything.
pub fn measure_tokenize(
    inputs: &[PathBuf],
    text_field: &str,
    tokenizer: &LakeTokenizer,
) -> Result<StageFigures> {
    run_stage(
        "read + parse + tokenize",
        inputs,
        text_field,
        Some(tokenizer),
    )
}

fn run_stage(
    name: &str,
    inputs: &[PathBuf],
    text_field: &str,
    tokenizer: Option<&LakeTokenizer>,
) -> Result<StageFigures> {
    let started = Instant::now();
    let progress = Arc::new(IngestProgress::default());
    let (mut docs, mut tokens) = (0u64, 0u64);
    let mut chunk: Vec<String> = Vec::with_capacity(1024);
    let mut flush = |chunk: &mut Vec<String>| {
        if let Some(tok) = tokenizer {
            tokens += chunk
                .par_iter()
                .map(|t| tok.encode(t).map_or(0, |ids| ids.len() as u64))
                .sum::<u64>();
        }
        chunk.clear();
    };
    for_each_text(inputs, text_field, &progress, &mut |text| {
        docs += 1;
        chunk.push(text);
        if chunk.len() == 1024 {
            flush(&mut chunk);
        }
    })?;
    flush(&mut chunk);
    Ok(StageFigures {
        stage: name.to_string(),
        docs,
        tokens,
        input_bytes: IngestProgress::get(&progress.input_bytes_read),
        secs: started.elapsed().as_secs_f64(),
    })
}
