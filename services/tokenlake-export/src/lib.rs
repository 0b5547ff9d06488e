//! Exports of a lake version for trainers and tools that do not speak tokenlake: Megatron-Core's
//! indexed dataset (`.bin`/`.idx`), JSON lines and Parquet.

mod error;
mod export;
pub mod megatron;

pub use error::{ExportError, Result};
pub use export::{
    ExportFormat, ExportOptions, ExportSummary, ExportedSelection, Selection, export,
};
