//! MQTT 3.1.1 and MQTT 5 behind one interface: rumqttc's two event loops and
//! clients, and the protocol-neutral types the owners of a session see (QoS,
//! subscription filters, SUBACK results, the last will, MQTT 5 reason codes in
//! words).
//!
//! The session's loop is generic over [`ProtocolLoop`], so each protocol gets its own
//! copy of the loop with rumqttc's `poll` future awaited directly: MQTT 3.1.1
//! pays nothing for MQTT 5 being there.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;

#[cfg(feature = "mqtt5")]
use rumqttc::v5;
#[cfg(feature = "mqtt5")]
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{ConnectionError, Event, EventLoop, Outgoing, Packet, Request};

use crate::tls;

/// QoS of a subscription or a message (RRPC never needs QoS 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QoS {
    AtMostOnce,
    /// Request subscriptions of QoS 1 and presence announcements: the client's.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    AtLeastOnce,
}

impl QoS {
    pub(super) fn v4(self) -> rumqttc::QoS {
        match self {
            QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
            QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }

    #[cfg(feature = "mqtt5")]
    pub(super) fn v5(self) -> v5::mqttbytes::QoS {
        match self {
            QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
            QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        }
    }
}

/// One subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filter {
    pub topic: String,
    pub qos: QoS,
    /// MQTT 5 No Local: the broker does not send this connection's own
    /// messages back through this subscription. Ignored on MQTT 3.1.1.
    pub no_local: bool,
}

impl Filter {
    fn v4(&self) -> rumqttc::SubscribeFilter {
        rumqttc::SubscribeFilter::new(self.topic.clone(), self.qos.v4())
    }

    /// The SUBSCRIBE request of a batch of filters.
    fn subscribe_v4(batch: &[Filter]) -> Request {
        Request::Subscribe(rumqttc::Subscribe::new_many(batch.iter().map(Filter::v4)))
    }

    #[cfg(feature = "mqtt5")]
    fn subscribe_v5(batch: &[Filter]) -> v5::Request {
        v5::Request::Subscribe(p5::Subscribe::new_many(batch.iter().map(Filter::v5), None))
    }

    #[cfg(feature = "mqtt5")]
    pub(super) fn v5(&self) -> p5::Filter {
        p5::Filter {
            nolocal: self.no_local,
            ..p5::Filter::new(self.topic.clone(), self.qos.v5())
        }
    }
}

/// The last will of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

impl Will {
    fn v4(self) -> rumqttc::LastWill {
        rumqttc::LastWill::new(self.topic, self.payload, self.qos.v4(), self.retain)
    }

    #[cfg(feature = "mqtt5")]
    fn v5(self) -> p5::LastWill {
        p5::LastWill::new(self.topic, self.payload, self.qos.v5(), self.retain, None)
    }
}

/// The MQTT 5 properties of an incoming PUBLISH that matter to RRPC (MQTT 5
/// request/response); none on MQTT 3.1.1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Properties<'a> {
    /// Response Topic (0x08): the PUBLISH is a request.
    pub response_topic: Option<&'a str>,
    /// Correlation Data (0x09).
    pub correlation: Option<&'a [u8]>,
}

/// A message queued for right after a CONNACK (see `Outbox`).
pub(super) struct Message {
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub payload: Vec<u8>,
}

impl Message {
    /// The PUBLISH request of the message.
    fn v4(self) -> Request {
        let mut p = rumqttc::Publish::new(self.topic, self.qos.v4(), self.payload);
        p.retain = self.retain;
        Request::Publish(p)
    }

    #[cfg(feature = "mqtt5")]
    fn v5(self) -> v5::Request {
        let mut p = p5::Publish::new(self.topic, self.qos.v5(), self.payload, None);
        p.retain = self.retain;
        v5::Request::Publish(p)
    }
}

/// The broker's answer to one SUBSCRIBE, one result per filter in order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SubAcks<'a> {
    V4(&'a [rumqttc::SubscribeReasonCode]),
    #[cfg(feature = "mqtt5")]
    V5(&'a [p5::SubscribeReasonCode]),
}

impl SubAcks<'_> {
    pub fn len(self) -> usize {
        match self {
            SubAcks::V4(c) => c.len(),
            #[cfg(feature = "mqtt5")]
            SubAcks::V5(c) => c.len(),
        }
    }

    /// Whether the broker refused filter `i`.
    pub fn is_refused(self, i: usize) -> bool {
        match self {
            SubAcks::V4(c) => matches!(c.get(i), Some(rumqttc::SubscribeReasonCode::Failure)),
            #[cfg(feature = "mqtt5")]
            SubAcks::V5(c) => !matches!(c.get(i), Some(p5::SubscribeReasonCode::Success(_)) | None),
        }
    }

    /// How many filters the broker refused.
    pub fn refused(self) -> usize {
        (0..self.len()).filter(|&i| self.is_refused(i)).count()
    }

    /// Why the first refused filter was refused: an MQTT 5 reason code
    /// (MQTT 3.1.1 only says "failure").
    pub fn reason(self) -> Option<Reason> {
        #[cfg(not(feature = "mqtt5"))]
        return None;
        #[cfg(feature = "mqtt5")]
        let SubAcks::V5(codes) = self
        else {
            return None;
        };
        #[cfg(feature = "mqtt5")]
        codes.iter().find_map(|c| {
            use p5::SubscribeReasonCode as S;
            Some(Reason(match c {
                S::Success(_) => return None,
                S::Failure | S::Unspecified => 0x80,
                S::ImplementationSpecific => 0x83,
                S::NotAuthorized => 0x87,
                S::TopicFilterInvalid => 0x8F,
                S::PkidInUse => 0x91,
                S::QuotaExceeded => 0x97,
                S::SharedSubscriptionsNotSupported => 0x9E,
                S::SubscriptionIdNotSupported => 0xA1,
                S::WildcardSubscriptionsNotSupported => 0xA2,
            }))
        })
    }
}

/// An MQTT 5 reason code, shown as its name in the specification and its
/// value: `not authorized (0x87)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub u8);

impl Reason {
    #[cfg(feature = "mqtt5")]
    fn of_connack(c: p5::ConnectReturnCode) -> Reason {
        use p5::ConnectReturnCode as C;
        Reason(match c {
            C::Success => 0x00,
            C::UnspecifiedError => 0x80,
            C::MalformedPacket => 0x81,
            C::ProtocolError => 0x82,
            C::ImplementationSpecificError => 0x83,
            C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => 0x84,
            C::ClientIdentifierNotValid | C::BadClientId => 0x85,
            C::BadUserNamePassword => 0x86,
            C::NotAuthorized => 0x87,
            C::ServerUnavailable | C::ServiceUnavailable => 0x88,
            C::ServerBusy => 0x89,
            C::Banned => 0x8A,
            C::BadAuthenticationMethod => 0x8C,
            C::TopicNameInvalid => 0x90,
            C::PacketTooLarge => 0x95,
            C::QuotaExceeded => 0x97,
            C::PayloadFormatInvalid => 0x99,
            C::RetainNotSupported => 0x9A,
            C::QoSNotSupported => 0x9B,
            C::UseAnotherServer => 0x9C,
            C::ServerMoved => 0x9D,
            C::ConnectionRateExceeded => 0x9F,
        })
    }

    /// The name of the code in the MQTT 5 specification (section 2.4).
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "success",
            0x04 => "disconnect with will message",
            0x80 => "unspecified error",
            0x81 => "malformed packet",
            0x82 => "protocol error",
            0x83 => "implementation specific error",
            0x84 => "unsupported protocol version",
            0x85 => "client identifier not valid",
            0x86 => "bad user name or password",
            0x87 => "not authorized",
            0x88 => "server unavailable",
            0x89 => "server busy",
            0x8A => "banned",
            0x8B => "server shutting down",
            0x8C => "bad authentication method",
            0x8D => "keep alive timeout",
            0x8E => "session taken over",
            0x8F => "topic filter invalid",
            0x90 => "topic name invalid",
            0x91 => "packet identifier in use",
            0x93 => "receive maximum exceeded",
            0x94 => "topic alias invalid",
            0x95 => "packet too large",
            0x96 => "message rate too high",
            0x97 => "quota exceeded",
            0x98 => "administrative action",
            0x99 => "payload format invalid",
            0x9A => "retain not supported",
            0x9B => "QoS not supported",
            0x9C => "use another server",
            0x9D => "server moved",
            0x9E => "shared subscriptions not supported",
            0x9F => "connection rate exceeded",
            0xA0 => "maximum connect time",
            0xA1 => "subscription identifiers not supported",
            0xA2 => "wildcard subscriptions not supported",
            _ => "unknown reason code",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.0)
    }
}

/// What the session's loop does with one event of either protocol.
pub(super) enum Step<'a> {
    /// An incoming PUBLISH: topic, payload, retain flag, MQTT 5 properties.
    Publish(&'a str, &'a [u8], bool, Properties<'a>),
    /// An incoming PUBLISH whose topic is not UTF-8 (MQTT 5; MQTT 3.1.1's
    /// decoder ends the connection instead, see [`ProtocolLoop::bad_packet`]).
    #[cfg(feature = "mqtt5")]
    BadTopic(&'a [u8]),
    /// CONNACK, and whether the broker resumed a session.
    ConnAck(bool),
    /// A SUBSCRIBE went out with this packet id.
    Subscribing(u16),
    SubAck(u16, SubAcks<'a>),
    /// A keep-alive PINGREQ went out...
    PingReq,
    /// ...and its PINGRESP came back.
    PingResp,
    Other,
}

/// An incoming packet that ended the connection in rumqttc's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadPacket {
    /// Larger than the incoming limit.
    Oversize,
    /// Not decodable (a topic that is not UTF-8, a broken length).
    Malformed,
}

/// The [`BadPacket`] of a decoder error of either protocol: rumqttc's two
/// `mqttbytes::Error` enums name these variants alike.
macro_rules! bad_packet_of {
    ($e:expr, $($error:ident)::+) => {{
        use $($error)::+ as E;
        match $e {
            E::PayloadSizeLimitExceeded { .. } => Some(BadPacket::Oversize),
            E::TopicNotUtf8
            | E::BoundaryCrossed(_)
            | E::MalformedPacket
            | E::MalformedRemainingLength
            | E::PayloadRequired
            | E::PacketIdZero
            | E::InvalidQoS(_) => Some(BadPacket::Malformed),
            _ => None,
        }
    }};
}

impl BadPacket {
    fn of_v4(e: &rumqttc::Error) -> Option<BadPacket> {
        bad_packet_of!(e, rumqttc::Error)
    }

    #[cfg(feature = "mqtt5")]
    fn of_v5(e: &v5::mqttbytes::Error) -> Option<BadPacket> {
        bad_packet_of!(e, v5::mqttbytes::Error)
    }

    fn describe(self, limit: impl fmt::Display) -> String {
        match self {
            BadPacket::Oversize => format!(
                "the broker sent a packet larger than max_incoming_packet ({limit}); MQTT 3.1.1 cannot skip it, so the connection ends (a retained one arrives again at every connect: remove it, or raise max_incoming_packet)"
            ),
            BadPacket::Malformed => format!(
                "the broker sent a packet that cannot be decoded ({limit}); MQTT 3.1.1 cannot skip it, so the connection ends"
            ),
        }
    }
}

/// One protocol's event loop, as the session's loop drives it.
pub(super) trait ProtocolLoop: Send {
    type Event: Send;
    type Error: std::error::Error + Send + 'static;
    /// rumqttc's own `poll` future, not wrapped.
    fn poll(&mut self) -> impl Future<Output = Result<Self::Event, Self::Error>> + Send + '_;
    fn step(ev: &Self::Event) -> Step<'_>;
    /// A connection error in words, with the MQTT 5 reason code when there is one.
    fn describe(e: &Self::Error) -> String {
        // A TLS failure, wherever rumqttc wraps it (TLS 1.3 reports a refused client
        // certificate at the first read, as an MQTT state error).
        if let Some(why) = tls::handshake_failure(e) {
            return why;
        }
        if let Some((bad, decoder)) = Self::bad_packet(e) {
            return bad.describe(decoder);
        }
        Self::describe_other(e)
    }
    /// [`describe`](Self::describe) for an error neither of TLS nor of the decoder.
    fn describe_other(e: &Self::Error) -> String;
    /// The incoming packet that caused the error, when rumqttc's decoder refused
    /// one, and the decoder's words.
    fn bad_packet(e: &Self::Error) -> Option<(BadPacket, &dyn fmt::Display)>;
    /// Drops a connection left from an earlier run; keeps what is queued.
    fn clean(&mut self);
    fn set_last_will(&mut self, will: Will);
    fn set_credentials(&mut self, user: String, password: String);
    /// After a CONNACK: drops queued (un)subscriptions (made again here), then
    /// queues one SUBSCRIBE per batch and the messages, ahead of anything else.
    fn queue_first<'f>(
        &mut self,
        batches: impl Iterator<Item = &'f [Filter]>,
        messages: Vec<Message>,
    );
}

/// A TLS error of rumqttc's, in words.
#[cfg(feature = "tls")]
fn tls_failure(t: &rumqttc::TlsError) -> String {
    tls::handshake_failure(t).unwrap_or_else(|| format!("{}{t}", tls::HANDSHAKE_FAILED))
}

/// The requests queued after a CONNACK, in front of `pending`.
fn requeue<R>(
    pending: &mut VecDeque<R>,
    is_subscription: impl Fn(&R) -> bool,
    front: impl Iterator<Item = R>,
) {
    pending.retain(|r| !is_subscription(r));
    let rest = std::mem::take(pending);
    pending.extend(front);
    pending.extend(rest);
}

/// The methods of [`ProtocolLoop`] that both MQTT versions implement alike, on
/// rumqttc's types of the version: its event loop, the loop's options field,
/// the conversions of our types (`v4`, `v5`), the SUBSCRIBE of a batch of
/// filters and its request type.
macro_rules! alike_in_both_versions {
    ($loop:ty, $options:ident, $v:ident, $subscribe:path, $($request:ident)::+) => {
        fn poll(&mut self) -> impl Future<Output = Result<Self::Event, Self::Error>> + Send + '_ {
            <$loop>::poll(self)
        }

        fn clean(&mut self) {
            <$loop>::clean(self);
        }

        fn set_last_will(&mut self, w: Will) {
            self.$options.set_last_will(w.$v());
        }

        fn set_credentials(&mut self, user: String, password: String) {
            self.$options.set_credentials(user, password);
        }

        fn queue_first<'f>(
            &mut self,
            batches: impl Iterator<Item = &'f [Filter]>,
            messages: Vec<Message>,
        ) {
            let subscribes = batches.map($subscribe);
            let publishes = messages.into_iter().map(Message::$v);
            requeue(
                &mut self.pending,
                |r| matches!(r, $($request)::+::Subscribe(_) | $($request)::+::Unsubscribe(_)),
                subscribes.chain(publishes),
            );
        }
    };
}

impl ProtocolLoop for EventLoop {
    type Event = Event;
    type Error = ConnectionError;

    #[inline]
    fn step(ev: &Event) -> Step<'_> {
        match ev {
            Event::Incoming(Packet::Publish(p)) => {
                Step::Publish(&p.topic, &p.payload, p.retain, Properties::default())
            }
            Event::Incoming(Packet::ConnAck(ack)) => Step::ConnAck(ack.session_present),
            Event::Outgoing(Outgoing::Subscribe(pkid)) => Step::Subscribing(*pkid),
            Event::Incoming(Packet::SubAck(ack)) => {
                Step::SubAck(ack.pkid, SubAcks::V4(&ack.return_codes))
            }
            Event::Outgoing(Outgoing::PingReq) => Step::PingReq,
            Event::Incoming(Packet::PingResp) => Step::PingResp,
            _ => Step::Other,
        }
    }

    fn describe_other(e: &ConnectionError) -> String {
        match e {
            ConnectionError::Io(io) => io.to_string(),
            ConnectionError::ConnectionRefused(code) => {
                format!("broker refused the connection ({code:?})")
            }
            ConnectionError::NetworkTimeout => "connection attempt timed out".to_string(),
            #[cfg(feature = "tls")]
            ConnectionError::Tls(t) => tls_failure(t),
            other => other.to_string(),
        }
    }

    fn bad_packet(e: &ConnectionError) -> Option<(BadPacket, &dyn fmt::Display)> {
        match e {
            ConnectionError::MqttState(rumqttc::StateError::Deserialization(d)) => {
                Some((BadPacket::of_v4(d)?, d))
            }
            _ => None,
        }
    }

    alike_in_both_versions!(EventLoop, mqtt_options, v4, Filter::subscribe_v4, Request);
}

#[cfg(feature = "mqtt5")]
impl ProtocolLoop for v5::EventLoop {
    type Event = v5::Event;
    type Error = v5::ConnectionError;

    #[inline]
    fn step(ev: &v5::Event) -> Step<'_> {
        use p5::Packet as P;
        match ev {
            v5::Event::Incoming(P::Publish(p)) => match std::str::from_utf8(&p.topic) {
                Ok(topic) => {
                    let props =
                        p.properties
                            .as_ref()
                            .map_or_else(Properties::default, |q| Properties {
                                response_topic: q.response_topic.as_deref(),
                                correlation: q.correlation_data.as_deref(),
                            });
                    Step::Publish(topic, &p.payload, p.retain, props)
                }
                // MQTT requires UTF-8 topics: nothing of ours is there.
                Err(_) => Step::BadTopic(&p.topic),
            },
            v5::Event::Incoming(P::ConnAck(ack)) => Step::ConnAck(ack.session_present),
            v5::Event::Outgoing(Outgoing::Subscribe(pkid)) => Step::Subscribing(*pkid),
            v5::Event::Incoming(P::SubAck(ack)) => {
                Step::SubAck(ack.pkid, SubAcks::V5(&ack.return_codes))
            }
            v5::Event::Outgoing(Outgoing::PingReq) => Step::PingReq,
            v5::Event::Incoming(P::PingResp(_)) => Step::PingResp,
            _ => Step::Other,
        }
    }

    fn describe_other(e: &v5::ConnectionError) -> String {
        use v5::StateError as S;
        match e {
            v5::ConnectionError::Io(io) => io.to_string(),
            v5::ConnectionError::ConnectionRefused(code)
            | v5::ConnectionError::MqttState(S::ConnFail { reason: code }) => {
                format!(
                    "broker refused the connection: {}",
                    Reason::of_connack(*code)
                )
            }
            v5::ConnectionError::MqttState(S::ServerDisconnect {
                reason_code,
                reason_string,
            }) => {
                let reason = Reason(*reason_code as u8);
                match reason_string {
                    // The broker's own words: bounded and escaped like any network input.
                    Some(s) => format!("broker disconnected: {reason}: {}", crate::log::Excerpt(s)),
                    None => format!("broker disconnected: {reason}"),
                }
            }
            v5::ConnectionError::Timeout(_) => "connection attempt timed out".to_string(),
            #[cfg(feature = "tls")]
            v5::ConnectionError::Tls(t) => tls_failure(t),
            other => other.to_string(),
        }
    }

    fn bad_packet(e: &v5::ConnectionError) -> Option<(BadPacket, &dyn fmt::Display)> {
        match e {
            v5::ConnectionError::MqttState(v5::StateError::Deserialization(d)) => {
                Some((BadPacket::of_v5(d)?, d))
            }
            _ => None,
        }
    }

    alike_in_both_versions!(
        v5::EventLoop,
        options,
        v5,
        Filter::subscribe_v5,
        v5::Request
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_read_as_the_specification_names_them() {
        assert_eq!(Reason(0x87).to_string(), "not authorized (0x87)");
        assert_eq!(Reason(0x8E).to_string(), "session taken over (0x8E)");
        assert_eq!(Reason(0x12).to_string(), "unknown reason code (0x12)");
        #[cfg(feature = "mqtt5")]
        assert_eq!(
            Reason::of_connack(p5::ConnectReturnCode::BadUserNamePassword).to_string(),
            "bad user name or password (0x86)"
        );
    }

    #[test]
    #[cfg(feature = "mqtt5")]
    fn suback_results_of_both_protocols() {
        use p5::SubscribeReasonCode as S5;
        use rumqttc::SubscribeReasonCode as S4;
        let v4 = [S4::Success(rumqttc::QoS::AtMostOnce), S4::Failure];
        let a = SubAcks::V4(&v4);
        assert_eq!((a.len(), a.refused()), (2, 1));
        assert!(!a.is_refused(0) && a.is_refused(1));
        assert_eq!(a.reason(), None, "MQTT 3.1.1 has no reason codes");
        let v5 = [
            S5::NotAuthorized,
            S5::Success(v5::mqttbytes::QoS::AtLeastOnce),
            S5::TopicFilterInvalid,
        ];
        let a = SubAcks::V5(&v5);
        assert_eq!((a.len(), a.refused()), (3, 2));
        assert!(a.is_refused(0) && !a.is_refused(1) && a.is_refused(2));
        assert_eq!(a.reason(), Some(Reason(0x87)));
    }

    #[test]
    #[cfg(feature = "mqtt5")]
    fn no_local_reaches_the_mqtt5_filter() {
        let f = Filter {
            topic: "/ext/rrpc/+/a/b".into(),
            qos: QoS::AtLeastOnce,
            no_local: true,
        };
        let v = f.v5();
        assert!(v.nolocal);
        assert_eq!(v.qos, v5::mqttbytes::QoS::AtLeastOnce);
        assert_eq!(v.path, "/ext/rrpc/+/a/b");
    }
}
