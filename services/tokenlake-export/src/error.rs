use std::path::Path;

use tokenlake_schemas::{ErrorCode, ServiceError};

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Lake(#[from] tokenlake_lake::LakeError),

    #[error("{message}")]
    Invalid { message: String },

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("writing {path}: {message}")]
    Format { path: String, message: String },

    #[error("interrupted: no export file was published")]
    Interrupted,
}

impl ExportError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + use<> {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    }

    pub(crate) fn format(path: &Path) -> impl FnOnce(String) -> ExportError + use<> {
        let path = path.display().to_string();
        move |message| ExportError::Format { path, message }
    }
}

impl ServiceError for ExportError {
    fn error_code(&self) -> ErrorCode {
        match self {
            ExportError::Lake(e) => e.error_code(),
            ExportError::Invalid { .. } => ErrorCode::InvalidArgument,
            ExportError::Io { .. } | ExportError::Format { .. } => ErrorCode::Internal,
            ExportError::Interrupted => ErrorCode::Cancelled,
        }
    }
}
