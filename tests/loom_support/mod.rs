//! Shared setup of the loom models (`tests/loom_*.rs`).
//!
//! Run them with both cfgs, so that loom also sees crossbeam-epoch's atomics:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
//!   cargo test --release --test 'loom_*' -- --test-threads=1 --nocapture
//! ```
//!
//! (`.ci/loom.sh` does exactly that.) Each model sets its preemption bound: 2 for the small
//! models, 1 for the resize models, whose copy protocol multiplies the interleavings;
//! `LOOM_MAX_PREEMPTIONS` overrides them all.
//!
//! With only `--cfg loom`, crossbeam's atomics are plain std atomics that loom cannot interleave:
//! the models would pass while checking next to nothing. Each model file therefore keeps a
//! `#[should_panic]` negative control, a deliberately broken protocol that loom must catch.

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};

use cascache::Cache;
use crossbeam_epoch::Collector;

/// Runs `f` under every interleaving loom explores with at most `bound` preemptions (or
/// `LOOM_MAX_PREEMPTIONS` when set), and prints how many executions that took.
pub fn run_model<F>(name: &str, bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    RUNS.store(0, Ordering::Relaxed);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    // Writers that meet a resize wait (yielding) for the other helpers' chunks; every yield is a
    // branch, so the resize models need more than loom's default 1,000.
    builder.max_branches = 20_000;
    let bound = builder.preemption_bound;
    builder.check(move || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom model {name}: {} executions (preemption bound {bound:?})",
        RUNS.load(Ordering::Relaxed)
    );
}

/// A fixed hasher: loom replays executions, so slot positions must not change between them.
pub type FixedHasher = BuildHasherDefault<DefaultHasher>;

/// A tiny cache (4 slots, room for 3 entries before it resizes) on a collector of its own, so
/// reclamation happens inside the model.
pub fn cache<V: Send + Sync + 'static>(collector: &Collector) -> Cache<u64, V, FixedHasher> {
    Cache::builder()
        .initial_capacity(1)
        .hasher(FixedHasher::default())
        .collector(collector.clone())
        .build()
}

/// Pushes this thread's garbage to the collector and lets it advance the epoch and free what
/// no pinned thread can see any more.
pub fn flush(collector: &Collector) {
    let handle = collector.register();
    for _ in 0..3 {
        handle.pin().flush();
    }
}
