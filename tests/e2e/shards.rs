//! Sharded ingest: N `ingest --shard I/N` processes plus one `commit` give the documents,
//! labels and duplicate clusters of a single ingest (and curation) of the same inputs, in one
//! version; a shard that was killed makes the commit refuse and change nothing, and running
//! that shard again (or any shard twice) lets the commit succeed.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use arrow_array::RecordBatch;
use serde_json::{Value, json};

use crate::kill::{big_input, data_files, wait_until_writing};
use crate::support::*;

/// Every column of the lake (ingest's and curation's), read back with the lance crate in row
/// order, and the columns' names.
fn table(lake: &Path) -> (RecordBatch, Vec<String>) {
    let uri = lake.join("documents.lance");
    let names: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ds = lance::Dataset::open(uri.to_str().unwrap()).await.unwrap();
        ds.schema().fields.iter().map(|f| f.name.clone()).collect()
    });
    let columns: Vec<&str> = names.iter().map(String::as_str).collect();
    let batches = scan(lake, None, &columns);
    (
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap(),
        names,
    )
}

/// The two lakes have the same columns with the same values in the same row order.
fn assert_same_table(sharded: &Path, single: &Path, rows: usize) {
    let ((a, names), (b, single_names)) = (table(sharded), table(single));
    assert_eq!(names, single_names);
    assert!(
        names.iter().any(|n| n == "dup_cluster") && names.len() > 20,
        "{names:?}"
    );
    assert_eq!(a.num_rows(), rows);
    // Everything but which run wrote a row (each shard is a run of its own).
    for name in names.iter().filter(|n| *n != "ingest_id") {
        assert_eq!(
            a.column_by_name(name).unwrap(),
            b.column_by_name(name).unwrap(),
            "column {name} differs from a single ingest's"
        );
    }
}

/// `tokenlake ingest LAKE INPUTS... --source-field source ... EXTRA...` of the sample's kind.
fn ingest_line(lake: &Path, inputs: &[String], extra: &[&str]) -> Vec<String> {
    let (lake, tok) = (
        lake.display().to_string(),
        tokenizer().display().to_string(),
    );
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut args: Vec<String> = sample_ingest_args(&lake, &inputs, &tok)
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn shard_args(lake: &Path, inputs: &[String], shard: &str, extra: &[&str]) -> Vec<String> {
    let mut args = ingest_line(lake, inputs, &["--shard", shard]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Runs the N shards of `inputs` as N processes at once.
fn run_shards(lake: &Path, inputs: &[String], n: u32, extra: &[&str]) {
    let specs: Vec<String> = (0..n).map(|i| format!("{i}/{n}")).collect();
    let children: Vec<Child> = specs
        .iter()
        .map(|spec| {
            tokenlake()
                .args(shard_args(lake, inputs, spec, extra))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("not committed"));
    }
}

fn versions(lake: &Path) -> Vec<Value> {
    run_json(&["versions", lake.to_str().unwrap()])
        .as_array()
        .unwrap()
        .clone()
}

/// A 3-gram model of the sample's English prose and a pipeline that uses it, so that
/// perplexity and quality tiers are part of the comparison.
fn pipeline(dir: &Path) -> PathBuf {
    english_model(dir);
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, "[perplexity]\nmodels = { en = \"en.arpa\" }\n").unwrap();
    path
}

fn write_part(dir: &Path, name: &str, docs: &[Value]) -> String {
    let path = dir.join(name);
    write_jsonl(&path, docs);
    path.display().to_string()
}

#[test]
fn three_shards_and_a_commit_give_what_one_ingest_and_its_curation_give() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let p = pipeline.to_str().unwrap();
    let docs = sample_docs();
    // Four files for three shards (blocks of 1, 1 and 2 files); the last repeats documents of
    // the first two shards and of its own, which one ingest would skip.
    let mut repeats: Vec<Value> = docs[5..8].to_vec();
    repeats.extend_from_slice(&docs[120..122]);
    repeats.extend_from_slice(&docs[210..211]);
    repeats.push(json!({"id": "new-in-d", "source": "en", "text": "A document only the last file has, long enough to be labelled as prose by the rules."}));
    let first = vec![
        write_part(dir.path(), "a.jsonl", &docs[..100]),
        write_part(dir.path(), "b.jsonl", &docs[100..200]),
        write_part(dir.path(), "c.jsonl", &docs[200..]),
        write_part(dir.path(), "d.jsonl", &repeats),
    ];
    let sharded = dir.path().join("sharded");
    let single = dir.path().join("single");
    run_shards(&sharded, &first, 3, &["--pipeline", p]);
    assert!(
        versions_or_none(&sharded).is_none(),
        "shards alone commit nothing"
    );
    let out = run_json(&[
        "commit",
        sharded.to_str().unwrap(),
        "--pipeline",
        p,
        "--dedup-partitions",
        "5",
    ]);
    assert_eq!(out["version"], 1);
    assert_eq!(out["dedup_tasks_run"], 5, "{out}");
    assert_eq!(out["repeats_deleted"], 5, "{out}");
    assert_eq!(out["docs_added"], 301);
    assert!(!sharded.join("shards").join("default").exists());

    run_ok(&strs(&ingest_line(&single, &first, &["--pipeline", p])));
    assert_same_table(&sharded, &single, 301);
    let labelled = run_ok(&[
        "query",
        sharded.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM documents WHERE is_dup OR quality_tier IS NOT NULL",
        "--format",
        "csv",
    ]);
    assert_ne!(
        labelled.lines().nth(1),
        Some("0"),
        "the comparison covers labels"
    );
    let v = versions(&sharded);
    assert_eq!(v.len(), 1, "one version for shards, ingest and labels");
    assert_eq!(v[0]["properties"]["tokenlake.operation"], "sharded-ingest");

    // A second round onto the existing lake: documents new to the lake, repeated across
    // shards (deletion files this time), and copies of stored ones (skipped by the shards).
    let second: Vec<Value> = docs[..40]
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d["id"] = json!(format!("{}-r2", d["id"].as_str().unwrap()));
            d["text"] = json!(format!(
                "{} And a second round.",
                d["text"].as_str().unwrap()
            ));
            d
        })
        .collect();
    let mut again = second[30..].to_vec();
    again.extend_from_slice(&second[..4]);
    again.extend_from_slice(&docs[50..52]);
    let round2 = vec![
        write_part(dir.path(), "e.jsonl", &second[..20]),
        write_part(dir.path(), "f.jsonl", &second[20..]),
        write_part(dir.path(), "g.jsonl", &again),
    ];
    run_shards(&sharded, &round2, 3, &["--pipeline", p]);
    // This round's de-duplication in steps, as a scheduler runs them: the keys, then some
    // partitions' candidate tasks (one twice, as a retry would); the commit runs the rest.
    let lake = sharded.to_str().unwrap();
    let prepared = run_json(&["dedup", "prepare", lake, "--pipeline", p]);
    assert_eq!(prepared["prepared_only"], true, "{prepared}");
    assert_eq!(versions(&sharded).len(), 1, "preparing commits nothing");
    let status = run_json(&["dedup", "status", lake]);
    assert_eq!(status["partitions"], 5, "the index keeps its partitions");
    assert_eq!(status["covered"], 301);
    assert_eq!(status["pending_rows"], 40);
    assert_eq!(status["missing"], json!([0, 1, 2, 3, 4]));
    run_ok(&["dedup", "candidates", lake, "--partition", "0-2/5"]);
    run_ok(&["dedup", "candidates", lake, "--partition", "1/5"]);
    let wrong = run(&["dedup", "candidates", lake, "--partition", "1/64"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("has 5 partitions, not 64"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(
        run_json(&["dedup", "status", lake])["missing"],
        json!([3, 4])
    );
    let out = run_json(&["commit", lake, "--pipeline", p]);
    assert_eq!(out["version"], 2);
    assert_eq!(out["dedup_tasks_run"], 2, "{out}");
    // Of the lake's rows, only those whose tier or cluster the new documents moved are
    // rewritten (and the comparison below shows they are all that needed it).
    let relabelled = out["lake_docs_relabelled"].as_u64().unwrap();
    assert!(relabelled > 0 && relabelled < 301, "{out}");
    let status = run_json(&["dedup", "status", lake]);
    assert_eq!(
        (status["covered"].as_u64(), status["pending_rows"].as_u64()),
        (Some(341), Some(0))
    );
    assert_eq!(out["repeats_deleted"], 14, "{out}");
    assert!(sharded.join("documents.lance").join("_deletions").is_dir());
    run_ok(&strs(&ingest_line(&single, &round2, &["--pipeline", p])));
    assert_same_table(&sharded, &single, 341);
    assert_eq!(versions(&sharded).len(), 2);
}

fn versions_or_none(lake: &Path) -> Option<Vec<Value>> {
    let out = run(&["versions", lake.to_str().unwrap(), "--json"]);
    out.status.success().then(|| {
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    })
}

#[test]
fn a_killed_shard_makes_commit_refuse_and_running_it_again_lets_commit_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let docs = sample_docs();
    let big = dir.path().join("big.jsonl");
    big_input(&big, 40);
    let inputs = vec![
        write_part(dir.path(), "a.jsonl", &docs[..150]),
        big.display().to_string(),
        write_part(dir.path(), "c.jsonl", &docs[150..]),
    ];
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    run_ok(&strs(&shard_args(&lake, &inputs, "0/3", &[])));
    run_ok(&strs(&shard_args(&lake, &inputs, "2/3", &[])));
    // Shard 1 dies while it writes.
    let before = data_files(&lake);
    let mut child = tokenlake()
        .args(shard_args(&lake, &inputs, "1/3", &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_writing(&mut child, &lake, before);
    child.kill().unwrap();
    child.wait().unwrap();

    let err = run_err(&["commit", l]);
    assert!(err.contains("shard 1 of 3 did not finish"), "{err}");
    assert!(
        versions_or_none(&lake).is_none(),
        "a refused commit commits nothing"
    );

    // A shard of another input list in the same set is refused too.
    let other = vec![inputs[0].clone(), inputs[2].clone()];
    run_ok(&strs(&shard_args(
        &lake,
        &other,
        "1/3",
        &["--shard-set", "default"],
    )));
    let err = run_err(&["commit", l]);
    assert!(err.contains("another input list"), "{err}");

    // Running shard 1 again, and shard 0 twice, is safe: the last run of each counts.
    run_ok(&strs(&shard_args(&lake, &inputs, "1/3", &[])));
    run_ok(&strs(&shard_args(&lake, &inputs, "0/3", &[])));
    let out = run_json(&["commit", l]);
    assert_eq!(out["version"], 1);
    assert_eq!(out["docs_added"], 300 + 40 * 300);
    assert_eq!(run_json(&["describe", l])["rows"], json!(300 + 40 * 300));
    let err = run_err(&["commit", l]);
    assert!(err.contains("no shard"), "{err}");
}
