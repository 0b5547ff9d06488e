//! Errors in one place: what the server refuses to start with (`ServeError`), and how every
//! library error becomes a gRPC status with a message a person can act on.

use tokenlake_schemas::{ErrorCode, ServiceError};
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

/// The gRPC code of an error kind: one exhaustive table, so a new kind cannot reach a client
/// unmapped. Each library error says its kind where its variants are defined
/// ([`ServiceError::error_code`]).
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Cancelled => Code::Cancelled,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// The status of any library error: its own code, its own message (logged when it is ours).
pub fn service_status<E: ServiceError>(e: E) -> Status {
    status(grpc_code(e.error_code()), e.to_string())
}

/// The message a background job reports for `e` (logged when it is the server's fault): a job
/// has no gRPC status of its own, so nothing is counted as a returned error.
pub fn job_failure<E: ServiceError>(e: &E) -> String {
    let message = e.to_string();
    if e.error_code() == ErrorCode::Internal {
        tracing::error!(%message, "job failed");
    }
    message
}

/// A status, logged when it is the server's fault. Statuses are counted in
/// `tokenlake_errors_total` where they are sent ([`crate::server`]'s response layer), not here:
/// a status built and dropped, or turned into a job's message, is no returned error.
pub fn status(code: Code, message: String) -> Status {
    if code == Code::Internal {
        tracing::error!(%message, "internal error");
    }
    Status::new(code, message)
}

pub fn invalid(message: impl Into<String>) -> Status {
    status(Code::InvalidArgument, message.into())
}

pub fn internal(message: impl Into<String>) -> Status {
    status(Code::Internal, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_become_unavailable_and_every_kind_has_its_own_code() {
        let kinds = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::FailedPrecondition,
            ErrorCode::ResourceExhausted,
            ErrorCode::Cancelled,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        let codes: std::collections::HashSet<Code> = kinds.iter().map(|k| grpc_code(*k)).collect();
        assert_eq!(codes.len(), kinds.len());
        for kind in kinds {
            assert_eq!(kind.is_retryable(), grpc_code(kind) == Code::Unavailable);
        }
    }

    #[test]
    fn throttling_is_retryable_local_io_is_ours_and_bad_input_is_the_callers() {
        let throttled = tokenlake_lake::LakeError::Storage(tokenlake_lake::StorageError::S3 {
            op: "GET",
            uri: "s3://bucket/lake".into(),
            message: "SlowDown: please reduce your request rate".into(),
        });
        assert_eq!(service_status(throttled).code(), Code::Unavailable);
        let disk = tokenlake_ingest::IngestError::Rejects {
            path: "rejects.jsonl".into(),
            source: std::io::Error::other("no space left on device"),
        };
        assert_eq!(service_status(disk).code(), Code::Internal);
        let input = tokenlake_ingest::IngestError::Input {
            path: "in.jsonl".into(),
            reason: "not JSON".into(),
        };
        assert_eq!(service_status(input).code(), Code::InvalidArgument);
        let no_text = tokenlake_curate::CurateError::NoText {
            lake: "l".into(),
            doc_id: 1,
        };
        assert_eq!(service_status(no_text).code(), Code::FailedPrecondition);
        let plan = tokenlake_plan::PlanError::Lake(tokenlake_lake::LakeError::TagNotFound {
            lake: "l".into(),
            tag: "t".into(),
        });
        assert_eq!(service_status(plan).code(), Code::NotFound);
    }
}
