//! Compiles the tokenlake.v1 protobuf package into Rust (messages, clients and servers), and
//! writes its file descriptor set for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        // Token and result payloads as `Bytes`: a received batch borrows the frame it came in
        // instead of being copied out of it.
        .bytes(".tokenlake.v1.MicroBatch.tokens")
        .bytes(".tokenlake.v1.QueryChunk.ipc")
        .file_descriptor_set_path(out.join("tokenlake_v1_descriptor.bin"))
        .compile_protos(&["proto/tokenlake/v1/tokenlake.proto"], &["proto"])?;
    Ok(())
}
