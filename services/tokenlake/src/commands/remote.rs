//! `tokenlake stream --server`: the same stream as the local command, from `tokenlake serve`,
//! through the Rust client (which reconnects and resumes by itself).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokenlake_client::{BatchStream, Client, ClientOptions, Transport, recipe_source};
use tokenlake_plan::Span;
use tokenlake_schemas::proto::StreamRequest;

use crate::cli::{StreamArgs, TransportArg};
use crate::commands::plan::{
    OutSample, finish_output, is_broken_pipe, stream_output, write_sample,
};
use crate::output::count;
use crate::signal::{EXIT_INTERRUPTED, set_flag, stop_on_signal};

pub async fn stream(args: StreamArgs) -> anyhow::Result<ExitCode> {
    let url = args.server.clone().expect("dispatched with --server");
    let recipe_path = &args.recipe.recipe;
    let recipe = std::fs::read_to_string(recipe_path)
        .with_context(|| format!("reading recipe {}", recipe_path.display()))?;
    let ca_cert = match &args.ca_cert {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => args.token.clone(),
    };
    let client = Client::connect(
        &url,
        ClientOptions {
            token,
            ca_cert,
            ..ClientOptions::default()
        },
    )?;
    let source = recipe_source(
        recipe,
        args.recipe.place.lake.clone(),
        args.recipe.place.version.clone(),
    );
    // A dry run first: errors in the recipe arrive before anything is written.
    let plan = client
        .plan(source.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let transport = match args.transport {
        TransportArg::Auto => Transport::Auto,
        TransportArg::Shm => Transport::Shm,
        TransportArg::Grpc => Transport::Grpc,
    };
    let mut stream = client.stream_with(
        StreamRequest {
            plan: Some(source),
            rank: args.rank,
            world: args.world,
            micro_batch: args.micro_batch,
            cursor: args.cursor.clone().unwrap_or_default(),
            max_steps: args.steps.unwrap_or(0),
        },
        transport,
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(stop_on_signal(
        set_flag(cancel.clone()),
        "stopping after this step",
    ));
    let mut out = stream_output(args.out.as_deref())?;
    if args.batch_checksums {
        let (stream, interrupted) =
            batch_checksums(stream, args.device, &mut *out, &cancel, &url).await?;
        watcher.abort();
        let Some(stream) = stream else {
            return Ok(ExitCode::SUCCESS); // the reader went away
        };
        return finish(&args, &url, &plan.plan_id, &stream, &mut *out, interrupted);
    }
    let mut interrupted = false;
    let mut spans: Vec<Span> = Vec::new();
    loop {
        if cancel.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let Some(batch) = stream
            .next()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        else {
            break;
        };
        let mut written = Ok(());
        for (i, info) in batch.samples.iter().enumerate() {
            spans.clear();
            spans.extend(batch.sample_spans(i).iter().map(Span::from));
            let sample = OutSample {
                index: info.index,
                step: batch.step,
                stage: &info.stage,
                component: &info.component,
                epoch: info.epoch,
                bytes: batch.sample_bytes(i),
                width: batch.token_width,
                spans: &spans,
            };
            written = write_sample(&mut out, &sample, args.checksums);
            if written.is_err() {
                break;
            }
        }
        match written {
            Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
            other => other?,
        }
    }
    watcher.abort();
    finish(&args, &url, &plan.plan_id, &stream, &mut *out, interrupted)
}

/// Flushes the output, writes the cursor and says what was streamed.
fn finish(
    args: &StreamArgs,
    url: &str,
    plan_id: &str,
    stream: &BatchStream,
    out: &mut dyn std::io::Write,
    interrupted: bool,
) -> anyhow::Result<ExitCode> {
    let end = stream.cursor().map(str::to_string).unwrap_or_default();
    if !finish_output(out, args.cursor_out.as_deref(), &end)? {
        return Ok(ExitCode::SUCCESS);
    }
    let streamed = stream.delivered();
    eprintln!(
        "streamed {} steps ({} samples) of plan {plan_id} from {url} over {} as rank {} of {}{}; cursor: {end}",
        count(streamed),
        count(streamed * u64::from(args.micro_batch)),
        match stream.transport() {
            Transport::Shm => "shared memory",
            _ => "gRPC",
        },
        args.rank,
        args.world,
        match stream.reconnects() {
            0 => String::new(),
            n => format!(" ({n} reconnects)"),
        },
    );
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--batch-checksums`: one line per batch (step, samples, [`tokenlake_client::token_checksum`]
/// in hex), computed on the GPU when `device` names one this machine has, else on the host.
/// Returns the stream (for its cursor), or `None` when the reader went away, and whether a
/// signal stopped it.
async fn batch_checksums(
    stream: BatchStream,
    device: Option<usize>,
    out: &mut dyn std::io::Write,
    cancel: &AtomicBool,
    url: &str,
) -> anyhow::Result<(Option<BatchStream>, bool)> {
    let line = |out: &mut dyn std::io::Write, step: u64, samples: usize, sum: u64| {
        writeln!(out, "{step}\t{samples}\t{sum:016x}")
    };
    let failed = |e: tokenlake_client::ClientError| anyhow::anyhow!("{url}: {e}");
    #[cfg(feature = "cuda")]
    if let Some(ordinal) = device {
        use tokenlake_client::cuda::{Delivered, DeviceChecksum};
        let mut stream = stream.to_device(ordinal);
        let mut on_device = match stream.uploader() {
            Some(uploader) => {
                let ctx = uploader.context();
                eprintln!(
                    "batches go to CUDA device {ordinal} ({}); checksums are computed there",
                    ctx.name().unwrap_or_default()
                );
                Some(DeviceChecksum::new(ctx)?)
            }
            None => {
                eprintln!(
                    "no CUDA device here: batches stay in host memory, checksums are computed on the host"
                );
                None
            }
        };
        while !cancel.load(Ordering::Relaxed) {
            let Some(delivered) = stream.next().await.map_err(failed)? else {
                return Ok((Some(stream.into_host_stream()), false));
            };
            let written = match (&delivered, on_device.as_mut()) {
                (Delivered::Device(batch), Some(kernels)) => line(
                    out,
                    batch.step,
                    batch.samples.len(),
                    kernels.checksum(batch)?,
                ),
                (Delivered::Host(batch), _) => line(
                    out,
                    batch.step,
                    batch.samples.len(),
                    tokenlake_client::token_checksum(&batch.tokens, batch.token_width),
                ),
                (Delivered::Device(_), None) => unreachable!("device batches come with kernels"),
            };
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok((None, false)),
                other => other?,
            }
        }
        return Ok((Some(stream.into_host_stream()), true));
    }
    #[cfg(not(feature = "cuda"))]
    if device.is_some() {
        anyhow::bail!(
            "this tokenlake was built without the cuda feature: --device is not available"
        );
    }
    let mut stream = stream;
    while !cancel.load(Ordering::Relaxed) {
        let Some(batch) = stream.next().await.map_err(failed)? else {
            return Ok((Some(stream), false));
        };
        let sum = tokenlake_client::token_checksum(&batch.tokens, batch.token_width);
        match line(out, batch.step, batch.samples.len(), sum) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok((None, false)),
            other => other?,
        }
    }
    Ok((Some(stream), true))
}
