//! Live counters of a long job over a lake's documents (curation, exports, similarity), read by
//! progress bars and job status while the job runs.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct DocsProgress {
    pub docs_total: AtomicU64,
    pub docs_done: AtomicU64,
}

impl DocsProgress {
    /// (done, total) now.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.docs_done.load(Ordering::Relaxed),
            self.docs_total.load(Ordering::Relaxed),
        )
    }
}
