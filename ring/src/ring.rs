//! The shared-memory ring of the co-located transport (`Stream.SharedBatches`): a file of
//! `slots × slot_bytes` bytes in a shared-memory directory, written by the server and read by a
//! client on the same host. Which side may touch a slot is decided by the gRPC control stream
//! (the server writes a slot only while the client has released it, the client reads it only
//! between the server's `batch` and its own `release`), so the bytes need no locks.
//!
//! The file's name lives only until the client has mapped it: [`RingWriter::unlink`] removes
//! it then, and the memory is freed when the last mapping goes, whichever side crashes. A
//! server holds its rings' files locked, so a server that died in the moment between creating
//! and the client's mapping leaves a name the next [`RingWriter::create`] removes. Rings are
//! files only their user can open (0600) in a directory only that user may enter
//! ([`private_dir`]): no other local user can read a tenant's batches.
//!
//! A slot holds a batch's tokens and then its metadata (see [`SlotMeta`]), so that a control
//! message names only the slot and two lengths: decoding per-sample metadata from protobuf
//! costs more than writing the tokens.
//!
//! This module's `unsafe` is the mapping itself: memmap2 cannot know whether another process
//! resizes the file. Only the server that created the file ever sizes it, once, before its
//! name is announced.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};
use tokenlake_schemas::proto::DocSpan;

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

/// This host's identity for the transport: the kernel's boot id, which every container and
/// pod on one host shares (it is not namespaced) and two hosts never do. The host name is not
/// part of it: each pod on a node has its own, and trainers in one pod and the streamer in
/// another must still find each other. A client in another mount namespace that cannot open
/// the ring falls back to gRPC payloads. `None` where the kernel has no boot id (not Linux):
/// shared memory is then not offered.
pub fn host_identity() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(boot.trim().to_string())
}

/// Whether two host identities name one host: their boot ids are equal (clients before this
/// release appended `/<host name>`, which is ignored).
pub fn same_host(a: &str, b: &str) -> bool {
    let boot = |id: &str| id.split('/').next().unwrap_or_default().to_string();
    !a.is_empty() && boot(a) == boot(b)
}

/// The server's side: creates, sizes and writes the ring.
pub struct RingWriter {
    path: PathBuf,
    map: MmapMut,
    slots: u32,
    slot_bytes: usize,
    linked: bool,
    /// The ring's file, open and locked while the writer lives.
    _owner: Option<File>,
}

impl RingWriter {
    /// A new ring in this user's private directory under `base` (see [`private_dir`]): a file
    /// only this user can open, allocated in full, and locked by this process for as long as
    /// the writer lives (which is how the next server tells an orphan from a live ring).
    pub fn create(base: &Path, slots: u32, slot_bytes: usize) -> Result<RingWriter, RingError> {
        let dir = private_dir(base)?;
        remove_orphans(&dir);
        let len = slots as u64 * slot_bytes as u64;
        let name = format!("{PREFIX}{:016x}{:016x}", rand_u64(), rand_u64());
        let path = dir.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Never readable by another user, not even between creation and a chmod.
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(|e| ring_error(&path, format!("cannot be created: {e}")))?;
        let mut ring = RingWriter {
            path: path.clone(),
            // Replaced below; an empty anonymous map keeps Drop's unlink in charge on error.
            map: MmapMut::map_anon(1).map_err(|e| ring_error(&path, e))?,
            slots,
            slot_bytes,
            linked: true,
            _owner: None,
        };
        file.try_lock()
            .map_err(|e| ring_error(&path, format!("cannot be locked: {e}")))?;
        allocate(&file, len).map_err(|e| ring_error(&path, e))?;
        // SAFETY: the file was created above with `create_new` under a fresh name and is sized
        // once, here; the client maps it read-only and never resizes it (see the module doc).
        ring.map = unsafe { MmapMut::map_mut(&file) }
            .map_err(|e| ring_error(&path, format!("cannot be mapped: {e}")))?;
        ring._owner = Some(file);
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

/// Gives the ring's file all its blocks now. A sparse file gets its pages when they are first
/// written, and in a full tmpfs (any local user can fill `/dev/shm`; Docker's is 64 MiB) that
/// first write kills the server with SIGBUS; allocated up front, a full directory is a clear
/// error here instead, and the stream falls back to gRPC payloads.
#[cfg(target_os = "linux")]
fn allocate(file: &File, len: u64) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let size = libc::off_t::try_from(len).map_err(|_| format!("{len} bytes is too large"))?;
    // SAFETY: a plain system call on a file descriptor this function borrows for its duration.
    let err = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) };
    match err {
        0 => Ok(()),
        libc::ENOSPC => Err(format!(
            "no space for its {len} bytes (the shared-memory directory is full); \
             the stream can use gRPC payloads instead"
        )),
        e => Err(format!(
            "cannot be given its {len} bytes: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

#[cfg(not(target_os = "linux"))]
fn allocate(file: &File, len: u64) -> Result<(), String> {
    file.set_len(len)
        .map_err(|e| format!("cannot be sized to {len} bytes: {e}"))
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

/// A batch's metadata in its slot, after the tokens (at [`SlotMeta::offset`]), little-endian:
///
/// ```text
/// header   u64 step, u32 samples, u32 spans, u32 cursor bytes, u32 0
/// samples  × (u64 index, u32 stage, u32 component, u32 epoch,
///             u32 span_start, u32 span_end, u32 0)
/// spans    × (u64 doc_id, u32 offset, u32 len, u32 position, u32 0)
/// cursor   UTF-8
/// ```
///
/// Stages and components are numbers into the name lists the ring's announcement carries.
/// Every record is 8-byte aligned, so a reader may view the arrays in place.
pub struct SlotMeta;

/// One sample's record in [`SlotMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaSample {
    pub index: u64,
    pub stage: u32,
    pub component: u32,
    pub epoch: u32,
    pub span_start: u32,
    pub span_end: u32,
}

/// One document span's record in [`SlotMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaSpan {
    pub doc_id: u64,
    pub offset: u32,
    pub len: u32,
    pub position: u32,
}

/// The ring's span record is the wire span (`tokenlake.v1.DocSpan`) in fixed little-endian
/// form; these are the only conversions between the two.
impl From<&DocSpan> for MetaSpan {
    fn from(s: &DocSpan) -> Self {
        MetaSpan {
            doc_id: s.doc_id,
            offset: s.offset,
            len: s.len,
            position: s.position,
        }
    }
}

impl From<&MetaSpan> for DocSpan {
    fn from(s: &MetaSpan) -> Self {
        DocSpan {
            doc_id: s.doc_id,
            offset: s.offset,
            len: s.len,
            position: s.position,
        }
    }
}

const META_HEADER: usize = 24;
const META_SAMPLE: usize = 32;
const META_SPAN: usize = 24;

impl SlotMeta {
    /// Where the metadata starts in a slot whose tokens are `tokens_len` bytes.
    pub fn offset(tokens_len: usize) -> usize {
        tokens_len.next_multiple_of(8)
    }

    /// The bytes of the metadata of `samples` samples, `spans` spans and a cursor.
    pub fn len(samples: usize, spans: usize, cursor: &str) -> usize {
        META_HEADER + samples * META_SAMPLE + spans * META_SPAN + cursor.len()
    }

    /// Writes the metadata into `out` (the slot after [`SlotMeta::offset`]); its length, or
    /// `None` when it does not fit (then nothing is written and it travels in the message).
    pub fn write(
        out: &mut [u8],
        step: u64,
        samples: impl ExactSizeIterator<Item = MetaSample>,
        spans: impl ExactSizeIterator<Item = MetaSpan>,
        cursor: &str,
    ) -> Option<usize> {
        let (n, m) = (samples.len(), spans.len());
        let len = Self::len(n, m, cursor);
        let out = out.get_mut(..len)?;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&step.to_le_bytes());
        for v in [n as u32, m as u32, cursor.len() as u32, 0] {
            put(&v.to_le_bytes());
        }
        for s in samples {
            put(&s.index.to_le_bytes());
            for v in [s.stage, s.component, s.epoch, s.span_start, s.span_end, 0] {
                put(&v.to_le_bytes());
            }
        }
        for s in spans {
            put(&s.doc_id.to_le_bytes());
            for v in [s.offset, s.len, s.position, 0] {
                put(&v.to_le_bytes());
            }
        }
        put(cursor.as_bytes());
        debug_assert_eq!(at, len);
        Some(len)
    }

    /// Reads metadata written by [`SlotMeta::write`]: the step, samples, spans and cursor, or
    /// what is wrong with the bytes.
    pub fn read(bytes: &[u8]) -> Result<(u64, Vec<MetaSample>, Vec<MetaSpan>, String), String> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        if bytes.len() < META_HEADER {
            return Err(format!("{} bytes are shorter than its header", bytes.len()));
        }
        let (n, m, c) = (u32_at(8) as usize, u32_at(12) as usize, u32_at(16) as usize);
        let want = META_HEADER
            .checked_add(n.checked_mul(META_SAMPLE).ok_or("too many samples")?)
            .and_then(|l| l.checked_add(m.checked_mul(META_SPAN)?))
            .and_then(|l| l.checked_add(c))
            .ok_or("its counts overflow")?;
        if want != bytes.len() {
            return Err(format!(
                "{n} samples, {m} spans and a cursor of {c} bytes need {want} bytes, not {}",
                bytes.len()
            ));
        }
        let samples = (0..n)
            .map(|i| {
                let at = META_HEADER + i * META_SAMPLE;
                MetaSample {
                    index: u64_at(at),
                    stage: u32_at(at + 8),
                    component: u32_at(at + 12),
                    epoch: u32_at(at + 16),
                    span_start: u32_at(at + 20),
                    span_end: u32_at(at + 24),
                }
            })
            .collect();
        let spans_at = META_HEADER + n * META_SAMPLE;
        let spans = (0..m)
            .map(|i| {
                let at = spans_at + i * META_SPAN;
                MetaSpan {
                    doc_id: u64_at(at),
                    offset: u32_at(at + 8),
                    len: u32_at(at + 12),
                    position: u32_at(at + 16),
                }
            })
            .collect();
        let cursor = std::str::from_utf8(&bytes[spans_at + m * META_SPAN..])
            .map_err(|_| "its cursor is not UTF-8".to_string())?
            .to_string();
        Ok((u64_at(0), samples, spans, cursor))
    }
}

/// The directory under `base` where this user's rings are made: `tokenlake-<uid>`, created
/// mode 0700 and used only while it is a directory this user owns that no one else may enter
/// (`base`, typically `/dev/shm`, is writable by every local user, who could otherwise make
/// the name first, as a link or a directory of their own, and read every ring).
pub fn private_dir(base: &Path) -> Result<PathBuf, RingError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let dir = base.join(format!("tokenlake-{uid}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ring_error(&dir, format!("cannot be created: {e}"))),
        }
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|e| ring_error(&dir, format!("cannot be read: {e}")))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(ring_error(
                &dir,
                format!(
                    "is not a private directory of this user (uid {uid}, mode 0700): it is a \
                     {} of uid {} with mode {:o}; remove it",
                    if meta.is_dir() {
                        "directory"
                    } else {
                        "link or file"
                    },
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(dir)
    }
    #[cfg(not(unix))]
    {
        Ok(base.to_path_buf())
    }
}

/// Removes ring files whose server is gone (killed between creating a ring and its client's
/// mapping). A live server holds its ring's file locked, so a lock this process can take marks
/// an orphan; unlike a process id, a lock means the same in every PID namespace sharing the
/// directory (pods on one node).
fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(PREFIX)) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
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
    #[cfg(target_os = "linux")]
    fn a_ring_owns_its_memory_from_the_start() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let w = RingWriter::create(dir.path(), 4, 1 << 16).unwrap();
        let meta = std::fs::metadata(w.path()).unwrap();
        assert_eq!(meta.len(), 4 << 16);
        // Blocks allocated, not a sparse file whose first write could find the tmpfs full.
        assert!(meta.blocks() * 512 >= 4 << 16, "{} blocks", meta.blocks());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn rings_are_private_to_their_user_and_orphans_of_dead_servers_go() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let base = tempfile::tempdir().unwrap();
        // The shared directory every local user may enter, as /dev/shm is.
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let w = RingWriter::create(base.path(), 2, 4096).unwrap();
        let dir = w.path().parent().unwrap().to_path_buf();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(w.path()).unwrap().mode() & 0o777, 0o600);

        // A live server's ring stays; a dead server's (its lock gone) is removed.
        let orphan = dir.join(format!("{PREFIX}orphan"));
        std::fs::write(&orphan, b"").unwrap();
        let _next = RingWriter::create(base.path(), 2, 4096).unwrap();
        assert!(w.path().exists(), "a live ring was removed");
        assert!(!orphan.exists(), "an orphan stayed");

        // A directory of that name that is not this user's own private one is refused.
        let other = tempfile::tempdir().unwrap();
        let squatted = other.path().join(dir.file_name().unwrap());
        std::fs::create_dir(&squatted).unwrap();
        std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = RingWriter::create(other.path(), 2, 4096).err().unwrap();
        assert!(err.to_string().contains("not a private directory"), "{err}");
    }

    #[test]
    fn one_host_is_one_boot_id_whatever_the_host_names() {
        assert!(same_host("boot-a", "boot-a"));
        assert!(same_host("boot-a/pod-1", "boot-a"), "a pod of this node");
        assert!(same_host("boot-a/pod-1", "boot-a/pod-2"));
        assert!(!same_host("boot-b/pod-1", "boot-a"));
        assert!(!same_host("", ""));
    }

    #[test]
    fn a_slot_written_by_the_server_is_read_by_the_client_after_the_name_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RingWriter::create(dir.path(), 3, 16).unwrap();
        let r = RingReader::open(w.path(), 3, 16).unwrap();
        w.unlink();
        assert_eq!(
            std::fs::read_dir(private_dir(dir.path()).unwrap())
                .unwrap()
                .count(),
            0
        );
        w.slot_mut(2)[..5].copy_from_slice(b"hello");
        assert_eq!(r.slot(2, 5).unwrap(), b"hello");
        assert!(r.slot(3, 1).is_none() && r.slot(0, 17).is_none());
        let err = RingReader::open(&dir.path().join("nope"), 3, 16)
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot be opened"), "{err}");
    }

    #[test]
    fn slot_metadata_reads_back_as_written_and_refuses_what_does_not_fit() {
        let samples = [
            MetaSample {
                index: u64::MAX - 3,
                stage: 1,
                component: 2,
                epoch: 7,
                span_start: 0,
                span_end: 2,
            },
            MetaSample {
                index: 5,
                stage: 0,
                component: 0,
                epoch: 0,
                span_start: 2,
                span_end: 3,
            },
        ];
        let spans = [
            MetaSpan {
                doc_id: 0xdead_beef_0000_0001,
                offset: 9,
                len: 100,
                position: 0,
            },
            MetaSpan {
                doc_id: 2,
                offset: 0,
                len: 28,
                position: 100,
            },
            MetaSpan {
                doc_id: 3,
                offset: u32::MAX,
                len: 1,
                position: 127,
            },
        ];
        let cursor = "v1:plan:42";
        let len = SlotMeta::len(2, 3, cursor);
        assert_eq!(len, 24 + 64 + 72 + cursor.len());
        let mut slot = vec![0xffu8; 5 + SlotMeta::offset(5) + len];
        let at = SlotMeta::offset(5);
        assert_eq!(at, 8);
        let written = SlotMeta::write(
            &mut slot[at..],
            41,
            samples.iter().copied(),
            spans.iter().copied(),
            cursor,
        );
        assert_eq!(written, Some(len));
        let (step, s, p, c) = SlotMeta::read(&slot[at..at + len]).unwrap();
        assert_eq!(
            (step, s.as_slice(), p.as_slice(), c.as_str()),
            (41, &samples[..], &spans[..], cursor)
        );
        // One byte short: nothing is written, and the caller sends the metadata instead.
        let mut short = vec![0u8; len - 1];
        let none = SlotMeta::write(
            &mut short,
            41,
            samples.iter().copied(),
            spans.iter().copied(),
            cursor,
        );
        assert_eq!(none, None);
        assert!(short.iter().all(|&b| b == 0));
        // A length that disagrees with the counts is refused with both.
        let err = SlotMeta::read(&slot[at..at + len - 1]).unwrap_err();
        assert!(
            err.contains("need") && err.contains(&len.to_string()),
            "{err}"
        );
        assert!(SlotMeta::read(&[0; 3]).unwrap_err().contains("header"));
    }

    #[test]
    fn dropping_the_writer_removes_the_name_and_leaves_other_files_alone() {
        let base = tempfile::tempdir().unwrap();
        drop(RingWriter::create(base.path(), 2, 8).unwrap());
        let dir = private_dir(base.path()).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let other = dir.join("unrelated");
        std::fs::write(&other, b"x").unwrap();
        let _w = RingWriter::create(base.path(), 2, 8).unwrap();
        assert!(other.exists());
    }

    /// Tests that become a second local user (`nobody`, through `setpriv`): they need root and
    /// `setpriv`, and `tests/run.sh` leaves them out, saying so, where either is missing.
    #[cfg(target_os = "linux")]
    mod needs_second_user {
        use super::*;

        /// Whether `nobody` could read `path`, and what it said.
        fn cat_as_nobody(path: &Path) -> (bool, String) {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
                .arg(path)
                .output()
                .expect("this test needs setpriv (util-linux) and root");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }

        #[test]
        #[ignore = "needs root and setpriv to become a second user (tests/run.sh runs it there)"]
        fn another_local_user_cannot_read_a_ring() {
            use std::os::unix::fs::PermissionsExt;
            // SAFETY: geteuid has no preconditions.
            assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
            let base = tempfile::tempdir().unwrap();
            std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
            let w = RingWriter::create(base.path(), 2, 4096).unwrap();
            let denied = cat_as_nobody(w.path());
            assert!(!denied.0, "another user read a ring: {}", denied.1);
            assert!(denied.1.contains("Permission denied"), "{}", denied.1);
            // The same bytes made as rings used to be (0644 in an open directory) it can
            // read, so the check above can fail.
            let open = base.path().join("open-ring");
            std::fs::write(&open, b"tokens").unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(cat_as_nobody(&open).0, "the control case must be readable");
        }
    }
}
