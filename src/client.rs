//! The built-in MQTT transport: rumqttc on a current-thread tokio runtime.
//!
//! One [`Client`] is one MQTT connection that serves any number of devices. It
//! runs in one of two modes, chosen by how the application drives it:
//!
//! - **thread mode**: [`Client::start`] starts one background thread that does all
//!   network work and calls the request handler; [`Client::stop`] ends it.
//! - **yield mode**: the application calls [`Client::yield_for`] from its own loop;
//!   network work and handler calls happen on that thread, inside the call.
//!
//! Both modes run the same driver task on the same runtime; only the thread that
//! runs the runtime differs. Replies may be sent from any thread at any time with
//! [`Client::reply`]; in yield mode they leave with the next `yield_for`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::callback::{self, Kind};
use crate::clock::now_ms;
use crate::counters::counter_set;
use crate::dialect::{Dialect, Identity};
use crate::log::Excerpt;
use crate::presence::{self, PresenceTopics};
pub use crate::router::Request;
use crate::router::{
    Delivery, Device, DeviceError, Dropped, ReplyError, RequestFn, RouterConfig, RouterStats,
    SharedRouter,
};
use crate::session::{
    ConnError, ConnectionState, Filter, Inbound, Outbox, Publisher, QoS, Refused, Session,
    SessionOwner, SubAcks, Will,
};
pub use crate::session::{
    ConnStats, ConnectionEvent, DisconnectCause, Listener, MqttConfig, SendError,
};

/// Settings of the built-in client. [`ClientConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The broker and how to connect to it. `mqtt.client_id` `None` derives one
    /// that is unique per connection (`rrpc` + 16 random hex
    /// digits), so that several devices on one broker never take over each
    /// other's session. `mqtt.connect_timeout_ms` is how long [`Client::start`]
    /// waits for the first connection: when the first attempt fails within that
    /// time, `start` fails with the reason and leaves nothing running; 0 does
    /// not wait (connect and reconnect in the background).
    pub mqtt: MqttConfig,
    /// QoS of the request subscriptions (0 or 1). Replies always go out at QoS 0.
    pub subscribe_qos: u8,
    /// The router's limits and timeouts.
    pub router: RouterConfig,
    /// Presence announcements (retained `online`/`offline`, last will) so that a
    /// caller on a plain broker can tell OFFLINE and HALFCONN; see
    /// [`crate::presence`]. `None` (the default) publishes nothing.
    pub presence: Option<PresenceTopics>,
    /// Execute requests that a resumed persistent session (`mqtt.clean_session
    /// = false`, QoS 1) delivers before the broker acknowledged the
    /// subscriptions again: requests the broker queued while the client was
    /// away, whose callers have most likely given up. `false` (the default)
    /// drops and counts them (`ConnStats::stale`). Retained requests are never
    /// executed, whatever this says (`ConnStats::retained`).
    pub accept_queued: bool,
    /// Most messages (replies, presence) waiting to be written to the network,
    /// 1 to [`MAX_REPLY_QUEUE`]; default [`DEFAULT_REPLY_QUEUE`]. A reply beyond
    /// it fails with [`ClientError::Busy`] and counts in
    /// `ConnStats::queue_full`; its token stays valid until the deadline.
    pub reply_queue_max: usize,
    /// Most payload bytes waiting to be written to the network, 1 to
    /// [`MAX_REPLY_QUEUE_BYTES`]; default [`DEFAULT_REPLY_QUEUE_BYTES`]. A
    /// single reply larger than this still goes when nothing else waits.
    pub reply_queue_bytes: usize,
}

/// Default [`ClientConfig::reply_queue_max`].
pub const DEFAULT_REPLY_QUEUE: usize = 1024;
/// Largest [`ClientConfig::reply_queue_max`].
pub const MAX_REPLY_QUEUE: usize = 65_536;
/// Default [`ClientConfig::reply_queue_bytes`]: 4 MiB.
pub const DEFAULT_REPLY_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Largest [`ClientConfig::reply_queue_bytes`]: 256 MiB.
pub const MAX_REPLY_QUEUE_BYTES: usize = 256 * 1024 * 1024;

impl ClientConfig {
    pub fn new(host: impl Into<String>, port: u16) -> ClientConfig {
        ClientConfig {
            mqtt: MqttConfig::new(host, port),
            subscribe_qos: 0,
            router: RouterConfig::default(),
            presence: None,
            accept_queued: false,
            reply_queue_max: DEFAULT_REPLY_QUEUE,
            reply_queue_bytes: DEFAULT_REPLY_QUEUE_BYTES,
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::InvalidArgument(m.to_string()));
        self.mqtt.validate().map_err(ClientError::InvalidArgument)?;
        if self.subscribe_qos > 1 {
            return bad("subscribe_qos must be 0 or 1");
        }
        self.router
            .validate()
            .map_err(ClientError::InvalidArgument)?;
        if !(1..=MAX_REPLY_QUEUE).contains(&self.reply_queue_max) {
            return bad(&format!(
                "reply_queue_max must be 1 to {MAX_REPLY_QUEUE}, not {}",
                self.reply_queue_max
            ));
        }
        if !(1..=MAX_REPLY_QUEUE_BYTES).contains(&self.reply_queue_bytes) {
            return bad(&format!(
                "reply_queue_bytes must be 1 to {MAX_REPLY_QUEUE_BYTES}, not {}",
                self.reply_queue_bytes
            ));
        }
        if let Some(p) = &self.presence {
            p.validate()
                .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        }
        Ok(())
    }
}

/// What the client's operations can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    InvalidArgument(String),
    Device(DeviceError),
    /// The operation is not allowed in the client's current state.
    WrongState(&'static str),
    /// The first connection attempt failed (thread mode with a connect timeout),
    /// or connection attempts failed during a `yield_for`. The text tells a
    /// failed connect ("could not connect to ...") from a dropped connection
    /// ("connection to ... lost: ...").
    ConnectFailed(String),
    /// The TLS configuration cannot be used (unreadable or malformed PEM, a key
    /// that does not match its certificate, no CA certificates).
    Tls(String),
    /// The client has no connection to the broker at the moment.
    NotConnected,
    /// The outgoing queue is full; retry shortly.
    Busy,
    Reply(ReplyError<SendError>),
}

/// A failed connection: TLS when its handshake failed, a failed connect otherwise.
impl From<ConnError> for ClientError {
    fn from(e: ConnError) -> ClientError {
        if e.is_tls() {
            ClientError::Tls(e.to_string())
        } else {
            ClientError::ConnectFailed(e.to_string())
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            ClientError::Device(e) => e.fmt(f),
            ClientError::WrongState(m) => f.write_str(m),
            ClientError::ConnectFailed(m) => f.write_str(m),
            ClientError::Tls(m) => write!(f, "TLS: {m}"),
            ClientError::NotConnected => f.write_str("not connected to the broker"),
            ClientError::Busy => f.write_str("outgoing queue is full; retry shortly"),
            ClientError::Reply(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {}

/// The request handler: called once per accepted request, on the client's
/// thread (or inside [`Client::yield_for`]). See [`Request`].
pub type Handler = RequestFn;

/// A client's counters: the router's, then the connection's, then gauges. All
/// count from the client's creation, except the gauges. This struct is also
/// the C API's `rrpc_client_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Messages received on the client's subscriptions.
    pub messages: u64,
    /// Requests accepted and handed to the callback.
    pub requests: u64,
    /// Replies sent.
    pub replied: u64,
    /// Requests whose deadline passed without a reply.
    pub expired: u64,
    /// Second deliveries of a request already handed over (dropped).
    pub duplicates: u64,
    /// Own replies that came back on a custom-topic subscription (dropped).
    pub own_replies: u64,
    /// RRPC topics that break the dialect's format (dropped, logged).
    pub malformed: u64,
    /// Well-formed requests for devices not registered (dropped).
    pub unknown_device: u64,
    /// Requests dropped because `max_pending` requests were waiting.
    pub table_full: u64,
    /// Requests dropped because the payload exceeded `max_payload`.
    pub too_large: u64,
    /// Replies refused because the deadline had passed.
    pub late_replies: u64,
    /// Replies refused for an unknown, answered or cancelled token.
    pub bad_tokens: u64,
    /// Replies that could not be queued (not connected, queue full).
    pub send_failures: u64,
    /// Messages that were not RRPC requests.
    pub not_rrpc: u64,
    /// Retained requests (never executed).
    pub retained: u64,
    /// Successful connections, reconnects included.
    pub connects: u64,
    /// Failed connection attempts and lost connections.
    pub connection_errors: u64,
    /// Subscriptions the broker refused.
    pub subscribe_failures: u64,
    /// Incoming messages over `max_payload` (dropped, connection kept), and
    /// MQTT 3.1.1 packets over `max_incoming_packet` (they end the connection).
    pub oversize: u64,
    /// Incoming packets that cannot be decoded, such as a topic that is not
    /// UTF-8 (dropped on MQTT 5; on MQTT 3.1.1 they end the connection).
    pub malformed_packets: u64,
    /// Requests a resumed persistent session delivered before the subscriptions
    /// were acknowledged again (queued while away; dropped unless `accept_queued`).
    pub stale: u64,
    /// Replies refused because the outgoing queue was full (stalled or slow link).
    pub queue_full: u64,
    /// Gauge: requests waiting for a reply now.
    pub pending: u64,
    /// Gauge: devices registered now.
    pub devices: u64,
    /// Gauge: messages waiting in the outgoing queue now.
    pub queued: u64,
    /// Gauge: payload bytes waiting in the outgoing queue now.
    pub queued_bytes: u64,
}

counter_set!(ClientStats as ClientCounter {
    messages,
    requests,
    replied,
    expired,
    duplicates,
    own_replies,
    malformed,
    unknown_device,
    table_full,
    too_large,
    late_replies,
    bad_tokens,
    send_failures,
    not_rrpc,
    retained,
    connects,
    connection_errors,
    subscribe_failures,
    oversize,
    malformed_packets,
    stale,
    queue_full,
    pending,
    devices,
    queued,
    queued_bytes,
});

impl ClientStats {
    fn of(r: RouterStats, c: ConnStats) -> ClientStats {
        ClientStats {
            messages: r.messages,
            requests: r.requests,
            replied: r.replied,
            expired: r.expired,
            duplicates: r.duplicates,
            own_replies: r.own_replies,
            malformed: r.malformed,
            unknown_device: r.unknown_device,
            table_full: r.table_full,
            too_large: r.too_large,
            late_replies: r.late_replies,
            bad_tokens: r.bad_tokens,
            send_failures: r.send_failures,
            not_rrpc: r.not_rrpc,
            retained: r.retained,
            connects: c.connects,
            connection_errors: c.connection_errors,
            subscribe_failures: c.subscribe_failures,
            oversize: c.oversize,
            malformed_packets: c.malformed,
            stale: c.stale,
            queue_full: c.queue_full,
            pending: r.pending,
            devices: r.devices,
            queued: c.queued,
            queued_bytes: c.queued_bytes,
        }
    }
}

struct Inner {
    cfg: ClientConfig,
    link: Arc<ConnectionState>,
    /// The devices, pending requests and the handler; replies go out through
    /// the session's publisher.
    router: SharedRouter<SendError>,
    /// The request side of the connection; read-locked (not cloned) per reply.
    publisher: Arc<RwLock<Option<Publisher>>>,
    warned_no_handler: AtomicBool,
    /// The client id of the connection, once it is made.
    client_id: Mutex<Option<String>>,
    /// The TLS configuration, checked when the client was made; `None`: plain TCP.
    tls: Option<crate::session::TlsTransport>,
}

/// Who runs the runtime at the moment.
enum Mode {
    /// Nobody; `runtime` is at rest (holding a session task if one was started
    /// by yield mode).
    Idle,
    /// The background thread, which hands the runtime back when it ends.
    Thread(JoinHandle<Runtime>),
}

struct Driver {
    runtime: Option<Runtime>,
    mode: Mode,
    /// Tells the session task to disconnect and end.
    stop_tx: Option<watch::Sender<bool>>,
    /// Set while a session task is alive on the runtime; it gives the session back.
    task: Option<tokio::task::JoinHandle<Session>>,
    /// The session while no task runs it.
    session: Option<Session>,
}

/// An RRPC device client over one MQTT connection. See the module documentation.
pub struct Client {
    inner: Arc<Inner>,
    driver: Mutex<Driver>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.inner.link.address())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Client {
    /// Creates a client. Nothing connects until [`Client::start`] or
    /// [`Client::yield_for`].
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        cfg.validate()?;
        let tls = cfg
            .mqtt
            .tls_transport()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot create runtime: {e}")))?;
        let router = SharedRouter::with_callback_kind(cfg.router.clone(), Kind::ClientHandler)
            .map_err(ClientError::InvalidArgument)?;
        let link = Arc::new(ConnectionState::new(cfg.mqtt.address()));
        let publisher: Arc<RwLock<Option<Publisher>>> = Arc::default();
        let (l2, p2) = (link.clone(), publisher.clone());
        router
            .set_publish(Some(Box::new(move |topic: &str, payload: &[u8]| {
                match (&*p2.read(), l2.is_connected()) {
                    (Some(p), true) => p.publish(topic, QoS::AtMostOnce, false, payload),
                    _ => Err(SendError::NotConnected),
                }
            })))
            .expect("a new router runs no callback");
        Ok(Client {
            inner: Arc::new(Inner {
                link,
                cfg,
                router,
                publisher,
                warned_no_handler: AtomicBool::new(false),
                client_id: Mutex::new(None),
                tls,
            }),
            driver: Mutex::new(Driver {
                runtime: Some(runtime),
                mode: Mode::Idle,
                stop_tx: None,
                task: None,
                session: None,
            }),
        })
    }

    /// Sets (or with `None` clears) the request handler. When it returns, the
    /// old handler is not running on any other thread and will not run again.
    /// From inside the handler itself it fails with `WrongState` (it would wait
    /// for itself).
    pub fn set_handler(&self, handler: Option<Box<Handler>>) -> Result<(), ClientError> {
        self.inner
            .router
            .set_request_callback(handler)
            .map_err(|_| {
                ClientError::WrongState("the request handler cannot be replaced from inside itself")
            })
    }

    /// Sets (or clears) the connection listener: connected, disconnected (with
    /// the cause and reason), reconnecting (with the delay). It runs on the
    /// client's thread (or inside `yield_for`), and is released as
    /// [`Client::set_handler`] releases the handler.
    pub fn set_connection_listener(&self, f: Option<Box<Listener>>) -> Result<(), ClientError> {
        self.inner.link.set_listener(f).map_err(|_| {
            ClientError::WrongState("the connection listener cannot be replaced from inside itself")
        })
    }

    /// Registers a device and, when connected, subscribes its filter at once.
    /// Devices are subscribed again after every reconnect.
    pub fn add_device(
        &self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Result<Arc<Device>, ClientError> {
        let device = self
            .inner
            .router
            .add_device(dialect, id, None)
            .map_err(ClientError::Device)?;
        if self.inner.link.is_connected() {
            let publisher = self.inner.publisher.read().clone();
            if let Some(p) = publisher {
                if let Err(e) = p.subscribe(self.inner.request_filter(&device)) {
                    // Undo, so that the caller can simply retry.
                    let _ = self.inner.router.remove_device(dialect, id, now_ms());
                    return Err(match e {
                        SendError::QueueFull => ClientError::Busy,
                        SendError::NotConnected => ClientError::NotConnected,
                    });
                }
            }
        }
        debug!("device added: {} {}", dialect, device.filter());
        Ok(device)
    }

    /// Unregisters a device and unsubscribes its filter. Its pending requests are
    /// cancelled: replying to them fails with `DeviceRemoved`.
    pub fn remove_device(&self, dialect: Dialect, id: &Identity<'_>) -> Result<(), ClientError> {
        let device = self
            .inner
            .router
            .remove_device(dialect, id, now_ms())
            .map_err(ClientError::Device)?;
        if self.inner.link.is_connected() {
            if let Some(p) = self.inner.publisher.read().clone() {
                // Best effort: if the queue is full the subscription lingers until the
                // next reconnect, and its requests are dropped as unknown meanwhile.
                let _ = p.unsubscribe(device.filter());
                self.inner.announce(&p, &device, false);
            }
        }
        Ok(())
    }

    /// Answers request `token` with `payload` (QoS 0). Callable from the handler
    /// and from any other thread. On `NotConnected` and `Busy` the token stays
    /// valid until its deadline, so the reply may be retried.
    pub fn reply(&self, token: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.inner.reply(token, payload)
    }

    /// A handle that can answer requests of this client from anywhere, for
    /// handlers and worker threads (it does not keep the connection alive).
    pub fn replier(&self) -> Replier {
        Replier(self.inner.clone())
    }

    /// Whether the client holds a live connection (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// Requests waiting for a reply now.
    pub fn pending(&self) -> usize {
        self.inner.router.pending()
    }

    /// The counters now.
    pub fn stats(&self) -> ClientStats {
        ClientStats::of(self.inner.router.stats(), self.inner.link.stats())
    }

    /// The MQTT client id in use (derived at the first `start`/`yield_for` when
    /// not configured), or `None` before that.
    pub fn client_id(&self) -> Option<String> {
        self.inner
            .client_id
            .lock()
            .clone()
            .or_else(|| self.inner.cfg.mqtt.client_id.clone())
    }

    /// Whether the calling thread is inside this client's handler.
    pub fn in_handler(&self) -> bool {
        self.inner.router.in_request_callback()
    }

    /// Refuses what would wait for the calling thread itself: from inside any
    /// client's handler, or from a thread that runs an async runtime (a caller's
    /// response callback, a tokio task).
    fn refuse_reentry(&self, what: &'static str) -> Result<(), ClientError> {
        if callback::inside_kind(Kind::ClientHandler)
            || callback::inside_kind(Kind::CallerDriver)
            || tokio::runtime::Handle::try_current().is_ok()
        {
            warn!("{what}: it would wait for the thread running the callback; refused");
            return Err(ClientError::WrongState(what));
        }
        Ok(())
    }

    /// Thread mode: starts the background thread that connects, subscribes every
    /// device, keeps the connection alive and calls the handler. With a connect
    /// timeout, returns once connected and the broker acknowledged the device
    /// subscriptions, so requests published after it returns are delivered. See
    /// [`ClientConfig::mqtt`] for what happens when the broker is unreachable.
    pub fn start(&self) -> Result<(), ClientError> {
        self.refuse_reentry("start cannot be called from a request or response callback")?;
        let link = self.inner.link.clone();
        // This thread reports the first connection's failure; the log does not.
        let _watch = link.watch();
        let mut d = self.driver.lock();
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState("client is already started"));
        }
        let errors_before = link.errors();
        self.ensure_task(&mut d);
        let runtime = d.runtime.take().expect("runtime at rest when idle");
        let mut stop_rx = d.stop_tx.as_ref().expect("stop channel").subscribe();
        let handle = std::thread::Builder::new()
            .name("rrpc-client".into())
            .spawn(move || {
                runtime.block_on(async {
                    // Run until told to stop; the session task does the work.
                    while !*stop_rx.borrow() {
                        if stop_rx.changed().await.is_err() {
                            break;
                        }
                    }
                });
                runtime
            })
            .map_err(|e| ClientError::InvalidArgument(format!("cannot start thread: {e}")))?;
        d.mode = Mode::Thread(handle);
        drop(d);

        let wait = self.inner.cfg.mqtt.connect_timeout_ms;
        if wait == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(wait));
        let outcome = link.wait(deadline, || {
            if link.is_subscribed() {
                Some(None)
            } else if link.errors() != errors_before {
                Some(link.last_error())
            } else {
                None
            }
        });
        let err = match outcome {
            Some(None) => return Ok(()),
            Some(Some(e)) => ClientError::from(e),
            _ => ClientError::ConnectFailed(format!(
                "could not connect to {}: no CONNACK and SUBACK within {wait} ms",
                link.address()
            )),
        };
        let _ = self.stop();
        Err(err)
    }

    /// Disconnects and ends the background thread (thread mode), or disconnects
    /// a connection made by `yield_for` (yield mode). Replies already accepted
    /// are sent before the MQTT DISCONNECT. Returns when no handler is running
    /// any more. Pending requests stay in the table until they expire.
    pub fn stop(&self) -> Result<(), ClientError> {
        self.refuse_reentry("stop cannot be called from a request or response callback")?;
        let mut d = self.driver.lock();
        let Some(stop_tx) = d.stop_tx.take() else {
            return Ok(()); // nothing running
        };
        let _ = stop_tx.send(true);
        if let Mode::Thread(handle) = std::mem::replace(&mut d.mode, Mode::Idle) {
            match handle.join() {
                Ok(rt) => d.runtime = Some(rt),
                Err(_) => {
                    error!("client thread panicked; creating a fresh runtime");
                    d.runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok();
                }
            }
        }
        if let (Some(task), Some(rt)) = (d.task.take(), d.runtime.as_ref()) {
            match rt
                .block_on(async { tokio::time::timeout(Duration::from_millis(2000), task).await })
            {
                Ok(Ok(session)) => d.session = Some(session),
                _ => {
                    // The session is lost (dropped with its task): make a new one
                    // on the next start.
                    *self.inner.publisher.write() = None;
                    self.inner.link.forget();
                }
            }
        }
        Ok(())
    }

    /// Yield mode: does network work and calls the handler on the calling thread
    /// for `timeout_ms` milliseconds (0: only what is ready now). The first call
    /// connects. Returns `ConnectFailed` when connection attempts failed during
    /// this call and the client is still not connected; the next call retries
    /// (after the reconnect delay).
    pub fn yield_for(&self, timeout_ms: u32) -> Result<(), ClientError> {
        self.refuse_reentry("yield cannot be called from a request or response callback")?;
        let mut d = self.driver.try_lock().ok_or(ClientError::WrongState(
            "another thread is inside yield, start or stop on this client",
        ))?;
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState(
                "client is started in thread mode; yield is not used",
            ));
        }
        let link = self.inner.link.clone();
        // Failures during this call are returned by it.
        let _watch = link.watch();
        let errors_before = link.errors();
        self.ensure_task(&mut d);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        rt.block_on(async {
            if timeout_ms == 0 {
                // Let the session handle whatever the network has ready now.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(u64::from(timeout_ms))).await;
            }
        });
        if !link.is_connected() && link.errors() != errors_before {
            return Err(match link.last_error() {
                Some(e) => ClientError::from(e),
                None => ClientError::ConnectFailed(String::new()),
            });
        }
        Ok(())
    }

    /// Spawns the session task (and the expiry task) on the runtime if none is alive.
    fn ensure_task(&self, d: &mut Driver) {
        if d.task.is_some() {
            return;
        }
        let session = match d.session.take() {
            Some(s) => s,
            None => {
                let s = self.inner.open_session();
                *self.inner.publisher.write() = Some(s.publisher());
                s
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        d.task = Some(session.spawn(rt.handle(), self.inner.clone(), stop_rx.clone()));
        rt.spawn(expire_loop(self.inner.clone(), stop_rx));
        d.stop_tx = Some(stop_tx);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.stop().is_err() {
            // Dropped from inside a callback: the thread cannot join itself. This
            // can only happen through the Rust API misused; the C API refuses it.
            error!("client dropped from inside a request or response callback");
        }
    }
}

/// Answers requests of one [`Client`]; see [`Client::replier`].
#[derive(Clone)]
pub struct Replier(Arc<Inner>);

impl Replier {
    /// As [`Client::reply`].
    pub fn reply(&self, token: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.0.reply(token, payload)
    }
}

impl fmt::Debug for Replier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replier").finish_non_exhaustive()
    }
}

impl Inner {
    fn reply(&self, token: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.router
            .reply(token, payload, now_ms())
            .map_err(|e| match e {
                ReplyError::Send(SendError::QueueFull) => ClientError::Busy,
                ReplyError::Send(SendError::NotConnected) | ReplyError::NoPublish => {
                    ClientError::NotConnected
                }
                e => ClientError::Reply(e),
            })
    }

    /// The subscription of a device's requests. A custom-topic device answers
    /// on the topic its requests come on, which its own filter matches: with
    /// MQTT 5 No Local the broker keeps those replies from coming back (on MQTT
    /// 3.1.1 the router recognises them, `own_replies`).
    fn request_filter(&self, d: &Device) -> Filter {
        Filter {
            topic: d.filter().to_string(),
            qos: if self.cfg.subscribe_qos == 1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            no_local: d.dialect.needs_custom_topic(),
        }
    }

    fn open_session(&self) -> Session {
        let cfg = &self.cfg;
        let client_id = cfg
            .mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| self.derive_client_id());
        *self.client_id.lock() = Some(client_id.clone());
        let s = Session::open(
            &cfg.mqtt,
            self.tls.clone(),
            &client_id,
            cfg.router.max_payload,
            cfg.reply_queue_max,
            self.link.clone(),
        );
        s.bound_queue(cfg.reply_queue_max, cfg.reply_queue_bytes);
        s
    }

    /// `rrpc` + 16 random hex digits: unique per connection, and a valid MQTT
    /// 3.1.1 client id (at most 23 alphanumerics), so that several devices on one
    /// broker never take over each other's session.
    fn derive_client_id(&self) -> String {
        format!("rrpc{:016x}", crate::random::u64())
    }

    fn client_id_or_empty(&self) -> String {
        self.client_id.lock().clone().unwrap_or_default()
    }

    /// This connection's name in presence: under its user name, where an ACL
    /// can keep other accounts from writing its status (see [`presence`]).
    fn connection_name(&self) -> String {
        presence::connection_name(
            self.cfg.mqtt.username.as_deref(),
            &self.client_id_or_empty(),
        )
    }

    /// Publishes a device's retained `online {client-id}` or `offline` (presence on).
    fn announce(&self, publisher: &Publisher, device: &Device, online: bool) {
        let Some(p) = &self.cfg.presence else { return };
        let topic = p.device_topic(device.product_key(), device.device_name());
        let payload = if online {
            presence::online_payload(&self.connection_name()).into_bytes()
        } else {
            presence::OFFLINE.to_vec()
        };
        if publisher
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .is_err()
        {
            warn!(
                "presence for {}/{} not published: queue full",
                device.product_key(),
                device.device_name()
            );
        }
    }
}

impl SessionOwner for Inner {
    fn filters(&self) -> Vec<Filter> {
        self.router
            .with_router(|r| r.devices().map(|d| self.request_filter(d)).collect())
    }

    /// After CONNACK: the retained `online` announcements (presence on).
    fn on_connack(&self, out: &mut Outbox<'_>) {
        let Some(p) = &self.cfg.presence else { return };
        let cid = self.connection_name();
        let online = presence::online_payload(&cid);
        let n = self.router.with_router(|router| {
            let mut n = 0;
            for d in router.devices() {
                out.publish(
                    p.device_topic(d.product_key(), d.device_name()),
                    QoS::AtLeastOnce,
                    true,
                    online.as_bytes(),
                );
                n += 1;
            }
            n
        });
        if n > 1 {
            // Clears an `offline` left by an earlier connection with this id.
            out.publish(
                p.connection_topic(&cid),
                QoS::AtLeastOnce,
                true,
                presence::ONLINE,
            );
        }
    }

    /// One incoming PUBLISH: route it and, if it is a request, call the handler.
    fn on_publish(&self, topic: &str, payload: &[u8], how: Inbound) {
        if how.early && !how.retain && !self.cfg.accept_queued {
            self.link.note_refused(Refused::Stale, topic);
            return;
        }
        // The router refuses a retained request (anyone who could publish there
        // may have left it, and every subscription delivers it again).
        match self
            .router
            .handle_message(topic.as_bytes(), payload, how.retain, now_ms())
        {
            Ok(Delivery::Delivered) => {}
            Ok(Delivery::Panicked(token)) => {
                error!("request handler panicked; request {token} left to expire")
            }
            Ok(Delivery::NoCallback) => {
                if !self.warned_no_handler.swap(true, Ordering::Relaxed) {
                    warn!("request received but no handler is registered; it will expire");
                }
            }
            Err(Dropped::NotRrpc) => {
                debug!("ignored message on {}: not an RRPC request", Excerpt(topic));
            }
            Err(Dropped::Malformed(why)) => {
                throttled!(
                    crate::log::Level::Warn,
                    "ignored malformed RRPC topic {}: {why}",
                    Excerpt(topic)
                );
            }
            Err(Dropped::Retained) => {
                throttled!(
                    crate::log::Level::Warn,
                    "ignored a retained request on {} (a retained request is never executed)",
                    Excerpt(topic)
                );
            }
            Err(d) => {
                throttled!(
                    crate::log::Level::Info,
                    "ignored request on {}: {d}",
                    Excerpt(topic)
                );
            }
        }
    }

    fn on_suback(&self, _pkid: u16, acks: SubAcks<'_>) {
        // A device added while connected.
        self.link
            .note_subscribe_failures(acks.refused() as u64, acks.reason());
    }

    /// The last will for the next connection: retained `offline` on the device's
    /// topic when the connection serves one device, else on the connection topic.
    fn last_will(&self) -> Option<Will> {
        let p = self.cfg.presence.as_ref()?;
        let topic = self.router.with_router(|router| {
            let mut devices = router.devices();
            match (devices.next(), devices.next()) {
                (Some(d), None) => p.device_topic(d.product_key(), d.device_name()),
                _ => p.connection_topic(&self.connection_name()),
            }
        });
        Some(Will {
            topic,
            payload: presence::OFFLINE.to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
        })
    }

    /// On a clean stop: every device's retained `offline` (a clean DISCONNECT
    /// suppresses the last will).
    fn on_stopping(&self, publisher: &Publisher) {
        if self.cfg.presence.is_none() {
            return;
        }
        let devices: Vec<Arc<Device>> = self.router.with_router(|r| r.devices().cloned().collect());
        for d in &devices {
            self.announce(publisher, d, false);
        }
    }
}

/// Removes expired requests at their deadline (or at least once a second), so
/// that the table frees itself without traffic.
async fn expire_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now_ms();
        let wait = match inner.router.next_deadline() {
            Some(d) if d >= now => (d - now + 1).min(1000),
            Some(_) => 0,
            None => 1000,
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let (n, _) = inner.router.tick(now_ms());
        if n > 0 {
            debug!("{n} request(s) expired without a reply");
        }
    }
}
