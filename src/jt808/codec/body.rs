//! The typed bodies the pass-through adapter needs: 0x8900/0x0900
//! pass-through (type byte and content) and 0x0001/0x8001 general responses.

use super::frame::Package;
use super::{
    MSG_DOWNLINK_PASSTHROUGH, MSG_PLATFORM_RESPONSE, MSG_TERMINAL_RESPONSE, MSG_UPLINK_PASSTHROUGH,
};

/// The typed body a message id has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// 0x8900 (downlink) or 0x0900 (uplink) pass-through: type byte and content.
    Passthrough,
    /// 0x0001 (terminal) or 0x8001 (platform) general response.
    GeneralResponse,
    /// Any other message id; the body passes through untouched.
    Other,
}

impl BodyKind {
    /// The kind of body `msg_id` carries.
    pub fn of(msg_id: u16) -> BodyKind {
        match msg_id {
            MSG_DOWNLINK_PASSTHROUGH | MSG_UPLINK_PASSTHROUGH => BodyKind::Passthrough,
            MSG_TERMINAL_RESPONSE | MSG_PLATFORM_RESPONSE => BodyKind::GeneralResponse,
            _ => BodyKind::Other,
        }
    }
}

/// The result byte of a general response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseResult {
    /// 0: success / acknowledged.
    Ok,
    /// 1: failure.
    Failure,
    /// 2: message error.
    MessageError,
    /// 3: not supported.
    NotSupported,
    /// 4: alarm handling confirmed (defined for 0x8001 only).
    AlarmConfirmation,
    /// Any other value (or 4 in a terminal's 0x0001), kept as received.
    Unknown(u8),
}

impl ResponseResult {
    /// The result for `code` in a response with message id `msg_id` (4 is only
    /// defined in the platform's 0x8001).
    pub fn from_code(msg_id: u16, code: u8) -> ResponseResult {
        match code {
            0 => ResponseResult::Ok,
            1 => ResponseResult::Failure,
            2 => ResponseResult::MessageError,
            3 => ResponseResult::NotSupported,
            4 if msg_id == MSG_PLATFORM_RESPONSE => ResponseResult::AlarmConfirmation,
            other => ResponseResult::Unknown(other),
        }
    }

    /// The byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            ResponseResult::Ok => 0,
            ResponseResult::Failure => 1,
            ResponseResult::MessageError => 2,
            ResponseResult::NotSupported => 3,
            ResponseResult::AlarmConfirmation => 4,
            ResponseResult::Unknown(c) => c,
        }
    }

    /// A short English name ("ok", "failure", "message error", "not supported",
    /// "alarm confirmation", "unknown").
    pub fn name(self) -> &'static str {
        match self {
            ResponseResult::Ok => "ok",
            ResponseResult::Failure => "failure",
            ResponseResult::MessageError => "message error",
            ResponseResult::NotSupported => "not supported",
            ResponseResult::AlarmConfirmation => "alarm confirmation",
            ResponseResult::Unknown(_) => "unknown",
        }
    }
}

/// A parsed message body, borrowing from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// 0x8900/0x0900: the pass-through type byte (0x00 GNSS, 0x0B IC card, 0x41
    /// and 0x42 serial ports, 0xF0-0xFF user-defined, or any vendor value) and
    /// the content after it, untouched.
    Passthrough {
        /// The type byte.
        content_type: u8,
        /// Everything after the type byte.
        content: &'a [u8],
    },
    /// 0x0001/0x8001: which message this answers, and how.
    GeneralResponse {
        /// Serial number of the message answered.
        reply_serial: u16,
        /// Message id of the message answered.
        reply_id: u16,
        /// The result byte.
        result: ResponseResult,
    },
    /// Any other message id: the body as is.
    Other(&'a [u8]),
}

impl<'a> Body<'a> {
    /// Parses a whole message body for `msg_id` (after reassembly, if it was
    /// sub-packaged).
    ///
    /// # Errors
    /// [`BodyError::EmptyPassthrough`] for a 0x8900/0x0900 body without its type
    /// byte, [`BodyError::ResponseLength`] for a 0x0001/0x8001 body that is not 5
    /// bytes.
    pub fn parse(msg_id: u16, body: &'a [u8]) -> Result<Body<'a>, BodyError> {
        match BodyKind::of(msg_id) {
            BodyKind::Passthrough => match body.split_first() {
                Some((&content_type, content)) => Ok(Body::Passthrough {
                    content_type,
                    content,
                }),
                None => Err(BodyError::EmptyPassthrough { msg_id }),
            },
            BodyKind::GeneralResponse => match body {
                &[s0, s1, i0, i1, r] => Ok(Body::GeneralResponse {
                    reply_serial: u16::from_be_bytes([s0, s1]),
                    reply_id: u16::from_be_bytes([i0, i1]),
                    result: ResponseResult::from_code(msg_id, r),
                }),
                _ => Err(BodyError::ResponseLength {
                    msg_id,
                    len: body.len(),
                }),
            },
            BodyKind::Other => Ok(Body::Other(body)),
        }
    }

    /// Writes this body's bytes to `out` (appending): the inverse of [`Body::parse`].
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Body::Passthrough {
                content_type,
                content,
            } => {
                out.push(content_type);
                out.extend_from_slice(content);
            }
            Body::GeneralResponse {
                reply_serial,
                reply_id,
                result,
            } => {
                out.extend_from_slice(&reply_serial.to_be_bytes());
                out.extend_from_slice(&reply_id.to_be_bytes());
                out.push(result.code());
            }
            Body::Other(b) => out.extend_from_slice(b),
        }
    }
}

/// The name of a pass-through type byte, when the standard defines it.
pub fn passthrough_type_name(content_type: u8) -> Option<&'static str> {
    match content_type {
        0x00 => Some("GNSS detailed positioning"),
        0x0b => Some("road-transport IC card"),
        0x41 => Some("serial port 1"),
        0x42 => Some("serial port 2"),
        0xf0..=0xff => Some("user-defined"),
        _ => None,
    }
}

/// A body that does not have the shape its message id requires.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A 0x8900/0x0900 body with no type byte.
    #[error("0x{msg_id:04x} body is empty (a pass-through body starts with its type byte)")]
    EmptyPassthrough {
        /// The message id.
        msg_id: u16,
    },
    /// A 0x0001/0x8001 body that is not 5 bytes.
    #[error("0x{msg_id:04x} body has {len} bytes, a general response has 5 (reply serial, reply id, result)")]
    ResponseLength {
        /// The message id.
        msg_id: u16,
        /// Body bytes received.
        len: usize,
    },
    /// One packet of a sub-packaged message: only the whole message has a typed body.
    #[error("0x{msg_id:04x} packet {} of {}: reassemble the packets before parsing the body", .package.index, .package.count)]
    Packet {
        /// The message id.
        msg_id: u16,
        /// The packet's package fields.
        package: Package,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_result_codes() {
        assert_eq!(
            ResponseResult::from_code(0x8001, 4),
            ResponseResult::AlarmConfirmation
        );
        assert_eq!(
            ResponseResult::from_code(0x0001, 4),
            ResponseResult::Unknown(4)
        );
        for c in 0..=255u8 {
            assert_eq!(ResponseResult::from_code(0x8001, c).code(), c);
        }
    }
}
