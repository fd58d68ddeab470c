//! cascache measured against its peers, apart from the crate so that building the crate never
//! builds them:
//!
//! * `compare` (binary): throughput on the shared workloads, rounds interleaved, memory per
//!   entry, targets met or missed;
//! * `hit_ratio` (binary): hit ratio and throughput on the traces in `traces/`;
//! * `async_compare` (binary): the async loaders, a hit and a coalesced miss, on tokio;
//! * `benches/`: the same workloads under criterion, and the single-threaded core operations.
//!
//! ```sh
//! cargo run --release -p cascache-bench --bin compare
//! cargo run --release -p cascache-bench --bin hit_ratio -- traces/arc/OLTP.lis.zst 1000
//! cargo bench -p cascache-bench
//! ```

pub mod workloads;

/// The CPU model and core count, for the record of a run.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// The 1, 5 and 15 minute load averages ("?" where the system does not say).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A measuring tool's parsed arguments, or `None` after printing `tool`'s error (an empty one is
/// `--help`) and its usage. Then warns on a debug build, whose figures mean nothing.
pub fn args_or_usage<T>(tool: &str, usage: &str, parsed: Result<T, String>) -> Option<T> {
    let args = match parsed {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("{tool}: {error}");
            }
            eprintln!("{usage}");
            return None;
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "{tool}: WARNING: a debug build; run with --release for figures that mean anything"
        );
    }
    Some(args)
}
