//! `tokenlake ingest`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde::Serialize;
use tokenlake_ingest::{
    IngestError, IngestOptions, IngestProgress, IngestSummary, is_remote_input, stage_inputs,
};

use crate::cli::IngestArgs;
use crate::output::{count, key_values, print_json};
use crate::progress::run_job;
use crate::progress::{FetchProgressView, IngestProgressView, human};
use crate::signal::{EXIT_INTERRUPTED, set_flag, stop_on_signal};

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a IngestSummary,
    docs_per_sec: f64,
    tokens_per_sec: f64,
    input_mb_per_sec: f64,
    /// Peak resident memory of the process, where the platform reports it.
    peak_rss_mb: Option<f64>,
    /// The curation that followed (`--pipeline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    curation: Option<tokenlake_curate::CurateSummary>,
}

// Kept as one function: flags to options, the run with its progress and signal handling, then the
// summary table.
pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let lake = crate::commands::storage::location(&args.lake)?;
    // The pipeline is loaded first: a bad pipeline file fails before anything is read.
    let pipeline = match &args.pipeline {
        Some(path) => Some(crate::commands::curate::load_pipeline(Some(path))?),
        None => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(stop_on_signal(
        set_flag(cancel.clone()),
        "stopping: the lake stays at its previous version",
    ));
    // A shard takes its block of the whole (expanded) input list and fetches only that.
    let all_inputs = match args.shard {
        Some(_) => Some(
            tokenlake_ingest::expand_inputs(&args.inputs, &crate::commands::storage::options())
                .await?,
        ),
        None => None,
    };
    let inputs: Vec<String> = match (&args.shard, &all_inputs) {
        (Some(shard), Some(all)) => all[shard.block(all.len())].to_vec(),
        _ => args.inputs.clone(),
    };
    // Remote inputs are fetched first (to a private directory removed at the end of the run).
    let staged = if inputs.iter().any(|i| is_remote_input(i)) {
        let fetched = Arc::new(AtomicU64::new(0));
        let view = FetchProgressView::start(fetched.clone());
        let staged = stage_inputs(
            &inputs,
            &crate::commands::storage::options(),
            args.staging_dir.as_deref(),
            &fetched,
            &cancel,
        )
        .await;
        drop(view);
        match staged {
            Err(IngestError::Interrupted) => {
                eprintln!("interrupted: nothing was committed; the lake is unchanged");
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            other => other?,
        }
    } else {
        stage_inputs(
            &inputs,
            &crate::commands::storage::options(),
            None,
            &AtomicU64::new(0),
            &cancel,
        )
        .await?
    };
    let mut options = IngestOptions::new(lake, staged.paths.clone(), &args.source, args.tokenizer);
    options.input_names = Some(staged.names.clone());
    options.source_field = args.source_field;
    options.text_field = args.text_field;
    options.id_field = args.id_field;
    options.url_field = args.url_field;
    options.lang_field = args.lang_field;
    options.keep_text = args.keep_text;
    options.rejects = args.rejects;
    if let Some(pipeline) = &pipeline {
        let preprocess = pipeline.config.preprocess.clone();
        options.text_transform = Some(tokenlake_ingest::TextTransform(Arc::new(
            move |text: &str| {
                let done = tokenlake_curate::preprocess::preprocess(text, &preprocess);
                done.changed.then(|| done.text.into_owned())
            },
        )));
    }
    if let (Some(spec), Some(all)) = (args.shard, all_inputs) {
        tokenlake_lake::check_set_name(&args.shard_set).map_err(anyhow::Error::msg)?;
        options.shard = Some(tokenlake_ingest::ShardOptions {
            spec,
            set: args.shard_set.clone(),
            all_inputs: all,
            labeller: pipeline.as_ref().map(|p| {
                Arc::new(tokenlake_curate::shards::PipelineLabeller::new(p.clone()))
                    as Arc<dyn tokenlake_ingest::ShardLabeller>
            }),
        });
    }
    let location = options.lake.clone();

    let progress = Arc::new(IngestProgress::default());
    let view = IngestProgressView::start(progress.clone());
    let result = tokenlake_ingest::ingest(options, progress, cancel).await;
    drop(view);
    watcher.abort();
    drop(staged);

    let summary = match result {
        Ok(summary) => summary,
        Err(IngestError::Interrupted) if args.shard.is_some() => {
            eprintln!("interrupted: this shard left no manifest; run it again before the commit");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(IngestError::Interrupted) => {
            eprintln!("interrupted: nothing was committed; the lake is unchanged");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(err) => return Err(err.into()),
    };
    // Curation of what this ingest added, as one more version.
    let curation = match (&pipeline, summary.version) {
        (Some(pipeline), Some(_)) => {
            let lake = tokenlake_lake::Lake::open(&location).await?;
            let options = crate::commands::curate::latest(pipeline.clone());
            match crate::commands::curate::curate_with_progress(&lake, &options).await? {
                Some(c) => Some(c),
                None => {
                    eprintln!(
                        "the ingest was committed as version {}; its curation was interrupted \
                         (run `tokenlake curate` to label it)",
                        summary.version.unwrap_or_default()
                    );
                    return Ok(ExitCode::from(EXIT_INTERRUPTED));
                }
            }
        }
        _ => None,
    };
    let secs = summary.elapsed_secs.max(1e-9);
    let report = Report {
        summary: &summary,
        docs_per_sec: summary.docs_read as f64 / secs,
        tokens_per_sec: summary.tokens_written as f64 / secs,
        input_mb_per_sec: summary.input_bytes as f64 / 1e6 / secs,
        peak_rss_mb: peak_rss_mb(),
        curation,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
        if let Some(c) = &report.curation {
            crate::commands::curate::print_summary(c);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report<'_>) {
    let s = r.summary;
    match (s.version, &s.shard_manifest) {
        (_, Some(manifest)) => println!(
            "shard written, not committed: {manifest} (ingest {}); `tokenlake commit {}` publishes the set once every shard has finished",
            s.ingest_id, s.lake
        ),
        (Some(v), None) => println!(
            "committed version {v} of {} (ingest {})",
            s.lake, s.ingest_id
        ),
        (None, None) => println!(
            "nothing new to commit: {} stays at version {} (ingest {})",
            s.lake,
            s.previous_version
                .map_or_else(|| "none".to_string(), |v| v.to_string()),
            s.ingest_id
        ),
    }
    let rows = vec![
        ("documents read", count(s.docs_read)),
        ("documents written", count(s.docs_written)),
        ("already in the lake", count(s.docs_already_present)),
        ("rejected", count(s.docs_rejected)),
        ("tokens written", count(s.tokens_written)),
        (
            "throughput",
            format!(
                "{:.0} docs/s, {} tokens/s, {:.1} MB/s of input",
                r.docs_per_sec,
                human(r.tokens_per_sec),
                r.input_mb_per_sec
            ),
        ),
        ("elapsed", format!("{:.1} s", s.elapsed_secs)),
    ];
    println!("{}", key_values(rows));
    if let Some(mb) = r.peak_rss_mb {
        println!("peak memory: {mb:.0} MB");
    }
    if let Some(path) = &s.rejects_file {
        println!(
            "{} rejected lines, with file, line and reason, are in {}",
            count(s.docs_rejected),
            path
        );
    }
}

/// Peak resident set size from `/proc/self/status` (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `tokenlake commit`: publishes a shard set as one version.
pub async fn commit(args: crate::cli::CommitArgs) -> anyhow::Result<ExitCode> {
    commit_or_prepare(args, false).await
}

/// `tokenlake commit`, or with `prepare_only` `tokenlake dedup prepare`.
pub async fn commit_or_prepare(
    args: crate::cli::CommitArgs,
    prepare_only: bool,
) -> anyhow::Result<ExitCode> {
    let lake = crate::commands::storage::location(&args.lake)?;
    let pipeline = crate::commands::curate::load_pipeline(args.pipeline.as_deref())?;
    anyhow::ensure!(
        args.dedup.dedup_partitions > 0,
        "--dedup-partitions must be at least 1"
    );
    anyhow::ensure!(
        args.dedup.dedup_budget_mb >= 16,
        "--dedup-budget-mb must be at least 16"
    );
    let dedup = tokenlake_curate::shards::CommitDedup {
        options: tokenlake_curate::DedupOptions {
            partitions: args.dedup.dedup_partitions,
            budget_bytes: args.dedup.dedup_budget_mb << 20,
        },
        work: args.dedup.dedup_work.clone(),
        prepare_only,
    };
    let progress = Arc::new(tokenlake_lake::Progress::default());
    let result = run_job(
        if prepare_only {
            "dedup prepare"
        } else {
            "commit"
        },
        "shards",
        "stopping: the lake stays at its previous version",
        progress.clone(),
        tokenlake_curate::shards::label_and_commit_shards(
            &lake, &args.set, &pipeline, &dedup, &progress,
        ),
    )
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(tokenlake_curate::CurateError::Interrupted) => {
            eprintln!("interrupted: nothing was committed; the shards wait for the next commit");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if summary.prepared_only && !args.json {
        println!(
            "prepared shard set {:?} of {} for de-duplication: run `tokenlake dedup candidates` for each partition, then `tokenlake commit`",
            summary.set, summary.lake
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        print_json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "committed version {} of {}: shard set {:?} of {} shards",
        summary.version, summary.lake, summary.set, summary.shards
    );
    let mut rows = vec![
        ("documents read", count(summary.docs_read)),
        ("documents added", count(summary.docs_added)),
        (
            "already in the lake or in an earlier shard",
            count(summary.docs_already_present),
        ),
        ("rejected", count(summary.docs_rejected)),
        ("elapsed", format!("{:.1} s", summary.elapsed_secs)),
    ];
    if let Some(n) = summary.lake_docs_relabelled {
        rows.push((
            "lake documents relabelled (tier or cluster moved)",
            count(n),
        ));
    }
    if let (Some(dir), Some(ran)) = (&summary.dedup_index, summary.dedup_tasks_run) {
        rows.push((
            "de-duplication index",
            format!("{dir} ({ran} candidate tasks run here)"),
        ));
    }
    if let (Some(d), Some(c)) = (summary.duplicates, summary.clusters_with_copies) {
        rows.insert(
            3,
            (
                "near or exact duplicates (labelled)",
                format!("{} in {} clusters", count(d), count(c)),
            ),
        );
    }
    println!("{}", key_values(rows));
    Ok(ExitCode::SUCCESS)
}
