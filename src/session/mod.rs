//! The MQTT session engine: one rumqttc connection, kept alive, for the device
//! client and the caller alike.
//!
//! What it owns, written once:
//! - **connect options** ([`MqttConfig`]): broker address, client id, credentials,
//!   keep-alive, clean session, timeouts, the reconnect delays; TCP_NODELAY;
//!   packet size limits from the owner's payload limit;
//! - **reconnects**: capped exponential backoff with jitter (`backoff.rs`), a
//!   fresh last will before every attempt;
//! - **subscriptions**: after every CONNACK the owner's filters are subscribed
//!   again (rumqttc forgets them with a clean session), in batches; the owner
//!   hears when the broker acknowledged them all, and which it refused;
//! - **connection events** ([`ConnectionEvent`]): connected, disconnected with
//!   its cause and reason, reconnecting with the next delay; delivered to an
//!   application listener, logged without repeating what the application is
//!   told anyway, and kept as an error text that tells a failed connect from a
//!   dropped connection;
//! - **a clean stop**: what is queued (replies included) goes out, then MQTT
//!   DISCONNECT.
//!
//! The owner (client or caller) plugs in through `SessionOwner`: what to
//! subscribe, what to publish after CONNACK, the last will, and what to do with
//! incoming messages and lost connections. The engine runs as one task on the
//! owner's runtime (`Session::spawn`); any thread publishes through a
//! `Publisher`.
//!
//! MQTT 3.1.1 (the default) or MQTT 5 ([`MqttConfig::protocol`]): rumqttc's
//! two clients behind one interface (`ProtocolLoop`), so owners never see
//! which one runs. MQTT 5 adds No Local on the subscriptions that ask for it,
//! reason codes in the error texts, session expiry and the maximum packet size
//! announced to the broker.
//!
//! Where the next transport options go: TLS and other transports in
//! `Session::open` (the rumqttc transport and network options); credentials
//! signed at every connect in `Engine::prepare_attempt`, which runs before
//! each attempt.
//!
//! The files, one idea each:
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`MqttConfig`], [`MqttVersion`], the checks and client id rules |
//! | `events.rs` | [`ConnectionEvent`], [`DisconnectCause`], [`ConnError`], the [`Listener`] |
//! | `backoff.rs` | reconnect delays with jitter drawn from the operating system |
//! | `machine.rs` | the connection's state machine, without I/O |
//! | `state.rs` | `ConnectionState`: connected, subscribed, the counters ([`ConnStats`]), the last error, waiting |
//! | `publisher.rs` | the bounded outgoing queue, `Publisher`, `Outbox` |
//! | `owner.rs` | `SessionOwner`, what the client and the caller plug in |
//! | `engine.rs` | `Session`, its task and loop (`Engine`) |
//! | `protocol.rs` | `ProtocolLoop` over rumqttc's MQTT 3.1.1 and 5 event loops; QoS, filters, SUBACKs, the will, [`Reason`] |

mod backoff;
mod config;
mod engine;
mod events;
mod machine;
mod owner;
mod protocol;
mod publisher;
mod state;

#[cfg(feature = "client")]
pub(crate) use config::TlsTransport;
pub use config::{
    check_client_id, MqttConfig, MqttVersion, Signer, DEFAULT_MAX_INCOMING_PACKET,
    MAX_CLIENT_ID_LEN, MAX_INCOMING_PACKET,
};
pub(crate) use engine::Session;
pub use events::{ConnError, ConnectionEvent, DisconnectCause, Listener};
pub(crate) use owner::{Inbound, SessionOwner};
#[cfg(feature = "client")]
pub(crate) use protocol::Properties;
pub use protocol::Reason;
#[cfg(feature = "client")]
pub(crate) use protocol::Will;
pub(crate) use protocol::{Filter, QoS, SubAcks};
pub use publisher::SendError;
pub(crate) use publisher::{Outbox, Publisher};
pub use state::ConnStats;
pub(crate) use state::ConnectionState;
