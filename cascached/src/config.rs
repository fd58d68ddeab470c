//! Command-line options, named and defaulted like memcached's.

use std::fmt;

/// The server's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// TCP port (`-p`, default 11211; 0 picks a free port).
    pub port: u16,
    /// Addresses to listen on (`-l`, comma-separated, default 127.0.0.1).
    pub listen: Vec<String>,
    /// Memory limit in bytes (`-m`, given in megabytes, default 64).
    pub memory_limit: u64,
    /// Most simultaneous client connections (`-c`, default 1024); more are refused.
    pub max_connections: usize,
    /// Connections the kernel queues before the server accepts them (`-b`, default 1024, as
    /// memcached's; the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: usize,
    /// Worker threads (`-t`, default 4).
    pub threads: usize,
    /// Largest item, as memcached sizes it (`-I`, default 1m).
    pub max_item_size: usize,
    /// Seconds a connection may wait for its next command before it is closed (`-o
    /// idle_timeout=N`); 0: never.
    pub idle_timeout: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 11211,
            listen: vec!["127.0.0.1".to_string()],
            memory_limit: 64 << 20,
            max_connections: 1024,
            listen_backlog: 1024,
            threads: 4,
            max_item_size: 1 << 20,
            idle_timeout: 0,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the server.
    Run(Config),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// A command line that cannot be run: the message, and the exit status (memcached's: 64 for a
/// bad option, 1 for a bad `-o` sub-option).
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(String, u8);

impl ConfigError {
    fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into(), 64)
    }

    fn suboption(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into(), 1)
    }

    /// The process's exit status.
    pub fn exit_code(&self) -> u8 {
        self.1
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The `-h` text.
pub const USAGE: &str = "\
cascached: a memcached-compatible server on the cascache crate

Usage: cascached [options]

  -p, --port=<num>          TCP port to listen on (default: 11211; 0: any free port)
  -l, --listen=<addr>       interfaces to listen on, comma-separated (default: 127.0.0.1)
  -m, --memory-limit=<mb>   item memory in megabytes (default: 64)
  -c, --conn-limit=<num>    max simultaneous connections (default: 1024)
  -b, --listen-backlog=<num> backlog of the listening sockets (default: 1024)
  -t, --threads=<num>       number of worker threads (default: 4)
  -I, --max-item-size=<num> max item size, with k/m suffix (default: 1m, min: 1k, max: 1024m)
  -U, --udp-port=<num>      UDP port: only 0 (UDP off) is supported
  -u, --user=<user>         accepted for compatibility, ignored
  -o, --extended=<opts>     comma-separated: idle_timeout=<secs> closes connections that wait
                            longer for a command; memcached's tuning sub-options are ignored
  -v, -vv, -vvv             accepted for compatibility, ignored
  -V, --version             print the version and exit
  -h, --help                print this help and exit
";

/// Parses the arguments (without the program name).
pub fn parse_args<I>(args: I) -> Result<Action, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    let mut config = Config::default();
    let mut memory_megabytes: Option<u64> = None;
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (name, inline_value) = split_option(&arg)?;
        let mut value = |name: &str| -> Result<String, ConfigError> {
            match inline_value.clone().or_else(|| args.next()) {
                Some(value) => Ok(value),
                None => Err(ConfigError::new(format!("option {name} needs a value"))),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Action::Help),
            "-V" | "--version" => return Ok(Action::Version),
            "-v" | "-vv" | "-vvv" | "--verbose" => {}
            "-p" | "--port" => config.port = number(&name, &value(&name)?)?,
            "-l" | "--listen" => {
                config.listen = value(&name)?
                    .split(',')
                    .filter(|addr| !addr.is_empty())
                    .map(str::to_string)
                    .collect();
                if config.listen.is_empty() {
                    return Err(ConfigError::new("option -l needs an address"));
                }
            }
            "-m" | "--memory-limit" => {
                memory_megabytes = Some(megabytes(&name, &value(&name)?)?);
            }
            "-c" | "--conn-limit" => {
                config.max_connections = positive(&name, number(&name, &value(&name)?)?)?;
            }
            "-b" | "--listen-backlog" => {
                config.listen_backlog = positive(&name, number(&name, &value(&name)?)?)?;
            }
            "-t" | "--threads" => {
                config.threads = positive(&name, number(&name, &value(&name)?)?)?;
            }
            "-I" | "--max-item-size" => config.max_item_size = item_size(&value(&name)?)?,
            "-U" | "--udp-port" => {
                if number::<u16>(&name, &value(&name)?)? != 0 {
                    return Err(ConfigError::new(
                        "UDP is not supported: only -U 0 is accepted",
                    ));
                }
            }
            "-u" | "--user" => {
                value(&name)?;
            }
            "-o" | "--extended" => extended_options(&value(&name)?, &mut config)?,
            _ => return Err(ConfigError::new(format!("unknown option {arg}"))),
        }
    }
    if let Some(megabytes) = memory_megabytes {
        config.memory_limit = megabytes << 20;
    }
    if config.max_item_size as u64 > config.memory_limit / 2 {
        return Err(ConfigError::new(
            "cannot set the item size limit (-I) higher than half the memory limit (-m)",
        ));
    }
    Ok(Action::Run(config))
}

/// Splits `--name=value`, `-p11211` and `-p` (value in the next argument).
fn split_option(arg: &str) -> Result<(String, Option<String>), ConfigError> {
    if let Some(long) = arg.strip_prefix("--") {
        return Ok(match long.split_once('=') {
            Some((name, value)) => (format!("--{name}"), Some(value.to_string())),
            None => (arg.to_string(), None),
        });
    }
    let mut chars = arg.chars();
    match (chars.next(), chars.next()) {
        (Some('-'), Some(letter)) if letter != 'v' && arg.len() > 1 + letter.len_utf8() => Ok((
            format!("-{letter}"),
            Some(arg[1 + letter.len_utf8()..].to_string()),
        )),
        (Some('-'), Some(_)) => Ok((arg.to_string(), None)),
        _ => Err(ConfigError::new(format!("unexpected argument {arg}"))),
    }
}

/// memcached's `-o` sub-options that tune its own internals (hash table, slabs, LRU, logging,
/// buffers, privileges): nothing here to tune, so they are accepted and ignored.
const IGNORED_SUBOPTIONS: &[&str] = &[
    "maxconns_fast",
    "hashpower",
    "no_hashexpand",
    "slab_reassign",
    "slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "slab_sizes",
    "slab_chunk_max",
    "track_sizes",
    "no_inline_ascii_resp",
    "modern",
    "no_modern",
    "no_chunked_items",
    "no_slab_reassign",
    "no_slab_automove",
    "no_maxconns_fast",
    "inline_ascii_resp",
    "no_lru_crawler",
    "no_lru_maintainer",
    "no_drop_privileges",
    "drop_privileges",
    "resp_obj_mem_limit",
    "read_buf_mem_limit",
    "relaxed_privileges",
    "sock_cookie_id",
];

/// memcached's `-o` sub-options for features this server does not have (TLS, the proxy,
/// extstore): refused rather than silently ignored.
const UNSUPPORTED_SUBOPTION_PREFIXES: &[&str] = &["ssl_", "proxy_", "ext_"];

/// `-o a=1,b,c=2`, as memcached reads it with `getsubopt`: an unknown name is refused with
/// memcached's message and exit status.
fn extended_options(options: &str, config: &mut Config) -> Result<(), ConfigError> {
    for option in options.split(',').filter(|option| !option.is_empty()) {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        match name {
            "idle_timeout" => {
                let value = value.ok_or_else(|| {
                    ConfigError::suboption("Missing numeric argument for idle_timeout")
                })?;
                config.idle_timeout = atoi(value).try_into().map_err(|_| {
                    ConfigError::suboption(format!("idle_timeout must not be negative: {value}"))
                })?;
            }
            _ if IGNORED_SUBOPTIONS.contains(&name) => {}
            _ if UNSUPPORTED_SUBOPTION_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix)) =>
            {
                return Err(ConfigError::suboption(format!(
                    "-o {name}: not supported by cascached"
                )));
            }
            _ => {
                return Err(ConfigError::suboption(format!(
                    "Illegal suboption \"{option}\""
                )))
            }
        }
    }
    Ok(())
}

/// C's `atoi`: leading blanks, an optional sign, then digits; anything else ends it (0 if
/// there is no digit), as memcached reads `idle_timeout`.
fn atoi(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative {
        -value
    } else {
        value
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::new(format!("option {name}: invalid number {value:?}")))
}

fn positive(name: &str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        Err(ConfigError::new(format!(
            "option {name} must be at least 1"
        )))
    } else {
        Ok(value)
    }
}

/// A size with an optional k/m/g suffix, in units of `unit` bytes when it has none.
fn size(name: &str, value: &str, unit: u64) -> Result<u64, ConfigError> {
    let lower = value.to_ascii_lowercase();
    let (digits, multiplier) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1 << 10),
        Some(b'm') => (&lower[..lower.len() - 1], 1 << 20),
        Some(b'g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), unit),
    };
    number::<u64>(name, digits)?
        .checked_mul(multiplier)
        .ok_or_else(|| ConfigError::new(format!("option {name}: {value} is too large")))
}

fn megabytes(name: &str, value: &str) -> Result<u64, ConfigError> {
    let bytes = size(name, value, 1 << 20)?;
    if bytes < 1 << 20 {
        return Err(ConfigError::new(format!(
            "option {name}: the memory limit must be at least 1 megabyte"
        )));
    }
    Ok(bytes >> 20)
}

fn item_size(value: &str) -> Result<usize, ConfigError> {
    let bytes = size("-I", value, 1)?;
    if bytes < 1024 {
        return Err(ConfigError::new(
            "item max size cannot be less than 1024 bytes",
        ));
    }
    if bytes > 1 << 30 {
        return Err(ConfigError::new(
            "cannot set item size limit higher than 1 gigabyte",
        ));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args.iter().copied()) {
            Ok(Action::Run(config)) => config,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_like_memcached() {
        assert_eq!(run(&[]), Config::default());
        assert_eq!(Config::default().port, 11211);
        assert_eq!(Config::default().max_item_size, 1 << 20);
    }

    #[test]
    fn short_long_and_glued_forms() {
        let config = run(&[
            "-p", "22122", "-l", "0.0.0.0", "-m", "128", "-c", "10", "-t", "2", "-I", "2m", "-U",
            "0", "-b", "64",
        ]);
        assert_eq!(config.listen_backlog, 64);
        assert_eq!(run(&[]).listen_backlog, 1024, "memcached's default");
        assert_eq!(config.port, 22122);
        assert_eq!(config.listen, ["0.0.0.0"]);
        assert_eq!(config.memory_limit, 128 << 20);
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.threads, 2);
        assert_eq!(config.max_item_size, 2 << 20);
        let config = run(&[
            "--port=1",
            "-t3",
            "--max-item-size",
            "512k",
            "-vv",
            "-u",
            "root",
        ]);
        assert_eq!((config.port, config.threads), (1, 3));
        assert_eq!(config.max_item_size, 512 << 10);
        let config = run(&[
            "-o",
            "modern,idle_timeout=7,hashpower=20",
            "--extended=no_lru_crawler",
        ]);
        assert_eq!(config.idle_timeout, 7);
        assert_eq!(run(&["-o", "idle_timeout=3x"]).idle_timeout, 3);
        assert_eq!(run(&["-o", "idle_timeout=abc"]).idle_timeout, 0);
        assert_eq!(parse_args(["-h"]), Ok(Action::Help));
        assert_eq!(parse_args(["--version"]), Ok(Action::Version));
    }

    #[test]
    fn bad_options_are_errors() {
        for args in [
            &["-p", "x"][..],
            &["-p", "70000"],
            &["-p"],
            &["-t", "0"],
            &["-c", "-1"],
            &["-I", "100"],
            &["-I", "2g"],
            &["-m", "1", "-I", "1m"],
            &["-U", "11211"],
            &["-x"],
            &["-o", "bogus=1"],
            &["-o", "idle_timeout"],
            &["-o", "ssl_key=/k"],
            &["-é1"],
            &["stray"],
        ] {
            assert!(parse_args(args.iter().copied()).is_err(), "{args:?}");
        }
        // memcached's exit status for a bad sub-option is 1, for other bad options 64.
        for (args, status) in [
            (&["-o", "bogus"][..], 1),
            (&["-o", "idle_timeout"], 1),
            (&["-x"], 64),
        ] {
            let error = parse_args(args.iter().copied()).unwrap_err();
            assert_eq!(error.exit_code(), status, "{args:?}");
        }
    }
}
