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
    let name = target.file_name().expect("named").to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    std::fs::create_dir(&tmp).map_err(PlanError::io(format!("creating {}", tmp.display())))?;
    Ok(tmp)
}

/// Renames `tmp` to `target`; when another builder got there first, drops `tmp` and keeps theirs.
pub fn publish_dir(tmp: &Path, target: &Path) -> Result<()> {
    match std::fs::rename(tmp, target) {
        Ok(()) => Ok(()),
        Err(_) if target.join(COMPLETE_MARKER).is_file() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(PlanError::Io {
            context: format!("moving {} into place", target.display()),
            source: e,
        }),
    }
}

/// The file every complete cache directory holds last (its manifest); a directory without it
/// is not a cache entry.
pub const COMPLETE_MARKER: &str = "manifest.json";

/// Writes `bytes` to `path` in one go (cache files are written once).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(PlanError::io(format!("writing {}", path.display())))
}
