//! `tokenlake._native`: the Rust side of the Python package. It runs the `tokenlake` command
//! in the Python process that the package's console script starts, so that `pip install`
//! puts the same command on PATH as a build of the workspace.

use pyo3::prelude::*;

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
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
