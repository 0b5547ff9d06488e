//! Generates the package's gRPC stubs (`tokenlake/v1/`) from the workspace's proto with
//! grpcio-tools, when the Python that maturin builds for has it (a build requirement of the
//! package), so that every wheel and `pip install` ships them. A plain `cargo build` without
//! grpcio-tools leaves them alone.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let generate = manifest.join("../generate_stubs.py");
    let proto = manifest.join("../../../schemas/proto/tokenlake/v1/tokenlake.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-changed={}", generate.display());
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    // Generated again when they are gone (a fresh checkout, a cleaned tree).
    for stub in [
        "tokenlake_pb2.py",
        "tokenlake_pb2_grpc.py",
        "tokenlake_pb2.pyi",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join("../tokenlake/v1").join(stub).display()
        );
    }
    // maturin names the interpreter it builds for; outside maturin there is nothing to do.
    let Some(python) = std::env::var_os("PYO3_PYTHON") else {
        return;
    };
    let has_tools = Command::new(&python)
        .args(["-c", "import grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_tools {
        println!(
            "cargo:warning=grpcio-tools is not installed for {}: the gRPC stubs are not generated",
            PathBuf::from(&python).display()
        );
        return;
    }
    let status = Command::new(&python)
        .arg(&generate)
        .status()
        .expect("running generate_stubs.py");
    assert!(status.success(), "generate_stubs.py failed");
}
