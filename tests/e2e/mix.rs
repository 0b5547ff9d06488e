//! `tokenlake mix design | fit | propose` over the sample lake: proxy recipes that plan, a fit
//! of losses from a known law, and a proposed recipe that respects the epoch cap and plans and
//! streams like any other.

use serde_json::Value;

use crate::support::*;

/// The law the proxy "runs" follow: code is the best data, then Chinese, then English.
fn loss(en: f64, zh: f64, code: f64) -> f64 {
    2.0 + (0.9 * en + 0.6 * zh - 0.5 * code).exp()
}

#[test]
fn proxy_runs_fit_a_law_and_the_proposed_recipe_plans_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let l = lake.to_str().unwrap();
    let out = dir.path().join("design");
    let r = ziya2();
    run_ok(&[
        "mix",
        "design",
        r.to_str().unwrap(),
        "--runs",
        "24",
        "--tokens",
        "200000",
        "--seed",
        "3",
        "--concentration",
        "4",
        "--lake",
        l,
        "--out",
        out.to_str().unwrap(),
    ]);
    // The manifest: each run's weights and plan id, the components' attributes at the version.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("design.json")).unwrap()).unwrap();
    assert_eq!(manifest["runs"].as_array().unwrap().len(), 24);
    assert_eq!(manifest["version"], 1);
    let components = manifest["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    assert!(
        components
            .iter()
            .all(|c| c["tokens"].as_u64().unwrap() > 10_000)
    );
    assert!(
        components
            .iter()
            .all(|c| c["ra"].is_null() || c["ra"].is_number())
    );
    // Every proxy recipe is a recipe: one plans over the lake, with the stage's components.
    let planned = run_json(&[
        "plan",
        out.join("run-001.toml").to_str().unwrap(),
        "--lake",
        l,
    ]);
    assert_eq!(planned["stages"].as_array().unwrap().len(), 1);
    assert_eq!(planned["tokens"].as_u64().unwrap() / 1000, 200);
    assert_eq!(planned["plan_id"], manifest["runs"][0]["plan_id"]);

    // "Train" each run: its loss from the law, with the weights the design wrote.
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mut lines = runs.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut sorted = header[3..6].to_vec();
    sorted.sort();
    assert_eq!(header[..3], ["run", "recipe", "plan_id"]);
    assert_eq!((sorted, header[6]), (vec!["code", "en", "zh"], "loss"));
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut filled = vec![header.join(",")];
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        let w = |name: &str| -> f64 { c[at(name)].parse().unwrap() };
        let l = loss(w("en"), w("zh"), w("code"));
        filled.push(format!("{},{l}", c[..6].join(",")));
    }
    let csv = dir.path().join("runs.csv");
    std::fs::write(&csv, filled.join("\n")).unwrap();
    let fit_path = dir.path().join("fit.json");
    let fit = run_json(&[
        "mix",
        "fit",
        csv.to_str().unwrap(),
        "--out",
        fit_path.to_str().unwrap(),
    ]);
    assert!(fit["cv_relative_error"].as_f64().unwrap() < 0.001, "{fit}");
    let plot = dir.path().join("fit.svg");
    run_ok(&[
        "mix",
        "fit",
        csv.to_str().unwrap(),
        "--law",
        "regmix",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    // An unfilled loss is refused, saying what to do.
    std::fs::write(
        &csv,
        format!("{}\n1,run-001.toml,x,0.4,0.3,0.3,\n", filled[0]),
    )
    .unwrap();
    let err = run_err(&["mix", "fit", csv.to_str().unwrap()]);
    assert!(err.contains("fill in its loss"), "{err}");

    // A million tokens would repeat every component more than four times: refused, naming the
    // bounds.
    let proposed = dir.path().join("proposed.toml");
    let f = fit_path.to_str().unwrap();
    let base = r.to_str().unwrap();
    let out_path = proposed.to_str().unwrap();
    fn propose<'a>(
        f: &'a str,
        base: &'a str,
        l: &'a str,
        tokens: &'a str,
        out: &'a str,
    ) -> Vec<&'a str> {
        vec![
            "mix", "propose", f, "--base", base, "--lake", l, "--tokens", tokens, "--out", out,
        ]
    }
    let err = run_err(&propose(f, base, l, "1000000", out_path));
    assert!(
        err.contains("no mixture meets the bounds") && err.contains("4 epochs"),
        "{err}"
    );
    assert!(!proposed.exists());
    // Half a million: code is best, but its 42 k unique tokens may be seen four times at most.
    let p: Value = run_json(&propose(f, base, l, "500000", out_path));
    let names: Vec<&str> = p["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let code = names.iter().position(|n| *n == "code").unwrap();
    let epochs = p["proposal"]["epochs"][code].as_f64().unwrap();
    assert!(
        epochs <= 4.0 + 1e-6 && epochs > 3.5,
        "code at {epochs} epochs: {p}"
    );
    assert!(
        p["proposal"]["bounds"][code][2]
            .as_str()
            .unwrap()
            .contains("epochs"),
        "{p}"
    );
    // The proposed recipe keeps Ziya2's stages and plans and streams like any other.
    let text = std::fs::read_to_string(&proposed).unwrap();
    assert!(
        text.starts_with("# Stage weights proposed by `tokenlake mix propose`"),
        "{text}"
    );
    let plan = run_json(&["plan", proposed.to_str().unwrap(), "--lake", l]);
    assert_eq!(plan["stages"].as_array().unwrap().len(), 3);
    let streamed = run_ok(&[
        "stream",
        proposed.to_str().unwrap(),
        "--lake",
        l,
        "--steps",
        "2",
        "--checksums",
    ]);
    assert_eq!(streamed.lines().count(), 2);
}
