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
//!   [`Event::Uplink`], counted in
//!   [`AdapterStats::uplinks`](AdapterStats#structfield.uplinks) (and in
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
//! [`StreamDecoder`] per connection.
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
//! nothing, are counted in
//! [`AdapterStats::unauthenticated`](AdapterStats#structfield.unauthenticated)
//! and come back to the application as [`Event::Frame`] ([`Handled::Unauthenticated`] from
//! [`Adapter::on_frame`]). Frames from unbound phones take no terminal slot.
//! A terminal that authenticates again on a new connection (a reconnect while
//! its old socket is still half-open) is moved there, and closing the old
//! connection then leaves it alone. [`Adapter::connection_closed`] and
//! [`Adapter::terminal_disconnected`] answer every request of the terminals
//! concerned, sent or queued, with the `terminal disconnected` error.
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

use crate::counters::counter_set;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use hashbrown::{HashMap, HashSet};

use super::codec::{
    Body, BodyError, EncodeError, Escapes, Frame, Header, Phone, ResponseResult, Version,
    MAX_BODY_LEN, MAX_FRAME_LEN, MSG_DOWNLINK_PASSTHROUGH, MSG_TERMINAL_RESPONSE,
    MSG_UPLINK_PASSTHROUGH,
};
use super::packets::{split_passthrough, Reassembler, ReassemblerConfig, ReassemblyError};
use super::stream::StreamDecoder;

/// How an RRPC call sent to a terminal completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Completion {
    /// The terminal's 0x0001 is the reply: `{"jt808":"ack",...}` for result 0,
    /// an error payload otherwise.
    Ack,
    /// The next 0x0900 of the request's type from the terminal is the reply (its
    /// content bytes); a 0x0001 with result 0 only confirms delivery. One such
    /// request per (terminal, type) is outstanding at a time.
    Answer,
}

/// What happens to an [`Completion::Answer`] request whose (terminal, type)
/// already has one outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BusyPolicy {
    /// It waits, up to [`AdapterConfig::max_queue_per_key`] requests per pair,
    /// and goes out ([`Event::SendQueued`]) when the one before it completes.
    /// A queued request still expires at its own deadline.
    Queue,
    /// It is refused at once with [`SubmitError::Busy`].
    Refuse,
}

/// Limits and defaults of an [`Adapter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterConfig {
    /// Requests held at once, sent and queued, over all terminals. Default 4096.
    pub max_pending: usize,
    /// Completion of requests that do not choose one. Default [`Completion::Ack`].
    pub default_completion: Completion,
    /// What a second Answer request for a busy (terminal, type) does. Default
    /// [`BusyPolicy::Queue`].
    pub busy_policy: BusyPolicy,
    /// Requests waiting behind the outstanding one of a (terminal, type), with
    /// [`BusyPolicy::Queue`]. Default 8.
    pub max_queue_per_key: usize,
    /// Content bytes held by queued requests, over all terminals. Default 8 MiB.
    pub max_queued_bytes: usize,
    /// Largest request content. Default 65536.
    pub max_content: usize,
    /// Largest 0x8900 body per frame; longer ones are sub-packaged. 2..=1023,
    /// default 1023 (the standard's limit).
    pub max_body: usize,
    /// Terminals bound to a connection ([`Adapter::terminal_authenticated`]) or
    /// given a serial counter ([`Adapter::set_next_serial`]) at once; frames
    /// from unbound phones take no slot. Default 100000.
    pub max_terminals: usize,
    /// Connections with a stream decoder ([`Adapter::on_bytes`]). Default 100000.
    pub max_connections: usize,
    /// Longest escaped frame a connection's decoder accepts, flags included.
    /// Default [`MAX_FRAME_LEN`].
    pub max_frame_len: usize,
    /// Finished requests remembered (serials, and (terminal, type) pairs of
    /// expired Answer requests) to tell late frames from unknown ones. Default 4096.
    pub finished_memory: usize,
    /// Limits for putting sub-packaged 0x0900 messages back together, over
    /// all terminals and per terminal; checked by [`Adapter::new`].
    pub reassembly: ReassemblerConfig,
    /// How the connections' decoders read 0x7d bytes. Default
    /// [`Escapes::Strict`]; [`Escapes::Lenient`] for terminals that leave 0x7d
    /// unescaped.
    pub escapes: Escapes,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            max_pending: 4096,
            default_completion: Completion::Ack,
            busy_policy: BusyPolicy::Queue,
            max_queue_per_key: 8,
            max_queued_bytes: 8 << 20,
            max_content: 65536,
            max_body: MAX_BODY_LEN,
            max_terminals: 100_000,
            max_connections: 100_000,
            max_frame_len: MAX_FRAME_LEN,
            finished_memory: 4096,
            reassembly: ReassemblerConfig::default(),
            escapes: Escapes::Strict,
        }
    }
}

/// A configuration [`Adapter::new`] refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One RRPC request for a terminal, as given to [`Adapter::submit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    /// The application's id for the request (the RRPC router's token); unique
    /// among the requests the adapter holds.
    pub token: u64,
    /// The terminal.
    pub phone: Phone,
    /// The pass-through type byte (the RRpc ContentType); any value.
    pub content_type: u8,
    /// The pass-through content (the RRPC request payload).
    pub content: &'a [u8],
    /// How the call completes; `None` for [`AdapterConfig::default_completion`].
    pub completion: Option<Completion>,
    /// Time (same clock as `now_ms`) after which no reply is made.
    pub deadline_ms: u64,
}

impl<'a> Call<'a> {
    /// A call with the adapter's default completion.
    pub fn new(
        token: u64,
        phone: Phone,
        content_type: u8,
        content: &'a [u8],
        deadline_ms: u64,
    ) -> Call<'a> {
        Call {
            token,
            phone,
            content_type,
            content,
            completion: None,
            deadline_ms,
        }
    }

    /// The same call with an explicit completion.
    pub fn with_completion(self, completion: Completion) -> Call<'a> {
        Call {
            completion: Some(completion),
            ..self
        }
    }
}

/// What [`Adapter::submit`] did with an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The 0x8900 frames were appended to the output.
    Sent {
        /// Serial of the message (of its first packet when sub-packaged).
        serial: u16,
        /// Frames appended (1, or the package count).
        packets: u16,
    },
    /// An Answer request of the same (terminal, type) is outstanding: this one
    /// waits (nothing appended) and comes out as [`Event::SendQueued`].
    Queued {
        /// Requests ahead of it in the queue (0: next to go).
        position: usize,
    },
}

/// Why [`Adapter::submit`] refused a request. Nothing was appended and nothing
/// is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The adapter already holds a request with this token.
    DuplicateToken(u64),
    /// The deadline is not after `now_ms`.
    DeadlinePassed {
        /// The request's deadline.
        deadline_ms: u64,
        /// The time given.
        now_ms: u64,
    },
    /// The content is longer than [`AdapterConfig::max_content`].
    ContentTooLong {
        /// Content bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An Answer request of this (terminal, type) is outstanding, and the
    /// policy is [`BusyPolicy::Refuse`].
    Busy {
        /// The terminal.
        phone: Phone,
        /// The type byte.
        content_type: u8,
    },
    /// The queue of this (terminal, type) is full ([`BusyPolicy::Queue`]).
    QueueFull {
        /// The terminal.
        phone: Phone,
        /// The type byte.
        content_type: u8,
        /// The limit.
        max: usize,
    },
    /// [`AdapterConfig::max_pending`] requests are held already.
    TableFull {
        /// The limit.
        max: usize,
    },
    /// Queuing the content would exceed [`AdapterConfig::max_queued_bytes`].
    QueuedBytes {
        /// The limit.
        max: usize,
    },
    /// The terminal is not bound to a connection: the application has not
    /// called [`Adapter::terminal_authenticated`] for it (or it went away since).
    NotConnected {
        /// The terminal.
        phone: Phone,
    },
    /// Every run of consecutive serials the message needs is held by pending
    /// requests of this terminal.
    SerialsExhausted {
        /// The terminal.
        phone: Phone,
        /// Consecutive serials needed.
        packets: usize,
    },
    /// The frames could not be encoded (too many packets, for instance).
    Encode(EncodeError),
}

impl SubmitError {
    /// The payload an application may answer a refused RRPC call with:
    /// `{"jt808":"error","reason":"busy"}` for refusals by capacity (busy pair,
    /// full queue, full table, too many queued bytes, serials exhausted);
    /// `None` for the others (the caller's mistakes, and a terminal without a
    /// connection, which the application answers as it sees fit).
    pub fn reply_payload(&self) -> Option<Vec<u8>> {
        match self {
            SubmitError::Busy { .. }
            | SubmitError::QueueFull { .. }
            | SubmitError::TableFull { .. }
            | SubmitError::QueuedBytes { .. }
            | SubmitError::SerialsExhausted { .. } => Some(error_payload(ErrorReason::Busy)),
            SubmitError::NotConnected { .. }
            | SubmitError::DuplicateToken(_)
            | SubmitError::DeadlinePassed { .. }
            | SubmitError::ContentTooLong { .. }
            | SubmitError::Encode(_) => None,
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::DuplicateToken(t) => {
                write!(f, "token {t} is already held by a pending request")
            }
            SubmitError::DeadlinePassed {
                deadline_ms,
                now_ms,
            } => write!(f, "deadline {deadline_ms} ms is not after now ({now_ms} ms)"),
            SubmitError::ContentTooLong { len, max } => {
                write!(f, "content of {len} bytes is longer than the limit of {max}")
            }
            SubmitError::Busy {
                phone,
                content_type,
            } => write!(
                f,
                "terminal {phone} already has an Answer request of type 0x{content_type:02x} outstanding (busy policy: refuse)"
            ),
            SubmitError::QueueFull {
                phone,
                content_type,
                max,
            } => write!(
                f,
                "terminal {phone} already has {max} requests of type 0x{content_type:02x} queued behind the outstanding one"
            ),
            SubmitError::TableFull { max } => {
                write!(f, "{max} requests are pending already (max_pending)")
            }
            SubmitError::QueuedBytes { max } => write!(
                f,
                "queued requests would hold more than {max} content bytes (max_queued_bytes)"
            ),
            SubmitError::NotConnected { phone } => write!(
                f,
                "terminal {phone} is not bound to a connection (it has not authenticated)"
            ),
            SubmitError::SerialsExhausted { phone, packets } => write!(
                f,
                "terminal {phone} has no {packets} consecutive free serial numbers (all held by pending requests)"
            ),
            SubmitError::Encode(e) => write!(f, "cannot encode the 0x8900 frames: {e}"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// What a reply payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// `{"jt808":"ack",...}`: the terminal acknowledged with result 0.
    Ack,
    /// The content of the terminal's 0x0900.
    Answer,
    /// `{"jt808":"error",...}`.
    Error,
}

/// The error payloads without a result byte (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// `terminal disconnected`: the terminal went away with the request pending.
    TerminalDisconnected,
    /// `busy`: the request could not be sent for lack of room.
    Busy,
    /// `send failed`: the application could not write the frames.
    SendFailed,
}

impl ErrorReason {
    /// The `reason` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::TerminalDisconnected => "terminal disconnected",
            ErrorReason::Busy => "busy",
            ErrorReason::SendFailed => "send failed",
        }
    }
}

/// `{"jt808":"ack","result":0,"serial":N}`.
pub fn ack_payload(serial: u16) -> Vec<u8> {
    format!(r#"{{"jt808":"ack","result":0,"serial":{serial}}}"#).into_bytes()
}

/// `{"jt808":"error","reason":"...","result":R,"serial":N}` for a 0x0001
/// result byte other than 0 (reason `failure`, `message error`, `not
/// supported`, or `unknown result`).
pub fn result_error_payload(result: u8, serial: u16) -> Vec<u8> {
    let reason = match result {
        1 => "failure",
        2 => "message error",
        3 => "not supported",
        _ => "unknown result",
    };
    format!(r#"{{"jt808":"error","reason":"{reason}","result":{result},"serial":{serial}}}"#)
        .into_bytes()
}

/// `{"jt808":"error","reason":"..."}` for errors without a result byte.
pub fn error_payload(reason: ErrorReason) -> Vec<u8> {
    format!(r#"{{"jt808":"error","reason":"{}"}}"#, reason.as_str()).into_bytes()
}

/// Something the application must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Answer RRPC request `token` with `payload` (the router's reply).
    Reply {
        /// The request.
        token: u64,
        /// Its terminal.
        phone: Phone,
        /// What the payload is.
        kind: ReplyKind,
        /// The reply payload.
        payload: Vec<u8>,
    },
    /// Request `token` reached its deadline unanswered and was released; send
    /// no reply (the RRPC caller sees TIMEOUT).
    Expired {
        /// The request.
        token: u64,
        /// Its terminal.
        phone: Phone,
    },
    /// A queued request goes out now: write `frames` to the terminal.
    SendQueued {
        /// The request.
        token: u64,
        /// Its terminal.
        phone: Phone,
        /// Serial of the message (of its first packet).
        serial: u16,
        /// The escaped 0x8900 frames, back to back.
        frames: Vec<u8>,
    },
    /// A 0x0900 no request waited for: forward it on the application's uplink.
    Uplink {
        /// The terminal.
        phone: Phone,
        /// The type byte.
        content_type: u8,
        /// The content after the type byte.
        content: Vec<u8>,
        /// An Answer request of this (terminal, type) expired recently: this is
        /// probably its late answer.
        late: bool,
    },
    /// From [`Adapter::on_bytes`]: a frame that is not the adapter's
    /// (registration, heartbeat, location, a 0x0001 to another message...).
    Frame {
        /// The connection it came on.
        conn: u64,
        /// The frame (one packet, when sub-packaged).
        frame: Frame,
    },
    /// From [`Adapter::on_bytes`]: bytes that are not a valid frame, or a frame
    /// whose body does not fit its message id; dropped.
    Malformed {
        /// The connection they came on.
        conn: u64,
        /// Which rule was broken, and where.
        reason: String,
    },
}

/// What [`Adapter::on_frame`] did with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The adapter's: a 0x0001 answering 0x8900, or a 0x0900 (a packet of a
    /// sub-packaged one is held until the message is whole).
    Taken,
    /// Not the adapter's: any other message id, or a 0x0001 answering another
    /// message id. Handle it yourself.
    NotMine,
    /// A 0x0001 or 0x0900 that cannot be used; dropped and counted.
    Dropped(FrameError),
    /// A 0x0001 answering 0x8900, or a 0x0900, from a connection its terminal
    /// is not bound to ([`Adapter::terminal_authenticated`]): it completes
    /// nothing, is counted in
    /// [`AdapterStats::unauthenticated`](AdapterStats#structfield.unauthenticated),
    /// and is the application's to handle (from [`Adapter::on_bytes`],
    /// [`Event::Frame`]).
    Unauthenticated,
}

/// Why a 0x0001 or 0x0900 was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The body does not have the shape of its message id.
    Body(BodyError),
    /// A 0x0900 packet the reassembler refused.
    Reassembly(ReassemblyError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Body(e) => e.fmt(f),
            FrameError::Reassembly(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FrameError {}

/// Why [`Adapter::on_bytes`] or [`Adapter::terminal_authenticated`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    /// A new connection, and [`AdapterConfig::max_connections`] are open.
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// A new terminal, and [`AdapterConfig::max_terminals`] are known.
    TooManyTerminals {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::TooManyConnections { max } => {
                write!(f, "{max} connections are open already (max_connections)")
            }
            ConnectionError::TooManyTerminals { max } => {
                write!(f, "{max} terminals are known already (max_terminals)")
            }
        }
    }
}

impl std::error::Error for ConnectionError {}

/// Counters of an [`Adapter`]; all count from its creation except the gauges
/// at the end. This struct is also the C API's `rrpc_jt808_adapter_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Requests accepted by `submit` (sent or queued).
    pub submitted: u64,
    /// Requests refused by `submit`.
    pub refused: u64,
    /// Requests that had to wait in a (terminal, type) queue.
    pub queued: u64,
    /// 0x8900 messages sent (at submit, or later from a queue).
    pub sent: u64,
    /// 0x8900 frames sent (packets of sub-packaged messages counted one by one).
    pub packets_sent: u64,
    /// Reply events, of every kind.
    pub replies: u64,
    /// Replies with the ack payload (Ack requests, result 0).
    pub acked: u64,
    /// Replies with a 0x0900's content (Answer requests).
    pub answered: u64,
    /// Replies with an error payload from a 0x0001 result other than 0.
    pub failed: u64,
    /// Answer requests whose delivery a 0x0001 with result 0 confirmed.
    pub delivered: u64,
    /// Requests released at their deadline without a reply.
    pub expired: u64,
    /// Requests answered with `terminal disconnected`.
    pub disconnected: u64,
    /// Requests answered with `send failed` or `busy` when they could not go out.
    pub send_failures: u64,
    /// Requests released by `cancel`.
    pub cancelled: u64,
    /// 0x0001 answering 0x8900 packets that are not the last of their message.
    pub packet_acks: u64,
    /// 0x0001 answering 0x8900 with a serial no request holds, nor held recently.
    pub unknown_acks: u64,
    /// 0x0001 answering 0x8900 for a request that had already finished.
    pub late_acks: u64,
    /// 0x0900 that no request waited for (delivered as `Uplink`).
    pub uplinks: u64,
    /// The part of `uplinks` whose (terminal, type) had an Answer request expire recently.
    pub late_uplinks: u64,
    /// 0x0001 or 0x0900 dropped because their body does not fit the message id.
    pub bad_bodies: u64,
    /// 0x0900 packets the reassembler refused.
    pub reassembly_errors: u64,
    /// Frames `on_bytes` could not decode.
    pub malformed: u64,
    /// Frames that were not the adapter's.
    pub other_frames: u64,
    /// 0x0001 answering 0x8900 and 0x0900 that came on a connection their
    /// terminal is not bound to: they completed nothing.
    pub unauthenticated: u64,
    /// Calls of [`Adapter::terminal_authenticated`] that bound a terminal to a
    /// connection (rebinds included).
    pub bindings: u64,
    /// The part of `bindings` that moved a terminal from another connection
    /// (a reconnect while the old socket was still open).
    pub rebinds: u64,
    /// Frames the connections' decoders could read only leniently (unescaped
    /// 0x7d; [`Escapes::Lenient`]).
    pub lenient_frames: u64,
    /// Gauge: requests sent and waiting for their answer.
    pub pending: u64,
    /// Gauge: requests waiting in queues.
    pub queued_now: u64,
    /// Gauge: terminals known.
    pub terminals: u64,
    /// Gauge: connections with a decoder.
    pub connections: u64,
    /// Gauge: sub-packaged 0x0900 messages being put together.
    pub partials: u64,
}

counter_set!(AdapterStats {
    submitted,
    refused,
    queued,
    sent,
    packets_sent,
    replies,
    acked,
    answered,
    failed,
    delivered,
    expired,
    disconnected,
    send_failures,
    cancelled,
    packet_acks,
    unknown_acks,
    late_acks,
    uplinks,
    late_uplinks,
    bad_bodies,
    reassembly_errors,
    malformed,
    other_frames,
    unauthenticated,
    bindings,
    rebinds,
    lenient_frames,
    pending,
    queued_now,
    terminals,
    connections,
    partials,
});

#[derive(Debug)]
enum State {
    Queued { content: Vec<u8> },
    Sent { serial: u16, packets: u16 },
}

#[derive(Debug)]
struct Entry {
    token: u64,
    phone: Phone,
    content_type: u8,
    completion: Completion,
    deadline_ms: u64,
    state: State,
}

/// The outstanding Answer request of a (terminal, type), and those waiting.
#[derive(Debug)]
struct Slot {
    active: u64,
    queue: VecDeque<u64>,
}

#[derive(Debug, Default)]
struct Terminal {
    next_serial: u16,
    protocol_version: Option<u8>,
    conn: Option<u64>,
    entries: HashSet<u64>,
}

#[derive(Debug)]
struct Conn {
    decoder: StreamDecoder,
    /// Terminals whose `conn` is this connection.
    phones: HashSet<Phone>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LateKey {
    Serial(Phone, u16),
    Type(Phone, u8),
}

/// A bounded memory of recently finished requests.
#[derive(Debug)]
struct Finished {
    cap: usize,
    seq: u64,
    map: HashMap<LateKey, u64>,
    order: VecDeque<(LateKey, u64)>,
}

impl Finished {
    fn new(cap: usize) -> Finished {
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

enum Outcome {
    Reply(ReplyKind, Vec<u8>),
    Expired,
    Disconnected,
    SendFailed(ErrorReason),
    Cancelled,
}

/// The pass-through correlator (see the module documentation).
#[derive(Debug)]
pub struct Adapter {
    config: AdapterConfig,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    tokens: HashMap<u64, u64>,
    serials: HashMap<(Phone, u16), u64>,
    slots: HashMap<(Phone, u8), Slot>,
    deadlines: BTreeSet<(u64, u64)>,
    terminals: HashMap<Phone, Terminal>,
    conns: HashMap<u64, Conn>,
    reassembler: Reassembler,
    finished: Finished,
    queued_bytes: usize,
    queued_now: usize,
    stats: AdapterStats,
}

impl Adapter {
    /// An adapter with these limits.
    ///
    /// # Errors
    /// [`ConfigError`] when `max_body` is outside 2..=1023, `max_frame_len`
    /// is below the shortest frame (15 bytes), or a reassembly limit is outside
    /// its range ([`ReassemblerConfig::check`]).
    pub fn new(config: AdapterConfig) -> Result<Adapter, ConfigError> {
        if !(2..=MAX_BODY_LEN).contains(&config.max_body) {
            return Err(ConfigError(format!(
                "max_body {} is outside 2..={MAX_BODY_LEN}",
                config.max_body
            )));
        }
        if config.max_frame_len < 15 {
            return Err(ConfigError(format!(
                "max_frame_len {} is below the shortest frame (15 bytes)",
                config.max_frame_len
            )));
        }
        let reassembler = Reassembler::new(config.reassembly)?;
        Ok(Adapter {
            next_id: 0,
            entries: HashMap::new(),
            tokens: HashMap::new(),
            serials: HashMap::new(),
            slots: HashMap::new(),
            deadlines: BTreeSet::new(),
            terminals: HashMap::new(),
            conns: HashMap::new(),
            reassembler,
            finished: Finished::new(config.finished_memory),
            queued_bytes: 0,
            queued_now: 0,
            stats: AdapterStats::default(),
            config,
        })
    }

    /// The configuration given to [`Adapter::new`].
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// Requests held: sent and waiting, and queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Requests sent and waiting for their answer.
    pub fn pending_len(&self) -> usize {
        self.entries.len() - self.queued_now
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
        self.terminals.get(phone).map_or(0, |t| t.entries.len())
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

    /// The counters, gauges included.
    pub fn stats(&self) -> AdapterStats {
        AdapterStats {
            pending: self.pending_len() as u64,
            queued_now: self.queued_now as u64,
            terminals: self.terminals.len() as u64,
            connections: self.conns.len() as u64,
            partials: self.reassembler.partials() as u64,
            lenient_frames: self.stats.lenient_frames
                + self
                    .conns
                    .values()
                    .map(|c| c.decoder.lenient_frames())
                    .sum::<u64>(),
            ..self.stats
        }
    }

    fn terminal_entry(&mut self, phone: &Phone) -> Result<&mut Terminal, ConnectionError> {
        let max = self.config.max_terminals;
        let len = self.terminals.len();
        match self.terminals.entry(*phone) {
            hashbrown::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            hashbrown::hash_map::Entry::Vacant(v) => {
                if len >= max {
                    return Err(ConnectionError::TooManyTerminals { max });
                }
                Ok(v.insert(Terminal::default()))
            }
        }
    }

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
            Ok(_) => self.stats.submitted += 1,
            Err(_) => self.stats.refused += 1,
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
        if self.entries.len() >= self.config.max_pending {
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
            if let Some(slot) = self.slots.get(&key) {
                if self.config.busy_policy == BusyPolicy::Refuse {
                    return Err(SubmitError::Busy {
                        phone,
                        content_type: call.content_type,
                    });
                }
                if slot.queue.len() >= self.config.max_queue_per_key {
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
                let position = slot.queue.len();
                let id = self.insert(
                    call,
                    completion,
                    State::Queued {
                        content: call.content.to_vec(),
                    },
                );
                self.queued_bytes += call.content.len();
                self.queued_now += 1;
                self.stats.queued += 1;
                if let Some(slot) = self.slots.get_mut(&key) {
                    slot.queue.push_back(id);
                }
                return Ok(Submitted::Queued { position });
            }
        }

        let (serial, packets) = self.send_frames(&phone, call.content_type, call.content, out)?;
        let id = self.insert(call, completion, State::Sent { serial, packets });
        self.index_serials(&phone, serial, packets, id);
        if completion == Completion::Answer {
            self.slots.insert(
                key,
                Slot {
                    active: id,
                    queue: VecDeque::new(),
                },
            );
        }
        Ok(Submitted::Sent { serial, packets })
    }

    fn insert(&mut self, call: &Call<'_>, completion: Completion, state: State) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.entries.insert(
            id,
            Entry {
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
            t.entries.insert(id);
        }
        id
    }

    fn index_serials(&mut self, phone: &Phone, serial: u16, packets: u16, id: u64) {
        for k in 0..packets {
            self.serials.insert((*phone, serial.wrapping_add(k)), id);
        }
    }

    /// Packets a content needs: as `split_passthrough` counts them.
    fn packets_for(&self, content_len: usize) -> usize {
        let total = content_len.saturating_add(1);
        if total <= self.config.max_body {
            1
        } else {
            total.div_ceil(self.config.max_body)
        }
    }

    /// The first of `count` consecutive serials, from the terminal's counter on,
    /// none held by a pending request of the terminal.
    fn free_serials(&self, phone: &Phone, start: u16, count: usize) -> Option<u16> {
        if count == 0 || count > 65536 {
            return None;
        }
        let mut s = start;
        let mut scanned = 0usize;
        while scanned < 65536 {
            let clash = (0..count).find(|&k| {
                self.serials
                    .contains_key(&(*phone, s.wrapping_add(k as u16)))
            });
            match clash {
                None => return Some(s),
                Some(k) => {
                    s = s.wrapping_add(k as u16).wrapping_add(1);
                    scanned += k + 1;
                }
            }
        }
        None
    }

    /// Encodes the 0x8900 message for the terminal with fresh serials and
    /// appends it to `out`; advances the terminal's counter.
    fn send_frames(
        &mut self,
        phone: &Phone,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(u16, u16), SubmitError> {
        let count = self.packets_for(content.len());
        if count > usize::from(u16::MAX) {
            return Err(SubmitError::Encode(EncodeError::TooManyPackets(count)));
        }
        let (start, protocol_version) = match self.terminals.get(phone) {
            Some(t) => (t.next_serial, t.protocol_version),
            None => (0, None),
        };
        let serial =
            self.free_serials(phone, start, count)
                .ok_or(SubmitError::SerialsExhausted {
                    phone: *phone,
                    packets: count,
                })?;
        let mut header = Header::new(MSG_DOWNLINK_PASSTHROUGH, *phone, serial);
        if header.version == Version::V2019 {
            if let Some(v) = protocol_version {
                header.protocol_version = v;
            }
        }
        let frames = split_passthrough(&header, content_type, content, self.config.max_body)
            .map_err(SubmitError::Encode)?;
        if frames.len() != count {
            return Err(SubmitError::Encode(EncodeError::TooManyPackets(
                frames.len(),
            )));
        }
        let packets = count as u16;
        out.reserve(frames.iter().map(Vec::len).sum());
        for f in &frames {
            out.extend_from_slice(f);
        }
        if let Some(t) = self.terminals.get_mut(phone) {
            t.next_serial = serial.wrapping_add(packets);
        }
        self.stats.sent += 1;
        self.stats.packets_sent += u64::from(packets);
        Ok((serial, packets))
    }

    /// Releases request `id`, makes its event, and lets the next queued request
    /// of its (terminal, type) go out when it held the slot.
    fn finish(&mut self, id: u64, outcome: Outcome, now_ms: u64, events: &mut Vec<Event>) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.tokens.remove(&entry.token);
        self.deadlines.remove(&(entry.deadline_ms, id));
        let phone = entry.phone;
        if let Some(t) = self.terminals.get_mut(&phone) {
            t.entries.remove(&id);
        }
        let key = (phone, entry.content_type);
        let mut held_slot = false;
        match entry.state {
            State::Sent { serial, packets } => {
                for k in 0..packets {
                    let s = serial.wrapping_add(k);
                    if self.serials.get(&(phone, s)) == Some(&id) {
                        self.serials.remove(&(phone, s));
                    }
                    self.finished.remember(LateKey::Serial(phone, s));
                }
                held_slot = self.slots.get(&key).is_some_and(|s| s.active == id);
            }
            State::Queued { content } => {
                self.queued_bytes = self.queued_bytes.saturating_sub(content.len());
                self.queued_now = self.queued_now.saturating_sub(1);
                if let Some(slot) = self.slots.get_mut(&key) {
                    slot.queue.retain(|&q| q != id);
                }
            }
        }
        let token = entry.token;
        match outcome {
            Outcome::Reply(kind, payload) => {
                self.stats.replies += 1;
                match kind {
                    ReplyKind::Ack => self.stats.acked += 1,
                    ReplyKind::Answer => self.stats.answered += 1,
                    ReplyKind::Error => self.stats.failed += 1,
                }
                events.push(Event::Reply {
                    token,
                    phone,
                    kind,
                    payload,
                });
            }
            Outcome::Expired => {
                self.stats.expired += 1;
                if entry.completion == Completion::Answer {
                    self.finished
                        .remember(LateKey::Type(phone, entry.content_type));
                }
                events.push(Event::Expired { token, phone });
            }
            Outcome::Disconnected => {
                self.stats.replies += 1;
                self.stats.disconnected += 1;
                events.push(Event::Reply {
                    token,
                    phone,
                    kind: ReplyKind::Error,
                    payload: error_payload(ErrorReason::TerminalDisconnected),
                });
            }
            Outcome::SendFailed(reason) => {
                self.stats.replies += 1;
                self.stats.send_failures += 1;
                events.push(Event::Reply {
                    token,
                    phone,
                    kind: ReplyKind::Error,
                    payload: error_payload(reason),
                });
            }
            Outcome::Cancelled => self.stats.cancelled += 1,
        }
        if held_slot {
            self.advance_slot(key, now_ms, events);
        }
    }

    /// The slot's outstanding request finished: the next live queued request
    /// goes out, or the slot is freed.
    fn advance_slot(&mut self, key: (Phone, u8), now_ms: u64, events: &mut Vec<Event>) {
        loop {
            let Some(slot) = self.slots.get_mut(&key) else {
                return;
            };
            let Some(next) = slot.queue.pop_front() else {
                self.slots.remove(&key);
                return;
            };
            let Some(entry) = self.entries.get(&next) else {
                continue;
            };
            if entry.deadline_ms <= now_ms {
                self.finish(next, Outcome::Expired, now_ms, events);
                continue;
            }
            let State::Queued { content } = &entry.state else {
                continue;
            };
            let content = content.clone();
            let (token, phone, content_type) = (entry.token, entry.phone, entry.content_type);
            let mut frames = Vec::new();
            match self.send_frames(&phone, content_type, &content, &mut frames) {
                Ok((serial, packets)) => {
                    if let Some(e) = self.entries.get_mut(&next) {
                        e.state = State::Sent { serial, packets };
                    }
                    self.queued_bytes = self.queued_bytes.saturating_sub(content.len());
                    self.queued_now = self.queued_now.saturating_sub(1);
                    self.index_serials(&phone, serial, packets, next);
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.active = next;
                    }
                    events.push(Event::SendQueued {
                        token,
                        phone,
                        serial,
                        frames,
                    });
                    return;
                }
                Err(_) => {
                    self.finish(next, Outcome::SendFailed(ErrorReason::Busy), now_ms, events);
                }
            }
        }
    }

    /// Takes one frame a terminal sent on connection `conn`, decoded by the
    /// application. 0x0001 answering 0x8900 and 0x0900 are the adapter's when
    /// the frame's terminal is bound to `conn`
    /// ([`Adapter::terminal_authenticated`]); from any other connection they
    /// complete nothing ([`Handled::Unauthenticated`]). Everything else is
    /// [`Handled::NotMine`]. Replies, expiries of matched requests and
    /// unmatched uplinks are appended to `events`.
    pub fn on_frame(
        &mut self,
        conn: u64,
        frame: &Frame,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Handled {
        let bound = self.terminal_conn(&frame.header.phone) == Some(conn);
        if bound {
            self.note_version(&frame.header);
        }
        if !self.is_adapters(frame) {
            self.stats.other_frames += 1;
            return Handled::NotMine;
        }
        if !bound {
            self.stats.unauthenticated += 1;
            return Handled::Unauthenticated;
        }
        self.dispatch(frame, now_ms, events)
    }

    /// Whether the frame is of a kind the adapter takes: a 0x0900, or a 0x0001
    /// answering 0x8900 (a 0x0001 whose body is too short to say counts too,
    /// so that it is reported as dropped).
    fn is_adapters(&self, frame: &Frame) -> bool {
        match frame.header.msg_id {
            MSG_UPLINK_PASSTHROUGH => true,
            MSG_TERMINAL_RESPONSE => !matches!(
                Body::parse(MSG_TERMINAL_RESPONSE, &frame.body),
                Ok(Body::GeneralResponse { reply_id, .. }) if reply_id != MSG_DOWNLINK_PASSTHROUGH
            ),
            _ => false,
        }
    }

    fn dispatch(&mut self, frame: &Frame, now_ms: u64, events: &mut Vec<Event>) -> Handled {
        let phone = frame.header.phone;
        match frame.header.msg_id {
            MSG_TERMINAL_RESPONSE => match Body::parse(MSG_TERMINAL_RESPONSE, &frame.body) {
                Ok(Body::GeneralResponse {
                    reply_serial,
                    reply_id,
                    result,
                }) => {
                    if reply_id != MSG_DOWNLINK_PASSTHROUGH {
                        return Handled::NotMine;
                    }
                    self.on_ack(phone, reply_serial, result, now_ms, events);
                    Handled::Taken
                }
                Ok(_) => Handled::NotMine,
                Err(e) => {
                    self.stats.bad_bodies += 1;
                    Handled::Dropped(FrameError::Body(e))
                }
            },
            MSG_UPLINK_PASSTHROUGH => {
                if frame.header.package.is_some() {
                    match self.reassembler.push(frame.clone(), now_ms) {
                        Ok(None) => Handled::Taken,
                        Ok(Some(whole)) => self.uplink_body(&whole, now_ms, events),
                        Err(e) => {
                            self.stats.reassembly_errors += 1;
                            Handled::Dropped(FrameError::Reassembly(e))
                        }
                    }
                } else {
                    self.uplink_body(frame, now_ms, events)
                }
            }
            _ => Handled::NotMine,
        }
    }

    fn uplink_body(&mut self, frame: &Frame, now_ms: u64, events: &mut Vec<Event>) -> Handled {
        match Body::parse(MSG_UPLINK_PASSTHROUGH, &frame.body) {
            Ok(Body::Passthrough {
                content_type,
                content,
            }) => {
                self.on_uplink(frame.header.phone, content_type, content, now_ms, events);
                Handled::Taken
            }
            Ok(_) => Handled::NotMine,
            Err(e) => {
                self.stats.bad_bodies += 1;
                Handled::Dropped(FrameError::Body(e))
            }
        }
    }

    fn on_ack(
        &mut self,
        phone: Phone,
        serial: u16,
        result: ResponseResult,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let Some(&id) = self.serials.get(&(phone, serial)) else {
            if self.finished.contains(&LateKey::Serial(phone, serial)) {
                self.stats.late_acks += 1;
            } else {
                self.stats.unknown_acks += 1;
            }
            return;
        };
        let Some(entry) = self.entries.get(&id) else {
            self.serials.remove(&(phone, serial));
            self.stats.unknown_acks += 1;
            return;
        };
        if entry.deadline_ms <= now_ms {
            self.stats.late_acks += 1;
            self.finish(id, Outcome::Expired, now_ms, events);
            return;
        }
        let State::Sent {
            serial: first,
            packets,
        } = entry.state
        else {
            self.stats.unknown_acks += 1;
            return;
        };
        if result != ResponseResult::Ok {
            let payload = result_error_payload(result.code(), first);
            self.finish(
                id,
                Outcome::Reply(ReplyKind::Error, payload),
                now_ms,
                events,
            );
            return;
        }
        let last = first.wrapping_add(packets.saturating_sub(1));
        if serial != last {
            self.stats.packet_acks += 1;
            return;
        }
        match entry.completion {
            Completion::Ack => {
                let payload = ack_payload(first);
                self.finish(id, Outcome::Reply(ReplyKind::Ack, payload), now_ms, events);
            }
            Completion::Answer => self.stats.delivered += 1,
        }
    }

    fn on_uplink(
        &mut self,
        phone: Phone,
        content_type: u8,
        content: &[u8],
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let key = (phone, content_type);
        if let Some(id) = self.slots.get(&key).map(|s| s.active) {
            match self.entries.get(&id).map(|e| e.deadline_ms > now_ms) {
                Some(true) => {
                    let payload = content.to_vec();
                    self.finish(
                        id,
                        Outcome::Reply(ReplyKind::Answer, payload),
                        now_ms,
                        events,
                    );
                    return;
                }
                Some(false) => self.finish(id, Outcome::Expired, now_ms, events),
                // A slot whose request is gone lets the next one go out.
                None => self.advance_slot(key, now_ms, events),
            }
        }
        let late = self.finished.contains(&LateKey::Type(phone, content_type));
        self.stats.uplinks += 1;
        if late {
            self.stats.late_uplinks += 1;
        }
        events.push(Event::Uplink {
            phone,
            content_type,
            content: content.to_vec(),
            late,
        });
    }

    /// Records the protocol version of a bound terminal's frames: outgoing
    /// 2019 frames use the one it last used.
    fn note_version(&mut self, header: &Header) {
        if header.version != Version::V2019 {
            return;
        }
        if let Some(t) = self.terminals.get_mut(&header.phone) {
            t.protocol_version = Some(header.protocol_version);
        }
    }

    fn conn_entry(&mut self, conn: u64) -> Result<&mut Conn, ConnectionError> {
        let max = self.config.max_connections;
        let len = self.conns.len();
        let max_frame = self.config.max_frame_len;
        let escapes = self.config.escapes;
        match self.conns.entry(conn) {
            hashbrown::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            hashbrown::hash_map::Entry::Vacant(v) => {
                if len >= max {
                    return Err(ConnectionError::TooManyConnections { max });
                }
                Ok(v.insert(Conn {
                    decoder: StreamDecoder::with_escapes(max_frame, escapes),
                    phones: HashSet::new(),
                }))
            }
        }
    }

    /// Binds terminal `phone` to connection `conn`: from now on its 0x8900
    /// downlinks go to `conn`, and only the 0x0001 and 0x0900 frames that come
    /// on `conn` with its phone number complete its requests. Call it only once
    /// the terminal has proven who it is on `conn`: its authentication
    /// (0x0102) carried the code the application issued at its registration.
    /// Nothing else binds a terminal: a phone number in a frame's header is a
    /// claim anyone can make.
    ///
    /// A terminal bound to another connection is moved (a reconnect while the
    /// old socket is still half-open): its pending requests stay pending (their
    /// acks and answers are then taken from `conn`), its partial sub-packaged
    /// uplinks are dropped, and closing the old connection no longer affects
    /// it.
    ///
    /// # Errors
    /// [`ConnectionError`] when the terminal or the connection is new and its
    /// table is full; nothing changes then.
    pub fn terminal_authenticated(
        &mut self,
        phone: &Phone,
        conn: u64,
    ) -> Result<(), ConnectionError> {
        if !self.terminals.contains_key(phone) && self.terminals.len() >= self.config.max_terminals
        {
            return Err(ConnectionError::TooManyTerminals {
                max: self.config.max_terminals,
            });
        }
        self.conn_entry(conn)?;
        let t = self.terminal_entry(phone)?;
        if t.conn == Some(conn) {
            return Ok(());
        }
        let old = t.conn.replace(conn);
        self.stats.bindings += 1;
        if let Some(o) = old {
            self.stats.rebinds += 1;
            if let Some(c) = self.conns.get_mut(&o) {
                c.phones.remove(phone);
            }
            self.reassembler.forget(phone);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phones.insert(*phone);
        }
        Ok(())
    }

    /// Takes bytes received on connection `conn` (any chunking). Each complete
    /// frame is decoded and handled as by [`Adapter::on_frame`]; frames that are
    /// not the adapter's, and the adapter's kinds from a terminal not bound to
    /// `conn` ([`Handled::Unauthenticated`]), come back as [`Event::Frame`],
    /// undecodable ones as [`Event::Malformed`]. No frame binds its terminal to
    /// `conn`: only [`Adapter::terminal_authenticated`] does.
    ///
    /// # Errors
    /// [`ConnectionError::TooManyConnections`] for a new connection when the
    /// table is full; the bytes are dropped.
    pub fn on_bytes(
        &mut self,
        conn: u64,
        bytes: &[u8],
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnectionError> {
        let c = self.conn_entry(conn)?;
        c.decoder.push(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return Ok(());
            };
            let Some(result) = c.decoder.next_frame() else {
                return Ok(());
            };
            match result {
                Ok(frame) => match self.on_frame(conn, &frame, now_ms, events) {
                    Handled::Taken => {}
                    Handled::NotMine | Handled::Unauthenticated => {
                        events.push(Event::Frame { conn, frame })
                    }
                    Handled::Dropped(e) => events.push(Event::Malformed {
                        conn,
                        reason: format!(
                            "0x{:04x} from terminal {}: {e}",
                            frame.header.msg_id, frame.header.phone
                        ),
                    }),
                },
                Err(e) => {
                    self.stats.malformed += 1;
                    events.push(Event::Malformed {
                        conn,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// The connection is gone: its decoder is dropped, and every terminal whose
    /// connection it was is disconnected ([`Adapter::terminal_disconnected`]).
    /// Returns the requests answered.
    pub fn connection_closed(&mut self, conn: u64, now_ms: u64, events: &mut Vec<Event>) -> usize {
        let Some(c) = self.conns.remove(&conn) else {
            return 0;
        };
        self.stats.lenient_frames += c.decoder.lenient_frames();
        let mut n = 0;
        for phone in c.phones {
            if self.terminal_conn(&phone) == Some(conn) {
                n += self.terminal_disconnected(&phone, now_ms, events);
            }
        }
        n
    }

    /// The terminal went away: every request it has, sent or queued, is answered
    /// with `{"jt808":"error","reason":"terminal disconnected"}` (in submission
    /// order), and the terminal is forgotten (its serial counter starts again at
    /// 0). Returns the requests answered.
    pub fn terminal_disconnected(
        &mut self,
        phone: &Phone,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> usize {
        // Its half-received uplinks will never be completed.
        self.reassembler.forget(phone);
        let Some(t) = self.terminals.remove(phone) else {
            return 0;
        };
        if let Some(c) = t.conn.and_then(|c| self.conns.get_mut(&c)) {
            c.phones.remove(phone);
        }
        let mut ids: Vec<u64> = t.entries.into_iter().collect();
        ids.sort_unstable();
        // Free the terminal's slots first, so that nothing queued goes out.
        for id in &ids {
            if let Some(e) = self.entries.get(id) {
                self.slots.remove(&(e.phone, e.content_type));
            }
        }
        for &id in &ids {
            self.finish(id, Outcome::Disconnected, now_ms, events);
        }
        ids.len()
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
        let before = self.stats.expired;
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            self.deadlines.pop_first();
            self.finish(id, Outcome::Expired, now_ms, events);
        }
        self.reassembler.expire(now_ms);
        (self.stats.expired - before) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jt808::{decode_frame, encode_frame};

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
    fn payloads_are_byte_exact() {
        assert_eq!(
            ack_payload(65535),
            br#"{"jt808":"ack","result":0,"serial":65535}"#
        );
        assert_eq!(
            result_error_payload(3, 7),
            br#"{"jt808":"error","reason":"not supported","result":3,"serial":7}"#
        );
        assert_eq!(
            result_error_payload(200, 7),
            br#"{"jt808":"error","reason":"unknown result","result":200,"serial":7}"#
        );
        assert_eq!(
            error_payload(ErrorReason::SendFailed),
            br#"{"jt808":"error","reason":"send failed"}"#
        );
    }

    #[test]
    fn serial_search_skips_held_runs() {
        let mut a = Adapter::new(AdapterConfig::default()).unwrap();
        let p = phone("1");
        a.set_next_serial(&p, 65534).unwrap();
        a.serials.insert((p, 65535), 99);
        a.serials.insert((p, 1), 99);
        // A 3-serial run cannot start at 65534 (65535 held) nor at 0 (1 held).
        assert_eq!(a.free_serials(&p, 65534, 3), Some(2));
        assert_eq!(a.free_serials(&p, 65534, 1), Some(65534));
        for s in 0..=u16::MAX {
            a.serials.insert((p, s), 99);
        }
        assert_eq!(a.free_serials(&p, 0, 1), None);
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
