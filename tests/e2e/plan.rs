//! Recipes, plans and local streams over the sample corpus: the shipped Ziya2 recipe, ranks and
//! cursors through the real binary, a copied lake streaming the same bytes, samples holding the
//! lake's tokens, and recipe errors that name their line.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// `tokenlake stream RECIPE --lake LAKE --checksums extra…` as (global index, component, hash).
fn checksums(recipe: &Path, lake: &Path, extra: &[&str]) -> Vec<(u64, String, String)> {
    let mut args = vec![
        "stream",
        recipe.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--checksums",
    ];
    args.extend_from_slice(extra);
    run_ok(&args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "checksum line {l:?}");
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
// Kept as one test: one plan, checked from its summary to its streamed samples.
fn the_ziya2_recipe_plans_and_streams_the_sample_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    let r = ziya2();
    let r = r.to_str().unwrap();

    let plan = run_json(&["plan", r, "--lake", l, "--version", "1"]);
    assert_eq!(plan["version"], 1);
    let stages: Vec<(&str, u64)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["samples"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("stage1-pretrain", 8_000_000u64.div_ceil(4096)),
            ("stage2-supervised", 200),
            ("stage3-math", 100)
        ]
    );
    assert_eq!(plan["samples"], 1954 + 200 + 100);
    let components: HashMap<&str, &Value> = plan["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c))
        .collect();
    for (name, docs) in [("en", 60), ("zh", 60), ("code", 60), ("sft", 60)] {
        assert_eq!(components[name]["docs"], docs, "{name}");
    }
    let math = components["math"]["docs"].as_u64().unwrap();
    assert!(
        math > 0 && math < 60,
        "math selects some English documents, not all: {math}"
    );
    assert!(
        components["sft"]["groups"].as_u64().unwrap() > 1,
        "supervised data is packed by task"
    );
    assert_eq!(components["sft"]["packing"], "bin");

    // The whole plan from one rank: global order, each stage drawing only on its components.
    let all = checksums(&ziya2(), &lake, &[]);
    assert_eq!(all.len(), 2254);
    for (i, (g, component, _)) in all.iter().enumerate() {
        assert_eq!(*g, i as u64);
        let allowed: &[&str] = match g {
            0..1954 => &["en", "zh", "code"],
            1954..2154 => &["sft", "en", "zh", "code"],
            _ => &["math", "en", "zh", "code", "sft"],
        };
        assert!(
            allowed.contains(&component.as_str()),
            "sample {g} from {component}"
        );
    }
    let stage2_sft = all[1954..2154].iter().filter(|s| s.1 == "sft").count();
    assert_eq!(stage2_sft, 100, "half of stage 2 is supervised data");

    // Three ranks with micro-batch 2 together stream the same samples as one rank.
    let mut union = Vec::new();
    for rank in ["0", "1", "2"] {
        union.extend(checksums(
            &ziya2(),
            &lake,
            &["--world", "3", "--rank", rank, "--micro-batch", "2"],
        ));
    }
    union.sort();
    assert_eq!(union, all[..2250].to_vec(), "374 whole steps of 6 samples");

    // Stop after 100 steps of one rank, resume with four ranks of micro-batch 2.
    let cursor_file = dir.path().join("cursor");
    let first = checksums(
        &ziya2(),
        &lake,
        &[
            "--micro-batch",
            "3",
            "--steps",
            "100",
            "--cursor-out",
            cursor_file.to_str().unwrap(),
        ],
    );
    assert_eq!(first, all[..300].to_vec());
    let cursor = std::fs::read_to_string(&cursor_file)
        .unwrap()
        .trim()
        .to_string();
    let mut rest = Vec::new();
    for rank in ["0", "1", "2", "3"] {
        rest.extend(checksums(
            &ziya2(),
            &lake,
            &[
                "--world",
                "4",
                "--rank",
                rank,
                "--micro-batch",
                "2",
                "--cursor",
                &cursor,
            ],
        ));
    }
    rest.sort();
    assert_eq!(rest, all[300..300 + (2254 - 300) / 8 * 8].to_vec());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_copied_lake_streams_the_same_bytes_and_takes_the_same_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let copy = dir.path().join("elsewhere").join("lake-copy");
    copy_dir(&lake, &copy); // before planning: the copy has no caches
    let r = ziya2();

    let a = run_json(&[
        "plan",
        r.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
    ]);
    let b = run_json(&[
        "plan",
        r.to_str().unwrap(),
        "--lake",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(a["plan_id"], b["plan_id"]);
    assert!(
        lake.join("cache/plans")
            .join(format!("{}-f2", a["plan_id"].as_str().unwrap()))
            .is_dir()
    );
    assert!(
        copy.join("cache/plans")
            .join(format!("{}-f2", a["plan_id"].as_str().unwrap()))
            .is_dir()
    );

    let cursor_file = dir.path().join("cursor");
    let first = checksums(
        &r,
        &lake,
        &[
            "--micro-batch",
            "4",
            "--steps",
            "25",
            "--cursor-out",
            cursor_file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        first,
        checksums(&r, &copy, &["--micro-batch", "4", "--steps", "25"])
    );
    let cursor = std::fs::read_to_string(&cursor_file)
        .unwrap()
        .trim()
        .to_string();
    let from_a = checksums(
        &r,
        &lake,
        &["--micro-batch", "4", "--steps", "10", "--cursor", &cursor],
    );
    let from_b = checksums(
        &r,
        &copy,
        &["--micro-batch", "4", "--steps", "10", "--cursor", &cursor],
    );
    assert_eq!(from_a, from_b);
    assert_eq!(from_a[0].0, 100);
}

#[test]
fn streamed_samples_hold_the_lakes_tokens_at_their_spans() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let out = dir.path().join("batches.jsonl");
    // the last steps reach stage 3, where bins and padding appear
    run_ok(&[
        "stream",
        ziya2().to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--micro-batch",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    let docs: HashMap<u64, Vec<u16>> = read_tokens(&lake, None).into_iter().collect();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut padded = 0;
    let mut samples = 0;
    for line in text.lines() {
        let sample: Value = serde_json::from_str(line).unwrap();
        let tokens: Vec<u64> = sample["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(tokens.len(), 4097);
        let mut covered = 0;
        for span in sample["spans"].as_array().unwrap() {
            let doc = &docs[&span["doc_id"].as_u64().unwrap()];
            let (offset, len, position) = (
                span["offset"].as_u64().unwrap() as usize,
                span["len"].as_u64().unwrap() as usize,
                span["position"].as_u64().unwrap() as usize,
            );
            assert_eq!(position, covered, "spans tile the sample from its start");
            for k in 0..len {
                let expected = doc.get(offset + k).map_or(2, |&t| u64::from(t)); // past the end: EOS
                assert_eq!(tokens[position + k], expected);
            }
            covered += len;
        }
        if covered < tokens.len() {
            padded += 1;
            assert!(
                tokens[covered..].iter().all(|&t| t == 0),
                "the rest is padding"
            );
        }
        samples += 1;
    }
    assert_eq!(samples, 2250);
    assert!(padded > 0, "bin-packed samples are padded");
}

#[test]
// Kept as one test: a table of bad recipes, each with the line and message it must be refused with.
fn bad_recipes_and_foreign_cursors_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    let original = std::fs::read_to_string(ziya2()).unwrap();
    let line_of = |needle: &str| original.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let variant = |name: &str, from: &str, to: &str| {
        assert!(original.contains(from), "{from:?} is not in the recipe");
        let path = dir.path().join(name);
        std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
        path
    };

    let en_line = line_of("filter = \"source = 'en'\"");
    for (name, filter, says) in [
        ("bad-sql.toml", "source = = 'en'", "does not work"),
        ("unknown-column.toml", "flavour = 'en'", "flavour"),
        ("empty.toml", "source = 'klingon'", "selects no documents"),
    ] {
        let recipe = variant(
            name,
            "filter = \"source = 'en'\"",
            &format!("filter = \"{filter}\""),
        );
        let err = run_err(&["plan", recipe.to_str().unwrap(), "--lake", l]);
        assert!(
            err.contains(&format!("line {en_line}"))
                && err.contains("component \"en\"")
                && err.contains(says),
            "{name}: {err}"
        );
    }

    let recipe = variant(
        "typo.toml",
        "packing = \"concat\"",
        "packing = \"concat\"\nshufle = true",
    );
    let err = run_err(&["plan", recipe.to_str().unwrap(), "--lake", l]);
    assert!(
        err.contains(&format!("line {}", en_line + 2)) && err.contains("shufle"),
        "{err}"
    );

    let recipe = variant(
        "task.toml",
        "task = \"split_part(url, '/', 3)\"",
        "task = \"no_such_column\"",
    );
    let err = run_err(&["plan", recipe.to_str().unwrap(), "--lake", l]);
    assert!(
        err.contains("component \"sft\"") && err.contains("no_such_column"),
        "{err}"
    );

    let recipe = variant("eos.toml", "eos_token = 2 ", "eos_token = 99999 ");
    let err = run_err(&["plan", recipe.to_str().unwrap(), "--lake", l]);
    assert!(
        err.contains("eos_token 99999") && err.contains("vocabulary"),
        "{err}"
    );

    // A cursor of another seed or another lake version is refused and says what differs.
    let cursor_file = dir.path().join("cursor");
    checksums(
        &ziya2(),
        &lake,
        &[
            "--steps",
            "3",
            "--cursor-out",
            cursor_file.to_str().unwrap(),
        ],
    );
    let cursor = std::fs::read_to_string(&cursor_file)
        .unwrap()
        .trim()
        .to_string();
    let reseeded = variant("seed.toml", "seed = 1234", "seed = 99");
    let err = run_err(&[
        "stream",
        reseeded.to_str().unwrap(),
        "--lake",
        l,
        "--cursor",
        &cursor,
    ]);
    assert!(
        err.contains("seed differs (this plan's 99, cursor's 1234)")
            && !err.contains("data differs"),
        "{err}"
    );
    let extra = dir.path().join("extra.jsonl");
    write_jsonl(
        &extra,
        &[serde_json::json!({"id": "x", "source": "en", "text": "one more English document"})],
    );
    ingest(&lake, &[&extra]);
    let err = run_err(&[
        "stream",
        ziya2().to_str().unwrap(),
        "--lake",
        l,
        "--version",
        "2",
        "--cursor",
        &cursor,
    ]);
    assert!(
        err.contains("data differs") && !err.contains("recipe differs"),
        "{err}"
    );
    // the version it was made on still takes it
    run_ok(&[
        "stream",
        ziya2().to_str().unwrap(),
        "--lake",
        l,
        "--version",
        "1",
        "--cursor",
        &cursor,
        "--steps",
        "1",
    ]);
    let err = run_err(&[
        "stream",
        ziya2().to_str().unwrap(),
        "--lake",
        l,
        "--cursor",
        "tlc1-nonsense",
    ]);
    assert!(err.contains("invalid cursor"), "{err}");
}

/// A remote lake's caches go to the user's cache directory, never to the shared temporary
/// directory where another local user could have planted them: with nowhere safe to cache, a
/// plan stops before reading the lake and says what to set.
#[test]
fn a_remote_lake_with_nowhere_safe_to_cache_is_refused_saying_what_to_set() {
    let out = tokenlake()
        .args([
            "plan",
            ziya2().to_str().unwrap(),
            "--lake",
            "s3://no-such-bucket/lake",
        ])
        .env_remove("TOKENLAKE_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOKENLAKE_CACHE_DIR") && err.contains("HOME"),
        "{err}"
    );
}

/// A sharded build (`materialise --shard I/N` tasks in any order, then `--seal N`) publishes
/// the store a build on one machine would: the same documents, tokens and plan id, and a
/// window over it streams the full cache's bytes. Sealing before every task has published
/// names the missing ones and publishes nothing; a task run twice changes nothing.
#[test]
fn a_sharded_materialise_seals_the_store_a_whole_one_would_be() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let docs = sample_docs();
    let tok = tokenizer();
    // Three ingests: three fragments for the shards to divide.
    for (i, part) in docs.chunks(docs.len().div_ceil(3)).enumerate() {
        let path = dir.path().join(format!("part-{i}.jsonl.zst"));
        write_jsonl_zst(&path, part);
        run_ok(&sample_ingest_args(
            l,
            &[path.to_str().unwrap()],
            tok.to_str().unwrap(),
        ));
    }
    run_ok(&["tag", l, "create", "quickstart"]);
    let recipe = ziya2();
    let r = recipe.to_str().unwrap();
    let sharded = dir.path().join("sharded");
    let whole = dir.path().join("whole");
    let shard = |i: u32| {
        run_json(&[
            "materialise",
            r,
            "--lake",
            l,
            "--token-stores",
            sharded.to_str().unwrap(),
            "--chunk-mib",
            "1",
            "--shard",
            &format!("{i}/5"),
        ])
    };
    let seal = |stores: &Path| {
        run(&[
            "materialise",
            r,
            "--lake",
            l,
            "--token-stores",
            stores.to_str().unwrap(),
            "--seal",
            "5",
            "--json",
        ])
    };
    // Five tasks over three fragments: some shards are empty. Out of order.
    let mut documents = 0;
    for i in [3, 0, 4] {
        documents += shard(i)["documents"].as_u64().unwrap();
    }
    let early = seal(&sharded);
    assert!(!early.status.success());
    let stderr = String::from_utf8_lossy(&early.stderr);
    assert!(
        stderr.contains("shards 1, 2 of 5 have not published"),
        "{stderr}"
    );
    for i in [2, 1] {
        documents += shard(i)["documents"].as_u64().unwrap();
    }
    let again = shard(1);
    assert_eq!(
        again["documents"],
        shard(1)["documents"],
        "a task run twice is the same"
    );
    let sealed = seal(&sharded);
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let sealed: Value = serde_json::from_slice(&sealed.stdout).unwrap();
    assert_eq!(sealed["shards"], 5);
    assert_eq!(sealed["documents"].as_u64().unwrap(), documents);

    let published = run_json(&[
        "materialise",
        r,
        "--lake",
        l,
        "--token-stores",
        whole.to_str().unwrap(),
        "--chunk-mib",
        "1",
    ]);
    for key in ["plan_id", "documents", "tokens"] {
        assert_eq!(
            sealed[key], published[key],
            "{key}: {sealed} vs {published}"
        );
    }

    let stream = |cache: &str, mode: &[&str]| {
        let cache = dir.path().join(cache);
        let mut args = vec![
            "stream",
            r,
            "--lake",
            l,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--world",
            "3",
            "--rank",
            "1",
            "--micro-batch",
            "2",
            "--checksums",
        ];
        args.extend_from_slice(mode);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (full, _) = stream("full", &["--cache-mode", "full"]);
    assert!(full.lines().count() > 100);
    let (windowed, report) = stream(
        "node",
        &[
            "--cache-mode",
            "window",
            "--token-stores",
            sharded.to_str().unwrap(),
            "--window-max-mib",
            "0.05",
        ],
    );
    assert_eq!(windowed, full);
    // The sealed plan has its piece checksums: the window fetched what it served, not whole
    // documents for their parts.
    let megabytes = |after: &str| -> f64 {
        report
            .split(after)
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {after:?} in {report}"))
    };
    let (fetched, served) = (megabytes(" MB fetched"), megabytes(" MB served"));
    assert!(fetched <= served * 1.1, "{report}");

    // `plan` says where the tokens come from.
    let planned = |mode: &str| {
        run_json(&[
            "plan",
            r,
            "--lake",
            l,
            "--cache-dir",
            dir.path().join("node").to_str().unwrap(),
            "--token-stores",
            sharded.to_str().unwrap(),
            "--cache-mode",
            mode,
        ])
    };
    let window = planned("window");
    assert_eq!(window["cache_mode"], "window", "{window}");
    assert!(
        window["token_store"]
            .as_str()
            .unwrap()
            .starts_with(sharded.to_str().unwrap())
    );
    assert_eq!(window["plan_id"], sealed["plan_id"]);
    let full = planned("full");
    assert_eq!(full["cache_mode"], "full");
    assert!(full["token_store"].is_null());
}
