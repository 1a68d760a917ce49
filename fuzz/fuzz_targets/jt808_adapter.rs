//! The JT/T 808 adapter's byte input, several connections, random phones:
//! some terminals authenticated (bound to a connection), others only claiming
//! their number, calls submitted, cancelled and expired, connections closed.
//!
//! Input layout: byte 0 holds flags (bit 0: lenient escapes). Then operations
//! until the input runs out, each an opcode byte (mod 8) and its arguments:
//! - 0 raw bytes: connection (mod 4), length, that many bytes;
//! - 1 authenticate: phone (mod 8), connection (mod 4);
//! - 2 submit: phone, type byte, content length / 8, completion bit, deadline;
//! - 3 time: advance the clock, expire;
//! - 4 close a connection; 5 disconnect a phone; 7 cancel a token;
//! - 6 a well-formed frame from a phone on a connection: a 0x0001 (serial,
//!   result), a 0x0900 (type, content), or a 0x0900 packet (count, index,
//!   serial, body length), so that correlation is reached without the fuzzer
//!   having to find checksums.
//!
//! Checked: nothing panics; no request finishes twice, and none finishes that
//! was not accepted; during bytes from connection C, every reply is for a
//! terminal bound to C (nothing a connection sends completes another
//! terminal's call); the reassembler stays within its limits; after expiring
//! everything the adapter holds nothing.

#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use rrpc::jt808::{
    encode_frame, Adapter, AdapterConfig, Call, Completion, Escapes, Event, Header, Package, Phone,
    ReassemblerConfig, Version,
};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn phones() -> Vec<Phone> {
    (0..8u64)
        .map(|i| {
            let version = if i % 2 == 0 {
                Version::V2013
            } else {
                Version::V2019
            };
            Phone::from_digits(&format!("1380013800{i}"), version).expect("valid digits")
        })
        .collect()
}

fn frame(header: &Header, body: &[u8]) -> Vec<u8> {
    let mut w = Vec::new();
    encode_frame(header, body, &mut w).expect("a valid header and a short body encode");
    w
}

/// Requests accepted, and those that finished.
#[derive(Default)]
struct Book {
    accepted: HashSet<u64>,
    finished: HashSet<u64>,
}

impl Book {
    /// Takes the events; `from`: the connection whose bytes made them.
    fn check(&mut self, ev: &mut Vec<Event>, from: Option<u64>, bound: &HashMap<Phone, u64>) {
        for e in ev.drain(..) {
            match e {
                Event::Reply { token, phone, .. } => {
                    assert!(
                        self.accepted.contains(&token),
                        "reply for unknown token {token}"
                    );
                    assert!(self.finished.insert(token), "token {token} finished twice");
                    if let Some(c) = from {
                        assert_eq!(
                            bound.get(&phone),
                            Some(&c),
                            "bytes from connection {c} completed a call of {phone}"
                        );
                    }
                }
                Event::Expired { token, .. } => {
                    assert!(
                        self.accepted.contains(&token),
                        "expiry of unknown token {token}"
                    );
                    assert!(self.finished.insert(token), "token {token} finished twice");
                }
                _ => {}
            }
        }
    }
}

const PARTIALS: usize = 4;
const BYTES: usize = 8192;
const PACKETS: usize = 64;

fn run(data: &[u8]) -> Option<()> {
    let mut input = Input(data);
    let flags = input.byte()?;
    let config = AdapterConfig {
        max_pending: 32,
        max_queue_per_key: 2,
        max_terminals: 6,
        max_connections: 4,
        escapes: if flags & 1 == 1 {
            Escapes::Lenient
        } else {
            Escapes::Strict
        },
        reassembly: ReassemblerConfig {
            max_partials: PARTIALS,
            max_partials_per_terminal: 2,
            max_bytes: BYTES,
            max_bytes_per_terminal: 4096,
            max_packets: PACKETS,
            max_packets_per_terminal: 16,
            timeout_ms: 5_000,
        },
        ..AdapterConfig::default()
    };
    let mut a = Adapter::new(config).expect("a valid configuration");
    let phones = phones();
    // The bindings the adapter must hold, as the application made them.
    let mut bound: HashMap<Phone, u64> = HashMap::new();
    let mut book = Book::default();
    let mut next_token = 0u64;
    let mut now = 0u64;
    let mut ev = Vec::new();

    while let Some(op) = input.byte() {
        match op % 8 {
            0 => {
                let conn = u64::from(input.byte()? % 4);
                let len = usize::from(input.byte()?);
                let bytes = input.take(len).to_vec();
                let _ = a.on_bytes(conn, &bytes, now, &mut ev);
                book.check(&mut ev, Some(conn), &bound);
            }
            1 => {
                let p = phones[usize::from(input.byte()? % 8)];
                let conn = u64::from(input.byte()? % 4);
                if a.terminal_authenticated(&p, conn).is_ok() {
                    bound.insert(p, conn);
                }
            }
            2 => {
                let p = phones[usize::from(input.byte()? % 8)];
                let content_type = input.byte()?;
                let len = usize::from(input.byte()?) * 8;
                let completion = if input.byte()? & 1 == 0 {
                    Completion::Ack
                } else {
                    Completion::Answer
                };
                let deadline = now + 1 + u64::from(input.byte()?) * 4;
                let content = vec![0x7e; len];
                next_token += 1;
                let call = Call::new(next_token, p, content_type, &content, deadline)
                    .with_completion(completion);
                let mut out = Vec::new();
                if a.submit(&call, now, &mut out).is_ok() {
                    assert!(
                        bound.contains_key(&p),
                        "a call went out to an unbound terminal"
                    );
                    book.accepted.insert(next_token);
                }
            }
            3 => {
                now += u64::from(input.byte()?) * 8;
                a.expire(now, &mut ev);
                book.check(&mut ev, None, &bound);
            }
            4 => {
                let conn = u64::from(input.byte()? % 4);
                a.connection_closed(conn, now, &mut ev);
                bound.retain(|_, c| *c != conn);
                book.check(&mut ev, None, &bound);
            }
            5 => {
                let p = phones[usize::from(input.byte()? % 8)];
                a.terminal_disconnected(&p, now, &mut ev);
                bound.remove(&p);
                book.check(&mut ev, None, &bound);
            }
            6 => {
                let p = phones[usize::from(input.byte()? % 8)];
                let conn = u64::from(input.byte()? % 4);
                let wire = match input.byte()? % 3 {
                    0 => {
                        let serial = input.u16()?;
                        let result = input.byte()? % 5;
                        let mut body = serial.to_be_bytes().to_vec();
                        body.extend_from_slice(&0x8900u16.to_be_bytes());
                        body.push(result);
                        frame(&Header::new(0x0001, p, 1), &body)
                    }
                    1 => {
                        let mut body = vec![input.byte()?];
                        let len = usize::from(input.byte()? % 64);
                        body.extend_from_slice(input.take(len));
                        frame(&Header::new(0x0900, p, 2), &body)
                    }
                    _ => {
                        let count = u16::from(input.byte()? % 5) + 1;
                        let index = u16::from(input.byte()?) % count + 1;
                        let first = input.u16()?;
                        let len = usize::from(input.byte()?);
                        let mut header = Header::new(0x0900, p, first.wrapping_add(index - 1));
                        header.package = Some(Package { count, index });
                        let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
                        frame(&header, &body)
                    }
                };
                let _ = a.on_bytes(conn, &wire, now, &mut ev);
                book.check(&mut ev, Some(conn), &bound);
            }
            _ => {
                let token = u64::from(input.byte()?) % (next_token + 1);
                if a.cancel(token, now, &mut ev) {
                    assert!(book.finished.insert(token), "token {token} finished twice");
                }
                book.check(&mut ev, None, &bound);
            }
        }
        let s = a.stats();
        assert!(s.partials as usize <= PARTIALS);
        for p in &phones {
            assert_eq!(a.terminal_conn(p), bound.get(p).copied());
        }
    }
    a.expire(u64::MAX, &mut ev);
    book.check(&mut ev, None, &bound);
    assert!(a.is_empty());
    assert_eq!(a.next_deadline(), None);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
