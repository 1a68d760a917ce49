//! The dialects as data: one [`Spec`] per dialect (its subscribe filter,
//! request and reply templates, default deadline), the built-in table, and the
//! process-wide registry of dialects defined by the application, validated at
//! registration.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use super::envelope::Envelope;
use super::template::{match_parts, placeholder_text, Part, Template, Vars};
use super::{Dialect, Identity};
use Part::*;

/// One dialect: how its requests and replies are spelled.
pub(crate) struct Spec {
    pub(super) name: &'static str,
    /// The filter a device subscribes, with `{pk}` and `{dn}` (and `{topic}`);
    /// `None`: the request template with `+` for each level holding another
    /// placeholder.
    pub(super) subscribe: Option<Template>,
    pub(super) request: Template,
    pub(super) response: Template,
    pub(super) default_timeout_ms: u32,
    /// What a topic in this dialect's namespace that fails to match lacks.
    pub(super) shape_error: &'static str,
    /// Where the id, the name and (for a gateway) the device travel when the
    /// topic does not carry them: the request and reply bodies. Templates of
    /// such a dialect need no `{id}`.
    pub(super) envelope: Envelope,
}

/// The built-in dialects, by ABI value. Each row's text form is checked against
/// the document or vendor SDK it comes from in `tests.rs`.
pub(super) static BUILTIN: [Spec; 11] = [
    Spec {
        name: "alibaba",
        subscribe: None,
        request: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/request/"), Id]),
        response: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/response/"), Id]),
        default_timeout_ms: 8000,
        envelope: Envelope::None,
        shape_error: "expected /sys/{pk}/{dn}/rrpc/request/{messageId}",
    },
    Spec {
        name: "alibaba-custom",
        subscribe: Some(Template(&[Lit("/ext/rrpc/+"), Topic])),
        request: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        response: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        default_timeout_ms: 8000,
        envelope: Envelope::None,
        shape_error: "expected /ext/rrpc/{messageId}/{topic}",
    },
    Spec {
        name: "tencent",
        subscribe: None,
        request: Template(&[Lit("$rrpc/rxd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        response: Template(&[Lit("$rrpc/txd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        default_timeout_ms: 4000,
        envelope: Envelope::None,
        shape_error: "expected $rrpc/rxd/{productId}/{deviceName}/{processId}",
    },
    Spec {
        name: "alibaba-service",
        subscribe: None,
        request: Template(&[
            Lit("/ext/rrpc/"),
            Id,
            Lit("/sys/"),
            Pk,
            Lit("/"),
            Dn,
            Lit("/thing/service/"),
            Name,
        ]),
        response: Template(&[
            Lit("/ext/rrpc/"),
            Id,
            Lit("/sys/"),
            Pk,
            Lit("/"),
            Dn,
            Lit("/thing/service/"),
            Name,
        ]),
        default_timeout_ms: 8000,
        envelope: Envelope::None,
        shape_error: "expected /ext/rrpc/{messageId}/sys/{pk}/{dn}/thing/service/{identifier}",
    },
    Spec {
        name: "thingsboard",
        subscribe: None,
        request: Template(&[Lit("v1/devices/me/rpc/request/"), Id]),
        response: Template(&[Lit("v1/devices/me/rpc/response/"), Id]),
        default_timeout_ms: 10_000,
        envelope: Envelope::None,
        shape_error: "expected v1/devices/me/rpc/request/{requestId}",
    },
    Spec {
        name: "azure",
        subscribe: Some(Template(&[Lit("$iothub/methods/POST/#")])),
        request: Template(&[Lit("$iothub/methods/POST/"), Name, Lit("/?$rid="), Id]),
        response: Template(&[Lit("$iothub/methods/res/"), Status, Lit("/?$rid="), Id]),
        default_timeout_ms: 30_000,
        envelope: Envelope::None,
        shape_error: "expected $iothub/methods/POST/{methodName}/?$rid={requestId}",
    },
    Spec {
        name: "huawei",
        subscribe: Some(Template(&[Lit("$oc/devices/"), Dn, Lit("/sys/commands/#")])),
        request: Template(&[
            Lit("$oc/devices/"),
            Dn,
            Lit("/sys/commands/request_id="),
            Id,
        ]),
        response: Template(&[
            Lit("$oc/devices/"),
            Dn,
            Lit("/sys/commands/response/request_id="),
            Id,
        ]),
        default_timeout_ms: 20_000,
        envelope: Envelope::None,
        shape_error: "expected $oc/devices/{deviceId}/sys/commands/request_id={requestId}",
    },
    Spec {
        name: "aws",
        subscribe: Some(Template(&[
            Lit("$aws/commands/things/"),
            Dn,
            Lit("/executions/+/request/#"),
        ])),
        request: Template(&[
            Lit("$aws/commands/things/"),
            Dn,
            Lit("/executions/"),
            Id,
            Lit("/request/"),
            Format,
        ]),
        // The device SDK answers in JSON whatever the request's format
        // (aws-iot-device-sdk-cpp-v2, IotCommandsClientV2.cpp).
        response: Template(&[
            Lit("$aws/commands/things/"),
            Dn,
            Lit("/executions/"),
            Id,
            Lit("/response/json"),
        ]),
        default_timeout_ms: 10_000,
        envelope: Envelope::None,
        shape_error:
            "expected $aws/commands/things/{thingName}/executions/{executionId}/request/{format}",
    },
    Spec {
        name: "tencent-action",
        subscribe: None,
        request: Template(&[Lit("$thing/down/action/"), Pk, Lit("/"), Dn]),
        response: Template(&[Lit("$thing/up/action/"), Pk, Lit("/"), Dn]),
        default_timeout_ms: 5000,
        envelope: Envelope::TencentAction,
        shape_error: "expected $thing/down/action/{productId}/{deviceName}",
    },
    Spec {
        name: "thingsboard-gateway",
        subscribe: None,
        request: Template(&[Lit("v1/gateway/rpc")]),
        response: Template(&[Lit("v1/gateway/rpc")]),
        default_timeout_ms: 10_000,
        envelope: Envelope::ThingsBoardGateway,
        shape_error: "expected v1/gateway/rpc",
    },
    // MQTT 5 request/response: the device's custom topic is its request
    // filter; a request is told by its Response Topic property, not by its
    // topic, so this dialect is never tried by the topic parser (it is in
    // neither PARSE_FIRST nor PARSE_LAST), and its reply goes to the
    // request's Response Topic, not to a rendered template.
    Spec {
        name: "mqtt5",
        subscribe: Some(Template(&[Topic])),
        request: Template(&[Topic]),
        response: Template(&[Topic]),
        default_timeout_ms: 10_000,
        envelope: Envelope::None,
        shape_error: "expected a PUBLISH with a Response Topic property",
    },
];

/// The order in which a received topic is tried against the dialects: the
/// common clouds first (a request of theirs is parsed at the first try), and
/// the dialects that end in a custom topic last, so that a fixed-shape template
/// takes precedence over a custom topic that would also match it
/// (`/ext/rrpc/{id}/sys/{pk}/{dn}/thing/service/{name}` is an alibaba-service
/// request before an alibaba-custom one). Dialects registered by the
/// application come after the built-in fixed-shape ones.
pub(super) static PARSE_FIRST: [(Dialect, &Spec); 9] = [
    (Dialect::AlibabaSystem, &BUILTIN[0]),
    (Dialect::Tencent, &BUILTIN[2]),
    (Dialect::TencentAction, &BUILTIN[8]),
    (Dialect::ThingsBoardGateway, &BUILTIN[9]),
    (Dialect::AlibabaService, &BUILTIN[3]),
    (Dialect::ThingsBoard, &BUILTIN[4]),
    (Dialect::Azure, &BUILTIN[5]),
    (Dialect::Huawei, &BUILTIN[6]),
    (Dialect::Aws, &BUILTIN[7]),
];
/// Tried after every other dialect.
pub(super) const PARSE_LAST: [Dialect; 1] = [Dialect::AlibabaCustom];

/// Longest default timeout of a dialect, and longest wait of a request, in ms:
/// 10 minutes.
pub const MAX_TIMEOUT_MS: u32 = 600_000;

/// ABI value of the first dialect an application registers.
pub const USER_DIALECT_FIRST: u32 = 256;
/// Most dialects an application may register.
pub const MAX_USER_DIALECTS: usize = 64;

static USER: [OnceLock<&'static Spec>; MAX_USER_DIALECTS] =
    [const { OnceLock::new() }; MAX_USER_DIALECTS];
static USER_LEN: AtomicUsize = AtomicUsize::new(0);
static REGISTERING: Mutex<()> = Mutex::new(());

/// The spec of a registered dialect of the application.
pub(super) fn user_spec(d: Dialect) -> &'static Spec {
    let i = (d.0 - USER_DIALECT_FIRST) as usize;
    USER[i]
        .get()
        .expect("a Dialect value names a registered dialect")
}

/// The dialects the application registered, in registration order.
pub(super) fn user_dialects() -> impl Iterator<Item = Dialect> {
    let n = USER_LEN.load(Ordering::Acquire);
    (0..n).map(|i| Dialect(USER_DIALECT_FIRST + i as u32))
}

pub(super) fn is_registered(v: u32) -> bool {
    v >= USER_DIALECT_FIRST
        && ((v - USER_DIALECT_FIRST) as usize) < USER_LEN.load(Ordering::Acquire)
}

/// A dialect as an application defines it (see [`register`]).
#[derive(Clone, Debug)]
pub struct DialectConfig<'a> {
    /// The dialect's name: 1 to 32 of `a-z 0-9 - _ .`, not a built-in one.
    pub name: &'a str,
    /// The filter a device subscribes, with `{pk}` and `{dn}` as whole levels,
    /// `+` and `#` (`None`: the request template with `+` for each level that
    /// holds `{id}`, `{name}` or `{format}`).
    pub subscribe: Option<&'a str>,
    /// The request topic: literal text with `{pk}`, `{dn}`, `{id}` (required),
    /// `{name}`, `{format}`, each at most once, anywhere inside a level.
    pub request: &'a str,
    /// The reply topic: `{id}` (required), the request's placeholders, and
    /// `{status}` (the reply's status code, 200 unless the reply sets one).
    pub response: &'a str,
    /// How long a caller waits for the reply by default, in ms (1 to 600,000).
    pub default_timeout_ms: u32,
}

impl Default for DialectConfig<'_> {
    fn default() -> Self {
        DialectConfig {
            name: "",
            subscribe: None,
            request: "",
            response: "",
            default_timeout_ms: 8000,
        }
    }
}

/// Why a dialect was refused: the field and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DialectError {
    /// `name`, `subscribe`, `request`, `response` or `default_timeout_ms`.
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> DialectError {
    DialectError {
        field,
        message: message.into(),
    }
}

/// Registers a dialect for the whole process: the device client, the router
/// and the caller then accept it like a built-in one. Registering the same
/// name again with the same templates returns the same dialect; the name of
/// another dialect is refused. Thread-safe. Every problem is named
/// ([`DialectError`]): an unknown placeholder, a wildcard outside the
/// subscribe filter, no `{id}` in the request or the reply, a reply
/// placeholder the request does not give, a filter that does not receive the
/// requests, a request template that can match the same topic as another
/// dialect's.
///
/// ```
/// use rrpc::dialect::{register, DialectConfig};
///
/// let d = register(&DialectConfig {
///     name: "acme",
///     request: "acme/{dn}/rpc/{id}/{name}",
///     response: "acme/{dn}/rpc/{id}/reply",
///     ..DialectConfig::default()
/// })
/// .unwrap();
/// assert_eq!(d.name(), "acme");
/// assert_eq!(d.request_template(), "acme/{dn}/rpc/{id}/{name}");
/// let e = register(&DialectConfig { name: "bad", request: "x/{idd}", response: "y/{id}", ..Default::default() });
/// assert_eq!(e.unwrap_err().field, "request");
/// ```
pub fn register(cfg: &DialectConfig<'_>) -> Result<Dialect, DialectError> {
    check_name(cfg.name)?;
    let _guard = REGISTERING.lock();
    let same = |s: &Spec| {
        s.request.to_string() == cfg.request
            && s.response.to_string() == cfg.response
            && s.subscribe.map(|t| t.to_string()) == cfg.subscribe.map(str::to_string)
            && s.default_timeout_ms == cfg.default_timeout_ms
    };
    for d in Dialect::all() {
        if d.name() == cfg.name {
            return if d.is_builtin() {
                Err(err("name", format!("{} is a built-in dialect", cfg.name)))
            } else if same(d.spec()) {
                Ok(d)
            } else {
                Err(err(
                    "name",
                    format!(
                        "a dialect named {} is already registered with other templates",
                        cfg.name
                    ),
                ))
            };
        }
    }
    let n = USER_LEN.load(Ordering::Acquire);
    if n == MAX_USER_DIALECTS {
        return Err(err(
            "name",
            format!(
                "{MAX_USER_DIALECTS} dialects are registered already, the most a process may have"
            ),
        ));
    }
    // The templates parsed are kept only now, when the dialect is registered.
    let mut parsed = Parsed(Vec::new());
    let spec = build(cfg, &mut parsed)?;
    // Registered: the templates stay (the list of them goes).
    parsed.0.clear();
    let spec: &'static Spec = Box::leak(Box::new(spec));
    USER[n].set(spec).expect("registration is serialised");
    USER_LEN.store(n + 1, Ordering::Release);
    Ok(Dialect(USER_DIALECT_FIRST + n as u32))
}

fn check_name(name: &str) -> Result<(), DialectError> {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    if name.is_empty() || name.len() > 32 || !name.bytes().all(ok) {
        return Err(err(
            "name",
            format!("{name:?} is not 1 to 32 of a-z 0-9 - _ ."),
        ));
    }
    Ok(())
}

/// Templates parsed for a registration: freed again when it is refused.
struct Parsed(Vec<Template>);

impl Drop for Parsed {
    fn drop(&mut self) {
        for t in self.0.drain(..) {
            // SAFETY: every template here came from `Template::parse` and is
            // referenced by nothing else (the refused spec is dropped).
            unsafe { t.free() };
        }
    }
}

/// Checks a dialect's templates and builds its spec; the templates it parses
/// go to `parsed`, to be freed if the dialect is refused.
fn build(cfg: &DialectConfig<'_>, parsed: &mut Parsed) -> Result<Spec, DialectError> {
    let mut template = |field: &'static str, text: &str, filter: bool| {
        let t = Template::parse(text, filter).map_err(|e| err(field, format!("{text:?} {e}")))?;
        parsed.0.push(t);
        Ok::<_, DialectError>(t)
    };
    let request = template("request", cfg.request, false)?;
    let response = template("response", cfg.response, false)?;
    for d in Dialect::all() {
        if let Some(example) = overlap(&request, &d.spec().request) {
            return Err(err(
                "request",
                format!(
                    "can match the same topics as the {} dialect's request {} (such as {example})",
                    d.name(),
                    d.spec().request
                ),
            ));
        }
    }
    for (field, t) in [("request", &request), ("response", &response)] {
        if !t.has(Id) {
            return Err(err(field, format!("{t} has no {{id}}")));
        }
        if t.has(Topic) {
            return Err(err(
                field,
                "{topic} is reserved for the built-in custom-topic dialects",
            ));
        }
    }
    if request.has(Status) {
        return Err(err("request", "{status} belongs in the reply only"));
    }
    for p in [Pk, Dn, Name, Format] {
        if response.has(p) && !request.has(p) {
            return Err(err(
                "response",
                format!(
                    "uses {} which the request does not carry",
                    placeholder_text(p)
                ),
            ));
        }
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&cfg.default_timeout_ms) {
        return Err(err(
            "default_timeout_ms",
            format!(
                "is {}; it must be 1 to {}",
                cfg.default_timeout_ms, MAX_TIMEOUT_MS
            ),
        ));
    }
    let subscribe = match cfg.subscribe {
        Some(text) => Some(check_filter(template("subscribe", text, true)?, &request)?),
        None => None,
    };
    let shape_error: &'static str = Box::leak(format!("expected {request}").into_boxed_str());
    Ok(Spec {
        name: Box::leak(cfg.name.to_string().into_boxed_str()),
        subscribe,
        request,
        response,
        default_timeout_ms: cfg.default_timeout_ms,
        shape_error,
        envelope: Envelope::None,
    })
}

/// Checks a subscribe filter: only `{pk}` and `{dn}`, as whole levels; `+` as
/// a whole level; `#` as the last level; and it receives the requests.
fn check_filter(filter: Template, request: &Template) -> Result<Template, DialectError> {
    let levels = filter.levels();
    for (i, level) in levels.iter().enumerate() {
        for p in level {
            match *p {
                Pk | Dn if level.len() == 1 => {}
                Lit(s) if !s.contains(['+', '#']) => {}
                Lit("+") if level.len() == 1 => {}
                Lit("#") if level.len() == 1 && i + 1 == levels.len() => {}
                Lit(_) => {
                    return Err(err(
                        "subscribe",
                        format!("{filter}: '+' must be a whole level and '#' the whole last level"),
                    ))
                }
                _ => {
                    return Err(err(
                        "subscribe",
                        format!("{filter}: only {{pk}} and {{dn}}, each a whole level, may appear in a filter"),
                    ))
                }
            }
        }
    }
    for p in [Pk, Dn] {
        if filter.has(p) != request.has(p) {
            return Err(err(
                "subscribe",
                format!(
                    "{filter} and the request {request} must both or neither hold {}",
                    placeholder_text(p)
                ),
            ));
        }
    }
    let sample = Identity {
        product_key: "pk0",
        device_name: "dn0",
        custom_topic: None,
    };
    let vars = Vars {
        id: "id0",
        name: Some("name0"),
        format: Some("json"),
        status: None,
    };
    let topic = request.render(&sample, &vars);
    let f = filter.render(&sample, &Vars::default());
    if !topic_matches(&f, &topic) {
        return Err(err(
            "subscribe",
            format!("{filter} does not receive the requests (such as {topic})"),
        ));
    }
    Ok(filter)
}

/// Whether the MQTT filter `filter` matches `topic` (MQTT 3.1.1, 4.7).
pub(super) fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A topic both request templates can match, when there may be one: compared
/// level by level, conservatively (two levels with placeholders may overlap
/// when their literal starts and ends are compatible). Templates ending in a
/// custom topic are tried last and never counted as overlapping.
fn overlap(a: &Template, b: &Template) -> Option<String> {
    if a.has(Topic) || b.has(Topic) {
        return None;
    }
    let (la, lb) = (a.levels(), b.levels());
    if la.len() != lb.len() {
        return None;
    }
    let mut example = Vec::new();
    for (x, y) in la.iter().zip(&lb) {
        example.push(level_overlap(x, y)?);
    }
    Some(example.join("/"))
}

fn lit_of(level: &[Part]) -> Option<String> {
    level
        .iter()
        .map(|p| match p {
            Lit(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// A level text both level patterns may match, if any.
fn level_overlap(x: &[Part], y: &[Part]) -> Option<String> {
    match (lit_of(x), lit_of(y)) {
        (Some(a), Some(b)) => (a == b).then_some(a),
        (Some(a), None) => level_matches(y, &a).then_some(a),
        (None, Some(b)) => level_matches(x, &b).then_some(b),
        (None, None) => {
            let head = |l: &[Part]| match l.first() {
                Some(Lit(s)) => *s,
                _ => "",
            };
            let tail = |l: &[Part]| match l.last() {
                Some(Lit(s)) => *s,
                _ => "",
            };
            let (hx, hy, tx, ty) = (head(x), head(y), tail(x), tail(y));
            let heads = hx.starts_with(hy) || hy.starts_with(hx);
            let tails = tx.ends_with(ty) || ty.ends_with(tx);
            (heads && tails).then(|| {
                let h = if hx.len() >= hy.len() { hx } else { hy };
                let t = if tx.len() >= ty.len() { tx } else { ty };
                format!("{h}x{t}")
            })
        }
    }
}

/// Whether one level's pattern matches the level text `s`.
fn level_matches(level: &[Part], s: &str) -> bool {
    match_parts(level, s).is_some()
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("request", &self.request.to_string())
            .field("response", &self.response.to_string())
            .finish()
    }
}
