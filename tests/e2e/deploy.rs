//! The deployment files agree with the code and with each other: the Kubernetes manifests
//! (parsed as YAML), the container image, the systemd unit and the node configuration they all
//! serve; and two streamer processes ("two nodes") over one lake serve, between them, exactly
//! the single-process stream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tokenlake_serve::ServerConfig;

use crate::serve::Server;
use crate::support::*;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every document of the Kubernetes manifests, by file name, through PyYAML.
fn manifests() -> serde_json::Map<String, Value> {
    let python = required_env("TOKENLAKE_PYTHON", "a Python with PyYAML");
    let k8s = deploy_dir().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&k8s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let out = Command::new(&python)
        .arg(data_dir().join("../python/dump_yaml.py"))
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "a manifest does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .map(|(path, docs)| {
            let name = Path::new(&path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            (name, docs)
        })
        .collect()
}

fn port(addr: &std::net::SocketAddr) -> u64 {
    u64::from(addr.port())
}

/// The node configuration (`deploy/config/serve-node.toml`), validated, with its text.
fn node_config() -> (ServerConfig, String) {
    let node_path = deploy_dir().join("config/serve-node.toml");
    let node_text = std::fs::read_to_string(&node_path).unwrap();
    let node = ServerConfig::parse(&node_text, "serve-node.toml").unwrap();
    node.validate().unwrap();
    (node, node_text)
}

/// The environment variables the node configuration reads its tokens from.
fn token_envs(node: &ServerConfig) -> BTreeSet<String> {
    let envs: BTreeSet<String> = node
        .tokens
        .iter()
        .filter_map(|t| t.token_env.clone())
        .collect();
    assert!(!envs.is_empty(), "the node configuration has no tokens");
    envs
}

#[test]
fn image_and_unit_match_the_node_configuration() {
    let (node, _) = node_config();
    let grace = node.limits.shutdown_grace_secs;
    let cache_dir = node.cache_dir.clone().unwrap();
    token_envs(&node);

    // The image: the ports it exposes, the configuration it copies, its user.
    let dockerfile = std::fs::read_to_string(deploy_dir().join("docker/Dockerfile")).unwrap();
    let expose = format!(
        "EXPOSE {} {} {}",
        node.listen.port(),
        node.health_listen.unwrap().port(),
        node.metrics_listen.unwrap().port()
    );
    assert!(
        dockerfile.contains(&expose),
        "the Dockerfile lacks {expose:?}"
    );
    assert!(dockerfile.contains("COPY deploy/config/serve-node.toml /etc/tokenlake/serve.toml"));
    assert!(dockerfile.contains("USER 10001:10001"));
    assert!(dockerfile.contains(&format!("ENV TOKENLAKE_CACHE_DIR={}", cache_dir.display())));

    // The systemd unit: the same file, the cache writable, a stop timeout past the grace.
    let unit =
        std::fs::read_to_string(deploy_dir().join("systemd/tokenlake-serve.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/tokenlake serve --config /etc/tokenlake/serve.toml"
        )
    );
    assert!(unit.contains(&format!("ReadWritePaths={}", cache_dir.display())));
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stop > grace,
        "TimeoutStopSec {stop} must exceed the shutdown grace {grace}"
    );
}

mod needs_python {
    use super::*;

    #[test]
    #[ignore = "needs TOKENLAKE_PYTHON with PyYAML (tests/run.sh)"]
    // Kept as one test: every manifest checked against the same node configuration, one resource
    // after another.
    fn kubernetes_manifests_match_the_node_configuration() {
        let (node, node_text) = node_config();
        let grace = node.limits.shutdown_grace_secs;
        let cache_dir = node.cache_dir.clone().unwrap();
        let token_envs = token_envs(&node);
        let manifests = manifests();
        let one = |file: &str| -> &Value {
            let docs = manifests[file].as_array().unwrap();
            assert_eq!(docs.len(), 1, "{file}");
            &docs[0]
        };
        // kustomization.yaml applies files that exist.
        for resource in one("kustomization.yaml")["resources"].as_array().unwrap() {
            let file = resource.as_str().unwrap();
            assert!(
                manifests.contains_key(file),
                "kustomization names a missing {file}"
            );
        }
        // The ConfigMap carries the node configuration verbatim.
        let configmap = one("configmap.yaml");
        assert_eq!(configmap["data"]["serve.toml"].as_str().unwrap(), node_text);

        let daemonset = one("daemonset.yaml");
        assert_eq!(daemonset["kind"], "DaemonSet");
        let pod = &daemonset["spec"]["template"]["spec"];
        let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
        assert_eq!(&daemonset["spec"]["selector"]["matchLabels"], labels);
        assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > grace);
        assert_eq!(pod["securityContext"]["runAsUser"], 10001);
        let container = &pod["containers"][0];
        let ports: Vec<(String, u64)> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            ports.contains(&("grpc".into(), port(&node.listen))),
            "{ports:?}"
        );
        assert!(ports.contains(&("metrics".into(), port(&node.metrics_listen.unwrap()))));
        assert!(ports.contains(&("health".into(), port(&node.health_listen.unwrap()))));
        // The gRPC port serves TLS (the kubelet probes plaintext health beside it), from the
        // Secret mounted where the configuration reads it.
        let tls = node.tls.clone().expect("the node configuration serves TLS");
        let tls_dir = tls.cert.parent().unwrap().display().to_string();
        assert_eq!(tls.key.parent(), tls.cert.parent());
        assert!(
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "tls" && m["mountPath"] == tls_dir.as_str()),
            "no Secret is mounted at {tls_dir}"
        );
        assert_eq!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "tls")
                .unwrap()["secret"]["secretName"],
            "tokenlake-tls"
        );
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                container[probe]["grpc"]["port"].as_u64(),
                Some(port(&node.health_listen.unwrap())),
                "{probe}"
            );
        }
        // The configuration file the container is told to read is the ConfigMap's key.
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, ["serve", "--config", "/etc/tokenlake/serve.toml"]);
        let mounts: Vec<(String, String)> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().into(),
                    m["mountPath"].as_str().unwrap().into(),
                )
            })
            .collect();
        for (volume, path) in [
            ("config", "/etc/tokenlake".to_string()),
            ("cache", cache_dir.display().to_string()),
            ("shm", node.shm_dir.clone().unwrap().display().to_string()),
        ] {
            assert!(
                mounts.contains(&(volume.into(), path.clone())),
                "{volume} at {path}: {mounts:?}"
            );
        }
        let volumes = pod["volumes"].as_array().unwrap();
        let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(
            volume("config")["configMap"]["name"],
            configmap["metadata"]["name"]
        );
        // Trainers map rings from the node's tmpfs, where the configuration makes them.
        let shm_dir = node.shm_dir.clone().unwrap().display().to_string();
        assert!(
            shm_dir.starts_with("/dev/shm/"),
            "{shm_dir} is not on tmpfs"
        );
        assert_eq!(volume("shm")["hostPath"]["path"], shm_dir.as_str());
        // hostPath directories are root's until the init step gives them to the pod's user.
        let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
        let init = &pod["initContainers"][0];
        let command: Vec<&str> = init["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let owner = format!("{user}:{user}");
        assert_eq!(
            command,
            [
                "chown",
                owner.as_str(),
                &cache_dir.display().to_string(),
                &shm_dir
            ],
            "{init}"
        );
        assert!(
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "TOKENLAKE_CACHE_DIR"
                    && e["value"] == cache_dir.display().to_string())
        );
        // The tokens the configuration reads come from the Secret the pod loads.
        let secret = one("secret.example.yaml");
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"],
            secret["metadata"]["name"]
        );
        let secret_keys: BTreeSet<String> = secret["stringData"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert!(
            token_envs.is_subset(&secret_keys),
            "{token_envs:?} not all in {secret_keys:?}"
        );

        // The Service reaches the pods by their labels and named ports, on their own node.
        let service = one("service.yaml");
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "selector {k}");
        }
        assert_eq!(service["spec"]["internalTrafficPolicy"], "Local");
        for p in service["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_str().unwrap();
            assert!(
                ports.iter().any(|(name, _)| name == target),
                "Service port {target}"
            );
        }
        // The sharded ingest's Indexed Job and the commit Job agree with each other and with the
        // CLI: one shard per completion index, the same lake, set, pipeline and image.
        let ingest_job = one("ingest-job.yaml");
        let commit_job = one("commit-job.yaml");
        assert_eq!(ingest_job["spec"]["completionMode"], "Indexed");
        let shards = ingest_job["spec"]["completions"].as_u64().unwrap();
        assert_eq!(ingest_job["spec"]["parallelism"].as_u64(), Some(shards));
        let pod_of = |job: &Value| job["spec"]["template"]["spec"].clone();
        let (ingest_pod, commit_pod) = (pod_of(ingest_job), pod_of(commit_job));
        let env_of = |pod: &Value| -> BTreeMap<String, String> {
            pod["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let (ingest_env, commit_env) = (env_of(&ingest_pod), env_of(&commit_pod));
        for key in ["LAKE", "SHARD_SET"] {
            assert_eq!(ingest_env[key], commit_env[key], "{key}");
        }
        let args_of = |pod: &Value| -> Vec<String> {
            pod["containers"][0]["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        };
        let (ingest_args, commit_args) = (args_of(&ingest_pod), args_of(&commit_pod));
        let after = |args: &[String], flag: &str| -> String {
            let at = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("no {flag}"));
            args[at + 1].clone()
        };
        assert_eq!(
            after(&ingest_args, "--shard"),
            format!("$(JOB_COMPLETION_INDEX)/{shards}")
        );
        assert_eq!(after(&ingest_args, "--shard-set"), "$(SHARD_SET)");
        assert_eq!(after(&commit_args, "--set"), "$(SHARD_SET)");
        assert_eq!(
            after(&ingest_args, "--pipeline"),
            after(&commit_args, "--pipeline")
        );
        // A big commit's de-duplication steps: the prepare Job is the commit with another
        // verb; every step mounts the one ReadWriteMany claim where the working directory is,
        // and the Indexed Job has one pod per partition of the index the prepare Job creates.
        let prepare_job = one("dedup-prepare-job.yaml");
        let dedup_job = one("dedup-job.yaml");
        let claim = one("dedup-work-pvc.yaml");
        let (prepare_pod, dedup_pod) = (pod_of(prepare_job), pod_of(dedup_job));
        let prepare_args = args_of(&prepare_pod);
        assert_eq!(commit_args[0], "commit");
        assert_eq!(prepare_args[..2], ["dedup", "prepare"]);
        assert_eq!(
            prepare_args[2..],
            commit_args[1..],
            "prepare and commit agree"
        );
        assert_eq!(env_of(&prepare_pod), commit_env);
        assert!(
            claim["spec"]["accessModes"]
                .as_array()
                .unwrap()
                .contains(&Value::from("ReadWriteMany")),
            "every node's pods mount the working directory"
        );
        let work = after(&commit_args, "--dedup-work");
        for pod in [&prepare_pod, &dedup_pod, &commit_pod] {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"])
                .expect("the working directory's claim");
            assert!(
                pod["containers"][0]["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == volume["name"] && m["mountPath"] == work.as_str()),
                "{work} is the claim's mount"
            );
        }
        let dedup_args = args_of(&dedup_pod);
        assert_eq!(dedup_args[..3], ["dedup", "candidates", work.as_str()]);
        assert_eq!(dedup_job["spec"]["completionMode"], "Indexed");
        let partitions = dedup_job["spec"]["completions"].as_u64().unwrap();
        assert_eq!(
            after(&commit_args, "--dedup-partitions"),
            partitions.to_string()
        );
        assert_eq!(
            after(&dedup_args, "--partition"),
            format!("$(JOB_COMPLETION_INDEX)/{partitions}")
        );
        let budget_mb: u64 = after(&dedup_args, "--budget-mb").parse().unwrap();
        let limit = dedup_pod["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .unwrap();
        let limit_mb = limit.strip_suffix("Gi").unwrap().parse::<u64>().unwrap() * 1024;
        assert!(
            budget_mb + 256 <= limit_mb,
            "a task's budget {budget_mb} MiB and the process fit its limit {limit}"
        );
        assert_eq!(dedup_pod["restartPolicy"], "Never");
        assert_eq!(dedup_pod["containers"][0]["image"], container["image"]);

        for (job, pod) in [
            (ingest_job, &ingest_pod),
            (prepare_job, &prepare_pod),
            (commit_job, &commit_pod),
        ] {
            assert_eq!(pod["restartPolicy"], "Never");
            assert_eq!(pod["containers"][0]["image"], container["image"]);
            assert_eq!(
                pod["containers"][0]["envFrom"][0]["secretRef"]["name"],
                secret["metadata"]["name"]
            );
            // The files the commands read are inside a mounted volume.
            let mounts: Vec<String> = pod["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap().to_string())
                .collect();
            let args = args_of(pod);
            for flag in ["--pipeline", "--tokenizer", "--staging-dir"] {
                if args.iter().any(|a| a == flag) {
                    let path = after(&args, flag);
                    assert!(
                        mounts.iter().any(|m| path.starts_with(m.as_str())),
                        "{} reads {path} outside its mounts {mounts:?}",
                        job["metadata"]["name"]
                    );
                }
            }
        }
        // Both command lines, as Kubernetes expands them, run a real sharded ingest: every index
        // of the Job, then the commit, against a scratch lake and the files the ConfigMap holds.
        let scratch = tempfile::tempdir().unwrap();
        let lake = scratch.path().join("lake");
        let input = scratch.path().join("in.jsonl");
        write_jsonl(&input, &sample_docs()[..20]);
        let mounted = scratch.path().join("etc");
        std::fs::create_dir_all(&mounted).unwrap();
        let work_dir = scratch.path().join("dedup-work");
        std::fs::copy(tokenizer(), mounted.join("tokenizer.json")).unwrap();
        std::fs::copy(
            deploy_dir().join("pipelines/curation.toml"),
            mounted.join("curation.toml"),
        )
        .unwrap();
        let expand = |args: &[String], index: u64| -> Vec<String> {
            args.iter()
                .map(|a| {
                    a.replace("$(LAKE)", lake.to_str().unwrap())
                        .replace("$(INPUTS)", input.to_str().unwrap())
                        .replace("$(SHARD_SET)", &ingest_env["SHARD_SET"])
                        .replace("$(JOB_COMPLETION_INDEX)", &index.to_string())
                        .replace("/etc/tokenlake-ingest", mounted.to_str().unwrap())
                        .replace("/var/tmp/tokenlake", scratch.path().to_str().unwrap())
                        .replace("/var/lib/tokenlake-dedup", work_dir.to_str().unwrap())
                })
                .collect()
        };
        for index in 0..shards {
            let args = expand(&ingest_args, index);
            let strs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ok(&strs);
        }
        let mut steps = vec![expand(&prepare_args, 0)];
        steps.extend((0..partitions).map(|index| expand(&dedup_args, index)));
        for args in steps {
            let strs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ok(&strs);
        }
        let args = expand(&commit_args, 0);
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        let committed = run_ok(&strs);
        assert!(committed.contains("committed version 1"), "{committed}");
        assert!(
            committed.contains("(0 candidate tasks run here)"),
            "the Indexed Job ran them all: {committed}"
        );
        assert_eq!(run_json(&["describe", lake.to_str().unwrap()])["rows"], 20);

        // A sharded token store: the Indexed Job's pods are shards of the seal's count, both
        // jobs run one recipe over one lake, and their command lines, as Kubernetes expands
        // them, build the store a window streams exactly.
        let shard_job = one("materialise-job.yaml");
        let seal_job = one("materialise-seal-job.yaml");
        let (shard_pod, seal_pod) = (pod_of(shard_job), pod_of(seal_job));
        let (shard_args, seal_args) = (args_of(&shard_pod), args_of(&seal_pod));
        assert_eq!(shard_job["spec"]["completionMode"], "Indexed");
        let store_shards = shard_job["spec"]["completions"].as_u64().unwrap();
        assert_eq!(
            after(&shard_args, "--shard"),
            format!("$(JOB_COMPLETION_INDEX)/{store_shards}")
        );
        assert_eq!(after(&seal_args, "--seal"), store_shards.to_string());
        let common = |args: &[String]| -> Vec<String> {
            let at = args
                .iter()
                .position(|a| a == "--shard" || a == "--seal")
                .unwrap();
            args[..at].to_vec()
        };
        assert_eq!(
            common(&shard_args),
            common(&seal_args),
            "the same recipe and lake"
        );
        assert_eq!(env_of(&shard_pod), env_of(&seal_pod));
        for pod in [&shard_pod, &seal_pod] {
            assert_eq!(pod["restartPolicy"], "Never");
            assert_eq!(pod["containers"][0]["image"], container["image"]);
            let mounts: Vec<String> = pod["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap().to_string())
                .collect();
            let args = args_of(pod);
            for path in [args[1].clone(), after(&args, "--cache-dir")] {
                assert!(
                    mounts.iter().any(|m| path.starts_with(m.as_str())),
                    "{path} is outside the mounts {mounts:?}"
                );
            }
        }
        let built = tempfile::tempdir().unwrap();
        let store_lake = sample_lake_in_three_fragments(built.path());
        let recipes = built.path().join("recipes");
        std::fs::create_dir_all(&recipes).unwrap();
        std::fs::copy(ziya2(), recipes.join("ziya2.toml")).unwrap();
        let expand_store = |args: &[String], index: u64| -> Vec<String> {
            args.iter()
                .map(|a| {
                    a.replace("$(LAKE)", store_lake.to_str().unwrap())
                        .replace("$(JOB_COMPLETION_INDEX)", &index.to_string())
                        .replace("/etc/tokenlake-recipes", recipes.to_str().unwrap())
                        .replace(
                            "/var/cache/tokenlake",
                            built.path().join("scratch").to_str().unwrap(),
                        )
                })
                .collect()
        };
        let mut steps: Vec<Vec<String>> = (0..store_shards)
            .map(|index| expand_store(&shard_args, index))
            .collect();
        steps.push(expand_store(&seal_args, 0));
        for args in steps {
            let strs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ok(&strs);
        }
        let recipe = recipes.join("ziya2.toml");
        let store_stream = |mode: &str| {
            let cache = built.path().join(format!("node-{mode}"));
            run_ok(&[
                "stream",
                recipe.to_str().unwrap(),
                "--lake",
                store_lake.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--cache-mode",
                mode,
                "--checksums",
                "--steps",
                "50",
            ])
        };
        assert_eq!(store_stream("window"), store_stream("full"));

        // Everything lives in the one namespace.
        for (file, docs) in &manifests {
            for d in docs.as_array().unwrap() {
                if d["kind"] != "Namespace" && d["kind"] != "Kustomization" {
                    assert_eq!(d["metadata"]["namespace"], "tokenlake", "{file}");
                }
            }
        }
    }
}

#[test]
fn two_streamer_nodes_serve_between_them_exactly_the_single_process_stream() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let recipe = ziya2();
    let (r, l) = (recipe.to_str().unwrap(), lake.to_str().unwrap());
    // Two "nodes": separate processes, each with its own cache directory, no coordinator.
    let nodes: Vec<Server> = ["node-a", "node-b"]
        .iter()
        .map(|node| {
            let cache = dir.path().join(node);
            let lake_arg = format!("sample={l}");
            Server::start_with_env(
                &[
                    "--open",
                    "--listen",
                    "127.0.0.1:0",
                    "--lake",
                    &lake_arg,
                    "--cache-dir",
                    cache.to_str().unwrap(),
                ],
                &[],
            )
        })
        .collect();
    let local = run_ok(&[
        "stream",
        r,
        "--lake",
        l,
        "--checksums",
        "--micro-batch",
        "2",
    ]);
    let mut lines: Vec<&str> = local.lines().collect();
    assert!(lines.len() > 20, "the sample plan is too small to test");
    // World of four: ranks 0 and 1 on node A, 2 and 3 on node B.
    let mut union = Vec::new();
    for rank in 0..4 {
        let node = &nodes[rank / 2];
        let out = run_ok(&[
            "stream",
            r,
            "--server",
            node.url(),
            "--lake",
            "sample",
            "--checksums",
            "--rank",
            &rank.to_string(),
            "--world",
            "4",
        ]);
        union.extend(out.lines().map(str::to_string));
    }
    union.sort_by_key(|l| l.split('\t').next().unwrap().parse::<u64>().unwrap());
    lines.sort_by_key(|l| l.split('\t').next().unwrap().parse::<u64>().unwrap());
    // Every global step of four samples, in full (a last partial step is streamed by no rank).
    let full_steps = lines.len() / 4 * 4;
    assert_eq!(union.len(), full_steps);
    assert!(
        union.iter().zip(&lines).all(|(a, b)| a == b),
        "the ranks' samples differ"
    );
    // Any node serves any rank the same: rank 3 from node A is what node B sent.
    let from = |node: &Server| {
        run_ok(&[
            "stream",
            r,
            "--server",
            node.url(),
            "--lake",
            "sample",
            "--checksums",
            "--rank",
            "3",
            "--world",
            "4",
        ])
    };
    assert_eq!(from(&nodes[0]), from(&nodes[1]));
    // Each node built its own cache.
    for node in ["node-a", "node-b"] {
        assert!(
            std::fs::read_dir(dir.path().join(node)).unwrap().count() > 0,
            "{node}"
        );
    }
}

#[test]
fn check_config_passes_the_shipped_configurations_and_names_an_unknown_key() {
    for config in ["config/serve.toml", "config/serve-node.toml"] {
        let path = deploy_dir().join(config);
        let out = run_ok(&["serve", "--check-config", path.to_str().unwrap()]);
        assert!(out.contains("valid"), "{config}: {out}");
    }
    // The systemd unit runs the same check before it starts the server.
    let unit =
        std::fs::read_to_string(deploy_dir().join("systemd/tokenlake-serve.service")).unwrap();
    assert!(unit.contains(
        "ExecStartPre=/usr/local/bin/tokenlake serve --check-config /etc/tokenlake/serve.toml"
    ));

    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    let reference = std::fs::read_to_string(deploy_dir().join("config/serve.toml")).unwrap();
    std::fs::write(
        &typo,
        reference.replace("prefetch_batches = 4", "prefetch_batchez = 4"),
    )
    .unwrap();
    let err = run_err(&["serve", "--check-config", typo.to_str().unwrap()]);
    assert!(
        err.contains("prefetch_batchez") && err.contains("typo.toml"),
        "{err}"
    );

    // The printed defaults are a configuration the check accepts once a lake is named (the
    // flags are laid over the file, as when serving).
    let defaults = dir.path().join("defaults.toml");
    std::fs::write(&defaults, run_ok(&["serve", "--print-default-config"])).unwrap();
    let out = run_ok(&[
        "serve",
        "--check-config",
        defaults.to_str().unwrap(),
        "--lake",
        "sample=./lake",
        "--open",
    ]);
    assert!(out.contains("valid") && out.contains("open"), "{out}");
}

/// A stand-in for Slurm's `sbatch`: checks the options the script relies on, runs the job at
/// once (an array index by index, as its tasks would, with `SLURM_ARRAY_TASK_ID`) through
/// `sh -c` as `--wrap` does, logs `name array dependency` and prints a job id.
const FAKE_SBATCH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
name=""; array=""; dependency="-"; wrap=""; parsable=0
while [ $# -gt 0 ]; do
  case "$1" in
    --parsable) parsable=1 ;;
    --job-name=*) name="${1#--job-name=}" ;;
    --array=*) array="${1#--array=}" ;;
    --dependency=*) dependency="${1#--dependency=}" ;;
    --cpus-per-task=*|--mem=*) ;;
    --wrap) wrap="$2"; shift ;;
    *) echo "fake sbatch: unexpected option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$parsable" = 1 ] && [ -n "$name" ] && [ -n "$wrap" ] || { echo "fake sbatch: missing options" >&2; exit 2; }
id=$(( $(wc -l < "$SBATCH_LOG") + 100 ))
echo "$name ${array:--} $dependency" >> "$SBATCH_LOG"
if [ -n "$array" ]; then
  for i in $(seq "${array%-*}" "${array#*-}"); do SLURM_ARRAY_TASK_ID=$i sh -c "$wrap" >&2; done
else
  sh -c "$wrap" >&2
fi
echo "$id"
"#;

/// A lake of the committed sample in three ingests (three fragments), tagged `quickstart`.
fn sample_lake_in_three_fragments(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    let docs = sample_docs();
    for (i, part) in docs.chunks(docs.len().div_ceil(3)).enumerate() {
        let path = dir.join(format!("part-{i}.jsonl"));
        write_jsonl(&path, part);
        run_ok(&sample_ingest_args(
            lake.to_str().unwrap(),
            &[path.to_str().unwrap()],
            tokenizer().to_str().unwrap(),
        ));
    }
    run_ok(&["tag", lake.to_str().unwrap(), "create", "quickstart"]);
    lake
}

/// The Slurm script's two jobs build a sharded token store that a window streams exactly as a
/// full cache would.
#[test]
fn the_slurm_script_builds_and_seals_a_sharded_token_store() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("sbatch.log");
    std::fs::write(&log, "").unwrap();
    let lake = sample_lake_in_three_fragments(dir.path());
    let stores = dir.path().join("stores");
    let out = Command::new("bash")
        .arg(deploy_dir().join("slurm/materialise.sh"))
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TOKENLAKE", env!("CARGO_BIN_EXE_tokenlake"))
        .env_remove("TOKENLAKE_LOG")
        .env("SBATCH_LOG", &log)
        .env("RECIPE", ziya2())
        .env("LAKE", &lake)
        .env("TOKEN_STORES", &stores)
        .env("CACHE_DIR", dir.path().join("scratch"))
        .env("SHARDS", "4")
        .env("CHUNK_MIB", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "tokenlake-materialise 0-3 -\n\
         tokenlake-materialise-seal - afterok:100\n"
    );
    assert!(
        stderr.contains("shards      4") || stderr.contains("shards"),
        "{stderr}"
    );
    let (r, l) = (ziya2(), lake.to_str().unwrap().to_string());
    let r = r.to_str().unwrap();
    let stream = |mode: &[&str]| {
        let cache = dir.path().join(format!("cache-{}", mode.len()));
        let mut args = vec![
            "stream",
            r,
            "--lake",
            &l,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--world",
            "2",
            "--rank",
            "1",
            "--checksums",
        ];
        args.extend_from_slice(mode);
        run_ok(&args)
    };
    let full = stream(&["--cache-mode", "full"]);
    let windowed = stream(&[
        "--cache-mode",
        "window",
        "--token-stores",
        stores.to_str().unwrap(),
    ]);
    assert!(full.lines().count() > 100);
    assert_eq!(windowed, full);
    assert!(
        !dir.path().join("scratch/store-shards").exists()
            || std::fs::read_dir(dir.path().join("scratch/store-shards"))
                .unwrap()
                .next()
                .is_none(),
        "the shards' local caches were removed"
    );
}

#[test]
fn the_slurm_script_runs_a_sharded_ingest_through_the_dedup_steps_to_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("sbatch.log");
    std::fs::write(&log, "").unwrap();

    // Two input files; the second repeats ten documents of the first under new ids.
    let docs = sample_docs();
    let mut copies: Vec<Value> = docs[..10]
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d["id"] = Value::from(format!("{}-copy", d["id"].as_str().unwrap()));
            d
        })
        .collect();
    copies.extend_from_slice(&docs[150..]);
    let inputs = [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
    write_jsonl(&inputs[0], &docs[..150]);
    write_jsonl(&inputs[1], &copies);
    let input_list = format!("{} {}", inputs[0].display(), inputs[1].display());
    let pipeline = deploy_dir().join("pipelines/curation.toml");
    let lake = dir.path().join("lake");
    let out = Command::new("bash")
        .arg(deploy_dir().join("slurm/sharded-ingest.sh"))
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TOKENLAKE", env!("CARGO_BIN_EXE_tokenlake"))
        .env_remove("TOKENLAKE_LOG")
        .env("SBATCH_LOG", &log)
        .env("LAKE", &lake)
        .env("INPUTS", &input_list)
        .env("TOKENIZER", tokenizer())
        .env("PIPELINE", &pipeline)
        .env("WORK", dir.path().join("shared/dedup"))
        .env("SHARD_SET", "slurm-test")
        .env("SHARDS", "3")
        .env("PARTITIONS", "4")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("submitted: ingest 100,"));
    // Four jobs, each after the one before it, the arrays one task per shard and per partition.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "tokenlake-ingest 0-2 -\n\
         tokenlake-dedup-prepare - afterok:100\n\
         tokenlake-dedup 0-3 afterok:101\n\
         tokenlake-commit - afterok:102\n"
    );
    // The jobs' output (the fake sends it to stderr): the array ran every partition's task.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("committed version 1") && stderr.contains("(0 candidate tasks run here)"),
        "{stderr}"
    );

    // One version, with the labels one ingest of the same files gives.
    let l = lake.to_str().unwrap();
    let versions = run_json(&["versions", l]);
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    let single = dir.path().join("single");
    let mut args: Vec<String> = vec!["ingest".into(), single.display().to_string()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    for a in ["--source", "web", "--tokenizer"] {
        args.push(a.into());
    }
    args.push(tokenizer().display().to_string());
    args.push("--pipeline".into());
    args.push(pipeline.display().to_string());
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&strs);
    let labels = |lake: &str| {
        run_ok(&[
            "query",
            lake,
            "SELECT doc_id, dup_cluster, is_dup, dup_kind, quality_tier FROM documents ORDER BY doc_id",
            "--format",
            "csv",
        ])
    };
    let sharded = labels(l);
    assert_eq!(sharded, labels(single.to_str().unwrap()));
    assert!(
        sharded.lines().filter(|l| l.contains(",true,")).count() >= 10,
        "the copies are labelled: {sharded}"
    );
}
