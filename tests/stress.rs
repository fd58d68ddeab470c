//! Multi-threaded stress tests: races between CAS loops, removes, re-inserts, resizes, readers
//! and memory reclamation, each with an exact check of the final state.
//!
//! The default tests are sized to finish in a few seconds in a debug build on two cores; the
//! `_heavy` variants (`#[ignore]`d) run the same code with many more iterations:
//! `cargo test --release --test stress -- --include-ignored --nocapture`.
//!
//! The tests take a process-wide lock so that they run one at a time: they each start more
//! threads than a small machine has cores, and the memory test measures reclamation by the
//! global epoch collector, which any other pinned thread would hold back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use cascache::{Cache, CasError, RemovalCause, Version};
use crossbeam_epoch::Collector;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the tests of this binary one at a time (see the module documentation).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Picks an iteration count: the first in debug builds, the second in optimized ones.
fn scaled(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// A small deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Counts its thread as finished when dropped, also when the thread panics, so that the loops
/// waiting for it end and the test reports the panic instead of hanging.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Asserts that no version occurs twice in `versions`.
fn assert_unique(versions: impl IntoIterator<Item = Version>, what: &str) -> usize {
    let mut seen = HashSet::new();
    for v in versions {
        assert_ne!(v.get(), 0, "{what}: version 0");
        assert!(seen.insert(v), "{what}: version {v:?} returned twice");
    }
    seen.len()
}

// ---------------------------------------------------------------------------------------------
// Instance-counting values
// ---------------------------------------------------------------------------------------------

/// Counts the `Tracked` values of one test.
struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
    /// Drops of an instance that had been dropped already.
    double_drops: AtomicUsize,
    /// Drops of an instance whose payload no longer matched (freed or overwritten memory).
    corrupt_drops: AtomicUsize,
    /// Drops per instance id, when tracked (`None`: too many instances to track one by one).
    per_id: Option<Box<[AtomicU8]>>,
}

impl Counters {
    fn new(track_ids: usize) -> Arc<Self> {
        Arc::new(Counters {
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            double_drops: AtomicUsize::new(0),
            corrupt_drops: AtomicUsize::new(0),
            per_id: (track_ids > 0).then(|| (0..track_ids).map(|_| AtomicU8::new(0)).collect()),
        })
    }

    fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    /// Instances alive now: an instance is created before it is dropped, so reading the drops
    /// first never makes this negative.
    fn live(&self) -> usize {
        let dropped = self.dropped.load(Ordering::SeqCst);
        self.created().saturating_sub(dropped)
    }
}

/// A heap-owning value that counts its instances and checks its payload.
struct Tracked {
    id: usize,
    tag: u64,
    check: Box<u64>,
    counters: Arc<Counters>,
}

fn mix(id: usize, tag: u64) -> u64 {
    (id as u64 ^ 0x5DEE_CE66_D1CE_4E5B).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag
}

impl Tracked {
    fn new(counters: &Arc<Counters>, tag: u64) -> Self {
        let id = counters.created.fetch_add(1, Ordering::SeqCst);
        if let Some(per_id) = &counters.per_id {
            assert!(id < per_id.len(), "more instances than the test tracks");
        }
        Tracked {
            id,
            tag,
            check: Box::new(mix(id, tag)),
            counters: Arc::clone(counters),
        }
    }

    /// Panics if the payload is not the one this instance was built with.
    fn verify(&self) {
        assert_eq!(
            *self.check,
            mix(self.id, self.tag),
            "corrupt value {}",
            self.id
        );
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.verify();
        Tracked::new(&self.counters, self.tag)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // No panics in drop (it may run inside the epoch collector): count anomalies instead.
        let counters = &self.counters;
        if *self.check != mix(self.id, self.tag) {
            counters.corrupt_drops.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(per_id) = &counters.per_id {
            if per_id[self.id].fetch_add(1, Ordering::SeqCst) != 0 {
                counters.double_drops.fetch_add(1, Ordering::SeqCst);
            }
        }
        counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// a. The founding example: a CAS-increment loop on one key
// ---------------------------------------------------------------------------------------------

/// A successful increment: (version read, version written, value written).
type Increment = (Version, Version, u64);

fn counter_one_key(threads: u64, per_thread: u64) {
    let _serial = serial();
    let cache: Cache<&str, u64> = Cache::new(16);
    let v0 = cache.insert("visits", 0);
    let barrier = Barrier::new(threads as usize);
    let start = Instant::now();
    let (successes, retries): (Vec<Vec<Increment>>, Vec<u64>) = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let mut done = Vec::with_capacity(per_thread as usize);
                    let mut retries = 0;
                    for _ in 0..per_thread {
                        loop {
                            let (n, version) = cache.gets("visits").unwrap();
                            match cache.compare_and_swap("visits", version, n + 1) {
                                Ok(new) => {
                                    done.push((version, new, n + 1));
                                    break;
                                }
                                Err(CasError::Mismatch { current, value }) => {
                                    assert_ne!(current, version);
                                    assert_eq!(value, n + 1, "the value comes back");
                                    retries += 1;
                                }
                                Err(err) => panic!("unexpected {err:?}"),
                            }
                        }
                    }
                    (done, retries)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).unzip()
    });
    let elapsed = start.elapsed();
    let total = threads * per_thread;
    let (value, last) = cache.gets("visits").unwrap();
    assert_eq!(value, total);

    // The successful CASes form one chain v0 -> v1 -> ... -> last, writing 1, 2, ..., total:
    // each version was expected by exactly one success (no two CASes won from the same read).
    let mut next: HashMap<Version, (Version, u64)> = HashMap::new();
    for &(expected, new, n) in successes.iter().flatten() {
        assert!(
            next.insert(expected, (new, n)).is_none(),
            "two successful CASes expected {expected:?}"
        );
    }
    let mut version = v0;
    for n in 1..=total {
        let (new, written) = next[&version];
        assert_eq!(written, n);
        version = new;
    }
    assert_eq!(version, last);
    assert_unique(successes.iter().flatten().map(|s| s.1), "cas");
    let retries: u64 = retries.iter().sum();
    eprintln!(
        "counter_one_key: {threads} threads x {per_thread} increments = {total} in {elapsed:?}, \
         {retries} retries ({:.2} per increment)",
        retries as f64 / total as f64
    );
}

#[test]
fn counter_one_key_8_threads() {
    counter_one_key(8, scaled(40_000, 200_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn counter_one_key_8_threads_heavy() {
    counter_one_key(8, scaled(400_000, 2_000_000));
}

// ---------------------------------------------------------------------------------------------
// b. CAS increments on many keys, from absent keys in a growing table
// ---------------------------------------------------------------------------------------------

fn counter_many_keys(threads: u64, keys: u64, rounds: u64) {
    let _serial = serial();
    // The smallest table: the first `add`s of the keys grow it while other threads increment.
    let cache: Cache<u64, u64> = Cache::builder().initial_capacity(1).build();
    let barrier = Barrier::new(threads as usize);
    let adds = AtomicU64::new(0);
    let retries = AtomicU64::new(0);
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let (cache, barrier, adds, retries) = (&cache, &barrier, &adds, &retries);
            s.spawn(move || {
                barrier.wait();
                let mut local_retries = 0;
                for _ in 0..rounds {
                    for j in 0..keys {
                        // Threads walk the keys from different starting points.
                        let key = (j + t * keys / threads) % keys;
                        loop {
                            let Some((n, version)) = cache.gets(&key) else {
                                if cache.add(key, 0).is_ok() {
                                    adds.fetch_add(1, Ordering::Relaxed);
                                }
                                continue;
                            };
                            match cache.compare_and_swap(&key, version, n + 1) {
                                Ok(_) => break,
                                Err(CasError::Mismatch { .. }) => local_retries += 1,
                                Err(err) => panic!("key {key}: unexpected {err:?}"),
                            }
                        }
                    }
                }
                retries.fetch_add(local_retries, Ordering::Relaxed);
            });
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(adds.load(Ordering::Relaxed), keys, "one add per key wins");
    assert_eq!(cache.len(), keys as usize);
    for key in 0..keys {
        assert_eq!(cache.get(&key), Some(threads * rounds), "key {key}");
    }
    eprintln!(
        "counter_many_keys: {threads} threads x {keys} keys x {rounds} rounds = {} increments \
         in {elapsed:?}, {} retries",
        threads * keys * rounds,
        retries.load(Ordering::Relaxed)
    );
}

#[test]
fn counter_64_keys_4_threads() {
    counter_many_keys(4, 64, scaled(1_000, 5_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn counter_64_keys_4_threads_heavy() {
    counter_many_keys(4, 64, scaled(10_000, 50_000));
}

// ---------------------------------------------------------------------------------------------
// c. Remove / re-insert churn racing CAS loops
// ---------------------------------------------------------------------------------------------

/// The value: (life of the key, increments in this life). Only the remover starts a life
/// (`add` of `(life, 0)`) or ends one (`remove`); CAS threads only increment the count.
type Life = (u64, u64);

#[derive(Default)]
struct CasLog {
    /// Successful increments per life.
    per_life: HashMap<u64, u64>,
    versions: Vec<Version>,
    /// CASes tried with a version from an earlier life (all must fail).
    stale_tries: u64,
    not_found: u64,
    mismatches: u64,
}

fn cas_thread(
    cache: &Cache<u32, Life>,
    key: u32,
    successes: u64,
    finished: &AtomicUsize,
    remover_gone: &AtomicUsize,
) -> CasLog {
    let _finished = Finished(finished);
    let mut log = CasLog::default();
    // The last version this thread read or wrote, with its life.
    let mut last: Option<(u64, Version)> = None;
    let mut done = 0;
    while done < successes {
        let Some(((life, count), version)) = cache.gets(&key) else {
            if remover_gone.load(Ordering::Acquire) > 0 {
                break; // it panicked: the key will not come back
            }
            thread::yield_now();
            continue;
        };
        if let Some((old_life, old_version)) = last {
            if old_life != life {
                // A version from before a remove: never again valid for this key.
                log.stale_tries += 1;
                match cache.compare_and_swap(&key, old_version, (old_life, u64::MAX)) {
                    Ok(_) => {
                        panic!("CAS with a version of life {old_life} succeeded in a later life")
                    }
                    Err(CasError::Mismatch { current, .. }) => assert_ne!(current, old_version),
                    Err(CasError::NotFound(_)) => {}
                }
            }
        }
        match cache.compare_and_swap(&key, version, (life, count + 1)) {
            Ok(new) => {
                done += 1;
                *log.per_life.entry(life).or_default() += 1;
                log.versions.push(new);
                last = Some((life, new));
            }
            Err(CasError::Mismatch { current, value }) => {
                assert_ne!(current, version);
                assert_eq!(value, (life, count + 1));
                log.mismatches += 1;
                last = Some((life, version));
            }
            Err(CasError::NotFound(value)) => {
                assert_eq!(value, (life, count + 1));
                log.not_found += 1;
                last = Some((life, version));
            }
        }
    }
    log
}

#[derive(Default)]
struct RemoverLog {
    /// The count each life ended with.
    removed: HashMap<u64, u64>,
    versions: Vec<Version>,
}

fn remover_thread(
    cache: &Cache<u32, Life>,
    key: u32,
    cas_threads: usize,
    cas_finished: &AtomicUsize,
    gone: &AtomicUsize,
) -> RemoverLog {
    let _gone = Finished(gone);
    let mut log = RemoverLog::default();
    let mut life = 0;
    while cas_finished.load(Ordering::Acquire) < cas_threads {
        // Present: only this thread removes.
        let (seen, before) = cache.gets(&key).expect("only the remover removes");
        let (removed_life, count) = cache.remove(&key).expect("only the remover removes");
        assert_eq!(
            removed_life, life,
            "a CAS of another life landed in life {life}"
        );
        assert!(count >= seen.1, "the count went backwards in life {life}");
        log.removed.insert(life, count);
        life += 1;
        let version = cache.add(key, (life, 0)).expect("only the remover inserts");
        log.versions.push(version);
        // The version read before the remove is dead for good.
        assert!(matches!(
            cache.compare_and_swap(&key, before, (removed_life, u64::MAX)),
            Err(CasError::Mismatch { .. })
        ));
        assert!(matches!(
            cache.remove_if_version(&key, before),
            Err(CasError::Mismatch { .. })
        ));
        thread::yield_now();
    }
    log
}

fn remove_reinsert_churn(cas_threads: u64, successes: u64) {
    let _serial = serial();
    const KEY: u32 = 7;
    // The smallest table, so that the tombstone every remove leaves triggers frequent rehashes
    // while CASes are in flight. A few other keys make the probes longer.
    let cache: Cache<u32, Life> = Cache::builder().initial_capacity(1).build();
    let v0 = cache.add(KEY, (0, 0)).unwrap();
    for other in 100..102 {
        cache.insert(other, (u64::MAX, 0));
    }
    let (cas_finished, remover_gone) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let start = Instant::now();
    let (cas_logs, remover) = thread::scope(|s| {
        let (cache, cas_finished, remover_gone) = (&cache, &cas_finished, &remover_gone);
        let n = cas_threads as usize;
        let remover = s.spawn(move || remover_thread(cache, KEY, n, cas_finished, remover_gone));
        let workers: Vec<_> = (0..cas_threads)
            .map(|_| s.spawn(move || cas_thread(cache, KEY, successes, cas_finished, remover_gone)))
            .collect();
        let cas_logs: Vec<CasLog> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (cas_logs, remover.join().unwrap())
    });
    let elapsed = start.elapsed();

    // Close the last life.
    let mut removed = remover.removed;
    let (last_life, last_count) = cache.remove(&KEY).unwrap();
    removed.insert(last_life, last_count);
    assert_eq!(removed.len() as u64, last_life + 1);

    // Per life, the count the life ended with is exactly the number of successful CASes that
    // read that life: no increment lost, none landed in another life.
    let mut per_life: HashMap<u64, u64> = HashMap::new();
    for log in &cas_logs {
        for (life, n) in &log.per_life {
            *per_life.entry(*life).or_default() += n;
        }
    }
    for (life, count) in &removed {
        assert_eq!(
            per_life.get(life).copied().unwrap_or(0),
            *count,
            "life {life} ended with {count} increments"
        );
    }
    assert!(per_life.keys().all(|life| removed.contains_key(life)));
    let total: u64 = removed.values().sum();
    assert_eq!(total, cas_threads * successes);

    let versions = cas_logs.iter().flat_map(|l| l.versions.iter().copied());
    let all = versions.chain(remover.versions.iter().copied()).chain([v0]);
    let distinct = assert_unique(all, "churn");
    let sum = |f: fn(&CasLog) -> u64| cas_logs.iter().map(f).sum::<u64>();
    eprintln!(
        "remove_reinsert_churn: {cas_threads} CAS threads x {successes} increments over {} lives \
         in {elapsed:?}; {} mismatches, {} not found, {} stale-version CASes refused, {distinct} \
         distinct versions",
        last_life + 1,
        sum(|l| l.mismatches),
        sum(|l| l.not_found),
        sum(|l| l.stale_tries),
    );
    assert!(last_life > 0, "the remover never ran");
}

#[test]
fn remove_reinsert_churn_vs_cas() {
    remove_reinsert_churn(3, scaled(50_000, 300_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn remove_reinsert_churn_vs_cas_heavy() {
    remove_reinsert_churn(3, scaled(500_000, 3_000_000));
}

// ---------------------------------------------------------------------------------------------
// d. Every value dropped exactly once (a collector of the cache's own)
// ---------------------------------------------------------------------------------------------

fn drop_worker(cache: &Cache<u32, Tracked>, counters: &Arc<Counters>, seed: u64, ops: u64) {
    let mut rng = Rng::new(seed);
    let new = |tag| Tracked::new(counters, tag);
    for i in 0..ops {
        let key = rng.below(8) as u32;
        let tag = rng.next();
        match rng.below(16) {
            0 | 1 => {
                cache.insert(key, new(tag));
            }
            2 => {
                if let Err(occupied) = cache.add(key, new(tag)) {
                    occupied.value.verify(); // handed back, dropped here
                }
            }
            3 => {
                if let Err(err) = cache.replace(&key, new(tag)) {
                    err.into_value().verify();
                }
            }
            4 | 5 => {
                for _ in 0..4 {
                    let Some((value, version)) = cache.gets(&key) else {
                        break;
                    };
                    value.verify();
                    match cache.compare_and_swap(&key, version, new(value.tag.wrapping_add(1))) {
                        Ok(_) => break,
                        Err(err) => err.into_value().verify(),
                    }
                }
            }
            6 => {
                // The closure may run several times; each unused result is dropped.
                cache.update(&key, |v| {
                    v.verify();
                    (v.tag % 4 != 0).then(|| new(v.tag.wrapping_add(1)))
                });
            }
            7 => {
                if let Some(value) = cache.remove(&key) {
                    value.verify();
                }
            }
            8 => {
                cache.delete(&key);
            }
            9 => {
                if let Some((_, version)) = cache.gets(&key) {
                    let _ = cache.remove_if_version(&key, version);
                }
            }
            10 => {
                cache.get_with(&key, Tracked::verify);
                drop(cache.get(&key));
            }
            11 => {
                let pinned = cache.pin();
                if let Some((value, version)) = pinned.gets(&key) {
                    let _ = pinned.compare_and_swap(&key, version, new(tag));
                    value.verify(); // still readable through the view
                }
                pinned.insert(key + 8, new(tag));
                if let Some(value) = pinned.remove(&(key + 8)) {
                    value.verify();
                }
                if let Some(value) = pinned.get(&key) {
                    cache.delete(&key);
                    value.verify();
                }
            }
            12 => cache.iter().for_each(|(_, v)| v.verify()),
            13 => cache.pin().iter().for_each(|(_, v)| v.verify()),
            14 if i % 32 == 0 => cache.clear(),
            _ => {
                cache.insert(key + 16, new(tag));
            }
        }
    }
}

/// `max_capacity`: a bounded cache, whose evictions drop values too (the workers use 24 keys).
fn every_value_dropped_once(threads: u64, ops: u64, max_capacity: Option<u64>) {
    let _serial = serial();
    let counters = Counters::new(16 << 20);
    let evictions = Arc::new(AtomicU64::new(0));
    let evicted = Arc::clone(&evictions);
    let mut builder = Cache::builder()
        .initial_capacity(1)
        .collector(Collector::new())
        .eviction_listener(move |_key, value: &Tracked, cause| {
            value.verify();
            if cause == RemovalCause::Evicted {
                evicted.fetch_add(1, Ordering::Relaxed);
            }
        });
    if let Some(max) = max_capacity {
        builder = builder.max_capacity(max);
    }
    let cache: Cache<u32, Tracked> = builder.build();
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let (cache, counters) = (&cache, &counters);
            s.spawn(move || drop_worker(cache, counters, t + 1, ops));
        }
    });
    let elapsed = start.elapsed();
    let stored = cache.len();
    assert_eq!(cache.iter().count(), stored);
    assert!(counters.live() >= stored);
    drop(cache);

    let created = counters.created();
    assert_eq!(
        counters.double_drops.load(Ordering::SeqCst),
        0,
        "double drops"
    );
    assert_eq!(
        counters.corrupt_drops.load(Ordering::SeqCst),
        0,
        "corrupt values"
    );
    assert_eq!(
        counters.live(),
        0,
        "values leaked after the cache was dropped"
    );
    let per_id = counters.per_id.as_ref().unwrap();
    for (id, drops) in per_id.iter().enumerate().take(created) {
        assert_eq!(drops.load(Ordering::SeqCst), 1, "value {id}");
    }
    let evictions = evictions.load(Ordering::Relaxed);
    eprintln!(
        "every_value_dropped_once (max_capacity {max_capacity:?}): {threads} threads x {ops} ops \
         in {elapsed:?}: {created} values created, each dropped once ({stored} were stored at \
         the end, {evictions} evicted)"
    );
    if let Some(max) = max_capacity {
        assert!(
            stored as u64 <= max,
            "{stored} entries in a cache bounded at {max}"
        );
        assert!(evictions > 0, "the bounded run never evicted");
    }
}

#[test]
fn drops_every_value_once() {
    every_value_dropped_once(4, scaled(20_000, 100_000), None);
}

#[test]
fn drops_every_value_once_bounded() {
    every_value_dropped_once(4, scaled(20_000, 100_000), Some(6));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn drops_every_value_once_heavy() {
    every_value_dropped_once(4, scaled(200_000, 1_000_000), None);
    every_value_dropped_once(4, scaled(200_000, 1_000_000), Some(6));
}

// ---------------------------------------------------------------------------------------------
// e. Memory stays bounded under sustained churn (global collector)
// ---------------------------------------------------------------------------------------------

/// The fixed part of the bound on values alive at once (see `memory_stays_bounded`).
///
/// Alive are the values stored (`KEYS`), the one or two each worker holds (a read clone, a value
/// being written), and the retired values crossbeam-epoch has not freed yet. Retired values wait
/// in a thread-local bag of at most 64 until it is sealed into the global queue, and a sealed bag
/// is freed once the global epoch has advanced twice past it. Every 128th pin of a thread tries
/// to advance the epoch and frees up to 8 expired bags (512 values), while a worker retires at
/// most one value per pin: collection outpaces retirement, and on an idle machine the backlog is
/// a few bags per thread (measured in a release build on 2 cores: median ~7_000 values, peaks
/// 30_000-130_000, at ~7-13 million retirements per second).
///
/// The peaks come from stalls: the epoch cannot advance while a thread is pinned in an older
/// one, so a worker descheduled in the middle of an operation stalls every free until it runs
/// again, while the others keep retiring. The allocator stalls too: after an earlier test of this
/// process freed millions of small blocks, glibc's `malloc_consolidate` was seen (perf) taking
/// ~1-2 s inside a single operation of this test, and peaks reached ~3 million values. Hence the
/// second part of the bound, in `memory_stays_bounded`: what the measured stalls explain.
///
/// 500_000 in release and 100_000 in debug (~1.2 million retirements/s), twice that when the
/// workers outnumber the cores. Each run allocates at least 4 times this (checked).
fn fixed_live_bound(workers: u64) -> usize {
    let base = if cfg!(debug_assertions) {
        100_000
    } else {
        500_000
    };
    let cores = thread::available_parallelism().map_or(2, |n| n.get() as u64);
    if workers > cores {
        base * 2
    } else {
        base
    }
}

/// Sustained churn on a few keys with the global collector: workers with an even index run the
/// CAS-increment loop, the others overwrite with `insert`. A sampler records how many values are
/// alive; the peak must stay under a bound while the run allocates far more.
///
/// The bound is the larger of `fixed_live_bound` and what preemption explains on a loaded
/// machine: values stay unfreed at most while some thread is pinned in an old epoch, and each
/// worker measures the longest any of its operations (each one or two pins) took, preemption
/// included. While the epoch is stuck for `stall`, the workers retire about `rate * stall`
/// values, and a stall can begin just before the previous one ends, so the bound allows
/// `4 * rate * longest stall` (rate = the run's average, which a stall itself lowers). A leak, or
/// frees held back by anything but pinned threads, grows with the run instead. Whatever the
/// machine, the final check is exact: once the workers are done, flushing the collector frees
/// everything but the stored values.
fn memory_stays_bounded(workers: u64, ops: u64) {
    let _serial = serial();
    const KEYS: u32 = 4;
    let fixed_bound = fixed_live_bound(workers);
    let counters = Counters::new(0);
    let cache: Cache<u32, Tracked> = Cache::new(16);
    let done = AtomicUsize::new(0);
    // The longest operation of any worker, in nanoseconds.
    let longest_op = AtomicU64::new(0);
    let mut samples = Vec::new();
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..workers {
            let (cache, counters, done, longest_op) = (&cache, &counters, &done, &longest_op);
            s.spawn(move || {
                let _finished = Finished(done);
                let mut rng = Rng::new(t + 100);
                let mut longest = Duration::ZERO;
                for _ in 0..ops {
                    let key = rng.below(u64::from(KEYS)) as u32;
                    let op_start = Instant::now();
                    if t % 2 == 0 {
                        loop {
                            let Some((value, version)) = cache.gets(&key) else {
                                let _ = cache.add(key, Tracked::new(counters, 0));
                                continue;
                            };
                            let next = Tracked::new(counters, value.tag + 1);
                            if cache.compare_and_swap(&key, version, next).is_ok() {
                                break;
                            }
                        }
                    } else {
                        cache.insert(key, Tracked::new(counters, 0));
                    }
                    longest = longest.max(op_start.elapsed());
                }
                longest_op.fetch_max(longest.as_nanos() as u64, Ordering::Relaxed);
            });
        }
        // The sampler reads two counters and never pins.
        while done.load(Ordering::Acquire) < workers as usize {
            samples.push(counters.live());
            thread::sleep(Duration::from_micros(500));
        }
    });
    let elapsed = start.elapsed();
    let created = counters.created();
    let rate = created as f64 / elapsed.as_secs_f64();
    let stall = Duration::from_nanos(longest_op.load(Ordering::Relaxed));
    let stall_bound = (4.0 * rate * stall.as_secs_f64()) as usize;
    let bound = fixed_bound.max(stall_bound);
    samples.sort_unstable();
    let percentile = |p: usize| samples.get(samples.len() * p / 100).copied().unwrap_or(0);
    let max_live = samples.last().copied().unwrap_or(0);
    eprintln!(
        "memory_stays_bounded: {workers} workers x {ops} ops in {elapsed:?}: {created} values \
         allocated ({:.1} M/s); alive at once: median {}, p99 {}, max {max_live} ({} samples); \
         longest operation {stall:?}; bound {bound} (fixed {fixed_bound}, stalls {stall_bound})",
        rate / 1e6,
        percentile(50),
        percentile(99),
        samples.len()
    );
    assert!(!samples.is_empty());
    assert!(
        max_live < bound,
        "{max_live} values alive at once (bound {bound})"
    );
    assert!(
        created >= 4 * fixed_bound,
        "the run allocates too little ({created}) to show anything"
    );

    // Once the workers are gone, flushing the collector frees the whole backlog: exactly the
    // stored values remain. Then dropping the cache frees those too.
    let flush_until = |target: usize| {
        for _ in 0..1_000_000 {
            if counters.live() <= target {
                break;
            }
            crossbeam_epoch::pin().flush();
        }
        counters.live()
    };
    assert_eq!(cache.len(), KEYS as usize);
    let left = flush_until(KEYS as usize);
    assert_eq!(left, KEYS as usize, "values alive after flushing");
    drop(cache);
    assert_eq!(flush_until(0), 0, "values never freed");
    assert_eq!(counters.corrupt_drops.load(Ordering::SeqCst), 0);
}

#[test]
fn memory_stays_bounded_under_churn() {
    memory_stays_bounded(2, scaled(200_000, 5_000_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn memory_stays_bounded_under_churn_heavy() {
    memory_stays_bounded(4, scaled(1_000_000, 5_000_000));
}

// ---------------------------------------------------------------------------------------------
// f. Growth under concurrency: readers always find what was inserted
// ---------------------------------------------------------------------------------------------

fn value_of(key: u64) -> u64 {
    key.wrapping_mul(3) + 1
}

fn growth_with_readers(per_writer: u64) {
    let _serial = serial();
    const WRITERS: u64 = 2;
    const READERS: u64 = 2;
    let cache: Cache<u64, u64> = Cache::builder().initial_capacity(1).build();
    // The version `insert` returned for each key, published before the key's writer raises
    // its watermark (keys `t * per_writer .. t * per_writer + watermark[t]` are present).
    let versions: Vec<AtomicU64> = (0..WRITERS * per_writer)
        .map(|_| AtomicU64::new(0))
        .collect();
    let watermark: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    let writers_done = AtomicUsize::new(0);
    let start = Instant::now();
    let (reads, iterations) = thread::scope(|s| {
        for t in 0..WRITERS {
            let (cache, versions, watermark, writers_done) =
                (&cache, &versions, &watermark, &writers_done);
            s.spawn(move || {
                let _finished = Finished(writers_done);
                let first = t * per_writer;
                for chunk_start in (0..per_writer).step_by(32) {
                    // Writer 0 inserts through a pinned view, writer 1 with `add`.
                    let pinned = cache.pin();
                    for i in chunk_start..(chunk_start + 32).min(per_writer) {
                        let key = first + i;
                        let version = if t == 0 {
                            pinned.insert(key, value_of(key))
                        } else {
                            cache.add(key, value_of(key)).expect("keys are disjoint")
                        };
                        versions[key as usize].store(version.get(), Ordering::Relaxed);
                        watermark[t as usize].store(i + 1, Ordering::Release);
                    }
                }
            });
        }
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (cache, versions, watermark, writers_done) =
                    (&cache, &versions, &watermark, &writers_done);
                s.spawn(move || {
                    let mut rng = Rng::new(r + 7);
                    let (mut reads, mut iterations) = (0u64, 0u64);
                    let check = |key: u64, got: Option<(u64, Version)>| {
                        let (value, version) = got.unwrap_or_else(|| panic!("key {key} lost"));
                        assert_eq!(value, value_of(key), "key {key}");
                        assert_eq!(
                            version.get(),
                            versions[key as usize].load(Ordering::Relaxed),
                            "key {key}: version"
                        );
                    };
                    while writers_done.load(Ordering::Acquire) < WRITERS as usize {
                        let t = rng.below(WRITERS);
                        let present = watermark[t as usize].load(Ordering::Acquire);
                        if present == 0 {
                            continue;
                        }
                        let key = t * per_writer + rng.below(present);
                        match reads % 4 {
                            0 => check(key, cache.gets(&key)),
                            1 => check(key, cache.pin().gets(&key).map(|(v, ver)| (*v, ver))),
                            2 => assert!(cache.contains_key(&key), "key {key} lost"),
                            _ => assert_eq!(cache.get_with(&key, |v| *v), Some(value_of(key))),
                        }
                        reads += 1;
                        // Reader 0 only probes; reader 1 also iterates now and then.
                        if r == 1 && reads % 4_096 == 0 {
                            iterations += 1;
                            // Weakly consistent iteration: every key present throughout is
                            // yielded, and none twice (even across the resizes it races).
                            let marks: Vec<u64> = watermark
                                .iter()
                                .map(|w| w.load(Ordering::Acquire))
                                .collect();
                            let mut yielded = HashSet::new();
                            for (key, value) in cache.iter() {
                                assert_eq!(value, value_of(key));
                                assert!(yielded.insert(key), "iter yielded key {key} twice");
                            }
                            for (t, mark) in marks.iter().enumerate() {
                                for i in 0..*mark {
                                    let key = t as u64 * per_writer + i;
                                    assert!(yielded.contains(&key), "iter missed key {key}");
                                }
                            }
                        }
                    }
                    (reads, iterations)
                })
            })
            .collect();
        let counts = readers.into_iter().map(|r| r.join().unwrap());
        counts.fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    let elapsed = start.elapsed();
    let total = WRITERS * per_writer;
    assert_eq!(cache.len() as u64, total);
    for key in 0..total {
        let version = Version::from_raw(versions[key as usize].load(Ordering::Relaxed));
        assert_eq!(cache.gets(&key), Some((value_of(key), version.unwrap())));
    }
    let distinct = assert_unique(
        versions
            .iter()
            .filter_map(|v| Version::from_raw(v.load(Ordering::Relaxed))),
        "growth",
    );
    assert_eq!(distinct as u64, total);
    eprintln!(
        "growth_with_readers: {total} keys inserted from a 4-slot table in {elapsed:?} while \
         {READERS} readers made {reads} reads and {iterations} full iterations"
    );
}

#[test]
fn growth_under_concurrent_reads() {
    growth_with_readers(scaled(50_000, 200_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn growth_under_concurrent_reads_heavy() {
    growth_with_readers(scaled(200_000, 2_000_000));
}

// ---------------------------------------------------------------------------------------------
// g. `gets` is never torn
// ---------------------------------------------------------------------------------------------

/// A value whose four words all derive from `x`, so a mix of two values is detectable.
type Quad = [u64; 4];

fn quad(x: u64) -> Quad {
    [x, !x, x.rotate_left(17), x ^ 0xA5A5_5A5A_C3C3_3C3C]
}

fn x_of(value: &Quad) -> u64 {
    assert_eq!(*value, quad(value[0]), "torn value {value:x?}");
    value[0]
}

fn gets_never_torn(writers: u64, readers: u64, writes: u64) {
    let _serial = serial();
    const KEYS: u64 = 4;
    let cache: Cache<u64, Quad> = Cache::builder().initial_capacity(1).build();
    for key in 0..KEYS {
        cache.insert(key, quad(u64::MAX - key)); // not in any log: readers skip it
    }
    let writers_done = AtomicUsize::new(0);
    let start = Instant::now();
    let (write_logs, read_logs) = thread::scope(|s| {
        let write_logs: Vec<_> = (0..writers)
            .map(|t| {
                let (cache, writers_done) = (&cache, &writers_done);
                s.spawn(move || {
                    let _finished = Finished(writers_done);
                    let mut rng = Rng::new(t + 1_000);
                    let mut counter = 0u64;
                    // Every x is unique across the run: the writer's id, then a counter.
                    let mut fresh = || {
                        counter += 1;
                        (t << 48) | counter
                    };
                    // (x, version) of every successful write.
                    let mut log: Vec<(u64, Version)> = Vec::new();
                    for _ in 0..writes {
                        let key = rng.below(KEYS);
                        match rng.below(6) {
                            0 | 1 => {
                                let x = fresh();
                                log.push((x, cache.insert(key, quad(x))));
                            }
                            2 => {
                                if let Some((_, version)) = cache.gets(&key) {
                                    let x = fresh();
                                    if let Ok(v) = cache.compare_and_swap(&key, version, quad(x)) {
                                        log.push((x, v));
                                    }
                                }
                            }
                            3 => {
                                // The value stored is the one of the closure's last call.
                                let mut last = 0;
                                let stored = cache.update(&key, |old| {
                                    x_of(old);
                                    last = fresh();
                                    Some(quad(last))
                                });
                                if let Some(v) = stored {
                                    log.push((last, v));
                                }
                            }
                            4 => {
                                let x = fresh();
                                if let Ok(v) = cache.replace(&key, quad(x)) {
                                    log.push((x, v));
                                }
                            }
                            _ => {
                                // Remove and re-add: the key's slot changes, resizes follow.
                                if let Some((_, version)) = cache.gets(&key) {
                                    if cache.remove_if_version(&key, version).is_ok() {
                                        let x = fresh();
                                        if let Ok(v) = cache.add(key, quad(x)) {
                                            log.push((x, v));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    log
                })
            })
            .collect();
        let read_logs: Vec<_> = (0..readers)
            .map(|r| {
                let (cache, writers_done) = (&cache, &writers_done);
                s.spawn(move || {
                    let mut rng = Rng::new(r + 2_000);
                    let mut log: Vec<(u64, Version)> = Vec::new();
                    let mut reads = 0u64;
                    while writers_done.load(Ordering::Acquire) < writers as usize {
                        let key = rng.below(KEYS);
                        reads += 1;
                        let got = match reads % 8 {
                            0 => {
                                cache.iter().for_each(|(_, v)| {
                                    x_of(&v);
                                });
                                None
                            }
                            1 => {
                                let pinned = cache.pin();
                                let got = pinned.gets(&key);
                                pinned.iter().for_each(|(_, v)| {
                                    x_of(v);
                                });
                                got.map(|(v, ver)| (*v, ver))
                            }
                            2 => {
                                cache.get_with(&key, x_of);
                                None
                            }
                            _ => cache.gets(&key),
                        };
                        if let Some((value, version)) = got {
                            log.push((x_of(&value), version));
                        }
                    }
                    (log, reads)
                })
            })
            .collect();
        let write_logs: Vec<_> = write_logs.into_iter().map(|w| w.join().unwrap()).collect();
        let read_logs: Vec<_> = read_logs.into_iter().map(|r| r.join().unwrap()).collect();
        (write_logs, read_logs)
    });
    let elapsed = start.elapsed();

    // Every (value, version) a reader saw is one a write returned.
    let written: HashMap<u64, Version> = write_logs.iter().flatten().copied().collect();
    let writes_ok = write_logs.iter().map(Vec::len).sum::<usize>();
    assert_eq!(written.len(), writes_ok, "an x was written twice");
    assert_unique(written.values().copied(), "writes");
    let mut observed = 0;
    for (x, version) in read_logs.iter().flat_map(|(log, _)| log) {
        if *x >= u64::MAX - KEYS {
            continue; // an initial value
        }
        match written.get(x) {
            Some(v) => assert_eq!(v, version, "value {x:#x} read with another version"),
            None => panic!("value {x:#x} read but never written"),
        }
        observed += 1;
    }
    let reads: u64 = read_logs.iter().map(|(_, reads)| reads).sum();
    eprintln!(
        "gets_never_torn: {writers} writers x {writes} writes ({writes_ok} stored) in \
         {elapsed:?}; {readers} readers, {reads} reads, {observed} (value, version) pairs checked"
    );
}

#[test]
fn gets_is_never_torn() {
    gets_never_torn(2, 2, scaled(100_000, 1_000_000));
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn gets_is_never_torn_heavy() {
    gets_never_torn(2, 2, scaled(1_000_000, 10_000_000));
}

/// Runs `a` and `b` on two threads against each of `fixtures`, both starting every trial
/// together (`a` after a skew of 0–31 pauses, varied from trial to trial).
fn race_each<T: Sync>(fixtures: &[T], a: impl Fn(&T) + Sync, b: impl Fn(&T) + Sync) {
    let arrived = AtomicUsize::new(0);
    let run = |f: &(dyn Fn(&T) + Sync), skew: bool| {
        for (i, fixture) in fixtures.iter().enumerate() {
            arrived.fetch_add(1, Ordering::AcqRel);
            while arrived.load(Ordering::Acquire) < 2 * (i + 1) {
                std::hint::spin_loop();
            }
            for _ in 0..if skew { i % 32 } else { 0 } {
                std::hint::spin_loop();
            }
            f(fixture);
        }
    };
    thread::scope(|s| {
        s.spawn(|| run(&a, true));
        s.spawn(|| run(&b, false));
    });
}

/// The expiry sweep (run by any insert) judged an entry's old value expired and then removed
/// whatever value the entry held by then: an `add` that had just stored over the expired value
/// returned Ok, and its value vanished. Found by the linearizability checker's TTL histories.
#[test]
fn a_value_stored_over_an_expired_one_survives_the_expiry_sweep() {
    let _serial = serial();
    let trials = scaled(2_000, 20_000) as usize;
    let fixtures: Vec<(Cache<u64, u64>, cascache::MockClock)> = (0..trials)
        .map(|_| {
            let clock = cascache::MockClock::new();
            let cache = Cache::builder()
                .max_capacity(64)
                .shards(1)
                .clock(clock.clone())
                .build();
            cache.insert_with_ttl(0, 0, Duration::from_millis(1));
            clock.advance(Duration::from_millis(1));
            (cache, clock)
        })
        .collect();
    race_each(
        &fixtures,
        |(cache, _)| assert!(cache.add(0, 7).is_ok(), "the old value had expired"),
        |(cache, _)| {
            cache.insert(1, 1); // a miss: the sweep visits key 0
        },
    );
    let lost = fixtures
        .iter()
        .filter(|(cache, _)| cache.get(&0) != Some(7))
        .count();
    assert_eq!(
        lost, 0,
        "{lost} of {trials} acknowledged adds were swept away"
    );
}

/// `touch` wrote its deadline into the value it found, and a conditional write that had copied
/// the old deadline swapped in its node after: the touch was lost although it returned true.
#[test]
fn a_touch_is_not_lost_to_a_concurrent_update() {
    let _serial = serial();
    let trials = scaled(2_000, 20_000) as usize;
    let fixtures: Vec<(Cache<u64, u64>, cascache::MockClock)> = (0..trials)
        .map(|_| {
            let clock = cascache::MockClock::new();
            let cache = Cache::builder().clock(clock.clone()).build();
            cache.insert_with_ttl(0, 0, Duration::from_millis(10));
            (cache, clock)
        })
        .collect();
    race_each(
        &fixtures,
        |(cache, _)| assert!(cache.touch(&0, None)), // never expire
        |(cache, _)| assert!(cache.update(&0, |n| Some(n + 1)).is_some()),
    );
    // Whichever went first, the value left never expires.
    let lost = fixtures
        .iter()
        .filter(|(cache, _)| cache.time_to_live(&0) != Some(None))
        .count();
    assert_eq!(lost, 0, "{lost} of {trials} touches were lost");
}
