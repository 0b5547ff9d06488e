//! One progress type for every long job (curation, evaluation, exports, similarity, plan and
//! cache builds, shard commits): the job names its phase and counts what it has done against a
//! total; a progress bar, a server's job status or a test reads the counts from another thread;
//! whoever may stop the job (Ctrl-C, an admin's cancel, a shutting-down server) cancels its
//! token, and the job checks it between safe points and ends with nothing half-written.
//!
//! The ingest keeps counters of its own (`tokenlake_ingest::IngestProgress`: bytes, documents
//! read, written, skipped and rejected), which its summary and job status report.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A shared stop signal: cloning it shares it, and cancelling any clone cancels them all.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for loops and threads that poll an `AtomicBool`.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// A flag shared already (a server's shutdown) as a token.
impl From<Arc<AtomicBool>> for Cancel {
    fn from(flag: Arc<AtomicBool>) -> Cancel {
        Cancel(flag)
    }
}

/// A long job's phase, counts and stop signal.
#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<String>,
    /// Units done so far, against `total` (0 while unknown).
    pub done: AtomicU64,
    pub total: AtomicU64,
    cancel: Cancel,
}

impl Progress {
    /// Progress of a job that `cancel` stops (a token shared with whoever stops it).
    pub fn with_cancel(cancel: Cancel) -> Progress {
        Progress {
            cancel,
            ..Progress::default()
        }
    }

    /// Starts a phase of `total` units (0 when unknown).
    pub fn start(&self, phase: &str, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.to_string();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn phase(&self) -> String {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// (done, total) now.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Asks the job to stop at its next safe point.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The job's stop signal, to share with whoever stops it.
    pub fn cancel_token(&self) -> &Cancel {
        &self.cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_token_stops_every_job_that_holds_it() {
        let shutdown = Cancel::new();
        let (a, b) = (
            Progress::with_cancel(shutdown.clone()),
            Progress::with_cancel(shutdown.clone()),
        );
        let alone = Progress::default();
        assert!(!a.is_cancelled() && !b.is_cancelled());
        shutdown.cancel();
        assert!(a.is_cancelled() && b.is_cancelled() && !alone.is_cancelled());
        alone.start("reading", 10);
        alone.add(3);
        assert_eq!((alone.phase(), alone.counts()), ("reading".into(), (3, 10)));
    }
}
