//! Long jobs the Admin service starts (ingest, curate): each runs in the background with live
//! progress that Watch follows, and can be cancelled; a cancelled or failed job commits
//! nothing, as on the command line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::future::Future;

use tokenlake_curate::CurateError;
use tokenlake_ingest::{IngestError, IngestOptions, IngestProgress};
use tokenlake_lake::{Cancel, Lake, LakeLocation, Progress};
use tokenlake_schemas::proto::JobStatus;
use tonic::{Code, Status};

use crate::error::{job_failure, status};

/// What a job reports while it runs.
enum JobProgress {
    Ingest(Arc<IngestProgress>),
    Curate(Arc<Progress>),
}

/// How a job ended: its state, a message and the version it committed (0 for none).
type Outcome = (JobState, String, u64);

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
    progress: JobProgress,
    cancel: Arc<AtomicBool>,
    outcome: Mutex<Outcome>,
    changed: tokio::sync::watch::Sender<()>,
}

impl Job {
    pub fn status(&self) -> JobStatus {
        let (state, message, version) = self.outcome.lock().expect("job lock").clone();
        let mut status = JobStatus {
            job_id: self.id.clone(),
            kind: self.kind.to_string(),
            lake: self.lake.clone(),
            state: state.name().to_string(),
            message,
            version,
            ..JobStatus::default()
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        match &self.progress {
            JobProgress::Ingest(p) => {
                status.docs_done = get(&p.docs_read);
                status.tokens_done = get(&p.tokens_written);
                status.bytes_read = get(&p.input_bytes_read);
                status.bytes_total = get(&p.input_bytes_total);
            }
            JobProgress::Curate(p) => (status.docs_done, status.docs_total) = p.counts(),
        }
        status
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

    /// Starts an ingest into `lake` (the server's name for it).
    pub fn start_ingest(
        &self,
        lake: &str,
        options: IngestOptions,
        shutting_down: Arc<AtomicBool>,
    ) -> Result<Arc<Job>, Status> {
        let progress = Arc::new(IngestProgress::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let (p, c) = (progress.clone(), cancel.clone());
        self.start("ingest", lake, JobProgress::Ingest(progress), cancel, shutting_down, async move {
            match tokenlake_ingest::ingest(options, p, c).await {
                Ok(summary) => match summary.version {
                    Some(v) => (
                        JobState::Succeeded,
                        format!(
                            "committed version {v}: {} documents written, {} already present, {} rejected",
                            summary.docs_written, summary.docs_already_present, summary.docs_rejected
                        ),
                        v,
                    ),
                    None => (JobState::Succeeded, "nothing new to commit".to_string(), 0),
                },
                Err(IngestError::Interrupted) => cancelled(),
                Err(e) => (JobState::Failed, job_failure(&e), 0),
            }
        })
    }

    /// Starts `curate` on the latest version of `lake` (the server's name, at `location`).
    pub fn start_curate(
        &self,
        lake: &str,
        location: LakeLocation,
        shutting_down: Arc<AtomicBool>,
    ) -> Result<Arc<Job>, Status> {
        let cancel = Arc::new(AtomicBool::new(false));
        // The job's progress stops when the job is cancelled (or the server shuts down).
        let progress = Arc::new(Progress::with_cancel(Cancel::from(cancel.clone())));
        let p = progress.clone();
        self.start(
            "curate",
            lake,
            JobProgress::Curate(progress),
            cancel,
            shutting_down,
            async move {
                let lake = match Lake::open(&location).await {
                    Ok(lake) => lake,
                    Err(e) => return (JobState::Failed, job_failure(&e), 0),
                };
                match tokenlake_curate::curate(&lake, &Default::default(), &p).await {
                    Ok(s) => (
                        JobState::Succeeded,
                        format!(
                            "committed version {}: {} duplicates among {} documents",
                            s.version, s.duplicates, s.docs
                        ),
                        s.version,
                    ),
                    Err(CurateError::Interrupted) => cancelled(),
                    Err(e) => (JobState::Failed, job_failure(&e), 0),
                }
            },
        )
    }

    /// Registers a job and runs `work` in the background; one job per lake at a time, since
    /// two would race to commit the next version.
    fn start(
        &self,
        kind: &'static str,
        lake: &str,
        progress: JobProgress,
        cancel: Arc<AtomicBool>,
        shutting_down: Arc<AtomicBool>,
        work: impl Future<Output = Outcome> + Send + 'static,
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
        let id = format!("{kind}-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let job = Arc::new(Job {
            id: id.clone(),
            kind,
            lake: lake.to_string(),
            progress,
            cancel,
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
            let (state, message, version) = work.await;
            relay.abort();
            tracing::info!(job = %running.id, ?state, %message, "job finished");
            running.finish(state, message, version);
        });
        Ok(job)
    }
}

fn cancelled() -> Outcome {
    (
        JobState::Cancelled,
        "cancelled: nothing was committed".into(),
        0,
    )
}
