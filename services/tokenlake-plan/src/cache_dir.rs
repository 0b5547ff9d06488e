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

/// The kinds of entry a cache directory holds, each in its own subdirectory: token caches
/// and plan indexes are directories (complete once their manifest is written, and locked
/// shared while a process has them mapped), selections are files.
const ENTRY_DIRS: [&str; 2] = ["tokens", "plans"];
const SELECTIONS: &str = "selections";

/// Removes the least recently used entries of the cache directory `cache_root` (token caches,
/// plan indexes and selections) until the rest take at most `max_bytes`. `keep` (what was just
/// opened), entries another process is filling, and entries any process holds mapped (a
/// [`CacheHold`]) are never removed, so the disk an eviction counts as freed really comes back.
pub fn evict(cache_root: &Path, max_bytes: u64, keep: &[&Path]) -> Result<Eviction> {
    let mut entries: Vec<(SystemTime, PathBuf, u64)> = Vec::new();
    for kind in ENTRY_DIRS {
        for path in list(&cache_root.join(kind))? {
            let name = path
                .file_name()
                .expect("listed")
                .to_string_lossy()
                .to_string();
            if name.starts_with('.') || !path.join(COMPLETE_MARKER).is_file() {
                continue;
            }
            let used = std::fs::metadata(path.join(LAST_USED))
                .or_else(|_| std::fs::metadata(path.join(COMPLETE_MARKER)))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = dir_bytes(&path);
            entries.push((used, path, bytes));
        }
    }
    for lake in list(&cache_root.join(SELECTIONS))? {
        for path in list(&lake)? {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let name = path
                .file_name()
                .expect("listed")
                .to_string_lossy()
                .to_string();
            if !meta.is_file() || name.starts_with('.') {
                continue;
            }
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push((used, path, allocated_bytes(&meta)));
        }
    }
    let mut total: u64 = entries.iter().map(|e| e.2).sum();
    entries.sort();
    let mut eviction = Eviction::default();
    for (_, path, bytes) in entries {
        if total <= max_bytes {
            break;
        }
        if keep.contains(&path.as_path()) {
            continue;
        }
        if path.is_file() {
            // A selection: read whole when used, so removing it never breaks a reader.
            if std::fs::remove_file(&path).is_err() {
                continue;
            }
        } else {
            let Some(_lock) = EntryLock::try_exclusive(&path) else {
                continue;
            };
            // Renamed first, so no reader can open a half-removed entry.
            let doomed = path.with_file_name(format!(
                ".{}.{}.evicted.tmp",
                path.file_name().expect("named").to_string_lossy(),
                std::process::id()
            ));
            if std::fs::rename(&path, &doomed).is_err() {
                continue;
            }
            let _ = std::fs::remove_dir_all(&doomed);
        }
        tracing::info!(entry = %path.display(), bytes, "evicted from the cache");
        total -= bytes;
        eviction.evicted_bytes += bytes;
        eviction.evicted.push(path);
    }
    eviction.kept_bytes = total;
    Ok(eviction)
}

/// The entries of `dir` (none when it does not exist).
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(read) => Ok(read.flatten().map(|e| e.path()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(PlanError::Io {
            context: format!("listing {}", dir.display()),
            source: e,
        }),
    }
}

/// A shared hold on cache entries that this process has mapped: while it lives, no eviction
/// (in this process or another on the node) removes them, and when it is dropped (the plan
/// closed) they may go and their disk comes back.
pub struct CacheHold {
    _locks: Vec<EntryLock>,
}

impl CacheHold {
    /// Holds `entries`; waits only while one is being filled or evicted right now.
    pub fn new(entries: &[&Path]) -> Result<CacheHold> {
        Ok(CacheHold {
            _locks: entries
                .iter()
                .map(|e| EntryLock::shared(e))
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_cache(root: &Path, name: &str, bytes: usize) -> PathBuf {
        let dir = root.join("tokens").join(name);
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

        let eviction = evict(root.path(), 150 << 10, &[&new]).unwrap();
        assert_eq!(eviction.evicted, vec![mid.clone()]);
        assert!(old.exists() && new.exists() && !mid.exists());

        // Under the bound nothing goes; the cache in use stays even over it.
        assert!(
            evict(root.path(), 1 << 30, &[&new])
                .unwrap()
                .evicted
                .is_empty()
        );
        let eviction = evict(root.path(), 0, &[&new]).unwrap();
        assert_eq!(eviction.evicted, vec![old]);
        assert!(new.exists());
    }

    #[test]
    fn a_cache_being_filled_is_not_evicted() {
        let root = tempfile::tempdir().unwrap();
        let busy = fake_cache(root.path(), "busy", 4096);
        let _filling = EntryLock::exclusive(&busy).unwrap();
        let eviction = evict(root.path(), 0, &[]).unwrap();
        assert!(eviction.evicted.is_empty());
        assert!(busy.exists());
    }

    #[test]
    fn plans_and_selections_are_evicted_too_but_nothing_a_process_holds() {
        let root = tempfile::tempdir().unwrap();
        let tokens = fake_cache(root.path(), "t", 8192);
        let plan = root.path().join("plans").join("p");
        std::fs::create_dir_all(&plan).unwrap();
        std::fs::write(plan.join("index.bin"), vec![1u8; 8192]).unwrap();
        std::fs::write(plan.join(COMPLETE_MARKER), b"{}").unwrap();
        let selection = root
            .path()
            .join("selections")
            .join("lake")
            .join("v1.roaring");
        std::fs::create_dir_all(selection.parent().unwrap()).unwrap();
        std::fs::write(&selection, vec![2u8; 8192]).unwrap();

        let hold = CacheHold::new(&[&tokens, &plan]).unwrap();
        let eviction = evict(root.path(), 0, &[]).unwrap();
        assert_eq!(eviction.evicted, vec![selection.clone()]);
        assert!(tokens.exists() && plan.exists() && !selection.exists());

        drop(hold); // the plan was closed: its entries may go, and their disk comes back
        let eviction = evict(root.path(), 0, &[]).unwrap();
        assert_eq!(eviction.evicted.len(), 2, "{eviction:?}");
        assert_eq!(eviction.kept_bytes, 0);
        assert!(!tokens.exists() && !plan.exists());
    }
}
