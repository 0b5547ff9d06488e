//! `tokenlake plan` and `tokenlake stream`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde::Serialize;
use tokenlake_plan::{
    Cursor, MicroBatch, PlanError, PlanOptions, PlanReport, PlanSummary, PreparedPlan, Progress,
    RankSpec, RankStream, Recipe, Span,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::cli::{MaterialiseArgs, PlanArgs, PlanPlace, RecipeArgs, StreamArgs, WindowArgs};
use crate::output::{count, key_values, print_json, table};
use crate::progress::{JobProgressView, human};
use crate::signal::{EXIT_INTERRUPTED, stop_on_signal};
use tokenlake_plan::Cancel;

/// Loads the recipe and opens its plan, building what the cache lacks.
async fn prepare(args: &RecipeArgs, cancel: Cancel) -> anyhow::Result<(Recipe, PreparedPlan)> {
    let recipe = Recipe::load(&args.recipe)?;
    let options = plan_options(&args.place)?;
    let progress = Arc::new(Progress::with_cancel(cancel));
    let view = JobProgressView::start("plan", "", progress.clone());
    let prepared = tokenlake_plan::prepare(&recipe, &options, &progress).await;
    drop(view);
    Ok((recipe, prepared?))
}

/// How the recipe of `args` plans: over which lake and version, with which cache or window.
pub fn plan_options(args: &PlanPlace) -> anyhow::Result<PlanOptions> {
    Ok(PlanOptions {
        lake: args.lake.clone(),
        version: parse_version(args.version.as_deref())?,
        cache_dir: args.cache_dir.clone(),
        cache_max_bytes: cache_max_bytes(args.cache_max_gib)?,
        storage: crate::commands::storage::options(),
        request_counts: None,
        cache_mode: args.window.cache_mode,
        window: window_options(&args.window)?,
        token_stores: args.window.token_stores.clone(),
    })
}

/// `--version`, a number or tag.
fn parse_version(version: Option<&str>) -> anyhow::Result<Option<tokenlake_lake::VersionSpec>> {
    version
        .map(|v| {
            v.parse()
                .map_err(|e: String| anyhow::anyhow!("--version {v:?}: {e}"))
        })
        .transpose()
}

/// The window that `--window-max-mib` and `--window-horizon` describe.
pub fn window_options(args: &WindowArgs) -> anyhow::Result<tokenlake_plan::WindowOptions> {
    let mib = args.window_max_mib;
    if !(mib.is_finite() && mib * f64::from(1u32 << 20) >= 1.0) {
        anyhow::bail!("--window-max-mib {mib}: must be a positive number of MiB");
    }
    Ok(tokenlake_plan::WindowOptions {
        max_bytes: (mib * f64::from(1u32 << 20)) as u64,
        horizon: args.window_horizon,
        ..tokenlake_plan::WindowOptions::default()
    })
}

/// `--cache-max-gib` in bytes.
pub fn cache_max_bytes(gib: Option<f64>) -> anyhow::Result<Option<u64>> {
    match gib {
        None => Ok(None),
        Some(g) if g.is_finite() && g > 0.0 => Ok(Some((g * (1u64 << 30) as f64) as u64)),
        Some(g) => anyhow::bail!("--cache-max-gib {g}: must be a positive number"),
    }
}

fn is_cancelled(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<PlanError>(), Some(PlanError::Cancelled))
}

pub async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let cancel = Cancel::new();
    let token = cancel.clone();
    let watcher = tokio::spawn(stop_on_signal(
        move || token.cancel(),
        "stopping: caches keep only what was complete",
    ));
    let prepared = prepare(&args.recipe, cancel).await;
    watcher.abort();
    let (recipe, prepared) = match prepared {
        Err(e) if is_cancelled(&e) => {
            eprintln!("interrupted: nothing half-built was kept");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        other => other?,
    };
    let summary = PlanSummary::new(&recipe, &prepared.plan);
    let report = PlanReport::new(&prepared, &summary);
    if args.json {
        print_json(&report)?;
    } else {
        print_plan(&report);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct MaterialiseReport {
    lake: String,
    version: u64,
    store: String,
    plan_id: Option<String>,
    documents: u64,
    tokens: u64,
    bytes: u64,
    chunks: u64,
    chunk_bytes: u64,
    /// Shards sealed into the store (0 for a store published whole).
    shards: usize,
}

/// `tokenlake materialise`: fills the selection's token cache (or reuses it) and publishes it,
/// with the plan index, as the selection's token store.
pub async fn materialise(args: MaterialiseArgs) -> anyhow::Result<ExitCode> {
    if args.chunk_mib == 0 {
        anyhow::bail!("--chunk-mib 0: must be at least 1");
    }
    let recipe = Recipe::load(&args.recipe)?;
    let options = PlanOptions {
        lake: args.lake.clone(),
        version: parse_version(args.version.as_deref())?,
        cache_dir: args.cache_dir.clone(),
        storage: crate::commands::storage::options(),
        token_stores: args.token_stores.clone(),
        ..PlanOptions::default()
    };
    let cancel = Cancel::new();
    let token = cancel.clone();
    let watcher = tokio::spawn(stop_on_signal(
        move || token.cancel(),
        "stopping: a store appears only once its manifest is written",
    ));
    let progress = Arc::new(Progress::with_cancel(cancel));
    let view = JobProgressView::start("materialise", "", progress.clone());
    if args.shard.is_some() || args.seal.is_some() {
        let done = sharded_step(&args, &recipe, &options, &progress).await;
        drop(view);
        watcher.abort();
        return match done {
            Err(e) if matches!(e.downcast_ref::<PlanError>(), Some(PlanError::Cancelled)) => {
                eprintln!("interrupted: nothing was published (a manifest is written last)");
                Ok(ExitCode::from(EXIT_INTERRUPTED))
            }
            Err(e) => Err(e),
            Ok(report) => {
                print_materialised(&report, args.json)?;
                Ok(ExitCode::SUCCESS)
            }
        };
    }
    let done =
        tokenlake_plan::materialise(&recipe, &options, args.chunk_mib << 20, &progress).await;
    drop(view);
    watcher.abort();
    let (prepared, store) = match done {
        Err(PlanError::Cancelled) => {
            eprintln!("interrupted: no store was published (its manifest is written last)");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        other => other?,
    };
    let report = MaterialiseReport::of(
        &store,
        prepared.lake.clone(),
        prepared.version,
        Some(prepared.plan.id().hex()),
    );
    print_materialised(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `materialise --shard I/N` or `--seal N`.
async fn sharded_step(
    args: &MaterialiseArgs,
    recipe: &Recipe,
    options: &PlanOptions,
    progress: &Progress,
) -> anyhow::Result<MaterialiseReport> {
    let lake = options
        .lake
        .clone()
        .or_else(|| recipe.lake.clone())
        .unwrap_or_default();
    if let Some(spec) = &args.shard {
        let (i, n) = spec
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)))
            .filter(|&(i, n)| i < n)
            .ok_or_else(|| {
                anyhow::anyhow!("--shard {spec:?}: expected I/N with 0 <= I < N, e.g. 3/16")
            })?;
        let (store, version) = tokenlake_plan::materialise_shard(
            recipe,
            options,
            i,
            n,
            args.chunk_mib << 20,
            progress,
        )
        .await?;
        return Ok(MaterialiseReport::of(&store, lake, version, None));
    }
    let n = args.seal.expect("--shard or --seal");
    if n == 0 {
        anyhow::bail!("--seal 0: a sharded build has at least one task");
    }
    let (store, id, version) = tokenlake_plan::seal(recipe, options, n, progress).await?;
    Ok(MaterialiseReport::of(&store, lake, version, Some(id.hex())))
}

impl MaterialiseReport {
    fn of(
        store: &tokenlake_plan::TokenStore,
        lake: String,
        version: u64,
        plan_id: Option<String>,
    ) -> Self {
        let m = &store.manifest;
        MaterialiseReport {
            lake,
            version,
            store: store.root.to_string(),
            plan_id,
            documents: m.cache.docs,
            tokens: m.cache.tokens,
            bytes: m.token_bytes(),
            chunks: m.chunks,
            chunk_bytes: m.chunk_bytes,
            shards: m.parts.len(),
        }
    }
}

fn print_materialised(report: &MaterialiseReport, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(report)?;
    } else {
        println!(
            "token store of {} at version {}: {}",
            report.lake, report.version, report.store
        );
        println!(
            "{}",
            key_values(vec![
                (
                    "plan",
                    report
                        .plan_id
                        .clone()
                        .unwrap_or_else(|| "(published by --seal)".into())
                ),
                (
                    "shards",
                    match report.shards {
                        0 => "none: published whole".into(),
                        n => count(n as u64),
                    }
                ),
                ("documents", count(report.documents)),
                ("tokens", count(report.tokens)),
                (
                    "chunks",
                    format!(
                        "{} of {:.0} MiB ({:.1} MB in all)",
                        count(report.chunks),
                        report.chunk_bytes as f64 / f64::from(1u32 << 20),
                        report.bytes as f64 / 1e6
                    )
                ),
            ])
        );
    }
    Ok(())
}

// Kept as one function: one table per section of the plan's summary, in the order `plan` prints
// them.
fn print_plan(r: &PlanReport<'_>) {
    let s = r.summary;
    println!("plan {} of {} at version {}", s.plan_id, r.lake, r.version);
    println!(
        "{}",
        key_values(vec![
            ("samples", count(s.samples)),
            (
                "tokens trained",
                format!(
                    "{} ({} × seq_len {})",
                    human(s.tokens as f64),
                    count(s.samples),
                    s.seq_len
                )
            ),
            (
                "sample length",
                format!("{} tokens of {} bytes", s.sample_len, s.token_width)
            ),
            ("seed", s.seed.to_string()),
            (
                "data / recipe",
                format!("{} / {}", s.data_fingerprint, s.recipe_fingerprint)
            ),
            (
                "caches",
                match &r.token_store {
                    None => format!(
                        "{} documents, {:.1} MB of tokens; plan index {:.1} MB in {}",
                        count(s.token_cache_docs),
                        s.token_cache_bytes as f64 / 1e6,
                        s.plan_index_bytes as f64 / 1e6,
                        r.plan_dir
                    ),
                    Some(store) => format!(
                        "{} documents read through a window from the token store {store}; \
                         plan index {:.1} MB in {}",
                        count(s.token_cache_docs),
                        s.plan_index_bytes as f64 / 1e6,
                        r.plan_dir
                    ),
                },
            ),
        ])
    );
    let mut rows = Vec::new();
    for stage in &s.stages {
        for c in &stage.components {
            rows.push(vec![
                stage.name.clone(),
                count(stage.first_sample),
                c.name.clone(),
                format!("{:.3}", c.weight),
                count(c.samples),
                human((c.samples * s.seq_len) as f64),
            ]);
        }
    }
    println!(
        "{}",
        table(
            &[
                "stage",
                "first sample",
                "component",
                "weight",
                "samples",
                "tokens"
            ],
            rows
        )
    );
    let rows = s
        .components
        .iter()
        .map(|c| {
            let cut = match c.packing {
                tokenlake_plan::Packing::Concat => {
                    format!("{} dropped", count(c.dropped_tokens_per_epoch))
                }
                tokenlake_plan::Packing::Bin => format!(
                    "{} truncated, {} padding",
                    count(c.truncated_tokens_per_epoch),
                    count(c.padding_tokens_per_epoch)
                ),
            };
            vec![
                c.name.clone(),
                match (&c.task, c.groups) {
                    (Some(t), Some(g)) => format!("{} by {t} ({g} groups)", c.packing),
                    _ => c.packing.to_string(),
                },
                count(c.docs),
                human(c.tokens as f64),
                count(c.samples_per_epoch),
                count(c.samples),
                format!("{:.2}", c.epochs),
                cut,
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "component",
                "packing",
                "documents",
                "tokens",
                "samples/epoch",
                "samples",
                "epochs",
                "per epoch"
            ],
            rows
        )
    );
}

pub async fn stream(args: StreamArgs) -> anyhow::Result<ExitCode> {
    let spec = RankSpec::new(args.rank, args.world, args.micro_batch)?;
    let cursor: Option<Cursor> = args.cursor.as_deref().map(str::parse).transpose()?;
    let cancel = Cancel::new();
    let token = cancel.clone();
    let watcher = tokio::spawn(stop_on_signal(
        move || token.cancel(),
        "stopping after this step",
    ));
    let (_, prepared) = match prepare(&args.recipe, cancel.clone()).await {
        Err(e) if is_cancelled(&e) => {
            eprintln!("interrupted while planning: nothing half-built was kept, nothing streamed");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        other => other?,
    };
    let outcome = tokio::task::spawn_blocking(move || {
        run_stream(&args, &prepared, spec, cursor.as_ref(), cancel.flag())
    })
    .await??;
    watcher.abort();
    Ok(outcome)
}

fn run_stream(
    args: &StreamArgs,
    prepared: &PreparedPlan,
    spec: RankSpec,
    cursor: Option<&Cursor>,
    cancel: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let plan = &prepared.plan;
    let mut stream = RankStream::new(plan, spec, cursor)?;
    let mut out = stream_output(args.out.as_deref())?;
    let steps = args.steps.unwrap_or(u64::MAX);
    let mut batch = MicroBatch::default();
    let mut streamed = 0u64;
    let mut interrupted = false;
    while streamed < steps {
        if cancel.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if !stream.next_batch(&mut batch)? {
            break;
        }
        // A reader that stops early (`| head`) ends the stream quietly, as in other tools.
        match write_batch(&mut out, plan, &batch, args.checksums) {
            Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
            other => other?,
        }
        streamed += 1;
    }
    let end = stream.cursor();
    drop(stream);
    if let Some(window) = plan.window() {
        let m = window.metrics();
        eprintln!(
            "window: {} GETs, {:.1} MB fetched for {:.1} MB served, {} misses, {} retries, {} \
             corrupt bodies fetched again, {} hedged, high water {:.1} MB, stalled {:.2} s",
            count(m.fetches),
            m.bytes_fetched as f64 / 1e6,
            m.bytes_served as f64 / 1e6,
            count(m.misses),
            count(m.retries),
            count(m.corrupt),
            count(m.hedges),
            m.slab_high_water as f64 / 1e6,
            m.stall_seconds,
        );
    }
    if let Some(m) = plan.index_metrics() {
        eprintln!(
            "plan index: read page by page from the token store ({} page GETs, {} corrupt \
             pages fetched again), {:.1} of {:.1} MB on this node{}",
            count(m.page_fetches),
            count(m.corrupt),
            m.bytes_present as f64 / 1e6,
            m.bytes as f64 / 1e6,
            if m.complete { ", whole" } else { "" },
        );
    }
    if !finish_output(&mut out, args.cursor_out.as_deref(), &end.to_string())? {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "streamed {} steps ({} samples) of plan {} as rank {} of {}; next sample {} of {}; cursor: {end}",
        count(streamed),
        count(streamed * u64::from(spec.micro_batch)),
        plan.id().hex(),
        spec.rank,
        spec.world,
        count(end.consumed),
        count(plan.total_samples()),
    );
    if streamed < steps && args.steps.is_some() && !interrupted {
        eprintln!("the plan ended before {} steps", count(steps));
    }
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where `stream` writes: `--out` or standard output, buffered.
pub(crate) fn stream_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    })
}

/// Flushes the stream and writes `cursor` (when there is one) to `--cursor-out`; false when
/// the reader went away first (`| head`), which ends the stream quietly.
pub(crate) fn finish_output(
    out: &mut dyn Write,
    cursor_out: Option<&Path>,
    cursor: &str,
) -> anyhow::Result<bool> {
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
        other => other.context("writing the stream")?,
    }
    if let (Some(path), false) = (cursor_out, cursor.is_empty()) {
        write_atomically(path, format!("{cursor}\n").as_bytes())?;
    }
    Ok(true)
}

pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// One sample of `stream` without --checksums; `step` counts from the cursor.
#[derive(Serialize)]
struct SampleLine<'a> {
    index: u64,
    step: u64,
    stage: &'a str,
    component: &'a str,
    epoch: u32,
    tokens: Vec<u32>,
    spans: &'a [Span],
}

fn write_batch(
    out: &mut dyn Write,
    plan: &tokenlake_plan::Plan,
    batch: &MicroBatch,
    checksums: bool,
) -> anyhow::Result<()> {
    let size = plan.sample_bytes();
    for (i, meta) in batch.samples.iter().enumerate() {
        let sample = OutSample {
            index: meta.index,
            step: batch.step,
            stage: plan.stage_name(meta.stage),
            component: plan.component_name(meta.component),
            epoch: meta.epoch,
            bytes: &batch.tokens[i * size..(i + 1) * size],
            width: plan.token_width().bytes(),
            spans: batch.sample_spans(i),
        };
        write_sample(out, &sample, checksums)?;
    }
    Ok(())
}

/// One streamed sample, wherever it was assembled.
pub(crate) struct OutSample<'a> {
    pub index: u64,
    pub step: u64,
    pub stage: &'a str,
    pub component: &'a str,
    pub epoch: u32,
    pub bytes: &'a [u8],
    pub width: usize,
    pub spans: &'a [Span],
}

/// The output of `stream`, the same for the local and the remote command.
pub(crate) fn write_sample(
    out: &mut dyn Write,
    s: &OutSample<'_>,
    checksums: bool,
) -> anyhow::Result<()> {
    if checksums {
        writeln!(
            out,
            "{}\t{}\t{:016x}",
            s.index,
            s.component,
            xxh3_64(s.bytes)
        )?;
        return Ok(());
    }
    let tokens = s
        .bytes
        .chunks_exact(s.width)
        .map(|b| match s.width {
            2 => u32::from(u16::from_le_bytes([b[0], b[1]])),
            _ => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        })
        .collect();
    let line = SampleLine {
        index: s.index,
        step: s.step,
        stage: s.stage,
        component: s.component,
        epoch: s.epoch,
        tokens,
        spans: s.spans,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes a small file so that a reader sees the old content or the new, never half.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
