//! `tokenlake bench stream --loopback` (or `--transport shm`): streams over gRPC on loopback
//! and through shared memory against in-process assembly of the same plan and plain memcpy of
//! the same bytes, measured in the same run, and the memory that open but idle streams hold.
//!
//! The bench's clients run on a runtime of their own (threads named [`CLIENT_THREADS`]), as a
//! trainer's would in its own process, so that the server's CPU is measured apart from theirs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plan::BatchCopies;
use serde::Serialize;
use tokenlake_client::{Client, ClientOptions, Transport};
use tokenlake_plan::{MicroBatch, PreparedPlan, RankSpec, RankStream};
use tokenlake_schemas::proto::{PlanSource, StreamRequest, plan_source};

use tokenlake_serve::{BoundServer, ServedPlan, ServerConfig};

#[derive(Debug, Clone, Serialize)]
pub struct GrpcFigures {
    pub docs: u64,
    pub micro_batch: u32,
    pub sample_tokens: u64,
    /// Tokens per second of in-process assembly (one thread, `RankStream`, no checksum): the
    /// one copy every transport makes, best of rounds.
    pub in_process_tokens_per_s: f64,
    /// One gRPC stream on loopback, best of rounds.
    pub one_stream_tokens_per_s: f64,
    /// Eight concurrent streams (ranks 0..8 of 8), all together.
    pub eight_streams_tokens_per_s: f64,
    /// memcpy of the document pieces the batches hold, from the same mapped token cache into
    /// a batch-sized buffer: the bytes any delivery must move, from where they lie. The
    /// shared-memory stream is measured against this.
    pub memcpy_tokens_per_s: f64,
    /// memcpy of as many bytes read front to back from the cache (no shuffle to follow).
    pub memcpy_sequential_tokens_per_s: f64,
    /// memcpy of one batch-sized buffer into another, over and over: both stay in the CPU's
    /// cache, so this is the cache's bandwidth, a ceiling no delivery of a shuffled corpus
    /// reaches.
    pub memcpy_cached_tokens_per_s: f64,
    /// One stream through the shared-memory ring; `None` where the host offers none.
    pub one_shm_stream_tokens_per_s: Option<f64>,
    /// CPU seconds per second of the server (every thread but the clients') and of the
    /// bench's client during the best one-stream pass of each transport.
    pub grpc_server_cores: f64,
    pub grpc_client_cores: f64,
    pub shm_server_cores: Option<f64>,
    pub shm_client_cores: Option<f64>,
    /// Resident memory of this process (server and bench clients) before and with the idle
    /// streams open, and how many were open; the clients hold at most 64 KiB per stream.
    /// `rss` counts the mapped token cache's pages too (they belong to the page cache and
    /// grow with the corpus read); `anon` is the process's own memory.
    pub idle_streams: u32,
    pub rss_before_idle_mb: Option<f64>,
    pub rss_with_idle_mb: Option<f64>,
    pub anon_before_idle_mb: Option<f64>,
    pub anon_with_idle_mb: Option<f64>,
    /// With a device: one shared-memory stream into GPU memory, and the GPU's own ceiling.
    pub device: Option<DeviceFigures>,
}

/// `--device cuda[:N]`: the shared-memory stream into GPU memory against a plain copy of the
/// same size from page-locked memory, after checking on the device that every batch arrived
/// as the in-process stream assembled it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceFigures {
    pub ordinal: usize,
    /// The device's name, or why there is none (then the other fields are zero).
    pub name: String,
    pub available: bool,
    /// Batches whose checksum, computed on the device, equalled the in-process stream's.
    pub batches_verified: u64,
    /// One shared-memory stream whose batches are copied to the device (best of rounds).
    pub shm_to_device_tokens_per_s: f64,
    pub shm_to_device_gb_per_s: f64,
    /// `cuMemcpyHtoDAsync` of one micro-batch's bytes from page-locked memory, back to back.
    pub pinned_copy_gb_per_s: f64,
}

const ROUNDS: usize = 3;

/// The name of the bench clients' threads.
pub const CLIENT_THREADS: &str = "bench-client";

/// HTTP/2's default stream window.
const IDLE_CLIENT_WINDOW: u32 = 65_535;

/// Runs the benchmark with caches in `dir`; `samples` bounds each measured pass.
// Kept as one function: the measurements share one server and one plan and run in a fixed order so
// that each row is measured in the same conditions as the one before.
pub async fn bench_grpc(
    dir: &Path,
    docs: u64,
    samples: u64,
    micro_batch: u32,
    idle_streams: u32,
    device: Option<usize>,
) -> Result<GrpcFigures, String> {
    let plan_dir = dir.to_path_buf();
    let (recipe, plan, index_dir) =
        tokio::task::spawn_blocking(move || crate::plan::synthetic_plan(&plan_dir, docs))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let sample_tokens = plan.sample_len();
    let steps = (samples / u64::from(micro_batch))
        .min(plan.total_samples() / u64::from(micro_batch))
        .max(1);
    let tokens_per_pass = steps * u64::from(micro_batch) * sample_tokens;

    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("a loopback address"),
        open: true,
        ..ServerConfig::default()
    };
    // The synthetic plan has no lake; the server needs a name to validate its config.
    config
        .add_lake(&format!("bench={}", dir.join("no-lake").display()))
        .map_err(|e| e.to_string())?;
    let server = BoundServer::bind(config).await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", server.local_addr());
    let id = plan.id().hex();
    let served = server.state().plans.insert(ServedPlan {
        prepared: PreparedPlan {
            store: None,
            plan,
            lake: "bench".into(),
            version: 0,
            cache_dir: dir.to_path_buf(),
            plan_dir: index_dir,
            hold: None,
        },
        recipe,
        lake: "bench".into(),
        id: id.clone(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let request = |rank: u32, world: u32, steps: u64| StreamRequest {
        plan: Some(PlanSource {
            source: Some(plan_source::Source::PlanId(id.clone())),
            ..PlanSource::default()
        }),
        rank,
        world,
        micro_batch,
        cursor: String::new(),
        max_steps: steps,
    };

    let batch_bytes =
        micro_batch as usize * sample_tokens as usize * served.prepared.plan.token_width().bytes();
    let shm_offered = tokenlake_ring::host_identity().is_some();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the clients' runtime: {e}"))?;
    let spec = RankSpec::new(0, 1, micro_batch).map_err(|e| e.to_string())?;
    let mut copies =
        BatchCopies::record(&served.prepared.plan, spec, steps).map_err(|e| e.to_string())?;
    let (mut in_process, mut one, mut eight) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut copied, mut sequential, mut cached) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut shm, mut grpc_cpu, mut shm_cpu) = (Duration::MAX, Cores::default(), None);
    for _ in 0..ROUNDS {
        let assembled = served.clone();
        in_process = in_process.min(
            tokio::task::spawn_blocking(move || assemble(&assembled, micro_batch, steps))
                .await
                .map_err(|e| e.to_string())??,
        );
        copied = copied.min(copies.same_bytes());
        sequential = sequential.min(copies.sequential());
        cached = cached.min(memcpy_cached(batch_bytes, steps));
        let (d, cpu) = drain(&clients, &url, vec![request(0, 1, steps)], Transport::Grpc).await?;
        if d < one {
            (one, grpc_cpu) = (d, cpu);
        }
        if shm_offered {
            let (d, cpu) =
                drain(&clients, &url, vec![request(0, 1, steps)], Transport::Shm).await?;
            if d < shm {
                (shm, shm_cpu) = (d, Some(cpu));
            }
        }
        let requests = (0..8).map(|r| request(r, 8, (steps / 8).max(1))).collect();
        eight = eight.min(drain(&clients, &url, requests, Transport::Grpc).await?.0);
    }
    let eight_tokens = 8 * (steps / 8).max(1) * u64::from(micro_batch) * sample_tokens;
    let device = match device {
        Some(ordinal) => Some(
            device_figures(
                &url,
                &served,
                ordinal,
                &request(0, 1, steps),
                tokens_per_pass,
                batch_bytes,
            )
            .await?,
        ),
        None => None,
    };

    // Idle streams: each reads one batch and then nothing, as a stalled trainer would. Each
    // has its own connection, as ranks in their own processes do, with HTTP/2's default
    // window, so that what the bench's clients buffer stays small next to the server.
    let rss_before_idle_mb = status_mb("VmRSS:");
    let anon_before_idle_mb = status_mb("RssAnon:");
    let mut idle = Vec::new();
    for r in 0..idle_streams {
        let (url, request) = (url.clone(), request(r, idle_streams, 0));
        let stream = clients
            .spawn(async move {
                let rank_client = Client::connect(
                    &url,
                    ClientOptions {
                        window_bytes: Some(IDLE_CLIENT_WINDOW),
                        ..ClientOptions::default()
                    },
                )
                .map_err(|e| e.to_string())?;
                let mut stream = rank_client.stream_with(request, Transport::Grpc);
                stream.next().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(stream)
            })
            .await
            .map_err(|e| e.to_string())??;
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let prefetch fill up
    let rss_with_idle_mb = status_mb("VmRSS:");
    let anon_with_idle_mb = status_mb("RssAnon:");
    drop(idle);
    clients.shutdown_background();
    let _ = stop.send(());
    let _ = running.await;

    let rate = |tokens: u64, d: Duration| tokens as f64 / d.as_secs_f64();
    Ok(GrpcFigures {
        docs,
        micro_batch,
        sample_tokens,
        in_process_tokens_per_s: rate(tokens_per_pass, in_process),
        one_stream_tokens_per_s: rate(tokens_per_pass, one),
        eight_streams_tokens_per_s: rate(eight_tokens, eight),
        memcpy_tokens_per_s: rate(tokens_per_pass, copied),
        memcpy_sequential_tokens_per_s: rate(tokens_per_pass, sequential),
        memcpy_cached_tokens_per_s: rate(tokens_per_pass, cached),
        one_shm_stream_tokens_per_s: shm_offered.then(|| rate(tokens_per_pass, shm)),
        grpc_server_cores: grpc_cpu.server,
        grpc_client_cores: grpc_cpu.client,
        shm_server_cores: shm_cpu.map(|c| c.server),
        shm_client_cores: shm_cpu.map(|c| c.client),
        idle_streams,
        rss_before_idle_mb,
        rss_with_idle_mb,
        anon_before_idle_mb,
        anon_with_idle_mb,
        device,
    })
}

fn assemble(plan: &Arc<ServedPlan>, micro_batch: u32, steps: u64) -> Result<Duration, String> {
    let spec = RankSpec::new(0, 1, micro_batch).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut stream = RankStream::new(&plan.prepared.plan, spec, None).map_err(|e| e.to_string())?;
    let mut batch = MicroBatch::default();
    // Assembly alone: gathering the samples' tokens from the mapped cache into a batch buffer
    // is the one copy every transport makes, so it is the ceiling of any of them.
    for _ in 0..steps {
        stream.next_batch(&mut batch).map_err(|e| e.to_string())?;
        std::hint::black_box(&batch.tokens);
    }
    Ok(started.elapsed())
}

#[cfg(not(feature = "cuda"))]
async fn device_figures(
    _url: &str,
    _plan: &Arc<ServedPlan>,
    _ordinal: usize,
    _request: &StreamRequest,
    _tokens_per_pass: u64,
    _batch_bytes: usize,
) -> Result<DeviceFigures, String> {
    Err("this build has no CUDA support (build with the cuda feature)".into())
}

#[cfg(feature = "cuda")]
async fn device_figures(
    url: &str,
    plan: &Arc<ServedPlan>,
    ordinal: usize,
    request: &StreamRequest,
    tokens_per_pass: u64,
    batch_bytes: usize,
) -> Result<DeviceFigures, String> {
    use tokenlake_client::cuda::{Delivered, DeviceChecksum, Uploader, pinned_copy_seconds};
    let mut figures = DeviceFigures {
        ordinal,
        name: String::new(),
        available: false,
        batches_verified: 0,
        shm_to_device_tokens_per_s: 0.0,
        shm_to_device_gb_per_s: 0.0,
        pinned_copy_gb_per_s: 0.0,
    };
    match Uploader::new(ordinal) {
        Ok(uploader) => figures.name = uploader.context().name().unwrap_or_default(),
        Err(e) => {
            figures.name = e.to_string();
            return Ok(figures);
        }
    }
    figures.available = true;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let client = Client::connect(url, ClientOptions::default()).map_err(|e| err(&e))?;

    // Checked first, untimed: every batch's checksum on the device against the in-process
    // stream's on the host.
    let spec = RankSpec::new(0, 1, request.micro_batch).map_err(|e| err(&e))?;
    let mut local = RankStream::new(&plan.prepared.plan, spec, None).map_err(|e| err(&e))?;
    let mut expected = MicroBatch::default();
    let mut stream = client
        .stream_with(request.clone(), Transport::Shm)
        .to_device(ordinal);
    let mut kernels =
        DeviceChecksum::new(stream.uploader().ok_or("the device went away")?.context())
            .map_err(|e| err(&e))?;
    let width = plan.prepared.plan.token_width().bytes();
    while let Some(delivered) = stream.next().await.map_err(|e| err(&e))? {
        let Delivered::Device(batch) = delivered else {
            return Err("a batch stayed in host memory".into());
        };
        local.next_batch(&mut expected).map_err(|e| err(&e))?;
        let want = tokenlake_client::token_checksum(&expected.tokens, width);
        let got = kernels.checksum(&batch).map_err(|e| err(&e))?;
        if got != want {
            return Err(format!(
                "step {}: the device holds checksum {got:016x}, the in-process stream {want:016x}",
                batch.step
            ));
        }
        figures.batches_verified += 1;
    }

    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut stream = client
            .stream_with(request.clone(), Transport::Shm)
            .to_device(ordinal);
        while stream.next().await.map_err(|e| err(&e))?.is_some() {}
        if let Some(uploader) = stream.uploader() {
            uploader.stream().synchronize().map_err(|e| err(&e))?;
        }
        best = best.min(started.elapsed());
    }
    let bytes = tokens_per_pass as f64 * width as f64;
    figures.shm_to_device_tokens_per_s = tokens_per_pass as f64 / best.as_secs_f64();
    figures.shm_to_device_gb_per_s = bytes / best.as_secs_f64() / 1e9;
    let rounds = (bytes / batch_bytes.max(1) as f64).ceil().max(1.0) as u32;
    let copy = pinned_copy_seconds(ordinal, batch_bytes, rounds).map_err(|e| err(&e))?;
    figures.pinned_copy_gb_per_s = batch_bytes as f64 * f64::from(rounds) / copy / 1e9;
    Ok(figures)
}

/// `steps` copies of a micro-batch-sized buffer into another, both cached.
fn memcpy_cached(bytes: usize, steps: u64) -> Duration {
    let source: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    let mut target = vec![0u8; bytes];
    let started = Instant::now();
    for _ in 0..steps {
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&mut target);
    }
    started.elapsed()
}

/// CPU seconds per second of wall time, split between the server and the bench's clients.
#[derive(Debug, Clone, Copy, Default)]
struct Cores {
    server: f64,
    client: f64,
}

/// CPU seconds (user and system) of this process, threads that have ended included, and of
/// the bench's client threads, from `/proc` (Linux; zeros elsewhere). The client threads live
/// as long as their runtime, so their seconds are all there.
fn cpu_seconds() -> (f64, f64) {
    let all = std::fs::read_to_string("/proc/self/stat")
        .map(|stat| stat_cpu_seconds(&stat).1)
        .unwrap_or(0.0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (all, 0.0);
    };
    let clients = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| stat_cpu_seconds(&stat))
        .filter(|(name, _)| name == CLIENT_THREADS)
        .map(|(_, seconds)| seconds)
        .sum();
    (all, clients)
}

/// The command name and CPU seconds (user and system) of a `/proc` `stat` file.
fn stat_cpu_seconds(stat: &str) -> (String, f64) {
    // The command name is in parentheses (and may hold spaces); fields follow it.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return (String::new(), 0.0);
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name; clock ticks are
    // 100 per second on every Linux this runs on.
    (
        stat[open + 1..close].to_string(),
        (ticks(11) + ticks(12)) / 100.0,
    )
}

/// Streams every request to its end on the clients' runtime, concurrently, each on its own
/// connection as ranks in their own processes would; the wall time of all, and the cores
/// server and clients used meanwhile.
async fn drain(
    clients: &tokio::runtime::Runtime,
    url: &str,
    requests: Vec<StreamRequest>,
    transport: Transport,
) -> Result<(Duration, Cores), String> {
    let (all, client) = cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<tokio::task::JoinHandle<Result<usize, String>>> = requests
        .into_iter()
        .map(|r| {
            let url = url.to_string();
            clients.spawn(async move {
                let client =
                    Client::connect(&url, ClientOptions::default()).map_err(|e| e.to_string())?;
                let mut stream = client.stream_with(r, transport);
                let mut bytes = 0usize;
                while let Some(batch) = stream.next().await.map_err(|e| e.to_string())? {
                    bytes += batch.tokens.len();
                }
                Ok::<_, String>(bytes)
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let (all_after, client_after) = cpu_seconds();
    let seconds = elapsed.as_secs_f64();
    let cores = Cores {
        server: ((all_after - all) - (client_after - client)) / seconds,
        client: (client_after - client) / seconds,
    };
    Ok((elapsed, cores))
}

/// A memory figure of `/proc/self/status` (Linux), e.g. `VmRSS:`, in MB.
fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
