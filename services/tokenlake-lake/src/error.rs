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

    #[error("invalid lake location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },

    #[error("lake {lake}: {source}")]
    Schema {
        lake: String,
        #[source]
        source: SchemaError,
    },

    #[error(
        "lake {lake} was tokenized with tokenizer {lake_sha:.12} ({lake_width} ids), \
         not with the given one {given_sha:.12} ({given_width} ids); use the lake's tokenizer \
         (saved at {saved}) or ingest into a new lake"
    )]
    TokenizerMismatch {
        lake: String,
        lake_sha: String,
        lake_width: String,
        given_sha: String,
        given_width: String,
        saved: String,
    },

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

    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
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
