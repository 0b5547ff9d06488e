//! Errors in one place: what the server refuses to start with (`ServeError`), and how every
//! library error becomes a gRPC status with a message a person can act on.

use tokenlake_ingest::IngestError;
use tokenlake_lake::LakeError;
use tokenlake_plan::PlanError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("config {path}: {message}")]
    Config { path: String, message: String },

    #[error("{0}")]
    Invalid(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The status of a lake error: a missing lake, version or tag is NOT_FOUND, a refused request
/// INVALID_ARGUMENT or ALREADY_EXISTS, anything else INTERNAL (and logged).
pub fn lake_status(e: LakeError) -> Status {
    let code = match &e {
        LakeError::LakeNotFound { .. }
        | LakeError::VersionNotFound { .. }
        | LakeError::TagNotFound { .. } => Code::NotFound,
        LakeError::TagExists { .. } => Code::AlreadyExists,
        LakeError::InvalidTagName { .. }
        | LakeError::Labels { .. }
        | LakeError::InvalidLocation { .. }
        | LakeError::Query { .. }
        | LakeError::TokenizerMismatch(_) => Code::InvalidArgument,
        _ => Code::Internal,
    };
    status(code, e.to_string())
}

pub fn plan_status(e: PlanError) -> Status {
    let code = match e {
        PlanError::Lake(e) => return lake_status(e),
        PlanError::Recipe { .. }
        | PlanError::Component { .. }
        | PlanError::InvalidCursor { .. }
        | PlanError::InvalidRequest(_) => Code::InvalidArgument,
        PlanError::CursorMismatch { .. } => Code::FailedPrecondition,
        PlanError::Cancelled => Code::Cancelled,
        _ => Code::Internal,
    };
    status(code, e.to_string())
}

pub fn ingest_status(e: IngestError) -> Status {
    match e {
        IngestError::Lake(e) => lake_status(e),
        IngestError::Interrupted => status(Code::Cancelled, e.to_string()),
        other => status(Code::InvalidArgument, other.to_string()),
    }
}

/// A status, logged when it is the server's fault.
pub fn status(code: Code, message: String) -> Status {
    if code == Code::Internal {
        tracing::error!(%message, "internal error");
    }
    metrics::counter!("tokenlake_errors_total", "code" => format!("{code:?}")).increment(1);
    Status::new(code, message)
}

pub fn invalid(message: impl Into<String>) -> Status {
    status(Code::InvalidArgument, message.into())
}

pub fn internal(message: impl Into<String>) -> Status {
    status(Code::Internal, message.into())
}
