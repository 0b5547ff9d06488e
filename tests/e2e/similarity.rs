//! `tokenlake similarity`: documents planted as copies of a target set are the ones flagged as
//! contaminated, and they score closer than the rest; bad target files and names are refused
//! with nothing committed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::*;

/// A test question cut from the middle of `text`: about 300 characters.
fn excerpt(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = chars.len() / 3;
    chars[start..(start + 300).min(chars.len())]
        .iter()
        .collect()
}

/// `text` with every 20th word (or, for text without spaces, character) replaced.
fn near_copy(text: &str) -> String {
    if text.split_whitespace().count() > 100 {
        text.split(' ')
            .enumerate()
            .map(|(i, w)| if i % 20 == 7 { "edited" } else { w })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        text.chars()
            .enumerate()
            .map(|(i, c)| if i % 20 == 7 { '改' } else { c })
            .collect()
    }
}

#[test]
// Kept as one test: the labels of one run, checked column by column.
fn planted_copies_of_the_targets_are_flagged_and_score_closest() {
    let dir = tempfile::tempdir().unwrap();
    let docs = sample_docs();
    let truth: Vec<Value> = std::fs::read_to_string(data_dir().join("sample.truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three long clean English and three Chinese documents become the "test set".
    let mut chosen = Vec::new();
    for source in ["en", "zh"] {
        chosen.extend(
            docs.iter()
                .zip(&truth)
                .filter(|(d, t)| {
                    d["source"] == source
                        && t["kind"] == "clean"
                        && d["text"].as_str().unwrap().chars().count() > 2000
                })
                .map(|(d, _)| d.clone())
                .take(3),
        );
    }
    assert_eq!(chosen.len(), 6);
    let targets = dir.path().join("exam.jsonl");
    write_jsonl(
        &targets,
        &chosen
            .iter()
            .map(|d| json!({"question": excerpt(d["text"].as_str().unwrap()), "answer": "B"}))
            .collect::<Vec<_>>(),
    );
    // The lake: the sample, plus a near copy of each chosen document planted under new urls.
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    let planted: Vec<Value> = chosen
        .iter()
        .map(|d| {
            json!({
                "id": format!("{}-planted", d["id"].as_str().unwrap()),
                "source": "planted",
                "url": format!("{}#planted", d["url"].as_str().unwrap()),
                "text": near_copy(d["text"].as_str().unwrap()),
            })
        })
        .collect();
    let planted_file = dir.path().join("planted.jsonl");
    write_jsonl(&planted_file, &planted);
    run_ok(&strs(&ingest_args(&lake, &planted_file, "planted", &[])));

    let before = run_json(&["versions", lake_arg]);
    let summary = run_json(&[
        "similarity",
        lake_arg,
        "--targets",
        targets.to_str().unwrap(),
    ]);
    assert_eq!(summary["targets"], 6);
    assert_eq!(
        summary["columns"],
        json!(["sim_exam", "ngram13_exam", "contaminated_exam"])
    );

    let rows: Vec<Value> = run_ok(&[
        "query",
        lake_arg,
        "SELECT url, sim_exam, ngram13_exam, contaminated_exam FROM documents",
        "--format",
        "json",
    ])
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let expected: BTreeSet<String> = chosen
        .iter()
        .chain(&planted)
        .map(|d| d["url"].as_str().unwrap().to_string())
        .collect();
    let flagged: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["contaminated_exam"] == true)
        .map(|r| r["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flagged, expected);
    for r in &rows {
        assert_eq!(
            r["contaminated_exam"] == true,
            r["ngram13_exam"].as_u64().unwrap() > 0,
            "{r}"
        );
    }
    // Every planted or original document is closer to the targets than any other document.
    let sims: BTreeMap<String, f64> = rows
        .iter()
        .map(|r| {
            (
                r["url"].as_str().unwrap().to_string(),
                r["sim_exam"].as_f64().unwrap(),
            )
        })
        .collect();
    let lowest_flagged = expected.iter().map(|u| sims[u]).fold(f64::MAX, f64::min);
    let highest_other = sims
        .iter()
        .filter(|(u, _)| !expected.contains(*u))
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);
    assert!(
        lowest_flagged > highest_other,
        "flagged from {lowest_flagged}, others up to {highest_other}"
    );

    // One new version, recorded as a similarity run.
    let after = run_json(&["versions", lake_arg]);
    let versions = after.as_array().unwrap();
    assert_eq!(versions.len(), before.as_array().unwrap().len() + 1);
    let last = versions.last().unwrap();
    assert_eq!(last["properties"]["tokenlake.operation"], "similarity");

    // Refusals commit nothing.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "{\"id\": 3}\n").unwrap();
    for (args, expect) in [
        (vec!["--targets", empty.to_str().unwrap()], "no text"),
        (
            vec!["--targets", targets.to_str().unwrap(), "--name", "Bad-Name"],
            "lowercase letters",
        ),
        (
            vec![
                "--targets",
                dir.path().join("missing.jsonl").to_str().unwrap(),
            ],
            "cannot be read",
        ),
    ] {
        let mut full = vec!["similarity", lake_arg];
        full.extend(args);
        let err = run_err(&full);
        assert!(err.contains(expect), "{full:?}: {err}");
    }
    assert_eq!(run_json(&["versions", lake_arg]), after);
}
