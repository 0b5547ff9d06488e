//! Curation labels for a lake version (Ziya2 §2, as labels, never deletions). So far the
//! de-duplication stage: fingerprints of every document ([`dedup::Fingerprinter`]), the
//! clusters they form in ingest order ([`dedup::Deduplicator`]), and `tokenlake curate`, which
//! adds them to the lake as one version ([`curate::curate`]).

pub mod curate;
pub mod dedup;
pub mod words;

#[cfg(test)]
mod corpus_tests;

pub use curate::{CurateError, CurateProgress, CurateSummary, curate};
