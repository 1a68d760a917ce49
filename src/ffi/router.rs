//! `rrpc_router`: the RRPC core for applications that own their MQTT connection
//! (Paho C, libmosquitto, a vendor stack), as C sees `router::SharedRouter`.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::args::{arg_bytes, arg_callback, arg_flag, arg_out, bytes_ptr, opt_out, SendPtr};
use super::boundary::boundary;
use super::family::{free_handle, get_stats, new_handle, refuse_reentry, settings_init};
use super::handle::Castable;
use super::misc::{rrpc_bool, rrpc_dialect_raw};
use super::request::request_view;
use super::request::{device_call, reply_status_arg, rrpc_request};
use super::rrpc_status::*;
use super::sized::settings;
use super::status::{rrpc_status, Failure};
use crate::router::{
    Dropped, FilterMode, Request, RequestFn, RouterConfig, RouterStats, SharedRouter,
};

/// The RRPC core without a transport: feed it every message your MQTT stack
/// receives (`rrpc_router_handle_message`); it calls the request callback and
/// sends replies through the publish function you register. No I/O, no
/// threads, no clock: every call that needs the time takes `now_ms` (any
/// monotonic clock in ms, such as `rrpc_monotonic_ms`). Created by
/// `rrpc_router_new`, released by `rrpc_router_free`.
///
/// Threads: every function may be called from any thread, also several at once
/// (one internal lock, held only for table updates), except `rrpc_router_free`,
/// called once when no other thread uses the router. Callbacks and the publish
/// function run on the thread of the call that caused them, with no router
/// lock held: they may call the router again, except to free it or to replace
/// themselves (RRPC_STATUS_WRONG_STATE).
pub struct rrpc_router {
    _private: [u8; 0],
}

/// Settings for `rrpc_router_new`; fill with `rrpc_router_config_init`.
#[repr(C)]
pub struct rrpc_router_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_router_config_init`.
    pub struct_size: u32,
    /// Most requests waiting for a reply at once: 1 to 65536. Default 1024.
    pub max_pending: u32,
    /// Largest request or reply payload: 1 to 268435456 (256 MiB). Default 262144.
    pub max_payload: u32,
    /// Reply deadline in ms, at most 600000; 0 (default) = the dialect's caller
    /// timeout (8000 for Alibaba, 4000 for Tencent).
    pub request_timeout_ms: u32,
    /// Most devices registered at once: 1 to 1000000. Default 100000.
    pub max_devices: u32,
}

settings!(rrpc_router_config {
    struct_size,
    max_pending,
    max_payload,
    request_timeout_ms,
    max_devices,
} defaults [
    d = RouterConfig::default(),
] {
    max_pending: d.max_pending as u32,
    max_payload: d.max_payload as u32,
    request_timeout_ms: d.request_timeout_ms,
    max_devices: d.max_devices as u32,
});

/// A router with the settings of C's `c` (checked by `SharedRouter::new`).
fn new_router(c: &rrpc_router_config) -> Result<Handle, Failure> {
    let cfg = RouterConfig {
        max_pending: c.max_pending as usize,
        max_payload: c.max_payload as usize,
        request_timeout_ms: c.request_timeout_ms,
        max_devices: c.max_devices as usize,
        ..RouterConfig::default()
    };
    let router = SharedRouter::new(cfg)
        .map_err(|m| Failure::new(RRPC_STATUS_INVALID_ARGUMENT, format!("config->{m}")))?;
    Ok(Arc::new(router))
}

/// What `rrpc_router_handle_message` made of a message.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_message_kind {
    /// An RRPC request for a registered device: its callback ran.
    RRPC_MESSAGE_REQUEST = 0,
    /// Not an RRPC request topic: handle it yourself.
    RRPC_MESSAGE_NOT_RRPC = 1,
    /// In an RRPC namespace but malformed (missing or extra levels, empty id, not
    /// UTF-8, ...): dropped and counted.
    RRPC_MESSAGE_MALFORMED = 2,
    /// A well-formed request that was not handed over: unknown device, duplicate,
    /// own reply echoed back, table full, payload too large or retained.
    /// Counted in the stats.
    RRPC_MESSAGE_DROPPED = 3,
}

/// Which filters `rrpc_router_get_filters` lists.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_filter_mode {
    /// One filter per registered device, such as `/sys/pk/dn/rrpc/request/+`.
    RRPC_FILTERS_PER_DEVICE = 0,
    /// One wildcard per dialect in use (gateways): `/sys/+/+/rrpc/request/+`,
    /// `$rrpc/rxd/+/+/+`, `/ext/rrpc/#`. Requests for devices that are not
    /// registered then arrive too; they are dropped and counted.
    RRPC_FILTERS_WILDCARD = 1,
}

/// An `rrpc_filter_mode` as C passes it.
pub type rrpc_filter_mode_raw = u32;
/// An `rrpc_message_kind` as the library writes it.
pub type rrpc_message_kind_raw = u32;

/// Publishes a reply: `topic` is NUL-terminated, `payload` is `len` bytes (may be
/// NULL when 0), `qos` is always 0. Return 0 when the message was handed to the
/// MQTT stack, anything else on failure (`rrpc_router_reply` then returns
/// RRPC_STATUS_SEND_FAILED and the request stays pending). Runs on the thread
/// that called `rrpc_router_reply`, without any router lock held: it may call
/// the router again.
pub type rrpc_router_publish_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        topic: *const c_char,
        payload: *const u8,
        len: usize,
        qos: i32,
    ) -> i32,
>;

/// A request callback of the router. Runs on the thread that called
/// `rrpc_router_handle_message`, without any router lock held: it may reply, add
/// or remove devices and handle further messages; it must not free the router.
pub type rrpc_router_request_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        router: *mut rrpc_router,
        request: *const rrpc_request,
    ),
>;

/// Receives one subscription filter (NUL-terminated, valid during the call).
pub type rrpc_router_filter_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, filter: *const c_char)>;

/// The publish function returned this non-zero value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the publish function returned {0}; nothing was sent and the request stays pending")]
pub(crate) struct PublishFailed(pub i32);

/// What an `rrpc_router *` stands for: its own reference to the shared
/// router, so that a function still using the router after one of its
/// callbacks returned (a reply, after the publish function) holds the memory
/// even if another thread freed the handle meanwhile.
type Handle = Arc<SharedRouter<PublishFailed>>;

impl Castable for Handle {
    type C = rrpc_router;
    const NAME: &'static str = "router";
}

/// A C request callback as a Rust one, handed the router's handle.
fn request_fn(
    cb: rrpc_router_request_cb,
    user_data: *mut c_void,
    router: *mut rrpc_router,
) -> Option<Box<RequestFn>> {
    let (ud, router) = (SendPtr(user_data), SendPtr(router.cast()));
    cb.map(|cb| {
        Box::new(move |req: &Request<'_>| {
            let view = request_view(req);
            // SAFETY: the application registered `cb` for this signature; `view`
            // and its strings live until it returns.
            unsafe { cb(ud.get(), router.get().cast(), &view) }
        }) as Box<RequestFn>
    })
}

/// Fills `out_config` with the defaults (see `rrpc_router_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_config_init(
    out_config: *mut rrpc_router_config,
    config_size: usize,
) -> rrpc_status {
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_router_config_init",
            out_config,
            config_size,
            "out_config",
        )
    }
}

/// Creates a router.
///
/// @param[in]  config     settings (`rrpc_router_config_init` gives the defaults).
/// @param[out] out_router receives the router; release it with `rrpc_router_free`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `config` or `out_router` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE      `config->struct_size` is not one this library knows.
/// @retval RRPC_STATUS_INVALID_ARGUMENT a field is outside its documented range
///         (see `rrpc_router_config`); the message names it.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_new(
    config: *const rrpc_router_config,
    out_router: *mut *mut rrpc_router,
) -> rrpc_status {
    // SAFETY: pointer contracts documented above.
    unsafe { new_handle("rrpc_router_new", config, out_router, new_router) }
}

/// Releases the router. Pending requests are dropped. Callbacks and the
/// publish function still running on other threads are waited for; none runs
/// after this returns. NULL is ignored.
///
/// @param[in] router the router, or NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from one of this router's callbacks or
///         its publish function; nothing was released.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_free(router: *mut rrpc_router) -> rrpc_status {
    free_handle("rrpc_router_free", router, |h: &Handle| {
        refuse_reentry(
            h.close(),
            "a router cannot be freed from its own callback or publish function",
        )
    })
}

/// Registers the function that publishes replies (NULL removes it; replies then
/// fail with RRPC_STATUS_WRONG_STATE and keep their token). When it returns,
/// the function it replaced is not running on any other thread and will not
/// run again.
///
/// @param[in] router    the router.
/// @param[in] publish   the publish function, or NULL.
/// @param[in] user_data handed to every call; it must stay valid while registered.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the publish function it
///                                  would replace; nothing changed.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_set_publish(
    router: *mut rrpc_router,
    publish: rrpc_router_publish_fn,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_router_set_publish", move || {
        let h = Handle::borrow(router)?;
        let f = publish.map(|f| {
            // The C callback has no Correlation Data: a C gateway feeds
            // messages without their MQTT 5 properties, so no request of
            // the mqtt5 dialect (the only one with Correlation Data) is
            // ever accepted through it.
            Box::new(
                move |topic: String, payload: &[u8], _correlation: Option<&[u8]>| {
                    let ud = ud;
                    debug_assert!(!topic.contains('\0'));
                    // SAFETY: no NUL inside: the topic is made of validated identities
                    // and a validated message id, none of which may contain one. (It
                    // was rendered with room for the terminator: no reallocation.)
                    let topic = unsafe { CString::from_vec_unchecked(topic.into_bytes()) };
                    // SAFETY: the application registered `f` for this signature; the
                    // topic and payload live until it returns.
                    match unsafe {
                        f(
                            ud.get(),
                            topic.as_ptr(),
                            bytes_ptr(payload),
                            payload.len(),
                            0,
                        )
                    } {
                        0 => Ok(()),
                        rc => Err(PublishFailed(rc)),
                    }
                },
            ) as Box<crate::router::PublishFn<PublishFailed>>
        });
        Ok(h.set_publish(f)?)
    })
}

/// Sets the callback of devices registered without their own (NULL removes it;
/// their requests then expire unanswered). When it returns, the callback it
/// replaced is not running on any other thread and will not run again.
///
/// @param[in] router    the router.
/// @param[in] callback  the callback, or NULL.
/// @param[in] user_data handed to every call; it must stay valid while registered.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the callback it would
///                                  replace; nothing changed.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_set_request_callback(
    router: *mut rrpc_router,
    callback: rrpc_router_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_router_set_request_callback", || {
        let h = Handle::borrow(router)?;
        Ok(h.set_request_callback(request_fn(callback, user_data, router))?)
    })
}

/// Registers a device (rules as `rrpc_client_add_device`), with its own callback
/// or, with `callback` NULL, the router's shared one. Subscribing its filter is
/// the application's job (`rrpc_router_get_filters`).
///
/// @param[in] router       the router.
/// @param[in] dialect      the device's dialect.
/// @param[in] product_key  product key (Tencent: product id).
/// @param[in] device_name  device name.
/// @param[in] custom_topic the custom topic for RRPC_DIALECT_ALIBABA_CUSTOM, else NULL.
/// @param[in] callback     the device's own callback, or NULL for the shared one.
/// @param[in] user_data    handed to the device's callback; it must stay valid
///                         until the device is removed or the router freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_LIMIT_REACHED `max_devices` devices are registered.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8, RRPC_STATUS_INVALID_ARGUMENT,
///         RRPC_STATUS_INVALID_IDENTITY, RRPC_STATUS_ALREADY_EXISTS as for
///         `rrpc_client_add_device`.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_add_device(
    router: *mut rrpc_router,
    dialect: rrpc_dialect_raw,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
    callback: rrpc_router_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    device_call(
        "rrpc_router_add_device",
        router,
        dialect,
        product_key,
        device_name,
        custom_topic,
        |h: &Handle, d, id| h.add_device(d, id, request_fn(callback, user_data, router)),
    )
}

/// Unregisters a device. Its pending requests are cancelled: replies to them fail
/// with RRPC_STATUS_DEVICE_REMOVED. When it returns, the device's own callback
/// (if it had one) is not running on any other thread and will not run again.
///
/// @param[in] router       the router.
/// @param[in] dialect      as given to `rrpc_router_add_device`.
/// @param[in] product_key  as given to `rrpc_router_add_device`.
/// @param[in] device_name  as given to `rrpc_router_add_device`.
/// @param[in] custom_topic as given to `rrpc_router_add_device`.
/// @param[in] now_ms       the time, on the router's clock.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NOT_FOUND   the device is not registered.
/// @retval RRPC_STATUS_WRONG_STATE called from inside the device's own callback
///                                 (it would wait for itself); nothing changed.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8, RRPC_STATUS_INVALID_ARGUMENT
///         as for `rrpc_router_add_device`.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_remove_device(
    router: *mut rrpc_router,
    dialect: rrpc_dialect_raw,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
    now_ms: u64,
) -> rrpc_status {
    device_call(
        "rrpc_router_remove_device",
        router,
        dialect,
        product_key,
        device_name,
        custom_topic,
        |h: &Handle, d, id| h.remove_device(d, id, now_ms),
    )
}

/// Lists the subscription filters to subscribe, one `callback` call per filter.
///
/// @param[in] router    the router.
/// @param[in] mode      which filters.
/// @param[in] callback  receives each filter; required.
/// @param[in] user_data handed to `callback`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `router` or `callback` is NULL.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `mode` is not an `rrpc_filter_mode`.
///
/// The callback runs on this thread without any router lock held; it must not
/// free the router.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_get_filters(
    router: *const rrpc_router,
    mode: rrpc_filter_mode_raw,
    callback: rrpc_router_filter_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_router_get_filters", || {
        let h = Handle::borrow(router)?.clone();
        let cb = arg_callback(callback, "callback")?;
        let mode = match mode {
            0 => FilterMode::PerDevice,
            1 => FilterMode::Wildcard,
            m => {
                return Err(Failure::new(
                    RRPC_STATUS_INVALID_ARGUMENT,
                    format!("mode {m} is not an rrpc_filter_mode"),
                ))
            }
        };
        let filters = h.filters(mode);
        h.run_as_callback(|| {
            for f in filters {
                let c = CString::new(f).unwrap_or_default();
                // SAFETY: the application registered `cb` for this signature.
                unsafe { cb(user_data, c.as_ptr()) };
            }
        });
        Ok(())
    })
}

/// Takes in one received MQTT message. An RRPC request for a registered device is
/// accepted and its callback runs before this returns (on this thread, without
/// any router lock held); anything else is classified and, if RRPC, counted.
///
/// @param[in]  router      the router.
/// @param[in]  topic       the topic's bytes (need not be NUL-terminated; bytes
///                         that are not UTF-8 make it malformed).
/// @param[in]  topic_len   its length.
/// @param[in]  payload     the payload, binary-safe; may be NULL when empty.
/// @param[in]  payload_len its length.
/// @param[in]  retained    the MQTT stack delivered the message with its retain
///                         flag set (Paho C: `message->retained`; libmosquitto:
///                         `msg->retain`). A retained request is never executed:
///                         it is dropped (RRPC_MESSAGE_DROPPED) and counted as
///                         `retained`.
/// @param[in]  now_ms      the time, on the router's clock: the request's
///                         deadline counts from it.
/// @param[out] out_kind    receives what the message was; may be NULL.
/// @retval RRPC_STATUS_OK               the message was classified (see `out_kind`).
/// @retval RRPC_STATUS_NULL_POINTER     `router` is NULL, or a buffer is NULL with a length.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `retained` is neither false nor true.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_handle_message(
    router: *mut rrpc_router,
    topic: *const u8,
    topic_len: usize,
    payload: *const u8,
    payload_len: usize,
    retained: rrpc_bool,
    now_ms: u64,
    out_kind: *mut rrpc_message_kind_raw,
) -> rrpc_status {
    boundary("rrpc_router_handle_message", || {
        let h = Handle::borrow(router)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let topic = unsafe { arg_bytes(topic, topic_len, "topic") }?;
        let payload = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        let retained = arg_flag(retained, "retained")?;
        let kind = match h.handle_message(topic, payload, retained, now_ms) {
            Ok(_) => rrpc_message_kind::RRPC_MESSAGE_REQUEST,
            Err(Dropped::NotRrpc) => rrpc_message_kind::RRPC_MESSAGE_NOT_RRPC,
            Err(Dropped::Malformed(_)) => rrpc_message_kind::RRPC_MESSAGE_MALFORMED,
            Err(_) => rrpc_message_kind::RRPC_MESSAGE_DROPPED,
        };
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_kind, kind as u32) };
        Ok(())
    })
}

/// Answers request `token`: builds the response topic and calls the publish
/// function (QoS 0) without any router lock held. Exactly one reply per
/// request; a reply that fails changes nothing, so it may be retried until the
/// deadline.
///
/// @param[in] router      the router the request came through.
/// @param[in] token       `rrpc_request.token`.
/// @param[in] payload     reply bytes, copied before return; may be NULL when
///                        `payload_len` is 0.
/// @param[in] payload_len reply length in bytes.
/// @param[in] now_ms      the time, on the router's clock.
/// @retval RRPC_STATUS_OK                published; the request is finished.
/// @retval RRPC_STATUS_SEND_FAILED       the publish function returned non-zero:
///                                       nothing was sent, the token stays valid.
/// @retval RRPC_STATUS_WRONG_STATE       no publish function is registered (token kept).
/// @retval RRPC_STATUS_BUSY              another thread is replying to this token now.
/// @retval RRPC_STATUS_UNKNOWN_TOKEN, RRPC_STATUS_ALREADY_REPLIED, RRPC_STATUS_EXPIRED,
///         RRPC_STATUS_DEVICE_REMOVED, RRPC_STATUS_PAYLOAD_TOO_LARGE,
///         RRPC_STATUS_NULL_POINTER  as for `rrpc_client_reply`.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_reply(
    router: *mut rrpc_router,
    token: u64,
    payload: *const u8,
    payload_len: usize,
    now_ms: u64,
) -> rrpc_status {
    boundary("rrpc_router_reply", || {
        // Its own reference: the publish function may free the handle.
        let h = Handle::borrow(router)?.clone();
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        Ok(h.reply(token, bytes, now_ms)?)
    })
}

/// `rrpc_router_reply` with a status code, for the dialects whose reply topic
/// carries one (`{status}`: RRPC_DIALECT_AZURE, `$iothub/methods/res/{status}/?$rid={id}`,
/// and registered dialects that have it). Other dialects send no status and
/// ignore it: the reply is the one `rrpc_router_reply` sends. `rrpc_router_reply`
/// is this function with status 200.
///
/// @param[in] router      the router the request came through.
/// @param[in] token       `rrpc_request.token`.
/// @param[in] status      the status code, 100 to 599 (such as 404).
/// @param[in] payload     reply bytes, copied before return; may be NULL when
///                        `payload_len` is 0.
/// @param[in] payload_len reply length in bytes.
/// @param[in] now_ms      the time, on the router's clock.
/// @retval RRPC_STATUS_OK               published; the request is finished.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `status` is not from 100 to 599; the token
///                                      stays valid.
/// @retval RRPC_STATUS_SEND_FAILED, RRPC_STATUS_WRONG_STATE, RRPC_STATUS_BUSY,
///         RRPC_STATUS_UNKNOWN_TOKEN, RRPC_STATUS_ALREADY_REPLIED, RRPC_STATUS_EXPIRED,
///         RRPC_STATUS_DEVICE_REMOVED, RRPC_STATUS_PAYLOAD_TOO_LARGE,
///         RRPC_STATUS_NULL_POINTER  as for `rrpc_router_reply`.
///
/// Since 1.1.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_reply_status(
    router: *mut rrpc_router,
    token: u64,
    status: u32,
    payload: *const u8,
    payload_len: usize,
    now_ms: u64,
) -> rrpc_status {
    boundary("rrpc_router_reply_status", || {
        // Its own reference: the publish function may free the handle.
        let h = Handle::borrow(router)?.clone();
        let status = reply_status_arg(status)?;
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        Ok(h.reply_with_status(token, Some(status), bytes, now_ms)?)
    })
}

/// Expires requests whose deadline passed and tells when the next one is due:
/// call it at `*out_next_deadline_ms` (a poll timeout for your event loop), or
/// regularly.
///
/// @param[in]  router               the router.
/// @param[in]  now_ms               the time, on the router's clock.
/// @param[out] out_next_deadline_ms receives the earliest deadline still
///             pending, or UINT64_MAX when none; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_tick(
    router: *mut rrpc_router,
    now_ms: u64,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_router_tick", || {
        let (_, next) = Handle::borrow(router)?.tick(now_ms);
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_next_deadline_ms, next.unwrap_or(u64::MAX)) };
        Ok(())
    })
}

/// Tells when the earliest pending request's deadline is due, without expiring
/// anything: how long an event loop may sleep before `rrpc_router_tick`.
///
/// @param[in]  router               the router.
/// @param[out] out_next_deadline_ms receives the earliest deadline on the
///             router's clock, or UINT64_MAX when no request is pending.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` or `out_next_deadline_ms` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_next_deadline(
    router: *const rrpc_router,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_router_next_deadline", || {
        let h = Handle::borrow(router)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_next_deadline_ms, "out_next_deadline_ms") }?;
        *out = h.next_deadline().unwrap_or(u64::MAX);
        Ok(())
    })
}

/// Reads the router's counters.
///
/// @param[in]  router     the router.
/// @param[out] out_stats  receives the counters: as many as `stats_size` holds
///                        (the rest of it is zeroed).
/// @param[in]  stats_size `sizeof *out_stats`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` or `out_stats` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_router_get_stats(
    router: *const rrpc_router,
    out_stats: *mut RouterStats,
    stats_size: usize,
) -> rrpc_status {
    // SAFETY: `stats_size` writable bytes per the documented contract.
    unsafe {
        get_stats(
            "rrpc_router_get_stats",
            router,
            out_stats,
            stats_size,
            |h: &Handle| h.stats(),
        )
    }
}
