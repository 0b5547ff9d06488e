//! The lake from Python (`tokenlake.Lake`): versions, tags, describe, SQL, samples and label
//! import through the `tokenlake-lake` calls the command line makes. Tables cross to Python as
//! Arrow IPC streams, which pyarrow reads without a copy; reports as JSON text, the same JSON
//! the command's `--json` prints.

use std::path::PathBuf;
use std::time::Duration;

use arrow_array::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokenlake_lake::{Lake, LakeLocation, QueryLimits, StorageOptions, VersionSpec};

use crate::run;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lake_versions, m)?)?;
    m.add_function(wrap_pyfunction!(lake_tags, m)?)?;
    m.add_function(wrap_pyfunction!(lake_tag, m)?)?;
    m.add_function(wrap_pyfunction!(lake_describe, m)?)?;
    m.add_function(wrap_pyfunction!(lake_query, m)?)?;
    m.add_function(wrap_pyfunction!(lake_sample, m)?)?;
    m.add_function(wrap_pyfunction!(lake_label_import, m)?)?;
    m.add_function(wrap_pyfunction!(lake_documents, m)?)?;
    Ok(())
}

fn location(uri: &str, storage_options: &[String]) -> anyhow::Result<LakeLocation> {
    let options = StorageOptions::from_pairs(storage_options)
        .map_err(|e| anyhow::anyhow!("storage_options: {e}"))?;
    Ok(LakeLocation::parse(uri)?.with_options(options))
}

fn version_spec(version: Option<&str>) -> anyhow::Result<VersionSpec> {
    match version {
        None => Ok(VersionSpec::Latest),
        Some(v) => v
            .parse()
            .map_err(|e: String| anyhow::anyhow!("version {v:?}: {e}")),
    }
}

async fn open(uri: String, storage_options: Vec<String>) -> anyhow::Result<Lake> {
    Ok(Lake::open(&location(&uri, &storage_options)?).await?)
}

fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(value)?)
}

/// `tokenlake versions --json`.
#[pyfunction]
fn lake_versions(py: Python<'_>, uri: String, storage_options: Vec<String>) -> PyResult<String> {
    run(
        py,
        async move { json(&open(uri, storage_options).await?.versions().await?) },
        || {},
        false,
    )
}

/// `tokenlake tag LAKE list --json`.
#[pyfunction]
fn lake_tags(py: Python<'_>, uri: String, storage_options: Vec<String>) -> PyResult<String> {
    run(
        py,
        async move { json(&open(uri, storage_options).await?.tags().await?) },
        || {},
        false,
    )
}

/// Creates tag `name` on `version` (the latest when None), or deletes it (`delete`); returns
/// the version it named.
#[pyfunction]
#[pyo3(signature = (uri, storage_options, name, version=None, delete=false))]
fn lake_tag(
    py: Python<'_>,
    uri: String,
    storage_options: Vec<String>,
    name: String,
    version: Option<String>,
    delete: bool,
) -> PyResult<u64> {
    run(
        py,
        async move {
            let lake = open(uri, storage_options).await?;
            if delete {
                return Ok(lake.delete_tag(&name).await?);
            }
            let spec = version_spec(version.as_deref())?;
            Ok(lake.create_tag(&name, &spec).await?)
        },
        || {},
        false,
    )
}

/// `tokenlake describe --json`.
#[pyfunction]
#[pyo3(signature = (uri, storage_options, version=None))]
fn lake_describe(
    py: Python<'_>,
    uri: String,
    storage_options: Vec<String>,
    version: Option<String>,
) -> PyResult<String> {
    run(
        py,
        async move {
            let spec = version_spec(version.as_deref())?;
            json(&open(uri, storage_options).await?.describe(&spec).await?)
        },
        || {},
        false,
    )
}

/// `tokenlake query`: the result (at most `limit` rows) as an Arrow IPC stream, and whether
/// rows beyond the limit were left out.
#[pyfunction]
#[pyo3(signature = (uri, storage_options, sql, version=None, limit=10_000, timeout_s=600.0, max_memory_mb=None))]
#[allow(clippy::too_many_arguments)]
fn lake_query<'py>(
    py: Python<'py>,
    uri: String,
    storage_options: Vec<String>,
    sql: String,
    version: Option<String>,
    limit: u64,
    timeout_s: f64,
    max_memory_mb: Option<u64>,
) -> PyResult<(Bound<'py, PyBytes>, bool)> {
    let (ipc, cut) = run(
        py,
        async move {
            anyhow::ensure!(limit > 0, "limit must be at least 1");
            anyhow::ensure!(
                timeout_s.is_finite() && timeout_s > 0.0,
                "timeout_s must be a positive number of seconds"
            );
            let spec = version_spec(version.as_deref())?;
            let lake = open(uri, storage_options).await?;
            let limits = QueryLimits {
                memory_bytes: max_memory_mb.map(|mb| (mb as usize).saturating_mul(1 << 20)),
                ..Default::default()
            };
            let result = tokio::time::timeout(
                Duration::from_secs_f64(timeout_s),
                tokenlake_lake::collect_query(&lake, &spec, &sql, &limits, limit),
            )
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the query ran past {timeout_s} s (timeout_s); narrow it with a WHERE or a \
                     LIMIT"
                )
            })??;
            Ok((ipc(&result.schema, &result.batches)?, result.cut))
        },
        || {},
        false,
    )?;
    Ok((PyBytes::new(py, &ipc), cut))
}

/// `tokenlake sample`: (rows as an Arrow IPC stream, documents matched, version read).
#[pyfunction]
#[pyo3(signature = (uri, storage_options, n, seed=0, filter=None, columns=None, version=None))]
#[allow(clippy::too_many_arguments)]
fn lake_sample<'py>(
    py: Python<'py>,
    uri: String,
    storage_options: Vec<String>,
    n: usize,
    seed: u64,
    filter: Option<String>,
    columns: Option<Vec<String>>,
    version: Option<String>,
) -> PyResult<(Bound<'py, PyBytes>, u64, u64)> {
    let (ipc, matched, version) = run(
        py,
        async move {
            let spec = version_spec(version.as_deref())?;
            let lake = open(uri, storage_options).await?;
            let sample = lake
                .sample(&spec, filter.as_deref(), n, seed, columns)
                .await?;
            let schema = sample.rows.schema();
            Ok((
                ipc(&schema, std::slice::from_ref(&sample.rows))?,
                sample.matched,
                sample.version,
            ))
        },
        || {},
        false,
    )?;
    Ok((PyBytes::new(py, &ipc), matched, version))
}

/// `tokenlake label import --json` of a label file (Parquet or JSON lines): one new version
/// with the file's columns, or nothing committed.
#[pyfunction]
fn lake_label_import(
    py: Python<'_>,
    uri: String,
    storage_options: Vec<String>,
    path: PathBuf,
) -> PyResult<String> {
    run(
        py,
        async move {
            let lake = open(uri, storage_options).await?;
            let labels =
                tokio::task::spawn_blocking(move || tokenlake_ingest::read_label_file(&path))
                    .await??;
            // One Lance commit: whole or not at all, even when the caller is interrupted.
            json(&lake.add_label_columns(labels).await?)
        },
        || {},
        false,
    )
}

/// The documents table's URI and the number `version` resolves to, for `lance.dataset`.
#[pyfunction]
#[pyo3(signature = (uri, storage_options, version=None))]
fn lake_documents(
    py: Python<'_>,
    uri: String,
    storage_options: Vec<String>,
    version: Option<String>,
) -> PyResult<(String, u64)> {
    run(
        py,
        async move {
            let spec = version_spec(version.as_deref())?;
            let lake = open(uri, storage_options).await?;
            let number = lake.resolve(&spec).await?;
            Ok((lake.location().documents_uri(), number))
        },
        || {},
        false,
    )
}

/// `batches` as one Arrow IPC stream.
fn ipc(schema: &arrow_schema::SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}
