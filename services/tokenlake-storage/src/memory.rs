//! `memory://` stores: one in-memory object store for the life of the process, shared by Lance
//! and tokenlake's own reads and writes, so tests can run a whole lake without touching disk.
//! Keys are `NAME/KEY`, the way Lance's memory provider spells `memory://NAME/KEY`.

use std::sync::{Arc, OnceLock};

use object_store::memory::InMemory;

pub(crate) fn memory_store() -> Arc<InMemory> {
    static STORE: OnceLock<Arc<InMemory>> = OnceLock::new();
    STORE.get_or_init(|| Arc::new(InMemory::new())).clone()
}
