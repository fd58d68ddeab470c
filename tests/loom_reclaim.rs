//! loom models of memory reclamation: a pinned reader keeps the value it reads alive while a
//! writer replaces it and flushes the collector; every value is dropped exactly once.
#![cfg(loom)]

mod loom_support;

use crossbeam_epoch::{Atomic, Collector, Owned};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_support::{cache, flush, run_model};

/// A value that records its own drop, so a read after free shows up as a set flag.
struct Tracked {
    dropped: Arc<AtomicBool>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(!self.dropped.swap(true, Ordering::SeqCst), "double drop");
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn tracked(drops: &Arc<AtomicUsize>) -> (Tracked, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    let value = Tracked {
        dropped: dropped.clone(),
        drops: drops.clone(),
    };
    (value, dropped)
}

#[test]
fn pinned_reader_survives_replace_and_flush() {
    run_model("pinned_reader_vs_replace_flush", 2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let collector = Collector::new();
        let cache = Arc::new(cache::<Tracked>(&collector));
        let (first, _) = tracked(&drops);
        cache.insert(1, first);
        let writer = {
            let cache = cache.clone();
            let collector = collector.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                let (second, _) = tracked(&drops);
                cache.insert(1, second);
                assert!(cache.delete(&1));
                flush(&collector);
            })
        };
        {
            let pinned = cache.pin();
            if let Some(value) = pinned.get(&1) {
                // Whatever the writer did meanwhile, the value we hold is not freed.
                assert!(!value.dropped.load(Ordering::SeqCst), "use after free");
            }
        }
        writer.join().unwrap();
        drop(cache);
        drop(collector);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "every value dropped exactly once"
        );
    });
}

/// Negative control: a reader that loads a pointer without being pinned can see it freed.
/// This also proves loom sees crossbeam-epoch's own atomics: with only `--cfg loom` (no
/// `--cfg crossbeam_loom`) the collector's epoch logic is invisible and this would not fail.
#[test]
#[should_panic(expected = "use after free")]
fn negative_control_unpinned_reader_sees_a_freed_value() {
    run_model("negative_unpinned_reader", 2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let collector = Collector::new();
        let (first, first_dropped) = tracked(&drops);
        let slot = Arc::new(Atomic::new(first));
        // SAFETY: nothing is concurrent yet.
        let first_address = slot
            .load(Ordering::Relaxed, unsafe { crossbeam_epoch::unprotected() })
            .as_raw();
        let writer = {
            let slot = slot.clone();
            let collector = collector.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                let (second, _) = tracked(&drops);
                let handle = collector.register();
                let guard = handle.pin();
                let old = slot.swap(Owned::new(second), Ordering::AcqRel, &guard);
                // SAFETY: `old` is unreachable from `slot` now.
                unsafe { guard.defer_destroy(old) };
                drop(guard);
                // Let the epoch advance past the retirement, freeing `old` unless someone is pinned.
                for _ in 0..3 {
                    handle.pin().flush();
                }
            })
        };
        // Broken reader: no pin. It reads the flag of the value it loaded.
        // SAFETY (of the test's intent): deliberately unsound; the drop flag reports it.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let current = slot.load(Ordering::Acquire, guard);
        let is_first = current.as_raw() == first_address;
        loom::thread::yield_now();
        if is_first {
            assert!(!first_dropped.load(Ordering::SeqCst), "use after free");
        }
        writer.join().unwrap();
        // Clean up the last value.
        let last = slot.swap(crossbeam_epoch::Shared::null(), Ordering::AcqRel, guard);
        // SAFETY: single-threaded now; `last` is unreachable.
        drop(unsafe { last.into_owned() });
    });
}
