//! Research tools over a lake's labels: Ziya2's data-centric scaling law ([`scaling_law`]),
//! fitting how training loss depends on the data's coherence, readability and similarity to
//! downstream tasks and on the number of tokens; those three attributes of a recipe's
//! components and stages ([`attributes`]); and the similarity attribute itself
//! ([`similarity`], [`label`]): each document's closeness to a test set and its 13-gram
//! contamination, committed as label columns; and mixture design ([`mixture`]): a stage's
//! weights from small proxy runs.

pub mod attributes;
pub mod label;
pub mod mixture;
pub mod scaling_law;
pub mod similarity;
pub mod targets;

#[cfg(test)]
mod corpus_tests;
