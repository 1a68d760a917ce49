//! Library-wide functions: version, status text, last error, logging, clock,
//! dialect names.

use super::args::{arg_out, arg_str, SendPtr};
use super::boundary::{boundary, last_error_ptr};
use super::status::{rrpc_status, Failure};
use crate::dialect::Dialect;
use crate::log::{self, Level};
use std::ffi::{c_char, c_void, CStr};

/// Topic conventions: the `dialect` of a device.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_dialect {
    /// Alibaba Cloud IoT system topics: subscribe `/sys/{pk}/{dn}/rrpc/request/+`,
    /// answer on `/sys/{pk}/{dn}/rrpc/response/{messageId}`. Reply deadline 8 s.
    RRPC_DIALECT_ALIBABA = 0,
    /// Alibaba custom-topic RRPC: subscribe `/ext/rrpc/+{topic}` (the custom topic
    /// starts with `/`), answer on the request topic itself. Reply deadline 8 s.
    RRPC_DIALECT_ALIBABA_CUSTOM = 1,
    /// Tencent IoT Hub: subscribe `$rrpc/rxd/{productId}/{deviceName}/+`, answer on
    /// `$rrpc/txd/{productId}/{deviceName}/{processId}`. Reply deadline 4 s.
    RRPC_DIALECT_TENCENT = 2,
    /// Alibaba data-model service calls made synchronous over RRPC: subscribe
    /// `/ext/rrpc/+/sys/{pk}/{dn}/thing/service/+`, answer on the request topic;
    /// the service identifier is the request's name. Reply deadline 8 s.
    RRPC_DIALECT_ALIBABA_SERVICE = 3,
    /// ThingsBoard device RPC: subscribe `v1/devices/me/rpc/request/+`, answer on
    /// `v1/devices/me/rpc/response/{id}`. One device per connection (the topics
    /// name none). Caller deadline 10 s.
    RRPC_DIALECT_THINGSBOARD = 4,
    /// Azure IoT Hub direct methods: subscribe `$iothub/methods/POST/#`, answer on
    /// `$iothub/methods/res/{status}/?$rid={id}` (status 200 unless the reply sets
    /// one); the method name is the request's name. One device per connection.
    /// Caller deadline 30 s.
    RRPC_DIALECT_AZURE = 5,
    /// Huawei IoTDA commands: subscribe `$oc/devices/{dn}/sys/commands/#`, answer
    /// on `$oc/devices/{dn}/sys/commands/response/request_id={id}` (`dn` is the
    /// device id). Caller deadline 20 s.
    RRPC_DIALECT_HUAWEI = 6,
    /// AWS IoT commands: subscribe `$aws/commands/things/{dn}/executions/+/request/#`,
    /// answer on `$aws/commands/things/{dn}/executions/{id}/response/json` (`dn`
    /// is the thing name; requests in JSON or CBOR). Caller deadline 10 s.
    RRPC_DIALECT_AWS = 7,
    /// Tencent IoT Explorer actions: subscribe `$thing/down/action/{productId}/{deviceName}`,
    /// answer on `$thing/up/action/{productId}/{deviceName}`. The id (`clientToken`)
    /// and the name (`actionId`) travel in a JSON envelope: the request's payload
    /// is its `params`, the reply's payload (one JSON value, or empty for `{}`)
    /// becomes `response`, its status `code` (0 unless set). Caller deadline 5 s.
    RRPC_DIALECT_TENCENT_ACTION = 8,
    /// ThingsBoard gateway RPC: subscribe and answer on `v1/gateway/rpc`. The
    /// sub-device (`device`: the device name the device is registered with),
    /// the id (`data.id`, an integer) and the name (`data.method`) travel in a
    /// JSON envelope: the request's payload is `data.params`, the reply's payload
    /// (one JSON value, or empty for `{}`) becomes `data`. One connection serves
    /// many sub-devices. Caller deadline 10 s.
    RRPC_DIALECT_THINGSBOARD_GATEWAY = 9,
    /// MQTT 5 request/response (MQTT 5.0, 4.10): the device's custom topic is
    /// its request filter (a topic, or a filter with `+`/`#`); a request is a
    /// PUBLISH there carrying the Response Topic property, and the reply goes
    /// to that Response Topic with the request's Correlation Data copied. The
    /// message id is the Correlation Data in hex (duplicates are then
    /// dropped), or an id unique to the request when there is none. Served by
    /// a client on an MQTT 5 session only: a client on MQTT 3.1.1 refuses the
    /// device. A router fed through rrpc_router_handle_message sees no
    /// properties and never accepts a request of this dialect. Caller
    /// deadline 10 s.
    RRPC_DIALECT_MQTT5 = 10,
}

/// An `rrpc_dialect` as C passes it (the header says `rrpc_dialect`): a value
/// that is not a dialect is refused, never trusted.
pub type rrpc_dialect_raw = u32;

/// The one flag type of the C API: `bool` in the header, read as a byte here so
/// that a value other than 0 or 1 is refused (RRPC_STATUS_INVALID_ARGUMENT
/// naming the field) instead of being undefined behaviour.
pub type rrpc_bool = u8;

/// Log levels for `rrpc_set_log_handler`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_log_level {
    /// No messages at all (only as `max_level`).
    RRPC_LOG_OFF = 0,
    RRPC_LOG_ERROR = 1,
    RRPC_LOG_WARN = 2,
    RRPC_LOG_INFO = 3,
    RRPC_LOG_DEBUG = 4,
}

/// An `rrpc_log_level` as C passes it.
pub type rrpc_log_level_raw = u32;

/// A log handler: receives the level and a
/// NUL-terminated message valid only during the call. It may be called from any
/// thread the library runs on, including the client's background thread, and
/// must not call back into the library.
pub type rrpc_log_cb = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: rrpc_log_level_raw, message: *const c_char),
>;

/// The library version, such as "1.0.0" (the same as `RRPC_VERSION` in this
/// header when header and library match).
///
/// @return the version, NUL-terminated. Never fails. The string is static: do
///         not free it.
#[no_mangle]
pub extern "C" fn rrpc_version() -> *const c_char {
    static V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    V.as_ptr()
}

/// Bit of `rrpc_features()`: the device client (`rrpc_client_*`).
pub const RRPC_FEATURE_CLIENT: u32 = 1;
/// Bit of `rrpc_features()`: the caller (`rrpc_caller_*`, `rrpc_response_*`).
pub const RRPC_FEATURE_CALLER: u32 = 2;
/// Bit of `rrpc_features()`: TLS for the client and the caller (`rrpc_mqtt_config.tls`).
pub const RRPC_FEATURE_TLS: u32 = 4;
/// Bit of `rrpc_features()`: signed cloud credentials (`rrpc_credentials_*`).
pub const RRPC_FEATURE_CREDENTIALS: u32 = 8;
/// Bit of `rrpc_features()`: JT/T 808 codec and adapter (`rrpc_jt808_*`).
pub const RRPC_FEATURE_JT808: u32 = 16;
/// Bit of `rrpc_features()`: MQTT 5 (`rrpc_mqtt_config.mqtt_version` 5).
pub const RRPC_FEATURE_MQTT5: u32 = 32;

/// What this library was built with: an OR of the `RRPC_FEATURE_*` bits. One
/// header serves every build; a family left out of the build (a lean device
/// library, see docs/building.md) is absent from the library, so using it
/// fails at link time, or here at run time for a library loaded with dlopen. The
/// router (`rrpc_router_*`) and the library-wide functions are always in. Without
/// `RRPC_FEATURE_TLS`, a client or caller configured with `tls` fails with
/// `RRPC_STATUS_TLS`; without `RRPC_FEATURE_MQTT5`, one configured with
/// `mqtt_version` 5 fails with `RRPC_STATUS_INVALID_ARGUMENT`.
///
/// @return the `RRPC_FEATURE_*` bits of this library. Never fails.
#[no_mangle]
pub extern "C" fn rrpc_features() -> u32 {
    [
        (cfg!(feature = "client"), RRPC_FEATURE_CLIENT),
        (cfg!(feature = "caller"), RRPC_FEATURE_CALLER),
        (cfg!(feature = "tls"), RRPC_FEATURE_TLS),
        (cfg!(feature = "credentials"), RRPC_FEATURE_CREDENTIALS),
        (cfg!(feature = "jt808"), RRPC_FEATURE_JT808),
        (cfg!(feature = "mqtt5"), RRPC_FEATURE_MQTT5),
    ]
    .iter()
    .filter(|(built, _)| *built)
    .fold(0, |bits, (_, bit)| bits | bit)
}

/// A short English description of a status code (any `uint32_t`; unknown values
/// give "unknown status").
///
/// @param[in] status an `rrpc_status` value.
/// @return the description, NUL-terminated. Never fails. The string is static:
///         do not free it.
#[no_mangle]
pub extern "C" fn rrpc_status_str(status: u32) -> *const c_char {
    match rrpc_status::from_u32(status) {
        Some(s) => s.text().as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}

/// Detail about the last failed call made on the calling thread, such as
/// "rrpc_client_add_device: device name contains an MQTT wildcard ('+' or '#')";
/// empty when no call on this thread has failed yet. Successful calls leave it
/// unchanged.
///
/// @return the message, NUL-terminated. Never fails and never returns NULL. The
///         string belongs to the library and stays valid until the next failing
///         librrpc call on this thread: copy it to keep it.
#[no_mangle]
pub extern "C" fn rrpc_last_error_message() -> *const c_char {
    last_error_ptr()
}

/// Installs a process-wide log handler for messages at `max_level` and more
/// severe (`RRPC_LOG_ERROR` .. `RRPC_LOG_DEBUG`). With `handler` NULL, messages go
/// to stderr again, filtered by `max_level` (`RRPC_LOG_OFF` silences the library).
/// Without any call, messages at `RRPC_LOG_WARN` and above go to stderr, and the
/// environment variable `RRPC_LOG` (off, error, warn, info, debug) sets the level.
/// When it returns, the handler it replaced is not running on any other thread
/// (a call in progress is waited for) and will not run again, so its
/// `user_data` may be freed at once.
///
/// @param[in] handler   the handler, or NULL for stderr.
/// @param[in] user_data passed to every handler call; the library does not touch it.
/// @param[in] max_level the least severe level handed over.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_INVALID_ARGUMENT `max_level` is not a log level.
/// @retval RRPC_STATUS_WRONG_STATE      called from inside the handler it would
///                                      replace; nothing changed.
///
/// `user_data` must stay valid until the handler is replaced.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_set_log_handler(
    handler: rrpc_log_cb,
    user_data: *mut c_void,
    max_level: rrpc_log_level_raw,
) -> rrpc_status {
    let user_data = SendPtr(user_data);
    boundary("rrpc_set_log_handler", move || {
        let level = match max_level {
            0 => None,
            v => Some(Level::from_u32(v).ok_or_else(|| {
                Failure::new(
                    rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
                    format!("max_level {v} is not a log level"),
                )
            })?),
        };
        let sink: Option<log::Sink> = handler.map(|f| {
            let ud = user_data;
            Box::new(move |lvl: Level, msg: &str| {
                let c = std::ffi::CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
                // SAFETY: the application registered `f` for exactly this call shape.
                unsafe { f(ud.get(), lvl as u32, c.as_ptr()) }
            }) as log::Sink
        });
        Ok(log::set_sink(sink, level)?)
    })
}

/// Reads the clock that request deadlines use (`CLOCK_MONOTONIC`), in milliseconds.
///
/// @param[out] out_ms receives the time.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_ms` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_monotonic_ms(out_ms: *mut u64) -> rrpc_status {
    boundary("rrpc_monotonic_ms", || {
        // SAFETY: checked for NULL; the caller provides writable memory.
        let out = unsafe { arg_out(out_ms, "out_ms") }?;
        *out = crate::clock::now_ms();
        Ok(())
    })
}

/// Looks up a dialect by its command-line name: "alibaba", "alibaba-custom",
/// "tencent", "alibaba-service", "thingsboard", "azure", "huawei", "aws",
/// "tencent-action", "thingsboard-gateway", or the name of a registered dialect.
///
/// @param[in]  name        NUL-terminated name.
/// @param[out] out_dialect receives the dialect.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER    `name` or `out_dialect` is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8    `name` is not UTF-8.
/// @retval RRPC_STATUS_INVALID_ARGUMENT no dialect has that name.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_dialect_from_name(
    name: *const c_char,
    out_dialect: *mut rrpc_dialect_raw,
) -> rrpc_status {
    boundary("rrpc_dialect_from_name", || {
        // SAFETY: pointer contracts documented above.
        let name = unsafe { arg_str(name, "name") }?;
        let out = unsafe { arg_out(out_dialect, "out_dialect") }?;
        let d = Dialect::from_name(name).ok_or_else(|| {
            Failure::new(
                rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
                format!(
                    "unknown dialect {name:?}; expected one of {}",
                    Dialect::all()
                        .map(Dialect::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        *out = d.to_u32();
        Ok(())
    })
}

// The C enums mirror the Rust ones value for value.
const _: () = {
    assert!(rrpc_dialect::RRPC_DIALECT_ALIBABA as u32 == Dialect::AlibabaSystem.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_ALIBABA_CUSTOM as u32 == Dialect::AlibabaCustom.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_TENCENT as u32 == Dialect::Tencent.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_ALIBABA_SERVICE as u32 == Dialect::AlibabaService.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_THINGSBOARD as u32 == Dialect::ThingsBoard.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_AZURE as u32 == Dialect::Azure.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_HUAWEI as u32 == Dialect::Huawei.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_AWS as u32 == Dialect::Aws.to_u32());
    assert!(rrpc_dialect::RRPC_DIALECT_TENCENT_ACTION as u32 == Dialect::TencentAction.to_u32());
    assert!(
        rrpc_dialect::RRPC_DIALECT_THINGSBOARD_GATEWAY as u32
            == Dialect::ThingsBoardGateway.to_u32()
    );
    assert!(rrpc_dialect::RRPC_DIALECT_MQTT5 as u32 == Dialect::Mqtt5.to_u32());
    assert!(rrpc_log_level::RRPC_LOG_ERROR as u32 == Level::Error as u32);
    assert!(rrpc_log_level::RRPC_LOG_WARN as u32 == Level::Warn as u32);
    assert!(rrpc_log_level::RRPC_LOG_INFO as u32 == Level::Info as u32);
    assert!(rrpc_log_level::RRPC_LOG_DEBUG as u32 == Level::Debug as u32);
    assert!(rrpc_log_level::RRPC_LOG_OFF as u32 == 0);
};
