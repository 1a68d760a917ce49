//! `rrpc_jt808_adapter_*`: the pass-through adapter that turns RRPC requests
//! into 0x8900 downlinks and the terminal's 0x0001/0x0900 back into RRPC
//! replies, as C sees `jt808::SharedAdapter`. No I/O and no threads: the
//! application owns the terminals' TCP connections and the MQTT side.
//!
//! Each function converts its arguments, calls one method of the shared
//! adapter and converts the result: the C types are in `types.rs`, the
//! conversions (settings, callbacks, event views, submit errors) in
//! `convert.rs`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::args::{arg_bytes, arg_out, arg_ref, opt_out};
use super::boundary::boundary;
use super::family::{free_handle, get_stats, new_handle, refuse_reentry, settings_init};
use super::handle::Castable;
use super::jt808_codec::{header_from_view, phone_from_view, rrpc_jt808_frame};
use super::misc::rrpc_bool;
use super::rrpc_status::*;
use super::sized::read_settings;
use super::status::{rrpc_status, Failure, SendFailed};
use crate::jt808::{AdapterStats, Call, Frame, Handled, SharedAdapter, Submitted};

mod convert;
mod types;

pub(super) use convert::escapes_arg;
use convert::{adapter_config, completion_arg, event_fn, phone_arg, send_fn, submit_failure};
pub use types::*;

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

/// What an `rrpc_jt808_adapter *` stands for: its own reference to the shared
/// adapter. Every function that may run a callback works on its own clone, so
/// that a thread whose callback `rrpc_jt808_adapter_free` waited for returns
/// through memory that is still there.
type Handle = Arc<SharedAdapter<SendFailed>>;

impl Castable for Handle {
    type C = rrpc_jt808_adapter;
    const NAME: &'static str = "adapter";
}

/// An adapter with the settings of C's `c`.
fn new_adapter(c: &rrpc_jt808_adapter_config) -> Result<Handle, Failure> {
    Ok(Arc::new(SharedAdapter::new(adapter_config(c)?)?))
}

/// The shared adapter behind a handle, kept alive for the call.
fn shared_adapter(adapter: *const rrpc_jt808_adapter) -> Result<Handle, Failure> {
    Ok(Handle::borrow(adapter)?.clone())
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
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_jt808_adapter_config_init",
            out_config,
            config_size,
            "out_config",
        )
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
    // SAFETY: pointer contracts documented above.
    unsafe { new_handle("rrpc_jt808_adapter_new", config, out_adapter, new_adapter) }
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
    free_handle("rrpc_jt808_adapter_free", adapter, |h: &Handle| {
        refuse_reentry(
            h.close(),
            "an adapter cannot be freed from its own send function or event callback",
        )
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
    boundary("rrpc_jt808_adapter_set_send", || {
        Ok(shared_adapter(adapter)?.set_send(send_fn(send, user_data))?)
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
    boundary("rrpc_jt808_adapter_set_event_callback", || {
        let h = shared_adapter(adapter)?;
        Ok(h.set_event_callback(event_fn(callback, user_data, adapter))?)
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
    // SAFETY: `params_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_jt808_adapter_submit_params_init",
            out_params,
            params_size,
            "out_params",
        )
    }
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
        let h = shared_adapter(adapter)?;
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
        let submitted = h.submit(&call, now_ms).map_err(submit_failure)?;
        let queued = matches!(submitted, Submitted::Queued { .. });
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
        let h = shared_adapter(adapter)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let data = unsafe { arg_bytes(bytes, len, "bytes") }?;
        Ok(h.on_bytes(conn, data, now_ms)?)
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
        let h = shared_adapter(adapter)?;
        // SAFETY: pointer contracts documented above.
        let v = unsafe { arg_ref(frame, "frame") }?;
        let body = unsafe { arg_bytes(v.body, v.body_len, "frame->body") }?;
        let f = Frame {
            header: header_from_view(&v.header)?,
            body: body.to_vec(),
        };
        let taken = match h.on_frame(conn, &f, now_ms) {
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
        let h = shared_adapter(adapter)?;
        let phone = phone_arg(phone, phone_len)?;
        Ok(h.terminal_authenticated(&phone, conn)?)
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
        let h = shared_adapter(adapter)?;
        let phone = phone_arg(phone, phone_len)?;
        let n = h.terminal_disconnected(&phone, now_ms);
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
        let n = shared_adapter(adapter)?.connection_closed(conn, now_ms);
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
        if !shared_adapter(adapter)?.cancel(token, now_ms) {
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
        let (_, next) = shared_adapter(adapter)?.tick(now_ms);
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_next_deadline_ms, next.unwrap_or(u64::MAX)) };
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
        let h = shared_adapter(adapter)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_next_deadline_ms, "out_next_deadline_ms") }?;
        *out = h.next_deadline().unwrap_or(u64::MAX);
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
    // SAFETY: `stats_size` writable bytes per the documented contract.
    unsafe {
        get_stats(
            "rrpc_jt808_adapter_get_stats",
            adapter,
            out_stats,
            stats_size,
            |h: &Handle| h.stats(),
        )
    }
}
