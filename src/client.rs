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

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use rumqttc::{
    AsyncClient, ClientError as MqttClientError, ConnectionError, Event, EventLoop, LastWill,
    Packet, QoS, Request as MqttRequest, Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::dialect::{Dialect, Identity};
use crate::mqtt::Connection;
use crate::presence::{self, PresenceTopics};
use crate::router::{Device, DeviceError, Dropped, ReplyError, Router, RouterConfig, Stats};

/// Filters per SUBSCRIBE packet when (re)subscribing many devices.
const SUBSCRIBE_BATCH: usize = 64;

/// Settings of the built-in client. [`ClientConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// MQTT client id; `None` derives one that is unique per process and per set
    /// of devices (`rrpc` + 16 hex digits), so that several devices on one broker
    /// never take over each other's session.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT keep-alive in seconds; 0 disables it.
    pub keep_alive_s: u16,
    /// MQTT clean-session flag. `false` requires an explicit `client_id`.
    pub clean_session: bool,
    /// QoS of the request subscriptions (0 or 1). Replies always go out at QoS 0.
    pub subscribe_qos: u8,
    /// How long [`Client::start`] waits for the first connection, in ms. When the
    /// first attempt fails within that time, `start` fails with the reason and
    /// leaves nothing running. 0: do not wait; connect and reconnect in the
    /// background. Also bounds each TCP connect attempt (rounded up to seconds).
    pub connect_timeout_ms: u32,
    /// First reconnect delay, in ms; it doubles per failed attempt...
    pub reconnect_min_ms: u32,
    /// ...up to this cap, in ms, with +-25% jitter.
    pub reconnect_max_ms: u32,
    /// The router's limits and timeouts.
    pub router: RouterConfig,
    /// Presence announcements (retained `online`/`offline`, last will) so that a
    /// caller on a plain broker can tell OFFLINE and HALFCONN; see
    /// [`crate::presence`]. `None` (the default) publishes nothing.
    pub presence: Option<PresenceTopics>,
}

impl ClientConfig {
    pub fn new(host: impl Into<String>, port: u16) -> ClientConfig {
        ClientConfig {
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 60,
            clean_session: true,
            subscribe_qos: 0,
            connect_timeout_ms: 5000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            router: RouterConfig::default(),
            presence: None,
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::InvalidArgument(m.to_string()));
        if self.host.is_empty() {
            return bad("host is empty");
        }
        if self.port == 0 {
            return bad("port is 0");
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 65535 {
                return bad("client id must be 1 to 65535 bytes");
            }
        }
        if !self.clean_session && self.client_id.is_none() {
            return bad("clean_session = false needs an explicit client id, or the session is never found again");
        }
        if self.subscribe_qos > 1 {
            return bad("subscribe_qos must be 0 or 1");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return bad("reconnect delays must satisfy 0 < reconnect_min_ms <= reconnect_max_ms");
        }
        if self.router.max_pending == 0 {
            return bad("max_pending must be at least 1");
        }
        if self.router.max_payload == 0 || self.router.max_payload > 256 * 1024 * 1024 {
            return bad("max_payload must be 1 byte to 256 MiB");
        }
        if self.router.request_timeout_ms > 600_000 {
            return bad("request_timeout_ms must be at most 600000");
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
    /// or connection attempts failed during a `yield_for`.
    ConnectFailed(String),
    /// The client has no connection to the broker at the moment.
    NotConnected,
    /// The outgoing queue is full; retry shortly.
    Busy,
    Reply(ReplyError<SendError>),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            ClientError::Device(e) => e.fmt(f),
            ClientError::WrongState(m) => f.write_str(m),
            ClientError::ConnectFailed(m) => write!(f, "could not connect: {m}"),
            ClientError::NotConnected => f.write_str("not connected to the broker"),
            ClientError::Busy => f.write_str("outgoing queue is full; retry shortly"),
            ClientError::Reply(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {}

/// Why a reply could not be handed to the MQTT connection.
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

/// A request handed to the handler. Everything borrows from the received
/// message and is valid only during the handler call; keep the `token` to reply
/// later.
#[derive(Debug)]
pub struct Request<'a> {
    pub token: u64,
    pub device: &'a Device,
    /// The message id, without a ContentType suffix.
    pub message_id: &'a str,
    /// The RRpc ContentType the caller sent, if any (see
    /// [`crate::dialect::CONTENT_TYPE_SEPARATOR`] for the wire format).
    pub content_type: Option<u8>,
    pub payload: &'a [u8],
    /// `CLOCK_MONOTONIC` milliseconds after which a reply is refused.
    pub deadline_ms: u64,
}

/// The request handler: called once per accepted request.
pub type Handler = dyn Fn(&Request<'_>) + Send + Sync;

/// Connection counters, on top of the router's [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Successful connections (CONNACK received), including reconnects.
    pub connects: u64,
    /// Connections lost or attempts failed.
    pub connection_errors: u64,
    /// Subscriptions the broker refused in a SUBACK.
    pub subscribe_failures: u64,
}

thread_local! {
    /// The client whose handler is running on this thread, if any.
    static IN_HANDLER: Cell<usize> = const { Cell::new(0) };
}

struct Inner {
    cfg: ClientConfig,
    router: Mutex<Router>,
    handler: RwLock<Option<Arc<Handler>>>,
    /// The request side of the connection; read-locked (not cloned) per reply.
    mqtt: RwLock<Option<AsyncClient>>,
    connected: AtomicBool,
    connects: AtomicU64,
    connection_errors: AtomicU64,
    subscribe_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Signalled on every connect and connection error (for `start`'s wait).
    conn_event: Condvar,
    conn_event_lock: Mutex<()>,
    warned_no_handler: AtomicBool,
    /// SUBSCRIBE batches sent after the last CONNACK and not yet acknowledged.
    pending_subacks: AtomicU64,
    /// The client id of the connection, once it is made.
    client_id: Mutex<Option<String>>,
}

/// Who runs the runtime at the moment.
enum Mode {
    /// Nobody; `runtime` is at rest (holding a driver task if one was started by
    /// yield mode).
    Idle,
    /// The background thread, which hands the runtime back when it ends.
    Thread(JoinHandle<Runtime>),
}

struct Driver {
    runtime: Option<Runtime>,
    mode: Mode,
    /// Tells the driver task to disconnect and end.
    stop_tx: Option<watch::Sender<bool>>,
    /// Set when a driver task is alive on the runtime.
    task: Option<tokio::task::JoinHandle<EventLoop>>,
    /// The connection's event loop while no driver task holds it.
    eventloop: Option<EventLoop>,
}

/// An RRPC device client over one MQTT connection. See the module documentation.
pub struct Client {
    inner: Arc<Inner>,
    driver: Mutex<Driver>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.inner.cfg.host)
            .field("port", &self.inner.cfg.port)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Client {
    /// Creates a client. Nothing connects until [`Client::start`] or
    /// [`Client::yield_for`].
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        cfg.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot create runtime: {e}")))?;
        let router = Router::new(cfg.router.clone());
        Ok(Client {
            inner: Arc::new(Inner {
                cfg,
                router: Mutex::new(router),
                handler: RwLock::new(None),
                mqtt: RwLock::new(None),
                connected: AtomicBool::new(false),
                connects: AtomicU64::new(0),
                connection_errors: AtomicU64::new(0),
                subscribe_failures: AtomicU64::new(0),
                last_error: Mutex::new(None),
                conn_event: Condvar::new(),
                conn_event_lock: Mutex::new(()),
                warned_no_handler: AtomicBool::new(false),
                pending_subacks: AtomicU64::new(0),
                client_id: Mutex::new(None),
            }),
            driver: Mutex::new(Driver {
                runtime: Some(runtime),
                mode: Mode::Idle,
                stop_tx: None,
                task: None,
                eventloop: None,
            }),
        })
    }

    /// Sets (or with `None` clears) the request handler. Takes effect for the
    /// next request; a handler call already running finishes first.
    pub fn set_handler(&self, handler: Option<Arc<Handler>>) {
        *self.inner.handler.write() = handler;
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
            .lock()
            .add_device(dialect, id)
            .map_err(ClientError::Device)?;
        if self.inner.connected.load(Ordering::SeqCst) {
            let mqtt = self.inner.mqtt.read().clone();
            if let Some(mqtt) = mqtt {
                if let Err(e) = mqtt.try_subscribe(device.filter(), self.inner.qos()) {
                    // Undo, so that the caller can simply retry.
                    let _ = self
                        .inner
                        .router
                        .lock()
                        .remove_device(dialect, id, now_ms());
                    return Err(map_client_error(e));
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
            .lock()
            .remove_device(dialect, id, now_ms())
            .map_err(ClientError::Device)?;
        if self.inner.connected.load(Ordering::SeqCst) {
            if let Some(mqtt) = self.inner.mqtt.read().clone() {
                // Best effort: if the queue is full the subscription lingers until the
                // next reconnect, and its requests are dropped as unknown meanwhile.
                let _ = mqtt.try_unsubscribe(device.filter());
                self.inner.announce(&mqtt, &device, false);
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
        self.inner.connected.load(Ordering::SeqCst)
    }

    /// Requests waiting for a reply now.
    pub fn pending(&self) -> usize {
        self.inner.router.lock().pending_len()
    }

    pub fn stats(&self) -> Stats {
        self.inner.router.lock().stats()
    }

    pub fn conn_stats(&self) -> ConnStats {
        ConnStats {
            connects: self.inner.connects.load(Ordering::Relaxed),
            connection_errors: self.inner.connection_errors.load(Ordering::Relaxed),
            subscribe_failures: self.inner.subscribe_failures.load(Ordering::Relaxed),
        }
    }

    /// The MQTT client id in use (derived at the first `start`/`yield_for` when
    /// not configured), or `None` before that.
    pub fn client_id(&self) -> Option<String> {
        self.inner
            .client_id
            .lock()
            .clone()
            .or_else(|| self.inner.cfg.client_id.clone())
    }

    /// Whether the calling thread is inside this client's handler.
    pub fn in_handler(&self) -> bool {
        IN_HANDLER.with(|c| c.get() == Arc::as_ptr(&self.inner) as usize)
    }

    fn refuse_in_handler(&self, what: &'static str) -> Result<(), ClientError> {
        if IN_HANDLER.with(|c| c.get() != 0) {
            return Err(ClientError::WrongState(what));
        }
        Ok(())
    }

    /// Thread mode: starts the background thread that connects, subscribes every
    /// device, keeps the connection alive and calls the handler. With a connect
    /// timeout, returns once connected and the broker acknowledged the device
    /// subscriptions, so requests published after it returns are delivered. See
    /// [`ClientConfig::connect_timeout_ms`] for what happens when the broker is
    /// unreachable.
    pub fn start(&self) -> Result<(), ClientError> {
        self.refuse_in_handler("start cannot be called from a request handler")?;
        let mut d = self.driver.lock();
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState("client is already started"));
        }
        let errors_before = self.inner.connection_errors.load(Ordering::SeqCst);
        self.ensure_task(&mut d);
        let runtime = d.runtime.take().expect("runtime at rest when idle");
        let mut stop_rx = d.stop_tx.as_ref().expect("stop channel").subscribe();
        let handle = std::thread::Builder::new()
            .name("rrpc-client".into())
            .spawn(move || {
                runtime.block_on(async {
                    // Run until told to stop; the driver task does the work.
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

        let wait = self.inner.cfg.connect_timeout_ms;
        if wait == 0 {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(u64::from(wait));
        let mut guard = self.inner.conn_event_lock.lock();
        loop {
            if self.inner.is_ready() {
                return Ok(());
            }
            if self.inner.connection_errors.load(Ordering::SeqCst) != errors_before {
                break;
            }
            if self
                .inner
                .conn_event
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                if self.inner.is_ready() {
                    return Ok(());
                }
                break;
            }
        }
        drop(guard);
        let why = self
            .inner
            .last_error
            .lock()
            .clone()
            .unwrap_or_else(|| format!("no CONNACK within {wait} ms"));
        let _ = self.stop();
        Err(ClientError::ConnectFailed(format!(
            "{}:{}: {why}",
            self.inner.cfg.host, self.inner.cfg.port
        )))
    }

    /// Disconnects and ends the background thread (thread mode), or disconnects
    /// a connection made by `yield_for` (yield mode). Returns when no handler is
    /// running any more. Pending requests stay in the table until they expire.
    pub fn stop(&self) -> Result<(), ClientError> {
        self.refuse_in_handler("stop cannot be called from a request handler")?;
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
                Ok(Ok(eventloop)) => d.eventloop = Some(eventloop),
                _ => {
                    // The event loop is lost (dropped with its task): make a new one
                    // on the next start.
                    *self.inner.mqtt.write() = None;
                }
            }
        }
        self.inner.set_connected(false);
        Ok(())
    }

    /// Yield mode: does network work and calls the handler on the calling thread
    /// for `timeout_ms` milliseconds (0: only what is ready now). The first call
    /// connects. Returns `ConnectFailed` when connection attempts failed during
    /// this call and the client is still not connected; the next call retries
    /// (after the reconnect delay).
    pub fn yield_for(&self, timeout_ms: u32) -> Result<(), ClientError> {
        if self.in_handler() {
            return Err(ClientError::WrongState(
                "yield cannot be called from a request handler",
            ));
        }
        self.refuse_in_handler("yield cannot be called from another client's request handler")?;
        let mut d = self.driver.try_lock().ok_or(ClientError::WrongState(
            "another thread is inside yield, start or stop on this client",
        ))?;
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState(
                "client is started in thread mode; yield is not used",
            ));
        }
        let errors_before = self.inner.connection_errors.load(Ordering::SeqCst);
        self.ensure_task(&mut d);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        rt.block_on(async {
            if timeout_ms == 0 {
                // Let the driver handle whatever the network has ready now.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(u64::from(timeout_ms))).await;
            }
        });
        if !self.is_connected()
            && self.inner.connection_errors.load(Ordering::SeqCst) != errors_before
        {
            let why = self.inner.last_error.lock().clone().unwrap_or_default();
            return Err(ClientError::ConnectFailed(format!(
                "{}:{}: {why}",
                self.inner.cfg.host, self.inner.cfg.port
            )));
        }
        Ok(())
    }

    /// Spawns the driver task on the runtime if none is alive.
    fn ensure_task(&self, d: &mut Driver) {
        if d.task.is_some() {
            return;
        }
        let eventloop = match d.eventloop.take() {
            Some(mut e) => {
                e.clean();
                e
            }
            None => {
                let (client, eventloop) = self.inner.make_connection();
                *self.inner.mqtt.write() = Some(client);
                eventloop
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        let inner = self.inner.clone();
        d.task = Some(rt.spawn(drive(inner.clone(), eventloop, stop_rx.clone())));
        rt.spawn(expire_loop(inner, stop_rx));
        d.stop_tx = Some(stop_tx);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.stop().is_err() {
            // Dropped from inside a handler: the thread cannot join itself. This
            // can only happen through the Rust API misused; the C API refuses it.
            error!("client dropped from inside its own request handler");
        }
    }
}

fn map_client_error(e: MqttClientError) -> ClientError {
    match e {
        MqttClientError::TryRequest(_) => ClientError::Busy,
        MqttClientError::Request(_) => ClientError::NotConnected,
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
        let now = now_ms();
        let connected = self.connected.load(Ordering::SeqCst);
        // Lock order: mqtt, then router (nothing takes them the other way round).
        let mqtt = self.mqtt.read();
        let mut router = self.router.lock();
        let r = router.reply(token, payload, now, |topic, payload| {
            let mqtt = match (&*mqtt, connected) {
                (Some(m), true) => m,
                _ => return Err(SendError::NotConnected),
            };
            // The request channel is only ever full here: it closes only when the
            // event loop is dropped, which happens after `connected` turns false.
            mqtt.try_publish(topic, QoS::AtMostOnce, false, payload)
                .map_err(|_| SendError::QueueFull)
        });
        drop(router);
        drop(mqtt);
        r.map_err(|e| match e {
            ReplyError::Send(SendError::QueueFull) => ClientError::Busy,
            ReplyError::Send(SendError::NotConnected) => ClientError::NotConnected,
            e => ClientError::Reply(e),
        })
    }

    fn qos(&self) -> QoS {
        if self.cfg.subscribe_qos == 1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        }
    }

    /// Connected, and the broker acknowledged the subscriptions made at connect.
    fn is_ready(&self) -> bool {
        self.connected.load(Ordering::SeqCst) && self.pending_subacks.load(Ordering::SeqCst) == 0
    }

    fn notify_conn_event(&self) {
        let _g = self.conn_event_lock.lock();
        self.conn_event.notify_all();
    }

    fn set_connected(&self, v: bool) {
        self.connected.store(v, Ordering::SeqCst);
        self.notify_conn_event();
    }

    fn make_connection(&self) -> (AsyncClient, EventLoop) {
        let cfg = &self.cfg;
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| self.derive_client_id());
        *self.client_id.lock() = Some(client_id.clone());
        let conn = Connection {
            client_id: &client_id,
            host: &cfg.host,
            port: cfg.port,
            username: cfg.username.as_deref(),
            password: cfg.password.as_deref(),
            keep_alive_s: cfg.keep_alive_s,
            clean_session: cfg.clean_session,
            max_payload: cfg.router.max_payload,
            // Every pending request may have its reply queued at once.
            channel_capacity: cfg.router.max_pending.saturating_add(64),
            connect_timeout_ms: cfg.connect_timeout_ms,
        };
        let mut o = conn.options();
        if let Some(will) = self.last_will() {
            o.set_last_will(will);
        }
        conn.open(o)
    }

    /// `rrpc` + 16 hex digits of a hash of the process id, the registered
    /// devices, the time and a per-process counter: unique per process and
    /// identity, and a valid MQTT 3.1.1 client id (at most 23 alphanumerics).
    fn derive_client_id(&self) -> String {
        use std::hash::{Hash, Hasher};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::process::id().hash(&mut h);
        COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .hash(&mut h);
        for d in self.router.lock().devices() {
            d.filter().hash(&mut h);
        }
        format!("rrpc{:016x}", h.finish())
    }

    fn note_connection_error(&self, e: &ConnectionError) {
        let msg = describe(e);
        let first = self.connected.load(Ordering::SeqCst) || self.last_error.lock().is_none();
        *self.last_error.lock() = Some(msg.clone());
        self.connection_errors.fetch_add(1, Ordering::SeqCst);
        self.set_connected(false);
        if first {
            warn!(
                "connection to {}:{} lost or refused: {msg}",
                self.cfg.host, self.cfg.port
            );
        } else {
            debug!(
                "reconnect to {}:{} failed: {msg}",
                self.cfg.host, self.cfg.port
            );
        }
    }

    /// One incoming PUBLISH: route it and, if it is a request, call the handler.
    fn on_publish(self: &Arc<Self>, topic: &str, payload: &[u8]) {
        let now = now_ms();
        let accepted = {
            let mut router = self.router.lock();
            router.handle_message(topic, payload, now).map(|a| {
                let device = router.device(a.device).cloned();
                (
                    a,
                    device.expect("an accepted request's device is registered"),
                )
            })
        };
        let (a, device) = match accepted {
            Ok(a) => a,
            Err(Dropped::NotRrpc) => {
                debug!("ignored message on {topic:?}: not an RRPC request");
                return;
            }
            Err(Dropped::Malformed(why)) => {
                warn!("ignored malformed RRPC topic {topic:?}: {why}");
                return;
            }
            Err(d) => {
                info!("ignored request on {topic:?}: {d}");
                return;
            }
        };
        let handler = self.handler.read().clone();
        let Some(handler) = handler else {
            if !self.warned_no_handler.swap(true, Ordering::Relaxed) {
                warn!("request received but no handler is registered; it will expire");
            }
            return;
        };
        let req = Request {
            token: a.token,
            device: &device,
            message_id: a.message_id,
            content_type: a.content_type,
            payload: a.payload,
            deadline_ms: a.deadline_ms,
        };
        let me = Arc::as_ptr(self) as usize;
        let prev = IN_HANDLER.with(|c| c.replace(me));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req)));
        IN_HANDLER.with(|c| c.set(prev));
        if r.is_err() {
            error!(
                "request handler panicked; request {} left to expire",
                a.message_id
            );
        }
    }

    /// The last will for the next connection: retained `offline` on the device's
    /// topic when the connection serves one device, else on the connection topic.
    fn last_will(&self) -> Option<LastWill> {
        let p = self.cfg.presence.as_ref()?;
        let topic = {
            let router = self.router.lock();
            let mut devices = router.devices();
            match (devices.next(), devices.next()) {
                (Some(d), None) => p.device_topic(d.product_key(), d.device_name()),
                _ => p.connection_topic(&self.client_id.lock().clone().unwrap_or_default()),
            }
        };
        Some(LastWill::new(
            topic,
            presence::OFFLINE,
            QoS::AtLeastOnce,
            true,
        ))
    }

    /// Publishes a device's retained `online {client-id}` or `offline` (presence on).
    fn announce(&self, mqtt: &AsyncClient, device: &Device, online: bool) {
        let Some(p) = &self.cfg.presence else { return };
        let topic = p.device_topic(device.product_key(), device.device_name());
        let payload = if online {
            presence::online_payload(&self.client_id.lock().clone().unwrap_or_default())
                .into_bytes()
        } else {
            presence::OFFLINE.to_vec()
        };
        if mqtt
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .is_err()
        {
            warn!(
                "presence for {}/{} not published: queue full",
                device.product_key(),
                device.device_name()
            );
        }
    }

    /// After CONNACK: queue the retained `online` announcements (presence on).
    fn announce_all(&self, eventloop: &mut EventLoop) {
        let Some(p) = &self.cfg.presence else { return };
        let cid = self.client_id.lock().clone().unwrap_or_default();
        let online = presence::online_payload(&cid);
        let router = self.router.lock();
        let mut n = 0;
        for d in router.devices() {
            let mut publish = rumqttc::Publish::new(
                p.device_topic(d.product_key(), d.device_name()),
                QoS::AtLeastOnce,
                online.as_bytes(),
            );
            publish.retain = true;
            eventloop.pending.push_back(MqttRequest::Publish(publish));
            n += 1;
        }
        if n > 1 {
            // Clears an `offline` left by an earlier connection with this id.
            let mut publish =
                rumqttc::Publish::new(p.connection_topic(&cid), QoS::AtLeastOnce, presence::ONLINE);
            publish.retain = true;
            eventloop.pending.push_back(MqttRequest::Publish(publish));
        }
    }

    /// On a clean stop: every device's retained `offline` (a clean DISCONNECT
    /// suppresses the last will).
    fn announce_all_offline(&self, mqtt: &AsyncClient) {
        if self.cfg.presence.is_none() {
            return;
        }
        let devices: Vec<Arc<Device>> = self.router.lock().devices().cloned().collect();
        for d in &devices {
            self.announce(mqtt, d, false);
        }
    }

    /// After CONNACK: queue SUBSCRIBE packets for every registered device.
    fn resubscribe(&self, eventloop: &mut EventLoop) {
        let qos = self.qos();
        let filters: Vec<SubscribeFilter> = self
            .router
            .lock()
            .devices()
            .map(|d| SubscribeFilter::new(d.filter().to_string(), qos))
            .collect();
        let n = filters.len();
        self.pending_subacks
            .store(n.div_ceil(SUBSCRIBE_BATCH) as u64, Ordering::SeqCst);
        for chunk in filters.chunks(SUBSCRIBE_BATCH) {
            eventloop
                .pending
                .push_back(MqttRequest::Subscribe(Subscribe::new_many(chunk.to_vec())));
        }
        if n > 0 {
            debug!("subscribing {n} device filter(s)");
        }
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => io.to_string(),
        ConnectionError::ConnectionRefused(code) => {
            format!("broker refused the connection ({code:?})")
        }
        ConnectionError::NetworkTimeout => "connection attempt timed out".to_string(),
        other => other.to_string(),
    }
}

/// The driver task: polls the event loop, reconnects with capped exponential
/// backoff, resubscribes after each CONNACK and hands PUBLISHes to the router.
/// Ends (after sending DISCONNECT when connected) when `stop` turns true, and
/// gives the event loop back.
async fn drive(
    inner: Arc<Inner>,
    mut eventloop: EventLoop,
    mut stop: watch::Receiver<bool>,
) -> EventLoop {
    let mut backoff = Backoff::new(inner.cfg.reconnect_min_ms, inner.cfg.reconnect_max_ms);
    // One stop future for the whole loop: making a new one per event cost about
    // as much as routing the request.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            biased;
            _ = &mut stopped => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => inner.on_publish(&p.topic, &p.payload),
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                *inner.last_error.lock() = None;
                inner.connects.fetch_add(1, Ordering::SeqCst);
                inner.resubscribe(&mut eventloop);
                inner.announce_all(&mut eventloop);
                inner.set_connected(true);
                info!("connected to {}:{}", inner.cfg.host, inner.cfg.port);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let left = inner.pending_subacks.load(Ordering::SeqCst);
                if left > 0 {
                    inner.pending_subacks.store(left - 1, Ordering::SeqCst);
                    if left == 1 {
                        inner.notify_conn_event();
                    }
                }
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    inner
                        .subscribe_failures
                        .fetch_add(refused as u64, Ordering::Relaxed);
                    warn!("broker refused {refused} RRPC subscription(s); check its ACLs");
                }
            }
            Ok(_) => {}
            Err(e) => {
                inner.note_connection_error(&e);
                // The device set may have changed: pick the will for the next CONNECT.
                if let Some(w) = inner.last_will() {
                    eventloop.mqtt_options.set_last_will(w);
                }
                let delay = backoff.next();
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if inner.connected.load(Ordering::SeqCst) {
        // Best effort clean DISCONNECT so that the broker does not wait for the
        // keep-alive (and, with a last will, does not publish it).
        if let Some(m) = inner.mqtt.read().clone() {
            inner.announce_all_offline(&m);
            let _ = m.try_disconnect();
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    inner.set_connected(false);
    eventloop
}

/// Removes expired requests at their deadline (or at least once a second), so
/// that the table frees itself without traffic.
async fn expire_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now_ms();
        let next = inner.router.lock().next_deadline();
        let wait = match next {
            Some(d) if d >= now => (d - now + 1).min(1000),
            Some(_) => 0,
            None => 1000,
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let n = inner.router.lock().expire(now_ms());
        if n > 0 {
            debug!("{n} request(s) expired without a reply");
        }
    }
}

/// Capped exponential backoff with +-25% jitter.
struct Backoff {
    min: u64,
    max: u64,
    cur: u64,
    seed: u64,
}

impl Backoff {
    fn new(min_ms: u32, max_ms: u32) -> Backoff {
        Backoff {
            min: u64::from(min_ms),
            max: u64::from(max_ms),
            cur: u64::from(min_ms),
            seed: now_ms() ^ u64::from(std::process::id()).rotate_left(32) | 1,
        }
    }

    fn reset(&mut self) {
        self.cur = self.min;
    }

    fn next(&mut self) -> Duration {
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
