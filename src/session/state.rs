//! What the owner and any application thread see of a connection
//! ([`ConnectionState`]): connected and subscribed, the counters
//! ([`ConnStats`]), the last error, the listener, and a condition to wait on;
//! and how what the session notices is counted and logged.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::events::{ConnError, ConnectionEvent, DisconnectCause, Listener};
use super::protocol::{BadPacket, Reason};
use super::publisher::{OutgoingQueue, QueueFull};
#[cfg(doc)]
use super::MqttConfig;
use crate::callback::{CallbackSlot, Reentered};
use crate::counters::{counter_set, Counters};

/// Connection counters: each counts from the connection state's creation,
/// except the gauges `queued` and `queued_bytes`, filled in when they are read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Successful connections (CONNACK received), including reconnects.
    pub connects: u64,
    /// Connections lost or attempts failed.
    pub connection_errors: u64,
    /// Subscriptions the broker refused in a SUBACK.
    pub subscribe_failures: u64,
    /// Incoming PUBLISHes over the owner's payload limit, dropped with the
    /// connection kept; and MQTT 3.1.1 packets over
    /// [`MqttConfig::max_incoming_packet`], which end the connection.
    pub oversize: u64,
    /// Incoming PUBLISHes that cannot be decoded (a topic that is not UTF-8),
    /// dropped with the connection kept on MQTT 5; on MQTT 3.1.1 the decoder
    /// ends the connection (counted too).
    pub malformed: u64,
    /// Messages a resumed persistent session delivered before the broker
    /// acknowledged the subscriptions again (queued while the client was
    /// away), dropped by the owner.
    pub stale: u64,
    /// Messages refused because the outgoing queue was full (its entries or
    /// bytes bound): the link is stalled or slower than what is published.
    pub queue_full: u64,
    /// Messages waiting in the outgoing queue now (handed to the session, not
    /// yet written to the network; QoS 1 ones until the broker acknowledges them).
    pub queued: u64,
    /// Payload bytes of those messages.
    pub queued_bytes: u64,
}

counter_set!(ConnStats as ConnCounter {
    connects,
    connection_errors,
    subscribe_failures,
    oversize,
    malformed,
    stale,
    queue_full,
    queued,
    queued_bytes,
});

/// What the owner and any application thread see of the session: state,
/// counters, the last error, the listener; and a condition to wait on for
/// changes.
pub(crate) struct ConnectionState {
    address: String,
    connected: AtomicBool,
    /// All subscriptions made at the last CONNACK are acknowledged.
    subscribed: AtomicBool,
    /// The live counters ([`ConnStats`] but its gauges).
    counters: Counters<ConnStats>,
    /// The outgoing queue: messages and payload bytes in it, and their bounds.
    pub(super) queue: OutgoingQueue,
    last_error: Mutex<Option<ConnError>>,
    listener: CallbackSlot<Listener>,
    /// Application threads waiting for the outcome of connecting (a `start`, a
    /// `yield`, the caller's `connect`): they report failures themselves, so
    /// the log does not repeat them.
    watchers: AtomicUsize,
    /// A failure was logged since the last connection; repeats go to debug.
    warned: AtomicBool,
    changed_lock: Mutex<()>,
    changed: Condvar,
}

impl ConnectionState {
    pub fn new(address: String) -> ConnectionState {
        ConnectionState {
            address,
            connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            counters: Counters::default(),
            queue: OutgoingQueue::default(),
            last_error: Mutex::new(None),
            listener: CallbackSlot::default(),
            watchers: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
            changed_lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Connected: CONNACK received and the connection not lost since.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Connected, and the broker acknowledged every subscription made at connect.
    #[cfg(feature = "client")]
    pub fn is_subscribed(&self) -> bool {
        self.is_connected() && self.subscribed.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> ConnStats {
        let (queued, queued_bytes) = self.queue.len();
        ConnStats {
            queued,
            queued_bytes,
            ..self.counters.snapshot()
        }
    }

    /// A message a resumed persistent session delivered before the broker
    /// acknowledged the subscriptions again ([`Inbound::early`](super::owner::Inbound::early)),
    /// which the owner refused: counted, and logged (throttled, the topic as a
    /// bounded excerpt).
    #[cfg(feature = "client")]
    pub fn note_stale(&self, topic: &str) {
        self.counters.bump(ConnCounter::stale);
        throttled!(
            crate::log::Level::Warn,
            "ignored a message on {} that the broker queued while this client was away (delivered before the subscriptions were acknowledged again)",
            crate::log::Excerpt(topic)
        );
    }

    /// An incoming PUBLISH of `len` payload bytes over the owner's `max`.
    pub(super) fn note_oversize(&self, topic: &str, len: usize, max: usize) {
        self.counters.bump(ConnCounter::oversize);
        throttled!(
            crate::log::Level::Warn,
            "dropped a message of {len} bytes on {}: over the payload limit of {max} bytes",
            crate::log::Excerpt(topic)
        );
    }

    /// An incoming PUBLISH whose topic is not UTF-8 (MQTT 5: 3.1.1's decoder ends
    /// the connection instead).
    #[cfg(any(feature = "mqtt5", all(test, feature = "client")))]
    pub(super) fn note_malformed(&self, topic: &[u8]) {
        self.counters.bump(ConnCounter::malformed);
        throttled!(
            crate::log::Level::Warn,
            "dropped a message whose topic is not UTF-8 (MQTT forbids it): {}",
            crate::log::BytesExcerpt(topic)
        );
    }

    /// A message refused because the outgoing queue is full: counted, and
    /// logged (throttled).
    pub(super) fn note_queue_full(&self, full: QueueFull) {
        self.counters.bump(ConnCounter::queue_full);
        let QueueFull {
            queued: n,
            queued_bytes: b,
            max_queued: max_n,
            max_queued_bytes: max_b,
        } = full;
        throttled!(
            crate::log::Level::Warn,
            "outgoing queue to {} is full ({n} message(s), {b} bytes waiting; bounds {max_n} and {max_b}): the link is stalled or slower than what is published; message refused",
            self.address
        );
    }

    /// A PUBLISH over [`MqttConfig::max_incoming_packet`] or with a topic that
    /// is not UTF-8 ended an MQTT 3.1.1 connection: counted as such too.
    pub(super) fn note_bad_packet(&self, bad: BadPacket) {
        match bad {
            BadPacket::Oversize => self.counters.bump(ConnCounter::oversize),
            BadPacket::Malformed => self.counters.bump(ConnCounter::malformed),
        };
    }

    /// The failure since the last connection, if any.
    pub fn last_error(&self) -> Option<ConnError> {
        self.last_error.lock().clone()
    }

    #[cfg(feature = "client")]
    pub fn errors(&self) -> u64 {
        self.counters.get(ConnCounter::connection_errors)
    }

    /// Counts and logs `n` refused subscriptions; `why` is the MQTT 5 reason
    /// code of one of them (MQTT 3.1.1 gives none).
    pub fn note_subscribe_failures(&self, n: u64, why: Option<Reason>) {
        self.note_refused_filters(n, why, None);
    }

    /// [`ConnectionState::note_subscribe_failures`] naming the first refused filter, so
    /// that the warning says which device (or topic) will not receive anything.
    pub(super) fn note_refused_filters(&self, n: u64, why: Option<Reason>, first: Option<&str>) {
        if n > 0 {
            self.counters.add(ConnCounter::subscribe_failures, n);
            let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
            match first {
                Some(f) if n > 1 => warn!(
                    "broker refused {n} subscriptions{why}, the first {f}; nothing arrives on them: check its ACLs"
                ),
                Some(f) => warn!(
                    "broker refused the subscription {f}{why}; nothing arrives on it: check its ACLs"
                ),
                None => warn!("broker refused {n} subscription(s){why}; check its ACLs"),
            }
        }
    }

    /// Sets (or clears) the application's connection listener; when it
    /// returns, the old one is not running and will not run again.
    pub fn set_listener(&self, f: Option<Box<Listener>>) -> Result<(), Reentered> {
        self.listener.set(f)
    }

    /// Wakes the threads waiting in [`ConnectionState::wait`].
    pub fn notify(&self) {
        let _g = self.changed_lock.lock();
        self.changed.notify_all();
    }

    /// Waits until `done` says yes (re-checked after every change) or the
    /// deadline passes; returns `done`'s last answer. The waiting thread counts
    /// as a watcher: failures are its to report.
    pub fn wait<R>(&self, deadline: Instant, mut done: impl FnMut() -> Option<R>) -> Option<R> {
        let _w = self.watch();
        let mut g = self.changed_lock.lock();
        loop {
            if let Some(r) = done() {
                return Some(r);
            }
            if self.changed.wait_until(&mut g, deadline).timed_out() {
                return done();
            }
        }
    }

    /// Marks the calling thread as reporting connection failures itself while
    /// the returned guard lives.
    pub fn watch(&self) -> WatchGuard<'_> {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        WatchGuard(self)
    }

    /// The session's task is gone without a clean end: nothing is connected.
    #[cfg(feature = "client")]
    pub fn forget(&self) {
        self.set_state(false);
        self.notify();
    }

    pub(super) fn set_state(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
        if !connected {
            self.subscribed.store(false, Ordering::SeqCst);
        }
    }

    pub(super) fn set_subscribed(&self) {
        self.subscribed.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Records, logs and hands on one event.
    pub(super) fn emit(&self, event: &ConnectionEvent) {
        let told = self.listener.is_set();
        match event {
            ConnectionEvent::Connected => {
                self.counters.bump(ConnCounter::connects);
                *self.last_error.lock() = None;
                self.warned.store(false, Ordering::Relaxed);
                self.set_state(true);
                info!("connected to {}", self.address);
            }
            ConnectionEvent::Disconnected { cause, reason } => {
                self.set_state(false);
                let err = ConnError {
                    cause: *cause,
                    address: self.address.clone(),
                    reason: reason.clone(),
                };
                if *cause == DisconnectCause::Stopped {
                    info!("{err}");
                } else {
                    self.counters.bump(ConnCounter::connection_errors);
                    // An application thread waiting for the outcome reports it;
                    // a listener has it; otherwise warn once per outage.
                    let reported = self.watchers.load(Ordering::SeqCst) > 0 || told;
                    if reported || self.warned.swap(true, Ordering::Relaxed) {
                        debug!("{err}");
                    } else {
                        warn!("{err}");
                    }
                    *self.last_error.lock() = Some(err);
                }
            }
            ConnectionEvent::Reconnecting { delay_ms, attempt } => {
                debug!(
                    "reconnecting to {} in {delay_ms} ms (attempt {attempt})",
                    self.address
                );
            }
        }
        self.listener.call(|f| f(event));
        self.notify();
    }
}

/// See [`ConnectionState::watch`].
pub(crate) struct WatchGuard<'a>(&'a ConnectionState);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_listener_hears_events_and_can_be_released() {
        let link = ConnectionState::new("h:1".into());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        link.set_listener(Some(Box::new(move |e: &ConnectionEvent| {
            s2.lock().push(e.clone())
        })))
        .unwrap();
        link.emit(&ConnectionEvent::Connected);
        assert!(link.is_connected());
        link.emit(&ConnectionEvent::Disconnected {
            cause: DisconnectCause::Lost,
            reason: "eof".into(),
        });
        assert!(!link.is_connected());
        assert_eq!(link.stats().connects, 1);
        assert_eq!(link.stats().connection_errors, 1);
        assert_eq!(
            link.last_error().unwrap().to_string(),
            "connection to h:1 lost: eof"
        );
        link.set_listener(None).unwrap();
        link.emit(&ConnectionEvent::Connected);
        assert_eq!(
            seen.lock().len(),
            2,
            "no event after the listener was released"
        );
        assert_eq!(
            link.last_error(),
            None,
            "a connection clears the last error"
        );
    }

    #[test]
    #[cfg(feature = "client")]
    fn each_note_counts_in_its_own_field() {
        let link = ConnectionState::new("h:1".into());
        link.note_stale("t");
        link.note_oversize("t", 10, 5);
        link.note_malformed(b"\xff");
        link.note_bad_packet(BadPacket::Oversize);
        link.note_bad_packet(BadPacket::Malformed);
        link.note_subscribe_failures(3, None);
        link.note_refused_filters(0, None, None);
        assert_eq!(
            link.stats(),
            ConnStats {
                stale: 1,
                oversize: 2,
                malformed: 2,
                subscribe_failures: 3,
                ..ConnStats::default()
            }
        );
        assert_eq!(link.errors(), 0);
    }
}
