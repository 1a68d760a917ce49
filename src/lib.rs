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
//! - [`session`]: the MQTT session engine (connect options, reconnects with
//!   backoff, resubscription, connection events) that the client and the
//!   caller share;
//! - [`client`]: the built-in device transport (the session engine on a
//!   one-thread tokio runtime), with a background-thread mode and a `yield` mode;
//! - [`caller`]: the cloud side, RRpc calls with the API's semantics;
//! - [`presence`]: how a caller on a plain broker learns a device is offline;
//! - [`jt808`]: JT/T 808 codec and the pass-through adapter;
//! - `ffi`: the C ABI (`include/rrpc.h`).
//!
//! Cargo features choose what is built (all by default): `client`, `caller`, `tls`,
//! `mqtt5`, `credentials`, `jt808`. The router, the dialects and the presence topics are
//! always in; `client` and `caller` bring the session engine (rumqttc on tokio).
//!
//! The router alone, driven the way any transport drives it (time is an
//! argument, publishing is a closure):
//!
//! ```
//! use rrpc::{Dialect, Identity, Router, RouterConfig};
//!
//! let mut router = Router::new(RouterConfig::default());
//! let dev = Identity { product_key: "a1B2c3", device_name: "dev1", custom_topic: None };
//! let device = router.add_device(Dialect::AlibabaSystem, &dev).unwrap();
//! assert_eq!(device.filter(), "/sys/a1B2c3/dev1/rrpc/request/+");
//!
//! // A request arrives at t = 1000 ms...
//! let req = router
//!     .handle_message("/sys/a1B2c3/dev1/rrpc/request/889455942124347392", b"ping", 1000)
//!     .unwrap();
//! assert_eq!(req.message_id, "889455942124347392");
//! assert_eq!(req.deadline_ms, 1000 + 8000); // Alibaba callers wait at most 8 s
//! let token = req.token;
//!
//! // ...and is answered once, on the response topic.
//! let mut sent = Vec::new();
//! router
//!     .reply(token, b"pong", 1001, |topic, payload| {
//!         sent.push((topic.to_string(), payload.to_vec()));
//!         Ok::<(), ()>(())
//!     })
//!     .unwrap();
//! assert_eq!(sent[0].0, "/sys/a1B2c3/dev1/rrpc/response/889455942124347392");
//! assert!(router.reply(token, b"again", 1002, |_, _| Ok::<(), ()>(())).is_err());
//! ```
//!
//! The built-in client over MQTT (needs a broker; cargo feature `client`):
//!
//! ```no_run
//! # #[cfg(feature = "client")] {
//! use rrpc::{Client, ClientConfig, Dialect, Identity, Request};
//!
//! let client = Client::new(ClientConfig::new("127.0.0.1", 1883)).unwrap();
//! let dev = Identity { product_key: "a1B2c3", device_name: "dev1", custom_topic: None };
//! client.add_device(Dialect::AlibabaSystem, &dev).unwrap();
//! let replier = client.replier();
//! client.set_handler(Some(Box::new(move |req: &Request<'_>| {
//!     let _ = replier.reply(req.token, req.payload); // echo
//! }))).unwrap();
//! client.start().unwrap(); // background thread; or call client.yield_for(ms) in a loop
//! # }
//! ```

#[macro_use]
pub mod log;
mod callback;
#[cfg(feature = "caller")]
pub mod caller;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
mod counters;
#[cfg(feature = "credentials")]
pub mod credentials;
pub mod dialect;
pub mod encoding;
/// JT/T 808 frames, streaming decoder and sub-packages for the pass-through adapter.
#[cfg(feature = "jt808")]
pub mod jt808;
pub mod presence;
mod random;
pub mod router;
#[cfg(feature = "session")]
pub mod session;
#[cfg(feature = "session")]
pub mod tls;

/// The C ABI (`include/rrpc.h`). Public so that tests can call it as C does; Rust
/// users should use the safe API above.
#[doc(hidden)]
pub mod ffi;

pub use callback::Reentered;
#[cfg(feature = "caller")]
pub use caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
#[cfg(feature = "client")]
pub use client::{Client, ClientConfig, ClientError, ClientStats, Replier};
pub use dialect::{Dialect, Identity};
pub use router::{Request, Router, RouterConfig, RouterStats, SharedRouter};
#[cfg(feature = "session")]
pub use session::{ConnectionEvent, DisconnectCause, MqttConfig};

/// The library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Rust blocks of the README and of every page of `docs/` are doc tests: `cargo test
/// --doc` compiles them (and runs those not marked `no_run`). `tests/docs.rs` checks the
/// blocks of the other languages, and that every page is listed here.
#[cfg(doctest)]
mod doc_pages {
    #[doc = include_str!("../README.md")]
    pub struct Readme;
    #[doc = include_str!("../docs/architecture.md")]
    pub struct Architecture;
    #[doc = include_str!("../docs/benchmarks.md")]
    pub struct Benchmarks;
    #[doc = include_str!("../docs/building.md")]
    pub struct Building;
    #[doc = include_str!("../docs/caller.md")]
    pub struct Caller;
    #[doc = include_str!("../docs/connecting.md")]
    pub struct Connecting;
    #[doc = include_str!("../docs/conventions.md")]
    pub struct Conventions;
    #[doc = include_str!("../docs/dialects.md")]
    pub struct Dialects;
    #[doc = include_str!("../docs/device.md")]
    pub struct Device;
    #[doc = include_str!("../docs/gateway.md")]
    pub struct Gateway;
    #[doc = include_str!("../docs/jt808.md")]
    pub struct Jt808;
    #[doc = include_str!("../docs/limits.md")]
    pub struct Limits;
    #[doc = include_str!("../docs/security.md")]
    pub struct Security;
    #[doc = include_str!("../docs/testing.md")]
    pub struct Testing;
}
