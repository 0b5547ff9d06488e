//! The co-located transport: batches through a shared-memory ring are byte for byte the
//! gRPC payload stream for the same plan, ranks and cursors; killing the client or the server
//! mid-stream leaves no shared-memory segment, and the resumed stream is exact; a client that
//! claims another host is refused, and no client gets a ring larger than the prefetch bound.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use tokenlake_client::recipe_source;
use tokenlake_schemas::proto::{
    ShmClientMessage, ShmOpen, StreamRequest, shm_client_message::Message,
};

use crate::serve::{Server, runtime};
use crate::support::*;

fn server(lake: &std::path::Path, shm: &std::path::Path, listen: &str) -> Server {
    server_with(lake, shm, listen, &[])
}

fn server_with(
    lake: &std::path::Path,
    shm: &std::path::Path,
    listen: &str,
    extra: &[&str],
) -> Server {
    let lake_arg = format!("sample={}", lake.display());
    let mut args = vec![
        "--open",
        "--listen",
        listen,
        "--lake",
        &lake_arg,
        "--shm-dir",
        shm.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start_with_env(&args, &[])
}

/// A server whose streams may hold `bytes` ahead of their clients (`limits.prefetch_bytes`),
/// its config written in `dir`.
fn server_with_prefetch(
    dir: &std::path::Path,
    lake: &std::path::Path,
    shm: &std::path::Path,
    bytes: u64,
) -> Server {
    let config = dir.join("serve.toml");
    std::fs::write(&config, format!("[limits]\nprefetch_bytes = {bytes}\n")).unwrap();
    server_with(
        lake,
        shm,
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    )
}

/// `tokenlake stream RECIPE --server URL --lake sample --transport TRANSPORT ARGS...`: its
/// standard output, after checking that it succeeded over the transport asked for.
fn stream_over(server: &Server, recipe: &str, transport: &str, args: &[&str]) -> Vec<u8> {
    let mut all = vec![
        "stream",
        recipe,
        "--server",
        server.url(),
        "--lake",
        "sample",
        "--transport",
        transport,
    ];
    all.extend_from_slice(args);
    let out = run(&all);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    let expected = if transport == "shm" {
        "over shared memory"
    } else {
        "over gRPC"
    };
    assert!(said.contains(expected), "{said}");
    out.stdout
}

/// The rings left in the server's shared-memory directory (each user's rings are in a private
/// directory of its own under it, which stays).
fn segments(shm: &std::path::Path) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir(shm).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            left.extend(segments(&path));
        } else {
            left.push(path.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    left
}

#[test]
fn shared_memory_and_grpc_payloads_stream_the_same_bytes_for_the_same_ranks_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    let server = server(&lake, &shm, "127.0.0.1:0");
    let recipe = ziya2();
    let r = recipe.to_str().unwrap();
    let stream = |transport: &str, rank: &str, cursor: Option<&str>, cursor_out: &str| {
        let mut args = vec![
            "--world",
            "2",
            "--rank",
            rank,
            "--micro-batch",
            "3",
            "--steps",
            "5",
            "--cursor-out",
            cursor_out,
        ];
        if let Some(c) = cursor {
            args.extend(["--cursor", c]);
        }
        let out = stream_over(&server, r, transport, &args);
        (out, std::fs::read_to_string(cursor_out).unwrap())
    };
    for rank in ["0", "1"] {
        let cursor_file = dir.path().join("cursor");
        let cursor_file = cursor_file.to_str().unwrap();
        let (grpc, grpc_cursor) = stream("grpc", rank, None, cursor_file);
        let (shm_out, shm_cursor) = stream("shm", rank, None, cursor_file);
        assert!(!grpc.is_empty());
        assert_eq!(shm_out, grpc, "rank {rank}: the first steps differ");
        assert_eq!(shm_cursor, grpc_cursor);
        // Resumed from the same cursor, both transports continue with the same bytes.
        let cursor = grpc_cursor.trim().to_string();
        let (grpc_rest, _) = stream("grpc", rank, Some(&cursor), cursor_file);
        let (shm_rest, _) = stream("shm", rank, Some(&cursor), cursor_file);
        assert_eq!(shm_rest, grpc_rest, "rank {rank}: the resumed steps differ");
        assert_ne!(shm_rest, shm_out);
    }
    assert!(segments(&shm).is_empty(), "{:?}", segments(&shm));
}

/// A slot keeps room for one span per 24 token bytes; documents of a few tokens make more
/// spans than that, and their batches' metadata travels in the announcement instead.
#[test]
fn batches_of_tiny_documents_whose_metadata_outgrows_the_slot_arrive_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tiny.jsonl");
    let words = ["a", "to", "of", "the", "and", "in", "is", "it"];
    let docs: Vec<serde_json::Value> = (0..400)
        .map(|i| serde_json::json!({"id": format!("t{i}"), "text": words[i % words.len()]}))
        .collect();
    write_jsonl(&input, &docs);
    let lake = dir.path().join("lake");
    run_ok(&strs(&ingest_args(&lake, &input, "tiny", &[])));
    let shm = dir.path().join("shm");
    let server = server(&lake, &shm, "127.0.0.1:0");
    let recipe = dir.path().join("tiny.toml");
    std::fs::write(
        &recipe,
        "seq_len = 63\nseed = 3\neos_token = 2\npad_token = 0\n\
         [components.tiny]\nfilter = \"source = 'tiny'\"\npacking = \"concat\"\n\
         [[stages]]\nname = \"one\"\nsamples = 40\nweights = { tiny = 1 }\n",
    )
    .unwrap();
    let r = recipe.to_str().unwrap();
    let stream = |transport: &str| stream_over(&server, r, transport, &["--micro-batch", "4"]);
    let (over_shm, over_grpc) = (stream("shm"), stream("grpc"));
    assert_eq!(over_shm, over_grpc);
    // The spans really are too many for a slot: 4 samples of 64 two-byte tokens leave room
    // for 512 / 48 = 10 spans.
    let lines: Vec<serde_json::Value> = String::from_utf8(over_shm)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    for batch in lines.chunks(4) {
        let spans: usize = batch
            .iter()
            .map(|s| s["spans"].as_array().unwrap().len())
            .sum();
        assert!(spans > 10, "{spans} spans fit a slot");
    }
    assert!(segments(&shm).is_empty(), "{:?}", segments(&shm));
}

#[test]
fn killing_the_client_or_the_server_mid_stream_leaves_no_segment_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    let recipe = ziya2();
    let (r, l) = (recipe.to_str().unwrap(), lake.to_str().unwrap());
    let local = run_ok(&["stream", r, "--lake", l]);
    let first = server(&lake, &shm, "127.0.0.1:0");
    let spawn_client = |url: &str| {
        tokenlake()
            .args([
                "stream",
                r,
                "--server",
                url,
                "--lake",
                "sample",
                "--transport",
                "shm",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // A client killed mid-stream (its output unread, so the server is blocked on it).
    let mut client = spawn_client(first.url());
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    client.kill().unwrap();
    client.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(segments(&shm).is_empty(), "{:?}", segments(&shm));

    // A server killed mid-stream: the client reconnects to its successor and delivers
    // exactly the rest.
    let addr = first.url().trim_start_matches("http://").to_string();
    let mut client = spawn_client(first.url());
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut received = String::new();
    for _ in 0..3 {
        out.read_line(&mut received).unwrap();
    }
    drop(first); // SIGKILL
    std::thread::sleep(Duration::from_millis(300));
    assert!(segments(&shm).is_empty(), "{:?}", segments(&shm));
    let _second = server(&lake, &shm, &addr);
    out.read_to_string(&mut received).unwrap();
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
        stderr.contains("reconnects") && stderr.contains("over shared memory"),
        "{stderr}"
    );
    assert_eq!(
        received.lines().count(),
        local.lines().count(),
        "lost or repeated samples"
    );
    assert!(
        received == local,
        "the resumed stream differs from the local one"
    );
    assert!(segments(&shm).is_empty(), "{:?}", segments(&shm));
}

#[test]
fn a_client_on_another_host_is_refused_and_a_ring_is_bounded_by_the_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    let server = server_with_prefetch(dir.path(), &lake, &shm, 40000);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let client = server.client(None);
    let recipe = std::fs::read_to_string(ziya2()).unwrap();
    let open = |slots: u32, host: String| ShmClientMessage {
        message: Some(Message::Open(ShmOpen {
            request: Some(StreamRequest {
                plan: Some(recipe_source(recipe.clone(), Some("sample".into()), None)),
                rank: 0,
                world: 1,
                micro_batch: 1,
                cursor: String::new(),
                max_steps: 0,
            }),
            slots,
            host,
        })),
    };
    let err = rt
        .block_on(async {
            client
                .stream_client()
                .shared_batches(futures::stream::iter([open(
                    4,
                    "another-boot-id/another-host".into(),
                )]))
                .await
        })
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("another host"), "{}", err.message());

    // On this host, a client gets the slots it asks for up to the server's prefetch byte bound
    // (plus the slot being written): the shared memory a stream holds is bounded as a gRPC
    // stream's buffers are. This server allows 40 000 bytes ahead; a batch is one sample.
    let Some(host) = tokenlake_ring::host_identity() else {
        return;
    };
    // A pod on the same node has its own host name and the same boot id: it is this host.
    let another_pod = rt.block_on(async {
        let mut s = client
            .stream_client()
            .shared_batches(futures::stream::iter([open(
                2,
                format!("{host}/another-pod-name"),
            )]))
            .await?
            .into_inner();
        s.message().await
    });
    assert!(
        matches!(
            another_pod,
            Ok(Some(tokenlake_schemas::proto::ShmServerMessage {
                message: Some(tokenlake_schemas::proto::shm_server_message::Message::Ring(
                    _
                ))
            }))
        ),
        "a client on this host with another host name was refused: {another_pod:?}"
    );
    let ring = rt.block_on(async {
        let mut incoming = client
            .stream_client()
            .shared_batches(futures::stream::iter([open(64, host)]))
            .await
            .unwrap()
            .into_inner();
        incoming.message().await.unwrap().unwrap()
    });
    let Some(tokenlake_schemas::proto::shm_server_message::Message::Ring(ring)) = ring.message
    else {
        panic!("the server did not announce a ring");
    };
    assert_eq!(
        u64::from(ring.slots),
        40_000 / ring.slot_bytes + 1,
        "limits.prefetch_bytes / batch bytes + 1 ({} bytes a batch)",
        ring.slot_bytes
    );
    assert!(ring.slots < 64);
    // That client went away without mapping its ring: the server removes it when it notices.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !segments(&shm).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "an unmapped ring stayed behind: {:?}",
            segments(&shm)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn batches_sent_to_a_gpu_carry_the_host_streams_checksums_and_fall_back_to_host_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    let server = server(&lake, &shm, "127.0.0.1:0");
    let recipe = ziya2();
    let r = recipe.to_str().unwrap();
    let batch_lines = |extra: &[&str]| {
        let mut args = vec![
            "stream",
            r,
            "--server",
            server.url(),
            "--lake",
            "sample",
            "--micro-batch",
            "3",
            "--steps",
            "6",
            "--batch-checksums",
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{said}");
        (String::from_utf8(out.stdout).unwrap(), said)
    };
    let (host, _) = batch_lines(&["--transport", "grpc"]);
    // On a machine without a GPU (CI) the batches stay on the host, and it says so; with one,
    // the checksums are computed on the device. Either way they are the host stream's.
    let (device, said) = batch_lines(&["--transport", "shm", "--device", "cuda"]);
    assert!(
        said.contains("no CUDA device here") || said.contains("checksums are computed there"),
        "{said}"
    );
    assert_eq!(device, host);

    // The checksums are the position-weighted sums of the local stream's batches.
    let out = run(&[
        "stream",
        r,
        "--lake",
        lake.to_str().unwrap(),
        "--micro-batch",
        "3",
        "--steps",
        "6",
    ]);
    assert!(out.status.success());
    let samples: Vec<Vec<u64>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap())
                .collect()
        })
        .collect();
    let expected: String = samples
        .chunks(3)
        .enumerate()
        .map(|(step, batch)| {
            let sum = batch.iter().flatten().enumerate().fold(0u64, |s, (i, id)| {
                s.wrapping_add(id.wrapping_mul(i as u64 + 1))
            });
            format!("{step}\t{}\t{sum:016x}\n", batch.len())
        })
        .collect();
    assert_eq!(host, expected);
    assert_eq!(host.lines().count(), 6);

    let out = run(&[
        "stream",
        r,
        "--server",
        server.url(),
        "--lake",
        "sample",
        "--batch-checksums",
        "--device",
        "gpu0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give cuda or cuda:N"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Releases are gathered before they go back, but a batch a trainer drops while its stream
/// waits for the server goes back at once: the server may be waiting for exactly that slot.
#[test]
fn a_batch_dropped_while_the_client_waits_frees_the_stream_that_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let shm = dir.path().join("shm");
    // A prefetch bound below one batch leaves the smallest ring, of two slots.
    let server = server_with_prefetch(dir.path(), &lake, &shm, 1000);
    let rt = runtime();
    let client = {
        let _in_runtime = rt.enter();
        server.client(None)
    };
    let recipe = std::fs::read_to_string(ziya2()).unwrap();
    let request = StreamRequest {
        plan: Some(recipe_source(recipe, Some("sample".into()), None)),
        rank: 0,
        world: 1,
        micro_batch: 1,
        cursor: String::new(),
        max_steps: 6,
    };
    rt.block_on(async {
        let mut stream = client.stream_with(request, tokenlake_client::Transport::Shm);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(stream.next().await.unwrap().unwrap());
        }
        assert_eq!(stream.transport(), tokenlake_client::Transport::Shm);
        // Every slot is held: the next batch waits until one is dropped, while waiting.
        let dropper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let third = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the dropped batches went back")
            .unwrap()
            .unwrap();
        assert_eq!(third.step, 2);
        drop(third);
        dropper.await.unwrap();
        let mut rest = 0;
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the stream goes on")
            .unwrap()
        {
            drop(batch);
            rest += 1;
        }
        assert_eq!(rest, 3);
    });
}
