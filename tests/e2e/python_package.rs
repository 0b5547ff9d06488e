//! The Python package as a user installs it (`pip install ./client/python` into a fresh
//! virtual environment, done by tests/run.sh): the `tokenlake` command it puts on PATH is the
//! workspace's, and `import tokenlake` works from anywhere, with its stubs and type hints.

use crate::support::*;

mod needs_python_package {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn package_python() -> PathBuf {
        PathBuf::from(required_env(
            "TOKENLAKE_PACKAGE_PYTHON",
            "the Python package installed in a virtual environment",
        ))
    }

    /// The command the package installed, beside its Python.
    fn installed_tokenlake() -> Command {
        let mut cmd = Command::new(package_python().with_file_name("tokenlake"));
        cmd.env_remove("TOKENLAKE_LOG");
        cmd
    }

    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn the_installed_command_is_the_workspace_command() {
        let help = installed_tokenlake().arg("--help").output().unwrap();
        assert!(help.status.success());
        assert_eq!(
            String::from_utf8(help.stdout).unwrap(),
            run_ok(&["--help"]),
            "the installed command's help is the binary's"
        );

        // It does real work, with the binary's output.
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let l = lake.to_str().unwrap();
        let versions = installed_tokenlake()
            .args(["versions", l, "--json"])
            .output()
            .unwrap();
        assert!(versions.status.success(), "{versions:?}");
        assert_eq!(
            String::from_utf8(versions.stdout).unwrap(),
            run_ok(&["versions", l, "--json"])
        );

        // And fails as the binary does: same exit code, the same message.
        let missing = dir.path().join("no-lake");
        let m = missing.to_str().unwrap();
        let failed = installed_tokenlake()
            .args(["versions", m])
            .output()
            .unwrap();
        let expected = run(&["versions", m]);
        assert!(!failed.status.success());
        assert_eq!(failed.status.code(), expected.status.code());
        assert_eq!(failed.stderr, expected.stderr);
    }

    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn the_package_imports_from_anywhere_with_its_stubs_and_type_hints() {
        let outside = tempfile::tempdir().unwrap();
        let out = Command::new(package_python())
            .args([
                "-c",
                "import pathlib, tokenlake, tokenlake._native as native\n\
                 from tokenlake.v1 import tokenlake_pb2, tokenlake_pb2_grpc\n\
                 root = pathlib.Path(tokenlake.__file__).parent\n\
                 print(root)\n\
                 print(native.version())\n\
                 print(sorted(p.name for p in root.iterdir() if p.suffix in ('.typed', '.pyi')))\n\
                 print(hasattr(tokenlake_pb2_grpc, 'StreamStub'))",
            ])
            .current_dir(outside.path())
            .env_remove("PYTHONPATH")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../client/python")
            .canonicalize()
            .unwrap();
        let root = Path::new(lines[0]);
        assert!(
            !root.starts_with(&source) && lines[0].contains("site-packages"),
            "tokenlake was imported from {}, not the installed package",
            lines[0]
        );
        assert_eq!(lines[1], env!("CARGO_PKG_VERSION"));
        assert_eq!(lines[2], "['_native.pyi', 'py.typed']");
        assert_eq!(lines[3], "True", "the gRPC stubs ship in the package");
    }

    /// The wheel `deploy/python/build-wheel.sh` built (tests/run.sh, which installed it) holds
    /// the native module, the stubs, the type hints and the `tokenlake` command's entry point.
    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn the_deploy_script_builds_a_complete_wheel() {
        let wheel = PathBuf::from(required_env(
            "TOKENLAKE_PACKAGE_WHEEL",
            "the wheel deploy/python/build-wheel.sh built",
        ));
        let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.contains("abi3"), "{name}");
        let listed = Command::new(package_python())
            .args([
                "-c",
                "import sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 names = z.namelist()\n\
                 print('\\n'.join(names))\n\
                 print([z.read(n).decode() for n in names if n.endswith('entry_points.txt')][0])",
            ])
            .arg(&wheel)
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        for member in [
            "tokenlake/_native.abi3.so",
            "tokenlake/v1/tokenlake_pb2.py",
            "tokenlake/v1/tokenlake_pb2_grpc.py",
            "tokenlake/py.typed",
            "tokenlake/_native.pyi",
            "tokenlake/dataset.py",
            "tokenlake/inprocess.py",
            "tokenlake/lake.py",
            "tokenlake/errors.py",
            "tokenlake/mix.py",
        ] {
            assert!(
                listed.lines().any(|l| l == member),
                "{member} is not in {name}:\n{listed}"
            );
        }
        assert!(
            listed
                .replace(' ', "")
                .contains("tokenlake=tokenlake._cli:main"),
            "{listed}"
        );
        // The stubs refuse to load under a grpcio older than the grpcio-tools that generated
        // them, or a protobuf runtime older than their gencode: the wheel's dependencies must
        // say so, or `pip install` leaves a package whose served datasets fail on import.
        let checked = Command::new(package_python())
            .args([
                "-c",
                "import re, sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 meta = [z.read(n).decode() for n in z.namelist() if n.endswith('METADATA')][0]\n\
                 grpc = z.read('tokenlake/v1/tokenlake_pb2_grpc.py').decode()\n\
                 pb = z.read('tokenlake/v1/tokenlake_pb2.py').decode()\n\
                 v = lambda s: tuple(int(x) for x in s.split('.'))\n\
                 need = {'grpcio': v(re.search(r\"GRPC_GENERATED_VERSION = '([0-9.]+)'\", grpc).group(1)),\n\
                         'protobuf': tuple(int(x) for x in re.search(r'Domain.PUBLIC,\\s*(\\d+),\\s*(\\d+),\\s*(\\d+)', pb).groups())}\n\
                 for name, want in need.items():\n\
                 \x20   floor = re.search(r'Requires-Dist: ' + name + r'>=([0-9.]+)', meta)\n\
                 \x20   assert floor and v(floor.group(1)) >= want, (name, floor and floor.group(1), want)\n\
                 print('ok', need)",
            ])
            .arg(&wheel)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "the wheel's dependencies are older than its stubs need: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    /// In-process datasets (`lake=`) against served ones and `tokenlake stream --checksums`,
    /// across world sizes and resumption; errors as the package's types; `Lake` against the
    /// command (tests/test_inprocess.py, with the installed package).
    #[test]
    #[ignore = "needs TOKENLAKE_PACKAGE_PYTHON, the installed package (tests/run.sh)"]
    fn in_process_datasets_equal_served_ones_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let server = crate::serve::open_server(&lake, &[]);
        let checksums = the_commands_checksums(dir.path(), &lake);
        let out = pytest_installed(
            &["tests/test_inprocess.py"],
            &[
                ("TOKENLAKE_TEST_SERVER", server.url().as_ref()),
                ("TOKENLAKE_TEST_LAKE_PATH", lake.as_os_str()),
                ("TOKENLAKE_TEST_RECIPE", ziya2().as_os_str()),
                ("TOKENLAKE_TEST_CHECKSUMS", checksums.as_os_str()),
            ],
        );
        assert_pytest_passed(&out, 14);
    }
}

/// What `tokenlake stream --checksums --micro-batch 2` prints for the shipped recipe over
/// `lake`, in a file under `dir`.
fn the_commands_checksums(dir: &std::path::Path, lake: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("checksums.tsv");
    let printed = run_ok(&[
        "stream",
        ziya2().to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--micro-batch",
        "2",
        "--checksums",
    ]);
    std::fs::write(&path, printed).unwrap();
    path
}

/// The package beside PyTorch, torchdata and transformers (a virtual environment tests/run.sh
/// makes once per machine, with the wheel it built installed each run).
mod needs_torch {
    use super::*;
    use std::path::Path;

    fn torch_python() -> String {
        required_env(
            "TOKENLAKE_TORCH_PYTHON",
            "a Python with torch, torchdata, transformers and the package installed",
        )
    }

    /// DataLoader workers, StatefulDataLoader checkpoints and a Hugging Face model's loss
    /// (tests/test_torch.py).
    #[test]
    #[ignore = "needs TOKENLAKE_TORCH_PYTHON (tests/run.sh)"]
    fn the_dataset_follows_pytorch_conventions() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let out = pytest_with(
            &torch_python(),
            &["tests/test_torch.py"],
            &[
                ("TOKENLAKE_TEST_LAKE_PATH", lake.as_os_str()),
                ("TOKENLAKE_TEST_RECIPE", ziya2().as_os_str()),
            ],
        );
        assert_pytest_passed(&out, 7);
    }

    /// The examples a user copies from run, and do what they say: the Hugging Face model's
    /// loss goes down, the plain PyTorch job resumes from its checkpoint with exactly the
    /// batches of an uninterrupted run, the curation session's label selects documents.
    #[test]
    #[ignore = "needs TOKENLAKE_TORCH_PYTHON (tests/run.sh)"]
    fn the_examples_run() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sample_lake(dir.path());
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let recipe = examples.join("small.toml");
        let run_example = |name: &str, extra: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(torch_python())
                .arg(examples.join(name))
                .arg("--lake")
                .arg(&lake)
                .args(extra)
                .current_dir(dir.path())
                .env_remove("PYTHONPATH")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{name} failed:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        };
        let hf = run_example("train_hf.py", &["--recipe".as_ref(), recipe.as_os_str()]);
        assert!(hf.contains("40 steps: loss"), "{hf}");
        let torch = run_example("train_torch.py", &["--recipe".as_ref(), recipe.as_os_str()]);
        assert!(
            torch.contains("the same batches as an uninterrupted run"),
            "{torch}"
        );
        let curate = run_example("curate_in_python.py", &[]);
        assert!(
            curate.contains("imported letters_share for 300 documents"),
            "{curate}"
        );
        assert!(curate.contains("first batch: samples [0, 1]"), "{curate}");
    }
}
