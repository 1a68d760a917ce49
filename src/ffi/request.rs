//! What the client and router families share: the request handed to callbacks
//! (`rrpc_request`) and the four arguments that name a device.

use std::ffi::c_char;

use super::args::{arg_opt_str, arg_str, bytes_ptr};
use super::boundary::boundary;
use super::handle::Castable;
use super::misc::rrpc_dialect_raw;
use super::status::rrpc_status::RRPC_STATUS_INVALID_ARGUMENT;
use super::status::{rrpc_status, Failure};
use crate::dialect::{Dialect, Identity};
use crate::router::Request;

/// A request handed to a request callback (`rrpc_client_request_cb`,
/// `rrpc_router_request_cb`). All pointers are owned by the library and valid
/// only until the callback returns: copy what you need, keep `token` to reply
/// later. Strings are NUL-terminated UTF-8.
///
/// The library may append fields in later 1.x releases: `struct_size` is the
/// size of the struct it passes, so a field is there when
/// `RRPC_HAS_FIELD(request, rrpc_request, field)` is true.
#[repr(C)]
pub struct rrpc_request {
    /// `sizeof(rrpc_request)` of the library that made it.
    pub struct_size: u32,
    /// The device's dialect.
    pub dialect: rrpc_dialect_raw,
    /// Identifies the request in `rrpc_client_reply` / `rrpc_router_reply`. Never 0.
    pub token: u64,
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
    /// Time in ms after which a reply is refused with RRPC_STATUS_EXPIRED: on
    /// `CLOCK_MONOTONIC` (`rrpc_monotonic_ms`) for a client, on the clock of the
    /// `now_ms` a router is given.
    pub deadline_ms: u64,
    /// The RRpc ContentType the caller sent, 0-255 (for JT/T 808 terminals: the
    /// pass-through type: 0 GNSS, 11 IC card, 65/66 serial port, 240-255 custom),
    /// or -1 when the request carries none. On the wire it rides in the
    /// message-id level of the request topic as `{messageId};ct={ContentType}`
    /// (for example `/sys/pk/dev1/rrpc/request/889455942124347392;ct=65`); a
    /// request without one has the plain documented `{messageId}` level. The
    /// reply goes out on the whole level, which the library does for you.
    pub content_type: i32,
    /// The method, service or command name the request topic carries
    /// (RRPC_DIALECT_ALIBABA_SERVICE: the service identifier; RRPC_DIALECT_AZURE:
    /// the method name); NULL for dialects without one. Since 1.1: check
    /// `RRPC_HAS_FIELD(request, rrpc_request, name)`.
    pub name: *const c_char,
}

/// The C view of `req`; its pointers live as long as `req`.
pub(crate) fn request_view(req: &Request<'_>) -> rrpc_request {
    let [message_id, product_key, device_name, custom_topic, name] = req
        .c_strings()
        .map(|s| s.map_or(std::ptr::null(), |s| s.as_ptr()));
    rrpc_request {
        struct_size: std::mem::size_of::<rrpc_request>() as u32,
        dialect: req.dialect.to_u32(),
        token: req.token,
        message_id,
        product_key,
        device_name,
        custom_topic,
        payload: bytes_ptr(req.payload),
        payload_len: req.payload.len(),
        deadline_ms: req.deadline_ms,
        content_type: req.content_type.map_or(-1, i32::from),
        name,
    }
}

/// The four arguments that name a device in every family, in this order:
/// `dialect`, `product_key`, `device_name`, `custom_topic` (NULL unless the
/// dialect is RRPC_DIALECT_ALIBABA_CUSTOM).
pub(crate) fn device_args<'a>(
    dialect: rrpc_dialect_raw,
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

/// The device functions of every family (`_add_device`, `_remove_device`):
/// `change` with the object behind `handle` and the device that the four
/// arguments of [`device_args`] name; what it returns on success is dropped.
pub(crate) fn device_call<H: Castable, R, E: Into<Failure>>(
    function: &'static str,
    handle: *const H::C,
    dialect: rrpc_dialect_raw,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
    change: impl FnOnce(&H, Dialect, &Identity<'_>) -> Result<R, E>,
) -> rrpc_status {
    boundary(function, || {
        let h = H::borrow(handle)?;
        let (d, id) = device_args(dialect, product_key, device_name, custom_topic)?;
        change(h, d, &id).map(drop).map_err(Into::into)
    })
}

/// An `rrpc_dialect` value.
pub(crate) fn dialect_arg(v: rrpc_dialect_raw, name: &str) -> Result<Dialect, Failure> {
    Dialect::from_u32(v).ok_or_else(|| {
        Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("{name} {v} is not an rrpc_dialect"),
        )
    })
}

/// The `status` argument of the `_reply_status` functions: an HTTP-style code,
/// 100 to 599.
pub(crate) fn reply_status_arg(status: u32) -> Result<u16, Failure> {
    match u16::try_from(status) {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("status {status} is not a status code from 100 to 599"),
        )),
    }
}
