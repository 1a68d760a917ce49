//! The C ABI. Nothing outside this module tree knows about raw pointers.
//!
//! Every exported function goes through `boundary`: it catches panics (mapped to
//! `RRPC_STATUS_PANIC`), turns errors into a status code and records the
//! thread-local last-error message. Pointers are checked with `arg_ref`,
//! `arg_str` and friends before use.

#![allow(non_camel_case_types)]
// The doc comments are the C header's (cbindgen copies them into rrpc.h) and
// use Doxygen's `@param[in]` and `@param[out]`, which rustdoc reads as links.
#![allow(rustdoc::broken_intra_doc_links)]
// The exported functions are C entry points: they take raw pointers by design,
// check them for NULL and state the validity contract in their documentation.
// Marking them `unsafe fn` would change nothing for C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod caller;
pub mod client;
pub mod jt808;
pub mod misc;
pub mod router;

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::client::ClientError;
use crate::router::{DeviceError, ReplyError};

/// Status code returned by every fallible function. `RRPC_STATUS_OK` is 0; every
/// other value names one kind of failure, with detail in
/// `rrpc_last_error_message()`. Values are stable across releases; new ones may
/// be added, so treat unknown values as failures.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_status {
    /// Success.
    RRPC_STATUS_OK = 0,
    /// A required pointer argument was NULL.
    RRPC_STATUS_NULL_POINTER = 1,
    /// A string argument was not valid UTF-8.
    RRPC_STATUS_INVALID_UTF8 = 2,
    /// An argument was out of range or inconsistent (see the message).
    RRPC_STATUS_INVALID_ARGUMENT = 3,
    /// A product key, device name or custom topic was empty, too long, or held
    /// `+`, `#`, `/` (custom topics may hold `/`), NUL or a control character.
    RRPC_STATUS_INVALID_IDENTITY = 4,
    /// A payload was larger than the configured maximum.
    RRPC_STATUS_PAYLOAD_TOO_LARGE = 5,
    /// The token was never issued by this client (or is too old to remember).
    RRPC_STATUS_UNKNOWN_TOKEN = 6,
    /// The request was already answered; the second reply was not sent.
    RRPC_STATUS_ALREADY_REPLIED = 7,
    /// The request's deadline passed; the reply was not sent.
    RRPC_STATUS_EXPIRED = 8,
    /// The device was removed while the request was pending; not sent.
    RRPC_STATUS_DEVICE_REMOVED = 9,
    /// The device is already registered on this client, or another device
    /// already uses its custom topic.
    RRPC_STATUS_ALREADY_EXISTS = 10,
    /// The device is not registered on this client.
    RRPC_STATUS_NOT_FOUND = 11,
    /// The call is not allowed now: for example start twice, yield while the
    /// background thread runs, or stop/free/yield from inside a callback.
    RRPC_STATUS_WRONG_STATE = 12,
    /// Connecting to the broker failed (see the message for the reason).
    RRPC_STATUS_CONNECT_FAILED = 13,
    /// No connection to the broker right now; the token stays valid, retry.
    RRPC_STATUS_NOT_CONNECTED = 14,
    /// The outgoing queue is full; the token stays valid, retry shortly.
    RRPC_STATUS_BUSY = 15,
    /// An output buffer was too small; the needed length was reported.
    RRPC_STATUS_BUFFER_TOO_SMALL = 16,
    /// An internal error (a bug); the message says more.
    RRPC_STATUS_INTERNAL = 17,
    /// The library caught a panic (a bug); the handle is still usable.
    RRPC_STATUS_PANIC = 18,
    /// The application's publish function failed: the reply was not sent and the
    /// request was released (router API).
    RRPC_STATUS_SEND_FAILED = 19,
    /// Bytes that are not a valid JT/T 808 frame (bad checksum, escape, flags,
    /// length, package fields), or a frame whose body does not fit its message
    /// id; the message names the byte offset and the rule.
    RRPC_STATUS_MALFORMED_FRAME = 20,
}

use rrpc_status::*;

impl rrpc_status {
    pub(crate) fn text(self) -> &'static CStr {
        match self {
            RRPC_STATUS_OK => c"ok",
            RRPC_STATUS_NULL_POINTER => c"null pointer argument",
            RRPC_STATUS_INVALID_UTF8 => c"string argument is not valid UTF-8",
            RRPC_STATUS_INVALID_ARGUMENT => c"invalid argument",
            RRPC_STATUS_INVALID_IDENTITY => c"invalid product key, device name or custom topic",
            RRPC_STATUS_PAYLOAD_TOO_LARGE => c"payload larger than the configured maximum",
            RRPC_STATUS_UNKNOWN_TOKEN => c"unknown token",
            RRPC_STATUS_ALREADY_REPLIED => c"request already answered",
            RRPC_STATUS_EXPIRED => c"request deadline passed; reply not sent",
            RRPC_STATUS_DEVICE_REMOVED => c"device removed; reply not sent",
            RRPC_STATUS_ALREADY_EXISTS => c"device already registered",
            RRPC_STATUS_NOT_FOUND => c"device not registered",
            RRPC_STATUS_WRONG_STATE => c"call not allowed in the current state",
            RRPC_STATUS_CONNECT_FAILED => c"could not connect to the broker",
            RRPC_STATUS_NOT_CONNECTED => c"not connected to the broker",
            RRPC_STATUS_BUSY => c"outgoing queue full; retry shortly",
            RRPC_STATUS_BUFFER_TOO_SMALL => c"output buffer too small",
            RRPC_STATUS_INTERNAL => c"internal error",
            RRPC_STATUS_PANIC => c"internal panic caught at the API boundary",
            RRPC_STATUS_SEND_FAILED => c"publish function failed; request released",
            RRPC_STATUS_MALFORMED_FRAME => c"malformed JT/T 808 frame",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<rrpc_status> {
        const ALL: [rrpc_status; 21] = [
            RRPC_STATUS_OK,
            RRPC_STATUS_NULL_POINTER,
            RRPC_STATUS_INVALID_UTF8,
            RRPC_STATUS_INVALID_ARGUMENT,
            RRPC_STATUS_INVALID_IDENTITY,
            RRPC_STATUS_PAYLOAD_TOO_LARGE,
            RRPC_STATUS_UNKNOWN_TOKEN,
            RRPC_STATUS_ALREADY_REPLIED,
            RRPC_STATUS_EXPIRED,
            RRPC_STATUS_DEVICE_REMOVED,
            RRPC_STATUS_ALREADY_EXISTS,
            RRPC_STATUS_NOT_FOUND,
            RRPC_STATUS_WRONG_STATE,
            RRPC_STATUS_CONNECT_FAILED,
            RRPC_STATUS_NOT_CONNECTED,
            RRPC_STATUS_BUSY,
            RRPC_STATUS_BUFFER_TOO_SMALL,
            RRPC_STATUS_INTERNAL,
            RRPC_STATUS_PANIC,
            RRPC_STATUS_SEND_FAILED,
            RRPC_STATUS_MALFORMED_FRAME,
        ];
        ALL.get(v as usize).copied()
    }
}

/// A failure on its way to C: the status and the detail for the last-error message.
pub(crate) struct Failure {
    pub status: rrpc_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: rrpc_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let status = match &e {
            ClientError::InvalidArgument(_) => RRPC_STATUS_INVALID_ARGUMENT,
            ClientError::Device(DeviceError::Invalid(_)) => RRPC_STATUS_INVALID_IDENTITY,
            ClientError::Device(DeviceError::AlreadyExists | DeviceError::TopicInUse(_)) => {
                RRPC_STATUS_ALREADY_EXISTS
            }
            ClientError::Device(DeviceError::NotFound) => RRPC_STATUS_NOT_FOUND,
            ClientError::WrongState(_) => RRPC_STATUS_WRONG_STATE,
            ClientError::ConnectFailed(_) => RRPC_STATUS_CONNECT_FAILED,
            ClientError::NotConnected => RRPC_STATUS_NOT_CONNECTED,
            ClientError::Busy => RRPC_STATUS_BUSY,
            ClientError::Reply(r) => match r {
                ReplyError::UnknownToken => RRPC_STATUS_UNKNOWN_TOKEN,
                ReplyError::AlreadyReplied => RRPC_STATUS_ALREADY_REPLIED,
                ReplyError::Expired => RRPC_STATUS_EXPIRED,
                ReplyError::DeviceRemoved => RRPC_STATUS_DEVICE_REMOVED,
                ReplyError::TooLarge => RRPC_STATUS_PAYLOAD_TOO_LARGE,
                ReplyError::Send(_) => RRPC_STATUS_NOT_CONNECTED,
                ReplyError::InProgress => RRPC_STATUS_BUSY,
            },
        };
        Failure::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The panic boundary: runs `body`, maps its error or a panic to a status code and
/// records the message. Every exported function that returns a status uses it.
pub(crate) fn boundary(
    name: &'static str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> rrpc_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RRPC_STATUS_OK,
        Ok(Err(f)) => {
            set_last_error(&format!("{name}: {}", f.message));
            f.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("{name}: internal panic: {what}"));
            RRPC_STATUS_PANIC
        }
    }
}

/// A required pointer argument, as a shared reference.
///
/// # Safety
/// `p` must be NULL or point to a live, properly aligned `T`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees validity when non-NULL.
    unsafe { p.as_ref() }
        .ok_or_else(|| Failure::new(RRPC_STATUS_NULL_POINTER, format!("{name} is NULL")))
}

/// A required out-parameter, as a mutable reference.
///
/// # Safety
/// `p` must be NULL or point to writable, properly aligned memory for a `T`.
pub(crate) unsafe fn arg_out<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees validity when non-NULL.
    unsafe { p.as_mut() }
        .ok_or_else(|| Failure::new(RRPC_STATUS_NULL_POINTER, format!("{name} is NULL")))
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(
            RRPC_STATUS_NULL_POINTER,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure::new(
            RRPC_STATUS_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })
}

/// An optional NUL-terminated UTF-8 string argument: NULL is `None`.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, name) }.map(Some)
    }
}

/// A byte buffer argument: `(NULL, 0)` is the empty buffer; NULL with a length
/// is an error.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn arg_bytes<'a>(
    p: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::new(
            RRPC_STATUS_NULL_POINTER,
            format!("{name} is NULL but its length is {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("{name} length {len} is impossible"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `s` NUL-terminated into a caller buffer, reporting the length without
/// the NUL. Fails with BUFFER_TOO_SMALL (but still reports the length) when it
/// does not fit.
///
/// # Safety
/// `buf` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn write_str_out(
    s: &str,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    if let Some(l) = unsafe { out_len.as_mut() } {
        *l = s.len();
    }
    if buf.is_null() || size < s.len() + 1 {
        return Err(Failure::new(
            RRPC_STATUS_BUFFER_TOO_SMALL,
            format!("{} bytes needed (with the NUL), {size} given", s.len() + 1),
        ));
    }
    // SAFETY: `buf` has room for `s.len() + 1` bytes, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_a_status_and_a_message() {
        let st = boundary("rrpc_test", || panic!("boom at the boundary"));
        assert_eq!(st, RRPC_STATUS_PANIC);
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("rrpc_test") && msg.contains("boom at the boundary"),
            "{msg}"
        );
    }

    #[test]
    fn errors_set_the_message_and_success_keeps_it() {
        let st = boundary("rrpc_test", || {
            Err(Failure::new(RRPC_STATUS_BUSY, "queue full"))
        });
        assert_eq!(st, RRPC_STATUS_BUSY);
        assert_eq!(boundary("rrpc_ok", || Ok(())), RRPC_STATUS_OK);
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap();
        assert_eq!(msg, "rrpc_test: queue full");
    }

    #[test]
    fn every_status_has_a_text() {
        for v in 0..21 {
            let s = rrpc_status::from_u32(v).expect("contiguous values");
            assert_eq!(s as u32, v);
            assert!(!s.text().to_bytes().is_empty());
        }
        assert!(rrpc_status::from_u32(21).is_none());
    }
}
