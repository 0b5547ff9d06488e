//! Curation labels for a lake version (Ziya2 §2, as labels, never deletions): preprocessing
//! ([`preprocess`]), language identification ([`lang`]), n-gram language-model perplexity and
//! quality tiers ([`lm`], [`labeler`]), rule signals and flags ([`rules`], [`detect`]),
//! de-duplication ([`dedup`]) with its partitioned index persisted in the lake
//! ([`dedup_store`], tagged with a [`state`]), and
//! `tokenlake curate`, which adds them all to the lake as one version ([`curate::curate`]).
//! The pipeline file ([`config`]) sets every threshold.

pub mod config;
pub mod curate;
pub mod dedup;
pub mod dedup_store;
pub mod detect;
pub mod eval;
mod hanzi;
pub mod labeler;
pub mod lang;
pub mod lm;
pub mod preprocess;
mod punctuation;
mod report;
pub mod rule_words;
pub mod rules;
pub mod shards;
pub mod state;
pub mod svg;
pub mod words;

#[cfg(test)]
mod corpus_tests;

pub use config::{ConfigError, Pipeline, PipelineConfig};
pub use curate::{CurateError, CurateOptions, CurateSummary, DedupOptions, curate, label_schema};
