//! The pass-through correlator: RRPC requests out as 0x8900, terminal answers
//! (0x0001, 0x0900) back as replies, with every bad input the adapter must
//! survive: broken frames, unknown ids, non-BCD phones, unmatched answers,
//! disconnects with calls pending, serial wrap, busy pairs, sub-packages both
//! ways, and a thousand terminals at once. The same from C: tests/c/jt808_harness.c
//! (also the callbacks released while they run on another thread) is compiled as
//! C99 with every warning an error against the CMake-built librrpc.so, run, and
//! run again under valgrind.

use rrpc::jt808::adapter::{ack_payload, error_payload, result_error_payload};
use rrpc::jt808::{
    decode_frame, encode_frame, split_passthrough, Adapter, AdapterConfig, Body, BusyPolicy, Call,
    Completion, ConnectionError, ErrorReason, Event, Frame, Handled, Header, Package, Phone,
    ReplyKind, StreamDecoder, SubmitError, Submitted, Version, MAX_FRAME_LEN,
};

use crate::common::jt808::{hex, reference_frame, XorShift};

// ---------------------------------------------------------- building frames

fn p13(d: &str) -> Phone {
    Phone::from_digits(d, Version::V2013).unwrap()
}

fn adapter() -> Adapter {
    Adapter::new(AdapterConfig::default()).unwrap()
}

fn adapter_with(f: impl FnOnce(&mut AdapterConfig)) -> Adapter {
    let mut c = AdapterConfig::default();
    f(&mut c);
    Adapter::new(c).unwrap()
}

/// Every frame in `wire` (frames back to back), decoded.
fn frames(wire: &[u8]) -> Vec<Frame> {
    let mut d = StreamDecoder::default();
    d.push(wire);
    let mut v = Vec::new();
    while let Some(f) = d.next_frame() {
        v.push(f.expect("the adapter encodes valid frames"));
    }
    v
}

/// The connection the tests' terminals authenticated on.
const CONN: u64 = 1;

/// Binds the terminal to [`CONN`], as a gateway does once it checked the
/// terminal's authentication code.
fn bind(a: &mut Adapter, phone: Phone) {
    a.terminal_authenticated(&phone, CONN).unwrap();
}

/// Submits (binding the terminal to [`CONN`] first if it is not bound) and
/// returns the single frame sent.
fn send(a: &mut Adapter, call: Call<'_>, now: u64) -> Frame {
    if a.terminal_conn(&call.phone).is_none() {
        bind(a, call.phone);
    }
    let mut out = Vec::new();
    let r = a.submit(&call, now, &mut out).expect("submit");
    assert!(matches!(r, Submitted::Sent { packets: 1, .. }), "{r:?}");
    let mut f = frames(&out);
    assert_eq!(f.len(), 1);
    f.remove(0)
}

/// A terminal's 0x0001 answering `reply_serial` of a 0x8900, on the wire.
fn ack_wire(phone: Phone, reply_serial: u16, result: u8) -> Vec<u8> {
    let mut body = reply_serial.to_be_bytes().to_vec();
    body.extend_from_slice(&0x8900u16.to_be_bytes());
    body.push(result);
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0001, phone, 100), &body, &mut w).unwrap();
    w
}

fn ack(phone: Phone, reply_serial: u16, result: u8) -> Frame {
    decode_frame(&ack_wire(phone, reply_serial, result)).unwrap()
}

/// A terminal's 0x0900, on the wire.
fn uplink_wire(phone: Phone, content_type: u8, content: &[u8]) -> Vec<u8> {
    let mut body = vec![content_type];
    body.extend_from_slice(content);
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0900, phone, 200), &body, &mut w).unwrap();
    w
}

fn uplink(phone: Phone, content_type: u8, content: &[u8]) -> Frame {
    decode_frame(&uplink_wire(phone, content_type, content)).unwrap()
}

/// A frame arriving on [`CONN`].
fn on(a: &mut Adapter, f: &Frame, now: u64) -> Vec<Event> {
    let mut ev = Vec::new();
    a.on_frame(CONN, f, now, &mut ev);
    ev
}

fn bytes(a: &mut Adapter, conn: u64, wire: &[u8], now: u64) -> Vec<Event> {
    let mut ev = Vec::new();
    a.on_bytes(conn, wire, now, &mut ev).unwrap();
    ev
}

fn reply(token: u64, phone: Phone, kind: ReplyKind, payload: &[u8]) -> Event {
    Event::Reply {
        token,
        phone,
        kind,
        payload: payload.to_vec(),
    }
}

// ------------------------------------------------------------ payloads

fn payload_formats_are_fixed() {
    assert_eq!(
        ack_payload(0),
        br#"{"jt808":"ack","result":0,"serial":0}"#.to_vec()
    );
    assert_eq!(
        result_error_payload(1, 12),
        br#"{"jt808":"error","reason":"failure","result":1,"serial":12}"#.to_vec()
    );
    assert_eq!(
        result_error_payload(2, 12),
        br#"{"jt808":"error","reason":"message error","result":2,"serial":12}"#.to_vec()
    );
    assert_eq!(
        result_error_payload(3, 65535),
        br#"{"jt808":"error","reason":"not supported","result":3,"serial":65535}"#.to_vec()
    );
    assert_eq!(
        result_error_payload(9, 1),
        br#"{"jt808":"error","reason":"unknown result","result":9,"serial":1}"#.to_vec()
    );
    assert_eq!(
        error_payload(ErrorReason::TerminalDisconnected),
        br#"{"jt808":"error","reason":"terminal disconnected"}"#.to_vec()
    );
    assert_eq!(
        error_payload(ErrorReason::Busy),
        br#"{"jt808":"error","reason":"busy"}"#.to_vec()
    );
    assert_eq!(
        error_payload(ErrorReason::SendFailed),
        br#"{"jt808":"error","reason":"send failed"}"#.to_vec()
    );
}

// ------------------------------------------------------- the two policies

fn ack_completion_replies_with_the_general_response() {
    let mut a = adapter();
    let t = p13("13800138000");
    let f = send(&mut a, Call::new(1, t, 0x41, b"\x01\x02", 5_000), 1_000);
    assert_eq!(f.header.msg_id, 0x8900);
    assert_eq!(f.header.serial, 0);
    assert_eq!(f.header.phone, t);
    assert_eq!(
        f.parse_body().unwrap(),
        Body::Passthrough {
            content_type: 0x41,
            content: b"\x01\x02"
        }
    );
    assert_eq!(a.pending_len(), 1);
    assert_eq!(a.next_deadline(), Some(5_000));
    assert_eq!(
        on(&mut a, &ack(t, 0, 0), 1_100),
        [reply(
            1,
            t,
            ReplyKind::Ack,
            br#"{"jt808":"ack","result":0,"serial":0}"#
        )]
    );
    assert!(a.is_empty());
    assert_eq!(a.next_deadline(), None);

    // Every failing result answers at once, with the result and serial.
    for (i, (result, reason)) in [
        (1u8, "failure"),
        (2, "message error"),
        (3, "not supported"),
        (7, "unknown result"),
    ]
    .into_iter()
    .enumerate()
    {
        let token = 10 + i as u64;
        let f = send(&mut a, Call::new(token, t, 0xf0, b"x", 5_000), 1_000);
        let expected = format!(
            r#"{{"jt808":"error","reason":"{reason}","result":{result},"serial":{}}}"#,
            f.header.serial
        );
        assert_eq!(
            on(&mut a, &ack(t, f.header.serial, result), 1_100),
            [reply(token, t, ReplyKind::Error, expected.as_bytes())]
        );
    }
    let s = a.stats();
    assert_eq!((s.acked, s.failed, s.replies, s.pending), (1, 4, 5, 0));
}

fn answer_completion_takes_the_next_uplink_of_the_type() {
    let mut a = adapter();
    let t = p13("13800138000");
    let call = Call::new(5, t, 0x41, b"AT?", 9_000).with_completion(Completion::Answer);
    let f = send(&mut a, call, 1_000);
    // The ack only confirms delivery.
    assert!(on(&mut a, &ack(t, f.header.serial, 0), 1_100).is_empty());
    assert_eq!(a.stats().delivered, 1);
    // A 0x0900 of another type is not the answer.
    assert_eq!(
        on(&mut a, &uplink(t, 0x42, b"other"), 1_200),
        [Event::Uplink {
            phone: t,
            content_type: 0x42,
            content: b"other".to_vec(),
            late: false
        }]
    );
    // Nor is one of the right type from another terminal.
    let other = p13("13800138001");
    bind(&mut a, other);
    assert!(matches!(
        &on(&mut a, &uplink(other, 0x41, b"x"), 1_200)[..],
        [Event::Uplink { .. }]
    ));
    // The reply is the content, byte for byte (0x7e and 0x7d included).
    assert_eq!(
        on(&mut a, &uplink(t, 0x41, b"OK\x7e\x7d\x00"), 1_300),
        [reply(5, t, ReplyKind::Answer, b"OK\x7e\x7d\x00")]
    );
    assert!(a.is_empty());
    // An answer arriving before the ack is taken too; the late ack is counted.
    let call = Call::new(6, t, 0x41, b"AT?", 9_000).with_completion(Completion::Answer);
    let f = send(&mut a, call, 2_000);
    assert_eq!(
        on(&mut a, &uplink(t, 0x41, b"fast"), 2_001),
        [reply(6, t, ReplyKind::Answer, b"fast")]
    );
    assert!(on(&mut a, &ack(t, f.header.serial, 0), 2_002).is_empty());
    let s = a.stats();
    assert_eq!((s.answered, s.uplinks, s.late_acks), (2, 2, 1));
}

fn answer_failure_ack_answers_at_once() {
    let mut a = adapter();
    let t = p13("1");
    let call = Call::new(1, t, 0x42, b"", 9_000).with_completion(Completion::Answer);
    let f = send(&mut a, call, 0);
    assert_eq!(
        on(&mut a, &ack(t, f.header.serial, 3), 1),
        [reply(
            1,
            t,
            ReplyKind::Error,
            br#"{"jt808":"error","reason":"not supported","result":3,"serial":0}"#
        )]
    );
    // The pair is free again: the next uplink is unmatched.
    assert!(matches!(
        &on(&mut a, &uplink(t, 0x42, b"x"), 2)[..],
        [Event::Uplink { late: false, .. }]
    ));
}

fn default_completion_comes_from_the_config() {
    let mut a = adapter_with(|c| c.default_completion = Completion::Answer);
    let t = p13("1");
    let f = send(&mut a, Call::new(1, t, 0x41, b"q", 9_000), 0);
    assert!(on(&mut a, &ack(t, f.header.serial, 0), 1).is_empty());
    assert_eq!(
        on(&mut a, &uplink(t, 0x41, b"a"), 2),
        [reply(1, t, ReplyKind::Answer, b"a")]
    );
    // An explicit Ack overrides it.
    let f = send(
        &mut a,
        Call::new(2, t, 0x41, b"q", 9_000).with_completion(Completion::Ack),
        0,
    );
    assert_eq!(on(&mut a, &ack(t, f.header.serial, 0), 1).len(), 1);
}

// -------------------------------------------------------------- deadlines

fn expiry_releases_without_reply_and_late_frames_are_counted() {
    let mut a = adapter();
    let t = p13("13800138000");
    let f1 = send(&mut a, Call::new(1, t, 0x41, b"a", 2_000), 1_000);
    let call = Call::new(2, t, 0x0b, b"card", 3_000).with_completion(Completion::Answer);
    send(&mut a, call, 1_000);
    assert_eq!(a.next_deadline(), Some(2_000));
    let mut ev = Vec::new();
    assert_eq!(a.expire(1_999, &mut ev), 0);
    assert_eq!(a.expire(2_000, &mut ev), 1);
    assert_eq!(ev, [Event::Expired { token: 1, phone: t }]);
    assert_eq!(a.next_deadline(), Some(3_000));
    // A late ack for the expired request is counted, not answered.
    assert!(on(&mut a, &ack(t, f1.header.serial, 0), 2_100).is_empty());
    assert_eq!(a.stats().late_acks, 1);

    // The IC-card answer comes after the deadline, before any expire call: the
    // request expires and the answer goes out as a late uplink.
    assert_eq!(
        on(&mut a, &uplink(t, 0x0b, b"auth"), 3_000),
        [
            Event::Expired { token: 2, phone: t },
            Event::Uplink {
                phone: t,
                content_type: 0x0b,
                content: b"auth".to_vec(),
                late: true
            }
        ]
    );
    let s = a.stats();
    assert_eq!((s.expired, s.uplinks, s.late_uplinks), (2, 1, 1));
    assert!(a.is_empty());

    // Ack past the deadline, before expire: expired, never answered late.
    let f = send(&mut a, Call::new(3, t, 0x41, b"a", 4_000), 3_500);
    assert_eq!(
        on(&mut a, &ack(t, f.header.serial, 0), 4_000),
        [Event::Expired { token: 3, phone: t }]
    );
}

fn an_ic_card_answer_after_an_ack_call_is_an_uplink() {
    let mut a = adapter();
    let t = p13("13800138000");
    let f = send(&mut a, Call::new(1, t, 0x0b, b"\x01", 8_000), 0);
    assert_eq!(on(&mut a, &ack(t, f.header.serial, 0), 50).len(), 1);
    // 30 s later the terminal's IC-card answer arrives: forwarded, not a reply.
    assert_eq!(
        on(&mut a, &uplink(t, 0x0b, b"card data"), 30_000),
        [Event::Uplink {
            phone: t,
            content_type: 0x0b,
            content: b"card data".to_vec(),
            late: false
        }]
    );
}

// ------------------------------------------------------- submit refusals

fn submit_refuses_clearly_and_holds_nothing() {
    let mut a = adapter_with(|c| {
        c.max_pending = 2;
        c.max_content = 10;
        c.max_terminals = 2;
    });
    let t = p13("1");
    bind(&mut a, t);
    bind(&mut a, p13("2"));
    let mut out = Vec::new();
    a.submit(&Call::new(1, t, 0, b"", 10), 0, &mut out).unwrap();
    out.clear();
    let e = a.submit(&Call::new(1, t, 0, b"", 10), 0, &mut out);
    assert_eq!(e, Err(SubmitError::DuplicateToken(1)));
    let e = a.submit(&Call::new(2, t, 0, b"", 10), 10, &mut out);
    assert_eq!(
        e,
        Err(SubmitError::DeadlinePassed {
            deadline_ms: 10,
            now_ms: 10
        })
    );
    let e = a.submit(&Call::new(2, t, 0, &[0; 11], 10), 0, &mut out);
    assert_eq!(e, Err(SubmitError::ContentTooLong { len: 11, max: 10 }));
    a.submit(&Call::new(2, p13("2"), 0, b"", 10), 0, &mut out)
        .unwrap();
    out.clear();
    let e = a.submit(&Call::new(3, t, 0, b"", 10), 0, &mut out);
    assert_eq!(e, Err(SubmitError::TableFull { max: 2 }));
    assert!(out.is_empty());
    a.cancel(1, 0, &mut Vec::new());
    // A terminal that has not authenticated gets nothing.
    let e = a.submit(&Call::new(3, p13("3"), 0, b"", 10), 0, &mut out);
    assert_eq!(e, Err(SubmitError::NotConnected { phone: p13("3") }));
    assert_eq!(e.as_ref().unwrap_err().reply_payload(), None);
    assert!(e.unwrap_err().to_string().contains("not bound"));
    assert!(out.is_empty());
    assert_eq!(a.stats().refused, 5);
    assert_eq!(a.len(), 1);
    // Binding a third terminal is refused by max_terminals, and changes nothing.
    let e = a.terminal_authenticated(&p13("3"), CONN).unwrap_err();
    assert_eq!(e, ConnectionError::TooManyTerminals { max: 2 });
    assert!(e.to_string().contains("max_terminals"));
    assert_eq!(a.terminal_conn(&p13("3")), None);
}

// ------------------------------------------------------ busy (terminal, type)

fn busy_pair_queues_then_sends_in_order() {
    let mut a = adapter_with(|c| c.max_queue_per_key = 2);
    let t = p13("13800138000");
    let answer = |tok, body: &'static [u8]| {
        Call::new(tok, t, 0x41, body, 10_000).with_completion(Completion::Answer)
    };
    let f1 = send(&mut a, answer(1, b"one"), 0);
    let mut out = Vec::new();
    assert_eq!(
        a.submit(&answer(2, b"two"), 0, &mut out),
        Ok(Submitted::Queued { position: 0 })
    );
    assert_eq!(
        a.submit(&answer(3, b"three"), 0, &mut out),
        Ok(Submitted::Queued { position: 1 })
    );
    let e = a.submit(&answer(4, b"four"), 0, &mut out).unwrap_err();
    assert!(matches!(e, SubmitError::QueueFull { max: 2, .. }), "{e}");
    assert_eq!(
        e.reply_payload(),
        Some(br#"{"jt808":"error","reason":"busy"}"#.to_vec())
    );
    assert!(out.is_empty(), "queued requests send nothing yet");
    // Other types, and Ack requests of the same type, are not held up.
    send(
        &mut a,
        Call::new(5, t, 0x42, b"", 10_000).with_completion(Completion::Answer),
        0,
    );
    send(&mut a, Call::new(6, t, 0x41, b"", 10_000), 0);
    assert_eq!((a.pending_len(), a.queued_len()), (3, 2));

    // The first answer releases the next request: its frames come out.
    let ev = on(&mut a, &uplink(t, 0x41, b"r1"), 10);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0], reply(1, t, ReplyKind::Answer, b"r1"));
    let Event::SendQueued {
        token: 2,
        phone,
        serial,
        frames: wire,
    } = &ev[1]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*phone, t);
    let f2 = decode_frame(wire).unwrap();
    assert_eq!(f2.header.serial, *serial);
    assert_ne!(f2.header.serial, f1.header.serial);
    assert_eq!(
        f2.parse_body().unwrap(),
        Body::Passthrough {
            content_type: 0x41,
            content: b"two"
        }
    );
    // A failure ack of the second answers it at once and releases the third.
    let ev = on(&mut a, &ack(t, f2.header.serial, 1), 20);
    assert_eq!(ev.len(), 2);
    assert!(matches!(
        &ev[0],
        Event::Reply {
            token: 2,
            kind: ReplyKind::Error,
            ..
        }
    ));
    assert!(matches!(&ev[1], Event::SendQueued { token: 3, .. }));
    assert_eq!(
        on(&mut a, &uplink(t, 0x41, b"r3"), 30),
        [reply(3, t, ReplyKind::Answer, b"r3")]
    );
    assert_eq!(a.queued_len(), 0);
    let s = a.stats();
    assert_eq!((s.queued, s.sent, s.refused), (2, 5, 1));
}

fn a_queued_request_expires_at_its_own_deadline() {
    let mut a = adapter();
    let t = p13("1");
    let answer =
        |tok, deadline| Call::new(tok, t, 0xf7, b"q", deadline).with_completion(Completion::Answer);
    send(&mut a, answer(1, 5_000), 0);
    let mut out = Vec::new();
    a.submit(&answer(2, 1_000), 0, &mut out).unwrap();
    a.submit(&answer(3, 6_000), 0, &mut out).unwrap();
    let mut ev = Vec::new();
    assert_eq!(a.expire(1_000, &mut ev), 1);
    assert_eq!(ev, [Event::Expired { token: 2, phone: t }]);
    // When the first expires, the third goes out.
    ev.clear();
    a.expire(5_000, &mut ev);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0], Event::Expired { token: 1, phone: t });
    assert!(matches!(ev[1], Event::SendQueued { token: 3, .. }));
    assert_eq!((a.pending_len(), a.queued_len()), (1, 0));
}

fn busy_pair_refused_with_refuse_policy() {
    let mut a = adapter_with(|c| c.busy_policy = BusyPolicy::Refuse);
    let t = p13("13800138000");
    let answer = |tok| Call::new(tok, t, 0x41, b"q", 10_000).with_completion(Completion::Answer);
    send(&mut a, answer(1), 0);
    let mut out = Vec::new();
    let e = a.submit(&answer(2), 0, &mut out).unwrap_err();
    assert_eq!(
        e,
        SubmitError::Busy {
            phone: t,
            content_type: 0x41
        }
    );
    assert_eq!(
        e.to_string(),
        "terminal 013800138000 already has an Answer request of type 0x41 outstanding (busy policy: refuse)"
    );
    assert_eq!(
        e.reply_payload(),
        Some(br#"{"jt808":"error","reason":"busy"}"#.to_vec())
    );
    assert!(out.is_empty());
    assert!(!a.contains(2));
    // Once answered, the pair takes a new request.
    on(&mut a, &uplink(t, 0x41, b"r"), 1);
    send(&mut a, answer(2), 2);
}

// ----------------------------------------------------------- serial numbers

fn serials_count_per_terminal() {
    let mut a = adapter();
    let (x, y) = (p13("1"), p13("2"));
    for i in 0..3u16 {
        assert_eq!(
            send(&mut a, Call::new(u64::from(i), x, 0, b"", 10), 0)
                .header
                .serial,
            i
        );
    }
    assert_eq!(
        send(&mut a, Call::new(9, y, 0, b"", 10), 0).header.serial,
        0
    );
    // The same serial on two terminals: the ack is matched by terminal too.
    assert_eq!(
        on(&mut a, &ack(y, 0, 0), 1),
        [reply(
            9,
            y,
            ReplyKind::Ack,
            br#"{"jt808":"ack","result":0,"serial":0}"#
        )]
    );
    assert!(a.contains(0));
}

fn serial_wraps_at_65535_and_skips_pending_serials() {
    let mut a = adapter();
    let t = p13("13800138000");
    // Serials 0 and 1 stay pending.
    assert_eq!(
        send(&mut a, Call::new(100, t, 0, b"", 99), 0).header.serial,
        0
    );
    assert_eq!(
        send(&mut a, Call::new(101, t, 0, b"", 99), 0).header.serial,
        1
    );
    a.set_next_serial(&t, 65534).unwrap();
    assert_eq!(
        send(&mut a, Call::new(1, t, 0, b"", 99), 0).header.serial,
        65534
    );
    assert_eq!(
        send(&mut a, Call::new(2, t, 0, b"", 99), 0).header.serial,
        65535
    );
    // Wraps to 0, skips the pending 0 and 1.
    assert_eq!(
        send(&mut a, Call::new(3, t, 0, b"", 99), 0).header.serial,
        2
    );
    assert_eq!(a.next_serial(&t), 3);
    // Each ack still finds its own request.
    assert_eq!(
        on(&mut a, &ack(t, 65535, 0), 1),
        [reply(
            2,
            t,
            ReplyKind::Ack,
            br#"{"jt808":"ack","result":0,"serial":65535}"#
        )]
    );
    assert!(matches!(
        &on(&mut a, &ack(t, 0, 0), 1)[..],
        [Event::Reply { token: 100, .. }]
    ));
    // Serial 0 is free again; 1 is still held.
    a.set_next_serial(&t, 0).unwrap();
    assert_eq!(
        send(&mut a, Call::new(4, t, 0, b"", 99), 0).header.serial,
        0
    );
    assert_eq!(
        send(&mut a, Call::new(5, t, 0, b"", 99), 0).header.serial,
        3
    );
}

fn serials_exhausted_when_every_serial_is_pending() {
    let mut a = adapter_with(|c| c.max_pending = 70_000);
    let t = p13("1");
    bind(&mut a, t);
    bind(&mut a, p13("2"));
    let mut out = Vec::new();
    for i in 0..65536u64 {
        out.clear();
        a.submit(&Call::new(i, t, 0, b"", 99), 0, &mut out).unwrap();
    }
    assert_eq!(a.terminal_pending(&t), 65536);
    let e = a.submit(&Call::new(70_000, t, 0, b"", 99), 0, &mut out);
    assert_eq!(
        e,
        Err(SubmitError::SerialsExhausted {
            phone: t,
            packets: 1
        })
    );
    // Another terminal is unaffected.
    out.clear();
    a.submit(&Call::new(70_001, p13("2"), 0, b"", 99), 0, &mut out)
        .unwrap();
    // Freeing serial 5 makes room for exactly one single-frame message.
    a.cancel(5, 0, &mut Vec::new());
    out.clear();
    let r = a.submit(&Call::new(70_002, t, 0, b"", 99), 0, &mut out);
    assert_eq!(
        r,
        Ok(Submitted::Sent {
            serial: 5,
            packets: 1
        })
    );
    // A three-packet message needs three consecutive free serials.
    a.cancel(10, 0, &mut Vec::new());
    a.cancel(12, 0, &mut Vec::new());
    let long = vec![0u8; 3000];
    let e = a.submit(&Call::new(70_003, t, 0, &long, 99), 0, &mut out);
    assert!(matches!(
        e,
        Err(SubmitError::SerialsExhausted { packets: 3, .. })
    ));
    a.cancel(11, 0, &mut Vec::new());
    out.clear();
    let r = a.submit(&Call::new(70_003, t, 0, &long, 99), 0, &mut out);
    assert_eq!(
        r,
        Ok(Submitted::Sent {
            serial: 10,
            packets: 3
        })
    );
}

// ------------------------------------------------------------ sub-packages

fn long_downlink_is_sub_packaged_and_acked_packet_by_packet() {
    let mut a = adapter();
    let t = p13("13800138000");
    bind(&mut a, t);
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    let r = a
        .submit(&Call::new(1, t, 0xf8, &content, 9_000), 0, &mut out)
        .unwrap();
    assert_eq!(
        r,
        Submitted::Sent {
            serial: 0,
            packets: 3
        }
    );
    let fs = frames(&out);
    assert_eq!(fs.len(), 3);
    let mut joined = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        let i = i as u16;
        assert_eq!(f.header.msg_id, 0x8900);
        assert_eq!(f.header.serial, i);
        assert_eq!(
            f.header.package,
            Some(Package {
                count: 3,
                index: i + 1
            })
        );
        assert!(f.body.len() <= 1023);
        joined.extend_from_slice(&f.body);
    }
    // The type byte leads the first packet only.
    assert_eq!(joined[0], 0xf8);
    assert_eq!(&joined[1..], &content[..]);
    // Acks of the first packets do not complete the call.
    assert!(on(&mut a, &ack(t, 0, 0), 10).is_empty());
    assert!(on(&mut a, &ack(t, 1, 0), 11).is_empty());
    assert_eq!(a.stats().packet_acks, 2);
    assert_eq!(
        on(&mut a, &ack(t, 2, 0), 12),
        [reply(
            1,
            t,
            ReplyKind::Ack,
            br#"{"jt808":"ack","result":0,"serial":0}"#
        )]
    );
    // The next message continues after the three serials.
    assert_eq!(
        send(&mut a, Call::new(2, t, 0, b"", 99), 0).header.serial,
        3
    );
}

fn long_downlink_fails_on_the_first_failing_packet() {
    let mut a = adapter();
    let t = p13("1");
    bind(&mut a, t);
    let content = vec![0x7eu8; 2500];
    let mut out = Vec::new();
    a.submit(&Call::new(1, t, 0x41, &content, 9_000), 0, &mut out)
        .unwrap();
    assert_eq!(frames(&out).len(), 3);
    assert_eq!(
        on(&mut a, &ack(t, 1, 2), 1),
        [reply(
            1,
            t,
            ReplyKind::Error,
            br#"{"jt808":"error","reason":"message error","result":2,"serial":0}"#
        )]
    );
    // Acks for the other packets are now late.
    assert!(on(&mut a, &ack(t, 2, 0), 2).is_empty());
    assert_eq!(a.stats().late_acks, 1);
    // A terminal that acks only the last packet completes the call too.
    out.clear();
    let r = a
        .submit(&Call::new(2, t, 0x41, &content, 9_000), 0, &mut out)
        .unwrap();
    let Submitted::Sent { serial, packets } = r else {
        panic!()
    };
    assert_eq!(
        on(&mut a, &ack(t, serial + packets - 1, 0), 3),
        [reply(2, t, ReplyKind::Ack, &ack_payload(serial))]
    );
}

fn sub_packaged_uplink_is_reassembled_into_the_answer() {
    let mut a = adapter();
    let t = p13("13800138000");
    let call = Call::new(1, t, 0x42, b"dump", 9_000).with_completion(Completion::Answer);
    send(&mut a, call, 0);
    let content: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
    let parts = split_passthrough(&Header::new(0x0900, t, 300), 0x42, &content, 1023).unwrap();
    assert_eq!(parts.len(), 3);
    // Packets out of order, through the stream path, cut at odd places.
    let mut wire = Vec::new();
    for i in [2, 0, 1] {
        wire.extend_from_slice(&parts[i]);
    }
    let mut ev = Vec::new();
    for chunk in wire.chunks(97) {
        a.on_bytes(CONN, chunk, 10, &mut ev).unwrap();
    }
    assert_eq!(ev, [reply(1, t, ReplyKind::Answer, &content)]);
    assert_eq!(a.stats().partials, 0);
    // The same with no request waiting: one uplink with the whole content.
    let parts = split_passthrough(&Header::new(0x0900, t, 400), 0x42, &content, 1023).unwrap();
    let mut ev = Vec::new();
    for p in &parts {
        assert_eq!(
            a.on_frame(CONN, &decode_frame(p).unwrap(), 20, &mut ev),
            Handled::Taken
        );
    }
    assert_eq!(
        ev,
        [Event::Uplink {
            phone: t,
            content_type: 0x42,
            content: content.clone(),
            late: false
        }]
    );
    // A packet sent twice is dropped and counted.
    let mut ev = Vec::new();
    let first = decode_frame(&parts[0]).unwrap();
    assert_eq!(a.on_frame(CONN, &first, 30, &mut ev), Handled::Taken);
    assert!(matches!(
        a.on_frame(CONN, &first, 30, &mut ev),
        Handled::Dropped(_)
    ));
    assert_eq!(a.stats().reassembly_errors, 1);
    // A terminal that goes away mid-message leaves nothing half-assembled behind.
    assert_eq!(a.stats().partials, 1);
    a.terminal_disconnected(&t, 40, &mut Vec::new());
    assert_eq!(a.stats().partials, 0);
}

// ------------------------------------------------------------ bad input

/// One good 0x0001 for `t`'s pending request follows each bad frame, to show
/// the stream carries on.
fn malformed_frames_are_reported_and_the_stream_carries_on() {
    let t = p13("13800138000");
    let good_8001 = hex("7e8001000501234567890000 0a00640200 00617e");
    let mut bad_checksum = good_8001.clone();
    let n = bad_checksum.len();
    bad_checksum[n - 2] = 0x60;
    let lone_escape = hex("7e 0200 0001 013800138000 0001 7d 7e");
    let short = hex("7e 0001 0005 0123456789 7e");
    let body_len = reference_frame(&hex("0900 001e 013800138000 0001 4101020304"));
    let mut oversize = vec![0x7e];
    oversize.extend(std::iter::repeat(0x11).take(MAX_FRAME_LEN + 10));
    oversize.push(0x7e);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "checksum",
            bad_checksum,
            "byte 18: checksum 0x60, computed 0x61",
        ),
        (
            "lone 0x7d",
            lone_escape,
            "byte 13: lone 0x7d at end of frame",
        ),
        (
            "short",
            short,
            "byte 10: frame of 9 bytes is shorter than a 2013 header (12 bytes) and checksum",
        ),
        (
            "body length",
            body_len,
            "byte 3: body-length field says 30, frame carries 5",
        ),
        (
            "oversize",
            oversize,
            "frame longer than the limit of 2092 bytes",
        ),
    ];
    let mut a = adapter();
    for (i, (what, wire, reason)) in cases.iter().enumerate() {
        let token = i as u64;
        let f = send(&mut a, Call::new(token, t, 0x41, b"", 9_000), 0);
        let mut all = wire.clone();
        all.extend_from_slice(&ack_wire(t, f.header.serial, 0));
        let ev = bytes(&mut a, 1, &all, 1);
        assert_eq!(ev.len(), 2, "{what}: {ev:?}");
        match &ev[0] {
            Event::Malformed { conn: 1, reason: r } => {
                assert!(r.ends_with(reason), "{what}: {r}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            matches!(ev[1], Event::Reply { token: t2, .. } if t2 == token),
            "{what}: {ev:?}"
        );
    }
    assert_eq!(a.stats().malformed, 5);
    assert!(a.is_empty());
}

fn bodies_that_do_not_fit_their_id_are_dropped() {
    let mut a = adapter();
    let t = p13("1");
    bind(&mut a, t);
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0001, t, 1), &[0, 1, 0x89], &mut w).unwrap();
    encode_frame(&Header::new(0x0900, t, 2), &[], &mut w).unwrap();
    let ev = bytes(&mut a, 1, &w, 0);
    assert_eq!(ev.len(), 2);
    let Event::Malformed { reason, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        reason,
        "0x0001 from terminal 000000000001: 0x0001 body has 3 bytes, a general response has 5 (reply serial, reply id, result)"
    );
    let Event::Malformed { reason, .. } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(reason.contains("body is empty"), "{reason}");
    assert_eq!(a.stats().bad_bodies, 2);
}

fn unknown_message_ids_pass_through() {
    let mut a = adapter();
    let t = p13("13800138000");
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0002, t, 1), &[], &mut w).unwrap(); // heartbeat
    encode_frame(&Header::new(0x0200, t, 2), &[0x7e; 28], &mut w).unwrap();
    // A 0x0001 answering some other platform message is not the adapter's.
    encode_frame(&Header::new(0x0001, t, 3), &[0, 9, 0x81, 0x03, 0], &mut w).unwrap();
    let ev = bytes(&mut a, 4, &w, 0);
    let ids: Vec<u16> = ev
        .iter()
        .map(|e| match e {
            Event::Frame { conn: 4, frame } => frame.header.msg_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [0x0002, 0x0200, 0x0001]);
    let s = a.stats();
    assert_eq!((s.other_frames, s.malformed, s.unknown_acks), (3, 0, 0));
    // Frames never bind their terminal to the connection.
    assert_eq!(a.terminal_conn(&t), None);
    assert_eq!(s.terminals, 0);
    assert_eq!(
        a.on_frame(4, &ack(t, 0, 0), 0, &mut Vec::new()),
        Handled::Unauthenticated
    );
    a.terminal_authenticated(&t, 4).unwrap();
    assert_eq!(
        a.on_frame(4, &ack(t, 0, 0), 0, &mut Vec::new()),
        Handled::Taken,
        "a 0x0001 answering 0x8900 is taken even when nothing matches"
    );
}

fn phone_with_a_non_bcd_digit_is_keyed_by_its_raw_bytes() {
    let mut a = adapter();
    // Phone byte 2 is 0xa5: not two BCD digits.
    let raw = hex("0138a5138000");
    let t = Phone::from_raw(&raw).unwrap();
    let e = t.digits().unwrap_err();
    assert_eq!((e.index, e.byte), (2, 0xa5));
    assert_eq!(t.to_string(), "raw:0138a5138000");
    // Its registration-style frame passes through, raw phone intact.
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0100, t, 1), b"reg", &mut w).unwrap();
    let ev = bytes(&mut a, 9, &w, 0);
    let [Event::Frame { frame, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(frame.header.phone.raw(), &raw[..]);
    assert!(frame.header.phone.digits().is_err());
    // Calls to it correlate by the raw bytes.
    a.terminal_authenticated(&t, 9).unwrap();
    let f = send(&mut a, Call::new(1, t, 0x41, b"x", 99), 0);
    assert_eq!(f.header.phone.raw(), &raw[..]);
    let ev = bytes(&mut a, 9, &ack_wire(t, f.header.serial, 0), 1);
    assert!(matches!(&ev[..], [Event::Reply { token: 1, .. }]));
    // The same digits in BCD are another terminal.
    let bcd = p13("0138951380");
    assert_ne!(bcd, t);
}

fn uplink_without_a_request_and_ack_with_unknown_serial() {
    let mut a = adapter();
    let t = p13("13800138000");
    bind(&mut a, t);
    assert_eq!(
        bytes(&mut a, 1, &uplink_wire(t, 0x41, b"unasked"), 0),
        [Event::Uplink {
            phone: t,
            content_type: 0x41,
            content: b"unasked".to_vec(),
            late: false
        }]
    );
    // A pending Ack request of the same type does not take uplinks.
    send(&mut a, Call::new(1, t, 0x41, b"", 99), 0);
    assert!(matches!(
        &bytes(&mut a, 1, &uplink_wire(t, 0x41, b"again"), 0)[..],
        [Event::Uplink { .. }]
    ));
    assert!(bytes(&mut a, 1, &ack_wire(t, 4242, 0), 0).is_empty());
    let s = a.stats();
    assert_eq!((s.uplinks, s.unknown_acks, s.late_acks), (2, 1, 0));
    assert!(a.contains(1));
}

// ------------------------------------------------------------ disconnects

fn disconnect_answers_every_pending_and_queued_call() {
    let mut a = adapter();
    let t = p13("13800138000");
    let other = p13("13800138001");
    send(&mut a, Call::new(1, t, 0x41, b"", 9_000), 0);
    let answer = |tok| Call::new(tok, t, 0xf0, b"", 9_000).with_completion(Completion::Answer);
    send(&mut a, answer(2), 0);
    let mut out = Vec::new();
    a.submit(&answer(3), 0, &mut out).unwrap();
    a.submit(&answer(4), 0, &mut out).unwrap();
    let long = vec![1u8; 2000];
    a.submit(&Call::new(5, t, 0x42, &long, 9_000), 0, &mut out)
        .unwrap();
    send(&mut a, Call::new(6, other, 0x41, b"", 9_000), 0);
    assert_eq!((a.len(), a.queued_len()), (6, 2));

    let mut ev = Vec::new();
    assert_eq!(a.terminal_disconnected(&t, 10, &mut ev), 5);
    let gone = br#"{"jt808":"error","reason":"terminal disconnected"}"#;
    assert_eq!(
        ev,
        (1..=5)
            .map(|tok| reply(tok, t, ReplyKind::Error, gone))
            .collect::<Vec<_>>(),
        "each answered once, in order, nothing queued sent"
    );
    assert_eq!((a.len(), a.queued_len(), a.terminal_pending(&t)), (1, 0, 0));
    assert!(a.contains(6));
    let s = a.stats();
    assert_eq!(
        (s.disconnected, s.replies, s.pending, s.queued_now),
        (5, 5, 1, 0)
    );
    // The terminal is no longer bound: frames for the old calls complete
    // nothing, and nothing is answered twice.
    assert_eq!(a.terminal_conn(&t), None);
    assert!(on(&mut a, &ack(t, 0, 0), 11).is_empty());
    assert!(on(&mut a, &uplink(t, 0xf0, b""), 11).is_empty());
    assert_eq!(a.stats().unauthenticated, 2);
    // Serial numbering starts over after a reconnect.
    assert_eq!(
        send(&mut a, Call::new(7, t, 0, b"", 99), 20).header.serial,
        0
    );
    assert_eq!(a.terminal_disconnected(&p13("999"), 0, &mut ev), 0);
}

fn closing_a_connection_disconnects_its_terminals() {
    let mut a = adapter();
    let (x, y, z) = (p13("1"), p13("2"), p13("3"));
    a.terminal_authenticated(&x, 7).unwrap();
    a.terminal_authenticated(&y, 7).unwrap();
    a.terminal_authenticated(&z, 8).unwrap();
    assert_eq!(
        (
            a.terminal_conn(&x),
            a.terminal_conn(&y),
            a.terminal_conn(&z)
        ),
        (Some(7), Some(7), Some(8))
    );
    for (tok, p) in [(1, x), (2, y), (3, z)] {
        send(&mut a, Call::new(tok, p, 0x41, b"", 99), 0);
    }
    // y reconnects and authenticates on connection 9 before 7 is noticed closed.
    a.terminal_authenticated(&y, 9).unwrap();
    let mut ev = Vec::new();
    assert_eq!(a.connection_closed(7, 2, &mut ev), 1);
    assert!(matches!(
        &ev[..],
        [Event::Reply {
            token: 1,
            kind: ReplyKind::Error,
            ..
        }]
    ));
    assert!(a.contains(2) && a.contains(3));
    assert_eq!(a.terminal_conn(&x), None);
    assert_eq!(a.connection_closed(7, 2, &mut ev), 0);
    let s = a.stats();
    assert_eq!((s.connections, s.bindings, s.rebinds), (2, 4, 1));
}

fn cancel_and_send_failure() {
    let mut a = adapter();
    let t = p13("1");
    let answer = |tok| Call::new(tok, t, 0x41, b"q", 99).with_completion(Completion::Answer);
    send(&mut a, answer(1), 0);
    let mut out = Vec::new();
    a.submit(&answer(2), 0, &mut out).unwrap();
    a.submit(&answer(3), 0, &mut out).unwrap();
    let mut ev = Vec::new();
    // Cancelling the outstanding one sends the next, silently for itself.
    assert!(a.cancel(1, 1, &mut ev));
    assert!(matches!(&ev[..], [Event::SendQueued { token: 2, .. }]));
    assert!(!a.cancel(1, 1, &mut ev));
    // Its frames could not be written: answered, and the third goes out.
    ev.clear();
    assert!(a.send_failed(2, 2, &mut ev));
    assert_eq!(ev.len(), 2);
    assert_eq!(
        ev[0],
        reply(
            2,
            t,
            ReplyKind::Error,
            br#"{"jt808":"error","reason":"send failed"}"#
        )
    );
    assert!(matches!(ev[1], Event::SendQueued { token: 3, .. }));
    let s = a.stats();
    assert_eq!((s.cancelled, s.send_failures), (1, 1));
}

// ------------------------------------------- who a connection speaks for

/// A heartbeat from the terminal's phone on `conn`, on the wire.
fn heartbeat_wire(phone: Phone) -> Vec<u8> {
    let mut w = Vec::new();
    encode_frame(&Header::new(0x0002, phone, 7), &[], &mut w).unwrap();
    w
}

fn a_phone_claimed_on_another_connection_binds_and_completes_nothing() {
    let mut a = adapter();
    let victim = p13("13800138000");
    a.terminal_authenticated(&victim, 1).unwrap();
    let f = send(&mut a, Call::new(1, victim, 0x41, b"q", 9_000), 0);
    let answer = Call::new(2, victim, 0xf0, b"q", 9_000).with_completion(Completion::Answer);
    let f2 = send(&mut a, answer, 0);
    // An attacker on connection 66 claims the victim's number with a
    // heartbeat, then spoofs the ack and the answer, serials guessed right.
    let mut w = heartbeat_wire(victim);
    w.extend(ack_wire(victim, f.header.serial, 0));
    w.extend(ack_wire(victim, f2.header.serial, 0));
    w.extend(uplink_wire(victim, 0xf0, b"forged"));
    let ev = bytes(&mut a, 66, &w, 10);
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert!(
        ev.iter()
            .all(|e| matches!(e, Event::Frame { conn: 66, .. })),
        "the attacker's frames are the application's, none is a reply: {ev:?}"
    );
    assert_eq!(a.terminal_conn(&victim), Some(1), "nothing rebinds");
    assert_eq!((a.pending_len(), a.stats().unauthenticated), (2, 3));
    // The victim's downlinks still go to connection 1, and the attacker
    // hanging up fails none of its calls.
    assert_eq!(a.connection_closed(66, 11, &mut Vec::new()), 0);
    assert_eq!(a.pending_len(), 2);
    // The real terminal's answers, on its own connection, complete them.
    let mut w = ack_wire(victim, f.header.serial, 0);
    w.extend(uplink_wire(victim, 0xf0, b"real"));
    let ev = bytes(&mut a, 1, &w, 12);
    assert_eq!(
        ev,
        [
            reply(1, victim, ReplyKind::Ack, &ack_payload(f.header.serial)),
            reply(2, victim, ReplyKind::Answer, b"real"),
        ]
    );
    let s = a.stats();
    assert_eq!((s.bindings, s.rebinds, s.unauthenticated), (1, 0, 3));
}

fn reauthentication_on_a_new_connection_moves_the_terminal() {
    let mut a = adapter();
    let t = p13("13800138000");
    a.terminal_authenticated(&t, 1).unwrap();
    let f = send(&mut a, Call::new(1, t, 0x41, b"q", 9_000), 0);
    // The terminal reconnects while connection 1 is half-open, and
    // authenticates again on 2: the binding moves, the call stays pending.
    a.terminal_authenticated(&t, 2).unwrap();
    assert_eq!(a.terminal_conn(&t), Some(2));
    assert_eq!(a.pending_len(), 1);
    // Connection 1 speaks for it no more.
    assert!(bytes(&mut a, 1, &ack_wire(t, f.header.serial, 0), 1)
        .iter()
        .all(|e| matches!(e, Event::Frame { conn: 1, .. })));
    // The old socket finally closes: the terminal is not affected.
    assert_eq!(a.connection_closed(1, 2, &mut Vec::new()), 0);
    assert_eq!(a.terminal_conn(&t), Some(2));
    assert_eq!(
        bytes(&mut a, 2, &ack_wire(t, f.header.serial, 0), 3),
        [reply(1, t, ReplyKind::Ack, &ack_payload(f.header.serial))]
    );
    // Its new connection closing disconnects it.
    send(&mut a, Call::new(2, t, 0x41, b"q", 9_000), 4);
    let mut ev = Vec::new();
    assert_eq!(a.connection_closed(2, 5, &mut ev), 1);
    assert!(matches!(&ev[..], [Event::Reply { token: 2, .. }]));
    let s = a.stats();
    assert_eq!((s.bindings, s.rebinds, s.unauthenticated), (2, 1, 1));
}

fn unbound_phones_take_no_terminal_slot() {
    let mut a = adapter_with(|c| c.max_terminals = 10);
    // 100000 invented phone numbers on one connection: heartbeats, acks,
    // uplinks.
    let mut ev = Vec::new();
    for i in 0..100_000u64 {
        let p = p13(&format!("{:011}", 20_000_000_000u64 + i));
        let w = match i % 3 {
            0 => heartbeat_wire(p),
            1 => ack_wire(p, 0, 0),
            _ => uplink_wire(p, 0x41, b"x"),
        };
        a.on_bytes(5, &w, 0, &mut ev).unwrap();
        ev.clear();
    }
    let s = a.stats();
    assert_eq!((s.terminals, s.uplinks, s.replies), (0, 0, 0));
    assert_eq!(s.unauthenticated, 66_666);
    // Every slot is still there for terminals that authenticate.
    for i in 0..10 {
        a.terminal_authenticated(&p13(&i.to_string()), 5).unwrap();
    }
    assert_eq!(a.stats().terminals, 10);
}

// ------------------------------------------------------------ 2019 edition

fn protocol_version_follows_the_terminal() {
    let mut a = adapter();
    let t = Phone::from_digits("17299841738", Version::V2019).unwrap();
    let f = send(&mut a, Call::new(1, t, 0x41, b"", 99), 0);
    assert_eq!(
        (f.header.version, f.header.protocol_version),
        (Version::V2019, 1)
    );
    let mut h = Header::new(0x0002, t, 1);
    h.protocol_version = 3;
    let mut w = Vec::new();
    encode_frame(&h, &[], &mut w).unwrap();
    bytes(&mut a, 1, &w, 0);
    let f = send(&mut a, Call::new(2, t, 0x41, b"", 99), 0);
    assert_eq!(f.header.protocol_version, 3);
    // A 2013 terminal with the same digits is another terminal.
    let old = p13("17299841738");
    let f = send(&mut a, Call::new(3, old, 0x41, b"", 99), 0);
    assert_eq!((f.header.version, f.header.serial), (Version::V2013, 0));
}

// ------------------------------------------------------------ scale

fn a_thousand_terminals_interleaved() {
    let mut a = adapter();
    let n = 1000u64;
    let phones: Vec<Phone> = (0..n).map(|i| p13(&format!("1380000{i:04}"))).collect();
    // Two calls per terminal: an Ack one (type 0x41) and an Answer one (0xf0),
    // submitted interleaved across terminals.
    // Each terminal authenticated on a connection of its own.
    for (i, p) in phones.iter().enumerate() {
        a.terminal_authenticated(p, i as u64).unwrap();
    }
    let mut sent = Vec::new(); // (token, phone, serial)
    for round in 0..2u64 {
        for (i, &p) in phones.iter().enumerate() {
            let token = round * n + i as u64 + 1;
            let token_bytes = token.to_be_bytes();
            let call = if round == 0 {
                Call::new(token, p, 0x41, b"ack me", 60_000)
            } else {
                Call::new(token, p, 0xf0, &token_bytes, 60_000).with_completion(Completion::Answer)
            };
            let f = send(&mut a, call, 0);
            sent.push((token, p, f.header.serial));
        }
    }
    assert_eq!(a.pending_len(), 2000);
    // Terminal input arrives on one connection per terminal, in a shuffled
    // order: every ack, and an answer for every Answer call.
    let mut input: Vec<(u64, Vec<u8>)> = Vec::new();
    for &(token, p, serial) in &sent {
        let conn = (token - 1) % n;
        input.push((conn, ack_wire(p, serial, 0)));
        if token > n {
            let mut content = b"answer ".to_vec();
            content.extend_from_slice(&token.to_be_bytes());
            input.push((conn, uplink_wire(p, 0xf0, &content)));
        }
    }
    let mut rng = XorShift(0x808);
    for i in (1..input.len()).rev() {
        input.swap(i, rng.below(i + 1));
    }
    let mut ev = Vec::new();
    for (conn, w) in &input {
        a.on_bytes(*conn, w, 10, &mut ev).unwrap();
    }
    assert_eq!(ev.len(), 2000);
    let mut seen = std::collections::HashSet::new();
    for e in &ev {
        let Event::Reply {
            token,
            phone,
            kind,
            payload,
        } = e
        else {
            panic!("{e:?}")
        };
        assert!(seen.insert(*token), "token {token} answered twice");
        let (_, p, serial) = sent[(*token - 1) as usize];
        assert_eq!(*phone, p);
        if *token <= n {
            assert_eq!(*kind, ReplyKind::Ack);
            assert_eq!(*payload, ack_payload(serial));
        } else {
            assert_eq!(*kind, ReplyKind::Answer);
            let mut content = b"answer ".to_vec();
            content.extend_from_slice(&token.to_be_bytes());
            assert_eq!(*payload, content);
        }
    }
    let s = a.stats();
    assert_eq!((s.pending, s.acked, s.answered), (0, 1000, 1000));
    // Shuffled: an Answer call's ack came either before its answer (delivery
    // confirmed) or after it (late).
    assert_eq!(s.delivered + s.late_acks, 1000);
    assert_eq!((s.unknown_acks, s.uplinks, s.terminals), (0, 0, 1000));
    assert_eq!(s.connections, 1000);
}

// ------------------------------------------------------------ no panics

fn random_input_never_panics_and_nothing_leaks() {
    let mut a = adapter_with(|c| {
        c.max_pending = 64;
        c.max_queue_per_key = 2;
    });
    let mut rng = XorShift(0x5eed);
    let phones: Vec<Phone> = (0..4).map(|i| p13(&i.to_string())).collect();
    // Phones 0 and 1 authenticated on connections 0 and 1; 2 and 3 only claim.
    a.terminal_authenticated(&phones[0], 0).unwrap();
    a.terminal_authenticated(&phones[1], 1).unwrap();
    let mut ev = Vec::new();
    let mut now = 0u64;
    let mut replied = std::collections::HashSet::new();
    let mut accepted = 0u64;
    for step in 0..20_000u64 {
        now += rng.below(20) as u64;
        let p = phones[rng.below(phones.len())];
        match rng.below(8) {
            0 | 1 => {
                let len = rng.below(2500);
                let content: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let completion = if rng.below(2) == 0 {
                    Completion::Ack
                } else {
                    Completion::Answer
                };
                let call = Call::new(
                    step,
                    p,
                    [0x41, 0x42, 0x0b][rng.below(3)],
                    &content,
                    now + 1 + rng.below(500) as u64,
                )
                .with_completion(completion);
                let mut out = Vec::new();
                if a.submit(&call, now, &mut out).is_ok() {
                    accepted += 1;
                }
            }
            2 => {
                let f = ack(p, rng.below(40) as u16, rng.below(5) as u8);
                a.on_frame(rng.below(3) as u64, &f, now, &mut ev);
            }
            3 => {
                let f = uplink(p, [0x41, 0x42, 0x0b][rng.below(3)], b"u");
                a.on_frame(rng.below(3) as u64, &f, now, &mut ev);
            }
            4 => {
                let junk: Vec<u8> = (0..rng.below(64))
                    .map(|_| [0x7e, 0x7d, 0x01, 0x02, 0x00, 0x09][rng.below(6)])
                    .collect();
                let _ = a.on_bytes(rng.below(3) as u64, &junk, now, &mut ev);
            }
            5 => {
                a.expire(now, &mut ev);
            }
            6 if rng.below(20) == 0 => {
                a.terminal_disconnected(&p, now, &mut ev);
            }
            6 if rng.below(4) == 0 && p != phones[3] => {
                a.terminal_authenticated(&p, rng.below(3) as u64).unwrap();
            }
            _ => {
                a.cancel(rng.below(step as usize + 1) as u64, now, &mut ev);
            }
        }
        for e in ev.drain(..) {
            match e {
                Event::Reply { token, .. } | Event::Expired { token, .. } => {
                    assert!(replied.insert(token), "token {token} finished twice");
                }
                _ => {}
            }
        }
    }
    // Everything still held expires; the tables are empty afterwards.
    a.expire(u64::MAX, &mut ev);
    for e in ev.drain(..) {
        if let Event::Reply { token, .. } | Event::Expired { token, .. } = e {
            assert!(replied.insert(token));
        }
    }
    let s = a.stats();
    assert_eq!((s.pending, s.queued_now), (0, 0));
    assert!(a.is_empty());
    assert_eq!(a.next_deadline(), None);
    assert_eq!(s.submitted, accepted);
    assert_eq!(
        replied.len() as u64 + s.cancelled,
        accepted,
        "every accepted request ends exactly once"
    );
}

// ------------------------------------------------------------ the C API

crate::c_harness_tests!("jt808_harness" ["-pthread"]: c_api_without_network,
    c_api_runs_clean_under_valgrind);

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        payload_formats_are_fixed,
        ack_completion_replies_with_the_general_response,
        answer_completion_takes_the_next_uplink_of_the_type,
        answer_failure_ack_answers_at_once,
        default_completion_comes_from_the_config,
        expiry_releases_without_reply_and_late_frames_are_counted,
        an_ic_card_answer_after_an_ack_call_is_an_uplink,
        submit_refuses_clearly_and_holds_nothing,
        busy_pair_queues_then_sends_in_order,
        a_queued_request_expires_at_its_own_deadline,
        busy_pair_refused_with_refuse_policy,
        serials_count_per_terminal,
        serial_wraps_at_65535_and_skips_pending_serials,
        serials_exhausted_when_every_serial_is_pending,
        long_downlink_is_sub_packaged_and_acked_packet_by_packet,
        long_downlink_fails_on_the_first_failing_packet,
        sub_packaged_uplink_is_reassembled_into_the_answer,
        malformed_frames_are_reported_and_the_stream_carries_on,
        bodies_that_do_not_fit_their_id_are_dropped,
        unknown_message_ids_pass_through,
        phone_with_a_non_bcd_digit_is_keyed_by_its_raw_bytes,
        uplink_without_a_request_and_ack_with_unknown_serial,
        disconnect_answers_every_pending_and_queued_call,
        closing_a_connection_disconnects_its_terminals,
        cancel_and_send_failure,
        a_phone_claimed_on_another_connection_binds_and_completes_nothing,
        reauthentication_on_a_new_connection_moves_the_terminal,
        unbound_phones_take_no_terminal_slot,
        protocol_version_follows_the_terminal,
        a_thousand_terminals_interleaved,
        random_input_never_panics_and_nothing_leaks,
        c_api_without_network needs ["cmake", "cc"],
        c_api_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
