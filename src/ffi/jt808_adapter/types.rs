//! The C types of `rrpc_jt808_adapter_*`: its enums, the event view, the
//! settings and submit parameters with their defaults, and the callback types.

use std::ffi::{c_char, c_void};

use super::super::jt808_codec::rrpc_jt808_frame;
use super::super::misc::rrpc_bool;
use super::super::sized::settings;
use super::rrpc_jt808_adapter;
use crate::jt808::AdapterConfig;

/// How an adapter request completes (`rrpc_jt808_adapter_submit`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_jt808_completion {
    /// The adapter's `default_completion`.
    RRPC_JT808_COMPLETION_DEFAULT = 0,
    /// The terminal's 0x0001 is the reply: `{"jt808":"ack","result":0,"serial":N}`
    /// for result 0, an error payload otherwise. Use it for the IC card (type
    /// 0x0B), whose answer may take 30 s: that answer comes later as an
    /// RRPC_JT808_EVENT_UPLINK.
    RRPC_JT808_COMPLETION_ACK = 1,
    /// The next 0x0900 of the request's type from the terminal is the reply (its
    /// content, after the type byte); a 0x0001 with result 0 only confirms
    /// delivery, other results answer at once with an error payload. One such
    /// request per (terminal, type) is outstanding at a time (`busy_policy`).
    RRPC_JT808_COMPLETION_ANSWER = 2,
}

/// What a second ANSWER request for a busy (terminal, type) does.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_jt808_busy_policy {
    /// It waits (at most `max_queue_per_key` per pair) and goes out through the
    /// send function when the one before it completes; it still expires at its
    /// own deadline.
    RRPC_JT808_BUSY_QUEUE = 0,
    /// `rrpc_jt808_adapter_submit` refuses it with RRPC_STATUS_BUSY.
    RRPC_JT808_BUSY_REFUSE = 1,
}

/// The kinds of `rrpc_jt808_event`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_jt808_event_kind {
    /// Answer RRPC request `token` with `payload` (for example with
    /// `rrpc_router_reply`). `reply_kind` says what the payload is.
    RRPC_JT808_EVENT_REPLY = 0,
    /// Request `token` reached its deadline unanswered and was released: send
    /// no reply (the RRPC caller sees TIMEOUT).
    RRPC_JT808_EVENT_EXPIRED = 1,
    /// A 0x0900 no request waited for (`content_type`, content in `payload`):
    /// forward it on the application's uplink topic. `late` is true when an
    /// ANSWER request of that (terminal, type) expired recently.
    RRPC_JT808_EVENT_UPLINK = 2,
    /// A frame that is not the adapter's (registration, authentication,
    /// heartbeat, location, a 0x0001 to another platform message...), or a
    /// 0x0001/0x0900 from a terminal not bound to the connection it came on
    /// (which completed nothing): `frame`.
    RRPC_JT808_EVENT_FRAME = 3,
    /// Bytes that are not a valid frame, or a 0x0001/0x0900 whose body does not
    /// fit its id; dropped. `message` names the byte offset and the rule.
    RRPC_JT808_EVENT_MALFORMED = 4,
}

/// An `rrpc_jt808_completion` as C passes it.
pub type rrpc_jt808_completion_raw = u32;
/// An `rrpc_jt808_busy_policy` as C passes it.
pub type rrpc_jt808_busy_policy_raw = u32;
/// An `rrpc_jt808_event_kind` as the library writes it.
pub type rrpc_jt808_event_kind_raw = u32;
/// An `rrpc_jt808_reply_kind` as the library writes it.
pub type rrpc_jt808_reply_kind_raw = u32;

/// What a reply payload is (`rrpc_jt808_event.reply_kind`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_jt808_reply_kind {
    /// `{"jt808":"ack","result":0,"serial":N}`.
    RRPC_JT808_REPLY_ACK = 0,
    /// The content of the terminal's 0x0900, untouched.
    RRPC_JT808_REPLY_ANSWER = 1,
    /// `{"jt808":"error","reason":"...",...}` (see `rrpc_jt808_adapter_submit`).
    RRPC_JT808_REPLY_ERROR = 2,
}

/// Something the adapter tells the application (`rrpc_jt808_adapter_event_cb`).
/// Every pointer is owned by the library and valid only during the callback.
/// Later 1.x releases may append fields: see `RRPC_HAS_FIELD`.
#[repr(C)]
pub struct rrpc_jt808_event {
    /// `sizeof(rrpc_jt808_event)` of the library that made it.
    pub struct_size: u32,
    /// What happened.
    pub kind: rrpc_jt808_event_kind_raw,
    /// REPLY, EXPIRED: the request's token; 0 otherwise.
    pub token: u64,
    /// REPLY: what the payload is; 0 otherwise.
    pub reply_kind: rrpc_jt808_reply_kind_raw,
    /// FRAME, MALFORMED: the connection the bytes came on. Others: the
    /// terminal's connection, or UINT64_MAX when none is known.
    pub conn: u64,
    /// The terminal's raw phone bytes (`phone_len` of them); MALFORMED: none.
    pub phone: [u8; 10],
    /// 6, 10, or 0 for MALFORMED.
    pub phone_len: usize,
    /// UPLINK: the pass-through type byte; 0 otherwise.
    pub content_type: u8,
    /// UPLINK: an ANSWER request of this (terminal, type) expired recently, so
    /// this is probably its late answer.
    pub late: rrpc_bool,
    /// REPLY: the reply payload. UPLINK: the content after the type byte. NULL
    /// when empty or for other kinds.
    pub payload: *const u8,
    /// Length of `payload`.
    pub payload_len: usize,
    /// FRAME: the frame; NULL otherwise.
    pub frame: *const rrpc_jt808_frame,
    /// MALFORMED: NUL-terminated description; NULL otherwise.
    pub message: *const c_char,
}

/// Settings for `rrpc_jt808_adapter_new`; fill with `rrpc_jt808_adapter_config_init`.
#[repr(C)]
pub struct rrpc_jt808_adapter_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_jt808_adapter_config_init`.
    pub struct_size: u32,
    /// Requests held at once, sent and queued, over all terminals. Default 4096.
    pub max_pending: u32,
    /// Requests waiting behind the outstanding ANSWER request of a (terminal,
    /// type). Default 8.
    pub max_queue_per_key: u32,
    /// Content bytes held by queued requests. Default 8388608 (8 MiB).
    pub max_queued_bytes: u32,
    /// Largest request content. Default 65536.
    pub max_content: u32,
    /// Largest 0x8900 body per frame, 2-1023; longer ones are sub-packaged
    /// (type byte in the first packet only). Default 1023.
    pub max_body: u32,
    /// Terminals bound to a connection at once
    /// (`rrpc_jt808_adapter_terminal_authenticated`); phones that never
    /// authenticate take none. Default 100000.
    pub max_terminals: u32,
    /// Connections with a decoder (`rrpc_jt808_adapter_on_bytes`). Default 100000.
    pub max_connections: u32,
    /// Longest escaped frame accepted per connection, flags included; at least
    /// 15. Default 2092 (the longest the standard allows).
    pub max_frame_len: u32,
    /// How requests submitted with RRPC_JT808_COMPLETION_DEFAULT complete.
    /// Default RRPC_JT808_COMPLETION_ACK.
    pub default_completion: rrpc_jt808_completion_raw,
    /// What a second ANSWER request for a busy (terminal, type) does. Default
    /// RRPC_JT808_BUSY_QUEUE.
    pub busy_policy: rrpc_jt808_busy_policy_raw,
    /// Sub-packaged 0x0900 messages being put together at once, over all
    /// terminals. Default 256, 1-65536.
    pub reassembly_max_partials: u32,
    /// The same for one terminal. Default 4, 1-`reassembly_max_partials`.
    pub reassembly_max_partials_per_terminal: u32,
    /// Body bytes held by partial messages, over all terminals. Default
    /// 4194304 (4 MiB), 1-268435456 (256 MiB).
    pub reassembly_max_bytes: u32,
    /// The same for one terminal. Default 1048576 (1 MiB),
    /// 1-`reassembly_max_bytes`.
    pub reassembly_max_bytes_per_terminal: u32,
    /// Packets held by partial messages (empty packets count too), over all
    /// terminals. Default 16384, 1-1048576.
    pub reassembly_max_packets: u32,
    /// The same for one terminal; a message announcing more packets is refused
    /// at its first packet. Default 1024, 1-`reassembly_max_packets`.
    pub reassembly_max_packets_per_terminal: u32,
    /// A partial message is dropped this long after its first packet. Default
    /// 60000, 1-3600000.
    pub reassembly_timeout_ms: u32,
    /// true: decode frames with unescaped 0x7d bytes too (some terminals send
    /// them; see `rrpc_jt808_decoder_set_lenient`); false (default): strict.
    pub lenient_escapes: rrpc_bool,
}

/// One request for `rrpc_jt808_adapter_submit`; fill with
/// `rrpc_jt808_adapter_submit_params_init`, then set the fields.
#[repr(C)]
pub struct rrpc_jt808_adapter_submit_params {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_jt808_adapter_submit_params_init`.
    pub struct_size: u32,
    /// The RRPC request's token (`rrpc_request.token`): it names the request in
    /// the events and in `rrpc_jt808_adapter_cancel`, and must not be held by
    /// the adapter already.
    pub token: u64,
    /// The terminal's raw BCD phone bytes, `phone_len` of them, as
    /// `rrpc_jt808_header.phone` holds them (see `rrpc_jt808_phone_from_digits`).
    pub phone: [u8; 10],
    /// 6 (2013) or 10 (2019).
    pub phone_len: usize,
    /// The pass-through type byte: the RRpc ContentType
    /// (`rrpc_request.content_type`). Any value goes out untouched.
    pub content_type: u8,
    /// The content (the RRPC request payload), copied before
    /// `rrpc_jt808_adapter_submit` returns; may be NULL when `content_len` is 0.
    pub content: *const u8,
    /// The content's length in bytes, at most `max_content`.
    pub content_len: usize,
    /// How the request completes. Default RRPC_JT808_COMPLETION_DEFAULT (the
    /// adapter's `default_completion`).
    pub completion: rrpc_jt808_completion_raw,
    /// When the RRPC caller stops waiting (for a request from the router or the
    /// client, `rrpc_request.deadline_ms`), on the clock of the `now_ms` the
    /// adapter is given (such as `rrpc_monotonic_ms`).
    pub deadline_ms: u64,
}

/// Writes `len` bytes of escaped 0x8900 frames (one whole message, all its
/// packets back to back) to the terminal `phone` (`phone_len` raw bytes) on
/// connection `conn`. Return 0 when the bytes were written or queued for the
/// socket, anything else on failure. Runs on the thread that called the adapter,
/// without any adapter lock held: it may call the adapter again, but not free it
/// or replace itself (RRPC_STATUS_WRONG_STATE).
pub type rrpc_jt808_adapter_send_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        conn: u64,
        phone: *const u8,
        phone_len: usize,
        bytes: *const u8,
        len: usize,
    ) -> i32,
>;

/// Receives one adapter event. Runs on the thread that called the adapter,
/// without any adapter lock held: it may call the adapter again (submit, feed
/// bytes, cancel, reply through the router), but not free it or replace itself
/// (RRPC_STATUS_WRONG_STATE).
pub type rrpc_jt808_adapter_event_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        adapter: *mut rrpc_jt808_adapter,
        event: *const rrpc_jt808_event,
    ),
>;

settings!(rrpc_jt808_adapter_config {
    struct_size,
    max_pending,
    max_queue_per_key,
    max_queued_bytes,
    max_content,
    max_body,
    max_terminals,
    max_connections,
    max_frame_len,
    default_completion,
    busy_policy,
    reassembly_max_partials,
    reassembly_max_partials_per_terminal,
    reassembly_max_bytes,
    reassembly_max_bytes_per_terminal,
    reassembly_max_packets,
    reassembly_max_packets_per_terminal,
    reassembly_timeout_ms,
    lenient_escapes,
} defaults [
    d = AdapterConfig::default(),
    r = d.reassembly,
    clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX),
] {
    max_pending: clamp(d.max_pending),
    max_queue_per_key: clamp(d.max_queue_per_key),
    max_queued_bytes: clamp(d.max_queued_bytes),
    max_content: clamp(d.max_content),
    max_body: clamp(d.max_body),
    max_terminals: clamp(d.max_terminals),
    max_connections: clamp(d.max_connections),
    max_frame_len: clamp(d.max_frame_len),
    default_completion: rrpc_jt808_completion::RRPC_JT808_COMPLETION_ACK as u32,
    busy_policy: rrpc_jt808_busy_policy::RRPC_JT808_BUSY_QUEUE as u32,
    reassembly_max_partials: clamp(r.max_partials),
    reassembly_max_partials_per_terminal: clamp(r.max_partials_per_terminal),
    reassembly_max_bytes: clamp(r.max_bytes),
    reassembly_max_bytes_per_terminal: clamp(r.max_bytes_per_terminal),
    reassembly_max_packets: clamp(r.max_packets),
    reassembly_max_packets_per_terminal: clamp(r.max_packets_per_terminal),
    reassembly_timeout_ms: u32::try_from(r.timeout_ms).unwrap_or(u32::MAX),
});

settings!(rrpc_jt808_adapter_submit_params {
    struct_size,
    token,
    phone,
    phone_len,
    content_type,
    content,
    content_len,
    completion,
    deadline_ms,
} defaults {
    completion: rrpc_jt808_completion::RRPC_JT808_COMPLETION_DEFAULT as u32,
});
