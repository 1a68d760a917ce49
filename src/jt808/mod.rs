//! JT/T 808: the codec, and the pass-through adapter that turns RRPC calls
//! into 0x8900 downlinks and the terminals' answers back into replies. No I/O,
//! no MQTT, no clock.
//!
//! - [`encode_frame`](crate::jt808::encode_frame) /
//!   [`decode_frame`](crate::jt808::decode_frame): one frame (`0x7e | header |
//!   body | checksum | 0x7e`, escaping included), 2013 and 2019 editions;
//! - [`Frame::parse_body`](crate::jt808::Frame::parse_body): the typed bodies
//!   of 0x8900/0x0900 (pass-through) and 0x0001/0x8001 (general response);
//!   other ids pass through untouched;
//! - [`StreamDecoder`](crate::jt808::StreamDecoder): frames out of arbitrary
//!   TCP chunks, bounded memory;
//! - [`split_passthrough`](crate::jt808::split_passthrough) /
//!   [`Reassembler`](crate::jt808::Reassembler): bodies over 1023 bytes;
//! - [`Adapter`](crate::jt808::Adapter): the pass-through correlator, for one
//!   thread; [`SharedAdapter`](crate::jt808::SharedAdapter): the same for any
//!   number of threads, with the send function and the event callback it calls
//!   (the C API's `rrpc_jt808_adapter`).
//!
//! Where each part lives: `codec/` one frame (phone, header and frame, bodies,
//! encoding, decoding); `stream.rs` the TCP stream decoder; `packets.rs`
//! sub-packages; `adapter/` the adapter (see its module documentation).
//!
//! ```
//! use rrpc::jt808::{decode_frame, encode_frame, Body, Header, Phone, Version};
//!
//! let phone = Phone::from_digits("13800138000", Version::V2013).unwrap();
//! let header = Header::new(0x8900, phone, 1);
//! let mut wire = Vec::new();
//! encode_frame(&header, &[0x41, b'h', b'i'], &mut wire).unwrap();
//!
//! let frame = decode_frame(&wire).unwrap();
//! assert_eq!(frame.header, header);
//! assert_eq!(
//!     frame.parse_body().unwrap(),
//!     Body::Passthrough { content_type: 0x41, content: b"hi" }
//! );
//! ```

pub mod adapter;
mod codec;
mod packets;
mod stream;

pub use adapter::{
    Adapter, AdapterConfig, AdapterStats, BusyPolicy, Call, Completion, ConfigError,
    ConnectionError, ErrorReason, Event, EventFn, FrameError, Handled, ReplyKind, SendFn,
    SharedAdapter, SharedSubmitError, SubmitError, Submitted,
};
pub use codec::{
    decode_frame, decode_frame_lenient, encode_frame, passthrough_type_name, BcdError, Body,
    BodyError, BodyKind, DecodeError, DecodeErrorKind, EncodeError, Escapes, Frame, Header,
    Package, Phone, PhoneError, ResponseResult, Version, ESCAPE, FLAG, MAX_BODY_LEN, MAX_FRAME_LEN,
    MSG_DOWNLINK_PASSTHROUGH, MSG_PLATFORM_RESPONSE, MSG_TERMINAL_RESPONSE, MSG_UPLINK_PASSTHROUGH,
};
pub use packets::{split_passthrough, Reassembler, ReassemblerConfig, ReassemblyError};
pub use stream::StreamDecoder;
