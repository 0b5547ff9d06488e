//! Ctrl-C and SIGTERM: the first sets a cancel flag that long jobs check between safe points;
//! a second exits at once (every job is written so that this is safe too).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by Ctrl-C or SIGTERM, as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Resolves at the first Ctrl-C or SIGTERM (what a process manager sends).
pub async fn first_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// The stop of a job that polls a shared flag.
pub fn set_flag(flag: Arc<AtomicBool>) -> impl FnOnce() + Send + 'static {
    move || flag.store(true, Ordering::Relaxed)
}

/// Waits for Ctrl-C or SIGTERM, prints `message`, calls `stop` (which cancels the job); exits
/// on a second Ctrl-C.
pub async fn stop_on_signal(stop: impl FnOnce() + Send + 'static, message: &'static str) {
    first_signal().await;
    eprintln!("{message} (Ctrl-C again to quit at once)");
    stop();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }
}
