//! The co-located transport's shared pieces, used by the server (`tokenlake-serve`) and the
//! Rust client (`tokenlake-client`) alike:
//!
//! - the shared-memory ring both ends map, with its slot metadata records ([`RingWriter`],
//!   [`RingReader`], [`SlotMeta`]; `ring.rs`, this crate's only `unsafe`);
//! - [`coalesce`], which gathers the control messages each side has pending into one, so a
//!   side that keeps up costs one message per wake-up rather than one per batch.

mod coalesce;
mod ring;

pub use coalesce::coalesce;
pub use ring::*;
