//! Errors of an ingest. Any of them aborts the run before its commit, so the lake stays at the
//! version it had.

use std::path::PathBuf;

use tokenlake_lake::LakeError;
use tokenlake_schemas::{ErrorCode, ServiceError};

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid ingest options: {0}")]
    Options(String),

    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },

    #[error("input {path}: {reason}")]
    Input { path: PathBuf, reason: String },

    #[error("reading input {path} near line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        #[source]
        source: std::io::Error,
    },

    #[error("reading Parquet input {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("writing rejects file {path}: {source}")]
    Rejects {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("building an Arrow batch: {0}")]
    Batch(#[source] arrow_schema::ArrowError),

    #[error("labelling the documents: {0}")]
    Labels(String),

    #[error("interrupted: nothing was committed")]
    Interrupted,

    #[error(transparent)]
    Lake(#[from] LakeError),

    #[error(transparent)]
    Storage(#[from] tokenlake_storage::StorageError),
}

impl ServiceError for IngestError {
    fn error_code(&self) -> ErrorCode {
        match self {
            // What the caller gave: options, a tokenizer, an input that is not what it says.
            IngestError::Options(_)
            | IngestError::Tokenizer { .. }
            | IngestError::Input { .. }
            | IngestError::Parquet { .. } => ErrorCode::InvalidArgument,
            // Reading an input or writing the rejects file: the machine's disk.
            IngestError::Read { .. } | IngestError::Rejects { .. } => ErrorCode::Internal,
            IngestError::Batch(_) | IngestError::Labels(_) => ErrorCode::Internal,
            IngestError::Interrupted => ErrorCode::Cancelled,
            IngestError::Lake(e) => e.error_code(),
            IngestError::Storage(e) => e.error_code(),
        }
    }
}
