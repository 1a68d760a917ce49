//! A client's settings and what its operations fail with.

use crate::presence::PresenceTopics;
use crate::router::{DeviceError, ReplyError, RouterConfig};
use crate::session::{ConnError, MqttConfig, SendError};

/// Settings of the built-in client. [`ClientConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The broker and how to connect to it. `mqtt.client_id` `None` derives one
    /// that is unique per connection (`rrpc` + 16 random hex
    /// digits), so that several devices on one broker never take over each
    /// other's session. `mqtt.connect_timeout_ms` is how long [`Client::start`](super::Client::start)
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

    pub(super) fn validate(&self) -> Result<(), ClientError> {
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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A setting or argument out of range; the text says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A device could not be added or removed.
    #[error("{0}")]
    Device(DeviceError),
    /// The operation is not allowed in the client's current state.
    #[error("{0}")]
    WrongState(&'static str),
    /// The first connection attempt failed (thread mode with a connect timeout),
    /// or connection attempts failed during a `yield_for`. The text tells a
    /// failed connect ("could not connect to ...") from a dropped connection
    /// ("connection to ... lost: ...").
    #[error("{0}")]
    ConnectFailed(String),
    /// The TLS configuration cannot be used (unreadable or malformed PEM, a key
    /// that does not match its certificate, no CA certificates).
    #[error("TLS: {0}")]
    Tls(String),
    /// The client has no connection to the broker at the moment.
    #[error("not connected to the broker")]
    NotConnected,
    /// The outgoing queue is full; retry shortly.
    #[error("outgoing queue is full; retry shortly")]
    Busy,
    /// A reply was refused.
    #[error("{0}")]
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
