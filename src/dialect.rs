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
    /// checked: a guess to start looking the device up with, before the topic
    /// is parsed. `None` for anything else.
    pub(crate) fn names_guess(topic: &[u8]) -> Option<&[u8]> {
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// The topic is not in any RRPC dialect's namespace: not ours, not an error.
    NoMatch,
    /// The topic is in an RRPC namespace but broken; the text says how.
    Malformed(&'static str),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::NoMatch => f.write_str("not an RRPC topic"),
            TopicError::Malformed(why) => write!(f, "malformed RRPC topic: {why}"),
        }
    }
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

/// Why an identity field was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for IdentityError {}

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
    match level.find(CONTENT_TYPE_SEPARATOR) {
        Some(at) if at > 0 => &level[..at],
        _ => level,
    }
}

/// Checks one identity part (product key, device name, message id): non-empty, at
/// most [`MAX_IDENTITY_LEN`] bytes, and free of the MQTT wildcard and separator
/// characters `+ # /`, NUL and other control characters, which would let the value
/// widen a subscription or move a topic into another device's namespace.
pub fn validate_part(field: &'static str, value: &str) -> Result<(), IdentityError> {
    let err = |reason| Err(IdentityError { field, reason });
    if value.is_empty() {
        return err("is empty");
    }
    if value.len() > MAX_IDENTITY_LEN {
        return err("is longer than 128 bytes");
    }
    if value.bytes().any(|b| PART_FORBIDDEN[b as usize]) {
        return err(forbidden_reason(
            value.bytes().find(|&b| PART_FORBIDDEN[b as usize]),
        ));
    }
    Ok(())
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

fn forbidden_reason(b: Option<u8>) -> &'static str {
    match b {
        Some(b'+' | b'#') => "contains an MQTT wildcard ('+' or '#')",
        Some(b'/') => "contains the topic separator '/'",
        Some(0) => "contains a NUL byte",
        _ => "contains a control character",
    }
}

/// Checks a custom RRPC topic: it starts with `/`, has something after it, holds no
/// wildcard, NUL or control character, and is at most [`MAX_CUSTOM_TOPIC_LEN`] bytes.
pub fn validate_custom_topic(topic: &str) -> Result<(), IdentityError> {
    let err = |reason| {
        Err(IdentityError {
            field: "custom topic",
            reason,
        })
    };
    if !topic.starts_with('/') || topic.len() < 2 {
        return err("must start with '/' and name a topic, such as /{pk}/{dn}/user/update");
    }
    if topic.len() > MAX_CUSTOM_TOPIC_LEN {
        return err("is longer than 1024 bytes");
    }
    if topic.bytes().any(|b| TOPIC_FORBIDDEN[b as usize]) {
        return err(forbidden_reason(
            topic.bytes().find(|&b| TOPIC_FORBIDDEN[b as usize]),
        ));
    }
    Ok(())
}

/// Validates a whole identity for `dialect`.
pub fn validate_identity(dialect: Dialect, id: &Identity<'_>) -> Result<(), IdentityError> {
    validate_part("product key", id.product_key)?;
    validate_part("device name", id.device_name)?;
    match (dialect.needs_custom_topic(), id.custom_topic) {
        (true, Some(t)) => validate_custom_topic(t),
        (true, None) => Err(IdentityError {
            field: "custom topic",
            reason: "is required by the alibaba-custom dialect",
        }),
        (false, Some(_)) => Err(IdentityError {
            field: "custom topic",
            reason: "is only used by the alibaba-custom dialect",
        }),
        (false, None) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Templates

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Lit(&'static str),
    /// Product key / product id: one level, or part of one.
    Pk,
    /// Device name.
    Dn,
    /// Message id / process id.
    Id,
    /// Custom topic: the rest of the topic, starting with `/`.
    Topic,
}

struct Template(&'static [Part]);

struct Spec {
    name: &'static str,
    request: Template,
    response: Template,
    default_timeout_ms: u32,
    /// What a topic in this dialect's namespace that fails to match lacks.
    shape_error: &'static str,
}

use Part::*;

static SPECS: [Spec; 3] = [
    Spec {
        name: "alibaba",
        request: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/request/"), Id]),
        response: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/response/"), Id]),
        default_timeout_ms: 8000,
        shape_error: "expected /sys/{pk}/{dn}/rrpc/request/{messageId}",
    },
    Spec {
        name: "alibaba-custom",
        request: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        response: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        default_timeout_ms: 8000,
        shape_error: "expected /ext/rrpc/{messageId}/{topic}",
    },
    Spec {
        name: "tencent",
        request: Template(&[Lit("$rrpc/rxd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        response: Template(&[Lit("$rrpc/txd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        default_timeout_ms: 4000,
        shape_error: "expected $rrpc/rxd/{productId}/{deviceName}/{processId}",
    },
];

/// Placeholder values found by [`Template::matches`].
#[derive(Default)]
struct Match<'a> {
    pk: Option<&'a str>,
    dn: Option<&'a str>,
    id: &'a str,
    topic: Option<&'a str>,
    id_start: usize,
}

impl<'a> Match<'a> {
    fn into_parsed_inner(self, dialect: Dialect) -> ParsedTopic<'a> {
        ParsedTopic {
            dialect,
            product_key: self.pk,
            device_name: self.dn,
            message_id: self.id,
            custom_topic: self.topic,
            device_prefix: "",
        }
    }
}

impl IdentityError {
    fn reason_for_topic(&self) -> &'static str {
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

impl Template {
    fn lead(&self) -> &'static str {
        match self.0.first() {
            Some(Lit(s)) => s,
            _ => "",
        }
    }

    /// Whether `topic` claims to be of this template: it starts with the first
    /// literal and holds every further literal longer than a separator, in order.
    /// `/sys/pk/dn/thing/event` is not an RRPC topic at all; `/sys/pk/rrpc/request/1`
    /// is one with a level missing.
    fn in_namespace(&self, topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix(self.lead()) else {
            return false;
        };
        let mut rest = rest;
        for p in &self.0[1..] {
            if let Lit(s) = p {
                if s.len() > 1 {
                    match rest.find(s) {
                        Some(at) => rest = &rest[at + s.len()..],
                        None => return false,
                    }
                }
            }
        }
        true
    }

    fn has(&self, p: Part) -> bool {
        self.0.contains(&p)
    }

    fn split_at_id(&self, d: &Identity<'_>) -> (String, String) {
        let at = self
            .0
            .iter()
            .position(|p| *p == Id)
            .expect("every template has an id");
        let before = Template(&self.0[..at]).render(d, "");
        let after = Template(&self.0[at + 1..]).render(d, "");
        (before, after)
    }

    fn render(&self, d: &Identity<'_>, id: &str) -> String {
        let value = |p: &Part| -> &str {
            match *p {
                Lit(s) => s,
                Pk => d.product_key,
                Dn => d.device_name,
                Id => id,
                Topic => d.custom_topic.unwrap_or(""),
            }
        };
        // One pass, with room for the literals (shorter than 32 bytes in every
        // template) and for a C string's terminator, so that a transport that
        // appends one does not reallocate.
        let vars = d.product_key.len() + d.device_name.len() + id.len();
        let mut s = String::with_capacity(32 + vars + d.custom_topic.map_or(0, str::len));
        for p in self.0 {
            s.push_str(value(p));
        }
        s
    }

    /// Matches `topic` against the template. A placeholder other than `Topic`
    /// takes a non-empty run of characters inside one level: up to the end of the
    /// level when the next literal starts a new level (or nothing follows), else up
    /// to where the next literal begins inside the level. `Topic` takes the rest.
    fn matches<'a>(&self, topic: &'a str) -> Option<MatchWithPrefix<'a>> {
        let mut m = Match::default();
        let mut pos = 0usize;
        let parts = self.0;
        for (i, part) in parts.iter().enumerate() {
            let rest = &topic[pos..];
            match *part {
                Lit(s) => {
                    if !rest.starts_with(s) {
                        return None;
                    }
                    pos += s.len();
                }
                Topic => {
                    m.topic = Some(rest);
                    pos = topic.len();
                }
                p => {
                    let level_end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
                    let end = match parts.get(i + 1) {
                        Some(Lit(next)) if next.starts_with('/') => level_end,
                        Some(Lit(next)) => rest[..level_end].find(next)?,
                        Some(Topic) => level_end,
                        Some(_) => return None, // two placeholders in a row are ambiguous
                        None if level_end == rest.len() => level_end,
                        None => return None, // extra levels
                    };
                    if end == 0 {
                        return None;
                    }
                    let v = &rest[..end];
                    match p {
                        Pk => m.pk = Some(v),
                        Dn => m.dn = Some(v),
                        Id => {
                            m.id = v;
                            m.id_start = pos;
                        }
                        _ => unreachable!(),
                    }
                    pos += end;
                }
            }
        }
        if pos != topic.len() {
            return None;
        }
        let prefix = &topic[..m.id_start];
        Some(MatchWithPrefix { m, prefix })
    }
}

struct MatchWithPrefix<'a> {
    m: Match<'a>,
    prefix: &'a str,
}

impl<'a> MatchWithPrefix<'a> {
    fn into_parsed(self, dialect: Dialect) -> ParsedTopic<'a> {
        let prefix = self.prefix;
        let mut p = self.m.into_parsed_inner(dialect);
        if p.custom_topic.is_none() {
            p.device_prefix = prefix;
        }
        p
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            match p {
                Lit(s) => f.write_str(s)?,
                Pk => f.write_str("{pk}")?,
                Dn => f.write_str("{dn}")?,
                Id => f.write_str("{id}")?,
                Topic => f.write_str("{topic}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(pk: &'a str, dn: &'a str) -> Identity<'a> {
        Identity {
            product_key: pk,
            device_name: dn,
            custom_topic: None,
        }
    }

    // Alibaba "System-defined topics" (seeds/003): subscription, request, response.
    #[test]
    fn content_type_rides_in_the_message_id_level() {
        assert_eq!(
            message_id_level("889455942124347392", None),
            "889455942124347392"
        );
        assert_eq!(
            message_id_level("889455942124347392", Some(65)),
            "889455942124347392;ct=65"
        );
        for ct in [0u8, 11, 65, 66, 131, 240, 255] {
            let level = message_id_level("42", Some(ct));
            assert_eq!(split_content_type(&level), ("42", Some(ct)));
        }
        // Not a ContentType suffix: the whole level is the id.
        for level in [
            "42",
            "42;ct=",
            "42;ct=256",
            "42;ct=065",
            "42;ct=+5",
            "42;ct=6a",
            ";ct=5",
            "42;CT=5",
        ] {
            assert_eq!(split_content_type(level), (level, None), "{level}");
        }
        assert_eq!(split_content_type("a;ct=1;ct=2"), ("a;ct=1", Some(2)));
    }

    /// An identity that every dialect can render (custom topic included).
    const ANY_DIALECT: Identity<'static> = Identity {
        product_key: "a1B2c3",
        device_name: "dev-1",
        custom_topic: Some("/a1B2c3/dev-1/user/update"),
    };

    #[test]
    fn names_guess_takes_the_two_levels_after_the_lead() {
        let id = ANY_DIALECT;
        for d in Dialect::ALL {
            let topic = d.spec().request.render(&id, "42");
            let want: Option<&[u8]> = (!d.needs_custom_topic()).then_some(b"a1B2c3/dev-1");
            assert_eq!(Dialect::names_guess(topic.as_bytes()), want, "{topic}");
        }
        for topic in [
            "",
            "/sys/",
            "/sys/a1B2c3",
            "/sys/a1B2c3/dev-1",
            "$rrpc/rxd/p/",
        ] {
            assert_eq!(Dialect::names_guess(topic.as_bytes()), None, "{topic}");
        }
        // A guess, not a check: the parse decides.
        assert_eq!(Dialect::names_guess(b"/sys//x/anything"), Some(&b"/x"[..]));
    }

    #[test]
    fn response_topics_by_names_equal_rendered_ones() {
        let id = ANY_DIALECT;
        for d in Dialect::ALL {
            let by_names = d.response_topic_by_names("a1B2c3/dev-1", "42");
            if d.needs_custom_topic() {
                assert_eq!(by_names, None);
            } else {
                assert_eq!(by_names, Some(d.response_topic(&id, "42")), "{d:?}");
            }
        }
    }

    #[test]
    fn template_literals_fit_the_render_reserve() {
        for d in Dialect::ALL {
            for t in [&d.spec().request, &d.spec().response] {
                let lits: usize =
                    t.0.iter()
                        .map(|p| match p {
                            Lit(s) => s.len(),
                            _ => 0,
                        })
                        .sum();
                assert!(lits < 32, "{d:?}: {lits} literal bytes");
            }
        }
    }

    #[test]
    fn alibaba_system_topics_match_the_document() {
        let d = id("a1GFjLP3xxC", "device1");
        assert_eq!(
            Dialect::AlibabaSystem.subscribe_filter(&d),
            "/sys/a1GFjLP3xxC/device1/rrpc/request/+"
        );
        assert_eq!(
            Dialect::AlibabaSystem.request_topic(&d, "889455942124347392"),
            "/sys/a1GFjLP3xxC/device1/rrpc/request/889455942124347392"
        );
        assert_eq!(
            Dialect::AlibabaSystem.response_topic(&d, "889455942124347392"),
            "/sys/a1GFjLP3xxC/device1/rrpc/response/889455942124347392"
        );
        let p = parse_request("/sys/a1GFjLP3xxC/device1/rrpc/request/889455942124347392").unwrap();
        assert_eq!(p.dialect, Dialect::AlibabaSystem);
        assert_eq!(p.product_key, Some("a1GFjLP3xxC"));
        assert_eq!(p.device_name, Some("device1"));
        assert_eq!(p.message_id, "889455942124347392");
        assert_eq!(p.custom_topic, None);
        assert_eq!(p.device_prefix, "/sys/a1GFjLP3xxC/device1/rrpc/request/");
    }

    // Tencent transcript (seeds/004): subscribe $rrpc/rxd/xxx/test01/+, request on
    // $rrpc/rxd/xxx/test01/41440, reply "ok" on $rrpc/txd/xxx/test01/41440.
    #[test]
    fn tencent_topics_match_the_transcript() {
        let d = id("xxx", "test01");
        assert_eq!(
            Dialect::Tencent.subscribe_filter(&d),
            "$rrpc/rxd/xxx/test01/+"
        );
        let p = parse_request("$rrpc/rxd/xxx/test01/41440").unwrap();
        assert_eq!(p.dialect, Dialect::Tencent);
        assert_eq!(
            (p.product_key, p.device_name),
            (Some("xxx"), Some("test01"))
        );
        assert_eq!(p.message_id, "41440");
        assert_eq!(
            Dialect::Tencent.response_topic(&d, p.message_id),
            "$rrpc/txd/xxx/test01/41440"
        );
        assert_eq!(Dialect::Tencent.default_timeout_ms(), 4000);
    }

    // Alibaba custom topics: subscribe /ext/rrpc/+/{topic}, request
    // /ext/rrpc/{messageId}/{topic}, answered on the same topic.
    #[test]
    fn alibaba_custom_topics() {
        let d = Identity {
            product_key: "a1GFjLP3xxC",
            device_name: "device1",
            custom_topic: Some("/a1GFjLP3xxC/device1/user/update"),
        };
        assert_eq!(
            Dialect::AlibabaCustom.subscribe_filter(&d),
            "/ext/rrpc/+/a1GFjLP3xxC/device1/user/update"
        );
        let t = "/ext/rrpc/1234567890/a1GFjLP3xxC/device1/user/update";
        assert_eq!(Dialect::AlibabaCustom.request_topic(&d, "1234567890"), t);
        assert_eq!(Dialect::AlibabaCustom.response_topic(&d, "1234567890"), t);
        let p = parse_request(t).unwrap();
        assert_eq!(p.dialect, Dialect::AlibabaCustom);
        assert_eq!(p.message_id, "1234567890");
        assert_eq!(p.custom_topic, Some("/a1GFjLP3xxC/device1/user/update"));
        assert_eq!((p.product_key, p.device_name), (None, None));
    }

    #[test]
    fn caller_side_wildcards_and_response_parsing() {
        assert_eq!(
            Dialect::AlibabaSystem.response_wildcard(None),
            "/sys/+/+/rrpc/response/+"
        );
        assert_eq!(Dialect::Tencent.response_wildcard(None), "$rrpc/txd/+/+/+");
        let p = Dialect::Tencent
            .parse_response("$rrpc/txd/xxx/test01/41440")
            .unwrap();
        assert_eq!(p.message_id, "41440");
        assert_eq!(
            Dialect::AlibabaSystem.parse_response("/sys/a/b/rrpc/request/1"),
            Err(TopicError::NoMatch)
        );
    }

    #[test]
    fn topics_outside_rrpc_are_no_match_not_malformed() {
        for t in [
            "/sys/pk/dn/thing/event/property/post",
            "/a1/dev/user/update",
            "$SYS/broker/uptime",
            "$rrpc/txd/xxx/test01/41440", // a response is not a request
            "",
            "sys/pk/dn/rrpc/request/1",
        ] {
            assert_eq!(parse_request(t), Err(TopicError::NoMatch), "{t:?}");
        }
    }

    #[test]
    fn broken_rrpc_topics_are_malformed() {
        for t in [
            "/sys/pk/dn/rrpc/request/",        // empty id
            "/sys/pk/dn/rrpc/request/1/2",     // extra level
            "/sys/pk/rrpc/request/1",          // missing device name
            "/sys//dn/rrpc/request/1",         // empty product key
            "/sys/pk/dn/extra/rrpc/request/1", // extra level in the middle
            "$rrpc/rxd/xxx/test01/",           // empty process id
            "$rrpc/rxd/xxx/test01/1/2",        // extra level
            "$rrpc/rxd/xxx/1",                 // missing level
            "/ext/rrpc/123",                   // no custom topic
            "/ext/rrpc//a/b",                  // empty id
            "/ext/rrpc/123/",                  // custom topic is only "/"
        ] {
            assert!(
                matches!(parse_request(t), Err(TopicError::Malformed(_))),
                "{t:?} gave {:?}",
                parse_request(t)
            );
        }
        let long_id = format!("/sys/pk/dn/rrpc/request/{}", "9".repeat(129));
        assert!(matches!(
            parse_request(&long_id),
            Err(TopicError::Malformed(_))
        ));
    }

    #[test]
    fn identity_rules() {
        assert!(validate_part("device name", "dev-1_a.b:c@d").is_ok());
        for bad in ["", "a+b", "a#", "a/b", "a\0b", "a\nb", "\u{7f}"] {
            assert!(validate_part("device name", bad).is_err(), "{bad:?}");
        }
        assert!(validate_part("product key", &"k".repeat(128)).is_ok());
        assert!(validate_part("product key", &"k".repeat(129)).is_err());
        let e = validate_part("device name", "a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "device name contains the topic separator '/'"
        );

        assert!(validate_custom_topic("/pk/dn/user/update").is_ok());
        for bad in ["pk/dn/user", "/", "/a/+/b", "/a/#", "/a\0"] {
            assert!(validate_custom_topic(bad).is_err(), "{bad:?}");
        }
        let no_topic = id("pk", "dn");
        assert!(validate_identity(Dialect::AlibabaCustom, &no_topic).is_err());
        let with_topic = Identity {
            custom_topic: Some("/x"),
            ..no_topic
        };
        assert!(validate_identity(Dialect::AlibabaSystem, &with_topic).is_err());
        assert!(validate_identity(Dialect::AlibabaCustom, &with_topic).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::from_name(d.name()), Some(d));
            assert_eq!(Dialect::from_u32(d as u32), Some(d));
        }
        assert_eq!(Dialect::from_name("aws"), None);
        assert_eq!(Dialect::from_u32(3), None);
        assert_eq!(
            Dialect::AlibabaSystem.request_template(),
            "/sys/{pk}/{dn}/rrpc/request/{id}"
        );
    }
}
