//! Lakes in object storage, against a real S3 server on loopback (s3s-fs, installed by
//! tests/run.sh; its path comes in `TOKENLAKE_S3S_FS`): ingest from an `s3://` input pattern
//! into an `s3://` lake, curate, tag, query and stream with the same checksums as the same data
//! in a local lake; two concurrent ingests; a server stopped in the middle of an ingest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Server, free_port, runtime};
use crate::serve_query::query;
use crate::support::*;

const ACCESS_KEY: &str = "tokenlake-test";
const SECRET_KEY: &str = "tokenlake-test-secret-do-not-log";

/// An s3s-fs process serving `root` on a loopback port, killed when dropped.
struct S3Server {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
}

impl S3Server {
    /// Starts a server, or `None` (with a note) where s3s-fs is not installed.
    fn start(root: &Path) -> Option<S3Server> {
        let binary = s3s_fs_binary()?;
        let mut server = S3Server {
            child: None,
            port: free_port(),
            root: root.to_path_buf(),
        };
        server.spawn(&binary);
        Some(server)
    }

    fn spawn(&mut self, binary: &Path) {
        std::fs::create_dir_all(&self.root).unwrap();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn(&s3s_fs_binary().unwrap());
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The standard AWS environment for this server, as a training node would have it.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            // No profile files of the machine running the tests.
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ]
    }

    fn run(&self, args: &[&str]) -> Output {
        tokenlake().args(args).envs(self.env()).output().unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tokenlake {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn run_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.run_ok(&args)).unwrap()
    }

    /// Puts a local file at `uri` through the S3 API.
    fn put(&self, local: &Path, uri: &str) {
        let out = self.run(&["init", uri.rsplit_once('/').unwrap().0]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rt = runtime();
        rt.block_on(async {
            let target = tokenlake_storage::StorageUri::parse(uri).unwrap();
            let options = tokenlake_storage::StorageOptions::from_pairs(&[
                format!("endpoint={}", self.endpoint()),
                "allow_http=true".into(),
                format!("access_key_id={ACCESS_KEY}"),
                format!("secret_access_key={SECRET_KEY}"),
                "region=us-east-1".into(),
            ])
            .unwrap();
            tokenlake_storage::ObjectStorage::for_uri(&target, &options)
                .unwrap()
                .upload_file(local, &target)
                .await
                .unwrap();
        });
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn s3s_fs_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOKENLAKE_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.is_file())
    })
}

/// The sample split in two zstd JSON-lines files under `dir`.
fn sample_parts(dir: &Path) -> [PathBuf; 2] {
    let docs = sample_docs();
    let (a, b) = docs.split_at(docs.len() / 2);
    let parts = [dir.join("part-0.jsonl.zst"), dir.join("part-1.jsonl.zst")];
    write_jsonl_zst(&parts[0], a);
    write_jsonl_zst(&parts[1], b);
    parts
}

/// A running S3 server, the sample in two parts and the test tokenizer, in a fresh directory.
struct Fixture {
    dir: tempfile::TempDir,
    s3: S3Server,
    tokenizer: String,
    parts: [PathBuf; 2],
}

impl Fixture {
    /// Fails, saying so, where s3s-fs is not installed (tests/run.sh skips these tests there).
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start(&dir.path().join("s3"))
            .expect("these tests need s3s-fs: set TOKENLAKE_S3S_FS or put it on PATH");
        let parts = sample_parts(dir.path());
        Fixture {
            dir,
            s3,
            tokenizer: tokenizer().to_str().unwrap().to_string(),
            parts,
        }
    }
}

mod needs_s3s_fs {
    use super::*;

    #[test]
    #[ignore = "needs s3s-fs, the S3 server the tests run against (tests/run.sh installs it)"]
    // Kept as one test: the nodes read the store the steps before them published.
    fn a_node_streams_a_token_store_through_a_window_a_tenth_of_its_size() {
        let f = Fixture::new();
        let (dir, s3, tokenizer, parts) = (&f.dir, &f.s3, f.tokenizer.as_str(), &f.parts);
        s3.run_json(&["init", "s3://lakes/web"]);
        s3.put(&parts[0], "s3://raw/cc/part-0.jsonl.zst");
        s3.put(&parts[1], "s3://raw/cc/part-1.jsonl.zst");
        s3.run_json(&sample_ingest_args(
            "s3://lakes/web",
            &["s3://raw/cc/*.jsonl.zst"],
            tokenizer,
        ));
        s3.run_ok(&["tag", "s3://lakes/web", "create", "quickstart"]);
        let recipe = ziya2();
        let recipe = recipe.to_str().unwrap();
        let cache = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let stream = |cache: &str, mode: &[&str]| {
            let mut args = vec![
                "stream",
                recipe,
                "--lake",
                "s3://lakes/web",
                "--cache-dir",
                cache,
                "--world",
                "4",
                "--rank",
                "2",
                "--micro-batch",
                "2",
                "--steps",
                "30",
                "--checksums",
            ];
            args.extend_from_slice(mode);
            s3.run(&args)
        };

        // Before the store is published, window mode says what to do.
        let refused = stream(&cache("early"), &["--cache-mode", "window"]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("no token store") && stderr.contains("tokenlake materialise"),
            "{stderr}"
        );

        let published = s3.run_json(&[
            "materialise",
            recipe,
            "--lake",
            "s3://lakes/web",
            "--cache-dir",
            &cache("builder"),
            "--chunk-mib",
            "1",
        ]);
        let bytes = published["bytes"].as_u64().unwrap();
        assert!(
            published["store"]
                .as_str()
                .unwrap()
                .starts_with("s3://lakes/web/token-stores/"),
            "{published}"
        );
        assert!(published["chunks"].as_u64().unwrap() >= 1);

        let full = stream(&cache("full"), &["--cache-mode", "full"]);
        assert!(
            full.status.success(),
            "{}",
            String::from_utf8_lossy(&full.stderr)
        );
        let full = String::from_utf8(full.stdout).unwrap();
        assert_eq!(full.lines().count(), 60);

        // A tenth of the selection's tokens as the bound.
        let bound = bytes as f64 / 10.0;
        let mib = format!("{}", bound / f64::from(1u32 << 20));
        let node = cache("node");
        let windowed = stream(&node, &["--cache-mode", "window", "--window-max-mib", &mib]);
        let stderr = String::from_utf8_lossy(&windowed.stderr).to_string();
        assert!(windowed.status.success(), "{stderr}");
        assert_eq!(
            String::from_utf8(windowed.stdout).unwrap(),
            full,
            "the window streams the full cache's bytes"
        );
        assert!(
            stderr.contains("window: ") && stderr.contains("GETs"),
            "{stderr}"
        );
        // The node had no plan index: it read the published one page by page.
        assert!(stderr.contains("plan index: read page by page"), "{stderr}");
        let high_water: f64 = stderr
            .split("high water ")
            .nth(1)
            .and_then(|s| s.split(" MB").next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no high water in {stderr}"));
        assert!(
            high_water * 1e6 <= bound + 0.05e6,
            "high water {high_water} MB over the bound {bound} B"
        );

        // The node holds the plan index and nothing of the tokens.
        let on_disk = walk_files(Path::new(&node));
        let index: u64 = on_disk
            .iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n == "plan.idx"))
            .map(|(_, n)| n)
            .sum();
        let total: u64 = on_disk.iter().map(|(_, n)| n).sum();
        assert!(index > 0, "the plan index was downloaded: {on_disk:?}");
        assert!(total <= index + 64 * 1024, "{on_disk:?}");
        assert!(
            !Path::new(&node).join("tokens").exists(),
            "no token cache on the node"
        );

        // Auto mode keeps a full cache when the store fits the bound, and reads the store
        // through a window when it does not.
        let auto = stream(&cache("auto"), &["--cache-max-gib", "0.000001"]);
        assert!(auto.status.success());
        assert_eq!(String::from_utf8(auto.stdout).unwrap(), full);
        assert!(String::from_utf8_lossy(&auto.stderr).contains("window: "));
        let auto_full = stream(&cache("auto-full"), &[]);
        assert_eq!(String::from_utf8(auto_full.stdout).unwrap(), full);
        assert!(!String::from_utf8_lossy(&auto_full.stderr).contains("window: "));

        // Random worlds, ranks, micro-batches, cursors, horizons and bounds: the window's
        // stream is the full cache's.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for case in 0..6 {
            let world = 1 + next(8);
            let rank = next(world);
            let micro_batch = 1 + next(4);
            let cut = next(200);
            let horizon = ["1", "7", "unbounded", "2s"][next(4) as usize];
            let mib = format!("{}", (1 + next(64)) as f64 * 4096.0 / f64::from(1u32 << 20));
            let cursor_file = dir.path().join(format!("cursor-{case}"));
            let (world, rank, micro_batch, cut) = (
                world.to_string(),
                rank.to_string(),
                micro_batch.to_string(),
                cut.max(1).to_string(),
            );
            s3.run_ok(&[
                "stream",
                recipe,
                "--lake",
                "s3://lakes/web",
                "--cache-dir",
                &cache("full"),
                "--micro-batch",
                &cut,
                "--steps",
                "1",
                "--checksums",
                "--cursor-out",
                cursor_file.to_str().unwrap(),
            ]);
            let cursor = std::fs::read_to_string(&cursor_file).unwrap();
            let run = |cache: &str, mode: &[&str]| {
                let mut args = vec![
                    "stream",
                    recipe,
                    "--lake",
                    "s3://lakes/web",
                    "--cache-dir",
                    cache,
                    "--world",
                    &world,
                    "--rank",
                    &rank,
                    "--micro-batch",
                    &micro_batch,
                    "--steps",
                    "8",
                    "--checksums",
                    "--cursor",
                    cursor.trim(),
                ];
                args.extend_from_slice(mode);
                s3.run_ok(&args)
            };
            let expected = run(&cache("full"), &["--cache-mode", "full"]);
            let got = run(
                &cache(&format!("case-{case}")),
                &[
                    "--cache-mode",
                    "window",
                    "--window-max-mib",
                    &mib,
                    "--window-horizon",
                    horizon,
                ],
            );
            assert_eq!(
                got, expected,
                "world {world} rank {rank} micro-batch {micro_batch} from sample {cut}, horizon {horizon}, bound {mib} MiB"
            );
        }
    }

    /// Every file under `dir` with its size.
    fn walk_files(dir: &Path) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push((path.clone(), entry.metadata().unwrap().len()));
            }
        }
        out
    }

    #[test]
    #[ignore = "needs s3s-fs, the S3 server the tests run against (tests/run.sh installs it)"]
    // Kept as one test: each step runs on the lake the steps before it made, as a user's session
    // would.
    fn an_s3_lake_ingests_curates_tags_queries_and_streams_like_a_local_one() {
        let f = Fixture::new();
        let (dir, s3, tokenizer, parts) = (&f.dir, &f.s3, f.tokenizer.as_str(), &f.parts);

        // init creates the bucket, proves the lake can be written, and is safe to repeat.
        let init = s3.run_json(&["init", "s3://lakes/web"]);
        assert_eq!(init["bucket"], "created", "{init}");
        assert_eq!(init["existing_lake"], false);
        assert_eq!(
            s3.run_json(&["init", "s3://lakes/web"])["bucket"],
            "existed"
        );

        s3.put(&parts[0], "s3://raw/cc/part-0.jsonl.zst");
        s3.put(&parts[1], "s3://raw/cc/part-1.jsonl.zst");
        s3.put(Path::new(tokenizer), "s3://raw/cc/notes.json"); // not matched by the pattern

        let remote = s3.run_json(&sample_ingest_args(
            "s3://lakes/web",
            &["s3://raw/cc/*.jsonl.zst"],
            tokenizer,
        ));
        assert_eq!(remote["version"], 1, "{remote}");
        let local_lake = dir.path().join("local");
        let local_lake = local_lake.to_str().unwrap();
        let local = run_json(&sample_ingest_args(
            local_lake,
            &[parts[0].to_str().unwrap(), parts[1].to_str().unwrap()],
            tokenizer,
        ));
        for key in ["docs_written", "tokens_written", "docs_rejected"] {
            assert_eq!(remote[key], local[key], "{key}: {remote} vs {local}");
        }
        // The commit records where the inputs came from.
        let versions = s3.run_json(&["versions", "s3://lakes/web"]);
        let inputs = versions[0]["properties"]["tokenlake.inputs"]
            .as_str()
            .unwrap();
        assert_eq!(
            inputs,
            "s3://raw/cc/part-0.jsonl.zst\ns3://raw/cc/part-1.jsonl.zst"
        );

        // Curate and tag both; their labels must agree.
        s3.run_ok(&["curate", "s3://lakes/web"]);
        run_ok(&["curate", local_lake]);
        s3.run_ok(&["tag", "s3://lakes/web", "create", "quickstart"]);
        run_ok(&["tag", local_lake, "create", "quickstart"]);
        let describe = |out: Value| {
            let mut v = out;
            v.as_object_mut().unwrap().remove("lake");
            v
        };
        assert_eq!(
            describe(s3.run_json(&["describe", "s3://lakes/web", "--tag", "quickstart"])),
            describe(run_json(&["describe", local_lake, "--tag", "quickstart"]))
        );

        // Streams over the S3 lake (through a local token cache) equal the local lake's.
        let recipe = ziya2();
        let stream = |lake: &str, cache: &Path, run: &dyn Fn(&[&str]) -> String| {
            run(&[
                "stream",
                recipe.to_str().unwrap(),
                "--lake",
                lake,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--world",
                "2",
                "--rank",
                "1",
                "--micro-batch",
                "2",
                "--steps",
                "6",
                "--checksums",
            ])
        };
        let cache = dir.path().join("node-cache");
        let from_s3 = stream("s3://lakes/web", &cache, &|a| s3.run_ok(a));
        let from_local = stream(local_lake, &dir.path().join("local-cache"), &|a| run_ok(a));
        assert_eq!(from_s3.lines().count(), 12);
        assert_eq!(from_s3, from_local);

        // A warm cache reads no tokens from the server: stopped, the stream is the same (the plan
        // still resolves the version, so that part needs the server; the tokens do not).
        let again = stream("s3://lakes/web", &cache, &|a| s3.run_ok(a));
        assert_eq!(again, from_s3);
        let damaged = std::fs::read_dir(cache.join("tokens"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("tokens.bin").is_file())
            .unwrap();
        // A damaged cache is found by its checksums and filled again from the lake.
        let tokens_bin = damaged.join("tokens.bin");
        let original = std::fs::read(&tokens_bin).unwrap();
        let mut bytes = original.clone();
        bytes[0] ^= 0xff;
        std::fs::write(&tokens_bin, bytes).unwrap();
        assert_eq!(stream("s3://lakes/web", &cache, &|a| s3.run_ok(a)), from_s3);
        assert!(
            std::fs::read(&tokens_bin).unwrap() == original,
            "the damaged cache was filled again"
        );

        // Eight ranks of a node starting at once share one fill of a fresh cache: one process
        // fills it while the others wait, and all open the same plan.
        let shared = dir.path().join("shared-cache");
        let ranks: Vec<_> = (0..8)
            .map(|_| {
                tokenlake()
                    .args(["plan", recipe.to_str().unwrap(), "--lake", "s3://lakes/web"])
                    .args(["--cache-dir", shared.to_str().unwrap(), "--json"])
                    .envs(s3.env())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let plan_dirs: Vec<String> = ranks
            .into_iter()
            .map(|rank| {
                let out = rank.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                report["plan_dir"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(
            plan_dirs.iter().all(|d| d == &plan_dirs[0]),
            "{plan_dirs:?}"
        );
        let entries: Vec<String> = std::fs::read_dir(shared.join("tokens"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".lock"))
            .collect();
        assert_eq!(entries.len(), 1, "one cache, no leftovers: {entries:?}");

        // The benchmark counts what a node reads: filling the cache reads the tokens; a warm start
        // reads only the version's manifest, whatever the size of the selection.
        let bench = s3.run_json(&[
            "bench",
            "stream",
            "--recipe",
            recipe.to_str().unwrap(),
            "--lake",
            "s3://lakes/web",
            "--samples",
            "40",
            "--micro-batch",
            "4",
            "--dir",
            dir.path().to_str().unwrap(),
        ]);
        let (cold, warm) = (&bench["cold"], &bench["warm"]);
        assert_eq!(cold["tokens"], warm["tokens"], "{bench}");
        assert_eq!(cold["tokens"], 40 * 4097, "{bench}");
        let cold_bytes = cold["requests"]["get_bytes"].as_u64().unwrap();
        let warm_bytes = warm["requests"]["get_bytes"].as_u64().unwrap();
        let stored_tokens = described_tokens(&s3.run_json(&["describe", "s3://lakes/web"]));
        assert!(
            cold_bytes > stored_tokens / 2,
            "a cold start reads the selected tokens: {bench}"
        );
        assert!(
            warm_bytes * 20 < cold_bytes,
            "a warm start reads almost nothing: {bench}"
        );
        assert!(cold["gets_per_million_tokens"].as_f64().unwrap() > 0.0);

        // SQL through the server, over the S3 lake, against the same query on the local lake.
        let sql = "SELECT source, COUNT(*) AS docs, SUM(n_tokens) AS tokens FROM documents \
               GROUP BY source ORDER BY source";
        let answer = |lake: &str, env: &[(&str, String)]| {
            let lake_arg = format!("sample={lake}");
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let server = Server::start_with_env(
                &["--open", "--listen", "127.0.0.1:0", "--lake", &lake_arg],
                &env,
            );
            let rt = runtime();
            let _in_runtime = rt.enter();
            let client = server.client(None);
            let (batches, _) = query(&rt, &client, "quickstart", sql, 0).unwrap();
            rows_of(&batches)
        };
        let over_s3 = answer("s3://lakes/web", &s3.env());
        assert!(!over_s3.is_empty());
        assert_eq!(over_s3, answer(local_lake, &[]));

        // A presigned URL serves the lake's saved tokenizer to anyone holding it.
        let described = s3.run_json(&["describe", "s3://lakes/web"]);
        let sha = described["tokenizer_sha256"].as_str().unwrap();
        let object = format!("s3://lakes/web/tokenizers/{sha}.json");
        let url = s3.run_ok(&["presign", &object, "--expires", "10m"]);
        let body = http_get_url(url.trim());
        assert_eq!(body, std::fs::read(tokenizer).unwrap());
        assert!(
            !String::from_utf8_lossy(&s3.run(&["presign", "s3://lakes/web/missing.json"]).stderr)
                .is_empty()
        );
    }

    /// Tokens of a `describe --json`.
    fn described_tokens(described: &Value) -> u64 {
        described["tokens"].as_u64().unwrap()
    }

    /// Every row as its cells' display strings.
    fn rows_of(batches: &[arrow_array::RecordBatch]) -> Vec<Vec<String>> {
        use arrow_cast::display::{ArrayFormatter, FormatOptions};
        let mut rows = Vec::new();
        for batch in batches {
            let formatters: Vec<ArrayFormatter> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
                .collect();
            for r in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        rows
    }

    /// The body of a plain-HTTP GET of `url` (a presigned URL of the loopback server).
    fn http_get_url(url: &str) -> Vec<u8> {
        let (host, path) = url
            .strip_prefix("http://")
            .unwrap()
            .split_once('/')
            .unwrap();
        let (head, body) = http_get(host, &format!("/{path}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body
    }

    #[test]
    #[ignore = "needs s3s-fs, the S3 server the tests run against (tests/run.sh installs it)"]
    fn two_concurrent_ingests_of_overlapping_inputs_into_one_s3_lake_leave_each_doc_id_once() {
        let f = Fixture::new();
        let (dir, s3, tokenizer) = (&f.dir, &f.s3, f.tokenizer.as_str());
        // Two inputs that share a third of their documents.
        let all = sample_docs();
        let parts = [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
        write_jsonl(&parts[0], &all[..all.len() * 2 / 3]);
        write_jsonl(&parts[1], &all[all.len() / 3..]);
        s3.run_ok(&["init", "s3://lakes/shared"]);
        // A first version, then two writers at once, each with its own documents.
        let extra = dir.path().join("extra.jsonl");
        let docs: Vec<Value> = (0..40)
        .map(|i| serde_json::json!({"id": format!("extra-{i}"), "text": format!("extra document number {i} about lakes"), "source": "extra"}))
        .collect();
        write_jsonl(&extra, &docs);
        s3.run_ok(&sample_ingest_args(
            "s3://lakes/shared",
            &[extra.to_str().unwrap()],
            tokenizer,
        ));

        let spawn = |input: &Path| {
            tokenlake()
                .args(sample_ingest_args(
                    "s3://lakes/shared",
                    &[input.to_str().unwrap()],
                    tokenizer,
                ))
                .arg("--json")
                .envs(s3.env())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(&parts[0]), spawn(&parts[1]));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for out in [&a, &b] {
            assert!(
                out.status.success(),
                "a concurrent ingest failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let summary = |out: &Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
        let mut committed = [
            summary(&a)["version"].as_u64().unwrap(),
            summary(&b)["version"].as_u64().unwrap(),
        ];
        committed.sort();
        assert_eq!(committed, [2, 3], "each writer commits its own version");

        let expected = 40 + sample_docs().len() as u64;
        let versions = s3.run_json(&["versions", "s3://lakes/shared"]);
        assert_eq!(versions.as_array().unwrap().len(), 3);
        assert_eq!(versions[2]["rows"], expected, "{versions}");
        let described = s3.run_json(&["describe", "s3://lakes/shared"]);
        assert_eq!(described["rows"], expected, "{described}");
        let counted: Value = serde_json::from_str(
            s3.run_ok(&[
                "query",
                "s3://lakes/shared",
                "SELECT COUNT(*) AS n, COUNT(DISTINCT doc_id) AS ids FROM documents",
                "--format",
                "json",
            ])
            .trim(),
        )
        .unwrap();
        assert_eq!(counted["n"].as_u64(), Some(expected), "{counted}");
        assert_eq!(
            counted["ids"], counted["n"],
            "a doc_id is there twice: {counted}"
        );
    }

    #[test]
    #[ignore = "needs s3s-fs, the S3 server the tests run against (tests/run.sh installs it)"]
    fn an_s3_server_stopped_mid_ingest_leaves_the_previous_version_and_a_clear_error() {
        let mut f = Fixture::new();
        let (dir, tokenizer, parts) = (&f.dir, f.tokenizer.clone(), f.parts.clone());
        let (tokenizer, s3) = (tokenizer.as_str(), &mut f.s3);
        s3.run_ok(&["init", "s3://lakes/fragile"]);
        s3.run_ok(&sample_ingest_args(
            "s3://lakes/fragile",
            &[parts[0].to_str().unwrap()],
            tokenizer,
        ));

        // A larger second ingest (tens of MB of tokens and text), which Lance uploads in parts, so
        // the server can be stopped while the new version's data is being written.
        let big = dir.path().join("big.jsonl");
        let docs: Vec<Value> = sample_docs()
            .iter()
            .cycle()
            .take(8000)
            .enumerate()
            .map(|(i, d)| {
                let mut d = d.clone();
                d["id"] = format!("big-{i}").into();
                d
            })
            .collect();
        write_jsonl(&big, &docs);
        let data_dir = s3.root.join("lakes/fragile/documents.lance/data");
        let files_before = std::fs::read_dir(&data_dir).unwrap().count();
        let mut child = tokenlake()
            .args(sample_ingest_args(
                "s3://lakes/fragile",
                &[big.to_str().unwrap()],
                tokenizer,
            ))
            .args([
                "--storage-option",
                "client_max_retries=1",
                "--storage-option",
                "client_retry_timeout=3",
            ])
            .envs(s3.env())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Stop the server as soon as the new version's data is being written: a multipart upload
        // is open (s3s-fs keeps `.upload-<id>.json` at its root while one is) or a data file is in.
        let deadline = Instant::now() + Duration::from_secs(180);
        let uploading = || {
            std::fs::read_dir(&s3.root).unwrap().flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".upload-") && name.ends_with(".json")
            })
        };
        loop {
            let files = std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0);
            if files > files_before || uploading() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the ingest ended ({status}) before the server could be stopped");
            }
            assert!(Instant::now() < deadline, "the ingest wrote no data file");
            std::thread::sleep(Duration::from_millis(5));
        }
        s3.stop();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the ingest succeeded without its server"
        );
        assert!(
            stderr.contains("s3://lakes/fragile") && stderr.contains("error"),
            "the error names the lake: {stderr}"
        );
        assert!(
            !stderr.contains(SECRET_KEY),
            "a secret reached the output: {stderr}"
        );

        // Back up: the lake is at its previous version, whole, and takes the next ingest.
        s3.restart();
        let versions = s3.run_json(&["versions", "s3://lakes/fragile"]);
        assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
        let half = (sample_docs().len() / 2) as u64;
        assert_eq!(
            s3.run_json(&["describe", "s3://lakes/fragile"])["rows"],
            half
        );
        let next = s3.run_json(&sample_ingest_args(
            "s3://lakes/fragile",
            &[parts[1].to_str().unwrap()],
            tokenizer,
        ));
        assert_eq!(next["version"], 2, "{next}");
    }

    #[test]
    #[ignore = "needs s3s-fs, the S3 server the tests run against (tests/run.sh installs it)"]
    // Kept as one test: each round runs on the index the rounds before it published.
    fn an_s3_lakes_dedup_index_is_published_reused_and_worked_on_in_a_shared_directory() {
        let f = Fixture::new();
        let (dir, s3, tokenizer, parts) = (&f.dir, &f.s3, f.tokenizer.as_str(), &f.parts);
        s3.run_json(&["init", "s3://lakes/dd"]);
        let local = dir.path().join("local");
        let local = local.to_str().unwrap();
        let dup_columns = |lake: &str, run: &dyn Fn(&[&str]) -> String| {
            run(&[
                "query",
                lake,
                "SELECT doc_id, dup_cluster, is_dup, dup_kind FROM documents ORDER BY doc_id",
                "--format",
                "csv",
            ])
        };

        // Round one: half the sample, curated; the index is published in the lake.
        let part = |i: usize| parts[i].to_str().unwrap().to_string();
        s3.run_json(&sample_ingest_args("s3://lakes/dd", &[&part(0)], tokenizer));
        run_json(&sample_ingest_args(local, &[&part(0)], tokenizer));
        let first = s3.run_json(&["curate", "s3://lakes/dd"]);
        run_json(&["curate", local]);
        let published = dir.path().join("s3/lakes/dd/curation/dedup");
        assert!(published.join("manifest.json").is_file());
        assert!(
            !published.join("pending").exists() && !published.join("step").exists(),
            "working files stay out of the lake"
        );

        // Round two: the other half. Only the new documents are read, checked against the
        // published index, and the labels are the local lake's.
        s3.run_json(&sample_ingest_args("s3://lakes/dd", &[&part(1)], tokenizer));
        run_json(&sample_ingest_args(local, &[&part(1)], tokenizer));
        let second = s3.run_json(&["curate", "s3://lakes/dd"]);
        run_json(&["curate", local]);
        assert_eq!(second["reused"], first["docs"], "{second}");
        assert_eq!(
            second["labelled"].as_u64().unwrap(),
            second["docs"].as_u64().unwrap() - first["docs"].as_u64().unwrap()
        );
        assert!(second["duplicates"].as_u64().unwrap() > 0, "{second}");
        assert_eq!(
            dup_columns("s3://lakes/dd", &|a| s3.run_ok(a)),
            dup_columns(local, &|a| run_ok(a))
        );

        // Round three: a sharded ingest whose de-duplication runs in steps in a working
        // directory that a scheduler's tasks share; the commit runs what is left.
        let docs = sample_docs();
        let again: Vec<Value> = docs[..60]
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d["id"] = serde_json::json!(format!("{}-r3", d["id"].as_str().unwrap()));
                d
            })
            .collect();
        let files = [dir.path().join("r3-a.jsonl"), dir.path().join("r3-b.jsonl")];
        write_jsonl(&files[0], &again[..30]);
        write_jsonl(&files[1], &again[30..]);
        let pipeline = dir.path().join("pipeline.toml");
        std::fs::write(&pipeline, "").unwrap();
        let p = pipeline.to_str().unwrap();
        let inputs = [files[0].to_str().unwrap(), files[1].to_str().unwrap()];
        for shard in ["0/2", "1/2"] {
            let mut args = sample_ingest_args("s3://lakes/dd", &inputs, tokenizer);
            args.extend(["--shard", shard, "--pipeline", p]);
            s3.run_ok(&args);
        }
        let work = dir.path().join("shared-work");
        let w = work.to_str().unwrap();
        let prepared = s3.run_json(&[
            "dedup",
            "prepare",
            "s3://lakes/dd",
            "--pipeline",
            p,
            "--dedup-work",
            w,
        ]);
        assert_eq!(prepared["prepared_only"], true, "{prepared}");
        run_ok(&["dedup", "candidates", w, "--partition", "0-39/64"]);
        let status = run_json(&["dedup", "status", w]);
        assert_eq!(status["pending_rows"], 60, "{status}");
        assert_eq!(status["missing"].as_array().unwrap().len(), 24);
        let out = s3.run_json(&[
            "commit",
            "s3://lakes/dd",
            "--pipeline",
            p,
            "--dedup-work",
            w,
        ]);
        assert_eq!(out["dedup_tasks_run"], 24, "{out}");
        assert!(
            out["duplicates"].as_u64().unwrap() >= 60,
            "the copies are found: {out}"
        );
        let mut single = sample_ingest_args(local, &inputs, tokenizer);
        single.extend(["--pipeline", p]);
        run_ok(&single);
        assert_eq!(
            dup_columns("s3://lakes/dd", &|a| s3.run_ok(a)),
            dup_columns(local, &|a| run_ok(a))
        );
        // The published index covers every document, and the next curation starts from it.
        let next = s3.run_json(&["curate", "s3://lakes/dd"]);
        assert_eq!(next["labelled"], 0, "{next}");
    }

    mod needs_python_package {
        use super::*;

        /// `tokenlake.Lake` and an in-process `Dataset` over an `s3://` lake, with storage
        /// options and no AWS environment, read as the local copy of the same data does
        /// (client/python/tests/test_s3_lake.py, with the installed package).
        #[test]
        #[ignore = "needs s3s-fs and TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
        fn the_python_lake_and_dataset_read_an_s3_lake_as_a_local_one() {
            let f = Fixture::new();
            let (dir, s3, tokenizer) = (&f.dir, &f.s3, f.tokenizer.as_str());
            let sample = sample();
            let input = sample.to_str().unwrap();
            s3.run_ok(&["init", "s3://lakes/py"]);
            s3.run_json(&sample_ingest_args("s3://lakes/py", &[input], tokenizer));
            s3.run_ok(&["tag", "s3://lakes/py", "create", "quickstart"]);
            let local = sample_lake(dir.path());
            let options = serde_json::json!({
                "endpoint": s3.endpoint(),
                "region": "us-east-1",
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "allow_http": "true",
            })
            .to_string();
            let out = pytest_installed(
                &["tests/test_s3_lake.py"],
                &[
                    ("TOKENLAKE_TEST_S3_LAKE", "s3://lakes/py".as_ref()),
                    ("TOKENLAKE_TEST_LAKE_PATH", local.as_os_str()),
                    ("TOKENLAKE_TEST_S3_OPTIONS", options.as_ref()),
                    ("TOKENLAKE_TEST_RECIPE", ziya2().as_os_str()),
                    // Nothing of the machine's own: the options are all the package has.
                    ("AWS_CONFIG_FILE", "/dev/null".as_ref()),
                    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".as_ref()),
                ],
            );
            assert_pytest_passed(&out, 4);
        }
    }
}
