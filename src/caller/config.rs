//! A caller's settings and what its operations fail with.

use crate::presence::PresenceTopics;
use crate::session::MqttConfig;

/// Settings of a [`Caller`](super::Caller).
#[derive(Clone, Debug)]
pub struct CallerConfig {
    /// The broker and how to connect to it. `mqtt.client_id` `None` derives
    /// `rrpccaller` + 16 random hex digits. `mqtt.connect_timeout_ms` (at
    /// least 1) is how long [`Caller::connect`](super::Caller::connect) waits for the connection and
    /// the presence snapshot.
    pub mqtt: MqttConfig,
    /// Largest request or response payload, in bytes: 1 to
    /// 16 MiB.
    pub max_payload: usize,
    /// Most calls in flight at once, 1 to 65,536; more are
    /// refused (`Success` false).
    pub max_in_flight: usize,
    /// Most request bytes held by the calls in flight, 1 to
    /// 1 GiB (and at least `max_payload`); a call that
    /// would exceed it is refused (`Success` false).
    pub max_in_flight_bytes: usize,
    /// Presence topics to follow; `None` turns OFFLINE and HALFCONN off.
    pub presence: Option<PresenceTopics>,
    /// Most devices (and, separately, connections) whose presence the caller
    /// remembers, 1 to 1,000,000; beyond it the entry updated
    /// longest ago is forgotten (counted in `presence_evicted`).
    pub max_presence: usize,
    /// Most response subscriptions made for calls (custom topics, the Tencent
    /// wildcard) at once, 1 to 65,536; a call that needs
    /// one more while all are in use is refused (`Success` false).
    pub max_subscriptions: usize,
    /// How long a response subscription stays after the last call that used it
    /// ended, in ms (at most 3,600,000); then it is
    /// unsubscribed.
    pub subscription_idle_ms: u32,
    /// The topic MQTT 5 request/response calls ([`Dialect::Mqtt5`](crate::Dialect::Mqtt5))
    /// ask their replies on (their Response Topic): an exact topic (no `+`,
    /// `#` or control character, at most 1 KiB). `None`: `rrpc/caller/{client id}/response`.
    pub response_topic: Option<String>,
}

impl CallerConfig {
    // The maxima, also in the C header as RRPC_CALLER_MAX_* (`ffi::caller`).
    /// Largest `max_payload` a caller accepts (16 MiB).
    pub(crate) const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
    /// Largest `max_in_flight` a caller accepts.
    pub(crate) const MAX_IN_FLIGHT: usize = 65_536;
    /// Largest `max_in_flight_bytes` a caller accepts (1 GiB).
    pub(crate) const MAX_IN_FLIGHT_BYTES: usize = 1024 * 1024 * 1024;
    /// Largest `max_presence` a caller accepts.
    pub(crate) const MAX_PRESENCE: usize = 1_000_000;
    /// Largest `max_subscriptions` a caller accepts.
    pub(crate) const MAX_SUBSCRIPTIONS: usize = 65_536;
    /// Largest `subscription_idle_ms` a caller accepts (one hour).
    pub(crate) const MAX_SUBSCRIPTION_IDLE_MS: u32 = 3_600_000;

    pub fn new(host: impl Into<String>, port: u16) -> CallerConfig {
        CallerConfig {
            mqtt: MqttConfig::new(host, port),
            max_payload: 256 * 1024,
            max_in_flight: 65_536,
            max_in_flight_bytes: 64 * 1024 * 1024,
            presence: Some(PresenceTopics::default()),
            max_presence: 100_000,
            max_subscriptions: 1024,
            subscription_idle_ms: 30_000,
            response_topic: None,
        }
    }

    /// Checks the bounds (see each field); the text names the field.
    pub fn validate_bounds(&self) -> Result<(), String> {
        let check = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(format!("{name} {v} is outside 1 to {max}"))
            } else {
                Ok(())
            }
        };
        check("max_payload", self.max_payload, Self::MAX_PAYLOAD)?;
        check("max_in_flight", self.max_in_flight, Self::MAX_IN_FLIGHT)?;
        check(
            "max_in_flight_bytes",
            self.max_in_flight_bytes,
            Self::MAX_IN_FLIGHT_BYTES,
        )?;
        if self.max_in_flight_bytes < self.max_payload {
            return Err(format!(
                "max_in_flight_bytes {} is smaller than max_payload {}",
                self.max_in_flight_bytes, self.max_payload
            ));
        }
        check("max_presence", self.max_presence, Self::MAX_PRESENCE)?;
        check(
            "max_subscriptions",
            self.max_subscriptions,
            Self::MAX_SUBSCRIPTIONS,
        )?;
        if self.subscription_idle_ms > Self::MAX_SUBSCRIPTION_IDLE_MS {
            return Err(format!(
                "subscription_idle_ms {} is more than {}",
                self.subscription_idle_ms,
                Self::MAX_SUBSCRIPTION_IDLE_MS
            ));
        }
        if let Some(t) = &self.response_topic {
            super::mqtt5::check_topic("response_topic", t)?;
        }
        Ok(())
    }
}

/// Why a caller could not be created, or an operation on it was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// A setting or argument out of range; the text says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The text tells a failed connect from a dropped connection.
    #[error("{0}")]
    ConnectFailed(String),
    /// The TLS configuration cannot be used (unreadable or malformed PEM, a key
    /// that does not match its certificate, no CA certificates).
    #[error("TLS: {0}")]
    Tls(String),
    /// Not allowed now (from inside a response callback, for example).
    #[error("{0}")]
    WrongState(&'static str),
}
