//! Unit tests of the raw table, small enough for Miri.

use crossbeam_epoch::Collector;

use crate::Cache;

fn small_cache() -> Cache<u64, String> {
    Cache::builder()
        .initial_capacity(1)
        .collector(Collector::new())
        .build()
}

#[test]
fn insert_get_replace_remove() {
    let cache = small_cache();
    assert_eq!(cache.get(&1), None);
    let v1 = cache.insert(1, "a".into());
    assert_eq!(cache.gets(&1), Some(("a".into(), v1)));
    let v2 = cache.insert(1, "b".into());
    assert_ne!(v1, v2);
    assert_eq!(cache.remove(&1), Some("b".into()));
    assert_eq!(cache.get(&1), None);
    assert!(cache.is_empty());
}

#[test]
fn growth_keeps_entries_and_versions() {
    let cache = small_cache();
    let versions: Vec<_> = (0..40).map(|k| cache.insert(k, k.to_string())).collect();
    assert_eq!(cache.len(), 40);
    for (k, version) in versions.into_iter().enumerate() {
        assert_eq!(cache.gets(&(k as u64)), Some((k.to_string(), version)));
        // a version taken before the resizes still works after them
        assert!(cache
            .compare_and_swap(&(k as u64), version, "x".into())
            .is_ok());
    }
}

#[test]
fn tombstones_are_reclaimed_by_rehash() {
    let cache = small_cache();
    for round in 0..30u64 {
        cache.insert(round, "v".into());
        assert!(cache.delete(&round));
    }
    assert!(cache.is_empty());
    cache.insert(7, "seven".into());
    assert_eq!(cache.get(&7).as_deref(), Some("seven"));
}

#[test]
fn cas_after_remove_and_reinsert_is_a_mismatch() {
    let cache = small_cache();
    let old = cache.insert(1, "a".into());
    cache.delete(&1);
    let new = cache.add(1, "b".into()).unwrap();
    assert_ne!(old, new);
    assert_eq!(
        cache.compare_and_swap(&1, old, "c".into()),
        Err(crate::CasError::Mismatch {
            current: new,
            value: "c".into()
        })
    );
}

#[test]
fn iter_clear_and_drop_free_everything() {
    let cache = small_cache();
    for k in 0..20 {
        cache.insert(k, format!("value {k}"));
    }
    let mut keys: Vec<u64> = cache.iter().map(|(k, _)| k).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..20).collect::<Vec<_>>());
    cache.clear();
    assert_eq!(cache.iter().count(), 0);
    for k in 0..5 {
        cache.insert(k, "again".into());
    }
    // Dropping the cache and its collector frees the rest; Miri's leak check verifies it.
}

#[test]
fn concurrent_writers_during_resize() {
    let cache = small_cache();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..24 {
                    cache.insert(t * 100 + i, "x".into());
                    if i % 3 == 0 {
                        cache.delete(&(t * 100 + i));
                    }
                }
            });
        }
    });
    assert_eq!(cache.len(), 2 * 16);
    for t in 0..2u64 {
        for i in 0..24 {
            assert_eq!(cache.contains_key(&(t * 100 + i)), i % 3 != 0);
        }
    }
}

#[test]
fn bounded_cache_evicts_expires_and_frees_everything() {
    use std::time::Duration;
    let clock = crate::MockClock::new();
    let cache: Cache<u64, String> = Cache::builder()
        .max_capacity(4)
        .shards(1)
        .clock(clock.clone())
        .collector(Collector::new())
        .build();
    for k in 0..24u64 {
        if k % 3 == 0 {
            cache.insert_with_ttl(k, k.to_string(), Duration::from_millis(5));
        } else {
            cache.insert(k, k.to_string());
        }
        cache.get(&(k / 2));
        if k % 5 == 4 {
            cache.delete(&(k - 1));
        }
        clock.advance(Duration::from_millis(2));
    }
    assert!(cache.len() <= 4);
    // Entries still queued (live or dead), entries only in the table, and retired ones are all
    // freed by the drop: Miri's leak checker verifies it.
}

/// Replaced and removed nodes come back as new ones (`recycle`): what is read from recycled
/// memory is only ever the value last written into it.
#[test]
#[cfg(not(loom))]
fn recycled_nodes_and_entries_hold_only_what_was_written_into_them() {
    let cache = small_cache();
    let mut recycled_seen = 0;
    for round in 0..30u64 {
        let key = round % 3;
        let version = cache.insert(key, format!("v{round}"));
        assert_eq!(cache.gets(&key), Some((format!("v{round}"), version)));
        if round % 5 == 4 {
            assert_eq!(cache.remove(&key), Some(format!("v{round}")));
        }
        // Collect: retired nodes go to this thread's free list, for the next writes.
        cache.guard().flush();
        recycled_seen = recycled_seen.max(super::recycle::kept::<super::Node<u64, String>>());
    }
    assert!(recycled_seen > 0, "no node was recycled");
    for key in 0..3u64 {
        let last = (0..30u64).filter(|r| r % 3 == key).max().unwrap();
        let expected = (last % 5 != 4).then(|| format!("v{last}"));
        assert_eq!(cache.get(&key), expected);
    }
}

/// A weighted cache is not presized: it grows through several resizes while it evicts, removes
/// and re-inserts, so its eviction queues are moved onto each new table (and the old tables
/// retired once every shard has moved past them). The queues and the table agree throughout.
#[test]
fn eviction_queues_follow_the_table_through_resizes() {
    let cache: Cache<u64, String> = Cache::builder()
        .max_capacity(600)
        .weigher(|_, v: &String| v.len() as u32)
        .shards(2)
        .collector(Collector::new())
        .build();
    for round in 0..6u64 {
        for k in 0..48u64 {
            let key = round * 31 + k;
            cache.insert(key, "x".repeat(1 + (key % 7) as usize));
            if k % 5 == 0 {
                cache.delete(&(key / 2));
            }
            if k % 3 == 0 {
                cache.get(&(key + 1));
            }
            // A check walks the table and the queues, ~0.6 s each under Miri: there, every
            // sixth insert and each round's last.
            if !cfg!(miri) || k % 6 == 5 {
                cache.check_invariants();
            }
        }
    }
    assert!(cache.weighted_size().0 <= 600);
}

/// The same with two threads writing at once, so that copies, inserts, evictions and queue
/// moves race; the invariants are checked once they are done.
#[test]
fn eviction_queues_follow_concurrent_resizes() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(64)
        .weigher(|_, _| 1)
        .shards(2)
        .collector(Collector::new())
        .build();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..200u64 {
                    let key = (i * 7 + t * 3) % 150;
                    if cache.get(&key).is_none() {
                        cache.insert(key, i);
                    }
                    if i % 9 == 0 {
                        cache.delete(&((key + 1) % 150));
                    }
                }
            });
        }
    });
    cache.check_invariants();
    assert!(cache.len() <= 64);
}
