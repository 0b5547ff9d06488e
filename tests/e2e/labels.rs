//! Label columns: imported by doc_id as a new version without touching tokens, filtered on by
//! recipes, kept through later ingests, and refused whole when anything is wrong.

use arrow_array::Array;
use serde_json::json;

use crate::support::*;

#[test]
fn imported_labels_are_columns_that_recipes_filter_on() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    ingest(&lake, &[&sample()]);
    let before = read_contents(&lake, None);
    let mut ids: Vec<u64> = read_tokens(&lake, None).into_iter().map(|d| d.0).collect();
    ids.sort_unstable();

    // the first 200 documents by id get labels; every fifth of them is a copy
    let labels: Vec<_> = ids[..200]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"doc_id": id, "quality": i as f64 / 200.0, "is_dup": i % 5 == 0,
                   "task": if i % 2 == 0 { "qa" } else { "chat" }})
        })
        .collect();
    let file = dir.path().join("labels.jsonl");
    write_jsonl(&file, &labels);
    let import = run_json(&["label", "import", l, file.to_str().unwrap()]);
    assert_eq!(import["version"], 2);
    assert_eq!(import["labelled_docs"], 200);
    assert_eq!(
        import["columns"],
        json!([
            ["is_dup", "Boolean"],
            ["quality", "Float64"],
            ["task", "Utf8"]
        ])
    );
    // tokens are untouched; the old version reads as before
    assert_eq!(read_contents(&lake, Some(2)), before);
    assert_eq!(read_contents(&lake, Some(1)), before);

    // a recipe filters on the labels
    let recipe = dir.path().join("labels.toml");
    std::fs::write(
        &recipe,
        format!(
            "lake = {l:?}\nseq_len = 64\nseed = 7\neos_token = 2\npad_token = 0\n\
             [components.good]\nfilter = \"quality >= 0.5 AND NOT is_dup\"\npacking = \"concat\"\n\
             [components.sft]\nfilter = \"task IS NOT NULL\"\npacking = \"bin\"\ntask = \"task\"\n\
             [[stages]]\nname = \"one\"\nsamples = 50\nweights = {{ good = 1, sft = 1 }}\n"
        ),
    )
    .unwrap();
    let plan = run_json(&["plan", recipe.to_str().unwrap()]);
    let components = plan["components"].as_array().unwrap();
    let good = components.iter().find(|c| c["name"] == "good").unwrap();
    let expected_good = (100..200).filter(|i| i % 5 != 0).count();
    assert_eq!(good["docs"], expected_good as u64);
    let sft = components.iter().find(|c| c["name"] == "sft").unwrap();
    assert_eq!(sft["docs"], 200);
    assert_eq!(sft["groups"], 2);

    // a later ingest keeps working; its documents have no labels yet
    let extra = dir.path().join("extra.jsonl");
    write_jsonl(
        &extra,
        &[json!({"id": "new", "source": "en", "text": "a document after the labels"})],
    );
    assert_eq!(ingest(&lake, &[&extra])["version"], 3);
    let nulls: usize = scan(&lake, None, &["quality"])
        .iter()
        .map(|b| b.column(0).null_count())
        .sum();
    assert_eq!(nulls, 300 - 200 + 1);
}

#[test]
fn bad_label_imports_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    ingest(&lake, &[&sample()]);
    let id = read_tokens(&lake, None)[0].0;
    let twice = format!("doc_id {id} is labelled twice");
    let cases: [(&str, Vec<serde_json::Value>, &str); 4] = [
        (
            "unknown.jsonl",
            vec![
                json!({"doc_id": id, "q": 1}),
                json!({"doc_id": 12345, "q": 2}),
            ],
            "1 doc_ids are not in the latest version (e.g. 12345)",
        ),
        (
            "twice.jsonl",
            vec![json!({"doc_id": id, "q": 1}), json!({"doc_id": id, "q": 2})],
            &twice,
        ),
        (
            "exists.jsonl",
            vec![json!({"doc_id": id, "source": "x"})],
            "column \"source\" already exists",
        ),
        (
            "mixed.jsonl",
            vec![
                json!({"doc_id": id, "q": 1}),
                json!({"doc_id": id, "q": "high"}),
            ],
            "line 2: q is a string here but an integer on line 1",
        ),
    ];
    for (name, rows, says) in cases {
        let file = dir.path().join(name);
        write_jsonl(&file, &rows);
        let err = run_err(&["label", "import", l, file.to_str().unwrap()]);
        assert!(err.contains(says), "{name}: {err}");
    }
    assert_eq!(
        run_json(&["versions", l]).as_array().unwrap().len(),
        1,
        "nothing was committed"
    );
}

#[test]
fn samples_are_deterministic_nested_and_feed_label_import() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    ingest(&lake, &[&sample()]);
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["sample", l];
        all.extend_from_slice(args);
        run_ok(&all)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };

    let twenty = lines(&["-n", "20", "--seed", "3", "--filter", "source = 'en'"]);
    assert_eq!(twenty.len(), 20);
    assert_eq!(
        twenty,
        lines(&["-n", "20", "--seed", "3", "--filter", "source = 'en'"])
    );
    assert_eq!(
        lines(&["-n", "10", "--seed", "3", "--filter", "source = 'en'"]),
        twenty[..10].to_vec()
    );
    assert_ne!(
        lines(&["-n", "20", "--seed", "4", "--filter", "source = 'en'"]),
        twenty
    );
    assert!(
        twenty
            .iter()
            .all(|d| d["source"] == "en" && d.get("tokens").is_none() && d["text"].is_string())
    );
    assert_eq!(
        lines(&["-n", "1000", "--filter", "source = 'en'"]).len(),
        60,
        "all matches when n is larger"
    );

    let err = run_err(&["sample", l, "--filter", "flavour = 'x'"]);
    assert!(err.contains("flavour"), "{err}");

    // the review loop: people label the sample, the labels come back as a column
    let reviewed: Vec<_> = twenty
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"doc_id": d["doc_id"], "coherence": (i % 3) as i64}))
        .collect();
    let file = dir.path().join("reviewed.jsonl");
    write_jsonl(&file, &reviewed);
    run_ok(&["label", "import", l, file.to_str().unwrap()]);
    let rated = lines(&[
        "-n",
        "100",
        "--filter",
        "coherence IS NOT NULL",
        "--columns",
        "doc_id,coherence",
    ]);
    assert_eq!(rated.len(), 20);
}
