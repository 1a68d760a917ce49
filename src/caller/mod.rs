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

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hashbrown::HashSet;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::dialect::{self, validate_part, Dialect, Identity};
use crate::guard::{self, Kind};
use crate::presence::{Presence, PresenceTopics, Status};
pub use crate::session::{ConnStats, ConnectionEvent, DisconnectCause, Listener, MqttConfig};
use crate::session::{
    DisconnectCause as Cause, Filter, Inbound, Link, Outbox, Owner, Publisher, QoS, Session,
    SubAcks,
};

mod api;
mod calls;
mod lease;

pub use api::{
    decode_request_base64, validate_params, CallParams, RrpcCode, RrpcResponse,
    CODE_INVALID_PARAMETER, CODE_SYSTEM_EXCEPTION,
};
pub use calls::Completion;
use calls::{DeviceKey, DeviceRef, Finished, PendingCall, State, Sub};
use lease::Lease;

/// Settings of a [`Caller`].
#[derive(Clone, Debug)]
pub struct CallerConfig {
    /// The broker and how to connect to it. `mqtt.client_id` `None` derives
    /// `rrpccaller` + 16 random hex digits. `mqtt.connect_timeout_ms` (at
    /// least 1) is how long [`Caller::connect`] waits for the connection and
    /// the presence snapshot.
    pub mqtt: MqttConfig,
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
            mqtt: MqttConfig::new(host, port),
            max_payload: 256 * 1024,
            max_in_flight: 65_536,
            presence: Some(PresenceTopics::default()),
        }
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

struct Inner {
    cfg: CallerConfig,
    client_id: String,
    link: Arc<Link>,
    publisher: Publisher,
    state: Mutex<State>,
    /// Connected, subscribed and (presence on) the retained snapshot is in.
    ready: AtomicBool,
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
            .field("broker", &self.inner.link.address())
            .finish()
    }
}

/// Whether the current thread is driving a caller (its own thread, or a thread
/// inside a blocking call): blocking there on a call, or dropping a caller,
/// would wait for this very thread.
pub fn on_caller_thread() -> bool {
    guard::inside_kind(Kind::CallerDriver)
}

/// A subscription of the caller (responses, presence, its sync topic): QoS 0,
/// and without No Local even on MQTT 5, so a custom-topic request still comes
/// back to the caller first, as `own_echo_expected` counts on.
fn response_filter(topic: String) -> Filter {
    Filter {
        topic,
        qos: QoS::AtMostOnce,
        no_local: false,
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
        if cfg.max_in_flight == 0 || cfg.max_payload == 0 {
            return bad("max_in_flight and max_payload must be at least 1");
        }
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
            cfg.max_in_flight.min(1 << 20).saturating_add(64),
            link.clone(),
        );

        let mut start = [0u8; 8];
        api::fill_random(&mut start);
        // Ids look like Alibaba's (about 8.9e17) and never repeat within a caller.
        let first_id =
            100_000_000_000_000_000 + u64::from_le_bytes(start) % 800_000_000_000_000_000;
        let connect_timeout = cfg.mqtt.connect_timeout_ms;
        let inner = Arc::new(Inner {
            cfg,
            client_id,
            link: link.clone(),
            publisher: session.publisher(),
            state: Mutex::new(State::default()),
            ready: AtomicBool::new(false),
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
        let r = guard::enter(Kind::CallerDriver, self.inner.key(), || {
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
        if !inner.link.is_connected() {
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
                    .publisher
                    .subscribe(response_filter(filter.clone()))
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

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.link.notify();
    }

    /// A response filter's SUBACK: the filter is active, and the calls that
    /// waited for it go out; when it was refused (or a request cannot be
    /// queued) they end UNKNOWN, returned for completion.
    fn activate(
        &self,
        st: &mut State,
        filter: String,
        refused: bool,
    ) -> Vec<(Completion, RrpcResponse)> {
        let waiting = match st.subs.insert(filter, Sub::Active) {
            Some(Sub::Requested(w)) => w,
            _ => Vec::new(),
        };
        let mut done = Vec::new();
        for id in waiting {
            let Some((topic, payload)) = st.pending.get_mut(&id).and_then(|c| c.unsent.take())
            else {
                continue;
            };
            if refused
                || self
                    .publisher
                    .publish(topic, QoS::AtMostOnce, false, payload)
                    .is_err()
            {
                done.extend(st.finish(id, RrpcCode::Unknown, None));
            }
        }
        done
    }

    fn route(&self, topic: &str, payload: &[u8]) {
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
                let what = st.finished(id);
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
}

impl Owner for Inner {
    /// The Alibaba response wildcard, the presence topics and the caller's sync
    /// topic, and every response filter a call needed so far.
    fn filters(&self) -> Vec<Filter> {
        let mut filters = vec![Dialect::AlibabaSystem.response_wildcard(None)];
        if let Some(p) = &self.cfg.presence {
            filters.extend(p.filters());
            filters.push(sync_topic(&self.client_id));
        }
        let st = self.state.lock();
        for f in st.subs.keys() {
            if !filters.contains(f) {
                filters.push(f.clone());
            }
        }
        filters.into_iter().map(response_filter).collect()
    }

    /// Every response filter waits for the SUBACK again (clean session); calls
    /// made meanwhile wait with it.
    fn on_connack(&self, _out: &mut Outbox<'_>) {
        let mut st = self.state.lock();
        st.sub_queue.clear();
        st.sub_pkids.clear();
        for sub in st.subs.values_mut() {
            if matches!(sub, Sub::Active) {
                *sub = Sub::Requested(Vec::new());
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

    fn on_publish(&self, topic: &str, payload: &[u8], _how: Inbound) {
        self.route(topic, payload);
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
        for (id, topic, payload) in batch {
            if inner
                .publisher
                .publish(topic, QoS::AtMostOnce, false, payload)
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
