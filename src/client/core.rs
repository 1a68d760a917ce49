//! What a client's handle, its repliers and its session task share, and how
//! it serves the session: routing received messages, presence announcements,
//! the last will, and the expiry of unanswered requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::ClientConfig;
use super::ClientError;
use crate::clock::now_ms;
use crate::log::Excerpt;
use crate::presence;
use crate::router::{Delivery, Device, Dropped, ReplyError, RequestProperties, SharedRouter};
use crate::session::{
    ConnectionState, Filter, Inbound, Outbox, Properties, Publisher, QoS, SendError, Session,
    SessionOwner, SubAcks, Will,
};

/// What a client's handle, its repliers and its session task share: the
/// settings, the connection's state, the router and the request side of the
/// connection.
pub(super) struct ClientCore {
    pub(super) cfg: ClientConfig,
    pub(super) link: Arc<ConnectionState>,
    /// The devices, pending requests and the handler; replies go out through
    /// the session's publisher.
    pub(super) router: SharedRouter<SendError>,
    /// The request side of the connection; read-locked (not cloned) per reply.
    pub(super) publisher: Arc<RwLock<Option<Publisher>>>,
    pub(super) warned_no_handler: AtomicBool,
    /// The client id of the connection, once it is made.
    pub(super) client_id: Mutex<Option<String>>,
    /// The TLS configuration, checked when the client was made; `None`: plain TCP.
    pub(super) tls: Option<crate::session::TlsTransport>,
}

impl ClientCore {
    pub(super) fn reply(
        &self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        if let Some(s) = status.filter(|s| !(100..=599).contains(s)) {
            return Err(ClientError::InvalidArgument(format!(
                "status {s} is not a status code from 100 to 599"
            )));
        }
        self.router
            .reply_with_status(token, status, payload, now_ms())
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
    pub(super) fn request_filter(&self, d: &Device) -> Filter {
        Filter {
            topic: d.filter().to_string(),
            qos: if self.cfg.subscribe_qos == 1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            no_local: d.dialect.replies_on_request_topic(),
        }
    }

    pub(super) fn open_session(&self) -> Session {
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
    pub(super) fn derive_client_id(&self) -> String {
        format!("rrpc{:016x}", crate::random::u64())
    }

    pub(super) fn client_id_or_empty(&self) -> String {
        self.client_id.lock().clone().unwrap_or_default()
    }

    /// This connection's name in presence: under its user name, where an ACL
    /// can keep other accounts from writing its status (see [`presence`]).
    pub(super) fn connection_name(&self) -> String {
        presence::connection_name(
            self.cfg.mqtt.username.as_deref(),
            &self.client_id_or_empty(),
        )
    }

    /// Publishes a device's retained `online {client-id}` or `offline` (presence on).
    pub(super) fn announce(&self, publisher: &Publisher, device: &Device, online: bool) {
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

impl SessionOwner for ClientCore {
    /// Each filter once: a gateway's sub-devices share theirs, and a broker
    /// may close a connection whose SUBSCRIBE repeats one.
    fn filters(&self) -> Vec<Filter> {
        self.router.with_router(|r| {
            let mut filters: Vec<Filter> = Vec::new();
            for d in r.devices() {
                if !filters.iter().any(|f| f.topic == d.filter()) {
                    filters.push(self.request_filter(d));
                }
            }
            filters
        })
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
            self.link.note_stale(topic);
            return;
        }
        // The router refuses a retained request (anyone who could publish there
        // may have left it, and every subscription delivers it again).
        let routed = self
            .router
            .handle_message(topic, payload, how.retain, now_ms());
        report(&self.warned_no_handler, topic, routed);
    }

    /// An MQTT 5 request (a PUBLISH with a Response Topic): as
    /// [`ClientCore::on_publish`], with its properties for the mqtt5 dialect.
    fn on_request_v5(&self, topic: &str, payload: &[u8], how: Inbound, props: Properties<'_>) {
        if how.early && !how.retain && !self.cfg.accept_queued {
            self.link.note_stale(topic);
            return;
        }
        let mut p = RequestProperties::new(props.response_topic, props.correlation);
        let routed = self
            .router
            .handle_message_v5(topic, payload, how.retain, &mut p, now_ms());
        report(&self.warned_no_handler, topic, routed);
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
pub(super) async fn expire_loop(inner: Arc<ClientCore>, mut stop: watch::Receiver<bool>) {
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

/// Logs what became of an incoming PUBLISH (`warned`: the one warning about a
/// missing handler was given).
fn report(warned: &AtomicBool, topic: &str, routed: Result<Delivery, Dropped>) {
    match routed {
        Ok(Delivery::Delivered) => {}
        Ok(Delivery::Panicked(token)) => {
            error!("request handler panicked; request {token} left to expire")
        }
        Ok(Delivery::NoCallback) => {
            if !warned.swap(true, Ordering::Relaxed) {
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
