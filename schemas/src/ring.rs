//! The shared-memory ring of the co-located transport (`Stream.SharedBatches`): a file of
//! `slots × slot_bytes` bytes in a shared-memory directory, written by the server and read by a
//! client on the same host. Which side may touch a slot is decided by the gRPC control stream
//! (the server writes a slot only while the client has released it, the client reads it only
//! between the server's `batch` and its own `release`), so the bytes need no locks.
//!
//! The file's name lives only until the client has mapped it: [`RingWriter::unlink`] removes
//! it then, and the memory is freed when the last mapping goes, whichever side crashes. Names
//! carry the creating process id, so a server that died in the moment between creating and the
//! client's mapping leaves a name [`RingWriter::create`] of the next server removes.
//!
//! This module's `unsafe` is the mapping itself: memmap2 cannot know whether another process
//! resizes the file. Only the server that created the file ever sizes it, once, before its
//! name is announced.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};

/// Where rings are made unless the server is told otherwise: tmpfs on Linux.
pub const DEFAULT_RING_DIR: &str = "/dev/shm";
const PREFIX: &str = "tokenlake-ring-";

#[derive(Debug, thiserror::Error)]
#[error("shared-memory ring {path}: {message}")]
pub struct RingError {
    pub path: String,
    pub message: String,
}

fn ring_error(path: &Path, message: impl std::fmt::Display) -> RingError {
    RingError {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// This host's identity for the transport: the kernel's boot id (which two containers on one
/// host share, and two hosts never do) and the host name. `None` where the kernel has no boot
/// id (not Linux): shared memory is then not offered.
pub fn host_identity() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Some(format!("{}/{}", boot.trim(), name.trim()))
}

/// The server's side: creates, sizes and writes the ring.
pub struct RingWriter {
    path: PathBuf,
    map: MmapMut,
    slots: u32,
    slot_bytes: usize,
    linked: bool,
}

impl RingWriter {
    pub fn create(dir: &Path, slots: u32, slot_bytes: usize) -> Result<RingWriter, RingError> {
        remove_orphans(dir);
        let len = slots as u64 * slot_bytes as u64;
        let name = format!("{PREFIX}{}-{:016x}", std::process::id(), rand_u64());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ring_error(&path, format!("cannot be created: {e}")))?;
        let mut ring = RingWriter {
            path: path.clone(),
            // Replaced below; an empty anonymous map keeps Drop's unlink in charge on error.
            map: MmapMut::map_anon(1).map_err(|e| ring_error(&path, e))?,
            slots,
            slot_bytes,
            linked: true,
        };
        file.set_len(len)
            .map_err(|e| ring_error(&path, format!("cannot be sized to {len} bytes: {e}")))?;
        // SAFETY: the file was created above with `create_new` under a fresh name and is sized
        // once, here; the client maps it read-only and never resizes it (see the module doc).
        ring.map = unsafe { MmapMut::map_mut(&file) }
            .map_err(|e| ring_error(&path, format!("cannot be mapped: {e}")))?;
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// The writable bytes of `slot`; the caller owns the slot by the control protocol.
    pub fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        let at = slot as usize * self.slot_bytes;
        &mut self.map[at..at + self.slot_bytes]
    }

    /// Removes the file's name (once the client has mapped it); the memory stays mapped.
    pub fn unlink(&mut self) {
        if self.linked {
            let _ = std::fs::remove_file(&self.path);
            self.linked = false;
        }
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// The client's side: the ring mapped read-only.
pub struct RingReader {
    map: Mmap,
    slots: u32,
    slot_bytes: usize,
}

impl RingReader {
    pub fn open(path: &Path, slots: u32, slot_bytes: usize) -> Result<RingReader, RingError> {
        let file =
            File::open(path).map_err(|e| ring_error(path, format!("cannot be opened: {e}")))?;
        let len = file.metadata().map_err(|e| ring_error(path, e))?.len();
        let want = slots as u64 * slot_bytes as u64;
        if len != want {
            return Err(ring_error(
                path,
                format!("is {len} bytes, not the announced {slots} × {slot_bytes}"),
            ));
        }
        // SAFETY: only the server sizes the file, before announcing it; we map read-only.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| ring_error(path, format!("cannot be mapped: {e}")))?;
        Ok(RingReader {
            map,
            slots,
            slot_bytes,
        })
    }

    /// The first `len` bytes of `slot`, or `None` when the announcement is out of bounds.
    pub fn slot(&self, slot: u32, len: usize) -> Option<&[u8]> {
        if slot >= self.slots || len > self.slot_bytes {
            return None;
        }
        let at = slot as usize * self.slot_bytes;
        Some(&self.map[at..at + len])
    }
}

/// Removes ring files of processes that no longer run (a server killed between creating a
/// ring and its client's mapping).
fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A name nobody guesses: the clock and the process, mixed.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_written_by_the_server_is_read_by_the_client_after_the_name_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RingWriter::create(dir.path(), 3, 16).unwrap();
        let r = RingReader::open(w.path(), 3, 16).unwrap();
        w.unlink();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        w.slot_mut(2)[..5].copy_from_slice(b"hello");
        assert_eq!(r.slot(2, 5).unwrap(), b"hello");
        assert!(r.slot(3, 1).is_none() && r.slot(0, 17).is_none());
        let err = RingReader::open(&dir.path().join("nope"), 3, 16)
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot be opened"), "{err}");
    }

    #[test]
    fn dropping_the_writer_removes_the_name_and_orphans_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        drop(RingWriter::create(dir.path(), 2, 8).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A name left by a process that is gone (pids stop well below u32::MAX).
        let orphan = dir.path().join(format!("{PREFIX}4294967294-0"));
        std::fs::write(&orphan, b"x").unwrap();
        let other = dir.path().join("unrelated");
        std::fs::write(&other, b"x").unwrap();
        let _w = RingWriter::create(dir.path(), 2, 8).unwrap();
        assert!(!orphan.exists() && other.exists());
    }
}
