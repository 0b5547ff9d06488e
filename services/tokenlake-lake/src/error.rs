//! Errors of the lake crate; each message names the lake, version or tag it is about.

use tokenlake_schemas::{ErrorCode, SchemaError, ServiceError};

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("no lake at {lake}: ingest documents into it first (tokenlake ingest {lake} ...)")]
    LakeNotFound { lake: String },

    #[error("lake {lake} has no version {version}; it has versions 1..={latest}")]
    VersionNotFound {
        lake: String,
        version: u64,
        latest: u64,
    },

    #[error("lake {lake} has no tag {tag:?}; `tokenlake tag {lake} list` shows the tags")]
    TagNotFound { lake: String, tag: String },

    #[error(
        "tag {tag:?} already names version {version} of lake {lake}; delete it first to move it"
    )]
    TagExists {
        lake: String,
        tag: String,
        version: u64,
    },

    #[error("invalid tag name {tag:?}: {reason}")]
    InvalidTagName { tag: String, reason: String },

    #[error("labels refused by lake {lake}: {reason}")]
    Labels { lake: String, reason: String },

    #[error("shard set {set:?} of lake {lake}: {reason}")]
    Shards {
        lake: String,
        set: String,
        reason: String,
    },

    #[error("invalid lake location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },

    #[error("lake {lake}: {source}")]
    Schema {
        lake: String,
        #[source]
        source: SchemaError,
    },

    #[error(
        "lake {} was tokenized with tokenizer {:.12} ({} ids), not with the given one {:.12} \
         ({} ids); use the lake's tokenizer (saved at {}) or ingest into a new lake",
        .0.lake, .0.lake_sha, .0.lake_width, .0.given_sha, .0.given_width, .0.saved
    )]
    TokenizerMismatch(Box<TokenizerMismatch>),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {}", without_source_location(&source.to_string()))]
    Lance {
        context: String,
        #[source]
        source: lance::Error,
    },

    /// The query is the caller's mistake: bad SQL, an unknown column, a statement that writes.
    #[error("{message}")]
    Query { message: String },

    #[error("{message}")]
    QueryEngine { message: String },

    /// A query over a limit of what one query may use.
    #[error("{message}")]
    QueryTooLarge { message: String },

    #[error(transparent)]
    Storage(#[from] tokenlake_storage::StorageError),

    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

/// The two tokenizers of a refused ingest (boxed: it is the largest error).
#[derive(Debug)]
pub struct TokenizerMismatch {
    pub lake: String,
    pub lake_sha: String,
    pub lake_width: String,
    pub given_sha: String,
    pub given_width: String,
    pub saved: String,
}

impl LakeError {
    pub(crate) fn lance(context: impl Into<String>) -> impl FnOnce(lance::Error) -> LakeError {
        let context = context.into();
        move |source| LakeError::Lance { context, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LakeError {
        let context = context.into();
        move |source| LakeError::Io { context, source }
    }
}

/// Lance ends many messages with the place in its own source that raised them
/// (`…, src/dataset/scanner.rs:839:33`, as an absolute path of the machine that built it):
/// useful to Lance's developers, noise to a user. Returns `text` without it.
impl ServiceError for LakeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            LakeError::LakeNotFound { .. }
            | LakeError::VersionNotFound { .. }
            | LakeError::TagNotFound { .. } => ErrorCode::NotFound,
            LakeError::TagExists { .. } => ErrorCode::AlreadyExists,
            LakeError::InvalidTagName { .. }
            | LakeError::Labels { .. }
            | LakeError::InvalidLocation { .. }
            | LakeError::Query { .. }
            | LakeError::TokenizerMismatch(_) => ErrorCode::InvalidArgument,
            // A shard set that is incomplete or disagrees: the request is fine, the set is not
            // ready for it.
            LakeError::Shards { .. } => ErrorCode::FailedPrecondition,
            LakeError::QueryTooLarge { .. } => ErrorCode::ResourceExhausted,
            // The location holds a dataset that is not a tokenlake lake (or a newer one).
            LakeError::Schema { .. } => ErrorCode::FailedPrecondition,
            LakeError::Lance { source, .. } => lance_code(source),
            LakeError::Storage(e) => e.error_code(),
            LakeError::Io { .. } | LakeError::QueryEngine { .. } | LakeError::Arrow { .. } => {
                ErrorCode::Internal
            }
        }
    }
}

/// The kind of a Lance error. Lance's enum is matched in full so that a Lance upgrade that adds
/// a variant is decided here, not defaulted.
pub fn lance_code(e: &lance::Error) -> ErrorCode {
    use lance::Error as E;
    match e {
        E::InvalidInput { .. }
        | E::SchemaMismatch { .. }
        | E::Schema { .. }
        | E::InvalidTableLocation { .. }
        | E::InvalidRef { .. }
        | E::FieldNotFound { .. } => ErrorCode::InvalidArgument,
        E::DatasetNotFound { .. }
        | E::NotFound { .. }
        | E::IndexNotFound { .. }
        | E::RefNotFound { .. }
        | E::VersionNotFound { .. } => ErrorCode::NotFound,
        E::DatasetAlreadyExists { .. } => ErrorCode::AlreadyExists,
        // Another writer got there first, or the store was slow: the same request may succeed.
        E::CommitConflict { .. }
        | E::RetryableCommitConflict { .. }
        | E::TooMuchWriteContention { .. }
        | E::VersionConflict { .. }
        | E::Backpressure { .. }
        | E::Timeout { .. } => ErrorCode::Unavailable,
        E::DiskCapExceeded { .. } => ErrorCode::ResourceExhausted,
        E::IncompatibleTransaction { .. }
        | E::NotSupported { .. }
        | E::PrerequisiteFailed { .. }
        | E::Unprocessable { .. }
        | E::RefConflict { .. }
        | E::Fenced { .. } => ErrorCode::FailedPrecondition,
        E::IO { source, .. } => tokenlake_storage::boxed_error_code(source.as_ref()),
        E::Wrapped { error, .. } => tokenlake_storage::boxed_error_code(error.as_ref()),
        E::External { source } => tokenlake_storage::boxed_error_code(source.as_ref()),
        E::Shared { source } => lance_code(source),
        E::Stop => ErrorCode::Cancelled,
        E::CorruptFile { .. }
        | E::Internal { .. }
        | E::Arrow { .. }
        | E::Index { .. }
        | E::Cloned { .. }
        | E::Execution { .. }
        | E::Cleanup { .. }
        | E::Namespace { .. } => ErrorCode::Internal,
    }
}

pub fn without_source_location(text: &str) -> String {
    let Some(at) = text.rfind(", ") else {
        return text.to_string();
    };
    let mut parts = text[at + 2..].rsplitn(3, ':');
    let is_number =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let (column, line, file) = (parts.next(), parts.next(), parts.next());
    if is_number(column) && is_number(line) && file.is_some_and(|f| f.ends_with(".rs")) {
        text[..at].to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::without_source_location;

    #[test]
    fn lance_source_locations_are_dropped_and_other_text_kept() {
        assert_eq!(
            without_source_location(
                "Invalid user input: No field named nocol., /build/lance-14.0.2/src/dataset/scanner.rs:839:33"
            ),
            "Invalid user input: No field named nocol."
        );
        for kept in ["a, b", "ends at line 3:4", "x, y.rs:1", "x, y.txt:1:2"] {
            assert_eq!(without_source_location(kept), kept);
        }
    }
}
