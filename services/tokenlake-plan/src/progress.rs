//! Progress of planning, read by a progress bar on another thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<String>,
    pub done: AtomicU64,
    pub total: AtomicU64,
}

impl Progress {
    /// Starts a phase of `total` units (0 when unknown).
    pub fn start(&self, phase: &str, total: u64) {
        *self.phase.lock().expect("progress lock") = phase.to_string();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn phase(&self) -> String {
        self.phase.lock().expect("progress lock").clone()
    }

    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}
