//! Versions, tags, describe and diff across two ingests, and their error messages.

use crate::support::*;

#[test]
fn versions_tags_describe_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let docs = sample_docs();
    let (a, b) = docs.split_at(150);
    let (path_a, path_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl.zst"));
    write_jsonl(&path_a, a);
    write_jsonl_zst(&path_b, b);
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();

    assert_eq!(ingest(&lake, &[&path_a])["version"], 1);
    let v1 = read_contents(&lake, None);
    run_ok(&["tag", l, "create", "first"]);
    assert_eq!(ingest(&lake, &[&path_b])["version"], 2);
    run_ok(&["tag", l, "create", "both", "--version", "2"]);

    // The first version still reads exactly as it did.
    assert_eq!(read_contents(&lake, Some(1)), v1);

    let versions = run_json(&["versions", l]);
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["rows"], 150);
    assert_eq!(versions[1]["rows"], 300);
    assert_eq!(versions[0]["tags"], serde_json::json!(["first"]));
    assert_eq!(versions[1]["properties"]["tokenlake.operation"], "ingest");
    assert!(
        versions[1]["properties"]["tokenlake.inputs"]
            .as_str()
            .unwrap()
            .ends_with("b.jsonl.zst")
    );

    let first = run_json(&["describe", l, "--tag", "first"]);
    assert_eq!(first["version"], 1);
    assert_eq!(first["rows"], 150);
    assert_eq!(first["tokens"], v1.tokens);
    let second = run_json(&["describe", l, "--version", "2"]);
    assert_eq!(second["rows"], 300);
    let b_tokens = expected_tokens(b);
    assert_eq!(second["tokens"], v1.tokens + b_tokens);

    let diff = run_json(&["diff", l, "first", "both"]);
    assert_eq!(diff["rows_added"], 150);
    assert_eq!(diff["tokens_added"], b_tokens);
    assert_eq!(diff["rows_removed"], 0);
    for s in diff["by_source"].as_array().unwrap() {
        let source = s["source"].as_str().unwrap();
        let want = b.iter().filter(|d| d["source"] == source).count() as u64;
        assert_eq!(s["rows_added"], want, "added documents of source {source}");
    }
    let back = run_json(&["diff", l, "2", "1"]);
    assert_eq!(back["rows_removed"], 150);
    assert_eq!(back["tokens_removed"], b_tokens);

    // Tables for people.
    let table = run_ok(&["describe", l]);
    assert!(table.contains("version 2 (tags: both)"), "{table}");
    assert!(
        table.contains("tokens/doc") && table.contains("n_tokens"),
        "{table}"
    );
    let tags = run_ok(&["tag", l, "list"]);
    assert!(tags.contains("first") && tags.contains("both"), "{tags}");
    let listed = run_ok(&["versions", l]);
    assert!(listed.contains("ingest ing-"), "{listed}");

    // Tags can be deleted; the version stays.
    run_ok(&["tag", l, "delete", "first"]);
    let err = run_err(&["describe", l, "--tag", "first"]);
    assert!(err.contains("has no tag \"first\""), "{err}");
    assert_eq!(read_contents(&lake, Some(1)), v1);
}

#[test]
fn naming_what_does_not_exist_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();

    let err = run_err(&["versions", l]);
    assert!(
        err.contains("no lake at") && err.contains("ingest"),
        "{err}"
    );
    assert!(!lake.exists(), "reading must not create a lake");

    let input = dir.path().join("a.jsonl");
    write_jsonl(&input, &sample_docs()[..10]);
    ingest(&lake, &[&input]);
    let err = run_err(&["describe", l, "--version", "9"]);
    assert!(
        err.contains("no version 9") && err.contains("1..=1"),
        "{err}"
    );
    let err = run_err(&["tag", l, "create", "42"]);
    assert!(
        err.contains("invalid tag name") && err.contains("version number"),
        "{err}"
    );
    let err = run_err(&["tag", l, "create", "a/b"]);
    assert!(err.contains("invalid tag name"), "{err}");
    run_ok(&["tag", l, "create", "v1"]);
    let err = run_err(&["tag", l, "create", "v1"]);
    assert!(err.contains("already names version 1"), "{err}");
    let err = run_err(&["tag", l, "delete", "nope"]);
    assert!(err.contains("has no tag \"nope\""), "{err}");
    let err = run_err(&["diff", l, "v1", "0"]);
    assert!(err.contains("start at 1"), "{err}");
}
