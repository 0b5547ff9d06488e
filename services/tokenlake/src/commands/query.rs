//! `tokenlake query`: read-only SQL over one version, as a table, CSV, JSON lines or Parquet.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use arrow_array::RecordBatch;
use tokenlake_lake::{Lake, QueryLimits, QueryResult, collect_query};

use crate::cli::{QueryArgs, QueryFormat};
use crate::commands::plan::stream_output;

pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.limit > 0, "--limit must be at least 1");
    anyhow::ensure!(
        args.format != QueryFormat::Parquet || args.out.is_some(),
        "--format parquet needs --out FILE"
    );
    let sql = match args.sql.as_str() {
        "-" => std::io::read_to_string(std::io::stdin()).context("reading the query from stdin")?,
        text => match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the query from {path}"))?,
            None => text.to_string(),
        },
    };
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let version = args.version.clone().spec();
    let timeout = Duration::from_secs(args.timeout_secs);
    let limits = QueryLimits {
        memory_bytes: args
            .max_memory_mb
            .map(|mb| (mb as usize).saturating_mul(1 << 20)),
        ..Default::default()
    };
    let result = tokio::time::timeout(
        timeout,
        collect_query(&lake, &version, &sql, &limits, args.limit),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "the query ran past {} s (--timeout-secs); narrow it with a WHERE or a LIMIT",
            timeout.as_secs()
        )
    })??;
    let QueryResult {
        schema,
        batches,
        rows,
        cut,
    } = result;
    write_result(&args, schema, &batches)?;
    if cut {
        eprintln!("showing the first {rows} rows; the result has more (raise --limit to see them)");
    }
    Ok(ExitCode::SUCCESS)
}

fn write_result(
    args: &QueryArgs,
    schema: arrow_schema::SchemaRef,
    batches: &[RecordBatch],
) -> anyhow::Result<()> {
    if args.format == QueryFormat::Parquet {
        let path = args.out.as_ref().expect("checked above");
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.close()?;
        return Ok(());
    }
    let mut out = stream_output(args.out.as_deref())?;
    match args.format {
        QueryFormat::Table => {
            let formatted = format_table(&schema, batches)?;
            writeln!(out, "{formatted}")?;
        }
        QueryFormat::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        QueryFormat::Json => {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        QueryFormat::Parquet => unreachable!("written above"),
    }
    out.flush()?;
    Ok(())
}

/// A readable table of the rows, every cell as Arrow displays it.
fn format_table(
    schema: &arrow_schema::SchemaRef,
    batches: &[RecordBatch],
) -> anyhow::Result<comfy_table::Table> {
    use arrow_cast::display::{ArrayFormatter, FormatOptions};
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(crate::output::table(&header, rows))
}
