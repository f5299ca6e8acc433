//! What a route source's routes weigh: the [`Footprint`] a source publishes for the worker's
//! memory watchdog, and the estimates (pure) of what a frontend and a backend list hold on the
//! heap, shared by the Redis source's cache and the file source's table.
//!
//! Estimates, not measures: each block counts what glibc's malloc takes for it (a header word,
//! rounded up to 16 bytes), and a hash table its slots at its usual load. They are what the
//! watchdog leaves out of `server.memoryLimit`, so they err on the low side: a source never
//! claims memory it does not hold.

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::frontend::{Backend, Frontend};

/// The bytes a route source holds for its routes, as it accounts them: the Redis source's host
/// cache, the file source's table. A worker's memory watchdog leaves them out of what it
/// compares with `server.memoryLimit`: memory the routes are entitled to never retires a worker.
/// Cheap to clone; every clone reads the same count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Footprint(Arc<AtomicU64>);

impl Footprint {
    /// Records that the routes now hold `bytes`.
    pub(crate) fn set(&self, bytes: usize) {
        self.0.store(bytes as u64, Ordering::Relaxed);
    }

    /// The bytes last recorded.
    pub(crate) fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What malloc takes for a block of `len` bytes (0: no block).
pub(crate) fn block(len: usize) -> usize {
    match len {
        0 => 0,
        _ => (len + 8).next_multiple_of(16).max(32),
    }
}

/// An `Arc`'s block around a value of `len` bytes (its two counts first).
pub(crate) fn arc_block(len: usize) -> usize {
    block(2 * size_of::<usize>() + len)
}

/// One slot of a hash table holding `entry` bytes per element (and a control byte), at the
/// seven eighths it fills at most: a lower bound of what an element costs it.
pub(crate) fn table_slot(entry: usize) -> usize {
    (entry + 1) * 8 / 7
}

/// The heap bytes of a shared backend list: its block and each URL's strings.
pub(crate) fn backends(list: &[Backend]) -> usize {
    arc_block(size_of_val(list))
        + list
            .iter()
            .map(|b| block(b.url.host().len()) + block(b.url.as_str().len()))
            .sum::<usize>()
}

/// The heap bytes of a frontend of its own: its block, its key, its id; `with_backends`: its
/// backend list too (not when the list is shared with other frontends and counted once).
pub(crate) fn frontend(frontend: &Frontend, with_backends: bool) -> usize {
    let list = match with_backends {
        true => backends(&frontend.backends),
        false => 0,
    };
    arc_block(size_of::<Frontend>())
        + block(frontend.key.capacity())
        + arc_block(frontend.id.len())
        + list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_as_glibc_allocates_them() {
        assert_eq!(block(0), 0);
        assert_eq!(block(1), 32);
        assert_eq!(block(24), 32);
        assert_eq!(block(25), 48);
        assert_eq!(arc_block(24), 48);
    }

    #[test]
    fn a_footprint_is_shared_by_its_clones() {
        let footprint = Footprint::default();
        footprint.clone().set(4096);
        assert_eq!(footprint.bytes(), 4096);
    }
}
