use thiserror::Error;
use tokenlake_schemas::{ErrorCode, ServiceError};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What went wrong, naming the object or option it concerns. Messages never hold secrets.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{uri:?} is not a place tokenlake can store or read: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("storage option {key:?}: {reason}")]
    Option { key: String, reason: String },
    #[error("{uri} does not exist")]
    NotFound { uri: String },
    #[error("{op} {uri}: {source}")]
    Object {
        op: &'static str,
        uri: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {uri}: {message}")]
    S3 {
        op: &'static str,
        uri: String,
        message: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

impl ServiceError for StorageError {
    fn error_code(&self) -> ErrorCode {
        match self {
            StorageError::InvalidUri { .. } | StorageError::Option { .. } => {
                ErrorCode::InvalidArgument
            }
            StorageError::NotFound { .. } => ErrorCode::NotFound,
            StorageError::Object { source, .. } => object_store_code(source),
            // The SDK retried already: what is left is a store that is down, throttling or
            // unreachable, or one that refused us; either way the request itself was fine.
            StorageError::S3 { .. } => ErrorCode::Unavailable,
            StorageError::Io { .. } => ErrorCode::Internal,
            StorageError::Interrupted => ErrorCode::Cancelled,
        }
    }
}

/// object_store's own kinds. Its enum is non-exhaustive, so its future variants fall to
/// `Unavailable`: every one it has today that is not listed is a store or network failure.
pub fn object_store_code(e: &object_store::Error) -> ErrorCode {
    match e {
        object_store::Error::NotFound { .. } => ErrorCode::NotFound,
        object_store::Error::AlreadyExists { .. } => ErrorCode::AlreadyExists,
        object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. } => {
            ErrorCode::FailedPrecondition
        }
        object_store::Error::InvalidPath { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => ErrorCode::InvalidArgument,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            ErrorCode::FailedPrecondition
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorCode::FailedPrecondition,
        _ => ErrorCode::Unavailable,
    }
}

/// The kind of an error some other library boxed (Lance wraps object_store's in its `IO`):
/// object_store's errors keep their kind, anything else is ours to look at.
pub fn boxed_error_code(e: &(dyn std::error::Error + 'static)) -> ErrorCode {
    match e.downcast_ref::<object_store::Error>() {
        Some(e) => object_store_code(e),
        None => ErrorCode::Internal,
    }
}
