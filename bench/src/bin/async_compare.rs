//! The async single-flight loaders side by side: cascache's `get_or_insert_with_async`, moka's
//! `future::Cache::get_with` and quick_cache's `get_value_or_guard_async` (then `insert` through
//! the guard on a miss), on one tokio multi-thread runtime with 2 worker threads, rounds
//! interleaved, then a table of medians and ratios and the targets met or missed.
//!
//! ```sh
//! cargo run --release -p cascache-bench --bin async_compare            # ~20 s: 5 rounds
//! cargo run --release -p cascache-bench --bin async_compare -- --quick # < 10 s (CI)
//! cargo run --release -p cascache-bench --bin async_compare -- --peers cascache --only hit
//! ```
//!
//! Two measurements, each cache built the same way (bounded at 1M entries, `ahash` hasher,
//! `u64 → u64`) and preloaded with the 100K keys `0..100_000`, so the hit test never evicts:
//! * `hit`: `--tasks` tasks (default 64) each make a fixed number of loader calls on present
//!   keys, picked in Zipf(0.99) order from one precomputed stream, each task from its own
//!   offset. A hit awaits nothing, so it must complete on its first poll: that is checked (on
//!   10,000 calls per cache, outside the timing) and the count of hits that yielded is printed.
//!   The loader of a hit is never run; a run would be counted and fail the binary.
//! * `coalesced miss`: `--groups` groups (default 4) of `--tasks` tasks; the tasks of a group
//!   walk the group's sequence of fresh keys (never seen by that cache before), each task
//!   asking for every key in turn, so each key is asked for `--tasks` times. One design for
//!   all three caches, chosen so that every key sees the same pile-up whatever the cache: a
//!   task counts itself in for a key just before its call, and the loader (which counts its own
//!   runs) stays pending until every task of its group has counted itself in, woken by the last
//!   one (one waker per key, so the harness adds next to nothing per request). So a load stays
//!   in flight until all its group has asked: one leader and `tasks − 1` waiters per key (a task
//!   on the other worker can still, rarely, ask just after the store and hit), then one
//!   wake-up of them all. No load waits for a task stuck on an earlier key: that key's count
//!   filled before any task could move on. The groups run side by side because one group in
//!   lock-step leaves a worker with nothing to run at every key (only the leader is runnable
//!   then): that worker parks, and the test would time the kernel's wake-ups, not the caches.
//!   Measured: requests completed per second (groups × tasks × keys / wall time), loader
//!   invocations per key (single flight means 1; mean and max are printed) and the share of
//!   requests that awaited (leader or waiter; the rest found the value stored).
//!
//! Options:
//! * `--rounds N` (default 5, 3 with `--quick`): measurements per cache and test; each round
//!   runs every cache once, in an order rotated every round. Ratios are medians of the
//!   per-round ratios, the spread is the min – max over rounds.
//! * `--tasks N` (default 64: the hit test's tasks, and each miss group's), `--calls N` (hit
//!   calls per task, default 100,000), `--groups N` (default 4) and `--keys N` (fresh keys per
//!   group and miss measurement, default 2,000).
//! * `--quick` (or `CASCACHE_BENCH_QUICK=1`): 3 rounds of 40,000 calls and 1,000 keys.
//! * `--only hit|miss`, `--peers LIST` (e.g. `--peers cascache` under `perf record`); the
//!   targets that need a missing peer are then left out.
//!
//! Absolute figures on a shared 2-core machine are noise; the ratios, measured in one process
//! with rounds interleaved, are the result.

use std::future::Future;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use ahash::RandomState;
use cascache_bench::workloads::{zipf, ZIPF_S};
use parking_lot::Mutex;

/// Keys preloaded into every cache (`0..KEYS`, each the value of itself).
const KEYS: u64 = 100_000;
/// Every cache's bound: far above what the run stores, so nothing is evicted.
const CAPACITY: u64 = 1_000_000;
/// Length of the hit test's key stream (a power of two).
const STREAM: usize = 1 << 20;
/// Hit calls checked for completing on their first poll, per cache.
const FIRST_POLL_CHECKS: usize = 10_000;
const PEERS: [&str; 3] = ["cascache", "moka", "quick_cache"];

struct Args {
    rounds: usize,
    tasks: usize,
    calls: usize,
    keys: usize,
    groups: usize,
    hit: bool,
    miss: bool,
    peers: Vec<String>,
    quick: bool,
}

const USAGE: &str = "usage: cargo run --release -p cascache-bench --bin async_compare -- \
[--quick] [--rounds N] [--tasks N] [--calls N] [--keys N] [--groups N] [--only hit|miss] \
[--peers LIST]";

fn parse_args() -> Result<Args, String> {
    let quick = std::env::var("CASCACHE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
        || std::env::args().any(|a| a == "--quick");
    let mut args = Args {
        rounds: if quick { 3 } else { 5 },
        tasks: 64,
        calls: if quick { 40_000 } else { 100_000 },
        keys: if quick { 1_000 } else { 2_000 },
        groups: 4,
        hit: true,
        miss: true,
        peers: PEERS.iter().map(|p| p.to_string()).collect(),
        quick,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut count = |what: &str, min: usize, max: usize| {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| (min..=max).contains(n))
                .ok_or(format!("{arg} needs {what} from {min} to {max}"))
        };
        match arg.as_str() {
            "--quick" => {}
            "--rounds" => args.rounds = count("a count", 1, 1_000)?,
            "--tasks" => args.tasks = count("a count", 1, 100_000)?,
            "--calls" => args.calls = count("a count", 1, 1 << 30)?,
            "--keys" => args.keys = count("a count", 1, 100_000)?,
            "--groups" => args.groups = count("a count", 1, 64)?,
            "--only" => match it.next().as_deref() {
                Some("hit") => args.miss = false,
                Some("miss") => args.hit = false,
                other => return Err(format!("--only: hit or miss, not {other:?}")),
            },
            "--peers" => {
                let list = it.next().ok_or("--peers needs a list")?;
                args.peers = list.split(',').map(String::from).collect();
                if let Some(bad) = args.peers.iter().find(|p| !PEERS.contains(&p.as_str())) {
                    return Err(format!("--peers: unknown cache {bad:?}"));
                }
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    // Every measurement's fresh keys stay in the cache: keep them all far below the bound.
    if (args.groups * args.keys * (args.rounds + 1)) as u64 + KEYS > CAPACITY / 2 {
        return Err("--groups × --keys × (--rounds + 1) too large: the caches would fill".into());
    }
    Ok(args)
}

// ----- the caches, behind one async loader call -----

/// One async single-flight loader call: the value of `key`, or `init`'s, inserted.
trait AsyncLoader: Send + Sync + 'static {
    fn load<F>(&self, key: u64, init: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send;
    /// Stores `key → value` (preloading).
    fn put(&self, key: u64, value: u64) -> impl Future<Output = ()> + Send;
    /// Housekeeping owed after the preload, so that it is not timed.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

type Cascache = cascache::Cache<u64, u64>;

impl AsyncLoader for Cascache {
    #[inline]
    fn load<F>(&self, key: u64, init: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send,
    {
        self.get_or_insert_with_async(key, init)
    }
    async fn put(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}

type Moka = moka::future::Cache<u64, u64, RandomState>;

impl AsyncLoader for Moka {
    #[inline]
    fn load<F>(&self, key: u64, init: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send,
    {
        self.get_with(key, init)
    }
    async fn put(&self, key: u64, value: u64) {
        self.insert(key, value).await;
    }
    async fn settle(&self) {
        self.run_pending_tasks().await;
    }
}

type QuickCache = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    RandomState,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

impl AsyncLoader for QuickCache {
    #[inline]
    async fn load<F>(&self, key: u64, init: F) -> u64
    where
        F: Future<Output = u64> + Send,
    {
        match self.get_value_or_guard_async(&key).await {
            Ok(value) => value,
            Err(guard) => {
                let value = init.await;
                // Err only if the placeholder was replaced meanwhile: nothing does that here.
                let _ = guard.insert(value);
                value
            }
        }
    }
    async fn put(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}

/// A cache with the 100K keys loaded and its housekeeping done.
async fn preloaded<C: AsyncLoader>(cache: C) -> Arc<C> {
    for key in 0..KEYS {
        cache.put(key, key).await;
    }
    cache.settle().await;
    Arc::new(cache)
}

// ----- the measurements -----

/// What one measurement counted.
#[derive(Clone, Copy, Default)]
struct Sample {
    requests: u64,
    elapsed: Duration,
    /// Loader calls (`coalesced miss`), and the most for one key.
    loads: u64,
    max_loads_per_key: u32,
    keys: u64,
    /// Requests that did not complete on their first poll: the loads' leaders and waiters
    /// (`coalesced miss`; the rest found the value stored).
    waited: u64,
}

impl Sample {
    fn mops(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Loader calls on present keys: each task `calls` of them along `stream` from its offset.
/// Returns the requests (loader runs and wrong values fail it).
async fn hit_run<C: AsyncLoader>(
    cache: &Arc<C>,
    stream: &Arc<Vec<u64>>,
    tasks: usize,
    calls: usize,
) -> Result<Sample, String> {
    let ran = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (cache, stream, ran) = (Arc::clone(cache), Arc::clone(stream), Arc::clone(&ran));
            tokio::spawn(async move {
                let mask = stream.len() - 1;
                let start = t * (STREAM / tasks) + t * 7919;
                let mut wrong = 0u64;
                for i in start..start + calls {
                    let key = stream[i & mask];
                    let ran = &ran;
                    let value = cache
                        .load(key, async move {
                            ran.fetch_add(1, Ordering::Relaxed);
                            key
                        })
                        .await;
                    wrong += u64::from(value != key);
                }
                wrong
            })
        })
        .collect();
    let mut wrong = 0;
    for handle in handles {
        wrong += handle
            .await
            .map_err(|e| format!("a hit task failed: {e}"))?;
    }
    let elapsed = started.elapsed();
    let ran = ran.load(Ordering::Relaxed);
    if wrong != 0 || ran != 0 {
        return Err(format!(
            "hit: {wrong} wrong values, {ran} loader runs on present keys"
        ));
    }
    Ok(Sample {
        requests: (tasks * calls) as u64,
        elapsed,
        ..Sample::default()
    })
}

/// One fresh key of the coalesced-miss test.
#[derive(Default)]
struct Slot {
    /// Tasks that have asked for it (counted just before the call).
    asked: AtomicU32,
    /// Loader runs for it.
    loads: AtomicU32,
    /// A loader waiting for the last task to ask.
    loader: Mutex<Option<Waker>>,
}

impl Slot {
    /// Counts a task in; the last of `tasks` wakes the loader.
    fn ask(&self, tasks: usize) {
        if self.asked.fetch_add(1, Ordering::SeqCst) + 1 == tasks as u32 {
            if let Some(waker) = self.loader.lock().take() {
                waker.wake();
            }
        }
    }

    /// Ready once all `tasks` have asked. (The count is read under the lock that `ask` takes
    /// after counting, so either the loader sees the last count or the last task its waker.)
    fn everyone_asked(&self, tasks: usize) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut loader = self.loader.lock();
            if self.asked.load(Ordering::SeqCst) >= tasks as u32 {
                Poll::Ready(())
            } else {
                *loader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// In each of `groups`, `tasks` tasks ask for each of the group's `keys` fresh keys from `base`
/// in turn (see the top of the file).
async fn miss_run<C: AsyncLoader>(
    cache: &Arc<C>,
    base: u64,
    groups: usize,
    tasks: usize,
    keys: usize,
) -> Result<Sample, String> {
    let slots: Arc<Vec<Slot>> = Arc::new((0..groups * keys).map(|_| Slot::default()).collect());
    let started = Instant::now();
    // The groups' tasks interleaved, so that each worker gets tasks of every group.
    let handles: Vec<_> = (0..groups * tasks)
        .map(|t| {
            let (cache, slots) = (Arc::clone(cache), Arc::clone(&slots));
            let first = (t % groups) * keys;
            tokio::spawn(async move {
                let (mut wrong, mut waited) = (0u64, 0u64);
                for (n, slot) in slots[first..first + keys].iter().enumerate() {
                    let key = base + (first + n) as u64;
                    slot.ask(tasks);
                    let (value, pending) = polled(cache.load(key, async move {
                        slot.loads.fetch_add(1, Ordering::Relaxed);
                        slot.everyone_asked(tasks).await;
                        key
                    }))
                    .await;
                    wrong += u64::from(value != key);
                    waited += u64::from(pending);
                }
                (wrong, waited)
            })
        })
        .collect();
    let (mut wrong, mut waited) = (0, 0);
    for handle in handles {
        let (w, p) = handle
            .await
            .map_err(|e| format!("a miss task failed: {e}"))?;
        wrong += w;
        waited += p;
    }
    let elapsed = started.elapsed();
    if wrong != 0 {
        return Err(format!("coalesced miss: {wrong} wrong values"));
    }
    let counts: Vec<u32> = slots
        .iter()
        .map(|s| s.loads.load(Ordering::Relaxed))
        .collect();
    if let Some(n) = counts.iter().position(|&c| c == 0) {
        return Err(format!(
            "coalesced miss: key {} was never loaded",
            base + n as u64
        ));
    }
    Ok(Sample {
        requests: (groups * tasks * keys) as u64,
        elapsed,
        loads: counts.iter().map(|&c| u64::from(c)).sum(),
        max_loads_per_key: counts.iter().copied().max().unwrap_or(0),
        keys: (groups * keys) as u64,
        waited,
    })
}

/// `call`'s output, and whether it returned `Pending` before it (awaited something).
async fn polled<F: Future>(call: F) -> (F::Output, bool) {
    let mut call = pin!(call);
    let mut polls = 0u32;
    let output = std::future::poll_fn(|cx| {
        polls += 1;
        call.as_mut().poll(cx)
    })
    .await;
    (output, polls > 1)
}

/// Hit calls that did not complete on their first poll, out of [`FIRST_POLL_CHECKS`].
async fn hits_that_yielded<C: AsyncLoader>(cache: &C, stream: &[u64]) -> usize {
    let mut yielded = 0;
    for &key in stream.iter().take(FIRST_POLL_CHECKS) {
        let (_, pending) = polled(cache.load(key, async move { key })).await;
        yielded += usize::from(pending);
    }
    yielded
}

// ----- the run -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Test {
    Hit,
    Miss,
}

/// One cache under test.
enum Subject {
    Cascache(Arc<Cascache>),
    Moka(Arc<Moka>),
    QuickCache(Arc<QuickCache>),
}

impl Subject {
    async fn build(name: &str) -> Subject {
        match name {
            "cascache" => Subject::Cascache(
                preloaded(
                    cascache::Cache::builder()
                        .max_capacity(CAPACITY)
                        .hasher(RandomState::new())
                        .build(),
                )
                .await,
            ),
            "moka" => Subject::Moka(
                preloaded(
                    moka::future::Cache::builder()
                        .max_capacity(CAPACITY)
                        .build_with_hasher(RandomState::new()),
                )
                .await,
            ),
            "quick_cache" => Subject::QuickCache(
                preloaded(quick_cache::sync::Cache::with(
                    CAPACITY as usize,
                    CAPACITY,
                    quick_cache::UnitWeighter,
                    RandomState::new(),
                    Default::default(),
                ))
                .await,
            ),
            _ => unreachable!("checked by parse_args"),
        }
    }

    async fn run(
        &self,
        test: Test,
        args: &Args,
        stream: &Arc<Vec<u64>>,
        base: u64,
    ) -> Result<Sample, String> {
        macro_rules! on {
            ($cache:expr) => {
                match test {
                    Test::Hit => hit_run($cache, stream, args.tasks, args.calls).await,
                    Test::Miss => miss_run($cache, base, args.groups, args.tasks, args.keys).await,
                }
            };
        }
        match self {
            Subject::Cascache(c) => on!(c),
            Subject::Moka(c) => on!(c),
            Subject::QuickCache(c) => on!(c),
        }
    }

    async fn hits_that_yielded(&self, stream: &[u64]) -> usize {
        match self {
            Subject::Cascache(c) => hits_that_yielded(&**c, stream).await,
            Subject::Moka(c) => hits_that_yielded(&**c, stream).await,
            Subject::QuickCache(c) => hits_that_yielded(&**c, stream).await,
        }
    }
}

/// The median of some numbers (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The median over rounds of `a`'s throughput divided by `b`'s in the same round.
fn paired_ratio(a: &[Sample], b: &[Sample]) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.mops() / y.mops()).collect();
    median(&ratios)
}

/// One test's samples, by cache (in `args.peers` order).
struct Results {
    test: Test,
    samples: Vec<Vec<Sample>>,
    yielded: Vec<usize>,
}

impl Results {
    fn of<'a>(&'a self, args: &Args, peer: &str) -> Option<&'a [Sample]> {
        let i = args.peers.iter().position(|p| p == peer)?;
        Some(&self.samples[i])
    }
}

fn print_results(results: &Results, args: &Args) {
    match results.test {
        Test::Hit => println!(
            "\n## hit — {} tasks × {} loader calls on present keys (Zipf {ZIPF_S} over {}K)",
            args.tasks,
            args.calls,
            KEYS / 1000
        ),
        Test::Miss => println!(
            "\n## coalesced miss — {} groups of {} tasks, each group's tasks ask for the same \
{} fresh keys in turn; each load waits for all its group",
            args.groups, args.tasks, args.keys
        ),
    }
    print!(
        "{:<14} {:>13} {:>15} {:>11}",
        "implementation", "Mops/s median", "min – max", "cascache ×"
    );
    match results.test {
        Test::Hit => println!(" {:>18}", "hits that yielded"),
        Test::Miss => println!(" {:>20} {:>9}", "loads per key (max)", "waited %"),
    }
    let reference = results.of(args, "cascache");
    for (i, peer) in args.peers.iter().enumerate() {
        let samples = &results.samples[i];
        let mops: Vec<f64> = samples.iter().map(Sample::mops).collect();
        let min = mops.iter().copied().fold(f64::INFINITY, f64::min);
        let max = mops.iter().copied().fold(0.0, f64::max);
        let ratio = match reference {
            Some(_) if peer == "cascache" => "1".to_string(),
            Some(reference) => format!("{:.2}", paired_ratio(reference, samples)),
            None => "–".to_string(),
        };
        print!(
            "{peer:<14} {:>13.2} {:>15} {ratio:>11}",
            median(&mops),
            format!("{min:.2} – {max:.2}")
        );
        match results.test {
            Test::Hit => println!(
                " {:>18}",
                format!("{}/{FIRST_POLL_CHECKS}", results.yielded[i])
            ),
            Test::Miss => {
                let (loads, keys, waited, requests) =
                    samples.iter().fold((0, 0, 0, 0), |(l, k, w, r), s| {
                        (l + s.loads, k + s.keys, w + s.waited, r + s.requests)
                    });
                let most = samples.iter().map(|s| s.max_loads_per_key).max();
                println!(
                    " {:>20} {:>9.1}",
                    format!(
                        "{:.3} ({})",
                        loads as f64 / keys.max(1) as f64,
                        most.unwrap_or(0)
                    ),
                    100.0 * waited as f64 / requests.max(1) as f64
                )
            }
        }
    }
}

fn main() -> ExitCode {
    let Some(args) = cascache_bench::args_or_usage("async_compare", USAGE, parse_args()) else {
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("async_compare: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    println!(
        "# async loaders — {}; tokio multi-thread runtime, 2 workers; {} rounds, interleaved{}; \
capacity {}K each; load average at start {}",
        cascache_bench::machine(),
        args.rounds,
        if args.quick { " (quick)" } else { "" },
        CAPACITY / 1000,
        cascache_bench::load_average()
    );
    let stream = Arc::new(zipf::stream(KEYS, ZIPF_S, STREAM, 7));
    let mut subjects = Vec::new();
    for peer in &args.peers {
        subjects.push(Subject::build(peer).await);
    }
    let mut yielded = Vec::new();
    for subject in &subjects {
        yielded.push(subject.hits_that_yielded(&stream).await);
    }
    eprintln!(
        "caches built and preloaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tests: Vec<Test> = [(args.hit, Test::Hit), (args.miss, Test::Miss)]
        .into_iter()
        .filter_map(|(on, t)| on.then_some(t))
        .collect();
    let n = subjects.len();
    let mut results: Vec<Results> = tests
        .iter()
        .map(|&test| Results {
            test,
            samples: vec![Vec::new(); n],
            yielded: yielded.clone(),
        })
        .collect();
    // Fresh keys: a block of 2^32 per measurement, far from the preloaded `0..KEYS`. Round 0 is
    // a warm-up (a tenth of the work, not kept): first touches of memory, lazy set-ups.
    let mut next_base = 1u64 << 32;
    for round in 0..=args.rounds {
        for result in results.iter_mut() {
            for k in 0..n {
                let i = (k + round) % n;
                let base = next_base;
                next_base += 1 << 32;
                let sample = if round == 0 {
                    let warm = Args {
                        calls: (args.calls / 10).max(1),
                        keys: (args.keys / 10).max(1),
                        peers: Vec::new(),
                        ..*args
                    };
                    subjects[i].run(result.test, &warm, &stream, base).await?;
                    continue;
                } else {
                    subjects[i].run(result.test, args, &stream, base).await?
                };
                result.samples[i].push(sample);
            }
        }
    }
    for result in &results {
        print_results(result, args);
    }
    print_targets(&results, args);
    println!(
        "\n(load average at end {}; {:.0} s in all)",
        cascache_bench::load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_targets(results: &[Results], args: &Args) {
    let mut lines = Vec::new();
    for result in results {
        let Some(cascache) = result.of(args, "cascache") else {
            continue;
        };
        let name = match result.test {
            Test::Hit => "hit",
            Test::Miss => "coalesced miss",
        };
        for (peer, threshold) in [("moka", 1.5), ("quick_cache", 1.0)] {
            if let Some(theirs) = result.of(args, peer) {
                let ratio = paired_ratio(cascache, theirs);
                lines.push((
                    format!("{name}: cascache / {peer}"),
                    format!("{ratio:.2}×"),
                    format!("≥ {threshold:.1}×"),
                    ratio >= threshold,
                ));
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    println!("\n## Targets ({} tasks, 2 workers)", args.tasks);
    for (what, measured, wanted, met) in lines {
        println!(
            "{what:<40} {measured:>7}  {wanted:<7} target {}",
            if met { "met" } else { "MISSED" }
        );
    }
}
