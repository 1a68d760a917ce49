//! Conversions between C and `jt808::SharedAdapter`: arguments and settings
//! in, the C callbacks as Rust ones, events as `rrpc_jt808_event` views, and
//! the errors of a submit as statuses.

use std::ffi::{c_void, CString};

use super::super::args::{arg_bytes, arg_flag, arg_ref, bytes_ptr, SendPtr};
use super::super::jt808_codec::{frame_view, phone_view};
use super::super::misc::rrpc_bool;
use super::super::rrpc_status::*;
use super::super::status::Status;
use super::super::status::{Failure, SendFailed};
use super::rrpc_jt808_adapter;
use super::types::*;
use crate::jt808::{
    AdapterConfig, BusyPolicy, Completion, Escapes, Event, EventFn, Phone, ReassemblerConfig,
    ReplyKind, SendFn, SharedSubmitError, SubmitError,
};

/// The connection of an event that concerns none.
const NO_CONN: u64 = u64::MAX;

pub(super) fn phone_arg(p: *const u8, len: usize) -> Result<Phone, Failure> {
    // SAFETY: NULL or `len` readable bytes per the documented contract.
    unsafe { arg_ref(p, "phone") }?;
    let raw = unsafe { arg_bytes(p, len, "phone") }?;
    Ok(Phone::from_raw(raw)?)
}

/// false: strict, true: lenient.
pub(in crate::ffi) fn escapes_arg(v: rrpc_bool, what: &str) -> Result<Escapes, Failure> {
    Ok(if arg_flag(v, what)? {
        Escapes::Lenient
    } else {
        Escapes::Strict
    })
}

pub(super) fn completion_arg(
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

/// The adapter's settings from C's.
pub(super) fn adapter_config(c: &rrpc_jt808_adapter_config) -> Result<AdapterConfig, Failure> {
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
    Ok(AdapterConfig {
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
    })
}

/// A C send function as the shared adapter's: 0 is success, any other value
/// the failure it names.
pub(super) fn send_fn(
    f: rrpc_jt808_adapter_send_fn,
    user_data: *mut c_void,
) -> Option<Box<SendFn<SendFailed>>> {
    let ud = SendPtr(user_data);
    f.map(|f| {
        Box::new(move |conn: u64, phone: &Phone, frames: &[u8]| {
            let raw = phone.raw();
            // SAFETY: the application registered `f` for this signature; the
            // buffers live until it returns.
            match unsafe {
                f(
                    ud.get(),
                    conn,
                    raw.as_ptr(),
                    raw.len(),
                    frames.as_ptr(),
                    frames.len(),
                )
            } {
                0 => Ok(()),
                rc => Err(SendFailed(rc)),
            }
        }) as Box<SendFn<SendFailed>>
    })
}

/// A C event callback as the shared adapter's, handed the adapter's handle.
pub(super) fn event_fn(
    cb: rrpc_jt808_adapter_event_cb,
    user_data: *mut c_void,
    adapter: *mut rrpc_jt808_adapter,
) -> Option<Box<EventFn>> {
    let (ud, adapter) = (SendPtr(user_data), SendPtr(adapter.cast()));
    cb.map(|cb| {
        Box::new(move |event: &Event, conn: Option<u64>| {
            with_event_view(event, conn.unwrap_or(NO_CONN), |view| {
                // SAFETY: the application registered `cb` for this signature;
                // the view and everything it points to live until it returns.
                unsafe { cb(ud.get(), adapter.get().cast(), view) }
            })
        }) as Box<EventFn>
    })
}

fn to_c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
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

/// Runs `f` with the C view of `e` (which concerns connection `conn`); the
/// view and what it points to live until `f` returns. Frames to send have no
/// view: the shared adapter never hands them to the event callback.
fn with_event_view(e: &Event, conn: u64, f: impl FnOnce(&rrpc_jt808_event)) {
    use rrpc_jt808_event_kind::*;
    let frame_view_holder;
    let message_holder;
    let view = match e {
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
    f(&view)
}

/// A failed submit as C reports it: the status of the one table, with the
/// messages that name the C function to call.
pub(super) fn submit_failure(e: SharedSubmitError<SendFailed>) -> Failure {
    let status = e.status();
    let message = match e {
        SharedSubmitError::NoSendFunction => {
            "no send function is registered (rrpc_jt808_adapter_set_send)".to_string()
        }
        SharedSubmitError::Refused(SubmitError::NotConnected { phone }) => format!(
            "terminal {phone} is not bound to a connection (it has not authenticated: \
             rrpc_jt808_adapter_terminal_authenticated)"
        ),
        SharedSubmitError::SendFailed(e) => e.to_string(),
        other => other.to_string(),
    };
    Failure::new(status, message)
}
