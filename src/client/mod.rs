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
//!
//! Where each part lives: this file is the [`Client`] and its [`Replier`];
//! `config.rs` the settings and errors; `stats.rs` the counters; `core.rs` what
//! the handle, its repliers and the session task share, and how it serves the
//! session (routing, presence, the last will); `driver.rs` who runs the
//! runtime (thread mode, yield mode, stop).

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::callback::Kind;
use crate::clock::now_ms;
use crate::dialect::{Dialect, Identity};
pub use crate::router::Request;
use crate::router::{Device, RequestFn, SharedRouter};
pub use crate::session::{ConnStats, ConnectionEvent, DisconnectCause, Listener, MqttConfig};
use crate::session::{ConnectionState, MqttVersion, Publisher, SendError};

mod config;
mod core;
mod driver;
mod stats;

pub use config::{
    ClientConfig, ClientError, DEFAULT_REPLY_QUEUE, DEFAULT_REPLY_QUEUE_BYTES, MAX_REPLY_QUEUE,
    MAX_REPLY_QUEUE_BYTES,
};
use core::ClientCore;
use driver::{Driver, Mode};
pub use stats::ClientStats;

/// The request handler: called once per accepted request, on the client's
/// thread (or inside [`Client::yield_for`]). See [`Request`].
pub type Handler = RequestFn;

/// An RRPC device client over one MQTT connection. See the module documentation.
pub struct Client {
    core: Arc<ClientCore>,
    driver: Mutex<Driver>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.core.link.address())
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
            .set_publish(Some(Box::new(
                move |topic: String, payload: &[u8], correlation: Option<&[u8]>| match (
                    &*p2.read(),
                    l2.is_connected(),
                ) {
                    (Some(p), true) => p.publish_reply(topic, payload, correlation),
                    _ => Err(SendError::NotConnected),
                },
            )))
            .expect("a new router runs no callback");
        Ok(Client {
            core: Arc::new(ClientCore {
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
        self.core.router.set_request_callback(handler).map_err(|_| {
            ClientError::WrongState("the request handler cannot be replaced from inside itself")
        })
    }

    /// Sets (or clears) the connection listener: connected, disconnected (with
    /// the cause and reason), reconnecting (with the delay). It runs on the
    /// client's thread (or inside `yield_for`), and is released as
    /// [`Client::set_handler`] releases the handler.
    pub fn set_connection_listener(&self, f: Option<Box<Listener>>) -> Result<(), ClientError> {
        self.core.link.set_listener(f).map_err(|_| {
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
        if dialect.uses_mqtt5_properties() && self.core.cfg.mqtt.protocol != MqttVersion::V5 {
            return Err(ClientError::InvalidArgument(
                "the mqtt5 dialect needs an MQTT 5 session (protocol version 5): on MQTT 3.1.1 a request carries no Response Topic".into(),
            ));
        }
        let device = self
            .core
            .router
            .add_device(dialect, id, None)
            .map_err(ClientError::Device)?;
        if self.core.link.is_connected() {
            let publisher = self.core.publisher.read().clone();
            if let Some(p) = publisher {
                if let Err(e) = p.subscribe(self.core.request_filter(&device)) {
                    // Undo, so that the caller can simply retry.
                    let _ = self.core.router.remove_device(dialect, id, now_ms());
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
            .core
            .router
            .remove_device(dialect, id, now_ms())
            .map_err(ClientError::Device)?;
        if self.core.link.is_connected() {
            if let Some(p) = self.core.publisher.read().clone() {
                // Best effort: if the queue is full the subscription lingers until the
                // next reconnect, and its requests are dropped as unknown meanwhile.
                // A filter other devices share (a gateway's sub-devices, whose
                // requests all come on one topic) stays.
                let shared = self
                    .core
                    .router
                    .with_router(|r| r.devices().any(|d| d.filter() == device.filter()));
                if !shared {
                    let _ = p.unsubscribe(device.filter());
                }
                self.core.announce(&p, &device, false);
            }
        }
        Ok(())
    }

    /// Answers request `token` with `payload` (QoS 0). Callable from the handler
    /// and from any other thread. On `NotConnected` and `Busy` the token stays
    /// valid until its deadline, so the reply may be retried.
    pub fn reply(&self, token: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.core.reply(token, None, payload)
    }

    /// [`Client::reply`] with a status code, for the dialects whose reply topic
    /// carries one (`{status}`: Azure's `$iothub/methods/res/{status}/?$rid={id}`);
    /// `None` is 200. Other dialects send no status and ignore it. A status
    /// outside 100 to 599 is refused (`InvalidArgument`) and the token kept.
    pub fn reply_with_status(
        &self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.core.reply(token, status, payload)
    }

    /// A handle that can answer requests of this client from anywhere, for
    /// handlers and worker threads (it does not keep the connection alive).
    pub fn replier(&self) -> Replier {
        Replier(self.core.clone())
    }

    /// Whether the client holds a live connection (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.core.link.is_connected()
    }

    /// Requests waiting for a reply now.
    pub fn pending(&self) -> usize {
        self.core.router.pending()
    }

    /// The counters now.
    pub fn stats(&self) -> ClientStats {
        ClientStats::of(self.core.router.stats(), self.core.link.stats())
    }

    /// The MQTT client id in use (derived at the first `start`/`yield_for` when
    /// not configured), or `None` before that.
    pub fn client_id(&self) -> Option<String> {
        self.core
            .client_id
            .lock()
            .clone()
            .or_else(|| self.core.cfg.mqtt.client_id.clone())
    }

    /// Whether the calling thread is inside this client's handler.
    pub fn in_handler(&self) -> bool {
        self.core.router.in_request_callback()
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
pub struct Replier(Arc<ClientCore>);

impl Replier {
    /// As [`Client::reply`].
    pub fn reply(&self, token: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.0.reply(token, None, payload)
    }

    /// As [`Client::reply_with_status`].
    pub fn reply_with_status(
        &self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.0.reply(token, status, payload)
    }
}

impl fmt::Debug for Replier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replier").finish_non_exhaustive()
    }
}
