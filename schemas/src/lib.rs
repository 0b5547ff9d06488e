//! The shapes other crates agree on: the Arrow schema of a lake's documents table, the
//! `tokenlake.v1` protobuf package (in `proto/`, compiled by build.rs) with the TLS provider its
//! endpoints use, and the [`ErrorCode`] every library error reports.
//!
//! This crate owns column names, column types and the schema metadata keys; it knows nothing
//! about where a lake lives, how documents are read or how they are tokenized.

mod documents;
mod error_code;
mod token_width;

pub use documents::{
    DocumentsSchema, LakeSchemaInfo, SCHEMA_VERSION, SchemaError, columns, is_sha256_hex,
    metadata_keys,
};
pub use error_code::{ErrorCode, ServiceError};
pub use token_width::TokenWidth;

/// The `tokenlake.v1` gRPC package: messages, clients (`*_client`) and servers (`*_server`).
/// Server and client crates use tonic and prost through this crate, so there is one version.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tokenlake.v1");

    /// The encoded file descriptor set of the package, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tokenlake_v1_descriptor");
}

pub use prost;
pub use tonic;

/// Makes ring rustls's process-wide crypto provider, as tonic's `tls-ring` expects. The AWS SDK
/// brings aws-lc-rs into the same build, and with two providers compiled in rustls refuses to
/// guess; every TLS endpoint (server and client) calls this first. Calling it again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
