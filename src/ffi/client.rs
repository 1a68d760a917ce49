//! `rrpc_client`: the built-in MQTT transport, as C sees it.

use std::ffi::{c_char, c_void};

use super::args::{arg_bytes, arg_flag, arg_out, SendPtr};
use super::boundary::boundary;
use super::family::{free_handle, get_stats, get_string, new_handle, settings_init};
use super::handle::Castable;
use super::misc::{rrpc_bool, rrpc_dialect_raw};
use super::request::{device_call, reply_status_arg, request_view, rrpc_request};
use super::session::{
    connection_listener, mqtt_config, presence_arg, rrpc_connection_cb, rrpc_mqtt_config,
};
use super::sized::settings;
use super::status::{rrpc_status, Failure};
use crate::client::{Client, ClientConfig, ClientStats, Request};
use crate::router::RouterConfig;

/// An RRPC device client: one MQTT connection serving one or more devices.
/// Created by `rrpc_client_new`, released by `rrpc_client_free`.
///
/// Threads: two ways to run it. Thread mode (`rrpc_client_start`): one
/// background thread does all network work and calls the callbacks. Yield mode
/// (`rrpc_client_yield`, for single-threaded firmware): the work and the
/// callbacks run on the thread inside `rrpc_client_yield`, one thread at a
/// time. In both, any function may be called from any thread, except that
/// start, stop, yield and free are not called concurrently on one client and
/// not from its callbacks (RRPC_STATUS_WRONG_STATE); replies may come from any
/// thread at any time. Callbacks run with no library lock held.
pub struct rrpc_client {
    _private: [u8; 0],
}

/// Settings for `rrpc_client_new`. Fill it with `rrpc_client_config_init`, then
/// change the fields you need. Strings are copied by `rrpc_client_new`; they only
/// need to live until it returns.
#[repr(C)]
pub struct rrpc_client_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_client_config_init`.
    pub struct_size: u32,
    /// The broker and how to connect to it (required; `mqtt->host` too). The
    /// client's `mqtt->connect_timeout_ms` is how long `rrpc_client_start` waits
    /// for the first connection: if the first attempt fails in that time, start
    /// fails with RRPC_STATUS_CONNECT_FAILED and leaves nothing running; 0: start
    /// returns at once and the client connects and reconnects in the background.
    pub mqtt: *const rrpc_mqtt_config,
    /// QoS of the request subscriptions, 0 or 1. Default 0. Replies are always QoS 0.
    pub subscribe_qos: u8,
    /// Most requests waiting for a reply at once; more are dropped and counted.
    /// Default 1024.
    pub max_pending: u32,
    /// Largest request or reply payload in bytes. Default 262144 (256 KiB).
    pub max_payload: u32,
    /// How long a request may wait for its reply, in ms; 0 (default) uses the
    /// dialect's caller timeout: 8000 for Alibaba, 4000 for Tencent.
    pub request_timeout_ms: u32,
    /// Presence on a plain broker, so that callers can tell OFFLINE and HALFCONN.
    /// When true, each device gets a retained `online {client id}` on
    /// `{presence_prefix}/{pk}/{dn}` after every connect and a retained `offline`
    /// on a clean stop; the last will (retained `offline`) goes on the device's
    /// topic when the client serves one device, else on
    /// `{connection_prefix}/{user name}/{client id}`. Default false.
    pub presence: rrpc_bool,
    /// Prefix of device status topics, or NULL (default) for "rrpc/presence".
    pub presence_prefix: *const c_char,
    /// Prefix of connection status topics, or NULL (default) for "rrpc/connection".
    pub connection_prefix: *const c_char,
    /// true: execute requests that a resumed persistent session
    /// (`mqtt->clean_session` false, `subscribe_qos` 1) delivers before the
    /// broker acknowledged the subscriptions again, i.e. requests queued while
    /// the client was away. false (default): drop and count them (`stale`).
    /// Retained requests are never executed (`retained`).
    pub accept_queued: rrpc_bool,
    /// Most messages (replies, presence) waiting to be written to the network,
    /// 1 to 65536; 0 (default) means 1024. A reply beyond it fails with
    /// RRPC_STATUS_BUSY and counts in `queue_full`.
    pub reply_queue_max: u32,
    /// Most payload bytes waiting to be written to the network, 1 to 268435456;
    /// 0 (default) means 4194304 (4 MiB). A single larger reply still goes when
    /// nothing else waits.
    pub reply_queue_bytes: u32,
}

settings!(rrpc_client_config {
    struct_size,
    mqtt,
    subscribe_qos,
    max_pending,
    max_payload,
    request_timeout_ms,
    presence,
    presence_prefix,
    connection_prefix,
    accept_queued,
    reply_queue_max,
    reply_queue_bytes,
} defaults [
    d = ClientConfig::new("", 1883),
] {
    subscribe_qos: d.subscribe_qos,
    max_pending: d.router.max_pending as u32,
    max_payload: d.router.max_payload as u32,
    request_timeout_ms: d.router.request_timeout_ms,
});

/// A client with the settings of C's `c`.
///
/// # Safety
/// The pointers in `c` must be NULL or valid as `rrpc_client_config` documents.
unsafe fn new_client(c: &rrpc_client_config) -> Result<Client, Failure> {
    let mut cfg = ClientConfig::new("", 0);
    // SAFETY: forwarded contract.
    cfg.mqtt = unsafe { mqtt_config(c.mqtt) }?;
    cfg.subscribe_qos = c.subscribe_qos;
    cfg.router = RouterConfig {
        max_pending: c.max_pending as usize,
        max_payload: c.max_payload as usize,
        request_timeout_ms: c.request_timeout_ms,
        ..RouterConfig::default()
    };
    cfg.presence = presence_arg(c.presence, c.presence_prefix, c.connection_prefix)?;
    cfg.accept_queued = arg_flag(c.accept_queued, "config->accept_queued")?;
    if c.reply_queue_max != 0 {
        cfg.reply_queue_max = c.reply_queue_max as usize;
    }
    if c.reply_queue_bytes != 0 {
        cfg.reply_queue_bytes = c.reply_queue_bytes as usize;
    }
    Ok(Client::new(cfg)?)
}

/// The request callback. `client` is the client the request came through (pass it
/// to `rrpc_client_reply`); `request` is valid only during the call.
///
/// Runs on the client's background thread (after `rrpc_client_start`) or inside
/// `rrpc_client_yield` on the caller's thread. It must not call
/// `rrpc_client_stop`, `rrpc_client_free`, `rrpc_client_yield`, or replace
/// itself with `rrpc_client_set_request_callback` (they fail with
/// RRPC_STATUS_WRONG_STATE); `rrpc_client_reply` and the other functions are
/// fine. While it runs, no other request of this client is handled: answer
/// quickly, or keep the token and answer from another thread.
pub type rrpc_client_request_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        client: *mut rrpc_client,
        request: *const rrpc_request,
    ),
>;

impl Castable for Client {
    type C = rrpc_client;
    const NAME: &'static str = "client";
}

/// Fills `out_config` with the defaults (see each field of `rrpc_client_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_config_init(
    out_config: *mut rrpc_client_config,
    config_size: usize,
) -> rrpc_status {
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_client_config_init",
            out_config,
            config_size,
            "out_config",
        )
    }
}

/// Creates a client. It does not connect yet: register devices and a callback,
/// then call `rrpc_client_start` (background thread) or `rrpc_client_yield`
/// (your thread).
///
/// @param[in]  config     settings; strings are copied.
/// @param[out] out_client receives the new client, owned by the caller: release
///                        it with `rrpc_client_free`. Written only on success.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `config`, `config->mqtt`, `config->mqtt->host`
///                                      or `out_client` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE      a `struct_size` is not one this library knows.
/// @retval RRPC_STATUS_INVALID_UTF8     a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_ARGUMENT a value is out of range (message says which).
/// @retval RRPC_STATUS_TLS              the TLS settings cannot be used.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_new(
    config: *const rrpc_client_config,
    out_client: *mut *mut rrpc_client,
) -> rrpc_status {
    // SAFETY: pointer contracts documented above.
    unsafe { new_handle("rrpc_client_new", config, out_client, new_client) }
}

/// Stops the client (as `rrpc_client_stop`) and releases it. After it returns no
/// callback of this client is running or will run, and `client` is invalid.
/// NULL is accepted and does nothing.
///
/// @param[in] client the client, or NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_WRONG_STATE called from inside a callback of any client;
///         nothing was released.
///
/// Call it once, when no other thread uses the client any more (deferred replies
/// included); from any thread except a callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_free(client: *mut rrpc_client) -> rrpc_status {
    // stop() joins the client's thread: no callback runs after it.
    free_handle("rrpc_client_free", client, |c: &Client| Ok(c.stop()?))
}

/// Registers a device on the client and subscribes its request topic (at once
/// when connected, and again after every reconnect). Several devices, of any
/// dialects, may share one client. Works before and after start.
///
/// @param[in] client       the client.
/// @param[in] dialect      the device's dialect.
/// @param[in] product_key  product key (Tencent: product id): 1-128 bytes, no
///                         `+ # /`, NUL or control characters.
/// @param[in] device_name  device name, same rules.
/// @param[in] custom_topic for RRPC_DIALECT_ALIBABA_CUSTOM the custom topic,
///                         starting with '/', e.g. "/a1b2/dev1/user/update";
///                         NULL for other dialects.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `client`, `product_key` or `device_name` is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8     a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `dialect` is not a dialect.
/// @retval RRPC_STATUS_INVALID_IDENTITY an identity part breaks the rules above.
/// @retval RRPC_STATUS_ALREADY_EXISTS   the device is already registered.
/// @retval RRPC_STATUS_BUSY             connected, but the subscribe could not be
///                                      queued; nothing changed, retry.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_add_device(
    client: *mut rrpc_client,
    dialect: rrpc_dialect_raw,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> rrpc_status {
    device_call(
        "rrpc_client_add_device",
        client,
        dialect,
        product_key,
        device_name,
        custom_topic,
        |c: &Client, d, id| c.add_device(d, id),
    )
}

/// Unregisters a device and unsubscribes its topic. Its pending requests are
/// cancelled: replies to them fail with RRPC_STATUS_DEVICE_REMOVED.
///
/// @param[in] client       the client.
/// @param[in] dialect      as given to `rrpc_client_add_device`.
/// @param[in] product_key  as given to `rrpc_client_add_device`.
/// @param[in] device_name  as given to `rrpc_client_add_device`.
/// @param[in] custom_topic as given to `rrpc_client_add_device`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NOT_FOUND the device is not registered.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_INVALID_UTF8, RRPC_STATUS_INVALID_ARGUMENT
///         as for `rrpc_client_add_device`.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_remove_device(
    client: *mut rrpc_client,
    dialect: rrpc_dialect_raw,
    product_key: *const c_char,
    device_name: *const c_char,
    custom_topic: *const c_char,
) -> rrpc_status {
    device_call(
        "rrpc_client_remove_device",
        client,
        dialect,
        product_key,
        device_name,
        custom_topic,
        |c: &Client, d, id| c.remove_device(d, id),
    )
}

/// Sets the request callback (NULL removes it; requests then expire unanswered).
/// One callback serves every device of the client; `request` tells which.
///
/// When it returns, the callback it replaced is not running on any other thread
/// (a call in progress is waited for) and will not run again, so its
/// `user_data` may be freed at once.
///
/// @param[in] client    the client.
/// @param[in] callback  the callback, or NULL.
/// @param[in] user_data handed to every callback call; the library never touches
///                      it. It must stay valid until the callback is replaced or
///                      the client freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `client` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the callback it would
///                                  replace; nothing changed.
///
/// Do not call it while holding a lock the callback takes: it waits for the
/// callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_set_request_callback(
    client: *mut rrpc_client,
    callback: rrpc_client_request_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    let user_data = SendPtr(user_data);
    let client_ptr = SendPtr(client.cast());
    boundary("rrpc_client_set_request_callback", move || {
        let c = Client::borrow(client)?;
        let handler = callback.map(|cb| {
            Box::new(move |req: &Request<'_>| {
                let (ud, cp) = (user_data, client_ptr);
                let view = request_view(req);
                // SAFETY: the application registered `cb` for this signature;
                // `view` and its strings live until this call returns.
                unsafe { cb(ud.get(), cp.get().cast(), &view) }
            }) as Box<crate::client::Handler>
        });
        Ok(c.set_handler(handler)?)
    })
}

/// Sets the connection callback (NULL removes it): connected, disconnected (with
/// the cause and the reason), reconnecting (with the delay before the next
/// attempt). While a callback is set, connection changes are logged at info
/// rather than warn. It is released as `rrpc_client_set_request_callback`
/// releases the request callback.
///
/// @param[in] client    the client.
/// @param[in] callback  the callback, or NULL.
/// @param[in] user_data handed to every call; it must stay valid until the
///                      callback is replaced or the client freed.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `client` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from inside the callback it would
///                                  replace; nothing changed.
///
/// Set it before `rrpc_client_start` to see the first connection.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_set_connection_callback(
    client: *mut rrpc_client,
    callback: rrpc_connection_cb,
    user_data: *mut c_void,
) -> rrpc_status {
    boundary("rrpc_client_set_connection_callback", || {
        let c = Client::borrow(client)?;
        Ok(c.set_connection_listener(connection_listener(callback, user_data))?)
    })
}

/// Thread mode: starts the background thread that connects, subscribes every
/// registered device, reconnects with capped backoff, and calls the callback.
/// With `connect_timeout_ms` > 0 it waits for the first connection and for the
/// broker to acknowledge the device subscriptions, so that requests published
/// after it returns reach the callback; if the first attempt fails (refused, unreachable, timed out), it returns
/// RRPC_STATUS_CONNECT_FAILED with the reason and leaves nothing running. With 0
/// it returns at once and connects in the background.
///
/// @param[in] client the client.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER   `client` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE    already started, or called from a callback.
/// @retval RRPC_STATUS_CONNECT_FAILED the first connection failed (see above).
///
/// Not from a callback, and not concurrently with start, stop, yield or free
/// on the same client.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_start(client: *mut rrpc_client) -> rrpc_status {
    boundary("rrpc_client_start", || {
        Client::borrow(client)?.start()?;
        Ok(())
    })
}

/// Disconnects and, in thread mode, ends the background thread. Replies already
/// accepted (`rrpc_client_reply` returned OK) are sent first, then the retained
/// `offline` presence (presence on) and MQTT DISCONNECT, so a reply made just
/// before stopping is not lost. When it returns, no callback of this client is
/// running. Pending requests stay until they expire. A stopped client may be
/// started (or yielded) again; it reconnects. Stopping a client that is not
/// running is not an error.
///
/// @param[in] client the client.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `client` is NULL.
/// @retval RRPC_STATUS_WRONG_STATE  called from a callback.
///
/// Not from a callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_stop(client: *mut rrpc_client) -> rrpc_status {
    boundary("rrpc_client_stop", || {
        Client::borrow(client)?.stop()?;
        Ok(())
    })
}

/// Yield mode (for single-threaded firmware): does the client's network work and
/// calls the callback on the calling thread for `timeout_ms` milliseconds, then
/// returns. 0 handles only what is ready now. The first call connects; call it
/// at least every keep-alive period to keep the connection. Replies given
/// outside a callback are sent during the next call.
///
/// @param[in] client     the client.
/// @param[in] timeout_ms how long to run.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER   `client` is NULL.
/// @retval RRPC_STATUS_CONNECT_FAILED connecting failed during this call and the
///         client is not connected; the next call tries again after the
///         reconnect delay.
/// @retval RRPC_STATUS_WRONG_STATE    the client runs in thread mode, another
///         thread is inside yield/start/stop, or called from a callback.
///
/// One thread at a time; not from a callback.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_yield(client: *mut rrpc_client, timeout_ms: u32) -> rrpc_status {
    boundary("rrpc_client_yield", || {
        Client::borrow(client)?.yield_for(timeout_ms)?;
        Ok(())
    })
}

/// Answers the request `token` with `payload` (QoS 0, on the response topic of
/// the request's dialect). Works inside the callback and later from any thread.
/// Each request takes exactly one reply.
///
/// @param[in] client      the client the request came through.
/// @param[in] token       `rrpc_request.token`.
/// @param[in] payload     reply bytes, copied before return; may be NULL when
///                        `payload_len` is 0 (an empty reply).
/// @param[in] payload_len reply length in bytes.
/// @retval RRPC_STATUS_OK               queued for sending; the request is finished.
/// @retval RRPC_STATUS_NULL_POINTER     `client` is NULL, or `payload` is NULL with a length.
/// @retval RRPC_STATUS_UNKNOWN_TOKEN    not a token of this client.
/// @retval RRPC_STATUS_ALREADY_REPLIED  answered before; nothing sent.
/// @retval RRPC_STATUS_EXPIRED          the deadline passed; nothing sent.
/// @retval RRPC_STATUS_DEVICE_REMOVED   the device was removed; nothing sent.
/// @retval RRPC_STATUS_PAYLOAD_TOO_LARGE larger than `max_payload`; token still valid.
/// @retval RRPC_STATUS_NOT_CONNECTED    no connection now; token still valid.
/// @retval RRPC_STATUS_BUSY             outgoing queue full; token still valid.
///
/// In yield mode the reply leaves during the next `rrpc_client_yield` (or
/// immediately when called from the callback).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_reply(
    client: *mut rrpc_client,
    token: u64,
    payload: *const u8,
    payload_len: usize,
) -> rrpc_status {
    boundary("rrpc_client_reply", || {
        let c = Client::borrow(client)?;
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        c.reply(token, bytes)?;
        Ok(())
    })
}

/// `rrpc_client_reply` with a status code, for the dialects whose reply topic
/// carries one (`{status}`: RRPC_DIALECT_AZURE, `$iothub/methods/res/{status}/?$rid={id}`,
/// and registered dialects that have it). Other dialects send no status and
/// ignore it: the reply is the one `rrpc_client_reply` sends. `rrpc_client_reply`
/// is this function with status 200.
///
/// @param[in] client      the client the request came through.
/// @param[in] token       `rrpc_request.token`.
/// @param[in] status      the status code, 100 to 599 (such as 404).
/// @param[in] payload     reply bytes, copied before return; may be NULL when
///                        `payload_len` is 0.
/// @param[in] payload_len reply length in bytes.
/// @retval RRPC_STATUS_OK               queued for sending; the request is finished.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `status` is not from 100 to 599; the token
///                                      stays valid.
/// @retval RRPC_STATUS_NULL_POINTER, RRPC_STATUS_UNKNOWN_TOKEN, RRPC_STATUS_ALREADY_REPLIED,
///         RRPC_STATUS_EXPIRED, RRPC_STATUS_DEVICE_REMOVED, RRPC_STATUS_PAYLOAD_TOO_LARGE,
///         RRPC_STATUS_NOT_CONNECTED, RRPC_STATUS_BUSY  as for `rrpc_client_reply`.
///
/// Since 1.1.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_reply_status(
    client: *mut rrpc_client,
    token: u64,
    status: u32,
    payload: *const u8,
    payload_len: usize,
) -> rrpc_status {
    boundary("rrpc_client_reply_status", || {
        let c = Client::borrow(client)?;
        let status = reply_status_arg(status)?;
        // SAFETY: `payload_len` readable bytes per the documented contract.
        let bytes = unsafe { arg_bytes(payload, payload_len, "payload") }?;
        c.reply_with_status(token, Some(status), bytes)?;
        Ok(())
    })
}

/// Tells whether the client is connected to the broker right now.
///
/// @param[in]  client        the client.
/// @param[out] out_connected receives true when connected.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `client` or `out_connected` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_is_connected(
    client: *const rrpc_client,
    out_connected: *mut rrpc_bool,
) -> rrpc_status {
    boundary("rrpc_client_is_connected", || {
        let c = Client::borrow(client)?;
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_connected, "out_connected") }?;
        *out = u8::from(c.is_connected());
        Ok(())
    })
}

/// Reads the client's counters.
///
/// @param[in]  client     the client.
/// @param[out] out_stats  receives the counters: as many as `stats_size` holds
///                        (the rest of it is zeroed).
/// @param[in]  stats_size `sizeof *out_stats`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `client` or `out_stats` is NULL.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_get_stats(
    client: *const rrpc_client,
    out_stats: *mut ClientStats,
    stats_size: usize,
) -> rrpc_status {
    // SAFETY: `stats_size` writable bytes per the documented contract.
    unsafe {
        get_stats(
            "rrpc_client_get_stats",
            client,
            out_stats,
            stats_size,
            Client::stats,
        )
    }
}

/// Copies the MQTT client id into `buf` (NUL-terminated). Before the first
/// start/yield a derived id is not known yet: the result is then empty.
///
/// @param[in]  client  the client.
/// @param[out] buf     destination, or NULL to learn the length.
/// @param[in]  size    size of `buf` in bytes.
/// @param[out] out_len receives the id's length without the NUL; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `client` is NULL.
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or too small (`out_len` set).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_client_get_client_id(
    client: *const rrpc_client,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    // SAFETY: `buf` has `size` writable bytes per the documented contract.
    unsafe {
        get_string(
            "rrpc_client_get_client_id",
            client,
            buf,
            size,
            out_len,
            |c: &Client| c.client_id().unwrap_or_default(),
        )
    }
}
