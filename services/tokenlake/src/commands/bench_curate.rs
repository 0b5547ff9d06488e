//! `tokenlake bench curate`: curation figures per stage and core, against datatrove's rate for
//! the same four published rule sets measured in the same run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde::Serialize;
use tokenlake_bench::curate::{CurateStages, measure};
use tokenlake_curate::CurateOptions;
use tokenlake_ingest::{IngestOptions, IngestProgress};
use tokenlake_lake::{Lake, LakeLocation};

use crate::cli::BenchCurateArgs;
use crate::output::{print_json, table};

#[derive(Serialize)]
struct Rate {
    stage: String,
    docs_per_sec: f64,
    /// This rate divided by datatrove's (one core each), when datatrove was measured.
    vs_datatrove: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    stages: CurateStages,
    rates: Vec<Rate>,
    /// datatrove's four rule sets (Gopher quality and repetition, C4, FineWeb), one core.
    datatrove_docs_per_sec: Option<f64>,
    datatrove_note: Option<String>,
}

fn datatrove_rate(args: &BenchCurateArgs) -> Result<f64, String> {
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var_os("TOKENLAKE_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"));
    tokenlake_bench::datatrove::datatrove_rate(&python, &args.inputs[0], args.datatrove_docs)
}

// Kept as one function: each measurement, then one table of them against datatrove's rate.
pub async fn run(args: BenchCurateArgs) -> anyhow::Result<ExitCode> {
    let pipeline = crate::commands::curate::load_pipeline(args.pipeline.as_deref())?;
    let inputs = args.inputs.clone();
    let field = args.text_field.clone();
    let texts = tokio::task::spawn_blocking(move || {
        tokenlake_ingest::read_texts(&inputs, &field, usize::MAX)
    })
    .await?
    .context("reading the inputs")?;
    eprintln!(
        "bench: {} documents, each stage on one core, then every core ...",
        texts.len()
    );
    let p = pipeline.clone();
    let stages = tokio::task::spawn_blocking(move || measure(&texts, &p)).await?;

    let mut end_to_end = None;
    if let Some(tokenizer) = &args.tokenizer {
        eprintln!("bench: ingest into a scratch lake, then `curate` it ...");
        let scratch = tempfile::tempdir()?;
        let location = LakeLocation::parse(&scratch.path().join("lake").to_string_lossy())?;
        let mut options = IngestOptions::new(
            location.clone(),
            args.inputs.clone(),
            "bench",
            tokenizer.clone(),
        );
        options.text_field = args.text_field.clone();
        let never = Arc::new(AtomicBool::new(false));
        tokenlake_ingest::ingest(options, Arc::new(IngestProgress::default()), never.clone())
            .await?;
        let lake = Lake::open(&location).await?;
        let summary = tokenlake_curate::curate(
            &lake,
            &CurateOptions {
                pipeline: pipeline.clone(),
                ..CurateOptions::default()
            },
            &tokenlake_lake::Progress::default(),
        )
        .await?;
        end_to_end = Some(summary.docs as f64 / summary.elapsed_secs.max(1e-9));
    }

    eprintln!("bench: datatrove on {} documents ...", args.datatrove_docs);
    let (datatrove, note) = match datatrove_rate(&args) {
        Ok(rate) => (Some(rate), None),
        Err(note) => (None, Some(note)),
    };
    let per_core = |secs: f64| stages.docs as f64 / secs.max(1e-9);
    let s = &stages.one_core;
    let mut rates = vec![
        ("preprocess (1 core)", per_core(s.preprocess)),
        ("language (1 core)", per_core(s.language)),
        ("perplexity (1 core)", per_core(s.perplexity)),
        (
            "rule signals: Gopher, C4, FineWeb, Ziya2 (1 core)",
            per_core(s.rules),
        ),
        ("fingerprints (1 core)", per_core(s.fingerprint)),
        ("dedup index (1 core)", per_core(stages.dedup_index_secs)),
        ("whole pipeline (1 core)", stages.pipeline_per_core()),
        (
            "per-document stages, all cores",
            per_core(stages.all_cores_secs),
        ),
    ];
    if let Some(rate) = end_to_end {
        rates.push(("`curate` on a lake (scan, label, commit), all cores", rate));
    }
    let rates: Vec<Rate> = rates
        .into_iter()
        .map(|(stage, r)| Rate {
            stage: stage.to_string(),
            docs_per_sec: r,
            vs_datatrove: datatrove.map(|d| r / d),
        })
        .collect();
    let report = Report {
        stages,
        rates,
        datatrove_docs_per_sec: datatrove,
        datatrove_note: note,
    };
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<Vec<String>> = report
        .rates
        .iter()
        .map(|r| {
            vec![
                r.stage.clone(),
                format!("{:.0}", r.docs_per_sec),
                r.vs_datatrove.map_or("-".into(), |x| format!("{x:.0}×")),
            ]
        })
        .collect();
    if let Some(d) = report.datatrove_docs_per_sec {
        rows.push(vec![
            "datatrove: the four rule sets (1 core)".into(),
            format!("{d:.0}"),
            "1×".into(),
        ]);
    }
    println!(
        "{} documents, {:.1} MB, {} threads",
        report.stages.docs,
        report.stages.bytes as f64 / 1e6,
        report.stages.threads
    );
    println!("{}", table(&["stage", "docs/s", "vs datatrove"], rows));
    if let Some(note) = &report.datatrove_note {
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}
