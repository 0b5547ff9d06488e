//! `tokenlake bench ingest`: figures for the ingest path, each stage against reading alone.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use tokenlake_ingest::bench::{StageFigures, measure_read, measure_tokenize};
use tokenlake_ingest::{IngestOptions, IngestProgress, LakeTokenizer};
use tokenlake_lake::LakeLocation;

use crate::cli::BenchIngestArgs;
use crate::output::{print_json, table};
use crate::progress::human;

#[derive(Serialize)]
struct BenchReport {
    stages: Vec<StageFigures>,
    /// Each stage's docs/s divided by the read + parse stage's.
    relative_to_read: Vec<f64>,
}

pub async fn ingest(args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("tokenlake-bench-{}", std::process::id()));
    let inputs = args.inputs.clone();
    let text_field = args.text_field.clone();
    let tokenizer_path = args.tokenizer.clone();
    let (read, tokenize) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        eprintln!("bench: read + parse ...");
        let read = measure_read(&inputs, &text_field)?;
        eprintln!("bench: read + parse + tokenize ...");
        let tokenizer = LakeTokenizer::load(&tokenizer_path)?;
        let tokenize = measure_tokenize(&inputs, &text_field, &tokenizer)?;
        Ok((read, tokenize))
    })
    .await??;

    eprintln!("bench: full ingest into a scratch lake ...");
    let mut options = IngestOptions::new(
        LakeLocation::parse(&scratch.to_string_lossy())?,
        args.inputs,
        "bench",
        args.tokenizer,
    );
    options.text_field = args.text_field;
    let summary = tokenlake_ingest::ingest(
        options,
        Arc::new(IngestProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let summary = summary?;
    let full = StageFigures {
        stage: "full ingest (one Lance version)".into(),
        docs: summary.docs_read,
        tokens: summary.tokens_written,
        input_bytes: summary.input_bytes,
        secs: summary.elapsed_secs,
    };
    let stages = vec![read, tokenize, full];
    let base = stages[0].docs_per_sec();
    let report = BenchReport {
        relative_to_read: stages.iter().map(|s| s.docs_per_sec() / base).collect(),
        stages,
    };
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = report
        .stages
        .iter()
        .zip(&report.relative_to_read)
        .map(|(s, r)| {
            vec![
                s.stage.clone(),
                format!("{:.0}", s.docs_per_sec()),
                human(s.tokens_per_sec()),
                format!("{:.1}", s.input_bytes as f64 / 1e6 / s.secs.max(1e-9)),
                format!("{r:.3}"),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "stage",
                "docs/s",
                "tokens/s",
                "input MB/s",
                "× read + parse"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
