//! The planner: the streaming contract (`docs/streaming-contract.md`) as a library. A [`Recipe`] (stages,
//! components as SQL filters, weights, packing) over one resolved lake version becomes a
//! [`Plan`]: a pure function of the recipe less its lake location, the seed and the selected
//! documents, giving random access to every global sample. [`RankStream`] cuts it into
//! micro-batches per rank; a [`Cursor`] resumes it anywhere in O(1).
//!
//! Built indexes are memory-mapped files in a cache directory (`<lake>/cache` by default):
//! `selections/` (roaring bitmaps of rows per version and filter), `tokens/` (flat token caches)
//! and `plans/` (plan indexes), each written once and never changed. A selection too large for
//! a node's disk is published once as a token store in object storage (`store.rs`, sharded or
//! not) and read through a bounded window that fetches each rank's next documents ahead
//! (`window.rs`); see `docs/token-store.md`.
//!
//! It knows nothing of transports: the gRPC service and the shared-memory path serve what
//! [`Plan::read_sample`] writes.

mod blend;
mod build;
mod cache_dir;
mod cursor;
mod error;
mod materialise;
mod mmap;
mod packing;
mod piece_sums;
mod plan;
mod plan_index;
mod prepare;
mod publish;
mod recipe;
mod rng;
mod store;
mod stream;
mod summary;
mod token_cache;
mod window;

#[cfg(test)]
mod past_u32_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod window_tests;

pub use blend::{Blender, Weights};
pub use build::{MAX_EPOCHS, build_plan, plan_dir_name};
pub use cache_dir::{CacheHold, Eviction, evict};
pub use cursor::{Cursor, PlanId};
pub use error::{PlanError, Result};
pub use materialise::{VersionKey, selection_key, token_cache_for};
pub use piece_sums::add_piece_checksums;
pub use plan::{Plan, SampleMeta, Span};
pub use plan_index::{IndexMetrics, IndexSource, PAGE as INDEX_PAGE, page_sums};
pub use prepare::{
    CacheMode, PlanOptions, PreparedPlan, default_remote_cache_dir, identify, materialise,
    materialise_shard, open_or_build, plan_id, prepare, seal,
};
pub use recipe::{Budget, Component, MAX_COMPONENTS, Packing, Recipe, Stage};
pub use rng::{SplitMix64, mix64};
pub use store::{
    DEFAULT_CHUNK_BYTES, StoreChunks, StoreManifest, StorePart, TokenStore, chunk_key, shard_prefix,
};
pub use stream::{MicroBatch, PENDING_STEPS, RankSpec, RankStream};
pub use summary::{ComponentSummary, PlanReport, PlanSummary, StageComponent, StageSummary};
pub use token_cache::{
    CachedDoc, ComponentManifest, ComponentSelection, TokenCache, TokenCacheBuilder, TokenManifest,
};
pub use tokenlake_lake::{Cancel, Progress};
pub use window::{
    ChunkSource, DocRef, Horizon, ReadFuture, Window, WindowMetrics, WindowOptions, ramp,
};
