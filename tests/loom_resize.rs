//! loom models of the incremental resize: writes racing the copy of a tiny table are never lost,
//! and a version taken before the resize still works after it.
#![cfg(loom)]

mod loom_support;

use crossbeam_epoch::Collector;
use loom::sync::Arc;
use loom::thread;
use loom_support::{cache, run_model};

/// The table starts with 4 slots and room for 3 entries; the 4th insert starts a resize, whose
/// copy races a CAS on a key being moved and an insert of a 5th key.
#[test]
fn insert_and_cas_during_resize_lose_nothing() {
    run_model("insert_and_cas_during_resize", 1, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v1 = cache.insert(1, 10);
        cache.insert(2, 20);
        cache.insert(3, 30);
        let grower = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(4, 40))
        };
        let cas = cache
            .compare_and_swap(&1, v1, 11)
            .expect("key 1 is live and unchanged");
        let v5 = cache.insert(5, 50);
        let v4 = grower.join().unwrap();
        assert_eq!(cache.gets(&1), Some((11, cas)));
        assert_eq!(cache.gets(&4), Some((40, v4)));
        assert_eq!(cache.gets(&5), Some((50, v5)));
        assert_eq!(cache.get(&2), Some(20));
        assert_eq!(cache.get(&3), Some(30));
        assert_eq!(cache.len(), 5);
    });
}

/// A CAS on a key the resize is moving, at preemption bound 2: the smaller model of the two.
#[test]
fn cas_during_resize_applies_to_the_moved_entry() {
    run_model("cas_during_resize", 2, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        let v1 = cache.insert(1, 10);
        cache.insert(2, 20);
        cache.insert(3, 30);
        let grower = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(4, 40))
        };
        let cas = cache
            .compare_and_swap(&1, v1, 11)
            .expect("key 1 is live and unchanged");
        grower.join().unwrap();
        assert_eq!(cache.gets(&1), Some((11, cas)));
        assert_eq!(cache.len(), 4);
    });
}

/// A reader during the resize always finds the keys that were present before it started.
#[test]
fn readers_during_resize_see_every_present_key() {
    run_model("readers_during_resize", 1, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        for k in 1..=3 {
            cache.insert(k, k * 10);
        }
        let grower = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(4, 40);
            })
        };
        for k in 1..=3 {
            assert_eq!(
                cache.get(&k),
                Some(k * 10),
                "key {k} vanished during the resize"
            );
        }
        grower.join().unwrap();
    });
}

/// Negative control: an increment by gets + insert during the resize loses an update.
#[test]
#[should_panic(expected = "lost update")]
fn negative_control_increment_without_cas_during_resize() {
    run_model("negative_increment_during_resize", 1, || {
        let collector = Collector::new();
        let cache = Arc::new(cache::<u64>(&collector));
        for k in 1..=3 {
            cache.insert(k, 0);
        }
        let grower = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(4, 0);
                let n = cache.get(&1).unwrap();
                cache.insert(1, n + 1);
            })
        };
        let n = cache.get(&1).unwrap();
        cache.insert(1, n + 1);
        grower.join().unwrap();
        assert_eq!(cache.get(&1), Some(2), "lost update");
    });
}
