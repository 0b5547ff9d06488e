//! The figures behind `tokenlake bench …`, kept out of the engine crates (as DataFusion keeps
//! `benchmarks/` and Lance `benches/`): each module measures one path through the public API
//! of the crate it exercises, next to a baseline measured in the same run, because the
//! machines these run on are shared and noisy and only ratios compare across runs.
//!
//! - [`ingest`]: reading and parsing alone, then tokenizing, against a full ingest.
//! - [`query`]: the label GROUP BY researchers run most, against a hand-grouped Lance scan.
//! - [`plan`]: building a plan over a synthetic token cache; assembling batches against
//!   memcpy of the same bytes.
//! - [`grpc`]: gRPC and shared-memory streams from a loopback server against in-process
//!   assembly, the server's and clients' CPU, idle streams' memory, and (feature `cuda`)
//!   batches into GPU memory.
//! - [`window`]: a node of a large world reading a token store through a window, simulated
//!   over a real plan index and a latency model of object storage.
//! - [`curate`]: each curation stage per core, and [`datatrove`]'s rate on the same rule sets.
//! - [`mix`]: a proxy run of `mix design` planned in full against identified.
//!
//! The command line (`services/tokenlake`) only parses flags and prints these figures.

pub mod curate;
pub mod datatrove;
pub mod dedup;
pub mod grpc;
pub mod ingest;
pub mod labels;
pub mod mix;
pub mod plan;
pub mod query;
pub mod window;
