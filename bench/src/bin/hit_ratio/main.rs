//! Hit-ratio tool: replays a cache trace against cascache, moka, quick_cache and an exact LRU,
//! and prints their hit ratios side by side.
//!
//! ```text
//! cargo run --release -p cascache-bench --bin hit_ratio -- <trace file | zipf> <capacity> [threads] [--independent] [--shards N] [--candidates] [--classic] [--opt] [--only NAME]...
//! ```
//!
//! * `<trace file>`: a trace in any format of the repository's trace set (`traces/`, described
//!   in `traces/README.md`: arc `.lis`, LIRS, big-endian u32/u64, adaptsize, txt,
//!   oracleGeneral, MSR csv, CacheLib kv csv), optionally compressed (`.zst`, `.gz`, `.xz`). The
//!   format is detected from the name; a `fmt:` prefix overrides it, e.g.
//!   `be32:/path/to/file.xz`. A relative path that does not exist from the current directory is
//!   also looked up relative to the repository root, so `traces/arc/OLTP.lis.zst` works from
//!   anywhere in the repository.
//! * `zipf`: Zipf(0.99) over 1M keys, 10M requests, seed 42.
//! * `<capacity>`: entries, the same for every cache.
//! * `[threads]` (default 1): cascache, moka and quick_cache are driven by that many threads.
//!   The threads take the trace in order from one shared cursor, a batch of 16 consecutive
//!   requests at a time, so the cache sees the trace's order up to the requests in flight (a
//!   fixed split would let one thread run ahead and replay a different workload), and every
//!   request is counted once. The exact LRU always runs on 1 thread.
//! * `--independent`: the threads replay the trace as independent clients instead, with no
//!   shared cursor: the trace is cut into chunks of 64 consecutive requests, chunk `c` goes to
//!   thread `c % threads`, and each thread replays its own chunks in order at its own pace (the
//!   threads start together, at a barrier). The order the cache sees then depends on timing
//!   (one thread may run chunks ahead of another), so its figures vary far more from run to
//!   run than the shared cursor's: how far the threads drift apart depends on each cache's speed
//!   and on scheduling, and requests that were close in the trace end up far apart (on the
//!   LIRS scan trace at 500 entries, 2 threads, cascache ranged from 9% to 24% over four runs).
//!   Every concurrent cache (cascache, moka, moka(exact), quick_cache) is driven this way; on
//!   1 thread it is the same replay as the shared cursor.
//! * `--shards N`: builds cascache with `Cache::builder().shards(N)` instead of its default
//!   shard count (a power of two: N is rounded up to one).
//! * `--candidates`: also runs the single-threaded simulators of the candidate policies from
//!   `docs/policy-research.md` (S3-FIFO variants, S3-TLFU, S3-TLFU-A, a W-TinyLFU reference).
//! * `--classic`: also runs ARC and LIRS, two classic adaptive policies, at exactly the row's
//!   capacity (single-threaded references: they update lists on every hit; LIRS from a
//!   capacity of 2).
//! * `--opt`: also runs Belady's optimum, which knows every future request: no policy can beat
//!   it, so it shows how much room a row leaves.
//! * `--only NAME`: runs only the column named NAME (for example `cascache`), for quick
//!   experiments on a policy. Repeat it to run several columns (`--only cascache --only
//!   quick_cache`); they are printed in the tool's usual column order.
//!
//! Besides moka as it is normally used, the column `moka(exact)` runs moka with
//! `run_pending_tasks()` after every insert. moka applies its policy in batches (up to hundreds
//! of buffered writes), so in between it holds more entries than its capacity and counts hits
//! on them; `run_pending_tasks` keeps it at its capacity (within a few percent on 2 threads).
//! Above the table, the tool prints how many entries each concurrent cache actually held,
//! sampled during the replay.
//!
//! Every run is cache-aside (`get`; on a miss, `insert`) from an empty cache. Traces over 1M
//! requests print a progress line to stderr every 10% of each replay.

mod candidates;
mod classic;
mod lru;
mod opt;
mod trace;
mod zipf;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Fast hasher for u64 keys (splitmix64 finalizer); simulation only.
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);
impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        trace::mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).rotate_left(5) ^ self.0.wrapping_mul(31);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 ^= i;
    }
    fn write_u32(&mut self, i: u32) {
        self.0 ^= i as u64;
    }
}
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<MixHasher>>;

/// A single-threaded cache-aside simulator: `access` returns true on a hit; on a miss the
/// key is inserted.
pub trait Policy {
    fn name(&self) -> String;
    fn access(&mut self, key: u64) -> bool;
}

/// A concurrent cache driven cache-aside from one or more threads.
trait Shared: Sync {
    fn name(&self) -> &'static str;
    /// `get`; on a miss, `insert`. True on a hit.
    fn access(&self, key: u64) -> bool;
    /// The number of entries held right now (exact, not a lazily maintained estimate).
    fn held(&self) -> u64;
}

struct Cascache(cascache::Cache<u64, u64>);
impl Shared for Cascache {
    fn name(&self) -> &'static str {
        "cascache"
    }
    fn access(&self, k: u64) -> bool {
        if self.0.get(&k).is_some() {
            return true;
        }
        self.0.insert(k, k);
        false
    }
    fn held(&self) -> u64 {
        self.0.len() as u64
    }
}

/// moka as normally used, or (`exact`) with its pending policy work run after every insert.
struct Moka {
    cache: moka::sync::Cache<u64, u64>,
    exact: bool,
}
impl Shared for Moka {
    fn name(&self) -> &'static str {
        if self.exact {
            "moka(exact)"
        } else {
            "moka"
        }
    }
    fn access(&self, k: u64) -> bool {
        if self.cache.get(&k).is_some() {
            return true;
        }
        self.cache.insert(k, k);
        if self.exact {
            self.cache.run_pending_tasks();
        }
        false
    }
    fn held(&self) -> u64 {
        // `entry_count` lags behind the same batches; the iterator walks the map itself.
        self.cache.iter().count() as u64
    }
}

struct Quick(quick_cache::sync::Cache<u64, u64>);
impl Shared for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn access(&self, k: u64) -> bool {
        if self.0.get(&k).is_some() {
            return true;
        }
        self.0.insert(k, k);
        false
    }
    fn held(&self) -> u64 {
        self.0.len() as u64
    }
}

const USAGE: &str = "usage: cargo run --release -p cascache-bench --bin hit_ratio -- <trace file | zipf> <capacity> [threads] [--independent] [--shards N] [--candidates] [--classic] [--opt] [--only NAME]...
  <trace file>   a trace, e.g. traces/arc/OLTP.lis.zst (see traces/README.md; format from the name, or a `fmt:` prefix:
                 arc, lirs, be32, be64, adaptsize, txt, oracleGeneral, msr-csv, meta-kv-csv)
  zipf           Zipf(0.99) over 1M keys, 10M requests, seed 42
  <capacity>     cache capacity in entries (1 to 2147483648)
  [threads]      threads driving cascache, moka and quick_cache (1 to 1024, default 1); by default
                 they take batches of 16 requests in trace order from one shared cursor
  --independent  the threads replay as independent clients instead: chunk c of 64 requests goes to
                 thread c % threads, each thread replays its chunks on its own (order depends on timing)
  --shards N     build cascache with Cache::builder().shards(N) (default: the crate's own count)
  --candidates   also run the candidate policy simulators (1 thread)
  --classic      also run ARC and LIRS (1 thread; references, not concurrent caches)
  --opt          also run Belady's optimum (it reads the trace ahead: the ceiling, not a policy)
  --only NAME    run only the cache or policy named NAME (cascache, moka, moka(exact), quick_cache,
                 LRU, ARC, LIRS, OPT or a candidate), for quick experiments; repeat it for several";

/// Requests a replay counts before it reports them to the progress line.
const CHUNK: usize = 1024;
/// Requests per chunk in an `--independent` replay: chunk `c` goes to thread `c % threads`.
const INDEPENDENT_CHUNK: usize = 64;
const MAX_CAPACITY: u64 = 1 << 31;
const MAX_THREADS: usize = 1024;
const MAX_SHARDS: usize = 1 << 16;
/// Traces longer than this report progress.
const PROGRESS_MIN: usize = 1_000_000;

struct Args {
    trace: String,
    capacity: u64,
    threads: usize,
    /// The threads replay alternate chunks as independent clients (no shared cursor).
    independent: bool,
    /// cascache's shard count, if not the crate's default.
    shards: Option<usize>,
    candidates: bool,
    classic: bool,
    opt: bool,
    /// The columns to run; empty runs them all.
    only: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut candidates = false;
    let mut classic = false;
    let mut opt = false;
    let mut independent = false;
    let mut shards = None;
    let mut only = Vec::new();
    let mut pos = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--candidates" => candidates = true,
            "--classic" => classic = true,
            "--opt" => opt = true,
            "--independent" => independent = true,
            "--shards" => match args.next().map(|n| n.parse::<usize>()) {
                Some(Ok(n)) if (1..=MAX_SHARDS).contains(&n) => shards = Some(n),
                _ => return Err(format!("--shards needs a count from 1 to {MAX_SHARDS}")),
            },
            "--only" => match args.next() {
                Some(name) => only.push(name.clone()),
                None => return Err("--only needs a name".into()),
            },
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            s => pos.push(s),
        }
    }
    if pos.len() < 2 {
        return Err("expected a trace and a capacity".into());
    }
    if pos.len() > 3 {
        return Err(format!("unexpected argument {:?}", pos[3]));
    }
    let capacity = match pos[1].replace('_', "").parse::<u64>() {
        Ok(c) if (1..=MAX_CAPACITY).contains(&c) => c,
        _ => {
            return Err(format!(
                "bad capacity {:?}: expected a whole number of entries from 1 to {MAX_CAPACITY}",
                pos[1]
            ))
        }
    };
    let threads = match pos.get(2) {
        None => 1,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_THREADS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "bad thread count {t:?}: expected a whole number from 1 to {MAX_THREADS}"
                ))
            }
        },
    };
    Ok(Args {
        trace: pos[0].to_string(),
        capacity,
        threads,
        independent,
        shards,
        candidates,
        classic,
        opt,
        only,
    })
}

/// Turn the trace argument into a spec. A relative path missing from the current directory is
/// looked up relative to the repository root as well. A missing file is reported here, before
/// format detection, so that it is never mistaken for an unknown format.
fn trace_spec(arg: &str) -> Result<trace::TraceSpec, String> {
    let (format, raw) = match arg.split_once(':') {
        Some((pre, rest)) => match trace::Format::from_tag(pre) {
            Some(f) => (Some(f), rest),
            None => (None, arg),
        },
        None => (None, arg),
    };
    let mut path = PathBuf::from(raw);
    let mut tried_repo = None;
    if !path.exists() && path.is_relative() {
        let alt = repository_root().join(raw);
        if alt.exists() {
            path = alt;
        } else {
            tried_repo = Some(alt);
        }
    }
    if let Err(source) = std::fs::metadata(&path) {
        let e = trace::TraceError::Open { path, source };
        let tried = match tried_repo {
            Some(alt) => format!(" (also tried {})", alt.display()),
            None => String::new(),
        };
        return Err(format!(
            "{e}{tried}. The traces the tests, tools and docs use are in the repository's \
             `traces/` folder ({}), named as in `traces/README.md`: put a missing one there, \
             or give the path of your own copy",
            repository_root().join("traces").display()
        ));
    }
    match format {
        Some(format) => Ok(trace::TraceSpec { path, format }),
        None => trace::TraceSpec::parse(&path.to_string_lossy()).map_err(|e| e.to_string()),
    }
}

/// The repository this tool was built from (the bench crate sits in `bench/`).
fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate is a folder of the repository")
}

/// Load the whole trace: (display name, keys).
fn load_trace(arg: &str) -> Result<(String, Vec<u64>), String> {
    if arg == "zipf" {
        eprintln!("# generating zipf(0.99), 1M keys, 10M requests, seed 42 ...");
        return Ok((
            "zipf(0.99,1M keys,10M req,seed 42)".into(),
            zipf::zipf_trace(1_000_000, 0.99, 10_000_000, 42),
        ));
    }
    let spec = trace_spec(arg)?;
    eprintln!(
        "# loading {} [{}] ...",
        spec.path.display(),
        spec.format.tag()
    );
    let keys = trace::load(&spec).map_err(|e| e.to_string())?;
    Ok((
        format!("{} [{}]", spec.path.display(), spec.format.tag()),
        keys,
    ))
}

/// Counts replayed requests and prints a line to stderr at every 10% of a long trace.
struct Progress<'a> {
    name: &'a str,
    total: u64,
    enabled: bool,
    done: AtomicU64,
    start: Instant,
}

impl<'a> Progress<'a> {
    fn new(name: &'a str, total: usize) -> Self {
        Progress {
            name,
            total: total as u64,
            enabled: total > PROGRESS_MIN,
            done: AtomicU64::new(0),
            start: Instant::now(),
        }
    }
    fn advance(&self, n: usize) {
        if !self.enabled {
            return;
        }
        let before = self.done.fetch_add(n as u64, Ordering::Relaxed);
        let after = before + n as u64;
        let (d0, d1) = (before * 10 / self.total, after * 10 / self.total);
        if d1 > d0 {
            eprintln!(
                "# {}: {:>3}% ({}/{} requests, {:.1}s)",
                self.name,
                d1 * 10,
                after,
                self.total,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

fn ratio(hits: u64, total: usize) -> f64 {
    100.0 * hits as f64 / total.max(1) as f64
}

/// Requests a thread takes from the shared cursor at a time.
const BATCH: usize = 16;

/// Entries held by a cache, sampled during a replay.
#[derive(Default)]
struct Occupancy {
    samples: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Occupancy {
    fn record(&self, held: u64) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(held, Ordering::Relaxed);
        self.max.fetch_max(held, Ordering::Relaxed);
    }
    /// (mean, max) as percentages of `capacity`.
    fn of_capacity(&self, capacity: u64) -> (f64, f64) {
        let samples = self.samples.load(Ordering::Relaxed).max(1) as f64;
        let capacity = capacity.max(1) as f64;
        (
            100.0 * self.sum.load(Ordering::Relaxed) as f64 / samples / capacity,
            100.0 * self.max.load(Ordering::Relaxed) as f64 / capacity,
        )
    }
}

/// Replays one batch of requests that starts at trace position `start`, and returns its hits.
/// Samples the entries held when the batch passes a multiple of `sample_every`, and reports
/// progress every `CHUNK` requests (`done` counts those not reported yet).
fn replay_batch(
    cache: &dyn Shared,
    batch: &[u64],
    start: usize,
    sample_every: usize,
    occupancy: &Occupancy,
    progress: &Progress,
    done: &mut usize,
) -> u64 {
    let hits = batch.iter().filter(|&&k| cache.access(k)).count() as u64;
    if start / sample_every != (start + batch.len()) / sample_every {
        occupancy.record(cache.held());
    }
    *done += batch.len();
    if *done >= CHUNK {
        progress.advance(*done);
        *done = 0;
    }
    hits
}

/// Replay `keys` against a concurrent cache from `threads` threads taking batches of `BATCH`
/// consecutive requests from one shared cursor, sampling the entries it holds whenever the
/// cursor passes a multiple of `sample_every` requests. Returns the hit ratio in percent.
fn run_shared(
    cache: &dyn Shared,
    keys: &[u64],
    threads: usize,
    sample_every: usize,
    occupancy: &Occupancy,
) -> f64 {
    let cursor = std::sync::atomic::AtomicUsize::new(0);
    replay_on_threads(
        cache,
        keys,
        threads,
        sample_every,
        occupancy,
        |_, replay| loop {
            let start = cursor.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
            if start >= keys.len() {
                break;
            }
            replay(start, &keys[start..(start + BATCH).min(keys.len())]);
        },
    )
}

/// Replay `keys` against a concurrent cache from `threads` threads acting as independent
/// clients: chunk `c` of `INDEPENDENT_CHUNK` consecutive requests goes to thread
/// `c % threads`, and each thread replays its chunks in order without waiting for the others.
/// Samples the entries held whenever a chunk passes a multiple of `sample_every` requests (of
/// the trace's own positions). Returns the hit ratio in percent.
fn run_independent(
    cache: &dyn Shared,
    keys: &[u64],
    threads: usize,
    sample_every: usize,
    occupancy: &Occupancy,
) -> f64 {
    // The clients start together: otherwise the first thread spawned replays a head start of
    // its chunks alone (all of them, on a short trace and a fast cache).
    let together = std::sync::Barrier::new(threads);
    replay_on_threads(
        cache,
        keys,
        threads,
        sample_every,
        occupancy,
        |i, replay| {
            together.wait();
            let chunks = keys.chunks(INDEPENDENT_CHUNK).enumerate();
            for (c, chunk) in chunks.skip(i).step_by(threads) {
                replay(c * INDEPENDENT_CHUNK, chunk);
            }
        },
    )
}

/// Runs `batches` on each of `threads` threads (with the thread's index); it hands every
/// batch it takes, with the batch's position in the trace, to the replay it is given. Returns
/// the hit ratio in percent of the whole trace.
fn replay_on_threads(
    cache: &dyn Shared,
    keys: &[u64],
    threads: usize,
    sample_every: usize,
    occupancy: &Occupancy,
    batches: impl Fn(usize, &mut dyn FnMut(usize, &[u64])) + Sync,
) -> f64 {
    let progress = Progress::new(cache.name(), keys.len());
    let (progress, batches) = (&progress, &batches);
    let hits: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let (mut hits, mut done) = (0u64, 0);
                    batches(i, &mut |start, batch| {
                        hits += replay_batch(
                            cache,
                            batch,
                            start,
                            sample_every,
                            occupancy,
                            progress,
                            &mut done,
                        );
                    });
                    progress.advance(done);
                    hits
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum()
    });
    ratio(hits, keys.len())
}

/// Replay `keys` against a single-threaded simulator. Returns the hit ratio in percent.
fn run_policy(p: &mut dyn Policy, keys: &[u64]) -> f64 {
    let name = p.name();
    let progress = Progress::new(&name, keys.len());
    let mut hits = 0u64;
    for chunk in keys.chunks(CHUNK) {
        for &k in chunk {
            if p.access(k) {
                hits += 1;
            }
        }
        progress.advance(chunk.len());
    }
    ratio(hits, keys.len())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let (name, keys) = match load_trace(&args.trace) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if keys.is_empty() {
        eprintln!("error: the trace {name} holds no requests");
        return ExitCode::from(2);
    }
    let unique = keys.iter().collect::<FastSet<_>>().len();
    println!(
        "# {name}: {} requests, {unique} unique keys (loaded in {:.1}s)",
        keys.len(),
        t0.elapsed().as_secs_f64()
    );
    let replay = if args.independent {
        "independent clients, alternate chunks of 64"
    } else {
        "shared cursor"
    };
    let shards = match args.shards {
        Some(n) => format!(" (cascache with shards({n}))"),
        None => String::new(),
    };
    println!(
        "# capacity {} entries; hit ratio in %, cache-aside; cascache{shards}, moka, quick_cache on {} thread(s) ({replay}); LRU{} on 1 thread",
        args.capacity,
        args.threads,
        if args.candidates { " and candidates" } else { "" }
    );

    let cap = args.capacity;
    let cap_usize = cap as usize; // MAX_CAPACITY fits in usize
    let mut results: Vec<(String, f64)> = Vec::new();
    let shared: Vec<Box<dyn Shared>> = vec![
        Box::new(Cascache(match args.shards {
            Some(n) => cascache::Cache::builder()
                .max_capacity(cap)
                .shards(n)
                .build(),
            None => cascache::Cache::new(cap),
        })),
        Box::new(Moka {
            cache: moka::sync::Cache::new(cap),
            exact: false,
        }),
        Box::new(Moka {
            cache: moka::sync::Cache::new(cap),
            exact: true,
        }),
        Box::new(Quick(quick_cache::sync::Cache::new(cap_usize))),
    ];
    // Often enough for a few hundred samples on short traces; rarely enough on big caches that
    // counting moka's entries (a walk over its map) stays below the replay's own cost.
    let sample_every = (keys.len() / 500).max(cap_usize).max(BATCH);
    let mut policies: Vec<Box<dyn Policy>> = vec![Box::new(lru::Lru::new(cap_usize))];
    if args.candidates {
        policies.extend(candidates::candidates(cap_usize));
    }
    if args.classic {
        policies.push(Box::new(classic::ArcPolicy::new(cap_usize)));
        if cap_usize >= 2 {
            policies.push(Box::new(classic::LirsPolicy::new(cap_usize)));
        }
    }
    if args.opt {
        policies.push(Box::new(opt::Opt::new(cap_usize, &keys)));
    }
    let names: Vec<String> = shared
        .iter()
        .map(|c| c.name().to_string())
        .chain(policies.iter().map(|p| p.name()))
        .collect();
    if let Some(only) = args.only.iter().find(|only| !names.contains(only)) {
        eprintln!("error: --only {only:?}: no such column; the columns are {names:?}");
        return ExitCode::from(2);
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|only| only == name);
    let mut held = Vec::new();
    let mut throughput = Vec::new();
    for c in shared.into_iter().filter(|c| wanted(c.name())) {
        let occupancy = Occupancy::default();
        let started = Instant::now();
        let replay = if args.independent {
            run_independent
        } else {
            run_shared
        };
        let r = replay(c.as_ref(), &keys, args.threads, sample_every, &occupancy);
        let mops = keys.len() as f64 / started.elapsed().as_secs_f64() / 1e6;
        results.push((c.name().to_string(), r));
        let (mean, max) = occupancy.of_capacity(cap);
        held.push(format!("{} {mean:.1}% / {max:.1}%", c.name()));
        throughput.push(format!("{} {mops:.2}", c.name()));
    }
    println!(
        "# entries held, mean / max as % of capacity (sampled every {sample_every} requests): {}",
        held.join(", ")
    );
    // Each replay's requests over its wall time, from an empty cache: on a miss-heavy trace
    // this compares the caches' write paths. (One replay each, one after another: compare
    // figures of one run only, and run it again before trusting a small difference.)
    println!(
        "# throughput, M requests/s ({} thread(s), whole replay): {}",
        args.threads,
        throughput.join(", ")
    );
    for mut p in policies.into_iter().filter(|p| wanted(&p.name())) {
        let r = run_policy(p.as_mut(), &keys);
        results.push((p.name(), r));
    }

    let short = args.trace.rsplit('/').next().unwrap_or(&args.trace);
    let mut head = vec![
        "trace".to_string(),
        "capacity".to_string(),
        "threads".to_string(),
    ];
    let mut row = vec![short.to_string(), cap.to_string(), args.threads.to_string()];
    for (n, r) in &results {
        head.push(n.clone());
        row.push(format!("{r:.2}"));
    }
    let widths: Vec<usize> = head
        .iter()
        .zip(&row)
        .map(|(h, r)| h.len().max(r.len()))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(&head));
    println!("{}", line(&row));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace reader, the exact LRU and the ARC reproduce the ARC paper's LRU and ARC columns
    /// (Megiddo and Modha, FAST 2003, table IV: OLTP at 1,000 and 5,000 entries), and no policy
    /// beats Belady's optimum.
    #[test]
    fn lru_and_arc_reproduce_the_arc_paper_and_opt_bounds_every_policy() {
        let (_, keys) = load_trace("traces/arc/OLTP.lis.zst").unwrap_or_else(|e| panic!("{e}"));
        for (capacity, paper_lru, paper_arc) in [(1_000, 32.83, 38.93), (5_000, 53.65, 55.25)] {
            let lru = run_policy(&mut lru::Lru::new(capacity), &keys);
            assert!(
                (lru - paper_lru).abs() < 0.005,
                "LRU @ {capacity}: {lru:.3}%"
            );
            let opt = run_policy(&mut opt::Opt::new(capacity, &keys), &keys);
            let mut best_candidate = 0.0f64;
            for mut policy in candidates::candidates(capacity) {
                best_candidate = best_candidate.max(run_policy(policy.as_mut(), &keys));
            }
            assert!(
                opt > best_candidate && best_candidate > lru,
                "@ {capacity}: OPT {opt:.2}, best candidate {best_candidate:.2}, LRU {lru:.2}"
            );
            // (An ARC keeping `p` as a float rounds differently from the paper's by a few hits:
            // 38.95 at 1,000.)
            let arc = run_policy(&mut classic::ArcPolicy::new(capacity), &keys);
            assert!(
                (arc - paper_arc).abs() < 0.05,
                "ARC @ {capacity}: {arc:.3}%"
            );
        }
    }

    /// An unbounded set, cache-aside: every access after a key's first is a hit, whatever the
    /// order. It records the keys it is asked for.
    #[derive(Default)]
    struct Unbounded {
        seen: std::sync::Mutex<(FastSet<u64>, Vec<u64>)>,
    }
    impl Shared for Unbounded {
        fn name(&self) -> &'static str {
            "unbounded"
        }
        fn access(&self, key: u64) -> bool {
            let mut seen = self.seen.lock().unwrap();
            seen.1.push(key);
            !seen.0.insert(key)
        }
        fn held(&self) -> u64 {
            self.seen.lock().unwrap().0.len() as u64
        }
    }

    /// Both multi-thread replays hand every request of the trace to exactly one thread, and
    /// `--independent` replays each thread's chunks (`c % threads`) in the trace's order.
    #[test]
    fn both_replays_count_every_request_once() {
        let keys: Vec<u64> = (0..10_000u64).map(|i| trace::mix64(i) % 3_000).collect();
        let unique = keys.iter().collect::<FastSet<_>>().len();
        let expected = ratio((keys.len() - unique) as u64, keys.len());
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        for threads in [1, 2, 3, 7] {
            for independent in [false, true] {
                let cache = Unbounded::default();
                let occupancy = Occupancy::default();
                let replay = if independent {
                    run_independent
                } else {
                    run_shared
                };
                let r = replay(&cache, &keys, threads, 1_000, &occupancy);
                assert_eq!(r, expected, "threads {threads}, independent {independent}");
                let mut asked = cache.seen.into_inner().unwrap().1;
                if threads == 1 {
                    assert_eq!(asked, keys, "1 thread replays the trace in order");
                }
                asked.sort_unstable();
                assert_eq!(
                    asked, sorted,
                    "threads {threads}, independent {independent}"
                );
                assert!(occupancy.samples.load(Ordering::Relaxed) >= 9);
            }
        }
    }

    /// On a loop longer than the cache, LRU and ARC keep nothing a pass comes back to, while
    /// LIRS keeps its LIR set (all but the 1% HIR share) for good: the behaviour LIRS was made
    /// for.
    #[test]
    fn lirs_holds_a_stable_set_on_a_loop_where_lru_and_arc_miss_everything() {
        let keys: Vec<u64> = (0..200).flat_map(|_| 0..1_000u64).collect();
        let capacity = 500;
        assert_eq!(run_policy(&mut lru::Lru::new(capacity), &keys), 0.0);
        assert_eq!(
            run_policy(&mut classic::ArcPolicy::new(capacity), &keys),
            0.0
        );
        // 495 LIR pages hit on every pass after the first: 199 × 495 of 200,000 requests.
        let lirs = run_policy(&mut classic::LirsPolicy::new(capacity), &keys);
        assert!((lirs - 49.25).abs() < 0.01, "LIRS: {lirs:.3}%");
    }
}
