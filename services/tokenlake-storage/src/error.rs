use thiserror::Error;

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
