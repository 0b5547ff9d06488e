//! Errors of the planner. A recipe error names the recipe file and line; a component error
//! names the component and the line its filter is on; a cursor error says which part differs.

use tokenlake_lake::LakeError;

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

    #[error("interrupted; the cache keeps only what was complete before")]
    Cancelled,
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
