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
//!
//! Where each part lives: this file is the [`Caller`]; `config.rs` its settings
//! and errors; `stats.rs` its counters; `core.rs` what its handle, its runtime's
//! tasks and the threads in a blocking call share, and how it serves the
//! session; `api.rs` the RRpc API's parameters, codes and responses; `calls.rs`
//! the calls in flight and presence state; `lease.rs` who drives the runtime.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::callback::{self, Kind};
use crate::clock::now_ms;
use crate::dialect::envelope::wrap_request;
use crate::dialect::{self, validate_part, Dialect, Envelope, Identity};
pub use crate::session::{ConnStats, ConnectionEvent, DisconnectCause, Listener, MqttConfig};
use crate::session::{ConnectionState, MqttVersion, Session};

mod api;
mod calls;
mod config;
mod core;
mod stats;
// The response path without a broker, for the fuzz target: built only for
// fuzzing (cargo fuzz sets `--cfg fuzzing`) and for the unit tests.
#[cfg(any(fuzzing, test))]
mod fuzz;
mod lease;
mod mqtt5;

pub use api::{
    decode_request_base64, validate_params, CallParams, RrpcCode, RrpcResponse,
    CODE_INVALID_PARAMETER, CODE_SYSTEM_EXCEPTION,
};
pub use calls::Completion;
use calls::{DeviceKey, PendingCall, State, Sub, SubEntry};
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub use fuzz::ResponseFuzz;
use lease::Lease;
pub use mqtt5::{check_protocol, default_response_topic};

pub use config::{CallerConfig, CallerError};
pub use core::parse_message_id;
use core::{
    expire_calls, expiry_s, gateway_id, random_id, response_filter, send_outbox, unix_seconds,
    CallerCore,
};
use stats::CallerCounter;
pub use stats::CallerStats;

/// An RRpc caller over one MQTT connection. See the module documentation.
pub struct Caller {
    inner: Arc<CallerCore>,
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
                format!("rrpccaller{:016x}", crate::random::u64())
            }
        };
        let tls = cfg
            .mqtt
            .tls_transport()
            .map_err(|e| CallerError::Tls(e.to_string()))?;
        let link = Arc::new(ConnectionState::new(cfg.mqtt.address()));
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

        let mqtt5_topic = cfg
            .response_topic
            .clone()
            .unwrap_or_else(|| default_response_topic(&client_id));
        let connect_timeout = cfg.mqtt.connect_timeout_ms;
        let max_presence = cfg.max_presence;
        let inner = Arc::new(CallerCore {
            cfg,
            client_id,
            link: link.clone(),
            publisher: session.publisher(),
            state: Mutex::new(State::new(max_presence)),
            ready: AtomicBool::new(false),
            echo_key: hashbrown::DefaultHashBuilder::default(),
            stats: Default::default(),
            outbox_ready: tokio::sync::Notify::new(),
            mqtt5_topic,
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
        inner.bump(CallerCounter::calls);
        if let Err(why) = validate_params(p, inner.cfg.max_payload) {
            inner.bump(CallerCounter::refused);
            return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
        }
        if let Err(why) = check_protocol(p.dialect, inner.cfg.mqtt.protocol) {
            inner.bump(CallerCounter::refused);
            return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
        }
        let dialect = match (p.dialect, p.custom_topic) {
            (Dialect::AlibabaSystem, Some(_)) => Dialect::AlibabaCustom,
            (d, _) => d,
        };
        let timeout = p.timeout_ms.unwrap_or(dialect.default_timeout_ms());
        if !inner.link.is_connected() {
            inner.bump(CallerCounter::refused);
            return done(RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                "A system exception occurred: not connected to the broker",
            ));
        }
        let mut st = inner.state.lock();
        // Presence names devices by product key and device name: a
        // per-connection dialect's call names no device it could be about.
        if inner.cfg.presence.is_some()
            && !dialect.per_connection()
            && st.presence.online(p.product_key, p.device_name) == Some(false)
        {
            drop(st);
            inner.bump(CallerCounter::offline);
            return done(RrpcResponse::done(None, RrpcCode::Offline, None));
        }
        let refuse = |st: parking_lot::MutexGuard<'_, State>, done: Completion, why: String| {
            drop(st);
            inner.bump(CallerCounter::refused);
            done(RrpcResponse::failed(
                CODE_SYSTEM_EXCEPTION,
                format!("A system exception occurred: {why}"),
            ))
        };
        if st.pending.len() >= inner.cfg.max_in_flight {
            let why = format!("{} calls are already in flight", inner.cfg.max_in_flight);
            return refuse(st, done, why);
        }
        let envelope = dialect.envelope();
        let fresh = || match envelope {
            // ThingsBoard reads `data.id` with getAsInt(): a positive i32.
            Envelope::ThingsBoardGateway => gateway_id(),
            _ => random_id(),
        };
        let mut id = fresh();
        while st.pending.contains_key(&id) || st.finished(id).is_some() {
            id = fresh();
        }
        // An envelope dialect's request is its body: the id, name (and the
        // gateway's sub-device) around the payload, checked to be JSON above.
        let body = match envelope {
            Envelope::None => p.payload.to_vec(),
            e => match wrap_request(
                e,
                &id.to_string(),
                p.name.unwrap_or_default(),
                p.device_name,
                unix_seconds(),
                p.payload,
            ) {
                Ok(b) if b.len() <= inner.cfg.max_payload => b,
                Ok(b) => {
                    drop(st);
                    inner.bump(CallerCounter::refused);
                    let why = format!(
                        "the request in its {dialect} envelope is {} bytes, more than the {} allowed",
                        b.len(),
                        inner.cfg.max_payload
                    );
                    return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
                }
                Err(why) => {
                    drop(st);
                    inner.bump(CallerCounter::refused);
                    return done(RrpcResponse::failed(CODE_INVALID_PARAMETER, why));
                }
            },
        };
        if st.bytes + body.len() > inner.cfg.max_in_flight_bytes {
            let why = format!(
                "the calls in flight already hold {} request bytes (at most {})",
                st.bytes, inner.cfg.max_in_flight_bytes
            );
            return refuse(st, done, why);
        }
        let ident = Identity {
            product_key: p.product_key,
            device_name: p.device_name,
            custom_topic: p.custom_topic,
        };
        // Validated above: a ContentType is one of the RRpc values, all below 256.
        let content_type = p.content_type.and_then(|c| u8::try_from(c).ok());
        let level = dialect::message_id_level(&id.to_string(), content_type);
        let vars = dialect::Vars {
            id: &level,
            name: p.name,
            // AWS IoT commands: the caller sends JSON.
            format: Some("json"),
            status: None,
        };
        let request_topic = dialect.request_topic_with(&ident, &vars);
        let mqtt5 = dialect.uses_mqtt5_properties().then_some(id);
        let (response_topic, filter) = match mqtt5 {
            // The reply comes on the caller's own topic (see `mqtt5.rs`).
            Some(_) => (inner.mqtt5_topic.clone(), inner.mqtt5_topic.clone()),
            None => (
                expected_reply_topic(dialect, &ident, &vars),
                dialect.response_wildcard(p.custom_topic),
            ),
        };
        let deadline_ms = now_ms() + u64::from(timeout);
        // On MQTT 3.1.1 a request whose reply goes out on its own topic
        // (custom topics, Alibaba service calls) comes back to the caller; No
        // Local keeps it away on MQTT 5.
        // An envelope dialect's request coming back is no reply envelope: its
        // body tells it apart (see `CallerCore::on_response`).
        let echo = (dialect.replies_on_request_topic()
            && envelope == Envelope::None
            && inner.cfg.mqtt.protocol != MqttVersion::V5)
            .then(|| inner.echo_hash(p.payload));
        let mut call = PendingCall {
            device: DeviceKey(p.product_key.into(), p.device_name.into()),
            deadline_ms,
            response_topic: response_topic.into(),
            filter: filter.as_str().into(),
            echo,
            bytes: body.len(),
            unsent: None,
            envelope,
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
        let out = (request_topic, body, expiry_s(timeout), mqtt5);
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

/// The topic a call's reply comes on. A reply's status is the device's: a NUL,
/// which no topic holds, marks its place (see `PendingCall::reply_matches`),
/// found as where the topics rendered with status 0 and 1 first differ.
fn expected_reply_topic(d: Dialect, ident: &Identity<'_>, vars: &dialect::Vars<'_>) -> String {
    let with = |status| d.response_topic_with(ident, &dialect::Vars { status, ..*vars });
    let zero = with(Some(0));
    if !d.has_status() {
        return zero;
    }
    let one = with(Some(1));
    match zero.bytes().zip(one.bytes()).position(|(a, b)| a != b) {
        Some(at) => format!("{}\0{}", &zero[..at], &zero[at + 1..]),
        None => zero,
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
