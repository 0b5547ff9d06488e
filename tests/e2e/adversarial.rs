//! The server as an attacker with a reader token (or a fault) finds it: each hostile request
//! gets the status and message that name the limit it hit and the config key that raises it,
//! the server stays SERVING, and an honest stream beside the attacks delivers exactly what the
//! local stream does. Faults inside the server (a producer that panics) cost a client a
//! reconnection, never a batch: no stream ends as if its plan had ended when it had not.

use std::path::Path;
use std::process::Command;

use crate::serve::{Server, lines_of};
use crate::support::*;

/// An open server on loopback whose stream producers all panic after `at` batches (a fault
/// that debug builds read from the environment), with rings in `shm`.
fn panicking_server(lake: &Path, shm: &Path, at: u64) -> Server {
    let lake_arg = format!("sample={}", lake.display());
    Server::start_with_env(
        &[
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--lake",
            &lake_arg,
            "--shm-dir",
            shm.to_str().unwrap(),
        ],
        &[("TOKENLAKE_TEST_PANIC_AT_BATCH", &at.to_string())],
    )
}

#[test]
fn a_producer_that_panics_costs_the_rust_client_reconnections_and_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let server = panicking_server(&lake, &shm, 250);
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());
    let local = lines_of(&run_ok(&["stream", r, "--lake", l, "--checksums"]));
    assert!(
        local.len() > 1000,
        "too small a plan to test: {}",
        local.len()
    );
    for transport in ["grpc", "shm"] {
        let out = run(&[
            "stream",
            r,
            "--server",
            server.url(),
            "--lake",
            "sample",
            "--checksums",
            "--transport",
            transport,
        ]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{transport}: {said}");
        assert_eq!(
            lines_of(&String::from_utf8_lossy(&out.stdout)),
            local,
            "{transport}: the resumed stream is not the local one"
        );
        // Every 250th batch the producer fails: the stream went on from its cursor each time.
        assert!(said.contains("reconnects"), "{transport}: {said}");
    }
}

mod needs_python {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PYTHON with grpcio, numpy and pytest (tests/run.sh)"]
    fn a_producer_that_panics_costs_the_python_client_reconnections_and_no_batch() {
        let python = required_env("TOKENLAKE_PYTHON", "a Python with grpcio, numpy and pytest");
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let shm = dir.path().join("shm");
        std::fs::create_dir(&shm).unwrap();
        let server = panicking_server(&lake, &shm, 100);
        let r = ziya2();
        let expected = dir.path().join("expected.jsonl");
        run_ok(&[
            "stream",
            r.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--micro-batch",
            "2",
            "--out",
            expected.to_str().unwrap(),
        ]);
        let client_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../client/python");
        let out = Command::new(python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_faults.py",
            ])
            .current_dir(&client_dir)
            .env("PYTHONPATH", &client_dir)
            .env("TOKENLAKE_TEST_SERVER", server.url())
            .env("TOKENLAKE_TEST_FAULTS", "panic-at-100")
            .env("TOKENLAKE_TEST_RECIPE", &r)
            .env("TOKENLAKE_TEST_LAKE", "sample")
            .env("TOKENLAKE_TEST_EXPECTED", &expected)
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pytest failed:\n{report}");
        assert!(report.contains("2 passed"), "{report}");
    }
}
