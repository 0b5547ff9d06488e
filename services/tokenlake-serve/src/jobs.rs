//! Long jobs the Admin service starts (ingest): each runs in the background with live progress
//! that Watch follows, and can be cancelled; a cancelled or failed ingest commits nothing, as
//! on the command line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokenlake_ingest::{IngestError, IngestOptions, IngestProgress};
use tokenlake_schemas::proto::JobStatus;
use tonic::{Code, Status};

use crate::error::{ingest_status, status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

pub struct Job {
    id: String,
    kind: &'static str,
    lake: String,
    progress: Arc<IngestProgress>,
    cancel: Arc<AtomicBool>,
    outcome: Mutex<(JobState, String, u64)>,
    changed: tokio::sync::watch::Sender<()>,
}

impl Job {
    pub fn status(&self) -> JobStatus {
        let (state, message, version) = self.outcome.lock().expect("job lock").clone();
        let p = &self.progress;
        JobStatus {
            job_id: self.id.clone(),
            kind: self.kind.to_string(),
            lake: self.lake.clone(),
            state: state.name().to_string(),
            docs_done: p.docs_read.load(Ordering::Relaxed),
            tokens_done: p.tokens_written.load(Ordering::Relaxed),
            bytes_read: p.input_bytes_read.load(Ordering::Relaxed),
            bytes_total: p.input_bytes_total.load(Ordering::Relaxed),
            message,
            version,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.lock().expect("job lock").0 != JobState::Running
    }

    /// Resolves when the job's state changes (or at once if it finished already).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    fn finish(&self, state: JobState, message: String, version: u64) {
        *self.outcome.lock().expect("job lock") = (state, message, version);
        self.changed.send_replace(());
    }
}

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    next: AtomicU64,
}

impl Jobs {
    pub fn get(&self, id: &str) -> Result<Arc<Job>, Status> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .get(id)
            .cloned()
            .ok_or_else(|| status(Code::NotFound, format!("no job {id:?} on this server")))
    }

    pub fn list(&self) -> Vec<Arc<Job>> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .values()
            .cloned()
            .collect()
    }

    /// Starts an ingest into `lake` (the server's name for it); one job per lake at a time,
    /// since two would race to commit the next version.
    pub fn start_ingest(
        &self,
        lake: &str,
        options: IngestOptions,
        shutting_down: Arc<AtomicBool>,
    ) -> Result<Arc<Job>, Status> {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if let Some(running) = jobs.values().find(|j| j.lake == lake && !j.is_finished()) {
            return Err(status(
                Code::FailedPrecondition,
                format!(
                    "lake {lake:?} has a running job {}; wait for it (Admin.Watch) or cancel it",
                    running.id
                ),
            ));
        }
        let id = format!("ingest-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let job = Arc::new(Job {
            id: id.clone(),
            kind: "ingest",
            lake: lake.to_string(),
            progress: Arc::new(IngestProgress::default()),
            cancel: Arc::new(AtomicBool::new(false)),
            outcome: Mutex::new((JobState::Running, String::new(), 0)),
            changed: tokio::sync::watch::channel(()).0,
        });
        jobs.insert(id, job.clone());
        drop(jobs);
        let running = job.clone();
        tokio::spawn(async move {
            // A server shutdown cancels the job like a cancel request: nothing is committed.
            let cancel = running.cancel.clone();
            let relay = tokio::spawn(async move {
                while !shutting_down.load(Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                cancel.store(true, Ordering::Relaxed);
            });
            let result =
                tokenlake_ingest::ingest(options, running.progress.clone(), running.cancel.clone())
                    .await;
            relay.abort();
            match result {
                Ok(summary) => {
                    let message = match summary.version {
                        Some(v) => format!(
                            "committed version {v}: {} documents written, {} already present, {} rejected",
                            summary.docs_written,
                            summary.docs_already_present,
                            summary.docs_rejected
                        ),
                        None => "nothing new to commit".to_string(),
                    };
                    tracing::info!(job = %running.id, %message, "ingest finished");
                    running.finish(JobState::Succeeded, message, summary.version.unwrap_or(0));
                }
                Err(IngestError::Interrupted) => running.finish(
                    JobState::Cancelled,
                    "cancelled: nothing was committed".into(),
                    0,
                ),
                Err(e) => {
                    let message = ingest_status(e).message().to_string();
                    tracing::warn!(job = %running.id, %message, "ingest failed");
                    running.finish(JobState::Failed, message, 0);
                }
            }
        });
        Ok(job)
    }
}
