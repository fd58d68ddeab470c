//! `cascached [options]`: see `cascached -h`.

use std::process::ExitCode;

use cascached::config::{parse_args, Action, USAGE};
use cascached::server::{Signals, SIGINT, SIGTERM};
use cascached::session::VERSION;

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
