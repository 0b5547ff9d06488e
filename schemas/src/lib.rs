//! The shapes other crates agree on: the Arrow schema of a lake's documents table and the
//! `tokenlake.v1` protobuf package (in `proto/`, compiled once the service exists).
//!
//! This crate owns column names, column types and the schema metadata keys; it knows nothing
//! about where a lake lives, how documents are read or how they are tokenized.

mod documents;
mod token_width;

pub use documents::{
    DocumentsSchema, LakeSchemaInfo, SCHEMA_VERSION, SchemaError, columns, metadata_keys,
};
pub use token_width::TokenWidth;
