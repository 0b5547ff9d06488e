//! `tokenlake eval`.

use std::process::ExitCode;
use std::sync::Arc;

use tokenlake_curate::Pipeline;
use tokenlake_curate::eval::{EvalError, EvalOptions, evaluate};
use tokenlake_lake::{Lake, Progress};

use crate::cli::EvalArgs;
use crate::output::{key_values, print_json};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

pub async fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.fraction > 0.0 && args.fraction <= 1.0,
        "--fraction must be in (0, 1], got {}",
        args.fraction
    );
    let lake = Lake::open(&crate::commands::storage::location(&args.lake)?).await?;
    let options = EvalOptions {
        version: args.version.spec(),
        fraction: args.fraction,
        min_docs: args.min_docs,
        seed: args.seed,
        max_per_mille: args.max_per_mille,
        pipeline: Pipeline::default_pipeline(),
    };
    let progress = Arc::new(Progress::default());
    let report = match run_job(
        "eval",
        "docs",
        "stopping: no report is written",
        progress.clone(),
        evaluate(&lake, &options, &args.out, &progress),
    )
    .await
    {
        Ok(report) => report,
        Err(EvalError::Interrupted) => {
            eprintln!("interrupted: no report was written");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "evaluated {} of {} documents of version {} of {}: {}",
        report.sampled,
        report.lake_docs,
        report.version,
        report.lake,
        if report.compliant {
            "compliant"
        } else {
            "NOT compliant"
        }
    );
    let mut rows: Vec<(String, String)> = report
        .rates
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                format!(
                    "{:.2} per 1000 ({} docs): {}",
                    r.per_mille,
                    r.docs,
                    if r.complies {
                        "complies"
                    } else {
                        "exceeds the limit"
                    }
                ),
            )
        })
        .collect();
    for (lang, d) in &report.perplexity {
        rows.push((
            format!("perplexity {lang}"),
            format!("median {:.0}, p10 {:.0}, p90 {:.0}", d.p50, d.p10, d.p90),
        ));
    }
    rows.push((
        "report".into(),
        args.out.join("report.html").display().to_string(),
    ));
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    println!("{}", key_values(rows));
    Ok(ExitCode::SUCCESS)
}
