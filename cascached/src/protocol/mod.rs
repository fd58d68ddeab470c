//! The memcached text and meta protocols as a pure parser: bytes in, one request out (or "need
//! more bytes", or "close the connection"). No IO and no storage here, so the fuzz target and the
//! tests drive it directly.
//!
//! Every refusal is memcached 1.6.18's, byte for byte: which malformed lines get `ERROR` and which
//! `CLIENT_ERROR …`, when `noreply` silences an error, when the data block after a refused
//! storage line is swallowed and when it is read as the next command.
//!
//! ```
//! use cascached::protocol::{parse, Command, Limits, Parsed, Request};
//!
//! let limits = Limits::default();
//! let Parsed::Request { request: Request::Command(Command::Store(store)), consumed } =
//!     parse(b"set k 7 0 2\r\nhi\r\nget k\r\n", &limits)
//! else {
//!     panic!()
//! };
//! assert_eq!((store.key, store.flags, store.data), (&b"k"[..], 7, &b"hi"[..]));
//! assert_eq!(consumed, 17);
//! assert!(matches!(parse(b"set k 7 0 2\r\nh", &limits), Parsed::Incomplete));
//! ```

pub mod base64;
mod meta;
pub mod number;
mod text;

use std::borrow::Cow;

pub use meta::{MetaArithmetic, MetaDelete, MetaFlags, MetaGet, MetaSet, SetMode};

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;
/// A connection whose buffered input has no newline in this many bytes is closed.
pub const MAX_LINE_LEN: usize = 2048;
/// A `get`/`gets` line may run longer than [`MAX_LINE_LEN`] (a large multiget), up to this.
pub const MAX_MULTIGET_LINE_LEN: usize = 1 << 20;
/// memcached's fixed per-item bytes that count toward the item size limit (`-I`): the 48-byte
/// header, the 8-byte CAS, the key's NUL and the data's CRLF. Nonzero client flags add 4.
pub const ITEM_HEADER_LEN: usize = 59;

/// Parser settings that come from the server's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The item size limit (`-I`), for the whole item as memcached sizes it.
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_item_size: 1 << 20,
        }
    }
}

impl Limits {
    /// Whether an item with this key, flags and data length is over the size limit, measured as
    /// memcached measures it (so the largest accepted value is the same byte count).
    pub fn too_large(&self, key_len: usize, flags: u32, data_len: usize) -> bool {
        data_len > self.max_data_len(key_len, flags)
    }

    /// The largest value an item with this key length and flags may hold.
    pub fn max_data_len(&self, key_len: usize, flags: u32) -> usize {
        let flags_len = if flags == 0 { 0 } else { 4 };
        self.max_item_size
            .saturating_sub(ITEM_HEADER_LEN + key_len + flags_len)
    }
}

/// A key: borrowed from the input, or decoded from base64 (meta `b` flag).
pub type Key<'a> = Cow<'a, [u8]>;

/// The outcome of parsing the front of a connection's input.
#[derive(Debug, PartialEq)]
pub enum Parsed<'a> {
    /// No complete request yet: read more.
    Incomplete,
    /// The connection must be closed at once, without flushing replies (a line too long, an
    /// HTTP request).
    Close,
    /// One request, taking `consumed` bytes of input.
    Request {
        /// What to do.
        request: Request<'a>,
        /// Input bytes it used (the line, and the data block of a storage command).
        consumed: usize,
    },
}

/// A parsed request: a command to run, or a malformed request's error reply.
#[derive(Debug, PartialEq)]
pub enum Request<'a> {
    /// A well-formed command.
    Command(Command<'a>),
    /// A malformed request: send `message` and `\r\n` unless `quiet` (memcached's `noreply` also
    /// silences errors), then discard the next `swallow` input bytes (the data block of a storage
    /// command refused after its length was read).
    Error {
        /// The reply line, without its `\r\n`.
        message: &'static str,
        /// Whether `noreply` silences it.
        quiet: bool,
        /// How many following input bytes to discard.
        swallow: usize,
    },
}

/// A well-formed command.
#[derive(Debug, PartialEq)]
pub enum Command<'a> {
    /// `get`, `gets`, `gat`, `gats`.
    Get(Get<'a>),
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store(Store<'a>),
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Whether to suppress the reply.
        noreply: bool,
    },
    /// `incr` / `decr`.
    Arithmetic {
        /// The key.
        key: &'a [u8],
        /// The amount.
        delta: u64,
        /// `incr` (else `decr`).
        incr: bool,
        /// Whether to suppress the reply.
        noreply: bool,
    },
    /// `touch <key> <exptime>`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new exptime.
        exptime: i32,
        /// Whether to suppress the reply.
        noreply: bool,
    },
    /// `flush_all [delay]`.
    FlushAll {
        /// Seconds (or an absolute time) until the flush; 0 or less: now.
        delay: i32,
        /// Whether to suppress the reply.
        noreply: bool,
    },
    /// `stats [group]`.
    Stats(StatsGroup),
    /// `version`.
    Version,
    /// `verbosity <level>` (accepted, no effect).
    Verbosity {
        /// Whether to suppress the reply.
        noreply: bool,
    },
    /// `quit`: flush the replies so far and close.
    Quit,
    /// `mg`.
    MetaGet(MetaGet<'a>),
    /// `ms`.
    MetaSet(MetaSet<'a>),
    /// `md`.
    MetaDelete(MetaDelete<'a>),
    /// `ma`.
    MetaArithmetic(MetaArithmetic<'a>),
    /// `mn`.
    MetaNoop,
    /// `me <key> [b]`: memcached's item debug line.
    MetaDebug {
        /// The key (decoded if `b`).
        key: Key<'a>,
    },
    /// A storage command whose item is over the size limit: its data is swallowed, not
    /// buffered, and `set`/`ms` drop the key's old value.
    TooLarge(TooLarge<'a>),
}

/// `get`/`gets`/`gat`/`gats`.
#[derive(Debug, PartialEq)]
pub struct Get<'a> {
    /// The keys, space-separated (each already checked for length).
    keys: &'a [u8],
    /// `gets`/`gats`: include the CAS unique.
    pub with_cas: bool,
    /// `gat`/`gats`: the new exptime.
    pub touch: Option<i32>,
}

impl<'a> Get<'a> {
    /// The requested keys, in order (repeats included).
    pub fn keys(&self) -> impl Iterator<Item = &'a [u8]> {
        tokens(self.keys)
    }
}

/// A classic storage command with its data.
#[derive(Debug, PartialEq)]
pub struct Store<'a> {
    /// Which command.
    pub mode: StoreMode,
    /// The key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// memcached exptime.
    pub exptime: i32,
    /// The value.
    pub data: &'a [u8],
    /// Whether to suppress the reply.
    pub noreply: bool,
}

/// Which storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`.
    Set,
    /// `add`.
    Add,
    /// `replace`.
    Replace,
    /// `append`.
    Append,
    /// `prepend`.
    Prepend,
    /// `cas` with the client's unique.
    Cas(u64),
}

/// A storage request refused for its size.
#[derive(Debug, PartialEq)]
pub struct TooLarge<'a> {
    /// The key.
    pub key: Key<'a>,
    /// `set` and `ms` remove the key's old value, so a failed write leaves no stale data.
    pub delete_old: bool,
    /// Whether `noreply` silences the error.
    pub quiet: bool,
    /// Bytes of data (with its CRLF) to discard after the line.
    pub swallow: usize,
}

/// Which `stats` group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsGroup {
    /// `stats`.
    General,
    /// `stats reset`.
    Reset,
    /// `stats settings`.
    Settings,
    /// `stats items|slabs|sizes|conns`: memcached internals this server has none of (an empty
    /// list).
    Empty,
}

/// Replies that carry no data, shared by the parser and the executor.
pub mod reply {
    /// Unknown command, or wrong number of arguments.
    pub const ERROR: &str = "ERROR";
    /// Bad arguments.
    pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
    /// A data block not followed by `\r\n`.
    pub const BAD_DATA_CHUNK: &str = "CLIENT_ERROR bad data chunk";
    /// An item over the size limit.
    pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";
    /// `incr`/`decr` on a value that is not a decimal u64.
    pub const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";
    /// Sent to a connection over the `-c` limit before closing it.
    pub const TOO_MANY_CONNECTIONS: &str = "ERROR Too many open connections";
}

/// Space-separated tokens (runs of spaces are one separator; tabs are part of tokens).
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|token| !token.is_empty())
}

/// Parses the request at the front of `input`.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
        return if line_may_grow(input) {
            Parsed::Incomplete
        } else {
            Parsed::Close
        };
    };
    // memcached strips one `\r`, except from a line that is only `\r`.
    let mut line = &input[..newline];
    if line.len() > 1 && line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    // memcached tokenizes the line as a C string: a NUL ends it.
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line = &line[..nul];
    }
    text::parse_line(line, &input[newline + 1..], newline + 1, limits)
}

/// Whether an unterminated line may still be waited for: up to [`MAX_LINE_LEN`] bytes, or a
/// multiget (`get `/`gets ` after at most 100 spaces) up to [`MAX_MULTIGET_LINE_LEN`].
fn line_may_grow(partial: &[u8]) -> bool {
    if partial.len() <= MAX_LINE_LEN {
        return true;
    }
    let spaces = partial.iter().take_while(|&&b| b == b' ').count();
    let rest = &partial[spaces..];
    spaces <= 100
        && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
        && partial.len() <= MAX_MULTIGET_LINE_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(input: &[u8]) -> Command<'_> {
        match parse(input, &Limits::default()) {
            Parsed::Request {
                request: Request::Command(command),
                ..
            } => command,
            other => panic!("{other:?}"),
        }
    }

    /// The error a malformed input parses to: its message, whether `noreply` silences it, and
    /// the bytes it swallows (shared with the text protocol's tests).
    pub(super) fn error(input: &[u8]) -> (&'static str, bool, usize) {
        match parse(input, &Limits::default()) {
            Parsed::Request {
                request:
                    Request::Error {
                        message,
                        quiet,
                        swallow,
                    },
                ..
            } => (message, quiet, swallow),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn line_endings() {
        assert!(matches!(command(b"version\n"), Command::Version));
        assert!(matches!(command(b"version\r\n"), Command::Version));
        assert_eq!(error(b"\r\n"), (reply::ERROR, false, 0));
        assert_eq!(error(b"\n"), (reply::ERROR, false, 0));
        assert!(matches!(command(b"  version  \r\n"), Command::Version));
        // A NUL ends the command as in C.
        assert!(matches!(command(b"version\0junk\r\n"), Command::Version));
    }

    #[test]
    fn line_limit() {
        assert_eq!(parse(&[b'x'; 2048], &Limits::default()), Parsed::Incomplete);
        assert_eq!(parse(&[b'x'; 2049], &Limits::default()), Parsed::Close);
        let mut multiget = b"get ".to_vec();
        multiget.resize(5000, b'k');
        assert_eq!(parse(&multiget, &Limits::default()), Parsed::Incomplete);
        let mut long_line = vec![b'x'; 3000];
        long_line.extend_from_slice(b"\r\n");
        assert_eq!(error(&long_line), (reply::ERROR, false, 0));
    }

    #[test]
    fn item_size_limit_matches_memcached() {
        let limits = Limits::default();
        // Measured on memcached 1.6.18 with -I 1m: the largest value for key "k" is 1048516
        // bytes with flags 0, and 1048512 with flags 1.
        assert!(!limits.too_large(1, 0, 1_048_516));
        assert!(limits.too_large(1, 0, 1_048_517));
        assert!(!limits.too_large(1, 1, 1_048_512));
        assert!(limits.too_large(1, 1, 1_048_513));
    }
}
