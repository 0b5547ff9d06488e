//! An ingest that dies or is interrupted leaves the lake at its previous version, readable and
//! unchanged, and the next ingest works.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// An input large enough that an ingest of it is still running when we stop it: the sample's
/// documents repeated under new ids.
pub(crate) fn big_input(path: &Path, copies: usize) {
    let docs = sample_docs();
    let mut out = Vec::with_capacity(docs.len() * copies);
    for copy in 0..copies {
        for d in &docs {
            let mut d = d.clone();
            d["id"] = Value::from(format!("{}-copy{copy}", d["id"].as_str().unwrap()));
            out.push(d);
        }
    }
    write_jsonl(path, &out);
}

fn start_ingest(lake: &Path, input: &Path) -> Child {
    tokenlake()
        .args(ingest_args(lake, input, "big", &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn data_files(lake: &Path) -> usize {
    std::fs::read_dir(lake.join("documents.lance").join("data"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits until the running ingest has started writing data files for its new version.
pub(crate) fn wait_until_writing(child: &mut Child, lake: &Path, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while data_files(lake) <= before {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before it could be stopped; make the input larger"
        );
        assert!(
            Instant::now() < deadline,
            "the ingest never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts an ingest of a large input into `lake` and returns once it is writing data files.
fn start_big_ingest(dir: &Path, lake: &Path) -> Child {
    let big = dir.join("big.jsonl");
    big_input(&big, 40);
    let files_before = data_files(lake);
    let mut child = start_ingest(lake, &big);
    wait_until_writing(&mut child, lake, files_before);
    child
}

fn setup(dir: &Path) -> (std::path::PathBuf, Contents) {
    let lake = dir.join("lake");
    let small = dir.join("small.jsonl");
    write_jsonl(
        &small,
        &[json!({"id": "s1", "text": "a first small document"})],
    );
    ingest(&lake, &[&small]);
    (lake.clone(), read_contents(&lake, None))
}

#[test]
fn killing_an_ingest_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, before) = setup(dir.path());
    let mut child = start_big_ingest(dir.path(), &lake);
    child.kill().unwrap();
    child.wait().unwrap();

    let versions = run_json(&["versions", lake.to_str().unwrap()]);
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(read_contents(&lake, None), before);
    assert_eq!(run_json(&["describe", lake.to_str().unwrap()])["rows"], 1);

    // The next ingest commits normally on top of what the killed one left behind.
    let next = dir.path().join("next.jsonl");
    write_jsonl(&next, &[json!({"id": "n1", "text": "after the crash"})]);
    assert_eq!(ingest(&lake, &[&next])["version"], 2);
    assert_eq!(read_contents(&lake, None).rows, 2);
}

#[test]
fn interrupting_an_ingest_commits_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, before) = setup(dir.path());
    let child = start_big_ingest(dir.path(), &lake);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was committed"), "{stderr}");
    assert_eq!(read_contents(&lake, None), before);
    assert_eq!(
        run_json(&["versions", lake.to_str().unwrap()])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
