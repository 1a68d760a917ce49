//! The engine: [`Session`] opens one rumqttc connection of the configured
//! protocol and runs it as one task ([`Session::spawn`]); the loop connects,
//! reconnects with backoff, subscribes the owner's filters again after every
//! CONNACK, watches the keep-alive, and stops cleanly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "mqtt5")]
use rumqttc::v5;
#[cfg(feature = "tls")]
use rumqttc::TlsConfiguration;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, Transport};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::config::{MqttConfig, MqttVersion, Signer, TlsTransport, PACKET_OVERHEAD};
use super::machine::Machine;
use super::owner::{Inbound, SessionOwner};
use super::protocol::{ProtocolLoop, Step, SubAcks};
use super::publisher::{Outbox, Publisher, RequestChannel};
use super::state::ConnectionState;
#[cfg(doc)]
use super::{ConnStats, SendError};

/// Room in rumqttc's request channel beyond the outgoing queue's bound: the
/// owner's (un)subscriptions and the DISCONNECT.
const CHANNEL_SLACK: usize = 64;
/// Filters per SUBSCRIBE packet when subscribing many after a CONNACK.
const SUBSCRIBE_BATCH: usize = 64;

/// The event loop of one protocol. One per session: the MQTT 5 one is boxed
/// so that a 3.1.1 session does not carry its size.
#[allow(clippy::large_enum_variant)] // the 3.1.1 loop stays inline: no indirection on its path
enum VersionedLoop {
    V311(EventLoop),
    #[cfg(feature = "mqtt5")]
    V5(Box<v5::EventLoop>),
}

/// One MQTT connection and its event loop. See the module documentation.
pub(crate) struct Session {
    event_loop: VersionedLoop,
    engine: Engine,
}

/// Everything of a session but its event loop.
struct Engine {
    publisher: Publisher,
    link: Arc<ConnectionState>,
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
        link: Arc<ConnectionState>,
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
        link.queue.bound(channel_capacity, usize::MAX);
        let channel_capacity = channel_capacity.saturating_add(CHANNEL_SLACK);
        let connect_timeout_s = u64::from(cfg.connect_timeout_ms.div_ceil(1000)).max(1);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(connect_timeout_s);
        let (event_loop, requests) = match cfg.protocol {
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
                (VersionedLoop::V311(eventloop), RequestChannel::V311(client))
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
                (
                    VersionedLoop::V5(Box::new(eventloop)),
                    RequestChannel::V5(client),
                )
            }
        };
        Session {
            event_loop,
            engine: Engine {
                publisher: Publisher::new(requests, link.clone()),
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
    #[cfg(feature = "client")]
    pub fn bound_queue(&self, entries: usize, bytes: usize) {
        let queue = &self.engine.link.queue;
        queue.bound(entries.min(queue.max_queued()), bytes);
    }

    /// Runs the connection as a task of `rt` until `stop` turns true: connects,
    /// reconnects with backoff, subscribes after every CONNACK and hands
    /// everything to `owner`. On stop, sends what is queued and a clean
    /// DISCONNECT, and the task gives the session back, to run again later. The
    /// protocol is chosen once here, and the task is that protocol's loop itself
    /// (not wrapped in another future: each level of futures costs instructions
    /// on every event).
    pub fn spawn<O: SessionOwner>(
        self,
        rt: &tokio::runtime::Handle,
        owner: Arc<O>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Session> {
        let Session { event_loop, engine } = self;
        match event_loop {
            VersionedLoop::V311(eventloop) => rt.spawn(engine.drive::<EventLoop, _, _>(
                eventloop,
                owner,
                stop,
                VersionedLoop::V311,
            )),
            #[cfg(feature = "mqtt5")]
            VersionedLoop::V5(eventloop) => rt.spawn(engine.drive::<v5::EventLoop, _, _>(
                eventloop,
                owner,
                stop,
                VersionedLoop::V5,
            )),
        }
    }
}

impl Engine {
    /// Before every connection attempt: the owner's last will.
    fn prepare_attempt(&mut self, wire: &mut impl ProtocolLoop, owner: &impl SessionOwner) {
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
    async fn drive<W: ProtocolLoop, B: std::borrow::BorrowMut<W>, O: SessionOwner>(
        mut self,
        mut conn: B,
        owner: Arc<O>,
        mut stop: watch::Receiver<bool>,
        wrap: fn(B) -> VersionedLoop,
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
                    if let Some((bad, _)) = W::bad_packet(&e) {
                        self.link.note_bad_packet(bad);
                    }
                    W::describe(&e)
                }),
            };
            match event {
                Ok(ev) => match W::step(&ev) {
                    Step::Publish(topic, payload, ..) if payload.len() > self.max_payload => self
                        .link
                        .note_oversize(topic, payload.len(), self.max_payload),
                    Step::Publish(topic, payload, retain, props) => {
                        let how = Inbound {
                            retain,
                            early: !self.acked && self.session_present,
                        };
                        if props.response_topic.is_some() {
                            owner.on_request_v5(topic, payload, how, props);
                        } else if let Some(correlation) = props.correlation {
                            owner.on_reply_v5(topic, payload, how, correlation);
                        } else {
                            owner.on_publish(topic, payload, how);
                        }
                    }
                    #[cfg(feature = "mqtt5")]
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
            event_loop: wrap(conn),
            engine: self,
        }
    }

    /// After CONNACK: SUBSCRIBE every filter again, ahead of anything queued.
    fn on_connack(&mut self, wire: &mut impl ProtocolLoop, owner: &impl SessionOwner) {
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

    fn on_batch_ack(&mut self, owner: &impl SessionOwner, filters: Vec<String>, acks: SubAcks<'_>) {
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
}
