//! Arbitrary messages through a caller's response path (the one every
//! incoming PUBLISH takes), with calls of every dialect in flight.
//!
//! Input layout: byte 0 holds the retain flag (bit 0), whether the message
//! carries MQTT 5 Correlation Data (bit 1) and its length (bits 2-7: the
//! payload's first bytes, cut to what is there); bytes 1-2 the topic's length
//! (little-endian, cut to what is there); then the topic bytes, then the
//! payload. One message per input; the caller's state (calls in flight,
//! echoes seen, presence) carries over from input to input.
//!
//! Checked (inside `ResponseFuzz::feed`): nothing panics; a call completes with
//! SUCCESS only from its own device's response topic, with its whole message-id
//! level (an mqtt5 call: from the caller's mqtt5 response topic with its
//! Correlation Data), and never from a retained message; a call of an envelope
//! dialect (Tencent actions, ThingsBoard gateway) only from a reply envelope
//! with its id (and its sub-device) in the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rrpc::caller::ResponseFuzz;

thread_local! {
    static CALLER: ResponseFuzz = ResponseFuzz::new();
}

fuzz_target!(|data: &[u8]| {
    let [flags, lo, hi, rest @ ..] = data else {
        return;
    };
    let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
    let (topic, payload) = rest.split_at(len);
    let correlation =
        (flags & 2 == 2).then(|| &payload[..usize::from(flags >> 2).min(payload.len())]);
    CALLER.with(|c| {
        c.feed_v5(topic, payload, flags & 1 == 1, correlation);
    });
});
