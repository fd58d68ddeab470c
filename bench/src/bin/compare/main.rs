//! A quick side-by-side pass of the performance suite: cascache and its peers on the same Zipf
//! key streams (`bench/src/workloads`), rounds interleaved, then a table of medians and ratios, the
//! targets met or missed, memory per entry (each crate in its own process), and a picture.
//!
//! ```sh
//! cargo run --release -p cascache-bench --bin compare      # ~1 minute: 5 rounds of 200 ms
//! cargo run --release -p cascache-bench --bin compare -- --rounds 9 --time 500 --threads 4
//! cargo run --release -p cascache-bench --bin compare -- --only read-mostly,memory --no-svg
//! ```
//!
//! Options:
//! * `--rounds N` (default 5): measurements per implementation; each round runs every
//!   implementation once, in an order rotated every round, so a burst of load from elsewhere on
//!   the machine hits them all alike. Ratios are medians of the per-round ratios.
//! * `--time MS` (default 200): length of one measurement.
//! * `--threads N` (default 2): threads for the ratios; `read-mostly` also runs at 1 thread for
//!   the scaling target.
//! * `--only LIST`: comma-separated workloads (`read-mostly`, `churn`, `cas-1`, `cas-1k`,
//!   `write-heavy`) and/or `memory`.
//! * `--peers LIST`: only these implementations (e.g. `--peers cascache` under `perf record`);
//!   the targets that need a missing peer are then left out.
//! * `--svg PATH` (default `docs/performance.svg` in the repository), `--no-svg`.
//!
//! Absolute figures on a shared machine are noise; the ratios, measured in one process with
//! rounds interleaved, are the result. Every figure printed is computed here.

use cascache_bench::workloads;

mod memory;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use workloads::{Sample, Until, Workload};

struct Args {
    rounds: usize,
    time: Duration,
    threads: usize,
    workloads: Vec<Workload>,
    memory: bool,
    /// Only these implementations (for profiling one of them).
    peers: Option<Vec<String>>,
    svg: Option<PathBuf>,
}

const USAGE: &str =
    "usage: cargo run --release -p cascache-bench --bin compare -- [--rounds N] [--time MS] \
[--threads N] [--only read-mostly,churn,cas-1,cas-1k,write-heavy,memory] [--peers LIST] \
[--svg PATH | --no-svg]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rounds: 5,
        time: Duration::from_millis(200),
        threads: 2,
        workloads: Workload::ALL.to_vec(),
        memory: true,
        peers: None,
        svg: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/performance.svg")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--rounds" => {
                args.rounds = value("a count")?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--rounds: a whole number ≥ 1")?
            }
            "--time" => {
                args.time = Duration::from_millis(
                    value("milliseconds")?
                        .parse()
                        .ok()
                        .filter(|&n| n >= 10)
                        .ok_or("--time: milliseconds ≥ 10")?,
                )
            }
            "--threads" => {
                args.threads = value("a count")?
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1024).contains(&n))
                    .ok_or("--threads: 1 to 1024")?
            }
            "--only" => {
                let list = value("a list")?;
                args.workloads.clear();
                args.memory = false;
                for name in list.split(',') {
                    match name {
                        "memory" => args.memory = true,
                        _ => args.workloads.push(
                            Workload::from_name(name)
                                .ok_or(format!("--only: unknown workload {name:?}"))?,
                        ),
                    }
                }
            }
            "--peers" => args.peers = Some(value("a list")?.split(',').map(String::from).collect()),
            "--svg" => args.svg = Some(PathBuf::from(value("a path")?)),
            "--no-svg" => args.svg = None,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(args)
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

/// One implementation's measurements on one workload at one thread count.
#[derive(Clone, Default)]
pub struct Series {
    pub peer: String,
    pub threads: usize,
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn mops(&self) -> Vec<f64> {
        self.samples.iter().map(Sample::mops).collect()
    }
    pub fn median(&self) -> f64 {
        median(&self.mops())
    }
    pub fn hit_ratio(&self) -> f64 {
        let (hits, ops) = self
            .samples
            .iter()
            .fold((0, 0), |(h, o), s| (h + s.hits, o + s.ops));
        hits as f64 / ops.max(1) as f64
    }
}

/// The median over rounds of `a`'s throughput divided by `b`'s in the same round.
pub fn paired_ratio(a: &Series, b: &Series) -> f64 {
    let ratios: Vec<f64> = a.mops().iter().zip(b.mops()).map(|(x, y)| x / y).collect();
    median(&ratios)
}

/// A workload's results.
pub struct Results {
    pub workload: Workload,
    pub series: Vec<Series>,
}

impl Results {
    pub fn get(&self, peer: &str, threads: usize) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.peer == peer && s.threads == threads)
    }
}

fn run_workload(workload: Workload, args: &Args) -> Result<Results, String> {
    let mut thread_counts = vec![args.threads];
    if workload == Workload::ReadMostly && args.threads != 1 {
        thread_counts.insert(0, 1);
    }
    let started = Instant::now();
    let streams = workload.streams(args.threads);
    let mut cases: Vec<_> = workload
        .peers()
        .iter()
        .filter(|peer| {
            args.peers
                .as_ref()
                .map_or(true, |only| only.iter().any(|p| p == *peer))
        })
        .map(|peer| workload.case(peer, &streams))
        .collect();
    eprintln!(
        "{}: streams and {} implementations ready in {:.1} s; {} rounds",
        workload.name(),
        cases.len(),
        started.elapsed().as_secs_f64(),
        args.rounds
    );
    let mut series: Vec<Series> = cases
        .iter()
        .flat_map(|case| {
            thread_counts.iter().map(|&threads| Series {
                peer: case.peer().to_string(),
                threads,
                samples: Vec::new(),
            })
        })
        .collect();
    let n = cases.len();
    for round in 0..args.rounds {
        for k in 0..n {
            let index = (k + round) % n;
            for (t, &threads) in thread_counts.iter().enumerate() {
                let sample = cases[index].run(threads, Until::Time(args.time));
                series[index * thread_counts.len() + t].samples.push(sample);
            }
        }
    }
    for case in &cases {
        case.check()?;
    }
    Ok(Results { workload, series })
}

fn print_results(results: &Results) {
    let workload = results.workload;
    println!("\n## {} — {}", workload.name(), workload.about());
    let churn = workload == Workload::Churn;
    print!(
        "{:<16} {:>7} {:>13} {:>15}",
        "implementation", "threads", "Mops/s median", "min – max"
    );
    if churn {
        print!(" {:>8}", "hit %");
    }
    println!(" {:>14}", "cascache ×");
    for s in &results.series {
        let mops = s.mops();
        let min = mops.iter().copied().fold(f64::INFINITY, f64::min);
        let max = mops.iter().copied().fold(0.0, f64::max);
        print!(
            "{:<16} {:>7} {:>13.2} {:>15}",
            s.peer,
            s.threads,
            s.median(),
            format!("{min:.2} – {max:.2}")
        );
        if churn {
            print!(" {:>8.2}", 100.0 * s.hit_ratio());
        }
        match results.get("cascache", s.threads) {
            Some(_) if s.peer == "cascache" => println!(" {:>14}", "1"),
            Some(reference) => println!(" {:>14.2}", paired_ratio(reference, s)),
            None => println!(" {:>14}", "–"),
        }
    }
    if churn {
        println!(
            "(static-optimal hit ratio, the top {}K of {}M keys kept: {:.2}%)",
            workloads::CHURN_CAPACITY / 1000,
            workload.keys() / 1_000_000,
            100.0
                * workloads::zipf::static_optimal(
                    workload.keys(),
                    workloads::ZIPF_S,
                    workloads::CHURN_CAPACITY
                )
        );
    }
}

/// A target: what was measured against its threshold.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub wanted: String,
    pub met: bool,
}

fn targets(results: &[Results], memory: &[memory::Footprint], threads: usize) -> Vec<Target> {
    let mut out = Vec::new();
    let find = |w: Workload| results.iter().find(|r| r.workload == w);
    let both = |w: Workload, peer: &str| {
        let r = find(w)?;
        Some((r.get("cascache", threads)?, r.get(peer, threads)?))
    };
    if let Some(r) = find(Workload::ReadMostly) {
        for (peer, threshold) in [("quick_cache", 1.2), ("papaya", 1.0)] {
            if let (Some(cascache), Some(theirs)) =
                (r.get("cascache", threads), r.get(peer, threads))
            {
                let ratio = paired_ratio(cascache, theirs);
                out.push(Target {
                    what: format!("read-mostly vs {peer}"),
                    measured: format!("{ratio:.2}×"),
                    wanted: format!("≥ {threshold}×"),
                    met: ratio >= threshold,
                });
            }
        }
        let one = r.get("cascache", 1).filter(|_| threads != 1);
        if let (Some(cascache), Some(one)) = (r.get("cascache", threads), one) {
            let ratio = paired_ratio(cascache, one);
            out.push(Target {
                what: format!("scaling: read-mostly at {threads} threads vs 1"),
                measured: format!("{ratio:.2}×"),
                wanted: "≥ 1.8×".into(),
                met: ratio >= 1.8,
            });
        }
    }
    if let Some((cascache, quick)) = both(Workload::Churn, "quick_cache") {
        let ratio = paired_ratio(cascache, quick);
        out.push(Target {
            what: "churn throughput vs quick_cache".into(),
            measured: format!("{ratio:.2}×"),
            wanted: "≥ 1.0×".into(),
            met: ratio >= 1.0,
        });
        let (mine, theirs) = (100.0 * cascache.hit_ratio(), 100.0 * quick.hit_ratio());
        out.push(Target {
            what: "churn hit ratio vs quick_cache".into(),
            measured: format!("{mine:.2}% vs {theirs:.2}%"),
            wanted: "≥ quick_cache's".into(),
            met: mine >= theirs,
        });
    }
    // The founding loop against papaya's `update` (issue 15); dashmap's in-place `get_mut` is
    // printed in the table above but is no target: a versioned write publishes a new node.
    for w in [Workload::Cas1, Workload::Cas1k] {
        for (peer, threshold, how) in [("papaya", 2.0, "update")] {
            if let Some((cascache, theirs)) = both(w, peer) {
                let ratio = paired_ratio(cascache, theirs);
                out.push(Target {
                    what: format!("{}: gets + compare_and_swap vs {peer} `{how}`", w.name()),
                    measured: format!("{ratio:.2}×"),
                    wanted: format!("≥ {threshold}×"),
                    met: ratio >= threshold,
                });
            }
        }
    }
    if let Some(m) = memory.iter().find(|m| m.peer == "cascache") {
        out.push(Target {
            what: "memory per u64 → u64 entry at 1M entries".into(),
            measured: format!("{:.0} B", m.bytes_per_entry),
            wanted: "≤ 64 B".into(),
            met: m.bytes_per_entry <= 64.0,
        });
    }
    out
}

/// Date (UTC), machine and load, for the record.
pub fn context() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Howard Hinnant's civil-from-days.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}, {}",
        cascache_bench::machine()
    )
}

fn main() -> ExitCode {
    if let Some(code) = memory::child_main() {
        return code;
    }
    let Some(args) = cascache_bench::args_or_usage("compare", USAGE, parse_args()) else {
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let context = context();
    let start_load = cascache_bench::load_average();
    println!(
        "# cascache vs peers — {context}; {} rounds × {} ms, interleaved; load average at start {start_load}",
        args.rounds,
        args.time.as_millis(),
    );
    let mut results = Vec::new();
    for &workload in &args.workloads {
        match run_workload(workload, &args) {
            Ok(r) => {
                print_results(&r);
                results.push(r);
            }
            Err(error) => {
                eprintln!("compare: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let footprints = if args.memory {
        match memory::measure_all() {
            Ok(f) => {
                memory::print(&f);
                f
            }
            Err(error) => {
                eprintln!("compare: memory: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Vec::new()
    };
    let targets = targets(&results, &footprints, args.threads);
    if !targets.is_empty() {
        println!("\n## Targets ({} threads)", args.threads);
        for t in &targets {
            println!(
                "{:<58} {:>20}  {:<16} target {}",
                t.what,
                t.measured,
                t.wanted,
                if t.met { "met" } else { "MISSED" }
            );
        }
    }
    println!(
        "\n(load average at end {}; {:.0} s in all)",
        cascache_bench::load_average(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.svg {
        let caption = format!("{context}, load average {start_load}");
        let picture = svg::render(&caption, args.threads, &results, &footprints, &targets);
        if let Err(error) = std::fs::write(path, picture) {
            eprintln!("compare: writing {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("picture: {}", path.display());
    }
    ExitCode::SUCCESS
}
