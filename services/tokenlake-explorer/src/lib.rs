//! The corpus explorer: the lake in a browser. One HTTP listener serves a web application whose
//! every asset is compiled into the binary (nothing is loaded from elsewhere: training clusters
//! are often offline) and a JSON API over the lake crates: versions and diffs, describe,
//! documents with their labels, duplicate clusters, read-only SQL and recipe previews.
//!
//! Security follows the gRPC services: the same tokens and roles (`auth.rs`; a sign-in keeps the
//! token's session in an HttpOnly, SameSite=Strict cookie), readers read and only admins tag,
//! every response carries a strict Content-Security-Policy, and the application writes document
//! text into the page only as text, never as markup. Every request is bounded: rows per page
//! and per query, query time and memory, concurrent queries and plans (`Limits`).

mod api;
mod assets;
mod auth;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokenlake_lake::LakeLocation;

pub use auth::{Access, Role};

/// What one request may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows a SQL query returns at most (more are cut, and the answer says so).
    pub query_max_rows: u64,
    pub query_timeout: Duration,
    /// Memory one query's operators may hold.
    pub query_max_memory_bytes: Option<usize>,
    /// Arrow memory one result keeps (more rows are cut, and the answer says so).
    pub query_max_result_bytes: usize,
    /// Queries (SQL, document pages, counts) running at once; more wait.
    pub max_queries: usize,
    /// Rows of a document page.
    pub max_page_rows: usize,
    /// Characters of a document's text sent in a listing (the document's page has it whole).
    pub listing_text_chars: usize,
    /// The longest sample (`seq_len + 1`) a previewed recipe may ask for.
    pub max_sample_len: u64,
    /// Time a recipe preview may spend planning; beyond it the build is cancelled (nothing
    /// half-built is kept) and the answer says to plan it with `tokenlake plan`.
    pub preview_timeout: Duration,
    /// The bound over token caches, plan indexes and selections that previews build (least
    /// recently used ones evicted beyond it); a selection's token store larger than it is read
    /// through a window instead of copied.
    pub cache_max_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            query_max_rows: 10_000,
            query_timeout: Duration::from_secs(30),
            query_max_memory_bytes: Some(512 << 20),
            query_max_result_bytes: 64 << 20,
            max_queries: 4,
            max_page_rows: 200,
            listing_text_chars: 600,
            max_sample_len: 1 << 17,
            preview_timeout: Duration::from_secs(120),
            cache_max_bytes: None,
        }
    }
}

/// The explorer's configuration: the lakes by name, who may read them, the limits, and where
/// token caches of previewed plans go (the lake's own cache when None).
pub struct Explorer {
    pub lakes: BTreeMap<String, LakeLocation>,
    pub access: Access,
    pub limits: Limits,
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Serves `explorer` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    explorer: Explorer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(api::State::new(explorer));
    let app = api::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
