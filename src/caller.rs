//! The cloud side: RRpc calls to devices through one MQTT connection, with the
//! semantics of the RRpc API (parameters, validation, `RrpcCode`, response
//! fields) on any plain broker.
//!
//! One [`Caller`] owns one connection and a background thread (a one-thread tokio
//! runtime). Calls may be made from any number of threads at once
//! ([`Caller::call`] blocks; [`Caller::call_async`] returns at once and completes
//! a callback exactly once). Each call gets a fresh 64-bit message id, goes out
//! on the dialect's request topic at QoS 0, and is matched by id with the
//! response from the dialect's response wildcard, which is subscribed once per
//! dialect (or custom topic) before the first request that needs it.
//!
//! With presence on (see [`crate::presence`]) the caller also follows the
//! devices' retained status: OFFLINE comes back at once for a device known to be
//! offline, and HALFCONN as soon as a device's last will arrives while a call to
//! it waits. Otherwise a call ends in SUCCESS or TIMEOUT, or UNKNOWN when the
//! caller's own connection fails.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use hashbrown::{Equivalent, HashMap, HashSet};
use parking_lot::{Condvar, Mutex};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::dialect::{self, validate_custom_topic, validate_part, Dialect, Identity};
use crate::mqtt::Connection;
use crate::presence::{Presence, PresenceTopics, Status};

/// The outcome of an RRpc call, as the RRpc API names it. Values are part of the C ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RrpcCode {
    /// The device answered in time.
    Success = 0,
    /// The device did not answer within the timeout.
    Timeout = 1,
    /// The device is known to be offline; nothing was sent.
    Offline = 2,
    /// The device was online when the request went out, and its connection dropped
    /// (its last will arrived) before the reply.
    HalfConn = 3,
    /// A system error: the caller's own connection to the broker failed mid-call.
    Unknown = 4,
}

impl RrpcCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RrpcCode::Success => "SUCCESS",
            RrpcCode::Timeout => "TIMEOUT",
            RrpcCode::Offline => "OFFLINE",
            RrpcCode::HalfConn => "HALFCONN",
            RrpcCode::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for RrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Code` of a call refused for its parameters.
pub const CODE_INVALID_PARAMETER: &str = "InvalidParameter";
/// `Code` of a call that failed in the system (no connection, queue full).
pub const CODE_SYSTEM_EXCEPTION: &str = "iot.system.SystemException";

/// The RRpc API's response, field for field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrpcResponse {
    /// Unique id of this call (UUID form).
    pub request_id: String,
    /// Whether the call was carried out (`false`: refused or failed before sending).
    pub success: bool,
    /// Error code when `success` is false.
    pub code: Option<String>,
    /// Error text when `success` is false.
    pub error_message: Option<String>,
    /// The message id the request went out with.
    pub message_id: Option<u64>,
    /// The outcome when `success` is true.
    pub rrpc_code: Option<RrpcCode>,
    /// The device's reply (SUCCESS only).
    pub payload: Option<Vec<u8>>,
}

impl RrpcResponse {
    /// A response for a call that was not carried out (`Success` false), with its
    /// `Code` (e.g. [`CODE_INVALID_PARAMETER`], [`CODE_SYSTEM_EXCEPTION`]) and
    /// `ErrorMessage`, and a fresh `RequestId`.
    pub fn failed(code: &str, message: impl Into<String>) -> RrpcResponse {
        RrpcResponse {
            request_id: request_id(),
            success: false,
            code: Some(code.to_string()),
            error_message: Some(message.into()),
            message_id: None,
            rrpc_code: None,
            payload: None,
        }
    }

    fn done(message_id: Option<u64>, code: RrpcCode, payload: Option<Vec<u8>>) -> RrpcResponse {
        RrpcResponse {
            request_id: request_id(),
            success: true,
            code: None,
            error_message: None,
            message_id,
            rrpc_code: Some(code),
            payload,
        }
    }

    /// `PayloadBase64Byte`.
    pub fn payload_base64(&self) -> Option<String> {
        self.payload
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
    }

    /// The JSON form, with the field names of the RRpc API; absent fields are left out.
    pub fn to_json(&self) -> String {
        let mut f: Vec<String> = vec![
            format!("\"RequestId\":{}", json_str(&self.request_id)),
            format!("\"Success\":{}", self.success),
        ];
        if let Some(c) = &self.code {
            f.push(format!("\"Code\":{}", json_str(c)));
        }
        if let Some(m) = &self.error_message {
            f.push(format!("\"ErrorMessage\":{}", json_str(m)));
        }
        if let Some(id) = self.message_id {
            f.push(format!("\"MessageId\":{id}"));
        }
        if let Some(r) = self.rrpc_code {
            f.push(format!("\"RrpcCode\":\"{r}\""));
        }
        if let Some(p) = self.payload_base64() {
            f.push(format!("\"PayloadBase64Byte\":\"{p}\""));
        }
        format!("{{{}}}", f.join(","))
    }

    /// The XML form: `<RRpcResponse>` with one element per present field.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version='1.0' encoding='UTF-8'?>\n<RRpcResponse>\n");
        let mut el =
            |name: &str, v: &str| x.push_str(&format!("  <{name}>{}</{name}>\n", xml_text(v)));
        el("RequestId", &self.request_id);
        el("Success", if self.success { "true" } else { "false" });
        if let Some(c) = &self.code {
            el("Code", c);
        }
        if let Some(m) = &self.error_message {
            el("ErrorMessage", m);
        }
        if let Some(id) = self.message_id {
            el("MessageId", &id.to_string());
        }
        if let Some(r) = self.rrpc_code {
            el("RrpcCode", r.as_str());
        }
        if let Some(p) = self.payload_base64() {
            el("PayloadBase64Byte", &p);
        }
        x.push_str("</RRpcResponse>\n");
        x
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn xml_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// A request id in UUID (version 4) form: a process-wide counter through a keyed
/// bijective mix, so ids never repeat within a process and differ between
/// processes, at the cost of two multiplications rather than a system call.
fn request_id() -> String {
    static KEY: once_cell::sync::Lazy<[u64; 2]> = once_cell::sync::Lazy::new(|| {
        let mut b = [0u8; 16];
        fill_random(&mut b);
        [
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        ]
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mix64(n ^ KEY[0]).to_be_bytes());
    b[8..].copy_from_slice(&mix64(n.wrapping_add(KEY[1])).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 15)] as char);
    }
    out
}

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill_random(buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: writes at most `buf.len() - off` bytes into `buf[off..]`.
        let n = unsafe { libc::getrandom(buf[off..].as_mut_ptr().cast(), buf.len() - off, 0) };
        if n <= 0 {
            // getrandom(2) does not fail on Linux >= 3.17 for small reads; fall
            // back to a hash of the time if it ever does.
            let seed = std::collections::hash_map::RandomState::new();
            use std::hash::BuildHasher;
            let v = seed.hash_one(now_ms()).to_le_bytes();
            for (i, b) in buf[off..].iter_mut().enumerate() {
                *b = v[i % 8];
            }
            return;
        }
        off += n as usize;
    }
}

/// What an RRpc call asks for. `payload` is the decoded request (see
/// [`decode_request_base64`] for the API's `RequestBase64Byte`).
#[derive(Clone, Debug)]
pub struct CallParams<'a> {
    /// `AlibabaSystem` or `Tencent`; with `topic`, the Alibaba custom-topic dialect is used.
    pub dialect: Dialect,
    pub product_key: &'a str,
    pub device_name: &'a str,
    pub payload: &'a [u8],
    /// Milliseconds, 1000-8000. `None` is allowed for Tencent only (4000).
    pub timeout_ms: Option<u32>,
    /// Custom RRPC topic, such as `/a1B2/dev1/user/update`.
    pub topic: Option<&'a str>,
    /// JT/T 808 pass-through type: 0, 11, 65, 66 or 240-255. Sent in the
    /// message-id level of the request topic as `{messageId};ct={ContentType}`
    /// ([`dialect::CONTENT_TYPE_SEPARATOR`]); without it the topic is the plain
    /// documented format.
    pub content_type: Option<u32>,
}

/// Checks the RRpc API's parameters; the error text says which one and why.
pub fn validate_params(p: &CallParams<'_>, max_payload: usize) -> Result<(), String> {
    validate_part("ProductKey", p.product_key).map_err(|e| e.to_string())?;
    validate_part("DeviceName", p.device_name).map_err(|e| e.to_string())?;
    match p.dialect {
        Dialect::AlibabaSystem | Dialect::Tencent => {}
        Dialect::AlibabaCustom => {
            if p.topic.is_none() {
                return Err("the alibaba-custom dialect needs Topic".to_string());
            }
        }
    }
    if let Some(t) = p.topic {
        if p.dialect == Dialect::Tencent {
            return Err("Topic (custom RRPC topics) exists only for Alibaba".to_string());
        }
        validate_custom_topic(t).map_err(|e| format!("Topic {}", e.reason))?;
    }
    match (p.timeout_ms, p.dialect) {
        (None, Dialect::Tencent) => {}
        (None, _) => return Err("Timeout is required (1000 to 8000 ms)".to_string()),
        (Some(t), _) if !(1000..=8000).contains(&t) => {
            return Err(format!("Timeout {t} is outside 1000 to 8000 ms"))
        }
        _ => {}
    }
    if let Some(ct) = p.content_type {
        if !matches!(ct, 0 | 11 | 65 | 66 | 240..=255) {
            return Err(format!(
                "ContentType {ct} is not one of 0, 11, 65, 66 or 240 to 255"
            ));
        }
    }
    if p.payload.len() > max_payload {
        return Err(format!(
            "the request is {} bytes, more than the {max_payload} allowed",
            p.payload.len()
        ));
    }
    Ok(())
}

/// Decodes the RRpc API's `RequestBase64Byte` (standard alphabet, padded).
pub fn decode_request_base64(b64: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("RequestBase64Byte is not valid Base64: {e}"))
}

/// Settings of a [`Caller`].
#[derive(Clone, Debug)]
pub struct CallerConfig {
    pub host: String,
    pub port: u16,
    /// `None` derives `rrpccaller` + 16 hex digits.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_s: u16,
    /// How long [`Caller::connect`] waits for the connection (and the presence
    /// snapshot), in ms.
    pub connect_timeout_ms: u32,
    /// Largest request or response payload, in bytes.
    pub max_payload: usize,
    /// Most calls in flight at once; more are refused (`Success` false).
    pub max_in_flight: usize,
    /// Presence topics to follow; `None` turns OFFLINE and HALFCONN off.
    pub presence: Option<PresenceTopics>,
}

impl CallerConfig {
    pub fn new(host: impl Into<String>, port: u16) -> CallerConfig {
        CallerConfig {
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 60,
            connect_timeout_ms: 5000,
            max_payload: 256 * 1024,
            max_in_flight: 65_536,
            presence: Some(PresenceTopics::default()),
        }
    }
}

/// Why a caller could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerError {
    InvalidArgument(String),
    ConnectFailed(String),
}

impl fmt::Display for CallerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            CallerError::ConnectFailed(m) => write!(f, "could not connect: {m}"),
        }
    }
}

impl std::error::Error for CallerError {}

/// Counters of a caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallerStats {
    pub calls: u64,
    pub success: u64,
    pub timeout: u64,
    pub offline: u64,
    pub halfconn: u64,
    pub unknown: u64,
    /// Calls refused before sending (parameters, not connected, too many in flight).
    pub refused: u64,
    /// Responses that arrived after their call had timed out (discarded).
    pub late_responses: u64,
    /// Responses for ids this caller never sent or no longer remembers.
    pub unknown_responses: u64,
    /// Second responses to a call already answered (discarded: the first wins).
    pub duplicate_responses: u64,
    pub in_flight: u64,
}

/// Completes a call; called exactly once, on the caller's thread or on the thread
/// that made the call (for immediate outcomes).
pub type Completion = Box<dyn FnOnce(RrpcResponse) + Send>;

struct PendingCall {
    dialect: Dialect,
    product_key: Box<str>,
    device_name: Box<str>,
    deadline_ms: u64,
    /// Custom-topic requests come back to the caller itself first.
    own_echo_expected: bool,
    /// The request, until it could be published (waiting for a SUBACK).
    unsent: Option<(String, Vec<u8>)>,
    done: Completion,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Finished {
    Answered,
    TimedOut,
    Other,
}

enum Sub {
    Active,
    /// SUBSCRIBE sent; these calls wait for the SUBACK to be published.
    Requested(Vec<u64>),
}

/// A device's identity as a presence key, looked up by borrowed strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DeviceKey(String, String);

#[derive(Hash)]
struct DeviceRef<'a>(&'a str, &'a str);

impl Equivalent<DeviceKey> for DeviceRef<'_> {
    fn equivalent(&self, k: &DeviceKey) -> bool {
        self.0 == k.0 && self.1 == k.1
    }
}

#[derive(Default)]
struct PresenceState {
    /// (pk, dn) -> online, and on which connection.
    devices: HashMap<DeviceKey, (bool, Option<String>)>,
    offline_connections: HashSet<String>,
}

impl PresenceState {
    /// `Some(true)` online, `Some(false)` offline, `None` never heard of.
    fn online(&self, pk: &str, dn: &str) -> Option<bool> {
        if self.devices.is_empty() {
            return None;
        }
        let (online, conn) = self.devices.get(&DeviceRef(pk, dn))?;
        let conn_down = conn
            .as_ref()
            .is_some_and(|c| self.offline_connections.contains(c));
        Some(*online && !conn_down)
    }
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, PendingCall>,
    deadlines: BTreeSet<(u64, u64)>,
    finished: HashMap<u64, Finished>,
    finished_order: VecDeque<u64>,
    subs: HashMap<String, Sub>,
    /// Filters in the order their SUBSCRIBE packets were queued.
    sub_queue: VecDeque<String>,
    sub_pkids: HashMap<u16, String>,
    presence: PresenceState,
    ready: bool,
    /// Requests to publish, queued by any thread, sent from the caller's thread.
    outbox: Vec<(u64, String, Vec<u8>)>,
}

const FINISHED_MEMORY: usize = 65_536;

impl State {
    fn remember(&mut self, id: u64, how: Finished) {
        self.finished.insert(id, how);
        self.finished_order.push_back(id);
        while self.finished_order.len() > FINISHED_MEMORY {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// Removes call `id` and returns its completion with the response to give it.
    fn finish(
        &mut self,
        id: u64,
        code: RrpcCode,
        payload: Option<Vec<u8>>,
    ) -> Option<(Completion, RrpcResponse)> {
        let call = self.pending.remove(&id)?;
        self.deadlines.remove(&(call.deadline_ms, id));
        self.remember(
            id,
            match code {
                RrpcCode::Success => Finished::Answered,
                RrpcCode::Timeout => Finished::TimedOut,
                _ => Finished::Other,
            },
        );
        Some((call.done, RrpcResponse::done(Some(id), code, payload)))
    }
}

struct Inner {
    cfg: CallerConfig,
    client_id: String,
    mqtt: AsyncClient,
    state: Mutex<State>,
    ready: Condvar,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
    next_id: AtomicU64,
    stats: [AtomicU64; 10],
    /// Signalled when the outbox goes from empty to not empty.
    outbox_ready: tokio::sync::Notify,
}

#[derive(Clone, Copy)]
enum Stat {
    Calls,
    Success,
    Timeout,
    Offline,
    HalfConn,
    Unknown,
    Refused,
    Late,
    UnknownResponse,
    Duplicate,
}

/// An RRpc caller over one MQTT connection. See the module documentation.
pub struct Caller {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    runtime: Arc<tokio::runtime::Runtime>,
    lease: Arc<Lease>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("client_id", &self.inner.client_id)
            .finish()
    }
}

thread_local! {
    /// Set on every caller's own thread, and on a thread while it drives a caller
    /// inside a blocking `call()`: where completions of answered calls run.
    static ON_CALLER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is driving a caller (its own thread, or a thread
/// inside a blocking call): blocking there on a call, or dropping a caller,
/// would wait for this very thread.
pub fn on_caller_thread() -> bool {
    ON_CALLER_THREAD.with(|c| c.get())
}

/// How long the caller's own thread leaves the connection to application threads
/// after their last blocking call, before it drives the connection again.
const LEASE_IDLE: Duration = Duration::from_millis(2);

/// Who drives the caller's one-thread runtime. Normally its own thread; while an
/// application thread waits in a blocking `call()`, that thread drives it itself,
/// so a call made and answered on one thread never crosses threads (two context
/// switches per call on a busy CPU). The caller's thread takes over again once no
/// blocking call has run for [`LEASE_IDLE`].
#[derive(Default)]
struct Lease {
    state: Mutex<LeaseState>,
    changed: Condvar,
    /// Asks the caller's thread to let go of the runtime.
    release: tokio::sync::Notify,
}

#[derive(Default)]
struct LeaseState {
    /// Blocking calls in progress.
    active: usize,
    last_end: Option<std::time::Instant>,
    /// The caller's thread is inside `block_on` (holds the runtime's core).
    own_thread_driving: bool,
    stopping: bool,
}

fn sync_topic(client_id: &str) -> String {
    format!("rrpc/caller/{client_id}/sync")
}

impl Caller {
    /// Connects, subscribes the Alibaba response wildcard and the presence topics,
    /// and returns once the broker has delivered the retained presence snapshot (or
    /// fails after `connect_timeout_ms`).
    pub fn connect(cfg: CallerConfig) -> Result<Caller, CallerError> {
        let bad = |m: &str| Err(CallerError::InvalidArgument(m.to_string()));
        if cfg.host.is_empty() {
            return bad("host is empty");
        }
        if cfg.port == 0 {
            return bad("port is 0");
        }
        if cfg.max_in_flight == 0 || cfg.max_payload == 0 {
            return bad("max_in_flight and max_payload must be at least 1");
        }
        if let Some(p) = &cfg.presence {
            p.validate()
                .map_err(|e| CallerError::InvalidArgument(e.to_string()))?;
        }
        let client_id = match &cfg.client_id {
            Some(id) => {
                validate_part("client id", id)
                    .map_err(|e| CallerError::InvalidArgument(e.to_string()))?;
                id.clone()
            }
            None => {
                let mut b = [0u8; 8];
                fill_random(&mut b);
                format!("rrpccaller{:016x}", u64::from_le_bytes(b))
            }
        };
        let conn = Connection {
            client_id: &client_id,
            host: &cfg.host,
            port: cfg.port,
            username: cfg.username.as_deref(),
            password: cfg.password.as_deref(),
            keep_alive_s: cfg.keep_alive_s,
            clean_session: true,
            max_payload: cfg.max_payload,
            channel_capacity: cfg.max_in_flight.min(1 << 20).saturating_add(64),
            connect_timeout_ms: cfg.connect_timeout_ms,
        };
        let (mqtt, mut eventloop) = conn.open(conn.options());

        let mut start = [0u8; 8];
        fill_random(&mut start);
        // Ids look like Alibaba's (about 8.9e17) and never repeat within a caller.
        let first_id =
            100_000_000_000_000_000 + u64::from_le_bytes(start) % 800_000_000_000_000_000;
        let connect_timeout = cfg.connect_timeout_ms;
        let inner = Arc::new(Inner {
            cfg,
            client_id,
            mqtt,
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
            next_id: AtomicU64::new(first_id),
            stats: Default::default(),
            outbox_ready: tokio::sync::Notify::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CallerError::InvalidArgument(format!("cannot create runtime: {e}")))?,
        );
        let driver = {
            let inner2 = inner.clone();
            let stop_rx = stop_rx.clone();
            runtime.spawn(async move {
                let timers = tokio::spawn(expire_calls(inner2.clone(), stop_rx.clone()));
                let sender = tokio::spawn(send_outbox(inner2.clone(), stop_rx.clone()));
                drive(inner2, &mut eventloop, stop_rx).await;
                timers.abort();
                sender.abort();
            })
        };
        let lease = Arc::new(Lease::default());
        let (rt, lease2) = (runtime.clone(), lease.clone());
        let mut stop_rx2 = stop_rx;
        let thread = std::thread::Builder::new()
            .name("rrpc-caller".into())
            .spawn(move || {
                ON_CALLER_THREAD.with(|c| c.set(true));
                loop {
                    {
                        let mut ls = lease2.state.lock();
                        // Application threads drive while they wait in call().
                        while !ls.stopping
                            && (ls.active > 0
                                || ls.last_end.is_some_and(|t| t.elapsed() < LEASE_IDLE))
                        {
                            let wait = if ls.active > 0 {
                                Duration::from_millis(20)
                            } else {
                                LEASE_IDLE
                                    .saturating_sub(ls.last_end.map_or(LEASE_IDLE, |t| t.elapsed()))
                            };
                            lease2
                                .changed
                                .wait_for(&mut ls, wait.max(Duration::from_micros(100)));
                        }
                        if ls.stopping || *stop_rx2.borrow() {
                            break;
                        }
                        ls.own_thread_driving = true;
                    }
                    rt.block_on(async {
                        tokio::select! {
                            biased;
                            _ = stop_rx2.changed() => {}
                            _ = lease2.release.notified() => {}
                        }
                    });
                    lease2.state.lock().own_thread_driving = false;
                    if *stop_rx2.borrow() {
                        break;
                    }
                }
                // Let the driver disconnect cleanly before the runtime goes away.
                let _ = rt.block_on(driver);
            })
            .map_err(|e| CallerError::InvalidArgument(format!("cannot start thread: {e}")))?;
        let caller = Caller {
            inner,
            stop,
            thread: Some(thread),
            runtime,
            lease,
        };
        let deadline =
            std::time::Instant::now() + Duration::from_millis(u64::from(connect_timeout.max(1)));
        let mut st = caller.inner.state.lock();
        while !st.ready {
            // A refused or unreachable broker fails at once, as Client::start does.
            let failed = caller.inner.last_error.lock().is_some();
            if failed || caller.inner.ready.wait_until(&mut st, deadline).timed_out() {
                drop(st);
                let why = caller
                    .inner
                    .last_error
                    .lock()
                    .clone()
                    .unwrap_or_else(|| format!("no answer within {connect_timeout} ms"));
                return Err(CallerError::ConnectFailed(format!(
                    "{}:{}: {why}",
                    caller.inner.cfg.host, caller.inner.cfg.port
                )));
            }
        }
        drop(st);
        Ok(caller)
    }

    /// The MQTT client id of the caller's connection.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Makes a call and waits for its outcome, driving the connection on this
    /// thread meanwhile (see `Lease`). From inside a completion it cannot wait
    /// and fails at once: use `call_async`.
    pub fn call(&self, p: &CallParams<'_>) -> RrpcResponse {
        if on_caller_thread() {
            return RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                "A system exception occurred: a blocking call from a completion would deadlock; use call_async",
            );
        }
        let dropped = || {
            RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                "A system exception occurred: the call was dropped",
            )
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside some other tokio runtime this thread cannot drive ours: wait
            // for the caller's own thread instead.
            let (tx, rx) = mpsc::sync_channel(1);
            self.call_async(
                p,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            return rx.recv().unwrap_or_else(|_| dropped());
        }
        {
            let mut ls = self.lease.state.lock();
            ls.active += 1;
            if ls.own_thread_driving {
                self.lease.release.notify_one();
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.call_async(
            p,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        // Drive the connection on this thread until the answer is here.
        ON_CALLER_THREAD.with(|c| c.set(true));
        let r = self.runtime.block_on(rx);
        ON_CALLER_THREAD.with(|c| c.set(false));
        {
            // No wake-up for the caller's thread: its timed wait notices the idle
            // time by itself, and a burst of calls must not pay a switch per call.
            let mut ls = self.lease.state.lock();
            ls.active -= 1;
            ls.last_end = Some(std::time::Instant::now());
        }
        r.unwrap_or_else(|_| dropped())
    }

    /// Starts a call; `done` runs exactly once with the outcome: at once (on this
    /// thread) for a refused call or an OFFLINE device, else on the thread driving
    /// the caller (its own thread, or one waiting in a blocking `call()`).
    pub fn call_async(&self, p: &CallParams<'_>, done: Completion) {
        let inner = &self.inner;
        inner.bump(Stat::Calls);
        if let Err(why) = validate_params(p, inner.cfg.max_payload) {
            inner.bump(Stat::Refused);
            return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
        }
        let dialect = match (p.dialect, p.topic) {
            (Dialect::AlibabaSystem, Some(_)) => Dialect::AlibabaCustom,
            (d, _) => d,
        };
        let timeout = p.timeout_ms.unwrap_or(4000);
        if !inner.connected.load(Ordering::SeqCst) {
            inner.bump(Stat::Refused);
            return done(RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                "A system exception occurred: not connected to the broker",
            ));
        }
        let mut st = inner.state.lock();
        if inner.cfg.presence.is_some()
            && st.presence.online(p.product_key, p.device_name) == Some(false)
        {
            drop(st);
            inner.bump(Stat::Offline);
            return done(RrpcResponse::done(None, RrpcCode::Offline, None));
        }
        if st.pending.len() >= inner.cfg.max_in_flight {
            drop(st);
            inner.bump(Stat::Refused);
            return done(RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                format!(
                    "A system exception occurred: {} calls are already in flight",
                    inner.cfg.max_in_flight
                ),
            ));
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let ident = Identity {
            product_key: p.product_key,
            device_name: p.device_name,
            custom_topic: p.topic,
        };
        // Validated above: a ContentType is one of the RRpc values, all below 256.
        let content_type = p.content_type.and_then(|c| u8::try_from(c).ok());
        let level = dialect::message_id_level(&id.to_string(), content_type);
        let request_topic = dialect.request_topic(&ident, &level);
        let filter = dialect.response_wildcard(p.topic);
        let deadline_ms = now_ms() + u64::from(timeout);
        let mut call = PendingCall {
            dialect,
            product_key: p.product_key.into(),
            device_name: p.device_name.into(),
            deadline_ms,
            own_echo_expected: dialect == Dialect::AlibabaCustom,
            unsent: None,
            done,
        };
        let publish_now = match st.subs.get_mut(&filter) {
            Some(Sub::Active) => true,
            Some(Sub::Requested(waiting)) => {
                waiting.push(id);
                false
            }
            None => {
                if inner
                    .mqtt
                    .try_subscribe(filter.clone(), QoS::AtMostOnce)
                    .is_err()
                {
                    drop(st);
                    inner.bump(Stat::Refused);
                    return (call.done)(RrpcResponse::failed(
                        CODE_SYSTEM_EXCEPTION,
                        "A system exception occurred: the outgoing queue is full",
                    ));
                }
                st.sub_queue.push_back(filter.clone());
                st.subs.insert(filter, Sub::Requested(vec![id]));
                false
            }
        };
        let payload = p.payload.to_vec();
        if publish_now {
            // The caller's own thread hands it to rumqttc (see `send_outbox`), so
            // application threads never contend on the MQTT request channel.
            st.outbox.push((id, request_topic, payload));
        } else {
            call.unsent = Some((request_topic, payload));
        }
        st.deadlines.insert((deadline_ms, id));
        st.pending.insert(id, call);
        let wake = publish_now && st.outbox.len() == 1;
        drop(st);
        if wake {
            inner.outbox_ready.notify_one();
        }
    }

    pub fn stats(&self) -> CallerStats {
        let s = |k: Stat| self.inner.stats[k as usize].load(Ordering::Relaxed);
        CallerStats {
            calls: s(Stat::Calls),
            success: s(Stat::Success),
            timeout: s(Stat::Timeout),
            offline: s(Stat::Offline),
            halfconn: s(Stat::HalfConn),
            unknown: s(Stat::Unknown),
            refused: s(Stat::Refused),
            late_responses: s(Stat::Late),
            unknown_responses: s(Stat::UnknownResponse),
            duplicate_responses: s(Stat::Duplicate),
            in_flight: self.inner.state.lock().pending.len() as u64,
        }
    }

    /// What the caller knows of a device's presence: `Some(true)` online,
    /// `Some(false)` offline, `None` no status seen (or presence off).
    pub fn device_online(&self, product_key: &str, device_name: &str) -> Option<bool> {
        self.inner
            .state
            .lock()
            .presence
            .online(product_key, device_name)
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.lease.state.lock().stopping = true;
        self.lease.changed.notify_all();
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Calls still waiting end now rather than never.
        let waiting: Vec<(Completion, RrpcResponse)> = {
            let mut st = self.inner.state.lock();
            let ids: Vec<u64> = st.pending.keys().copied().collect();
            ids.into_iter()
                .filter_map(|id| st.finish(id, RrpcCode::Unknown, None))
                .collect()
        };
        for (done, r) in waiting {
            done(r);
        }
    }
}

impl Inner {
    fn bump(&self, s: Stat) {
        self.stats[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, code: RrpcCode) {
        self.bump(match code {
            RrpcCode::Success => Stat::Success,
            RrpcCode::Timeout => Stat::Timeout,
            RrpcCode::Offline => Stat::Offline,
            RrpcCode::HalfConn => Stat::HalfConn,
            RrpcCode::Unknown => Stat::Unknown,
        });
    }

    fn complete(&self, done: Vec<(Completion, RrpcResponse)>) {
        for (f, r) in done {
            if let Some(c) = r.rrpc_code {
                self.count(c);
            }
            f(r);
        }
    }

    fn on_connack(&self) {
        self.connected.store(true, Ordering::SeqCst);
        *self.last_error.lock() = None;
        let mut filters = vec![Dialect::AlibabaSystem.response_wildcard(None)];
        if let Some(p) = &self.cfg.presence {
            filters.extend(p.filters());
            filters.push(sync_topic(&self.client_id));
        }
        let mut st = self.state.lock();
        // Every response filter is subscribed again (clean session).
        let known: Vec<String> = st.subs.keys().cloned().collect();
        for f in known {
            if !filters.contains(&f) {
                filters.push(f);
            }
        }
        st.sub_queue.clear();
        st.sub_pkids.clear();
        for f in &filters {
            let waiting = match st.subs.remove(f) {
                Some(Sub::Requested(w)) => w,
                _ => Vec::new(),
            };
            st.subs.insert(f.clone(), Sub::Requested(waiting));
        }
        let batch: Vec<rumqttc::SubscribeFilter> = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtMostOnce))
            .collect();
        // One SUBSCRIBE: its SUBACK makes every filter active at once.
        if self.mqtt.try_subscribe_many(batch).is_ok() {
            st.sub_queue.push_back(filters.join("\n"));
        }
    }

    fn on_outgoing_subscribe(&self, pkid: u16) {
        let mut st = self.state.lock();
        if let Some(f) = st.sub_queue.pop_front() {
            st.sub_pkids.insert(pkid, f);
        }
    }

    fn on_suback(&self, pkid: u16, codes: &[SubscribeReasonCode]) {
        let mut st = self.state.lock();
        let Some(joined) = st.sub_pkids.remove(&pkid) else {
            return;
        };
        let refused = codes
            .iter()
            .any(|c| matches!(c, SubscribeReasonCode::Failure));
        let mut failed = Vec::new();
        let mut sync_sent = false;
        for f in joined.split('\n') {
            let waiting = match st.subs.insert(f.to_string(), Sub::Active) {
                Some(Sub::Requested(w)) => w,
                _ => Vec::new(),
            };
            for id in waiting {
                let Some(call) = st.pending.get_mut(&id) else {
                    continue;
                };
                let Some((topic, payload)) = call.unsent.take() else {
                    continue;
                };
                if refused
                    || self
                        .mqtt
                        .try_publish(topic, QoS::AtMostOnce, false, payload)
                        .is_err()
                {
                    failed.push(id);
                }
            }
            if self.cfg.presence.is_some() && f == sync_topic(&self.client_id) {
                // Everything the broker had retained for us was sent before this.
                sync_sent = self
                    .mqtt
                    .try_publish(
                        sync_topic(&self.client_id),
                        QoS::AtMostOnce,
                        false,
                        b"sync".to_vec(),
                    )
                    .is_ok();
            }
        }
        if refused {
            warn!("broker refused a caller subscription ({joined:?}); calls that needed it end UNKNOWN");
        }
        let done: Vec<_> = failed
            .into_iter()
            .filter_map(|id| st.finish(id, RrpcCode::Unknown, None))
            .collect();
        // Without presence the first SUBACK makes the caller ready; with it, the
        // sync message coming back does (see on_publish).
        if self.cfg.presence.is_none() && !st.ready {
            st.ready = true;
            self.ready.notify_all();
        }
        if self.cfg.presence.is_some()
            && joined.contains(&sync_topic(&self.client_id))
            && !sync_sent
        {
            warn!("caller could not queue its presence sync message");
        }
        drop(st);
        self.complete(done);
    }

    fn on_publish(&self, topic: &str, payload: &[u8]) {
        if let Some(p) = &self.cfg.presence {
            if topic == sync_topic(&self.client_id) {
                let mut st = self.state.lock();
                st.ready = true;
                self.ready.notify_all();
                return;
            }
            if let Some(pr) = p.parse(topic, payload) {
                self.on_presence(pr);
                return;
            }
        }
        for d in Dialect::ALL {
            let Ok(r) = d.parse_response(topic) else {
                continue;
            };
            let (bare_id, _) = dialect::split_content_type(r.message_id);
            let Ok(id) = bare_id.parse::<u64>() else {
                self.bump(Stat::UnknownResponse);
                return;
            };
            let mut st = self.state.lock();
            let Some(call) = st.pending.get_mut(&id) else {
                let what = st.finished.get(&id).copied();
                drop(st);
                match what {
                    Some(Finished::TimedOut) => {
                        self.bump(Stat::Late);
                        debug!("response {id} arrived after its call timed out; discarded");
                    }
                    Some(Finished::Answered) => self.bump(Stat::Duplicate),
                    _ => self.bump(Stat::UnknownResponse),
                }
                return;
            };
            let same_device = match (r.product_key, r.device_name) {
                (Some(pk), Some(dn)) => *call.product_key == *pk && *call.device_name == *dn,
                _ => true, // custom topics carry no identity; the id decides
            };
            if call.dialect != d || !same_device {
                drop(st);
                self.bump(Stat::UnknownResponse);
                return;
            }
            if call.own_echo_expected {
                call.own_echo_expected = false; // our own request, back from the broker
                return;
            }
            let done = st.finish(id, RrpcCode::Success, Some(payload.to_vec()));
            drop(st);
            self.complete(done.into_iter().collect());
            return;
        }
    }

    fn on_presence(&self, pr: Presence<'_>) {
        let mut st = self.state.lock();
        let gone: Vec<u64> = match pr {
            Presence::Device {
                product_key,
                device_name,
                status,
            } => {
                let key = DeviceKey(product_key.to_string(), device_name.to_string());
                match status {
                    Status::Online(conn) => {
                        st.presence.devices.insert(key, (true, conn));
                        Vec::new()
                    }
                    Status::Cleared => {
                        st.presence.devices.remove(&key);
                        Vec::new()
                    }
                    Status::Offline => {
                        st.presence.devices.insert(key, (false, None));
                        st.pending
                            .iter()
                            .filter(|(_, c)| {
                                *c.product_key == *product_key && *c.device_name == *device_name
                            })
                            .map(|(&id, _)| id)
                            .collect()
                    }
                }
            }
            Presence::Connection { client_id, status } => match status {
                Status::Offline => {
                    st.presence
                        .offline_connections
                        .insert(client_id.to_string());
                    let on_conn: HashSet<DeviceKey> = st
                        .presence
                        .devices
                        .iter()
                        .filter(|(_, (_, c))| c.as_deref() == Some(client_id))
                        .map(|(k, _)| k.clone())
                        .collect();
                    st.pending
                        .iter()
                        .filter(|(_, c)| {
                            on_conn.contains(&DeviceRef(&c.product_key, &c.device_name))
                        })
                        .map(|(&id, _)| id)
                        .collect()
                }
                _ => {
                    st.presence.offline_connections.remove(client_id);
                    Vec::new()
                }
            },
        };
        let done: Vec<_> = gone
            .into_iter()
            .filter_map(|id| st.finish(id, RrpcCode::HalfConn, None))
            .collect();
        drop(st);
        self.complete(done);
    }

    fn on_connection_error(&self, e: &ConnectionError) {
        let was = self.connected.swap(false, Ordering::SeqCst);
        let msg = match e {
            ConnectionError::Io(io) => io.to_string(),
            ConnectionError::ConnectionRefused(c) => {
                format!("broker refused the connection ({c:?})")
            }
            ConnectionError::NetworkTimeout => "connection attempt timed out".to_string(),
            other => other.to_string(),
        };
        if was {
            warn!(
                "caller lost its connection to {}:{}: {msg}",
                self.cfg.host, self.cfg.port
            );
        }
        *self.last_error.lock() = Some(msg);
        // Responses cannot reach a dropped connection: end every waiting call.
        let mut st = self.state.lock();
        let ids: Vec<u64> = st.pending.keys().copied().collect();
        let done: Vec<_> = ids
            .into_iter()
            .filter_map(|id| st.finish(id, RrpcCode::Unknown, None))
            .collect();
        st.ready = false;
        st.outbox.clear(); // their calls just ended
        self.ready.notify_all();
        drop(st);
        self.complete(done);
    }
}

async fn drive(inner: Arc<Inner>, eventloop: &mut EventLoop, mut stop: watch::Receiver<bool>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let mut delay_ms = 100u64;
    loop {
        let ev = tokio::select! {
            biased;
            _ = &mut stopped => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => inner.on_publish(&p.topic, &p.payload),
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay_ms = 100;
                inner.on_connack();
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => inner.on_outgoing_subscribe(pkid),
            Ok(Event::Incoming(Packet::SubAck(a))) => inner.on_suback(a.pkid, &a.return_codes),
            Ok(_) => {}
            Err(e) => {
                inner.on_connection_error(&e);
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                }
                delay_ms = (delay_ms * 2).min(5000);
            }
        }
    }
    if inner.connected.load(Ordering::SeqCst) {
        let _ = inner.mqtt.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    inner.connected.store(false, Ordering::SeqCst);
}

/// Hands queued requests to rumqttc from the caller's own thread.
async fn send_outbox(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = inner.outbox_ready.notified() => {}
        }
        let batch = std::mem::take(&mut inner.state.lock().outbox);
        let mut failed = Vec::new();
        for (id, topic, payload) in batch {
            if inner
                .mqtt
                .try_publish(topic, QoS::AtMostOnce, false, payload)
                .is_err()
            {
                failed.push(id);
            }
        }
        if !failed.is_empty() {
            warn!(
                "{} request(s) could not be queued for sending; they end UNKNOWN",
                failed.len()
            );
            let mut st = inner.state.lock();
            let done: Vec<_> = failed
                .into_iter()
                .filter_map(|id| st.finish(id, RrpcCode::Unknown, None))
                .collect();
            drop(st);
            inner.complete(done);
        }
    }
}

/// Ends calls whose timeout passed, at their deadline.
async fn expire_calls(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let now = now_ms();
        let next = inner.state.lock().deadlines.first().map(|&(d, _)| d);
        let wait = match next {
            Some(d) if d > now => (d - now).min(1000),
            Some(_) => 0,
            // Every timeout is at least 1000 ms, so a call made meanwhile cannot be missed.
            None => 1000,
        };
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let now = now_ms();
        let mut st = inner.state.lock();
        let mut done = Vec::new();
        while let Some(&(d, id)) = st.deadlines.first() {
            if d > now {
                break;
            }
            if let Some(x) = st.finish(id, RrpcCode::Timeout, None) {
                done.push(x);
            }
        }
        drop(st);
        inner.complete(done);
    }
}
