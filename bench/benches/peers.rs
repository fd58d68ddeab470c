//! cascache against its peers on the same pre-generated Zipf(0.99) key streams (the workloads are
//! described in `bench/src/workloads/mod.rs`), at 1 and 2 threads.
//!
//! ```sh
//! cargo bench -p cascache-bench --bench peers                # every workload
//! cargo bench -p cascache-bench --bench peers -- churn       # one group
//! CASCACHE_BENCH_THREADS=1,2,4,8 cargo bench -p cascache-bench --bench peers   # on a bigger machine
//! ```
//!
//! Each group runs every implementation on the same streams (thread `t` replays stream `t`);
//! `Throughput` is operations. Criterion runs one benchmark after another, so on a shared or noisy
//! machine prefer `cargo run --release -p cascache-bench --bin compare`, which interleaves rounds and prints
//! the ratios (memory per entry, measured one crate per process, is there too).

use cascache_bench::workloads::{Until, Workload};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Operations per thread in one criterion iteration.
const BATCH: u64 = 1024;

fn thread_counts() -> Vec<usize> {
    std::env::var("CASCACHE_BENCH_THREADS")
        .ok()
        .map(|list| {
            list.split(',')
                .map(|t| {
                    t.trim()
                        .parse()
                        .expect("CASCACHE_BENCH_THREADS: e.g. 1,2,4")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![1, 2])
}

fn suite(c: &mut Criterion) {
    let threads = thread_counts();
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    for workload in Workload::ALL {
        let streams = workload.streams(max_threads);
        let mut group = c.benchmark_group(workload.name());
        for &peer in workload.peers() {
            let mut case = workload.case(peer, &streams);
            for &t in &threads {
                group.throughput(Throughput::Elements(BATCH * t as u64));
                group.bench_function(BenchmarkId::new(peer, format!("{t} threads")), |b| {
                    b.iter_custom(|iters| case.run(t, Until::Ops(iters * BATCH)).elapsed)
                });
            }
            if let Err(lost) = case.check() {
                panic!("{lost}");
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = suite
}
criterion_main!(benches);
