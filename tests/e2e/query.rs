//! `tokenlake query`: SQL results against the same numbers from the tests' own Lance scan, the
//! output formats, the row bound, and the errors of statements that write, bad SQL, unknown
//! columns and unknown versions.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use serde_json::Value;

use crate::support::*;

#[test]
// Kept as one test: one query in every output format, each read back and compared with one scan.
fn query_results_match_an_independent_scan_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();

    // Documents and tokens per source, scanned directly with Lance.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for batch in scan(&lake, None, &["source", "n_tokens"]) {
        let sources = batch.column(0).as_string::<i32>();
        let tokens = batch.column(1).as_primitive::<UInt32Type>();
        for i in 0..batch.num_rows() {
            let entry = expected.entry(sources.value(i).to_string()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(tokens.value(i));
        }
    }
    let sql = "SELECT source, COUNT(*) AS docs, SUM(n_tokens) AS tokens FROM documents \
               GROUP BY source ORDER BY source";

    // JSON: one object per row, one row a line.
    let json = run_ok(&["query", lake_arg, sql, "--format", "json"]);
    let got: BTreeMap<String, (u64, u64)> = json
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            (
                row["source"].as_str().unwrap().to_string(),
                (
                    row["docs"].as_u64().unwrap(),
                    row["tokens"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected);

    // CSV: a header, then the same rows.
    let csv = run_ok(&[
        "query",
        lake_arg,
        sql,
        "--format",
        "csv",
        "--tag",
        "quickstart",
    ]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("source,docs,tokens"));
    let rows: Vec<String> = lines.map(str::to_string).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(s, (d, t))| format!("{s},{d},{t}"))
        .collect();
    assert_eq!(rows, want);

    // Parquet: readable by the parquet crate, same rows.
    let out = dir.path().join("by_source.parquet");
    run_ok(&[
        "query",
        lake_arg,
        sql,
        "--format",
        "parquet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, expected.len());

    // The table names every column and source.
    let table = run_ok(&["query", lake_arg, sql]);
    for name in ["source", "docs", "tokens"].iter().chain(
        expected
            .keys()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(table.contains(name), "{name} missing from\n{table}");
    }

    // The row bound cuts the result and says so.
    let out = run(&[
        "query",
        lake_arg,
        "SELECT doc_id FROM documents",
        "--format",
        "json",
        "--limit",
        "7",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 7);
    assert!(String::from_utf8_lossy(&out.stderr).contains("first 7 rows"));
}

#[test]
fn queries_that_write_or_are_wrong_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    let before = run_json(&["versions", lake_arg]);
    for (sql, expect) in [
        ("DELETE FROM documents", "read-only"),
        ("INSERT INTO documents (doc_id) VALUES (1)", "read-only"),
        ("CREATE TABLE t AS SELECT 1", "read-only"),
        ("SELEC source FROM documents", "SQL"),
        ("SELECT no_such_column FROM documents", "no_such_column"),
        ("", "empty"),
    ] {
        let err = run_err(&["query", lake_arg, sql]);
        assert!(err.contains(expect), "{sql:?}: {err}");
    }
    let err = run_err(&["query", lake_arg, "SELECT 1", "--version", "9"]);
    assert!(err.contains("no version 9"), "{err}");
    let err = run_err(&["query", lake_arg, "SELECT 1", "--tag", "nope"]);
    assert!(err.contains("nope"), "{err}");
    // Nothing was written.
    assert_eq!(run_json(&["versions", lake_arg]), before);
}

#[test]
// Kept as one test: two versions of one lake, queried step by step.
fn two_versions_compare_in_one_query_and_tokens_detokenize_to_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    // Version 2 adds twenty edited copies under another source.
    let extra: Vec<Value> = sample_docs()
        .into_iter()
        .take(20)
        .map(|mut d| {
            let text = format!("{} (second edition)", d["text"].as_str().unwrap());
            d["text"] = Value::from(text);
            d["source"] = Value::from("extra");
            d.as_object_mut().unwrap().remove("id");
            d
        })
        .collect();
    let extra_file = dir.path().join("extra.jsonl");
    write_jsonl(&extra_file, &extra);
    run_ok(&strs(&ingest_args(&lake, &extra_file, "extra", &[])));

    let rows = |sql: &str| -> Vec<Value> {
        run_ok(&["query", lake_arg, sql, "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = scan(&lake, Some(1), &["doc_id"])
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    let counts = rows(
        "SELECT (SELECT COUNT(*) FROM documents) AS now, \
                (SELECT COUNT(*) FROM documents_at('quickstart')) AS tagged, \
                (SELECT COUNT(*) FROM documents_at(1)) AS first",
    );
    assert_eq!(counts[0]["now"], before + 20);
    assert_eq!(counts[0]["tagged"], before);
    assert_eq!(counts[0]["first"], before);
    // What a version added, by anti-join against an older one.
    let added = rows(
        "SELECT d.source, COUNT(*) AS n FROM documents d \
         LEFT ANTI JOIN documents_at(1) f ON d.doc_id = f.doc_id GROUP BY d.source",
    );
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["source"], "extra");
    assert_eq!(added[0]["n"], 20);
    // The lake's history as a table.
    let versions = rows("SELECT version, rows, tags FROM versions() ORDER BY version");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["tags"], "quickstart");
    assert_eq!(versions[1]["rows"], before + 20);

    // A filter over narrow columns (read early, filtered by DataFusion) and the same filter
    // with a wide column in it (Lance's late materialization) select the same documents as a
    // plain scan does.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for b in scan(&lake, None, &["source", "n_tokens"]) {
        let sources = b.column(0).as_string::<i32>();
        let tokens = b.column(1).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            let t = u64::from(tokens.value(i));
            if t > 300 && sources.value(i) != "web" {
                let e = expected.entry(sources.value(i).to_string()).or_default();
                e.0 += 1;
                e.1 += t;
            }
        }
    }
    for filter in [
        "n_tokens > 300 AND source <> 'web'",
        "n_tokens > 300 AND source <> 'web' AND length(text) >= 0",
    ] {
        let got: BTreeMap<String, (u64, u64)> = rows(&format!(
            "SELECT source, COUNT(*) AS n, SUM(n_tokens) AS t FROM documents WHERE {filter} \
             GROUP BY source"
        ))
        .iter()
        .map(|r| {
            let s = r["source"].as_str().unwrap().to_string();
            (s, (r["n"].as_u64().unwrap(), r["t"].as_u64().unwrap()))
        })
        .collect();
        assert_eq!(got, expected, "{filter}");
    }

    // detokenize() with the lake's own tokenizer gives back every stored text.
    let decoded = rows("SELECT doc_id, text, detokenize(tokens) AS decoded FROM documents");
    assert_eq!(decoded.len(), before + 20);
    for row in &decoded {
        assert_eq!(row["decoded"], row["text"], "doc {}", row["doc_id"]);
    }

    for (sql, expect) in [
        ("SELECT COUNT(*) FROM documents_at(9)", "no version 9"),
        ("SELECT COUNT(*) FROM documents_at('nope')", "nope"),
        (
            "SELECT COUNT(*) FROM documents_at(1, 2)",
            "takes one version",
        ),
        ("SELECT detokenize(n_tokens) FROM documents", "token list"),
    ] {
        let err = run_err(&["query", lake_arg, sql]);
        assert!(err.contains(expect), "{sql:?}: {err}");
    }
}

/// The lake's doc_ids, by an independent scan.
fn doc_ids(lake: &std::path::Path) -> Vec<u64> {
    use arrow_array::types::UInt64Type;
    scan(lake, None, &["doc_id"])
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
        .collect()
}

/// A researcher's "these 10,000 documents": a 10,000-term `OR` used to overflow the planner's
/// stack and abort the process. It runs, read from a file (it is longer than a command line),
/// and counts what an independent scan counts.
#[test]
fn a_ten_thousand_term_or_query_runs_and_counts_right() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let ids = doc_ids(&lake);
    let chosen: Vec<u64> = ids.iter().step_by(3).copied().collect();
    // The chosen ids among 10,000 terms, the rest ids no document has.
    let terms: Vec<String> = (0..10_000u64)
        .map(|i| match chosen.get(i as usize) {
            Some(id) => format!("doc_id = {id}"),
            None => format!("doc_id = {}", u64::MAX - i),
        })
        .collect();
    let sql = dir.path().join("many.sql");
    std::fs::write(
        &sql,
        format!(
            "SELECT COUNT(*) AS n FROM documents WHERE {}",
            terms.join(" OR ")
        ),
    )
    .unwrap();
    let out = run_ok(&[
        "query",
        lake.to_str().unwrap(),
        &format!("@{}", sql.display()),
        "--format",
        "json",
    ]);
    let row: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["n"].as_u64(), Some(chosen.len() as u64), "{out}");
}

/// A recipe component that selects 10,000 listed ids plans, with exactly the listed documents
/// the lake has.
#[test]
fn a_recipe_filter_of_ten_thousand_ids_plans() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let ids = doc_ids(&lake);
    let chosen: Vec<u64> = ids.iter().step_by(2).copied().collect();
    let listed: Vec<String> = (0..10_000u64)
        .map(|i| {
            chosen
                .get(i as usize)
                .copied()
                .unwrap_or(u64::MAX - i)
                .to_string()
        })
        .collect();
    let recipe = dir.path().join("listed.toml");
    std::fs::write(
        &recipe,
        format!(
            "lake = {:?}\nseq_len = 63\nseed = 1\neos_token = 2\npad_token = 0\n\
             [components.listed]\nfilter = \"doc_id IN ({})\"\npacking = \"concat\"\n\
             [[stages]]\nname = \"one\"\nsamples = 4\nweights = {{ listed = 1 }}\n",
            lake.to_str().unwrap(),
            listed.join(", ")
        ),
    )
    .unwrap();
    let plan = run_json(&["plan", recipe.to_str().unwrap()]);
    let documents = plan["components"][0]["docs"].as_u64();
    assert_eq!(documents, Some(chosen.len() as u64), "{plan}");
}

/// A query over its memory bound fails saying so, rather than taking the machine's memory.
#[test]
fn a_query_over_its_memory_bound_is_refused_naming_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let err = run_err(&[
        "query",
        lake.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM documents a JOIN documents b ON a.text = b.text",
        "--max-memory-mb",
        "1",
    ]);
    assert!(
        err.contains("more memory") && err.contains("--max-memory-mb"),
        "{err}"
    );
}
