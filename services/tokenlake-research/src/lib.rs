//! Research tools over a lake's labels. So far Ziya2's data-centric scaling law
//! ([`scaling_law`]): fitting how training loss depends on the data's coherence, readability
//! and similarity to downstream tasks, and on the number of tokens.

pub mod scaling_law;
