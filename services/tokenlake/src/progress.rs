//! Progress of a long job on stderr: a live bar on a terminal, a line every few seconds
//! otherwise (logs of batch jobs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokenlake_ingest::IngestProgress;
use tokio::task::JoinHandle;

/// A progress bar (or, off a terminal, a line now and then) that a task updates four times a
/// second until the view is dropped.
pub struct ProgressView {
    task: JoinHandle<()>,
    bar: ProgressBar,
}

impl ProgressView {
    /// `update` gets the bar and whether stderr is a terminal, at every tick.
    fn every_tick(
        template: &str,
        mut update: impl FnMut(&ProgressBar, bool) + Send + 'static,
    ) -> ProgressView {
        let (bar, terminal) = stderr_bar(template);
        let view_bar = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                update(&view_bar, terminal);
            }
        });
        ProgressView { task, bar }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// Shows ingest progress until dropped.
pub struct IngestProgressView;

impl IngestProgressView {
    pub fn start(progress: Arc<IngestProgress>) -> ProgressView {
        let started = Instant::now();
        let mut last_line = Instant::now();
        ProgressView::every_tick(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
            move |view_bar, terminal| {
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
            },
        )
    }
}

/// Shows bytes fetched from object storage (remote ingest inputs) until dropped.
pub struct FetchProgressView;

impl FetchProgressView {
    pub fn start(fetched: Arc<std::sync::atomic::AtomicU64>) -> ProgressView {
        let started = Instant::now();
        let mut last_line = Instant::now();
        ProgressView::every_tick(
            "{spinner} [{elapsed_precise}] fetching inputs {msg}",
            move |view_bar, terminal| {
                let bytes = fetched.load(std::sync::atomic::Ordering::Relaxed) as f64;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let message = format!("{}B ({}B/s)", human(bytes), human(bytes / secs));
                if terminal {
                    view_bar.set_message(message);
                } else if last_line.elapsed() >= Duration::from_secs(10) {
                    last_line = Instant::now();
                    eprintln!("fetching inputs: {message}");
                }
            },
        )
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
pub struct PlanProgressView;

impl PlanProgressView {
    pub fn start(progress: Arc<tokenlake_plan::Progress>) -> ProgressView {
        let mut last_phase = String::new();
        ProgressView::every_tick(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            move |view_bar, terminal| {
                let phase = progress.phase();
                view_bar.set_length(progress.total.load(std::sync::atomic::Ordering::Relaxed));
                view_bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
                if terminal {
                    view_bar.set_message(phase);
                } else if phase != last_phase && !phase.is_empty() {
                    eprintln!("plan: {phase}");
                    last_phase = phase;
                }
            },
        )
    }
}

/// Shows documents done out of a total until dropped; `counts` gives (done, total).
pub struct DocsProgressView;

impl DocsProgressView {
    pub fn start(
        job: &'static str,
        counts: impl Fn() -> (u64, u64) + Send + 'static,
    ) -> ProgressView {
        let started = Instant::now();
        let mut last_line = Instant::now();
        ProgressView::every_tick(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} docs {msg}",
            move |view_bar, terminal| {
                let (done, total) = counts();
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                view_bar.set_length(total);
                view_bar.set_position(done);
                view_bar.set_message(format!("({rate:.0} docs/s)"));
                if !terminal && last_line.elapsed() >= Duration::from_secs(10) {
                    eprintln!("{job}: {done} docs ({rate:.0} docs/s)");
                    last_line = Instant::now();
                }
            },
        )
    }
}

/// Runs a long job of documents: a progress bar from `progress`, and Ctrl-C or
/// SIGTERM setting `cancel` (printing `stopping`), both gone when the job ends.
pub async fn run_docs_job<T>(
    job: &'static str,
    stopping: &'static str,
    progress: Arc<tokenlake_lake::DocsProgress>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let watcher = tokio::spawn(crate::signal::stop_on_signal(cancel, stopping));
    let view = DocsProgressView::start(job, move || progress.counts());
    let result = work.await;
    drop(view);
    watcher.abort();
    result
}
