//! One module per group of commands.

pub mod bench;
pub mod bench_curate;
pub mod bench_window;
pub mod curate;
pub mod dedup;
pub mod eval;
pub mod export;
pub mod ingest;
pub mod labels;
pub mod lake;
pub mod lm;
pub mod mix;
pub mod plan;
pub mod query;
pub mod remote;
pub mod scaling_law;
pub mod serve;
pub mod similarity;
pub mod storage;
pub mod tokenizer;
