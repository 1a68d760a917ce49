//! The connection's state machine, without I/O or a clock: which events each
//! input makes, and how long to wait before the next attempt.

use std::time::Duration;

use super::backoff::Backoff;
use super::events::{ConnectionEvent, DisconnectCause};

/// The connection's state machine, without I/O: what each input means as
/// events, and how long to wait before the next attempt.
#[derive(Debug)]
pub(crate) struct Machine {
    backoff: Backoff,
    connected: bool,
    /// Failed attempts (and losses) since the last CONNACK.
    failures: u32,
}

impl Machine {
    pub fn new(backoff: Backoff) -> Machine {
        Machine {
            backoff,
            connected: false,
            failures: 0,
        }
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    /// CONNACK.
    pub fn on_connack(&mut self) -> ConnectionEvent {
        self.connected = true;
        self.failures = 0;
        self.backoff.reset();
        ConnectionEvent::Connected
    }

    /// A connection error: the connection was lost (when up) or an attempt
    /// failed. Returns both events and the delay before the next attempt.
    pub fn on_error(
        &mut self,
        reason: String,
    ) -> (DisconnectCause, [ConnectionEvent; 2], Duration) {
        let cause = if std::mem::replace(&mut self.connected, false) {
            DisconnectCause::Lost
        } else {
            DisconnectCause::ConnectFailed
        };
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.next();
        (
            cause,
            [
                ConnectionEvent::Disconnected { cause, reason },
                ConnectionEvent::Reconnecting {
                    delay_ms: delay.as_millis() as u64,
                    attempt: self.failures,
                },
            ],
            delay,
        )
    }

    /// The application stops the connection: an event when it was up.
    pub fn on_stop(&mut self) -> Option<ConnectionEvent> {
        std::mem::replace(&mut self.connected, false).then(|| ConnectionEvent::Disconnected {
            cause: DisconnectCause::Stopped,
            reason: "stopped by the application".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_tells_failed_connects_from_lost_connections() {
        let mut m = Machine::new(Backoff::with_seed(100, 400, 1));
        // Two failed attempts, then a connection.
        let (cause, ev, d1) = m.on_error("refused".into());
        assert_eq!(cause, DisconnectCause::ConnectFailed);
        assert_eq!(
            ev[0],
            ConnectionEvent::Disconnected {
                cause: DisconnectCause::ConnectFailed,
                reason: "refused".into()
            }
        );
        assert!(
            matches!(ev[1], ConnectionEvent::Reconnecting { attempt: 1, delay_ms } if delay_ms == d1.as_millis() as u64)
        );
        let (_, ev, d2) = m.on_error("refused".into());
        assert!(matches!(
            ev[1],
            ConnectionEvent::Reconnecting { attempt: 2, .. }
        ));
        assert!(d2 > d1, "the delay grows: {d1:?} then {d2:?}");
        assert_eq!(m.on_connack(), ConnectionEvent::Connected);
        assert!(m.connected());
        // Losing it: a lost connection, and the backoff starts over.
        let (cause, ev, d3) = m.on_error("reset by peer".into());
        assert_eq!(cause, DisconnectCause::Lost);
        assert!(matches!(
            ev[1],
            ConnectionEvent::Reconnecting { attempt: 1, .. }
        ));
        assert!(d3 <= Duration::from_millis(125), "{d3:?}");
        // Stopping while down says nothing; while up, a clean stop.
        assert_eq!(m.on_stop(), None);
        m.on_connack();
        assert_eq!(
            m.on_stop(),
            Some(ConnectionEvent::Disconnected {
                cause: DisconnectCause::Stopped,
                reason: "stopped by the application".into()
            })
        );
        assert!(!m.connected());
    }
}
