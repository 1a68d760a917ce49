//! The identity rules: what a product key, device name, message id or custom
//! topic may hold, so that no value can widen a subscription or move a topic
//! into another device's namespace.

use super::{Dialect, Identity, MAX_CUSTOM_TOPIC_LEN, MAX_IDENTITY_LEN};

/// Why an identity field was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct IdentityError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl IdentityError {
    pub(super) fn reason_for_topic(&self) -> &'static str {
        // Map to fixed texts so that a parse error needs no allocation.
        match (self.field, self.reason) {
            (_, "is empty") => "a topic level is empty",
            (_, "is longer than 128 bytes") => "an identity or message id is longer than 128 bytes",
            (_, r) if r.contains("wildcard") => "the topic contains an MQTT wildcard",
            (_, r) if r.contains("NUL") => "the topic contains a NUL byte",
            (_, r) if r.contains("control") => "the topic contains a control character",
            ("custom topic", _) => "the custom topic part is invalid",
            _ => "an identity part is invalid",
        }
    }
}

/// Checks one identity part (product key, device name, message id): non-empty, at
/// most [`MAX_IDENTITY_LEN`] bytes, and free of the MQTT wildcard and separator
/// characters `+ # /`, NUL and other control characters, which would let the value
/// widen a subscription or move a topic into another device's namespace.
pub fn validate_part(field: &'static str, value: &str) -> Result<(), IdentityError> {
    if value.is_empty() {
        Err("is empty")
    } else {
        check_bytes(
            value,
            MAX_IDENTITY_LEN,
            "is longer than 128 bytes",
            &PART_FORBIDDEN,
        )
    }
    .map_err(|reason| IdentityError { field, reason })
}

/// Why `value` is refused, if it is: longer than `max` bytes (`too_long`), or
/// holding a byte that `forbidden` marks.
fn check_bytes(
    value: &str,
    max: usize,
    too_long: &'static str,
    forbidden: &[bool; 256],
) -> Result<(), &'static str> {
    if value.len() > max {
        return Err(too_long);
    }
    match value.bytes().find(|&b| forbidden[b as usize]) {
        Some(b) => Err(forbidden_reason(b)),
        None => Ok(()),
    }
}

/// Bytes an identity part may not hold: `+ # /`, NUL and control characters.
static PART_FORBIDDEN: [bool; 256] = forbidden_table(true);
/// Bytes a custom topic may not hold: the same but `/`.
static TOPIC_FORBIDDEN: [bool; 256] = forbidden_table(false);

const fn forbidden_table(slash: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[0x7f] = true;
    t[b'+' as usize] = true;
    t[b'#' as usize] = true;
    t[b'/' as usize] = slash;
    t
}

fn forbidden_reason(b: u8) -> &'static str {
    match b {
        b'+' | b'#' => "contains an MQTT wildcard ('+' or '#')",
        b'/' => "contains the topic separator '/'",
        0 => "contains a NUL byte",
        _ => "contains a control character",
    }
}

/// Checks a custom RRPC topic: it starts with `/`, has something after it, holds no
/// wildcard, NUL or control character, and is at most [`MAX_CUSTOM_TOPIC_LEN`] bytes.
pub fn validate_custom_topic(topic: &str) -> Result<(), IdentityError> {
    if !topic.starts_with('/') || topic.len() < 2 {
        Err("must start with '/' and name a topic, such as /{pk}/{dn}/user/update")
    } else {
        check_bytes(
            topic,
            MAX_CUSTOM_TOPIC_LEN,
            "is longer than 1024 bytes",
            &TOPIC_FORBIDDEN,
        )
    }
    .map_err(|reason| IdentityError {
        field: "custom topic",
        reason,
    })
}

/// Checks the request filter of an MQTT 5 request/response device
/// ([`Dialect::Mqtt5`]): a topic or a filter with `+`/`#` as MQTT 5 allows
/// them (`+` a whole level, `#` the whole last level), non-empty, no NUL or
/// control character, at most [`MAX_CUSTOM_TOPIC_LEN`] bytes.
pub fn validate_request_filter(filter: &str) -> Result<(), IdentityError> {
    let err = |reason| IdentityError {
        field: "custom topic",
        reason,
    };
    if filter.is_empty() {
        return Err(err("is empty: the mqtt5 dialect needs the request filter"));
    }
    if filter.len() > MAX_CUSTOM_TOPIC_LEN {
        return Err(err("is longer than 1024 bytes"));
    }
    if let Some(b) = filter.bytes().find(|&b| b < 0x20 || b == 0x7f) {
        return Err(err(forbidden_reason(b)));
    }
    let levels = filter.split('/').count();
    for (i, level) in filter.split('/').enumerate() {
        match level {
            "+" => {}
            "#" if i + 1 == levels => {}
            l if l.contains('+') || l.contains('#') => return Err(err(
                "holds a wildcard that is not a whole level ('+') or the whole last level ('#')",
            )),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the Response Topic of an MQTT 5 request as received: non-empty, no
/// wildcard ([MQTT-3.3.2-14]), no NUL, at most [`MAX_CUSTOM_TOPIC_LEN`] bytes.
pub fn validate_response_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        Err("the Response Topic is empty")
    } else if topic.len() > MAX_CUSTOM_TOPIC_LEN {
        Err("the Response Topic is longer than 1024 bytes")
    } else if topic.bytes().any(|b| b == b'+' || b == b'#') {
        Err("the Response Topic contains an MQTT wildcard")
    } else if topic.bytes().any(|b| b == 0) {
        Err("the Response Topic contains a NUL byte")
    } else {
        Ok(())
    }
}

/// Validates a whole identity for `dialect`: the product key and device name
/// when the dialect's topics use them (else they may be empty: ThingsBoard and
/// Azure name no device in their topics), the custom topic when it needs one.
pub fn validate_identity(dialect: Dialect, id: &Identity<'_>) -> Result<(), IdentityError> {
    if dialect.uses_product_key() || !id.product_key.is_empty() {
        validate_part("product key", id.product_key)?;
    }
    if dialect.uses_device_name() || !id.device_name.is_empty() {
        validate_part("device name", id.device_name)?;
    }
    let needs = dialect.needs_custom_topic();
    if dialect.uses_mqtt5_properties() {
        return match id.custom_topic {
            Some(f) => validate_request_filter(f),
            None => Err(IdentityError {
                field: "custom topic",
                reason: "is required by the mqtt5 dialect: its request filter",
            }),
        };
    }
    match (needs, id.custom_topic) {
        (true, Some(t)) => validate_custom_topic(t),
        (true, None) => Err(IdentityError {
            field: "custom topic",
            reason: "is required by the alibaba-custom dialect",
        }),
        (false, Some(_)) => Err(IdentityError {
            field: "custom topic",
            reason: "is only used by the alibaba-custom and mqtt5 dialects",
        }),
        (false, None) => Ok(()),
    }
}
