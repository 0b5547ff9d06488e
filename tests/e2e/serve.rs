//! `tokenlake serve` as a real process on 127.0.0.1, with the Rust client (directly and through
//! `tokenlake stream --server`) and the Python client: ranks over gRPC against the local stream,
//! a server killed mid-stream, status codes of bad requests, roles, SQL and admin jobs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokenlake_client::{Client, ClientOptions, Transport, recipe_source};
use tokenlake_schemas::proto::{
    DescribeRequest, IngestRequest, JobRequest, QueryRequest, StreamRequest, TagRequest,
};
use tonic::Code;

use crate::support::*;

/// A `tokenlake serve` process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    url: String,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
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

fn open_server(lake: &Path, extra: &[&str]) -> Server {
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

fn lines_of(text: &str) -> Vec<String> {
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

/// The value of an unlabelled metric in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
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
        let mut s = client.stream_with(StreamRequest {
            plan: Some(source),
            rank,
            world,
            micro_batch,
            cursor: cursor.to_string(),
            max_steps: 1,
        }, Transport::Grpc);
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
            Code::InvalidArgument,
            "micro-batch",
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
    let mut s = client.stream_with(StreamRequest {
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
    }, Transport::Grpc);
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
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        rt.block_on(
            tonic::transport::Endpoint::from_shared(server.url.clone())
                .unwrap()
                .connect(),
        )
        .unwrap(),
    );
    let reply = rt
        .block_on(health.check(tonic_health::pb::HealthCheckRequest {
            service: "tokenlake.v1.Stream".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// The rows of an Arrow IPC stream made of the chunks' bytes.
fn read_ipc(chunks: Vec<Vec<u8>>) -> Vec<arrow_array::RecordBatch> {
    let bytes: Vec<u8> = chunks.concat();
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn query(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    version: &str,
    sql: &str,
    max_rows: u64,
) -> Result<(Vec<arrow_array::RecordBatch>, bool), tonic::Status> {
    rt.block_on(async {
        let mut stream = client
            .query_client()
            .sql(QueryRequest {
                lake: "sample".into(),
                version: version.into(),
                sql: sql.into(),
                max_rows,
                timeout_ms: 0,
            })
            .await?
            .into_inner();
        let (mut chunks, mut truncated) = (Vec::new(), false);
        while let Some(chunk) = stream.message().await? {
            truncated |= chunk.truncated;
            chunks.push(chunk.ipc.to_vec());
        }
        Ok((read_ipc(chunks), truncated))
    })
}

#[test]
fn sql_over_a_version_matches_an_independent_scan_and_refuses_writes() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = open_server(&lake, &[]);
    let rt = runtime();
    let _in_runtime = rt.enter(); // clients dial from the runtime
    let client = server.client(None);

    // Tokens per source, against the lake read back by the tests' own Lance scan.
    let (batches, truncated) = query(
        &rt,
        &client,
        "quickstart",
        "SELECT source, COUNT(*) AS docs, SUM(CAST(n_tokens AS BIGINT)) AS tokens \
         FROM documents GROUP BY source ORDER BY source",
        0,
    )
    .unwrap();
    assert!(!truncated);
    let mut got = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            got.push((
                b.column(0).as_string::<i32>().value(i).to_string(),
                b.column(1).as_primitive::<Int64Type>().value(i) as u64,
                b.column(2).as_primitive::<Int64Type>().value(i) as u64,
            ));
        }
    }
    let mut want: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (source, tokens) in read_sources_and_token_counts(&lake) {
        let e = want.entry(source).or_default();
        e.0 += 1;
        e.1 += tokens;
    }
    let want: Vec<(String, u64, u64)> = want.into_iter().map(|(s, (d, t))| (s, d, t)).collect();
    assert_eq!(got, want);

    // Another version and the lake's own tokenizer are reachable from a Query call too.
    let (rows, _) = query(
        &rt,
        &client,
        "",
        "SELECT COUNT(*) AS n FROM documents_at('quickstart') \
         WHERE detokenize(tokens) = text",
        0,
    )
    .unwrap();
    let total: u64 = want.iter().map(|(_, d, _)| d).sum();
    assert_eq!(
        rows[0].column(0).as_primitive::<Int64Type>().value(0) as u64,
        total
    );

    // Row bound: the result is cut and says so.
    let (rows, truncated) = query(&rt, &client, "", "SELECT doc_id FROM documents", 5).unwrap();
    assert!(truncated);
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 5);

    for (what, version, sql, code, needle) in [
        (
            "a write",
            "",
            "DELETE FROM documents WHERE n_tokens > 0",
            Code::InvalidArgument,
            "read-only",
        ),
        (
            "a table",
            "",
            "CREATE TABLE t AS SELECT 1",
            Code::InvalidArgument,
            "read-only",
        ),
        (
            "bad SQL",
            "",
            "SELEC doc_id FROM documents",
            Code::InvalidArgument,
            "SQL",
        ),
        (
            "an unknown column",
            "",
            "SELECT no_such_column FROM documents",
            Code::InvalidArgument,
            "no_such_column",
        ),
        (
            "an unknown version",
            "7",
            "SELECT doc_id FROM documents",
            Code::NotFound,
            "no version 7",
        ),
    ] {
        let err = query(&rt, &client, version, sql, 0).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {}", err.message());
        assert!(
            err.message().contains(needle),
            "{what}: {:?} lacks {needle:?}",
            err.message()
        );
    }
}

/// (source, n_tokens) of every document of the latest version, read with lance directly.
fn read_sources_and_token_counts(lake: &Path) -> Vec<(String, u64)> {
    use arrow_array::cast::AsArray;
    scan(lake, None, &["source", "n_tokens"])
        .iter()
        .flat_map(|b| {
            let sources = b.column(0).as_string::<i32>().clone();
            let tokens = b.column(1).clone();
            (0..b.num_rows())
                .map(move |i| {
                    let n = arrow_cast::cast(&tokens, &arrow_schema::DataType::UInt64).unwrap();
                    (
                        sources.value(i).to_string(),
                        n.as_primitive::<arrow_array::types::UInt64Type>().value(i),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn roles_gate_writes_and_admin_jobs_ingest_and_curate_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let docs = sample_docs();
    let extra: Vec<Value> = docs
        .iter()
        .take(20)
        .map(|d| {
            let mut d = d.clone();
            d["text"] = format!("{} (second edition)", d["text"].as_str().unwrap()).into();
            d.as_object_mut().unwrap().remove("id");
            d
        })
        .collect();
    write_jsonl(&inputs.join("more.jsonl"), &extra);
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ningest_roots = [{inputs:?}]\n[lakes]\nsample = {lake:?}\n\
             [[tokens]]\nname = \"trainer\"\nrole = \"reader\"\ntoken = \"reader-token-0123456789\"\n\
             [[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_env = \"TL_TEST_ADMIN\"\n",
            inputs = inputs.display().to_string(),
            lake = lake.display().to_string(),
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("TL_TEST_ADMIN", "admin-token-0123456789")],
    );
    let rt = runtime();
    let _in_runtime = rt.enter(); // clients dial from the runtime
    let reader = server.client(Some("reader-token-0123456789"));
    let admin = server.client(Some("admin-token-0123456789"));
    let nobody = server.client(None);
    let tag = |client: &Client| {
        rt.block_on(client.admin_client().create_tag(TagRequest {
            lake: "sample".into(),
            name: "reviewed".into(),
            version: 1,
        }))
    };
    assert_eq!(tag(&nobody).unwrap_err().code(), Code::Unauthenticated);
    let denied = tag(&reader).unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("trainer"), "{}", denied.message());
    let ingest_request = |input: &Path| IngestRequest {
        lake: "sample".into(),
        inputs: vec![input.display().to_string()],
        source: "review".into(),
        ..IngestRequest::default()
    };
    let denied = rt
        .block_on(
            reader
                .admin_client()
                .ingest(ingest_request(&inputs.join("more.jsonl"))),
        )
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Readers do read.
    let versions = rt
        .block_on(
            reader
                .catalog_client()
                .versions(tokenlake_schemas::proto::LakeRequest {
                    lake: "sample".into(),
                }),
        )
        .unwrap()
        .into_inner();
    assert_eq!(versions.versions.len(), 1);

    assert_eq!(tag(&admin).unwrap().into_inner().version, 1);
    // A path outside the ingest roots is refused; the lake stays as it was.
    let outside = rt
        .block_on(admin.admin_client().ingest(ingest_request(&sample())))
        .unwrap_err();
    assert_eq!(
        outside.code(),
        Code::PermissionDenied,
        "{}",
        outside.message()
    );

    let job = rt
        .block_on(
            admin
                .admin_client()
                .ingest(ingest_request(&inputs.join("more.jsonl"))),
        )
        .unwrap()
        .into_inner();
    let last = watch_to_end(&rt, &admin, &job.job_id);
    assert_eq!(last.state, "succeeded", "{}", last.message);
    assert_eq!(last.version, 2);
    assert_eq!(last.docs_done, 20);
    let lake_versions = run_json(&["versions", lake.to_str().unwrap()]);
    assert_eq!(lake_versions.as_array().unwrap().len(), 2);

    // Labels travel as the file's bytes and land as one new version.
    use arrow_array::cast::AsArray;
    let ids: Vec<u64> = scan(&lake, None, &["doc_id"])
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<arrow_array::types::UInt64Type>()
                .values()
                .to_vec()
        })
        .collect();
    let labels: String = ids
        .iter()
        .take(10)
        .map(|id| format!("{{\"doc_id\": {id}, \"reviewed\": true}}\n"))
        .collect();
    let import = |client: &Client, file: &str| {
        rt.block_on(client.admin_client().import_labels(
            tokenlake_schemas::proto::LabelImportRequest {
                lake: "sample".into(),
                file: file.as_bytes().to_vec(),
            },
        ))
    };
    assert_eq!(
        import(&reader, &labels).unwrap_err().code(),
        Code::PermissionDenied
    );
    let bad = import(&admin, "{\"doc_id\": 1, \"reviewed\": true}\n").unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{}", bad.message());
    let reply: Value =
        serde_json::from_str(&import(&admin, &labels).unwrap().into_inner().json).unwrap();
    assert_eq!(reply["version"], 3);
    assert_eq!(reply["labelled_docs"], 10);

    // Curation runs as a job too, for admins only.
    let curate = |client: &Client| {
        rt.block_on(
            client
                .admin_client()
                .curate(tokenlake_schemas::proto::CurateRequest {
                    lake: "sample".into(),
                }),
        )
    };
    assert_eq!(curate(&reader).unwrap_err().code(), Code::PermissionDenied);
    let job = curate(&admin).unwrap().into_inner();
    assert_eq!(job.kind, "curate");
    let last = watch_to_end(&rt, &admin, &job.job_id);
    assert_eq!(last.state, "succeeded", "{}", last.message);
    assert_eq!(last.version, 4);
    assert_eq!(last.docs_done, last.docs_total);
    assert_eq!(last.docs_total, 320);
}

/// Follows a job with Admin.Watch; its last status.
fn watch_to_end(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    job_id: &str,
) -> tokenlake_schemas::proto::JobStatus {
    rt.block_on(async {
        let mut watch = client
            .admin_client()
            .watch(JobRequest {
                job_id: job_id.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(status) = watch.message().await.unwrap() {
            last = Some(status);
        }
        last.unwrap()
    })
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

mod needs_python {
use super::*;

#[test]
#[ignore = "needs TOKENLAKE_PYTHON with grpcio, numpy and pytest (tests/run.sh)"]
fn python_client_resumes_from_a_state_dict() {
    let python = required_env("TOKENLAKE_PYTHON", "a Python with grpcio, numpy and pytest");
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
    let client_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../client/python");
    let out = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&client_dir)
        .env("PYTHONPATH", &client_dir)
        .env("TOKENLAKE_TEST_SERVER", &server.url)
        .env("TOKENLAKE_TEST_RECIPE", &r)
        .env("TOKENLAKE_TEST_LAKE", "sample")
        .env("TOKENLAKE_TEST_EXPECTED", &expected)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{report}");
    assert!(report.contains("6 passed"), "{report}");
}
}

/// Makes a CA and a certificate for localhost signed by it with `openssl`; none without it.
fn test_certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let made = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tokenlake test CA",
            ],
        ]
        .concat(),
    ) && openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    ) && openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    made.then(|| {
        (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        )
    })
}

mod needs_openssl {
use super::*;

#[test]
#[ignore = "needs openssl to make test certificates (tests/run.sh runs it where openssl is)"]
fn tls_serves_clients_that_trust_its_ca_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path())
        .expect("this test needs openssl to make its certificates (tests/run.sh skips it without)");
    let lake = sample_lake(dir.path());
    let config = dir.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nopen = true\n[lakes]\nsample = {:?}\n[tls]\ncert = {:?}\nkey = {:?}\n",
            lake.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let mut child = tokenlake()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no https address in {first:?}"))
        .to_string();
    let url = format!("https://localhost:{port}");
    let r = ziya2();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "stream",
            r.to_str().unwrap(),
            "--server",
            &url,
            "--lake",
            "sample",
            "--steps",
            "2",
            "--checksums",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let trusted = tokenlake()
        .args(args(&["--ca-cert", ca.to_str().unwrap()]))
        .output()
        .unwrap();
    let untrusted = tokenlake().args(args(&[])).output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let local = run_ok(&[
        "stream",
        r.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--steps",
        "2",
        "--checksums",
    ]);
    assert_eq!(String::from_utf8(trusted.stdout).unwrap(), local);
    assert!(!untrusted.status.success());
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert!(err.contains("certificate"), "{err}");
}
}
