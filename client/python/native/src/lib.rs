//! `tokenlake._native`: the Rust side of the Python package. It runs the `tokenlake` command
//! in the Python process that the package's console script starts (so `pip install` puts the
//! same command on PATH as a build of the workspace), plans and streams in process through the
//! same crates the server runs (`stream.rs`), and reads and labels lakes (`lake.rs`).
//!
//! Work runs on a runtime of this module's own, never on the calling Python thread, with the
//! interpreter released; the caller waits in short slices so that Ctrl-C reaches Python
//! (`run`).

mod lake;
mod mix;
mod stream;

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokenlake_schemas::{ErrorCode, ServiceError};

pyo3::create_exception!(
    _native,
    NativeError,
    pyo3::exceptions::PyException,
    "An error of the Rust side: args are (kind, message); the package raises its own types."
);

/// Runs the `tokenlake` command line `argv` (the program's name first) and ends the process
/// with its exit code, as the binary does; Python's exit handlers do not run.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> PyResult<()> {
    // The command runs its own threads and runtime; the interpreter need not be held.
    let code = py.detach(|| tokenlake::main_with_args(argv));
    // `ExitCode` gives no number on stable Rust; the command's codes are 0..=255.
    let number = (0..=u8::MAX)
        .find(|&n| std::process::ExitCode::from(n) == code)
        .unwrap_or(1);
    std::process::exit(i32::from(number))
}

/// The package's version, as the workspace's crates have it.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    stream::register(m)?;
    lake::register(m)?;
    mix::register(m)?;
    Ok(())
}

/// The stack of the runtime's threads: planning SQL over deep expressions recurses (see the
/// command's `STACK_BYTES`).
const STACK_BYTES: usize = 64 << 20;

/// The runtime of this process. A forked child (a DataLoader worker) inherits the parent's
/// runtime without its threads, so each process makes its own; the parent's is left alone
/// (dropping it would wait for threads that do not exist in the child).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut held = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    match *held {
        Some((owner, rt)) if owner == pid => rt,
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
                .thread_name("tokenlake")
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()
                .expect("starting the tokenlake runtime");
            let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
            *held = Some((pid, rt));
            rt
        }
    }
}

/// Runs `work` on the runtime and waits for it with the interpreter released, checking for
/// signals every 100 ms: on Ctrl-C, `interrupt` is called (to cancel the work cleanly) and the
/// work is waited for when `wait_after_interrupt`, else abandoned; Python then gets its
/// KeyboardInterrupt.
fn run<T, F>(
    py: Python<'_>,
    work: F,
    interrupt: impl FnOnce(),
    wait_after_interrupt: bool,
) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let (tx, rx) = crossbeam_channel::bounded(1);
    let handle = runtime().spawn(async move {
        let _ = tx.send(work.await);
    });
    loop {
        match py.detach(|| rx.recv_timeout(Duration::from_millis(100))) {
            Ok(result) => return result.map_err(to_py),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(signal) = py.check_signals() {
                    interrupt();
                    if wait_after_interrupt {
                        let _ = py.detach(|| rx.recv());
                    } else {
                        handle.abort();
                    }
                    return Err(signal);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "tokenlake's native work ended without a result (a bug: see the log)",
                ));
            }
        }
    }
}

/// An error as the package's exception types need it: its kind (an [`ErrorCode`]'s name, or
/// `CursorMismatch`) and the whole message, causes included.
fn to_py(e: anyhow::Error) -> PyErr {
    let kind = kind_of(&e);
    NativeError::new_err((kind, format!("{e:#}")))
}

fn kind_of(e: &anyhow::Error) -> &'static str {
    use tokenlake_plan::PlanError;
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<PlanError>() {
            if matches!(
                p,
                PlanError::CursorMismatch { .. } | PlanError::InvalidCursor { .. }
            ) {
                return "CursorMismatch";
            }
            return code_name(p.error_code());
        }
        if let Some(l) = cause.downcast_ref::<tokenlake_lake::LakeError>() {
            return code_name(l.error_code());
        }
        if let Some(i) = cause.downcast_ref::<tokenlake_ingest::IngestError>() {
            return code_name(i.error_code());
        }
    }
    "InvalidArgument"
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "InvalidArgument",
        ErrorCode::NotFound => "NotFound",
        ErrorCode::AlreadyExists => "AlreadyExists",
        ErrorCode::FailedPrecondition => "FailedPrecondition",
        ErrorCode::ResourceExhausted => "ResourceExhausted",
        ErrorCode::Cancelled => "Cancelled",
        ErrorCode::Unavailable => "Unavailable",
        ErrorCode::Internal => "Internal",
    }
}
