//! Single-threaded costs of the core operations (the peer comparisons belong to the full suite).
//!
//! `cargo bench -p cascache-bench --bench core`; `-- per-op` runs only the four per-operation
//! figures of the performance notes (a hit, a miss that inserts into a full cache, a CAS, the
//! founding loop's increment), each reported per operation.

use cascache_bench::workloads;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cascache::Cache;

const KEYS: u64 = 100_000;

/// Every key present: the capacity leaves room, because a sharded capacity would evict a few keys
/// of a full shard before the cache as a whole is full (and `gets(..).unwrap()` below relies on
/// every key being there).
fn filled() -> Cache<u64, u64> {
    let cache = Cache::new(KEYS * 5 / 4);
    for key in 0..KEYS {
        cache.insert(key, key);
    }
    cache
}

/// The four figures the README's performance notes quote, per operation, on 1 thread.
fn per_operation(c: &mut Criterion) {
    let mut group = c.benchmark_group("per-op");
    group.throughput(Throughput::Elements(KEYS));
    let zipf = workloads::zipf::stream(KEYS, workloads::ZIPF_S, KEYS as usize, 1);

    let cache = filled();
    group.bench_function("hit (get, Zipf order)", |b| {
        b.iter(|| {
            for key in &zipf {
                black_box(cache.get(key));
            }
        })
    });

    // A full cache of KEYS entries; each operation is a read that misses and the insert that
    // follows it (cache-aside), which evicts. Keys never repeat, so every read misses.
    let full = Cache::<u64, u64>::new(KEYS);
    for key in 0..KEYS {
        full.insert(key, key);
    }
    let mut next = KEYS;
    group.bench_function("miss + insert (full cache)", |b| {
        b.iter(|| {
            for _ in 0..KEYS {
                let key = next;
                next += 1;
                if full.get(&key).is_none() {
                    full.insert(key, key);
                }
            }
        })
    });

    // compare_and_swap alone: each key's current version is kept from its previous CAS.
    let mut versions: Vec<_> = (0..KEYS).map(|key| cache.gets(&key).unwrap().1).collect();
    group.bench_function("compare_and_swap (known version)", |b| {
        b.iter(|| {
            for &key in &zipf {
                let slot = &mut versions[key as usize];
                *slot = cache.compare_and_swap(&key, *slot, key).unwrap();
            }
        })
    });

    // The founding loop's increment on one key: gets, then compare_and_swap from that version.
    let counter = Cache::<u64, u64>::new(16);
    counter.insert(0, 0);
    group.bench_function("founding loop increment (gets + CAS, 1 key)", |b| {
        b.iter(|| {
            for _ in 0..KEYS {
                loop {
                    let (n, version) = counter.gets(&0).unwrap();
                    if counter.compare_and_swap(&0, version, n + 1).is_ok() {
                        break;
                    }
                }
            }
        })
    });
    group.finish();
}

fn core_operations(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(KEYS));
    let cache = filled();

    group.bench_function("get (hit)", |b| {
        b.iter(|| {
            for key in 0..KEYS {
                black_box(cache.get(&key));
            }
        })
    });
    group.bench_function("get, one pin for all", |b| {
        b.iter(|| {
            let pinned = cache.pin();
            for key in 0..KEYS {
                black_box(pinned.get(&key));
            }
        })
    });
    // In key order, consecutive reads touch neighbouring memory; in Zipf order each read misses,
    // and the pin's full barrier also keeps one read's misses from overlapping the next one's.
    let zipf = workloads::zipf::stream(KEYS, workloads::ZIPF_S, KEYS as usize, 1);
    group.bench_function("get (hit), Zipf order", |b| {
        b.iter(|| {
            for key in &zipf {
                black_box(cache.get(key));
            }
        })
    });
    group.bench_function("get, Zipf order, one pin for all", |b| {
        b.iter(|| {
            let pinned = cache.pin();
            for key in &zipf {
                black_box(pinned.get(key));
            }
        })
    });
    group.bench_function("gets + compare_and_swap", |b| {
        b.iter(|| {
            for key in 0..KEYS {
                let (value, version) = cache.gets(&key).unwrap();
                black_box(cache.compare_and_swap(&key, version, value + 1).is_ok());
            }
        })
    });
    group.bench_function("insert (overwrite)", |b| {
        b.iter(|| {
            for key in 0..KEYS {
                black_box(cache.insert(key, key));
            }
        })
    });
    group.bench_function("insert into an empty cache", |b| {
        b.iter_batched(
            || Cache::<u64, u64>::new(KEYS * 5 / 4),
            |fresh| {
                for key in 0..KEYS {
                    fresh.insert(key, key);
                }
                fresh
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, per_operation, core_operations);
criterion_main!(benches);
