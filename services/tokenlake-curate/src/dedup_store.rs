//! Where a lake's de-duplication index ([`DedupIndex`]) lives: in the lake, under
//! `curation/dedup/`. A local lake's index is used in place. A remote lake's is copied to a
//! local working directory when opened (its sorted runs, labels and signature segments: about
//! 1.2 KB a document, as the whole-index state it replaced) and, after a commit, the new
//! files are uploaded, the manifest last, and the files it no longer names are deleted: a
//! reader of the lake sees the old index or the new one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokenlake_lake::{LakeError, LakeLocation, StorageUri};

use crate::dedup::pipeline::DedupIndex;

/// The index's directory under `curation/`.
const DIR: &str = "dedup";
/// Working subdirectories of an update, never uploaded.
const WORKING: [&str; 3] = ["pending", "step", "scratch"];

pub struct LakeDedupIndex {
    lake: LakeLocation,
    index: DedupIndex,
    /// Held while this process updates the index.
    _lock: std::fs::File,
    /// A remote lake's working copy, and the files the lake held when it was copied.
    remote: Option<(tempfile::TempDir, HashSet<String>)>,
}

impl LakeDedupIndex {
    /// Opens the lake's index for an update by this process (refused while another runs), or
    /// an empty one with `partitions` partitions; what an update that did not commit left is
    /// discarded.
    pub async fn open(lake: &LakeLocation, partitions: u32) -> Result<LakeDedupIndex, LakeError> {
        let io = |source| io_error(lake, source);
        if let Some(root) = lake.root().local_path() {
            let dir = root.join("curation").join(DIR);
            let index = DedupIndex::open_or_create(&dir, partitions).map_err(io)?;
            let lock = index.lock().map_err(io)?;
            index.discard_pending().map_err(io)?;
            return Ok(LakeDedupIndex {
                lake: lake.clone(),
                index,
                _lock: lock,
                remote: None,
            });
        }
        let work = tempfile::tempdir().map_err(io)?;
        let storage = lake.storage()?;
        let prefix = lake.curation_uri(DIR);
        let mut known = HashSet::new();
        for (uri, _) in storage.list(&prefix).await? {
            let Some(name) = relative(&prefix, &uri) else {
                continue;
            };
            if WORKING.iter().any(|w| name.starts_with(&format!("{w}/"))) {
                continue;
            }
            let path = work.path().join(&name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut file = std::fs::File::create(&path).map_err(io)?;
            storage
                .download(&uri, &mut file, &AtomicU64::new(0), &AtomicBool::new(false))
                .await?;
            known.insert(name);
        }
        let index = DedupIndex::open_or_create(work.path(), partitions).map_err(io)?;
        let lock = index.lock().map_err(io)?;
        Ok(LakeDedupIndex {
            lake: lake.clone(),
            index,
            _lock: lock,
            remote: Some((work, known)),
        })
    }

    pub fn index(&self) -> &DedupIndex {
        &self.index
    }

    pub fn io_error(&self, source: std::io::Error) -> LakeError {
        io_error(&self.lake, source)
    }

    /// Empties the index: its rows are no longer the lake's first rows.
    pub fn reset(&mut self) -> Result<(), LakeError> {
        self.index.reset().map_err(|e| io_error(&self.lake, e))
    }

    /// Commits the index's pending rows under `tag`, and publishes it to a remote lake.
    pub async fn commit(&mut self, tag: &str) -> Result<(), LakeError> {
        self.index
            .commit(tag)
            .map_err(|e| io_error(&self.lake, e))?;
        let Some((work, known)) = &mut self.remote else {
            return Ok(());
        };
        let storage = self.lake.storage()?;
        let prefix = self.lake.curation_uri(DIR);
        let mut files = Vec::new();
        walk(work.path(), work.path(), &mut files).map_err(|e| io_error(&self.lake, e))?;
        let present: HashSet<String> = files.iter().map(|(name, _)| name.clone()).collect();
        // New files first (their names never change once written), the manifest last.
        for (name, path) in &files {
            if name != "manifest.json" && !known.contains(name) {
                storage
                    .upload_file(path, &prefix.join(name))
                    .await
                    .map_err(LakeError::from)?;
            }
        }
        storage
            .upload_file(
                &work.path().join("manifest.json"),
                &prefix.join("manifest.json"),
            )
            .await?;
        for gone in known.difference(&present) {
            storage.delete(&prefix.join(gone)).await?;
        }
        *known = present;
        Ok(())
    }
}

fn io_error(lake: &LakeLocation, source: std::io::Error) -> LakeError {
    LakeError::Io {
        context: format!("the de-duplication index of lake {lake}"),
        source,
    }
}

fn relative(prefix: &StorageUri, uri: &StorageUri) -> Option<String> {
    let base = format!("{}/", prefix.to_string().trim_end_matches('/'));
    uri.to_string().strip_prefix(&base).map(str::to_string)
}

/// Every file under `dir` but the working directories, as (name relative to `root`, path).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .strip_prefix(root)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            if !WORKING.contains(&name.as_str()) {
                walk(root, &path, out)?;
            }
        } else if !name.ends_with(".tmp") && name != ".lock" {
            out.push((name, path));
        }
    }
    Ok(())
}
