//! `tokenlake similarity`, Ziya2's SIM attribute and a contamination flag against target sets,
//! and `tokenlake attributes`, the three attributes of a recipe's components and stages.

use std::process::ExitCode;
use std::sync::Arc;

use tokenlake_lake::{Lake, Progress};
use tokenlake_research::label::{SimilarityError, SimilarityOptions, label_similarity};
use tokenlake_research::similarity::TfIdfSimilarity;
use tokenlake_research::targets::load_targets;

use crate::cli::{AttributesArgs, SimilarityArgs};
use crate::output::{count, key_values, print_json, table};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

pub async fn run(args: SimilarityArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.targets[0]),
    };
    let mut targets = Vec::new();
    for path in &args.targets {
        targets.extend(load_targets(path, &args.fields)?);
    }
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let model = {
        let targets = targets.clone();
        tokio::task::spawn_blocking(move || TfIdfSimilarity::new(&targets)).await?
    };
    let options = SimilarityOptions {
        name,
        target_files: args
            .targets
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        targets,
        model: Arc::new(model),
    };

    let progress = Arc::new(Progress::default());
    let result = run_job(
        "similarity",
        "docs",
        "stopping: the lake stays at its previous version",
        progress.clone(),
        label_similarity(&lake, &options, &progress),
    )
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(SimilarityError::Interrupted) => {
            eprintln!("interrupted: nothing was committed; the lake is unchanged");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        key_values(vec![
            ("version", summary.version.to_string()),
            ("targets", count(summary.targets)),
            ("documents", count(summary.documents)),
            ("contaminated", count(summary.contaminated)),
            ("columns", summary.columns.join(", ")),
            ("score", summary.model.clone()),
            ("seconds", format!("{:.1}", summary.elapsed_secs)),
        ])
    );
    let rows = summary
        .top
        .iter()
        .map(|(id, score, shared)| vec![id.to_string(), format!("{score:.3}"), shared.to_string()])
        .collect();
    println!(
        "{}",
        table(&["closest doc_id", "similarity", "shared 13-grams"], rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// `tests/mmlu-dev.jsonl` → `mmlu_dev`.
fn default_name(path: &std::path::Path) -> String {
    let stem = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "t_");
    }
    name
}

pub async fn attributes(args: AttributesArgs) -> anyhow::Result<ExitCode> {
    use tokenlake_research::attributes::{AttributeExprs, Attributes, attributes};
    let recipe = tokenlake_plan::Recipe::load(&args.recipe)?;
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let version = match args.version.spec() {
        tokenlake_lake::VersionSpec::Latest => recipe.version.clone(),
        given => given,
    };
    let mut exprs = AttributeExprs::defaults(&lake, args.sim)?;
    if let Some(ch) = args.ch {
        exprs.ch = ch;
    }
    if let Some(ra) = args.ra {
        exprs.ra = ra;
    }
    let report = attributes(&lake, &recipe, &version, &exprs).await?;
    for (name, expr, get) in [
        (
            "CH",
            &exprs.ch,
            (|a| a.ch) as fn(&Attributes) -> Option<f64>,
        ),
        ("RA", &exprs.ra, |a| a.ra),
        ("SIM", &exprs.sim, |a| a.sim),
    ] {
        if report.components.iter().all(|c| get(c).is_none()) {
            eprintln!(
                "note: no document has a value for {name} ({expr}); for the default CH, curate \
                 with a perplexity model in the pipeline (see `tokenlake lm train`)"
            );
        }
    }
    let value = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.4}"));
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.csv {
        println!("stage,ch,ra,sim,tokens");
        for s in &report.stages {
            let (ch, ra, sim) = (value(s.ch), value(s.ra), value(s.sim));
            println!("{},{ch},{ra},{sim},{}", s.name, s.tokens);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows = |list: &[Attributes]| -> Vec<Vec<String>> {
        list.iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    count(a.tokens),
                    value(a.ch),
                    value(a.ra),
                    value(a.sim),
                ]
            })
            .collect()
    };
    println!("version {} of {}", report.version, args.lake);
    let header = |first: &'static str, second: &'static str| [first, second, "CH", "RA", "SIM"];
    println!(
        "{}",
        table(&header("component", "tokens"), rows(&report.components))
    );
    println!(
        "{}",
        table(&header("stage", "tokens trained"), rows(&report.stages))
    );
    Ok(ExitCode::SUCCESS)
}
