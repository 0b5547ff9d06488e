//! One module per group of commands.

pub mod ingest;
pub mod lake;
pub mod tokenizer;
