//! Arguments from C: NULL checks, strings, byte buffers, out-parameters, and
//! `user_data` pointers. Every pointer an exported function takes goes through
//! one of these before use.

use std::ffi::{c_char, c_void, CStr};

use super::status::rrpc_status::*;
use super::status::Failure;

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

/// Writes `value` to an optional out-parameter (NULL: nothing written).
///
/// # Safety
/// `p` must be NULL or point to writable, properly aligned memory for a `T`.
pub(crate) unsafe fn opt_out<T>(p: *mut T, value: T) {
    // SAFETY: the caller guarantees validity when non-NULL.
    if let Some(out) = unsafe { p.as_mut() } {
        *out = value;
    }
}

/// A flag field of a struct that C fills: `uint8_t` 0 (false) or 1 (true).
/// Any other value is refused with RRPC_STATUS_INVALID_ARGUMENT naming the
/// field (a C `bool` holding another byte would be undefined behaviour in Rust,
/// which is why these fields are not `bool`).
pub(crate) fn arg_flag(v: u8, name: &str) -> Result<bool, Failure> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("{name} must be 0 (false) or 1 (true), not {v}"),
        )),
    }
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

/// An optional string argument, owned.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_string(
    p: *const c_char,
    name: &str,
) -> Result<Option<String>, Failure> {
    // SAFETY: forwarded contract.
    Ok(unsafe { arg_opt_str(p, name) }?.map(str::to_string))
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

/// A byte buffer handed to C: NULL when empty.
pub(crate) fn bytes_ptr(b: &[u8]) -> *const u8 {
    if b.is_empty() {
        std::ptr::null()
    } else {
        b.as_ptr()
    }
}

/// Writes `s` NUL-terminated into a caller buffer, reporting the length without
/// the NUL. Fails with BUFFER_TOO_SMALL (but still reports the length) when it
/// does not fit.
///
/// # Safety
/// `buf` must be NULL or point to `size` writable bytes; `out_len` NULL or writable.
pub(crate) unsafe fn write_str_out(
    s: &str,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    unsafe { opt_out(out_len, s.len()) };
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

/// A `user_data` pointer, which the application promised may cross threads.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut c_void);
// SAFETY: the API documents that user_data is handed back on other threads; the
// library never dereferences it.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub fn get(self) -> *mut c_void {
        self.0
    }
}
