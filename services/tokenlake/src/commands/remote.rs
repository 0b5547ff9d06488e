//! `tokenlake stream --server`: the same stream as the local command, from `tokenlake serve`,
//! through the Rust client (which reconnects and resumes by itself).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokenlake_client::{Client, ClientOptions, Transport, recipe_source};
use tokenlake_plan::Span;
use tokenlake_schemas::proto::StreamRequest;

use crate::cli::{StreamArgs, TransportArg};
use crate::commands::plan::{
    OutSample, finish_output, is_broken_pipe, stream_output, write_sample,
};
use crate::output::count;
use crate::signal::{EXIT_INTERRUPTED, stop_on_signal};

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
    let client = Client::connect(
        &url,
        ClientOptions {
            token: args.token.clone(),
            ca_cert,
            ..ClientOptions::default()
        },
    )?;
    let source = recipe_source(
        recipe,
        args.recipe.lake.clone(),
        args.recipe.version.clone(),
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
    let watcher = tokio::spawn(stop_on_signal(cancel.clone(), "stopping after this step"));
    let mut out = stream_output(args.out.as_deref())?;
    let mut streamed = 0u64;
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
            spans.extend(batch.sample_spans(i).iter().map(|s| Span {
                doc_id: s.doc_id,
                offset: s.offset,
                len: s.len,
                position: s.position,
            }));
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
        streamed += 1;
    }
    watcher.abort();
    let end = stream.cursor().map(str::to_string).unwrap_or_default();
    if !finish_output(&mut out, args.cursor_out.as_deref(), &end)? {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "streamed {} steps ({} samples) of plan {} from {url} over {} as rank {} of {}{}; cursor: {end}",
        count(streamed),
        count(streamed * u64::from(args.micro_batch)),
        plan.plan_id,
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
