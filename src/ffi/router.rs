//! `rrpc_router`: the RRPC core for applications that own their MQTT connection
//! (Paho C, libmosquitto, a vendor stack). Feed every received message to
//! `rrpc_router_handle_message`; replies come back through the publish function
//! the application registered. Same core as the built-in client.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::client::{rrpc_request, ViewStrings};
use super::misc::SendPtr;
use super::rrpc_status::*;
use super::{arg_bytes, arg_opt_str, arg_out, arg_ref, arg_str, boundary, rrpc_status, Failure};
use crate::clock::now_ms;
use crate::dialect::{Dialect, Identity};
use crate::router::{Attachment, DeviceError, Dropped, ReplyError, Router, RouterConfig};

/// The RRPC core without a transport. Created by `rrpc_router_new`, released by
/// `rrpc_router_free`.
pub struct rrpc_router {
    _private: [u8; 0],
}

/// Settings for `rrpc_router_new`; fill with `rrpc_router_config_init`.
#[repr(C)]
pub struct rrpc_router_config {
    /// Most requests waiting for a reply at once. Default 1024.
    pub max_pending: u32,
    /// Largest request or reply payload. Default 262144.
    pub max_payload: u32,
    /// Reply deadline in ms; 0 (default) = the dialect's caller timeout.
    pub request_timeout_ms: u32,
    /// false (default): time is CLOCK_MONOTONIC. true: time is whatever the last
    /// `rrpc_router_tick` said, for gateways with their own clock and for tests.
    pub manual_clock: bool,
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
    /// own reply echoed back, table full or payload too large. Counted in the stats.
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
}

#[derive(Clone, Copy)]
struct Callback {
    cb: unsafe extern "C" fn(*mut c_void, *mut rrpc_router, *const rrpc_request),
    user_data: SendPtr,
}

#[derive(Clone, Copy)]
struct Publish {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, i32) -> i32,
    user_data: SendPtr,
}

struct Handle {
    router: Mutex<Router>,
    shared_callback: RwLock<Option<Callback>>,
    publish: RwLock<Option<Publish>>,
    manual_clock: bool,
    clock: AtomicU64,
}

impl Handle {
    fn now(&self) -> u64 {
        if self.manual_clock {
            self.clock.load(Ordering::Relaxed)
        } else {
            now_ms()
        }
    }
}

thread_local! {
    /// Routers whose callback or publish function runs on this thread (nested
    /// calls push again), so that freeing one from inside is refused.
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn inside<T>(router: *const rrpc_router, f: impl FnOnce() -> T) -> T {
    INSIDE.with(|v| v.borrow_mut().push(router as usize));
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            INSIDE.with(|v| {
                v.borrow_mut().pop();
            });
        }
    }
    let _pop = Pop;
    f()
}

fn handle<'a>(p: *const rrpc_router) -> Result<&'a Handle, Failure> {
    // SAFETY: made by `rrpc_router_new` from a `Box<Handle>`; valid until freed.
    unsafe { arg_ref(p.cast::<Handle>(), "router") }
}

fn device_error(e: DeviceError) -> Failure {
    let status = match e {
        DeviceError::Invalid(_) => RRPC_STATUS_INVALID_IDENTITY,
        DeviceError::AlreadyExists | DeviceError::TopicInUse(_) => RRPC_STATUS_ALREADY_EXISTS,
        DeviceError::NotFound => RRPC_STATUS_NOT_FOUND,
    };
    Failure::new(status, e.to_string())
}

fn identity<'a>(
    dialect: u32,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> Result<(Dialect, Identity<'a>), Failure> {
    let d = Dialect::from_u32(dialect).ok_or_else(|| {
        Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("dialect {dialect} is not an rrpc_dialect"),
        )
    })?;
    // SAFETY: NUL-terminated strings per the documented contract.
    Ok((
        d,
        Identity {
            product_key: unsafe { arg_str(product_key, "product_key") }?,
            device_name: unsafe { arg_str(device_name, "device_name") }?,
            custom_topic: unsafe { arg_opt_str(custom_topic, "custom_topic") }?,
        },
    ))
}

/// Fills `out_config` with the defaults (see `rrpc_router_config`).
///
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
            manual_clock: false,
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
/// @retval RRPC_STATUS_INVALID_ARGUMENT `max_pending` or `max_payload` is 0.
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
        if c.max_pending == 0 || c.max_payload == 0 {
            return Err(Failure::new(
                RRPC_STATUS_INVALID_ARGUMENT,
                "max_pending and max_payload must be at least 1",
            ));
        }
        let cfg = RouterConfig {
            max_pending: c.max_pending as usize,
            max_payload: c.max_payload as usize,
            request_timeout_ms: c.request_timeout_ms,
            ..RouterConfig::default()
        };
        let h = Handle {
            router: Mutex::new(Router::new(cfg)),
            shared_callback: RwLock::new(None),
            publish: RwLock::new(None),
            manual_clock: c.manual_clock,
            clock: AtomicU64::new(0),
        };
        *out = Box::into_raw(Box::new(h)).cast::<rrpc_router>();
        Ok(())
    })
}

/// Releases the router. Pending requests are dropped. NULL is ignored.
///
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from this router's callback or publish
///         function; nothing was released.
///
/// Once, when no other thread uses the router.
#[no_mangle]
pub extern "C" fn rrpc_router_free(router: *mut rrpc_router) -> rrpc_status {
    boundary("rrpc_router_free", || {
        if router.is_null() {
            return Ok(());
        }
        if INSIDE.with(|v| v.borrow().contains(&(router as usize))) {
            return Err(Failure::new(
                RRPC_STATUS_WRONG_STATE,
                "a router cannot be freed from its own callback or publish function",
            ));
        }
        // SAFETY: made by `Box::into_raw` in `rrpc_router_new`; freed once.
        drop(unsafe { Box::from_raw(router.cast::<Handle>()) });
        Ok(())
    })
}

/// Registers the function that publishes replies (NULL removes it; replies then
/// fail with RRPC_STATUS_WRONG_STATE and keep their token).
///
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
///
/// Any thread; `user_data` must stay valid while registered.
#[no_mangle]
pub extern "C" fn rrpc_router_set_publish(
    router: *mut rrpc_router,
    publish: rrpc_publish_fn,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_router_set_publish", move || {
        let h = handle(router)?;
        *h.publish.write() = publish.map(|f| Publish { f, user_data: ud });
        Ok(())
    })
}

/// Sets the callback of devices registered without their own (NULL removes it;
/// their requests then expire unanswered).
///
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
///
/// Any thread; takes effect for the next request.
#[no_mangle]
pub extern "C" fn rrpc_router_set_callback(
    router: *mut rrpc_router,
    callback: rrpc_router_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    let ud = SendPtr(user_data);
    boundary("rrpc_router_set_callback", move || {
        let h = handle(router)?;
        *h.shared_callback.write() = callback.map(|cb| Callback { cb, user_data: ud });
        Ok(())
    })
}

/// Registers a device (rules as `rrpc_client_add_device`), with its own callback
/// or, with `callback` NULL, the router's shared one. Subscribing its filter is
/// the application's job (`rrpc_router_get_filters`).
///
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
    let ud = SendPtr(user_data);
    boundary("rrpc_router_add_device", move || {
        let h = handle(router)?;
        let (d, id) = identity(dialect, product_key, device_name, custom_topic)?;
        let attachment = Attachment(callback.map(|cb| {
            Arc::new(Callback { cb, user_data: ud }) as Arc<dyn std::any::Any + Send + Sync>
        }));
        h.router
            .lock()
            .add_device_with(d, &id, attachment)
            .map_err(device_error)?;
        Ok(())
    })
}

/// Unregisters a device. Its pending requests are cancelled: replies to them fail
/// with RRPC_STATUS_DEVICE_REMOVED.
///
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NOT_FOUND the device is not registered.
///
/// Any thread, also while messages are handled, and from callbacks.
#[no_mangle]
pub extern "C" fn rrpc_router_remove_device(
    router: *mut rrpc_router,
    dialect: u32,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> rrpc_status {
    boundary("rrpc_router_remove_device", || {
        let h = handle(router)?;
        let (d, id) = identity(dialect, product_key, device_name, custom_topic)?;
        let now = h.now();
        h.router
            .lock()
            .remove_device(d, &id, now)
            .map_err(device_error)?;
        Ok(())
    })
}

/// Lists the subscription filters to subscribe, one `callback` call per filter.
///
/// @param[in] mode an `rrpc_filter_mode` value.
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
        let h = handle(router)?;
        let cb =
            callback.ok_or_else(|| Failure::new(RRPC_STATUS_NULL_POINTER, "callback is NULL"))?;
        let filters: Vec<String> = {
            let r = h.router.lock();
            match mode {
                0 => r.devices().map(|d| d.filter().to_string()).collect(),
                1 => {
                    let mut v: Vec<String> = Vec::new();
                    for d in Dialect::ALL {
                        if r.devices().any(|x| x.dialect == d) {
                            v.push(d.request_wildcard());
                        }
                    }
                    v
                }
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
/// @param[in]  topic        the topic's bytes (need not be NUL-terminated; bytes
///                          that are not UTF-8 make it malformed).
/// @param[in]  topic_len    its length.
/// @param[in]  payload      the payload, binary-safe; may be NULL when empty.
/// @param[in]  payload_len  its length.
/// @param[out] out_kind     receives an `rrpc_message_kind`; may be NULL.
/// @retval RRPC_STATUS_OK               the message was classified (see `out_kind`).
/// @retval RRPC_STATUS_NULL_POINTER     `router` is NULL, or a buffer is NULL with a length.
///
/// Any thread; several threads may handle messages at once.
#[no_mangle]
pub extern "C" fn rrpc_router_handle_message(
    router: *mut rrpc_router,
    topic: *const u8,
    topic_len: usize,
    payload: *const u8,
    payload_len: usize,
    out_kind: *mut u32,
) -> rrpc_status {
    boundary("rrpc_router_handle_message", || {
        let h = handle(router)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let topic = unsafe { arg_bytes(topic, topic_len, "topic") }?;
        let payload = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        let now = h.now();
        let mut r = h.router.lock();
        let accepted = r.handle_message_bytes(topic, payload, now);
        let kind = match &accepted {
            Ok(_) => rrpc_message_kind::RRPC_MESSAGE_REQUEST,
            Err(Dropped::NotRrpc) => rrpc_message_kind::RRPC_MESSAGE_NOT_RRPC,
            Err(Dropped::Malformed(_)) => rrpc_message_kind::RRPC_MESSAGE_MALFORMED,
            Err(_) => rrpc_message_kind::RRPC_MESSAGE_DROPPED,
        };
        if let Some(out) = unsafe { out_kind.as_mut() } {
            *out = kind as u32;
        }
        let Ok(a) = accepted else {
            return Ok(());
        };
        // What the callback needs is copied while the router is held: the device
        // may be removed once it is released.
        let d = r
            .request_device(a.device)
            .expect("an accepted request's device is registered");
        let own = d
            .attachment
            .and_then(|x| x.downcast_ref::<Callback>().copied());
        let mut strings = ViewStrings::default();
        strings.fill(a.message_id, &d.identity);
        let dialect = d.dialect;
        drop(r);
        let cb = own.or_else(|| *h.shared_callback.read());
        if let Some(Callback { cb, user_data }) = cb {
            let view = strings.view(a.token, dialect, a.content_type, a.payload, a.deadline_ms);
            inside(router, || {
                // SAFETY: the application registered `cb` for this signature;
                // `view` and its strings live until it returns.
                unsafe { cb(user_data.get(), router, &view) }
            });
        }
        Ok(())
    })
}

/// Answers request `token`: builds the response topic and calls the publish
/// function (QoS 0) without any router lock held. Exactly one reply per request.
///
/// @retval RRPC_STATUS_OK                published; the request is finished.
/// @retval RRPC_STATUS_SEND_FAILED       the publish function failed: nothing was sent, the
///         request stays pending and may be answered again until its deadline.
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
        let h = handle(router)?;
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        let publish = (*h.publish.read()).ok_or_else(|| {
            Failure::new(
                RRPC_STATUS_WRONG_STATE,
                "no publish function is registered (rrpc_router_set_publish)",
            )
        })?;
        let topic = h
            .router
            .lock()
            .begin_reply(token, bytes.len(), h.now())
            .map_err(|e| {
                let status = match e {
                    ReplyError::UnknownToken => RRPC_STATUS_UNKNOWN_TOKEN,
                    ReplyError::AlreadyReplied => RRPC_STATUS_ALREADY_REPLIED,
                    ReplyError::Expired => RRPC_STATUS_EXPIRED,
                    ReplyError::DeviceRemoved => RRPC_STATUS_DEVICE_REMOVED,
                    ReplyError::TooLarge => RRPC_STATUS_PAYLOAD_TOO_LARGE,
                    ReplyError::InProgress => RRPC_STATUS_BUSY,
                    ReplyError::Send(never) => match never {},
                };
                Failure::new(status, e.to_string())
            })?;
        debug_assert!(!topic.contains('\0'));
        // SAFETY: no NUL inside: the topic is made of validated identities and a
        // validated message id, none of which may contain one. (Rendered with
        // spare capacity, so the terminator does not reallocate.)
        let c_topic = unsafe { CString::from_vec_unchecked(topic.into_bytes()) };
        let data = if bytes.is_empty() {
            std::ptr::null()
        } else {
            bytes.as_ptr()
        };
        let rc = inside(router, || {
            // SAFETY: the application registered `f` for this signature; the topic
            // and payload live until it returns.
            unsafe {
                (publish.f)(
                    publish.user_data.get(),
                    c_topic.as_ptr(),
                    data,
                    bytes.len(),
                    0,
                )
            }
        });
        h.router.lock().end_reply(token, rc == 0, h.now());
        if rc != 0 {
            return Err(Failure::new(
                RRPC_STATUS_SEND_FAILED,
                format!("the publish function returned {rc}; the request is still pending"),
            ));
        }
        Ok(())
    })
}

/// Expires requests whose deadline passed. With `manual_clock`, `now_ms` becomes
/// the router's time first; otherwise it is ignored (pass 0) and CLOCK_MONOTONIC
/// is read. Call it regularly (every 100 ms is plenty) or at
/// the deadline of the oldest request.
///
/// @param[out] out_expired receives how many requests expired; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `router` is NULL.
///
/// Any thread.
#[no_mangle]
pub extern "C" fn rrpc_router_tick(
    router: *mut rrpc_router,
    now_ms: u64,
    out_expired: *mut usize,
) -> rrpc_status {
    boundary("rrpc_router_tick", || {
        let h = handle(router)?;
        if h.manual_clock {
            h.clock.store(now_ms, Ordering::Relaxed);
        }
        let n = h.router.lock().expire(h.now());
        // SAFETY: optional out-parameter.
        if let Some(out) = unsafe { out_expired.as_mut() } {
            *out = n;
        }
        Ok(())
    })
}

/// Reads the router's counters.
///
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
        let h = handle(router)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_stats, "out_stats") }?;
        let r = h.router.lock();
        let s = r.stats();
        *out = rrpc_router_stats {
            messages: s.messages,
            requests: s.requests,
            replied: s.replied,
            expired: s.expired,
            duplicates: s.duplicates,
            own_replies: s.own_replies,
            malformed: s.malformed,
            unknown_device: s.unknown_device,
            table_full: s.table_full,
            too_large: s.too_large,
            late_replies: s.late_replies,
            bad_tokens: s.bad_tokens,
            send_failures: s.send_failures,
            not_rrpc: s.not_rrpc,
            pending: r.pending_len() as u64,
            devices: r.device_count() as u64,
        };
        Ok(())
    })
}
