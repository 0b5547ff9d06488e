//! `tokenlake curate`, `ingest --pipeline`, `lm train` and `eval` on the committed excerpt of
//! the shared corpus: every label as one new version, junk flagged by its rule, copies in
//! their original's cluster, identical labels on a re-run, a second ingest checked against
//! the first without reading it again, and the evaluation report.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use serde_json::{Value, json};

use crate::support::*;

/// Label columns every curated lake has (the ones other tools rely on).
const LABELS: [&str; 16] = [
    "doc_id",
    "lang",
    "lang_score",
    "ppl",
    "quality_tier",
    "rule_flags",
    "keep_gopher_quality",
    "keep_gopher_repetition",
    "keep_c4",
    "keep_fineweb",
    "keep_ziya2",
    "ziya2_privacy",
    "ziya2_html",
    "dup_cluster",
    "is_dup",
    "dup_kind",
];

fn truth() -> HashMap<String, Value> {
    std::fs::read_to_string(data_dir().join("sample.truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// The label columns of one version, concatenated, with `input_row` first.
fn labels(lake: &std::path::Path, version: u64) -> RecordBatch {
    let mut columns = vec!["input_row"];
    columns.extend(LABELS);
    let batches = scan(lake, Some(version), &columns);
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch.column_by_name(name).unwrap().as_ref()
}

#[test]
fn curation_labels_every_document_in_one_version_and_reruns_give_identical_labels() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    let summary = run_json(&["curate", l]);
    assert_eq!(summary["version"], 2, "{summary}");
    assert_eq!(
        (summary["docs"].as_u64(), summary["labelled"].as_u64()),
        (Some(300), Some(300))
    );

    let batch = labels(&lake, 2);
    let docs = sample_docs();
    let truth = truth();
    let rows = column(&batch, "input_row").as_primitive::<UInt64Type>();
    let lang = column(&batch, "lang").as_string::<i32>();
    let flags = column(&batch, "rule_flags").as_primitive::<UInt64Type>();
    let keep = |name: &str, i: usize| column(&batch, name).as_boolean().value(i);
    let privacy = column(&batch, "ziya2_privacy").as_primitive::<UInt32Type>();
    let html = column(&batch, "ziya2_html").as_primitive::<UInt32Type>();
    let cluster = column(&batch, "dup_cluster").as_primitive::<UInt64Type>();
    let ids = column(&batch, "doc_id").as_primitive::<UInt64Type>();
    let mut row_of_id = HashMap::new();
    let (mut prose, mut prose_right) = (0, 0);
    for i in 0..batch.num_rows() {
        let doc = &docs[rows.value(i) as usize - 1];
        let id = doc["id"].as_str().unwrap();
        row_of_id.insert(id.to_string(), i);
        let kind = truth[id]["kind"].as_str().unwrap();
        let source = doc["source"].as_str().unwrap();
        // Prose: clean English or Chinese documents with sentences (at least five lines that end
        // a sentence of some length), not tables of contents, tables or headers alone.
        let text = doc["text"].as_str().unwrap();
        let sentences = text
            .lines()
            .filter(|l| {
                l.trim_end().ends_with(['.', '!', '?', '。', '！', '？'])
                    && (l.split_whitespace().count() >= 5 || l.chars().count() >= 15)
            })
            .count();
        if kind == "clean" && (source == "en" || source == "zh") && sentences >= 5 {
            prose += 1;
            prose_right += usize::from(lang.value(i) == source);
        }
        // Every kind of injected junk fails the rule meant for it.
        match kind {
            "junk:lorem" => assert!(!keep("keep_c4", i), "{id}"),
            "junk:repeat" => assert!(!keep("keep_gopher_repetition", i), "{id}"),
            "junk:pii" => assert!(privacy.value(i) > 0 && !keep("keep_ziya2", i), "{id}"),
            "junk:html" => assert!(html.value(i) > 3 && !keep("keep_ziya2", i), "{id}"),
            "junk:cookie" | "junk:links" => assert!(!keep("keep_ziya2", i), "{id}"),
            _ => {}
        }
        if kind.starts_with("junk") {
            assert_ne!(flags.value(i), 0, "{id}");
        }
    }
    assert!(prose >= 60, "{prose} prose documents");
    assert!(
        prose_right as f64 >= 0.99 * prose as f64,
        "{prose_right} of {prose} prose languages right"
    );
    // The excerpt's one injected copy whose original is in the excerpt shares its cluster.
    let (copy, original) = truth
        .values()
        .find_map(|t| {
            let original = row_of_id.get(t["dup_of"].as_str()?)?;
            Some((row_of_id[t["id"].as_str().unwrap()], *original))
        })
        .unwrap();
    assert_eq!(cluster.value(copy), ids.value(original));

    // A re-run reuses the stored labels; --recompute labels everything again; both agree.
    let again = run_json(&["curate", l]);
    assert_eq!(
        (again["version"].as_u64(), again["labelled"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(again["reused"], 300);
    let recomputed = run_json(&["curate", l, "--recompute"]);
    assert_eq!(recomputed["labelled"], 300);
    assert_eq!(labels(&lake, 3), batch);
    assert_eq!(labels(&lake, 4), batch);
    // Recipes filter on the new columns like on any other.
    let kept = run_ok(&[
        "sample",
        l,
        "--filter",
        "NOT is_dup AND keep_ziya2",
        "-n",
        "1000",
        "--columns",
        "doc_id",
    ]);
    assert!(kept.lines().count() > 200);
}

#[test]
fn a_second_ingest_is_checked_against_the_first_without_reading_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let docs = sample_docs();
    let (first, rest) = docs.split_at(150);
    let first_file = dir.path().join("first.jsonl");
    write_jsonl(&first_file, first);
    let lake = dir.path().join("lake");
    ingest(&lake, &[&first_file]);
    let l = lake.to_str().unwrap();
    assert_eq!(run_json(&["curate", l])["version"], 2);
    let before = labels(&lake, 2);

    // The second input: new documents, an exact copy and a near copy of first-ingest documents.
    let prose = first
        .iter()
        .filter(|d| d["source"] == "en" && d["text"].as_str().unwrap().len() > 1500)
        .take(2)
        .collect::<Vec<_>>();
    let mut second: Vec<Value> = rest.to_vec();
    second.push(json!({"id": "copy", "source": "en", "text": prose[0]["text"]}));
    let near = prose[1]["text"].as_str().unwrap().replacen("the", "a", 3);
    second.push(json!({"id": "near", "source": "en", "text": near}));
    let second_file = dir.path().join("second.jsonl");
    write_jsonl(&second_file, &second);
    ingest(&lake, &[&second_file]);
    let s = run_json(&["curate", l]);
    assert_eq!(
        (s["reused"].as_u64(), s["labelled"].as_u64()),
        (Some(150), Some(second.len() as u64))
    );
    assert!(s["state_reused"].is_string(), "{s}");

    let after = labels(&lake, 4);
    let ids = column(&after, "doc_id").as_primitive::<UInt64Type>();
    let cluster = column(&after, "dup_cluster").as_primitive::<UInt64Type>();
    let is_dup = column(&after, "is_dup").as_boolean();
    let row = |text: &str| {
        let all = scan(&lake, Some(4), &["text"]);
        let texts: Vec<String> = all
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .map(|t| t.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        texts.iter().position(|t| t == text).unwrap()
    };
    let (original, copy) = (
        row(prose[0]["text"].as_str().unwrap()),
        after.num_rows() - 2,
    );
    assert!(is_dup.value(copy) && cluster.value(copy) == ids.value(original));
    let (original, near_copy) = (
        row(prose[1]["text"].as_str().unwrap()),
        after.num_rows() - 1,
    );
    assert!(is_dup.value(near_copy) && cluster.value(near_copy) == ids.value(original));
    // The first ingest's labels are what they were.
    let kept = [0, 1, 2, 3, 4, 6]; // input_row, doc_id, lang, lang_score, ppl, rule_flags
    assert_eq!(
        after.slice(0, 150).project(&kept).unwrap(),
        before.project(&kept).unwrap()
    );
    assert!(!is_dup.value(original));

    // Curating the first version alone labels its documents as they were.
    let v1 = run_json(&["curate", l, "--version", "1"]);
    assert_eq!(
        (v1["curated_version"].as_u64(), v1["docs"].as_u64()),
        (Some(1), Some(150))
    );
}

#[test]
fn pipeline_files_bring_models_and_thresholds_and_ingest_preprocesses() {
    let dir = tempfile::tempdir().unwrap();
    // A 3-gram model trained on the excerpt's English prose.
    let (_model, out) = english_model(dir.path());
    assert!(out.contains("order 3"), "{out}");

    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        "[perplexity]\nmodels = { en = \"en.arpa\" }\n\n[rules]\ngopher_min_words = 10\n",
    )
    .unwrap();
    let input = dir.path().join("input.jsonl");
    let mut docs = sample_docs();
    docs.push(json!({"id": "zw", "source": "en", "text": "zero\u{200B}width and ﬁne ligatures in a short note."}));
    write_jsonl(&input, &docs);
    let lake = dir.path().join("lake");
    let tokenizer = tokenizer();
    let mut args = sample_ingest_args(
        lake.to_str().unwrap(),
        &[input.to_str().unwrap()],
        tokenizer.to_str().unwrap(),
    );
    args.extend(["--pipeline", pipeline.to_str().unwrap()]);
    let report = run_json(&args);
    assert_eq!(report["version"], 1);
    assert_eq!(report["curation"]["version"], 2, "{report}");

    // Preprocessing ran before tokenization: NFKC and no invisible characters.
    let texts = scan(&lake, Some(2), &["text", "ppl", "quality_tier", "lang"]);
    let batch = arrow_select::concat::concat_batches(&texts[0].schema(), &texts).unwrap();
    let text = batch.column(0).as_string::<i32>();
    assert_eq!(
        text.value(batch.num_rows() - 1),
        "zerowidth and fine ligatures in a short note."
    );
    // English documents have a perplexity and a tier; about 30 % of them are high.
    let ppl = batch
        .column(1)
        .as_primitive::<arrow_array::types::Float32Type>();
    let tier = batch
        .column(2)
        .as_primitive::<arrow_array::types::UInt8Type>();
    let lang = batch.column(3).as_string::<i32>();
    let en: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| lang.value(i) == "en")
        .collect();
    assert!(en.iter().all(|&i| !ppl.is_null(i) && !tier.is_null(i)));
    let high = en.iter().filter(|&&i| tier.value(i) == 0).count() as f64 / en.len() as f64;
    assert!((0.25..=0.35).contains(&high), "{high}");
    assert!(
        (0..batch.num_rows())
            .filter(|&i| lang.value(i) == "zh")
            .all(|i| ppl.is_null(i))
    );

    // A typo in the pipeline file is an error that names the file and the key.
    std::fs::write(&pipeline, "[rules]\ngopher_min_wordz = 10\n").unwrap();
    let err = run_err(&[
        "curate",
        lake.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
    ]);
    assert!(
        err.contains("pipeline.toml") && err.contains("gopher_min_wordz"),
        "{err}"
    );
    std::fs::write(
        &pipeline,
        "[perplexity]\nmodels = { en = \"missing.arpa\" }\n",
    )
    .unwrap();
    let err = run_err(&[
        "curate",
        lake.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
    ]);
    assert!(err.contains("missing.arpa"), "{err}");
}

#[test]
fn eval_reports_rates_with_verdicts_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    // An uncurated lake is labelled on the sample.
    let out = dir.path().join("report");
    let report = run_json(&["eval", l, "--out", out.to_str().unwrap()]);
    assert_eq!(
        (report["curated"].as_bool(), report["sampled"].as_u64()),
        (Some(false), Some(300))
    );
    run_ok(&["curate", l]);
    let sampled = [
        "eval",
        l,
        "--out",
        out.to_str().unwrap(),
        "--min-docs",
        "100",
        "--seed",
        "7",
    ];
    let report = run_json(&sampled);
    assert_eq!(
        (report["curated"].as_bool(), report["sampled"].as_u64()),
        (Some(true), Some(100))
    );
    let rates: HashMap<String, Value> = report["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    for name in ["privacy", "toxic", "advertising", "html", "duplicates"] {
        assert!(rates.contains_key(name), "{name}");
    }
    // The excerpt holds web junk (4 % personal data): far above 1 per 1000.
    assert_eq!(rates["privacy"]["complies"], false);
    assert_eq!(report["compliant"], false);
    let again = run_json(&sampled);
    assert_eq!(
        again["rates"], report["rates"],
        "the same seed gives the same sample"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("NOT compliant"));
    assert!(out.join("perplexity.svg").exists() && out.join("rates.svg").exists());
}
