//! A striped counter for the cache's length: each thread adds to its own cache line, so inserts
//! and removals on different threads do not contend on one word. Reading sums the stripes; the
//! sum is exact whenever writes have quiesced.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicIsize, Ordering};

pub(crate) struct Counter {
    stripes: Box<[CachePadded<AtomicIsize>]>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        #[cfg(loom)]
        let count = 1;
        #[cfg(not(loom))]
        let count = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .next_power_of_two()
            .clamp(2, 64);
        Counter {
            stripes: (0..count)
                .map(|_| CachePadded::new(AtomicIsize::new(0)))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, delta: isize) {
        let stripe = &self.stripes[thread_stripe() & (self.stripes.len() - 1)];
        stripe.fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> usize {
        let total: isize = self.stripes.iter().map(|s| s.load(Ordering::Relaxed)).sum();
        total.max(0) as usize
    }
}

#[cfg(loom)]
pub(crate) fn thread_stripe() -> usize {
    0
}

/// A small per-thread number, handed out round-robin so threads spread over the stripes.
#[cfg(not(loom))]
pub(crate) fn thread_stripe() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}
