//! The pass-through correlator: RRPC calls out as 0x8900, terminal answers
//! (0x0001, 0x0900) back as RRPC replies. No I/O, no threads, no clock: time
//! is a `now_ms` argument (any monotonic milliseconds, the same clock as the
//! deadlines), frames to send are appended to a buffer, and everything that
//! happens comes back as [`Event`]s.
//!
//! # The exchange
//! [`Adapter::submit`] turns one RRPC request for a terminal into a 0x8900
//! (downlink pass-through) message whose type byte is the request's
//! ContentType and whose content is the request payload. Bodies longer than
//! one frame carries are sub-packaged (type byte in the first packet only).
//! Type bytes are not checked: 0x00, 0x0B, 0x41, 0x42, 0xF0-0xFF and vendor
//! values such as 0x83 or 0xF7 all go out untouched.
//!
//! The terminal answers with a 0x0001 general response (reply serial, reply id
//! 0x8900, result) and perhaps with a 0x0900 (uplink pass-through). How the
//! RRPC call completes is chosen per request ([`Completion`]):
//!
//! - [`Completion::Ack`]: the 0x0001 is the reply. For a sub-packaged
//!   downlink, the 0x0001 of any packet is recognised; the call completes on
//!   the ack of the last packet (terminals that ack only the last one work
//!   too), or at once on the first packet acked with a failure.
//! - [`Completion::Answer`]: a 0x0001 with result 0 only confirms delivery;
//!   the next 0x0900 of the same type from the same terminal before the
//!   deadline is the reply, and its content bytes (after the type byte) are
//!   the reply payload, untouched. JT/T 808 has no field linking a 0x0900 to
//!   the 0x8900 that prompted it, so only one Answer request per (terminal,
//!   type) is outstanding at a time. Another one for the same pair either
//!   waits in a bounded queue and goes out when the first completes
//!   ([`BusyPolicy::Queue`], the default; the frames come back as
//!   [`Event::SendQueued`]) or is refused at once with
//!   [`SubmitError::Busy`] ([`BusyPolicy::Refuse`]).
//!
//! Under both policies a 0x0001 whose result is not 0 (1 failure, 2 message
//! error, 3 not supported, or any other value) answers the call at once with
//! an error payload. A request whose deadline passes is released without a
//! reply ([`Event::Expired`]: the RRPC caller sees TIMEOUT); the adapter never
//! produces a reply after a request's deadline.
//!
//! # Reply payloads
//! The adapter makes these payloads (UTF-8 JSON, no spaces, keys in this
//! order; `N` is the decimal serial of the 0x8900, of its first packet when
//! sub-packaged, and `R` the result byte in decimal):
//!
//! | when | payload |
//! |---|---|
//! | Ack, result 0 | `{"jt808":"ack","result":0,"serial":N}` |
//! | result 1 | `{"jt808":"error","reason":"failure","result":1,"serial":N}` |
//! | result 2 | `{"jt808":"error","reason":"message error","result":2,"serial":N}` |
//! | result 3 | `{"jt808":"error","reason":"not supported","result":3,"serial":N}` |
//! | any other result | `{"jt808":"error","reason":"unknown result","result":R,"serial":N}` |
//! | terminal disconnected | `{"jt808":"error","reason":"terminal disconnected"}` |
//! | queued request could not go out | `{"jt808":"error","reason":"busy"}` |
//! | frames could not be written | `{"jt808":"error","reason":"send failed"}` |
//!
//! `result` and `serial` appear exactly when a 0x0001 came back. An Answer
//! reply is the 0x0900 content itself, whatever bytes it holds.
//! [`SubmitError::reply_payload`] gives `{"jt808":"error","reason":"busy"}`
//! for refusals by capacity, for applications that answer those calls too.
//!
//! # Road-transport IC card (type 0x0B)
//! The standard gives a terminal 30 s for IC-card authentication, while an
//! RRpc call waits at most 8 s. Use [`Completion::Ack`] for 0x0B (the
//! adapter's default completion): the call then confirms delivery within its
//! time. The terminal's 0x0900 IC-card answer arrives later, when no request
//! waits for it, and comes out as an [`Event::Uplink`] for the application to
//! forward on its own uplink topic. An Answer request for 0x0B simply expires
//! when the terminal takes longer than the call's deadline; its late answer is
//! then an `Uplink` with `late: true`.
//!
//! # Unmatched input
//! - a 0x0900 with no outstanding Answer request of its (terminal, type):
//!   [`Event::Uplink`], counted in [`AdapterStats::uplinks`](AdapterStats#structfield.uplinks) (and in
//!   `late_uplinks` when an Answer request of that pair expired recently);
//! - a 0x0001 answering 0x8900 with a serial no request holds: ignored,
//!   counted in `late_acks` when the serial belonged to a request that
//!   finished recently, else in `unknown_acks`;
//! - a 0x0001 answering another message id, and every other message id:
//!   not the adapter's ([`Handled::NotMine`]; from [`Adapter::on_bytes`],
//!   [`Event::Frame`]).
//!
//! # Terminals, serial numbers, connections
//! Terminals are keyed by their [`Phone`] (raw header bytes, so a 2013 and a
//! 2019 phone never collide). Each terminal has its own 0x8900 serial counter,
//! wrapping from 65535 to 0; a serial still held by a request of that terminal
//! is skipped, so a serial comes round again only after its request was
//! released (answered, expired, cancelled). The 2019 protocol-version byte of
//! outgoing frames is the one the terminal last used, 1 before it sent any.
//!
//! [`Adapter::on_bytes`] takes raw socket bytes per connection (an id the
//! application chooses, such as its socket descriptor): one
//! [`StreamDecoder`](super::StreamDecoder) per connection.
//!
//! # Who a connection speaks for
//! A phone number in a frame's header is a claim: any TCP connection can put
//! any number there. So no frame binds a terminal to a connection. The
//! application binds it with [`Adapter::terminal_authenticated`] once the
//! terminal has authenticated on that connection (0x0102 carrying the code the
//! application issued at its registration, 0x8100). Requests go out only to
//! bound terminals ([`SubmitError::NotConnected`] otherwise), on their bound
//! connection, and only the 0x0001 and 0x0900 frames that come on that
//! connection complete them: the same kinds from any other connection complete
//! nothing, are counted in [`AdapterStats::unauthenticated`](AdapterStats#structfield.unauthenticated) and come back to
//! the application as [`Event::Frame`] ([`Handled::Unauthenticated`] from
//! [`Adapter::on_frame`]). Frames from unbound phones take no terminal slot.
//! A terminal that authenticates again on a new connection (a reconnect while
//! its old socket is still half-open) is moved there, and closing the old
//! connection then leaves it alone. [`Adapter::connection_closed`] and
//! [`Adapter::terminal_disconnected`] answer every request of the terminals
//! concerned, sent or queued, with the `terminal disconnected` error.
//!
//! # Threads
//! An [`Adapter`] is driven from one thread at a time (`&mut self`); the
//! frames it makes and the events it reports are the caller's to hand on.
//! [`SharedAdapter`] wraps it for any number of threads, with a send function
//! and an event callback it calls itself, with no lock held.
//!
//! # Where each part lives
//! This file is the [`Adapter`] and its read-only accessors; `config.rs` its
//! settings and counters; `types.rs` what goes in and comes out (calls, events,
//! reply payloads, errors); `requests.rs` the requests held and their
//! correlation with the terminals' answers; `queues.rs` the Answer queues and
//! serial numbers; `inbound.rs` the frames from terminals; `terminals.rs`
//! terminals and connections; `shared.rs` the [`SharedAdapter`].
//!
//! # Cost and bounds
//! Each frame costs a few hash lookups (by phone and serial, by phone and
//! type) and, when a request ends, an ordered-set removal for its deadline.
//! Memory is bounded by [`AdapterConfig`]: requests held, queue length per
//! (terminal, type), queued bytes, bound terminals, connections, the frame
//! length of each connection's decoder and the reassembler's limits (partial
//! messages, bytes and packets, over all terminals and per terminal). No input
//! makes the adapter panic.
//!
//! ```
//! use rrpc::jt808::{
//!     decode_frame, encode_frame, Adapter, AdapterConfig, Body, Call, Event, Header, Phone,
//!     Version,
//! };
//!
//! let mut adapter = Adapter::new(AdapterConfig::default()).unwrap();
//! let phone = Phone::from_digits("13800138000", Version::V2013).unwrap();
//! // The terminal authenticated on connection 3 with the code it was issued.
//! adapter.terminal_authenticated(&phone, 3).unwrap();
//!
//! // An RRPC request (token 7, ContentType 0x41) goes out as a 0x8900.
//! let mut wire = Vec::new();
//! let call = Call::new(7, phone, 0x41, b"hi", 9_000);
//! adapter.submit(&call, 1_000, &mut wire).unwrap();
//! let sent = decode_frame(&wire).unwrap();
//! assert_eq!(sent.parse_body().unwrap(), Body::Passthrough { content_type: 0x41, content: b"hi" });
//!
//! // The terminal acknowledges it: the RRPC reply is the ack payload.
//! let mut ack = Vec::new();
//! let body = [0, sent.header.serial as u8, 0x89, 0x00, 0];
//! encode_frame(&Header::new(0x0001, phone, 40), &body, &mut ack).unwrap();
//! let mut events = Vec::new();
//! adapter.on_frame(3, &decode_frame(&ack).unwrap(), 1_050, &mut events);
//! assert_eq!(
//!     events,
//!     [Event::Reply {
//!         token: 7,
//!         phone,
//!         kind: rrpc::jt808::ReplyKind::Ack,
//!         payload: br#"{"jt808":"ack","result":0,"serial":0}"#.to_vec(),
//!     }]
//! );
//! ```

use std::collections::BTreeSet;

use hashbrown::HashMap;

use crate::counters::Counters;

use super::codec::Phone;
use super::packets::Reassembler;
use queues::AnswerQueue;
use requests::{Finished, HeldRequest};
use terminals::{Connection, Terminal};

mod config;
mod inbound;
mod queues;
mod requests;
mod shared;
mod terminals;
mod types;

use config::AdapterCounter;
pub use config::{AdapterConfig, AdapterStats, BusyPolicy, Completion, ConfigError};
pub use shared::{EventFn, SendFn, SharedAdapter, SharedSubmitError};
pub use types::{
    ack_payload, error_payload, result_error_payload, Call, ConnectionError, ErrorReason, Event,
    FrameError, Handled, ReplyKind, SubmitError, Submitted,
};

/// The pass-through correlator (see the module documentation).
#[derive(Debug)]
pub struct Adapter {
    config: AdapterConfig,
    /// The id of the last request accepted; ids are never reused.
    next_id: u64,
    /// The requests held, sent and queued, by id.
    requests: HashMap<u64, HeldRequest>,
    /// Request ids by the application's token.
    tokens: HashMap<u64, u64>,
    /// Request ids by the serials of their sent 0x8900 packets.
    serials: HashMap<(Phone, u16), u64>,
    /// The outstanding Answer request of each busy (terminal, type), and those
    /// waiting behind it.
    answer_queues: HashMap<(Phone, u8), AnswerQueue>,
    /// (deadline, id) of every request held, earliest first.
    deadlines: BTreeSet<(u64, u64)>,
    terminals: HashMap<Phone, Terminal>,
    connections: HashMap<u64, Connection>,
    reassembler: Reassembler,
    finished: Finished,
    /// Content bytes of the queued requests.
    queued_bytes: usize,
    /// Requests queued now.
    queued_now: usize,
    stats: Counters<AdapterStats>,
}

impl Adapter {
    /// An adapter with these limits.
    ///
    /// # Errors
    /// [`ConfigError`] when `max_body` is outside 2..=1023, `max_frame_len`
    /// is below the shortest frame (15 bytes), or a reassembly limit is outside
    /// its range ([`ReassemblerConfig::check`](super::ReassemblerConfig::check)).
    pub fn new(config: AdapterConfig) -> Result<Adapter, ConfigError> {
        config.check()?;
        let reassembler = Reassembler::new(config.reassembly)?;
        Ok(Adapter {
            next_id: 0,
            requests: HashMap::new(),
            tokens: HashMap::new(),
            serials: HashMap::new(),
            answer_queues: HashMap::new(),
            deadlines: BTreeSet::new(),
            terminals: HashMap::new(),
            connections: HashMap::new(),
            reassembler,
            finished: Finished::new(config.finished_memory),
            queued_bytes: 0,
            queued_now: 0,
            stats: Counters::default(),
            config,
        })
    }

    /// The configuration given to [`Adapter::new`].
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// Requests held: sent and waiting, and queued.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Requests sent and waiting for their answer.
    pub fn pending_len(&self) -> usize {
        self.requests.len() - self.queued_now
    }

    /// Requests waiting in (terminal, type) queues.
    pub fn queued_len(&self) -> usize {
        self.queued_now
    }

    /// Whether a request with this token is held.
    pub fn contains(&self, token: u64) -> bool {
        self.tokens.contains_key(&token)
    }

    /// Requests held for this terminal, sent and queued.
    pub fn terminal_pending(&self, phone: &Phone) -> usize {
        self.terminals.get(phone).map_or(0, |t| t.requests.len())
    }

    /// The serial the terminal's next 0x8900 would get if it is free.
    pub fn next_serial(&self, phone: &Phone) -> u16 {
        self.terminals.get(phone).map_or(0, |t| t.next_serial)
    }

    /// Sets where the terminal's serial counter continues (for gateways that
    /// keep counters across restarts).
    ///
    /// # Errors
    /// [`ConnectionError::TooManyTerminals`] for a new terminal when the table is full.
    pub fn set_next_serial(&mut self, phone: &Phone, serial: u16) -> Result<(), ConnectionError> {
        self.terminal_entry(phone)?.next_serial = serial;
        Ok(())
    }

    /// The connection the terminal is bound to ([`Adapter::terminal_authenticated`]).
    pub fn terminal_conn(&self, phone: &Phone) -> Option<u64> {
        self.terminals.get(phone).and_then(|t| t.conn)
    }

    /// The earliest deadline among held requests: when [`Adapter::expire`]
    /// next has work (a poll timeout).
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// The counters, with the gauges (`pending`, `queued_now`, `terminals`,
    /// `connections`, `partials`) and the frames the open connections' decoders
    /// read leniently filled in now.
    pub fn stats(&self) -> AdapterStats {
        let counted = self.stats.snapshot();
        AdapterStats {
            pending: self.pending_len() as u64,
            queued_now: self.queued_now as u64,
            terminals: self.terminals.len() as u64,
            connections: self.connections.len() as u64,
            partials: self.reassembler.partials() as u64,
            lenient_frames: counted.lenient_frames
                + self
                    .connections
                    .values()
                    .map(|c| c.decoder.lenient_frames())
                    .sum::<u64>(),
            ..counted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jt808::{
        decode_frame, encode_frame, Body, Frame, Header, Version, MSG_DOWNLINK_PASSTHROUGH,
        MSG_TERMINAL_RESPONSE,
    };

    fn phone(d: &str) -> Phone {
        Phone::from_digits(d, Version::V2013).unwrap()
    }

    fn ack(p: Phone, serial: u16, result: u8) -> Frame {
        let mut body = Vec::new();
        body.extend_from_slice(&serial.to_be_bytes());
        body.extend_from_slice(&MSG_DOWNLINK_PASSTHROUGH.to_be_bytes());
        body.push(result);
        Frame {
            header: Header::new(MSG_TERMINAL_RESPONSE, p, 1),
            body,
        }
    }

    #[test]
    fn vendor_types_go_out_untouched() {
        let mut a = Adapter::new(AdapterConfig::default()).unwrap();
        let p = phone("13800138000");
        a.terminal_authenticated(&p, 1).unwrap();
        for (i, t) in [0x83u8, 0xf7, 0xf8, 0x00, 0x0b].into_iter().enumerate() {
            let mut out = Vec::new();
            a.submit(&Call::new(i as u64, p, t, &[0x7e, 0x7d], 100), 0, &mut out)
                .unwrap();
            let f = decode_frame(&out).unwrap();
            assert_eq!(
                f.parse_body().unwrap(),
                Body::Passthrough {
                    content_type: t,
                    content: &[0x7e, 0x7d]
                }
            );
        }
        let mut ev = Vec::new();
        assert_eq!(a.on_frame(1, &ack(p, 2, 0), 1, &mut ev), Handled::Taken);
        assert!(matches!(&ev[..], [Event::Reply { token: 2, .. }]));
        let mut wire = Vec::new();
        encode_frame(&Header::new(0x0200, p, 9), &[1, 2, 3], &mut wire).unwrap();
        assert_eq!(
            a.on_frame(1, &decode_frame(&wire).unwrap(), 1, &mut ev),
            Handled::NotMine
        );
    }
}
