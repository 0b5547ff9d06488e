//! `tokenlake scaling-law fit`.

use std::process::ExitCode;

use anyhow::Context;
use tokenlake_research::scaling_law::{fit_from, grid, plot_svg, read_csv};

use crate::cli::ScalingLawFitArgs;
use crate::output::{key_values, print_json};

pub async fn fit_command(args: ScalingLawFitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.observations)
        .with_context(|| format!("reading {}", args.observations.display()))?;
    let obs =
        read_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.observations.display()))?;
    let starts: Vec<[f64; 6]> = grid()
        .into_iter()
        .step_by(args.grid_step as usize)
        .collect();
    let report = tokio::task::spawn_blocking(move || fit_from(&obs, &starts).map(|r| (r, obs)))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.observations.display()))?;
    let (report, obs) = report;
    if let Some(path) = &args.plot {
        std::fs::write(path, plot_svg(&obs, &report.fit))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let f = &report.fit;
    println!(
        "L = D^-{:.4} + {:.4},  D = ({:.3}·CH + {:.3}·RA + {:.3}·SIM)·V + {:.3e}",
        f.alpha, f.e, f.a, f.b, f.c, f.f
    );
    let n = report.residuals.len() as f64;
    let rms = (report.residuals.iter().map(|r| r * r).sum::<f64>() / n).sqrt();
    let worst = report.residuals.iter().fold(0f64, |m, r| m.max(r.abs()));
    let rows = vec![
        ("observations", format!("{}", report.residuals.len())),
        ("starting points", format!("{}", report.starts)),
        ("Huber objective", format!("{:.3e}", report.objective)),
        ("log residuals", format!("rms {rms:.4}, largest {worst:.4}")),
    ];
    println!("{}", key_values(rows));
    for (i, r) in report.residuals.iter().enumerate() {
        println!("run {:>3}: log(fitted) - log(observed) = {r:+.4}", i + 1);
    }
    Ok(ExitCode::SUCCESS)
}
