//! `tokenlake scaling-law fit`: recovers the law behind synthetic runs, the same fit every
//! time, and clear errors for bad observation files; `tokenlake attributes`: token-weighted
//! means against a plain scan.

use crate::support::*;

/// Runs from Ziya2's reported law, L = D^−0.06 + 0.31, D = (1.66·CH + 1.98·RA + 0.70·SIM)·V
/// + 1.24·10^10, with ±0.1 % deterministic noise.
fn observations() -> String {
    let mut csv = String::from("run,ch,ra,sim,tokens,loss\n");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..40 {
        let (ch, ra, sim) = (0.2 + 0.8 * next(), 0.2 + 0.8 * next(), 0.1 + 0.9 * next());
        let tokens = 1e9 * 10f64.powf(1.0 + 2.0 * (i % 8) as f64 / 7.0);
        let d = (1.66 * ch + 1.98 * ra + 0.70 * sim) * tokens + 1.24e10;
        let loss = (d.powf(-0.06) + 0.31) * (1.0 + 0.001 * (2.0 * next() - 1.0));
        csv.push_str(&format!("r{i},{ch},{ra},{sim},{tokens},{loss}\n"));
    }
    csv
}

#[test]
fn scaling_law_fit_recovers_the_law_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("runs.csv");
    std::fs::write(&csv, observations()).unwrap();
    let plot = dir.path().join("fit.svg");
    let args = [
        "scaling-law",
        "fit",
        csv.to_str().unwrap(),
        "--grid-step",
        "61",
        "--plot",
        plot.to_str().unwrap(),
    ];
    let fit = run_json(&args);
    assert!(
        (fit["alpha"].as_f64().unwrap() - 0.06).abs() < 0.02,
        "{fit}"
    );
    assert!((fit["E"].as_f64().unwrap() - 0.31).abs() < 0.05, "{fit}");
    for key in ["A", "B", "C", "F", "objective"] {
        assert!(fit[key].is_number(), "{key}: {fit}");
    }
    let residuals = fit["residuals"].as_array().unwrap();
    assert_eq!(residuals.len(), 40);
    assert!(residuals.iter().all(|r| r.as_f64().unwrap().abs() < 0.01));
    assert_eq!(
        run_json(&args),
        fit,
        "the same observations give the same fit"
    );
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));

    std::fs::write(&csv, "ch,ra,sim,tokens\n1,1,1,1\n").unwrap();
    let err = run_err(&["scaling-law", "fit", csv.to_str().unwrap()]);
    assert!(
        err.contains("runs.csv") && err.contains("\"loss\""),
        "{err}"
    );
    std::fs::write(&csv, "ch,ra,sim,tokens,loss\n1,1,1,1e9,2.0\n").unwrap();
    let err = run_err(&["scaling-law", "fit", csv.to_str().unwrap()]);
    assert!(err.contains("too few"), "{err}");
}

#[test]
// Kept as one test: one recipe's attributes, recomputed by hand component by component.
fn attributes_are_token_weighted_means_per_component_and_stage() {
    use std::collections::BTreeMap;

    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt32Type;

    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_arg = lake.to_str().unwrap();
    let recipe = ziya2();
    // Attributes with values the test can compute from a plain scan.
    let ch = "CAST(n_chars AS DOUBLE) / (n_chars + 1000)";
    let report = run_json(&[
        "attributes",
        lake_arg,
        "--recipe",
        recipe.to_str().unwrap(),
        "--ch",
        ch,
        "--ra",
        "0.5",
        "--sim",
        "CASE WHEN source = 'zh' THEN 1.0 ELSE 0.0 END",
    ]);
    // Per source: tokens and Σ tokens · n_chars / (n_chars + 1000).
    let mut by_source: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for b in scan(&lake, Some(1), &["source", "n_tokens", "n_chars"]) {
        let sources = b.column(0).as_string::<i32>();
        let tokens = b.column(1).as_primitive::<UInt32Type>();
        let chars = b.column(2).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            let (t, c) = (f64::from(tokens.value(i)), f64::from(chars.value(i)));
            let e = by_source.entry(sources.value(i).to_string()).or_default();
            e.0 += t;
            e.1 += t * c / (c + 1000.0);
        }
    }
    let component = |name: &str| {
        report["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    for (name, source, sim) in [("en", "en", 0.0), ("zh", "zh", 1.0), ("code", "code", 0.0)] {
        let c = component(name);
        let (tokens, weighted) = by_source[source];
        assert_eq!(c["tokens"].as_f64().unwrap(), tokens, "{name}");
        assert!(
            (c["ch"].as_f64().unwrap() - weighted / tokens).abs() < 1e-9,
            "{c}"
        );
        assert_eq!(c["ra"], 0.5);
        assert_eq!(c["sim"], sim);
    }
    // Stage 1 blends en, zh and code by 0.45 : 0.35 : 0.20 of its tokens.
    let stage1 = &report["stages"][0];
    assert_eq!(stage1["name"], "stage1-pretrain");
    assert_eq!(stage1["tokens"], 8_000_000);
    assert!(
        (stage1["sim"].as_f64().unwrap() - 0.35).abs() < 1e-9,
        "{stage1}"
    );
    let expected_ch = [("en", 0.45), ("zh", 0.35), ("code", 0.20)]
        .iter()
        .map(|(n, w)| w * component(n)["ch"].as_f64().unwrap())
        .sum::<f64>();
    assert!((stage1["ch"].as_f64().unwrap() - expected_ch).abs() < 1e-9);

    // The CSV is ready for `scaling-law fit` once a loss column is added.
    let csv = run_ok(&[
        "attributes",
        lake_arg,
        "--recipe",
        recipe.to_str().unwrap(),
        "--ch",
        ch,
        "--ra",
        "0.5",
        "--sim",
        "0.25",
        "--csv",
    ]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("stage,ch,ra,sim,tokens"));
    assert_eq!(lines.count(), 3);

    // The recipe's version has no curation labels: the defaults say what is missing and how
    // to choose a labelled version.
    let err = run_err(&[
        "attributes",
        lake_arg,
        "--recipe",
        recipe.to_str().unwrap(),
        "--sim",
        "0.5",
    ]);
    assert!(
        err.contains("quality_tier") && err.contains("--version"),
        "{err}"
    );
    let err = run_err(&["attributes", lake_arg, "--recipe", recipe.to_str().unwrap()]);
    assert!(err.contains("tokenlake similarity"), "{err}");
}
