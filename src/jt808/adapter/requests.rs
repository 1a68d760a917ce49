//! The correlation of requests and replies: the requests the adapter holds,
//! how a request is accepted, how a terminal's 0x0001 and 0x0900 complete it,
//! and how it ends (reply, expiry, cancellation, disconnection).

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::super::codec::{Phone, ResponseResult};
use super::queues::AnswerQueue;
use super::{
    ack_payload, error_payload, result_error_payload, Adapter, AdapterCounter, BusyPolicy, Call,
    Completion, ErrorReason, Event, ReplyKind, SubmitError, Submitted,
};

/// Where a held request is.
#[derive(Debug)]
pub(super) enum RequestState {
    /// Waiting behind the outstanding Answer request of its (terminal, type),
    /// with its content.
    Queued { content: Vec<u8> },
    /// Sent as the 0x8900 packets with serials `serial..serial + packets`.
    Sent { serial: u16, packets: u16 },
}

/// A request the adapter holds, sent or queued.
#[derive(Debug)]
pub(super) struct HeldRequest {
    pub(super) token: u64,
    pub(super) phone: Phone,
    pub(super) content_type: u8,
    pub(super) completion: Completion,
    pub(super) deadline_ms: u64,
    pub(super) state: RequestState,
}

/// What a finished request leaves behind to tell a late frame from an
/// unknown one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LateKey {
    /// The serial of one of its 0x8900 packets (a late 0x0001).
    Serial(Phone, u16),
    /// The (terminal, type) of an expired Answer request (a late 0x0900).
    Type(Phone, u8),
}

/// A bounded memory of recently finished requests.
#[derive(Debug)]
pub(super) struct Finished {
    cap: usize,
    seq: u64,
    map: HashMap<LateKey, u64>,
    order: VecDeque<(LateKey, u64)>,
}

impl Finished {
    pub(super) fn new(cap: usize) -> Finished {
        Finished {
            cap,
            seq: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn remember(&mut self, key: LateKey) {
        if self.cap == 0 {
            return;
        }
        self.seq += 1;
        self.map.insert(key, self.seq);
        self.order.push_back((key, self.seq));
        while self.order.len() > self.cap {
            if let Some((k, s)) = self.order.pop_front() {
                if self.map.get(&k) == Some(&s) {
                    self.map.remove(&k);
                }
            }
        }
    }

    fn contains(&self, key: &LateKey) -> bool {
        self.map.contains_key(key)
    }
}

/// How a held request ends.
pub(super) enum Outcome {
    /// Answered with this payload.
    Reply(ReplyKind, Vec<u8>),
    /// Its deadline passed.
    Expired,
    /// Its terminal went away.
    Disconnected,
    /// Its frames could not go out.
    SendFailed(ErrorReason),
    /// Released by the application, without an event.
    Cancelled,
}

impl Adapter {
    /// Sends request `call` (appending its 0x8900 frames to `out`) or queues it.
    ///
    /// # Errors
    /// [`SubmitError`]; nothing is appended or held then.
    pub fn submit(
        &mut self,
        call: &Call<'_>,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) -> Result<Submitted, SubmitError> {
        let r = self.try_submit(call, now_ms, out);
        match r {
            Ok(_) => self.stats.bump(AdapterCounter::submitted),
            Err(_) => self.stats.bump(AdapterCounter::refused),
        }
        r
    }

    fn try_submit(
        &mut self,
        call: &Call<'_>,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) -> Result<Submitted, SubmitError> {
        if self.tokens.contains_key(&call.token) {
            return Err(SubmitError::DuplicateToken(call.token));
        }
        if call.deadline_ms <= now_ms {
            return Err(SubmitError::DeadlinePassed {
                deadline_ms: call.deadline_ms,
                now_ms,
            });
        }
        if call.content.len() > self.config.max_content {
            return Err(SubmitError::ContentTooLong {
                len: call.content.len(),
                max: self.config.max_content,
            });
        }
        if self.requests.len() >= self.config.max_pending {
            return Err(SubmitError::TableFull {
                max: self.config.max_pending,
            });
        }
        let phone = call.phone;
        if self.terminal_conn(&phone).is_none() {
            return Err(SubmitError::NotConnected { phone });
        }
        let completion = call.completion.unwrap_or(self.config.default_completion);
        let key = (phone, call.content_type);

        if completion == Completion::Answer {
            if let Some(queue) = self.answer_queues.get(&key) {
                if self.config.busy_policy == BusyPolicy::Refuse {
                    return Err(SubmitError::Busy {
                        phone,
                        content_type: call.content_type,
                    });
                }
                if queue.waiting.len() >= self.config.max_queue_per_key {
                    return Err(SubmitError::QueueFull {
                        phone,
                        content_type: call.content_type,
                        max: self.config.max_queue_per_key,
                    });
                }
                if self.queued_bytes.saturating_add(call.content.len())
                    > self.config.max_queued_bytes
                {
                    return Err(SubmitError::QueuedBytes {
                        max: self.config.max_queued_bytes,
                    });
                }
                let position = queue.waiting.len();
                let id = self.insert(
                    call,
                    completion,
                    RequestState::Queued {
                        content: call.content.to_vec(),
                    },
                );
                self.queued_bytes += call.content.len();
                self.queued_now += 1;
                self.stats.bump(AdapterCounter::queued);
                if let Some(queue) = self.answer_queues.get_mut(&key) {
                    queue.waiting.push_back(id);
                }
                return Ok(Submitted::Queued { position });
            }
        }

        let (serial, packets) = self.send_frames(&phone, call.content_type, call.content, out)?;
        let id = self.insert(call, completion, RequestState::Sent { serial, packets });
        self.index_serials(&phone, serial, packets, id);
        if completion == Completion::Answer {
            self.answer_queues.insert(
                key,
                AnswerQueue {
                    outstanding: id,
                    waiting: VecDeque::new(),
                },
            );
        }
        Ok(Submitted::Sent { serial, packets })
    }

    fn insert(&mut self, call: &Call<'_>, completion: Completion, state: RequestState) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.requests.insert(
            id,
            HeldRequest {
                token: call.token,
                phone: call.phone,
                content_type: call.content_type,
                completion,
                deadline_ms: call.deadline_ms,
                state,
            },
        );
        self.tokens.insert(call.token, id);
        self.deadlines.insert((call.deadline_ms, id));
        if let Some(t) = self.terminals.get_mut(&call.phone) {
            t.requests.insert(id);
        }
        id
    }

    /// [`finish`](Self::finish)es request `id` with a reply of `kind`.
    fn reply(
        &mut self,
        id: u64,
        kind: ReplyKind,
        payload: Vec<u8>,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        self.finish(id, Outcome::Reply(kind, payload), now_ms, events);
    }

    /// Releases request `id`, makes its event, and lets the next queued request
    /// of its (terminal, type) go out when it was the outstanding one.
    pub(super) fn finish(
        &mut self,
        id: u64,
        outcome: Outcome,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let Some(entry) = self.requests.remove(&id) else {
            return;
        };
        self.tokens.remove(&entry.token);
        self.deadlines.remove(&(entry.deadline_ms, id));
        let phone = entry.phone;
        if let Some(t) = self.terminals.get_mut(&phone) {
            t.requests.remove(&id);
        }
        let key = (phone, entry.content_type);
        let mut held_queue = false;
        match entry.state {
            RequestState::Sent { serial, packets } => {
                for k in 0..packets {
                    let s = serial.wrapping_add(k);
                    if self.serials.get(&(phone, s)) == Some(&id) {
                        self.serials.remove(&(phone, s));
                    }
                    self.finished.remember(LateKey::Serial(phone, s));
                }
                held_queue = self
                    .answer_queues
                    .get(&key)
                    .is_some_and(|q| q.outstanding == id);
            }
            RequestState::Queued { content } => {
                self.queued_bytes = self.queued_bytes.saturating_sub(content.len());
                self.queued_now = self.queued_now.saturating_sub(1);
                if let Some(queue) = self.answer_queues.get_mut(&key) {
                    queue.waiting.retain(|&q| q != id);
                }
            }
        }
        let token = entry.token;
        // An outcome the application is answered for: its counter, the reply.
        let reply = match outcome {
            Outcome::Reply(kind, payload) => {
                let counter = match kind {
                    ReplyKind::Ack => AdapterCounter::acked,
                    ReplyKind::Answer => AdapterCounter::answered,
                    ReplyKind::Error => AdapterCounter::failed,
                };
                Some((counter, kind, payload))
            }
            Outcome::Disconnected => Some((
                AdapterCounter::disconnected,
                ReplyKind::Error,
                error_payload(ErrorReason::TerminalDisconnected),
            )),
            Outcome::SendFailed(reason) => Some((
                AdapterCounter::send_failures,
                ReplyKind::Error,
                error_payload(reason),
            )),
            Outcome::Expired => {
                self.stats.bump(AdapterCounter::expired);
                if entry.completion == Completion::Answer {
                    self.finished
                        .remember(LateKey::Type(phone, entry.content_type));
                }
                events.push(Event::Expired { token, phone });
                None
            }
            Outcome::Cancelled => {
                self.stats.bump(AdapterCounter::cancelled);
                None
            }
        };
        if let Some((counter, kind, payload)) = reply {
            self.stats.bump(AdapterCounter::replies);
            self.stats.bump(counter);
            events.push(Event::Reply {
                token,
                phone,
                kind,
                payload,
            });
        }
        if held_queue {
            self.advance_queue(key, now_ms, events);
        }
    }

    pub(super) fn on_ack(
        &mut self,
        phone: Phone,
        serial: u16,
        result: ResponseResult,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let Some(&id) = self.serials.get(&(phone, serial)) else {
            if self.finished.contains(&LateKey::Serial(phone, serial)) {
                self.stats.bump(AdapterCounter::late_acks);
            } else {
                self.stats.bump(AdapterCounter::unknown_acks);
            }
            return;
        };
        let Some(entry) = self.requests.get(&id) else {
            self.serials.remove(&(phone, serial));
            self.stats.bump(AdapterCounter::unknown_acks);
            return;
        };
        if entry.deadline_ms <= now_ms {
            self.stats.bump(AdapterCounter::late_acks);
            self.finish(id, Outcome::Expired, now_ms, events);
            return;
        }
        let RequestState::Sent {
            serial: first,
            packets,
        } = entry.state
        else {
            self.stats.bump(AdapterCounter::unknown_acks);
            return;
        };
        if result != ResponseResult::Ok {
            let payload = result_error_payload(result.code(), first);
            self.reply(id, ReplyKind::Error, payload, now_ms, events);
            return;
        }
        let last = first.wrapping_add(packets.saturating_sub(1));
        if serial != last {
            self.stats.bump(AdapterCounter::packet_acks);
            return;
        }
        match entry.completion {
            Completion::Ack => {
                self.reply(id, ReplyKind::Ack, ack_payload(first), now_ms, events);
            }
            Completion::Answer => self.stats.bump(AdapterCounter::delivered),
        }
    }

    pub(super) fn on_uplink(
        &mut self,
        phone: Phone,
        content_type: u8,
        content: &[u8],
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let key = (phone, content_type);
        if let Some(id) = self.answer_queues.get(&key).map(|q| q.outstanding) {
            match self.requests.get(&id).map(|e| e.deadline_ms > now_ms) {
                Some(true) => {
                    self.reply(id, ReplyKind::Answer, content.to_vec(), now_ms, events);
                    return;
                }
                Some(false) => self.finish(id, Outcome::Expired, now_ms, events),
                // A queue whose outstanding request is gone lets the next one go out.
                None => self.advance_queue(key, now_ms, events),
            }
        }
        let late = self.finished.contains(&LateKey::Type(phone, content_type));
        self.stats.bump(AdapterCounter::uplinks);
        if late {
            self.stats.bump(AdapterCounter::late_uplinks);
        }
        events.push(Event::Uplink {
            phone,
            content_type,
            content: content.to_vec(),
            late,
        });
    }

    /// Releases request `token` without any event (the RRPC request went away
    /// by other means). A queued request behind it may go out
    /// ([`Event::SendQueued`]). Returns whether the token was held.
    pub fn cancel(&mut self, token: u64, now_ms: u64, events: &mut Vec<Event>) -> bool {
        let Some(&id) = self.tokens.get(&token) else {
            return false;
        };
        self.finish(id, Outcome::Cancelled, now_ms, events);
        true
    }

    /// The frames of request `token` could not be written to the terminal: it is
    /// answered with `{"jt808":"error","reason":"send failed"}`. Returns whether
    /// the token was held.
    pub fn send_failed(&mut self, token: u64, now_ms: u64, events: &mut Vec<Event>) -> bool {
        let Some(&id) = self.tokens.get(&token) else {
            return false;
        };
        self.finish(
            id,
            Outcome::SendFailed(ErrorReason::SendFailed),
            now_ms,
            events,
        );
        true
    }

    /// Releases every request whose deadline is at or before `now_ms`
    /// ([`Event::Expired`]; queued requests behind an expired Answer request may
    /// go out), and drops stale partial 0x0900 messages. Returns the requests
    /// expired.
    pub fn expire(&mut self, now_ms: u64, events: &mut Vec<Event>) -> usize {
        let before = self.stats.get(AdapterCounter::expired);
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            self.deadlines.pop_first();
            self.finish(id, Outcome::Expired, now_ms, events);
        }
        self.reassembler.expire(now_ms);
        (self.stats.get(AdapterCounter::expired) - before) as usize
    }
}
