//! `cascached [options]`: see `cascached -h`.

use std::process::ExitCode;

use cascached::config::{parse_args, Action, USAGE};
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
            // EX_USAGE, as memcached exits on a bad option.
            return ExitCode::from(64);
        }
    };
    let listen = format!("{}:{}", config.listen.join(","), config.port);
    match cascached::server::start(config) {
        Ok(server) => {
            server.wait();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cascached: cannot listen on {listen}: {error}");
            // EX_OSERR.
            ExitCode::from(71)
        }
    }
}
