//! Where lakes and inputs live: local paths, `memory://` and `s3://` through object_store (the
//! same stores Lance uses), the S3 calls object_store lacks (buckets, presigned URLs) through
//! the AWS SDK, and the options that configure both.
//!
//! It knows nothing of lakes, documents or plans: those build on [`StorageUri`],
//! [`StorageOptions`] and [`ObjectStorage`].

mod counting;
mod error;
mod memory;
mod options;
mod pattern;
mod s3;
mod store;
mod uri;

use std::sync::Arc;

pub use counting::{CountingStore, RequestCounts, RequestTotals};
pub use error::{Result, StorageError, boxed_error_code, object_store_code};
pub use options::{StorageOptions, is_secret};
pub use pattern::expand_pattern;
pub use s3::{BucketState, S3Admin};
pub use store::{MULTIPART_THRESHOLD, ObjectStorage, retry_config};
pub use uri::StorageUri;

/// What Lance needs to open `uri` with `options`: the options themselves, plus a wrapper that
/// counts requests (when `counts` is given) and points `memory://` at the process's one
/// in-memory store, which tokenlake's own reads and writes share.
pub fn lance_store_params(
    uri: &StorageUri,
    options: &StorageOptions,
    counts: Option<Arc<RequestCounts>>,
) -> lance::io::ObjectStoreParams {
    let memory = matches!(uri, StorageUri::Memory { .. });
    let mut params = lance::io::ObjectStoreParams {
        storage_options_accessor: (!options.is_empty()).then(|| {
            Arc::new(lance::io::StorageOptionsAccessor::with_static_options(
                options.to_map(),
            ))
        }),
        ..Default::default()
    };
    if memory || counts.is_some() {
        params.object_store_wrapper = Some(Arc::new(LakeStoreWrapper { memory, counts }));
    }
    params
}

#[derive(Debug)]
struct LakeStoreWrapper {
    memory: bool,
    counts: Option<Arc<RequestCounts>>,
}

impl lance::io::WrappingObjectStore for LakeStoreWrapper {
    fn wrap(
        &self,
        _prefix: &str,
        original: Arc<dyn object_store::ObjectStore>,
    ) -> Arc<dyn object_store::ObjectStore> {
        // Lance's memory provider makes a fresh store per open; hand it the shared one.
        let store = if self.memory {
            memory::memory_store() as Arc<dyn object_store::ObjectStore>
        } else {
            original
        };
        match &self.counts {
            Some(counts) => Arc::new(CountingStore::new(store, counts.clone())),
            None => store,
        }
    }

    // Counting observes, so paged listings may keep their pushdown (and go uncounted; reads,
    // which the benchmarks report, always pass through `wrap`). Replacing the memory store
    // intercepts, so its listings must go through `wrap`.
    fn wrap_paginated(
        &self,
        _prefix: &str,
        original: Arc<dyn object_store::list::PaginatedListStore>,
    ) -> Option<Arc<dyn object_store::list::PaginatedListStore>> {
        (!self.memory).then_some(original)
    }
}
