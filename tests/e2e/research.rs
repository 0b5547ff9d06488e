//! `tokenlake scaling-law fit`: recovers the law behind synthetic runs, the same fit every
//! time, and clear errors for bad observation files.

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
