//! One core operation of cascache repeated on one thread, for instruction counts and profiles:
//!
//! ```sh
//! cargo build --release -p cascache-bench --bin ops
//! valgrind --tool=callgrind target/release/ops miss 200000      # then callgrind_annotate
//! perf record -g target/release/ops hit 20000000
//! ```
//!
//! Operations (each on `u64 → u64`):
//! * `hit`: `get` of present keys, in Zipf(0.99) order over 100K keys (`hit-pinned`: the same
//!   through a `pin()` view taken every 1,024 reads);
//! * `miss`: a `get` that misses and the `insert` that follows, into a full cache of 100K
//!   (every insert evicts);
//! * `cas`: `compare_and_swap` from the version the previous one returned, Zipf order;
//! * `increment`: the founding loop's `gets` + `compare_and_swap` on one key;
//! * `insert`: `insert` over present keys (an overwrite), Zipf order;
//! * `churn`: `compare`'s churn on one thread: a `get` of Zipf(0.99) keys over 1M, and an
//!   `insert` after each miss, in a cache of 100K (after one warming pass of 2^20 requests).
//!
//! A third argument runs `hit`, `miss`, `insert` or `churn` on a peer instead (`quick_cache`, `papaya`;
//! `papaya` has no capacity, so its `miss` only inserts), for instruction budgets side by side.
//!
//! It prints the operations and the nanoseconds per operation (wall time, so only for
//! comparisons within one run); under callgrind, divide the instruction count by the operations.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use cascache::Cache;
use cascache_bench::workloads::peers::{self, Map};
use cascache_bench::workloads::{zipf, ZIPF_S};

const KEYS: u64 = 100_000;
/// The churn operation's key space (its cache holds [`KEYS`]).
const CHURN_KEYS: u64 = 1_000_000;

/// The churn operation's keys: Zipf(0.99) over [`CHURN_KEYS`].
fn churn_keys() -> Vec<u64> {
    zipf::stream(CHURN_KEYS, ZIPF_S, 1 << 20, 11)
}

fn filled(capacity: u64) -> Cache<u64, u64> {
    let cache = Cache::new(capacity);
    for key in 0..KEYS {
        cache.insert(key, key);
    }
    cache
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(count)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!(
            "usage: ops <hit|hit-pinned|miss|cas|increment|insert|churn> <operations> [peer]"
        );
        return ExitCode::from(2);
    };
    // OPS_HOT_KEYS=n: cycle over keys 0..n instead (everything in the first cache levels, so
    // what remains is the cost of the instructions and the fences).
    let keys = match std::env::var("OPS_HOT_KEYS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(hot) => (0..1u64 << 20).map(|i| i % hot.max(1)).collect(),
        None => zipf::stream(KEYS, ZIPF_S, 1 << 20, 7),
    };
    let key = |i: u64| keys[(i as usize) & (keys.len() - 1)];
    if let Some(peer) = args.get(2) {
        let outcome = match peer.as_str() {
            "quick_cache" => run_peer(op, count, &key, peers::quick_cache),
            "papaya" => run_peer(op, count, &key, |c| peers::papaya(c as usize)),
            "cascache" => run_peer(op, count, &key, peers::cascache),
            other => Err(format!("unknown peer {other:?}")),
        };
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ops: {error}");
                ExitCode::from(2)
            }
        };
    }
    let started;
    match op.as_str() {
        "hit" => {
            let cache = filled(KEYS * 5 / 4);
            started = Instant::now();
            for i in 0..count {
                black_box(cache.get(&key(i)));
            }
        }
        "hit-pinned" => {
            let cache = filled(KEYS * 5 / 4);
            started = Instant::now();
            for chunk in 0..count / 1024 {
                let pinned = cache.pin();
                for i in chunk * 1024..(chunk + 1) * 1024 {
                    black_box(pinned.get(&key(i)));
                }
            }
        }
        "miss" => {
            let cache = filled(KEYS);
            started = Instant::now();
            for i in 0..count {
                let k = KEYS + i;
                if cache.get(&k).is_none() {
                    cache.insert(k, k);
                }
            }
        }
        "cas" => {
            let cache = filled(KEYS * 5 / 4);
            let mut versions: Vec<_> = (0..KEYS).map(|k| cache.gets(&k).unwrap().1).collect();
            started = Instant::now();
            for i in 0..count {
                let k = key(i);
                let version = &mut versions[k as usize];
                *version = cache.compare_and_swap(&k, *version, i).unwrap();
            }
        }
        "increment" => {
            let cache = Cache::new(16);
            cache.insert(0u64, 0u64);
            started = Instant::now();
            for _ in 0..count {
                loop {
                    let (n, version) = cache.gets(&0).unwrap();
                    if cache.compare_and_swap(&0, version, n + 1).is_ok() {
                        break;
                    }
                }
            }
            assert_eq!(cache.get(&0), Some(count));
        }
        "insert" => {
            let cache = filled(KEYS * 5 / 4);
            started = Instant::now();
            for i in 0..count {
                black_box(cache.insert(key(i), i));
            }
        }
        "churn" => {
            let keys = churn_keys();
            let cache = Cache::new(KEYS);
            let request = |k: u64| {
                if cache.get(&k).is_none() {
                    cache.insert(k, k);
                }
            };
            keys.iter().for_each(|&k| request(k));
            started = Instant::now();
            for i in 0..count {
                request(keys[(i as usize) & (keys.len() - 1)]);
            }
        }
        other => {
            eprintln!("ops: unknown operation {other:?}");
            return ExitCode::from(2);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{op}: {count} operations, {:.1} ns each",
        elapsed.as_nanos() as f64 / count as f64
    );
    ExitCode::SUCCESS
}

/// `hit`, `miss`, `insert` or `churn` through the peers' common interface.
fn run_peer<M: Map>(
    op: &str,
    count: u64,
    key: &dyn Fn(u64) -> u64,
    build: impl Fn(u64) -> M,
) -> Result<(), String> {
    let fill = |capacity: u64| {
        let map = build(capacity);
        for k in 0..KEYS {
            map.insert(k, k);
        }
        map
    };
    let started;
    match op {
        "hit" => {
            let map = fill(KEYS * 5 / 4);
            started = Instant::now();
            for i in 0..count {
                black_box(map.get(key(i)));
            }
        }
        "miss" => {
            let map = fill(KEYS);
            started = Instant::now();
            for i in 0..count {
                let k = KEYS + i;
                if !map.get(k) {
                    map.insert(k, k);
                }
            }
        }
        "insert" => {
            let map = fill(KEYS * 5 / 4);
            started = Instant::now();
            for i in 0..count {
                map.insert(key(i), i);
            }
        }
        "churn" => {
            let keys = churn_keys();
            let map = build(KEYS);
            let request = |k: u64| {
                if !map.get(k) {
                    map.insert(k, k);
                }
            };
            keys.iter().for_each(|&k| request(k));
            started = Instant::now();
            for i in 0..count {
                request(keys[(i as usize) & (keys.len() - 1)]);
            }
        }
        other => return Err(format!("{other}: peers run hit, miss, insert and churn")),
    }
    println!(
        "{op}: {count} operations, {:.1} ns each",
        started.elapsed().as_nanos() as f64 / count as f64
    );
    Ok(())
}
