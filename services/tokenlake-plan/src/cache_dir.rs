//! The node's cache directory, shared by every rank and process on the node: one process fills
//! a token cache while the others wait for it (an advisory file lock, released by the kernel if
//! the filler dies), caches are checked against their checksums before use, and the directory is
//! kept under a size bound by evicting the least recently used token caches.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{PlanError, Result};
use crate::publish::COMPLETE_MARKER;

/// Touched whenever a cache is opened; its modification time orders eviction.
const LAST_USED: &str = "last-used";

/// An advisory lock on one cache entry, held while it is filled or evicted.
pub(crate) struct EntryLock {
    _file: File,
}

fn lock_path(entry: &Path) -> PathBuf {
    let name = entry.file_name().expect("cache entries are named");
    entry.with_file_name(format!(".{}.lock", name.to_string_lossy()))
}

fn open_lock_file(entry: &Path) -> Result<File> {
    let path = lock_path(entry);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(PlanError::io(format!("creating {}", parent.display())))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(PlanError::io(format!("opening {}", path.display())))
}

impl EntryLock {
    /// Waits until no other process fills or evicts `entry`, then holds it.
    pub fn exclusive(entry: &Path) -> Result<EntryLock> {
        let file = open_lock_file(entry)?;
        if file.try_lock().is_err() {
            tracing::info!(cache = %entry.display(), "waiting for another process to fill the cache");
            file.lock()
                .map_err(PlanError::io(format!("locking {}", entry.display())))?;
        }
        Ok(EntryLock { _file: file })
    }

    /// Holds `entry` for reading, unless it is being filled or evicted right now.
    pub fn shared(entry: &Path) -> Result<EntryLock> {
        let file = open_lock_file(entry)?;
        file.lock_shared()
            .map_err(PlanError::io(format!("locking {}", entry.display())))?;
        Ok(EntryLock { _file: file })
    }

    /// `None` when another process holds the entry.
    fn try_exclusive(entry: &Path) -> Option<EntryLock> {
        let file = open_lock_file(entry).ok()?;
        file.try_lock().ok()?;
        Some(EntryLock { _file: file })
    }
}

/// Records that `entry` was used now.
pub(crate) fn touch(entry: &Path) {
    let _ = File::create(entry.join(LAST_USED));
}

/// Bytes the files directly in `dir` take (cache entries are flat).
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| allocated_bytes(&m))
                .sum()
        })
        .unwrap_or(0)
}

/// What a file takes on disk: synthetic caches are sparse, so their length overstates it.
#[cfg(unix)]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    (meta.blocks() * 512).min(meta.len())
}

#[cfg(not(unix))]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// What [`evict`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    pub kept_bytes: u64,
    pub evicted: Vec<PathBuf>,
    pub evicted_bytes: u64,
}

/// Removes the least recently used token caches under `tokens_root` until the rest take at
/// most `max_bytes`. `keep` (the cache just opened) and caches another process is filling are
/// never removed; a process that already mapped an evicted cache keeps reading it (the kernel
/// frees the files when the last mapping goes).
pub fn evict(tokens_root: &Path, max_bytes: u64, keep: &Path) -> Result<Eviction> {
    let mut entries: Vec<(SystemTime, PathBuf, u64)> = Vec::new();
    let read = match std::fs::read_dir(tokens_root) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Eviction::default()),
        Err(e) => {
            return Err(PlanError::Io {
                context: format!("listing {}", tokens_root.display()),
                source: e,
            });
        }
    };
    for entry in read.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !path.join(COMPLETE_MARKER).is_file() {
            continue;
        }
        let used = std::fs::metadata(path.join(LAST_USED))
            .or_else(|_| std::fs::metadata(path.join(COMPLETE_MARKER)))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let bytes = dir_bytes(&path);
        entries.push((used, path, bytes));
    }
    let mut total: u64 = entries.iter().map(|e| e.2).sum();
    entries.sort();
    let mut eviction = Eviction::default();
    for (_, path, bytes) in entries {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        let Some(_lock) = EntryLock::try_exclusive(&path) else {
            continue;
        };
        // Renamed first, so no reader can open a half-removed cache.
        let doomed = path.with_file_name(format!(
            ".{}.{}.evicted.tmp",
            path.file_name().expect("named").to_string_lossy(),
            std::process::id()
        ));
        if std::fs::rename(&path, &doomed).is_err() {
            continue;
        }
        let _ = std::fs::remove_dir_all(&doomed);
        tracing::info!(cache = %path.display(), bytes, "evicted a token cache");
        total -= bytes;
        eviction.evicted_bytes += bytes;
        eviction.evicted.push(path);
    }
    eviction.kept_bytes = total;
    Ok(eviction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_cache(root: &Path, name: &str, bytes: usize) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokens.bin"), vec![7u8; bytes]).unwrap();
        std::fs::write(dir.join(COMPLETE_MARKER), b"{}").unwrap();
        dir
    }

    #[test]
    fn least_recently_used_caches_go_first_and_the_one_in_use_stays() {
        let root = tempfile::tempdir().unwrap();
        let old = fake_cache(root.path(), "old", 64 << 10);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mid = fake_cache(root.path(), "mid", 64 << 10);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let new = fake_cache(root.path(), "new", 64 << 10);
        std::thread::sleep(std::time::Duration::from_millis(20));
        touch(&old); // used again: now the most recent

        let eviction = evict(root.path(), 150 << 10, &new).unwrap();
        assert_eq!(eviction.evicted, vec![mid.clone()]);
        assert!(old.exists() && new.exists() && !mid.exists());

        // Under the bound nothing goes; the cache in use stays even over it.
        assert!(
            evict(root.path(), 1 << 30, &new)
                .unwrap()
                .evicted
                .is_empty()
        );
        let eviction = evict(root.path(), 0, &new).unwrap();
        assert_eq!(eviction.evicted, vec![old]);
        assert!(new.exists());
    }

    #[test]
    fn a_cache_being_filled_is_not_evicted() {
        let root = tempfile::tempdir().unwrap();
        let busy = fake_cache(root.path(), "busy", 4096);
        let _filling = EntryLock::exclusive(&busy).unwrap();
        let eviction = evict(root.path(), 0, &root.path().join("other")).unwrap();
        assert!(eviction.evicted.is_empty());
        assert!(busy.exists());
    }
}
