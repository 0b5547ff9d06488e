//! Live counters of a running ingest, read by whoever shows progress.

use std::sync::atomic::{AtomicU64, Ordering};

/// Updated by the ingest threads as they go; cheap to read from another thread at any time.
#[derive(Debug, Default)]
pub struct IngestProgress {
    /// Compressed bytes of input consumed so far, against `input_bytes_total`.
    pub input_bytes_read: AtomicU64,
    pub input_bytes_total: AtomicU64,
    pub docs_read: AtomicU64,
    pub docs_written: AtomicU64,
    pub docs_already_present: AtomicU64,
    pub docs_rejected: AtomicU64,
    pub tokens_written: AtomicU64,
}

impl IngestProgress {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
