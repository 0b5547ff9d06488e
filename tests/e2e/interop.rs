//! A lake we write opens in pylance, the Python binding of Lance, with the same rows and tokens.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

mod needs_python {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PYTHON with pylance (tests/run.sh)"]
    fn pylance_reads_the_same_rows_and_tokens() {
        let python = required_env("TOKENLAKE_PYTHON", "a Python with pylance");
        let dir = tempfile::tempdir().unwrap();
        let docs = sample_docs();
        let (a, b) = docs.split_at(100);
        let (path_a, path_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        write_jsonl(&path_a, a);
        write_jsonl(&path_b, b);
        let lake = dir.path().join("lake");
        ingest(&lake, &[&path_a]);
        run_ok(&["tag", lake.to_str().unwrap(), "create", "first"]);
        ingest(&lake, &[&path_b]);

        let script = data_dir().join("../python/check_lake.py");
        for (version, expected) in [
            ("latest", read_contents(&lake, None)),
            ("first", read_contents(&lake, Some(1))),
        ] {
            let out = Command::new(&python)
                .arg(&script)
                .arg(&lake)
                .arg(version)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the pylance check failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(seen["rows"], expected.rows, "{version}");
            assert_eq!(seen["tokens"], expected.tokens, "{version}");
            assert_eq!(seen["digest"], expected.digest.as_str(), "{version}");
            assert_eq!(seen["token_type"], "uint16");
        }
    }
}
