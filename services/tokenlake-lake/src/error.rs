//! Errors of the lake crate; each message names the lake, version or tag it is about.

use tokenlake_schemas::SchemaError;

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

    #[error("{context}: {source}")]
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
