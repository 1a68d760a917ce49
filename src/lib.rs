//! librrpc: Revert-RPC (RRPC) over MQTT.
//!
//! The cloud publishes a request on a device topic that carries a message id; the
//! device answers on the matching response topic before the caller's timeout.
//! This crate is the Rust core of `librrpc.so` / `librrpc.a`:
//!
//! - [`dialect`]: the topic conventions (Alibaba system and custom topics,
//!   Tencent), as data;
//! - [`router`]: the transport-agnostic core (device registry, pending-request
//!   table, duplicate and echo suppression, deadlines), with no I/O;
//! - [`client`]: the built-in MQTT transport (rumqttc on a one-thread tokio
//!   runtime), with a background-thread mode and a `yield` mode;
//! - `ffi`: the C ABI (`include/rrpc.h`).

#[macro_use]
pub mod log;
pub mod client;
pub mod clock;
pub mod dialect;
pub mod router;

/// The C ABI (`include/rrpc.h`). Public so that tests can call it as C does; Rust
/// users should use the safe API above.
#[doc(hidden)]
pub mod ffi;

pub use client::{Client, ClientConfig, ClientError, Replier, Request};
pub use dialect::{Dialect, Identity};
pub use router::{Router, RouterConfig, Stats};

/// The library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
