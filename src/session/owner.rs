//! What the client and the caller plug into the engine ([`SessionOwner`]):
//! the filters to subscribe, what to publish after a CONNACK, the last will,
//! and what to do with incoming messages and lost connections.

use super::events::DisconnectCause;
use super::protocol::{Filter, Properties, SubAcks, Will};
use super::publisher::{Outbox, Publisher};

/// How an incoming PUBLISH reached the session (see docs/security.md).
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

/// What the owner of a session (client or caller) does at each step. Called on
/// the session's task, one at a time.
pub(crate) trait SessionOwner: Send + Sync + 'static {
    /// Every filter to subscribe after a CONNACK.
    fn filters(&self) -> Vec<Filter>;
    /// After a CONNACK, once the SUBSCRIBEs are queued: more to send first.
    fn on_connack(&self, _out: &mut Outbox<'_>) {}
    /// The broker acknowledged every filter of [`SessionOwner::filters`]; `refused`
    /// are those it refused.
    fn on_subscribed(&self, _refused: &[String]) {}
    /// An incoming PUBLISH, with what the session knows of how it came.
    fn on_publish(&self, topic: &str, payload: &[u8], how: Inbound);
    /// An incoming MQTT 5 PUBLISH with a Response Topic (an MQTT 5 request),
    /// with its properties; by default as [`SessionOwner::on_publish`].
    fn on_request_v5(&self, topic: &str, payload: &[u8], how: Inbound, props: Properties<'_>) {
        let _ = props;
        self.on_publish(topic, payload, how);
    }
    /// An incoming MQTT 5 PUBLISH with Correlation Data and no Response Topic
    /// (an MQTT 5 reply), with its Correlation Data; by default as
    /// [`SessionOwner::on_publish`].
    fn on_reply_v5(&self, topic: &str, payload: &[u8], how: Inbound, correlation: &[u8]) {
        let _ = correlation;
        self.on_publish(topic, payload, how);
    }
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
