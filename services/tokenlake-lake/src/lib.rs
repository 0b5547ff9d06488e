//! The token lake: where a lake lives, its Lance documents table, versions, tags, the side files
//! it owns (tokenizers, rejects) and read-only summaries of a version (describe, diff, samples for review).
//!
//! It must not know how inputs are parsed or tokenized (that is `tokenlake-ingest`), nor anything
//! about plans, streaming or transports. Writes go through [`Lake::append`] and [`Lake::commit_ingest`] (documents) and
//! [`Lake::add_label_columns`] (labels), each of which commits exactly one Lance version or
//! nothing.

mod describe;
mod diff;
mod error;
mod labels;
mod lake;
mod location;
mod progress;
mod query;
mod sample;
mod shards;
mod version_spec;

pub use describe::{Description, GroupTotals};
pub use diff::{Diff, SourceDiff};
pub use error::{LakeError, Result, lance_code, without_source_location};
pub use labels::{LabelFragments, LabelImport};
pub use lake::{CommitProperties, Lake, TagInfo, VersionInfo};
pub use location::LakeLocation;
pub use progress::{Cancel, Progress};
pub use query::{
    QUERY_TABLE, QueryLimits, QueryResult, RowBound, collect_query, plan_query, plan_query_with,
    query_error,
};
pub use sample::Sample;
pub use shards::{
    ShardCommit, ShardLabels, ShardManifest, ShardSchema, ShardSet, ShardSpec, check_set_name,
    inputs_digest,
};
pub use tokenlake_storage::{
    ObjectStorage, RequestCounts, RequestTotals, StorageError, StorageOptions, StorageUri,
};
pub use version_spec::VersionSpec;

/// Name of the Lance dataset that holds the documents table inside a lake.
pub const DOCUMENTS_TABLE: &str = "documents.lance";
