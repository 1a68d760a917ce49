//! Topic dialects: how each cloud spells an RRPC request and its response.
//!
//! A dialect is data: three topic templates (request, response, subscription is
//! derived from the request) made of literal text and placeholders. Adding a
//! cloud whose ids travel in the topic is one more entry in `SPECS` and a test.
//!
//! | dialect          | subscribe                          | request                                   | response                                   |
//! |------------------|------------------------------------|-------------------------------------------|--------------------------------------------|
//! | `AlibabaSystem`  | `/sys/{pk}/{dn}/rrpc/request/+`    | `/sys/{pk}/{dn}/rrpc/request/{id}`        | `/sys/{pk}/{dn}/rrpc/response/{id}`        |
//! | `AlibabaCustom`  | `/ext/rrpc/+{topic}`               | `/ext/rrpc/{id}{topic}`                   | the request topic itself                   |
//! | `Tencent`        | `$rrpc/rxd/{pk}/{dn}/+`            | `$rrpc/rxd/{pk}/{dn}/{id}`                | `$rrpc/txd/{pk}/{dn}/{id}`                 |
//!
//! `{topic}` is the custom topic including its leading `/`, for example
//! `/a1b2c3/device1/user/update`, so that `/ext/rrpc/+` + topic is the filter the
//! vendor SDKs subscribe.
//!
//! Nothing here allocates while parsing: the parts of a [`ParsedTopic`] borrow
//! from the topic they were parsed from.

use std::fmt;

mod content_type;
mod identity;
mod template;
#[cfg(test)]
mod tests;

pub use content_type::{
    bare_message_id, message_id_level, split_content_type, CONTENT_TYPE_SEPARATOR,
};
pub use identity::{validate_custom_topic, validate_identity, validate_part, IdentityError};
use template::Part::*;
use template::{Part, Spec, SPECS};

/// Longest product key, device name or message id accepted, in bytes.
pub const MAX_IDENTITY_LEN: usize = 128;
/// Longest custom topic accepted, in bytes.
pub const MAX_CUSTOM_TOPIC_LEN: usize = 1024;

/// The topic conventions librrpc speaks. The numeric values are part of the C ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Dialect {
    /// Alibaba Cloud IoT (and its white labels) system topics:
    /// `/sys/{pk}/{dn}/rrpc/request/{id}` answered on `/sys/{pk}/{dn}/rrpc/response/{id}`.
    AlibabaSystem = 0,
    /// Alibaba custom-topic RRPC: `/ext/rrpc/{id}{topic}`, answered on the same topic.
    AlibabaCustom = 1,
    /// Tencent IoT Hub: `$rrpc/rxd/{productId}/{deviceName}/{processId}` answered on
    /// `$rrpc/txd/{productId}/{deviceName}/{processId}`.
    Tencent = 2,
}

impl Dialect {
    /// Every dialect, in ABI order.
    pub const ALL: [Dialect; 3] = [
        Dialect::AlibabaSystem,
        Dialect::AlibabaCustom,
        Dialect::Tencent,
    ];

    /// The dialect with this ABI value, if any.
    pub fn from_u32(v: u32) -> Option<Dialect> {
        Dialect::ALL.get(v as usize).copied()
    }

    /// Short stable name, as used on command lines: `alibaba`, `alibaba-custom`, `tencent`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Parses a name as printed by [`Dialect::name`].
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// How long a caller of this cloud waits for the reply, in milliseconds: the
    /// upper bound of Alibaba's `Timeout` (8000) and Tencent's fixed 4 s.
    pub fn default_timeout_ms(self) -> u32 {
        self.spec().default_timeout_ms
    }

    /// Whether devices of this dialect need a custom topic.
    pub fn needs_custom_topic(self) -> bool {
        self.spec().request.has(Part::Topic)
    }

    fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// The subscription filter for one device: the request template with `+` as message id.
    pub fn subscribe_filter(self, d: &Identity<'_>) -> String {
        self.spec().request.render(d, "+")
    }

    /// The topic a caller publishes a request for `message_id` on.
    pub fn request_topic(self, d: &Identity<'_>, message_id: &str) -> String {
        self.spec().request.render(d, message_id)
    }

    /// The topic a device publishes its reply to `message_id` on.
    pub fn response_topic(self, d: &Identity<'_>, message_id: &str) -> String {
        self.spec().response.render(d, message_id)
    }

    /// The response topic of one device split around the message id, so that a
    /// reply only concatenates: `(prefix, suffix)` with
    /// `response_topic(d, id) == prefix + id + suffix`.
    pub fn response_parts(self, d: &Identity<'_>) -> (String, String) {
        self.spec().response.split_at_id(d)
    }

    /// The response topic of the device whose `{product key}/{device name}` is
    /// `names`, when the dialect's response topic carries the two as adjacent
    /// levels (system and Tencent topics; `None` for custom topics). The same
    /// topic as [`Dialect::response_topic`], built from fewer pieces, with room
    /// for a C string's terminator.
    pub(crate) fn response_topic_by_names(self, names: &str, message_id: &str) -> Option<String> {
        let [Lit(a), Pk, Lit("/"), Dn, Lit(b), Id, rest @ ..] = self.spec().response.0 else {
            return None;
        };
        let c = match rest {
            [] => "",
            [Lit(c)] => c,
            _ => return None,
        };
        let mut t =
            String::with_capacity(a.len() + names.len() + b.len() + message_id.len() + c.len() + 1);
        t.push_str(a);
        t.push_str(names);
        t.push_str(b);
        t.push_str(message_id);
        t.push_str(c);
        Some(t)
    }

    /// `{product key}/{device name}` of a request topic of a dialect whose
    /// request topics carry the two as adjacent levels right after a fixed lead
    /// (system and Tencent topics), found with two byte searches and nothing
    /// checked: a hint to start looking the device up with, before the topic
    /// is parsed. `None` for anything else.
    pub(crate) fn device_names_hint(topic: &[u8]) -> Option<&[u8]> {
        for d in Dialect::ALL {
            let [Lit(lead), Pk, Lit("/"), Dn, Lit(after), ..] = d.spec().request.0 else {
                continue;
            };
            let Some(rest) = topic.strip_prefix(lead.as_bytes()) else {
                continue;
            };
            let after = after.as_bytes().first()?;
            let pk = rest.iter().position(|&b| b == b'/')?;
            let dn = rest[pk + 1..].iter().position(|b| b == after)?;
            return Some(&rest[..pk + 1 + dn]);
        }
        None
    }

    /// Subscription filter for the requests of every device of this dialect, for a
    /// gateway that answers for many devices on one subscription:
    /// `/sys/+/+/rrpc/request/+`, `$rrpc/rxd/+/+/+`, `/ext/rrpc/#`.
    pub fn request_wildcard(self) -> String {
        if self.needs_custom_topic() {
            return "/ext/rrpc/#".to_string();
        }
        let any = Identity {
            product_key: "+",
            device_name: "+",
            custom_topic: None,
        };
        self.spec().request.render(&any, "+")
    }

    /// Subscription filter a caller uses for the responses of every device of this
    /// dialect (`/sys/+/+/rrpc/response/+`), or of one custom topic.
    pub fn response_wildcard(self, custom_topic: Option<&str>) -> String {
        let any = Identity {
            product_key: "+",
            device_name: "+",
            custom_topic,
        };
        self.spec().response.render(&any, "+")
    }

    /// Parses a response topic of this dialect (the caller's side).
    pub fn parse_response(self, topic: &str) -> Result<ParsedTopic<'_>, TopicError> {
        let t = &self.spec().response;
        let p = match t.matches(topic) {
            Some(m) => m.into_parsed(self),
            None if t.in_namespace(topic) => {
                return Err(TopicError::Malformed(self.spec().shape_error))
            }
            None => return Err(TopicError::NoMatch),
        };
        p.validate()?;
        Ok(p)
    }

    /// The request-topic template, as text with placeholders.
    pub fn request_template(self) -> String {
        self.spec().request.to_string()
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The identity a topic is built for. `custom_topic` is used only by
/// [`Dialect::AlibabaCustom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    pub product_key: &'a str,
    pub device_name: &'a str,
    pub custom_topic: Option<&'a str>,
}

/// A request (or response) topic taken apart. Every field borrows from the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedTopic<'a> {
    pub dialect: Dialect,
    /// Product key or Tencent product id, when the topic carries it.
    pub product_key: Option<&'a str>,
    /// Device name, when the topic carries it.
    pub device_name: Option<&'a str>,
    pub message_id: &'a str,
    /// The custom topic, with its leading `/` (Alibaba custom dialect only).
    pub custom_topic: Option<&'a str>,
    /// The topic up to the message id: with the dialect, it names the device
    /// (`/sys/pk/dn/rrpc/request/`, `$rrpc/rxd/pid/dn/`); empty for custom topics.
    pub device_prefix: &'a str,
}

/// Why a topic is not a well-formed RRPC topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is not in any RRPC dialect's namespace: not ours, not an error.
    #[error("not an RRPC topic")]
    NoMatch,
    /// The topic is in an RRPC namespace but broken; the text says how.
    #[error("malformed RRPC topic: {0}")]
    Malformed(&'static str),
}

/// Parses a received topic as an RRPC request of any dialect.
///
/// ```
/// use rrpc::dialect::{parse_request, Dialect, TopicError};
///
/// let p = parse_request("$rrpc/rxd/xxx/test01/41440").unwrap();
/// assert_eq!((p.dialect, p.message_id), (Dialect::Tencent, "41440"));
/// assert_eq!(parse_request("/sys/pk/dn/thing/event/property/post"), Err(TopicError::NoMatch));
/// assert!(matches!(parse_request("/sys/pk/dn/rrpc/request/"), Err(TopicError::Malformed(_))));
/// ```
///
/// Returns [`TopicError::NoMatch`] for topics outside every RRPC namespace, and
/// [`TopicError::Malformed`] for topics that start like a request but break a rule
/// (missing or extra levels, empty or over-long parts, wildcards).
pub fn parse_request(topic: &str) -> Result<ParsedTopic<'_>, TopicError> {
    let p = parse_request_unchecked(topic)?;
    p.validate()?;
    Ok(p)
}

/// [`parse_request`] without the character checks of the parts: the shape (levels,
/// non-empty parts) is checked, the contents are not. For a router that compares
/// the parts with already validated registrations and checks the rest itself.
pub(crate) fn parse_request_unchecked(topic: &str) -> Result<ParsedTopic<'_>, TopicError> {
    for d in Dialect::ALL {
        let t = &d.spec().request;
        if !topic.starts_with(t.lead()) {
            continue;
        }
        // The leads of the dialects differ, so at most one dialect gets here.
        return match t.matches(topic) {
            Some(m) => Ok(m.into_parsed(d)),
            None if t.in_namespace(topic) => Err(TopicError::Malformed(d.spec().shape_error)),
            None => Err(TopicError::NoMatch),
        };
    }
    Err(TopicError::NoMatch)
}

impl ParsedTopic<'_> {
    /// Checks every part of the topic with the identity rules ([`validate_part`],
    /// [`validate_custom_topic`]).
    pub fn validate(&self) -> Result<(), TopicError> {
        if let Some(pk) = self.product_key {
            validate_part("product key", pk).map_err(topic_error)?;
        }
        if let Some(dn) = self.device_name {
            validate_part("device name", dn).map_err(topic_error)?;
        }
        self.validate_message_id()?;
        if let Some(t) = self.custom_topic {
            validate_custom_topic(t).map_err(topic_error)?;
        }
        Ok(())
    }

    /// Checks the message id alone.
    pub fn validate_message_id(&self) -> Result<(), TopicError> {
        validate_part("message id", self.message_id).map_err(topic_error)
    }
}

fn topic_error(e: IdentityError) -> TopicError {
    TopicError::Malformed(e.reason_for_topic())
}
