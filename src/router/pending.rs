//! The requests the router knows: those waiting for a reply, each with a token
//! and a deadline, and those recently finished, remembered so that a second
//! delivery or the echo of a reply is recognised.
//!
//! Three tables hold them: tokens (pending or finished), message ids per device
//! (pending or finished), and the deadline queues of pending requests; a history
//! of finished requests, oldest first, decides when to forget them.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::hash_map::Entry;
use hashbrown::{Equivalent, HashMap};

use super::types::{RouterConfig, MAX_PENDING_LIMIT};
use crate::dialect;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Replied,
    Expired,
    Cancelled,
}

/// A device's message id: the key of the duplicate/echo table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MsgKey {
    slot: u32,
    id: Arc<str>,
}

impl Hash for MsgKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        MsgRef {
            slot: self.slot,
            id: &self.id,
        }
        .hash(h);
    }
}

/// A borrowed [`MsgKey`], for lookups straight from a received topic.
#[derive(Hash)]
struct MsgRef<'a> {
    slot: u32,
    id: &'a str,
}

impl Equivalent<MsgKey> for MsgRef<'_> {
    fn equivalent(&self, k: &MsgKey) -> bool {
        self.slot == k.slot && self.id == &*k.id
    }
}

#[derive(Clone, Copy, Debug)]
struct MsgEntry {
    /// The generation of the slot's device when the id was seen: an entry of a
    /// removed device never matches the device that reuses its slot.
    generation: u32,
    state: MsgState,
    /// The request's token, to tell a pending request whose reply is being
    /// published ([`MsgState::Sending`]) when its id comes again (rare: only
    /// then is the token's entry read).
    token: u64,
}

/// Where a message id a device has seen stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MsgState {
    Pending,
    /// Pending, with its reply being published right now: a custom-topic
    /// device may receive that reply back before the publish returns.
    Sending,
    Done(Outcome),
}

#[derive(Debug)]
enum TokenState {
    Pending(Pending),
    Done(Outcome),
}

/// The parts of a request topic its reply topic repeats besides the message
/// id (the service name of alibaba-service, the payload format of AWS IoT
/// commands), kept only for the dialects whose replies need them; and, for
/// an MQTT 5 request, where its reply goes (the Response Topic) and the
/// Correlation Data it carries back.
#[derive(Debug, Default)]
pub(super) struct ReplyParts {
    pub(super) name: Option<Box<str>>,
    pub(super) format: Option<Box<str>>,
    pub(super) response_topic: Option<Box<str>>,
    pub(super) correlation: Option<Box<[u8]>>,
}

#[derive(Debug)]
struct Pending {
    /// The device's slot and the bare message id (the duplicate key).
    key: MsgKey,
    /// The whole message-id level, ContentType suffix included: what the reply
    /// topic carries.
    level: Arc<str>,
    generation: u32,
    deadline_ms: u64,
    /// Selects the deadline queue.
    timeout_ms: u64,
    /// What else the reply topic repeats of the request topic.
    parts: Option<Box<ReplyParts>>,
    /// Between [`Router::begin_reply`](super::Router::begin_reply) and
    /// [`Router::end_reply`](super::Router::end_reply).
    sending: bool,
}

#[derive(Debug)]
struct DeadlineQueue {
    timeout: u64,
    fifo: VecDeque<(u64, u64)>,
}

#[derive(Debug)]
struct Finished {
    token: u64,
    key: MsgKey,
    generation: u32,
    at_ms: u64,
}

/// Why request `token` cannot be answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NoReply {
    /// Never issued, or forgotten.
    Unknown,
    /// The request ended.
    Done(Outcome),
    /// A reply is being sent.
    Sending,
    /// The deadline passed (the request is still in the tables).
    Late,
}

/// The pending and recently finished requests.
pub(super) struct Requests {
    /// Message ids pending or recently finished, per device.
    msgs: HashMap<MsgKey, MsgEntry>,
    /// Tokens pending or recently finished.
    tokens: HashMap<u64, TokenState>,
    pending: usize,
    /// Deadlines of pending requests: one FIFO per distinct timeout, in which
    /// deadlines never decrease. Finished tokens are removed lazily.
    deadlines: Vec<DeadlineQueue>,
    /// Finished requests, oldest first, for forgetting them.
    history: VecDeque<Finished>,
    next_token: u64,
    /// Bound of the pending requests (the deadline queues are compacted at
    /// about twice as many entries).
    max_pending: usize,
    /// Most finished requests remembered.
    history_cap: usize,
    /// How long a finished request is remembered.
    history_ms: u64,
}

impl Requests {
    pub(super) fn new(cfg: &RouterConfig) -> Requests {
        // Sized up front for a full table and history, so that no rehash stalls
        // a request once the router runs (memory is touched only as it fills).
        // Never more than the documented bounds allow, whatever a configuration
        // that skipped `RouterConfig::validate` says: an allocation the system
        // refuses aborts the process, which no panic boundary catches.
        let history_cap = cfg.history_cap();
        let cap = history_cap
            .saturating_add(cfg.max_pending)
            .min(4 * MAX_PENDING_LIMIT);
        Requests {
            msgs: HashMap::with_capacity(cap),
            tokens: HashMap::with_capacity(cap),
            pending: 0,
            deadlines: Vec::new(),
            history: VecDeque::with_capacity(history_cap.min(2 * MAX_PENDING_LIMIT)),
            next_token: first_token(),
            max_pending: cfg.max_pending,
            history_cap,
            history_ms: cfg.history_ms,
        }
    }

    /// Requests waiting for a reply.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.pending
    }

    /// Enters a new request for the message-id level `level` of the device in
    /// `slot`: a token, its deadline queued, and its bare message id
    /// ([`dialect::bare_message_id`]) remembered. Where the entries go is found
    /// first; only then does `confirm` say whether the request is for the device
    /// it was taken for, and give that registration's generation. `None`, with
    /// nothing changed, when it is not, when this registration has seen `id`
    /// already, or when the next token is still remembered. Returns the token
    /// and the generation.
    #[inline(always)]
    pub(super) fn admit(
        &mut self,
        slot: u32,
        level: &str,
        timeout_ms: u32,
        deadline_ms: u64,
        parts: Option<Box<ReplyParts>>,
        confirm: impl FnOnce() -> Option<u32>,
    ) -> Option<(u64, u32)> {
        let token = self.next_token;
        let level: Arc<str> = Arc::from(level);
        let bare = dialect::bare_message_id(&level);
        let id: Arc<str> = if bare.len() == level.len() {
            level.clone()
        } else {
            Arc::from(bare)
        };
        let msg = self.msgs.entry(MsgKey {
            slot,
            id: id.clone(),
        });
        let Entry::Vacant(tok) = self.tokens.entry(token) else {
            return None;
        };
        let generation = confirm()?;
        let entry = MsgEntry {
            generation,
            state: MsgState::Pending,
            token,
        };
        match msg {
            Entry::Vacant(m) => {
                m.insert(entry);
            }
            // An id of a removed registration of the slot is forgotten.
            Entry::Occupied(mut m) if m.get().generation != generation => {
                m.insert(entry);
            }
            Entry::Occupied(_) => return None,
        }
        let timeout_ms = u64::from(timeout_ms);
        tok.insert(TokenState::Pending(Pending {
            key: MsgKey { slot, id },
            level,
            generation,
            deadline_ms,
            timeout_ms,
            parts,
            sending: false,
        }));
        self.next_token = token.wrapping_add(1).max(1);
        self.pending += 1;
        self.queue_deadline(timeout_ms, deadline_ms, token);
        Some((token, generation))
    }

    /// Where the message of message-id level `level` stands for the
    /// registration `generation` of the device in `slot`: `None` when that
    /// registration has not seen its bare id (or has forgotten).
    pub(super) fn seen(&self, slot: u32, level: &str, generation: u32) -> Option<MsgState> {
        let id = dialect::bare_message_id(level);
        let e = self
            .msgs
            .get(&MsgRef { slot, id })
            .filter(|e| e.generation == generation)?;
        Some(match (e.state, self.tokens.get(&e.token)) {
            (MsgState::Pending, Some(TokenState::Pending(p))) if p.sending => MsgState::Sending,
            (state, _) => state,
        })
    }

    /// The slot, message-id level and other repeated parts a reply to `token`
    /// answers, if it may be sent at `now_ms`.
    #[inline]
    pub(super) fn reply_target(
        &self,
        token: u64,
        now_ms: u64,
    ) -> Result<(u32, &str, Option<&ReplyParts>), NoReply> {
        match self.tokens.get(&token) {
            Some(TokenState::Pending(p)) if p.sending => Err(NoReply::Sending),
            Some(TokenState::Pending(p)) if now_ms > p.deadline_ms => Err(NoReply::Late),
            Some(TokenState::Pending(p)) => Ok((p.key.slot, &p.level, p.parts.as_deref())),
            Some(TokenState::Done(outcome)) => Err(NoReply::Done(*outcome)),
            None => Err(NoReply::Unknown),
        }
    }

    /// Marks pending request `token` as having its reply sent now.
    #[inline]
    pub(super) fn start_sending(&mut self, token: u64) {
        if let Some(TokenState::Pending(p)) = self.tokens.get_mut(&token) {
            p.sending = true;
        }
    }

    /// Ends the sending of a reply to `token`: whether the request is still
    /// pending (it may have ended meanwhile: deadline passed, device removed).
    #[inline]
    pub(super) fn stop_sending(&mut self, token: u64) -> bool {
        match self.tokens.get_mut(&token) {
            Some(TokenState::Pending(p)) if p.sending => {
                p.sending = false;
                true
            }
            _ => false,
        }
    }

    /// Finishes every pending request of the device in `slot` as cancelled, in
    /// the order they were accepted (not the table's), so that the history, and
    /// what is forgotten first, does not depend on hashing.
    pub(super) fn cancel_slot(&mut self, slot: u32, now_ms: u64) {
        let mut cancelled: Vec<u64> = self
            .tokens
            .iter()
            .filter_map(|(&t, s)| match s {
                TokenState::Pending(p) if p.key.slot == slot => Some(t),
                _ => None,
            })
            .collect();
        cancelled.sort_unstable();
        for token in cancelled {
            self.finish(token, Outcome::Cancelled, now_ms);
        }
    }

    /// The earliest deadline among pending requests (possibly of one just
    /// finished: waking early is harmless).
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.deadlines
            .iter()
            .filter_map(|q| q.fifo.front())
            .map(|&(d, _)| d)
            .min()
    }

    /// Finishes every request whose deadline is before `now_ms` as expired, and
    /// forgets what is too old to remember; returns how many expired.
    pub(super) fn expire(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        for qi in 0..self.deadlines.len() {
            while let Some(&(deadline, token)) = self.deadlines[qi].fifo.front() {
                if deadline >= now_ms {
                    break;
                }
                self.deadlines[qi].fifo.pop_front();
                if self.is_pending(token) {
                    self.finish(token, Outcome::Expired, now_ms);
                    n += 1;
                }
            }
        }
        self.trim_history(now_ms);
        n
    }

    fn is_pending(&self, token: u64) -> bool {
        matches!(self.tokens.get(&token), Some(TokenState::Pending(_)))
    }

    fn queue_deadline(&mut self, timeout: u64, deadline_ms: u64, token: u64) {
        let qi = match self.deadlines.iter().position(|q| q.timeout == timeout) {
            Some(i) => i,
            None => {
                self.deadlines.push(DeadlineQueue {
                    timeout,
                    fifo: VecDeque::new(),
                });
                self.deadlines.len() - 1
            }
        };
        self.deadlines[qi].fifo.push_back((deadline_ms, token));
        // Tokens finished out of order stay queued until they reach the front;
        // compact now and then so that the queue stays near the pending count.
        if self.deadlines[qi].fifo.len() > 2 * self.max_pending + 16 {
            let fifo = std::mem::take(&mut self.deadlines[qi].fifo);
            let kept: VecDeque<(u64, u64)> = fifo
                .into_iter()
                .filter(|&(_, t)| self.is_pending(t))
                .collect();
            self.deadlines[qi].fifo = kept;
        }
    }

    /// Drops finished tokens from the front of the deadline queue of `timeout`.
    fn pop_finished_deadlines(&mut self, timeout: u64) {
        let Some(qi) = self.deadlines.iter().position(|q| q.timeout == timeout) else {
            return;
        };
        while let Some(&(_, t)) = self.deadlines[qi].fifo.front() {
            if self.is_pending(t) {
                break;
            }
            self.deadlines[qi].fifo.pop_front();
        }
    }

    /// Ends pending request `token` with `outcome` and moves it to the history.
    pub(super) fn finish(&mut self, token: u64, outcome: Outcome, now_ms: u64) {
        let state = self
            .tokens
            .get_mut(&token)
            .expect("finishing a known token");
        let TokenState::Pending(p) = std::mem::replace(state, TokenState::Done(outcome)) else {
            unreachable!("finishing a pending token");
        };
        self.pending -= 1;
        self.pop_finished_deadlines(p.timeout_ms);
        let r = MsgRef {
            slot: p.key.slot,
            id: &p.key.id,
        };
        if let Some(e) = self.msgs.get_mut(&r) {
            if e.generation == p.generation {
                e.state = MsgState::Done(outcome);
            }
        }
        self.history.push_back(Finished {
            token,
            key: p.key,
            generation: p.generation,
            at_ms: now_ms,
        });
        while self.history.len() > self.history_cap {
            self.forget_oldest();
        }
    }

    /// Forgets the finished requests older than the history window.
    pub(super) fn trim_history(&mut self, now_ms: u64) {
        while let Some(f) = self.history.front() {
            if now_ms.saturating_sub(f.at_ms) <= self.history_ms {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some(f) = self.history.pop_front() else {
            return;
        };
        self.tokens.remove(&f.token);
        let r = MsgRef {
            slot: f.key.slot,
            id: &f.key.id,
        };
        if let Some(e) = self.msgs.get(&r) {
            if e.generation == f.generation && matches!(e.state, MsgState::Done(_)) {
                self.msgs.remove(&r);
            }
        }
    }
}

#[cfg(test)]
impl Requests {
    /// Makes `first` the next token, so that two routers' tokens can be compared.
    pub(super) fn restart_tokens(&mut self, first: u64) {
        self.next_token = first;
    }

    /// Everything the tables hold, in an order that does not depend on hashing.
    pub(super) fn snapshot(&self) -> String {
        let mut msgs: Vec<_> = self.msgs.iter().collect();
        msgs.sort_by(|a, b| (a.0.slot, &a.0.id).cmp(&(b.0.slot, &b.0.id)));
        let mut tokens: Vec<_> = self.tokens.iter().collect();
        tokens.sort_by_key(|t| *t.0);
        format!(
            "pending {} next {}\nmsgs {msgs:?}\ntokens {tokens:?}\ndeadlines {:?}\nhistory {:?}",
            self.pending, self.next_token, self.deadlines, self.history
        )
    }
}

/// Tokens start at a per-router random point, so that a token handed to the
/// wrong client or router is refused rather than answering a stranger's request.
fn first_token() -> u64 {
    (crate::random::u64() >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{router, router_of, router_with};
    use super::super::*;

    #[test]
    fn unanswered_requests_expire_at_their_deadline() {
        let mut r = router_of(&[(Dialect::Tencent, "dev1")], |c| {
            c.request_timeout_ms = 100
        });
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/dev1/1", b"", 0)
            .unwrap();
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/dev1/2", b"", 50)
            .unwrap();
        assert_eq!(r.next_deadline(), Some(100));
        assert_eq!(r.expire(100), 0, "the deadline itself is still in time");
        assert_eq!(r.expire(101), 1);
        assert_eq!(r.expire(151), 1);
        assert_eq!(r.pending_len(), 0);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn history_is_bounded() {
        let mut r = router_with(RouterConfig {
            max_history: 8,
            ..RouterConfig::default()
        });
        let mut first = 0;
        for i in 0..100u32 {
            let t = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/dev1/rrpc/request/{i}"), b"", 0)
                .unwrap()
                .token;
            if i == 0 {
                first = t;
            }
            r.reply(t, b"", 0, |_, _| Ok::<(), ()>(())).unwrap();
        }
        assert!(r.requests.history.len() <= 8);
        assert!(r.requests.tokens.len() <= 8);
        assert!(r.requests.msgs.len() <= 8);
        // Forgotten tokens read as unknown.
        assert_eq!(
            r.reply(first, b"", 0, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::UnknownToken)
        );
    }

    #[test]
    fn history_forgets_by_age() {
        let mut r = router();
        let topic = "/sys/a1GFjLP3xxC/dev1/rrpc/request/5";
        let t = r.handle_message(topic, b"", 0).unwrap().token;
        r.reply(t, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(
            r.handle_message(topic, b"", 1000).unwrap_err(),
            Dropped::Duplicate
        );
        // Far past the window, the id may be reused by the cloud.
        assert!(r
            .handle_message(topic, b"", 1 + DEFAULT_HISTORY_MS + 1)
            .is_ok());
    }

    #[test]
    fn deadlines_of_different_timeouts_expire_in_their_own_order() {
        let mut r = router_of(
            &[(Dialect::AlibabaSystem, "a"), (Dialect::Tencent, "t")],
            |_| {},
        );
        r.handle_message("/sys/a1GFjLP3xxC/a/rrpc/request/1", b"", 0)
            .unwrap(); // 8000
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/t/1", b"", 1000)
            .unwrap(); // 5000
        assert_eq!(r.next_deadline(), Some(5000));
        assert_eq!(r.expire(5001), 1, "the Tencent request expires first");
        assert_eq!(r.next_deadline(), Some(8000));
        assert_eq!(r.expire(8001), 1);
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn out_of_order_replies_keep_the_deadline_queue_bounded() {
        let mut r = router_of(&[(Dialect::AlibabaSystem, "d")], |c| c.max_pending = 8);
        // One request stays pending for the whole run...
        let stuck = r
            .handle_message("/sys/a1GFjLP3xxC/d/rrpc/request/stuck", b"", 0)
            .unwrap()
            .token;
        // ...while thousands are answered newest first in pairs.
        for i in 0..5000u32 {
            let t1 = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/d/rrpc/request/{i}a"), b"", 1)
                .unwrap()
                .token;
            let t2 = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/d/rrpc/request/{i}b"), b"", 1)
                .unwrap()
                .token;
            r.reply(t2, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
            r.reply(t1, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
        }
        let queued: usize = r.requests.deadlines.iter().map(|q| q.fifo.len()).sum();
        assert!(
            queued <= 2 * 8 + 16 + 1,
            "{queued} deadlines queued for 1 pending request"
        );
        assert_eq!(r.pending_len(), 1);
        assert_eq!(r.expire(8001), 1);
        assert_eq!(
            r.reply(stuck, b"", 8002, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::Expired)
        );
    }
}
