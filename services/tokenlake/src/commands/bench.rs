//! `tokenlake bench ingest`: figures for the ingest path, each stage against reading alone.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;
use tokenlake_bench::ingest::{StageFigures, measure_read, measure_tokenize};
use tokenlake_ingest::{IngestOptions, IngestProgress, LakeTokenizer};
use tokenlake_lake::LakeLocation;

use crate::cli::{
    BenchDedupArgs, BenchIngestArgs, BenchLabelsArgs, BenchMixArgs, BenchPlanArgs, BenchQueryArgs,
    BenchStreamArgs,
};
use crate::output::{count, print_json, table};
use crate::progress::human;

#[derive(Serialize)]
struct BenchReport {
    stages: Vec<StageFigures>,
    /// Each stage's docs/s divided by the read + parse stage's.
    relative_to_read: Vec<f64>,
}

pub async fn ingest(args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("tokenlake-bench-{}", std::process::id()));
    let inputs = args.inputs.clone();
    let text_field = args.text_field.clone();
    let tokenizer_path = args.tokenizer.clone();
    let (read, tokenize) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        eprintln!("bench: read + parse ...");
        let read = measure_read(&inputs, &text_field)?;
        eprintln!("bench: read + parse + tokenize ...");
        let tokenizer = LakeTokenizer::load(&tokenizer_path)?;
        let tokenize = measure_tokenize(&inputs, &text_field, &tokenizer)?;
        Ok((read, tokenize))
    })
    .await??;

    eprintln!("bench: full ingest into a scratch lake ...");
    let mut options = IngestOptions::new(
        LakeLocation::parse(&scratch.to_string_lossy())?,
        args.inputs,
        "bench",
        args.tokenizer,
    );
    options.text_field = args.text_field;
    let summary = tokenlake_ingest::ingest(
        options,
        Arc::new(IngestProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let summary = summary?;
    let full = StageFigures {
        stage: "full ingest (one Lance version)".into(),
        docs: summary.docs_read,
        tokens: summary.tokens_written,
        input_bytes: summary.input_bytes,
        secs: summary.elapsed_secs,
    };
    let stages = vec![read, tokenize, full];
    let base = stages[0].docs_per_sec();
    let report = BenchReport {
        relative_to_read: stages.iter().map(|s| s.docs_per_sec() / base).collect(),
        stages,
    };
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = report
        .stages
        .iter()
        .zip(&report.relative_to_read)
        .map(|(s, r)| {
            vec![
                s.stage.clone(),
                format!("{:.0}", s.docs_per_sec()),
                human(s.tokens_per_sec()),
                format!("{:.1}", s.input_bytes as f64 / 1e6 / s.secs.max(1e-9)),
                format!("{r:.3}"),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "stage",
                "docs/s",
                "tokens/s",
                "input MB/s",
                "× read + parse"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A scratch directory removed when dropped.
pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl Scratch {
    pub(crate) fn new(base: Option<&std::path::Path>, name: &str) -> anyhow::Result<Scratch> {
        let base = base
            .map(|b| b.to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("tokenlake-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `tokenlake bench dedup`: the partitioned pipeline against today's in-memory index as the
/// corpus grows, and (with `--simhash`) SimHash candidates per document.
pub fn dedup(args: BenchDedupArgs) -> anyhow::Result<ExitCode> {
    use tokenlake_bench::dedup::{
        measure_in_memory_index, measure_pipeline, measure_simhash_candidates,
    };
    anyhow::ensure!(!args.docs.is_empty(), "--docs needs at least one size");
    anyhow::ensure!(args.partitions > 0, "--partitions must be at least 1");
    anyhow::ensure!(
        args.task_budget_mb >= 16,
        "--task-budget-mb must be at least 16"
    );
    let mut runs = Vec::new();
    let mut simhash = Vec::new();
    for &docs in &args.docs {
        anyhow::ensure!(docs > 0, "--docs sizes must be at least 1");
        let scratch = Scratch::new(args.dir.as_deref(), &format!("dedup-{docs}"))?;
        eprintln!(
            "bench: the partitioned pipeline over {} documents ...",
            count(docs)
        );
        runs.push(measure_pipeline(
            docs,
            args.partitions,
            args.task_budget_mb << 20,
            &scratch.0.join("index"),
        )?);
        drop(scratch);
        if docs <= args.index_max {
            eprintln!(
                "bench: the in-memory index over {} documents ...",
                count(docs)
            );
            runs.push(measure_in_memory_index(docs));
        }
        if args.simhash {
            eprintln!(
                "bench: SimHash candidates over {} documents ...",
                count(docs)
            );
            simhash.extend(measure_simhash_candidates(docs));
        }
    }
    if args.json {
        print_json(&serde_json::json!({ "runs": runs, "simhash": simhash }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mib = |b: u64| format!("{:.0}", b as f64 / (1u64 << 20) as f64);
    let rows = runs
        .iter()
        .map(|f| {
            vec![
                count(f.docs),
                f.method.to_string(),
                format!("{:.2}", f.secs),
                human(f.docs_per_sec),
                match f.budget_bytes {
                    Some(b) => format!("{} / {}", mib(f.peak_rss_bytes), mib(b)),
                    None => mib(f.peak_rss_bytes),
                },
                format!("{:.0}", f.disk_bytes_per_doc),
                format!("{:.2}", f.edges_per_doc),
                format!("{:.1}", f.memory_bytes_per_doc),
                count(f.duplicates),
                f.step_secs
                    .map_or_else(String::new, |[k, c, u]| format!("{k:.1} / {c:.1} / {u:.1}")),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "documents",
                "method",
                "seconds",
                "documents/s",
                "peak RSS MiB (/ task budget)",
                "disk bytes/document",
                "edges/document",
                "union-find (index) bytes/document",
                "duplicates",
                "keys / candidates / union s",
            ],
            rows
        )
    );
    if !simhash.is_empty() {
        let rows = simhash
            .iter()
            .map(|f| {
                vec![
                    count(f.docs),
                    f.scheme.to_string(),
                    format!("{:.2}", f.secs),
                    human(f.docs_per_sec),
                    format!("{:.1}", f.comparisons_per_doc),
                    count(f.matches),
                    format!("{:.1}", f.table_bytes_per_doc),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &[
                    "documents",
                    "SimHash tables",
                    "seconds",
                    "documents/s",
                    "comparisons/document",
                    "pairs within 3 bits",
                    "table bytes/document",
                ],
                rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tokenlake bench labels`: label writes per fragment against whole-batch writes.
pub async fn labels(args: BenchLabelsArgs) -> anyhow::Result<ExitCode> {
    use tokenlake_bench::labels::measure_label_writes;
    use tokenlake_bench::query::write_synthetic_label_lake;
    anyhow::ensure!(!args.rows.is_empty(), "--rows needs at least one size");
    let mut figures = Vec::new();
    for &rows in &args.rows {
        anyhow::ensure!(rows > 0, "--rows sizes must be at least 1");
        let scratch = Scratch::new(args.dir.as_deref(), &format!("labels-{rows}"))?;
        let location = LakeLocation::parse(&scratch.0.join("lake").to_string_lossy())?;
        eprintln!("bench: writing a lake of {} documents ...", count(rows));
        write_synthetic_label_lake(&location, rows).await?;
        eprintln!("bench: writing a label column both ways ...");
        figures.push(measure_label_writes(&location).await?);
    }
    if args.json {
        print_json(&figures)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = figures
        .iter()
        .map(|f| {
            vec![
                count(f.rows),
                count(f.fragments),
                format!("{:.2}", f.per_fragment_secs),
                format!("{:.2}", f.whole_batch_secs),
                format!("{:.1}", f.speedup()),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "documents",
                "fragments",
                "per-fragment labels s",
                "whole batch per fragment s",
                "whole / per-fragment",
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn query(args: BenchQueryArgs) -> anyhow::Result<ExitCode> {
    use tokenlake_bench::query::{GROUP_BY_SQL, measure_group_by, write_synthetic_label_lake};
    anyhow::ensure!(!args.rows.is_empty(), "--rows needs at least one size");
    let mut figures = Vec::new();
    for &rows in &args.rows {
        anyhow::ensure!(rows > 0, "--rows sizes must be at least 1");
        let scratch = Scratch::new(args.dir.as_deref(), &format!("query-{rows}"))?;
        let location = LakeLocation::parse(&scratch.0.join("lake").to_string_lossy())?;
        eprintln!("bench: writing a lake of {} documents ...", count(rows));
        let started = Instant::now();
        let lake = write_synthetic_label_lake(&location, rows).await?;
        let write_secs = started.elapsed().as_secs_f64();
        eprintln!("bench: GROUP BY, best of {} ...", args.runs);
        figures.push(measure_group_by(&lake, args.runs, write_secs).await?);
    }
    if args.json {
        print_json(&figures)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{GROUP_BY_SQL}");
    let rows = figures
        .iter()
        .map(|f| {
            vec![
                count(f.rows),
                count(f.groups),
                format!("{:.3}", f.scan_secs),
                format!("{:.3}", f.query_secs),
                format!("{:.2}", f.query_over_scan()),
                human(f.rows_per_sec()),
                format!("{:.1}", f.write_secs),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "documents",
                "groups",
                "scan + hand grouping s",
                "SQL s",
                "SQL ÷ scan",
                "rows/s",
                "write s",
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn mix(args: BenchMixArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let mut figures = Vec::new();
    for &docs in &args.docs {
        eprintln!(
            "bench: {} proxy recipes over {docs} synthetic documents ...",
            args.runs
        );
        let scratch = Scratch::new(args.dir.as_deref(), &format!("mix-{docs}"))?;
        let dir = scratch.0.clone();
        let (runs, tokens) = (args.runs, args.proxy_tokens);
        figures.push(
            tokio::task::spawn_blocking(move || {
                tokenlake_bench::mix::bench_mix_design(&dir, docs, runs, tokens)
            })
            .await??,
        );
    }
    if args.json {
        print_json(&figures)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = figures
        .iter()
        .map(|f| {
            let (plan, identify) = (f.plan_each.as_secs_f64(), f.identify_each.as_secs_f64());
            vec![
                count(f.docs),
                format!("{:.1}", plan * 1e3),
                format!("{:.1}", plan * 1e9 / f.docs as f64),
                format!("{:.1}", f.plan_index_bytes_each as f64 / 1e6),
                format!("{:.1}", f.plan_index_bytes_each as f64 / f.docs as f64),
                format!("{:.3}", identify * 1e3),
                format!("{:.0}×", plan / identify.max(1e-9)),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "documents",
                "plan ms / run",
                "plan ns / doc",
                "plan index MB / run",
                "index B / doc",
                "identify ms / run",
                "plan ÷ identify",
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn plan(args: BenchPlanArgs) -> anyhow::Result<ExitCode> {
    let mut figures = Vec::new();
    for &docs in &args.docs {
        eprintln!("bench: planning {docs} synthetic documents ...");
        let scratch = Scratch::new(args.dir.as_deref(), &format!("plan-{docs}"))?;
        let dir = scratch.0.clone();
        figures.push(
            tokio::task::spawn_blocking(move || tokenlake_bench::plan::bench_plan(&dir, docs))
                .await??,
        );
    }
    if args.json {
        print_json(&figures)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ms = |d: std::time::Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let rows = figures
        .iter()
        .map(|f| {
            vec![
                count(f.docs),
                human(f.tokens as f64),
                count(f.samples),
                format!("{:.2}", f.token_cache_build.as_secs_f64()),
                format!("{:.2}", f.plan_build.as_secs_f64()),
                format!("{:.1}", f.plan_index_bytes as f64 / 1e6),
                format!("{:.1}", f.token_cache_index_bytes as f64 / 1e6),
                ms(f.resume[0].1),
                ms(f.resume[1].1),
                ms(f.resume[2].1),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "documents",
                "tokens",
                "samples",
                "token cache index s",
                "plan build s",
                "plan index MB",
                "doc index MB",
                "resume start ms",
                "resume middle ms",
                "resume end ms",
            ],
            rows
        )
    );
    println!("resume = open the plan and token cache afresh and read one sample");
    Ok(ExitCode::SUCCESS)
}

pub async fn stream(args: BenchStreamArgs) -> anyhow::Result<ExitCode> {
    if args.loopback || args.transport.is_some() || args.device.is_some() {
        return stream_over_grpc(args).await;
    }
    if args.recipe.is_some() {
        return stream_lake(args).await;
    }
    eprintln!(
        "bench: {} synthetic documents with real tokens ...",
        args.docs
    );
    let scratch = Scratch::new(args.dir.as_deref(), "stream")?;
    let dir = scratch.0.clone();
    let f = tokio::task::spawn_blocking(move || {
        tokenlake_bench::plan::bench_stream(&dir, args.docs, args.samples, args.micro_batch)
    })
    .await??;
    let tps = |d| f.tokens_per_s(d);
    let ratio = tps(f.assemble) / tps(f.memcpy_same_bytes);
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            figures: &'a tokenlake_bench::plan::StreamFigures,
            assemble_tokens_per_s: f64,
            memcpy_same_bytes_tokens_per_s: f64,
            memcpy_sequential_tokens_per_s: f64,
            assemble_over_memcpy_same_bytes: f64,
        }
        print_json(&Report {
            figures: &f,
            assemble_tokens_per_s: tps(f.assemble),
            memcpy_same_bytes_tokens_per_s: tps(f.memcpy_same_bytes),
            memcpy_sequential_tokens_per_s: tps(f.memcpy_sequential),
            assemble_over_memcpy_same_bytes: ratio,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let base = tps(f.memcpy_same_bytes);
    let row = |name: String, d: std::time::Duration| {
        vec![
            name,
            human(tps(d)),
            format!("{:.1}", f.bytes as f64 / 1e6 / d.as_secs_f64()),
            format!("{:.3}", tps(d) / base),
        ]
    };
    let rows = vec![
        row(
            format!("assemble micro-batches of {}", f.micro_batch),
            f.assemble,
        ),
        row(
            "  its first pass (fresh mapping)".into(),
            f.assemble_first_pass,
        ),
        row("memcpy of the same bytes".into(), f.memcpy_same_bytes),
        row(
            "memcpy of as many bytes, front to back".into(),
            f.memcpy_sequential,
        ),
    ];
    println!(
        "{}",
        table(
            &["path", "tokens/s", "MB/s", "× memcpy of the same bytes"],
            rows
        )
    );
    println!(
        "{} samples, {:.1} MB",
        count(f.samples),
        f.bytes as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

// Kept as one function: one table's rows, each printed from the figures in the order measured.
async fn stream_over_grpc(args: BenchStreamArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "bench: {} synthetic documents with real tokens, served on loopback ...",
        args.docs
    );
    let scratch = Scratch::new(args.dir.as_deref(), "grpc")?;
    let f = tokenlake_bench::grpc::bench_grpc(
        &scratch.0,
        args.docs,
        args.samples,
        args.micro_batch,
        args.idle_streams,
        args.device,
    )
    .await
    .map_err(|e| anyhow::anyhow!("bench: {e}"))?;
    if args.json {
        print_json(&f)?;
        return Ok(ExitCode::SUCCESS);
    }
    let base = f.in_process_tokens_per_s;
    // A path's tokens/s and its ratio to in-process assembly.
    let row = |path: &str, tokens_per_s: f64| {
        vec![
            path.to_string(),
            human(tokens_per_s),
            format!("{:.3}", tokens_per_s / base),
        ]
    };
    let in_process = format!(
        "in-process assembly (one thread, micro-batches of {})",
        f.micro_batch
    );
    let mut rows = vec![
        row(&in_process, base),
        row("1 gRPC stream on loopback", f.one_stream_tokens_per_s),
    ];
    if let Some(shm) = f.one_shm_stream_tokens_per_s {
        rows.push(row("1 shared-memory stream", shm));
    }
    rows.extend([
        row(
            "8 concurrent gRPC streams, together",
            f.eight_streams_tokens_per_s,
        ),
        row(
            "memcpy of the same bytes from the token cache",
            f.memcpy_tokens_per_s,
        ),
        row(
            "memcpy of as many bytes, front to back",
            f.memcpy_sequential_tokens_per_s,
        ),
        row(
            "memcpy of a batch in the CPU's cache",
            f.memcpy_cached_tokens_per_s,
        ),
    ]);
    println!(
        "{}",
        table(&["path", "tokens/s", "× in-process assembly"], rows)
    );
    println!(
        "one gRPC stream: server {:.2} cores, client {:.2}",
        f.grpc_server_cores, f.grpc_client_cores
    );
    if let (Some(shm), Some(server), Some(client)) = (
        f.one_shm_stream_tokens_per_s,
        f.shm_server_cores,
        f.shm_client_cores,
    ) {
        println!(
            "shared memory: {:.2}× memcpy of the same bytes, {:.2}× one gRPC stream; server \
             {:.2} cores, client {:.2}",
            shm / f.memcpy_tokens_per_s,
            shm / f.one_stream_tokens_per_s,
            server,
            client,
        );
    }
    if let Some(d) = &f.device {
        if d.available {
            println!(
                "CUDA device {} ({}): {} batches checked on the device against the in-process \
                 stream; one shared-memory stream into GPU memory {} tokens/s = {:.2} GB/s = \
                 {:.2}× a plain copy of the same size from page-locked memory ({:.2} GB/s), \
                 {:.2}× one gRPC stream",
                d.ordinal,
                d.name,
                count(d.batches_verified),
                human(d.shm_to_device_tokens_per_s),
                d.shm_to_device_gb_per_s,
                d.shm_to_device_gb_per_s / d.pinned_copy_gb_per_s,
                d.pinned_copy_gb_per_s,
                d.shm_to_device_tokens_per_s / f.one_stream_tokens_per_s,
            );
        } else {
            println!("CUDA device {}: none here ({})", d.ordinal, d.name);
        }
    }
    let mb = |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| format!("{v:.0} MB"));
    println!(
        "memory of server and bench clients, before and with {} idle streams open: \
         resident {} → {} (the mapped token cache's pages included), own (anonymous) {} → {}",
        f.idle_streams,
        mb(f.rss_before_idle_mb),
        mb(f.rss_with_idle_mb),
        mb(f.anon_before_idle_mb),
        mb(f.anon_with_idle_mb),
    );
    Ok(ExitCode::SUCCESS)
}

/// One pass of [`stream_lake`]: prepare the plan (filling the token cache when cold) and stream
/// up to `samples` samples as one rank.
#[derive(Debug, Clone, Serialize)]
struct LakePass {
    seconds: f64,
    prepare_seconds: f64,
    tokens: u64,
    tokens_per_s: f64,
    requests: tokenlake_lake::RequestTotals,
    gets_per_million_tokens: f64,
}

async fn lake_pass(
    recipe: &tokenlake_plan::Recipe,
    options: &tokenlake_plan::PlanOptions,
    counts: &std::sync::Arc<tokenlake_lake::RequestCounts>,
    samples: u64,
    micro_batch: u32,
) -> anyhow::Result<LakePass> {
    let before = counts.totals();
    let started = Instant::now();
    let prepared =
        tokenlake_plan::prepare(recipe, options, &tokenlake_plan::Progress::default()).await?;
    let prepare_seconds = started.elapsed().as_secs_f64();
    let width = prepared.plan.token_width().bytes() as u64;
    let tokens = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let spec = tokenlake_plan::RankSpec::new(0, 1, micro_batch)?;
        let mut stream = tokenlake_plan::RankStream::new(&prepared.plan, spec, None)?;
        let mut batch = tokenlake_plan::MicroBatch::default();
        let mut bytes = 0u64;
        let mut streamed = 0u64;
        while streamed < samples && stream.next_batch(&mut batch)? {
            bytes += batch.tokens.len() as u64;
            streamed += batch.samples.len() as u64;
        }
        Ok(bytes / width)
    })
    .await??;
    let seconds = started.elapsed().as_secs_f64();
    let requests = counts.totals() - before;
    Ok(LakePass {
        seconds,
        prepare_seconds,
        tokens,
        tokens_per_s: tokens as f64 / seconds.max(1e-9),
        requests,
        gets_per_million_tokens: requests.gets as f64 * 1e6 / (tokens.max(1) as f64),
    })
}

/// Streams a real lake twice through a fresh cache directory: cold (the token cache is filled
/// from the lake, as a training node's first start) and warm (the cache is reused, as every
/// later start), counting the object-store requests of each.
async fn stream_lake(args: BenchStreamArgs) -> anyhow::Result<ExitCode> {
    let recipe_path = args.recipe.clone().expect("checked by the caller");
    let recipe = tokenlake_plan::Recipe::load(&recipe_path)?;
    let scratch = Scratch::new(args.dir.as_deref(), "stream-lake")?;
    let counts = std::sync::Arc::new(tokenlake_lake::RequestCounts::default());
    let options = tokenlake_plan::PlanOptions {
        lake: args.lake.clone(),
        version: None,
        cache_dir: Some(scratch.0.join("cache")),
        cache_max_bytes: None,
        storage: crate::commands::storage::options(),
        request_counts: Some(counts.clone()),
        cache_mode: args.window.cache_mode,
        window: crate::commands::plan::window_options(&args.window)?,
        token_stores: args.window.token_stores.clone(),
    };
    eprintln!("bench: cold pass (filling the token cache from the lake) ...");
    let cold = lake_pass(&recipe, &options, &counts, args.samples, args.micro_batch).await?;
    eprintln!("bench: warm pass (token cache reused) ...");
    let warm = lake_pass(&recipe, &options, &counts, args.samples, args.micro_batch).await?;
    let lake = args
        .lake
        .clone()
        .or_else(|| recipe.lake.clone())
        .unwrap_or_default();
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            lake: &'a str,
            cold: &'a LakePass,
            warm: &'a LakePass,
            warm_over_cold: f64,
        }
        print_json(&Report {
            lake: &lake,
            cold: &cold,
            warm: &warm,
            warm_over_cold: warm.tokens_per_s / cold.tokens_per_s.max(1e-9),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("lake {lake}: {} tokens per pass", count(cold.tokens));
    let row = |name: &str, p: &LakePass| {
        vec![
            name.to_string(),
            human(p.tokens_per_s),
            format!("{:.2}", p.prepare_seconds),
            format!("{:.2}", p.seconds),
            count(p.requests.gets),
            format!("{:.1}", p.gets_per_million_tokens),
            format!("{:.1}", p.requests.get_bytes as f64 / 1e6),
        ]
    };
    println!(
        "{}",
        table(
            &[
                "pass",
                "tokens/s",
                "prepare s",
                "total s",
                "GETs",
                "GETs per 1M tokens",
                "MB read",
            ],
            vec![
                row("cold (cache fill)", &cold),
                row("warm (cache reused)", &warm)
            ],
        )
    );
    println!(
        "warm / cold: {:.2}x",
        warm.tokens_per_s / cold.tokens_per_s.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
