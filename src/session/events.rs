//! What the application hears of its connection: [`ConnectionEvent`]s (with
//! the [`DisconnectCause`]), the [`Listener`] they are given to, and the last
//! failure as an error ([`ConnError`]).

use crate::tls;

/// Why a connection is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectCause {
    /// A connection that was up dropped (network error, broker closed it,
    /// keep-alive timed out).
    Lost,
    /// An attempt to connect failed (unreachable, refused, timed out).
    ConnectFailed,
    /// The application stopped the connection (clean DISCONNECT).
    Stopped,
}

/// A change of the connection, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The broker accepted the connection (the first one, or a reconnect).
    Connected,
    /// The connection is down, with the cause and the reason in words.
    Disconnected {
        cause: DisconnectCause,
        reason: String,
    },
    /// The next attempt starts in `delay_ms`; `attempt` counts the attempts
    /// since the last connection (1 for the first retry).
    Reconnecting { delay_ms: u64, attempt: u32 },
}

/// The last connection failure, as an error text that tells a failed connect
/// from a dropped connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", text(*.cause, .address, .reason))]
pub struct ConnError {
    pub cause: DisconnectCause,
    pub address: String,
    pub reason: String,
}

impl ConnError {
    /// Whether the connection failed in its TLS handshake (the certificate, or
    /// the server's refusal), rather than in TCP or MQTT.
    pub fn is_tls(&self) -> bool {
        self.reason.starts_with(tls::HANDSHAKE_FAILED)
    }
}

/// [`ConnError`]'s text: what happened to the connection to `address`, and why.
fn text(cause: DisconnectCause, address: &str, reason: &str) -> String {
    match cause {
        DisconnectCause::Lost => format!("connection to {address} lost: {reason}"),
        DisconnectCause::ConnectFailed => format!("could not connect to {address}: {reason}"),
        DisconnectCause::Stopped => format!("connection to {address} stopped"),
    }
}

/// A connection listener (see `Client::set_connection_listener` and
/// `Caller::set_connection_listener`).
pub type Listener = dyn Fn(&ConnectionEvent) + Send + Sync;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_read_as_what_happened() {
        let e = ConnError {
            cause: DisconnectCause::ConnectFailed,
            address: "127.0.0.1:1".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to 127.0.0.1:1: Connection refused (os error 111)"
        );
        let e = ConnError {
            cause: DisconnectCause::Lost,
            ..e
        };
        assert!(e
            .to_string()
            .starts_with("connection to 127.0.0.1:1 lost: "));
        let e = ConnError {
            cause: DisconnectCause::Stopped,
            ..e
        };
        assert_eq!(e.to_string(), "connection to 127.0.0.1:1 stopped");
        let _: &dyn std::error::Error = &e;
    }
}
