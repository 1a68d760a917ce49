//! Dialects of the application's own (`rrpc_dialect_config`,
//! `rrpc_dialect_register`) and the name of any dialect (`rrpc_dialect_name`),
//! as C sees `crate::dialect::register`.

use std::ffi::c_char;

use super::args::{arg_opt_str, arg_out, arg_str, write_str_out};
use super::boundary::boundary;
use super::family::settings_init;
use super::misc::rrpc_dialect_raw;
use super::request::dialect_arg;
use super::sized::{read_settings, settings};
use super::status::rrpc_status;
use crate::dialect::{self, DialectConfig, USER_DIALECT_FIRST};

/// The `rrpc_dialect` value of the first dialect an application registers;
/// the next ones follow in registration order (at most 64 per process).
pub const RRPC_DIALECT_USER_FIRST: u32 = 256;

const _: () = assert!(RRPC_DIALECT_USER_FIRST == USER_DIALECT_FIRST);

/// A dialect of the application's own, for `rrpc_dialect_register`; fill with
/// `rrpc_dialect_config_init`. Templates are topics with placeholders, each at
/// most once and anywhere inside a level: `{pk}` (product key), `{dn}` (device
/// name), `{id}` (the request's id, required in the request and the response),
/// `{name}` (a method or service name, handed over as `rrpc_request.name`),
/// `{format}` (a payload format), and in the response only `{status}` (the
/// reply's status code: 200, or the one given to `rrpc_client_reply_status`
/// or `rrpc_router_reply_status`). docs/dialects.md gives every rule.
/// The strings are copied by `rrpc_dialect_register`.
#[repr(C)]
pub struct rrpc_dialect_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_dialect_config_init`.
    pub struct_size: u32,
    /// The dialect's name (required): 1 to 32 of `a-z 0-9 - _ .`, not the name
    /// of a built-in dialect. `rrpc_dialect_from_name` finds it by this name.
    pub name: *const c_char,
    /// The filter a device subscribes, with `{pk}` and `{dn}` as whole levels,
    /// `+` as a whole level and `#` as the whole last level. NULL (default):
    /// the request template with `+` for each level that holds `{id}`,
    /// `{name}` or `{format}`.
    pub subscribe: *const c_char,
    /// The request topic (required), such as `acme/{pk}/{dn}/rpc/{id}/{name}`;
    /// no wildcards.
    pub request: *const c_char,
    /// The reply topic (required), such as `acme/{pk}/{dn}/rpc/{id}/reply`: only
    /// placeholders the request carries, and `{status}`; no wildcards.
    pub response: *const c_char,
    /// How long a caller waits for a reply by default (and a device or router
    /// without a `request_timeout_ms` keeps the request), in ms: 1 to 600000.
    /// Default 8000.
    pub default_timeout_ms: u32,
}

settings!(rrpc_dialect_config {
    struct_size,
    name,
    subscribe,
    request,
    response,
    default_timeout_ms,
} defaults [
    d = DialectConfig::default(),
] {
    default_timeout_ms: d.default_timeout_ms,
});

/// Fills `out_config` with the defaults (see `rrpc_dialect_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_dialect_config_init(
    out_config: *mut rrpc_dialect_config,
    config_size: usize,
) -> rrpc_status {
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_dialect_config_init",
            out_config,
            config_size,
            "out_config",
        )
    }
}

/// Registers a dialect for the whole process: the device client, the router
/// and the caller then take its value like a built-in dialect's. Everything is
/// checked here, once: a definition that is refused registers nothing, and
/// the last error message starts with the field and says what is wrong
/// ("request: acme/{dn}/rpc has no {id}").
///
/// Threads: any thread, at any time, also several at once. Dialects live
/// until the process ends (there is no unregister). Registering the same
/// definition again (same name, templates and timeout) returns the same value;
/// the same name with another definition is refused. Values are given from
/// `RRPC_DIALECT_USER_FIRST` in registration order: processes that exchange
/// values (a device and its gateway) register in the same order.
///
/// @param[in]  config      the definition (`rrpc_dialect_config_init` gives the
///                         defaults).
/// @param[out] out_dialect receives the dialect's value.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER    `config`, `config->name`, `config->request`,
///                                     `config->response` or `out_dialect` is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8    a string is not UTF-8.
/// @retval RRPC_STATUS_STRUCT_SIZE     `config->struct_size` is not one this library knows.
/// @retval RRPC_STATUS_INVALID_DIALECT the definition was refused; the message
///                                     names the field and the problem.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_dialect_register(
    config: *const rrpc_dialect_config,
    out_dialect: *mut rrpc_dialect_raw,
) -> rrpc_status {
    boundary("rrpc_dialect_register", || {
        // SAFETY: pointer contracts documented above.
        let c = unsafe { read_settings(config, "config") }?;
        let out = unsafe { arg_out(out_dialect, "out_dialect") }?;
        // SAFETY: NUL-terminated strings per the documented contract.
        let cfg = unsafe {
            DialectConfig {
                name: arg_str(c.name, "config->name")?,
                subscribe: arg_opt_str(c.subscribe, "config->subscribe")?,
                request: arg_str(c.request, "config->request")?,
                response: arg_str(c.response, "config->response")?,
                default_timeout_ms: c.default_timeout_ms,
            }
        };
        *out = dialect::register(&cfg)?.to_u32();
        Ok(())
    })
}

/// The name of a dialect, as `rrpc_dialect_from_name` takes it: "alibaba",
/// "tencent", ... or the name a registered dialect was given.
///
/// @param[in]  dialect a built-in or registered dialect.
/// @param[out] buf     receives the name, NUL-terminated; may be NULL to ask
///                     for the length.
/// @param[in]  size    the size of `buf`.
/// @param[out] out_len receives the name's length without the NUL; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or smaller than the name
///                                      and its NUL; `*out_len` says the length.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `dialect` is neither built in nor registered.
///
/// Any thread, at any time.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_dialect_name(
    dialect: rrpc_dialect_raw,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    boundary("rrpc_dialect_name", || {
        let d = dialect_arg(dialect, "dialect")?;
        // SAFETY: `size` writable bytes at `buf` (or NULL), `out_len` NULL or
        // writable, per the documented contract.
        unsafe { write_str_out(d.name(), buf, size, out_len) }
    })
}
