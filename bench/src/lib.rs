//! cascache measured against its peers, apart from the crate so that building the crate never
//! builds them:
//!
//! * `compare` (binary): throughput on the shared workloads, rounds interleaved, memory per
//!   entry, targets met or missed;
//! * `hit_ratio` (binary): hit ratio and throughput on the traces in `traces/`;
//! * `benches/`: the same workloads under criterion, and the single-threaded core operations.
//!
//! ```sh
//! cargo run --release -p cascache-bench --bin compare
//! cargo run --release -p cascache-bench --bin hit_ratio -- traces/arc/OLTP.lis.zst 1000
//! cargo bench -p cascache-bench
//! ```

pub mod workloads;
