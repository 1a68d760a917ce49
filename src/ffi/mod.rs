//! The C ABI (`include/rrpc.h`). Nothing outside this module tree knows about
//! raw pointers.
//!
//! Plumbing, written once and used by every family:
//! - `status.rs`: `rrpc_status` and the one table from every Rust error to it;
//! - `boundary.rs`: the panic boundary every exported function runs in, and the
//!   thread-local last-error message;
//! - `args.rs`: NULL checks, strings, buffers, out-parameters, `user_data`;
//! - `family.rs`: the bodies of the `_config_init`, `_new`, `_free` and
//!   `_get_stats` that every family has;
//! - `handle.rs`: how an opaque handle stands for a boxed Rust object;
//! - `request.rs`: `rrpc_request` and the four arguments that name a device;
//! - `session.rs`: `rrpc_mqtt_config` and the connection events that the client
//!   and the caller share;
//! - `signed.rs`: `rrpc_credentials`, which `rrpc_credentials_*` write and the
//!   sign callback of `rrpc_mqtt_config` fills.
//!
//! Callbacks registered from C are held in `crate::callback::CallbackSlot`s (or released
//! `crate::callback::Callback`s), so that after the function that replaces or
//! removes them returns they never run again.
//!
//! One module per C type family, named as its functions are: `client.rs`
//! (`rrpc_client_*`), `router.rs` (`rrpc_router_*`), `caller.rs`
//! (`rrpc_caller_*`, `rrpc_response_*`), `credentials.rs` (`rrpc_credentials_*`),
//! `dialect.rs` (`rrpc_dialect_config`, `rrpc_dialect_register`,
//! `rrpc_dialect_name`), `jt808_codec.rs`
//! (`rrpc_jt808_decoder_*`, `rrpc_jt808_encode`, ...), `jt808_adapter/`
//! (`rrpc_jt808_adapter_*`), and `misc.rs` for the library-wide functions.

#![allow(non_camel_case_types)]
// The doc comments are the C header's (cbindgen copies them into rrpc.h) and
// use Doxygen's `@param[in]` and `@param[out]`, which rustdoc reads as links.
#![allow(rustdoc::broken_intra_doc_links)]
// The exported functions are C entry points: they take raw pointers by design,
// check them for NULL and state the validity contract in their documentation.
// Marking them `unsafe fn` would change nothing for C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod args;
mod boundary;
mod family;
mod handle;
mod request;
#[cfg(any(feature = "session", feature = "credentials"))]
mod signed;
mod sized;
mod status;

// A family whose cargo feature is off is left out of the library whole; the
// header still declares it (one header for every build: see rrpc_features).
#[cfg(feature = "caller")]
pub mod caller;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "credentials")]
pub mod credentials;
pub mod dialect;
#[cfg(feature = "jt808")]
pub mod jt808_adapter;
#[cfg(feature = "jt808")]
pub mod jt808_codec;
pub mod misc;
pub mod router;
#[cfg(feature = "session")]
pub mod session;

pub use request::rrpc_request;
pub use status::rrpc_status;
