//! Running the binary, making inputs and reading lakes back independently of tokenlake's code.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt64Type};
use futures::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The value of `var`, which a `needs_*` test cannot run without: it fails, saying what it
/// needs, rather than pass without having run. `tests/run.sh` sets these where it can and
/// leaves the test out (counted as skipped) where it cannot.
pub fn required_env(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("this test needs {what}: set {var} (tests/run.sh does where it can, and skips the test where it cannot)")
    })
}

/// Runs the Python client's pytest files `tests` (relative to `client/python`) with the
/// installed package (`TOKENLAKE_PACKAGE_PYTHON`, a virtual environment tests/run.sh installs
/// it into), from a directory outside the source tree so that `import tokenlake` is the
/// installed package's; `envs` go to the tests.
pub fn pytest_installed(tests: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let python = required_env(
        "TOKENLAKE_PACKAGE_PYTHON",
        "the Python package installed with pytest in a virtual environment",
    );
    pytest_with(&python, tests, envs)
}

/// [`pytest_installed`] with the Python at `python`.
pub fn pytest_with(
    python: &str,
    tests: &[&str],
    envs: &[(&str, &std::ffi::OsStr)],
) -> std::process::Output {
    let client = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../client/python")
        .canonicalize()
        .unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .args(tests.iter().map(|t| client.join(t)))
        .current_dir(outside.path())
        .env_remove("PYTHONPATH");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// pytest's report of `out`, asserted to have passed `passed` tests and skipped none.
pub fn assert_pytest_passed(out: &std::process::Output, passed: usize) -> String {
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{report}");
    assert!(
        report.contains(&format!("{passed} passed")) && !report.contains("skipped"),
        "expected {passed} tests to pass and none skipped:\n{report}"
    );
    report
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

pub fn tokenizer() -> PathBuf {
    data_dir().join("tokenizer.json")
}

pub fn sample() -> PathBuf {
    data_dir().join("sample.jsonl.gz")
}

/// The sample's documents as JSON objects, in file order.
pub fn sample_docs() -> Vec<Value> {
    let file = std::fs::File::open(sample()).unwrap();
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

pub fn write_jsonl(path: &Path, docs: &[Value]) {
    let mut out = std::fs::File::create(path).unwrap();
    for d in docs {
        writeln!(out, "{d}").unwrap();
    }
}

pub fn write_jsonl_zst(path: &Path, docs: &[Value]) {
    let mut body = Vec::new();
    for d in docs {
        writeln!(body, "{d}").unwrap();
    }
    std::fs::write(path, zstd::encode_all(body.as_slice(), 3).unwrap()).unwrap();
}

pub fn tokenlake() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenlake"));
    cmd.env_remove("TOKENLAKE_LOG");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    tokenlake().args(args).output().unwrap()
}

/// Runs a command that must succeed and returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "tokenlake {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail and returns its stderr.
pub fn run_err(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "tokenlake {args:?} succeeded but should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

pub fn run_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&run_ok(&args)).unwrap()
}

/// Arguments of `tokenlake ingest LAKE INPUT --source SOURCE --tokenizer <test tokenizer>`,
/// followed by `extra`.
pub fn ingest_args(lake: &Path, input: &Path, source: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "ingest".into(),
        lake.to_str().unwrap().into(),
        input.to_str().unwrap().into(),
        "--source".into(),
        source.into(),
        "--tokenizer".into(),
        tokenizer().to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Borrows owned arguments for [`run`] and friends.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

pub fn ingest(lake: &Path, inputs: &[&Path]) -> Value {
    let tokenizer = tokenizer();
    let inputs: Vec<&str> = inputs.iter().map(|p| p.to_str().unwrap()).collect();
    let args = sample_ingest_args(lake.to_str().unwrap(), &inputs, tokenizer.to_str().unwrap());
    run_json(&args)
}

/// `ingest LAKE INPUT... --source sample --source-field source --tokenizer TOKENIZER`: the
/// sample's documents keep their own sources.
pub fn sample_ingest_args<'a>(
    lake: &'a str,
    inputs: &[&'a str],
    tokenizer: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["ingest", lake];
    args.extend_from_slice(inputs);
    args.extend([
        "--source",
        "sample",
        "--source-field",
        "source",
        "--tokenizer",
        tokenizer,
    ]);
    args
}

/// Token counts of `docs` by an independent tokenization with the `tokenizers` crate.
pub fn expected_tokens(docs: &[Value]) -> u64 {
    let tok = tokenizers::Tokenizer::from_file(tokenizer()).unwrap();
    docs.iter()
        .map(|d| {
            tok.encode(d["text"].as_str().unwrap(), false)
                .unwrap()
                .len() as u64
        })
        .sum()
}

/// What a reader sees in one version: rows, tokens, and a digest of (doc_id, tokens) in doc_id
/// order, read with the lance crate directly.
#[derive(Debug, PartialEq, Eq)]
pub struct Contents {
    pub rows: u64,
    pub tokens: u64,
    pub digest: String,
}

pub fn read_contents(lake: &Path, version: Option<u64>) -> Contents {
    contents_of(read_tokens(lake, version))
}

/// Every document's (doc_id, tokens) in one version, in scan order, read with the lance crate.
pub fn read_tokens(lake: &Path, version: Option<u64>) -> Vec<(u64, Vec<u16>)> {
    let mut docs = Vec::new();
    for b in scan(lake, version, &["doc_id", "tokens"]) {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let lists = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            let tokens = lists.value(i);
            docs.push((
                ids.value(i),
                tokens.as_primitive::<UInt16Type>().values().to_vec(),
            ));
        }
    }
    docs
}

/// `columns` of a version (the latest when `version` is `None`), read with the lance crate.
pub fn scan(lake: &Path, version: Option<u64>, columns: &[&str]) -> Vec<RecordBatch> {
    let uri = lake.join("documents.lance");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ds = lance::Dataset::open(uri.to_str().unwrap()).await.unwrap();
        if let Some(v) = version {
            ds = ds.checkout_version(v).await.unwrap();
        }
        let mut scan = ds.scan();
        scan.project(columns).unwrap();
        scan.try_into_stream()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    })
}

/// The digest both the Rust and the Python reader compute: SHA-256 over, for each document in
/// doc_id order, doc_id (u64 LE), token count (u64 LE) and the tokens (u16 LE).
pub fn contents_of(mut docs: Vec<(u64, Vec<u16>)>) -> Contents {
    docs.sort_by_key(|d| d.0);
    let mut h = Sha256::new();
    let mut tokens = 0u64;
    for (id, t) in &docs {
        h.update(id.to_le_bytes());
        h.update((t.len() as u64).to_le_bytes());
        for x in t {
            h.update(x.to_le_bytes());
        }
        tokens += t.len() as u64;
    }
    Contents {
        rows: docs.len() as u64,
        tokens,
        digest: hex::encode(h.finalize()),
    }
}

/// The shipped reference recipe.
pub fn ziya2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/recipes/ziya2.toml")
}

/// A lake of the committed sample under `dir`, its version tagged `quickstart` as the shipped
/// recipe expects.
pub fn sample_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    ingest(&lake, &[&sample()]);
    run_ok(&["tag", lake.to_str().unwrap(), "create", "quickstart"]);
    lake
}

/// `GET http://ADDR/PATH` over a plain TCP connection: the response head (status line and
/// headers) and the body, chunked transfer decoded.
pub fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    http_request(addr, "GET", path, "", None)
}

/// One HTTP/1.1 request to `addr` over a plain TCP connection, with `headers` (each line
/// ending in CRLF) and a JSON `body`: the response head and its body, chunked transfer
/// decoded.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&str>,
) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let body_lines = body
        .map(|b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )
        })
        .unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}{body_lines}Connection: \
         close\r\n\r\n{}",
        body.unwrap_or("")
    )
    .unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let body = &response[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        head,
        if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    )
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

/// A 3-gram language model (ARPA) of the sample's English prose, trained by `tokenlake lm
/// train` into `dir`; returns its path and what the trainer printed.
pub fn english_model(dir: &Path) -> (PathBuf, String) {
    let reference = dir.join("en.txt");
    let english: Vec<String> = sample_docs()
        .iter()
        .filter(|d| d["source"] == "en")
        .map(|d| d["text"].as_str().unwrap().to_string())
        .collect();
    std::fs::write(&reference, english.join("\n")).unwrap();
    let model = dir.join("en.arpa");
    let out = run_ok(&[
        "lm",
        "train",
        reference.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--order",
        "3",
    ]);
    (model, out)
}
