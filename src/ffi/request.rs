//! What the client and router families share: the request handed to callbacks
//! (`rrpc_request`) and the four arguments that name a device.

use std::ffi::c_char;

use super::args::{arg_opt_str, arg_str, bytes_ptr};
use super::status::rrpc_status::RRPC_STATUS_INVALID_ARGUMENT;
use super::status::Failure;
use crate::dialect::{Dialect, Identity};

/// A request handed to a callback. All pointers are owned by the library and
/// valid only until the callback returns: copy what you need, keep `token` to
/// reply later. Strings are NUL-terminated UTF-8.
#[repr(C)]
pub struct rrpc_request {
    /// Identifies the request in `rrpc_client_reply` / `rrpc_router_reply`. Never 0.
    pub token: u64,
    /// The device's dialect (an `rrpc_dialect` value).
    pub dialect: u32,
    /// The message id (Alibaba messageId, Tencent processId) from the topic,
    /// without a ContentType suffix (see `content_type`).
    pub message_id: *const c_char,
    /// The device's product key (Tencent: product id).
    pub product_key: *const c_char,
    /// The device's name.
    pub device_name: *const c_char,
    /// The custom topic, starting with '/', for RRPC_DIALECT_ALIBABA_CUSTOM; NULL
    /// for other dialects.
    pub custom_topic: *const c_char,
    /// The request payload: binary-safe, may hold NUL bytes. NULL when empty.
    pub payload: *const u8,
    /// Payload length in bytes; 0 for an empty request.
    pub payload_len: usize,
    /// Time in ms after which a reply is refused with RRPC_STATUS_EXPIRED, on the
    /// clock of the object that took the request: `CLOCK_MONOTONIC` (see
    /// `rrpc_monotonic_ms`), or a router's manual clock.
    pub deadline_ms: u64,
    /// The RRpc ContentType the caller sent, 0-255 (for JT/T 808 terminals: the
    /// pass-through type: 0 GNSS, 11 IC card, 65/66 serial port, 240-255 custom),
    /// or -1 when the request carries none. On the wire it rides in the
    /// message-id level of the request topic as `{messageId};ct={ContentType}`
    /// (for example `/sys/pk/dev1/rrpc/request/889455942124347392;ct=65`); a
    /// request without one has the plain documented `{messageId}` level. The
    /// reply goes out on the whole level, which the library does for you.
    pub content_type: i32,
}

/// A C stats struct of the client or router family: the router's counters
/// (`crate::router::Stats`, the same fields in both structs) and the family's
/// own fields.
macro_rules! router_stats {
    ($ty:ident, $s:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let s: crate::router::Stats = $s;
        $ty {
            messages: s.messages,
            requests: s.requests,
            replied: s.replied,
            expired: s.expired,
            duplicates: s.duplicates,
            own_replies: s.own_replies,
            malformed: s.malformed,
            unknown_device: s.unknown_device,
            table_full: s.table_full,
            too_large: s.too_large,
            late_replies: s.late_replies,
            bad_tokens: s.bad_tokens,
            send_failures: s.send_failures,
            not_rrpc: s.not_rrpc,
            $($field: $value),*
        }
    }};
}
pub(crate) use router_stats;

/// The four arguments that name a device in every family, in this order:
/// `dialect`, `product_key`, `device_name`, `custom_topic` (NULL unless the
/// dialect is RRPC_DIALECT_ALIBABA_CUSTOM).
pub(crate) fn device_args<'a>(
    dialect: u32,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> Result<(Dialect, Identity<'a>), Failure> {
    let d = dialect_arg(dialect, "dialect")?;
    // SAFETY: NUL-terminated strings per the documented contract.
    let id = unsafe {
        Identity {
            product_key: arg_str(product_key, "product_key")?,
            device_name: arg_str(device_name, "device_name")?,
            custom_topic: arg_opt_str(custom_topic, "custom_topic")?,
        }
    };
    Ok((d, id))
}

/// An `rrpc_dialect` value.
pub(crate) fn dialect_arg(v: u32, name: &str) -> Result<Dialect, Failure> {
    Dialect::from_u32(v).ok_or_else(|| {
        Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("{name} {v} is not an rrpc_dialect"),
        )
    })
}

/// The strings of a C request view, NUL-terminated, in a stack buffer (on the heap
/// for very long custom topics): message id, product key, device name, custom topic.
pub(crate) struct ViewStrings {
    stack: [u8; 512],
    heap: Vec<u8>,
    offsets: [usize; 4],
}

impl Default for ViewStrings {
    fn default() -> Self {
        ViewStrings {
            stack: [0u8; 512],
            heap: Vec::new(),
            offsets: [usize::MAX; 4],
        }
    }
}

impl ViewStrings {
    /// Copies the strings in (filled in place: the buffer is not moved after).
    pub(crate) fn fill(&mut self, message_id: &str, id: &Identity<'_>) {
        let parts: [Option<&str>; 4] = [
            Some(message_id),
            Some(id.product_key),
            Some(id.device_name),
            id.custom_topic,
        ];
        let need: usize = parts.iter().flatten().map(|p| p.len() + 1).sum();
        self.offsets = [usize::MAX; 4];
        let buf: &mut [u8] = if need <= self.stack.len() {
            self.heap.clear();
            &mut self.stack[..need]
        } else {
            self.heap.resize(need, 0);
            &mut self.heap
        };
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            if let Some(s) = p {
                self.offsets[i] = at;
                buf[at..at + s.len()].copy_from_slice(s.as_bytes());
                buf[at + s.len()] = 0; // parts hold no NUL: identities are validated
                at += s.len() + 1;
            }
        }
    }

    /// The view; its pointers are valid while `self` and `payload` are neither
    /// moved nor dropped.
    pub(crate) fn view(
        &self,
        token: u64,
        dialect: Dialect,
        content_type: Option<u8>,
        payload: &[u8],
        deadline_ms: u64,
    ) -> rrpc_request {
        let base = if self.heap.is_empty() {
            self.stack.as_ptr()
        } else {
            self.heap.as_ptr()
        };
        // SAFETY: every offset used is inside the buffer in use.
        let ptr = |i: usize| -> *const c_char {
            match self.offsets[i] {
                usize::MAX => std::ptr::null(),
                o => unsafe { base.add(o) }.cast(),
            }
        };
        rrpc_request {
            token,
            dialect: dialect as u32,
            message_id: ptr(0),
            product_key: ptr(1),
            device_name: ptr(2),
            custom_topic: ptr(3),
            payload: bytes_ptr(payload),
            payload_len: payload.len(),
            deadline_ms,
            content_type: content_type.map_or(-1, i32::from),
        }
    }
}
