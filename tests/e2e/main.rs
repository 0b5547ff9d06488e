//! End-to-end tests: the real `tokenlake` binary against real lakes in temporary directories,
//! on the committed excerpt of the shared corpus (tests/data/README.md says where it is from).

mod support;

mod curate;
mod deploy;
mod export;
mod ingest;
mod interop;
mod kill;
mod labels;
mod plan;
mod query;
mod research;
mod rules;
mod s3;
mod serve;
mod shards;
mod shm;
mod similarity;
mod versions;
