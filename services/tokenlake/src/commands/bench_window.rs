//! `tokenlake bench window`: flags in, the simulation's figures out, with what they make at
//! 2·10⁹ documents.

use std::process::ExitCode;

use serde::Serialize;
use tokenlake_bench::window::{Latency, WindowBench, WindowReport, bench_window};

use crate::cli::BenchWindowArgs;
use crate::commands::bench::Scratch;
use crate::output::{count, print_json, table};

/// Documents the extrapolation is for.
const TARGET_DOCS: f64 = 2e9;

#[derive(Serialize)]
struct Extrapolated {
    docs: f64,
    plan_index_bytes: f64,
    /// What a cold node downloads before it reads any page: one checksum per index page.
    page_checksums_bytes: f64,
    /// The simulation's slowest first batch, plus the larger checksums' transfer: the only
    /// part of a cold start that grows with the selection.
    first_batch_s: f64,
    /// When the background download has the whole index (the baseline's wait before its first
    /// batch).
    index_download_s: f64,
}

pub async fn run(args: BenchWindowArgs) -> anyhow::Result<ExitCode> {
    let mib = args.window_max_mib;
    if !(mib.is_finite() && mib > 0.0) {
        anyhow::bail!("--window-max-mib {mib}: must be a positive number of MiB");
    }
    if args.ranks == 0 || args.ranks > args.world || args.micro_batch == 0 || args.docs == 0 {
        anyhow::bail!("--ranks must be 1..=--world, --micro-batch and --docs at least 1");
    }
    if !(args.index_mb_per_s.is_finite() && args.index_mb_per_s > 0.0) {
        anyhow::bail!(
            "--index-mb-per-s {}: must be a positive number",
            args.index_mb_per_s
        );
    }
    if !(args.p50_ms > 0.0 && args.p99_ms >= args.p50_ms) {
        anyhow::bail!("--p50-ms must be positive and --p99-ms at least as large");
    }
    let bench = WindowBench {
        docs: args.docs,
        world: args.world,
        ranks: args.ranks,
        micro_batch: args.micro_batch,
        seconds: args.seconds,
        window: tokenlake_plan::WindowOptions {
            max_bytes: (mib * f64::from(1u32 << 20)) as u64,
            horizon: args.window_horizon,
            concurrency: args.concurrency.max(1),
            ..tokenlake_plan::WindowOptions::default()
        },
        latency: Latency {
            p50_s: args.p50_ms / 1e3,
            p99_s: args.p99_ms / 1e3,
            ..Latency::default()
        },
        index_bytes_per_s: args.index_mb_per_s * 1e6,
        whole_documents: args.whole_documents,
    };
    eprintln!(
        "bench: planning {} synthetic documents, then simulating one node of {} ranks ...",
        count(args.docs),
        args.world
    );
    let scratch = Scratch::new(args.dir.as_deref(), "window")?;
    let dir = scratch.0.clone();
    let report = tokio::task::spawn_blocking(move || bench_window(&dir, &bench)).await??;
    let scale = TARGET_DOCS / report.docs as f64;
    let sums = |index_bytes: f64| (index_bytes / tokenlake_plan::INDEX_PAGE as f64).ceil() * 8.0;
    let here = sums(report.plan_index_bytes as f64);
    let there = sums(report.plan_index_bytes as f64 * scale);
    let slowest = report
        .rates
        .iter()
        .map(|f| f.first_batch_s)
        .fold(0.0, f64::max);
    let at_target = Extrapolated {
        docs: TARGET_DOCS,
        plan_index_bytes: report.plan_index_bytes as f64 * scale,
        page_checksums_bytes: there,
        first_batch_s: slowest + (there - here) / report.latency.bytes_per_s,
        index_download_s: report.index_download_s * scale,
    };
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a WindowReport,
            at_2e9_documents: Extrapolated,
        }
        print_json(&Out {
            report: &report,
            at_2e9_documents: at_target,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&report, &at_target);
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &WindowReport, at: &Extrapolated) {
    println!(
        "{} documents, {} tokens; node of {} ranks in a world of {}, micro-batch {}; window {:.0} MiB{}; \
         GETs p50 {:.0} ms, p99 {:.0} ms, {:.1} % at {:.0} s, 503 bursts of {:.0} s every {:.0} s",
        count(r.docs),
        count(r.tokens),
        r.ranks,
        r.world,
        r.micro_batch,
        r.window_bytes as f64 / f64::from(1u32 << 20),
        if r.whole_documents {
            ", parts of documents fetched whole"
        } else {
            ""
        },
        r.latency.p50_s * 1e3,
        r.latency.p99_s * 1e3,
        r.latency.slow_fraction * 100.0,
        r.latency.slow_s,
        r.latency.burst_s,
        r.latency.burst_every_s,
    );
    let rows = r
        .rates
        .iter()
        .map(|f| {
            vec![
                f.model.to_string(),
                count(f.tokens_per_s as u64),
                format!("{:.0}", f.simulated_s),
                format!(
                    "{:.4} (next step only: {:.2})",
                    f.stall_fraction * 100.0,
                    f.baseline_next_step_stall_fraction * 100.0
                ),
                format!("{:.1}", f.gets_per_million_tokens),
                format!(
                    "{:.3} (whole documents: {:.3})",
                    f.fetched_over_served, f.baseline_whole_documents_fetched_over_served
                ),
                format!("{:.1}", f.slab_high_water_bytes as f64 / 1e6),
                format!(
                    "{:.2} (whole index first: {:.2})",
                    f.first_batch_s, f.baseline_whole_index_first_batch_s
                ),
                format!(
                    "{} (whole after {:.1} s)",
                    count(f.index_page_gets),
                    f.index_whole_s
                ),
                count(f.retries),
                count(f.hedges),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "model",
                "tokens/s/node",
                "simulated s",
                "stall %",
                "GETs per M tokens",
                "fetched / served",
                "slab high water MB",
                "cold first batch s",
                "index page GETs",
                "retries",
                "hedges",
            ],
            rows
        )
    );
    println!(
        "plan index {:.1} MB: a cold node reads the pages its steps need and downloads the rest \
         behind at {:.0} MB/s ({:.2} s); downloading it whole first is the baseline. At 2e9 \
         documents: {:.1} GB of index, {:.1} MB of page checksums read first, cold first batch \
         about {:.2} s, index whole after {:.0} s. The other figures are per node and do not \
         grow with the lake: a rank's documents come from a global shuffle whatever its size.",
        r.plan_index_bytes as f64 / 1e6,
        r.plan_index_bytes as f64 / r.index_download_s.max(1e-12) / 1e6,
        r.index_download_s,
        at.plan_index_bytes / 1e9,
        at.page_checksums_bytes / 1e6,
        at.first_batch_s,
        at.index_download_s,
    );
}
