//! `rrpc_router`: the RRPC core for applications that own their MQTT connection
//! (Paho C, libmosquitto, a vendor stack). Feed every received message to
//! `rrpc_router_handle_message`; replies come back through the publish function
//! the application registered. Same core as the built-in client.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::request::router_stats;
use super::rrpc_status::*;
use super::{
    arg_bytes, arg_flag, arg_out, arg_ref, boundary, bytes_ptr, device_args, opt_out, rrpc_request,
    rrpc_status, Castable, Failure, PublishFailed, SendPtr, ViewStrings,
};
use crate::clock::now_ms;
use crate::dialect::Dialect;
use crate::guard::{self, Callback, Kind, Slot};
use crate::router::{Attachment, Dropped, ReplyError, Router, RouterConfig};

/// The RRPC core without a transport. Created by `rrpc_router_new`, released by
/// `rrpc_router_free`.
pub struct rrpc_router {
    _private: [u8; 0],
}

/// Settings for `rrpc_router_new`; fill with `rrpc_router_config_init`.
#[repr(C)]
pub struct rrpc_router_config {
    /// Most requests waiting for a reply at once: 1 to 65536. Default 1024.
    pub max_pending: u32,
    /// Largest request or reply payload: 1 to 268435456 (256 MiB). Default 262144.
    pub max_payload: u32,
    /// Reply deadline in ms, at most 600000; 0 (default) = the dialect's caller
    /// timeout.
    pub request_timeout_ms: u32,
    /// 0 (default): time is CLOCK_MONOTONIC. 1: time is whatever the last
    /// `rrpc_router_tick` said, for gateways with their own clock and for tests.
    /// Other values are refused with RRPC_STATUS_INVALID_ARGUMENT.
    pub manual_clock: u8,
    /// Most devices registered at once: 1 to 1000000. Default 100000.
    pub max_devices: u32,
}

/// `rrpc_router_handle_message` flag: the message was delivered with the MQTT
/// retain flag set. A retained RRPC request is never executed: it is dropped
/// and counted (`retained`).
pub const RRPC_MESSAGE_RETAINED: u32 = 1;

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

/// Publishes a reply: `topic` is NUL-terminated, `payload` is `len` bytes (may be
/// NULL when 0), `qos` is always 0. Return 0 when the message was handed to the
/// MQTT stack, anything else on failure (the request is then released and
/// `rrpc_router_reply` returns RRPC_STATUS_SEND_FAILED). Runs on the thread that
/// called `rrpc_router_reply`, without any router lock held: it may call the
/// router again.
pub type rrpc_publish_fn = Option<
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
pub type rrpc_filter_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, filter: *const c_char)>;

/// Counters of a router (`rrpc_router_get_stats`).
#[repr(C)]
#[derive(Default)]
pub struct rrpc_router_stats {
    pub messages: u64,
    /// Requests handed to callbacks.
    pub requests: u64,
    pub replied: u64,
    pub expired: u64,
    pub duplicates: u64,
    pub own_replies: u64,
    pub malformed: u64,
    /// Requests for devices that are not registered (wildcard subscriptions).
    pub unknown_device: u64,
    pub table_full: u64,
    pub too_large: u64,
    /// Replies refused because the deadline had passed.
    pub late_replies: u64,
    /// Replies refused for unknown, answered, cancelled or released tokens.
    pub bad_tokens: u64,
    /// Replies whose publish function failed (requests released).
    pub send_failures: u64,
    pub not_rrpc: u64,
    /// Requests waiting for a reply now.
    pub pending: u64,
    /// Devices registered now.
    pub devices: u64,
    /// Requests that arrived retained (RRPC_MESSAGE_RETAINED): never executed.
    pub retained: u64,
}

/// A request callback with its `user_data` (the router's handle is passed at
/// each call).
type RequestFn = dyn Fn(*mut rrpc_router, *const rrpc_request) + Send + Sync;
/// The publish function with its `user_data`.
type PublishFn = dyn Fn(*const c_char, *const u8, usize, i32) -> i32 + Send + Sync;

fn request_fn(cb: Option<RouterCb>, user_data: *mut c_void) -> Option<Box<RequestFn>> {
    let ud = SendPtr(user_data);
    cb.map(|cb| {
        Box::new(move |router: *mut rrpc_router, req: *const rrpc_request| {
            let ud = ud;
            // SAFETY: the application registered `cb` for this signature; `req`
            // and its strings live until it returns.
            unsafe { cb(ud.get(), router, req) }
        }) as Box<RequestFn>
    })
}

type RouterCb = unsafe extern "C" fn(*mut c_void, *mut rrpc_router, *const rrpc_request);

/// What an `rrpc_router *` stands for. A function that still uses the router
/// after one of its callbacks returned (a reply, after the publish function)
/// holds its own clone of `shared`, so that `rrpc_router_free`, which waits for
/// that callback, cannot pull the memory from under it.
struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    router: Mutex<Router>,
    shared_callback: Slot<RequestFn>,
    publish: Slot<PublishFn>,
    manual_clock: bool,
    clock: AtomicU64,
}

impl Castable for Handle {
    type C = rrpc_router;
    const NAME: &'static str = "router";
}

impl std::ops::Deref for Handle {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Shared {
    fn now(&self) -> u64 {
        if self.manual_clock {
            self.clock.load(Ordering::Relaxed)
        } else {
            now_ms()
        }
    }
}

/// Runs `f`, a callback of `router` that is not a released-on-change one (the
/// filter callback), so that freeing the router from inside is refused.
fn inside<T>(router: *const rrpc_router, f: impl FnOnce() -> T) -> T {
    guard::enter(Kind::Object, router as usize, f)
}

/// Whether this thread runs one of the router's callbacks or its publish function.
fn in_any_callback(router: *const rrpc_router, h: &Handle) -> bool {
    guard::inside(Kind::Object, router as usize)
        || h.shared_callback.running_here()
        || h.publish.running_here()
        || h.router
            .lock()
            .attachments()
            .filter_map(device_callback)
            .any(|cb| cb.running_here())
}

/// A device's own callback, as the router keeps it (its attachment).
fn device_callback(a: &Arc<dyn std::any::Any + Send + Sync>) -> Option<&Callback<RequestFn>> {
    a.downcast_ref::<Callback<RequestFn>>()
}

/// Fills `out_config` with the defaults (see `rrpc_router_config`).
///
/// @param[out] out_config the struct to fill.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
#[no_mangle]
pub extern "C" fn rrpc_router_config_init(out_config: *mut rrpc_router_config) -> rrpc_status {
    boundary("rrpc_router_config_init", || {
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_config, "out_config") }?;
        let d = RouterConfig::default();
        *out = rrpc_router_config {
            max_pending: d.max_pending as u32,
            max_payload: d.max_payload as u32,
            request_timeout_ms: d.request_timeout_ms,
            manual_clock: 0,
            max_devices: d.max_devices as u32,
        };
        Ok(())
    })
}

/// Creates a router: no I/O, no threads.
///
/// @param[in]  config     settings.
/// @param[out] out_router receives the router; release it with `rrpc_router_free`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `config` or `out_router` is NULL.
/// @retval RRPC_STATUS_INVALID_ARGUMENT a field is outside its documented range
///         (see `rrpc_router_config`); the message names it.
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_new(
    config: *const rrpc_router_config,
    out_router: *mut *mut rrpc_router,
) -> rrpc_status {
    boundary("rrpc_router_new", || {
        // SAFETY: pointer contracts documented above.
        let c = unsafe { arg_ref(config, "config") }?;
        let out = unsafe { arg_out(out_router, "out_router") }?;
        let cfg = RouterConfig {
            max_pending: c.max_pending as usize,
            max_payload: c.max_payload as usize,
            request_timeout_ms: c.request_timeout_ms,
            max_devices: c.max_devices as usize,
            ..RouterConfig::default()
        };
        cfg.validate()
            .map_err(|m| Failure::new(RRPC_STATUS_INVALID_ARGUMENT, m))?;
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::new(cfg)),
            shared_callback: Slot::default(),
            publish: Slot::default(),
            manual_clock: arg_flag(c.manual_clock, "config->manual_clock")?,
            clock: AtomicU64::new(0),
        });
        *out = Handle { shared }.into_c();
        Ok(())
    })
}

/// Releases the router. Pending requests are dropped. Callbacks and the
/// publish function still running on other threads are waited for; none runs
/// after this returns. NULL is ignored.
///
/// @param[in] router the router, or NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from one of this router's callbacks or
///         its publish function; nothing was released.
///
/// Once, when no other thread will call the router again.
#[no_mangle]
pub extern "C" fn rrpc_router_free(router: *mut rrpc_router) -> rrpc_status {
    boundary("rrpc_router_free", || {
        Handle::free(router, |h| {
            if in_any_callback(router, h) {
                return Err(Failure::new(
                    RRPC_STATUS_WRONG_STATE,
                    "a router cannot be freed from its own callback or publish function",
                ));
            }
            h.shared_callback.set(None)?;
            h.publish.set(None)?;
            let devices: Vec<_> = h.router.lock().attachments().cloned().collect();
            for a in &devices {
                if let Some(cb) = device_callback(a) {
                    cb.release()?;
                }
            }
            Ok(())
        })
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
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_set_publish(
    router: *mut rrpc_router,
    publish: rrpc_publish_fn,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_router_set_publish", move || {
        let h = Handle::borrow(router)?;
        let f = publish.map(|f| {
            Box::new(
                move |topic: *const c_char, data: *const u8, len: usize, qos: i32| {
                    let ud = ud;
                    // SAFETY: the application registered `f` for this signature; the
                    // topic and payload live until it returns.
                    unsafe { f(ud.get(), topic, data, len, qos) }
                },
            ) as Box<PublishFn>
        });
        Ok(h.publish.set(f)?)
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
///
/// Any thread; takes effect for the next request.
#[no_mangle]
pub extern "C" fn rrpc_router_set_callback(
    router: *mut rrpc_router,
    callback: rrpc_router_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_router_set_callback", || {
        let h = Handle::borrow(router)?;
        Ok(h.shared_callback.set(request_fn(callback, user_data))?)
    })
}

/// Registers a device (rules as `rrpc_client_add_device`), with its own callback
/// or, with `callback` NULL, the router's shared one. Subscribing its filter is
/// the application's job (`rrpc_router_get_filters`).
///
/// @param[in] router       the router.
/// @param[in] dialect      an `rrpc_dialect` value.
/// @param[in] product_key  product key (Tencent: product id).
/// @param[in] device_name  device name.
/// @param[in] custom_topic the custom topic for RRPC_DIALECT_ALIBABA_CUSTOM, else NULL.
/// @param[in] callback     the device's own callback, or NULL for the shared one.
/// @param[in] user_data    handed to the device's callback; it must stay valid
///                         until the device is removed or the router freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8, RRPC_STATUS_INVALID_ARGUMENT,
///         RRPC_STATUS_INVALID_IDENTITY, RRPC_STATUS_ALREADY_EXISTS as for
///         `rrpc_client_add_device`.
///
/// Any thread, also while messages are handled, and from callbacks.
#[no_mangle]
pub extern "C" fn rrpc_router_add_device(
    router: *mut rrpc_router,
    dialect: u32,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
    callback: rrpc_router_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_router_add_device", || {
        let h = Handle::borrow(router)?;
        let (d, id) = device_args(dialect, product_key, device_name, custom_topic)?;
        let attachment = Attachment(
            request_fn(callback, user_data)
                .map(|f| Arc::new(Callback::new(f)) as Arc<dyn std::any::Any + Send + Sync>),
        );
        h.router.lock().add_device_with(d, &id, attachment)?;
        Ok(())
    })
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
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NOT_FOUND   the device is not registered.
/// @retval RRPC_STATUS_WRONG_STATE called from inside the device's own callback
///                                 (it would wait for itself); nothing changed.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8, RRPC_STATUS_INVALID_ARGUMENT
///         as for `rrpc_router_add_device`.
///
/// Any thread, also while messages are handled, and from callbacks (other than
/// the device's own).
#[no_mangle]
pub extern "C" fn rrpc_router_remove_device(
    router: *mut rrpc_router,
    dialect: u32,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> rrpc_status {
    boundary("rrpc_router_remove_device", || {
        let h = Handle::borrow(router)?;
        let (d, id) = device_args(dialect, product_key, device_name, custom_topic)?;
        let now = h.now();
        let own = {
            let mut r = h.router.lock();
            let own = r.attachment(d, &id).cloned();
            if own
                .as_ref()
                .and_then(device_callback)
                .is_some_and(|cb| cb.running_here())
            {
                return Err(Failure::new(
                    RRPC_STATUS_WRONG_STATE,
                    "a device cannot be removed from inside its own callback",
                ));
            }
            r.remove_device(d, &id, now)?;
            own
        };
        if let Some(cb) = own.as_ref().and_then(device_callback) {
            cb.release()?;
        }
        Ok(())
    })
}

/// Lists the subscription filters to subscribe, one `callback` call per filter.
///
/// @param[in] router    the router.
/// @param[in] mode      an `rrpc_filter_mode` value.
/// @param[in] callback  receives each filter; required.
/// @param[in] user_data handed to `callback`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `router` or `callback` is NULL.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `mode` is not a filter mode.
///
/// Any thread; the callback runs without any router lock held.
#[no_mangle]
pub extern "C" fn rrpc_router_get_filters(
    router: *mut rrpc_router,
    mode: u32,
    callback: rrpc_filter_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_router_get_filters", || {
        let h = Handle::borrow(router)?;
        let cb =
            callback.ok_or_else(|| Failure::new(RRPC_STATUS_NULL_POINTER, "callback is NULL"))?;
        let filters: Vec<String> = {
            let r = h.router.lock();
            match mode {
                0 => r.devices().map(|d| d.filter().to_string()).collect(),
                1 => Dialect::ALL
                    .into_iter()
                    .filter(|&d| r.devices().any(|x| x.dialect == d))
                    .map(|d| d.request_wildcard())
                    .collect(),
                m => {
                    return Err(Failure::new(
                        RRPC_STATUS_INVALID_ARGUMENT,
                        format!("mode {m} is not an rrpc_filter_mode"),
                    ))
                }
            }
        };
        inside(router, || {
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
/// @param[in]  router       the router.
/// @param[in]  topic        the topic's bytes (need not be NUL-terminated; bytes
///                          that are not UTF-8 make it malformed).
/// @param[in]  topic_len    its length.
/// @param[in]  payload      the payload, binary-safe; may be NULL when empty.
/// @param[in]  payload_len  its length.
/// @param[in]  flags        0, or RRPC_MESSAGE_RETAINED when the MQTT stack
///                          delivered the message with its retain flag set (Paho
///                          C: `message->retained`; libmosquitto:
///                          `msg->retain`). A retained request is never
///                          executed: it is dropped (RRPC_MESSAGE_DROPPED) and
///                          counted as `retained`.
/// @param[out] out_kind     receives an `rrpc_message_kind`; may be NULL.
/// @retval RRPC_STATUS_OK               the message was classified (see `out_kind`).
/// @retval RRPC_STATUS_NULL_POINTER     `router` is NULL, or a buffer is NULL with a length.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `flags` has a bit other than
///                                      RRPC_MESSAGE_RETAINED; nothing was done.
///
/// Any thread; several threads may handle messages at once.
#[no_mangle]
pub extern "C" fn rrpc_router_handle_message(
    router: *mut rrpc_router,
    topic: *const u8,
    topic_len: usize,
    payload: *const u8,
    payload_len: usize,
    flags: u32,
    out_kind: *mut u32,
) -> rrpc_status {
    boundary("rrpc_router_handle_message", || {
        let h = Handle::borrow(router)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let topic = unsafe { arg_bytes(topic, topic_len, "topic") }?;
        let payload = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        if flags & !RRPC_MESSAGE_RETAINED != 0 {
            return Err(Failure::new(
                RRPC_STATUS_INVALID_ARGUMENT,
                format!("flags {flags:#x} has bits other than RRPC_MESSAGE_RETAINED"),
            ));
        }
        let now = h.now();
        let mut r = h.router.lock();
        let accepted = r.handle_received(topic, payload, flags & RRPC_MESSAGE_RETAINED != 0, now);
        let kind = match &accepted {
            Ok(_) => rrpc_message_kind::RRPC_MESSAGE_REQUEST,
            Err(Dropped::NotRrpc) => rrpc_message_kind::RRPC_MESSAGE_NOT_RRPC,
            Err(Dropped::Malformed(_)) => rrpc_message_kind::RRPC_MESSAGE_MALFORMED,
            Err(_) => rrpc_message_kind::RRPC_MESSAGE_DROPPED,
        };
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_kind, kind as u32) };
        let Ok(a) = accepted else {
            return Ok(());
        };
        // What the callback needs is copied while the router is held: the device
        // may be removed once it is released.
        let d = r
            .request_device(a.device)
            .expect("an accepted request's device is registered");
        let own = d.attachment.cloned();
        let mut strings = ViewStrings::default();
        strings.fill(a.message_id, &d.identity);
        let dialect = d.dialect;
        drop(r);
        let view = strings.view(a.token, dialect, a.content_type, a.payload, a.deadline_ms);
        match own.as_ref().and_then(device_callback) {
            Some(cb) => cb.call(|f| f(router, &view)),
            None => h.shared_callback.call(|f| f(router, &view)),
        };
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
/// @retval RRPC_STATUS_OK                published; the request is finished.
/// @retval RRPC_STATUS_SEND_FAILED       the publish function returned non-zero:
///                                       nothing was sent, the token stays valid.
/// @retval RRPC_STATUS_WRONG_STATE       no publish function is registered (token kept).
/// @retval RRPC_STATUS_BUSY              another thread is replying to this token now.
/// @retval RRPC_STATUS_UNKNOWN_TOKEN, RRPC_STATUS_ALREADY_REPLIED, RRPC_STATUS_EXPIRED,
///         RRPC_STATUS_DEVICE_REMOVED, RRPC_STATUS_PAYLOAD_TOO_LARGE,
///         RRPC_STATUS_NULL_POINTER  as for `rrpc_client_reply`.
///
/// Any thread, including callbacks and the publish function.
#[no_mangle]
pub extern "C" fn rrpc_router_reply(
    router: *mut rrpc_router,
    token: u64,
    payload: *const u8,
    payload_len: usize,
) -> rrpc_status {
    boundary("rrpc_router_reply", || {
        let h = Handle::borrow(router)?.shared.clone();
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        let no_publish = || {
            Failure::new(
                RRPC_STATUS_WRONG_STATE,
                "no publish function is registered (rrpc_router_set_publish)",
            )
        };
        if !h.publish.is_set() {
            return Err(no_publish());
        }
        let topic = h
            .router
            .lock()
            .begin_reply(token, bytes.len(), h.now())
            .map_err(Failure::from)?;
        debug_assert!(!topic.contains('\0'));
        // SAFETY: no NUL inside: the topic is made of validated identities and a
        // validated message id, none of which may contain one. (Rendered with
        // spare capacity, so the terminator does not reallocate.)
        let c_topic = unsafe { CString::from_vec_unchecked(topic.into_bytes()) };
        let rc = h
            .publish
            .call(|f| f(c_topic.as_ptr(), bytes_ptr(bytes), bytes.len(), 0));
        h.router.lock().end_reply(token, rc == Some(0), h.now());
        match rc {
            Some(0) => Ok(()),
            Some(rc) => Err(ReplyError::Send(PublishFailed(rc)).into()),
            None => Err(no_publish()),
        }
    })
}

/// Expires requests whose deadline passed and tells when the next one is due.
/// With `manual_clock`, `now_ms` becomes the router's time first; otherwise it
/// is ignored (pass 0) and CLOCK_MONOTONIC is read. Call it at
/// `*out_next_deadline_ms` (a poll timeout for your event loop), or regularly.
///
/// @param[in]  router               the router.
/// @param[in]  now_ms               the time, with `manual_clock`; else ignored.
/// @param[out] out_next_deadline_ms receives the earliest deadline still
///             pending, on the router's clock, or UINT64_MAX when none; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_tick(
    router: *mut rrpc_router,
    now_ms: u64,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_router_tick", || {
        let h = Handle::borrow(router)?;
        if h.manual_clock {
            h.clock.store(now_ms, Ordering::Relaxed);
        }
        let mut r = h.router.lock();
        r.expire(h.now());
        // SAFETY: optional out-parameter.
        unsafe { opt_out(out_next_deadline_ms, r.next_deadline().unwrap_or(u64::MAX)) };
        Ok(())
    })
}

/// Tells when the earliest pending request's deadline is due, without expiring
/// anything: how long a C event loop may sleep before `rrpc_router_tick`.
///
/// @param[in]  router               the router.
/// @param[out] out_next_deadline_ms receives the earliest deadline on the
///             router's clock, or UINT64_MAX when no request is pending.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` or `out_next_deadline_ms` is NULL.
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_next_deadline(
    router: *mut rrpc_router,
    out_next_deadline_ms: *mut u64,
) -> rrpc_status {
    boundary("rrpc_router_next_deadline", || {
        let h = Handle::borrow(router)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_next_deadline_ms, "out_next_deadline_ms") }?;
        *out = h.router.lock().next_deadline().unwrap_or(u64::MAX);
        Ok(())
    })
}

/// Reads the router's counters.
///
/// @param[in]  router    the router.
/// @param[out] out_stats receives the counters.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` or `out_stats` is NULL.
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_get_stats(
    router: *mut rrpc_router,
    out_stats: *mut rrpc_router_stats,
) -> rrpc_status {
    boundary("rrpc_router_get_stats", || {
        let h = Handle::borrow(router)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_stats, "out_stats") }?;
        let r = h.router.lock();
        let s = r.stats();
        *out = router_stats!(rrpc_router_stats, s, {
            pending: r.pending_len() as u64,
            devices: r.device_count() as u64,
            retained: s.retained,
        });
        Ok(())
    })
}
