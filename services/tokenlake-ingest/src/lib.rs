//! Ingest: reads JSON lines (plain, gzip, zstd) and Parquet inputs as a stream, tokenizes them
//! in parallel with a Hugging Face `tokenizer.json`, and appends them to a lake as exactly one
//! new version.
//!
//! It also reads label files (`doc_id` plus label columns) for `tokenlake label import`.
//!
//! It owns input formats, document identity (`doc_id`), tokenization and the rejects file. It
//! must not know how the lake stores versions (it hands batches to `tokenlake-lake`) nor how
//! progress is shown (callers read [`IngestProgress`]).

mod batch;
mod doc_id;
mod documents;
mod error;
mod input;
mod labels;
mod options;
mod pipeline;
mod progress;
mod reader;
mod rejects;
pub mod shard;
mod staging;
mod tokenizer;

pub use doc_id::doc_id;
pub use error::{IngestError, Result};
pub use input::{InputFormat, InputSpec, for_each_text, probe_input, read_texts};
pub use labels::read_label_file;
pub use options::{IngestOptions, TextFn, TextTransform};
pub use pipeline::{IngestSummary, ingest};
pub use progress::IngestProgress;
pub use shard::{ShardLabeller, ShardOptions};
pub use staging::{StagedInputs, expand_inputs, is_remote_input, stage_inputs};
pub use tokenizer::{LakeTokenizer, TrainOptions, train_bpe};
