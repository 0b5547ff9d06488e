//! `tokenlake export`: Megatron's indexed dataset per recipe component, read back by
//! Megatron-Core itself where it is installed, JSON lines and Parquet against the tests' own Lance
//! scan, and failures that publish nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt64Type};
use serde_json::Value;

use crate::support::*;

/// Every document's tokens per source, in scan order, read with the lance crate.
fn tokens_by_source(lake: &std::path::Path) -> BTreeMap<String, Vec<(u64, Vec<u32>)>> {
    let mut out: BTreeMap<String, Vec<(u64, Vec<u32>)>> = BTreeMap::new();
    for b in scan(lake, Some(1), &["doc_id", "source", "tokens"]) {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let sources = b.column(1).as_string::<i32>();
        let lists = b.column(2).as_list::<i32>();
        for i in 0..b.num_rows() {
            let tokens = lists.value(i);
            let tokens = tokens.as_primitive::<UInt16Type>().values();
            out.entry(sources.value(i).to_string())
                .or_default()
                .push((ids.value(i), tokens.iter().map(|&t| u32::from(t)).collect()));
        }
    }
    out
}

/// Each document's tokens, in order.
type Documents = Vec<Vec<u32>>;

/// Exports the ziya2 recipe's components as Megatron files under `dir/out/ziya2_*` and checks
/// the report's counts and each file against the lake, read independently of the exporter.
/// Returns the report and, per component, its prefix and expected documents.
fn megatron_export(dir: &Path) -> (Value, Vec<(String, Documents)>) {
    let lake = sample_lake(dir);
    let prefix = dir.join("out/ziya2");
    let recipe = ziya2();
    let report = run_json(&[
        "export",
        lake.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--format",
        "megatron",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(report["version"], 1, "the recipe's tag, not the latest");
    let by_source = tokens_by_source(&lake);
    let mut components = Vec::new();
    // Components that select by source alone (`math` also matches a regular expression).
    for (component, source) in [
        ("en", "en"),
        ("zh", "zh"),
        ("code", "code"),
        ("sft", "short"),
    ] {
        let expected: Vec<Vec<u32>> = by_source[source]
            .iter()
            .map(|(_, t)| t.iter().copied().chain([2]).collect())
            .collect();
        let output = report["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == component)
            .unwrap();
        assert_eq!(output["documents"], expected.len());
        let component_prefix = format!("{}_{component}", prefix.display());
        assert_eq!(output["prefix"], component_prefix.as_str());
        let bin = format!("{component_prefix}.bin");
        let idx = format!("{component_prefix}.idx");
        let read = tokenlake_export_read(&bin, &idx);
        assert_eq!(read, expected, "{component}");
        components.push((component_prefix, expected));
    }
    (report, components)
}

#[test]
fn megatron_export_of_a_recipe_holds_each_components_documents_with_eos() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = megatron_export(dir.path());
    // Each stage's Megatron blend names the components it draws from, with the recipe's weights.
    let blends = &report["megatron_data_paths"];
    let prefix = dir.path().join("out/ziya2");
    assert_eq!(
        blends["stage1-pretrain"],
        format!("0.2 {p}_code 0.45 {p}_en 0.35 {p}_zh", p = prefix.display())
    );
    // Nothing half-written is left beside the outputs.
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".partial"), "{name}");
    }
}

mod needs_megatron {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_MEGATRON_PYTHON with megatron-core (tests/run.sh)"]
    fn megatron_core_reads_each_component_as_exported() {
        let python = required_env("TOKENLAKE_MEGATRON_PYTHON", "a Python with megatron-core");
        let dir = tempfile::tempdir().unwrap();
        let (_, components) = megatron_export(dir.path());
        let mut checks = Vec::new();
        for (i, (prefix, expected)) in components.iter().enumerate() {
            let expected_file = dir.path().join(format!("{i}.expected.json"));
            std::fs::write(&expected_file, serde_json::to_string(expected).unwrap()).unwrap();
            checks.push(prefix.clone());
            checks.push(expected_file.to_str().unwrap().to_string());
        }
        let out = Command::new(python)
            .arg(data_dir().join("../python/check_megatron.py"))
            .args(&checks)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Megatron-Core read the export differently: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `.bin`/`.idx` layout read independently of the exporter: Megatron-Core's documented
/// index (magic, version 1, dtype, counts, i32 lengths, i64 byte offsets, i64 document bounds).
fn tokenlake_export_read(bin: &str, idx: &str) -> Vec<Vec<u32>> {
    let idx = std::fs::read(idx).unwrap();
    let bin = std::fs::read(bin).unwrap();
    assert_eq!(&idx[..9], b"MMIDIDX\x00\x00");
    assert_eq!(u64::from_le_bytes(idx[9..17].try_into().unwrap()), 1);
    assert_eq!(idx[17], 8, "uint16 tokens");
    let n = u64::from_le_bytes(idx[18..26].try_into().unwrap()) as usize;
    assert_eq!(
        u64::from_le_bytes(idx[26..34].try_into().unwrap()) as usize,
        n + 1
    );
    let lengths = &idx[34..34 + 4 * n];
    let pointers = &idx[34 + 4 * n..34 + 12 * n];
    (0..n)
        .map(|i| {
            let len = i32::from_le_bytes(lengths[4 * i..4 * i + 4].try_into().unwrap()) as usize;
            let at = i64::from_le_bytes(pointers[8 * i..8 * i + 8].try_into().unwrap()) as usize;
            bin[at..at + 2 * len]
                .chunks_exact(2)
                .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
                .collect()
        })
        .collect()
}

#[test]
fn jsonl_and_parquet_exports_hold_the_filtered_documents() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    let expected = &tokens_by_source(&lake)["zh"];

    let prefix = dir.path().join("zh");
    run_ok(&[
        "export",
        lake_arg,
        "--filter",
        "source = 'zh'",
        "--format",
        "jsonl",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let lines = std::fs::read_to_string(dir.path().join("zh.jsonl")).unwrap();
    let got: Vec<(u64, Vec<u32>)> = lines
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            assert!(
                row["text"].is_string() && row.get("lang").is_some(),
                "{row}"
            );
            let tokens = row["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect();
            (row["doc_id"].as_u64().unwrap(), tokens)
        })
        .collect();
    assert_eq!(&got, expected);

    run_ok(&[
        "export",
        lake_arg,
        "--filter",
        "source = 'zh'",
        "--format",
        "parquet",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let file = std::fs::File::open(dir.path().join("zh.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut got = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch
            .column_by_name("doc_id")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let lists = batch.column_by_name("tokens").unwrap().as_list::<i32>();
        for i in 0..batch.num_rows() {
            let tokens = lists.value(i);
            let tokens = tokens.as_primitive::<UInt16Type>().values();
            got.push((ids.value(i), tokens.iter().map(|&t| u32::from(t)).collect()));
        }
    }
    assert_eq!(&got, expected);
}

#[test]
fn a_failing_export_publishes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let prefix = out.join("x");
    let prefix = prefix.to_str().unwrap();
    // The recipe's last component (by name) selects nothing: the earlier ones, already
    // written, must not appear.
    let recipe = std::fs::read_to_string(ziya2()).unwrap().replace(
        "filter = \"source = 'zh'\"",
        "filter = \"source = 'nowhere'\"",
    );
    let recipe_path = dir.path().join("recipe.toml");
    std::fs::write(&recipe_path, recipe).unwrap();
    for (args, expect) in [
        (
            vec![
                "--recipe",
                recipe_path.to_str().unwrap(),
                "--format",
                "megatron",
            ],
            "component zh (source = 'nowhere') selects no documents",
        ),
        (
            vec!["--filter", "no_such_column = 1", "--format", "parquet"],
            "no_such_column",
        ),
        (
            vec!["--format", "jsonl", "--eos", "2"],
            "--eos only applies to --format megatron",
        ),
        (
            vec!["--format", "megatron", "--version", "7"],
            "no version 7",
        ),
    ] {
        let mut full = vec!["export", lake_arg, "--out", prefix];
        full.extend(args);
        let err = run_err(&full);
        assert!(err.contains(expect), "{full:?}: {err}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "{full:?} left files behind"
        );
    }
}
