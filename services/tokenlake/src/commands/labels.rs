//! `tokenlake label import`.

use std::path::Path;
use std::process::ExitCode;

use tokenlake_lake::{Lake, LakeLocation};

use crate::output::{count, print_json, table};

pub async fn import(lake: &str, file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let location = LakeLocation::parse(lake)?;
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
