//! `tokenlake export`: a version's documents as Megatron-Core's indexed dataset, JSON lines or
//! Parquet, with progress and a clean Ctrl-C (no file is published unless all are complete).

use std::process::ExitCode;
use std::sync::Arc;

use tokenlake_export::{ExportError, ExportFormat, ExportOptions, Selection};
use tokenlake_lake::Progress;
use tokenlake_lake::{Lake, VersionSpec};
use tokenlake_plan::Recipe;

use crate::cli::{ExportArgs, ExportFormatArg};
use crate::output::{count, print_json, table};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

// Kept as one function: flags to options, the export with progress and Ctrl-C, then its table.
pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        ExportFormatArg::Megatron => ExportFormat::Megatron,
        ExportFormatArg::Jsonl => ExportFormat::Jsonl,
        ExportFormatArg::Parquet => ExportFormat::Parquet,
    };
    anyhow::ensure!(
        args.eos.is_none() || format == ExportFormat::Megatron,
        "--eos only applies to --format megatron"
    );
    let recipe = args.recipe.as_deref().map(Recipe::load).transpose()?;
    let version = args.version.spec();
    let mut options = match &recipe {
        Some(recipe) => {
            let mut options = ExportOptions::for_recipe(recipe, format, args.out.clone());
            if version != VersionSpec::Latest {
                options.version = version;
            }
            if format != ExportFormat::Megatron {
                options.eos = None;
            }
            options
        }
        None => ExportOptions {
            version,
            selections: vec![Selection {
                name: None,
                filter: args.filter.clone(),
            }],
            format,
            out: args.out.clone(),
            eos: None,
        },
    };
    if args.eos.is_some() {
        options.eos = args.eos;
    }
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;

    let progress = Arc::new(Progress::default());
    let result = run_job(
        "export",
        "docs",
        "stopping: no export file will be published",
        progress.clone(),
        tokenlake_export::export(&lake, &options, &progress),
    )
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(ExportError::Interrupted) => {
            eprintln!("interrupted: no export file was published");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    let blends = match (&recipe, format) {
        (Some(recipe), ExportFormat::Megatron) => summary.megatron_blends(recipe),
        _ => Vec::new(),
    };
    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            summary: &'a tokenlake_export::ExportSummary,
            /// Stage name → Megatron's `--data-path` value.
            megatron_data_paths: std::collections::BTreeMap<&'a str, &'a str>,
        }
        print_json(&Report {
            summary: &summary,
            megatron_data_paths: blends
                .iter()
                .map(|(s, p)| (s.as_str(), p.as_str()))
                .collect(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = summary
        .outputs
        .iter()
        .map(|o| {
            vec![
                o.name.clone().unwrap_or_else(|| "-".into()),
                count(o.documents),
                count(o.tokens),
                o.files.join("\n"),
            ]
        })
        .collect();
    println!(
        "version {} of {} as {:?}",
        summary.version, summary.lake, summary.format
    );
    println!(
        "{}",
        table(&["component", "documents", "tokens", "files"], rows)
    );
    for (stage, data_path) in &blends {
        println!("{stage}: --data-path {data_path}");
    }
    Ok(ExitCode::SUCCESS)
}
