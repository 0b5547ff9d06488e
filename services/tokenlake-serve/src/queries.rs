//! The queries a server runs, SQL and Catalog's full scans alike: at most
//! `limits.max_queries` at once, on a runtime of their own (so their CPU work never takes the
//! threads that serve streams), each within its deadline and stopped when its caller goes away.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Code, Status};

use crate::error::{internal, status};

/// The queries a server runs: at most `limits.max_queries` at once, on a runtime of their own
/// whose threads have the deep stacks DataFusion's recursive planning needs.
pub struct Queries {
    runtime: Option<tokio::runtime::Runtime>,
    running: Arc<tokio::sync::Semaphore>,
    /// Queries holding a place now, for the gauge.
    count: Arc<std::sync::atomic::AtomicUsize>,
}

/// A running query's place, given back when it ends; `tokenlake_queries_running` follows.
pub struct QueryPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    running: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for QueryPermit {
    fn drop(&mut self) {
        let now = self
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            - 1;
        metrics::gauge!("tokenlake_queries_running").set(now as f64);
    }
}

/// Threads of the queries' runtime: their stacks hold DataFusion's recursion over deep
/// expressions (10,000-term `OR`s), as the command line's do.
const QUERY_STACK_BYTES: usize = 64 << 20;

impl Queries {
    pub fn new(max_queries: usize) -> std::io::Result<Queries> {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(max_queries.max(1));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("query")
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(Queries {
            runtime: Some(runtime),
            running: Arc::new(tokio::sync::Semaphore::new(max_queries)),
            count: Default::default(),
        })
    }

    /// A place for one more query, or RESOURCE_EXHAUSTED naming the bound.
    pub fn permit(&self, max_queries: usize) -> Result<QueryPermit, Status> {
        let permit = self.running.clone().try_acquire_owned().map_err(|_| {
            status(
                Code::ResourceExhausted,
                format!(
                    "this server is running {max_queries} queries, the most it runs at once \
                     (limits.max_queries); try again when one ends"
                ),
            )
        })?;
        let now = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        metrics::gauge!("tokenlake_queries_running").set(now as f64);
        Ok(QueryPermit {
            _permit: permit,
            running: self.count.clone(),
        })
    }

    /// Runs `work`, a full scan that is not SQL (Catalog's describe and diff, which hold
    /// per-document sets), as a query is run: counted among the queries at once, on their
    /// runtime, within `limits.query_timeout_ms`, and stopped when the caller goes away.
    pub async fn run<T: Send + 'static>(
        &self,
        limits: &crate::Limits,
        what: &str,
        work: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
    ) -> Result<T, Status> {
        let permit = self.permit(limits.max_queries)?;
        let timeout = Duration::from_millis(limits.query_timeout_ms);
        let mut task = AbortOnDrop(self.runtime().spawn(async move {
            let _permit = permit;
            tokio::time::timeout(timeout, work).await
        }));
        match (&mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(status(
                Code::DeadlineExceeded,
                format!(
                    "{what} ran past {} ms (limits.query_timeout_ms)",
                    timeout.as_millis()
                ),
            )),
            Err(e) => Err(internal(format!("{what}: {e}"))),
        }
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("alive until dropped").handle()
    }
}

/// A task that is aborted when its handle is dropped (its caller went away).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Queries {
    /// Queries still running are abandoned, not waited for (a runtime may not block while
    /// it is dropped from async code, where a server's state can end).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
