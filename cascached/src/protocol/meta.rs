//! The meta commands (`mg`, `ms`, `md`, `ma`, `mn`): a key, then one-letter flags, each with an
//! optional argument glued on (`T30`, `Oabc`). Flags are validated here as memcached 1.6.18's
//! `_meta_flag_preparse` does; the ones that only shape the reply (`c`, `t`, `k`, `O`, …) are
//! kept in request order, since the reply lists them in that order.

use std::borrow::Cow;

use super::number::{parse_i32, parse_u32, parse_u64};
use super::reply::{BAD_DATA_CHUNK, BAD_FORMAT, ERROR};
use super::text::{command, error, swallowing_error, Tokens};
use super::{base64, Command, Key, Limits, Parsed, TooLarge, MAX_KEY_LEN};

/// memcached refuses a meta line of more than this many tokens (command and key included).
const MAX_META_TOKENS: usize = 19;
/// An opaque token (`O…`, the `O` included) may be at most this long.
const MAX_OPAQUE_LEN: usize = 32;

const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
const OPAQUE_TOO_LONG: &str = "CLIENT_ERROR opaque token too long";
const INVALID_OR_DUPLICATE: &str = "CLIENT_ERROR invalid or duplicate flag";

/// The flags of a meta command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaFlags<'a> {
    /// The flag tokens as sent (the reply echoes `O`, `k`, `c`, … in this order).
    line: &'a [u8],
    /// `v`: return the value.
    pub value: bool,
    /// `q`: quiet, the nominal reply is suppressed.
    pub quiet: bool,
    /// `u`: do not count this read as an access.
    pub no_update: bool,
    /// `b`: the key is base64.
    pub base64_key: bool,
    /// `I`: invalidate (`md`: mark stale; `ms` with `C`: store as stale if the CAS is older).
    pub invalidate: bool,
    /// `T<exptime>`: set the item's exptime.
    pub ttl: Option<i32>,
    /// `N<exptime>`: create the item on a miss, with this exptime.
    pub vivify: Option<i32>,
    /// `R<exptime>`: win a recache token if the item's remaining TTL is below this.
    pub recache: Option<i32>,
    /// `F<flags>`: client flags to store.
    pub client_flags: Option<u32>,
    /// `C<cas>`: compare with this CAS unique.
    pub compare: Option<u64>,
    /// `M<mode>`: the mode letter.
    pub mode: Option<u8>,
    /// `J<initial>`: `ma`'s initial value when vivifying.
    pub initial: Option<u64>,
    /// `D<delta>`: `ma`'s delta.
    pub delta: Option<u64>,
}

impl<'a> MetaFlags<'a> {
    /// The flag tokens in request order.
    pub fn tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        super::tokens(self.line)
    }

    fn opaque_too_long(&self) -> bool {
        self.tokens()
            .any(|token| token[0] == b'O' && token.len() > MAX_OPAQUE_LEN)
    }
}

/// `mg <key> <flags>*`.
#[derive(Debug, PartialEq)]
pub struct MetaGet<'a> {
    /// The key (decoded if `b`).
    pub key: Key<'a>,
    /// The flags.
    pub flags: MetaFlags<'a>,
}

/// How `ms` stores (`M` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// `MS` (default).
    Set,
    /// `ME`: add.
    Add,
    /// `MR`: replace.
    Replace,
    /// `MA`: append.
    Append,
    /// `MP`: prepend.
    Prepend,
}

/// `ms <key> <datalen> <flags>*` and its data.
#[derive(Debug, PartialEq)]
pub struct MetaSet<'a> {
    /// The key (decoded if `b`).
    pub key: Key<'a>,
    /// The flags.
    pub flags: MetaFlags<'a>,
    /// The mode.
    pub mode: SetMode,
    /// The value.
    pub data: &'a [u8],
}

/// `md <key> <flags>*`.
#[derive(Debug, PartialEq)]
pub struct MetaDelete<'a> {
    /// The key (decoded if `b`).
    pub key: Key<'a>,
    /// The flags.
    pub flags: MetaFlags<'a>,
}

/// `ma <key> <flags>*`.
#[derive(Debug, PartialEq)]
pub struct MetaArithmetic<'a> {
    /// The key (decoded if `b`).
    pub key: Key<'a>,
    /// The flags.
    pub flags: MetaFlags<'a>,
    /// Increment (else decrement).
    pub incr: bool,
    /// memcached applies the delta before it notices an opaque token too long, then replies
    /// with the error; kept so the executor can do the same.
    pub opaque_too_long: bool,
}

/// Parses a meta command; `letter` is the second letter of its name.
pub(super) fn parse<'a>(
    letter: u8,
    tokens: &Tokens<'a>,
    after: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    if letter == b'n' {
        return command(Command::MetaNoop, line_len);
    }
    if letter == b'e' {
        return meta_debug(tokens, line_len);
    }
    if !matches!(letter, b'g' | b's' | b'd' | b'a') || tokens.count < 2 {
        return error(ERROR, false, line_len);
    }
    let key = tokens.get(1);
    if key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, false, line_len);
    }
    match letter {
        b'g' => meta_get(key, tokens, line_len),
        b's' => meta_set(key, tokens, after, line_len, limits),
        b'd' => meta_delete(key, tokens, line_len),
        _ => meta_arithmetic(key, tokens, line_len),
    }
}

fn meta_debug<'a>(tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    let key = tokens.get(1);
    if tokens.count < 2 || key.len() > MAX_KEY_LEN {
        return error(BAD_FORMAT, false, line_len);
    }
    if tokens.count >= 3 && tokens.get(2) == b"b" {
        return match base64::decode(key) {
            Some(key) => command(
                Command::MetaDebug {
                    key: Cow::Owned(key),
                },
                line_len,
            ),
            None => error(BAD_FORMAT, false, line_len),
        };
    }
    command(
        Command::MetaDebug {
            key: Cow::Borrowed(key),
        },
        line_len,
    )
}

fn meta_get<'a>(key: &'a [u8], tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count > MAX_META_TOKENS {
        return error("CLIENT_ERROR options flags are too long", false, line_len);
    }
    match flags(key, tokens, 2) {
        Ok((_, flags)) if flags.opaque_too_long() => error(OPAQUE_TOO_LONG, false, line_len),
        Ok((key, flags)) => command(Command::MetaGet(MetaGet { key, flags }), line_len),
        Err(message) => error(message, false, line_len),
    }
}

fn meta_set<'a>(
    key: &'a [u8],
    tokens: &Tokens<'a>,
    after: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    if tokens.count == 2 {
        return error(BAD_FORMAT, false, line_len);
    }
    if tokens.count > MAX_META_TOKENS {
        return error("CLIENT_ERROR options flags too long", false, line_len);
    }
    let data_len = match parse_i32(tokens.get(2)) {
        Some(len) if (0..=i32::MAX - 2).contains(&len) => len as usize,
        _ => return error(BAD_FORMAT, false, line_len),
    };
    // From here on the length is known, so a refusal swallows the data block.
    let swallow = data_len + 2;
    let (key, flags) = match flags(key, tokens, 3) {
        Ok(parsed) => parsed,
        Err(message) => return swallowing_error(message, false, swallow, line_len),
    };
    // Upper case only, as memcached 1.6.18 accepts them.
    let mode = match flags.mode {
        None | Some(b'S') => SetMode::Set,
        Some(b'E') => SetMode::Add,
        Some(b'A') => SetMode::Append,
        Some(b'P') => SetMode::Prepend,
        Some(b'R') => SetMode::Replace,
        Some(_) => {
            return swallowing_error(
                "CLIENT_ERROR invalid mode for ms M token",
                false,
                swallow,
                line_len,
            )
        }
    };
    if flags.opaque_too_long() {
        return swallowing_error(OPAQUE_TOO_LONG, false, swallow, line_len);
    }
    if limits.too_large(key.len(), flags.client_flags.unwrap_or(0), data_len) {
        return command(
            Command::TooLarge(TooLarge {
                key,
                delete_old: true,
                quiet: false,
                swallow,
            }),
            line_len,
        );
    }
    let Some(block) = after.get(..data_len + 2) else {
        return Parsed::Incomplete;
    };
    let consumed = line_len + data_len + 2;
    if &block[data_len..] != b"\r\n" {
        return error(BAD_DATA_CHUNK, false, consumed);
    }
    command(
        Command::MetaSet(MetaSet {
            key,
            flags,
            mode,
            data: &block[..data_len],
        }),
        consumed,
    )
}

fn meta_delete<'a>(key: &'a [u8], tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count > MAX_META_TOKENS {
        return error("CLIENT_ERROR options flags too long", false, line_len);
    }
    match flags(key, tokens, 2) {
        Ok((_, flags)) if flags.opaque_too_long() => error(OPAQUE_TOO_LONG, false, line_len),
        Ok((key, flags)) => command(Command::MetaDelete(MetaDelete { key, flags }), line_len),
        Err(_) => error(INVALID_OR_DUPLICATE, false, line_len),
    }
}

fn meta_arithmetic<'a>(key: &'a [u8], tokens: &Tokens<'a>, line_len: usize) -> Parsed<'a> {
    if tokens.count > MAX_META_TOKENS {
        return error("CLIENT_ERROR options flags too long", false, line_len);
    }
    let (key, flags) = match flags(key, tokens, 2) {
        Ok(parsed) => parsed,
        Err(_) => return error(INVALID_OR_DUPLICATE, false, line_len),
    };
    // memcached 1.6.18 refuses the lower-case `Mi` and `Md`.
    let incr = match flags.mode {
        None | Some(b'I' | b'+') => true,
        Some(b'D' | b'-') => false,
        Some(_) => return error("CLIENT_ERROR invalid mode for ma M token", false, line_len),
    };
    let opaque_too_long = flags.opaque_too_long();
    command(
        Command::MetaArithmetic(MetaArithmetic {
            key,
            flags,
            incr,
            opaque_too_long,
        }),
        line_len,
    )
}

/// Validates the flag tokens from token `first` on, like memcached's `_meta_flag_preparse`: an
/// unknown or repeated flag fails at once; a bad argument is remembered and parsing goes on
/// (so a later unknown flag's error wins). Returns the key, decoded if `b` is given.
fn flags<'a>(
    key: &'a [u8],
    tokens: &Tokens<'a>,
    first: usize,
) -> Result<(Key<'a>, MetaFlags<'a>), &'static str> {
    let mut flags = MetaFlags {
        line: tokens.rest_from(first),
        ..MetaFlags::default()
    };
    let mut key = Cow::Borrowed(key);
    let mut seen = [false; 128];
    let mut failure: Option<&'static str> = None;
    for i in first..tokens.count {
        let token = tokens.get(i);
        let (letter, argument) = (token[0], &token[1..]);
        if letter >= 127 || seen[usize::from(letter)] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[usize::from(letter)] = true;
        let exptime = || parse_i32(argument).ok_or(BAD_TOKEN);
        let mut check = |result: Result<(), &'static str>| {
            if let Err(message) = result {
                failure = Some(message);
            }
        };
        match letter {
            b'b' => {
                flags.base64_key = true;
                match base64::decode(&key) {
                    Some(decoded) => key = Cow::Owned(decoded),
                    None => check(Err("CLIENT_ERROR error decoding key")),
                }
            }
            b'N' => check(exptime().map(|t| flags.vivify = Some(t))),
            b'T' => check(exptime().map(|t| flags.ttl = Some(t))),
            b'R' => check(exptime().map(|t| flags.recache = Some(t))),
            b'v' => flags.value = true,
            b'q' => flags.quiet = true,
            b'u' => flags.no_update = true,
            b'I' => flags.invalidate = true,
            // Reply-shaping and proxy flags: no argument to check.
            b'c' | b'f' | b'h' | b'k' | b'l' | b's' | b't' | b'O' | b'P' | b'L' => {}
            // A bad `F` keeps whatever error came before it (by default a format error).
            b'F' => match parse_u32(argument) {
                Some(client_flags) => flags.client_flags = Some(client_flags),
                None => failure = Some(failure.unwrap_or(BAD_FORMAT)),
            },
            b'C' => check(
                parse_u64(argument)
                    .map(|cas| flags.compare = Some(cas))
                    .ok_or(BAD_TOKEN),
            ),
            b'M' if token.len() == 2 => flags.mode = Some(argument[0]),
            b'M' => check(Err("CLIENT_ERROR incorrect length for M token")),
            b'J' => check(
                parse_u64(argument)
                    .map(|initial| flags.initial = Some(initial))
                    .ok_or("CLIENT_ERROR invalid numeric initial value"),
            ),
            b'D' => check(
                parse_u64(argument)
                    .map(|delta| flags.delta = Some(delta))
                    .ok_or("CLIENT_ERROR invalid numeric delta value"),
            ),
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    match failure {
        Some(message) => Err(message),
        None => Ok((key, flags)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Command, Limits, Parsed, Request};

    fn refusal(input: &[u8]) -> (&'static str, usize) {
        match parse(input, &Limits::default()) {
            Parsed::Request {
                request: Request::Error {
                    message, swallow, ..
                },
                ..
            } => (message, swallow),
            other => panic!("{:?} parsed as {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn meta_get(input: &[u8]) -> super::MetaGet<'_> {
        match parse(input, &Limits::default()) {
            Parsed::Request {
                request: Request::Command(Command::MetaGet(get)),
                ..
            } => get,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_keep_request_order_and_arguments() {
        let get = meta_get(b"mg foo v c T30 Oabc k\r\n");
        assert_eq!(get.key.as_ref(), b"foo");
        assert!(get.flags.value);
        assert_eq!(get.flags.ttl, Some(30));
        let tokens: Vec<_> = get.flags.tokens().collect();
        assert_eq!(tokens, [&b"v"[..], b"c", b"T30", b"Oabc", b"k"]);
        // Only the first letter of a token is its flag.
        let vcf = meta_get(b"mg foo vcf\r\n");
        assert_eq!(vcf.flags.tokens().collect::<Vec<_>>(), [&b"vcf"[..]]);
        assert_eq!(meta_get(b"mg Zm9v b\r\n").key.as_ref(), b"foo");
    }

    #[test]
    fn refusals_match_memcached() {
        assert_eq!(refusal(b"mg\r\n"), (super::ERROR, 0));
        assert_eq!(refusal(b"mx foo\r\n"), (super::ERROR, 0));
        assert_eq!(refusal(b"mg foo Z\r\n").0, "CLIENT_ERROR invalid flag");
        assert_eq!(refusal(b"mg foo v v\r\n").0, "CLIENT_ERROR duplicate flag");
        assert_eq!(refusal(b"mg k \x80\r\n").0, "CLIENT_ERROR duplicate flag");
        assert_eq!(refusal(b"mg k1 Tabc Z\r\n").0, "CLIENT_ERROR invalid flag");
        assert_eq!(refusal(b"mg k1 Tabc\r\n").0, super::BAD_TOKEN);
        assert_eq!(refusal(b"mg k1 Fabc\r\n").0, super::BAD_FORMAT);
        assert_eq!(
            refusal(b"mg Zm9 b\r\n").0,
            "CLIENT_ERROR error decoding key"
        );
        assert_eq!(
            refusal(b"mg k O12345678901234567890123456789012\r\n").0,
            super::OPAQUE_TOO_LONG
        );
        let eighteen_flags = [&b"mg k"[..], &b" v".repeat(18), b"\r\n"].concat();
        assert_eq!(
            refusal(&eighteen_flags).0,
            "CLIENT_ERROR options flags are too long"
        );
        assert_eq!(refusal(b"md d1 x\r\n").0, super::INVALID_OR_DUPLICATE);
        assert_eq!(refusal(b"ma k Dabc\r\n").0, super::INVALID_OR_DUPLICATE);
        for mode in [&b"X"[..], b"i", b"d"] {
            let line = [&b"ma k M"[..], mode, b"\r\n"].concat();
            assert_eq!(refusal(&line).0, "CLIENT_ERROR invalid mode for ma M token");
        }
    }

    #[test]
    fn meta_set_refusals_swallow_the_data_once_its_length_is_known() {
        assert_eq!(refusal(b"ms k1\r\n"), (super::BAD_FORMAT, 0));
        assert_eq!(refusal(b"ms k1 abc\r\n"), (super::BAD_FORMAT, 0));
        assert_eq!(refusal(b"ms k1 -1\r\n"), (super::BAD_FORMAT, 0));
        for mode in [&b"X"[..], b"s", b"e", b"a", b"p", b"r"] {
            let line = [&b"ms k1 2 M"[..], mode, b"\r\n"].concat();
            assert_eq!(
                refusal(&line),
                ("CLIENT_ERROR invalid mode for ms M token", 4)
            );
        }
        assert_eq!(refusal(b"ms k1 2 S2\r\n"), ("CLIENT_ERROR invalid flag", 4));
        assert_eq!(
            refusal(b"ms k1 2 M\r\n"),
            ("CLIENT_ERROR incorrect length for M token", 4)
        );
        assert_eq!(
            refusal(b"ms !!!! 1 b\r\n"),
            ("CLIENT_ERROR error decoding key", 3)
        );
        assert_eq!(refusal(b"ms k 1\r\nxy\r\n"), (super::BAD_DATA_CHUNK, 0));
    }
}
