//! `tokenlake mix design | fit | propose`: a stage's weights from small proxy runs
//! (`tokenlake_research::mixture` holds the statistics; this is files in and out).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use tokenlake_plan::{PlanOptions, PlanSummary, Progress, Recipe};
use tokenlake_research::mixture::{
    Constraints, Law, MixFit, design_by, effective_tokens, fit, propose, read_design, read_runs,
};

use crate::cli::{MixDesignArgs, MixFitArgs, MixProposeArgs};
use crate::output::{print_json, table};

/// A recipe's text as a TOML table, the index of one stage, and that stage's components with
/// their weights.
type StageOf = (toml::Table, usize, Vec<(String, f64)>);

/// The recipe's text as a TOML table, and the index of the stage named `stage` (the first
/// when None) with its components' names and weights.
fn stage_of(path: &Path, stage: Option<&str>) -> anyhow::Result<StageOf> {
    let recipe = Recipe::load(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let at = match stage {
        None => 0,
        Some(name) => recipe
            .stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = recipe.stages.iter().map(|s| s.name.as_str()).collect();
                anyhow::anyhow!(
                    "{} has no stage {name:?} (it has {})",
                    path.display(),
                    names.join(", ")
                )
            })?,
    };
    let weights = recipe
        .components
        .iter()
        .zip(&recipe.stages[at].weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(c, w)| (c.name.clone(), *w))
        .collect();
    Ok((table, at, weights))
}

/// `table` with stage `at`'s weights set to `weights` and its budget to `tokens`; `alone`
/// keeps that stage only, with only the components it uses (a proxy run's recipe).
fn with_stage(
    table: &toml::Table,
    at: usize,
    weights: &[(String, f64)],
    tokens: u64,
    alone: bool,
) -> anyhow::Result<toml::Table> {
    let mut out = table.clone();
    let stages = out
        .get_mut("stages")
        .and_then(|s| s.as_array_mut())
        .context("the recipe has no [[stages]]")?;
    let stage = stages
        .get_mut(at)
        .and_then(|s| s.as_table_mut())
        .context("the stage is not a table")?;
    let mut w = toml::Table::new();
    for (name, weight) in weights {
        // Four decimals are plenty for a share and keep the recipe readable.
        w.insert(
            name.clone(),
            toml::Value::Float((weight * 1e4).round() / 1e4),
        );
    }
    stage.insert("weights".into(), toml::Value::Table(w));
    stage.remove("samples");
    stage.insert("tokens".into(), toml::Value::Integer(tokens as i64));
    if alone {
        let only = stage.clone();
        *stages = vec![toml::Value::Table(only)];
        if let Some(components) = out.get_mut("components").and_then(|c| c.as_table_mut()) {
            components.retain(|name, _| weights.iter().any(|(n, _)| n == name));
        }
    }
    Ok(out)
}

/// Writes `body` to `path` through a temporary file, so a reader sees all of it or nothing.
fn write_file(path: &Path, body: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub async fn design_command(args: MixDesignArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.runs >= 2, "--runs must be at least 2");
    anyhow::ensure!(
        args.tokens.iter().all(|t| *t > 0),
        "--tokens must be at least 1"
    );
    anyhow::ensure!(
        args.concentration.is_finite() && args.concentration > 0.0,
        "--concentration must be a positive number"
    );
    let (table, at, base) = stage_of(&args.base.recipe, args.stage.as_deref())?;
    let options = crate::commands::plan::plan_options(&args.base.place)?;
    anyhow::ensure!(
        base.len() >= 2,
        "the stage mixes {} component(s): there is no mixture to design",
        base.len()
    );
    // A design's runs.csv holds the losses of runs trained since: never written over.
    anyhow::ensure!(
        !args.out.join("runs.csv").exists(),
        "{} already holds a design (runs.csv, whose losses may be filled in): choose another \
         --out, or remove it",
        args.out.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let names: Vec<String> = base.iter().map(|(n, _)| n.clone()).collect();
    let shares: Vec<f64> = base.iter().map(|(_, w)| *w).collect();
    let runs = design_by(
        args.design,
        &shares,
        args.runs,
        args.concentration,
        args.seed,
    );
    // The components' attributes at the recipe's version, from the lake each run plans over.
    let base_recipe = Recipe::load(&args.base.recipe)?;
    let version = options
        .version
        .clone()
        .unwrap_or_else(|| base_recipe.version.clone());
    let lake_uri = options
        .lake
        .clone()
        .or_else(|| base_recipe.lake.clone())
        .context("the recipe names no lake: give --lake")?;
    let lake = tokenlake_lake::Lake::open(&crate::commands::storage::location(&lake_uri)?).await?;
    // The default expressions where the lake has their columns (a lake that was never
    // curated or compared with a test set has none of them: those attributes stay empty).
    let schema = lake.arrow_schema();
    let has = |c: &str| schema.field_with_name(c).is_ok();
    let sims: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n.starts_with("sim_"))
        .collect();
    const NONE: &str = "CAST(NULL AS DOUBLE)";
    let sim = match sims.as_slice() {
        [one] => one.clone(),
        _ => NONE.to_string(),
    };
    let mut exprs = tokenlake_research::attributes::AttributeExprs::defaults(&lake, Some(sim))?;
    if !has("quality_tier") {
        exprs.ch = NONE.into();
    }
    if !has("rule_flags") {
        exprs.ra = NONE.into();
    }
    let attributes =
        tokenlake_research::attributes::attributes(&lake, &base_recipe, &version, &exprs).await?;
    let mut manifest_runs = Vec::new();
    let mut csv = format!("run,recipe,plan_id,tokens,{},loss\n", names.join(","));
    for (i, drawn) in runs.iter().enumerate() {
        // The recipe's weights have four decimals, at least 0.0001 (a stage that gives a
        // component nothing cannot use it); runs.csv records the shares they make, which are
        // what the run trains on.
        let written: Vec<f64> = drawn
            .iter()
            .map(|w| (w * 1e4).round().max(1.0) / 1e4)
            .collect();
        let total: f64 = written.iter().sum();
        let r: Vec<f64> = written.iter().map(|w| w / total).collect();
        let weights: Vec<(String, f64)> =
            names.iter().cloned().zip(written.iter().copied()).collect();
        // Several budgets take turns, so every budget sees the whole spread of weights.
        let tokens = args.tokens[i % args.tokens.len()];
        let recipe = with_stage(&table, at, &weights, tokens, true)?;
        let file = format!("run-{:03}.toml", i + 1);
        let body = format!(
            "# Proxy run {} of {} from {} (tokenlake mix design, {:?} design, seed {}, \
             concentration {}):\n# one stage, {tokens} tokens, weights drawn around the base.\n{}",
            i + 1,
            args.runs,
            args.base.recipe.display(),
            args.design,
            args.seed,
            args.concentration,
            toml::to_string(&recipe)?
        );
        let path = args.out.join(&file);
        write_file(&path, &body)?;
        // The first proxy recipe plans in full now, so a family that would not plan is found
        // before anyone trains; the others differ from it only in weights and budget, and get
        // their plan ids without building plan indexes (28 bytes per document and epoch
        // each: the trainer that streams one builds it).
        let plan_id = if i == 0 {
            plan_id(&path, &options).await?
        } else {
            identified_id(&path, &options).await?
        };
        let cells: Vec<String> = r.iter().map(|w| format!("{w:.6}")).collect();
        csv.push_str(&format!(
            "{},{file},{plan_id},{tokens},{},\n",
            i + 1,
            cells.join(",")
        ));
        manifest_runs.push(serde_json::json!({
            "run": i + 1, "recipe": file, "plan_id": plan_id, "tokens": tokens, "weights": r,
        }));
        if (i + 1) % 64 == 0 {
            eprintln!("{} of {} proxy recipes written", i + 1, args.runs);
        }
    }
    write_file(&args.out.join("runs.csv"), &csv)?;
    let manifest = serde_json::json!({
        "base": args.base.recipe.display().to_string(),
        "stage": base_recipe.stages[at].name,
        "lake": lake_uri,
        "version": attributes.version,
        "tokens": args.tokens,
        "seed": args.seed,
        "design": args.design,
        "concentration": args.concentration,
        "components": names.iter().zip(&shares).map(|(n, w)| {
            let a = attributes.components.iter().find(|a| &a.name == n);
            serde_json::json!({
                "name": n,
                "base_weight": w,
                "tokens": a.map(|a| a.tokens),
                "ch": a.and_then(|a| a.ch),
                "ra": a.and_then(|a| a.ra),
                "sim": a.and_then(|a| a.sim),
            })
        }).collect::<Vec<_>>(),
        "attribute_exprs": attributes.exprs,
        "runs": manifest_runs,
    });
    write_file(
        &args.out.join("design.json"),
        &serde_json::to_string_pretty(&manifest)?,
    )?;
    eprintln!(
        "wrote {} proxy recipes and runs.csv to {}: train each, fill in its loss column, then \
         `tokenlake mix fit {}`",
        args.runs,
        args.out.display(),
        args.out.join("runs.csv").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `recipe`'s plan where `options` say, built where the cache lacks it.
async fn prepared(
    recipe: &Recipe,
    options: &PlanOptions,
) -> anyhow::Result<tokenlake_plan::PreparedPlan> {
    let progress = std::sync::Arc::new(Progress::default());
    let view = crate::progress::JobProgressView::start("plan", "", progress.clone());
    let prepared = tokenlake_plan::prepare(recipe, options, &progress).await;
    drop(view);
    Ok(prepared?)
}

/// The id the plan of the recipe at `path` will have where `options` say, without building
/// its index.
async fn identified_id(path: &Path, options: &PlanOptions) -> anyhow::Result<String> {
    let recipe = Recipe::load(path)?;
    let progress = std::sync::Arc::new(Progress::default());
    let view = crate::progress::JobProgressView::start("plan", "", progress.clone());
    let id = tokenlake_plan::identify(&recipe, options, &progress).await;
    drop(view);
    let id = id.with_context(|| format!("planning {}", path.display()))?;
    Ok(id.hex())
}

/// The plan id of the recipe at `path` where `options` say, its plan built.
async fn plan_id(path: &Path, options: &PlanOptions) -> anyhow::Result<String> {
    let recipe = Recipe::load(path)?;
    let prepared = prepared(&recipe, options)
        .await
        .with_context(|| format!("planning {}", path.display()))?;
    Ok(prepared.plan.id().hex())
}

pub async fn fit_command(args: MixFitArgs) -> anyhow::Result<ExitCode> {
    let mut runs = read_runs(&args.runs)?;
    let design = args.design.clone().unwrap_or_else(|| {
        args.runs
            .parent()
            .unwrap_or(Path::new("."))
            .join("design.json")
    });
    if args.law == Law::Ziya2 {
        anyhow::ensure!(
            design.exists(),
            "the ziya2 law needs the components' attributes: {} does not exist (give --design)",
            design.display()
        );
        read_design(&design, &mut runs)?;
    } else if runs.tokens.is_empty() && design.exists() {
        // Only for the record in the fit: the other laws ignore tokens.
        let _ = read_design(&design, &mut runs);
        runs.attributes = None;
    }
    let f = fit(args.law, &runs).map_err(|e| anyhow::anyhow!("{}: {e}", args.runs.display()))?;
    if let Some(out) = &args.out {
        write_file(out, &serde_json::to_string_pretty(&f)?)?;
    }
    if let Some(plot) = &args.plot {
        write_file(plot, &tokenlake_research::mixture::plot_svg(&f, &runs))?;
    }
    if args.json {
        print_json(&f)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:?} law over {} runs: RMSE {:.4}, held-out relative error {:.2} % (5-fold)",
        f.law,
        f.runs,
        f.rmse,
        100.0 * f.cv_relative_error
    );
    if f.law == Law::Ziya2 {
        let p = &f.params;
        println!(
            "alpha {:.4}, A {:.4e}, B {:.4e}, C {:.4e} (per token), E {:.4}, F {:.4e}",
            p[0], p[1], p[2], p[3], p[4], p[5]
        );
    }
    let rows = f
        .components
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let coefficient = match f.law {
                Law::DataMixing => format!("{:.4}", f.params[j + 1]),
                Law::Regmix => format!("{:.4}", f.params[j]),
                // What a token of the component adds to D.
                Law::Ziya2 => {
                    let [ch, ra, sim] = f.attributes[j];
                    format!(
                        "{:.4e} (CH {ch:.3}, RA {ra:.3}, SIM {sim:.3})",
                        f.params[1] * ch + f.params[2] * ra + f.params[3] * sim
                    )
                }
            };
            vec![
                n.clone(),
                coefficient,
                format!("{:.3} – {:.3}", f.covered[j].0, f.covered[j].1),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["component", "coefficient", "weights the design covered"],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn propose_command(args: MixProposeArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.max_epochs > 0.0,
        "--max-epochs must be a positive number (inf for no cap)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.min) && (0.0..=1.0).contains(&args.max) && args.min <= args.max,
        "--min and --max are shares: 0 ≤ --min ≤ --max ≤ 1"
    );
    // The proposal is a new recipe beside its base, never the base itself.
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    anyhow::ensure!(
        !same(&args.out, &args.base),
        "--out {} is the base recipe: write the proposal to another file",
        args.out.display()
    );
    let f: MixFit = serde_json::from_str(
        &std::fs::read_to_string(&args.fit)
            .with_context(|| format!("reading {}", args.fit.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not a fit of `tokenlake mix fit --out`",
            args.fit.display()
        )
    })?;
    let (base_table, at, base) = stage_of(&args.base, args.stage.as_deref())?;
    for (name, _) in &base {
        anyhow::ensure!(
            f.components.contains(name),
            "the fit does not know component {name:?} of the base stage"
        );
    }
    // Each component's unique tokens, from the base recipe's plan over its lake.
    let recipe = Recipe::load(&args.base)?;
    let options = crate::commands::plan::plan_options(&args.place)?;
    let prepared = prepared(&recipe, &options).await?;
    let summary = PlanSummary::new(&recipe, &prepared.plan);
    let unique: Vec<Option<f64>> = f
        .components
        .iter()
        .map(|n| {
            summary
                .components
                .iter()
                .find(|c| &c.name == n)
                .map(|c| c.tokens as f64)
        })
        .collect();
    // The tokens of each component the recipe's other stages train on: they count towards
    // its epochs.
    let other: Vec<f64> = f
        .components
        .iter()
        .map(|n| {
            summary
                .stages
                .iter()
                .enumerate()
                .filter(|(s, _)| *s != at)
                .flat_map(|(_, s)| &s.components)
                .filter(|c| &c.name == n)
                .map(|c| (c.samples * summary.seq_len) as f64)
                .sum()
        })
        .collect();
    let c = Constraints {
        tokens: args.tokens as f64,
        unique_tokens: unique.clone(),
        other_tokens: other,
        max_epochs: args.max_epochs,
        min_share: args.min,
        max_share: args.max,
    };
    let p = propose(&f, &c).map_err(|e| anyhow::anyhow!("{e}"))?;
    let k = f.components.len();
    let base_w: Vec<f64> = f
        .components
        .iter()
        .map(|n| base.iter().find(|(b, _)| b == n).map_or(0.0, |b| b.1))
        .collect();
    let base_sum: f64 = base_w.iter().sum();
    let base_w: Vec<f64> = base_w.iter().map(|w| w / base_sum).collect();
    let uniform = vec![1.0 / k as f64; k];
    let total_unique: f64 = unique.iter().map(|u| u.unwrap_or(0.0)).sum();
    let natural: Vec<f64> = unique
        .iter()
        .map(|u| u.unwrap_or(0.0) / total_unique.max(1.0))
        .collect();
    let predicted = |r: &[f64]| {
        let inside = r
            .iter()
            .zip(&f.covered)
            .all(|(w, (lo, hi))| *w >= lo - 1e-9 && *w <= hi + 1e-9);
        let loss = f.predict_tokens(&effective_tokens(r, &c));
        format!(
            "{loss:.4}{}",
            if inside { "" } else { " (outside the design)" }
        )
    };
    let weights: Vec<(String, f64)> = f
        .components
        .iter()
        .cloned()
        .zip(p.weights.iter().copied())
        .collect();
    let recipe_out = with_stage(&base_table, at, &weights, args.tokens, false)?;
    // What the predicted losses mean: only Ziya2's law knows tokens.
    let scale = match (f.law, f.tokens) {
        (Law::Ziya2, Some((lo, hi)))
            if (args.tokens as f64) < lo * 0.999 || (args.tokens as f64) > hi * 1.001 =>
        {
            format!(
                "losses at {} tokens, extrapolated by the law from runs of {lo:.0} to {hi:.0} tokens",
                args.tokens
            )
        }
        (Law::Ziya2, _) => format!("losses at {} tokens", args.tokens),
        _ => "losses at the proxy runs' scale: the law sees shares, not tokens".to_string(),
    };
    let header = format!(
        "# Stage weights proposed by `tokenlake mix propose` from {} ({:?} law, {} runs, \
         held-out error {:.2} %)\n# for {} tokens, at most {} epochs per component: predicted \
         loss {:.4} (base {}, uniform {}, natural {}).\n# Predicted {scale}.\n",
        args.fit.display(),
        f.law,
        f.runs,
        100.0 * f.cv_relative_error,
        args.tokens,
        args.max_epochs,
        p.predicted_loss,
        predicted(&base_w),
        predicted(&uniform),
        predicted(&natural),
    );
    write_file(&args.out, &(header + &toml::to_string(&recipe_out)?))?;
    if args.json {
        print_json(&serde_json::json!({
            "proposal": p,
            "components": f.components,
            "scale": scale,
            "predicted": {
                "base": predicted(&base_w),
                "uniform": predicted(&uniform),
                "natural": predicted(&natural),
            },
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = f
        .components
        .iter()
        .enumerate()
        .map(|(j, n)| {
            vec![
                n.clone(),
                format!("{:.4}", p.weights[j]),
                format!("{:.4}", base_w[j]),
                format!("{:.2}", p.epochs[j]),
                format!(
                    "{:.3} – {:.3} ({})",
                    p.bounds[j].0, p.bounds[j].1, p.bounds[j].2
                ),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["component", "proposed", "base", "epochs", "bounds"], rows)
    );
    println!("predicted {scale}:");
    println!(
        "predicted loss {:.4}; base {}, uniform {}, natural {}; written to {}",
        p.predicted_loss,
        predicted(&base_w),
        predicted(&uniform),
        predicted(&natural),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
