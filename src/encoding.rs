//! Text encodings written once for the whole crate and the `rrpc` tool:
//! lowercase hex, and JSON string escaping.

/// `bytes` as lowercase hexadecimal, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Appends `v` to `out` as a JSON string: quoted, with quotes, backslashes and
/// control characters escaped.
pub fn push_json_str(out: &mut String, v: &str) {
    out.reserve(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(DIGITS[(u32::from(c) >> 4) as usize]));
                out.push(char::from(DIGITS[(u32::from(c) & 0x0f) as usize]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `v` as a JSON string (see [`push_json_str`]).
pub fn json_str(v: &str) -> String {
    let mut s = String::new();
    push_json_str(&mut s, v);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_str("a\"b\\c\n\r\t\u{1}\u{1f}é"),
            r#""a\"b\\c\n\r\t\u0001\u001fé""#
        );
    }
}
