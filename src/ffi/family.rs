//! The functions every family has, written once: `_config_init` (and the
//! `_params_init` of parameter structs), `_new`, `_free`, `_get_stats` and the
//! getters of strings. Each exported function keeps its own signature and
//! documentation (they are the header) and calls one of these in one line.

#[cfg(any(feature = "client", feature = "caller"))]
use std::ffi::c_char;

use super::args::null_arg;
#[cfg(any(feature = "client", feature = "caller"))]
use super::args::write_str_out;
use super::boundary::boundary;
use super::handle::Castable;
use super::rrpc_status::RRPC_STATUS_WRONG_STATE;
use super::sized::{init_settings, read_settings, write_output, Settings};
use super::status::{rrpc_status, Failure};
use crate::callback::Reentered;
use crate::counters::CounterSet;

/// `_config_init`, `_params_init`: the defaults of a `T` into the
/// application's `size` bytes at `out` (the argument `out_name`).
///
/// # Safety
/// `out` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn settings_init<T: Settings>(
    function: &'static str,
    out: *mut T,
    size: usize,
    out_name: &str,
) -> rrpc_status {
    // SAFETY: forwarded contract.
    boundary(function, || unsafe { init_settings(out, size, out_name) })
}

/// `_new`: reads the settings at `config` (the argument `config`), makes the
/// object with `make` and writes its handle to `*out` (the argument
/// `out_{H::NAME}`), only on success.
///
/// # Safety
/// `config` must be NULL or point to settings of their `struct_size` bytes
/// whose pointers are valid as `make` requires; `out` NULL or writable.
pub(crate) unsafe fn new_handle<S: Settings, H: Castable>(
    function: &'static str,
    config: *const S,
    out: *mut *mut H::C,
    make: unsafe fn(&S) -> Result<H, Failure>,
) -> rrpc_status {
    boundary(function, || {
        // SAFETY: forwarded contract.
        let c = unsafe { read_settings(config, "config") }?;
        // SAFETY: forwarded contract.
        let out = unsafe { out.as_mut() }.ok_or_else(|| null_arg(&format!("out_{}", H::NAME)))?;
        // SAFETY: forwarded contract.
        *out = unsafe { make(&c) }?.into_c();
        Ok(())
    })
}

/// `_free`: NULL does nothing; otherwise `release` stops the object (and may
/// refuse, leaving the handle valid) before it is dropped.
pub(crate) fn free_handle<H: Castable>(
    function: &'static str,
    p: *mut H::C,
    release: impl FnOnce(&H) -> Result<(), Failure>,
) -> rrpc_status {
    boundary(function, || H::free(p, release))
}

/// The refusal of a `_free` called from one of the object's own callbacks
/// (`closed` is the object's `close()`); `why` names the callbacks.
pub(crate) fn refuse_reentry(closed: Result<(), Reentered>, why: &str) -> Result<(), Failure> {
    closed.map_err(|_| Failure::new(RRPC_STATUS_WRONG_STATE, why))
}

/// `_get_stats`: the counters of the object behind `p` into the application's
/// `size` bytes at `out` (the argument `out_stats`).
///
/// # Safety
/// `out` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn get_stats<H: Castable, S: CounterSet>(
    function: &'static str,
    p: *const H::C,
    out: *mut S,
    size: usize,
    stats: impl FnOnce(&H) -> S,
) -> rrpc_status {
    boundary(function, || {
        let s = stats(H::borrow(p)?);
        // SAFETY: forwarded contract.
        unsafe { write_output(&s, out, size, "out_stats") }
    })
}

/// The getters of strings (`rrpc_client_get_client_id`,
/// `rrpc_response_to_json`, ...): `text` of the object behind `p` into `buf`,
/// NUL-terminated, by the one rule of output buffers (`write_str_out`).
///
/// # Safety
/// `buf` must be NULL or point to `size` writable bytes; `out_len` NULL or
/// writable.
#[cfg(any(feature = "client", feature = "caller"))]
pub(crate) unsafe fn get_string<H: Castable>(
    function: &'static str,
    p: *const H::C,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
    text: impl FnOnce(&H) -> String,
) -> rrpc_status {
    boundary(function, || {
        let s = text(H::borrow(p)?);
        // SAFETY: forwarded contract.
        unsafe { write_str_out(&s, buf, size, out_len) }
    })
}
