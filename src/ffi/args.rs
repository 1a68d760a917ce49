//! Arguments from C: NULL checks, strings, byte buffers, out-parameters, and
//! `user_data` pointers. Every pointer an exported function takes goes through
//! one of these before use.

use std::ffi::{c_char, c_void, CStr};

use super::status::rrpc_status::*;
use super::status::Failure;

/// The failure of a required pointer argument that is NULL.
pub(crate) fn null_arg(name: &str) -> Failure {
    Failure::new(RRPC_STATUS_NULL_POINTER, format!("{name} is NULL"))
}

/// A required pointer argument, checked for NULL only: for memory that the
/// callee reads or writes within a size it is given, never as a whole `T`.
pub(crate) fn arg_non_null<T>(p: *const T, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        Err(null_arg(name))
    } else {
        Ok(())
    }
}

/// A required callback argument.
pub(crate) fn arg_callback<F>(f: Option<F>, name: &str) -> Result<F, Failure> {
    f.ok_or_else(|| null_arg(name))
}

/// A required pointer argument, as a shared reference.
///
/// # Safety
/// `p` must be NULL or point to a live, properly aligned `T`.
#[cfg(feature = "jt808")]
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees validity when non-NULL.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(name))
}

/// A required out-parameter, as a mutable reference.
///
/// # Safety
/// `p` must be NULL or point to writable, properly aligned memory for a `T`.
pub(crate) unsafe fn arg_out<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees validity when non-NULL.
    unsafe { p.as_mut() }.ok_or_else(|| null_arg(name))
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
    arg_non_null(p, name)?;
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
#[cfg(feature = "session")]
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

/// The one rule of output buffers (`buf`, `size`, `out_len`): on success the
/// output is in `buf` and its length in `*out_len`; when `buf` is NULL or
/// `size` too small, RRPC_STATUS_BUFFER_TOO_SMALL, `*out_len` receives the
/// length needed and `buf` is untouched. `out_len` may be NULL. Strings are
/// NUL-terminated, their length counted without the NUL.
///
/// # Safety
/// `buf` must be NULL or point to `size` writable bytes; `out_len` NULL or writable.
unsafe fn write_out(
    bytes: &[u8],
    nul: bool,
    buf: *mut u8,
    size: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    let need = bytes.len() + usize::from(nul);
    // SAFETY: forwarded contract.
    unsafe { opt_out(out_len, bytes.len()) };
    if buf.is_null() || size < need {
        return Err(Failure::new(
            RRPC_STATUS_BUFFER_TOO_SMALL,
            format!(
                "{need} bytes needed{}, {size} given",
                if nul { " (with the NUL)" } else { "" }
            ),
        ));
    }
    // SAFETY: `buf` has room for `need` bytes, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        if nul {
            *buf.add(bytes.len()) = 0;
        }
    }
    Ok(())
}

/// A string into an output buffer, NUL-terminated (see [`write_out`]).
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
    unsafe { write_out(s.as_bytes(), true, buf.cast(), size, out_len) }
}

/// Bytes into an output buffer (see [`write_out`]).
///
/// # Safety
/// `buf` must be NULL or point to `size` writable bytes; `out_len` NULL or writable.
#[cfg(feature = "jt808")]
pub(crate) unsafe fn write_bytes_out(
    bytes: &[u8],
    buf: *mut u8,
    size: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    unsafe { write_out(bytes, false, buf, size, out_len) }
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
