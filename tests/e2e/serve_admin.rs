//! The Admin service: roles gate writes; ingest and curate jobs report progress to the end.

use std::path::Path;

use serde_json::Value;
use tokenlake_client::Client;
use tokenlake_schemas::proto::{IngestRequest, JobRequest, TagRequest};
use tonic::Code;

use crate::support::*;

/// A `tokenlake serve` process, killed when dropped.
use crate::serve::*;

/// (source, n_tokens) of every document of the latest version, read with lance directly.
pub(crate) fn read_sources_and_token_counts(lake: &Path) -> Vec<(String, u64)> {
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
// Kept as one test: each call runs against the server state the calls before it left.
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

/// A token for `stream --server` is read from a file or the environment; given on the command
/// line, where every user of the machine sees it in `ps`, it still works but is warned about.
#[test]
fn a_reader_token_comes_from_a_file_and_one_on_the_command_line_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[lakes]\nsample = {:?}\n\
             [[tokens]]\nname = \"trainer\"\nrole = \"reader\"\ntoken = \"reader-token-0123456789\"\n",
            lake.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "reader-token-0123456789\n").unwrap();
    let recipe = ziya2();
    let stream = |extra: &[&str]| {
        let mut args = vec![
            "stream",
            recipe.to_str().unwrap(),
            "--server",
            server.url(),
            "--lake",
            "sample",
            "--steps",
            "1",
            "--checksums",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let from_file = stream(&["--token-file", token_file.to_str().unwrap()]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert!(!String::from_utf8_lossy(&from_file.stderr).contains("warning"));
    let inline = stream(&["--token", "reader-token-0123456789"]);
    assert!(inline.status.success());
    assert!(String::from_utf8_lossy(&inline.stderr).contains("visible to every user"));
    assert_eq!(
        from_file.stdout, inline.stdout,
        "the same batches either way"
    );
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-0123456789").unwrap();
    let refused = stream(&["--token-file", wrong.to_str().unwrap()]);
    assert!(!refused.status.success());
}
