//! Admission: from a parsed request topic to an accepted request, or the reason
//! it is dropped.
//!
//! Two paths lead there. The fast one, [`Router::accept_candidate`], takes a
//! request that is plainly new for the candidate device found from the raw
//! topic before it was checked ([`Router::start_device_lookup`]) and reads that
//! device's record last; anything else falls to the full path,
//! [`Router::accept`], which finds the device, tells duplicates and own replies
//! apart and makes room. Both end in the one admission step, [`Router::admit`]:
//! the timeout, the deadline, the token, the table entries and the counters are
//! decided there and nowhere else.

use std::borrow::Cow;

use super::devices::DeviceKey;
use super::pending::{MsgState, Outcome, ReplyParts};
use super::types::{Accepted, DeviceRef, Dropped, RouterCounter};
use super::Router;
use crate::dialect::envelope::{self, EnvelopeError};
use crate::dialect::{self, Dialect, Envelope, ParsedTopic, TopicError};

impl Router {
    /// With many devices, the record of a request's device is the read most
    /// likely to miss the caches. So it is started early: from the topic's raw
    /// bytes, the device names ([`Dialect::device_names_hint`]) give a
    /// candidate slot ([`Registry::candidate`](super::devices::Registry::candidate)),
    /// whose record the CPU starts loading while the topic is checked and
    /// parsed; [`Router::accept`] confirms the candidate.
    #[inline]
    pub(super) fn start_device_lookup(&self, topic: &[u8]) -> Option<u32> {
        self.registry.candidate(Dialect::device_names_hint(topic)?)
    }

    /// Accepts the request `parsed` from `topic` for the device it names, or
    /// says why not. `candidate` is the slot [`Router::start_device_lookup`]
    /// gave.
    pub(super) fn accept<'a>(
        &mut self,
        topic: &'a str,
        parsed: ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
        candidate: Option<u32>,
    ) -> Result<Accepted<'a>, Dropped> {
        let envelope = parsed.dialect.envelope();
        if envelope != Envelope::None {
            return self.accept_envelope(topic, parsed, payload, now_ms);
        }
        let names = joined_names(topic, &parsed);
        let key = request_key(&parsed, &names);
        if let (Some(k), Some(c)) = (&key, candidate) {
            if let Some(a) = self.accept_candidate(k, c, &parsed, payload, now_ms) {
                return Ok(a);
            }
        }
        let found = key.and_then(|k| match candidate {
            Some(c) if self.registry.holds(c, &k) => Some((c, k)),
            _ => self.registry.lookup(&k).map(|i| (i, k)),
        });
        let Some((index, key)) = found else {
            // Tell a broken topic from a stranger's request.
            if let Err(TopicError::Malformed(why)) = parsed.validate() {
                return Err(self.dropped(Dropped::Malformed(why)));
            }
            return Err(self.dropped(Dropped::UnknownDevice));
        };
        // The rest of the topic equals a validated registration; the id is new.
        if let Err(TopicError::Malformed(why)) = parsed.validate_message_id() {
            return Err(self.dropped(Dropped::Malformed(why)));
        }
        self.requests.trim_history(now_ms);
        let slot = self.registry.record(index).expect("indexed slot is live");
        if slot.dialect != parsed.dialect {
            return Err(self.dropped(Dropped::UnknownDevice));
        }
        match self
            .requests
            .seen(index, parsed.message_id, slot.generation)
        {
            // A reply being published may come back before its publish returns.
            Some(MsgState::Done(Outcome::Replied) | MsgState::Sending)
                if parsed.dialect.replies_on_request_topic() =>
            {
                return Err(self.dropped(Dropped::OwnReply));
            }
            Some(_) => return Err(self.dropped(Dropped::Duplicate)),
            None => {}
        }
        if payload.len() > self.cfg.max_payload {
            return Err(self.dropped(Dropped::TooLarge));
        }
        if self.requests.len() >= self.cfg.max_pending {
            self.expire(now_ms);
            if self.requests.len() >= self.cfg.max_pending {
                return Err(self.dropped(Dropped::TableFull));
            }
        }
        // Refused only when the next token is still remembered, which takes 2^64
        // requests within the history window: no room, as for a full table.
        self.admit(index, &key, &parsed, payload, now_ms, parts_of(&parsed))
            .ok_or_else(|| self.dropped(Dropped::TableFull))
    }

    /// [`Router::accept`] for a dialect whose id and name (and, for a gateway,
    /// the device) travel in a JSON envelope around the body: the body is
    /// decoded first (a broken one is malformed, the device's own reply on a
    /// topic that carries both directions an own reply), the device found by
    /// the topic's names or the envelope's device, and the request admitted
    /// with the envelope's `params` as its payload.
    #[cold]
    fn accept_envelope<'a>(
        &mut self,
        topic: &'a str,
        mut parsed: ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        if payload.len() > self.cfg.max_payload {
            return Err(self.dropped(Dropped::TooLarge));
        }
        let e = match envelope::decode_request(parsed.dialect.envelope(), payload) {
            Ok(e) => e,
            Err(EnvelopeError::Reply) => return Err(self.dropped(Dropped::OwnReply)),
            Err(EnvelopeError::Malformed(why)) => return Err(self.dropped(Dropped::Malformed(why))),
        };
        parsed.message_id = e.id;
        parsed.name = Some(e.name);
        let names = match e.device {
            Some(device) => Some(device),
            None => {
                if let Err(TopicError::Malformed(why)) = parsed.validate_names() {
                    return Err(self.dropped(Dropped::Malformed(why)));
                }
                joined_names(topic, &parsed)
            }
        };
        let Some(key) = request_key(&parsed, &names) else {
            return Err(self.dropped(Dropped::UnknownDevice));
        };
        let Some(index) = self.registry.lookup(&key) else {
            return Err(self.dropped(Dropped::UnknownDevice));
        };
        self.requests.trim_history(now_ms);
        let slot = self.registry.record(index).expect("indexed slot is live");
        if slot.dialect != parsed.dialect {
            return Err(self.dropped(Dropped::UnknownDevice));
        }
        if self
            .requests
            .seen(index, parsed.message_id, slot.generation)
            .is_some()
        {
            return Err(self.dropped(Dropped::Duplicate));
        }
        if self.requests.len() >= self.cfg.max_pending {
            self.expire(now_ms);
            if self.requests.len() >= self.cfg.max_pending {
                return Err(self.dropped(Dropped::TableFull));
            }
        }
        let mut a = self
            .admit(index, &key, &parsed, e.params, now_ms, parts_of(&parsed))
            .ok_or_else(|| self.dropped(Dropped::TableFull))?;
        // The whole id: an envelope's id carries no ContentType.
        (a.message_id, a.content_type) = (e.id, None);
        Ok(a)
    }

    /// [`Router::accept`] for a request whose candidate device is slot
    /// `candidate`, in an order that reads the slot's record last: everything
    /// that does not need it (checks, the message id's copy, finding where the
    /// request's table entries go) runs while the record's line, requested by
    /// [`Router::start_device_lookup`], is on its way. `None`, with nothing
    /// changed, when the candidate is not the device `key` names or the request
    /// is not plainly new (the full path then decides).
    #[inline]
    fn accept_candidate<'a>(
        &mut self,
        key: &DeviceKey<'_>,
        candidate: u32,
        parsed: &ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
    ) -> Option<Accepted<'a>> {
        if parsed.validate_message_id().is_err()
            || payload.len() > self.cfg.max_payload
            || self.requests.len() >= self.cfg.max_pending
        {
            return None;
        }
        self.requests.trim_history(now_ms);
        self.admit(candidate, key, parsed, payload, now_ms, parts_of(parsed))
    }

    /// The admission step both paths end in, once the request passed their
    /// checks: its timeout and deadline, a token, its entries in the request
    /// tables, and the counters. The device record of `slot` is read last, to
    /// confirm that it is the device `key` names in the request's dialect (see
    /// [`Router::accept_candidate`]). `None`, with nothing changed, when it is not,
    /// when the device has seen this message id already, or when the next token
    /// is still remembered (see [`Requests::admit`](super::pending::Requests::admit)).
    ///
    /// Not inlined: one copy serves both paths. Inlined into each, the hash
    /// table code inside it was outlined instead, at some 40 more instructions
    /// per request (callgrind, `cargo bench --bench router`).
    /// `parts` are what the reply repeats of the request ([`parts_of`]).
    #[inline(never)]
    pub(super) fn admit<'a>(
        &mut self,
        slot: u32,
        key: &DeviceKey<'_>,
        parsed: &ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
        parts: Option<Box<ReplyParts>>,
    ) -> Option<Accepted<'a>> {
        let timeout_ms = self.cfg.timeout_ms(parsed.dialect);
        let deadline_ms = now_ms.saturating_add(u64::from(timeout_ms));
        let registry = &self.registry;
        let (token, generation) = self.requests.admit(
            slot,
            parsed.message_id,
            timeout_ms,
            deadline_ms,
            parts,
            || {
                // Now the record.
                let record = registry.record(slot)?;
                (record.is(key) && record.dialect == parsed.dialect).then_some(record.generation)
            },
        )?;
        self.stats.bump(RouterCounter::requests);
        let (message_id, content_type) = dialect::split_content_type(parsed.message_id);
        Some(Accepted {
            token,
            device: DeviceRef { slot, generation },
            message_id,
            content_type,
            name: parsed.name,
            payload,
            deadline_ms,
        })
    }
}

/// The parts of `parsed` its reply topic repeats besides the message id, if
/// any (nothing to build for most requests).
#[inline(always)]
fn parts_of(parsed: &ParsedTopic<'_>) -> Option<Box<ReplyParts>> {
    (parsed.name.is_some() || parsed.format.is_some())
        .then(|| reply_parts(parsed))
        .flatten()
}

/// The parts of `parsed` its reply topic repeats besides the message id, if any.
#[cold]
fn reply_parts(parsed: &ParsedTopic<'_>) -> Option<Box<ReplyParts>> {
    let s = parsed.dialect;
    let name = parsed.name.filter(|_| s.reply_repeats_name());
    let format = parsed.format.filter(|_| s.reply_repeats_format());
    (name.is_some() || format.is_some()).then(|| {
        Box::new(ReplyParts {
            name: name.map(Into::into),
            format: format.map(Into::into),
            ..ReplyParts::default()
        })
    })
}

/// The key of the device request `parsed` names; `names` are its
/// [`joined_names`].
fn request_key<'k>(
    parsed: &ParsedTopic<'k>,
    names: &'k Option<Cow<'k, str>>,
) -> Option<DeviceKey<'k>> {
    match (parsed.custom_topic, names) {
        (Some(t), _) => Some(DeviceKey::Topic(t)),
        (None, Some(n)) => Some(DeviceKey::Name(parsed.dialect, n)),
        (None, None) => None,
    }
}

/// `{pk}/{dn}` of a request topic that is not a custom topic and names both:
/// borrowed from the topic when the two levels are adjacent there (every system
/// and Tencent topic), else built.
fn joined_names<'t>(topic: &'t str, parsed: &ParsedTopic<'t>) -> Option<Cow<'t, str>> {
    let (pk, dn) = match (parsed.custom_topic, parsed.product_key, parsed.device_name) {
        (Some(_), _, _) => return None,
        (None, Some(pk), Some(dn)) => (pk, dn),
        // Topics that carry one of the names, or none (one device per connection).
        (None, Some(one), None) | (None, None, Some(one)) => return Some(Cow::Borrowed(one)),
        (None, None, None) => return Some(Cow::Borrowed("")),
    };
    let base = topic.as_ptr() as usize;
    let start = (pk.as_ptr() as usize).wrapping_sub(base);
    let end = (dn.as_ptr() as usize)
        .wrapping_sub(base)
        .wrapping_add(dn.len());
    match topic.get(start..end) {
        Some(s) if s.len() == pk.len() + 1 + dn.len() && s.as_bytes()[pk.len()] == b'/' => {
            Some(Cow::Borrowed(s))
        }
        _ => Some(Cow::Owned(format!("{pk}/{dn}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dev, router, router_with, send_ok, PK};
    use super::super::*;
    use super::{joined_names, request_key};

    /// Request 99 of `dev1` on its custom topic, as [`custom_router`] serves it.
    const CUSTOM_REQUEST: &str = "/ext/rrpc/99/a1GFjLP3xxC/dev1/user/update";

    /// A router serving `dev1` on the custom topic `/a1GFjLP3xxC/dev1/user/update`,
    /// and that device.
    fn custom_router() -> (Router, Arc<Device>) {
        let mut r = Router::new(RouterConfig::default());
        let id = Identity {
            product_key: PK,
            device_name: "dev1",
            custom_topic: Some("/a1GFjLP3xxC/dev1/user/update"),
        };
        let d = r.add_device(Dialect::AlibabaCustom, &id).unwrap();
        (r, d)
    }

    #[test]
    fn duplicate_delivery_is_handed_over_once() {
        let mut r = router();
        let topic = "/sys/a1GFjLP3xxC/dev1/rrpc/request/7";
        let t = r.handle_message(topic, b"x", 0).unwrap().token;
        assert_eq!(
            r.handle_message(topic, b"x", 5).unwrap_err(),
            Dropped::Duplicate
        );
        r.reply(t, b"y", 6, |_, _| Ok::<(), ()>(())).unwrap();
        // Still a duplicate after the reply, within the history window.
        assert_eq!(
            r.handle_message(topic, b"x", 7).unwrap_err(),
            Dropped::Duplicate
        );
        assert_eq!(r.stats().duplicates, 2);
        // The same id for another device is a different request.
        r.add_device(Dialect::AlibabaSystem, &dev("dev2")).unwrap();
        assert!(r
            .handle_message("/sys/a1GFjLP3xxC/dev2/rrpc/request/7", b"x", 8)
            .is_ok());
    }

    #[test]
    fn custom_topic_reply_echo_is_not_a_new_request() {
        let (mut r, d) = custom_router();
        assert_eq!(d.filter(), "/ext/rrpc/+/a1GFjLP3xxC/dev1/user/update");
        let topic = CUSTOM_REQUEST;
        let a = r.handle_message(topic, b"req", 0).unwrap();
        assert_eq!(r.request_device(a.device).unwrap().identity.product_key, PK);
        let t = a.token;
        let mut sent = Vec::new();
        r.reply(t, b"resp", 1, send_ok(&mut sent)).unwrap();
        assert_eq!(
            sent[0].0, topic,
            "custom replies go out on the request topic"
        );
        // The broker delivers our reply back to our own subscription.
        assert_eq!(
            r.handle_message(topic, b"resp", 2).unwrap_err(),
            Dropped::OwnReply
        );
        assert_eq!(
            r.handle_message(topic, b"resp", 3).unwrap_err(),
            Dropped::OwnReply
        );
        assert_eq!(r.stats().own_replies, 2);
        assert_eq!(r.stats().requests, 1);
    }

    #[test]
    fn custom_topic_reply_echo_during_its_publish_is_an_own_reply() {
        let (mut r, _) = custom_router();
        let topic = CUSTOM_REQUEST;
        let t = r.handle_message(topic, b"req", 0).unwrap().token;
        // Published without the router held: the echo may come back before
        // the publish returns.
        assert_eq!(r.begin_reply(t, 4, 1).unwrap(), topic);
        assert_eq!(
            r.handle_message(topic, b"resp", 2).unwrap_err(),
            Dropped::OwnReply
        );
        r.end_reply(t, true, 3);
        assert_eq!(
            r.handle_message(topic, b"resp", 4).unwrap_err(),
            Dropped::OwnReply
        );
        assert_eq!((r.stats().own_replies, r.stats().duplicates), (2, 0));
        // A publish that failed leaves a plain pending request: a second
        // delivery of it is a duplicate.
        let topic = "/ext/rrpc/100/a1GFjLP3xxC/dev1/user/update";
        let t = r.handle_message(topic, b"req", 5).unwrap().token;
        r.begin_reply(t, 4, 6).unwrap();
        r.end_reply(t, false, 7);
        assert_eq!(
            r.handle_message(topic, b"req", 8).unwrap_err(),
            Dropped::Duplicate
        );
    }

    #[test]
    fn tencent_default_deadline_is_four_seconds() {
        let mut r = Router::new(RouterConfig::default());
        r.add_device(Dialect::Tencent, &dev("test01")).unwrap();
        let a = r
            .handle_message("$rrpc/rxd/a1GFjLP3xxC/test01/41440", b"", 10)
            .unwrap();
        assert_eq!(a.deadline_ms, 4010);
    }

    #[test]
    fn table_is_bounded_and_frees_expired_entries() {
        let mut r = router_with(RouterConfig {
            max_pending: 2,
            request_timeout_ms: 10,
            ..RouterConfig::default()
        });
        let topic = |i: u32| format!("/sys/a1GFjLP3xxC/dev1/rrpc/request/{i}");
        r.handle_message(&topic(1), b"", 0).unwrap();
        r.handle_message(&topic(2), b"", 0).unwrap();
        assert_eq!(
            r.handle_message(&topic(3), b"", 5).unwrap_err(),
            Dropped::TableFull
        );
        assert_eq!(r.stats().table_full, 1);
        // Once the first two are past their deadline, room is made on demand.
        assert!(r.handle_message(&topic(4), b"", 11).is_ok());
        assert_eq!(r.pending_len(), 1);
    }

    #[test]
    fn a_candidate_found_from_the_raw_topic_is_confirmed() {
        // The same names in two dialects hash alike: the candidate found from a
        // topic's names can be the other dialect's device.
        for tencent_first in [true, false] {
            let mut r = Router::new(RouterConfig::default());
            let order = if tencent_first {
                [Dialect::Tencent, Dialect::AlibabaSystem]
            } else {
                [Dialect::AlibabaSystem, Dialect::Tencent]
            };
            for d in order {
                r.add_device(d, &dev("dev1")).unwrap();
            }
            for (d, topic) in [
                (
                    Dialect::AlibabaSystem,
                    format!("/sys/{PK}/dev1/rrpc/request/7"),
                ),
                (Dialect::Tencent, format!("$rrpc/rxd/{PK}/dev1/7")),
            ] {
                let a = r.handle_message_bytes(topic.as_bytes(), b"", 0).unwrap();
                assert_eq!(r.request_device(a.device).unwrap().dialect, d, "{topic}");
            }
        }
    }

    #[test]
    fn topics_without_a_candidate_are_classified_as_by_the_full_path() {
        let setup = || {
            let mut r = router();
            r.add_device(Dialect::Tencent, &dev("dev1")).unwrap();
            r.remove_device(Dialect::Tencent, &dev("dev1"), 0).unwrap();
            r
        };
        let (mut hinted, mut plain) = (setup(), setup());
        let topics: [&[u8]; 12] = [
            b"/sys/",
            b"/sys/a1GFjLP3xxC",
            b"/sys/a1GFjLP3xxC/dev1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/request",
            b"/sys//dev1/rrpc/request/1",
            b"/sys/a1GFjLP3xxC//rrpc/request/1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/request/",
            b"/sys/a1GFjLP3xxC/dev2/rrpc/request/1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/response/1",
            // Removed: the table no longer names it.
            b"$rrpc/rxd/a1GFjLP3xxC/dev1/1",
            b"$rrpc/rxd/",
            b"/ext/rrpc/1/a1GFjLP3xxC/dev1",
        ];
        for topic in topics {
            let t = std::str::from_utf8(topic).unwrap();
            let got = hinted.handle_message_bytes(topic, b"", 0).map(|a| a.token);
            let want = plain.handle(t, b"", 0, None).map(|a| a.token);
            assert!(got.is_err(), "{t}: {got:?}");
            assert_eq!(got, want, "{t}");
        }
        assert_eq!(hinted.stats(), plain.stats());
        let bad = b"/sys/a1GFjLP3xxC/\xffdev1/rrpc/request/1";
        assert_eq!(
            hinted.handle_message_bytes(bad, b"", 0).unwrap_err(),
            Dropped::Malformed("the topic is not valid UTF-8")
        );
        // The device still answers.
        let t = format!("/sys/{PK}/dev1/rrpc/request/9");
        assert!(hinted.handle_message(&t, b"", 0).is_ok());
    }

    /// A router for the comparisons of the two paths: small tables; an Alibaba
    /// and a Tencent device of the same names, a custom-topic device and a
    /// Tencent device of its own names; tokens from a fixed start.
    fn twin() -> Router {
        let mut r = router_with(RouterConfig {
            max_pending: 4,
            max_payload: 8,
            history_ms: 1000,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::Tencent, &dev("dev1")).unwrap();
        let custom = Identity {
            custom_topic: Some("/a1GFjLP3xxC/dev2/user/rrpc"),
            ..dev("dev2")
        };
        r.add_device(Dialect::AlibabaCustom, &custom).unwrap();
        r.add_device(Dialect::Tencent, &dev("dev3")).unwrap();
        r.requests.restart_tokens(1000);
        r
    }

    /// The fast path alone, for a topic whose device the raw topic names.
    fn fast<'a>(
        r: &mut Router,
        topic: &'a str,
        payload: &'a [u8],
        now: u64,
    ) -> Option<Accepted<'a>> {
        let c = r.start_device_lookup(topic.as_bytes())?;
        fast_with(r, c, topic, payload, now)
    }

    /// The fast path alone, with `candidate` as the candidate slot.
    fn fast_with<'a>(
        r: &mut Router,
        candidate: u32,
        topic: &'a str,
        payload: &'a [u8],
        now: u64,
    ) -> Option<Accepted<'a>> {
        let parsed = dialect::parse_request_unchecked(topic).unwrap();
        let names = joined_names(topic, &parsed);
        let key = request_key(&parsed, &names).unwrap();
        r.accept_candidate(&key, candidate, &parsed, payload, now)
    }

    /// The full path alone, as when no candidate was found.
    fn full<'a>(
        r: &mut Router,
        topic: &'a str,
        payload: &'a [u8],
        now: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let parsed = dialect::parse_request_unchecked(topic).unwrap();
        r.accept(topic, parsed, payload, now, None)
    }

    #[test]
    fn the_fast_path_admits_a_new_request_as_the_full_path_does() {
        let (mut a, mut b) = (twin(), twin());
        // With their devices' slots (twin's registration order).
        let topics = [
            (0, format!("/sys/{PK}/dev1/rrpc/request/1")),
            (3, format!("$rrpc/rxd/{PK}/dev3/1")),
            (0, format!("/sys/{PK}/dev1/rrpc/request/2;ct=65")),
        ];
        for (i, (slot, topic)) in topics.iter().enumerate() {
            let now = 10 * i as u64;
            let got =
                fast_with(&mut a, *slot, topic, b"x", now).unwrap_or_else(|| panic!("{topic}"));
            assert_eq!(Ok(got), full(&mut b, topic, b"x", now), "{topic}");
        }
        assert_eq!(a.stats(), b.stats());
        assert_eq!(a.next_deadline(), b.next_deadline());
        assert_eq!(a.requests.snapshot(), b.requests.snapshot());
        // Answered, expired and forgotten alike.
        let mut sent = Vec::new();
        a.reply(1000, b"y", 50, send_ok(&mut sent)).unwrap();
        b.reply(1000, b"y", 50, send_ok(&mut sent)).unwrap();
        assert_eq!(sent[0], sent[1]);
        assert_eq!(a.expire(10_000), b.expire(10_000));
        assert_eq!(a.requests.snapshot(), b.requests.snapshot());
    }

    #[test]
    fn the_fast_path_declines_what_is_not_plainly_new_and_changes_nothing() {
        let mut r = twin();
        r.handle_message(&format!("/sys/{PK}/dev1/rrpc/request/seen"), b"", 0)
            .unwrap();
        let declined = [
            // Seen already by this device.
            (format!("/sys/{PK}/dev1/rrpc/request/seen"), &b""[..]),
            // Too large.
            (
                format!("/sys/{PK}/dev1/rrpc/request/big"),
                &b"123456789"[..],
            ),
            // A message id the full path calls malformed.
            (format!("/sys/{PK}/dev1/rrpc/request/bad\u{1}id"), &b""[..]),
        ];
        for (topic, payload) in &declined {
            let before = (r.stats(), r.requests.snapshot());
            assert_eq!(fast(&mut r, topic, payload, 1), None, "{topic}");
            assert_eq!((r.stats(), r.requests.snapshot()), before, "{topic}");
        }
        // The Tencent device's names are those of the Alibaba device in slot 0,
        // so the candidate found from them may be that one.
        let before = (r.stats(), r.requests.snapshot());
        let topic = format!("$rrpc/rxd/{PK}/dev1/new");
        assert_eq!(fast_with(&mut r, 0, &topic, b"", 1), None);
        assert_eq!((r.stats(), r.requests.snapshot()), before);
        // A full table.
        for i in 0..3 {
            r.handle_message(&format!("$rrpc/rxd/{PK}/dev1/{i}"), b"", 0)
                .unwrap();
        }
        let before = (r.stats(), r.requests.snapshot());
        assert_eq!(
            fast(&mut r, &format!("/sys/{PK}/dev1/rrpc/request/new"), b"", 1),
            None
        );
        assert_eq!((r.stats(), r.requests.snapshot()), before);
    }

    #[test]
    fn both_paths_agree_on_every_outcome() {
        // One stream through the fast path where it applies (`handle_message`),
        // the same through the full path alone: the same results, counters,
        // deadlines and tables after every message.
        let (mut hinted, mut plain) = (twin(), twin());
        let sys = |id: &str| format!("/sys/{PK}/dev1/rrpc/request/{id}");
        let tencent = |id: &str| format!("$rrpc/rxd/{PK}/dev1/{id}");
        let custom = |id: &str| format!("/ext/rrpc/{id}/a1GFjLP3xxC/dev2/user/rrpc");
        enum Step {
            Msg(String, &'static [u8], u64),
            Reply(usize, u64),
            Remove(u64),
            Add,
        }
        use Step::*;
        let steps = [
            Msg(sys("1"), b"a", 0),
            Msg(sys("1"), b"a", 1),         // duplicate, pending
            Msg(sys("2"), b"123456789", 2), // too large
            Msg(sys("1"), b"123456789", 2), // a duplicate before too large
            Msg(tencent("1"), b"", 3),      // the same id for another device
            Msg(custom("7"), b"q", 4),
            Reply(5, 5),               // the custom request answered
            Msg(custom("7"), b"q", 6), // its reply echoed back
            Msg(sys("3;ct=65"), b"", 7),
            Msg(sys("4"), b"", 8),     // the fourth pending request
            Msg(sys("5"), b"", 9),     // table full
            Msg(tencent("1"), b"", 9), // a duplicate before table full
            Reply(0, 10),
            Msg(sys("5"), b"", 11),    // room again
            Msg(sys("6"), b"", 4_004), // full, until the Tencent request expires
            Remove(4_005),             // the Alibaba dev1: its requests cancelled
            Msg(sys("7"), b"", 4_006), // unknown device
            Add,                       // dev1 again, in the same slot
            Msg(sys("4"), b"", 4_007), // an id of the old registration is new
            Msg(sys("4"), b"", 4_008), // and then a duplicate
            Msg(sys("8"), b"", 20_000),
            Msg(sys("1"), b"", 20_001), // forgotten long ago
        ];
        let mut accepted = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Msg(topic, payload, now) => {
                    let got = hinted.handle_message(topic, payload, *now);
                    let want = plain.handle(topic, payload, *now, None);
                    assert_eq!(got, want, "step {i}: {topic}");
                    accepted.push(got.ok().map(|a| a.token));
                }
                Reply(n, now) => {
                    let token = accepted[*n].expect("an accepted request");
                    let mut sent = Vec::new();
                    hinted.reply(token, b"r", *now, send_ok(&mut sent)).unwrap();
                    plain.reply(token, b"r", *now, send_ok(&mut sent)).unwrap();
                    accepted.push(None);
                }
                Remove(now) => {
                    for r in [&mut hinted, &mut plain] {
                        r.remove_device(Dialect::AlibabaSystem, &dev("dev1"), *now)
                            .unwrap();
                    }
                    accepted.push(None);
                }
                Add => {
                    for r in [&mut hinted, &mut plain] {
                        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
                    }
                    accepted.push(None);
                }
            }
            assert_eq!(hinted.stats(), plain.stats(), "step {i}");
            assert_eq!(hinted.next_deadline(), plain.next_deadline(), "step {i}");
            assert_eq!(
                hinted.requests.snapshot(),
                plain.requests.snapshot(),
                "step {i}"
            );
        }
        let s = hinted.stats();
        assert_eq!(
            (
                s.requests,
                s.duplicates,
                s.too_large,
                s.table_full,
                s.own_replies
            ),
            (10, 4, 1, 1, 1)
        );
        assert_eq!((s.unknown_device, s.expired), (1, 1));
    }
}
