//! loom models of the slot-level compare-and-swap: one winner per version, reads never torn,
//! and no ABA when a replaced node's memory comes back in a new node at the same address.
#![cfg(loom)]

mod loom_support;

use cascache::{Cache, Version};
use crossbeam_epoch::{Collector, Owned, Shared};
use loom::sync::atomic::Ordering;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_support::{cache, flush, run_model, FixedHasher};

/// Two threads CAS from the same version: exactly one wins, and the winner's value and version
/// are what the key holds.
#[test]
fn two_cas_from_one_version_exactly_one_wins() {
    run_model("two_cas_from_one_version", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v0 = cache.insert(1, 0);
        let threads: Vec<_> = (1..=2u64)
            .map(|t| {
                let cache = cache.clone();
                thread::spawn(move || cache.compare_and_swap(&1, v0, t))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|v| (i as u64 + 1, *v)))
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let (value, version) = winners[0];
        assert_eq!(cache.gets(&1), Some((value, version)));
        for result in &results {
            if let Err(err) = result {
                assert_eq!(
                    err.current(),
                    Some(version),
                    "the loser sees the winner's version"
                );
            }
        }
    });
}

/// A thread that CASes key 1 from `(0, 0)` at `v0` to `(1, 1)`, then to `(2, 2)`, and returns
/// the three versions, indexed by value.
fn two_cas_writer(
    cache: &Arc<Cache<u64, (u64, u64), FixedHasher>>,
    v0: Version,
) -> thread::JoinHandle<[Version; 3]> {
    let cache = cache.clone();
    thread::spawn(move || {
        let v1 = cache.compare_and_swap(&1, v0, (1, 1)).unwrap();
        let v2 = cache.compare_and_swap(&1, v1, (2, 2)).unwrap();
        [v0, v1, v2]
    })
}

/// `gets` racing two CAS: the value and version it returns always belong together.
#[test]
fn gets_during_cas_is_never_torn() {
    run_model("gets_during_cas", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<(u64, u64)>(&collector));
        let v0 = cache.insert(1, (0, 0));
        let writer = two_cas_writer(&cache, v0);
        let seen = cache.gets(&1).unwrap();
        let versions = writer.join().unwrap();
        let (value, version) = seen;
        assert_eq!(value.0, value.1);
        assert_eq!(
            version, versions[value.0 as usize],
            "value {value:?} came with another value's version"
        );
    });
}

/// Negative control for `gets` during CAS: a read written as `get` for the value, then `gets`
/// for the version, pairs a value with a later value's version; loom must find that.
#[test]
#[should_panic(expected = "came with another value's version")]
fn negative_control_value_and_version_read_apart_are_torn() {
    run_model("negative_torn_gets", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<(u64, u64)>(&collector));
        let v0 = cache.insert(1, (0, 0));
        let writer = two_cas_writer(&cache, v0);
        // Broken: two reads.
        let value = cache.get(&1).unwrap();
        let (_, version) = cache.gets(&1).unwrap();
        let versions = writer.join().unwrap();
        assert_eq!(
            version, versions[value.0 as usize],
            "value {value:?} came with another value's version"
        );
    });
}

/// Negative control: a "compare-and-swap" written as check-then-insert loses an update, and loom
/// must find the interleaving (this fails if loom cannot see the crate's or crossbeam's atomics).
#[test]
#[should_panic(expected = "lost update")]
fn negative_control_check_then_insert_loses_updates() {
    run_model("negative_check_then_insert", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        cache.insert(1, 0);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                thread::spawn(move || {
                    let (n, version) = cache.gets(&1).unwrap();
                    // Broken: the version check and the write are two steps.
                    if cache.gets(&1).map(|(_, v)| v) == Some(version) {
                        cache.insert(1, n + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Both threads think they incremented from 0 only if they interleaved.
        assert_eq!(cache.get(&1), Some(2), "lost update");
    });
}

/// A CAS from version 1 races a thread that replaces the node, lets the collector free it, and
/// writes again. A freed node's memory comes back in the next allocation of its size (the
/// crate's per-thread pool does that, and under loom, where the pool is bypassed so that the
/// models stay deterministic, the system allocator's per-thread cache does: addresses recur
/// within one execution), so the second write's node can sit at the address the CAS loaded.
/// The slot's compare-exchange compares addresses; what makes it safe is that the CAS checks the
/// version and swaps under one epoch guard, so the node it loaded cannot be freed, let alone
/// reused, before its swap. Whatever the interleaving, the last write wins and the CAS from
/// version 1 never lands on a later node.
#[test]
fn cas_vs_replace_that_reuses_the_node_address() {
    run_model("cas_vs_recycled_replace", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v1 = cache.insert(1, 1);
        let replacer = {
            let cache = cache.clone();
            let collector = collector.clone();
            thread::spawn(move || {
                cache.insert(1, 2);
                flush(&collector);
                cache.insert(1, 3)
            })
        };
        let cas = cache.compare_and_swap(&1, v1, 100);
        let v3 = replacer.join().unwrap();
        assert_eq!(
            cache.gets(&1),
            Some((3, v3)),
            "a CAS from version 1 landed on a later node ({cas:?})"
        );
    });
}

/// A node of the negative control's hand-written slot.
struct VersionedNode {
    version: u64,
}

/// Negative control for the model above: the same race against a hand-written slot whose CAS
/// checks the version under one pin and swaps under another, trusting the node if the slot
/// still points at the same address. The replacer frees the old node through the epoch
/// collector into a free list and takes its memory for its next node, so loom must find the
/// interleaving where the CAS lands on that reused node (the ABA). This also shows loom sees
/// crossbeam-epoch's atomics: without them the memory would never come back in the window.
#[test]
#[should_panic(expected = "ABA")]
fn negative_control_cas_across_two_pins_lands_on_a_reused_node() {
    run_model("negative_cas_across_two_pins", 2, || {
        let collector = Collector::new();
        let slot = Arc::new(crossbeam_epoch::Atomic::new(VersionedNode { version: 1 }));
        // Addresses of freed nodes' memory, taken by the next node the replacer makes.
        let free: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
        let replacer = {
            let (slot, free, collector) = (slot.clone(), free.clone(), collector.clone());
            thread::spawn(move || {
                let handle = collector.register();
                {
                    let guard = handle.pin();
                    let old = slot.swap(
                        Owned::new(VersionedNode { version: 2 }),
                        Ordering::AcqRel,
                        &guard,
                    );
                    let (old, free) = (old.as_raw() as usize, free.clone());
                    // SAFETY: `old` is unreachable from the slot; once no pinned thread can
                    // see it, its memory goes to the free list with its value dropped (a
                    // `VersionedNode` has no drop glue).
                    unsafe { guard.defer_unchecked(move || free.lock().unwrap().push(old)) };
                }
                for _ in 0..3 {
                    handle.pin().flush();
                }
                let guard = handle.pin();
                let reused = free.lock().unwrap().pop();
                let node = match reused {
                    Some(address) => {
                        let node = address as *mut VersionedNode;
                        // SAFETY: the block is a freed `VersionedNode` allocation that only this
                        // thread owns now.
                        unsafe { node.write(VersionedNode { version: 3 }) };
                        Shared::from(node as *const VersionedNode)
                    }
                    None => Owned::new(VersionedNode { version: 3 }).into_shared(&guard),
                };
                let old = slot.swap(node, Ordering::AcqRel, &guard);
                // SAFETY: unreachable from the slot now.
                unsafe { guard.defer_destroy(old) };
            })
        };
        // Broken CAS from version 1: check under one pin, swap under another.
        let handle = collector.register();
        let (checked, address) = {
            let guard = handle.pin();
            let current = slot.load(Ordering::Acquire, &guard);
            // SAFETY: pinned; the slot always holds a node.
            (unsafe { current.deref() }.version == 1, current.as_raw())
        };
        let mut landed = false;
        if checked {
            let guard = handle.pin();
            let current = slot.load(Ordering::Acquire, &guard);
            if current.as_raw() == address {
                let new = Owned::new(VersionedNode { version: 100 });
                if let Ok(_) =
                    slot.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire, &guard)
                {
                    // SAFETY: unreachable from the slot now.
                    unsafe { guard.defer_destroy(current) };
                    landed = true;
                }
            }
        }
        replacer.join().unwrap();
        drop(handle);
        // SAFETY: every thread is done; the slot's node is owned by the slot alone.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let last = slot.swap(Shared::null(), Ordering::AcqRel, guard);
        // SAFETY: `last` is the slot's node, unreachable now and owned here.
        let last_version = unsafe { last.into_owned() }.version;
        for address in free.lock().unwrap().drain(..) {
            // SAFETY: a freed node's block nobody took: its allocation is ours to release.
            drop(unsafe { Box::from_raw(address as *mut std::mem::MaybeUninit<VersionedNode>) });
        }
        assert!(
            !(landed && last_version == 100),
            "ABA: a CAS from version 1 landed on the version-3 node at the same address"
        );
    });
}
