//! The adapter's settings, their check, and its counters.

use crate::counters::counter_set;

use super::super::codec::{Escapes, MAX_BODY_LEN, MAX_FRAME_LEN};
use super::super::packets::ReassemblerConfig;
#[cfg(doc)]
use super::{Adapter, Event, SubmitError};

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

impl AdapterConfig {
    /// Checks the limits [`Adapter::new`] checks.
    ///
    /// # Errors
    /// [`ConfigError`] when `max_body` is outside 2..=1023, `max_frame_len`
    /// is below the shortest frame (15 bytes), or a reassembly limit is outside
    /// its range ([`ReassemblerConfig::check`]).
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(2..=MAX_BODY_LEN).contains(&self.max_body) {
            return Err(ConfigError(format!(
                "max_body {} is outside 2..={MAX_BODY_LEN}",
                self.max_body
            )));
        }
        if self.max_frame_len < 15 {
            return Err(ConfigError(format!(
                "max_frame_len {} is below the shortest frame (15 bytes)",
                self.max_frame_len
            )));
        }
        self.reassembly.check()
    }
}

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

counter_set!(AdapterStats as AdapterCounter {
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
