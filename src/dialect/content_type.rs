//! The RRpc ContentType in the message-id level of a request topic.

/// What separates a message id from the ContentType it carries in the message-id
/// level of a request topic: `{messageId};ct={ContentType}`, for example
/// `/sys/a1B2c3/dev1/rrpc/request/889455942124347392;ct=65`. A request without a
/// ContentType has the plain `{messageId}` level, byte for byte the documented
/// Alibaba format. The device answers on the response topic with the whole level
/// (`.../rrpc/response/889455942124347392;ct=65`), so a device that knows nothing
/// of ContentType still answers correctly. The encoding lives in the topic, not in
/// MQTT 5 properties, so it crosses every broker and both protocol versions: an
/// MQTT 5 caller and an MQTT 3.1.1 device (or the reverse) see the same topic.
pub const CONTENT_TYPE_SEPARATOR: &str = ";ct=";

/// The message-id level of a request for `message_id` with `content_type`.
pub fn message_id_level(message_id: &str, content_type: Option<u8>) -> String {
    match content_type {
        None => message_id.to_string(),
        Some(ct) => format!("{message_id}{CONTENT_TYPE_SEPARATOR}{ct}"),
    }
}

/// Splits a message-id level into the message id and the ContentType it carries.
/// Only an exact `;ct=` suffix with a decimal 0-255 (no sign, no leading zero)
/// counts; anything else is part of the id.
pub fn split_content_type(level: &str) -> (&str, Option<u8>) {
    // The suffix is at most `;ct=255`: look for its `;` in the last 7 bytes only.
    let from = level.len().saturating_sub(CONTENT_TYPE_SEPARATOR.len() + 3);
    let Some(at) = level.as_bytes()[from..]
        .iter()
        .rposition(|&b| b == b';')
        .map(|i| from + i)
    else {
        return (level, None);
    };
    if !level[at..].starts_with(CONTENT_TYPE_SEPARATOR) {
        return (level, None);
    }
    let (id, digits) = (&level[..at], &level[at + CONTENT_TYPE_SEPARATOR.len()..]);
    let canonical = !digits.is_empty()
        && digits.len() <= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match digits.parse::<u8>() {
        Ok(ct) if canonical && !id.is_empty() => (id, Some(ct)),
        _ => (level, None),
    }
}

/// The message id a message-id level names, as far as telling deliveries of one
/// request apart goes: the level up to its first `;ct=`, whatever follows
/// (`42`, `42;ct=0`, `42;ct=65` and `42;ct=065` are all message 42), or the
/// whole level when it has none or starts with it. A ContentType suffix, well
/// formed or not, never makes a delivery a new request.
pub fn bare_message_id(level: &str) -> &str {
    // A byte search for each `;` (the separator's first byte): cheaper on ids of
    // a few dozen bytes than a substring search, which prepares a table first.
    let b = level.as_bytes();
    let sep = CONTENT_TYPE_SEPARATOR.as_bytes();
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == sep[0]) {
        let at = from + i;
        if b[at..].starts_with(sep) {
            return if at > 0 { &level[..at] } else { level };
        }
        from = at + 1;
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_id_ends_at_the_first_separator_but_never_empty() {
        for (level, bare) in [
            ("42", "42"),
            ("42;ct=0", "42"),
            ("42;ct=65", "42"),
            ("42;ct=065", "42"),
            ("42;ct=", "42"),
            ("4;2;ct=1", "4;2"),
            ("42;ct=1;ct=2", "42"),
            (";ct=5", ";ct=5"),
            ("a;b", "a;b"),
            ("42;c", "42;c"),
            ("42;", "42;"),
        ] {
            assert_eq!(bare_message_id(level), bare, "{level}");
        }
    }
}
