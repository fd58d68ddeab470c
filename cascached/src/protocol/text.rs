//! The classic text commands, checked in memcached 1.6.18's order so that each malformed line
//! gets the same reply (`ERROR` for a wrong argument count, `CLIENT_ERROR …` for a bad argument,
//! silenced by a trailing `noreply` where memcached silences it).

use super::number::{parse_i32, parse_u32, parse_u64};
use super::reply::{BAD_DATA_CHUNK, BAD_FORMAT, ERROR};
use super::{
    meta, Command, Get, Limits, Parsed, Request, StatsGroup, Store, StoreMode, TooLarge,
    MAX_KEY_LEN,
};
use std::borrow::Cow;

/// How many tokens are kept for inspection; longer lines are counted, and every command but the
/// multigets refuses them by their count anyway.
const MAX_TOKENS: usize = 24;

const INVALID_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
const INVALID_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
const DELETE_USAGE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/// The tokens of one command line.
pub(super) struct Tokens<'a> {
    line: &'a [u8],
    /// (start, end) of the first [`MAX_TOKENS`] tokens.
    spans: [(usize, usize); MAX_TOKENS],
    /// How many tokens the line has in all.
    pub(super) count: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Self {
        let mut spans = [(0, 0); MAX_TOKENS];
        let mut count = 0;
        let mut start = None;
        for (i, &byte) in line.iter().chain(std::iter::once(&b' ')).enumerate() {
            match (byte == b' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    if count < MAX_TOKENS {
                        spans[count] = (s, i);
                    }
                    count += 1;
                    start = None;
                }
                _ => {}
            }
        }
        Tokens { line, spans, count }
    }

    /// Token `i` (empty past the end).
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.count.min(MAX_TOKENS) {
            let (start, end) = self.spans[i];
            &self.line[start..end]
        } else {
            &[]
        }
    }

    /// The line from token `i` on (empty past the end).
    pub(super) fn rest_from(&self, i: usize) -> &'a [u8] {
        if i < self.count.min(MAX_TOKENS) {
            &self.line[self.spans[i].0..]
        } else {
            &[]
        }
    }

    /// memcached's `set_noreply_maybe`: the last token is exactly `noreply`.
    fn noreply(&self) -> bool {
        self.count <= MAX_TOKENS && self.count > 0 && self.get(self.count - 1) == b"noreply"
    }
}

pub(super) fn command(command: Command<'_>, consumed: usize) -> Parsed<'_> {
    Parsed::Request {
        request: Request::Command(command),
        consumed,
    }
}

pub(super) fn error(message: &'static str, quiet: bool, consumed: usize) -> Parsed<'static> {
    swallowing_error(message, quiet, 0, consumed)
}

pub(super) fn swallowing_error(
    message: &'static str,
    quiet: bool,
    swallow: usize,
    consumed: usize,
) -> Parsed<'static> {
    Parsed::Request {
        request: Request::Error {
            message,
            quiet,
            swallow,
        },
        consumed,
    }
}

/// Parses one complete line (without its line ending); `after` is the input that follows it
/// (the data block of a storage command), `line_len` the bytes the line took with its ending.
pub(super) fn parse_line<'a>(
    line: &'a [u8],
    after: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let tokens = Tokens::new(line);
    let name = tokens.get(0);
    if name.len() < 2 {
        return error(ERROR, false, line_len);
    }
    if name.len() == 2 && name[0] == b'm' {
        return meta::parse(name[1], &tokens, after, line_len, limits);
    }
    match name {
        b"get" => get(&tokens, false, false, line_len),
        b"gets" => get(&tokens, true, false, line_len),
        b"gat" => get(&tokens, false, true, line_len),
        b"gats" => get(&tokens, true, true, line_len),
        b"set" => store(&tokens, StoreKind::Set, after, line_len, limits),
        b"add" => store(&tokens, StoreKind::Add, after, line_len, limits),
        b"replace" => store(&tokens, StoreKind::Replace, after, line_len, limits),
        b"append" => store(&tokens, StoreKind::Append, after, line_len, limits),
        b"prepend" => store(&tokens, StoreKind::Prepend, after, line_len, limits),
        b"cas" => store(&tokens, StoreKind::Cas, after, line_len, limits),
        b"incr" => arithmetic(&tokens, true, line_len),
        b"decr" => arithmetic(&tokens, false, line_len),
        b"delete" => delete(&tokens, line_len),
        b"touch" => touch(&tokens, line_len),
        b"flush_all" => flush_all(&tokens, line_len),
        b"stats" => stats(&tokens, line_len),
        b"version" => command(Command::Version, line_len),
        b"quit" => command(Command::Quit, line_len),
        b"verbosity" => verbosity(&tokens, line_len),
        // memcached hangs up on what looks like an HTTP request.
        _ if tokens.count <= MAX_TOKENS && tokens.get(tokens.count - 1).starts_with(b"HTTP/") => {
            Parsed::Close
        }
        _ => error(ERROR, false, line_len),
    }
}

fn get<'a>(tokens: &Tokens<'a>, with_cas: bool, touch: bool, line_len: usize) -> Parsed<'a> {
    if tokens.count < 2 {
        return error(ERROR, false, line_len);
    }
    let (touch, first_key) = if touch {
        match parse_i32(tokens.get(1)) {
            Some(exptime) => (Some(exptime), 2),
            None => return error(INVALID_EXPTIME, false, line_len),
        }
    } else {
        (None, 1)
    };
    let keys = tokens.rest_from(first_key);
    if super::tokens(keys).any(|key| key.len() > MAX_KEY_LEN) {
        return error(BAD_FORMAT, false, line_len);
    }
    command(
        Command::Get(Get {
            keys,
            with_cas,
            touch,
        }),
        line_len,
    )
}

#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

fn store<'a>(
    tokens: &Tokens<'a>,
    kind: StoreKind,
    after: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let arity = if kind == StoreKind::Cas { 6 } else { 5 };
    if tokens.count != arity && tokens.count != arity + 1 {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, noreply, line_len);
    }
    let (Some(flags), Some(exptime), Some(data_len)) = (
        parse_u32(tokens.get(2)),
        parse_i32(tokens.get(3)),
        parse_i32(tokens.get(4)),
    ) else {
        return error(BAD_FORMAT, noreply, line_len);
    };
    let mode = match kind {
        StoreKind::Set => StoreMode::Set,
        StoreKind::Add => StoreMode::Add,
        StoreKind::Replace => StoreMode::Replace,
        StoreKind::Append => StoreMode::Append,
        StoreKind::Prepend => StoreMode::Prepend,
        StoreKind::Cas => match parse_u64(tokens.get(5)) {
            Some(unique) => StoreMode::Cas(unique),
            None => return error(BAD_FORMAT, noreply, line_len),
        },
    };
    if !(0..=i32::MAX - 2).contains(&data_len) {
        return error(BAD_FORMAT, noreply, line_len);
    }
    let data_len = data_len as usize;
    if limits.too_large(key.len(), flags, data_len) {
        return command(
            Command::TooLarge(TooLarge {
                key: Cow::Borrowed(key),
                delete_old: kind == StoreKind::Set,
                quiet: noreply,
                swallow: data_len + 2,
            }),
            line_len,
        );
    }
    let Some(block) = after.get(..data_len + 2) else {
        return Parsed::Incomplete;
    };
    let consumed = line_len + data_len + 2;
    if &block[data_len..] != b"\r\n" {
        return error(BAD_DATA_CHUNK, noreply, consumed);
    }
    command(
        Command::Store(Store {
            mode,
            key,
            flags,
            exptime,
            data: &block[..data_len],
            noreply,
        }),
        consumed,
    )
}

fn arithmetic<'a>(tokens: &Tokens<'a>, incr: bool, line_len: usize) -> Parsed<'a> {
    if tokens.count != 3 && tokens.count != 4 {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, noreply, line_len);
    }
    match parse_u64(tokens.get(2)) {
        Some(delta) => command(
            Command::Arithmetic {
                key,
                delta,
                incr,
                noreply,
            },
            line_len,
        ),
        None => error(INVALID_DELTA, noreply, line_len),
    }
}

fn delete<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if !(2..=4).contains(&tokens.count) {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    if tokens.count > 2 {
        // Only a legacy hold time of 0 and/or `noreply` may follow the key.
        let hold_is_zero = tokens.get(2) == b"0";
        let valid = (tokens.count == 3 && (hold_is_zero || noreply))
            || (tokens.count == 4 && hold_is_zero && noreply);
        if !valid {
            return error(DELETE_USAGE, noreply, line_len);
        }
    }
    let key = tokens.get(1);
    if key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, noreply, line_len);
    }
    command(Command::Delete { key, noreply }, line_len)
}

fn touch<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count != 3 && tokens.count != 4 {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, noreply, line_len);
    }
    match parse_i32(tokens.get(2)) {
        Some(exptime) => command(
            Command::Touch {
                key,
                exptime,
                noreply,
            },
            line_len,
        ),
        None => error(INVALID_EXPTIME, noreply, line_len),
    }
}

fn flush_all<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count > 3 {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    let delay_given = tokens.count != if noreply { 2 } else { 1 };
    let delay = if delay_given {
        match parse_i32(tokens.get(1)) {
            Some(delay) => delay,
            None => return error(INVALID_EXPTIME, noreply, line_len),
        }
    } else {
        0
    };
    command(Command::FlushAll { delay, noreply }, line_len)
}

fn stats<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    let group = match tokens.get(1) {
        b"" => StatsGroup::General,
        b"reset" => StatsGroup::Reset,
        b"settings" => StatsGroup::Settings,
        b"items" | b"slabs" | b"sizes" | b"conns" => StatsGroup::Empty,
        _ => return error(ERROR, false, line_len),
    };
    command(Command::Stats(group), line_len)
}

fn verbosity<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count != 2 && tokens.count != 3 {
        return error(ERROR, false, line_len);
    }
    let noreply = tokens.noreply();
    match parse_u32(tokens.get(1)) {
        Some(_) => command(Command::Verbosity { noreply }, line_len),
        None => error(BAD_FORMAT, noreply, line_len),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, reply::*, Limits, Parsed, Request};
    use super::*;

    /// The reply a malformed line gets: its message (None if silenced), and bytes to swallow.
    fn refusal(input: &[u8]) -> (Option<&'static str>, usize) {
        let (message, quiet, swallow) = super::super::tests::error(input);
        ((!quiet).then_some(message), swallow)
    }

    #[test]
    fn tokens_skip_runs_of_spaces() {
        let tokens = Tokens::new(b"  get  a b  ");
        assert_eq!(tokens.count, 3);
        assert_eq!(tokens.get(0), b"get");
        assert_eq!(tokens.get(2), b"b");
        assert_eq!(tokens.get(3), b"");
        assert_eq!(tokens.rest_from(1), b"a b  ");
    }

    #[test]
    fn storage_refusals_match_memcached() {
        assert_eq!(refusal(b"set\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"set k 0 0\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"set k 0 0 1 2 3\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"set k abc 0 1\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k 0 abc 1\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k 0 0 abc\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k 0 0 -1\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k -1 0 1\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k abc 0 1 noreply\r\n"), (None, 0));
        assert_eq!(refusal(b"cas k 0 0 1\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"cas k 0 0 1 abc\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"cas k 0 0 1 -1\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"set k 0 0 1\r\nxyz"), (Some(BAD_DATA_CHUNK), 0));
        let key = [b'a'; 251];
        let line = [&b"set "[..], &key, b" 0 0 1\r\n"].concat();
        assert_eq!(refusal(&line), (Some(BAD_FORMAT), 0));
    }

    #[test]
    fn other_refusals_match_memcached() {
        assert_eq!(refusal(b"get\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"GET foo\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"gat abc a\r\n"), (Some(INVALID_EXPTIME), 0));
        assert_eq!(refusal(b"touch a abc\r\n"), (Some(INVALID_EXPTIME), 0));
        assert_eq!(refusal(b"incr n abc\r\n"), (Some(INVALID_DELTA), 0));
        assert_eq!(refusal(b"incr n -1\r\n"), (Some(INVALID_DELTA), 0));
        assert_eq!(refusal(b"incr n abc noreply\r\n"), (None, 0));
        assert_eq!(refusal(b"delete n 10\r\n"), (Some(DELETE_USAGE), 0));
        assert_eq!(refusal(b"delete n 10 noreply\r\n"), (None, 0));
        assert_eq!(refusal(b"delete n x y z\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"flush_all abc\r\n"), (Some(INVALID_EXPTIME), 0));
        assert_eq!(refusal(b"flush_all 1 2 3\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"verbosity\r\n"), (Some(ERROR), 0));
        assert_eq!(refusal(b"verbosity abc\r\n"), (Some(BAD_FORMAT), 0));
        assert_eq!(refusal(b"stats foo\r\n"), (Some(ERROR), 0));
    }

    #[test]
    fn oversized_values_are_swallowed_not_buffered() {
        let parsed = parse(b"set k 0 0 2000000\r\n", &Limits::default());
        let Parsed::Request {
            request: Request::Command(Command::TooLarge(too_large)),
            consumed,
        } = parsed
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(consumed, 19);
        assert_eq!(too_large.swallow, 2_000_002);
        assert!(too_large.delete_old);
        assert!(matches!(
            parse(b"add k 0 0 2000000 noreply\r\n", &Limits::default()),
            Parsed::Request {
                request: Request::Command(Command::TooLarge(TooLarge {
                    delete_old: false,
                    quiet: true,
                    ..
                })),
                ..
            }
        ));
    }

    #[test]
    fn http_closes() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n", &Limits::default()),
            Parsed::Close
        );
    }
}
