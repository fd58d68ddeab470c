//! Standard base64 (RFC 4648, padded) for the meta protocol's binary keys (the `b` flag).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sextet(byte: u8) -> Option<u32> {
    Some(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes padded base64; `None` if `text` is not a whole number of valid quads or decodes to
/// nothing (memcached refuses an empty key too).
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (index, quad) in text.chunks_exact(4).enumerate() {
        let padding = match (quad[2], quad[3]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        if padding > 0 && index + 1 != quads {
            return None;
        }
        let mut bits = 0u32;
        for &byte in &quad[..4 - padding] {
            bits = bits << 6 | sextet(byte)?;
        }
        bits <<= 6 * padding as u32;
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - padding]);
    }
    (!out.is_empty()).then_some(out)
}

/// Appends the padded base64 of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for input in [
            &b"f"[..],
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0, 255, 128],
        ] {
            let mut encoded = Vec::new();
            encode_into(input, &mut encoded);
            assert_eq!(decode(&encoded).as_deref(), Some(input));
        }
        let mut encoded = Vec::new();
        encode_into(b"foo", &mut encoded);
        assert_eq!(encoded, b"Zm9v");
    }

    #[test]
    fn refuses_what_memcached_refuses() {
        assert_eq!(decode(b"Zm9v="), None);
        assert_eq!(decode(b"Zm9"), None);
        assert_eq!(decode(b"!!!!"), None);
        assert_eq!(decode(b"Zg==Zm9v"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decode(b"Zg==").as_deref(), Some(&b"f"[..]));
    }
}
