//! loom models of the value-level compare-and-swap: one winner per version, and reads never torn.
#![cfg(loom)]

mod loom_support;

use crossbeam_epoch::Collector;
use loom::sync::Arc;
use loom::thread;
use loom_support::{cache, run_model};

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

/// `gets` racing two CAS: the value and version it returns always belong together.
#[test]
fn gets_during_cas_is_never_torn() {
    run_model("gets_during_cas", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<(u64, u64)>(&collector));
        let v0 = cache.insert(1, (0, 0));
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                let v1 = cache.compare_and_swap(&1, v0, (1, 1)).unwrap();
                let v2 = cache.compare_and_swap(&1, v1, (2, 2)).unwrap();
                [v0, v1, v2]
            })
        };
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
