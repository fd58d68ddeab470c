//! `cascached [options]`: see `cascached -h`.

use std::process::ExitCode;

use cascached::config::{parse_args, Action, USAGE};
use cascached::server::{Signals, SIGINT, SIGTERM};
use cascached::session::VERSION;

// jemalloc, not glibc's malloc: glibc keeps the freed blocks of evicted values (10 B-1 MB) in
// its heap, and at `-m 64` RSS went to the limit + 32-35 MiB (hostile.py's memory check), against
// memcached's + 5. jemalloc on its defaults is worse (+49: it keeps freed pages 10 s), so
// `tune_allocator` has a background thread hand them back after 100 ms; with the workers freeing
// what they retired when they idle (`server.rs`), the check measures limit + 9-10 MiB.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the kernel 100 ms after they are freed (jemalloc's default is 10 s),
/// from one background thread rather than in a worker's free. Before the workers start; an
/// operator's `_RJEM_MALLOC_CONF` is overridden on these settings only.
fn tune_allocator() {
    use tikv_jemalloc_ctl::{arenas, background_thread, max_background_threads, Access, AsName};
    const DIRTY_DECAY_MS: isize = 100;
    // Arenas created from now on, then those that exist (one not created yet refuses: ignored).
    let _ = b"arenas.dirty_decay_ms\0".name().write(DIRTY_DECAY_MS);
    for i in 0..arenas::narenas::read().unwrap_or(0) {
        let _ = format!("arena.{i}.dirty_decay_ms\0")
            .as_bytes()
            .name()
            .write(DIRTY_DECAY_MS);
    }
    let _ = max_background_threads::write(1);
    let _ = background_thread::write(true);
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Action::Run(config)) => config,
        Ok(Action::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Action::Version) => {
            println!("cascached {VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("cascached: {error}\nTry 'cascached -h' for help.");
            // As memcached: EX_USAGE (64) for a bad option, 1 for a bad `-o` sub-option.
            return ExitCode::from(error.exit_code());
        }
    };
    tune_allocator();
    let listen = format!("{}:{}", config.listen.join(","), config.port);
    // Caught from here on: SIGTERM and SIGINT stop the server cleanly, exit status 0.
    let signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("cascached: cannot catch SIGTERM and SIGINT: {error}");
            return ExitCode::from(71);
        }
    };
    match cascached::server::start(config) {
        Ok(server) => match server.serve_until_signalled(signals) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("cascached: waiting for signals failed: {error}");
                ExitCode::from(71)
            }
        },
        Err(error) => {
            eprintln!("cascached: cannot listen on {listen}: {error}");
            // EX_OSERR.
            ExitCode::from(71)
        }
    }
}
