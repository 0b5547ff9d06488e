//! `tokenlake curate`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokenlake_curate::{CurateError, CurateProgress};
use tokenlake_lake::Lake;

use crate::cli::CurateArgs;
use crate::output::{count, key_values, print_json};
use crate::progress::CurateProgressView;
use crate::signal::{EXIT_INTERRUPTED, stop_on_signal};

pub async fn run(args: CurateArgs) -> anyhow::Result<ExitCode> {
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let progress = Arc::new(CurateProgress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(stop_on_signal(
        cancel.clone(),
        "stopping: the lake stays at its previous version",
    ));
    let view = CurateProgressView::start(progress.clone());
    let result = tokenlake_curate::curate(&lake, &progress, &cancel).await;
    drop(view);
    watcher.abort();
    let summary = match result {
        Ok(summary) => summary,
        Err(CurateError::Interrupted) => {
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
        "committed version {} of {}: duplicate labels of {} documents",
        summary.version,
        summary.lake,
        count(summary.docs)
    );
    let mut rows = vec![
        (
            "duplicates",
            format!(
                "{} ({:.1} %) in {} clusters",
                count(summary.duplicates),
                100.0 * summary.duplicates as f64 / summary.docs.max(1) as f64,
                count(summary.clusters_with_copies)
            ),
        ),
        (
            "throughput",
            format!(
                "{:.0} docs/s",
                summary.docs as f64 / summary.elapsed_secs.max(1e-9)
            ),
        ),
    ];
    rows.push((
        "index memory",
        format!(
            "{:.1} MB ({} bytes per document)",
            summary.index_bytes as f64 / 1e6,
            summary.index_bytes / summary.docs.max(1)
        ),
    ));
    for (kind, n) in &summary.by_kind {
        rows.push(("  found by", format!("{kind}: {}", count(*n))));
    }
    println!("{}", key_values(rows));
    Ok(ExitCode::SUCCESS)
}
