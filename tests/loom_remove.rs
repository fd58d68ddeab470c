//! loom models of removal and of linking new keys: a CAS racing a remove never reports success
//! for a write the remove discarded, and two inserts of one key make one entry.
#![cfg(loom)]

mod loom_support;

use cascache::{Cache, CasError, Version};
use crossbeam_epoch::Collector;
use loom::sync::Arc;
use loom::thread;
use loom_support::{cache, run_model, FixedHasher};

/// CAS vs remove: if the CAS reports success, the remove came after it and returned the CAS's
/// value; otherwise the CAS failed with `NotFound` and the remove returned the original.
#[test]
fn cas_vs_remove_never_loses_an_acknowledged_write() {
    run_model("cas_vs_remove", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v0 = cache.insert(1, 10);
        let remover = {
            let cache = cache.clone();
            thread::spawn(move || cache.remove(&1))
        };
        let cas = cache.compare_and_swap(&1, v0, 11);
        let removed = remover.join().unwrap();
        match cas {
            Ok(_) => assert_eq!(removed, Some(11), "acknowledged write lost"),
            Err(CasError::NotFound(11)) => assert_eq!(removed, Some(10)),
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(cache.get(&1), None);
        assert!(cache.is_empty());
    });
}

/// Two threads insert the same absent key: one entry results, holding one of the two values
/// with the version its insert returned.
#[test]
fn insert_vs_insert_of_one_key_links_one_entry() {
    run_model("insert_vs_insert", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let other = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(1, 2))
        };
        let mine = cache.insert(1, 1);
        let theirs = other.join().unwrap();
        assert_ne!(mine, theirs);
        assert_eq!(cache.len(), 1);
        let (value, version) = cache.gets(&1).unwrap();
        assert_eq!(version, if value == 1 { mine } else { theirs });
        assert_eq!(cache.iter().count(), 1);
    });
}

/// A thread that deletes key 1 and adds it again with value 2: whether its delete removed
/// something, and the re-added entry's version.
fn delete_and_reinsert(
    cache: &Arc<Cache<u64, u64, FixedHasher>>,
) -> thread::JoinHandle<(bool, Version)> {
    let cache = cache.clone();
    thread::spawn(move || {
        let deleted = cache.delete(&1);
        (deleted, cache.add(1, 2).unwrap())
    })
}

/// remove_if_version with a version taken before a delete + re-add: it removes the old entry
/// (only if it ran before the delete) and never the re-added one.
#[test]
fn remove_if_stale_version_spares_a_reinserted_key() {
    run_model("remove_if_version_vs_reinsert", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let old = cache.insert(1, 1);
        let reinserter = delete_and_reinsert(&cache);
        let result = cache.remove_if_version(&1, old);
        let (deleted, new) = reinserter.join().unwrap();
        match result {
            Ok(()) => assert!(!deleted, "both removed the same entry"),
            Err(CasError::NotFound(())) => assert!(deleted),
            Err(CasError::Mismatch { current, .. }) => {
                assert!(deleted);
                assert_eq!(
                    current, new,
                    "a mismatch reports the re-added entry's version"
                );
            }
        }
        assert_eq!(
            cache.gets(&1),
            Some((2, new)),
            "the re-added entry survives"
        );
    });
}

/// Negative control: a CAS written as gets + version check + insert resurrects a key that a
/// racing remove took out, "succeeding" for a write that is then not what the remove saw.
#[test]
#[should_panic(expected = "acknowledged write lost")]
fn negative_control_cas_by_insert_races_remove() {
    run_model("negative_cas_by_insert", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v0 = cache.insert(1, 10);
        let remover = {
            let cache = cache.clone();
            thread::spawn(move || cache.remove(&1))
        };
        let cas_ok = match cache.gets(&1) {
            Some((_, v)) if v == v0 => {
                cache.insert(1, 11);
                true
            }
            _ => false,
        };
        let removed = remover.join().unwrap();
        if cas_ok {
            assert_eq!(removed, Some(11), "acknowledged write lost");
        }
    });
}

/// Negative control for `remove_if_version`: written as `gets`, a version check, then a delete
/// by key, it removes the entry the other thread re-added after the check; loom must find that.
#[test]
#[should_panic(expected = "the re-added entry survives")]
fn negative_control_remove_if_version_by_check_then_delete() {
    run_model("negative_check_then_delete", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let old = cache.insert(1, 1);
        let reinserter = delete_and_reinsert(&cache);
        // Broken: the version check and the removal are two steps.
        if cache.gets(&1).map(|(_, v)| v) == Some(old) {
            cache.delete(&1);
        }
        let (_, new) = reinserter.join().unwrap();
        assert_eq!(
            cache.gets(&1),
            Some((2, new)),
            "the re-added entry survives"
        );
    });
}
