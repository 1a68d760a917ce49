//! What a caller's handle, its runtime's tasks and the threads in a blocking
//! call share, and how it serves the session: responses, presence, the
//! outgoing requests, expiry and idle subscriptions.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::api::{RrpcCode, RrpcResponse};
use super::calls::{DeviceKey, DeviceStatus, Finished, Outgoing, State, Sub};
use super::{CallerConfig, CallerCounter, CallerStats, Completion};
use crate::clock::now_ms;
use crate::counters::{Counter, Counters};
use crate::dialect::envelope::{self, EnvelopeReply};
use crate::dialect::{self, Dialect, Envelope};
use crate::presence::{Presence, Status};
use crate::session::{
    ConnectionState, DisconnectCause as Cause, Filter, Inbound, Outbox, Publisher, QoS,
    SessionOwner, SubAcks,
};

/// What a caller's handle, its runtime's tasks and the threads in a blocking
/// call share: the settings, the connection, the calls in flight, presence and
/// the counters.
pub(super) struct CallerCore {
    pub(super) cfg: CallerConfig,
    pub(super) client_id: String,
    pub(super) link: Arc<ConnectionState>,
    pub(super) publisher: Publisher,
    pub(super) state: Mutex<State>,
    /// Connected, subscribed and (presence on) the retained snapshot is in.
    pub(super) ready: AtomicBool,
    /// Keys the hash of a custom-topic request's payload (its echo).
    pub(super) echo_key: hashbrown::DefaultHashBuilder,
    pub(super) stats: Counters<CallerStats>,
    /// Signalled when the outbox goes from empty to not empty.
    pub(super) outbox_ready: tokio::sync::Notify,
    /// The Response Topic of mqtt5 calls (see `mqtt5.rs`).
    pub(super) mqtt5_topic: String,
}

/// A subscription of the caller (responses, presence): QoS 0, with No Local
/// (MQTT 5 only), so that a custom-topic request, whose topic is its reply's,
/// does not come back to the caller.
pub(super) fn response_filter(topic: String) -> Filter {
    Filter {
        topic,
        qos: QoS::AtMostOnce,
        no_local: true,
    }
}

/// The Message Expiry Interval of a request with `timeout_ms`: the timeout
/// rounded up to whole seconds.
pub(super) fn expiry_s(timeout_ms: u32) -> u32 {
    timeout_ms.div_ceil(1000)
}

/// A message id as the caller sends them: the canonical decimal form of a
/// non-zero 64-bit number (no sign, no leading zero, no other character).
pub fn parse_message_id(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse::<u64>().ok()
}

/// A fresh message id: 63 random bits from the operating system (getrandom(2)),
/// so another client cannot guess the id of a call in flight; never 0. The top
/// bit stays clear so that the id is also a valid signed 64-bit `MessageId`
/// (the RRpc API's Java and JSON clients read it as a `long`).
pub(super) fn random_id() -> u64 {
    loop {
        let id = crate::random::u64() & (i64::MAX as u64);
        if id != 0 {
            return id;
        }
    }
}

/// A fresh id for a ThingsBoard gateway call: 31 random bits, never 0, so
/// that it is a positive 32-bit integer (ThingsBoard reads `data.id` with
/// `getAsInt()`).
pub(super) fn gateway_id() -> u64 {
    loop {
        let id = crate::random::u64() & (i32::MAX as u64);
        if id != 0 {
            return id;
        }
    }
}

/// Seconds since the Unix epoch (Tencent's `timestamp`); 0 if the clock is
/// before it.
pub(super) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn sync_topic(client_id: &str) -> String {
    format!("rrpc/caller/{client_id}/sync")
}

impl CallerCore {
    pub(super) fn key(&self) -> usize {
        self as *const CallerCore as usize
    }

    pub(super) fn bump(&self, c: Counter<CallerStats>) {
        self.stats.bump(c);
    }

    pub(super) fn count(&self, code: RrpcCode) {
        self.bump(match code {
            RrpcCode::Success => CallerCounter::success,
            RrpcCode::Timeout => CallerCounter::timeout,
            RrpcCode::Offline => CallerCounter::offline,
            RrpcCode::HalfConn => CallerCounter::halfconn,
            RrpcCode::Unknown => CallerCounter::unknown,
        });
    }

    pub(super) fn complete(&self, done: Vec<(Completion, RrpcResponse)>) {
        for (f, r) in done {
            if let Some(c) = r.rrpc_code {
                self.count(c);
            }
            f(r);
        }
    }

    pub(super) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.link.notify();
    }

    /// The keyed hash a custom-topic request's own echo is recognised by.
    pub(super) fn echo_hash(&self, payload: &[u8]) -> u64 {
        self.echo_key.hash_one(payload)
    }

    /// Publishes a request, on MQTT 5 with its Message Expiry Interval (and
    /// an mqtt5 call's Response Topic and Correlation Data).
    pub(super) fn publish_request(&self, (topic, payload, expiry, mqtt5): Outgoing) -> bool {
        match mqtt5 {
            Some(id) => self.publisher.publish_request_v5(
                topic,
                payload,
                expiry,
                &self.mqtt5_topic,
                &super::mqtt5::correlation(id),
            ),
            None => self
                .publisher
                .publish_expiring(topic, QoS::AtMostOnce, payload, expiry),
        }
        .is_ok()
    }

    /// Unsubscribes the response filters no call has used for `idle_ms` (the
    /// permanent Alibaba system wildcard stays).
    pub(super) fn drop_idle_subscriptions(&self, st: &mut State, idle_ms: u64) {
        let now = now_ms();
        let permanent = Dialect::AlibabaSystem.response_wildcard(None);
        let idle: Vec<String> = st
            .subs
            .iter()
            .filter(|(f, e)| {
                e.users == 0
                    && matches!(e.state, Sub::Active)
                    && now.saturating_sub(e.idle_since_ms) >= idle_ms
                    && **f != permanent
            })
            .map(|(f, _)| f.clone())
            .collect();
        for f in idle {
            if self.publisher.unsubscribe(f.clone()).is_err() {
                break; // the queue is full: next round
            }
            st.subs.remove(&f);
            self.bump(CallerCounter::unsubscribed);
            debug!("unsubscribed the unused response filter {f:?}");
        }
    }

    /// A response filter's SUBACK: the filter is active, and the calls that
    /// waited for it go out; when it was refused (or a request cannot be
    /// queued) they end UNKNOWN, returned for completion, and the filter is
    /// forgotten (the next call that needs it subscribes again).
    pub(super) fn activate(
        &self,
        st: &mut State,
        filter: String,
        refused: bool,
    ) -> Vec<(Completion, RrpcResponse)> {
        let Some(entry) = st.subs.get_mut(&filter) else {
            return Vec::new();
        };
        let waiting = match std::mem::replace(&mut entry.state, Sub::Active) {
            Sub::Requested(w) => w,
            Sub::Active => Vec::new(),
        };
        let mut done = Vec::new();
        for id in waiting {
            let Some(out) = st.pending.get_mut(&id).and_then(|c| c.unsent.take()) else {
                continue;
            };
            if refused || !self.publish_request(out) {
                done.extend(st.finish(id, RrpcCode::Unknown, None, None));
            }
        }
        if refused {
            st.subs.remove(&filter);
        }
        done
    }

    pub(super) fn route(&self, topic: &str, payload: &[u8], how: Inbound) {
        if self.is_mqtt5_reply_topic(topic) {
            return self.on_mqtt5_reply(topic, payload, how.retain, None);
        }
        if let Some(p) = &self.cfg.presence {
            if topic == sync_topic(&self.client_id) {
                self.set_ready(true);
                return;
            }
            if let Some(pr) = p.parse(topic, payload) {
                self.on_presence(pr);
                return;
            }
        }
        self.on_response(topic, payload, how.retain);
    }

    /// A message on a response topic. Only a live message on the called
    /// device's own response topic, with the call's whole message-id level,
    /// completes a call; the caller's own custom-topic request (MQTT 3.1.1) is
    /// recognised by its topic and payload, whenever it comes. For an envelope
    /// dialect the id (and a gateway's sub-device) are in the body: only a
    /// reply envelope of the call, on its topic, completes it, with the
    /// envelope's `response`/`data` as the payload (and Tencent's `code` as
    /// the reply status); any other body there (the gateway's own request
    /// back on `v1/gateway/rpc`, a malformed one) is an unknown response.
    pub(super) fn on_response(&self, topic: &str, payload: &[u8], retained: bool) {
        // The message id as each dialect the topic is a response of reads it
        // (templates of different dialects may overlap: the call in flight
        // decides); a topic malformed for one dialect may be another's response.
        let (mut malformed, mut matched) = (false, false);
        let mut ids = [0u64; 4];
        // The reply envelope each id was read from (None: from the topic).
        let mut envs: [Option<(Envelope, EnvelopeReply<'_>)>; 4] = Default::default();
        let mut n = 0;
        for d in Dialect::all() {
            match d.parse_response(topic) {
                Ok(r) => {
                    matched = true;
                    let (id, env) = match d.envelope() {
                        Envelope::None => {
                            let (bare_id, _) = dialect::split_content_type(r.message_id);
                            (parse_message_id(bare_id), None)
                        }
                        e => match envelope::unwrap_reply(e, payload) {
                            Ok(reply) => (parse_message_id(reply.id), Some((e, reply))),
                            Err(_) => (None, None),
                        },
                    };
                    if let Some(id) = id {
                        if n < ids.len() && !ids[..n].contains(&id) {
                            ids[n] = id;
                            envs[n] = env;
                            n += 1;
                        }
                    }
                }
                Err(dialect::TopicError::Malformed(_)) => malformed = true,
                Err(dialect::TopicError::NoMatch) => {}
            }
        }
        if !matched {
            if malformed {
                self.bump(CallerCounter::unknown_responses);
                debug!("malformed response topic ({} bytes) discarded", topic.len());
            }
            return; // else not a response topic at all
        }
        if retained {
            // Stored by the broker earlier, by anyone allowed to publish there.
            self.bump(CallerCounter::retained_responses);
            return debug!("retained message on a response topic discarded");
        }
        if n == 0 {
            self.bump(CallerCounter::unknown_responses);
            return;
        }
        let mut st = self.state.lock();
        let at = (0..n)
            .find(|&i| st.pending.contains_key(&ids[i]))
            .unwrap_or(0);
        let id = ids[at];
        let Some(call) = st.pending.get_mut(&id) else {
            let what = st.finished(id);
            match what {
                Some(Finished::AnsweredEchoDue) => st.echo_seen(id),
                Some(Finished::TimedOut) => {
                    self.bump(CallerCounter::late_responses);
                    debug!("response {id} arrived after its call timed out; discarded");
                }
                Some(Finished::Answered) => self.bump(CallerCounter::duplicate_responses),
                _ => self.bump(CallerCounter::unknown_responses),
            }
            return;
        };
        let env = &envs[at];
        // The reply of an envelope call is that envelope, for its device.
        let same_envelope = match env {
            None => call.envelope == Envelope::None,
            Some((e, reply)) => {
                *e == call.envelope
                    && reply
                        .device
                        .as_deref()
                        .map_or(true, |dn| dn == call.device.1)
            }
        };
        let reply_status = match call.reply_matches(topic) {
            Some(status) if same_envelope => status,
            _ => {
                drop(st);
                self.bump(CallerCounter::mismatched_responses);
                return debug!("a message with the id of call {id} on another device's topic or with another ContentType; discarded");
            }
        };
        if call.echo.is_some_and(|h| h == self.echo_hash(payload)) {
            call.echo = None; // the caller's own request, back from the broker
            return;
        }
        let (payload, reply_status) = match env {
            None => (payload, reply_status),
            // Tencent's code as the reply's status, where it fits one.
            Some((_, reply)) => (
                reply.payload,
                reply.code.and_then(|c| u16::try_from(c).ok()),
            ),
        };
        let done = st.finish(id, RrpcCode::Success, Some(payload.to_vec()), reply_status);
        drop(st);
        self.complete(done.into_iter().collect());
    }

    pub(super) fn on_presence(&self, pr: Presence<'_>) {
        let mut st = self.state.lock();
        let gone: Vec<u64> = match pr {
            Presence::Device {
                product_key,
                device_name,
                status,
            } => {
                let key = DeviceKey(product_key.to_string(), device_name.to_string());
                match status {
                    Status::Online(conn) => {
                        st.presence
                            .set_device(key, Some(DeviceStatus { online: true, conn }));
                        Vec::new()
                    }
                    Status::Cleared => {
                        st.presence.set_device(key, None);
                        Vec::new()
                    }
                    Status::Offline => {
                        let ids = st.calls_to(&key);
                        st.presence.set_device(
                            key,
                            Some(DeviceStatus {
                                online: false,
                                conn: None,
                            }),
                        );
                        ids
                    }
                }
            }
            Presence::Connection { client_id, status } => match status {
                Status::Offline => {
                    st.presence.set_connection_offline(client_id, true);
                    // Only the devices on this connection, and only their calls.
                    let on_conn: Vec<DeviceKey> = st
                        .presence
                        .by_conn
                        .get(client_id)
                        .map(|d| d.iter().cloned().collect())
                        .unwrap_or_default();
                    on_conn.iter().flat_map(|k| st.calls_to(k)).collect()
                }
                _ => {
                    st.presence.set_connection_offline(client_id, false);
                    Vec::new()
                }
            },
        };
        let done = st.finish_each(gone, RrpcCode::HalfConn);
        drop(st);
        self.complete(done);
    }
}

impl SessionOwner for CallerCore {
    /// The Alibaba response wildcard, the presence topics and the caller's sync
    /// topic, and every response filter a call needed so far.
    fn filters(&self) -> Vec<Filter> {
        let mut filters = vec![Dialect::AlibabaSystem.response_wildcard(None)];
        if let Some(p) = &self.cfg.presence {
            filters.extend(p.filters());
        }
        let st = self.state.lock();
        let mut seen: hashbrown::HashSet<String> = filters.iter().cloned().collect();
        for f in st.subs.keys() {
            if seen.insert(f.clone()) {
                filters.push(f.clone());
            }
        }
        let mut filters: Vec<Filter> = filters.into_iter().map(response_filter).collect();
        if self.cfg.presence.is_some() {
            // The caller's own message must come back on this one.
            filters.push(Filter {
                topic: sync_topic(&self.client_id),
                qos: QoS::AtMostOnce,
                no_local: false,
            });
        }
        filters
    }

    /// Every response filter waits for the SUBACK again (clean session); calls
    /// made meanwhile wait with it.
    fn on_connack(&self, _out: &mut Outbox<'_>) {
        let mut st = self.state.lock();
        st.sub_queue.clear();
        st.sub_pkids.clear();
        for sub in st.subs.values_mut() {
            if matches!(sub.state, Sub::Active) {
                sub.state = Sub::Requested(Vec::new());
            }
        }
    }

    /// The filters are active: waiting calls go out (or end UNKNOWN when their
    /// filter was refused), then the presence sync message.
    fn on_subscribed(&self, refused: &[String]) {
        let mut st = self.state.lock();
        let filters: Vec<String> = st.subs.keys().cloned().collect();
        let mut done = Vec::new();
        for f in filters {
            let refused_here = refused.contains(&f);
            done.extend(self.activate(&mut st, f, refused_here));
        }
        if !refused.is_empty() {
            warn!("broker refused caller subscription(s) {refused:?}; calls that needed them end UNKNOWN");
        }
        drop(st);
        if self.cfg.presence.is_some() {
            // Everything the broker had retained for us was sent before this comes
            // back (see route); then the caller is ready.
            if self
                .publisher
                .publish(
                    sync_topic(&self.client_id),
                    QoS::AtMostOnce,
                    false,
                    b"sync".to_vec(),
                )
                .is_err()
            {
                warn!("caller could not queue its presence sync message");
            }
        } else {
            self.set_ready(true);
        }
        self.complete(done);
    }

    fn on_publish(&self, topic: &str, payload: &[u8], how: Inbound) {
        self.route(topic, payload, how);
    }

    /// An MQTT 5 reply: on the mqtt5 response topic, with its Correlation Data.
    fn on_reply_v5(&self, topic: &str, payload: &[u8], how: Inbound, correlation: &[u8]) {
        if self.is_mqtt5_reply_topic(topic) {
            return self.on_mqtt5_reply(topic, payload, how.retain, Some(correlation));
        }
        self.route(topic, payload, how);
    }

    fn on_outgoing_subscribe(&self, pkid: u16) {
        let mut st = self.state.lock();
        if let Some(f) = st.sub_queue.pop_front() {
            st.sub_pkids.insert(pkid, f);
        }
    }

    /// A response filter a call subscribed: its waiting calls go out.
    fn on_suback(&self, pkid: u16, acks: SubAcks<'_>) {
        let mut st = self.state.lock();
        let Some(filter) = st.sub_pkids.remove(&pkid) else {
            return;
        };
        let refused = acks.refused() > 0;
        if refused {
            self.link.note_subscribe_failures(1, acks.reason());
            warn!("broker refused the caller subscription {filter:?}; calls that needed it end UNKNOWN");
        }
        let done = self.activate(&mut st, filter, refused);
        drop(st);
        self.complete(done);
    }

    /// Responses cannot reach a dropped connection: every waiting call ends.
    fn on_disconnected(&self, _cause: Cause) {
        let mut st = self.state.lock();
        let done = st.finish_all(RrpcCode::Unknown);
        st.outbox.clear(); // their calls just ended
        drop(st);
        self.set_ready(false);
        self.complete(done);
    }
}

/// Hands queued requests to rumqttc from the caller's own thread.
pub(super) async fn send_outbox(inner: Arc<CallerCore>, mut stop: watch::Receiver<bool>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = inner.outbox_ready.notified() => {}
        }
        let batch = std::mem::take(&mut inner.state.lock().outbox);
        let mut failed = Vec::new();
        for (id, out) in batch {
            if !inner.publish_request(out) {
                failed.push(id);
            }
        }
        if !failed.is_empty() {
            warn!(
                "{} request(s) could not be queued for sending; they end UNKNOWN",
                failed.len()
            );
            let mut st = inner.state.lock();
            let done = st.finish_each(failed, RrpcCode::Unknown);
            drop(st);
            inner.complete(done);
        }
    }
}

/// Ends calls whose timeout passed, at their deadline.
pub(super) async fn expire_calls(inner: Arc<CallerCore>, mut stop: watch::Receiver<bool>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let now = now_ms();
        let next = inner.state.lock().deadlines.first().map(|&(d, _)| d);
        // A call ends once its deadline has wholly passed: the ms clock
        // truncates, so `now == d` may still be up to 1 ms before it.
        let wait = match next {
            Some(d) if d >= now => (d - now + 1).min(1000),
            Some(_) => 0,
            // Every timeout is at least 1000 ms, so a call made meanwhile cannot be missed.
            None => 1000,
        };
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let now = now_ms();
        let mut st = inner.state.lock();
        let idle_ms = u64::from(inner.cfg.subscription_idle_ms);
        inner.drop_idle_subscriptions(&mut st, idle_ms);
        let mut done = Vec::new();
        while let Some(&(d, id)) = st.deadlines.first() {
            if d >= now {
                break;
            }
            if let Some(x) = st.finish(id, RrpcCode::Timeout, None, None) {
                done.push(x);
            }
        }
        drop(st);
        inner.complete(done);
    }
}
