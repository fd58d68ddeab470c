//! Numbers as memcached reads them: C's `strtoul` family wrapped in memcached's `safe_strto*`
//! checks, quirks included, so that every argument is accepted or refused exactly as memcached
//! 1.6.18 does (`+5` and `-0` are numbers, `4294967296` as flags wraps to 0, `12\t` is 12).

/// C's `isspace` in the "C" locale.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What `strtoull`/`strtoll` read from the front of `text`.
struct Scanned {
    negative: bool,
    /// The magnitude, `None` if it overflowed a `u64` (C's `ERANGE`).
    magnitude: Option<u64>,
    /// How many bytes were read (C's `endptr - str`); 0 when there was no digit.
    end: usize,
}

fn scan(text: &[u8]) -> Scanned {
    let mut i = text.iter().take_while(|&&b| is_c_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut magnitude = Some(0u64);
    while let Some(digit) = text.get(i).filter(|b| b.is_ascii_digit()) {
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(u64::from(digit - b'0')));
        i += 1;
    }
    Scanned {
        negative,
        magnitude,
        end: if i == digits_start { 0 } else { i },
    }
}

/// memcached accepts a number only if what follows it is a space or the end of the C string.
fn ends_cleanly(text: &[u8], scanned: &Scanned) -> bool {
    scanned.end != 0
        && text
            .get(scanned.end)
            .map_or(true, |&b| is_c_space(b) || b == 0)
}

/// `safe_strtoull`: a `u64`; a minus sign is refused only when it makes the value look negative
/// as an `i64` (so `-0` is 0 and `-5` is refused).
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let scanned = scan(text);
    let magnitude = scanned.magnitude?;
    if !ends_cleanly(text, &scanned) {
        return None;
    }
    let value = if scanned.negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    if (value as i64) < 0 && text[..scanned.end].contains(&b'-') {
        return None;
    }
    Some(value)
}

/// `safe_strtoul` into a `uint32_t`: parsed as a 64-bit `unsigned long`, then truncated, so
/// flags of 4294967296 are stored as 0 (as memcached does).
pub fn parse_u32(text: &[u8]) -> Option<u32> {
    parse_u64(text).map(|value| value as u32)
}

/// `safe_strtol` into an `int32_t`: above `i32::MAX` is refused, below `i32::MIN` wraps.
pub fn parse_i32(text: &[u8]) -> Option<i32> {
    let scanned = scan(text);
    let magnitude = scanned.magnitude?;
    let value = if scanned.negative {
        // strtol saturates past i64::MIN and reports ERANGE.
        if magnitude > 1 << 63 {
            return None;
        }
        (magnitude as i64).wrapping_neg()
    } else {
        i64::try_from(magnitude).ok()?
    };
    if value > i64::from(i32::MAX) || !ends_cleanly(text, &scanned) {
        return None;
    }
    Some(value as i32)
}

/// Writes `value` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes `value` in decimal.
pub fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_like_strtoull() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b" 12"), Some(12));
        assert_eq!(parse_u64(b"12\t"), Some(12));
        assert_eq!(parse_u64(b"12 junk"), Some(12));
        assert_eq!(parse_u64(b"12x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-"), None);
        assert_eq!(parse_u64(b"abc"), None);
    }

    #[test]
    fn u32_wraps_like_memcached_flags() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), Some(0));
        assert_eq!(parse_u32(b"-1"), None);
    }

    #[test]
    fn i32_like_safe_strtol() {
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483649"), Some(i32::MAX));
        assert_eq!(parse_i32(b"-9223372036854775809"), None);
        assert_eq!(parse_i32(b"1.5"), None);
    }

    #[test]
    fn decimal_output() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_i64(&mut out, -1);
        assert_eq!(out, b"0 18446744073709551615 -1");
    }
}
