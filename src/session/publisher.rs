//! The request side of a session: the bounded outgoing queue
//! ([`OutgoingQueue`]), the [`Publisher`] any thread publishes and subscribes
//! through, and the [`Outbox`] an owner fills right after a CONNACK.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(feature = "mqtt5")]
use rumqttc::v5;
use rumqttc::AsyncClient;

use super::protocol::{Filter, Message, QoS};
use super::state::ConnectionState;

/// Why a message could not be handed to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("outgoing queue is full")]
    QueueFull,
}

/// The outgoing queue's size and bounds: messages handed to the session and
/// not yet written (QoS 1: not yet acknowledged), and their payload bytes.
#[derive(Debug)]
pub(crate) struct OutgoingQueue {
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_queued: AtomicUsize,
    max_queued_bytes: AtomicUsize,
}

impl Default for OutgoingQueue {
    fn default() -> Self {
        OutgoingQueue {
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            max_queued: AtomicUsize::new(usize::MAX),
            max_queued_bytes: AtomicUsize::new(usize::MAX),
        }
    }
}

/// The queue was full: what it held and its bounds, for the warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueFull {
    pub queued: usize,
    pub queued_bytes: usize,
    pub max_queued: usize,
    pub max_queued_bytes: usize,
}

impl OutgoingQueue {
    /// Bounds the outgoing queue: at most `entries` messages and `bytes`
    /// payload bytes (a single message larger than `bytes` still goes when the
    /// queue is empty).
    pub fn bound(&self, entries: usize, bytes: usize) {
        self.max_queued.store(entries.max(1), Ordering::Relaxed);
        self.max_queued_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The bound in messages.
    #[cfg(feature = "client")]
    pub fn max_queued(&self) -> usize {
        self.max_queued.load(Ordering::Relaxed)
    }

    /// Messages and payload bytes in the queue now.
    pub fn len(&self) -> (u64, u64) {
        (
            self.queued.load(Ordering::Relaxed) as u64,
            self.queued_bytes.load(Ordering::Relaxed) as u64,
        )
    }

    /// Takes room for one message of `len` payload bytes, or says how full
    /// the queue is.
    fn reserve(&self, len: usize) -> Result<(), QueueFull> {
        let n = self.queued.fetch_add(1, Ordering::AcqRel);
        let b = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        let max_n = self.max_queued.load(Ordering::Relaxed);
        let max_b = self.max_queued_bytes.load(Ordering::Relaxed);
        if n < max_n && (n == 0 || b.saturating_add(len) <= max_b) {
            return Ok(());
        }
        self.release(len);
        Err(QueueFull {
            queued: n,
            queued_bytes: b,
            max_queued: max_n,
            max_queued_bytes: max_b,
        })
    }

    /// Gives back the room of one message of `len` payload bytes.
    pub(super) fn release(&self, len: usize) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// Takes room for one message of `len` payload bytes in `link`'s outgoing
/// queue, or counts and logs a full queue.
fn reserve(link: &ConnectionState, len: usize) -> Result<(), SendError> {
    link.queue.reserve(len).map_err(|full| {
        link.note_queue_full(full);
        SendError::QueueFull
    })
}

/// The request side of a session: any thread may publish or subscribe through
/// it; nothing waits (a full queue is an error). Every message published
/// through it counts in the outgoing queue's bounds ([`OutgoingQueue::bound`])
/// until the session has written it (QoS 1: until the broker acknowledged it)
/// or dropped it.
#[derive(Clone)]
pub(crate) struct Publisher {
    requests: RequestChannel,
    link: Arc<ConnectionState>,
}

/// rumqttc's client of the session's protocol: the sending end of the channel
/// its event loop reads requests from.
#[derive(Clone)]
pub(super) enum RequestChannel {
    V311(AsyncClient),
    #[cfg(feature = "mqtt5")]
    V5(v5::AsyncClient),
}

/// A payload in the outgoing queue: its bytes leave the queue's count when
/// rumqttc drops the buffer.
struct QueuedPayload {
    data: Vec<u8>,
    link: Arc<ConnectionState>,
}

impl AsRef<[u8]> for QueuedPayload {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for QueuedPayload {
    fn drop(&mut self) {
        self.link.queue.release(self.data.len());
    }
}

/// Polls `f` once: its output if it is ready at once. rumqttc's MQTT 3.1.1
/// client takes a payload buffer of ours only in its async publish; the channel
/// always has room for what the queue's bounds let through (see
/// [`Session::open`](super::Session::open)), so that future is ready at its
/// first poll.
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
    pub(super) fn new(requests: RequestChannel, link: Arc<ConnectionState>) -> Publisher {
        Publisher { requests, link }
    }

    /// A payload in the outgoing queue, or a full queue counted and logged.
    fn enqueue(&self, data: Vec<u8>) -> Result<bytes::Bytes, SendError> {
        reserve(&self.link, data.len())?;
        Ok(bytes::Bytes::from_owner(QueuedPayload {
            data,
            link: self.link.clone(),
        }))
    }

    pub fn publish(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), SendError> {
        let payload = self.enqueue(payload.into())?;
        match &self.requests {
            RequestChannel::V311(c) => {
                match ready_now(c.publish_bytes(topic, qos.v4(), retain, payload)) {
                    Some(r) => r.map_err(v4_send_error),
                    // Dropping the future took the message back out of the channel.
                    None => Err(SendError::QueueFull),
                }
            }
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) => c
                .try_publish(topic, qos.v5(), retain, payload)
                .map_err(v5_send_error),
        }
    }

    /// Publishes a reply (QoS 0, no retain); on MQTT 5 with `correlation` as
    /// its Correlation Data property (MQTT 5 request/response). MQTT 3.1.1 has
    /// no properties: the Correlation Data is left out there (a client on
    /// MQTT 3.1.1 serves no mqtt5 device, so there is none).
    #[cfg(feature = "client")]
    pub fn publish_reply(
        &self,
        topic: String,
        payload: &[u8],
        correlation: Option<&[u8]>,
    ) -> Result<(), SendError> {
        match (&self.requests, correlation) {
            #[cfg(feature = "mqtt5")]
            (RequestChannel::V5(c), Some(corr)) => {
                let payload = self.enqueue(payload.to_vec())?;
                let props = v5::mqttbytes::v5::PublishProperties {
                    correlation_data: Some(bytes::Bytes::copy_from_slice(corr)),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, QoS::AtMostOnce.v5(), false, payload, props)
                    .map_err(v5_send_error)
            }
            _ => self.publish(topic, QoS::AtMostOnce, false, payload),
        }
    }

    /// Publishes without retain; on MQTT 5 with a Message Expiry Interval of
    /// `expiry_s` seconds (0: none), after which the broker drops the message
    /// instead of delivering it. MQTT 3.1.1 has no such interval.
    #[cfg(feature = "caller")]
    pub fn publish_expiring(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        payload: impl Into<Vec<u8>>,
        expiry_s: u32,
    ) -> Result<(), SendError> {
        match &self.requests {
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) if expiry_s > 0 => {
                let payload = self.enqueue(payload.into())?;
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

    /// Publishes an MQTT 5 request (MQTT 5.0, 4.10) without retain: with the
    /// Response Topic and Correlation Data properties, and a Message Expiry
    /// Interval of `expiry_s` seconds (0: none). MQTT 3.1.1 has no properties:
    /// there the request cannot be made ([`SendError::NotConnected`]; the
    /// caller refuses such calls before).
    #[cfg(feature = "caller")]
    pub fn publish_request_v5(
        &self,
        topic: String,
        payload: Vec<u8>,
        expiry_s: u32,
        response_topic: &str,
        correlation: &[u8],
    ) -> Result<(), SendError> {
        match &self.requests {
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) => {
                let payload = self.enqueue(payload)?;
                let props = v5::mqttbytes::v5::PublishProperties {
                    message_expiry_interval: (expiry_s > 0).then_some(expiry_s),
                    response_topic: Some(response_topic.to_string()),
                    correlation_data: Some(bytes::Bytes::copy_from_slice(correlation)),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, QoS::AtMostOnce.v5(), false, payload, props)
                    .map_err(v5_send_error)
            }
            _ => {
                let _ = (topic, payload, expiry_s, response_topic, correlation);
                Err(SendError::NotConnected)
            }
        }
    }

    /// Subscribes one filter (No Local only on MQTT 5).
    pub fn subscribe(&self, filter: Filter) -> Result<(), SendError> {
        match &self.requests {
            RequestChannel::V311(c) => c
                .try_subscribe(filter.topic, filter.qos.v4())
                .map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) => c.try_subscribe_many([filter.v5()]).map_err(v5_send_error),
        }
    }

    pub fn unsubscribe(&self, filter: impl Into<String>) -> Result<(), SendError> {
        match &self.requests {
            RequestChannel::V311(c) => c.try_unsubscribe(filter).map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) => c.try_unsubscribe(filter).map_err(v5_send_error),
        }
    }

    pub(super) fn disconnect(&self) -> Result<(), SendError> {
        match &self.requests {
            RequestChannel::V311(c) => c.try_disconnect().map_err(v4_send_error),
            #[cfg(feature = "mqtt5")]
            RequestChannel::V5(c) => c.try_disconnect().map_err(v5_send_error),
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

/// What to publish right after a CONNACK, ahead of anything queued before
/// (the client's presence announcements; the caller publishes nothing there).
pub(crate) struct Outbox<'a>(
    #[cfg_attr(not(feature = "client"), allow(dead_code))] pub(super) &'a mut Vec<Message>,
);

impl Outbox<'_> {
    #[cfg(feature = "client")]
    pub fn publish(&mut self, topic: String, qos: QoS, retain: bool, payload: &[u8]) {
        self.0.push(Message {
            topic,
            qos,
            retain,
            payload: payload.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outgoing_queue_is_bounded_in_messages_and_bytes() {
        let link = ConnectionState::new("h:1".into());
        link.queue.bound(3, 1000);
        // A single message larger than the byte bound goes when nothing waits...
        assert_eq!(reserve(&link, 5000), Ok(()));
        // ...but nothing joins it.
        assert_eq!(reserve(&link, 1), Err(SendError::QueueFull));
        link.queue.release(5000);
        assert_eq!(reserve(&link, 600), Ok(()));
        assert_eq!(reserve(&link, 300), Ok(()));
        assert_eq!(reserve(&link, 200), Err(SendError::QueueFull), "bytes");
        assert_eq!(reserve(&link, 100), Ok(()));
        assert_eq!(reserve(&link, 0), Err(SendError::QueueFull), "messages");
        let s = link.stats();
        assert_eq!((s.queued, s.queued_bytes, s.queue_full), (3, 1000, 3));
        link.queue.release(600);
        link.queue.release(300);
        link.queue.release(100);
        assert_eq!((link.stats().queued, link.stats().queued_bytes), (0, 0));
    }

    #[test]
    fn payload_buffers_leave_the_queue_when_dropped() {
        let link = Arc::new(ConnectionState::new("h:1".into()));
        reserve(&link, 3).unwrap();
        let b = bytes::Bytes::from_owner(QueuedPayload {
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
    fn send_errors_read_as_what_happened() {
        assert_eq!(
            SendError::NotConnected.to_string(),
            "not connected to the broker"
        );
        assert_eq!(SendError::QueueFull.to_string(), "outgoing queue is full");
        let _: &dyn std::error::Error = &SendError::QueueFull;
    }
}
