//! End-to-end tests: the real `tokenlake` binary against real lakes in temporary directories,
//! on the committed excerpt of the shared corpus (tests/data/README.md says where it is from).
//!
//! A test that needs something a machine may lack lives in a module named `needs_<what>` and is
//! `#[ignore]`d with the reason: `tests/run.sh` runs it where that is at hand and leaves it out
//! where it is not, so the test summary counts it as skipped; run alone without it, it fails
//! saying what it needs ([`support::required_env`]). None passes without having run.

mod support;

mod adversarial;
mod curate;
mod deploy;
mod explorer;
mod export;
mod house;
mod ingest;
mod interop;
mod kill;
mod labels;
mod mix;
mod plan;
mod python_package;
mod query;
mod research;
mod rules;
mod s3;
mod serve;
mod serve_admin;
mod serve_query;
mod serve_tls;
mod shards;
mod shm;
mod similarity;
mod versions;
