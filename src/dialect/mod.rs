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
//! | `TencentAction`  | `$thing/down/action/{pk}/{dn}`     | `$thing/down/action/{pk}/{dn}`            | `$thing/up/action/{pk}/{dn}`               |
//! | `ThingsBoardGateway` | `v1/gateway/rpc`               | `v1/gateway/rpc`                          | `v1/gateway/rpc`                           |
//! | `Mqtt5`          | `{topic}` (a filter)               | `{topic}` + Response Topic property       | the Response Topic + Correlation Data      |
//!
//! `Mqtt5` carries the reply topic and the id in MQTT 5 properties: the router
//! needs them ([`crate::router::Router::handle_received_v5`]); the topic
//! parser never takes one of its requests.
//!
//! `TencentAction` and `ThingsBoardGateway` carry the id and the name (and the gateway the sub-device) in
//! a JSON envelope around the body ([`envelope`]), not in the topic.
//!
//! `{topic}` is the custom topic including its leading `/`, for example
//! `/a1b2c3/device1/user/update`, so that `/ext/rrpc/+` + topic is the filter the
//! vendor SDKs subscribe.
//!
//! Nothing here allocates while parsing: the parts of a [`ParsedTopic`] borrow
//! from the topic they were parsed from.

use std::fmt;

mod content_type;
pub mod envelope;
mod identity;
mod spec;
mod template;
#[cfg(test)]
mod tests;

pub use content_type::{
    bare_message_id, message_id_level, split_content_type, CONTENT_TYPE_SEPARATOR,
};
pub use envelope::Envelope;
pub use identity::{
    validate_custom_topic, validate_identity, validate_part, validate_request_filter,
    validate_response_topic, IdentityError,
};
pub use spec::{
    register, DialectConfig, DialectError, MAX_TIMEOUT_MS, MAX_USER_DIALECTS, USER_DIALECT_FIRST,
};
use spec::{Spec, BUILTIN, PARSE_LAST};
use template::Part;
use template::Part::*;
pub use template::Vars;

/// Longest product key, device name or message id accepted, in bytes.
pub const MAX_IDENTITY_LEN: usize = 128;
/// Longest custom topic accepted, in bytes.
pub const MAX_CUSTOM_TOPIC_LEN: usize = 1024;

/// A topic convention librrpc speaks: one of the built-in dialects (the
/// associated constants) or one the application registered ([`register`]).
/// The numeric value ([`Dialect::to_u32`]) is part of the C ABI: built-in
/// dialects keep theirs forever; registered ones count from
/// [`USER_DIALECT_FIRST`] in registration order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Dialect(u32);

#[allow(non_upper_case_globals)]
impl Dialect {
    /// Alibaba Cloud IoT (and its white labels) system topics:
    /// `/sys/{pk}/{dn}/rrpc/request/{id}` answered on `/sys/{pk}/{dn}/rrpc/response/{id}`.
    pub const AlibabaSystem: Dialect = Dialect(0);
    /// Alibaba custom-topic RRPC: `/ext/rrpc/{id}{topic}`, answered on the same topic.
    pub const AlibabaCustom: Dialect = Dialect(1);
    /// Tencent IoT Hub: `$rrpc/rxd/{productId}/{deviceName}/{processId}` answered on
    /// `$rrpc/txd/{productId}/{deviceName}/{processId}`.
    pub const Tencent: Dialect = Dialect(2);
    /// Alibaba data-model service calls made synchronous over RRPC:
    /// `/ext/rrpc/{id}/sys/{pk}/{dn}/thing/service/{name}`, answered on the
    /// same topic; the service identifier is the request's name.
    pub const AlibabaService: Dialect = Dialect(3);
    /// ThingsBoard device RPC: `v1/devices/me/rpc/request/{id}` answered on
    /// `v1/devices/me/rpc/response/{id}`. One device per connection.
    pub const ThingsBoard: Dialect = Dialect(4);
    /// Azure IoT Hub direct methods: `$iothub/methods/POST/{name}/?$rid={id}`
    /// answered on `$iothub/methods/res/{status}/?$rid={id}`. One device per
    /// connection.
    pub const Azure: Dialect = Dialect(5);
    /// Huawei IoTDA commands: `$oc/devices/{dn}/sys/commands/request_id={id}`
    /// answered on `$oc/devices/{dn}/sys/commands/response/request_id={id}`.
    pub const Huawei: Dialect = Dialect(6);
    /// AWS IoT commands:
    /// `$aws/commands/things/{dn}/executions/{id}/request/{format}` answered on
    /// `$aws/commands/things/{dn}/executions/{id}/response/json`.
    pub const Aws: Dialect = Dialect(7);
    /// Tencent IoT Explorer actions: requests on `$thing/down/action/{pk}/{dn}`
    /// in the envelope `{"method":"action","clientToken":..,"actionId":..,
    /// "params":..}`, answered on `$thing/up/action/{pk}/{dn}` with
    /// `{"method":"action_reply","clientToken":..,"code":..,"status":"",
    /// "response":..}`.
    pub const TencentAction: Dialect = Dialect(8);
    /// ThingsBoard gateway RPC: requests on `v1/gateway/rpc` in the envelope
    /// `{"device":..,"data":{"id":..,"method":..,"params":..}}`, answered on the
    /// same topic with `{"device":..,"id":..,"data":..}`. One connection serves
    /// many sub-devices, found by the envelope's `device` (the device name).
    pub const ThingsBoardGateway: Dialect = Dialect(9);
    /// MQTT 5 request/response (OASIS MQTT 5.0, 4.10): a request is a PUBLISH
    /// carrying the Response Topic property, on any topic the device's filter
    /// (its custom topic: an exact topic or a filter with `+`/`#`) matches; the
    /// reply goes to that Response Topic with the request's Correlation Data
    /// copied. Nothing of the request or reply is in the topic's text: the
    /// router needs the properties
    /// ([`Router::handle_received_v5`](crate::router::Router::handle_received_v5)).
    /// MQTT 5 sessions only.
    pub const Mqtt5: Dialect = Dialect(10);

    /// The built-in dialects, in ABI order.
    pub const BUILTIN: [Dialect; 11] = [
        Dialect::AlibabaSystem,
        Dialect::AlibabaCustom,
        Dialect::Tencent,
        Dialect::AlibabaService,
        Dialect::ThingsBoard,
        Dialect::Azure,
        Dialect::Huawei,
        Dialect::Aws,
        Dialect::TencentAction,
        Dialect::ThingsBoardGateway,
        Dialect::Mqtt5,
    ];

    /// Every dialect: the built-in ones, then those registered, in ABI order.
    pub fn all() -> impl Iterator<Item = Dialect> {
        Dialect::BUILTIN.into_iter().chain(spec::user_dialects())
    }

    /// The dialect with this ABI value, if any.
    pub fn from_u32(v: u32) -> Option<Dialect> {
        if (v as usize) < BUILTIN.len() || spec::is_registered(v) {
            Some(Dialect(v))
        } else {
            None
        }
    }

    /// The ABI value.
    pub const fn to_u32(self) -> u32 {
        self.0
    }

    /// Whether this is a built-in dialect.
    pub fn is_builtin(self) -> bool {
        (self.0 as usize) < BUILTIN.len()
    }

    /// Short stable name, as used on command lines: `alibaba`, `alibaba-custom`,
    /// `tencent`, `alibaba-service`, `thingsboard`, `azure`, `huawei`, `aws`,
    /// `tencent-action`, `thingsboard-gateway`, `mqtt5`, or the registered name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Parses a name as printed by [`Dialect::name`].
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::all().find(|d| d.name() == name)
    }

    /// How long a caller of this cloud waits for the reply, in milliseconds:
    /// for example the upper bound of Alibaba's `Timeout` (8000) and Tencent's
    /// fixed 4 s.
    pub fn default_timeout_ms(self) -> u32 {
        self.spec().default_timeout_ms
    }

    /// Whether devices of this dialect need a custom topic.
    pub fn needs_custom_topic(self) -> bool {
        self.spec().request.has(Part::Topic)
    }

    /// Whether requests and replies of this dialect travel in MQTT 5
    /// properties ([`Dialect::Mqtt5`]): the device's custom topic is then a
    /// subscription filter, the reply topic the request's Response Topic.
    #[inline]
    pub fn uses_mqtt5_properties(self) -> bool {
        self == Dialect::Mqtt5
    }

    /// Whether replies go out on the request's own topic (custom-topic RRPC,
    /// Alibaba service calls): a device subscribed to its requests then
    /// receives its own replies, which it must not take for requests.
    pub fn replies_on_request_topic(self) -> bool {
        let s = self.spec();
        s.request.0 == s.response.0
    }

    /// Whether the dialect's requests name no device (ThingsBoard, Azure): one
    /// connection is one device, so a client or router serves at most one
    /// device of this dialect.
    pub fn per_connection(self) -> bool {
        let r = &self.spec().request;
        !(r.has(Part::Pk)
            || r.has(Part::Dn)
            || r.has(Part::Topic)
            || self.envelope().names_device())
    }

    /// Where the dialect's id and name travel when the topic does not carry
    /// them ([`Envelope::None`]: in the topic).
    pub fn envelope(self) -> Envelope {
        self.spec().envelope
    }

    /// Whether the dialect's topics use the product key.
    pub fn uses_product_key(self) -> bool {
        self.spec().request.has(Part::Pk)
    }

    /// Whether the dialect's requests name the device by its device name: in
    /// the topic, or in the envelope (ThingsBoard gateway).
    pub fn uses_device_name(self) -> bool {
        self.spec().request.has(Part::Dn) || self.envelope().names_device()
    }

    /// Whether requests carry a method, service or command name (in the topic
    /// or the envelope).
    pub fn has_name(self) -> bool {
        self.spec().request.has(Part::Name) || self.envelope() != Envelope::None
    }

    /// Whether the reply topic repeats the request's name.
    pub(crate) fn reply_repeats_name(self) -> bool {
        self.spec().response.has(Part::Name)
    }

    /// Whether the reply topic repeats the request's payload format.
    pub(crate) fn reply_repeats_format(self) -> bool {
        self.spec().response.has(Part::Format)
    }

    /// Whether replies carry a status code ([`Vars::status`]).
    pub fn has_status(self) -> bool {
        self.spec().response.has(Part::Status)
    }

    #[inline]
    pub(crate) fn spec(self) -> &'static Spec {
        match BUILTIN.get(self.0 as usize) {
            Some(s) => s,
            None => spec::user_spec(self),
        }
    }

    /// The subscription filter for one device.
    pub fn subscribe_filter(self, d: &Identity<'_>) -> String {
        let s = self.spec();
        match &s.subscribe {
            Some(f) => f.render(d, &Vars::default()),
            None => s.request.wildcard(d),
        }
    }

    /// The topic a caller publishes a request for `message_id` on (a dialect
    /// with a name or a format takes them from [`Dialect::request_topic_with`]).
    pub fn request_topic(self, d: &Identity<'_>, message_id: &str) -> String {
        self.spec().request.render(d, &Vars::id(message_id))
    }

    /// The topic a caller publishes a request on, with every placeholder's value.
    pub fn request_topic_with(self, d: &Identity<'_>, vars: &Vars<'_>) -> String {
        self.spec().request.render(d, vars)
    }

    /// The topic a device publishes its reply to `message_id` on.
    pub fn response_topic(self, d: &Identity<'_>, message_id: &str) -> String {
        self.spec().response.render(d, &Vars::id(message_id))
    }

    /// The topic a device publishes its reply on, with every placeholder's value.
    pub fn response_topic_with(self, d: &Identity<'_>, vars: &Vars<'_>) -> String {
        self.spec().response.render(d, vars)
    }

    /// The response topic of one device split around the message id, so that a
    /// reply only concatenates: `(prefix, suffix)` with
    /// `response_topic(d, id) == prefix + id + suffix` (for dialects whose reply
    /// carries no other request-dependent part).
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
        for s in [&BUILTIN[0], &BUILTIN[2]] {
            let [Lit(lead), Pk, Lit("/"), Dn, Lit(after), ..] = s.request.0 else {
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
    /// ([`Dialect::Mqtt5`] has no such filter: its devices' filters are
    /// arbitrary, so `#`, everything, is the only one that holds them all.)
    pub fn request_wildcard(self) -> String {
        if self.needs_custom_topic() {
            return format!("{}#", self.spec().request.lead());
        }
        self.subscribe_filter(&Identity::ANY)
    }

    /// Subscription filter a caller uses for the responses of every device of this
    /// dialect (`/sys/+/+/rrpc/response/+`), or of one custom topic.
    pub fn response_wildcard(self, custom_topic: Option<&str>) -> String {
        let any = Identity {
            custom_topic,
            ..Identity::ANY
        };
        self.spec().response.wildcard(&any)
    }

    /// Parses a response topic of this dialect (the caller's side).
    /// [`Dialect::Mqtt5`] has none: its replies are told by their Correlation
    /// Data, not their topic ([`TopicError::NoMatch`]).
    pub fn parse_response(self, topic: &str) -> Result<ParsedTopic<'_>, TopicError> {
        if self.uses_mqtt5_properties() {
            return Err(TopicError::NoMatch);
        }
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

    /// The reply-topic template, as text with placeholders.
    pub fn response_template(self) -> String {
        self.spec().response.to_string()
    }

    /// The subscribe-filter template, as text with placeholders.
    pub fn subscribe_template(self) -> String {
        let s = self.spec();
        match &s.subscribe {
            Some(f) => f.to_string(),
            None => {
                let any = Identity {
                    product_key: "{pk}",
                    device_name: "{dn}",
                    custom_topic: None,
                };
                s.request.wildcard(&any)
            }
        }
    }
}

impl fmt::Debug for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dialect({})", self.name())
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

impl Identity<'_> {
    /// `+` for both names: renders the filters of every device.
    pub const ANY: Identity<'static> = Identity {
        product_key: "+",
        device_name: "+",
        custom_topic: None,
    };
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
    /// The method, service or command name, when the dialect carries one.
    pub name: Option<&'a str>,
    /// The payload format, when the dialect carries one (AWS IoT commands).
    pub format: Option<&'a str>,
    /// The reply's status, when the dialect carries one (reply topics only).
    pub status: Option<&'a str>,
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
    // The common clouds' requests parse at the first try, with nothing looked
    // up: their specs are statics, tried before any registered dialect is read.
    let mut malformed = None;
    for &(d, s) in &spec::PARSE_FIRST {
        match try_parse(d, s, topic, &mut malformed) {
            Some(p) => return Ok(p),
            None => continue,
        }
    }
    for d in spec::user_dialects().chain(PARSE_LAST) {
        if let Some(p) = try_parse(d, d.spec(), topic, &mut malformed) {
            return Ok(p);
        }
    }
    Err(malformed.map_or(TopicError::NoMatch, TopicError::Malformed))
}

/// `topic` as a request of dialect `d` (spec `s`), if it is one; when it only
/// claims to be one, the first such dialect's shape error goes to `malformed`.
#[inline(always)]
fn try_parse<'a>(
    d: Dialect,
    s: &'static Spec,
    topic: &'a str,
    malformed: &mut Option<&'static str>,
) -> Option<ParsedTopic<'a>> {
    let t = &s.request;
    if !topic.starts_with(t.lead()) {
        return None;
    }
    match t.matches(topic) {
        Some(m) => Some(m.into_parsed(d)),
        None => {
            if malformed.is_none() && t.in_namespace(topic) {
                *malformed = Some(s.shape_error);
            }
            None
        }
    }
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
        // An envelope dialect's id travels in the body, not the topic.
        if self.dialect.envelope() == Envelope::None || !self.message_id.is_empty() {
            self.validate_message_id()?;
        }
        if let Some(n) = self.name {
            validate_part("name", n).map_err(topic_error)?;
        }
        if let Some(f) = self.format {
            validate_part("format", f).map_err(topic_error)?;
        }
        if let Some(s) = self.status {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TopicError::Malformed("the status is not a number"));
            }
        }
        if let Some(t) = self.custom_topic {
            validate_custom_topic(t).map_err(topic_error)?;
        }
        Ok(())
    }

    /// Checks the product key and device name alone, where the topic has them.
    pub fn validate_names(&self) -> Result<(), TopicError> {
        if let Some(pk) = self.product_key {
            validate_part("product key", pk).map_err(topic_error)?;
        }
        if let Some(dn) = self.device_name {
            validate_part("device name", dn).map_err(topic_error)?;
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
