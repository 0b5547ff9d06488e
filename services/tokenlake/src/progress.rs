//! Progress of a long job on stderr: a live bar on a terminal, a line every few seconds
//! otherwise (logs of batch jobs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokenlake_ingest::IngestProgress;
use tokenlake_lake::Progress;
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

/// Shows a job's [`Progress`] until dropped: its phase, and a bar of what it has done against
/// its total in `unit`s (documents, shards, rows); off a terminal, a line at every new phase and
/// every ten seconds.
pub struct JobProgressView;

impl JobProgressView {
    pub fn start(job: &'static str, unit: &'static str, progress: Arc<Progress>) -> ProgressView {
        let started = Instant::now();
        let mut last_line = Instant::now();
        let mut last_phase = String::new();
        ProgressView::every_tick(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            move |view_bar, terminal| {
                let (done, total) = progress.counts();
                let phase = progress.phase();
                view_bar.set_length(total);
                view_bar.set_position(done);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let counted = match (unit.is_empty(), total) {
                    (true, _) => String::new(),
                    (false, 0) if done == 0 => String::new(),
                    (false, 0) => format!("{done} {unit} ({rate:.0}/s)"),
                    (false, _) => format!("{done} of {total} {unit} ({rate:.0}/s)"),
                };
                let message = [phase.as_str(), counted.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ");
                if terminal {
                    view_bar.set_message(message);
                } else if (phase != last_phase || last_line.elapsed() >= Duration::from_secs(10))
                    && !message.is_empty()
                {
                    eprintln!("{job}: {message}");
                    last_line = Instant::now();
                    last_phase = phase;
                }
            },
        )
    }
}

/// Runs a long job: a progress bar of `progress` in `unit`s, and Ctrl-C or SIGTERM cancelling
/// it (printing `stopping`), both gone when the job ends.
pub async fn run_job<T>(
    job: &'static str,
    unit: &'static str,
    stopping: &'static str,
    progress: Arc<Progress>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let token = progress.cancel_token().clone();
    let watcher = tokio::spawn(crate::signal::stop_on_signal(
        move || token.cancel(),
        stopping,
    ));
    let view = JobProgressView::start(job, unit, progress);
    let result = work.await;
    drop(view);
    watcher.abort();
    result
}
