//! `tokenlake sample` and `tokenlake label import`: the review loop of exporting documents
//! for people and bringing their labels back.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use std::io::Write;

use anyhow::Context;
use tokenlake_lake::{Lake, Progress};

use crate::cli::SampleArgs;

use crate::output::{count, print_json, table};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

pub async fn import(lake: &str, file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let location = crate::commands::storage::location(lake)?;
    let lake = Lake::open(&location).await?;
    let path = file.to_path_buf();
    let progress = Arc::new(Progress::default());
    let job = progress.clone();
    let import = run_job(
        "label import",
        "",
        "stopping: the lake stays at its previous version",
        progress,
        async move {
            job.start("reading the label file", 0);
            let labels =
                tokio::task::spawn_blocking(move || tokenlake_ingest::read_label_file(&path))
                    .await??;
            if job.is_cancelled() {
                return Ok(None);
            }
            // One Lance commit: it happens whole or not at all, whenever a signal comes.
            job.start("merging by doc_id and committing one version", 0);
            anyhow::Ok(Some(lake.add_label_columns(labels).await?))
        },
    )
    .await?;
    let Some(import) = import else {
        eprintln!("interrupted: nothing was committed; the lake is unchanged");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    };
    if json {
        print_json(&import)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "committed version {} of {location}: {} of {} documents labelled",
        import.version,
        count(import.labelled_docs),
        count(import.lake_docs)
    );
    let rows = import
        .columns
        .iter()
        .map(|(name, ty)| vec![name.clone(), ty.clone()])
        .collect();
    println!("{}", table(&["new column", "type"], rows));
    Ok(ExitCode::SUCCESS)
}

pub async fn sample(args: SampleArgs) -> anyhow::Result<ExitCode> {
    let location = crate::commands::storage::location(&args.lake)?;
    let lake = Lake::open(&location).await?;
    let spec = args.version.spec();
    let progress = Arc::new(Progress::default());
    progress.start("choosing and reading the documents", 0);
    let sample = run_job(
        "sample",
        "",
        "stopping: nothing is written",
        progress.clone(),
        lake.sample(
            &spec,
            args.filter.as_deref(),
            args.count,
            args.seed,
            args.columns,
        ),
    )
    .await?;
    if progress.is_cancelled() {
        eprintln!("interrupted: nothing was written");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    // A file is written beside its name and renamed, so an interrupted run leaves none.
    let partial = args.out.as_ref().map(|p| p.with_extension("partial"));
    let out: Box<dyn Write> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut writer = arrow_json::LineDelimitedWriter::new(out);
    writer.write(&sample.rows).context("writing the sample")?;
    writer.finish().context("writing the sample")?;
    writer.into_inner().flush().context("writing the sample")?;
    if let (Some(partial), Some(out)) = (&partial, &args.out) {
        std::fs::rename(partial, out).with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!(
        "sampled {} of {} matching documents of {location} version {} (seed {})",
        count(sample.rows.num_rows() as u64),
        count(sample.matched),
        sample.version,
        args.seed
    );
    Ok(ExitCode::SUCCESS)
}
