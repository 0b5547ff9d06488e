//! Errors of the planner. A recipe error names the recipe file and line; a component error
//! names the component and the line its filter is on; a cursor error says which part differs.

use tokenlake_lake::LakeError;
use tokenlake_schemas::{ErrorCode, ServiceError};

pub type Result<T, E = PlanError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("recipe {path}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Recipe {
        path: String,
        line: Option<usize>,
        message: String,
    },

    #[error("recipe {path} line {line}: component {component:?}: {message}")]
    Component {
        path: String,
        line: usize,
        component: String,
        message: String,
    },

    #[error(transparent)]
    Lake(#[from] LakeError),

    #[error("{context}: {source}")]
    Lance {
        context: String,
        #[source]
        source: lance::Error,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cache file {path} is damaged ({reason}); delete it and plan again")]
    CacheCorrupt { path: String, reason: String },

    #[error("invalid cursor {cursor:?}: {reason}")]
    InvalidCursor { cursor: String, reason: String },

    #[error(
        "the cursor belongs to another plan: {differences}; resume with the recipe and lake version that made it"
    )]
    CursorMismatch { differences: String },

    #[error("invalid stream request: {0}")]
    InvalidRequest(String),

    #[error(
        "no token store at {uri} for this selection: publish it once with `tokenlake materialise \
         RECIPE` (or stream with --cache-mode full)"
    )]
    NoTokenStore { uri: String },

    #[error("token store: {0}")]
    Store(String),

    #[error("the token store did not answer: {reason}")]
    Fetch { reason: String },

    /// A look-ahead read of a paged plan index found pages missing and started their GETs
    /// (`plan_index::without_waiting`); the stream tries that step again later. Never returned
    /// by the crate's public functions.
    #[error("plan index pages are still being fetched")]
    IndexPending,

    #[error("interrupted; the cache keeps only what was complete before")]
    Cancelled,

    #[error(
        "no cache directory for a remote lake: set TOKENLAKE_CACHE_DIR (or --cache-dir, or \
         cache_dir in the server's config), XDG_CACHE_HOME or HOME"
    )]
    NoCacheDir,
}

impl ServiceError for PlanError {
    fn error_code(&self) -> ErrorCode {
        match self {
            PlanError::Lake(e) => e.error_code(),
            PlanError::Recipe { .. }
            | PlanError::Component { .. }
            | PlanError::InvalidCursor { .. }
            | PlanError::InvalidRequest(_) => ErrorCode::InvalidArgument,
            PlanError::CursorMismatch { .. }
            | PlanError::NoCacheDir
            | PlanError::NoTokenStore { .. }
            | PlanError::Store(_) => ErrorCode::FailedPrecondition,
            PlanError::Cancelled => ErrorCode::Cancelled,
            PlanError::Fetch { .. } | PlanError::IndexPending => ErrorCode::Unavailable,
            PlanError::Lance { source, .. } => tokenlake_lake::lance_code(source),
            // The cache directory is the server's own disk.
            PlanError::Io { .. } | PlanError::CacheCorrupt { .. } => ErrorCode::Internal,
        }
    }
}

/// Token stores and lakes share storage: its errors keep their kinds (throttling and network
/// are retryable) through the lake's.
impl From<tokenlake_lake::StorageError> for PlanError {
    fn from(e: tokenlake_lake::StorageError) -> Self {
        PlanError::Lake(LakeError::Storage(e))
    }
}

impl PlanError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlanError {
        let context = context.into();
        move |source| PlanError::Io { context, source }
    }

    pub(crate) fn lance(context: impl Into<String>) -> impl FnOnce(lance::Error) -> PlanError {
        let context = context.into();
        move |source| PlanError::Lance { context, source }
    }
}
