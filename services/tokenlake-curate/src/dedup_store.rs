//! Where a lake's de-duplication index ([`DedupIndex`]) lives: in the lake, under
//! `curation/dedup/`. A local lake's index is used in place unless a working directory is
//! named. A remote lake's (or a local one's with a working directory) is copied to the
//! working directory when opened (its sorted runs, labels and signature segments: about
//! 1.2 KB a document, as the whole-index state it replaced) and, after a commit, the new
//! files are uploaded, the manifest last, and the files it no longer names are deleted: a
//! reader of the lake sees the old index or the new one.
//!
//! The working directory is a temporary one, or one the caller names (`--dedup-work`) on a
//! filesystem every candidate task can reach: there a commit can be prepared, its candidate
//! tasks run on other machines (`tokenlake dedup candidates`), and the commit resume. A named
//! directory whose manifest is the lake's is used as it is; any other is copied afresh.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokenlake_lake::{LakeError, LakeLocation, StorageUri};

use crate::dedup::pipeline::{DedupIndex, empty_dir, lock_dir};

/// The index's directory under `curation/`.
const DIR: &str = "dedup";
/// Working subdirectories of an update, never uploaded.
const WORKING: [&str; 3] = ["pending", "step", "scratch"];

pub struct LakeDedupIndex {
    lake: LakeLocation,
    index: DedupIndex,
    /// Held while this process updates the index.
    _lock: std::fs::File,
    /// For a remote lake: the temporary working directory (none when the caller named one),
    /// and the files the lake held when the index was opened.
    remote: Option<(Option<tempfile::TempDir>, HashSet<String>)>,
}

impl LakeDedupIndex {
    /// Opens the lake's index for an update by this process (refused while another runs), or
    /// an empty one with `partitions` partitions, working in `work` when given (see the module
    /// doc). What an earlier update left pending is kept: [`LakeDedupIndex::discard_pending`]
    /// drops it.
    pub async fn open(
        lake: &LakeLocation,
        work: Option<&Path>,
        partitions: u32,
    ) -> Result<LakeDedupIndex, LakeError> {
        let io = |source| io_error(lake, source);
        let in_lake = lake
            .root()
            .local_path()
            .map(|root| root.join("curation").join(DIR));
        if let Some(dir) = in_lake.filter(|dir| work.is_none_or(|w| w == dir)) {
            let lock = lock_dir(&dir).map_err(io)?;
            let index = DedupIndex::open_or_create(&dir, partitions).map_err(io)?;
            return Ok(LakeDedupIndex {
                lake: lake.clone(),
                index,
                _lock: lock,
                remote: None,
            });
        }
        let (held, dir) = match work {
            Some(dir) => (None, dir.to_path_buf()),
            None => {
                let tmp = tempfile::tempdir().map_err(io)?;
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let lock = lock_dir(&dir).map_err(io)?;
        let storage = lake.storage()?;
        let prefix = lake.curation_uri(DIR);
        let published = storage
            .read_if_exists(&prefix.join("manifest.json"))
            .await?;
        let local = std::fs::read(dir.join("manifest.json")).ok();
        // The copy is current when it is the lake's index, or an empty index prepared for
        // the lake's first one.
        let current = match (&published, &local) {
            (Some(p), Some(l)) => p.as_ref() == l.as_slice(),
            (None, Some(_)) => DedupIndex::open(&dir).is_ok_and(|i| i.covered() == 0),
            (_, None) => false,
        };
        let mut known = HashSet::new();
        for (uri, _) in storage.list(&prefix).await? {
            if let Some(name) = relative(&prefix, &uri)
                && !WORKING.iter().any(|w| name.starts_with(&format!("{w}/")))
            {
                known.insert(name);
            }
        }
        if !current {
            // Another index (or none) is here: copy the lake's afresh.
            empty_dir(&dir).map_err(io)?;
            for name in &known {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let mut file = std::fs::File::create(&path).map_err(io)?;
                storage
                    .download(
                        &prefix.join(name),
                        &mut file,
                        &AtomicU64::new(0),
                        &AtomicBool::new(false),
                    )
                    .await?;
            }
        }
        let index = DedupIndex::open_or_create(&dir, partitions).map_err(io)?;
        Ok(LakeDedupIndex {
            lake: lake.clone(),
            index,
            _lock: lock,
            remote: Some((held, known)),
        })
    }

    /// Drops what an update that never committed left.
    pub fn discard_pending(&self) -> Result<(), LakeError> {
        self.index
            .discard_pending()
            .map_err(|e| io_error(&self.lake, e))
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
        let Some((_, known)) = &mut self.remote else {
            return Ok(());
        };
        let work = self.index.dir().to_path_buf();
        let storage = self.lake.storage()?;
        let prefix = self.lake.curation_uri(DIR);
        let mut files = Vec::new();
        walk(&work, &work, &mut files).map_err(|e| io_error(&self.lake, e))?;
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
            .upload_file(&work.join("manifest.json"), &prefix.join("manifest.json"))
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
