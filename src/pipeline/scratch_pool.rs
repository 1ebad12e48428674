//! The scratch pool: redaction scratch spaces kept between batches.
//!
//! It is its own file because it is about memory, not about what happens to
//! a record: making a scratch space allocates (the regex cache, the key
//! cache), which per batch would cost more than redacting a short batch, so
//! the route stage takes one from here and gives it back when it is done.
//! Each is tied to the engine that made it, so a reload (SIGHUP) never
//! pairs an engine with another engine's scratch space.

use std::sync::{Arc, Mutex};

use crate::{Engine, Scratch};

/// Scratch spaces kept in the pool: one per worker and request in flight
/// is plenty; more would only hold memory.
const SCRATCH_POOL_MAX: usize = 8;

/// Scratch spaces kept between batches, each with the engine that made it.
///
/// No `Debug`: a scratch space may hold pieces of the records it redacted.
#[derive(Default)]
pub(super) struct ScratchPool(Mutex<Vec<(Arc<Engine>, Scratch)>>);

impl ScratchPool {
    /// `engine` with a scratch space made by it.
    pub(super) fn take(&self, engine: Arc<Engine>) -> (Arc<Engine>, Scratch) {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Scratch spaces of a replaced engine are dropped on the way.
        while let Some((e, s)) = pool.pop() {
            if Arc::ptr_eq(&e, &engine) {
                return (engine, s);
            }
        }
        drop(pool);
        let scratch = engine.scratch();
        (engine, scratch)
    }

    /// Returns a scratch space to the pool.
    pub(super) fn recycle(&self, engine: Arc<Engine>, scratch: Scratch) {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < SCRATCH_POOL_MAX {
            pool.push((engine, scratch));
        }
    }
}
