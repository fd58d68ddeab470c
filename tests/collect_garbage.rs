//! `Cache::collect_garbage` frees what this thread retired, without waiting for later
//! operations (alone in its test binary: another test's pinned thread would hold the epoch back).

use std::sync::atomic::{AtomicUsize, Ordering};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value that counts its drops.
#[derive(Clone)]
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn collect_garbage_frees_replaced_and_removed_values_now() {
    let cache = cascache::Cache::new(1_000);
    for key in 0..10u64 {
        cache.insert(key, Counted);
    }
    for key in 0..10u64 {
        cache.insert(key, Counted); // retires the first value
    }
    for key in 0..5u64 {
        drop(cache.remove(&key)); // the clone handed back drops here; the stored one is retired
    }
    let before = DROPPED.load(Ordering::SeqCst);
    cache.collect_garbage();
    let freed = DROPPED.load(Ordering::SeqCst) - before;
    // 10 replaced and 5 removed values were retired; fewer than 64 stay in the thread's bag
    // without the call, so all of them are freed by it.
    assert_eq!(freed, 15, "freed {freed} of 15 retired values");
    assert_eq!(cache.len(), 5);
}
