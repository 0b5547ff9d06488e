//! `tokenlake serve`: the planner as a gRPC service that many training ranks use at once.
//!
//! - [`config`]: the TOML file and flags; the lakes a request may name.
//! - [`auth`]: bearer tokens and roles, checked by an interceptor per service.
//! - [`state`]: configured lakes and the plans prepared so far, shared by every stream.
//! - [`stream`]: Stream (micro-batches with cursors, bounded prefetch) and Plan (dry run).
//! - [`catalog`], [`query`], [`admin`] (with [`jobs`]): versions and tags, read-only SQL, writes.
//! - [`error`]: the one table from a library error's kind to its gRPC status.
//! - [`server`]: wiring, health, reflection, metrics (errors counted as they are sent, in
//!   `sent_errors`), graceful shutdown.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod jobs;
pub mod queries;
pub mod query;
mod sent_errors;
pub mod server;
pub mod state;
pub mod stream;

pub use auth::Role;
pub use config::{Limits, ServerConfig};
pub use error::ServeError;
pub use server::BoundServer;
pub use state::{ServedPlan, ServerState};
