//! The published rule sets against their reference: datatrove's Gopher quality, Gopher
//! repetition, C4 and FineWeb filters (default settings) run on the committed excerpt, and
//! `tokenlake curate`'s `keep_*` columns must make the same keep/drop decision for at least
//! 99 % of documents. Runs where Python has datatrove (tests/run.sh installs it); elsewhere
//! the crate's test against the committed verdicts (tests/data/sample.datatrove.jsonl) stands
//! in.

use std::collections::HashMap;
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use serde_json::Value;

use crate::support::*;

mod needs_python {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PYTHON with datatrove, spacy and regex (tests/run.sh)"]
    fn published_rule_sets_agree_with_datatrove() {
        let python = required_env(
            "TOKENLAKE_PYTHON",
            "a Python with datatrove, spacy and regex",
        );
        let script = data_dir().join("../../services/tokenlake-bench/python/datatrove_verdicts.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg(sample())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verdicts: HashMap<String, Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_string(), v)
            })
            .collect();

        // The rules see the texts as datatrove does: no preprocessing.
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let pipeline = dir.path().join("raw.toml");
        std::fs::write(
            &pipeline,
            "[preprocess]\nrepair_encoding = false\nnfkc = false\nstrip_invisible = false\n",
        )
        .unwrap();
        run_ok(&[
            "curate",
            lake.to_str().unwrap(),
            "--pipeline",
            pipeline.to_str().unwrap(),
        ]);
        let sets = ["gopher_quality", "gopher_repetition", "c4", "fineweb"];
        let mut columns = vec!["input_row".to_string()];
        columns.extend(sets.iter().map(|s| format!("keep_{s}")));
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let docs = sample_docs();
        let mut differ = vec![0usize; sets.len()];
        let mut total = 0;
        for batch in scan(&lake, None, &columns) {
            let rows = batch.column(0).as_primitive::<UInt64Type>();
            for i in 0..batch.num_rows() {
                let id = docs[rows.value(i) as usize - 1]["id"].as_str().unwrap();
                total += 1;
                for (k, set) in sets.iter().enumerate() {
                    let ours = batch.column(k + 1).as_boolean().value(i);
                    differ[k] += usize::from(ours != verdicts[id][*set].as_bool().unwrap());
                }
            }
        }
        assert_eq!(total, 300);
        for (set, d) in sets.iter().zip(differ) {
            let agreement = 1.0 - d as f64 / total as f64;
            assert!(
                agreement >= 0.99,
                "{set}: agreement {agreement:.3} ({d} differ)"
            );
        }
    }
}
