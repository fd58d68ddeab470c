//! Striped counters (the cache's length, its statistics) that cost a thread no atomic
//! read-modify-write.
//!
//! Each thread that uses a cache takes a **stripe index** of its own from a process-wide pool
//! (returned when the thread exits), and every counter has one cache line per index. A thread
//! adds to its own line with a relaxed load and a relaxed store: no `lock`-prefixed instruction,
//! which on x86 is a full barrier that would serialize the memory accesses of consecutive cache
//! operations. The index is exclusively the thread's while it lives, so no increment is lost;
//! the pool's lock orders a dead thread's last stores before the next owner's first load.
//! Threads beyond [`OWNED`] live ones share one more line, with `fetch_add`. Reading sums the
//! lines: exact whenever writes have quiesced.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicIsize, AtomicU64, Ordering};

/// Stripe indexes a thread can own; threads beyond share stripe `OWNED`.
#[cfg(not(loom))]
pub(crate) const OWNED: usize = 64;
#[cfg(loom)]
pub(crate) const OWNED: usize = 0;

/// Stripes per counter: the owned ones and the shared one.
pub(crate) const STRIPES: usize = OWNED + 1;

/// This thread's stripe: `(index, owned)`. The index is cached in a thread-local that needs
/// no destructor, which the compiler reads with one load; only a thread's first call takes an
/// index from the pool (and registers the destructor that gives it back).
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_stripe() -> (usize, bool) {
    let index = stripe::INDEX.with(std::cell::Cell::get);
    if index != stripe::UNSET {
        return (index, index < OWNED);
    }
    stripe::take()
}

#[cfg(not(loom))]
mod stripe {
    use std::cell::Cell;
    use std::sync::Mutex;

    use super::OWNED;

    /// No index yet.
    pub(super) const UNSET: usize = usize::MAX;

    thread_local! {
        /// This thread's index, or `UNSET`; `OWNED` (shared) once the thread has given it back.
        pub(super) static INDEX: Cell<usize> = const { Cell::new(UNSET) };
        static OWNER: Owner = Owner::take();
    }

    /// Indexes released by threads that exited, and the next never-used one.
    static POOL: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

    /// The thread's hold on its index: returns it to the pool when the thread exits.
    struct Owner(usize);

    impl Owner {
        fn take() -> Owner {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(index) = pool.0.pop() {
                return Owner(index);
            }
            let index = pool.1;
            pool.1 = (index + 1).min(OWNED);
            Owner(index)
        }
    }

    impl Drop for Owner {
        fn drop(&mut self) {
            // Whatever runs later on this thread (other thread-locals' destructors) shares.
            INDEX.with(|index| index.set(OWNED));
            if self.0 < OWNED {
                let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
                pool.0.push(self.0);
            }
        }
    }

    /// A thread's first call: takes an index (or shares, if the thread is exiting).
    #[cold]
    pub(super) fn take() -> (usize, bool) {
        let index = OWNER.try_with(|owner| owner.0).unwrap_or(OWNED);
        INDEX.with(|cached| {
            if cached.get() == UNSET {
                cached.set(index);
            }
        });
        let index = INDEX.with(Cell::get);
        (index, index < OWNED)
    }
}

/// Under loom every thread shares the one stripe (with `fetch_add`).
#[cfg(loom)]
#[inline]
pub(crate) fn thread_stripe() -> (usize, bool) {
    (0, false)
}

/// A signed counter (the cache's length).
pub(crate) struct Counter {
    stripes: Box<[CachePadded<AtomicIsize>]>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        Counter {
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(AtomicIsize::new(0)))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, delta: isize) {
        self.add_to_stripe(delta);
    }

    /// Adds `delta` and returns this thread's stripe afterwards (how many of the counts it made:
    /// a cheap way to act once every so many).
    #[inline]
    pub(crate) fn add_to_stripe(&self, delta: isize) -> isize {
        let (index, owned) = thread_stripe();
        let stripe = &self.stripes[index];
        if owned {
            let value = stripe.load(Ordering::Relaxed) + delta;
            stripe.store(value, Ordering::Relaxed);
            value
        } else {
            stripe.fetch_add(delta, Ordering::Relaxed) + delta
        }
    }

    pub(crate) fn sum(&self) -> usize {
        let total: isize = self.stripes.iter().map(|s| s.load(Ordering::Relaxed)).sum();
        total.max(0) as usize
    }
}

/// `N` unsigned counters striped together (the cache's statistics).
pub(crate) struct Counters<const N: usize> {
    stripes: Box<[CachePadded<[AtomicU64; N]>]>,
}

impl<const N: usize> Counters<N> {
    pub(crate) fn new() -> Self {
        Counters {
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn increment(&self, counter: usize) {
        self.add(counter, 1);
    }

    #[inline]
    pub(crate) fn add(&self, counter: usize, count: u64) {
        let (index, owned) = thread_stripe();
        let cell = &self.stripes[index][counter];
        if owned {
            cell.store(cell.load(Ordering::Relaxed) + count, Ordering::Relaxed);
        } else {
            cell.fetch_add(count, Ordering::Relaxed);
        }
    }

    pub(crate) fn sum(&self, counter: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s[counter].load(Ordering::Relaxed))
            .sum()
    }
}
