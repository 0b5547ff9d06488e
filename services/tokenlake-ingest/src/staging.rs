//! Remote inputs (`s3://raw/cc/*.jsonl.zst`): expanded to the objects they name and fetched
//! to a private local directory for the run, so format detection, decompression and Parquet
//! reading are the same as for local files. The directory is removed when the run ends, however
//! it ends; it needs as much disk as the inputs of one run (shard larger runs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokenlake_storage::{ObjectStorage, StorageOptions, StorageUri, expand_pattern};

use crate::{IngestError, Result};

/// The inputs of a run as local files, with the names they are recorded under.
pub struct StagedInputs {
    pub paths: Vec<PathBuf>,
    pub names: Vec<String>,
    /// Bytes fetched from object storage.
    pub fetched_bytes: u64,
    _dir: Option<tempfile::TempDir>,
}

/// Whether an INPUT argument names objects in a store rather than a local file.
pub fn is_remote_input(arg: &str) -> bool {
    arg.contains("://") && !arg.starts_with("file://")
}

/// The inputs INPUT arguments name, fetching nothing: local paths as given, remote patterns
/// expanded to their objects, in order. Every shard of a sharded ingest expands the same
/// arguments to the same list and then stages only its own block of it.
pub async fn expand_inputs(args: &[String], options: &StorageOptions) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(args.len());
    for arg in args {
        if is_remote_input(arg) {
            for (object, _size) in expand_pattern(arg, options).await? {
                names.push(object.to_string());
            }
        } else {
            names.push(arg.strip_prefix("file://").unwrap_or(arg).to_string());
        }
    }
    Ok(names)
}

/// Resolves INPUT arguments: local paths stay as they are; remote patterns are expanded and
/// every object they name is fetched under `staging_root` (the system's temporary directory by
/// default). `fetched` counts bytes as they arrive, for a progress bar.
pub async fn stage_inputs(
    args: &[String],
    options: &StorageOptions,
    staging_root: Option<&Path>,
    fetched: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<StagedInputs> {
    let mut paths = Vec::with_capacity(args.len());
    let mut names = Vec::with_capacity(args.len());
    let mut dir: Option<tempfile::TempDir> = None;
    let start = fetched.load(Ordering::Relaxed);
    for arg in args {
        if !is_remote_input(arg) {
            let path = PathBuf::from(arg.strip_prefix("file://").unwrap_or(arg));
            names.push(path.display().to_string());
            paths.push(path);
            continue;
        }
        for (object, _size) in expand_pattern(arg, options).await? {
            if cancel.load(Ordering::Relaxed) {
                return Err(IngestError::Interrupted);
            }
            if dir.is_none() {
                let root = staging_root
                    .map(Path::to_path_buf)
                    .unwrap_or_else(std::env::temp_dir);
                dir = Some(
                    tempfile::Builder::new()
                        .prefix("tokenlake-inputs-")
                        .tempdir_in(&root)
                        .map_err(|source| IngestError::Read {
                            path: root.clone(),
                            line: 0,
                            source,
                        })?,
                );
            }
            let local = dir.as_ref().expect("created above").path().join(format!(
                "{:05}-{}",
                paths.len(),
                file_name(&object)
            ));
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&local).map_err(|source| {
                    IngestError::Read {
                        path: local.clone(),
                        line: 0,
                        source,
                    }
                })?);
            let storage = ObjectStorage::for_uri(&object, options)?;
            storage
                .download(&object, &mut file, fetched, cancel)
                .await
                .map_err(|e| match e {
                    tokenlake_storage::StorageError::Interrupted => IngestError::Interrupted,
                    other => other.into(),
                })?;
            std::io::Write::flush(&mut file).map_err(|source| IngestError::Read {
                path: local.clone(),
                line: 0,
                source,
            })?;
            tracing::debug!(%object, local = %local.display(), "input fetched");
            names.push(object.to_string());
            paths.push(local);
        }
    }
    Ok(StagedInputs {
        paths,
        names,
        fetched_bytes: fetched.load(Ordering::Relaxed) - start,
        _dir: dir,
    })
}

fn file_name(object: &StorageUri) -> String {
    let s = object.to_string();
    s.rsplit('/').next().unwrap_or("input").to_string()
}
