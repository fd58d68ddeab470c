//! The founding example, in process: memcached's CAS increment loop (`gets`, compute, `cas`,
//! retry until it lands) run from several threads against one cache, then checked.
//!
//! ```sh
//! cargo run --release --example cas_increment -- [threads] [increments per thread] [keys]
//! ```
//!
//! Defaults: 8 threads, 200,000 increments each, 1 key (maximum contention). Prints the final
//! total (which must be exactly threads × increments), the retries the races caused, and the
//! throughput of successful increments.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cascache::Cache;

/// The pymemcache loop of the seed document, one to one:
///
/// ```python
/// while True:
///     result, cas_id = client.gets(key)
///     if result is None: break
///     if client.cas(key, str(int(result) + 1), cas_id): break
/// ```
///
/// Returns how many times the `cas` lost a race and had to retry.
fn cas_increment(cache: &Cache<u64, u64>, key: u64) -> u64 {
    let mut retries = 0;
    loop {
        let Some((value, version)) = cache.gets(&key) else {
            return retries; // missing key: nothing to increment
        };
        if cache.compare_and_swap(&key, version, value + 1).is_ok() {
            return retries;
        }
        retries += 1;
    }
}

fn parse_arg(args: &[String], index: usize, default: u64) -> Result<u64, String> {
    match args.get(index) {
        None => Ok(default),
        Some(text) => match text.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "argument {index} must be a positive integer, got {text:?}"
            )),
        },
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        Ok::<_, String>((
            parse_arg(&args, 1, 8)?,
            parse_arg(&args, 2, 200_000)?,
            parse_arg(&args, 3, 1)?,
        ))
    })();
    let (threads, increments, keys) = match parsed {
        Ok(values) => values,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("usage: cas_increment [threads] [increments per thread] [keys]");
            return ExitCode::from(2);
        }
    };

    let cache: Cache<u64, u64> = Cache::new(keys);
    for key in 0..keys {
        cache.insert(key, 0);
    }
    let retries = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (cache, retries) = (&cache, &retries);
            scope.spawn(move || {
                let mut mine = 0;
                for i in 0..increments {
                    // Spread threads over the keys; with one key they all collide.
                    mine += cas_increment(cache, (thread + i) % keys);
                }
                retries.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    let elapsed = started.elapsed();

    let total: u64 = (0..keys).map(|key| cache.get(&key).unwrap_or(0)).sum();
    let expected = threads * increments;
    let retries = retries.load(Ordering::Relaxed);
    println!("threads: {threads}, increments per thread: {increments}, keys: {keys}");
    println!("final count: {total} (expected {expected})");
    println!(
        "cas retries: {retries} ({:.2} per increment)",
        retries as f64 / expected as f64
    );
    println!(
        "throughput: {:.2} M increments/s ({:.3} s)",
        expected as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    if total == expected {
        println!("OK: no increment lost");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: {} increments lost", expected as i64 - total as i64);
        ExitCode::FAILURE
    }
}
