//! `tokenlake serve` as a real process on 127.0.0.1, with the Rust client (directly and through
//! `tokenlake stream --server`) and the Python client: ranks over gRPC against the local stream,
//! a server killed mid-stream, status codes of bad requests, roles, SQL and admin jobs.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokenlake_client::{Client, ClientOptions, Transport, recipe_source};
use tokenlake_schemas::proto::{DescribeRequest, StreamRequest};
use tonic::Code;

use crate::support::*;

/// A `tokenlake serve` process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    url: String,
    addr: String,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = tokenlake()
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("serve printed nothing").unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let addr = url.trim_start_matches("http://").to_string();
        Server { child, url, addr }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn client(&self, token: Option<&str>) -> Client {
        Client::connect(
            &self.url,
            ClientOptions {
                token: token.map(str::to_string),
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn open_server(lake: &Path, extra: &[&str]) -> Server {
    let lake_arg = format!("sample={}", lake.display());
    let mut args = vec!["--open", "--listen", "127.0.0.1:0", "--lake", &lake_arg];
    args.extend_from_slice(extra);
    Server::start(&args)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn lines_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// A free loopback port (for listeners that cannot report the port they got).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks the gRPC health service at `url` (plaintext, no token) about the Stream service, and
/// checks that it is SERVING.
pub(crate) fn assert_serving(rt: &tokio::runtime::Runtime, url: &str) {
    let status = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "tokenlake.v1.Stream".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
        "{url} is not serving"
    );
}

/// The value of an unlabelled metric in a Prometheus text page.
pub(crate) fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn two_ranks_over_grpc_together_stream_what_one_local_rank_streams() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = open_server(&lake, &["--metrics-listen", &metrics_addr]);
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());

    let local = lines_of(&run_ok(&[
        "stream",
        r,
        "--lake",
        l,
        "--checksums",
        "--micro-batch",
        "2",
    ]));
    assert!(
        local.len() > 20,
        "the sample plan is too small to test: {}",
        local.len()
    );
    let mut union = Vec::new();
    for rank in ["0", "1"] {
        union.extend(lines_of(&run_ok(&[
            "stream",
            r,
            "--server",
            &server.url,
            "--lake",
            "sample",
            "--checksums",
            "--rank",
            rank,
            "--world",
            "2",
        ])));
    }
    union.sort_by_key(|l| l.split('\t').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(union, local);

    // Full batches too: the JSON lines of the remote stream are the local ones.
    let local_json = run_ok(&[
        "stream",
        r,
        "--lake",
        l,
        "--steps",
        "3",
        "--micro-batch",
        "4",
    ]);
    let remote_json = run_ok(&[
        "stream",
        r,
        "--server",
        &server.url,
        "--lake",
        "sample",
        "--steps",
        "3",
        "--micro-batch",
        "4",
    ]);
    assert_eq!(remote_json, local_json);

    // The metrics saw every batch, and no stream stays open after its client is done.
    let page = String::from_utf8(http_get(&metrics_addr, "/metrics").1).unwrap();
    let batches = metric(&page, "tokenlake_batches_total").unwrap_or_else(|| panic!("{page}"));
    // two ranks of one sample per step, then three steps of the JSON stream
    assert_eq!(batches as usize, local.len() + 3, "{page}");
    assert_eq!(
        metric(&page, "tokenlake_streams_active"),
        Some(0.0),
        "{page}"
    );
    assert!(metric(&page, "tokenlake_tokens_total").unwrap() > 0.0);
}

/// A server in window mode streams a published token store with the local full cache's bytes,
/// and its metrics show what the window fetched.
#[test]
fn a_server_in_window_mode_streams_the_token_store_exactly_and_counts_its_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());
    let local = lines_of(&run_ok(&[
        "stream",
        r,
        "--lake",
        l,
        "--checksums",
        "--micro-batch",
        "2",
        "--steps",
        "20",
    ]));
    run_ok(&["materialise", r, "--lake", l, "--chunk-mib", "1"]);
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "cache_mode = \"window\"\nwindow_max_mib = 1\ncache_dir = {:?}\n",
            dir.path().join("node-cache")
        ),
    )
    .unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = open_server(
        &lake,
        &[
            "--config",
            config.to_str().unwrap(),
            "--metrics-listen",
            &metrics_addr,
        ],
    );
    let remote = lines_of(&run_ok(&[
        "stream",
        r,
        "--server",
        &server.url,
        "--lake",
        "sample",
        "--checksums",
        "--micro-batch",
        "2",
        "--steps",
        "20",
    ]));
    assert_eq!(remote, local);
    assert!(
        !dir.path().join("node-cache/tokens").exists(),
        "window mode fills no token cache"
    );
    let page = String::from_utf8(http_get(&metrics_addr, "/metrics").1).unwrap();
    let labelled = |name: &str| {
        page.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {page}"))
    };
    assert!(labelled("tokenlake_window_fetches_total") > 0.0);
    assert!(labelled("tokenlake_window_fetched_bytes_total") > 0.0);
    assert!(labelled("tokenlake_window_slab_high_water_bytes") <= f64::from(1u32 << 20));
    // The node's cache had no plan index: the server read the published one page by page.
    // (Whether a read fetched a page or found the background fill's is the race's.)
    let bytes = labelled("tokenlake_plan_index_bytes");
    let present = labelled("tokenlake_plan_index_present_bytes");
    assert!(bytes > 0.0 && present > 0.0 && present <= bytes, "{page}");
}

#[test]
fn a_killed_and_restarted_server_and_the_reconnecting_client_deliver_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let r = ziya2();
    let (r, l) = (r.to_str().unwrap(), lake.to_str().unwrap());
    let local: Vec<Value> = run_ok(&["stream", r, "--lake", l])
        .lines()
        .map(|x| serde_json::from_str(x).unwrap())
        .collect();

    let server = open_server(&lake, &[]);
    let addr = server.addr.clone();
    // JSON lines are ~10 kB each, so a client whose output is not read stops after a few and
    // the server behind it stops at its prefetch bound: the kill lands mid-stream.
    let mut client = tokenlake()
        .args(["stream", r, "--server", &server.url, "--lake", "sample"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut received = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        received.push(line);
    }
    drop(server); // SIGKILL
    std::thread::sleep(Duration::from_millis(300));
    let lake_arg = format!("sample={}", lake.display());
    let _restarted = Server::start(&["--open", "--listen", &addr, "--lake", &lake_arg]);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = client.wait().unwrap();
    let mut stderr = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("reconnects"),
        "the client never reconnected: {stderr}"
    );
    received.extend(rest.lines().map(|l| format!("{l}\n")));
    let remote: Vec<Value> = received
        .iter()
        .map(|x| serde_json::from_str(x).unwrap())
        .collect();
    assert_eq!(remote.len(), local.len(), "lost or repeated samples");
    for (a, b) in remote.iter().zip(&local) {
        assert_eq!(a["index"], b["index"]);
        assert_eq!(a["tokens"], b["tokens"]);
        assert_eq!(a["spans"], b["spans"]);
    }
}

#[test]
// Kept as one test: a table of bad requests against one server, each with its expected code and
// message.
fn bad_requests_get_codes_and_messages_a_person_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = open_server(&lake, &[]);
    let recipe = std::fs::read_to_string(ziya2()).unwrap();
    let rt = runtime();
    let _in_runtime = rt.enter(); // clients dial from the runtime
    let client = server.client(None);
    let source = |lake: &str, version: &str| {
        recipe_source(recipe.clone(), Some(lake.into()), Some(version.into()))
    };
    let stream_status = |source, rank: u32, world: u32, micro_batch: u32, cursor: &str| {
        let mut s = client.stream_with(
            StreamRequest {
                plan: Some(source),
                rank,
                world,
                micro_batch,
                cursor: cursor.to_string(),
                max_steps: 1,
            },
            Transport::Grpc,
        );
        match rt.block_on(s.next()) {
            Ok(_) => None,
            Err(e) => Some((e.code().unwrap(), e.to_string())),
        }
    };
    let good = stream_status(source("sample", "1"), 0, 1, 1, "");
    assert_eq!(good, None);

    type Case<'a> = (&'a str, Option<(Code, String)>, Code, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown lake",
            stream_status(source("nope", ""), 0, 1, 1, ""),
            Code::NotFound,
            "no lake \"nope\"",
        ),
        (
            "unknown version",
            stream_status(source("sample", "99"), 0, 1, 1, ""),
            Code::NotFound,
            "no version 99",
        ),
        (
            "unknown tag",
            stream_status(source("sample", "nightly"), 0, 1, 1, ""),
            Code::NotFound,
            "nightly",
        ),
        (
            "rank ≥ world",
            stream_status(source("sample", "1"), 2, 2, 1, ""),
            Code::InvalidArgument,
            "rank 2",
        ),
        (
            "micro-batch too large",
            stream_status(source("sample", "1"), 0, 1, 1_000_000, ""),
            Code::ResourceExhausted,
            "limits.max_batch_bytes",
        ),
        (
            "damaged cursor",
            stream_status(source("sample", "1"), 0, 1, 1, "tlc1-nonsense"),
            Code::InvalidArgument,
            "cursor",
        ),
        (
            "bad recipe",
            stream_status(
                recipe_source("seq_len = \"long\"".into(), Some("sample".into()), None),
                0,
                1,
                1,
                "",
            ),
            Code::InvalidArgument,
            "line 1",
        ),
        (
            // Bin packing once allocated per possible free count: this took the server down.
            "a sample of four billion tokens",
            stream_status(
                recipe_source(
                    recipe.replace("seq_len = 4096", "seq_len = 4294967293"),
                    Some("sample".into()),
                    Some("1".into()),
                ),
                0,
                1,
                1,
                "",
            ),
            Code::ResourceExhausted,
            "limits.max_sample_len",
        ),
    ];
    for (what, got, code, needle) in cases {
        let (got_code, message) = got.unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(got_code, code, "{what}: {message}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }

    // A cursor of another plan (another seed) is a failed precondition naming the seed.
    let other = recipe.replace("seed = ", "seed = 1");
    let mut s = client.stream_with(
        StreamRequest {
            plan: Some(recipe_source(
                other,
                Some("sample".into()),
                Some("1".into()),
            )),
            rank: 0,
            world: 1,
            micro_batch: 1,
            cursor: String::new(),
            max_steps: 1,
        },
        Transport::Grpc,
    );
    let foreign = rt.block_on(s.next()).unwrap().unwrap().cursor;
    let (code, message) = stream_status(source("sample", "1"), 0, 1, 1, &foreign).unwrap();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("seed"), "{message}");

    // Catalog: an unknown version of describe is NOT_FOUND too.
    let err = rt
        .block_on(client.catalog_client().describe(DescribeRequest {
            lake: "sample".into(),
            version: "42".into(),
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    // Health is served without a token, for probes.
    assert_serving(&rt, &server.url);
}

#[test]
fn an_open_server_listens_on_loopback_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let lake = format!("sample={}", dir.path().join("lake").display());
    let err = run_err(&["serve", "--open", "--listen", "0.0.0.0:0", "--lake", &lake]);
    assert!(err.contains("loopback"), "{err}");
    let err = run_err(&["serve", "--listen", "127.0.0.1:0", "--lake", &lake]);
    assert!(err.contains("no tokens"), "{err}");
    // Told otherwise, it starts.
    let server = Server::start(&[
        "--open",
        "--allow-open-on-network",
        "--listen",
        "0.0.0.0:0",
        "--lake",
        &lake,
    ]);
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
}

mod needs_python_package {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn python_client_resumes_from_a_state_dict() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let server = open_server(&lake, &[]);
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
            &["tests/test_dataset.py"],
            &[
                ("TOKENLAKE_TEST_SERVER", server.url.as_ref()),
                ("TOKENLAKE_TEST_RECIPE", r.as_os_str()),
                ("TOKENLAKE_TEST_LAKE", "sample".as_ref()),
                ("TOKENLAKE_TEST_EXPECTED", expected.as_os_str()),
            ],
        );
        assert_pytest_passed(&out, 6);
    }
}
