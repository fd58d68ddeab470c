//! The Zipf trace of the hit-ratio table, from the benchmarks' seeded generator.

use cascache_bench::workloads::zipf::{Rng, Zipf};

/// Zipf(s) over `n` keys, `len` requests, seeded. Keys are scrambled ranks so that key order
/// carries no popularity information.
pub fn zipf_trace(n: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(n, s);
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| crate::trace::mix64(zipf.sample(&mut rng) ^ 0x5bd1_e995))
        .collect()
}
