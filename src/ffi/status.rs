//! `rrpc_status`, and the one table from every Rust error to its status.
//!
//! Each status has one meaning in every family (client, router, caller, JT/T
//! 808); `enum rrpc_status` in `rrpc.h` says what each means.
//! Every failing function leaves its object as it was: a refused reply keeps its
//! token, a refused submit holds nothing, a refused registration registers
//! nothing.

use std::ffi::CStr;

use crate::callback::Reentered;
#[cfg(feature = "caller")]
use crate::caller::CallerError;
#[cfg(feature = "client")]
use crate::client::ClientError;
#[cfg(feature = "credentials")]
use crate::credentials::CredentialError;
use crate::dialect::DialectError;
#[cfg(feature = "jt808")]
use crate::jt808::{
    ConfigError as AdapterConfigError, ConnectionError, DecodeError, EncodeError, FrameError,
    PhoneError, SharedSubmitError, SubmitError,
};
use crate::router::{DeviceError, ReplyError};
#[cfg(feature = "session")]
use crate::session::SendError;

/// Status code returned by every fallible function. `RRPC_STATUS_OK` is 0; every
/// other value names one kind of failure, with detail in
/// `rrpc_last_error_message()`. Each value means the same in every function
/// (see the table at the top of this header). Values are stable across
/// releases; new ones may be added, so treat unknown values as failures.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_status {
    /// Success.
    RRPC_STATUS_OK = 0,
    /// A required pointer argument was NULL (the message names it).
    RRPC_STATUS_NULL_POINTER = 1,
    /// A string argument was not valid UTF-8.
    RRPC_STATUS_INVALID_UTF8 = 2,
    /// A value was out of range or inconsistent with another (the message says
    /// which).
    RRPC_STATUS_INVALID_ARGUMENT = 3,
    /// A product key, device name or custom topic was empty, too long, or held
    /// `+`, `#`, `/` (custom topics may hold `/`), NUL or a control character.
    RRPC_STATUS_INVALID_IDENTITY = 4,
    /// A payload (request, reply, JT/T 808 content) was larger than its
    /// configured maximum; nothing changed.
    RRPC_STATUS_PAYLOAD_TOO_LARGE = 5,
    /// The token was never issued by this object, or is too old to be remembered.
    RRPC_STATUS_UNKNOWN_TOKEN = 6,
    /// The request was answered already; nothing was sent.
    RRPC_STATUS_ALREADY_REPLIED = 7,
    /// The request's deadline passed; nothing was sent.
    RRPC_STATUS_EXPIRED = 8,
    /// The device was removed while the request waited; nothing was sent.
    RRPC_STATUS_DEVICE_REMOVED = 9,
    /// The thing to add is there already: a device registered twice, a custom
    /// topic another device receives on, a JT/T 808 token already held.
    RRPC_STATUS_ALREADY_EXISTS = 10,
    /// The thing named is not registered (a device to remove).
    RRPC_STATUS_NOT_FOUND = 11,
    /// Not allowed in the object's current state (start twice, yield while the
    /// background thread runs, no publish or send function registered), or
    /// called from inside a callback that the call would wait for (stop, free,
    /// or replacing the very callback that is running).
    RRPC_STATUS_WRONG_STATE = 12,
    /// Connecting to the broker failed: the first connection of
    /// `rrpc_client_start` or `rrpc_caller_new`, or the attempts during one
    /// `rrpc_client_yield`. The message says which address and why.
    RRPC_STATUS_CONNECT_FAILED = 13,
    /// There is no connection to send on right now: to the broker (client), or
    /// to the terminal (JT/T 808 adapter). Nothing changed; retry later.
    RRPC_STATUS_NOT_CONNECTED = 14,
    /// Occupied right now: an outgoing queue is full, another thread is replying
    /// to the same request, or (JT/T 808, RRPC_JT808_BUSY_REFUSE) the terminal's
    /// (terminal, type) pair has a request outstanding. Nothing changed; the same
    /// call may succeed later.
    RRPC_STATUS_BUSY = 15,
    /// An output buffer was too small; the needed length was reported.
    RRPC_STATUS_BUFFER_TOO_SMALL = 16,
    /// An internal error (a bug); the message says more.
    RRPC_STATUS_INTERNAL = 17,
    /// The library caught a panic (a bug); the handle is still usable.
    RRPC_STATUS_PANIC = 18,
    /// The application's publish function (router) or send function (JT/T 808
    /// adapter) returned non-zero: nothing was sent and nothing changed (a reply's
    /// token stays valid until its deadline; a submitted request is not held).
    RRPC_STATUS_SEND_FAILED = 19,
    /// Bytes that are not a valid JT/T 808 frame (bad checksum, escape, flags,
    /// length, package fields), or a frame whose body does not fit its message
    /// id; the message names the byte offset and the rule.
    RRPC_STATUS_MALFORMED_FRAME = 20,
    /// A configured bound is reached (pending requests, queued bytes,
    /// terminals, connections, serial numbers...): nothing was added. The same
    /// call may succeed once load drops; the message names the bound.
    RRPC_STATUS_LIMIT_REACHED = 21,
    /// TLS failed: a configuration that cannot be used (unreadable or malformed
    /// PEM, a client key that does not match its certificate, no CA
    /// certificates), or a handshake the server's certificate failed (unknown CA,
    /// expired, not valid for the host name) or the server refused; the message
    /// says which.
    RRPC_STATUS_TLS = 22,
    /// A struct's size is not one this library knows: a `struct_size` (or the
    /// size given to an `_init`) larger than the library's own struct, because
    /// the application was built against a newer `rrpc.h` than the library it
    /// runs with; or smaller than 4, because the struct was not filled by its
    /// `_init`. Nothing changed; the message names the struct and both sizes.
    RRPC_STATUS_STRUCT_SIZE = 23,
    /// A dialect definition was refused by `rrpc_dialect_register`: a name that
    /// is not 1 to 32 of `a-z 0-9 - _ .`, built in, or taken by another
    /// definition; a template with an unknown placeholder, a wildcard outside
    /// the subscribe filter, no `{id}`; a filter that does not receive the
    /// requests; a request that can match another dialect's topics; a timeout
    /// out of range; or 64 dialects registered already. Nothing was registered;
    /// the message starts with the field (`request: ...`). Since 1.1.
    RRPC_STATUS_INVALID_DIALECT = 24,
}

use rrpc_status::*;

impl rrpc_status {
    const ALL: [rrpc_status; 25] = [
        RRPC_STATUS_OK,
        RRPC_STATUS_NULL_POINTER,
        RRPC_STATUS_INVALID_UTF8,
        RRPC_STATUS_INVALID_ARGUMENT,
        RRPC_STATUS_INVALID_IDENTITY,
        RRPC_STATUS_PAYLOAD_TOO_LARGE,
        RRPC_STATUS_UNKNOWN_TOKEN,
        RRPC_STATUS_ALREADY_REPLIED,
        RRPC_STATUS_EXPIRED,
        RRPC_STATUS_DEVICE_REMOVED,
        RRPC_STATUS_ALREADY_EXISTS,
        RRPC_STATUS_NOT_FOUND,
        RRPC_STATUS_WRONG_STATE,
        RRPC_STATUS_CONNECT_FAILED,
        RRPC_STATUS_NOT_CONNECTED,
        RRPC_STATUS_BUSY,
        RRPC_STATUS_BUFFER_TOO_SMALL,
        RRPC_STATUS_INTERNAL,
        RRPC_STATUS_PANIC,
        RRPC_STATUS_SEND_FAILED,
        RRPC_STATUS_MALFORMED_FRAME,
        RRPC_STATUS_LIMIT_REACHED,
        RRPC_STATUS_TLS,
        RRPC_STATUS_STRUCT_SIZE,
        RRPC_STATUS_INVALID_DIALECT,
    ];

    /// The text of `rrpc_status_str`.
    pub(crate) fn text(self) -> &'static CStr {
        match self {
            RRPC_STATUS_OK => c"ok",
            RRPC_STATUS_NULL_POINTER => c"null pointer argument",
            RRPC_STATUS_INVALID_UTF8 => c"string argument is not valid UTF-8",
            RRPC_STATUS_INVALID_ARGUMENT => c"invalid argument",
            RRPC_STATUS_INVALID_IDENTITY => c"invalid product key, device name or custom topic",
            RRPC_STATUS_PAYLOAD_TOO_LARGE => c"payload larger than the configured maximum",
            RRPC_STATUS_UNKNOWN_TOKEN => c"unknown token",
            RRPC_STATUS_ALREADY_REPLIED => c"request already answered",
            RRPC_STATUS_EXPIRED => c"request deadline passed; nothing sent",
            RRPC_STATUS_DEVICE_REMOVED => c"device removed; nothing sent",
            RRPC_STATUS_ALREADY_EXISTS => c"already registered",
            RRPC_STATUS_NOT_FOUND => c"not registered",
            RRPC_STATUS_WRONG_STATE => c"call not allowed in the current state",
            RRPC_STATUS_CONNECT_FAILED => c"could not connect to the broker",
            RRPC_STATUS_NOT_CONNECTED => c"no connection to send on; retry later",
            RRPC_STATUS_BUSY => c"occupied right now; retry later",
            RRPC_STATUS_BUFFER_TOO_SMALL => c"output buffer too small",
            RRPC_STATUS_INTERNAL => c"internal error",
            RRPC_STATUS_PANIC => c"internal panic caught at the API boundary",
            RRPC_STATUS_SEND_FAILED => c"publish or send function failed; nothing sent",
            RRPC_STATUS_MALFORMED_FRAME => c"malformed JT/T 808 frame",
            RRPC_STATUS_LIMIT_REACHED => c"configured limit reached",
            RRPC_STATUS_TLS => c"TLS configuration or handshake failed",
            RRPC_STATUS_STRUCT_SIZE => {
                c"struct size unknown to this library (newer header, or not initialised)"
            }
            RRPC_STATUS_INVALID_DIALECT => c"dialect definition refused",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<rrpc_status> {
        Self::ALL.get(v as usize).copied()
    }
}

/// A failure on its way to C: the status and the detail for the last-error message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: rrpc_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: rrpc_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// A Rust error's status: the one table. Every error the C API can return is
/// listed here, nowhere else.
pub(crate) trait Status: std::fmt::Display {
    fn status(&self) -> rrpc_status;
}

impl<E: Status> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::new(e.status(), e.to_string())
    }
}

impl Status for DeviceError {
    fn status(&self) -> rrpc_status {
        match self {
            DeviceError::Invalid(_) => RRPC_STATUS_INVALID_IDENTITY,
            DeviceError::AlreadyExists
            | DeviceError::TopicInUse(_)
            | DeviceError::OnePerConnection { .. } => RRPC_STATUS_ALREADY_EXISTS,
            DeviceError::NotFound => RRPC_STATUS_NOT_FOUND,
            DeviceError::TableFull | DeviceError::Mqtt5Full => RRPC_STATUS_LIMIT_REACHED,
            DeviceError::Reentered => RRPC_STATUS_WRONG_STATE,
        }
    }
}

/// What a failed send of a reply says, per transport.
pub(crate) trait SendStatus: std::fmt::Display {
    fn status(&self) -> rrpc_status;
}

#[cfg(feature = "session")]
impl SendStatus for SendError {
    fn status(&self) -> rrpc_status {
        match self {
            SendError::NotConnected => RRPC_STATUS_NOT_CONNECTED,
            SendError::QueueFull => RRPC_STATUS_BUSY,
        }
    }
}

impl SendStatus for super::router::PublishFailed {
    fn status(&self) -> rrpc_status {
        RRPC_STATUS_SEND_FAILED
    }
}

#[cfg(feature = "jt808")]
/// The JT/T 808 adapter's send function returned this non-zero value.
pub(crate) struct SendFailed(pub i32);

#[cfg(feature = "jt808")]
impl std::fmt::Display for SendFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the send function returned {}; the request was released",
            self.0
        )
    }
}

impl SendStatus for std::convert::Infallible {
    fn status(&self) -> rrpc_status {
        match *self {}
    }
}

impl<E: SendStatus> Status for ReplyError<E> {
    fn status(&self) -> rrpc_status {
        match self {
            ReplyError::UnknownToken => RRPC_STATUS_UNKNOWN_TOKEN,
            ReplyError::AlreadyReplied => RRPC_STATUS_ALREADY_REPLIED,
            ReplyError::Expired => RRPC_STATUS_EXPIRED,
            ReplyError::DeviceRemoved => RRPC_STATUS_DEVICE_REMOVED,
            ReplyError::TooLarge => RRPC_STATUS_PAYLOAD_TOO_LARGE,
            ReplyError::InProgress => RRPC_STATUS_BUSY,
            ReplyError::NoPublish => RRPC_STATUS_WRONG_STATE,
            ReplyError::Envelope(_) => RRPC_STATUS_INVALID_ARGUMENT,
            ReplyError::Send(e) => e.status(),
        }
    }
}

#[cfg(feature = "client")]
impl Status for ClientError {
    fn status(&self) -> rrpc_status {
        match self {
            ClientError::InvalidArgument(_) => RRPC_STATUS_INVALID_ARGUMENT,
            ClientError::Device(e) => e.status(),
            ClientError::WrongState(_) => RRPC_STATUS_WRONG_STATE,
            ClientError::ConnectFailed(_) => RRPC_STATUS_CONNECT_FAILED,
            ClientError::Tls(_) => RRPC_STATUS_TLS,
            ClientError::NotConnected => RRPC_STATUS_NOT_CONNECTED,
            ClientError::Busy => RRPC_STATUS_BUSY,
            ClientError::Reply(e) => e.status(),
        }
    }
}

#[cfg(feature = "caller")]
impl Status for CallerError {
    fn status(&self) -> rrpc_status {
        match self {
            CallerError::InvalidArgument(_) => RRPC_STATUS_INVALID_ARGUMENT,
            CallerError::ConnectFailed(_) => RRPC_STATUS_CONNECT_FAILED,
            CallerError::Tls(_) => RRPC_STATUS_TLS,
            CallerError::WrongState(_) => RRPC_STATUS_WRONG_STATE,
        }
    }
}

#[cfg(feature = "credentials")]
impl Status for CredentialError {
    fn status(&self) -> rrpc_status {
        if self.is_identity() {
            RRPC_STATUS_INVALID_IDENTITY
        } else {
            RRPC_STATUS_INVALID_ARGUMENT
        }
    }
}

#[cfg(feature = "jt808")]
impl Status for SubmitError {
    fn status(&self) -> rrpc_status {
        match self {
            SubmitError::DuplicateToken(_) => RRPC_STATUS_ALREADY_EXISTS,
            SubmitError::Encode(_) => RRPC_STATUS_INVALID_ARGUMENT,
            SubmitError::DeadlinePassed { .. } => RRPC_STATUS_EXPIRED,
            SubmitError::ContentTooLong { .. } => RRPC_STATUS_PAYLOAD_TOO_LARGE,
            SubmitError::Busy { .. } => RRPC_STATUS_BUSY,
            SubmitError::QueueFull { .. }
            | SubmitError::TableFull { .. }
            | SubmitError::QueuedBytes { .. }
            | SubmitError::SerialsExhausted { .. } => RRPC_STATUS_LIMIT_REACHED,
            SubmitError::NotConnected { .. } => RRPC_STATUS_NOT_CONNECTED,
        }
    }
}

#[cfg(feature = "jt808")]
impl<E: Status> Status for SharedSubmitError<E> {
    fn status(&self) -> rrpc_status {
        match self {
            SharedSubmitError::Refused(e) => e.status(),
            SharedSubmitError::NoSendFunction => RRPC_STATUS_WRONG_STATE,
            SharedSubmitError::SendFailed(e) => e.status(),
            // Only a Rust send function can panic; C cannot unwind into Rust.
            SharedSubmitError::SendPanicked => RRPC_STATUS_PANIC,
        }
    }
}

#[cfg(feature = "jt808")]
impl Status for ConnectionError {
    fn status(&self) -> rrpc_status {
        match self {
            ConnectionError::TooManyConnections { .. }
            | ConnectionError::TooManyTerminals { .. } => RRPC_STATUS_LIMIT_REACHED,
        }
    }
}

/// Errors with one status, whatever their value.
macro_rules! one_status {
    ($($(#[$cfg:meta])* $error:ty => $status:ident;)+) => {$(
        $(#[$cfg])*
        impl Status for $error {
            fn status(&self) -> rrpc_status {
                $status
            }
        }
    )+};
}

one_status! {
    Reentered => RRPC_STATUS_WRONG_STATE;
    DialectError => RRPC_STATUS_INVALID_DIALECT;
    #[cfg(feature = "jt808")]
    SendFailed => RRPC_STATUS_SEND_FAILED;
    #[cfg(feature = "jt808")]
    AdapterConfigError => RRPC_STATUS_INVALID_ARGUMENT;
    #[cfg(feature = "jt808")]
    DecodeError => RRPC_STATUS_MALFORMED_FRAME;
    #[cfg(feature = "jt808")]
    FrameError => RRPC_STATUS_MALFORMED_FRAME;
    #[cfg(feature = "jt808")]
    EncodeError => RRPC_STATUS_INVALID_ARGUMENT;
    #[cfg(feature = "jt808")]
    PhoneError => RRPC_STATUS_INVALID_ARGUMENT;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_text_and_a_stable_value() {
        for (v, s) in rrpc_status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, v as u32);
            assert_eq!(rrpc_status::from_u32(v as u32), Some(*s));
            assert!(!s.text().to_bytes().is_empty());
        }
        assert!(rrpc_status::from_u32(rrpc_status::ALL.len() as u32).is_none());
    }

    #[test]
    #[cfg(feature = "session")]
    fn a_failed_send_keeps_its_meaning_per_transport() {
        let client: ReplyError<SendError> = ReplyError::Send(SendError::NotConnected);
        assert_eq!(client.status(), RRPC_STATUS_NOT_CONNECTED);
        let full: ReplyError<SendError> = ReplyError::Send(SendError::QueueFull);
        assert_eq!(full.status(), RRPC_STATUS_BUSY);
        let router: ReplyError<super::super::router::PublishFailed> =
            ReplyError::Send(super::super::router::PublishFailed(-1));
        assert_eq!(router.status(), RRPC_STATUS_SEND_FAILED);
        assert_eq!(
            ReplyError::<std::convert::Infallible>::InProgress.status(),
            RRPC_STATUS_BUSY
        );
    }
}
