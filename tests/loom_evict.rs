//! loom models of eviction and expiry as participants in the CAS protocol: an evicted or expired
//! entry is gone, and a CAS that returned `Ok` was applied to the live entry, even when it raced
//! the eviction or the expiry of that entry.
#![cfg(loom)]

mod loom_support;

use std::time::Duration;

use cascache::{Cache, CasError, MockClock, RemovalCause};
use crossbeam_epoch::Collector;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_support::{run_model, FixedHasher};

type Evictions = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

/// A cache holding one entry, recording what its listener hears.
fn one_entry_cache(collector: &Collector) -> (Cache<u64, u64, FixedHasher>, Evictions) {
    let heard: Evictions = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let cache = Cache::builder()
        .max_capacity(1)
        .shards(1)
        .hasher(FixedHasher::default())
        .collector(collector.clone())
        .eviction_listener(move |k: &u64, v: &u64, cause| {
            sink.lock().unwrap().push((*k, *v, cause))
        })
        .build();
    (cache, heard)
}

/// An unbounded cache on a mock clock.
fn clocked_cache(collector: &Collector, clock: &MockClock) -> Cache<u64, u64, FixedHasher> {
    Cache::builder()
        .hasher(FixedHasher::default())
        .collector(collector.clone())
        .clock(clock.clone())
        .build()
}

/// Evict vs CAS. In a cache of one entry holding key 1 (never read), inserting key 2 evicts key 1
/// while a CAS on key 1 races it. If the CAS says `Ok`, the eviction came after it and evicted
/// the CAS's value; otherwise the CAS failed `NotFound` and the original value was evicted.
/// Either way key 1 is gone.
#[test]
fn evict_vs_cas() {
    run_model("evict_vs_cas", 2, || {
        let collector = Collector::new();
        let (cache, heard) = one_entry_cache(&collector);
        let cache = Arc::new(cache);
        let v1 = cache.insert(1, 10);
        let casser = {
            let cache = cache.clone();
            thread::spawn(move || cache.compare_and_swap(&1, v1, 11))
        };
        cache.insert(2, 20);
        let cas = casser.join().unwrap();
        let heard = heard.lock().unwrap().clone();
        let evicted: Vec<_> = heard
            .iter()
            .filter(|e| e.2 == RemovalCause::Evicted)
            .collect();
        assert_eq!(evicted.len(), 1, "{heard:?}");
        match cas {
            Ok(version) => {
                assert_eq!(
                    evicted[0],
                    &(1, 11, RemovalCause::Evicted),
                    "acknowledged write not the one evicted"
                );
                assert!(heard.contains(&(1, 10, RemovalCause::Replaced)));
                assert_eq!(
                    cache.compare_and_swap(&1, version, 12),
                    Err(CasError::NotFound(12))
                );
            }
            Err(CasError::NotFound(11)) => assert_eq!(evicted[0], &(1, 10, RemovalCause::Evicted)),
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some(20));
        assert_eq!(cache.len(), 1);
    });
}

/// Negative control: a CAS written as `gets` + `insert` races the eviction and can put key 1
/// back after it was evicted, "succeeding" for a write that is not the one evicted.
#[test]
#[should_panic(expected = "acknowledged write not the one evicted")]
fn negative_control_blind_write_vs_eviction() {
    run_model("negative_blind_write_vs_eviction", 2, || {
        let collector = Collector::new();
        let (cache, heard) = one_entry_cache(&collector);
        let cache = Arc::new(cache);
        let v1 = cache.insert(1, 10);
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                let seen = cache.pin().gets(&1).map(|(_, v)| v);
                if seen == Some(v1) {
                    cache.insert(1, 11);
                    return true;
                }
                false
            })
        };
        cache.insert(2, 20);
        let wrote = writer.join().unwrap();
        let heard = heard.lock().unwrap().clone();
        if wrote {
            let evicted_one = heard
                .iter()
                .any(|e| e.0 == 1 && e.2 == RemovalCause::Evicted);
            assert!(
                !evicted_one || heard.contains(&(1, 11, RemovalCause::Evicted)),
                "acknowledged write not the one evicted"
            );
        }
    });
}

/// Expiry vs CAS: the clock passes key 1's deadline while a CAS on it races. The CAS either lands
/// before the deadline (and its value, which keeps the entry's time to live, expires with it) or
/// fails `NotFound`; it never revives the key, and never reports `Mismatch`.
#[test]
fn expiry_vs_cas() {
    run_model("expiry_vs_cas", 2, || {
        let collector = Collector::new();
        let clock = MockClock::new();
        let cache = Arc::new(clocked_cache(&collector, &clock));
        let v1 = cache.insert_with_ttl(1, 10, Duration::from_secs(1));
        let casser = {
            let cache = cache.clone();
            thread::spawn(move || cache.compare_and_swap(&1, v1, 11))
        };
        clock.advance(Duration::from_secs(1));
        let cas = casser.join().unwrap();
        assert!(
            matches!(cas, Ok(_) | Err(CasError::NotFound(11))),
            "{cas:?}"
        );
        assert_eq!(cache.get(&1), None, "an expired key came back");
        let stale = cas.unwrap_or(v1);
        assert_eq!(
            cache.compare_and_swap(&1, stale, 12),
            Err(CasError::NotFound(12))
        );
    });
}

/// Negative control: a CAS written as `gets` + `insert` resurrects a key that expired in between
/// (the insert is a blind set with no time to live); loom must find that interleaving.
#[test]
#[should_panic(expected = "an expired key came back")]
fn negative_control_blind_write_resurrects_an_expired_key() {
    run_model("negative_blind_write_vs_expiry", 2, || {
        let collector = Collector::new();
        let clock = MockClock::new();
        let cache = Arc::new(clocked_cache(&collector, &clock));
        let v1 = cache.insert_with_ttl(1, 10, Duration::from_secs(1));
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                if cache.gets(&1).map(|(_, v)| v) == Some(v1) {
                    cache.insert(1, 11);
                }
            })
        };
        clock.advance(Duration::from_secs(1));
        writer.join().unwrap();
        assert_eq!(cache.get(&1), None, "an expired key came back");
    });
}

/// Expiry sweep vs a store over the expired value. Key 1 has expired; an `add` of key 1 (which
/// stores, the old value being expired) races an insert of key 2, whose admission sweeps the
/// queue and finds key 1's old value expired. The sweep may remove only the value it judged: the
/// acknowledged `add` must survive (the linearizability checker's TTL histories found a sweep
/// that sealed whatever value the entry held by then).
#[test]
fn expiry_sweep_vs_store_over_the_expired_value() {
    run_model("expiry_sweep_vs_store", 2, || {
        let collector = Collector::new();
        let clock = MockClock::new();
        let cache = Arc::new(
            Cache::builder()
                .max_capacity(4)
                .shards(1)
                .hasher(FixedHasher::default())
                .collector(collector.clone())
                .clock(clock.clone())
                .build(),
        );
        cache.insert_with_ttl(1, 10, Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        let adder = {
            let cache = cache.clone();
            thread::spawn(move || cache.add(1, 20).is_ok())
        };
        cache.insert(2, 2);
        assert!(
            adder.join().unwrap(),
            "the old value had expired: add stores"
        );
        assert_eq!(
            cache.get(&1),
            Some(20),
            "an acknowledged add was swept away"
        );
    });
}

/// Negative control for the sweep: a sweep written as "the key reads as expired, so delete the
/// key" removes whatever the key holds by then, and loom must find the acknowledged `add` it
/// takes with it.
#[test]
#[should_panic(expected = "an acknowledged add was swept away")]
fn negative_control_sweep_that_deletes_by_key() {
    run_model("negative_sweep_by_key", 2, || {
        let collector = Collector::new();
        let clock = MockClock::new();
        let cache = Arc::new(clocked_cache(&collector, &clock));
        cache.insert_with_ttl(1, 10, Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        let adder = {
            let cache = cache.clone();
            thread::spawn(move || cache.add(1, 20).is_ok())
        };
        // Broken sweep: judges the key, then removes by key.
        if cache.get(&1).is_none() {
            cache.delete(&1);
        }
        assert!(
            adder.join().unwrap(),
            "the old value had expired: add stores"
        );
        assert_eq!(
            cache.get(&1),
            Some(20),
            "an acknowledged add was swept away"
        );
    });
}

/// Two admissions at once into a full cache. Each writer links its new entry under the key's
/// insert lock, then counts its weight, queues it and evicts in one hold of the shard's lock, so
/// the hand only ever evicts for weight it can find in its queues: whichever writer takes the
/// lock last sees both new entries, and the cache ends within capacity with exactly one
/// eviction per entry it could not keep.
#[test]
fn concurrent_admissions_end_within_capacity() {
    run_model("concurrent_admissions", 2, || {
        let collector = Collector::new();
        let (cache, heard) = one_entry_cache(&collector);
        let cache = Arc::new(cache);
        cache.insert(1, 10);
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(3, 30);
            })
        };
        cache.insert(2, 20);
        other.join().unwrap();
        assert_eq!(cache.len(), 1, "{:?}", heard.lock().unwrap());
        assert_eq!(cache.weighted_size().0, 1);
        let evicted = heard
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.2 == RemovalCause::Evicted)
            .count();
        assert_eq!(evicted, 2);
    });
}
