//! `rrpc_jt808_adapter_*`: the pass-through adapter that turns RRPC requests
//! into 0x8900 downlinks and the terminal's 0x0001/0x0900 back into RRPC
//! replies. No I/O and no threads: the application owns the terminals' TCP
//! connections and the MQTT side.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use parking_lot::Mutex;

use super::jt808_codec::{
    frame_view, header_from_view, phone_from_view, phone_view, rrpc_jt808_frame,
};
use super::misc::rrpc_bool;
use super::rrpc_status::*;
use super::sized::{init_settings, read_settings, sized_fields, write_counters, Settings};
use super::{
    arg_bytes, arg_flag, arg_out, arg_ref, boundary, bytes_ptr, opt_out, rrpc_status, Castable,
    Failure, SendFailed, SendPtr,
};
use crate::callback::{self, CallbackSlot, Kind};
use crate::jt808::{
    Adapter, AdapterConfig, AdapterStats, BusyPolicy, Call, Completion, Escapes, Event, Frame,
    Handled, Phone, ReassemblerConfig, ReplyKind, Submitted,
};

/// The pass-through adapter. Created by `rrpc_jt808_adapter_new`, released by
/// `rrpc_jt808_adapter_free`.
///
/// Threads: every function may be called from any thread at any time (one
/// internal lock, held only for table updates). The send function and the event
/// callback run on the thread of the call that caused them, in order, with no
/// lock held: they may call any adapter function again (submit, feed bytes,
/// cancel, tick, replace the other callback), except `rrpc_jt808_adapter_free`
/// and replacing themselves, which are refused with RRPC_STATUS_WRONG_STATE.
/// Replacing or removing a callback (or freeing the adapter) waits for a call of
/// it in progress on another thread; after that the old callback never runs
/// again.
pub struct rrpc_jt808_adapter {
    _private: [u8; 0],
}

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

// ------------------------------------------------------------ arguments

fn phone_arg(p: *const u8, len: usize) -> Result<Phone, Failure> {
    // SAFETY: NULL or `len` readable bytes per the documented contract.
    unsafe { arg_ref(p, "phone") }?;
    let raw = unsafe { arg_bytes(p, len, "phone") }?;
    Ok(Phone::from_raw(raw)?)
}

fn to_c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// The payload `{"jt808":"error","reason":"busy"}`, for applications that answer
/// an RRPC call `rrpc_jt808_adapter_submit` refused with RRPC_STATUS_BUSY or
/// RRPC_STATUS_LIMIT_REACHED.
///
/// @return the payload, NUL-terminated. Never fails. The string is static: do
///         not free it.
#[no_mangle]
pub extern "C" fn rrpc_jt808_busy_payload() -> *const c_char {
    c"{\"jt808\":\"error\",\"reason\":\"busy\"}".as_ptr()
}

/// The send function with its `user_data`: connection, terminal, frames.
type SendFn = dyn Fn(u64, &Phone, &[u8]) -> i32 + Send + Sync;
/// The event callback with its `user_data` (the adapter's handle is passed at
/// each call).
type EventFn = dyn Fn(*mut rrpc_jt808_adapter, &rrpc_jt808_event) + Send + Sync;

/// What an `rrpc_jt808_adapter *` stands for. Every function works on its own
/// clone of `shared`: a thread whose callback `rrpc_jt808_adapter_free` waited
/// for returns through memory that is still there.
struct AdapterHandle {
    shared: Arc<Shared>,
}

struct Shared {
    adapter: Mutex<Adapter>,
    send: CallbackSlot<SendFn>,
    event: CallbackSlot<EventFn>,
}

impl Castable for AdapterHandle {
    type C = rrpc_jt808_adapter;
    const NAME: &'static str = "adapter";
}

/// The adapter behind a handle, kept alive for the call.
fn shared(adapter: *const rrpc_jt808_adapter) -> Result<Arc<Shared>, Failure> {
    Ok(AdapterHandle::borrow(adapter)?.shared.clone())
}

/// Runs `f` as a callback of `adapter`: freeing the adapter from inside is refused.
fn inside<T>(adapter: *mut rrpc_jt808_adapter, f: impl FnOnce() -> T) -> T {
    callback::enter(Kind::Object, adapter as usize, f)
}

const NO_CONN: u64 = u64::MAX;

/// Events with the connection each one reports, collected under the lock.
fn with_conns(a: &Adapter, events: Vec<Event>) -> Vec<(Event, u64)> {
    events
        .into_iter()
        .map(|e| {
            let conn = match &e {
                Event::Frame { conn, .. } | Event::Malformed { conn, .. } => *conn,
                Event::Reply { phone, .. }
                | Event::Expired { phone, .. }
                | Event::SendQueued { phone, .. }
                | Event::Uplink { phone, .. } => a.terminal_conn(phone).unwrap_or(NO_CONN),
            };
            (e, conn)
        })
        .collect()
}

fn empty_event(kind: rrpc_jt808_event_kind, conn: u64, phone: Option<&Phone>) -> rrpc_jt808_event {
    let (phone, phone_len) = phone.map_or(([0; 10], 0), phone_view);
    rrpc_jt808_event {
        struct_size: std::mem::size_of::<rrpc_jt808_event>() as u32,
        kind: kind as u32,
        token: 0,
        reply_kind: 0,
        conn,
        phone,
        phone_len,
        content_type: 0,
        late: 0,
        payload: std::ptr::null(),
        payload_len: 0,
        frame: std::ptr::null(),
        message: std::ptr::null(),
    }
}

impl Shared {
    /// Runs `f` on the adapter under its lock, then hands the events it made to
    /// the application with no lock held.
    fn run<T>(
        &self,
        adapter: *mut rrpc_jt808_adapter,
        now_ms: u64,
        f: impl FnOnce(&mut Adapter, &mut Vec<Event>) -> T,
    ) -> T {
        let (r, events) = {
            let mut a = self.adapter.lock();
            let mut ev = Vec::new();
            let r = f(&mut a, &mut ev);
            (r, with_conns(&a, ev))
        };
        self.deliver(adapter, events, now_ms);
        r
    }

    /// Writes a message's frames through the send function: its return value,
    /// or `None` when none is registered.
    fn send(
        &self,
        adapter: *mut rrpc_jt808_adapter,
        conn: u64,
        phone: &Phone,
        frames: &[u8],
    ) -> Option<i32> {
        inside(adapter, || self.send.call(|f| f(conn, phone, frames)))
    }

    /// Queued requests that come due go out through the send function (one
    /// that cannot be written is answered with `send failed`); every other
    /// event goes to the event callback.
    fn deliver(&self, adapter: *mut rrpc_jt808_adapter, events: Vec<(Event, u64)>, now_ms: u64) {
        let mut work: VecDeque<(Event, u64)> = events.into();
        while let Some((e, conn)) = work.pop_front() {
            match e {
                Event::SendQueued {
                    token,
                    phone,
                    frames,
                    ..
                } => {
                    if conn == NO_CONN || self.send(adapter, conn, &phone, &frames) != Some(0) {
                        let mut more = Vec::new();
                        let mut a = self.adapter.lock();
                        a.send_failed(token, now_ms, &mut more);
                        work.extend(with_conns(&a, more));
                    }
                }
                other => self.emit(adapter, &other, conn),
            }
        }
    }

    fn emit(&self, adapter: *mut rrpc_jt808_adapter, e: &Event, conn: u64) {
        use rrpc_jt808_event_kind::*;
        let frame_view_holder;
        let message_holder;
        let ev = match e {
            Event::Reply {
                token,
                phone,
                kind,
                payload,
            } => rrpc_jt808_event {
                token: *token,
                reply_kind: match kind {
                    ReplyKind::Ack => rrpc_jt808_reply_kind::RRPC_JT808_REPLY_ACK,
                    ReplyKind::Answer => rrpc_jt808_reply_kind::RRPC_JT808_REPLY_ANSWER,
                    ReplyKind::Error => rrpc_jt808_reply_kind::RRPC_JT808_REPLY_ERROR,
                } as u32,
                payload: bytes_ptr(payload),
                payload_len: payload.len(),
                ..empty_event(RRPC_JT808_EVENT_REPLY, conn, Some(phone))
            },
            Event::Expired { token, phone } => rrpc_jt808_event {
                token: *token,
                ..empty_event(RRPC_JT808_EVENT_EXPIRED, conn, Some(phone))
            },
            Event::Uplink {
                phone,
                content_type,
                content,
                late,
            } => rrpc_jt808_event {
                content_type: *content_type,
                late: u8::from(*late),
                payload: bytes_ptr(content),
                payload_len: content.len(),
                ..empty_event(RRPC_JT808_EVENT_UPLINK, conn, Some(phone))
            },
            Event::Frame { frame, .. } => {
                frame_view_holder = frame_view(frame);
                rrpc_jt808_event {
                    frame: &frame_view_holder,
                    ..empty_event(RRPC_JT808_EVENT_FRAME, conn, Some(&frame.header.phone))
                }
            }
            Event::Malformed { reason, .. } => {
                message_holder = to_c_string(reason);
                rrpc_jt808_event {
                    message: message_holder.as_ptr(),
                    ..empty_event(RRPC_JT808_EVENT_MALFORMED, conn, None)
                }
            }
            Event::SendQueued { .. } => return,
        };
        inside(adapter, || self.event.call(|f| f(adapter, &ev)));
    }
}

sized_fields!(rrpc_jt808_adapter_config {
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
});

impl Settings for rrpc_jt808_adapter_config {
    fn defaults() -> Self {
        let d = AdapterConfig::default();
        let r = d.reassembly;
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        rrpc_jt808_adapter_config {
            struct_size: std::mem::size_of::<Self>() as u32,
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
            lenient_escapes: 0,
        }
    }
}

sized_fields!(rrpc_jt808_adapter_submit_params {
    struct_size,
    token,
    phone,
    phone_len,
    content_type,
    content,
    content_len,
    completion,
    deadline_ms,
});

impl Settings for rrpc_jt808_adapter_submit_params {
    fn defaults() -> Self {
        rrpc_jt808_adapter_submit_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            token: 0,
            phone: [0; 10],
            phone_len: 0,
            content_type: 0,
            content: std::ptr::null(),
            content_len: 0,
            completion: rrpc_jt808_completion::RRPC_JT808_COMPLETION_DEFAULT as u32,
            deadline_ms: 0,
        }
    }
}

/// Fills `out_config` with the defaults (see `rrpc_jt808_adapter_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_config_init(
    out_config: *mut rrpc_jt808_adapter_config,
    config_size: usize,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_config_init", || {
        // SAFETY: `config_size` writable bytes per the documented contract.
        unsafe { init_settings(out_config, config_size, "out_config") }
    })
}

/// false: strict, true: lenient.
pub(super) fn escapes_arg(v: rrpc_bool, what: &str) -> Result<Escapes, Failure> {
    Ok(if arg_flag(v, what)? {
        Escapes::Lenient
    } else {
        Escapes::Strict
    })
}

fn completion_arg(
    v: rrpc_jt808_completion_raw,
    default: Option<Completion>,
) -> Result<Option<Completion>, Failure> {
    match v {
        0 => Ok(default),
        1 => Ok(Some(Completion::Ack)),
        2 => Ok(Some(Completion::Answer)),
        _ => Err(Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("completion {v} is not an rrpc_jt808_completion"),
        )),
    }
}

/// Creates an adapter: no I/O, no threads. Register the send function and the
/// event callback before feeding it.
///
/// @param[in]  config      settings (`rrpc_jt808_adapter_config_init` gives the defaults).
/// @param[out] out_adapter receives the adapter; release it with `rrpc_jt808_adapter_free`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `config` or `out_adapter` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE      `config->struct_size` is not one this library knows.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `max_body` outside 2-1023, `max_frame_len`
///         below 15, an unknown completion or busy policy, a reassembly limit
///         outside its documented range, or `lenient_escapes` neither 0 nor 1;
///         the message names the field.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_new(
    config: *const rrpc_jt808_adapter_config,
    out_adapter: *mut *mut rrpc_jt808_adapter,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_new", || {
        // SAFETY: pointer contracts documented above.
        let c = unsafe { read_settings(config, "config") }?;
        let out = unsafe { arg_out(out_adapter, "out_adapter") }?;
        let default_completion =
            completion_arg(c.default_completion, Some(Completion::Ack))?.unwrap_or(Completion::Ack);
        let busy_policy = match c.busy_policy {
            0 => BusyPolicy::Queue,
            1 => BusyPolicy::Refuse,
            v => {
                return Err(Failure::new(
                    RRPC_STATUS_INVALID_ARGUMENT,
                    format!("busy_policy {v} is not an rrpc_jt808_busy_policy"),
                ))
            }
        };
        let cfg = AdapterConfig {
            max_pending: c.max_pending as usize,
            default_completion,
            busy_policy,
            max_queue_per_key: c.max_queue_per_key as usize,
            max_queued_bytes: c.max_queued_bytes as usize,
            max_content: c.max_content as usize,
            max_body: c.max_body as usize,
            max_terminals: c.max_terminals as usize,
            max_connections: c.max_connections as usize,
            max_frame_len: c.max_frame_len as usize,
            reassembly: ReassemblerConfig {
                max_partials: c.reassembly_max_partials as usize,
                max_partials_per_terminal: c.reassembly_max_partials_per_terminal as usize,
                max_bytes: c.reassembly_max_bytes as usize,
                max_bytes_per_terminal: c.reassembly_max_bytes_per_terminal as usize,
                max_packets: c.reassembly_max_packets as usize,
                max_packets_per_terminal: c.reassembly_max_packets_per_terminal as usize,
                timeout_ms: u64::from(c.reassembly_timeout_ms),
            },
            escapes: escapes_arg(c.lenient_escapes, "lenient_escapes")?,
            ..AdapterConfig::default()
        };
        let h = AdapterHandle {
            shared: Arc::new(Shared {
                adapter: Mutex::new(Adapter::new(cfg)?),
                send: CallbackSlot::default(),
                event: CallbackSlot::default(),
            }),
        };
        *out = h.into_c();
        Ok(())
    })
}

/// Releases the adapter. Requests still held are dropped without events. A
/// send function or event callback still running on another thread is waited
/// for; none runs after this returns, so their `user_data` may be freed at
/// once. NULL is ignored.
///
/// @param[in] adapter the adapter, or NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from inside one of this adapter's
///         callbacks (the send function or the event callback, at any depth);
///         nothing was released.
///
/// Once, when no other thread will call the adapter again.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_free(adapter: *mut rrpc_jt808_adapter) -> rrpc_status {
    boundary("rrpc_jt808_adapter_free", || {
        AdapterHandle::free(adapter, |h| {
            if callback::inside(Kind::Object, adapter as usize) {
                return Err(Failure::new(
                    RRPC_STATUS_WRONG_STATE,
                    "an adapter cannot be freed from its own send function or event callback",
                ));
            }
            h.shared.send.set(None)?;
            h.shared.event.set(None)?;
            Ok(())
        })
    })
}

/// Registers the function that writes frames to terminals (NULL removes it:
/// submits then fail with RRPC_STATUS_WRONG_STATE, and queued requests that
/// come due are answered with `{"jt808":"error","reason":"send failed"}`).
/// When it returns, the send function it replaced is not running on any other
/// thread (a call in progress is waited for) and will not run again, so its
/// `user_data` may be freed at once.
///
/// @param[in] adapter   the adapter.
/// @param[in] send      the send function, or NULL.
/// @param[in] user_data handed to every call of `send`; the library never
///                      touches it. It must stay valid until the function is
///                      replaced or the adapter freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the send function it
///                                  would replace; nothing changed.
///
/// Do not call it while holding a lock the send function takes: it waits for
/// the send function.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_set_send(
    adapter: *mut rrpc_jt808_adapter,
    send: rrpc_jt808_adapter_send_fn,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_jt808_adapter_set_send", move || {
        let h = shared(adapter)?;
        let f = send.map(|f| {
            Box::new(move |conn: u64, phone: &Phone, frames: &[u8]| {
                let raw = phone.raw();
                // SAFETY: the application registered `f` for this signature; the
                // buffers live until it returns.
                unsafe {
                    f(
                        ud.get(),
                        conn,
                        raw.as_ptr(),
                        raw.len(),
                        frames.as_ptr(),
                        frames.len(),
                    )
                }
            }) as Box<SendFn>
        });
        Ok(h.send.set(f)?)
    })
}

/// Registers the event callback (NULL removes it: events are then dropped, and
/// the RRPC calls they would answer time out). When it returns, the callback it
/// replaced is not running on any other thread (a call in progress is waited
/// for) and will not run again, so its `user_data` may be freed at once.
///
/// @param[in] adapter   the adapter.
/// @param[in] callback  the event callback, or NULL.
/// @param[in] user_data handed to every call of `callback`; the library never
///                      touches it. It must stay valid until the callback is
///                      replaced or the adapter freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the callback it would
///                                  replace; nothing changed.
///
/// Takes effect for the next event.
/// Do not call it while holding a lock the callback takes: it waits for the
/// callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_set_event_callback(
    adapter: *mut rrpc_jt808_adapter,
    callback: rrpc_jt808_adapter_event_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_jt808_adapter_set_event_callback", move || {
        let h = shared(adapter)?;
        let f = callback.map(|f| {
            Box::new(
                move |adapter: *mut rrpc_jt808_adapter, event: &rrpc_jt808_event| {
                    // SAFETY: the application registered `f` for this signature;
                    // the event and everything it points to live until it returns.
                    unsafe { f(ud.get(), adapter, event) }
                },
            ) as Box<EventFn>
        });
        Ok(h.event.set(f)?)
    })
}

/// Fills `out_params` with the defaults: no content, RRPC_JT808_COMPLETION_DEFAULT;
/// set `token`, the phone, `content_type`, the content and `deadline_ms`.
///
/// @param[out] out_params  the struct to fill.
/// @param[in]  params_size `sizeof *out_params`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_params` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `params_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_submit_params_init(
    out_params: *mut rrpc_jt808_adapter_submit_params,
    params_size: usize,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_submit_params_init", || {
        // SAFETY: `params_size` writable bytes per the documented contract.
        unsafe { init_settings(out_params, params_size, "out_params") }
    })
}

/// Sends RRPC request `params->token` to a terminal as a 0x8900 whose type byte
/// is `params->content_type` and whose content is `params->content`
/// (sub-packaged past `max_body`), through the send function, before this
/// returns; or queues it behind the outstanding ANSWER request of the same
/// (terminal, type). Any type byte goes out untouched (0x00, 0x0B, 0x41, 0x42,
/// 0xF0-0xFF, vendor values).
///
/// Exactly one event ends every accepted request: REPLY, or EXPIRED at
/// `params->deadline_ms` (never a reply after it). The payloads the adapter
/// makes (JSON, no spaces; N is the 0x8900's serial, of its first packet when
/// sub-packaged; R the result byte):
/// - ACK, result 0: `{"jt808":"ack","result":0,"serial":N}`
/// - result 1: `{"jt808":"error","reason":"failure","result":1,"serial":N}`
/// - result 2: `{"jt808":"error","reason":"message error","result":2,"serial":N}`
/// - result 3: `{"jt808":"error","reason":"not supported","result":3,"serial":N}`
/// - other results: `{"jt808":"error","reason":"unknown result","result":R,"serial":N}`
/// - terminal gone: `{"jt808":"error","reason":"terminal disconnected"}`
/// - a queued request that could not be written: `{"jt808":"error","reason":"send failed"}`
///   (or `"busy"` when no serial number was free)
/// - ANSWER: the 0x0900 content itself.
///
/// @param[in]  adapter    the adapter.
/// @param[in]  params     the request (see `rrpc_jt808_adapter_submit_params`);
///                        the content is copied before this returns.
/// @param[in]  now_ms     the time, on the clock of `params->deadline_ms` (such
///                        as `rrpc_monotonic_ms`).
/// @param[out] out_queued receives true when the request was queued, false when
///                        it was sent; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NOT_CONNECTED the terminal is not bound to a connection:
///         `rrpc_jt808_adapter_terminal_authenticated` was not called for it, or
///         it went away since.
/// @retval RRPC_STATUS_BUSY an ANSWER request of this (terminal, type) is
///         outstanding and the policy is RRPC_JT808_BUSY_REFUSE. The application
///         may answer the call with `rrpc_jt808_busy_payload()`.
/// @retval RRPC_STATUS_LIMIT_REACHED the (terminal, type) queue
///         (`max_queue_per_key`), the table (`max_pending`), the queued bytes
///         (`max_queued_bytes`), the terminals (`max_terminals`) or the
///         terminal's free serial numbers are exhausted; the message names which.
///         The application may answer the call with `rrpc_jt808_busy_payload()`.
/// @retval RRPC_STATUS_SEND_FAILED the send function returned non-zero; the
///         request was released.
/// @retval RRPC_STATUS_EXPIRED `params->deadline_ms` is not after `now_ms`.
/// @retval RRPC_STATUS_PAYLOAD_TOO_LARGE `params->content_len` exceeds `max_content`.
/// @retval RRPC_STATUS_WRONG_STATE no send function is registered.
/// @retval RRPC_STATUS_ALREADY_EXISTS the adapter already holds a request
///         `params->token`.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `params->phone_len` is neither 6 nor
///         10, an unknown `params->completion`, or content that cannot be encoded.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `params` is NULL, or
///         `params->content` is NULL with a length.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_submit(
    adapter: *mut rrpc_jt808_adapter,
    params: *const rrpc_jt808_adapter_submit_params,
    now_ms: u64,
    out_queued: *mut rrpc_bool,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_submit", || {
        let h = shared(adapter)?;
        // SAFETY: pointer contracts documented above.
        let p = &unsafe { read_settings(params, "params") }?;
        let content = unsafe { arg_bytes(p.content, p.content_len, "params->content") }?;
        let call = Call {
            token: p.token,
            phone: phone_from_view(&p.phone, p.phone_len)?,
            content_type: p.content_type,
            content,
            completion: completion_arg(p.completion, None)?,
            deadline_ms: p.deadline_ms,
        };
        let no_send = || {
            Failure::new(
                RRPC_STATUS_WRONG_STATE,
                "no send function is registered (rrpc_jt808_adapter_set_send)",
            )
        };
        if !h.send.is_set() {
            return Err(no_send());
        }
        let mut frames = Vec::new();
        let (submitted, conn) = {
            let mut a = h.adapter.lock();
            let conn = a.terminal_conn(&call.phone).ok_or_else(|| {
                Failure::new(
                    RRPC_STATUS_NOT_CONNECTED,
                    format!(
                        "terminal {} is not bound to a connection (it has not authenticated: \
                         rrpc_jt808_adapter_terminal_authenticated)",
                        call.phone
                    ),
                )
            })?;
            (a.submit(&call, now_ms, &mut frames)?, conn)
        };
        let queued = matches!(submitted, Submitted::Queued { .. });
        if !queued {
            let rc = h.send(adapter, conn, &call.phone, &frames);
            if rc != Some(0) {
                h.run(adapter, now_ms, |a, ev| a.cancel(call.token, now_ms, ev));
                return Err(rc.map_or_else(no_send, |rc| SendFailed(rc).into()));
            }
        }
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_queued, u8::from(queued)) };
        Ok(())
    })
}

/// Takes bytes received from a terminal connection (any chunking). The adapter
/// keeps one decoder per connection. Frames never bind their terminal to the
/// connection (see `rrpc_jt808_adapter_terminal_authenticated`): a 0x0001 or
/// 0x0900 from a terminal not bound to `conn` completes nothing and comes out as
/// a FRAME event, like registrations and heartbeats.
/// Every complete frame is handled before this returns: events (REPLY, EXPIRED,
/// UPLINK, FRAME for frames that are not the adapter's, MALFORMED for invalid
/// ones) go to the event callback, and queued requests that come due go out
/// through the send function.
///
/// @param[in] adapter the adapter.
/// @param[in] conn    any id the application chooses for the connection (its
///                    socket descriptor, for instance).
/// @param[in] bytes   the bytes; may be NULL when `len` is 0.
/// @param[in] len     their length.
/// @param[in] now_ms  the time, on the clock of the deadlines.
/// @retval RRPC_STATUS_OK (also when frames were malformed: see the events)
/// @retval RRPC_STATUS_LIMIT_REACHED a new connection while `max_connections`
///         are open; the bytes were dropped.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL, or `bytes` is NULL with a length.
///
/// Bytes of one connection must arrive in order.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_on_bytes(
    adapter: *mut rrpc_jt808_adapter,
    conn: u64,
    bytes: *const u8,
    len: usize,
    now_ms: u64,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_on_bytes", || {
        let h = shared(adapter)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let data = unsafe { arg_bytes(bytes, len, "bytes") }?;
        Ok(h.run(adapter, now_ms, |a, ev| a.on_bytes(conn, data, now_ms, ev))?)
    })
}

/// Takes one frame the application decoded itself (for example with an
/// `rrpc_jt808_decoder`). A 0x0001 answering 0x8900 and any 0x0900 are the
/// adapter's when the frame's terminal is bound to `conn`
/// (`rrpc_jt808_adapter_terminal_authenticated`); from any other connection
/// they complete nothing and are counted in `unauthenticated`. Frames the
/// adapter does not take are left to the application (`*out_taken` false) and
/// produce no event. The frame never binds its terminal to `conn`.
///
/// @param[in]  adapter   the adapter.
/// @param[in]  conn      the connection the frame came on.
/// @param[in]  frame     the frame (`header` and `body` are read; `phone_digits`
///                       and `phone_bcd_error` are ignored).
/// @param[in]  now_ms    the time, on the clock of the deadlines.
/// @param[out] out_taken receives whether the adapter took it; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_MALFORMED_FRAME a 0x0001/0x0900 whose body does not fit its
///         id, or a packet the reassembler refused; dropped.
/// @retval RRPC_STATUS_INVALID_ARGUMENT a header field out of range.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `frame` is NULL, or `frame->body`
///         is NULL with a length.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_on_frame(
    adapter: *mut rrpc_jt808_adapter,
    conn: u64,
    frame: *const rrpc_jt808_frame,
    now_ms: u64,
    out_taken: *mut rrpc_bool,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_on_frame", || {
        let h = shared(adapter)?;
        // SAFETY: pointer contracts documented above.
        let v = unsafe { arg_ref(frame, "frame") }?;
        let body = unsafe { arg_bytes(v.body, v.body_len, "frame->body") }?;
        let f = Frame {
            header: header_from_view(&v.header)?,
            body: body.to_vec(),
        };
        let handled = h.run(adapter, now_ms, |a, ev| a.on_frame(conn, &f, now_ms, ev));
        let taken = match handled {
            Handled::Taken => true,
            Handled::NotMine | Handled::Unauthenticated => false,
            Handled::Dropped(e) => {
                let e = Failure::from(e);
                let message = format!(
                    "0x{:04x} from terminal {}: {}",
                    f.header.msg_id, f.header.phone, e.message
                );
                return Err(Failure { message, ..e });
            }
        };
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_taken, u8::from(taken)) };
        Ok(())
    })
}

/// Binds a terminal to connection `conn`: its requests go out on `conn`, and
/// only the 0x0001 and 0x0900 frames that come on `conn` with its phone number
/// complete them. Call it only after the terminal authenticated on `conn`: its
/// 0x0102 carried the code the application issued at its registration
/// (0x8100). Nothing else binds a terminal; a phone number in a frame header
/// is a claim any connection can make. A terminal bound to another connection
/// is moved here (a reconnect while the old socket is half-open): its pending
/// requests stay pending, and closing the old connection no longer affects it.
///
/// @param[in] adapter   the adapter.
/// @param[in] phone     the terminal's raw phone bytes, as the authenticating
///                      frame's header holds them.
/// @param[in] phone_len 6 or 10.
/// @param[in] conn      the connection, as given to `rrpc_jt808_adapter_on_bytes`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_LIMIT_REACHED a new terminal or connection while
///         `max_terminals` or `max_connections` are known; nothing changed.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `phone_len` is neither 6 nor 10.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `phone` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_terminal_authenticated(
    adapter: *mut rrpc_jt808_adapter,
    phone: *const u8,
    phone_len: usize,
    conn: u64,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_terminal_authenticated", || {
        let h = shared(adapter)?;
        let phone = phone_arg(phone, phone_len)?;
        h.adapter.lock().terminal_authenticated(&phone, conn)?;
        Ok(())
    })
}

/// The terminal went away: each of its requests, sent or queued, is answered
/// (REPLY events, before this returns) with
/// `{"jt808":"error","reason":"terminal disconnected"}`, and the terminal is
/// forgotten (its serial numbers start again at 0).
///
/// @param[in]  adapter      the adapter.
/// @param[in]  phone        the terminal's raw phone bytes.
/// @param[in]  phone_len    6 or 10.
/// @param[in]  now_ms       the time, on the clock of the deadlines.
/// @param[out] out_answered receives how many requests were answered; may be NULL.
/// @retval RRPC_STATUS_OK (also for a terminal the adapter does not know)
/// @retval RRPC_STATUS_INVALID_ARGUMENT `phone_len` is neither 6 nor 10.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `phone` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_terminal_disconnected(
    adapter: *mut rrpc_jt808_adapter,
    phone: *const u8,
    phone_len: usize,
    now_ms: u64,
    out_answered: *mut usize,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_terminal_disconnected", || {
        let h = shared(adapter)?;
        let phone = phone_arg(phone, phone_len)?;
        let n = h.run(adapter, now_ms, |a, ev| {
            a.terminal_disconnected(&phone, now_ms, ev)
        });
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_answered, n) };
        Ok(())
    })
}

/// Connection `conn` closed: its decoder is dropped (with any unfinished frame)
/// and every terminal whose connection it was is disconnected as by
/// `rrpc_jt808_adapter_terminal_disconnected`.
///
/// @param[in]  adapter      the adapter.
/// @param[in]  conn         the connection, as given to `rrpc_jt808_adapter_on_bytes`.
/// @param[in]  now_ms       the time, on the clock of the deadlines.
/// @param[out] out_answered receives how many requests were answered; may be NULL.
/// @retval RRPC_STATUS_OK (also for an unknown connection)
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_connection_closed(
    adapter: *mut rrpc_jt808_adapter,
    conn: u64,
    now_ms: u64,
    out_answered: *mut usize,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_connection_closed", || {
        let h = shared(adapter)?;
        let n = h.run(adapter, now_ms, |a, ev| {
            a.connection_closed(conn, now_ms, ev)
        });
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_answered, n) };
        Ok(())
    })
}

/// Releases request `token` without any event (its RRPC call went away by other
/// means). A request queued behind it may go out.
///
/// @param[in] adapter the adapter.
/// @param[in] token   the request, as submitted.
/// @param[in] now_ms  the time, on the clock of the deadlines.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_UNKNOWN_TOKEN the adapter holds no request `token`.
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_cancel(
    adapter: *mut rrpc_jt808_adapter,
    token: u64,
    now_ms: u64,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_cancel", || {
        let h = shared(adapter)?;
        if !h.run(adapter, now_ms, |a, ev| a.cancel(token, now_ms, ev)) {
            return Err(Failure::new(
                RRPC_STATUS_UNKNOWN_TOKEN,
                format!("the adapter holds no request {token}"),
            ));
        }
        Ok(())
    })
}

/// Expires requests whose deadline is at or before `now_ms` (EXPIRED events;
/// queued requests behind them may go out) and drops stale partial 0x0900
/// messages. Call it at `*out_next_deadline_ms`, or regularly (every 100 ms is
/// plenty).
///
/// @param[in]  adapter              the adapter.
/// @param[in]  now_ms               the time, on the clock of the deadlines.
/// @param[out] out_next_deadline_ms receives the earliest deadline still held,
///             or UINT64_MAX when none; may be NULL. A poll timeout.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `adapter` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_tick(
    adapter: *mut rrpc_jt808_adapter,
    now_ms: u64,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_tick", || {
        let h = shared(adapter)?;
        h.run(adapter, now_ms, |a, ev| a.expire(now_ms, ev));
        let next = h.adapter.lock().next_deadline().unwrap_or(u64::MAX);
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_next_deadline_ms, next) };
        Ok(())
    })
}

/// Tells when the earliest request the adapter holds (sent or queued) is due,
/// without expiring anything: how long a C event loop may sleep before
/// `rrpc_jt808_adapter_tick`.
///
/// @param[in]  adapter              the adapter.
/// @param[out] out_next_deadline_ms receives the earliest deadline, on the
///             clock of the deadlines, or UINT64_MAX when no request is held.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `out_next_deadline_ms` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_next_deadline(
    adapter: *const rrpc_jt808_adapter,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_next_deadline", || {
        let h = shared(adapter)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_next_deadline_ms, "out_next_deadline_ms") }?;
        *out = h.adapter.lock().next_deadline().unwrap_or(u64::MAX);
        Ok(())
    })
}

/// Reads the adapter's counters.
///
/// @param[in]  adapter    the adapter.
/// @param[out] out_stats  receives the counters: as many as `stats_size` holds
///                        (the rest of it is zeroed).
/// @param[in]  stats_size `sizeof *out_stats`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `adapter` or `out_stats` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_adapter_get_stats(
    adapter: *const rrpc_jt808_adapter,
    out_stats: *mut AdapterStats,
    stats_size: usize,
) -> rrpc_status {
    boundary("rrpc_jt808_adapter_get_stats", || {
        let s = shared(adapter)?.adapter.lock().stats();
        // SAFETY: `stats_size` writable bytes per the documented contract.
        unsafe { write_counters(&s, out_stats, stats_size, "out_stats") }
    })
}
