//! The router's public vocabulary: its settings, counters, what an accepted
//! request carries, and why a message, a reply or a device was refused.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use crate::counters::{counter_set, Counter};
use crate::dialect::{Dialect, Identity, IdentityError};

/// Default bound of the pending-request table.
pub const DEFAULT_MAX_PENDING: usize = 1024;
/// Default largest payload accepted in a request or a reply: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;
/// How long a finished request is remembered, so that a redelivery or the echo of
/// its reply is recognised: longer than any caller waits (8 s) with a wide margin.
pub const DEFAULT_HISTORY_MS: u64 = 30_000;
/// Default bound of the registered devices.
pub const DEFAULT_MAX_DEVICES: usize = 100_000;

/// Largest `max_pending` accepted: the request tables are sized for it up
/// front (some 200 bytes a request, touched only as they fill).
pub const MAX_PENDING_LIMIT: usize = 65_536;
/// Largest `max_payload` accepted: 256 MiB.
pub const MAX_PAYLOAD_LIMIT: usize = 256 * 1024 * 1024;
/// Largest `request_timeout_ms` accepted: 10 minutes.
pub const MAX_REQUEST_TIMEOUT_MS: u32 = crate::dialect::MAX_TIMEOUT_MS;
/// Largest `history_ms` accepted: 10 minutes.
pub const MAX_HISTORY_MS: u64 = 600_000;
/// Largest `max_history` accepted.
pub const MAX_HISTORY_LIMIT: usize = 1_048_576;
/// Largest `max_devices` accepted.
pub const MAX_DEVICES_LIMIT: usize = 1_000_000;

/// Router settings.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Most requests waiting for a reply at once; more are dropped and counted.
    pub max_pending: usize,
    /// Largest request or reply payload, in bytes.
    pub max_payload: usize,
    /// Time a request may wait for its reply, in ms; 0 takes the dialect's
    /// caller timeout (8000 for Alibaba, 4000 for Tencent).
    pub request_timeout_ms: u32,
    /// How long finished requests are remembered for duplicate and echo detection.
    pub history_ms: u64,
    /// Most finished requests remembered; 0 means `max_pending`, at least 1024.
    /// Own-reply echoes come back within milliseconds; the bound only matters
    /// for redeliveries at high request rates (30 s at 34 requests/s by default).
    pub max_history: usize,
    /// Most devices registered at once; more are refused with
    /// [`DeviceError::TableFull`].
    pub max_devices: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_pending: DEFAULT_MAX_PENDING,
            max_payload: DEFAULT_MAX_PAYLOAD,
            request_timeout_ms: 0,
            history_ms: DEFAULT_HISTORY_MS,
            max_history: 0,
            max_devices: DEFAULT_MAX_DEVICES,
        }
    }
}

impl RouterConfig {
    /// Checks every bound against its documented range: `max_pending` 1 to
    /// [`MAX_PENDING_LIMIT`], `max_payload` 1 to [`MAX_PAYLOAD_LIMIT`],
    /// `request_timeout_ms` at most [`MAX_REQUEST_TIMEOUT_MS`], `history_ms` at
    /// most [`MAX_HISTORY_MS`], `max_history` at most [`MAX_HISTORY_LIMIT`]
    /// (0: the default), `max_devices` 1 to [`MAX_DEVICES_LIMIT`]. The text
    /// names the field and its range.
    pub fn validate(&self) -> Result<(), String> {
        fn range(field: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
            if v < lo || v > hi {
                return Err(format!("{field} is {v}; it must be {lo} to {hi}"));
            }
            Ok(())
        }
        range(
            "max_pending",
            self.max_pending as u64,
            1,
            MAX_PENDING_LIMIT as u64,
        )?;
        range(
            "max_payload",
            self.max_payload as u64,
            1,
            MAX_PAYLOAD_LIMIT as u64,
        )?;
        range(
            "request_timeout_ms",
            self.request_timeout_ms.into(),
            0,
            MAX_REQUEST_TIMEOUT_MS.into(),
        )?;
        range("history_ms", self.history_ms, 0, MAX_HISTORY_MS)?;
        range(
            "max_history",
            self.max_history as u64,
            0,
            MAX_HISTORY_LIMIT as u64,
        )?;
        range(
            "max_devices",
            self.max_devices as u64,
            1,
            MAX_DEVICES_LIMIT as u64,
        )
    }

    /// Most finished requests remembered (see [`RouterConfig::max_history`]).
    pub(super) fn history_cap(&self) -> usize {
        if self.max_history > 0 {
            self.max_history
        } else {
            self.max_pending.max(1024)
        }
    }

    /// How long a request of `dialect` may wait for its reply, in ms.
    #[inline]
    pub(super) fn timeout_ms(&self, dialect: Dialect) -> u32 {
        match self.request_timeout_ms {
            0 => dialect.default_timeout_ms(),
            t => t,
        }
    }
}

/// Data a transport attaches to a device when it registers it (the C router keeps
/// the device's callback there). The router only stores it.
#[derive(Clone, Default)]
pub struct Attachment(pub Option<Arc<dyn std::any::Any + Send + Sync>>);

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Attachment(..)"
        } else {
            "Attachment(None)"
        })
    }
}

/// A router's counters: each counts since the router was created, except the
/// gauges `pending` and `devices`. This struct is also the C API's
/// `rrpc_router_stats` (see [`Router::stats`](super::Router::stats)).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Messages handed to the router.
    pub messages: u64,
    /// Requests accepted and handed to the application.
    pub requests: u64,
    /// Replies sent.
    pub replied: u64,
    /// Requests whose deadline passed without a reply.
    pub expired: u64,
    /// Second deliveries of a request already handed over (dropped).
    pub duplicates: u64,
    /// Own replies that came back on a custom-topic subscription (dropped).
    pub own_replies: u64,
    /// RRPC topics that break the dialect's format (dropped).
    pub malformed: u64,
    /// Well-formed requests for a device that is not registered (dropped).
    pub unknown_device: u64,
    /// Requests dropped because `max_pending` requests were waiting.
    pub table_full: u64,
    /// Requests dropped because their payload exceeded `max_payload`.
    pub too_large: u64,
    /// Replies refused because the request's deadline had passed.
    pub late_replies: u64,
    /// Replies refused for an unknown, answered or cancelled token.
    pub bad_tokens: u64,
    /// Replies the transport failed to send (the request stays pending).
    pub send_failures: u64,
    /// Messages that were not RRPC requests.
    pub not_rrpc: u64,
    /// Requests that arrived retained: never executed.
    pub retained: u64,
    /// Gauge: requests waiting for a reply now.
    pub pending: u64,
    /// Gauge: devices registered now.
    pub devices: u64,
}

counter_set!(RouterStats as RouterCounter {
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
    pending,
    devices,
});

impl Dropped {
    /// The counter of a message dropped for this reason.
    pub(super) fn counter(self) -> Counter<RouterStats> {
        match self {
            Dropped::NotRrpc => RouterCounter::not_rrpc,
            Dropped::Malformed(_) => RouterCounter::malformed,
            Dropped::UnknownDevice => RouterCounter::unknown_device,
            Dropped::Duplicate => RouterCounter::duplicates,
            Dropped::OwnReply => RouterCounter::own_replies,
            Dropped::TableFull => RouterCounter::table_full,
            Dropped::TooLarge => RouterCounter::too_large,
            Dropped::Retained => RouterCounter::retained,
        }
    }
}

/// A request accepted by the router, for the application to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted<'a> {
    pub token: u64,
    /// The device it is for: [`Router::request_device`](super::Router::request_device)
    /// and [`Router::device`](super::Router::device) resolve it while the device is
    /// registered.
    pub device: DeviceRef,
    /// The message id, without the ContentType suffix (see
    /// [`CONTENT_TYPE_SEPARATOR`](crate::dialect::CONTENT_TYPE_SEPARATOR)); the
    /// reply goes out on the whole level.
    pub message_id: &'a str,
    /// The RRpc ContentType the caller sent (JT/T 808 pass-through type), if any.
    pub content_type: Option<u8>,
    /// The method, service or command name, for dialects that carry one
    /// (alibaba-service, azure).
    pub name: Option<&'a str>,
    pub payload: &'a [u8],
    /// Last moment (router clock, ms) a reply is accepted.
    pub deadline_ms: u64,
}

/// A registration of a device, as named by an accepted request. A device removed
/// and added again is a new registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRef {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

/// What the application needs of a request's device, read from the router's
/// dispatch record (no further memory than the request itself touched).
#[derive(Clone, Copy, Debug)]
pub struct RequestDevice<'r> {
    pub dialect: Dialect,
    pub identity: Identity<'r>,
    /// What the transport attached at registration.
    pub attachment: Option<&'r Arc<dyn std::any::Any + Send + Sync>>,
}

/// Why a message was not handed to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// Not an RRPC request topic of any dialect.
    #[error("not an RRPC request topic")]
    NotRrpc,
    /// In an RRPC namespace but broken.
    #[error("malformed RRPC topic: {0}")]
    Malformed(&'static str),
    /// Well-formed, for a device nobody registered.
    #[error("request for a device that is not registered")]
    UnknownDevice,
    /// This message id was already delivered to the application.
    #[error("duplicate delivery of a request already handled")]
    Duplicate,
    /// This is the device's own reply coming back (custom-topic RRPC).
    #[error("own reply echoed back by the broker")]
    OwnReply,
    /// The pending table is full.
    #[error("pending-request table is full")]
    TableFull,
    /// The payload is larger than `max_payload`.
    #[error("request payload exceeds the maximum")]
    TooLarge,
    /// A retained request: whoever may publish on the topic left it there, and
    /// every (re)subscription would deliver it again. Never executed.
    #[error("retained request (never executed)")]
    Retained,
}

/// Why a reply was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError<E> {
    /// The token was never issued by this router, or is too old to remember.
    #[error("unknown token")]
    UnknownToken,
    /// The request was answered already.
    #[error("request already answered")]
    AlreadyReplied,
    /// The request's deadline passed; nothing was sent.
    #[error("request deadline passed; reply not sent")]
    Expired,
    /// The device was removed while the request was pending.
    #[error("device was removed; reply not sent")]
    DeviceRemoved,
    /// The payload is larger than `max_payload`; the token stays valid.
    #[error("reply payload exceeds the maximum")]
    TooLarge,
    /// The transport refused to send; the token stays valid until its deadline.
    #[error("transport could not send the reply: {0}")]
    Send(E),
    /// A reply to this token is being sent by another thread right now.
    #[error("a reply to this request is being sent")]
    InProgress,
    /// A [`SharedRouter`](super::SharedRouter) has no publish function to send
    /// it with; the token stays valid.
    #[error("no publish function is registered")]
    NoPublish,
    /// The reply cannot be wrapped in the dialect's envelope (not one JSON
    /// value); the token stays valid.
    #[error("{0}")]
    Envelope(&'static str),
}

impl ReplyError<Infallible> {
    /// This error as a reply error of any send error (it carries none).
    pub(super) fn widen<E>(self) -> ReplyError<E> {
        match self {
            ReplyError::UnknownToken => ReplyError::UnknownToken,
            ReplyError::AlreadyReplied => ReplyError::AlreadyReplied,
            ReplyError::Expired => ReplyError::Expired,
            ReplyError::DeviceRemoved => ReplyError::DeviceRemoved,
            ReplyError::TooLarge => ReplyError::TooLarge,
            ReplyError::InProgress => ReplyError::InProgress,
            ReplyError::NoPublish => ReplyError::NoPublish,
            ReplyError::Envelope(why) => ReplyError::Envelope(why),
            ReplyError::Send(never) => match never {},
        }
    }
}

/// Why a device could not be added or removed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A part of the identity breaks the identity rules.
    #[error("invalid identity: {0}")]
    Invalid(IdentityError),
    /// The device is registered already.
    #[error("device is already registered")]
    AlreadyExists,
    /// Another device already receives requests on this custom topic.
    #[error("custom topic already receives requests for device {0}")]
    TopicInUse(String),
    /// Another device already receives the requests of this dialect's topics,
    /// which do not name the device (or name only part of its identity):
    /// ThingsBoard and Azure serve one device per connection.
    #[error("the {dialect} dialect's topics already deliver the requests of device {device}: one device of it per connection")]
    OnePerConnection {
        dialect: &'static str,
        device: String,
    },
    /// The device is not registered.
    #[error("device is not registered")]
    NotFound,
    /// `max_devices` devices are registered already.
    #[error("max_devices devices are registered already")]
    TableFull,
    /// [`MAX_MQTT5_DEVICES`](super::MAX_MQTT5_DEVICES) MQTT 5
    /// request/response devices are registered already.
    #[error("64 mqtt5 devices are registered already (each request is matched against their filters in turn)")]
    Mqtt5Full,
    /// Asked from inside the device's own callback, which it would wait for.
    #[error("a device cannot be removed from inside its own callback")]
    Reentered,
}

/// A received message's topic as the transport has it: text an MQTT client
/// library has already checked as UTF-8 (it is not checked again), or the raw
/// bytes a C gateway passes (a topic that is not UTF-8 is dropped as
/// malformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceivedTopic<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> ReceivedTopic<'a> {
    /// The topic as text, if it is UTF-8.
    pub fn text(self) -> Option<&'a str> {
        match self {
            ReceivedTopic::Text(t) => Some(t),
            ReceivedTopic::Bytes(b) => std::str::from_utf8(b).ok(),
        }
    }
}

impl<'a> From<&'a str> for ReceivedTopic<'a> {
    fn from(t: &'a str) -> Self {
        ReceivedTopic::Text(t)
    }
}

impl<'a> From<&'a [u8]> for ReceivedTopic<'a> {
    fn from(b: &'a [u8]) -> Self {
        ReceivedTopic::Bytes(b)
    }
}

impl<'a> From<&'a String> for ReceivedTopic<'a> {
    fn from(t: &'a String) -> Self {
        ReceivedTopic::Text(t)
    }
}

impl<'a> From<&'a Vec<u8>> for ReceivedTopic<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        ReceivedTopic::Bytes(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for ReceivedTopic<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        ReceivedTopic::Bytes(b)
    }
}
