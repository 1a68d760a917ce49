//! What goes into the adapter and what comes out: calls, what became of them,
//! events, the reply payloads it makes, and its errors.

use super::super::codec::{BodyError, EncodeError, Frame, Phone};
use super::super::packets::ReassemblyError;
use super::Completion;
#[cfg(doc)]
use super::{Adapter, AdapterConfig, AdapterStats, BusyPolicy};

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The adapter already holds a request with this token.
    #[error("token {0} is already held by a pending request")]
    DuplicateToken(u64),
    /// The deadline is not after `now_ms`.
    #[error("deadline {deadline_ms} ms is not after now ({now_ms} ms)")]
    DeadlinePassed {
        /// The request's deadline.
        deadline_ms: u64,
        /// The time given.
        now_ms: u64,
    },
    /// The content is longer than [`AdapterConfig::max_content`].
    #[error("content of {len} bytes is longer than the limit of {max}")]
    ContentTooLong {
        /// Content bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An Answer request of this (terminal, type) is outstanding, and the
    /// policy is [`BusyPolicy::Refuse`].
    #[error("terminal {phone} already has an Answer request of type 0x{content_type:02x} outstanding (busy policy: refuse)")]
    Busy {
        /// The terminal.
        phone: Phone,
        /// The type byte.
        content_type: u8,
    },
    /// The queue of this (terminal, type) is full ([`BusyPolicy::Queue`]).
    #[error("terminal {phone} already has {max} requests of type 0x{content_type:02x} queued behind the outstanding one")]
    QueueFull {
        /// The terminal.
        phone: Phone,
        /// The type byte.
        content_type: u8,
        /// The limit.
        max: usize,
    },
    /// [`AdapterConfig::max_pending`] requests are held already.
    #[error("{max} requests are pending already (max_pending)")]
    TableFull {
        /// The limit.
        max: usize,
    },
    /// Queuing the content would exceed [`AdapterConfig::max_queued_bytes`].
    #[error("queued requests would hold more than {max} content bytes (max_queued_bytes)")]
    QueuedBytes {
        /// The limit.
        max: usize,
    },
    /// The terminal is not bound to a connection: the application has not
    /// called [`Adapter::terminal_authenticated`] for it (or it went away since).
    #[error("terminal {phone} is not bound to a connection (it has not authenticated)")]
    NotConnected {
        /// The terminal.
        phone: Phone,
    },
    /// Every run of consecutive serials the message needs is held by pending
    /// requests of this terminal.
    #[error("terminal {phone} has no {packets} consecutive free serial numbers (all held by pending requests)")]
    SerialsExhausted {
        /// The terminal.
        phone: Phone,
        /// Consecutive serials needed.
        packets: usize,
    },
    /// The frames could not be encoded (too many packets, for instance).
    #[error("cannot encode the 0x8900 frames: {0}")]
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
    /// nothing, is counted in [`AdapterStats::unauthenticated`](AdapterStats#structfield.unauthenticated), and is the
    /// application's to handle (from [`Adapter::on_bytes`], [`Event::Frame`]).
    Unauthenticated,
}

/// Why a 0x0001 or 0x0900 was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body does not have the shape of its message id.
    #[error("{0}")]
    Body(BodyError),
    /// A 0x0900 packet the reassembler refused.
    #[error("{0}")]
    Reassembly(ReassemblyError),
}

/// Why [`Adapter::on_bytes`] or [`Adapter::terminal_authenticated`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// A new connection, and [`AdapterConfig::max_connections`] are open.
    #[error("{max} connections are open already (max_connections)")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// A new terminal, and [`AdapterConfig::max_terminals`] are known.
    #[error("{max} terminals are known already (max_terminals)")]
    TooManyTerminals {
        /// The limit.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
