//! TLS options of the session engine, and the rustls client configuration made
//! from them (ring as the crypto provider).
//!
//! Verification is on unless [`TlsConfig::insecure_skip_verify`] is set; then every
//! connect logs a warning. Errors say what was wrong (unreadable or malformed PEM,
//! a key that does not match its certificate, an unknown CA, an expired
//! certificate, a certificate for another host name) and never print key material.
//!
//! The options are plain data and always there; the rustls engine behind them
//! (`engine.rs`) is built with the `tls` feature. Without it a configuration that
//! asks for TLS is refused with a [`TlsError`] that says so.

use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "tls")]
mod engine;
#[cfg(feature = "tls")]
pub(crate) use engine::handshake_failure;

/// How a session secures its connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust; `None`: the operating system's
    /// roots (for public clouds).
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must be valid for, when it differs from
    /// the broker host (for example when connecting by IP address). The SNI sent
    /// is the host's, as rumqttc sends it.
    pub server_name: Option<String>,
    /// PEM file of the client certificate chain, for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// ALPN protocols to offer, in order of preference; empty: none.
    pub alpn: Vec<String>,
    /// Accept any server certificate. For test benches only: anyone on the path
    /// can then read and change the traffic. Every connect logs a warning.
    pub insecure_skip_verify: bool,
}

/// Why a TLS configuration could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, TlsError> {
    Err(TlsError(msg.into()))
}

/// How every handshake failure's text starts (see [`crate::session::ConnError::is_tls`]).
pub(crate) const HANDSHAKE_FAILED: &str = "TLS handshake failed: ";

/// What a session's transport is made from: the checked rustls configuration.
#[cfg(feature = "tls")]
pub(crate) type Transport = Arc<rustls::ClientConfig>;

/// Without the `tls` feature there is no TLS transport to make.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) enum Transport {}

/// The transport for `cfg`, checked now: files read, PEM parsed, the client key
/// matched against its certificate.
#[cfg(feature = "tls")]
pub(crate) fn transport(cfg: &TlsConfig) -> Result<Transport, TlsError> {
    engine::client_config(cfg)
}

/// Without the `tls` feature: refused, saying so.
#[cfg(not(feature = "tls"))]
pub(crate) fn transport(_cfg: &TlsConfig) -> Result<Transport, TlsError> {
    err("TLS is not built into this library (cargo feature `tls`, CMake option RRPC_WITH_TLS)")
}

/// Without the `tls` feature no error carries a rustls error.
#[cfg(not(feature = "tls"))]
pub(crate) fn handshake_failure(_e: &(dyn std::error::Error + 'static)) -> Option<String> {
    None
}
