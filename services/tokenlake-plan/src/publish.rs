//! Cache directories appear whole or not at all: each is built under a temporary name beside
//! its final one and renamed into place. Concurrent builders (eight ranks starting at once)
//! each build their own copy; the first rename wins and the others use the winner's.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{PlanError, Result};

/// A fresh temporary directory beside `target`, named so that it is never mistaken for a cache
/// entry (leading dot) and never collides with another builder's.
pub fn temp_dir_for(target: &Path) -> Result<PathBuf> {
    let parent = target.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(parent)
        .map_err(PlanError::io(format!("creating {}", parent.display())))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    remove_abandoned(parent);
    let name = target.file_name().expect("named").to_string_lossy();
    // The time and a counter: two builders of one target in one process get two directories.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = parent.join(format!(".{name}.{}.{nanos}-{n}.tmp", std::process::id()));
    std::fs::create_dir(&tmp).map_err(PlanError::io(format!("creating {}", tmp.display())))?;
    hold(&tmp)?;
    Ok(tmp)
}

/// How old a temporary directory must be before it may be taken for abandoned: its builder
/// makes it and then locks it, and a probe in between must not remove it.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The lock file in a temporary directory that its builder holds while it lives.
const BUILDER_LOCK: &str = ".builder.lock";

/// Temporary directories this process is building, each with its builder lock held. A lock,
/// unlike a process id, means the same in every PID namespace that shares the directory
/// (pods on one node share its cache), and the kernel lets go of it when the builder dies.
static HELD: std::sync::Mutex<Vec<(PathBuf, std::fs::File)>> = std::sync::Mutex::new(Vec::new());

fn hold(tmp: &Path) -> Result<()> {
    let path = tmp.join(BUILDER_LOCK);
    let file = std::fs::File::create(&path)
        .map_err(PlanError::io(format!("creating {}", path.display())))?;
    // Waits out another process's probe (`builder_alive` takes the lock for an instant).
    file.lock()
        .map_err(PlanError::io(format!("locking {}", path.display())))?;
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((tmp.to_path_buf(), file));
    Ok(())
}

/// Lets go of the builder lock of `tmp` (published or given up).
fn release(tmp: &Path) {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(held, _)| held != tmp);
}

/// Whether some process holds the builder lock of the temporary directory `dir`; `None` for
/// a directory without one (made by a release before locks).
fn builder_alive(dir: &Path) -> Option<bool> {
    let file = std::fs::File::open(dir.join(BUILDER_LOCK)).ok()?;
    Some(file.try_lock().is_err())
}

/// Renames `tmp` to `target`; when another builder got there first, drops `tmp` and keeps theirs.
pub fn publish_dir(tmp: &Path, target: &Path) -> Result<()> {
    // The lock is let go of only once the directory has its final name (or is gone), so no
    // other process can take it for abandoned on the way.
    let published = match std::fs::rename(tmp, target) {
        Ok(()) => {
            let _ = std::fs::remove_file(target.join(BUILDER_LOCK));
            Ok(())
        }
        Err(_) if target.join(COMPLETE_MARKER).is_file() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(PlanError::Io {
            context: format!("moving {} into place", target.display()),
            source: e,
        }),
    };
    release(tmp);
    published
}

/// The file every complete cache directory holds last (its manifest); a directory without it
/// is not a cache entry.
pub const COMPLETE_MARKER: &str = "manifest.json";

/// Writes `bytes` to `path` in one go (cache files are written once).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(PlanError::io(format!("writing {}", path.display())))
}

/// Removes temporary directories whose builder is gone (killed before it could clean up): no
/// process holds their builder lock. Another live builder's directory is left alone, in this
/// PID namespace or another.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = builder_pid(&name) else {
            continue;
        };
        // A directory made moments ago may not hold its lock yet: it is left alone.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < ABANDONED_AFTER);
        if young {
            continue;
        }
        let alive = builder_alive(&entry.path()).unwrap_or_else(|| process_alive(pid));
        if !alive {
            tracing::info!(path = %entry.path().display(), "removing an abandoned cache build");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a temporary name `.<name>.<pid>.<nanos>.tmp`.
fn builder_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let _nanos = parts.next()?;
    parts.next()?.parse().ok()
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Without a cheap way to ask, every builder is assumed alive: temporary directories are then
/// only removed by their own builder.
#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `dir` look older than [`ABANDONED_AFTER`].
    fn age(dir: &Path) {
        let past = SystemTime::now() - ABANDONED_AFTER * 2;
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    #[test]
    fn abandoned_builds_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("0123abcd");
        // a pid above the kernel's maximum (4 194 304) never runs
        let dead = dir.path().join(".0123abcd.99999999.1.tmp");
        let live = dir
            .path()
            .join(format!(".0123abcd.{}.2.tmp", std::process::id()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();
        age(&dead);
        age(&live);
        let tmp = temp_dir_for(&target).unwrap();
        assert!(!dead.exists() || !cfg!(target_os = "linux"));
        assert!(live.exists() && tmp.exists());
        assert_eq!(builder_pid(".0123abcd.42.7.tmp"), Some(42));
        assert_eq!(builder_pid("0123abcd"), None);
    }

    #[test]
    fn a_builder_is_alive_while_its_lock_is_held_whatever_its_pid_says() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("feed");
        let building = temp_dir_for(&target).unwrap();
        // Another PID namespace: its pid means nothing here, its lock does.
        let foreign = dir.path().join(".other.99999999.1-0.tmp");
        std::fs::create_dir(&foreign).unwrap();
        let foreign_lock = std::fs::File::create(foreign.join(BUILDER_LOCK)).unwrap();
        foreign_lock.try_lock().unwrap();
        age(&foreign);
        // A fresh directory whose builder has not locked it yet is not taken for abandoned.
        let fresh = dir.path().join(".fresh.99999999.1-0.tmp");
        std::fs::create_dir(&fresh).unwrap();
        std::fs::File::create(fresh.join(BUILDER_LOCK)).unwrap();
        temp_dir_for(&dir.path().join("other")).unwrap();
        assert!(foreign.exists(), "a live builder's directory was removed");
        assert!(fresh.exists(), "a directory made a moment ago was removed");
        assert!(building.exists());
        // Its builder died: the kernel let go of the lock, and the directory goes.
        drop(foreign_lock);
        temp_dir_for(&dir.path().join("third")).unwrap();
        assert!(!foreign.exists());
        // Published, a directory leaves no lock behind.
        std::fs::write(building.join(COMPLETE_MARKER), b"{}").unwrap();
        publish_dir(&building, &target).unwrap();
        assert!(!target.join(BUILDER_LOCK).exists());
    }
}
