//! Ingest: counts against the input, skipping stored documents, rejects, and refusals that
//! leave the lake untouched.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

fn split_sample(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let docs = sample_docs();
    let (a, b) = docs.split_at(150);
    write_jsonl(&dir.join("a.jsonl"), a);
    write_jsonl_zst(&dir.join("b.jsonl.zst"), b);
    (a.to_vec(), b.to_vec())
}

#[test]
fn ingest_counts_match_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = split_sample(dir.path());
    let lake = dir.path().join("lake");
    let summary = ingest(&lake, &[&dir.path().join("a.jsonl")]);
    let expected_tokens = expected_tokens(&a);
    assert_eq!(summary["version"], 1);
    assert_eq!(summary["docs_read"], 150);
    assert_eq!(summary["docs_written"], 150);
    assert_eq!(summary["docs_rejected"], 0);
    assert_eq!(summary["tokens_written"], expected_tokens);
    assert!(summary["tokens_per_sec"].as_f64().unwrap() > 0.0);

    let described = run_json(&["describe", lake.to_str().unwrap()]);
    assert_eq!(described["rows"], 150);
    assert_eq!(described["tokens"], expected_tokens);
    assert_eq!(described["token_width"], "u16");
    let by_source: u64 = described["by_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(by_source, 150);
    for g in described["by_source"].as_array().unwrap() {
        let source = g["key"].as_str().unwrap();
        let want = a.iter().filter(|d| d["source"] == source).count() as u64;
        assert_eq!(g["rows"], want, "documents of source {source}");
    }

    let read = read_contents(&lake, None);
    assert_eq!((read.rows, read.tokens), (150, expected_tokens));
    assert!(
        lake.join("tokenizers")
            .join(format!(
                "{}.json",
                described["tokenizer_sha256"].as_str().unwrap()
            ))
            .is_file(),
        "the lake keeps its tokenizer"
    );
}

#[test]
fn reingesting_the_same_documents_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    split_sample(dir.path());
    let lake = dir.path().join("lake");
    let a = dir.path().join("a.jsonl");
    ingest(&lake, &[&a]);
    let before = read_contents(&lake, None);
    let again = ingest(&lake, &[&a]);
    assert_eq!(again["version"], Value::Null);
    assert_eq!(again["previous_version"], 1);
    assert_eq!(again["docs_already_present"], 150);
    assert_eq!(again["docs_written"], 0);
    let versions = run_json(&["versions", lake.to_str().unwrap()]);
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(read_contents(&lake, None), before);
}

#[test]
fn malformed_lines_are_rejected_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"id\": \"ok-1\", \"text\": \"a good document\"}\n");
    body.extend_from_slice(b"{\"id\": \"bad-json\", \"text\": \n");
    body.extend_from_slice(b"{\"id\": \"no-text\", \"body\": \"x\"}\n");
    body.extend_from_slice(b"{\"id\": \"bad-utf8\", \"text\": \"\xff\xfe\"}\n");
    body.extend_from_slice(b"{\"id\": \"ok-2\", \"text\": \"another good one\"}\n");
    body.extend_from_slice(b"{\"id\": \"number\", \"text\": 12}\n");
    std::fs::write(&input, body).unwrap();
    let lake = dir.path().join("lake");
    let rejects = dir.path().join("rejects.jsonl");
    let summary = run_json(&strs(&ingest_args(
        &lake,
        &input,
        "web",
        &["--rejects", rejects.to_str().unwrap()],
    )));
    assert_eq!(summary["docs_read"], 6);
    assert_eq!(summary["docs_written"], 2);
    assert_eq!(summary["docs_rejected"], 4);
    assert_eq!(summary["rejects_file"], rejects.to_str().unwrap());
    let lines: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let where_why: Vec<(u64, String)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["input"], input.to_str().unwrap());
            (
                l["line"].as_u64().unwrap(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(where_why.len(), 4);
    assert_eq!(where_why[0].0, 2);
    assert!(where_why[0].1.starts_with("bad JSON"), "{where_why:?}");
    assert_eq!(where_why[1], (3, "missing text field \"text\"".to_string()));
    assert_eq!(where_why[2].0, 4);
    assert!(where_why[2].1.contains("invalid UTF-8"), "{where_why:?}");
    assert_eq!(where_why[3].0, 6);

    // The table output says where the rejects went.
    let dir2 = tempfile::tempdir().unwrap();
    let out = run_ok(&[
        "ingest",
        dir2.path().join("lake").to_str().unwrap(),
        input.to_str().unwrap(),
        "--source",
        "web",
        "--tokenizer",
        tokenizer().to_str().unwrap(),
    ]);
    assert!(out.contains("4 rejected lines"), "{out}");
    assert!(out.contains("rejects/ing-"), "{out}");
}

#[test]
fn bad_inputs_and_tokenizers_fail_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let good = dir.path().join("good.jsonl");
    write_jsonl(&good, &[json!({"id": "1", "text": "hello world"})]);
    let ingest_with = |input: &Path, tokenizer: &Path| {
        run_err(&[
            "ingest",
            lake.to_str().unwrap(),
            good.to_str().unwrap(),
            input.to_str().unwrap(),
            "--source",
            "web",
            "--tokenizer",
            tokenizer.to_str().unwrap(),
        ])
    };

    let missing = dir.path().join("missing.jsonl");
    let err = ingest_with(&missing, &tokenizer());
    assert!(
        err.contains("missing.jsonl") && err.contains("cannot open"),
        "{err}"
    );
    assert!(!lake.exists(), "nothing may be written for a missing input");

    let bad_tok = dir.path().join("tokenizer.json");
    std::fs::write(&bad_tok, "{}").unwrap();
    let err = ingest_with(&good, &bad_tok);
    assert!(
        err.contains("tokenizer") && err.contains("tokenizer.json"),
        "{err}"
    );
    assert!(!lake.exists(), "nothing may be written for a bad tokenizer");

    // A lake keeps the tokenizer of its first ingest.
    ingest(&lake, &[&good]);
    let before = read_contents(&lake, None);
    let other_tok = dir.path().join("other.json");
    run_ok(&[
        "train-tokenizer",
        sample().to_str().unwrap(),
        "--out",
        other_tok.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--max-docs",
        "50",
    ]);
    let other = dir.path().join("other.jsonl");
    write_jsonl(&other, &[json!({"id": "2", "text": "another"})]);
    let err = run_err(&[
        "ingest",
        lake.to_str().unwrap(),
        other.to_str().unwrap(),
        "--source",
        "web",
        "--tokenizer",
        other_tok.to_str().unwrap(),
    ]);
    assert!(err.contains("was tokenized with tokenizer"), "{err}");
    assert_eq!(read_contents(&lake, None), before);
    assert_eq!(
        run_json(&["versions", lake.to_str().unwrap()])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn parquet_inputs_give_the_same_lake_as_json_lines() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, StringArray};

    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = sample_docs().into_iter().take(60).collect();
    let jsonl = dir.path().join("docs.jsonl");
    write_jsonl(&jsonl, &docs);
    let column = |field: &str| -> ArrayRef {
        Arc::new(StringArray::from(
            docs.iter()
                .map(|d| d[field].as_str().map(str::to_string))
                .collect::<Vec<_>>(),
        ))
    };
    let batch = RecordBatch::try_from_iter([
        ("id", column("id")),
        ("source", column("source")),
        ("url", column("url")),
        ("text", column("text")),
    ])
    .unwrap();
    let parquet_path = dir.path().join("docs.parquet");
    let file = std::fs::File::create(&parquet_path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let from_json = dir.path().join("from-json");
    let from_parquet = dir.path().join("from-parquet");
    ingest(&from_json, &[&jsonl]);
    ingest(&from_parquet, &[&parquet_path]);
    assert_eq!(
        read_contents(&from_json, None),
        read_contents(&from_parquet, None)
    );
}

#[test]
fn a_trained_tokenizer_builds_a_lake() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok.json");
    let out = run_ok(&[
        "train-tokenizer",
        sample().to_str().unwrap(),
        "--out",
        tok.to_str().unwrap(),
        "--vocab-size",
        "1000",
    ]);
    assert!(out.contains("1,000 ids") && out.contains("u16"), "{out}");
    let summary = run_json(&[
        "ingest",
        dir.path().join("lake").to_str().unwrap(),
        sample().to_str().unwrap(),
        "--source",
        "sample",
        "--tokenizer",
        tok.to_str().unwrap(),
    ]);
    assert_eq!(summary["docs_written"], 300);
}

#[test]
fn text_can_be_left_out_and_tokens_stay() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = sample_docs().into_iter().take(20).collect();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let lake = dir.path().join("lake");
    run_json(&strs(&ingest_args(
        &lake,
        &input,
        "sample",
        &["--keep-text", "false"],
    )));
    let batches = scan(&lake, None, &["text"]);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let null_texts: usize = batches.iter().map(|b| b.column(0).null_count()).sum();
    assert_eq!((rows, null_texts), (20, 20));
    assert_eq!(read_contents(&lake, None).tokens, expected_tokens(&docs));
}

/// Two ingests of overlapping inputs run at once, into a new lake and into one that has
/// documents: every doc_id ends up exactly once (counted with SQL), and every document of
/// either input is there.
#[test]
fn concurrent_ingests_of_overlapping_inputs_leave_each_doc_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let docs = sample_docs();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    write_jsonl(&a, &docs[..200]);
    write_jsonl(&b, &docs[100..]);
    let first = dir.path().join("first.jsonl");
    write_jsonl(&first, &docs[..20]);
    for (round, seeded) in [(0, false), (1, true), (2, false), (3, true)] {
        let lake = dir.path().join(format!("lake-{round}"));
        if seeded {
            run_ok(&strs(&ingest_args(&lake, &first, "web", &[])));
        }
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|input| {
                tokenlake()
                    .args(ingest_args(&lake, input, "web", &[]))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let counted: Value = serde_json::from_str(
            run_ok(&[
                "query",
                lake.to_str().unwrap(),
                "SELECT COUNT(*) AS n, COUNT(DISTINCT doc_id) AS ids FROM documents",
                "--format",
                "json",
            ])
            .trim(),
        )
        .unwrap();
        assert_eq!(counted["n"], counted["ids"], "round {round}: {counted}");
        let want = read_tokens(&lake, None).len();
        assert_eq!(counted["n"].as_u64(), Some(want as u64));
        let mut distinct: Vec<&str> = docs.iter().map(|d| d["text"].as_str().unwrap()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            counted["ids"].as_u64(),
            Some(distinct.len() as u64),
            "round {round}: a document of one input is missing"
        );
    }
}
