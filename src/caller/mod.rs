//! The cloud side: RRpc calls to devices through one MQTT connection, with the
//! semantics of the RRpc API (parameters, validation, `RrpcCode`, response
//! fields) on any plain broker.
//!
//! One [`Caller`] owns one connection and a background thread (a one-thread tokio
//! runtime). Calls may be made from any number of threads at once
//! ([`Caller::call`] blocks; [`Caller::call_async`] returns at once and completes
//! a callback exactly once). Each call gets a random message id (63 bits) from the
//! operating system (unique among the calls in flight, never 0), goes out on
//! the dialect's request topic at QoS 0 (on MQTT 5 with a Message Expiry
//! Interval equal to its timeout), and is completed only by a message on the
//! called device's own response topic with that id, from the dialect's response
//! wildcard, which is subscribed once per dialect (or custom topic) before the
//! first request that needs it and unsubscribed once no call has used it for
//! `subscription_idle_ms`. Retained responses are never taken.
//!
//! With presence on (see [`crate::presence`]) the caller also follows the
//! devices' retained status: OFFLINE comes back at once for a device known to be
//! offline, and HALFCONN as soon as a device's last will arrives while a call to
//! it waits. Otherwise a call ends in SUCCESS or TIMEOUT, or UNKNOWN when the
//! caller's own connection fails.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::callback::{self, Kind};
use crate::clock::now_ms;
use crate::counters::{counter_set, Counter, Counters};
use crate::dialect::{self, validate_part, Dialect, Identity};
use crate::presence::{Presence, PresenceTopics, Status};
pub use crate::session::{ConnStats, ConnectionEvent, DisconnectCause, Listener, MqttConfig};
use crate::session::{
    DisconnectCause as Cause, Filter, Inbound, Link, MqttVersion, Outbox, Owner, Publisher, QoS,
    Session, SubAcks,
};

mod api;
mod calls;
mod fuzz;
mod lease;

pub use api::{
    decode_request_base64, validate_params, CallParams, RrpcCode, RrpcResponse,
    CODE_INVALID_PARAMETER, CODE_SYSTEM_EXCEPTION,
};
pub use calls::Completion;
use calls::{DeviceKey, DeviceStatus, Finished, Outgoing, PendingCall, State, Sub, SubEntry};
#[doc(hidden)]
pub use fuzz::ResponseFuzz;
use lease::Lease;

/// Settings of a [`Caller`].
#[derive(Clone, Debug)]
pub struct CallerConfig {
    /// The broker and how to connect to it. `mqtt.client_id` `None` derives
    /// `rrpccaller` + 16 random hex digits. `mqtt.connect_timeout_ms` (at
    /// least 1) is how long [`Caller::connect`] waits for the connection and
    /// the presence snapshot.
    pub mqtt: MqttConfig,
    /// Largest request or response payload, in bytes: 1 to
    /// 16 MiB.
    pub max_payload: usize,
    /// Most calls in flight at once, 1 to 65,536; more are
    /// refused (`Success` false).
    pub max_in_flight: usize,
    /// Most request bytes held by the calls in flight, 1 to
    /// 1 GiB (and at least `max_payload`); a call that
    /// would exceed it is refused (`Success` false).
    pub max_in_flight_bytes: usize,
    /// Presence topics to follow; `None` turns OFFLINE and HALFCONN off.
    pub presence: Option<PresenceTopics>,
    /// Most devices (and, separately, connections) whose presence the caller
    /// remembers, 1 to 1,000,000; beyond it the entry updated
    /// longest ago is forgotten (counted in `presence_evicted`).
    pub max_presence: usize,
    /// Most response subscriptions made for calls (custom topics, the Tencent
    /// wildcard) at once, 1 to 65,536; a call that needs
    /// one more while all are in use is refused (`Success` false).
    pub max_subscriptions: usize,
    /// How long a response subscription stays after the last call that used it
    /// ended, in ms (at most 3,600,000); then it is
    /// unsubscribed.
    pub subscription_idle_ms: u32,
}

impl CallerConfig {
    // The maxima, also in the C header as RRPC_CALLER_MAX_* (`ffi::caller`).
    /// Largest `max_payload` a caller accepts (16 MiB).
    pub(crate) const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
    /// Largest `max_in_flight` a caller accepts.
    pub(crate) const MAX_IN_FLIGHT: usize = 65_536;
    /// Largest `max_in_flight_bytes` a caller accepts (1 GiB).
    pub(crate) const MAX_IN_FLIGHT_BYTES: usize = 1024 * 1024 * 1024;
    /// Largest `max_presence` a caller accepts.
    pub(crate) const MAX_PRESENCE: usize = 1_000_000;
    /// Largest `max_subscriptions` a caller accepts.
    pub(crate) const MAX_SUBSCRIPTIONS: usize = 65_536;
    /// Largest `subscription_idle_ms` a caller accepts (one hour).
    pub(crate) const MAX_SUBSCRIPTION_IDLE_MS: u32 = 3_600_000;

    pub fn new(host: impl Into<String>, port: u16) -> CallerConfig {
        CallerConfig {
            mqtt: MqttConfig::new(host, port),
            max_payload: 256 * 1024,
            max_in_flight: 65_536,
            max_in_flight_bytes: 64 * 1024 * 1024,
            presence: Some(PresenceTopics::default()),
            max_presence: 100_000,
            max_subscriptions: 1024,
            subscription_idle_ms: 30_000,
        }
    }

    /// Checks the bounds (see each field); the text names the field.
    pub fn validate_bounds(&self) -> Result<(), String> {
        let check = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(format!("{name} {v} is outside 1 to {max}"))
            } else {
                Ok(())
            }
        };
        check("max_payload", self.max_payload, Self::MAX_PAYLOAD)?;
        check("max_in_flight", self.max_in_flight, Self::MAX_IN_FLIGHT)?;
        check(
            "max_in_flight_bytes",
            self.max_in_flight_bytes,
            Self::MAX_IN_FLIGHT_BYTES,
        )?;
        if self.max_in_flight_bytes < self.max_payload {
            return Err(format!(
                "max_in_flight_bytes {} is smaller than max_payload {}",
                self.max_in_flight_bytes, self.max_payload
            ));
        }
        check("max_presence", self.max_presence, Self::MAX_PRESENCE)?;
        check(
            "max_subscriptions",
            self.max_subscriptions,
            Self::MAX_SUBSCRIPTIONS,
        )?;
        if self.subscription_idle_ms > Self::MAX_SUBSCRIPTION_IDLE_MS {
            return Err(format!(
                "subscription_idle_ms {} is more than {}",
                self.subscription_idle_ms,
                Self::MAX_SUBSCRIPTION_IDLE_MS
            ));
        }
        Ok(())
    }
}

/// Why a caller could not be created, or an operation on it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerError {
    InvalidArgument(String),
    /// The text tells a failed connect from a dropped connection.
    ConnectFailed(String),
    /// The TLS configuration cannot be used (unreadable or malformed PEM, a key
    /// that does not match its certificate, no CA certificates).
    Tls(String),
    WrongState(&'static str),
}

impl fmt::Display for CallerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            CallerError::ConnectFailed(m) => f.write_str(m),
            CallerError::Tls(m) => write!(f, "TLS: {m}"),
            CallerError::WrongState(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallerError {}

/// A caller's counters: each counts from the caller's creation, except the
/// gauge `in_flight`. This struct is also the C API's `rrpc_caller_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallerStats {
    /// Calls made (refused ones included).
    pub calls: u64,
    /// Calls answered by the device (RrpcCode SUCCESS).
    pub success: u64,
    /// Calls with no answer in time (TIMEOUT).
    pub timeout: u64,
    /// Calls to a device known to be offline (OFFLINE).
    pub offline: u64,
    /// Calls to a device whose connection dropped moments ago (HALFCONN).
    pub halfconn: u64,
    /// Calls that failed in the caller (UNKNOWN).
    pub unknown: u64,
    /// Calls refused before sending (parameters, not connected, too many in flight).
    pub refused: u64,
    /// Responses that arrived after their call had timed out (discarded).
    pub late_responses: u64,
    /// Responses for ids this caller never sent or no longer remembers.
    pub unknown_responses: u64,
    /// Second responses to a call already answered (discarded: the first wins).
    pub duplicate_responses: u64,
    /// Retained messages on a response topic (never taken as a reply).
    pub retained_responses: u64,
    /// Messages with the id of a call in flight on another topic than the
    /// called device's response topic (another device, or another ContentType):
    /// discarded, the call goes on.
    pub mismatched_responses: u64,
    /// Presence entries forgotten to stay within `max_presence`.
    pub presence_evicted: u64,
    /// Response subscriptions dropped after `subscription_idle_ms` unused.
    pub unsubscribed: u64,
    /// Gauge: calls in flight now.
    pub in_flight: u64,
}

counter_set!(CallerStats {
    calls,
    success,
    timeout,
    offline,
    halfconn,
    unknown,
    refused,
    late_responses,
    unknown_responses,
    duplicate_responses,
    retained_responses,
    mismatched_responses,
    presence_evicted,
    unsubscribed,
    in_flight,
});

struct Inner {
    cfg: CallerConfig,
    client_id: String,
    link: Arc<Link>,
    publisher: Publisher,
    state: Mutex<State>,
    /// Connected, subscribed and (presence on) the retained snapshot is in.
    ready: AtomicBool,
    /// Keys the hash of a custom-topic request's payload (its echo).
    echo_key: hashbrown::DefaultHashBuilder,
    stats: Counters<CallerStats>,
    /// Signalled when the outbox goes from empty to not empty.
    outbox_ready: tokio::sync::Notify,
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
            .field("broker", &self.inner.link.address())
            .finish()
    }
}

/// Whether the current thread is driving a caller (its own thread, or a thread
/// inside a blocking call): blocking there on a call, or dropping a caller,
/// would wait for this very thread.
pub fn on_caller_thread() -> bool {
    callback::inside_kind(Kind::CallerDriver)
}

/// A subscription of the caller (responses, presence): QoS 0, with No Local
/// (MQTT 5 only), so that a custom-topic request, whose topic is its reply's,
/// does not come back to the caller.
fn response_filter(topic: String) -> Filter {
    Filter {
        topic,
        qos: QoS::AtMostOnce,
        no_local: true,
    }
}

/// The Message Expiry Interval of a request with `timeout_ms`: the timeout
/// rounded up to whole seconds.
fn expiry_s(timeout_ms: u32) -> u32 {
    timeout_ms.div_ceil(1000)
}

/// A message id as the caller sends them: the canonical decimal form of a
/// non-zero 64-bit number (no sign, no leading zero, no other character).
pub fn parse_message_id(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse::<u64>().ok()
}

/// A fresh message id: 63 random bits from the operating system (getrandom(2)),
/// so another client cannot guess the id of a call in flight; never 0. The top
/// bit stays clear so that the id is also a valid signed 64-bit `MessageId`
/// (the RRpc API's Java and JSON clients read it as a `long`).
fn random_id() -> u64 {
    loop {
        let mut b = [0u8; 8];
        api::fill_random(&mut b);
        let id = u64::from_le_bytes(b) & (i64::MAX as u64);
        if id != 0 {
            return id;
        }
    }
}

fn sync_topic(client_id: &str) -> String {
    format!("rrpc/caller/{client_id}/sync")
}

impl Caller {
    /// Connects, subscribes the Alibaba response wildcard and the presence topics,
    /// and returns once the broker has delivered the retained presence snapshot (or
    /// fails after `mqtt.connect_timeout_ms`).
    pub fn connect(cfg: CallerConfig) -> Result<Caller, CallerError> {
        let bad = |m: &str| Err(CallerError::InvalidArgument(m.to_string()));
        cfg.mqtt.validate().map_err(CallerError::InvalidArgument)?;
        cfg.validate_bounds()
            .map_err(CallerError::InvalidArgument)?;
        if cfg.mqtt.connect_timeout_ms == 0 {
            return bad(
                "connect_timeout_ms must be at least 1: the caller waits for its connection",
            );
        }
        if let Some(p) = &cfg.presence {
            p.validate()
                .map_err(|e| CallerError::InvalidArgument(e.to_string()))?;
        }
        let client_id = match &cfg.mqtt.client_id {
            Some(id) => {
                validate_part("client id", id)
                    .map_err(|e| CallerError::InvalidArgument(e.to_string()))?;
                id.clone()
            }
            None => {
                let mut b = [0u8; 8];
                api::fill_random(&mut b);
                format!("rrpccaller{:016x}", u64::from_le_bytes(b))
            }
        };
        let tls = cfg
            .mqtt
            .tls_transport()
            .map_err(|e| CallerError::Tls(e.to_string()))?;
        let link = Arc::new(Link::new(cfg.mqtt.address()));
        // This thread reports a failure to connect; the log does not.
        let _watch = link.watch();
        let session = Session::open(
            &cfg.mqtt,
            tls,
            &client_id,
            cfg.max_payload,
            cfg.max_in_flight.saturating_add(64),
            link.clone(),
        );

        let connect_timeout = cfg.mqtt.connect_timeout_ms;
        let max_presence = cfg.max_presence;
        let inner = Arc::new(Inner {
            cfg,
            client_id,
            link: link.clone(),
            publisher: session.publisher(),
            state: Mutex::new(State::new(max_presence)),
            ready: AtomicBool::new(false),
            echo_key: hashbrown::DefaultHashBuilder::default(),
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
        // Each a task of its own; the timers and the sender end on `stop` too.
        runtime.spawn(expire_calls(inner.clone(), stop_rx.clone()));
        runtime.spawn(send_outbox(inner.clone(), stop_rx.clone()));
        let driver = session.spawn(runtime.handle(), inner.clone(), stop_rx.clone());
        let lease = Arc::new(Lease::default());
        let thread = lease
            .spawn_thread(runtime.clone(), inner.key(), stop_rx, driver)
            .map_err(|e| CallerError::InvalidArgument(format!("cannot start thread: {e}")))?;
        let caller = Caller {
            inner,
            stop,
            thread: Some(thread),
            runtime,
            lease,
        };
        let deadline = Instant::now() + Duration::from_millis(u64::from(connect_timeout));
        let i = &caller.inner;
        // A refused or unreachable broker fails at once, as Client::start does.
        let outcome = link.wait(deadline, || {
            if i.ready.load(Ordering::SeqCst) {
                Some(None)
            } else {
                link.last_error().map(Some)
            }
        });
        match outcome {
            Some(None) => Ok(caller),
            Some(Some(e)) if e.is_tls() => Err(CallerError::Tls(e.to_string())),
            Some(Some(e)) => Err(CallerError::ConnectFailed(e.to_string())),
            None => Err(CallerError::ConnectFailed(format!(
                "could not connect to {}: no answer within {connect_timeout} ms",
                link.address()
            ))),
        }
    }

    /// The MQTT client id of the caller's connection.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Whether the caller is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// Connection counters.
    pub fn conn_stats(&self) -> ConnStats {
        self.inner.link.stats()
    }

    /// Sets (or clears) the connection listener: disconnected (with the cause
    /// and reason), reconnecting (with the delay), connected. It runs on the
    /// thread driving the caller. When it returns, the old listener is not
    /// running on another thread and will not run again; from inside the
    /// listener itself it fails with `WrongState`.
    pub fn set_connection_listener(&self, f: Option<Box<Listener>>) -> Result<(), CallerError> {
        self.inner.link.set_listener(f).map_err(|_| {
            CallerError::WrongState("the connection listener cannot be replaced from inside itself")
        })
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
        self.lease.begin_call();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.call_async(
            p,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        // Drive the connection on this thread until the answer is here.
        let r = callback::enter(Kind::CallerDriver, self.inner.key(), || {
            self.runtime.block_on(rx)
        });
        self.lease.end_call();
        r.unwrap_or_else(|_| dropped())
    }

    /// Starts a call; `done` runs exactly once with the outcome: at once (on this
    /// thread) for a refused call or an OFFLINE device, else on the thread driving
    /// the caller (its own thread, or one waiting in a blocking `call()`).
    pub fn call_async(&self, p: &CallParams<'_>, done: Completion) {
        let inner = &self.inner;
        inner.bump(CallerStats::calls);
        if let Err(why) = validate_params(p, inner.cfg.max_payload) {
            inner.bump(CallerStats::refused);
            return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
        }
        let dialect = match (p.dialect, p.custom_topic) {
            (Dialect::AlibabaSystem, Some(_)) => Dialect::AlibabaCustom,
            (d, _) => d,
        };
        let timeout = p.timeout_ms.unwrap_or(4000);
        if !inner.link.is_connected() {
            inner.bump(CallerStats::refused);
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
            inner.bump(CallerStats::offline);
            return done(RrpcResponse::done(None, RrpcCode::Offline, None));
        }
        let refuse = |st: parking_lot::MutexGuard<'_, State>, done: Completion, why: String| {
            drop(st);
            inner.bump(CallerStats::refused);
            done(RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                format!("A system exception occurred: {why}"),
            ))
        };
        if st.pending.len() >= inner.cfg.max_in_flight {
            let why = format!("{} calls are already in flight", inner.cfg.max_in_flight);
            return refuse(st, done, why);
        }
        if st.bytes + p.payload.len() > inner.cfg.max_in_flight_bytes {
            let why = format!(
                "the calls in flight already hold {} request bytes (at most {})",
                st.bytes, inner.cfg.max_in_flight_bytes
            );
            return refuse(st, done, why);
        }
        let mut id = random_id();
        while st.pending.contains_key(&id) || st.finished(id).is_some() {
            id = random_id();
        }
        let ident = Identity {
            product_key: p.product_key,
            device_name: p.device_name,
            custom_topic: p.custom_topic,
        };
        // Validated above: a ContentType is one of the RRpc values, all below 256.
        let content_type = p.content_type.and_then(|c| u8::try_from(c).ok());
        let level = dialect::message_id_level(&id.to_string(), content_type);
        let request_topic = dialect.request_topic(&ident, &level);
        let response_topic = dialect.response_topic(&ident, &level);
        let filter = dialect.response_wildcard(p.custom_topic);
        let deadline_ms = now_ms() + u64::from(timeout);
        // On MQTT 3.1.1 a custom-topic request comes back to the caller on its
        // reply's topic; No Local keeps it away on MQTT 5.
        let echo = (dialect == Dialect::AlibabaCustom
            && inner.cfg.mqtt.protocol != MqttVersion::V5)
            .then(|| inner.echo_hash(p.payload));
        let mut call = PendingCall {
            device: DeviceKey(p.product_key.into(), p.device_name.into()),
            deadline_ms,
            response_topic: response_topic.into(),
            filter: filter.as_str().into(),
            echo,
            bytes: p.payload.len(),
            unsent: None,
            done,
        };
        let publish_now = match st.subs.get_mut(&filter) {
            Some(SubEntry {
                state: Sub::Active, ..
            }) => true,
            Some(SubEntry {
                state: Sub::Requested(waiting),
                ..
            }) => {
                waiting.push(id);
                false
            }
            None => {
                let permanent = Dialect::AlibabaSystem.response_wildcard(None);
                let in_use =
                    |st: &State| st.subs.len() - usize::from(st.subs.contains_key(&permanent));
                if filter != permanent && in_use(&st) >= inner.cfg.max_subscriptions {
                    // Make room with the unused ones first, grace period or not.
                    inner.drop_idle_subscriptions(&mut st, 0);
                    if in_use(&st) >= inner.cfg.max_subscriptions {
                        let why = format!(
                            "{} response subscriptions are in use (max_subscriptions)",
                            in_use(&st)
                        );
                        return refuse(st, call.done, why);
                    }
                }
                if inner
                    .publisher
                    .subscribe(response_filter(filter.clone()))
                    .is_err()
                {
                    return refuse(st, call.done, "the outgoing queue is full".to_string());
                }
                st.sub_queue.push_back(filter.clone());
                st.subs.insert(
                    filter,
                    SubEntry {
                        state: Sub::Requested(vec![id]),
                        users: 0,
                        idle_since_ms: 0,
                    },
                );
                false
            }
        };
        let out = (request_topic, p.payload.to_vec(), expiry_s(timeout));
        if publish_now {
            // The caller's own thread hands it to rumqttc (see `send_outbox`), so
            // application threads never contend on the MQTT request channel.
            st.outbox.push((id, out));
        } else {
            call.unsent = Some(out);
        }
        st.insert(id, call);
        let wake = publish_now && st.outbox.len() == 1;
        drop(st);
        if wake {
            inner.outbox_ready.notify_one();
        }
    }

    /// The counters now.
    pub fn stats(&self) -> CallerStats {
        let st = self.inner.state.lock();
        CallerStats {
            in_flight: st.pending.len() as u64,
            presence_evicted: st.presence.evicted,
            ..self.inner.stats.snapshot()
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
        self.lease.stop();
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Calls still waiting end now rather than never.
        let waiting = self.inner.state.lock().finish_all(RrpcCode::Unknown);
        for (done, r) in waiting {
            done(r);
        }
    }
}

impl Inner {
    fn key(&self) -> usize {
        self as *const Inner as usize
    }

    fn bump(&self, c: Counter<CallerStats>) {
        self.stats.bump(c);
    }

    fn count(&self, code: RrpcCode) {
        self.bump(match code {
            RrpcCode::Success => CallerStats::success,
            RrpcCode::Timeout => CallerStats::timeout,
            RrpcCode::Offline => CallerStats::offline,
            RrpcCode::HalfConn => CallerStats::halfconn,
            RrpcCode::Unknown => CallerStats::unknown,
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

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.link.notify();
    }

    /// The keyed hash a custom-topic request's own echo is recognised by.
    fn echo_hash(&self, payload: &[u8]) -> u64 {
        self.echo_key.hash_one(payload)
    }

    /// Publishes a request, on MQTT 5 with its Message Expiry Interval.
    fn publish_request(&self, (topic, payload, expiry): Outgoing) -> bool {
        self.publisher
            .publish_expiring(topic, QoS::AtMostOnce, payload, expiry)
            .is_ok()
    }

    /// Unsubscribes the response filters no call has used for `idle_ms` (the
    /// permanent Alibaba system wildcard stays).
    fn drop_idle_subscriptions(&self, st: &mut State, idle_ms: u64) {
        let now = now_ms();
        let permanent = Dialect::AlibabaSystem.response_wildcard(None);
        let idle: Vec<String> = st
            .subs
            .iter()
            .filter(|(f, e)| {
                e.users == 0
                    && matches!(e.state, Sub::Active)
                    && now.saturating_sub(e.idle_since_ms) >= idle_ms
                    && **f != permanent
            })
            .map(|(f, _)| f.clone())
            .collect();
        for f in idle {
            if self.publisher.unsubscribe(f.clone()).is_err() {
                break; // the queue is full: next round
            }
            st.subs.remove(&f);
            self.bump(CallerStats::unsubscribed);
            debug!("unsubscribed the unused response filter {f:?}");
        }
    }

    /// A response filter's SUBACK: the filter is active, and the calls that
    /// waited for it go out; when it was refused (or a request cannot be
    /// queued) they end UNKNOWN, returned for completion, and the filter is
    /// forgotten (the next call that needs it subscribes again).
    fn activate(
        &self,
        st: &mut State,
        filter: String,
        refused: bool,
    ) -> Vec<(Completion, RrpcResponse)> {
        let Some(entry) = st.subs.get_mut(&filter) else {
            return Vec::new();
        };
        let waiting = match std::mem::replace(&mut entry.state, Sub::Active) {
            Sub::Requested(w) => w,
            Sub::Active => Vec::new(),
        };
        let mut done = Vec::new();
        for id in waiting {
            let Some(out) = st.pending.get_mut(&id).and_then(|c| c.unsent.take()) else {
                continue;
            };
            if refused || !self.publish_request(out) {
                done.extend(st.finish(id, RrpcCode::Unknown, None));
            }
        }
        if refused {
            st.subs.remove(&filter);
        }
        done
    }

    fn route(&self, topic: &str, payload: &[u8], how: Inbound) {
        if let Some(p) = &self.cfg.presence {
            if topic == sync_topic(&self.client_id) {
                self.set_ready(true);
                return;
            }
            if let Some(pr) = p.parse(topic, payload) {
                self.on_presence(pr);
                return;
            }
        }
        self.on_response(topic, payload, how.retain);
    }

    /// A message on a response topic. Only a live message on the called
    /// device's own response topic, with the call's whole message-id level,
    /// completes a call; the caller's own custom-topic request (MQTT 3.1.1) is
    /// recognised by its topic and payload, whenever it comes.
    fn on_response(&self, topic: &str, payload: &[u8], retained: bool) {
        let level = Dialect::ALL
            .iter()
            .find_map(|d| match d.parse_response(topic) {
                Ok(r) => Some(Ok(r.message_id)),
                Err(dialect::TopicError::Malformed(_)) => Some(Err(())),
                Err(dialect::TopicError::NoMatch) => None,
            });
        let level = match level {
            None => return, // not a response topic at all
            Some(Err(())) => {
                self.bump(CallerStats::unknown_responses);
                return debug!("malformed response topic ({} bytes) discarded", topic.len());
            }
            Some(Ok(l)) => l,
        };
        if retained {
            // Stored by the broker earlier, by anyone allowed to publish there.
            self.bump(CallerStats::retained_responses);
            return debug!("retained message on a response topic discarded");
        }
        let (bare_id, _) = dialect::split_content_type(level);
        let Some(id) = parse_message_id(bare_id) else {
            self.bump(CallerStats::unknown_responses);
            return;
        };
        let mut st = self.state.lock();
        let Some(call) = st.pending.get_mut(&id) else {
            let what = st.finished(id);
            match what {
                Some(Finished::AnsweredEchoDue) => st.echo_seen(id),
                Some(Finished::TimedOut) => {
                    self.bump(CallerStats::late_responses);
                    debug!("response {id} arrived after its call timed out; discarded");
                }
                Some(Finished::Answered) => self.bump(CallerStats::duplicate_responses),
                _ => self.bump(CallerStats::unknown_responses),
            }
            return;
        };
        if *call.response_topic != *topic {
            drop(st);
            self.bump(CallerStats::mismatched_responses);
            return debug!("a message with the id of call {id} on another device's topic or with another ContentType; discarded");
        }
        if call.echo.is_some_and(|h| h == self.echo_hash(payload)) {
            call.echo = None; // the caller's own request, back from the broker
            return;
        }
        let done = st.finish(id, RrpcCode::Success, Some(payload.to_vec()));
        drop(st);
        self.complete(done.into_iter().collect());
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
                        st.presence
                            .set_device(key, Some(DeviceStatus { online: true, conn }));
                        Vec::new()
                    }
                    Status::Cleared => {
                        st.presence.set_device(key, None);
                        Vec::new()
                    }
                    Status::Offline => {
                        let ids = st.calls_to(&key);
                        st.presence.set_device(
                            key,
                            Some(DeviceStatus {
                                online: false,
                                conn: None,
                            }),
                        );
                        ids
                    }
                }
            }
            Presence::Connection { client_id, status } => match status {
                Status::Offline => {
                    st.presence.set_connection_offline(client_id, true);
                    // Only the devices on this connection, and only their calls.
                    let on_conn: Vec<DeviceKey> = st
                        .presence
                        .by_conn
                        .get(client_id)
                        .map(|d| d.iter().cloned().collect())
                        .unwrap_or_default();
                    on_conn.iter().flat_map(|k| st.calls_to(k)).collect()
                }
                _ => {
                    st.presence.set_connection_offline(client_id, false);
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
}

impl Owner for Inner {
    /// The Alibaba response wildcard, the presence topics and the caller's sync
    /// topic, and every response filter a call needed so far.
    fn filters(&self) -> Vec<Filter> {
        let mut filters = vec![Dialect::AlibabaSystem.response_wildcard(None)];
        if let Some(p) = &self.cfg.presence {
            filters.extend(p.filters());
        }
        let st = self.state.lock();
        let mut seen: hashbrown::HashSet<String> = filters.iter().cloned().collect();
        for f in st.subs.keys() {
            if seen.insert(f.clone()) {
                filters.push(f.clone());
            }
        }
        let mut filters: Vec<Filter> = filters.into_iter().map(response_filter).collect();
        if self.cfg.presence.is_some() {
            // The caller's own message must come back on this one.
            filters.push(Filter {
                topic: sync_topic(&self.client_id),
                qos: QoS::AtMostOnce,
                no_local: false,
            });
        }
        filters
    }

    /// Every response filter waits for the SUBACK again (clean session); calls
    /// made meanwhile wait with it.
    fn on_connack(&self, _out: &mut Outbox<'_>) {
        let mut st = self.state.lock();
        st.sub_queue.clear();
        st.sub_pkids.clear();
        for sub in st.subs.values_mut() {
            if matches!(sub.state, Sub::Active) {
                sub.state = Sub::Requested(Vec::new());
            }
        }
    }

    /// The filters are active: waiting calls go out (or end UNKNOWN when their
    /// filter was refused), then the presence sync message.
    fn on_subscribed(&self, refused: &[String]) {
        let mut st = self.state.lock();
        let filters: Vec<String> = st.subs.keys().cloned().collect();
        let mut done = Vec::new();
        for f in filters {
            let refused_here = refused.contains(&f);
            done.extend(self.activate(&mut st, f, refused_here));
        }
        if !refused.is_empty() {
            warn!("broker refused caller subscription(s) {refused:?}; calls that needed them end UNKNOWN");
        }
        drop(st);
        if self.cfg.presence.is_some() {
            // Everything the broker had retained for us was sent before this comes
            // back (see route); then the caller is ready.
            if self
                .publisher
                .publish(
                    sync_topic(&self.client_id),
                    QoS::AtMostOnce,
                    false,
                    b"sync".to_vec(),
                )
                .is_err()
            {
                warn!("caller could not queue its presence sync message");
            }
        } else {
            self.set_ready(true);
        }
        self.complete(done);
    }

    fn on_publish(&self, topic: &str, payload: &[u8], how: Inbound) {
        self.route(topic, payload, how);
    }

    fn on_outgoing_subscribe(&self, pkid: u16) {
        let mut st = self.state.lock();
        if let Some(f) = st.sub_queue.pop_front() {
            st.sub_pkids.insert(pkid, f);
        }
    }

    /// A response filter a call subscribed: its waiting calls go out.
    fn on_suback(&self, pkid: u16, acks: SubAcks<'_>) {
        let mut st = self.state.lock();
        let Some(filter) = st.sub_pkids.remove(&pkid) else {
            return;
        };
        let refused = acks.refused() > 0;
        if refused {
            self.link.note_subscribe_failures(1, acks.reason());
            warn!("broker refused the caller subscription {filter:?}; calls that needed it end UNKNOWN");
        }
        let done = self.activate(&mut st, filter, refused);
        drop(st);
        self.complete(done);
    }

    /// Responses cannot reach a dropped connection: every waiting call ends.
    fn on_disconnected(&self, _cause: Cause) {
        let mut st = self.state.lock();
        let done = st.finish_all(RrpcCode::Unknown);
        st.outbox.clear(); // their calls just ended
        drop(st);
        self.set_ready(false);
        self.complete(done);
    }
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
        for (id, out) in batch {
            if !inner.publish_request(out) {
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
        // A call ends once its deadline has wholly passed: the ms clock
        // truncates, so `now == d` may still be up to 1 ms before it.
        let wait = match next {
            Some(d) if d >= now => (d - now + 1).min(1000),
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
        let idle_ms = u64::from(inner.cfg.subscription_idle_ms);
        inner.drop_idle_subscriptions(&mut st, idle_ms);
        let mut done = Vec::new();
        while let Some(&(d, id)) = st.deadlines.first() {
            if d >= now {
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
