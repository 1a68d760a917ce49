//! The caller's bookkeeping, under one lock: calls in flight and their
//! deadlines, indexed by device; recently finished ids (to tell late and
//! duplicate responses from unknown ones); response subscriptions and how many
//! calls use each; and what presence says of devices, bounded.

use std::collections::{BTreeSet, VecDeque};
use std::hash::Hash;

use hashbrown::{Equivalent, HashMap, HashSet};

use super::api::{RrpcCode, RrpcResponse};
use crate::dialect::Envelope;

/// Completes a call; called exactly once, on the caller's thread or on the thread
/// that made the call (for immediate outcomes).
pub type Completion = Box<dyn FnOnce(RrpcResponse) + Send>;

pub(super) struct PendingCall {
    pub device: DeviceKey,
    pub deadline_ms: u64,
    /// The one topic the device's reply may come on (its own response topic,
    /// with the request's whole message-id level). For a dialect whose reply
    /// carries a status, a NUL (never in a topic) stands where the status goes:
    /// see [`PendingCall::reply_matches`].
    pub response_topic: Box<str>,
    /// The response filter the call needs (its subscription stays while used).
    pub filter: Box<str>,
    /// A custom-topic request comes back to the caller itself on MQTT 3.1.1
    /// (same topic as the reply): a keyed hash of its payload, until that copy
    /// is seen.
    pub echo: Option<u64>,
    /// Request bytes held for this call (see `max_in_flight_bytes`).
    pub bytes: usize,
    /// The request, until it could be published (waiting for a SUBACK).
    pub unsent: Option<Outgoing>,
    /// Where the reply's id (and a gateway's sub-device) travel: for an
    /// envelope dialect, in the reply's body, which must then be a reply
    /// envelope of this call.
    pub envelope: Envelope,
    pub done: Completion,
}

impl PendingCall {
    /// Whether `topic` is this call's reply topic: `Some(None)` when it is the
    /// expected topic exactly, `Some(Some(status))` when it is with a status
    /// (1 to 5 digits, at most 65535) where the dialect puts one, `None` when
    /// it is some other topic.
    pub fn reply_matches(&self, topic: &str) -> Option<Option<u16>> {
        let Some((pre, post)) = self.response_topic.split_once('\0') else {
            return (*self.response_topic == *topic).then_some(None);
        };
        let mid = topic.strip_prefix(pre)?.strip_suffix(post)?;
        if mid.is_empty() || mid.len() > 5 || !mid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        mid.parse::<u16>().ok().map(Some)
    }
}

/// A request to publish: the call, topic, payload and Message Expiry Interval
/// (seconds, MQTT 5 only), and for an mqtt5 call its id (its Correlation Data;
/// see `mqtt5.rs`).
pub(super) type Outgoing = (String, Vec<u8>, u32, Option<u64>);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Finished {
    Answered,
    /// Answered before the caller's own custom-topic request came back to it.
    AnsweredEchoDue,
    TimedOut,
    Other,
}

pub(super) enum Sub {
    Active,
    /// SUBSCRIBE sent; these calls wait for the SUBACK to be published.
    Requested(Vec<u64>),
}

/// A response subscription a call asked for, with how many calls in flight use
/// it and since when none does.
pub(super) struct SubEntry {
    pub state: Sub,
    pub users: usize,
    pub idle_since_ms: u64,
}

/// A device's identity as a presence key, looked up by borrowed strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct DeviceKey(pub String, pub String);

#[derive(Hash)]
pub(super) struct DeviceRef<'a>(pub &'a str, pub &'a str);

impl Equivalent<DeviceKey> for DeviceRef<'_> {
    fn equivalent(&self, k: &DeviceKey) -> bool {
        self.0 == k.0 && self.1 == k.1
    }
}

/// A map of at most `cap` entries that evicts the entry updated longest ago.
pub(super) struct Bounded<K, V> {
    map: HashMap<K, (u64, V)>,
    /// Insertion order: (sequence, key); entries whose sequence no longer
    /// matches the map's are stale and skipped.
    order: VecDeque<(u64, K)>,
    seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, k: &Q) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&mut self, k: &Q) -> Option<V> {
        self.map.remove(k).map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the entries evicted to stay within the cap
    /// (and the replaced value's key is not among them).
    pub fn insert(&mut self, k: K, v: V) -> (Option<V>, Vec<(K, V)>) {
        self.seq += 1;
        let old = self.map.insert(k.clone(), (self.seq, v)).map(|(_, v)| v);
        self.order.push_back((self.seq, k));
        let mut evicted = Vec::new();
        while self.map.len() > self.cap {
            let Some((seq, key)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|(s, _)| *s == seq) {
                if let Some((_, v)) = self.map.remove(&key) {
                    evicted.push((key, v));
                }
            }
        }
        // Updates and removals leave stale entries behind: compact now and then.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(s, k)| map.get(k).is_some_and(|(cur, _)| cur == s));
        }
        (old, evicted)
    }
}

/// A device's last presence status.
pub(super) struct DeviceStatus {
    pub online: bool,
    pub conn: Option<String>,
}

pub(super) struct PresenceState {
    /// (pk, dn) -> online, and on which connection.
    pub devices: Bounded<DeviceKey, DeviceStatus>,
    /// Connection -> the devices whose status names it (an index of `devices`).
    pub by_conn: HashMap<String, HashSet<DeviceKey>>,
    pub offline_connections: Bounded<String, ()>,
    /// Entries dropped to stay within the bound.
    pub evicted: u64,
}

impl PresenceState {
    pub fn new(cap: usize) -> PresenceState {
        PresenceState {
            devices: Bounded::new(cap),
            by_conn: HashMap::new(),
            offline_connections: Bounded::new(cap),
            evicted: 0,
        }
    }

    /// `Some(true)` online, `Some(false)` offline, `None` never heard of.
    pub fn online(&self, pk: &str, dn: &str) -> Option<bool> {
        if self.devices.len() == 0 {
            return None;
        }
        let s = self.devices.get(&DeviceRef(pk, dn))?;
        let conn_down = s
            .conn
            .as_ref()
            .is_some_and(|c| self.offline_connections.get(c.as_str()).is_some());
        Some(s.online && !conn_down)
    }

    fn unlink(&mut self, key: &DeviceKey, status: &DeviceStatus) {
        if let Some(c) = &status.conn {
            if let Some(set) = self.by_conn.get_mut(c.as_str()) {
                set.remove(key);
                if set.is_empty() {
                    self.by_conn.remove(c.as_str());
                }
            }
        }
    }

    pub fn set_device(&mut self, key: DeviceKey, status: Option<DeviceStatus>) {
        let Some(status) = status else {
            if let Some(old) = self.devices.remove(&key) {
                self.unlink(&key, &old);
            }
            return;
        };
        if let Some(c) = &status.conn {
            self.by_conn
                .entry(c.clone())
                .or_default()
                .insert(key.clone());
        }
        let conn = status.conn.clone();
        let (old, evicted) = self.devices.insert(key.clone(), status);
        if let Some(old) = old {
            if old.conn != conn {
                self.unlink(&key, &old);
            }
        }
        for (k, v) in evicted {
            self.evicted += 1;
            self.unlink(&k, &v);
        }
    }

    pub fn set_connection_offline(&mut self, client_id: &str, offline: bool) {
        if offline {
            let (_, evicted) = self.offline_connections.insert(client_id.to_string(), ());
            self.evicted += evicted.len() as u64;
        } else {
            self.offline_connections.remove(client_id);
        }
    }
}

pub(super) struct State {
    pub pending: HashMap<u64, PendingCall>,
    /// Calls in flight per device, so that presence touches only its own calls.
    pub by_device: HashMap<DeviceKey, HashSet<u64>>,
    pub deadlines: BTreeSet<(u64, u64)>,
    /// Request bytes of the calls in flight.
    pub bytes: usize,
    finished: HashMap<u64, Finished>,
    finished_order: VecDeque<u64>,
    pub subs: HashMap<String, SubEntry>,
    /// Filters of the SUBSCRIBE packets the caller queued itself, in order...
    pub sub_queue: VecDeque<String>,
    /// ...and by packet id once sent.
    pub sub_pkids: HashMap<u16, String>,
    pub presence: PresenceState,
    /// Requests to publish, queued by any thread, sent from the caller's thread.
    pub outbox: Vec<(u64, Outgoing)>,
}

const FINISHED_MEMORY: usize = 65_536;

impl State {
    pub fn new(max_presence: usize) -> State {
        State {
            pending: HashMap::new(),
            by_device: HashMap::new(),
            deadlines: BTreeSet::new(),
            bytes: 0,
            finished: HashMap::new(),
            finished_order: VecDeque::new(),
            subs: HashMap::new(),
            sub_queue: VecDeque::new(),
            sub_pkids: HashMap::new(),
            presence: PresenceState::new(max_presence),
            outbox: Vec::new(),
        }
    }

    fn remember(&mut self, id: u64, how: Finished) {
        self.finished.insert(id, how);
        self.finished_order.push_back(id);
        while self.finished_order.len() > FINISHED_MEMORY {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// How call `id` ended, if it ended recently.
    pub fn finished(&self, id: u64) -> Option<Finished> {
        self.finished.get(&id).copied()
    }

    /// The late echo of an answered call came: nothing more is expected.
    pub fn echo_seen(&mut self, id: u64) {
        if let Some(f) = self.finished.get_mut(&id) {
            *f = Finished::Answered;
        }
    }

    /// Adds a call in flight.
    pub fn insert(&mut self, id: u64, call: PendingCall) {
        self.deadlines.insert((call.deadline_ms, id));
        self.bytes += call.bytes;
        self.by_device
            .entry(call.device.clone())
            .or_default()
            .insert(id);
        if let Some(s) = self.subs.get_mut(&*call.filter) {
            s.users += 1;
        }
        self.pending.insert(id, call);
    }

    /// The calls in flight to one device.
    pub fn calls_to(&self, device: &DeviceKey) -> Vec<u64> {
        self.by_device
            .get(device)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Removes call `id` and returns its completion with the response to give it.
    pub fn finish(
        &mut self,
        id: u64,
        code: RrpcCode,
        payload: Option<Vec<u8>>,
        reply_status: Option<u16>,
    ) -> Option<(Completion, RrpcResponse)> {
        let call = self.pending.remove(&id)?;
        self.deadlines.remove(&(call.deadline_ms, id));
        self.bytes -= call.bytes;
        if let Some(ids) = self.by_device.get_mut(&call.device) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_device.remove(&call.device);
            }
        }
        if let Some(s) = self.subs.get_mut(&*call.filter) {
            s.users = s.users.saturating_sub(1);
            if s.users == 0 {
                s.idle_since_ms = crate::clock::now_ms();
            }
        }
        self.remember(
            id,
            match code {
                RrpcCode::Success if call.echo.is_some() => Finished::AnsweredEchoDue,
                RrpcCode::Success => Finished::Answered,
                RrpcCode::Timeout => Finished::TimedOut,
                _ => Finished::Other,
            },
        );
        let mut r = RrpcResponse::done(Some(id), code, payload);
        r.reply_status = reply_status;
        Some((call.done, r))
    }

    /// Ends every call in flight with `code`.
    pub fn finish_all(&mut self, code: RrpcCode) -> Vec<(Completion, RrpcResponse)> {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        self.finish_each(ids, code)
    }

    /// Ends the calls `ids` that are still in flight with `code`, without a payload.
    pub fn finish_each(
        &mut self,
        ids: impl IntoIterator<Item = u64>,
        code: RrpcCode,
    ) -> Vec<(Completion, RrpcResponse)> {
        ids.into_iter()
            .filter_map(|id| self.finish(id, code, None, None))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_expecting(topic: &str) -> PendingCall {
        PendingCall {
            device: DeviceKey(String::new(), String::new()),
            deadline_ms: 0,
            response_topic: topic.into(),
            filter: "".into(),
            echo: None,
            bytes: 0,
            unsent: None,
            envelope: Envelope::None,
            done: Box::new(|_| {}),
        }
    }

    #[test]
    fn a_reply_matches_its_exact_topic_or_with_a_status_where_the_dialect_has_one() {
        let c = call_expecting("/sys/pk/dn/rrpc/response/7");
        assert_eq!(c.reply_matches("/sys/pk/dn/rrpc/response/7"), Some(None));
        assert_eq!(c.reply_matches("/sys/pk/dn2/rrpc/response/7"), None);
        let c = call_expecting("$iothub/methods/res/\0/?$rid=7");
        assert_eq!(
            c.reply_matches("$iothub/methods/res/404/?$rid=7"),
            Some(Some(404))
        );
        assert_eq!(c.reply_matches("$iothub/methods/res/200/?$rid=8"), None);
        assert_eq!(c.reply_matches("$iothub/methods/res//?$rid=7"), None);
        assert_eq!(c.reply_matches("$iothub/methods/res/x1/?$rid=7"), None);
        assert_eq!(c.reply_matches("$iothub/methods/res/99999/?$rid=7"), None);
    }

    #[test]
    fn bounded_map_evicts_the_entry_updated_longest_ago() {
        let mut m: Bounded<u32, u32> = Bounded::new(3);
        for k in 0..3 {
            assert!(m.insert(k, k).1.is_empty());
        }
        // Updating 0 makes 1 the oldest.
        m.insert(0, 10);
        let (_, ev) = m.insert(3, 3);
        assert_eq!(ev.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1]);
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&0), Some(&10));
        // Many updates of one key keep the order queue small.
        for i in 0..10_000 {
            m.insert(0, i);
        }
        assert!(m.order.len() < 100, "{}", m.order.len());
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn presence_keeps_its_connection_index_through_updates_and_evictions() {
        let mut p = PresenceState::new(2);
        let k = |n: &str| DeviceKey("pk".into(), n.into());
        let on = |c: &str| {
            Some(DeviceStatus {
                online: true,
                conn: Some(c.into()),
            })
        };
        p.set_device(k("a"), on("c1"));
        p.set_device(k("b"), on("c1"));
        assert_eq!(p.by_conn["c1"].len(), 2);
        p.set_device(k("a"), on("c2"));
        assert_eq!(p.by_conn["c1"].len(), 1);
        p.set_device(k("c"), on("c2")); // evicts b
        assert_eq!(p.evicted, 1);
        assert!(!p.by_conn.contains_key("c1"));
        assert_eq!(p.by_conn["c2"].len(), 2);
        p.set_device(k("a"), None);
        assert_eq!(p.by_conn["c2"].len(), 1);
    }
}
