//! One JT/T 808 frame: header, escaping, checksum, and the typed bodies the
//! pass-through adapter needs (0x8900/0x0900 pass-through, 0x0001/0x8001
//! general responses).
//!
//! A frame on the wire is `0x7e | header | body | checksum | 0x7e`, where the
//! checksum is the XOR of every unescaped header and body byte, and every 0x7e
//! or 0x7d between the two flags (checksum included) is escaped as
//! `0x7d 0x02` / `0x7d 0x01`.
//!
//! Where each part lives: `phone.rs` the terminal's phone number; `frame.rs`
//! the edition, the header and the frame; `body.rs` the typed bodies;
//! `encode.rs` and `decode.rs` the wire format in each direction.

mod body;
mod decode;
mod encode;
mod frame;
mod phone;

pub use body::{passthrough_type_name, Body, BodyError, BodyKind, ResponseResult};
pub(crate) use decode::decode_frame_limited;
pub use decode::{decode_frame, decode_frame_lenient, DecodeError, DecodeErrorKind, Escapes};
pub use encode::{encode_frame, EncodeError};
pub use frame::{Frame, Header, Package, Version};
pub use phone::{BcdError, Phone, PhoneError};

/// The frame delimiter (start and end flag).
pub const FLAG: u8 = 0x7e;
/// The escape byte: `0x7d 0x02` stands for 0x7e, `0x7d 0x01` for 0x7d.
pub const ESCAPE: u8 = 0x7d;
/// The largest body one frame can carry (the 10-bit body-length field).
pub const MAX_BODY_LEN: usize = 1023;
/// The longest escaped frame the standard allows: a 2019 sub-packaged header
/// (21 bytes), a full body and the checksum, every byte escaped, plus both flags.
pub const MAX_FRAME_LEN: usize = 2 + 2 * (21 + MAX_BODY_LEN + 1);

/// Message id of the terminal's general response.
pub const MSG_TERMINAL_RESPONSE: u16 = 0x0001;
/// Message id of the platform's general response.
pub const MSG_PLATFORM_RESPONSE: u16 = 0x8001;
/// Message id of the uplink pass-through (terminal to platform).
pub const MSG_UPLINK_PASSTHROUGH: u16 = 0x0900;
/// Message id of the downlink pass-through (platform to terminal).
pub const MSG_DOWNLINK_PASSTHROUGH: u16 = 0x8900;

// Bits of the body-attributes word of the header.
const ATTR_LEN_MASK: u16 = 0x03ff;
const ATTR_ENCRYPTION_SHIFT: u16 = 10;
const ATTR_PACKAGED: u16 = 1 << 13;
const ATTR_VERSION_2019: u16 = 1 << 14;
