//! One core operation of cascache repeated on one thread, for instruction counts and profiles:
//!
//! ```sh
//! cargo build --release -p cascache-bench --bin ops
//! valgrind --tool=callgrind target/release/ops miss 200000      # then callgrind_annotate
//! perf record -g target/release/ops hit 20000000
//! ```
//!
//! Operations (each on `u64 → u64`):
//! * `hit`: `get` of present keys, in Zipf(0.99) order over 100K keys;
//! * `miss`: a `get` that misses and the `insert` that follows, into a full cache of 100K
//!   (every insert evicts);
//! * `cas`: `compare_and_swap` from the version the previous one returned, Zipf order;
//! * `increment`: the founding loop's `gets` + `compare_and_swap` on one key;
//! * `insert`: `insert` over present keys (an overwrite), Zipf order.
//!
//! It prints the operations and the nanoseconds per operation (wall time, so only for
//! comparisons within one run); under callgrind, divide the instruction count by the operations.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use cascache::Cache;
use cascache_bench::workloads::{zipf, ZIPF_S};

const KEYS: u64 = 100_000;

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
        eprintln!("usage: ops <hit|miss|cas|increment|insert> <operations>");
        return ExitCode::from(2);
    };
    let keys = zipf::stream(KEYS, ZIPF_S, 1 << 20, 7);
    let key = |i: u64| keys[(i as usize) & (keys.len() - 1)];
    let started;
    match op.as_str() {
        "hit" => {
            let cache = filled(KEYS * 5 / 4);
            started = Instant::now();
            for i in 0..count {
                black_box(cache.get(&key(i)));
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
