//! Progress of a long job on stderr: a live bar on a terminal, a line every few seconds
//! otherwise (logs of batch jobs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokenlake_ingest::IngestProgress;
use tokio::task::JoinHandle;

/// Shows ingest progress until dropped.
pub struct IngestProgressView {
    task: JoinHandle<()>,
    bar: ProgressBar,
}

impl IngestProgressView {
    pub fn start(progress: Arc<IngestProgress>) -> Self {
        let (bar, terminal) =
            stderr_bar("{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}");
        let view_bar = bar.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last_line = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let get = IngestProgress::get;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let docs = get(&progress.docs_read);
                let tokens = get(&progress.tokens_written);
                let message = format!(
                    "{docs} docs ({:.0} docs/s), {} tokens ({}/s), {} rejected",
                    docs as f64 / secs,
                    human(tokens as f64),
                    human(tokens as f64 / secs),
                    get(&progress.docs_rejected)
                );
                view_bar.set_length(get(&progress.input_bytes_total));
                view_bar.set_position(get(&progress.input_bytes_read));
                if terminal {
                    view_bar.set_message(message);
                } else if last_line.elapsed() >= Duration::from_secs(10) {
                    last_line = Instant::now();
                    eprintln!("ingest: {message}");
                }
            }
        });
        IngestProgressView { task, bar }
    }
}

impl Drop for IngestProgressView {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// A bar drawn on stderr when it is a terminal, hidden otherwise (the views then print a line
/// now and then instead); returns it and whether stderr is a terminal.
fn stderr_bar(template: &str) -> (ProgressBar, bool) {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid progress template"));
    (bar, terminal)
}

/// 1234567 → "1.23M".
pub fn human(x: f64) -> String {
    let (value, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{value:.2}{unit}")
}

/// Shows the phases of planning (selecting, copying tokens, building indexes) until dropped.
pub struct PlanProgressView {
    task: JoinHandle<()>,
    bar: ProgressBar,
}

impl PlanProgressView {
    pub fn start(progress: Arc<tokenlake_plan::Progress>) -> Self {
        let (bar, terminal) =
            stderr_bar("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}");
        let view_bar = bar.clone();
        let task = tokio::spawn(async move {
            let mut last_phase = String::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let phase = progress.phase();
                view_bar.set_length(progress.total.load(std::sync::atomic::Ordering::Relaxed));
                view_bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
                if terminal {
                    view_bar.set_message(phase);
                } else if phase != last_phase && !phase.is_empty() {
                    eprintln!("plan: {phase}");
                    last_phase = phase;
                }
            }
        });
        PlanProgressView { task, bar }
    }
}

impl Drop for PlanProgressView {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// Shows documents curated so far until dropped.
pub struct CurateProgressView {
    task: JoinHandle<()>,
    bar: ProgressBar,
}

impl CurateProgressView {
    pub fn start(progress: Arc<tokenlake_curate::CurateProgress>) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let (bar, terminal) =
            stderr_bar("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} docs {msg}");
        let view_bar = bar.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last_line = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let done = progress.docs_done.load(Relaxed);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                view_bar.set_length(progress.docs_total.load(Relaxed));
                view_bar.set_position(done);
                view_bar.set_message(format!("({rate:.0} docs/s)"));
                if !terminal && last_line.elapsed() > Duration::from_secs(5) {
                    eprintln!("curate: {done} docs ({rate:.0} docs/s)");
                    last_line = Instant::now();
                }
            }
        });
        CurateProgressView { task, bar }
    }
}

impl Drop for CurateProgressView {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
