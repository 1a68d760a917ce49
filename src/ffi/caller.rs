//! `rrpc_caller` and `rrpc_response`: the cloud side, as C sees it.

use std::ffi::{c_char, c_void, CString};

use super::args::{arg_bytes, arg_callback, arg_opt_str, arg_out, arg_str, bytes_ptr, SendPtr};
use super::boundary::boundary;
use super::family::{free_handle, get_stats, get_string, new_handle, settings_init};
use super::handle::Castable;
use super::misc::{rrpc_bool, rrpc_dialect_raw};
use super::request::dialect_arg;
use super::rrpc_status::*;
use super::session::{
    connection_listener, mqtt_config, presence_arg, rrpc_connection_cb, rrpc_mqtt_config,
};
use super::sized::{read_settings, settings, sized_fields, write_output};
use super::status::{rrpc_status, Failure};
use crate::caller::{
    on_caller_thread, CallParams, Caller, CallerConfig, CallerStats, RrpcCode, RrpcResponse,
};
use crate::dialect::Dialect;

/// An RRpc caller: one MQTT connection that calls devices. Created by
/// `rrpc_caller_new`, released by `rrpc_caller_free`.
///
/// Threads: one background thread does the network work, and a thread waiting
/// in `rrpc_caller_call` drives the connection itself meanwhile. Every function
/// may be called from any thread, also several at once (many calls in flight
/// from many threads), except `rrpc_caller_free`, called once when no other
/// thread uses the caller. Callbacks run with no library lock held, on the
/// thread that drives the caller at that moment (see `rrpc_caller_response_cb`);
/// from a callback, `rrpc_caller_call` and `rrpc_caller_free` are refused
/// (RRPC_STATUS_WRONG_STATE), `rrpc_caller_call_async` is fine.
pub struct rrpc_caller {
    _private: [u8; 0],
}

/// The outcome of one call, with the RRpc API's fields. Read it with
/// `rrpc_response_get_view` or print it with `rrpc_response_to_json`/`_xml`.
///
/// Threads: a response never changes: any thread may read it, several at once;
/// `rrpc_response_free` once, when no other thread reads it.
pub struct rrpc_response {
    _private: [u8; 0],
}

/// `RrpcCode` values, in `rrpc_response_view.code`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_code {
    /// The device answered in time.
    RRPC_CODE_SUCCESS = 0,
    /// The device did not answer within the timeout.
    RRPC_CODE_TIMEOUT = 1,
    /// The device is known to be offline (presence); nothing was sent.
    RRPC_CODE_OFFLINE = 2,
    /// The device's connection dropped (its last will arrived) during the call.
    RRPC_CODE_HALFCONN = 3,
    /// A system error: the caller's own connection failed during the call.
    RRPC_CODE_UNKNOWN = 4,
    /// No RrpcCode: the call was not carried out (`success` is false).
    RRPC_CODE_NONE = 255,
}

const _: () = {
    assert!(rrpc_code::RRPC_CODE_SUCCESS as u32 == RrpcCode::Success as u32);
    assert!(rrpc_code::RRPC_CODE_TIMEOUT as u32 == RrpcCode::Timeout as u32);
    assert!(rrpc_code::RRPC_CODE_OFFLINE as u32 == RrpcCode::Offline as u32);
    assert!(rrpc_code::RRPC_CODE_HALFCONN as u32 == RrpcCode::HalfConn as u32);
    assert!(rrpc_code::RRPC_CODE_UNKNOWN as u32 == RrpcCode::Unknown as u32);
};

/// Largest `rrpc_caller_config.max_payload` (16 MiB).
pub const RRPC_CALLER_MAX_PAYLOAD: u32 = 16_777_216;
/// Largest `rrpc_caller_config.max_in_flight`.
pub const RRPC_CALLER_MAX_IN_FLIGHT: u32 = 65_536;
/// Largest `rrpc_caller_config.max_in_flight_bytes` (1 GiB).
pub const RRPC_CALLER_MAX_IN_FLIGHT_BYTES: u32 = 1_073_741_824;
/// Largest `rrpc_caller_config.max_presence`.
pub const RRPC_CALLER_MAX_PRESENCE: u32 = 1_000_000;
/// Largest `rrpc_caller_config.max_subscriptions`.
pub const RRPC_CALLER_MAX_SUBSCRIPTIONS: u32 = 65_536;
/// Largest `rrpc_caller_config.subscription_idle_ms` (one hour).
pub const RRPC_CALLER_MAX_SUBSCRIPTION_IDLE_MS: u32 = 3_600_000;

const _: () = {
    assert!(RRPC_CALLER_MAX_PAYLOAD as usize == CallerConfig::MAX_PAYLOAD);
    assert!(RRPC_CALLER_MAX_IN_FLIGHT as usize == CallerConfig::MAX_IN_FLIGHT);
    assert!(RRPC_CALLER_MAX_IN_FLIGHT_BYTES as usize == CallerConfig::MAX_IN_FLIGHT_BYTES);
    assert!(RRPC_CALLER_MAX_PRESENCE as usize == CallerConfig::MAX_PRESENCE);
    assert!(RRPC_CALLER_MAX_SUBSCRIPTIONS as usize == CallerConfig::MAX_SUBSCRIPTIONS);
    assert!(RRPC_CALLER_MAX_SUBSCRIPTION_IDLE_MS == CallerConfig::MAX_SUBSCRIPTION_IDLE_MS);
};

/// Settings for `rrpc_caller_new`; fill with `rrpc_caller_config_init`. Strings
/// are copied.
///
/// Fields are only ever appended.
#[repr(C)]
pub struct rrpc_caller_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_caller_config_init`.
    pub struct_size: u32,
    /// The broker and how to connect to it (required; `mqtt->host` too). The
    /// caller's `mqtt->connect_timeout_ms` (at least 1) is how long
    /// `rrpc_caller_new` waits for the connection and the presence snapshot.
    pub mqtt: *const rrpc_mqtt_config,
    /// Follow device presence (OFFLINE, HALFCONN): true (default) or false.
    pub presence: rrpc_bool,
    /// Largest request or response payload, 1 to RRPC_CALLER_MAX_PAYLOAD.
    /// Default 262144.
    pub max_payload: u32,
    /// Most calls in flight at once, 1 to RRPC_CALLER_MAX_IN_FLIGHT. Default 65536.
    pub max_in_flight: u32,
    /// Device status prefix, or NULL for "rrpc/presence".
    pub presence_prefix: *const c_char,
    /// Connection status prefix, or NULL for "rrpc/connection".
    pub connection_prefix: *const c_char,
    /// Most request bytes held by the calls in flight, `max_payload` to
    /// RRPC_CALLER_MAX_IN_FLIGHT_BYTES; a call beyond it is refused. Default
    /// 67108864.
    pub max_in_flight_bytes: u32,
    /// Most devices (and, separately, connections) whose presence is
    /// remembered, 1 to RRPC_CALLER_MAX_PRESENCE; beyond it the entry updated longest ago is
    /// forgotten (`presence_evicted`). Default 100000.
    pub max_presence: u32,
    /// Most response subscriptions made for calls (custom topics, the Tencent
    /// wildcard), 1 to RRPC_CALLER_MAX_SUBSCRIPTIONS; a call needing one more while all are in use is
    /// refused. Default 1024.
    pub max_subscriptions: u32,
    /// How long a response subscription stays after the last call that used
    /// it, in ms, 0 to RRPC_CALLER_MAX_SUBSCRIPTION_IDLE_MS; then it is
    /// unsubscribed. Default 30000.
    pub subscription_idle_ms: u32,
    /// The Response Topic of RRPC_DIALECT_MQTT5 calls (MQTT 5 request/response),
    /// an exact topic (no `+`, `#` or control character, at most 1024 bytes),
    /// or NULL (default) for "rrpc/caller/{client id}/response". Appended in 1.1.
    pub response_topic: *const c_char,
}

/// One call's parameters, as the RRpc API names them; fill with
/// `rrpc_caller_call_params_init`.
#[repr(C)]
pub struct rrpc_caller_call_params {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_caller_call_params_init`.
    pub struct_size: u32,
    /// Any dialect, built-in or registered (RRPC_DIALECT_ALIBABA by default);
    /// RRPC_DIALECT_ALIBABA with `custom_topic` is the Alibaba custom-topic
    /// dialect.
    pub dialect: rrpc_dialect_raw,
    /// ProductKey (Tencent: product id). Required.
    pub product_key: *const c_char,
    /// DeviceName. Required.
    pub device_name: *const c_char,
    /// The custom RRPC topic (the RRpc API's `Topic`), such as
    /// "/a1B2/dev1/user/update", or NULL. RRPC_DIALECT_MQTT5 (on an MQTT 5
    /// caller only): the exact topic the request is published on (required).
    pub custom_topic: *const c_char,
    /// The request bytes (the API's RequestBase64Byte, decoded); NULL when empty.
    pub payload: *const u8,
    /// Length of `payload`.
    pub payload_len: usize,
    /// Timeout in ms: for the Alibaba dialects 1000 to 8000 (required, as the RRpc
    /// API's `Timeout`); for the others 1 to 600000, or 0 for the dialect's default
    /// (Tencent 4000, ThingsBoard 10000, Azure 30000: docs/dialects.md).
    pub timeout_ms: u32,
    /// ContentType: 0, 11, 65, 66 or 240-255; -1 (default) for none. It travels in
    /// the message-id level of the request topic, `{messageId};ct={ContentType}`
    /// (see `rrpc_request.content_type`); without one the topic is the plain
    /// documented `{messageId}` form.
    pub content_type: i32,
    /// The method, service or command name, for dialects whose request topic
    /// or envelope carries one (RRPC_DIALECT_ALIBABA_SERVICE, RRPC_DIALECT_AZURE,
    /// the action of RRPC_DIALECT_TENCENT_ACTION, the method of
    /// RRPC_DIALECT_THINGSBOARD_GATEWAY, or a registered dialect with `{name}`;
    /// required there), else NULL (default). In the envelope dialects the
    /// payload is the envelope's `params`: one JSON value, or empty for `{}`.
    pub name: *const c_char,
}

/// A response's fields (`rrpc_response_get_view`). Pointers belong to the
/// response and live as long as it.
#[repr(C)]
pub struct rrpc_response_view {
    /// RequestId (UUID form), NUL-terminated.
    pub request_id: *const c_char,
    /// Success: whether the call was carried out.
    pub success: rrpc_bool,
    /// The API's Code when `success` is false ("InvalidParameter",
    /// "iot.system.SystemException"), else NULL.
    pub error_code: *const c_char,
    /// ErrorMessage when `success` is false, else NULL.
    pub error_message: *const c_char,
    /// Whether `message_id` is set (a request went out).
    pub has_message_id: rrpc_bool,
    /// MessageId.
    pub message_id: u64,
    /// The API's RrpcCode; RRPC_CODE_NONE when `success` is false.
    pub code: rrpc_code_raw,
    /// The device's reply (RRPC_CODE_SUCCESS), binary-safe; NULL when empty or absent.
    pub payload: *const u8,
    /// Length of `payload`.
    pub payload_len: usize,
    /// Whether `reply_status` is set: the reply came on a topic that carries a
    /// status (Azure direct methods' `$iothub/methods/res/{status}/...`, or a
    /// registered dialect with `{status}`).
    pub has_reply_status: rrpc_bool,
    /// The status of the device's reply topic (ReplyStatus, an extension of
    /// the RRpc API's response); 0 when `has_reply_status` is false.
    pub reply_status: u16,
}

/// An `rrpc_code` as the library writes it.
pub type rrpc_code_raw = u32;

settings!(rrpc_caller_config {
    struct_size,
    mqtt,
    presence,
    max_payload,
    max_in_flight,
    presence_prefix,
    connection_prefix,
    max_in_flight_bytes,
    max_presence,
    max_subscriptions,
    subscription_idle_ms,
    response_topic,
} defaults [
    d = CallerConfig::new("", 1883),
] {
    presence: u8::from(d.presence.is_some()),
    max_payload: d.max_payload as u32,
    max_in_flight: d.max_in_flight as u32,
    max_in_flight_bytes: d.max_in_flight_bytes as u32,
    max_presence: d.max_presence as u32,
    max_subscriptions: d.max_subscriptions as u32,
    subscription_idle_ms: d.subscription_idle_ms,
});

/// A caller connected with the settings of C's `c`.
///
/// # Safety
/// The pointers in `c` must be NULL or valid as `rrpc_caller_config` documents.
unsafe fn connect_caller(c: &rrpc_caller_config) -> Result<Caller, Failure> {
    let mut cfg = CallerConfig::new("", 0);
    // SAFETY: forwarded contract.
    cfg.mqtt = unsafe { mqtt_config(c.mqtt) }?;
    cfg.max_payload = c.max_payload as usize;
    cfg.max_in_flight = c.max_in_flight as usize;
    cfg.max_in_flight_bytes = c.max_in_flight_bytes as usize;
    cfg.max_presence = c.max_presence as usize;
    cfg.max_subscriptions = c.max_subscriptions as usize;
    cfg.subscription_idle_ms = c.subscription_idle_ms;
    cfg.presence = presence_arg(c.presence, c.presence_prefix, c.connection_prefix)?;
    // SAFETY: NUL-terminated or NULL per the documented contract.
    cfg.response_topic =
        unsafe { arg_opt_str(c.response_topic, "config->response_topic") }?.map(str::to_string);
    Ok(Caller::connect(cfg)?)
}

settings!(rrpc_caller_call_params {
    struct_size,
    dialect,
    product_key,
    device_name,
    custom_topic,
    payload,
    payload_len,
    timeout_ms,
    content_type,
    name,
} defaults {
    dialect: Dialect::AlibabaSystem.to_u32(),
    content_type: -1,
});

sized_fields!(rrpc_response_view {
    request_id,
    success,
    error_code,
    error_message,
    has_message_id,
    message_id,
    code,
    payload,
    payload_len,
    has_reply_status,
    reply_status,
});

/// Receives a call's response, exactly once. `response` is valid only during the
/// call. Runs on the thread that drives the caller at that moment: the caller's
/// own thread, or an application thread waiting in `rrpc_caller_call` (which
/// drives the connection itself while it waits); for calls refused at once and
/// for OFFLINE, on the thread that made the call. It must not call
/// `rrpc_caller_call` or `rrpc_caller_free` (they fail with
/// RRPC_STATUS_WRONG_STATE); `rrpc_caller_call_async` is fine.
pub type rrpc_caller_response_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, response: *const rrpc_response)>;

struct Response {
    r: RrpcResponse,
    request_id: CString,
    code: Option<CString>,
    error_message: Option<CString>,
}

impl Response {
    fn new(r: RrpcResponse) -> Response {
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        Response {
            request_id: c(&r.request_id),
            code: r.code.as_deref().map(c),
            error_message: r.error_message.as_deref().map(c),
            r,
        }
    }

    fn json(&self) -> String {
        self.r.to_json()
    }

    fn xml(&self) -> String {
        self.r.to_xml()
    }
}

impl Castable for Caller {
    type C = rrpc_caller;
    const NAME: &'static str = "caller";
}

impl Castable for Response {
    type C = rrpc_response;
    const NAME: &'static str = "response";
}

/// Fills `out_config` with the defaults (see `rrpc_caller_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_config_init(
    out_config: *mut rrpc_caller_config,
    config_size: usize,
) -> rrpc_status {
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_caller_config_init",
            out_config,
            config_size,
            "out_config",
        )
    }
}

/// Connects a caller: subscribes the response wildcard and (presence on) the
/// presence topics, and returns once the broker delivered the retained presence,
/// so that a call made right after knows which devices are offline.
///
/// @param[in]  config     settings; strings are copied.
/// @param[out] out_caller receives the caller; release it with `rrpc_caller_free`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `config`, `config->mqtt`, `config->mqtt->host` or
///                                      `out_caller` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE      a `struct_size` is not one this library knows.
/// @retval RRPC_STATUS_INVALID_UTF8     a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_ARGUMENT a value is out of range (each bound is
///                                      documented on its field; the message names it).
/// @retval RRPC_STATUS_CONNECT_FAILED   no connection within `connect_timeout_ms`
///                                      (the message has the address and reason).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_new(
    config: *const rrpc_caller_config,
    out_caller: *mut *mut rrpc_caller,
) -> rrpc_status {
    // SAFETY: pointer contracts documented above.
    unsafe { new_handle("rrpc_caller_new", config, out_caller, connect_caller) }
}

/// Disconnects and releases the caller. Calls still in flight end with
/// RRPC_CODE_UNKNOWN (their callbacks run before this returns). NULL is ignored.
///
/// @param[in] caller the caller, or NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from a response callback; nothing released.
///
/// Once, when no other thread uses the caller; not from a response callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_free(caller: *mut rrpc_caller) -> rrpc_status {
    free_handle("rrpc_caller_free", caller, |_: &Caller| {
        if on_caller_thread() {
            let why = "a caller cannot be freed from a response or connection callback";
            warn!("{why}: it would wait for the thread running the callback; refused");
            return Err(Failure::new(RRPC_STATUS_WRONG_STATE, why));
        }
        Ok(())
    })
}

/// Sets the caller's connection callback (NULL removes it): disconnected (with
/// the cause and the reason; calls in flight then end with RRPC_CODE_UNKNOWN),
/// reconnecting (with the delay), connected again. The first connection happens
/// inside `rrpc_caller_new`, before a callback can be set. While a callback is
/// set, connection changes are logged at info rather than warn. When it
/// returns, the callback it replaced is not running on any other thread and
/// will not run again.
///
/// @param[in] caller    the caller.
/// @param[in] callback  the callback, or NULL.
/// @param[in] user_data handed to every call; it must stay valid until the
///                      callback is replaced or the caller freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `caller` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the callback it would
///                                  replace; nothing changed.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_set_connection_callback(
    caller: *mut rrpc_caller,
    callback: rrpc_connection_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_caller_set_connection_callback", || {
        let c = Caller::borrow(caller)?;
        Ok(c.set_connection_listener(connection_listener(callback, user_data))?)
    })
}

/// Fills `out_params` with the defaults: RRPC_DIALECT_ALIBABA, no custom
/// topic, empty payload, timeout 0 (set it), content_type -1, no name.
///
/// @param[out] out_params  the struct to fill.
/// @param[in]  params_size `sizeof *out_params`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_params` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `params_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_call_params_init(
    out_params: *mut rrpc_caller_call_params,
    params_size: usize,
) -> rrpc_status {
    // SAFETY: `params_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_caller_call_params_init",
            out_params,
            params_size,
            "out_params",
        )
    }
}

fn with_params<T>(
    p: *const rrpc_caller_call_params,
    f: impl FnOnce(&CallParams<'_>) -> T,
) -> Result<T, Failure> {
    // SAFETY: pointer contracts documented on the calling functions.
    let p = &unsafe { read_settings(p, "params") }?;
    let dialect = dialect_arg(p.dialect, "params->dialect")?;
    let params = CallParams {
        dialect,
        product_key: unsafe { arg_str(p.product_key, "params->product_key") }?,
        device_name: unsafe { arg_str(p.device_name, "params->device_name") }?,
        custom_topic: unsafe { arg_opt_str(p.custom_topic, "params->custom_topic") }?,
        payload: unsafe { arg_bytes(p.payload, p.payload_len, "params->payload") }?,
        timeout_ms: (p.timeout_ms != 0).then_some(p.timeout_ms),
        content_type: u32::try_from(p.content_type).ok(),
        name: unsafe { arg_opt_str(p.name, "params->name") }?,
    };
    if p.content_type < -1 {
        return Err(Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!(
                "content_type {} is neither -1 nor a ContentType",
                p.content_type
            ),
        ));
    }
    Ok(f(&params))
}

/// Makes a call and waits for its outcome (at most the timeout), doing the
/// caller's network work on this thread meanwhile, so that a call never has to
/// cross threads. Refused
/// parameters (Timeout outside 1000-8000, bad ContentType, wildcards in
/// identities, ...) are not a status: the response says `success` false with Code
/// "InvalidParameter" and the reason, as the RRpc API does.
///
/// @param[in]  caller       the caller.
/// @param[in]  params       the call; strings and payload are copied.
/// @param[out] out_response receives the response; release with `rrpc_response_free`.
/// @retval RRPC_STATUS_OK               a response was produced (check it).
/// @retval RRPC_STATUS_NULL_POINTER     `caller`, `params`, an identity or
///                                      `out_response` is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8     a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `dialect` or `content_type` is not a value
///                                      of its kind.
/// @retval RRPC_STATUS_WRONG_STATE      called from a response callback (it would
///                                      wait for its own thread): use call_async.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_call(
    caller: *mut rrpc_caller,
    params: *const rrpc_caller_call_params,
    out_response: *mut *mut rrpc_response,
) -> rrpc_status {
    boundary("rrpc_caller_call", || {
        let c = Caller::borrow(caller)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_response, "out_response") }?;
        if on_caller_thread() {
            return Err(Failure::new(
                RRPC_STATUS_WRONG_STATE,
                "a blocking call from a response callback would deadlock; use rrpc_caller_call_async",
            ));
        }
        let r = with_params(params, |p| c.call(p))?;
        *out = Response::new(r).into_c();
        Ok(())
    })
}

/// Starts a call and returns at once; `callback` receives the response exactly
/// once (see `rrpc_caller_response_cb` for the thread).
///
/// @param[in] caller    the caller.
/// @param[in] params    the call; strings and payload are copied.
/// @param[in] callback  required.
/// @param[in] user_data handed to the callback untouched.
/// @retval RRPC_STATUS_OK               started; the callback will run.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8,
///         RRPC_STATUS_INVALID_ARGUMENT  as for `rrpc_caller_call`; the callback
///                                       will not run.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_call_async(
    caller: *mut rrpc_caller,
    params: *const rrpc_caller_call_params,
    callback: rrpc_caller_response_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_caller_call_async", move || {
        let c = Caller::borrow(caller)?;
        let cb = arg_callback(callback, "callback")?;
        with_params(params, |p| {
            c.call_async(
                p,
                Box::new(move |r| {
                    let resp = Response::new(r);
                    let ptr = (&resp as *const Response).cast::<rrpc_response>();
                    // SAFETY: the application registered `cb` for this signature;
                    // `resp` outlives the call.
                    unsafe { cb(ud.get(), ptr) }
                }),
            )
        })
    })
}

/// Reads a response's fields into `out_view`.
///
/// @param[in]  response  the response.
/// @param[out] out_view  receives the fields, as many as `view_size` holds (the
///                       rest of it is zeroed); its pointers live as long as the
///                       response.
/// @param[in]  view_size `sizeof *out_view`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `response` or `out_view` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_response_get_view(
    response: *const rrpc_response,
    out_view: *mut rrpc_response_view,
    view_size: usize,
) -> rrpc_status {
    boundary("rrpc_response_get_view", || {
        let r = Response::borrow(response)?;
        let payload = r.r.payload.as_deref().unwrap_or(&[]);
        let view = rrpc_response_view {
            request_id: r.request_id.as_ptr(),
            success: u8::from(r.r.success),
            error_code: r.code.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            error_message: r
                .error_message
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr()),
            has_message_id: u8::from(r.r.message_id.is_some()),
            message_id: r.r.message_id.unwrap_or(0),
            code: r
                .r
                .rrpc_code
                .map_or(rrpc_code::RRPC_CODE_NONE as u32, |c| c as u32),
            payload: bytes_ptr(payload),
            payload_len: payload.len(),
            has_reply_status: u8::from(r.r.reply_status.is_some()),
            reply_status: r.r.reply_status.unwrap_or(0),
        };
        // SAFETY: `view_size` writable bytes per the documented contract.
        unsafe { write_output(&view, out_view, view_size, "out_view") }
    })
}

/// Writes the response as JSON (the RRpc API's field names) into `buf`,
/// NUL-terminated.
///
/// @param[in]  response the response.
/// @param[out] buf     destination, or NULL to learn the length.
/// @param[in]  size    size of `buf`.
/// @param[out] out_len receives the length without the NUL; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `response` is NULL.
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or too small (`out_len` set).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_response_to_json(
    response: *const rrpc_response,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    // SAFETY: `buf` has `size` writable bytes per the contract.
    unsafe {
        get_string(
            "rrpc_response_to_json",
            response,
            buf,
            size,
            out_len,
            Response::json,
        )
    }
}

/// As `rrpc_response_to_json`, in the XML form (`<RRpcResponse>`).
///
/// @param[in]  response the response.
/// @param[out] buf      destination, or NULL to learn the length.
/// @param[in]  size     size of `buf`.
/// @param[out] out_len  receives the length without the NUL; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `response` is NULL.
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or too small (`out_len` set).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_response_to_xml(
    response: *const rrpc_response,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    // SAFETY: `buf` has `size` writable bytes per the contract.
    unsafe {
        get_string(
            "rrpc_response_to_xml",
            response,
            buf,
            size,
            out_len,
            Response::xml,
        )
    }
}

/// Releases a response returned by `rrpc_caller_call`. NULL is ignored. Never
/// free the response handed to a callback.
///
/// @param[in] response the response, or NULL.
/// @retval RRPC_STATUS_OK
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_response_free(response: *mut rrpc_response) -> rrpc_status {
    free_handle("rrpc_response_free", response, |_: &Response| Ok(()))
}

/// Reads the caller's counters.
///
/// @param[in]  caller     the caller.
/// @param[out] out_stats  receives the counters: as many as `stats_size` holds
///                        (the rest of it is zeroed).
/// @param[in]  stats_size `sizeof *out_stats`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `caller` or `out_stats` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_caller_get_stats(
    caller: *const rrpc_caller,
    out_stats: *mut CallerStats,
    stats_size: usize,
) -> rrpc_status {
    // SAFETY: `stats_size` writable bytes per the documented contract.
    unsafe {
        get_stats(
            "rrpc_caller_get_stats",
            caller,
            out_stats,
            stats_size,
            Caller::stats,
        )
    }
}

/// The name of an RrpcCode: "SUCCESS", "TIMEOUT", "OFFLINE", "HALFCONN",
/// "UNKNOWN", or "NONE" for RRPC_CODE_NONE and unknown values.
///
/// @param[in] code an RrpcCode (any value).
/// @return the name, NUL-terminated. Never fails. The string is static.
#[no_mangle]
pub extern "C" fn rrpc_code_str(code: rrpc_code_raw) -> *const c_char {
    match code {
        0 => c"SUCCESS",
        1 => c"TIMEOUT",
        2 => c"OFFLINE",
        3 => c"HALFCONN",
        4 => c"UNKNOWN",
        _ => c"NONE",
    }
    .as_ptr()
}
