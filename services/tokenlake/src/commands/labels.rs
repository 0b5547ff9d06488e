//! `tokenlake sample` and `tokenlake label import`: the review loop of exporting documents
//! for people and bringing their labels back.

use std::path::Path;
use std::process::ExitCode;

use std::io::Write;

use anyhow::Context;
use tokenlake_lake::Lake;

use crate::cli::SampleArgs;

use crate::output::{count, print_json, table};

pub async fn import(lake: &str, file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let location = crate::commands::storage::location(lake)?;
    let lake = Lake::open(&location).await?;
    let path = file.to_path_buf();
    let labels =
        tokio::task::spawn_blocking(move || tokenlake_ingest::read_label_file(&path)).await??;
    let import = lake.add_label_columns(labels).await?;
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
    let sample = lake
        .sample(
            &spec,
            args.filter.as_deref(),
            args.count,
            args.seed,
            args.columns,
        )
        .await?;
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut writer = arrow_json::LineDelimitedWriter::new(out);
    writer.write(&sample.rows).context("writing the sample")?;
    writer.finish().context("writing the sample")?;
    writer.into_inner().flush().context("writing the sample")?;
    eprintln!(
        "sampled {} of {} matching documents of {location} version {} (seed {})",
        count(sample.rows.num_rows() as u64),
        count(sample.matched),
        sample.version,
        args.seed
    );
    Ok(ExitCode::SUCCESS)
}
