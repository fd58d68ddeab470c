//! The async loader on tokio's multi-threaded runtime: one load per missing key, cancellation,
//! panics and errors reach every waiter, and loads racing writes and evictions stay
//! linearizable (checked by the linearizability test's model and checker).

#[allow(dead_code)]
#[path = "linearizability/checker.rs"]
mod checker;
#[allow(dead_code)]
#[path = "linearizability/model.rs"]
mod model;

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cascache::{Cache, CompResult, Lookup, Op as Compute, RemovalCause};
use checker::{check_history, Event, History, Stats};
use model::{Op, Ret, Spec};
use tokio::sync::Notify;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Waits until a load of `key` is in flight.
async fn until_loading(cache: &Cache<u64, u64>, key: u64) {
    while cache.lookup(&key) != Lookup::Loading {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tasks_on_one_missing_key_run_the_loader_once() {
    let cache = Arc::new(Cache::new(100));
    let loads = counter();
    let release = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(7u64, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        42u64
                    })
                    .await
            })
        })
        .collect();
    until_loading(&cache, 7).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.notify_one();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 42);
    }
    // Deterministic whatever the timing: a caller joins under the registry's lock, and the
    // value is stored under it before the load leaves the registry.
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(matches!(cache.lookup(&7), Lookup::Present(42, _)));
    let stats = cache.stats();
    assert_eq!(stats.inserts, 1);
    assert_eq!(
        stats.hits + stats.misses,
        1_000,
        "one read counted per call"
    );
}

/// The leader's future is dropped (by `timeout`, or by aborting its task) while 100 callers
/// wait: one of them runs its own loader, and every one of them returns its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_loader_is_taken_over_by_a_waiter() {
    for abort in [false, true] {
        let cache = Arc::new(Cache::new(100));
        let loads = counter();
        let leader = {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                let load = cache.get_or_insert_with_async(1u64, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<u64>().await
                });
                tokio::time::timeout(
                    Duration::from_millis(if abort { 60_000 } else { 200 }),
                    load,
                )
                .await
            })
        };
        until_loading(&cache, 1).await;
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_insert_with_async(1u64, async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            5u64
                        })
                        .await
                })
            })
            .collect();
        if abort {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leader.abort();
            assert!(leader.await.unwrap_err().is_cancelled());
        } else {
            assert!(leader.await.unwrap().is_err(), "the leader timed out");
        }
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), 5);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "the cancelled load and one takeover"
        );
        assert!(matches!(cache.lookup(&1), Lookup::Present(5, _)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_loader_passes_the_load_to_a_waiter() {
    let cache = Arc::new(Cache::new(100));
    let loads = counter();
    let release = Arc::new(Notify::new());
    let leader = {
        let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(3u64, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    panic!("loader failed")
                })
                .await
        })
    };
    until_loading(&cache, 3).await;
    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(3u64, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        9u64
                    })
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.notify_one();
    assert!(leader.await.unwrap_err().is_panic());
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), 9);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

/// Every caller's loader panics: each caller gets the panic (its own: the blocking loader's
/// rule), none waits forever, and the key is not wedged afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panics_reach_every_caller_and_wedge_nothing() {
    let cache = Arc::new(Cache::new(100));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(4u64, async {
                        tokio::task::yield_now().await;
                        panic!("always fails")
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap_err().is_panic());
    }
    assert_eq!(cache.lookup(&4), Lookup::Absent);
    assert_eq!(cache.get_or_insert_with_async(4, async { 1 }).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_reaches_every_waiter() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(100));
    let loads = counter();
    let release = Arc::new(Notify::new());
    let arrived = counter();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
            let arrived = arrived.clone();
            tokio::spawn(async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                cache
                    .try_get_or_insert_with_async(5u64, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Err::<u64, String>("backend down".to_string())
                    })
                    .await
            })
        })
        .collect();
    until_loading(&cache, 5).await;
    while arrived.load(Ordering::SeqCst) < 100 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_one();
    let mut errors = Vec::new();
    for task in tasks {
        errors.push(task.await.unwrap().unwrap_err());
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(
        errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])),
        "one error, shared"
    );
    assert_eq!(*errors[0], "backend down");
    assert_eq!(cache.lookup(&5), Lookup::Absent, "nothing inserted");
    assert_eq!(
        cache
            .try_get_or_insert_with_async(5, async { Ok::<_, String>(6) })
            .await,
        Ok(6)
    );
}

#[test]
fn the_loader_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let cache: Cache<String, Vec<u8>> = Cache::new(10);
    send(&cache.get_or_insert_with_async("k".into(), async { vec![1] }));
    send(&cache.try_get_or_insert_with_async("k".into(), async { Ok::<_, String>(vec![1]) }));
    send(
        &cache
            .entry("k".into())
            .or_insert_with_async(async { vec![1] }),
    );
    send(
        &cache
            .entry("k".into())
            .and_compute_with_async(|v| async move { Compute::Put(v.unwrap_or_default()) }),
    );
}

/// The founding loop through `entry().and_compute_with_async`: from 8 tasks on 1 key and from
/// 4 tasks on 64 keys, every increment lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compute_increments_are_exact() {
    for (tasks, keys, rounds) in [(8u64, 1u64, 500u64), (4, 64, 50)] {
        let cache = Arc::new(Cache::new(1_000));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        for key in 0..keys {
                            let done = cache
                                .entry(key)
                                .and_compute_with_async(|n| async move {
                                    tokio::task::yield_now().await;
                                    Compute::Put(n.unwrap_or(0) + 1)
                                })
                                .await;
                            assert!(matches!(
                                done,
                                CompResult::Inserted(..) | CompResult::ReplacedWith(..)
                            ));
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        for key in 0..keys {
            assert_eq!(cache.get(&key), Some(tasks * rounds), "key {key}");
        }
    }
}

// ----- loads racing writes and evictions, checked for linearizability -----

thread_local! {
    /// What the eviction listener heard on this thread: (key, value).
    static EVICTED: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

fn take_evicted() -> Vec<(u64, u64)> {
    EVICTED.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// A tiny xorshift, seeded per task.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs one operation, stamping its call and return, and files the evictions its call made
/// (the listener runs inside the call, on the thread that polls it: between the listener and
/// the drain below there is no `.await`, so no other task runs on this thread meanwhile).
async fn record<F: Future<Output = Ret>>(
    ticks: &AtomicU64,
    task: usize,
    key: u64,
    op: Op,
    call: F,
) -> Vec<Event> {
    let invoke = ticks.fetch_add(1, Ordering::SeqCst);
    let ret = call.await;
    let evicted = take_evicted();
    let response = ticks.fetch_add(1, Ordering::SeqCst);
    let mut events = vec![Event::new(task, key, op, ret, invoke, response)];
    for (k, value) in evicted {
        let departed = Op::Departed {
            value,
            expired: false,
        };
        events.push(Event::new(task, k, departed, Ret::Done, invoke, response));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loads_racing_writes_and_evictions_are_linearizable() {
    const HISTORIES: u64 = 300;
    const TASKS: usize = 4;
    const OPS: usize = 8;
    const KEYS: u64 = 3;
    let mut stats = Stats::default();
    let (mut loads, mut loaded_own) = (0, 0);
    for history in 0..HISTORIES {
        // Capacity 2 over 3 keys: stores evict.
        let cache: Arc<Cache<u64, u64>> = Arc::new(
            Cache::builder()
                .max_capacity(2)
                .eviction_listener(|k: &u64, v: &u64, cause| {
                    if cause == RemovalCause::Evicted {
                        EVICTED.with(|e| e.borrow_mut().push((*k, *v)));
                    }
                })
                .build(),
        );
        let ticks = Arc::new(AtomicU64::new(0));
        let fresh = Arc::new(AtomicU64::new(1));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (cache, ticks, fresh) = (cache.clone(), ticks.clone(), fresh.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(history * 7919 + task as u64 * 104_729 + 1);
                    let mut events = Vec::new();
                    for _ in 0..OPS {
                        let key = rng.below(KEYS);
                        let x = fresh.fetch_add(1, Ordering::SeqCst);
                        let yields = rng.below(3);
                        let c = &cache;
                        let recorded = match rng.below(8) {
                            0..=3 => {
                                let op = Op::GetOrInsert(x);
                                record(&ticks, task, key, op, async move {
                                    let loader = async move {
                                        for _ in 0..yields {
                                            tokio::task::yield_now().await;
                                        }
                                        x
                                    };
                                    Ret::Value(Some(c.get_or_insert_with_async(key, loader).await))
                                })
                                .await
                            }
                            4 | 5 => {
                                record(&ticks, task, key, Op::Insert(x), async move {
                                    Ret::Stored(c.insert(key, x).get())
                                })
                                .await
                            }
                            6 => {
                                record(&ticks, task, key, Op::Remove, async move {
                                    Ret::Value(c.remove(&key))
                                })
                                .await
                            }
                            _ => {
                                record(&ticks, task, key, Op::Get, async move {
                                    Ret::Value(c.get(&key))
                                })
                                .await
                            }
                        };
                        events.extend(recorded);
                        if yields == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    events
                })
            })
            .collect();
        let mut events = Vec::new();
        for task in tasks {
            events.extend(task.await.unwrap());
        }
        for e in &events {
            if let (Op::GetOrInsert(x), Ret::Value(Some(y))) = (e.op, e.ret) {
                loads += 1;
                loaded_own += usize::from(x == y);
            }
        }
        let recorded = History {
            spec: Spec {
                default_ttl: None,
                free_eviction: false,
            },
            clock0: 0,
            init: (0..KEYS).map(|k| (k, None)).collect(),
            events,
        };
        if let Err(violation) = check_history(&recorded, &mut stats) {
            panic!("history {history} is not linearizable: {violation}");
        }
    }
    println!(
        "{HISTORIES} histories linearizable: {loads} loads ({loaded_own} stored their own value), {} calls, {} overlapping, {} departures", stats.operations, stats.overlapping, stats.departures
    );
    // The histories exercised both answers of a load.
    assert!(loaded_own > 0 && loaded_own < loads);
}
