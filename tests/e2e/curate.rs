//! `tokenlake curate` on the committed excerpt: duplicate labels as one new version, the
//! excerpt's injected copy in its original's cluster, and a second run refused.

use std::collections::HashMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use serde_json::Value;

use crate::support::*;

#[test]
fn curate_labels_copies_as_one_new_version_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    let summary = run_json(&["curate", l]);
    assert_eq!(summary["version"], 2);
    assert_eq!(summary["docs"], 300);
    let duplicates = summary["duplicates"].as_u64().unwrap();
    assert!((1..=20).contains(&duplicates), "{summary}");

    // The excerpt's one injected copy whose original is in the excerpt shares its cluster.
    let ids: Vec<String> = sample_docs()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let row_of: HashMap<&str, u64> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u64 + 1)) // input_row counts lines from 1
        .collect();
    let truth: Vec<Value> = std::fs::read_to_string(data_dir().join("sample.truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (copy, original) = truth
        .iter()
        .filter_map(|t| {
            let original = t["dup_of"].as_str()?;
            Some((row_of[t["id"].as_str().unwrap()], *row_of.get(original)?))
        })
        .next()
        .unwrap();
    let mut cluster_of_row = HashMap::new();
    let mut flagged = 0;
    for batch in scan(
        &lake,
        None,
        &["input_row", "dup_cluster", "is_dup", "dup_kind"],
    ) {
        let rows = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::UInt64).unwrap();
        let rows = rows.as_primitive::<UInt64Type>();
        let clusters = batch.column(1).as_primitive::<UInt64Type>();
        let dup = batch.column(2).as_boolean();
        let kind = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            cluster_of_row.insert(rows.value(i), clusters.value(i));
            assert_eq!(
                dup.value(i),
                !kind.is_null(i),
                "a duplicate says how it was found"
            );
            flagged += usize::from(dup.value(i));
        }
    }
    assert_eq!(flagged as u64, duplicates);
    assert_eq!(cluster_of_row[&copy], cluster_of_row[&original]);

    let err = run_err(&["curate", l]);
    assert!(err.contains("curated already"), "{err}");
    // Recipes filter on the new columns like on any other.
    let one_of_each = run_ok(&[
        "sample",
        l,
        "--filter",
        "NOT is_dup",
        "-n",
        "1000",
        "--columns",
        "doc_id",
    ]);
    assert_eq!(one_of_each.lines().count() as u64, 300 - duplicates);
}
