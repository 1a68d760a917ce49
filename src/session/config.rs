//! How to reach and log in to the broker ([`MqttConfig`]), the protocol version
//! ([`MqttVersion`]), and the rules every value is checked against before
//! rumqttc sees it (client ids, packet limits, reconnect delays, MQTT 5 options).

use std::fmt;
use std::sync::Arc;

use crate::tls::{self, TlsConfig, TlsError};

/// Room for a topic and the MQTT headers on top of a payload limit.
pub(super) const PACKET_OVERHEAD: usize = 64 * 1024 + 16;
/// The incoming packet limit when [`MqttConfig::max_incoming_packet`] is 0
/// (and the owner's payload limit is smaller): 1 MiB.
pub const DEFAULT_MAX_INCOMING_PACKET: u32 = 1024 * 1024;
/// The largest [`MqttConfig::max_incoming_packet`]: MQTT's own limit on a
/// packet's remaining length (256 MiB - 1).
pub const MAX_INCOMING_PACKET: u32 = 268_435_455;
/// The longest client id accepted, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 256;
/// MQTT 5 session expiry, in seconds, of a session kept with
/// `clean_session = false` when [`MqttConfig::session_expiry_s`] is 0.
pub(crate) const DEFAULT_SESSION_EXPIRY_S: u32 = 3600;
/// rumqttc's MQTT 5 client pings at least every this many seconds; it cannot
/// turn keep-alive off.
const MIN_KEEP_ALIVE_V5_S: u16 = 5;

/// The MQTT protocol version of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4), the default.
    #[default]
    V311,
    /// MQTT 5.
    V5,
}

impl MqttVersion {
    /// The version by its protocol level, as C (`RRPC_MQTT_V311`, Paho's
    /// `MQTTVERSION_3_1_1`) and command lines give it: 4 (MQTT 3.1.1) or 5.
    pub fn from_number(n: u8) -> Option<MqttVersion> {
        match n {
            4 => Some(MqttVersion::V311),
            5 => Some(MqttVersion::V5),
            _ => None,
        }
    }

    /// The protocol level: 4 or 5, as [`MqttVersion::from_number`] takes it.
    pub fn number(self) -> u8 {
        match self {
            MqttVersion::V311 => 4,
            MqttVersion::V5 => 5,
        }
    }

    /// Whether this library can speak it (MQTT 5 needs the cargo feature `mqtt5`).
    pub fn is_built(self) -> bool {
        self == MqttVersion::V311 || cfg!(feature = "mqtt5")
    }
}

/// A checked TLS transport, as [`MqttConfig::tls_transport`] makes it.
pub(crate) type TlsTransport = tls::Transport;

/// How to reach and log in to the MQTT broker. [`MqttConfig::new`] fills in
/// the defaults.
#[derive(Clone)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// MQTT client id; `None` lets the owner derive one. 1 to
    /// [`MAX_CLIENT_ID_LEN`] bytes, without `+`, `#`, `/`, NUL or control
    /// characters (it is a level of the presence connection topic).
    pub client_id: Option<String>,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password, sent only with a user name. Never logged, never in `Debug`.
    pub password: Option<String>,
    /// MQTT keep-alive in seconds; 0 disables it.
    pub keep_alive_s: u16,
    /// MQTT clean-session flag (MQTT 5: clean start). `false` requires an
    /// explicit `client_id`.
    pub clean_session: bool,
    /// MQTT 3.1.1 (default) or MQTT 5.
    pub protocol: MqttVersion,
    /// MQTT 5 only, with `clean_session = false`: how long the broker keeps the
    /// session after the connection ends, in seconds (`u32::MAX`: never
    /// expires). 0 means 3600 (an hour). With `clean_session = true` the
    /// session ends with the connection.
    pub session_expiry_s: u32,
    /// How long the owner waits for its first connection, in ms (see the
    /// client's `start` and the caller's `connect`); also bounds each TCP
    /// connect attempt (rounded up to whole seconds).
    pub connect_timeout_ms: u32,
    /// First reconnect delay in ms; it doubles after each failed attempt...
    pub reconnect_min_ms: u32,
    /// ...up to this cap, in ms, each delay with +-25% jitter.
    pub reconnect_max_ms: u32,
    /// TLS; `None`: plain TCP. See [`TlsConfig`].
    pub tls: Option<TlsConfig>,
    /// Largest MQTT packet read from the broker, in bytes: 0 (the default) means
    /// [`DEFAULT_MAX_INCOMING_PACKET`] (1 MiB); at most [`MAX_INCOMING_PACKET`];
    /// never less than the owner's payload limit plus 64 KiB. A PUBLISH over
    /// the owner's payload limit but within this one is read, dropped and
    /// counted (`ConnStats::oversize`) with the connection kept; one larger
    /// than this is refused by the broker on MQTT 5 (the limit is announced as
    /// the Maximum Packet Size), while on MQTT 3.1.1 it ends the connection
    /// (counted too, and the reason says so). The session holds at most one
    /// incoming packet in memory: this is the most a broker, or anyone who can
    /// publish on a subscribed topic, can make it allocate at once (about twice
    /// this while the read buffer grows).
    pub max_incoming_packet: u32,
    /// Signs the user name and password again before every connection attempt,
    /// for cloud signatures that expire (Tencent IoT Hub's); replaces `username`
    /// and `password`. See [`Signer`].
    pub signer: Option<Arc<Signer>>,
}

/// Makes the (user name, password) of a connection attempt from the Unix time
/// in ms, for example with [`crate::credentials::TencentDevice::sign`] and a fresh
/// connection id. Runs on the session's thread before each attempt; when it fails,
/// the error is logged and the attempt uses the last credentials.
pub type Signer = dyn Fn(u64) -> Result<(String, String), String> + Send + Sync;

impl MqttConfig {
    pub fn new(host: impl Into<String>, port: u16) -> MqttConfig {
        MqttConfig {
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 60,
            clean_session: true,
            protocol: MqttVersion::V311,
            session_expiry_s: 0,
            connect_timeout_ms: 5000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            tls: None,
            max_incoming_packet: 0,
            signer: None,
        }
    }

    /// The rustls configuration of [`MqttConfig::tls`], checked now (files read,
    /// PEM parsed, client key matched with its certificate); `None` for plain TCP.
    pub(crate) fn tls_transport(&self) -> Result<Option<TlsTransport>, TlsError> {
        self.tls.as_ref().map(tls::transport).transpose()
    }

    /// Checks every value before rumqttc sees it (some of its setters assert).
    pub fn validate(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err("host is empty".into());
        }
        if self.port == 0 {
            return Err("port is 0".into());
        }
        if let Some(id) = &self.client_id {
            check_client_id(id)?;
        }
        if self.max_incoming_packet > MAX_INCOMING_PACKET {
            return Err(format!(
                "max_incoming_packet must be at most {MAX_INCOMING_PACKET} (MQTT's own limit), not {}",
                self.max_incoming_packet
            ));
        }
        if !self.clean_session && self.client_id.is_none() {
            return Err(
                "clean_session = false needs an explicit client id, or the session is never found again"
                    .into(),
            );
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(
                "reconnect delays must satisfy 0 < reconnect_min_ms <= reconnect_max_ms".into(),
            );
        }
        if self.session_expiry_s != 0 {
            if self.protocol != MqttVersion::V5 {
                return Err(
                    "session_expiry_s is an MQTT 5 setting: choose MQTT 5, or leave it 0".into(),
                );
            }
            if self.clean_session {
                return Err(
                    "session_expiry_s needs clean_session = false (a clean session ends with its connection)"
                        .into(),
                );
            }
        }
        if self.protocol == MqttVersion::V5 && self.keep_alive_s < MIN_KEEP_ALIVE_V5_S {
            return Err(format!(
                "keep_alive_s must be at least {MIN_KEEP_ALIVE_V5_S} with MQTT 5 (its client cannot turn keep-alive off)"
            ));
        }
        if !self.protocol.is_built() {
            return Err(
                "MQTT 5 is not built into this library (cargo feature `mqtt5`, CMake option RRPC_WITH_MQTT5)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The MQTT 5 session expiry interval to announce, in seconds: `None` for
    /// MQTT 3.1.1 and clean sessions (the session ends with the connection).
    pub fn session_expiry(&self) -> Option<u32> {
        (self.protocol == MqttVersion::V5 && !self.clean_session).then_some(
            match self.session_expiry_s {
                0 => DEFAULT_SESSION_EXPIRY_S,
                s => s,
            },
        )
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The incoming packet limit for an owner whose payloads are at most
    /// `max_payload` bytes (see [`MqttConfig::max_incoming_packet`]).
    pub fn incoming_limit(&self, max_payload: usize) -> usize {
        let configured = match self.max_incoming_packet {
            0 => DEFAULT_MAX_INCOMING_PACKET,
            n => n,
        } as usize;
        configured.max(max_payload.saturating_add(PACKET_OVERHEAD))
    }
}

/// Why `id` cannot be an MQTT client id here, in words: empty or longer than
/// [`MAX_CLIENT_ID_LEN`], or holding `+` or `#` (brokers refuse the CONNECT,
/// so every attempt would fail), `/` (it would split the presence connection
/// topic, so that callers never see the connection go), NUL or a control
/// character.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
        return Err(format!(
            "client id must be 1 to {MAX_CLIENT_ID_LEN} bytes, not {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '+' | '#' | '/') || c.is_control())
    {
        let what = match c {
            '+' | '#' => "an MQTT wildcard",
            '/' => "a topic level separator",
            '\0' => "NUL",
            _ => "a control character",
        };
        return Err(format!(
            "client id {} contains {what} ({:?}); use letters, digits and punctuation other than + # /",
            crate::log::Excerpt(id),
            c
        ));
    }
    Ok(())
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive_s", &self.keep_alive_s)
            .field("clean_session", &self.clean_session)
            .field("protocol", &self.protocol)
            .field("session_expiry_s", &self.session_expiry_s)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("tls", &self.tls)
            .field("max_incoming_packet", &self.max_incoming_packet)
            .field(
                "signer",
                &self.signer.as_ref().map(|_| "<signs each attempt>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_that_would_break_connects_or_presence_are_refused_in_words() {
        let with = |id: &str| MqttConfig {
            client_id: Some(id.into()),
            ..MqttConfig::new("h", 1)
        };
        for (id, want) in [
            ("dev#1", "an MQTT wildcard"),
            ("dev+1", "an MQTT wildcard"),
            ("site/dev", "a topic level separator"),
            ("dev\0x", "NUL"),
            ("dev\n", "a control character"),
            ("dev\u{7f}", "a control character"),
            ("", "1 to 256 bytes"),
        ] {
            let e = with(id).validate().unwrap_err();
            assert!(e.contains(want), "{id:?}: {e}");
        }
        let e = with(&"x".repeat(MAX_CLIENT_ID_LEN + 1))
            .validate()
            .unwrap_err();
        assert!(e.contains("not 257"), "{e}");
        // What real clouds use passes: Alibaba's signed ids, Tencent's, ours.
        for id in [
            "a1Pk&dev|securemode=2,signmethod=hmacsha1,ext=1,_ss=1,lan=Python,_v=1.2.13,timestamp=1700000000|",
            "ABCDEFGHIJdev-01",
            "rrpc0123456789abcdef",
            &"x".repeat(MAX_CLIENT_ID_LEN),
        ] {
            assert_eq!(with(id).validate(), Ok(()), "{id}");
        }
    }

    #[test]
    fn the_incoming_limit_is_bounded_and_covers_the_payload_limit() {
        let mut c = MqttConfig::new("h", 1);
        assert_eq!(c.incoming_limit(1024), DEFAULT_MAX_INCOMING_PACKET as usize);
        assert_eq!(
            c.incoming_limit(4 * 1024 * 1024),
            4 * 1024 * 1024 + PACKET_OVERHEAD
        );
        c.max_incoming_packet = 10 * 1024 * 1024;
        assert_eq!(c.incoming_limit(1024), 10 * 1024 * 1024);
        c.max_incoming_packet = MAX_INCOMING_PACKET;
        assert!(c.validate().is_ok());
        c.max_incoming_packet = MAX_INCOMING_PACKET + 1;
        assert!(c.validate().unwrap_err().contains("max_incoming_packet"));
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let mut c = MqttConfig::new("h", 1);
        c.username = Some("user".into());
        c.password = Some("s3cret-pass".into());
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("user"), "{d}");
    }

    /// A library built without the `tls` feature refuses a TLS configuration with
    /// an error that names the missing feature, before any connection is tried.
    #[test]
    #[cfg(not(feature = "tls"))]
    fn tls_without_the_tls_feature_is_refused_in_words() {
        let cfg = MqttConfig {
            tls: Some(TlsConfig::default()),
            ..MqttConfig::new("127.0.0.1", 8883)
        };
        let e = cfg.tls_transport().err().expect("refused");
        assert!(e.0.contains("cargo feature `tls`"), "{e}");
        assert!(MqttConfig::new("h", 1).tls_transport().unwrap().is_none());
    }

    #[test]
    fn config_is_checked_before_rumqttc_sees_it() {
        let ok = MqttConfig::new("h", 1);
        assert!(ok.validate().is_ok());
        for (c, want) in [
            (
                MqttConfig {
                    host: String::new(),
                    ..ok.clone()
                },
                "host",
            ),
            (
                MqttConfig {
                    port: 0,
                    ..ok.clone()
                },
                "port",
            ),
            (
                MqttConfig {
                    client_id: Some(String::new()),
                    ..ok.clone()
                },
                "client id",
            ),
            (
                MqttConfig {
                    clean_session: false,
                    ..ok.clone()
                },
                "clean_session",
            ),
            (
                MqttConfig {
                    reconnect_min_ms: 0,
                    ..ok.clone()
                },
                "reconnect",
            ),
            (
                MqttConfig {
                    reconnect_min_ms: 10,
                    reconnect_max_ms: 5,
                    ..ok.clone()
                },
                "reconnect",
            ),
            (
                MqttConfig {
                    session_expiry_s: 60,
                    clean_session: false,
                    client_id: Some("id".into()),
                    ..ok.clone()
                },
                "session_expiry_s is an MQTT 5 setting",
            ),
            (
                MqttConfig {
                    session_expiry_s: 60,
                    protocol: MqttVersion::V5,
                    ..ok.clone()
                },
                "needs clean_session = false",
            ),
            (
                MqttConfig {
                    keep_alive_s: 0,
                    protocol: MqttVersion::V5,
                    ..ok.clone()
                },
                "keep_alive_s must be at least 5 with MQTT 5",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    #[cfg(not(feature = "mqtt5"))]
    fn mqtt5_without_its_feature_is_refused_in_words() {
        let c = MqttConfig {
            protocol: MqttVersion::V5,
            ..MqttConfig::new("h", 1)
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("cargo feature `mqtt5`"), "{e}");
        assert!(!MqttVersion::V5.is_built() && MqttVersion::V311.is_built());
    }

    #[test]
    #[cfg(feature = "mqtt5")]
    fn mqtt5_session_expiry_applies_only_to_kept_sessions() {
        let mut c = MqttConfig::new("h", 1);
        assert_eq!(c.session_expiry(), None, "MQTT 3.1.1 has no session expiry");
        c.protocol = MqttVersion::V5;
        assert_eq!(
            c.session_expiry(),
            None,
            "a clean session ends with its connection"
        );
        c.clean_session = false;
        c.client_id = Some("kept".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.session_expiry(), Some(DEFAULT_SESSION_EXPIRY_S));
        c.session_expiry_s = 30;
        assert!(c.validate().is_ok());
        assert_eq!(c.session_expiry(), Some(30));
        assert!(format!("{c:?}").contains("protocol: V5"));
        assert_eq!(MqttVersion::from_number(5), Some(MqttVersion::V5));
        assert_eq!(MqttVersion::from_number(4), Some(MqttVersion::V311));
        assert_eq!(
            MqttVersion::from_number(3),
            None,
            "3 is MQTT 3.1, which is not spoken"
        );
        assert_eq!(MqttVersion::V5.number(), 5);
        assert_eq!(MqttVersion::V311.number(), 4);
    }
}
