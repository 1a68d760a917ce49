//! The transport-agnostic core: which devices are served, which requests are
//! pending, and what each reply must look like.
//!
//! The router does no I/O, owns no threads and reads no clock: time comes in as
//! milliseconds on any monotonic clock the caller chooses (the built-in client
//! uses `CLOCK_MONOTONIC`). Both transports drive it: the built-in MQTT client and
//! a C gateway that feeds messages from its own MQTT stack.
//!
//! Rules it enforces:
//! - every accepted request gets a fresh token and a deadline; it can be answered
//!   exactly once, and not after its deadline;
//! - a second delivery of the same message id for the same device is dropped
//!   (MQTT QoS 1 redelivery, a broker replaying a session, a caller's retry),
//!   whatever ContentType suffix either delivery carries;
//! - a retained request is never executed ([`Router::handle_received`]): any
//!   client allowed to publish on the topic could have left it there, and every
//!   resubscription would deliver it again;
//! - a reply that comes back to the device's own subscription (custom-topic RRPC
//!   answers on the request topic itself) is recognised as its own and dropped;
//! - at most `max_pending` requests wait at once; expired entries are removed by
//!   [`Router::expire`] and, lazily, whenever a request or reply needs room;
//! - a reply that could not be sent leaves its request pending: it may be
//!   answered again until its deadline.
//!
//! Where each part lives: this file is the [`Router`] itself, what transports
//! call; `types.rs` its public settings, counters, results and errors;
//! `devices.rs` the registered devices, their dispatch records and the registry
//! that finds them; `pending.rs` the pending and recently finished requests
//! (tokens, message ids, deadlines, history); `admission.rs` how a received
//! request becomes an accepted one.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use crate::counters::Counters;
use crate::dialect::envelope;
use crate::dialect::{self, Dialect, Envelope, Identity, TopicError};

/// Why [`Router::begin_reply`] cannot answer a request of a dialect with an
/// envelope.
const NEEDS_BODY: &str =
    "the dialect wraps the reply in an envelope: begin the reply with its payload (begin_reply_body)";

mod admission;
mod devices;
mod mqtt5;
mod pending;
mod shared;
mod types;

use types::RouterCounter;

use devices::Registry;
use pending::{NoReply, Outcome, Requests};

pub use devices::{Device, MAX_MQTT5_DEVICES};
pub use mqtt5::{RequestProperties, MAX_CORRELATION_LEN};
pub use shared::{Delivery, FilterMode, PublishFn, Request, RequestFn, SharedRouter};
pub use types::{
    Accepted, Attachment, DeviceError, DeviceRef, Dropped, ReceivedTopic, ReplyError,
    RequestDevice, RouterConfig, RouterStats, DEFAULT_HISTORY_MS, DEFAULT_MAX_DEVICES,
    DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PENDING, MAX_DEVICES_LIMIT, MAX_HISTORY_LIMIT, MAX_HISTORY_MS,
    MAX_PAYLOAD_LIMIT, MAX_PENDING_LIMIT, MAX_REQUEST_TIMEOUT_MS,
};

/// The RRPC core. See the module documentation.
pub struct Router {
    cfg: RouterConfig,
    registry: Registry,
    requests: Requests,
    stats: Counters<RouterStats>,
    /// The last id given to an MQTT 5 request without Correlation Data.
    anonymous: u64,
}

/// What a reply that passed its checks goes out as: the response topic, the
/// envelope around the payload (dialects with one), the Correlation Data (MQTT
/// 5 requests).
type Checked = (String, Option<Vec<u8>>, Option<Box<[u8]>>);

/// A reply ready to publish ([`Router::begin_reply_v5`]).
#[derive(Debug)]
pub struct OutgoingReply<'p> {
    pub topic: String,
    /// The application's payload, or for the dialects with an envelope the
    /// envelope around it.
    pub payload: Cow<'p, [u8]>,
    /// The Correlation Data an MQTT 5 reply carries ([`Dialect::Mqtt5`]).
    pub correlation: Option<Box<[u8]>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("devices", &self.device_count())
            .field("pending", &self.pending_len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Router {
    pub fn new(cfg: RouterConfig) -> Router {
        Router {
            registry: Registry::new(),
            requests: Requests::new(&cfg),
            stats: Counters::default(),
            anonymous: 0,
            cfg,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// The counters now, with the gauges `pending` and `devices`.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            pending: self.pending_len() as u64,
            devices: self.device_count() as u64,
            ..self.stats.snapshot()
        }
    }

    /// Counts a message dropped for `why`, and hands `why` back.
    fn dropped(&self, why: Dropped) -> Dropped {
        self.stats.bump(why.counter());
        why
    }

    /// Requests waiting for a reply.
    pub fn pending_len(&self) -> usize {
        self.requests.len()
    }

    pub fn device_count(&self) -> usize {
        self.registry.len()
    }

    /// Every registered device, in registration-slot order.
    pub fn devices(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.registry.devices()
    }

    /// The device of an accepted request, while it is registered.
    pub fn device(&self, r: DeviceRef) -> Option<&Arc<Device>> {
        self.registry.device(r)
    }

    /// Dialect, identity and attachment of an accepted request's device, while it
    /// is registered. Cheaper than [`Router::device`]: it reads the record the
    /// dispatch of the request has just read.
    pub fn request_device(&self, r: DeviceRef) -> Option<RequestDevice<'_>> {
        self.registry.request_device(r)
    }

    /// What the transport attached to the registered devices.
    pub fn attachments(&self) -> impl Iterator<Item = &Arc<dyn std::any::Any + Send + Sync>> {
        self.registry.attachments()
    }

    /// What the transport attached to a registered device, if anything.
    pub fn attachment(
        &self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.registry.attachment(dialect, id)
    }

    /// Registers a device. Its filter is [`Device::filter`]; subscribing it is
    /// the transport's job.
    pub fn add_device(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Result<Arc<Device>, DeviceError> {
        self.add_device_with(dialect, id, Attachment::default())
    }

    /// [`Router::add_device`] with data the transport wants back with each request.
    pub fn add_device_with(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
        attachment: Attachment,
    ) -> Result<Arc<Device>, DeviceError> {
        if self.registry.len() >= self.cfg.max_devices {
            return Err(DeviceError::TableFull);
        }
        self.registry.add(dialect, id, attachment)
    }

    /// Removes a device. Its pending requests are cancelled: replying to them
    /// fails with [`ReplyError::DeviceRemoved`].
    pub fn remove_device(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
        now_ms: u64,
    ) -> Result<Arc<Device>, DeviceError> {
        let (slot, device) = self.registry.remove(dialect, id)?;
        self.requests.cancel_slot(slot, now_ms);
        Ok(device)
    }

    /// Takes in one received MQTT message. A request for a registered device is
    /// accepted (and must be answered with [`Router::reply`] before its deadline);
    /// anything else is dropped, with the reason, and counted.
    pub fn handle_message<'a>(
        &mut self,
        topic: &'a str,
        payload: &'a [u8],
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let candidate = self.start_device_lookup(topic.as_bytes());
        self.handle(topic, payload, now_ms, candidate)
    }

    /// As [`Router::handle_message`], for a topic given as bytes: one that is not
    /// UTF-8 is dropped as malformed.
    pub fn handle_message_bytes<'a>(
        &mut self,
        topic: &'a [u8],
        payload: &'a [u8],
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let candidate = self.start_device_lookup(topic);
        match std::str::from_utf8(topic) {
            Ok(t) => self.handle(t, payload, now_ms, candidate),
            Err(_) => {
                self.stats.bump(RouterCounter::messages);
                Err(self.dropped(Dropped::Malformed("the topic is not valid UTF-8")))
            }
        }
    }

    /// Takes in one received MQTT message with its retain flag, as a
    /// transport's receive path should: a retained RRPC request is dropped and
    /// counted (`retained`) without being executed; anything else is
    /// [`Router::handle_message`] (a topic already known to be text, as an MQTT
    /// client library gives it, is not checked again) or
    /// [`Router::handle_message_bytes`].
    pub fn handle_received<'a>(
        &mut self,
        topic: impl Into<ReceivedTopic<'a>>,
        payload: &'a [u8],
        retained: bool,
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let topic = topic.into();
        if !retained {
            return match topic {
                ReceivedTopic::Text(t) => self.handle_message(t, payload, now_ms),
                ReceivedTopic::Bytes(b) => self.handle_message_bytes(b, payload, now_ms),
            };
        }
        self.stats.bump(RouterCounter::messages);
        let Some(topic) = topic.text() else {
            return Err(self.dropped(Dropped::Malformed("the topic is not valid UTF-8")));
        };
        match self.parse(topic) {
            Ok(_) => Err(self.dropped(Dropped::Retained)),
            Err(d) => Err(d),
        }
    }

    /// Parses `topic` as a request topic; a message that is not one is counted.
    fn parse<'a>(&mut self, topic: &'a str) -> Result<dialect::ParsedTopic<'a>, Dropped> {
        match dialect::parse_request_unchecked(topic) {
            Ok(p) => Ok(p),
            Err(TopicError::NoMatch) => Err(self.dropped(Dropped::NotRrpc)),
            Err(TopicError::Malformed(why)) => Err(self.dropped(Dropped::Malformed(why))),
        }
    }

    /// Parses `topic` and hands a request to admission; `candidate` is the slot
    /// of the device found from the raw topic, if any.
    fn handle<'a>(
        &mut self,
        topic: &'a str,
        payload: &'a [u8],
        now_ms: u64,
        candidate: Option<u32>,
    ) -> Result<Accepted<'a>, Dropped> {
        self.stats.bump(RouterCounter::messages);
        let parsed = self.parse(topic)?;
        self.accept(topic, parsed, payload, now_ms, candidate)
    }

    /// Answers the request `token` with `payload`: checks the token, the deadline
    /// and the size, builds the response topic and hands topic and payload to
    /// `send`. Only when `send` succeeds is the request finished; when it fails the
    /// token stays valid until its deadline, so the reply can be retried.
    pub fn reply<E>(
        &mut self,
        token: u64,
        payload: &[u8],
        now_ms: u64,
        send: impl FnOnce(&str, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplyError<E>> {
        self.reply_with_status(token, None, payload, now_ms, send)
    }

    /// [`Router::reply`] with a status code, for the dialects whose replies
    /// carry one (Azure: `$iothub/methods/res/{status}/...`); `None` is 200.
    /// Other dialects send no status and ignore it.
    pub fn reply_with_status<E>(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
        now_ms: u64,
        send: impl FnOnce(&str, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplyError<E>> {
        self.reply_v5(token, status, payload, now_ms, |t, p, _| send(t, p))
    }

    /// [`Router::reply_with_status`] that also hands `send` the Correlation
    /// Data the reply must carry (MQTT 5 request/response, [`Dialect::Mqtt5`];
    /// `None` for every other dialect): an MQTT 5 transport publishes it as
    /// the reply's Correlation Data property.
    pub fn reply_v5<E>(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
        now_ms: u64,
        send: impl FnOnce(&str, &[u8], Option<&[u8]>) -> Result<(), E>,
    ) -> Result<(), ReplyError<E>> {
        let (topic, body, correlation) = self
            .check_reply(token, status, payload.len(), Some(payload), now_ms)
            .map_err(ReplyError::widen)?;
        let sent = send(
            &topic,
            body.as_deref().unwrap_or(payload),
            correlation.as_deref(),
        );
        self.settle(token, sent.is_ok(), true, now_ms);
        sent.map_err(ReplyError::Send)
    }

    /// First half of a reply sent without holding the router: the checks of
    /// [`Router::reply`], then the request is marked as being answered (another
    /// reply now fails with [`ReplyError::InProgress`]) and the response topic is
    /// returned. Finish with [`Router::end_reply`].
    pub fn begin_reply(
        &mut self,
        token: u64,
        payload_len: usize,
        now_ms: u64,
    ) -> Result<String, ReplyError<Infallible>> {
        self.begin_reply_with_status(token, None, payload_len, now_ms)
    }

    /// [`Router::begin_reply`] with a status code (see
    /// [`Router::reply_with_status`]). For the dialects with an envelope
    /// ([`Dialect::envelope`]) the payload to publish is not the application's:
    /// use [`Router::begin_reply_body`] (this fails with
    /// [`ReplyError::Envelope`] for them).
    pub fn begin_reply_with_status(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload_len: usize,
        now_ms: u64,
    ) -> Result<String, ReplyError<Infallible>> {
        let (topic, _, _) = self.check_reply(token, status, payload_len, None, now_ms)?;
        self.requests.start_sending(token);
        Ok(topic)
    }

    /// [`Router::begin_reply_with_status`] for any dialect: the response topic
    /// and the payload to publish, which is `payload` itself, or, for the
    /// dialects with an envelope, `payload` wrapped in the reply's envelope
    /// (a payload that is not one JSON value, nor empty, is refused with
    /// [`ReplyError::Envelope`]; the token stays valid).
    pub fn begin_reply_body<'p>(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload: &'p [u8],
        now_ms: u64,
    ) -> Result<(String, Cow<'p, [u8]>), ReplyError<Infallible>> {
        let r = self.begin_reply_v5(token, status, payload, now_ms)?;
        Ok((r.topic, r.payload))
    }

    /// [`Router::begin_reply_body`] with the Correlation Data the reply must
    /// carry ([`OutgoingReply::correlation`]: MQTT 5 request/response).
    pub fn begin_reply_v5<'p>(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload: &'p [u8],
        now_ms: u64,
    ) -> Result<OutgoingReply<'p>, ReplyError<Infallible>> {
        let (topic, body, correlation) =
            self.check_reply(token, status, payload.len(), Some(payload), now_ms)?;
        self.requests.start_sending(token);
        Ok(OutgoingReply {
            topic,
            payload: body.map_or(Cow::Borrowed(payload), Cow::Owned),
            correlation,
        })
    }

    /// Second half: `sent` finishes the request as answered. A reply that could
    /// not be sent leaves the request pending, as [`Router::reply`] does: another
    /// reply may be tried until the deadline. Either way the reply is counted
    /// (`replied` or `send_failures`), also when the request ended meanwhile
    /// (expired, device removed).
    pub fn end_reply(&mut self, token: u64, sent: bool, now_ms: u64) {
        // The request may have ended while its reply was being sent (device
        // removed, deadline passed); a reply that went out is counted all the same.
        let still_pending = self.requests.stop_sending(token);
        self.settle(token, sent, still_pending, now_ms);
    }

    /// The end of every reply: one that was sent finishes its request (when it
    /// is `still_pending`); one that was not leaves the request pending.
    fn settle(&mut self, token: u64, sent: bool, still_pending: bool, now_ms: u64) {
        if !sent {
            self.stats.bump(RouterCounter::send_failures);
            return;
        }
        if still_pending {
            self.requests.finish(token, Outcome::Replied, now_ms);
        }
        self.stats.bump(RouterCounter::replied);
    }

    /// Everything a reply must pass before it is sent; returns the response
    /// topic, for the dialects with an envelope the body around `payload`
    /// (which they need), and for an MQTT 5 request its Correlation Data.
    fn check_reply(
        &mut self,
        token: u64,
        status: Option<u16>,
        payload_len: usize,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<Checked, ReplyError<Infallible>> {
        let (err, late) = match self.requests.reply_target(token, now_ms) {
            Ok((slot, id, parts)) => {
                if payload_len > self.cfg.max_payload {
                    return Err(ReplyError::TooLarge);
                }
                let (envelope, device) = self.registry.envelope_of(slot);
                let body = match (envelope, payload) {
                    (Envelope::None, _) => None,
                    (_, None) => return Err(ReplyError::Envelope(NEEDS_BODY)),
                    (e, Some(p)) => Some(
                        envelope::wrap_reply(e, id, device, status, p)
                            .map_err(ReplyError::Envelope)?,
                    ),
                };
                if let Some(t) = parts.and_then(|p| p.response_topic.as_deref()) {
                    let correlation = parts.and_then(|p| p.correlation.clone());
                    return Ok((t.to_string(), body, correlation));
                }
                let vars = dialect::Vars {
                    id,
                    name: parts.and_then(|p| p.name.as_deref()),
                    format: parts.and_then(|p| p.format.as_deref()),
                    status,
                };
                return Ok((self.registry.response_topic(slot, &vars), body, None));
            }
            Err(NoReply::Sending) => return Err(ReplyError::InProgress),
            Err(NoReply::Late) => {
                self.stats.bump(RouterCounter::late_replies);
                self.expire(now_ms);
                return Err(ReplyError::Expired);
            }
            Err(NoReply::Done(Outcome::Expired)) => (ReplyError::Expired, true),
            Err(NoReply::Done(Outcome::Replied)) => (ReplyError::AlreadyReplied, false),
            Err(NoReply::Done(Outcome::Cancelled)) => (ReplyError::DeviceRemoved, false),
            Err(NoReply::Unknown) => (ReplyError::UnknownToken, false),
        };
        if late {
            self.stats.bump(RouterCounter::late_replies);
        } else {
            self.stats.bump(RouterCounter::bad_tokens);
        }
        Err(err)
    }

    /// The earliest deadline among pending requests (possibly of one just
    /// finished: waking early is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.requests.next_deadline()
    }

    /// Removes every request whose deadline is before `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let n = self.requests.expire(now_ms);
        self.stats.add(RouterCounter::expired, n as u64);
        n
    }
}

#[cfg(test)]
mod envelope_tests;
#[cfg(test)]
mod tests;
