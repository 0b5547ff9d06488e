//! `tokenlake curate`, and the curation step of `tokenlake ingest --pipeline`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokenlake_curate::{
    CurateError, CurateOptions, CurateSummary, DedupOptions, Pipeline, PipelineConfig,
};
use tokenlake_lake::{Lake, Progress, VersionSpec};

use crate::cli::CurateArgs;
use crate::output::{count, key_values, print_json};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

/// The pipeline of a pipeline file, or the default one.
pub fn load_pipeline(path: Option<&Path>) -> anyhow::Result<Pipeline> {
    Ok(match path {
        Some(path) => Pipeline::load(PipelineConfig::load(path)?, &path.display().to_string())?,
        None => Pipeline::default_pipeline(),
    })
}

pub async fn run(args: CurateArgs) -> anyhow::Result<ExitCode> {
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let options = CurateOptions {
        version: args.version.spec(),
        pipeline: load_pipeline(args.pipeline.as_deref())?,
        recompute: args.recompute,
        dedup: DedupOptions {
            partitions: args.dedup_partitions,
            budget_bytes: args.dedup_budget_mb << 20,
        },
    };
    anyhow::ensure!(
        options.dedup.partitions > 0,
        "--dedup-partitions must be at least 1"
    );
    anyhow::ensure!(
        args.dedup_budget_mb >= 16,
        "--dedup-budget-mb must be at least 16"
    );
    match curate_with_progress(&lake, &options).await? {
        Some(summary) => {
            if args.json {
                print_json(&summary)?;
            } else {
                print_summary(&summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(EXIT_INTERRUPTED)),
    }
}

/// Runs curation with a progress bar and Ctrl-C; None when interrupted (nothing committed).
pub async fn curate_with_progress(
    lake: &Lake,
    options: &CurateOptions,
) -> anyhow::Result<Option<CurateSummary>> {
    let progress = Arc::new(Progress::default());
    let result = run_job(
        "curate",
        "docs",
        "stopping: the lake stays at its previous version",
        progress.clone(),
        tokenlake_curate::curate(lake, options, &progress),
    )
    .await;
    match result {
        Ok(summary) => Ok(Some(summary)),
        Err(CurateError::Interrupted) => {
            eprintln!("interrupted: nothing was committed; the lake is unchanged");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Curation of the latest version, for `ingest --pipeline`.
pub fn latest(pipeline: Pipeline) -> CurateOptions {
    CurateOptions {
        version: VersionSpec::Latest,
        pipeline,
        recompute: false,
        dedup: DedupOptions::default(),
    }
}

pub fn print_summary(s: &CurateSummary) {
    println!(
        "committed version {} of {}: labels of the {} documents of version {} ({} labelled now, {} reused)",
        s.version,
        s.lake,
        count(s.docs),
        s.curated_version,
        count(s.labelled),
        count(s.reused)
    );
    let share = |n: u64| {
        format!(
            "{} ({:.1} %)",
            count(n),
            100.0 * n as f64 / s.docs.max(1) as f64
        )
    };
    let mut rows = vec![(
        "duplicates".to_string(),
        format!(
            "{} in {} clusters",
            share(s.duplicates),
            count(s.clusters_with_copies)
        ),
    )];
    for (kind, n) in &s.by_kind {
        rows.push((format!("  found by {kind}"), count(*n)));
    }
    for (set, n) in &s.failing {
        rows.push((format!("fail {set}"), share(*n)));
    }
    let langs: Vec<String> = s
        .languages
        .iter()
        .map(|(l, n)| format!("{l} {}", count(*n)))
        .collect();
    rows.push(("languages".into(), langs.join(", ")));
    let st = &s.stage_seconds;
    let rate = |secs: f64| format!("{:.0} docs/s", s.labelled as f64 / secs.max(1e-9));
    rows.push((
        "per core".into(),
        format!(
            "preprocess {}, language {}, perplexity {}, rules {}, fingerprints {}",
            rate(st.preprocess),
            rate(st.language),
            rate(st.perplexity),
            rate(st.rules),
            rate(st.fingerprint)
        ),
    ));
    rows.push((
        "throughput".into(),
        format!(
            "{:.0} docs/s in {:.1} s",
            s.labelled as f64 / s.elapsed_secs.max(1e-9),
            s.elapsed_secs
        ),
    ));
    rows.push((
        "de-duplication index on disk".into(),
        format!(
            "{:.1} MB ({} bytes per document)",
            s.index_bytes as f64 / 1e6,
            s.index_bytes / s.docs.max(1)
        ),
    ));
    rows.push(("state".into(), s.state_written.clone()));
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    println!("{}", key_values(rows));
}
