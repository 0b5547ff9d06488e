//! Curation labels for a lake version (Ziya2 §2, as labels, never deletions). So far the
//! de-duplication stage: fingerprints of every document ([`dedup::Fingerprinter`]) and the
//! clusters they form in ingest order ([`dedup::Deduplicator`]).

pub mod dedup;
pub mod words;

#[cfg(test)]
mod corpus_tests;
