//! The MQTT session engine: one rumqttc connection, kept alive, for the device
//! client and the caller alike.
//!
//! What it owns, written once:
//! - **connect options** ([`MqttConfig`]): broker address, client id, credentials,
//!   keep-alive, clean session, timeouts, the reconnect delays; TCP_NODELAY;
//!   packet size limits from the owner's payload limit;
//! - **reconnects**: capped exponential backoff with jitter (`Backoff`), a
//!   fresh last will before every attempt;
//! - **subscriptions**: after every CONNACK the owner's filters are subscribed
//!   again (rumqttc forgets them with a clean session), in batches; the owner
//!   hears when the broker acknowledged them all, and which it refused;
//! - **connection events** ([`ConnectionEvent`]): connected, disconnected with
//!   its cause and reason, reconnecting with the next delay; delivered to an
//!   application listener, logged without repeating what the application is
//!   told anyway, and kept as an error text that tells a failed connect from a
//!   dropped connection;
//! - **a clean stop**: what is queued (replies included) goes out, then MQTT
//!   DISCONNECT.
//!
//! The owner (client or caller) plugs in through `Owner`: what to subscribe,
//! what to publish after CONNACK, the last will, and what to do with incoming
//! messages and lost connections. The engine runs as one task on the owner's
//! runtime (`Session::spawn`); any thread publishes through a `Publisher`.
//!
//! MQTT 3.1.1 (the default) or MQTT 5 ([`MqttConfig::protocol`]): rumqttc's
//! two clients behind one interface (`wire`), so owners never see which one
//! runs. MQTT 5 adds No Local on the subscriptions that ask for it, reason
//! codes in the error texts, session expiry and the maximum packet size
//! announced to the broker.
//!
//! Where the next transport options go: TLS and other transports in
//! `Session::open` (the rumqttc transport and network options); credentials
//! signed at every connect in `Engine::prepare_attempt`, which runs before
//! each attempt.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
#[cfg(feature = "mqtt5")]
use rumqttc::v5;
#[cfg(feature = "tls")]
use rumqttc::TlsConfiguration;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, Transport};
use tokio::sync::watch;

use crate::callback::{CallbackSlot, Reentered};
use crate::clock::now_ms;
use crate::tls::{self, TlsConfig, TlsError};

mod wire;

pub use wire::Reason;
use wire::{BadPacket, Message, Step, Wire};
pub(crate) use wire::{Filter, QoS, SubAcks, Will};

/// Room for a topic and the MQTT headers on top of a payload limit.
const PACKET_OVERHEAD: usize = 64 * 1024 + 16;
/// The incoming packet limit when [`MqttConfig::max_incoming_packet`] is 0
/// (and the owner's payload limit is smaller): 1 MiB.
pub const DEFAULT_MAX_INCOMING_PACKET: u32 = 1024 * 1024;
/// The largest [`MqttConfig::max_incoming_packet`]: MQTT's own limit on a
/// packet's remaining length (256 MiB - 1).
pub const MAX_INCOMING_PACKET: u32 = 268_435_455;
/// The longest client id accepted, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 256;
/// Room in rumqttc's request channel beyond the outgoing queue's bound: the
/// owner's (un)subscriptions and the DISCONNECT.
const CHANNEL_SLACK: usize = 64;
/// Filters per SUBSCRIBE packet when subscribing many after a CONNACK.
const SUBSCRIBE_BATCH: usize = 64;
/// MQTT 5 session expiry, in seconds, of a session kept with
/// `clean_session = false` when [`MqttConfig::session_expiry_s`] is 0.
pub(crate) const DEFAULT_SESSION_EXPIRY_S: u32 = 3600;
/// rumqttc's MQTT 5 client pings at least every this many seconds; it cannot
/// turn keep-alive off.
const MIN_KEEP_ALIVE_V5_S: u16 = 5;

/// The MQTT protocol version of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4), the default.
    #[default]
    V311,
    /// MQTT 5.
    V5,
}

impl MqttVersion {
    /// The version by its protocol level, as C (`RRPC_MQTT_V311`, Paho's
    /// `MQTTVERSION_3_1_1`) and command lines give it: 4 (MQTT 3.1.1) or 5.
    pub fn from_number(n: u8) -> Option<MqttVersion> {
        match n {
            4 => Some(MqttVersion::V311),
            5 => Some(MqttVersion::V5),
            _ => None,
        }
    }

    /// The protocol level: 4 or 5, as [`MqttVersion::from_number`] takes it.
    pub fn number(self) -> u8 {
        match self {
            MqttVersion::V311 => 4,
            MqttVersion::V5 => 5,
        }
    }

    /// Whether this library can speak it (MQTT 5 needs the cargo feature `mqtt5`).
    pub fn is_built(self) -> bool {
        self == MqttVersion::V311 || cfg!(feature = "mqtt5")
    }
}

/// A checked TLS transport, as [`MqttConfig::tls_transport`] makes it.
pub(crate) type TlsTransport = tls::Transport;

/// How to reach and log in to the MQTT broker. [`MqttConfig::new`] fills in
/// the defaults.
#[derive(Clone)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// MQTT client id; `None` lets the owner derive one. 1 to
    /// [`MAX_CLIENT_ID_LEN`] bytes, without `+`, `#`, `/`, NUL or control
    /// characters (it is a level of the presence connection topic).
    pub client_id: Option<String>,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password, sent only with a user name. Never logged, never in `Debug`.
    pub password: Option<String>,
    /// MQTT keep-alive in seconds; 0 disables it.
    pub keep_alive_s: u16,
    /// MQTT clean-session flag (MQTT 5: clean start). `false` requires an
    /// explicit `client_id`.
    pub clean_session: bool,
    /// MQTT 3.1.1 (default) or MQTT 5.
    pub protocol: MqttVersion,
    /// MQTT 5 only, with `clean_session = false`: how long the broker keeps the
    /// session after the connection ends, in seconds (`u32::MAX`: never
    /// expires). 0 means 3600 (an hour). With `clean_session = true` the
    /// session ends with the connection.
    pub session_expiry_s: u32,
    /// How long the owner waits for its first connection, in ms (see the
    /// client's `start` and the caller's `connect`); also bounds each TCP
    /// connect attempt (rounded up to whole seconds).
    pub connect_timeout_ms: u32,
    /// First reconnect delay in ms; it doubles after each failed attempt...
    pub reconnect_min_ms: u32,
    /// ...up to this cap, in ms, each delay with +-25% jitter.
    pub reconnect_max_ms: u32,
    /// TLS; `None`: plain TCP. See [`TlsConfig`].
    pub tls: Option<TlsConfig>,
    /// Largest MQTT packet read from the broker, in bytes: 0 (the default) means
    /// [`DEFAULT_MAX_INCOMING_PACKET`] (1 MiB); at most [`MAX_INCOMING_PACKET`];
    /// never less than the owner's payload limit plus 64 KiB. A PUBLISH over
    /// the owner's payload limit but within this one is read, dropped and
    /// counted (`ConnStats::oversize`) with the connection kept; one larger
    /// than this is refused by the broker on MQTT 5 (the limit is announced as
    /// the Maximum Packet Size), while on MQTT 3.1.1 it ends the connection
    /// (counted too, and the reason says so). The session holds at most one
    /// incoming packet in memory: this is the most a broker, or anyone who can
    /// publish on a subscribed topic, can make it allocate at once (about twice
    /// this while the read buffer grows).
    pub max_incoming_packet: u32,
    /// Signs the user name and password again before every connection attempt,
    /// for cloud signatures that expire (Tencent IoT Hub's); replaces `username`
    /// and `password`. See [`Signer`].
    pub signer: Option<Arc<Signer>>,
}

/// Makes the (user name, password) of a connection attempt from the Unix time
/// in ms, for example with [`crate::credentials::TencentDevice::sign`] and a fresh
/// connection id. Runs on the session's thread before each attempt; when it fails,
/// the error is logged and the attempt uses the last credentials.
pub type Signer = dyn Fn(u64) -> Result<(String, String), String> + Send + Sync;

impl MqttConfig {
    pub fn new(host: impl Into<String>, port: u16) -> MqttConfig {
        MqttConfig {
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 60,
            clean_session: true,
            protocol: MqttVersion::V311,
            session_expiry_s: 0,
            connect_timeout_ms: 5000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            tls: None,
            max_incoming_packet: 0,
            signer: None,
        }
    }

    /// The rustls configuration of [`MqttConfig::tls`], checked now (files read,
    /// PEM parsed, client key matched with its certificate); `None` for plain TCP.
    pub(crate) fn tls_transport(&self) -> Result<Option<TlsTransport>, TlsError> {
        self.tls.as_ref().map(tls::transport).transpose()
    }

    /// Checks every value before rumqttc sees it (some of its setters assert).
    pub fn validate(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err("host is empty".into());
        }
        if self.port == 0 {
            return Err("port is 0".into());
        }
        if let Some(id) = &self.client_id {
            check_client_id(id)?;
        }
        if self.max_incoming_packet > MAX_INCOMING_PACKET {
            return Err(format!(
                "max_incoming_packet must be at most {MAX_INCOMING_PACKET} (MQTT's own limit), not {}",
                self.max_incoming_packet
            ));
        }
        if !self.clean_session && self.client_id.is_none() {
            return Err(
                "clean_session = false needs an explicit client id, or the session is never found again"
                    .into(),
            );
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(
                "reconnect delays must satisfy 0 < reconnect_min_ms <= reconnect_max_ms".into(),
            );
        }
        if self.session_expiry_s != 0 {
            if self.protocol != MqttVersion::V5 {
                return Err(
                    "session_expiry_s is an MQTT 5 setting: choose MQTT 5, or leave it 0".into(),
                );
            }
            if self.clean_session {
                return Err(
                    "session_expiry_s needs clean_session = false (a clean session ends with its connection)"
                        .into(),
                );
            }
        }
        if self.protocol == MqttVersion::V5 && self.keep_alive_s < MIN_KEEP_ALIVE_V5_S {
            return Err(format!(
                "keep_alive_s must be at least {MIN_KEEP_ALIVE_V5_S} with MQTT 5 (its client cannot turn keep-alive off)"
            ));
        }
        if !self.protocol.is_built() {
            return Err(
                "MQTT 5 is not built into this library (cargo feature `mqtt5`, CMake option RRPC_WITH_MQTT5)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The MQTT 5 session expiry interval to announce, in seconds: `None` for
    /// MQTT 3.1.1 and clean sessions (the session ends with the connection).
    pub fn session_expiry(&self) -> Option<u32> {
        (self.protocol == MqttVersion::V5 && !self.clean_session).then_some(
            match self.session_expiry_s {
                0 => DEFAULT_SESSION_EXPIRY_S,
                s => s,
            },
        )
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The incoming packet limit for an owner whose payloads are at most
    /// `max_payload` bytes (see [`MqttConfig::max_incoming_packet`]).
    pub fn incoming_limit(&self, max_payload: usize) -> usize {
        let configured = match self.max_incoming_packet {
            0 => DEFAULT_MAX_INCOMING_PACKET,
            n => n,
        } as usize;
        configured.max(max_payload.saturating_add(PACKET_OVERHEAD))
    }
}

/// Why `id` cannot be an MQTT client id here, in words: empty or longer than
/// [`MAX_CLIENT_ID_LEN`], or holding `+` or `#` (brokers refuse the CONNECT,
/// so every attempt would fail), `/` (it would split the presence connection
/// topic, so that callers never see the connection go), NUL or a control
/// character.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
        return Err(format!(
            "client id must be 1 to {MAX_CLIENT_ID_LEN} bytes, not {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '+' | '#' | '/') || c.is_control())
    {
        let what = match c {
            '+' | '#' => "an MQTT wildcard",
            '/' => "a topic level separator",
            '\0' => "NUL",
            _ => "a control character",
        };
        return Err(format!(
            "client id {} contains {what} ({:?}); use letters, digits and punctuation other than + # /",
            crate::log::Excerpt(id),
            c
        ));
    }
    Ok(())
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive_s", &self.keep_alive_s)
            .field("clean_session", &self.clean_session)
            .field("protocol", &self.protocol)
            .field("session_expiry_s", &self.session_expiry_s)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("tls", &self.tls)
            .field("max_incoming_packet", &self.max_incoming_packet)
            .field(
                "signer",
                &self.signer.as_ref().map(|_| "<signs each attempt>"),
            )
            .finish()
    }
}

/// Why a connection is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectCause {
    /// A connection that was up dropped (network error, broker closed it,
    /// keep-alive timed out).
    Lost,
    /// An attempt to connect failed (unreachable, refused, timed out).
    ConnectFailed,
    /// The application stopped the connection (clean DISCONNECT).
    Stopped,
}

/// A change of the connection, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The broker accepted the connection (the first one, or a reconnect).
    Connected,
    /// The connection is down, with the cause and the reason in words.
    Disconnected {
        cause: DisconnectCause,
        reason: String,
    },
    /// The next attempt starts in `delay_ms`; `attempt` counts the attempts
    /// since the last connection (1 for the first retry).
    Reconnecting { delay_ms: u64, attempt: u32 },
}

/// The last connection failure, as an error text that tells a failed connect
/// from a dropped connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnError {
    pub cause: DisconnectCause,
    pub address: String,
    pub reason: String,
}

impl ConnError {
    /// Whether the connection failed in its TLS handshake (the certificate, or
    /// the server's refusal), rather than in TCP or MQTT.
    pub fn is_tls(&self) -> bool {
        self.reason.starts_with(tls::HANDSHAKE_FAILED)
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cause {
            DisconnectCause::Lost => {
                write!(f, "connection to {} lost: {}", self.address, self.reason)
            }
            DisconnectCause::ConnectFailed => {
                write!(f, "could not connect to {}: {}", self.address, self.reason)
            }
            DisconnectCause::Stopped => write!(f, "connection to {} stopped", self.address),
        }
    }
}

/// Why a message could not be handed to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    NotConnected,
    QueueFull,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("not connected to the broker"),
            SendError::QueueFull => f.write_str("outgoing queue is full"),
        }
    }
}

/// Capped exponential backoff with +-25% jitter.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: u64,
    max: u64,
    cur: u64,
    seed: u64,
}

impl Backoff {
    pub fn new(min_ms: u32, max_ms: u32) -> Backoff {
        Backoff::with_seed(
            min_ms,
            max_ms,
            now_ms() ^ u64::from(std::process::id()).rotate_left(32),
        )
    }

    fn with_seed(min_ms: u32, max_ms: u32, seed: u64) -> Backoff {
        Backoff {
            min: u64::from(min_ms),
            max: u64::from(max_ms),
            cur: u64::from(min_ms),
            seed: seed | 1,
        }
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }

    /// The next delay: the current base +-25%, then the base doubles up to the cap.
    pub fn next(&mut self) -> Duration {
        // xorshift64: jitter needs no cryptographic quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.cur;
        let spread = base / 2;
        let jittered = base - base / 4
            + if spread > 0 {
                self.seed % (spread + 1)
            } else {
                0
            };
        self.cur = (self.cur.saturating_mul(2)).min(self.max);
        Duration::from_millis(jittered.max(1))
    }
}

/// The connection's state machine, without I/O: what each input means as
/// events, and how long to wait before the next attempt.
#[derive(Debug)]
pub(crate) struct Machine {
    backoff: Backoff,
    connected: bool,
    /// Failed attempts (and losses) since the last CONNACK.
    failures: u32,
}

impl Machine {
    pub fn new(backoff: Backoff) -> Machine {
        Machine {
            backoff,
            connected: false,
            failures: 0,
        }
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    /// CONNACK.
    pub fn on_connack(&mut self) -> ConnectionEvent {
        self.connected = true;
        self.failures = 0;
        self.backoff.reset();
        ConnectionEvent::Connected
    }

    /// A connection error: the connection was lost (when up) or an attempt
    /// failed. Returns both events and the delay before the next attempt.
    pub fn on_error(
        &mut self,
        reason: String,
    ) -> (DisconnectCause, [ConnectionEvent; 2], Duration) {
        let cause = if std::mem::replace(&mut self.connected, false) {
            DisconnectCause::Lost
        } else {
            DisconnectCause::ConnectFailed
        };
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.next();
        (
            cause,
            [
                ConnectionEvent::Disconnected { cause, reason },
                ConnectionEvent::Reconnecting {
                    delay_ms: delay.as_millis() as u64,
                    attempt: self.failures,
                },
            ],
            delay,
        )
    }

    /// The application stops the connection: an event when it was up.
    pub fn on_stop(&mut self) -> Option<ConnectionEvent> {
        std::mem::replace(&mut self.connected, false).then(|| ConnectionEvent::Disconnected {
            cause: DisconnectCause::Stopped,
            reason: "stopped by the application".into(),
        })
    }
}

/// Connection counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Successful connections (CONNACK received), including reconnects.
    pub connects: u64,
    /// Connections lost or attempts failed.
    pub connection_errors: u64,
    /// Subscriptions the broker refused in a SUBACK.
    pub subscribe_failures: u64,
    /// Incoming PUBLISHes over the owner's payload limit, dropped with the
    /// connection kept; and MQTT 3.1.1 packets over
    /// [`MqttConfig::max_incoming_packet`], which end the connection.
    pub oversize: u64,
    /// Incoming PUBLISHes that cannot be decoded (a topic that is not UTF-8),
    /// dropped with the connection kept on MQTT 5; on MQTT 3.1.1 the decoder
    /// ends the connection (counted too).
    pub malformed: u64,
    /// Messages a resumed persistent session delivered before the broker
    /// acknowledged the subscriptions again (queued while the client was
    /// away), dropped by the owner.
    pub stale: u64,
    /// Messages refused because the outgoing queue was full (its entries or
    /// bytes bound): the link is stalled or slower than what is published.
    pub queue_full: u64,
    /// Messages waiting in the outgoing queue now (handed to the session, not
    /// yet written to the network; QoS 1 ones until the broker acknowledges them).
    pub queued: u64,
    /// Payload bytes of those messages.
    pub queued_bytes: u64,
}

/// What an incoming message that an owner refused was (see [`Link::note_refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Delivered early by a resumed session ([`Inbound::early`]).
    Stale,
}

/// A connection listener (see `Client::set_connection_listener` and
/// `Caller::set_connection_listener`).
pub type Listener = dyn Fn(&ConnectionEvent) + Send + Sync;

/// What the owner and any application thread see of the session: state,
/// counters, the last error, the listener; and a condition to wait on for
/// changes.
pub(crate) struct Link {
    address: String,
    connected: AtomicBool,
    /// All subscriptions made at the last CONNACK are acknowledged.
    subscribed: AtomicBool,
    connects: AtomicU64,
    connection_errors: AtomicU64,
    subscribe_failures: AtomicU64,
    oversize: AtomicU64,
    malformed: AtomicU64,
    stale: AtomicU64,
    queue_full: AtomicU64,
    /// The outgoing queue: messages and payload bytes in it, and their bounds.
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_queued: AtomicUsize,
    max_queued_bytes: AtomicUsize,
    last_error: Mutex<Option<ConnError>>,
    listener: CallbackSlot<Listener>,
    /// Application threads waiting for the outcome of connecting (a `start`, a
    /// `yield`, the caller's `connect`): they report failures themselves, so
    /// the log does not repeat them.
    watchers: AtomicUsize,
    /// A failure was logged since the last connection; repeats go to debug.
    warned: AtomicBool,
    changed_lock: Mutex<()>,
    changed: Condvar,
}

impl Link {
    pub fn new(address: String) -> Link {
        Link {
            address,
            connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
            subscribe_failures: AtomicU64::new(0),
            oversize: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            max_queued: AtomicUsize::new(usize::MAX),
            max_queued_bytes: AtomicUsize::new(usize::MAX),
            last_error: Mutex::new(None),
            listener: CallbackSlot::default(),
            watchers: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
            changed_lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Connected: CONNACK received and the connection not lost since.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Connected, and the broker acknowledged every subscription made at connect.
    pub fn is_subscribed(&self) -> bool {
        self.is_connected() && self.subscribed.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> ConnStats {
        ConnStats {
            connects: self.connects.load(Ordering::Relaxed),
            connection_errors: self.connection_errors.load(Ordering::Relaxed),
            subscribe_failures: self.subscribe_failures.load(Ordering::Relaxed),
            oversize: self.oversize.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed) as u64,
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed) as u64,
        }
    }

    /// An incoming message the owner refused for `why`: counted, and logged
    /// (throttled, the topic as a bounded excerpt).
    pub fn note_refused(&self, why: Refused, topic: &str) {
        match why {
            Refused::Stale => {
                self.stale.fetch_add(1, Ordering::Relaxed);
                throttled!(
                    crate::log::Level::Warn,
                    "ignored a message on {} that the broker queued while this client was away (delivered before the subscriptions were acknowledged again)",
                    crate::log::Excerpt(topic)
                );
            }
        }
    }

    /// An incoming PUBLISH of `len` payload bytes over the owner's `max`.
    fn note_oversize(&self, topic: &str, len: usize, max: usize) {
        self.oversize.fetch_add(1, Ordering::Relaxed);
        throttled!(
            crate::log::Level::Warn,
            "dropped a message of {len} bytes on {}: over the payload limit of {max} bytes",
            crate::log::Excerpt(topic)
        );
    }

    /// An incoming PUBLISH whose topic is not UTF-8.
    fn note_malformed(&self, topic: &[u8]) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        throttled!(
            crate::log::Level::Warn,
            "dropped a message whose topic is not UTF-8 (MQTT forbids it): {}",
            crate::log::BytesExcerpt(topic)
        );
    }

    /// Bounds the outgoing queue: at most `entries` messages and `bytes`
    /// payload bytes (a single message larger than `bytes` still goes when the
    /// queue is empty).
    pub fn bound_queue(&self, entries: usize, bytes: usize) {
        self.max_queued.store(entries.max(1), Ordering::Relaxed);
        self.max_queued_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Takes room for one message of `len` payload bytes in the outgoing
    /// queue, or counts and logs a full queue.
    fn reserve(&self, len: usize) -> Result<(), SendError> {
        let n = self.queued.fetch_add(1, Ordering::AcqRel);
        let b = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        let max_n = self.max_queued.load(Ordering::Relaxed);
        let max_b = self.max_queued_bytes.load(Ordering::Relaxed);
        if n < max_n && (n == 0 || b.saturating_add(len) <= max_b) {
            return Ok(());
        }
        self.release(len);
        self.queue_full.fetch_add(1, Ordering::Relaxed);
        throttled!(
            crate::log::Level::Warn,
            "outgoing queue to {} is full ({n} message(s), {b} bytes waiting; bounds {max_n} and {max_b}): the link is stalled or slower than what is published; message refused",
            self.address
        );
        Err(SendError::QueueFull)
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// A PUBLISH over [`MqttConfig::max_incoming_packet`] or with a topic that
    /// is not UTF-8 ended an MQTT 3.1.1 connection: counted as such too.
    fn note_bad_packet(&self, bad: BadPacket) {
        match bad {
            BadPacket::Oversize => self.oversize.fetch_add(1, Ordering::Relaxed),
            BadPacket::Malformed => self.malformed.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The failure since the last connection, if any.
    pub fn last_error(&self) -> Option<ConnError> {
        self.last_error.lock().clone()
    }

    pub fn errors(&self) -> u64 {
        self.connection_errors.load(Ordering::SeqCst)
    }

    /// Counts and logs `n` refused subscriptions; `why` is the MQTT 5 reason
    /// code of one of them (MQTT 3.1.1 gives none).
    pub fn note_subscribe_failures(&self, n: u64, why: Option<Reason>) {
        self.note_refused_filters(n, why, None);
    }

    /// [`Link::note_subscribe_failures`] naming the first refused filter, so
    /// that the warning says which device (or topic) will not receive anything.
    fn note_refused_filters(&self, n: u64, why: Option<Reason>, first: Option<&str>) {
        if n > 0 {
            self.subscribe_failures.fetch_add(n, Ordering::Relaxed);
            let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
            match first {
                Some(f) if n > 1 => warn!(
                    "broker refused {n} subscriptions{why}, the first {f}; nothing arrives on them: check its ACLs"
                ),
                Some(f) => warn!(
                    "broker refused the subscription {f}{why}; nothing arrives on it: check its ACLs"
                ),
                None => warn!("broker refused {n} subscription(s){why}; check its ACLs"),
            }
        }
    }

    /// Sets (or clears) the application's connection listener; when it
    /// returns, the old one is not running and will not run again.
    pub fn set_listener(&self, f: Option<Box<Listener>>) -> Result<(), Reentered> {
        self.listener.set(f)
    }

    /// Wakes the threads waiting in [`Link::wait`].
    pub fn notify(&self) {
        let _g = self.changed_lock.lock();
        self.changed.notify_all();
    }

    /// Waits until `done` says yes (re-checked after every change) or the
    /// deadline passes; returns `done`'s last answer. The waiting thread counts
    /// as a watcher: failures are its to report.
    pub fn wait<R>(&self, deadline: Instant, mut done: impl FnMut() -> Option<R>) -> Option<R> {
        let _w = self.watch();
        let mut g = self.changed_lock.lock();
        loop {
            if let Some(r) = done() {
                return Some(r);
            }
            if self.changed.wait_until(&mut g, deadline).timed_out() {
                return done();
            }
        }
    }

    /// Marks the calling thread as reporting connection failures itself while
    /// the returned guard lives.
    pub fn watch(&self) -> Watch<'_> {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        Watch(self)
    }

    /// The session's task is gone without a clean end: nothing is connected.
    pub fn forget(&self) {
        self.set_state(false);
        self.notify();
    }

    fn set_state(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
        if !connected {
            self.subscribed.store(false, Ordering::SeqCst);
        }
    }

    fn set_subscribed(&self) {
        self.subscribed.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Records, logs and hands on one event.
    fn emit(&self, event: &ConnectionEvent) {
        let told = self.listener.is_set();
        match event {
            ConnectionEvent::Connected => {
                self.connects.fetch_add(1, Ordering::SeqCst);
                *self.last_error.lock() = None;
                self.warned.store(false, Ordering::Relaxed);
                self.set_state(true);
                info!("connected to {}", self.address);
            }
            ConnectionEvent::Disconnected { cause, reason } => {
                self.set_state(false);
                let err = ConnError {
                    cause: *cause,
                    address: self.address.clone(),
                    reason: reason.clone(),
                };
                if *cause == DisconnectCause::Stopped {
                    info!("{err}");
                } else {
                    self.connection_errors.fetch_add(1, Ordering::SeqCst);
                    // An application thread waiting for the outcome reports it;
                    // a listener has it; otherwise warn once per outage.
                    let reported = self.watchers.load(Ordering::SeqCst) > 0 || told;
                    if reported || self.warned.swap(true, Ordering::Relaxed) {
                        debug!("{err}");
                    } else {
                        warn!("{err}");
                    }
                    *self.last_error.lock() = Some(err);
                }
            }
            ConnectionEvent::Reconnecting { delay_ms, attempt } => {
                debug!(
                    "reconnecting to {} in {delay_ms} ms (attempt {attempt})",
                    self.address
                );
            }
        }
        self.listener.call(|f| f(event));
        self.notify();
    }
}

/// See [`Link::watch`].
pub(crate) struct Watch<'a>(&'a Link);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The request side of a session: any thread may publish or subscribe through
/// it; nothing waits (a full queue is an error). Every message published
/// through it counts in the outgoing queue's bounds ([`Link::bound_queue`])
/// until the session has written it (QoS 1: until the broker acknowledged it)
/// or dropped it.
#[derive(Clone)]
pub(crate) struct Publisher {
    requests: Requests,
    link: Arc<Link>,
}

#[derive(Clone)]
enum Requests {
    V311(AsyncClient),
    #[cfg(feature = "mqtt5")]
    V5(v5::AsyncClient),
}

/// A payload in the outgoing queue: its bytes leave the queue's count when
/// rumqttc drops the buffer.
struct Queued {
    data: Vec<u8>,
    link: Arc<Link>,
}

impl AsRef<[u8]> for Queued {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.link.release(self.data.len());
    }
}

/// Polls `f` once: its output if it is ready at once. rumqttc's MQTT 3.1.1
/// client takes a payload buffer of ours only in its async publish; the channel
/// always has room for what the queue's bounds let through (see
/// [`Session::open`]), so that future is ready at its first poll.
fn ready_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    use std::task::{RawWaker, RawWakerVTable, Waker};
    // A waker that does nothing and owns nothing: no allocation (a waker made
    // from an `Arc` of a zero-sized type in a static read as a leak to valgrind).
    const VTABLE: RawWakerVTable =
        RawWakerVTable::new(|p| RawWaker::new(p, &VTABLE), |_| {}, |_| {}, |_| {});
    // SAFETY: every function of the vtable ignores the (null) data pointer.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

impl Publisher {
    pub fn publish(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), SendError> {
        let data = payload.into();
        self.link.reserve(data.len())?;
        let payload = bytes::Bytes::from_owner(Queued {
            data,
            link: self.link.clone(),
        });
        match &self.requests {
            Requests::V311(c) => {
                match ready_now(c.publish_bytes(topic, qos.v4(), retain, payload)) {
                    Some(r) => r.map_err(v4_send_error),
                    // Dropping the future took the message back out of the channel.
                    None => Err(SendError::QueueFull),
                }
            }
            #[cfg(feature = "mqtt5")]
            Requests::V5(c) => c
                .try_publish(topic, qos.v5(), retain, payload)
                .map_err(v5_send_error),
        }
    }

    /// Publishes without retain; on MQTT 5 with a Message Expiry Interval of
    /// `expiry_s` seconds (0: none), after which the broker drops the message
    /// instead of delivering it. MQTT 3.1.1 has no such interval.
    pub fn publish_expiring(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        payload: impl Into<Vec<u8>>,
        expiry_s: u32,
    ) -> Result<(), SendError> {
        match &self.requests {
            #[cfg(feature = "mqtt5")]
            Requests::V5(c) if expiry_s > 0 => {
                let data = payload.into();
                self.link.reserve(data.len())?;
                let payload = bytes::Bytes::from_owner(Queued {
                    data,
                    link: self.link.clone(),
                });
                let props = v5::mqttbytes::v5::PublishProperties {
                    message_expiry_interval: Some(expiry_s),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos.v5(), false, payload, props)
                    .map_err(v5_send_error)
            }
            _ => {
                let _ = expiry_s; // MQTT 3.1.1 has no expiry
                self.publish(topic, qos, false, payload)
            }
        }
    }

    /// Subscribes one filter (No Local only on MQTT 5).
    pub fn subscribe(&self, filter: Filter) -> Result<(), SendError> {
        match &self.requests {
            Requests::V311(c) => c
                .try_subscribe(filter.topic, filter.qos.v4())
                .map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            Requests::V5(c) => c.try_subscribe_many([filter.v5()]).map_err(v5_send_error),
        }
    }

    pub fn unsubscribe(&self, filter: impl Into<String>) -> Result<(), SendError> {
        match &self.requests {
            Requests::V311(c) => c.try_unsubscribe(filter).map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            Requests::V5(c) => c.try_unsubscribe(filter).map_err(v5_send_error),
        }
    }

    fn disconnect(&self) -> Result<(), SendError> {
        match &self.requests {
            Requests::V311(c) => c.try_disconnect().map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            Requests::V5(c) => c.try_disconnect().map_err(v5_send_error),
        }
    }
}

/// rumqttc's channel is only ever full for a `try_` request: it closes only when
/// the event loop is dropped, which owners do after the link says disconnected.
fn v4_send_error(e: rumqttc::ClientError) -> SendError {
    match e {
        rumqttc::ClientError::TryRequest(_) => SendError::QueueFull,
        rumqttc::ClientError::Request(_) => SendError::NotConnected,
    }
}

/// [`v4_send_error`] for the MQTT 5 client.
#[cfg(feature = "mqtt5")]
fn v5_send_error(e: v5::ClientError) -> SendError {
    match e {
        v5::ClientError::TryRequest(_) => SendError::QueueFull,
        v5::ClientError::Request(_) => SendError::NotConnected,
    }
}

/// What to publish right after a CONNACK, ahead of anything queued before.
pub(crate) struct Outbox<'a>(&'a mut Vec<Message>);

impl Outbox<'_> {
    pub fn publish(&mut self, topic: String, qos: QoS, retain: bool, payload: &[u8]) {
        self.0.push(Message {
            topic,
            qos,
            retain,
            payload: payload.to_vec(),
        });
    }
}

/// What the owner of a session (client or caller) does at each step. Called on
/// the session's task, one at a time.
/// How an incoming PUBLISH reached the session (see the README, "Security").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inbound {
    /// The broker delivered a retained message (stored earlier, by anyone who
    /// could publish on the topic), not a live one.
    pub retain: bool,
    /// Delivered on this connection before the broker acknowledged the
    /// session's subscriptions again: a message queued for a resumed
    /// persistent session while the client was away (or its retained copy).
    pub early: bool,
}

pub(crate) trait Owner: Send + Sync + 'static {
    /// Every filter to subscribe after a CONNACK.
    fn filters(&self) -> Vec<Filter>;
    /// After a CONNACK, once the SUBSCRIBEs are queued: more to send first.
    fn on_connack(&self, _out: &mut Outbox<'_>) {}
    /// The broker acknowledged every filter of [`Owner::filters`]; `refused`
    /// are those it refused.
    fn on_subscribed(&self, _refused: &[String]) {}
    /// An incoming PUBLISH, with what the session knows of how it came.
    fn on_publish(&self, topic: &str, payload: &[u8], how: Inbound);
    /// A SUBSCRIBE the owner queued itself (through the [`Publisher`]) went out
    /// with this packet id...
    fn on_outgoing_subscribe(&self, _pkid: u16) {}
    /// ...and was acknowledged.
    fn on_suback(&self, _pkid: u16, _acks: SubAcks<'_>) {}
    /// The connection is down (lost, or an attempt failed), before the wait.
    fn on_disconnected(&self, _cause: DisconnectCause) {}
    /// The last will for the next attempt.
    fn last_will(&self) -> Option<Will> {
        None
    }
    /// The application stops a live connection: last words before DISCONNECT.
    fn on_stopping(&self, _publisher: &Publisher) {}
}

/// The event loop of one protocol. One per session: the MQTT 5 one is boxed
/// so that a 3.1.1 session does not carry its size.
#[allow(clippy::large_enum_variant)] // the 3.1.1 loop stays inline: no indirection on its path
enum Conn {
    V311(EventLoop),
    #[cfg(feature = "mqtt5")]
    V5(Box<v5::EventLoop>),
}

/// One MQTT connection and its event loop. See the module documentation.
pub(crate) struct Session {
    conn: Conn,
    engine: Engine,
}

/// Everything of a session but its event loop.
struct Engine {
    publisher: Publisher,
    link: Arc<Link>,
    reconnect: (u32, u32),
    /// TLS without certificate verification: warned about at every connect.
    insecure: bool,
    /// Signs the credentials of every attempt (see [`MqttConfig::signer`]).
    signer: Option<Arc<Signer>>,
    /// Filters of the post-CONNACK SUBSCRIBEs queued and not yet sent, in order...
    unsent_batches: VecDeque<Vec<String>>,
    /// ...and those sent, by packet id, until their SUBACK.
    sent_batches: HashMap<u16, Vec<String>>,
    refused: Vec<String>,
    /// The broker acknowledged every filter of this connection's SUBSCRIBEs.
    acked: bool,
    /// The CONNACK of this connection said the broker resumed a session.
    session_present: bool,
    /// The owner's payload limit: larger incoming PUBLISHes are dropped.
    max_payload: usize,
    /// How long a PINGREQ waits for its PINGRESP before the connection counts
    /// as dead (see [`pingresp_timeout`]); `None` with keep-alive off.
    pingresp_timeout: Option<Duration>,
}

/// How long a PINGREQ may wait for its PINGRESP: a quarter of the keep-alive,
/// at least 500 ms, at most half of it. rumqttc itself notices a missing
/// PINGRESP only when the next ping is due, a whole keep-alive later; with this
/// timer a link that silently stopped forwarding (a dead NAT, a cut cable) is
/// given up within 1.5x keep-alive of when it stopped, and reconnected.
fn pingresp_timeout(keep_alive: Duration) -> Option<Duration> {
    (!keep_alive.is_zero()).then(|| {
        (keep_alive / 4)
            .max(Duration::from_millis(500))
            .min(keep_alive / 2)
    })
}

impl Session {
    /// The connection (not yet connecting) for `client_id`: outgoing packets
    /// up to `max_payload` plus headers, incoming ones up to
    /// [`MqttConfig::incoming_limit`] (MQTT 5 also announces that limit to the
    /// broker, which then never sends anything larger) of which PUBLISHes over
    /// `max_payload` are dropped and counted, `channel_capacity` requests
    /// queued from other threads (the outgoing queue's bound in messages until
    /// [`Session::bound_queue`] tightens it), TCP_NODELAY (rumqttc leaves Nagle
    /// on, which stalls pipelined messages by ~40 ms).
    /// `tls` is the configuration [`MqttConfig::tls_transport`] made, or `None`.
    pub fn open(
        cfg: &MqttConfig,
        tls: Option<TlsTransport>,
        client_id: &str,
        max_payload: usize,
        channel_capacity: usize,
        link: Arc<Link>,
    ) -> Session {
        #[cfg(feature = "tls")]
        let transport = tls.map(|t| Transport::tls_with_config(TlsConfiguration::Rustls(t)));
        #[cfg(not(feature = "tls"))]
        let transport: Option<Transport> = tls.map(|t| match t {});
        let keep_alive = Duration::from_secs(u64::from(cfg.keep_alive_s));
        let credentials = cfg
            .username
            .as_ref()
            .map(|user| (user.clone(), cfg.password.clone().unwrap_or_default()));
        let limit = max_payload.saturating_add(PACKET_OVERHEAD);
        let incoming = cfg.incoming_limit(max_payload);
        // Room in rumqttc's channel for every message the queue's bounds let
        // through, and for (un)subscriptions and the DISCONNECT besides.
        link.bound_queue(channel_capacity, usize::MAX);
        let channel_capacity = channel_capacity.saturating_add(CHANNEL_SLACK);
        let connect_timeout_s = u64::from(cfg.connect_timeout_ms.div_ceil(1000)).max(1);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(connect_timeout_s);
        let (conn, requests) = match cfg.protocol {
            MqttVersion::V311 => {
                let mut o = MqttOptions::new(client_id, &cfg.host, cfg.port);
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                o.set_keep_alive(keep_alive);
                o.set_clean_session(cfg.clean_session);
                if let Some((user, password)) = credentials {
                    o.set_credentials(user, password);
                }
                o.set_max_packet_size(incoming, limit);
                o.set_request_channel_capacity(channel_capacity);
                let (client, mut eventloop) = AsyncClient::new(o, channel_capacity);
                eventloop.set_network_options(net);
                (Conn::V311(eventloop), Requests::V311(client))
            }
            #[cfg(not(feature = "mqtt5"))]
            MqttVersion::V5 => {
                unreachable!("MqttConfig::validate refuses MQTT 5 without its feature")
            }
            #[cfg(feature = "mqtt5")]
            MqttVersion::V5 => {
                let mut o = v5::MqttOptions::new(client_id, &cfg.host, cfg.port);
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                o.set_keep_alive(keep_alive);
                o.set_clean_start(cfg.clean_session);
                o.set_session_expiry_interval(cfg.session_expiry());
                if let Some((user, password)) = credentials {
                    o.set_credentials(user, password);
                }
                o.set_max_packet_size(Some(u32::try_from(incoming).unwrap_or(u32::MAX)));
                o.set_request_channel_capacity(channel_capacity);
                o.set_connection_timeout(connect_timeout_s);
                o.set_network_options(net);
                let (client, eventloop) = v5::AsyncClient::new(o, channel_capacity);
                (Conn::V5(Box::new(eventloop)), Requests::V5(client))
            }
        };
        Session {
            conn,
            engine: Engine {
                publisher: Publisher {
                    requests,
                    link: link.clone(),
                },
                link,
                reconnect: (cfg.reconnect_min_ms, cfg.reconnect_max_ms),
                insecure: cfg.tls.as_ref().is_some_and(|t| t.insecure_skip_verify),
                signer: cfg.signer.clone(),
                unsent_batches: VecDeque::new(),
                sent_batches: HashMap::new(),
                refused: Vec::new(),
                acked: false,
                session_present: false,
                max_payload,
                pingresp_timeout: pingresp_timeout(keep_alive),
            },
        }
    }

    pub fn publisher(&self) -> Publisher {
        self.engine.publisher.clone()
    }

    /// Bounds the outgoing queue to at most `entries` messages (no more than
    /// the `channel_capacity` given to [`Session::open`]) and `bytes` payload
    /// bytes; a publish beyond either fails with [`SendError::QueueFull`] and
    /// counts in [`ConnStats::queue_full`].
    pub fn bound_queue(&self, entries: usize, bytes: usize) {
        let link = &self.engine.link;
        let cap = link.max_queued.load(Ordering::Relaxed);
        link.bound_queue(entries.min(cap), bytes);
    }

    /// Runs the connection as a task of `rt` until `stop` turns true: connects,
    /// reconnects with backoff, subscribes after every CONNACK and hands
    /// everything to `owner`. On stop, sends what is queued and a clean
    /// DISCONNECT, and the task gives the session back, to run again later. The
    /// protocol is chosen once here, and the task is that protocol's loop itself
    /// (not wrapped in another future: each level of futures costs instructions
    /// on every event).
    pub fn spawn<O: Owner>(
        self,
        rt: &tokio::runtime::Handle,
        owner: Arc<O>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Session> {
        let Session { conn, engine } = self;
        match conn {
            Conn::V311(eventloop) => {
                rt.spawn(engine.drive::<EventLoop, _, _>(eventloop, owner, stop, Conn::V311))
            }
            #[cfg(feature = "mqtt5")]
            Conn::V5(eventloop) => {
                rt.spawn(engine.drive::<v5::EventLoop, _, _>(eventloop, owner, stop, Conn::V5))
            }
        }
    }
}

impl Engine {
    /// Before every connection attempt: the owner's last will.
    fn prepare_attempt(&mut self, wire: &mut impl Wire, owner: &impl Owner) {
        if let Some(w) = owner.last_will() {
            wire.set_last_will(w);
        }
        if let Some(sign) = &self.signer {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            match sign(unix_ms) {
                Ok((user, password)) => wire.set_credentials(user, password),
                Err(e) => warn!(
                    "signing the credentials for {} failed: {e}; the attempt uses the last ones",
                    self.link.address()
                ),
            }
        }
    }

    /// [`Session::spawn`]'s task on one protocol's event loop, held in `conn`
    /// (and given back in a [`Session`] made by `wrap`).
    async fn drive<W: Wire, B: std::borrow::BorrowMut<W>, O: Owner>(
        mut self,
        mut conn: B,
        owner: Arc<O>,
        mut stop: watch::Receiver<bool>,
        wrap: fn(B) -> Conn,
    ) -> Session {
        let owner = &*owner;
        let wire: &mut W = conn.borrow_mut();
        // A connection left from an earlier run is dropped; what was queued
        // meanwhile is kept for the next connection.
        wire.clean();
        let mut machine = Machine::new(Backoff::new(self.reconnect.0, self.reconnect.1));
        self.prepare_attempt(wire, owner);
        // One stop future for the whole loop: making one per event cost about as
        // much as routing a request.
        let stopped = stop.changed();
        tokio::pin!(stopped);
        // Armed at each PINGREQ, disarmed by its PINGRESP (one timer, reset).
        let pong = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(pong);
        let mut awaiting_pong = false;
        loop {
            let event = tokio::select! {
                biased;
                _ = &mut stopped => break,
                _ = pong.as_mut(), if awaiting_pong => {
                    awaiting_pong = false;
                    // Drop the dead connection (what is queued stays queued).
                    wire.clean();
                    Err(format!(
                        "no PINGRESP within {} ms of a PINGREQ: the link is dead",
                        self.pingresp_timeout.unwrap_or_default().as_millis()
                    ))
                }
                ev = wire.poll() => ev.map_err(|e| {
                    if let Some(bad) = W::bad_packet(&e) {
                        self.link.note_bad_packet(bad);
                    }
                    W::describe(&e)
                }),
            };
            match event {
                Ok(ev) => match W::step(&ev) {
                    Step::Publish(topic, payload, _) if payload.len() > self.max_payload => self
                        .link
                        .note_oversize(topic, payload.len(), self.max_payload),
                    Step::Publish(topic, payload, retain) => owner.on_publish(
                        topic,
                        payload,
                        Inbound {
                            retain,
                            early: !self.acked && self.session_present,
                        },
                    ),
                    Step::BadTopic(topic) => self.link.note_malformed(topic),
                    Step::ConnAck(session_present) => {
                        self.session_present = session_present;
                        if self.insecure {
                            warn!(
                                "connected to {} over TLS WITHOUT certificate verification (insecure_skip_verify): anyone on the path can read and change this connection",
                                self.link.address()
                            );
                        }
                        let ev = machine.on_connack();
                        self.on_connack(wire, owner);
                        self.link.emit(&ev);
                    }
                    Step::Subscribing(pkid) => match self.unsent_batches.pop_front() {
                        Some(filters) => {
                            self.sent_batches.insert(pkid, filters);
                        }
                        None => owner.on_outgoing_subscribe(pkid),
                    },
                    Step::SubAck(pkid, acks) => match self.sent_batches.remove(&pkid) {
                        Some(filters) => self.on_batch_ack(owner, filters, acks),
                        None => owner.on_suback(pkid, acks),
                    },
                    Step::PingReq => {
                        if let Some(t) = self.pingresp_timeout {
                            pong.as_mut().reset(tokio::time::Instant::now() + t);
                            awaiting_pong = true;
                        }
                    }
                    Step::PingResp => awaiting_pong = false,
                    Step::Other => {}
                },
                Err(reason) => {
                    awaiting_pong = false;
                    let (cause, events, delay) = machine.on_error(reason);
                    for ev in &events[..1] {
                        self.link.emit(ev);
                    }
                    owner.on_disconnected(cause);
                    self.link.emit(&events[1]);
                    // The owner's state may have changed: the will for the next CONNECT.
                    self.prepare_attempt(wire, owner);
                    tokio::select! {
                        biased;
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        if machine.connected() {
            owner.on_stopping(&self.publisher);
            // What is queued goes out before the DISCONNECT, which also tells the
            // broker not to publish the last will. Then wait (briefly) for the
            // broker to close the connection: once it has, it is done with this
            // client id, and a start right after cannot race the old session's
            // clean-up (rumqttd closed the new connection when it came first).
            let _ = self.publisher.disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    if wire.poll().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        if let Some(ev) = machine.on_stop() {
            self.link.emit(&ev);
        }
        self.link.set_state(false);
        self.link.notify();
        Session {
            conn: wrap(conn),
            engine: self,
        }
    }

    /// After CONNACK: SUBSCRIBE every filter again, ahead of anything queued.
    fn on_connack(&mut self, wire: &mut impl Wire, owner: &impl Owner) {
        self.unsent_batches.clear();
        self.sent_batches.clear();
        self.refused.clear();
        self.acked = false;
        let filters = owner.filters();
        for chunk in filters.chunks(SUBSCRIBE_BATCH) {
            self.unsent_batches
                .push_back(chunk.iter().map(|f| f.topic.clone()).collect());
        }
        if !filters.is_empty() {
            debug!("subscribing {} filter(s)", filters.len());
        }
        let mut messages = Vec::new();
        owner.on_connack(&mut Outbox(&mut messages));
        // Subscriptions a resumed session left in the queue are made again here.
        wire.queue_first(filters.chunks(SUBSCRIBE_BATCH), messages);
        if filters.is_empty() {
            self.acked = true;
            self.link.set_subscribed();
            owner.on_subscribed(&[]);
        }
    }

    fn on_batch_ack(&mut self, owner: &impl Owner, filters: Vec<String>, acks: SubAcks<'_>) {
        let before = self.refused.len();
        self.refused.extend(
            filters
                .into_iter()
                .enumerate()
                .filter(|(i, _)| acks.is_refused(*i))
                .map(|(_, f)| f),
        );
        self.link.note_refused_filters(
            (self.refused.len() - before) as u64,
            acks.reason(),
            self.refused.get(before).map(String::as_str),
        );
        if self.sent_batches.is_empty() && self.unsent_batches.is_empty() {
            self.acked = true;
            self.link.set_subscribed();
            owner.on_subscribed(&self.refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::with_seed(100, 1000, 42);
        let mut bases = Vec::new();
        for _ in 0..8 {
            bases.push(b.cur);
            let d = b.next().as_millis() as u64;
            let base = *bases.last().unwrap();
            assert!(
                d >= base - base / 4 && d <= base + base / 4,
                "{d} ms outside +-25% of {base}"
            );
        }
        assert_eq!(bases, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.cur, 100);
    }

    #[test]
    fn backoff_jitter_spreads_and_never_reaches_zero() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut b = Backoff::with_seed(100, 100, seed);
            let d = b.next().as_millis() as u64;
            assert!((75..=125).contains(&d), "{d}");
            seen.insert(d);
        }
        assert!(seen.len() > 20, "jitter spreads delays: {seen:?}");
        let mut tiny = Backoff::with_seed(1, 1, 7);
        assert!(tiny.next() >= Duration::from_millis(1));
    }

    #[test]
    fn a_pingreq_waits_at_most_half_a_keep_alive_for_its_pingresp() {
        let s = Duration::from_secs;
        assert_eq!(pingresp_timeout(s(0)), None);
        assert_eq!(pingresp_timeout(s(60)), Some(s(15)));
        assert_eq!(pingresp_timeout(s(4)), Some(s(1)));
        assert_eq!(pingresp_timeout(s(1)), Some(Duration::from_millis(500)));
        for k in 1..=65535u64 {
            let t = pingresp_timeout(s(k)).unwrap();
            assert!(t <= s(k) / 2, "{k} s");
        }
    }

    #[test]
    fn state_machine_tells_failed_connects_from_lost_connections() {
        let mut m = Machine::new(Backoff::with_seed(100, 400, 1));
        // Two failed attempts, then a connection.
        let (cause, ev, d1) = m.on_error("refused".into());
        assert_eq!(cause, DisconnectCause::ConnectFailed);
        assert_eq!(
            ev[0],
            ConnectionEvent::Disconnected {
                cause: DisconnectCause::ConnectFailed,
                reason: "refused".into()
            }
        );
        assert!(
            matches!(ev[1], ConnectionEvent::Reconnecting { attempt: 1, delay_ms } if delay_ms == d1.as_millis() as u64)
        );
        let (_, ev, d2) = m.on_error("refused".into());
        assert!(matches!(
            ev[1],
            ConnectionEvent::Reconnecting { attempt: 2, .. }
        ));
        assert!(d2 > d1, "the delay grows: {d1:?} then {d2:?}");
        assert_eq!(m.on_connack(), ConnectionEvent::Connected);
        assert!(m.connected());
        // Losing it: a lost connection, and the backoff starts over.
        let (cause, ev, d3) = m.on_error("reset by peer".into());
        assert_eq!(cause, DisconnectCause::Lost);
        assert!(matches!(
            ev[1],
            ConnectionEvent::Reconnecting { attempt: 1, .. }
        ));
        assert!(d3 <= Duration::from_millis(125), "{d3:?}");
        // Stopping while down says nothing; while up, a clean stop.
        assert_eq!(m.on_stop(), None);
        m.on_connack();
        assert_eq!(
            m.on_stop(),
            Some(ConnectionEvent::Disconnected {
                cause: DisconnectCause::Stopped,
                reason: "stopped by the application".into()
            })
        );
        assert!(!m.connected());
    }

    #[test]
    fn connection_errors_read_as_what_happened() {
        let e = ConnError {
            cause: DisconnectCause::ConnectFailed,
            address: "127.0.0.1:1".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to 127.0.0.1:1: Connection refused (os error 111)"
        );
        let e = ConnError {
            cause: DisconnectCause::Lost,
            ..e
        };
        assert!(e
            .to_string()
            .starts_with("connection to 127.0.0.1:1 lost: "));
    }

    #[test]
    fn client_ids_that_would_break_connects_or_presence_are_refused_in_words() {
        let with = |id: &str| MqttConfig {
            client_id: Some(id.into()),
            ..MqttConfig::new("h", 1)
        };
        for (id, want) in [
            ("dev#1", "an MQTT wildcard"),
            ("dev+1", "an MQTT wildcard"),
            ("site/dev", "a topic level separator"),
            ("dev\0x", "NUL"),
            ("dev\n", "a control character"),
            ("dev\u{7f}", "a control character"),
            ("", "1 to 256 bytes"),
        ] {
            let e = with(id).validate().unwrap_err();
            assert!(e.contains(want), "{id:?}: {e}");
        }
        let e = with(&"x".repeat(MAX_CLIENT_ID_LEN + 1))
            .validate()
            .unwrap_err();
        assert!(e.contains("not 257"), "{e}");
        // What real clouds use passes: Alibaba's signed ids, Tencent's, ours.
        for id in [
            "a1Pk&dev|securemode=2,signmethod=hmacsha1,ext=1,_ss=1,lan=Python,_v=1.2.13,timestamp=1700000000|",
            "ABCDEFGHIJdev-01",
            "rrpc0123456789abcdef",
            &"x".repeat(MAX_CLIENT_ID_LEN),
        ] {
            assert_eq!(with(id).validate(), Ok(()), "{id}");
        }
    }

    #[test]
    fn the_incoming_limit_is_bounded_and_covers_the_payload_limit() {
        let mut c = MqttConfig::new("h", 1);
        assert_eq!(c.incoming_limit(1024), DEFAULT_MAX_INCOMING_PACKET as usize);
        assert_eq!(
            c.incoming_limit(4 * 1024 * 1024),
            4 * 1024 * 1024 + PACKET_OVERHEAD
        );
        c.max_incoming_packet = 10 * 1024 * 1024;
        assert_eq!(c.incoming_limit(1024), 10 * 1024 * 1024);
        c.max_incoming_packet = MAX_INCOMING_PACKET;
        assert!(c.validate().is_ok());
        c.max_incoming_packet = MAX_INCOMING_PACKET + 1;
        assert!(c.validate().unwrap_err().contains("max_incoming_packet"));
    }

    #[test]
    fn the_outgoing_queue_is_bounded_in_messages_and_bytes() {
        let link = Link::new("h:1".into());
        link.bound_queue(3, 1000);
        // A single message larger than the byte bound goes when nothing waits...
        assert_eq!(link.reserve(5000), Ok(()));
        // ...but nothing joins it.
        assert_eq!(link.reserve(1), Err(SendError::QueueFull));
        link.release(5000);
        assert_eq!(link.reserve(600), Ok(()));
        assert_eq!(link.reserve(300), Ok(()));
        assert_eq!(link.reserve(200), Err(SendError::QueueFull), "bytes");
        assert_eq!(link.reserve(100), Ok(()));
        assert_eq!(link.reserve(0), Err(SendError::QueueFull), "messages");
        let s = link.stats();
        assert_eq!((s.queued, s.queued_bytes, s.queue_full), (3, 1000, 3));
        link.release(600);
        link.release(300);
        link.release(100);
        assert_eq!((link.stats().queued, link.stats().queued_bytes), (0, 0));
    }

    #[test]
    fn payload_buffers_leave_the_queue_when_dropped() {
        let link = Arc::new(Link::new("h:1".into()));
        link.reserve(3).unwrap();
        let b = bytes::Bytes::from_owner(Queued {
            data: vec![1, 2, 3],
            link: link.clone(),
        });
        let copy = b.clone();
        drop(b);
        assert_eq!(link.stats().queued_bytes, 3, "a clone still holds it");
        assert_eq!(&copy[..], &[1, 2, 3]);
        drop(copy);
        assert_eq!((link.stats().queued, link.stats().queued_bytes), (0, 0));
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let mut c = MqttConfig::new("h", 1);
        c.username = Some("user".into());
        c.password = Some("s3cret-pass".into());
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("user"), "{d}");
    }

    /// A library built without the `tls` feature refuses a TLS configuration with
    /// an error that names the missing feature, before any connection is tried.
    #[test]
    #[cfg(not(feature = "tls"))]
    fn tls_without_the_tls_feature_is_refused_in_words() {
        let cfg = MqttConfig {
            tls: Some(TlsConfig::default()),
            ..MqttConfig::new("127.0.0.1", 8883)
        };
        let e = cfg.tls_transport().err().expect("refused");
        assert!(e.0.contains("cargo feature `tls`"), "{e}");
        assert!(MqttConfig::new("h", 1).tls_transport().unwrap().is_none());
    }

    #[test]
    fn config_is_checked_before_rumqttc_sees_it() {
        let ok = MqttConfig::new("h", 1);
        assert!(ok.validate().is_ok());
        for (c, want) in [
            (
                MqttConfig {
                    host: String::new(),
                    ..ok.clone()
                },
                "host",
            ),
            (
                MqttConfig {
                    port: 0,
                    ..ok.clone()
                },
                "port",
            ),
            (
                MqttConfig {
                    client_id: Some(String::new()),
                    ..ok.clone()
                },
                "client id",
            ),
            (
                MqttConfig {
                    clean_session: false,
                    ..ok.clone()
                },
                "clean_session",
            ),
            (
                MqttConfig {
                    reconnect_min_ms: 0,
                    ..ok.clone()
                },
                "reconnect",
            ),
            (
                MqttConfig {
                    reconnect_min_ms: 10,
                    reconnect_max_ms: 5,
                    ..ok.clone()
                },
                "reconnect",
            ),
            (
                MqttConfig {
                    session_expiry_s: 60,
                    clean_session: false,
                    client_id: Some("id".into()),
                    ..ok.clone()
                },
                "session_expiry_s is an MQTT 5 setting",
            ),
            (
                MqttConfig {
                    session_expiry_s: 60,
                    protocol: MqttVersion::V5,
                    ..ok.clone()
                },
                "needs clean_session = false",
            ),
            (
                MqttConfig {
                    keep_alive_s: 0,
                    protocol: MqttVersion::V5,
                    ..ok.clone()
                },
                "keep_alive_s must be at least 5 with MQTT 5",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    #[cfg(not(feature = "mqtt5"))]
    fn mqtt5_without_its_feature_is_refused_in_words() {
        let c = MqttConfig {
            protocol: MqttVersion::V5,
            ..MqttConfig::new("h", 1)
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("cargo feature `mqtt5`"), "{e}");
        assert!(!MqttVersion::V5.is_built() && MqttVersion::V311.is_built());
    }

    #[test]
    #[cfg(feature = "mqtt5")]
    fn mqtt5_session_expiry_applies_only_to_kept_sessions() {
        let mut c = MqttConfig::new("h", 1);
        assert_eq!(c.session_expiry(), None, "MQTT 3.1.1 has no session expiry");
        c.protocol = MqttVersion::V5;
        assert_eq!(
            c.session_expiry(),
            None,
            "a clean session ends with its connection"
        );
        c.clean_session = false;
        c.client_id = Some("kept".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.session_expiry(), Some(DEFAULT_SESSION_EXPIRY_S));
        c.session_expiry_s = 30;
        assert!(c.validate().is_ok());
        assert_eq!(c.session_expiry(), Some(30));
        assert!(format!("{c:?}").contains("protocol: V5"));
        assert_eq!(MqttVersion::from_number(5), Some(MqttVersion::V5));
        assert_eq!(MqttVersion::from_number(4), Some(MqttVersion::V311));
        assert_eq!(
            MqttVersion::from_number(3),
            None,
            "3 is MQTT 3.1, which is not spoken"
        );
        assert_eq!(MqttVersion::V5.number(), 5);
        assert_eq!(MqttVersion::V311.number(), 4);
    }

    #[test]
    fn a_listener_hears_events_and_can_be_released() {
        let link = Link::new("h:1".into());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        link.set_listener(Some(Box::new(move |e: &ConnectionEvent| {
            s2.lock().push(e.clone())
        })))
        .unwrap();
        link.emit(&ConnectionEvent::Connected);
        assert!(link.is_connected());
        link.emit(&ConnectionEvent::Disconnected {
            cause: DisconnectCause::Lost,
            reason: "eof".into(),
        });
        assert!(!link.is_connected());
        assert_eq!(link.stats().connects, 1);
        assert_eq!(link.stats().connection_errors, 1);
        assert_eq!(
            link.last_error().unwrap().to_string(),
            "connection to h:1 lost: eof"
        );
        link.set_listener(None).unwrap();
        link.emit(&ConnectionEvent::Connected);
        assert_eq!(
            seen.lock().len(),
            2,
            "no event after the listener was released"
        );
        assert_eq!(
            link.last_error(),
            None,
            "a connection clears the last error"
        );
    }
}
