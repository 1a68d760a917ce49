//! The caller's bookkeeping, under one lock: calls in flight and their
//! deadlines, recently finished ids (to tell late and duplicate responses from
//! unknown ones), response subscriptions, and what presence says of devices.

use std::collections::{BTreeSet, VecDeque};

use hashbrown::{Equivalent, HashMap, HashSet};

use super::api::{RrpcCode, RrpcResponse};
use crate::dialect::Dialect;

/// Completes a call; called exactly once, on the caller's thread or on the thread
/// that made the call (for immediate outcomes).
pub type Completion = Box<dyn FnOnce(RrpcResponse) + Send>;

pub(super) struct PendingCall {
    pub dialect: Dialect,
    pub product_key: Box<str>,
    pub device_name: Box<str>,
    pub deadline_ms: u64,
    /// Custom-topic requests come back to the caller itself first.
    pub own_echo_expected: bool,
    /// The request, until it could be published (waiting for a SUBACK).
    pub unsent: Option<(String, Vec<u8>)>,
    pub done: Completion,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Finished {
    Answered,
    TimedOut,
    Other,
}

pub(super) enum Sub {
    Active,
    /// SUBSCRIBE sent; these calls wait for the SUBACK to be published.
    Requested(Vec<u64>),
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

#[derive(Default)]
pub(super) struct PresenceState {
    /// (pk, dn) -> online, and on which connection.
    pub devices: HashMap<DeviceKey, (bool, Option<String>)>,
    pub offline_connections: HashSet<String>,
}

impl PresenceState {
    /// `Some(true)` online, `Some(false)` offline, `None` never heard of.
    pub fn online(&self, pk: &str, dn: &str) -> Option<bool> {
        if self.devices.is_empty() {
            return None;
        }
        let (online, conn) = self.devices.get(&DeviceRef(pk, dn))?;
        let conn_down = conn
            .as_ref()
            .is_some_and(|c| self.offline_connections.contains(c));
        Some(*online && !conn_down)
    }
}

#[derive(Default)]
pub(super) struct State {
    pub pending: HashMap<u64, PendingCall>,
    pub deadlines: BTreeSet<(u64, u64)>,
    finished: HashMap<u64, Finished>,
    finished_order: VecDeque<u64>,
    pub subs: HashMap<String, Sub>,
    /// Filters of the SUBSCRIBE packets the caller queued itself, in order...
    pub sub_queue: VecDeque<String>,
    /// ...and by packet id once sent.
    pub sub_pkids: HashMap<u16, String>,
    pub presence: PresenceState,
    /// Requests to publish, queued by any thread, sent from the caller's thread.
    pub outbox: Vec<(u64, String, Vec<u8>)>,
}

const FINISHED_MEMORY: usize = 65_536;

impl State {
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

    /// Removes call `id` and returns its completion with the response to give it.
    pub fn finish(
        &mut self,
        id: u64,
        code: RrpcCode,
        payload: Option<Vec<u8>>,
    ) -> Option<(Completion, RrpcResponse)> {
        let call = self.pending.remove(&id)?;
        self.deadlines.remove(&(call.deadline_ms, id));
        self.remember(
            id,
            match code {
                RrpcCode::Success => Finished::Answered,
                RrpcCode::Timeout => Finished::TimedOut,
                _ => Finished::Other,
            },
        );
        Some((call.done, RrpcResponse::done(Some(id), code, payload)))
    }

    /// Ends every call in flight with `code`.
    pub fn finish_all(&mut self, code: RrpcCode) -> Vec<(Completion, RrpcResponse)> {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.finish(id, code, None))
            .collect()
    }
}
