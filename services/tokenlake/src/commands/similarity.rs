//! `tokenlake similarity`: Ziya2's SIM attribute and a contamination flag, against target sets.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokenlake_lake::Lake;
use tokenlake_research::label::{
    SimilarityError, SimilarityOptions, SimilarityProgress, label_similarity,
};
use tokenlake_research::similarity::TfIdfSimilarity;
use tokenlake_research::targets::load_targets;

use crate::cli::SimilarityArgs;
use crate::output::{count, key_values, print_json, table};
use crate::progress::DocsProgressView;
use crate::signal::{EXIT_INTERRUPTED, stop_on_signal};

pub async fn run(args: SimilarityArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.targets[0]),
    };
    let mut targets = Vec::new();
    for path in &args.targets {
        targets.extend(load_targets(path, &args.fields)?);
    }
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let model = {
        let targets = targets.clone();
        tokio::task::spawn_blocking(move || TfIdfSimilarity::new(&targets)).await?
    };
    let options = SimilarityOptions {
        name,
        target_files: args
            .targets
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        targets,
        model: Arc::new(model),
    };

    let progress = Arc::new(SimilarityProgress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(stop_on_signal(
        cancel.clone(),
        "stopping: the lake stays at its previous version",
    ));
    let view = {
        let progress = progress.clone();
        DocsProgressView::start("similarity", move || {
            (
                progress.docs_done.load(Ordering::Relaxed),
                progress.docs_total.load(Ordering::Relaxed),
            )
        })
    };
    let result = label_similarity(&lake, &options, &progress, &cancel).await;
    drop(view);
    watcher.abort();
    let summary = match result {
        Ok(summary) => summary,
        Err(SimilarityError::Interrupted) => {
            eprintln!("interrupted: nothing was committed; the lake is unchanged");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        key_values(vec![
            ("version", summary.version.to_string()),
            ("targets", count(summary.targets)),
            ("documents", count(summary.documents)),
            ("contaminated", count(summary.contaminated)),
            ("columns", summary.columns.join(", ")),
            ("score", summary.model.clone()),
            ("seconds", format!("{:.1}", summary.elapsed_secs)),
        ])
    );
    let rows = summary
        .top
        .iter()
        .map(|(id, score, shared)| vec![id.to_string(), format!("{score:.3}"), shared.to_string()])
        .collect();
    println!(
        "{}",
        table(&["closest doc_id", "similarity", "shared 13-grams"], rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// `tests/mmlu-dev.jsonl` → `mmlu_dev`.
fn default_name(path: &std::path::Path) -> String {
    let stem = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "t_");
    }
    name
}
