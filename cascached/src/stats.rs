//! The server's counters for `stats`. Each worker thread counts into a block of its own (no
//! cache line is shared between threads on the request path); `stats` sums the blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One counter of `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Keys fetched (`get`, `gets`, `mg`), hits or not.
    CmdGet,
    /// Storage commands (`set`, `add`, `replace`, `append`, `prepend`, `cas`, `ms`).
    CmdSet,
    /// `flush_all`.
    CmdFlush,
    /// Keys touched (`touch`, `gat`, `gats`, `mg … T`).
    CmdTouch,
    /// Fetches that found the key.
    GetHits,
    /// Fetches that did not.
    GetMisses,
    /// Fetches that found the key expired.
    GetExpired,
    /// Deletes that found the key.
    DeleteHits,
    /// Deletes that did not.
    DeleteMisses,
    /// `incr` on a present key.
    IncrHits,
    /// `incr` on a missing key.
    IncrMisses,
    /// `decr` on a present key.
    DecrHits,
    /// `decr` on a missing key.
    DecrMisses,
    /// `cas` that stored.
    CasHits,
    /// `cas` on a missing key.
    CasMisses,
    /// `cas` with a stale unique.
    CasBadval,
    /// Touches that found the key.
    TouchHits,
    /// Touches that did not.
    TouchMisses,
    /// Storage commands refused for their size.
    StoreTooLarge,
    /// Items stored.
    TotalItems,
    /// Connections closed for waiting longer than `-o idle_timeout` for a command.
    IdleKicks,
    /// Bytes received from clients.
    BytesRead,
    /// Bytes sent to clients.
    BytesWritten,
}

const COUNTERS: usize = Counter::BytesWritten as usize + 1;

/// A block of counters written by one thread.
#[derive(Debug)]
pub struct Counters([AtomicU64; COUNTERS]);

impl Counters {
    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    #[inline]
    pub fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }
}

/// The whole server's counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    blocks: Mutex<Vec<Arc<Counters>>>,
    /// Open client connections.
    pub curr_connections: AtomicU64,
    /// Client connections accepted since the start.
    pub total_connections: AtomicU64,
    /// Connections refused by the `-c` limit.
    pub rejected_connections: AtomicU64,
}

impl ServerStats {
    /// A new block of counters (one per worker thread), included in every sum.
    pub fn new_block(&self) -> Arc<Counters> {
        let block = Arc::new(Counters(std::array::from_fn(|_| AtomicU64::new(0))));
        self.blocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Arc::clone(&block));
        block
    }

    /// The sum of `counter` over every block.
    pub fn sum(&self, counter: Counter) -> u64 {
        self.blocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|block| block.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// `stats reset`: zeroes the counters (not the connection gauges).
    pub fn reset(&self) {
        for block in self
            .blocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            for counter in &block.0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
        self.total_connections.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
    }
}
