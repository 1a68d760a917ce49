//! What the client and the caller share in C: how to reach the broker
//! (`rrpc_mqtt_config`, which both configs point to) and the connection events
//! of the session engine (`rrpc_connection_event`).

use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;

use super::args::{arg_flag, arg_opt_string, arg_str, SendPtr};
use super::family::settings_init;
use super::misc::rrpc_bool;
use super::signed::{field_str, rrpc_credentials, wipe};
use super::sized::{read_settings, settings};
use super::status::{rrpc_status, Failure};
use crate::session::{ConnectionEvent, DisconnectCause, Listener, MqttConfig, MqttVersion, Signer};
use crate::tls::TlsConfig;

/// How to reach and log in to the MQTT broker, for `rrpc_client_config.mqtt`
/// and `rrpc_caller_config.mqtt` (a pointer, so that this struct and those
/// grow each on its own). Fill it with `rrpc_mqtt_config_init`. Strings are
/// copied by the `_new` function; they only need to live until it returns.
#[repr(C)]
pub struct rrpc_mqtt_config {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_mqtt_config_init`.
    pub struct_size: u32,
    /// Broker host name or IP address. Required.
    pub host: *const c_char,
    /// Broker TCP port. Default 1883.
    pub port: u16,
    /// MQTT keep-alive in seconds (0 disables). Default 60.
    pub keep_alive_s: u16,
    /// MQTT clean-session flag: true (default) or false; false needs `client_id`.
    pub clean_session: rrpc_bool,
    /// MQTT client id, or NULL (default) for one the library derives: the
    /// client's "rrpc" + 16 random hex digits, the
    /// caller's "rrpccaller" + 16 random hex digits. 1 to 256 bytes without
    /// `+`, `#`, `/` or control characters, else RRPC_STATUS_INVALID_ARGUMENT
    /// with the reason.
    pub client_id: *const c_char,
    /// MQTT user name, or NULL (default) for none.
    pub username: *const c_char,
    /// MQTT password, or NULL (default) for none. Used only with `username`;
    /// never logged.
    pub password: *const c_char,
    /// How long the first connection may take, in ms: `rrpc_client_start` and
    /// `rrpc_caller_new` wait this long (see each); also bounds each TCP connect
    /// attempt. Default 5000.
    pub connect_timeout_ms: u32,
    /// First reconnect delay in ms, doubled after each failed attempt. Default 100.
    pub reconnect_min_ms: u32,
    /// Largest reconnect delay in ms; each delay gets +-25% jitter. Default 10000.
    pub reconnect_max_ms: u32,
    /// Connect over TLS (rustls, verified): true, or false (default). The tls_*
    /// fields below apply only with it; setting one without `tls` is refused.
    pub tls: rrpc_bool,
    /// PEM file of the CA certificates that verify the broker, or NULL (default)
    /// for the operating system's CA store.
    pub tls_ca_file: *const c_char,
    /// The name the broker's certificate must be valid for when it differs from
    /// `host` (for example when `host` is an IP address), or NULL (default). The
    /// SNI sent is still `host`.
    pub tls_server_name: *const c_char,
    /// PEM file of the client certificate chain for mutual TLS, or NULL
    /// (default). Needs `tls_key_file`.
    pub tls_cert_file: *const c_char,
    /// PEM file of the private key of `tls_cert_file` (PKCS#8, PKCS#1 or SEC1),
    /// or NULL (default). It must match the certificate.
    pub tls_key_file: *const c_char,
    /// ALPN protocols to offer, comma separated ("mqtt" for brokers on port
    /// 443), or NULL (default) for none.
    pub tls_alpn: *const c_char,
    /// Accept any broker certificate: verification OFF when true; false
    /// (default) verifies. For test benches only: anyone on the path can then
    /// read and change the traffic; every connect logs a warning.
    pub tls_insecure_skip_verify: rrpc_bool,
    /// Signs the user name and password again before every connection attempt,
    /// for cloud signatures that expire (Tencent IoT Hub's), or NULL (default).
    /// See `rrpc_mqtt_sign_cb`. What it writes replaces `username` and `password`,
    /// which are used only while it fails.
    pub sign: rrpc_mqtt_sign_cb,
    /// Handed to `sign` as is; never dereferenced. Must stay valid until the
    /// client or caller is freed.
    pub sign_user_data: *mut c_void,
    /// MQTT protocol version: RRPC_MQTT_V311 (4, the default) or RRPC_MQTT_V5
    /// (5: No Local on custom-topic request subscriptions, reason codes in
    /// connection errors, session expiry, the maximum packet size announced to
    /// the broker), the protocol levels that Paho's `MQTTVERSION_3_1_1` and
    /// `MQTTVERSION_5` also use. Other values are refused with
    /// RRPC_STATUS_INVALID_ARGUMENT. MQTT 5 needs `keep_alive_s` of at least 5.
    pub mqtt_version: rrpc_mqtt_version_raw,
    /// MQTT 5 with `clean_session` false only: how long the broker keeps the
    /// session after the connection ends, in seconds (UINT32_MAX: never
    /// expires). 0 (default) means 3600. Any other value with MQTT 3.1.1 or a
    /// clean session is refused with RRPC_STATUS_INVALID_ARGUMENT.
    pub session_expiry_s: u32,
    /// Largest MQTT packet read from the broker, in bytes; 0 (default) means
    /// 1 MiB, at most 268435455, never less than the payload limit + 64 KiB.
    /// A message over the payload limit but within this one is dropped and
    /// counted (`oversize`) with the connection kept. A larger one is refused
    /// by the broker on MQTT 5 (this is announced as the Maximum Packet Size);
    /// on MQTT 3.1.1 it ends the connection. At most one such packet is held
    /// in memory at a time.
    pub max_incoming_packet: u32,
}

settings!(rrpc_mqtt_config {
    struct_size,
    host,
    port,
    keep_alive_s,
    clean_session,
    client_id,
    username,
    password,
    connect_timeout_ms,
    reconnect_min_ms,
    reconnect_max_ms,
    tls,
    tls_ca_file,
    tls_server_name,
    tls_cert_file,
    tls_key_file,
    tls_alpn,
    tls_insecure_skip_verify,
    sign,
    sign_user_data,
    mqtt_version,
    session_expiry_s,
    max_incoming_packet,
} defaults [
    d = MqttConfig::new("", 1883),
] {
    port: d.port,
    keep_alive_s: d.keep_alive_s,
    clean_session: u8::from(d.clean_session),
    connect_timeout_ms: d.connect_timeout_ms,
    reconnect_min_ms: d.reconnect_min_ms,
    reconnect_max_ms: d.reconnect_max_ms,
    mqtt_version: u32::from(d.protocol.number()),
    session_expiry_s: d.session_expiry_s,
    max_incoming_packet: d.max_incoming_packet,
});

/// MQTT protocol versions, by their protocol level (`rrpc_mqtt_config.mqtt_version`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_mqtt_version {
    /// MQTT 3.1.1.
    RRPC_MQTT_V311 = 4,
    /// MQTT 5.
    RRPC_MQTT_V5 = 5,
}

/// An `rrpc_mqtt_version` as C passes it.
pub type rrpc_mqtt_version_raw = u32;

/// Writes the user name and password of the next connection attempt. The
/// library passes the Unix time in ms and a zeroed `rrpc_credentials`; the
/// callback fills `username` and `password` (for example with
/// `rrpc_credentials_tencent`, an expiry some time after `unix_ms` and a fresh
/// connection id) and returns 0. Its other fields are ignored: the client id and
/// the broker stay the config's. A non-zero return, or a user name that is empty
/// or a field that is not NUL-terminated UTF-8, is logged as a warning and the
/// attempt uses the last credentials. The library wipes the struct after reading
/// it.
///
/// Runs before each attempt on the thread that drives the connection (the
/// client's background thread or `rrpc_client_yield`; the caller's thread or one
/// waiting in `rrpc_caller_call`), with no library lock held. It must not stop,
/// free or yield its object (they fail with RRPC_STATUS_WRONG_STATE).
pub type rrpc_mqtt_sign_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        unix_ms: u64,
        out_credentials: *mut rrpc_credentials,
    ) -> i32,
>;

/// The kinds of `rrpc_connection_event`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_connection_state {
    /// The broker accepted the connection (the first one or a reconnect); the
    /// library subscribes everything it needs again right after.
    RRPC_CONNECTION_CONNECTED = 0,
    /// The connection is down; `cause` and `reason` say why.
    RRPC_CONNECTION_DISCONNECTED = 1,
    /// The next attempt starts in `delay_ms` (capped exponential backoff with
    /// jitter); `attempt` counts the attempts since the last connection.
    RRPC_CONNECTION_RECONNECTING = 2,
}

/// Why a connection is down (`rrpc_connection_event.cause`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_disconnect_cause {
    /// Not a RRPC_CONNECTION_DISCONNECTED event.
    RRPC_DISCONNECT_NONE = 0,
    /// A connection that was up dropped (network error, broker closed it,
    /// keep-alive timed out).
    RRPC_DISCONNECT_LOST = 1,
    /// An attempt to connect failed (unreachable, refused, timed out).
    RRPC_DISCONNECT_CONNECT_FAILED = 2,
    /// The application stopped the connection (stop, free).
    RRPC_DISCONNECT_STOPPED = 3,
}

/// An `rrpc_connection_state` as the library writes it.
pub type rrpc_connection_state_raw = u32;
/// An `rrpc_disconnect_cause` as the library writes it.
pub type rrpc_disconnect_cause_raw = u32;

/// A change of a client's or caller's connection. Pointers are owned by the
/// library and valid only during the callback. Later 1.x releases may append
/// fields: see `RRPC_HAS_FIELD`.
#[repr(C)]
pub struct rrpc_connection_event {
    /// `sizeof(rrpc_connection_event)` of the library that made it.
    pub struct_size: u32,
    /// What happened.
    pub state: rrpc_connection_state_raw,
    /// DISCONNECTED: why; RRPC_DISCONNECT_NONE otherwise.
    pub cause: rrpc_disconnect_cause_raw,
    /// DISCONNECTED: the reason in words (such as "Connection refused (os error
    /// 111)"), NUL-terminated; NULL otherwise.
    pub reason: *const c_char,
    /// RECONNECTING: milliseconds until the next attempt; 0 otherwise.
    pub delay_ms: u64,
    /// RECONNECTING: attempts since the last connection (1 for the first
    /// retry); 0 otherwise.
    pub attempt: u32,
}

/// Receives connection events. Runs on the thread that drives the connection
/// (the client's background thread or `rrpc_client_yield`; the caller's
/// thread or one waiting in `rrpc_caller_call`), without any library lock held.
/// It must not replace itself, stop or free its object (they fail with
/// RRPC_STATUS_WRONG_STATE).
pub type rrpc_connection_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rrpc_connection_event)>;

/// Fills `out_config` with the defaults (see each field of `rrpc_mqtt_config`).
///
/// @param[out] out_config  the struct to fill.
/// @param[in]  config_size `sizeof *out_config`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_config` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `config_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_mqtt_config_init(
    out_config: *mut rrpc_mqtt_config,
    config_size: usize,
) -> rrpc_status {
    // SAFETY: `config_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_mqtt_config_init",
            out_config,
            config_size,
            "out_config",
        )
    }
}

/// The Rust config of the C `rrpc_mqtt_config` at `p` (checked later by the
/// owner); `name` is how the messages name it (`config->mqtt`).
///
/// # Safety
/// `p` must be NULL or point to an `rrpc_mqtt_config` of `struct_size` bytes
/// whose strings are NUL-terminated (or NULL).
pub(crate) unsafe fn mqtt_config(p: *const rrpc_mqtt_config) -> Result<MqttConfig, Failure> {
    // SAFETY: forwarded contract.
    let c = &unsafe { read_settings(p, "config->mqtt") }?;
    // SAFETY: NUL-terminated strings (or NULL) per the documented contract.
    let mut m = MqttConfig::new(unsafe { arg_str(c.host, "config->mqtt->host") }?, c.port);
    m.client_id = unsafe { arg_opt_string(c.client_id, "config->mqtt->client_id") }?;
    m.username = unsafe { arg_opt_string(c.username, "config->mqtt->username") }?;
    m.password = unsafe { arg_opt_string(c.password, "config->mqtt->password") }?;
    m.keep_alive_s = c.keep_alive_s;
    m.clean_session = arg_flag(c.clean_session, "config->mqtt->clean_session")?;
    m.connect_timeout_ms = c.connect_timeout_ms;
    m.reconnect_min_ms = c.reconnect_min_ms;
    m.reconnect_max_ms = c.reconnect_max_ms;
    m.tls = tls_config(c)?;
    m.signer = c.sign.map(|cb| c_signer(cb, SendPtr(c.sign_user_data)));
    m.protocol = u8::try_from(c.mqtt_version)
        .ok()
        .and_then(MqttVersion::from_number)
        .ok_or_else(|| {
            Failure::new(
                rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
                format!(
                    "config->mqtt->mqtt_version must be RRPC_MQTT_V311 (4) or RRPC_MQTT_V5 (5), not {}",
                    c.mqtt_version
                ),
            )
        })?;
    m.session_expiry_s = c.session_expiry_s;
    m.max_incoming_packet = c.max_incoming_packet;
    Ok(m)
}

/// A [`Signer`] that asks the application's `rrpc_mqtt_sign_cb`.
fn c_signer(
    cb: unsafe extern "C" fn(*mut c_void, u64, *mut rrpc_credentials) -> i32,
    ud: SendPtr,
) -> std::sync::Arc<Signer> {
    std::sync::Arc::new(move |unix_ms: u64| {
        let ud = ud;
        // SAFETY: all zero bytes are a valid `rrpc_credentials`.
        let mut creds: Box<rrpc_credentials> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: the application registered `cb` for this signature; `creds` is a
        // valid, writable struct for the duration of the call.
        let rc = unsafe { cb(ud.get(), unix_ms, &mut *creds) };
        let signed = if rc != 0 {
            Err(format!("the sign callback returned {rc}"))
        } else {
            match (field_str(&creds.username), field_str(&creds.password)) {
                (Some(user), Some(password)) if !user.is_empty() => {
                    Ok((user.to_string(), password.to_string()))
                }
                (Some(""), Some(_)) => Err("the sign callback wrote an empty user name".into()),
                _ => Err(
                    "the sign callback wrote a user name or password that is not NUL-terminated UTF-8"
                        .into(),
                ),
            }
        };
        wipe(&mut creds);
        signed
    })
}

/// The TLS part of a C `rrpc_mqtt_config`: `None` without `tls`, where any
/// tls_* field set is a mistake worth refusing (it would silently go unused).
fn tls_config(c: &rrpc_mqtt_config) -> Result<Option<TlsConfig>, Failure> {
    // SAFETY: NUL-terminated strings (or NULL) per the documented contract.
    let (ca, name, cert, key, alpn) = unsafe {
        (
            arg_opt_string(c.tls_ca_file, "config->mqtt->tls_ca_file")?,
            arg_opt_string(c.tls_server_name, "config->mqtt->tls_server_name")?,
            arg_opt_string(c.tls_cert_file, "config->mqtt->tls_cert_file")?,
            arg_opt_string(c.tls_key_file, "config->mqtt->tls_key_file")?,
            arg_opt_string(c.tls_alpn, "config->mqtt->tls_alpn")?,
        )
    };
    let insecure = arg_flag(
        c.tls_insecure_skip_verify,
        "config->mqtt->tls_insecure_skip_verify",
    )?;
    if !arg_flag(c.tls, "config->mqtt->tls")? {
        let set = [
            ("tls_ca_file", ca.is_some()),
            ("tls_server_name", name.is_some()),
            ("tls_cert_file", cert.is_some()),
            ("tls_key_file", key.is_some()),
            ("tls_alpn", alpn.is_some()),
            ("tls_insecure_skip_verify", insecure),
        ];
        return match set.iter().find(|(_, on)| *on) {
            Some((field, _)) => Err(Failure::new(
                rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
                format!("config->mqtt->{field} is set but config->mqtt->tls is false"),
            )),
            None => Ok(None),
        };
    }
    Ok(Some(TlsConfig {
        ca_file: ca.map(PathBuf::from),
        server_name: name,
        cert_file: cert.map(PathBuf::from),
        key_file: key.map(PathBuf::from),
        alpn: alpn
            .map(|a| {
                a.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        insecure_skip_verify: insecure,
    }))
}

/// A connection listener that hands each event to a C callback.
pub(crate) fn connection_listener(
    callback: rrpc_connection_cb,
    user_data: *mut c_void,
) -> Option<Box<Listener>> {
    let ud = SendPtr(user_data);
    callback.map(|cb| {
        Box::new(move |e: &ConnectionEvent| {
            let ud = ud;
            let mut reason = None;
            let mut ev = rrpc_connection_event {
                struct_size: std::mem::size_of::<rrpc_connection_event>() as u32,
                state: 0,
                cause: rrpc_disconnect_cause::RRPC_DISCONNECT_NONE as u32,
                reason: std::ptr::null(),
                delay_ms: 0,
                attempt: 0,
            };
            match e {
                ConnectionEvent::Connected => {
                    ev.state = rrpc_connection_state::RRPC_CONNECTION_CONNECTED as u32;
                }
                ConnectionEvent::Disconnected { cause, reason: r } => {
                    ev.state = rrpc_connection_state::RRPC_CONNECTION_DISCONNECTED as u32;
                    ev.cause = match cause {
                        DisconnectCause::Lost => rrpc_disconnect_cause::RRPC_DISCONNECT_LOST,
                        DisconnectCause::ConnectFailed => {
                            rrpc_disconnect_cause::RRPC_DISCONNECT_CONNECT_FAILED
                        }
                        DisconnectCause::Stopped => rrpc_disconnect_cause::RRPC_DISCONNECT_STOPPED,
                    } as u32;
                    let c = reason.insert(CString::new(r.replace('\0', " ")).unwrap_or_default());
                    ev.reason = c.as_ptr();
                }
                ConnectionEvent::Reconnecting { delay_ms, attempt } => {
                    ev.state = rrpc_connection_state::RRPC_CONNECTION_RECONNECTING as u32;
                    ev.delay_ms = *delay_ms;
                    ev.attempt = *attempt;
                }
            }
            // SAFETY: the application registered `cb` for this signature; `ev` and
            // its reason live until it returns.
            unsafe { cb(ud.get(), &ev) };
        }) as Box<Listener>
    })
}

/// The presence of the client's and the caller's configs: none when the flag
/// `config->presence` is false, else the topics of the optional C prefixes
/// (NULL: the defaults).
pub(crate) fn presence_arg(
    presence: rrpc_bool,
    device: *const c_char,
    connection: *const c_char,
) -> Result<Option<crate::presence::PresenceTopics>, Failure> {
    if !arg_flag(presence, "config->presence")? {
        return Ok(None);
    }
    let mut p = crate::presence::PresenceTopics::default();
    // SAFETY: NUL-terminated strings per the documented contract.
    if let Some(d) = unsafe { arg_opt_string(device, "config->presence_prefix") }? {
        p.device_prefix = d;
    }
    if let Some(c) = unsafe { arg_opt_string(connection, "config->connection_prefix") }? {
        p.connection_prefix = c;
    }
    p.validate().map_err(|e| {
        Failure::new(
            super::rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
            e.to_string(),
        )
    })?;
    Ok(Some(p))
}
