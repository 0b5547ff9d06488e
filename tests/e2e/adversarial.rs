//! The server as an attacker with a reader token (or a fault) finds it: each hostile request
//! gets the status and message that name the limit it hit and the config key that raises it,
//! the server stays SERVING, and an honest stream beside the attacks delivers exactly what the
//! local stream does. Faults inside the server (a producer that panics) cost a client a
//! reconnection, never a batch: no stream ends as if its plan had ended when it had not.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokenlake_client::{Client, ClientOptions, recipe_source};
use tokenlake_schemas::proto::{DiffRequest, PlanRequest, QueryRequest, StreamRequest};
use tonic::Code;

use crate::serve::{Server, assert_serving, free_port, lines_of, metric, runtime};
use crate::serve_query::read_ipc;
use crate::support::*;

const TRAINERS: &str = "trainers-secret-0123456789";
const ATTACKER: &str = "attacker-secret-0123456789";

/// A server with two reader tokens (an honest job's and an attacker's) and tight limits, its
/// config, cache and rings under `dir`; and the address of its metrics.
fn guarded_server(dir: &Path, lake: &Path, limits: &str) -> (Server, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ncache_dir = {:?}\ncache_max_gib = 0.05\n\
             metrics_listen = {metrics:?}\nshm_dir = {:?}\n\
             [lakes]\nsample = {:?}\n\
             [[tokens]]\nname = \"trainers\"\nrole = \"reader\"\ntoken = {TRAINERS:?}\n\
             [[tokens]]\nname = \"attacker\"\nrole = \"reader\"\ntoken = {ATTACKER:?}\n\
             [limits]\n{limits}",
            dir.join("cache").display().to_string(),
            dir.join("shm").display().to_string(),
            lake.display().to_string(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("shm")).unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    (server, metrics)
}

fn client(server: &Server, token: &str) -> Client {
    Client::connect(
        server.url(),
        ClientOptions {
            token: Some(token.into()),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// The recipe the honest job streams, with `edit` applied.
fn recipe_with(edit: impl Fn(String) -> String) -> tokenlake_schemas::proto::PlanSource {
    let text = std::fs::read_to_string(ziya2()).unwrap();
    recipe_source(edit(text), Some("sample".into()), Some("1".into()))
}

/// Opens a gRPC stream and reads nothing from it: a stalled (or hostile) client.
async fn idle_stream(
    client: &Client,
    plan: tokenlake_schemas::proto::PlanSource,
) -> Result<tonic::Streaming<tokenlake_schemas::proto::MicroBatch>, tonic::Status> {
    Ok(client
        .stream_client()
        .batches(StreamRequest {
            plan: Some(plan),
            rank: 0,
            world: 1,
            micro_batch: 1,
            ..Default::default()
        })
        .await?
        .into_inner())
}

fn expect_refusal<T: std::fmt::Debug>(
    what: &str,
    got: Result<T, tonic::Status>,
    code: Code,
    key: &str,
) {
    let err = got.expect_err(&format!("{what}: accepted"));
    assert_eq!(err.code(), code, "{what}: {}", err.message());
    assert!(
        err.message().contains(key),
        "{what}: {:?} does not name {key}",
        err.message()
    );
}

/// The server's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
// Kept as one test: the attacks run against one server while one honest stream runs beside
// them, and what is checked at the end (health, memory, disk, the honest stream's bytes) is
// about all of them together.
fn a_hostile_reader_gets_limits_named_and_an_honest_stream_beside_it_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let (server, metrics) = guarded_server(
        dir.path(),
        &lake,
        "max_streams = 8\nmax_streams_per_token = 2\nstall_timeout_secs = 2\n\
         max_queries = 1\nquery_max_memory_mb = 1\nquery_max_result_mb = 1\n\
         max_plans = 8\nmax_sample_len = 65536\n",
    );
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());
    let local = lines_of(&run_ok(&["stream", r, "--lake", l]));

    // The honest job: a trainer that reads its samples (JSON lines of ~10 kB, so little waits
    // in the pipe) slowly, so that its stream runs through the attacks.
    let mut honest = tokenlake()
        .args(["stream", r, "--server", server.url(), "--lake", "sample"])
        .env("TOKENLAKE_TOKEN", TRAINERS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = honest.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(out).lines() {
            lines.push(line.unwrap());
            if lines.len() < 1500 {
                std::thread::sleep(Duration::from_millis(4));
            }
        }
        lines
    });

    let rt = runtime();
    let _in_runtime = rt.enter();
    let attacker = client(&server, ATTACKER);
    let prepare = |plan| {
        rt.block_on(
            attacker
                .plan_client()
                .prepare(PlanRequest { plan: Some(plan) }),
        )
    };

    // 1. A sample of four billion tokens (bin packing once allocated per token of it).
    expect_refusal(
        "huge sample_len",
        prepare(recipe_with(|t| {
            t.replace("seq_len = 4096", "seq_len = 4294967294")
                .replace("packing = \"concat\"", "packing = \"bin\"")
        })),
        Code::ResourceExhausted,
        "limits.max_sample_len",
    );
    // 4. A stage budget of 10^15 samples: refused before anything is written.
    let budget = prepare(recipe_with(|t| {
        let mut out = String::new();
        for line in t.lines() {
            if line.trim_start().starts_with("samples = ") {
                out.push_str("samples = 1000000000000000\n");
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }))
    .expect_err("a budget of 10^15 samples was accepted");
    assert!(budget.message().contains("epochs"), "{}", budget.message());
    // Asked again at once, it is answered from memory: a broken recipe sent by every rank
    // costs the server one attempt.
    let again = prepare(recipe_with(|t| {
        t.lines()
            .map(|line| {
                if line.trim_start().starts_with("samples = ") {
                    "samples = 1000000000000000\n".to_string()
                } else {
                    format!("{line}\n")
                }
            })
            .collect()
    }))
    .expect_err("the same budget was accepted the second time");
    assert_eq!(again.code(), budget.code());
    assert!(
        again.message().contains("failed to prepare"),
        "{}",
        again.message()
    );
    // 7. A micro-batch whose metadata alone would be gigabytes.
    let huge_batch = rt.block_on(async {
        let mut s = attacker
            .stream_client()
            .batches(StreamRequest {
                plan: Some(recipe_with(|t| t)),
                rank: 0,
                world: 1,
                micro_batch: 200_000,
                ..Default::default()
            })
            .await?
            .into_inner();
        s.message().await
    });
    expect_refusal(
        "micro-batch over the batch bound",
        huge_batch,
        Code::ResourceExhausted,
        "limits.max_batch_bytes",
    );

    // 7. Streams per token: two held open and never read, the third refused; the stall
    // timeout then closes the two, and the token may stream again.
    let held = rt.block_on(async {
        let a = idle_stream(&attacker, recipe_with(|t| t)).await.unwrap();
        let b = idle_stream(&attacker, recipe_with(|t| t)).await.unwrap();
        (a, b)
    });
    expect_refusal(
        "a third stream of one token",
        rt.block_on(idle_stream(&attacker, recipe_with(|t| t))),
        Code::ResourceExhausted,
        "limits.max_streams_per_token",
    );
    // The stall timeout is 2 s; a loaded machine may take longer to notice, so the token is
    // given up to 20 s before the test says the stalled streams were never closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    std::thread::sleep(Duration::from_secs(2));
    let reopened = loop {
        match rt.block_on(idle_stream(&attacker, recipe_with(|t| t))) {
            Err(e)
                if e.code() == Code::ResourceExhausted && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            other => break other,
        }
    };
    reopened.expect("the stalled streams were not closed");
    drop(held);

    // 2. SQL: a join over its memory bound, a result over its byte bound, a second query while
    // one runs; and a researcher's 10,000-term OR, which works.
    let sql = |text: &str, timeout_ms: u32| {
        rt.block_on(async {
            let mut s = attacker
                .query_client()
                .sql(QueryRequest {
                    lake: "sample".into(),
                    sql: text.into(),
                    timeout_ms,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let (mut chunks, mut truncated) = (Vec::new(), false);
            while let Some(chunk) = s.message().await? {
                truncated |= chunk.truncated;
                chunks.push(chunk.ipc.to_vec());
            }
            Ok::<_, tonic::Status>((chunks, truncated))
        })
    };
    expect_refusal(
        "a self-join on text",
        sql(
            "SELECT COUNT(*) AS n FROM documents a JOIN documents b ON a.text = b.text",
            0,
        ),
        Code::ResourceExhausted,
        "limits.query_max_memory_mb",
    );
    let (chunks, truncated) = sql("SELECT repeat(text, 10) FROM documents", 0).unwrap();
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    assert!(truncated, "a result over query_max_result_mb was not cut");
    assert!(bytes < 3 << 20, "{bytes} bytes came back for a 1 MiB bound");
    assert!(
        bytes > 512 << 10,
        "only {bytes} bytes came back: cut too early"
    );
    let queries_running = || {
        let page = String::from_utf8(http_get(&metrics, "/metrics").1).unwrap();
        metric(&page, "tokenlake_queries_running").unwrap_or(0.0)
    };
    // The queries before have given their slot back (their task ends just after their last
    // answer), so the gauge below speaks of the long query alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queries_running() > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let long = {
        let attacker = attacker.clone();
        rt.spawn(async move {
            let mut s = attacker
                .query_client()
                .sql(QueryRequest {
                    lake: "sample".into(),
                    sql: "SELECT COUNT(*) FROM documents a, documents b, documents c, \
                          documents d WHERE a.n_tokens + b.n_tokens + c.n_tokens + d.n_tokens = 7"
                        .into(),
                    timeout_ms: 3000,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        })
    };
    // The long query holds the one slot once the server has started it, a moment later on a
    // loaded machine; the server's gauge says when (asking with a query would race it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queries_running() < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_refusal(
        "a second query while one runs",
        sql("SELECT 1", 0),
        Code::ResourceExhausted,
        "limits.max_queries",
    );
    // 13. Catalog's full scans count as queries too.
    expect_refusal(
        "a diff while a query runs",
        rt.block_on(attacker.catalog_client().diff(DiffRequest {
            lake: "sample".into(),
            from: "1".into(),
            to: "1".into(),
        })),
        Code::ResourceExhausted,
        "limits.max_queries",
    );
    let long = rt
        .block_on(long)
        .unwrap()
        .expect_err("the cubic join finished");
    assert_eq!(long.code(), Code::DeadlineExceeded, "{}", long.message());
    let ids: Vec<String> = (0..10_000u64).map(|i| format!("doc_id = {i}")).collect();
    let or_query = format!(
        "SELECT COUNT(*) AS n FROM documents WHERE {}",
        ids.join(" OR ")
    );
    // The client's deadline ends the cubic join's call at once; the server frees its query
    // slot when the query's task has stopped, a moment later on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (chunks, _) = loop {
        match sql(&or_query, 0) {
            Err(e)
                if e.code() == Code::ResourceExhausted && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other.expect("a 10,000-term OR is a researcher's query"),
        }
    };
    assert_eq!(read_ipc(chunks)[0].num_rows(), 1);

    // The honest stream delivered exactly the local stream throughout.
    let delivered = reader.join().unwrap();
    let status = honest.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut honest.stderr.take().unwrap(), &mut said).unwrap();
    assert!(status.success(), "the honest stream failed: {said}");
    assert_eq!(
        delivered, local,
        "the honest stream lost or repeated batches"
    );

    // The server is serving, within its memory and disk bounds, and counted the stalls.
    assert_serving(&rt, server.url());
    let rss = peak_rss(server.pid());
    assert!(
        rss < 1 << 30,
        "the server's memory peaked at {} MiB",
        rss >> 20
    );
    let cache = dir_bytes(&dir.path().join("cache"));
    assert!(cache < 64 << 20, "the cache holds {} MiB", cache >> 20);
    let page = String::from_utf8(http_get(&metrics, "/metrics").1).unwrap();
    assert!(
        metric(&page, "tokenlake_streams_stalled_total").unwrap_or(0.0) >= 2.0,
        "{page}"
    );
    assert_eq!(
        metric(&page, "tokenlake_stream_failures_total"),
        None,
        "a producer failed: {page}"
    );
}

#[test]
fn plans_beyond_the_bound_close_idle_ones_and_are_refused_while_all_stream() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let (server, metrics) = guarded_server(
        dir.path(),
        &lake,
        "max_plans = 3\nmax_plans_per_token = 2\nmax_streams_per_token = 4\nstall_timeout_secs = 3\n",
    );
    let rt = runtime();
    let _in_runtime = rt.enter();
    let attacker = client(&server, ATTACKER);
    let seeded = |seed: u64| {
        recipe_with(move |t| format!("{t}\n").replace("seed = 1234", &format!("seed = {seed}")))
    };
    let prepare = |plan| {
        rt.block_on(
            attacker
                .plan_client()
                .prepare(PlanRequest { plan: Some(plan) }),
        )
        .map(|r| r.into_inner().plan_id)
    };
    // Idle plans make room for new ones: five seeds, never more than three plans open.
    let mut ids = Vec::new();
    for seed in 1..=5 {
        ids.push(prepare(seeded(seed)).unwrap());
        let page = String::from_utf8(http_get(&metrics, "/metrics").1).unwrap();
        assert!(
            metric(&page, "tokenlake_plans_open").unwrap() <= 3.0,
            "{page}"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "the seeds were not distinct plans");
    // The attacker streams from two plans, its most; a third of its own is refused, and the
    // honest token still gets the server's last plan.
    let held = rt.block_on(async {
        let a = idle_stream(&attacker, seeded(11)).await.unwrap();
        let b = idle_stream(&attacker, seeded(12)).await.unwrap();
        (a, b)
    });
    expect_refusal(
        "a token's third plan",
        rt.block_on(idle_stream(&attacker, seeded(14))),
        Code::ResourceExhausted,
        "limits.max_plans_per_token",
    );
    let trainers = client(&server, TRAINERS);
    let honest = rt
        .block_on(idle_stream(&trainers, seeded(15)))
        .expect("the honest token was refused a plan");
    // Three plans, each read by a stream: a fourth cannot be opened until one of them ends.
    expect_refusal(
        "a fourth plan while three stream",
        prepare(seeded(13)),
        Code::ResourceExhausted,
        "limits.max_plans",
    );
    // The stall timeout closes both streams; then their plans are idle and make room.
    let started = Instant::now();
    loop {
        match prepare(seeded(13)) {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("no room after the streams stalled: {}", e.message()),
        }
    }
    drop((held, honest));
}

/// An open server on loopback whose stream producers all panic after `at` batches (a fault
/// that debug builds read from the environment), with rings in `shm`.
fn panicking_server(lake: &Path, shm: &Path, at: u64) -> Server {
    let lake_arg = format!("sample={}", lake.display());
    Server::start_with_env(
        &[
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--lake",
            &lake_arg,
            "--shm-dir",
            shm.to_str().unwrap(),
        ],
        &[("TOKENLAKE_TEST_PANIC_AT_BATCH", &at.to_string())],
    )
}

#[test]
fn a_producer_that_panics_costs_the_rust_client_reconnections_and_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let server = panicking_server(&lake, &shm, 250);
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());
    let local = lines_of(&run_ok(&["stream", r, "--lake", l, "--checksums"]));
    assert!(
        local.len() > 1000,
        "too small a plan to test: {}",
        local.len()
    );
    for transport in ["grpc", "shm"] {
        let out = run(&[
            "stream",
            r,
            "--server",
            server.url(),
            "--lake",
            "sample",
            "--checksums",
            "--transport",
            transport,
        ]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{transport}: {said}");
        assert_eq!(
            lines_of(&String::from_utf8_lossy(&out.stdout)),
            local,
            "{transport}: the resumed stream is not the local one"
        );
        // Every 250th batch the producer fails: the stream went on from its cursor each time.
        assert!(said.contains("reconnects"), "{transport}: {said}");
    }
}

mod needs_python_package {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn a_producer_that_panics_costs_the_python_client_reconnections_and_no_batch() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let shm = dir.path().join("shm");
        std::fs::create_dir(&shm).unwrap();
        let server = panicking_server(&lake, &shm, 100);
        let r = ziya2();
        let expected = dir.path().join("expected.jsonl");
        run_ok(&[
            "stream",
            r.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--micro-batch",
            "2",
            "--out",
            expected.to_str().unwrap(),
        ]);
        let out = pytest_installed(
            &["tests/test_faults.py"],
            &[
                ("TOKENLAKE_TEST_SERVER", server.url().as_ref()),
                ("TOKENLAKE_TEST_FAULTS", "panic-at-100".as_ref()),
                ("TOKENLAKE_TEST_RECIPE", r.as_os_str()),
                ("TOKENLAKE_TEST_LAKE", "sample".as_ref()),
                ("TOKENLAKE_TEST_EXPECTED", expected.as_os_str()),
            ],
        );
        assert_pytest_passed(&out, 2);
    }
}

/// A shared-memory client that releases slots it never held (flooding the control stream) ends
/// its own stream; the server's memory for its releases stays bounded by the ring, and the
/// server goes on serving others.
#[test]
fn a_client_flooding_releases_ends_its_own_stream_only() {
    use tokenlake_schemas::proto::{
        ShmClientMessage, ShmOpen, ShmRelease, shm_client_message::Message,
        shm_server_message::Message as Server,
    };
    let Some(host) = tokenlake_ring::host_identity() else {
        eprintln!("SKIPPED: no shared memory on this system");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let (server, metrics) = guarded_server(dir.path(), &lake, "");
    let rt = runtime();
    let _in_runtime = rt.enter();
    let attacker = client(&server, ATTACKER);
    let open = ShmClientMessage {
        message: Some(Message::Open(ShmOpen {
            request: Some(StreamRequest {
                plan: Some(recipe_with(|t| t)),
                rank: 0,
                world: 1,
                micro_batch: 1,
                ..Default::default()
            }),
            slots: 4,
            host,
        })),
    };
    let flood = (0..100_000).map(|_| ShmClientMessage {
        message: Some(Message::Release(ShmRelease {
            slot: 0,
            more: vec![0; 15],
        })),
    });
    let ended = rt.block_on(async {
        let messages = futures::stream::iter(std::iter::once(open).chain(flood));
        let mut s = attacker
            .stream_client()
            .shared_batches(messages)
            .await?
            .into_inner();
        let first = s.message().await?;
        assert!(matches!(
            first.and_then(|m| m.message),
            Some(Server::Ring(_))
        ));
        // Whatever comes, the stream must end, and never with the end-of-stream message.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match s.message().await {
                Ok(Some(m)) => {
                    assert!(
                        !matches!(m.message, Some(Server::End(_))),
                        "a flood ended as the plan's end"
                    );
                    assert!(Instant::now() < deadline, "the flooding stream never ended");
                }
                Ok(None) => return Ok::<_, tonic::Status>(()),
                Err(status) => return Err(status),
            }
        }
    });
    // Ended one way or another (the server closed it, or failed it): not served to the end.
    let _ = ended;
    let page = String::from_utf8(http_get(&metrics, "/metrics").1).unwrap();
    assert_eq!(
        metric(&page, "tokenlake_stream_failures_total"),
        None,
        "{page}"
    );
    // The server goes on: an honest stream still gets the local stream.
    let r = ziya2();
    let local = lines_of(&run_ok(&[
        "stream",
        r.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--checksums",
        "--steps",
        "50",
    ]));
    let remote = tokenlake()
        .args([
            "stream",
            r.to_str().unwrap(),
            "--server",
            server.url(),
            "--lake",
            "sample",
            "--checksums",
            "--steps",
            "50",
        ])
        .env("TOKENLAKE_TOKEN", TRAINERS)
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    assert_eq!(lines_of(&String::from_utf8_lossy(&remote.stdout)), local);
}
