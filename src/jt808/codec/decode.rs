//! Decoding: one escaped frame into its header and body, strictly or leniently,
//! with the byte offset of the first rule a frame breaks.

use super::encode::xor;
use super::frame::{Frame, Header, Package, Version};
use super::phone::Phone;
use super::{
    ATTR_ENCRYPTION_SHIFT, ATTR_LEN_MASK, ATTR_PACKAGED, ATTR_VERSION_2019, ESCAPE, FLAG,
    MAX_FRAME_LEN,
};

/// A frame that could not be decoded: where, in the escaped bytes as received
/// (0 is the start flag), and which rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {kind}")]
pub struct DecodeError {
    /// Byte offset in the escaped input.
    pub offset: usize,
    /// The rule broken.
    pub kind: DecodeErrorKind,
}

/// The rule a frame breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// No input at all.
    #[error("no input (a frame starts and ends with 0x7e)")]
    Empty,
    /// The first byte is not the 0x7e flag.
    #[error("frame starts with 0x{found:02x}, not the 0x7e flag")]
    MissingStartFlag {
        /// The byte found.
        found: u8,
    },
    /// The last byte is not the 0x7e flag (`None`: the input ends after the
    /// start flag).
    #[error("{}", missing_end_flag(*.found))]
    MissingEndFlag {
        /// The byte found.
        found: Option<u8>,
    },
    /// An unescaped 0x7e between the flags.
    #[error("unescaped 0x7e inside the frame (0x7e must be sent as 0x7d 0x02)")]
    FlagInside,
    /// 0x7d followed by something other than 0x01 or 0x02.
    #[error("0x7d followed by 0x{next:02x} (only 0x01 and 0x02 may follow 0x7d)")]
    InvalidEscape {
        /// The byte after 0x7d.
        next: u8,
    },
    /// 0x7d as the last byte before the end flag.
    #[error("lone 0x7d at end of frame")]
    LoneEscape,
    /// Fewer bytes between the flags than the header and checksum need.
    #[error(
        "frame of {len} bytes is shorter than a {version} header ({header_len} bytes) and checksum"
    )]
    TooShort {
        /// Unescaped bytes between the flags (header, body and checksum).
        len: usize,
        /// The edition the attributes announce (2013 when they are cut off).
        version: Version,
        /// Header bytes that edition needs.
        header_len: usize,
    },
    /// The checksum byte differs from the XOR of header and body.
    #[error("checksum 0x{found:02x}, computed 0x{computed:02x}")]
    Checksum {
        /// The checksum received.
        found: u8,
        /// The XOR computed.
        computed: u8,
    },
    /// The body-length field disagrees with the bytes received.
    #[error("body-length field says {declared}, frame carries {actual}")]
    BodyLength {
        /// What the field says.
        declared: usize,
        /// Body bytes received.
        actual: usize,
    },
    /// Package fields with `index` outside `1..=count`.
    #[error("package index {} of {} (indices run from 1 to the count)", .0.index, .0.count)]
    Package(Package),
    /// The escaped frame is longer than the limit.
    #[error("frame longer than the limit of {max} bytes")]
    TooLong {
        /// The limit in bytes, flags included.
        max: usize,
    },
}

/// What [`DecodeErrorKind::MissingEndFlag`] says, by what was found instead.
fn missing_end_flag(found: Option<u8>) -> String {
    match found {
        Some(b) => format!("frame ends with 0x{b:02x}, not the 0x7e flag"),
        None => "input ends after the start flag (no end flag)".to_string(),
    }
}

fn err(offset: usize, kind: DecodeErrorKind) -> DecodeError {
    DecodeError { offset, kind }
}

/// The offset in `escaped` (which starts with the start flag) of the unescaped
/// content byte `index`. Only called on error paths, for exact offsets.
fn escaped_offset(escaped: &[u8], index: usize) -> usize {
    let mut seen = 0;
    let mut i = 1;
    while i < escaped.len() {
        if seen == index {
            return i;
        }
        i += if escaped[i] == ESCAPE { 2 } else { 1 };
        seen += 1;
    }
    escaped.len().saturating_sub(1)
}

/// Decodes one complete frame, both 0x7e flags included.
///
/// The decoder is strict: every rule below is an error, reported with the byte
/// offset in `input` where it is broken.
///
/// # Errors
/// [`DecodeError`] for: no input; a missing start or end flag; an unescaped 0x7e
/// inside; 0x7d not followed by 0x01/0x02, or last; an input longer than
/// [`MAX_FRAME_LEN`]; fewer bytes than the header and checksum; a wrong checksum;
/// a body-length field that disagrees with the body; package fields outside
/// `1 <= index <= count`.
pub fn decode_frame(input: &[u8]) -> Result<Frame, DecodeError> {
    decode_frame_limited(input, MAX_FRAME_LEN, Escapes::Strict).map(|(f, _)| f)
}

/// How a decoder reads 0x7d bytes inside a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Escapes {
    /// The standard's rule: 0x7d is always followed by 0x01 or 0x02, anything
    /// else is an error. The default.
    #[default]
    Strict,
    /// For terminals that send 0x7d unescaped (traccar's decoder tests carry
    /// two such 0x0900 frames, from a terminal whose phone number ends in
    /// 0x7d). The frame is first read strictly; only when that fails (an
    /// invalid or lone escape, a wrong checksum, a body length that disagrees,
    /// a frame too short) is it read again with `0x7d 0x02` as 0x7e and every
    /// other 0x7d as itself (so `0x7d 0x01` stays two bytes). The second
    /// reading is kept only when its checksum and body length hold; otherwise
    /// the strict reading's error is returned. A frame whose two readings are
    /// both valid is read strictly, so a strict terminal's frames decode the
    /// same in both modes; the XOR checksum is one byte, so about 1 in 256
    /// corrupted frames that the strict reading refuses may pass the second
    /// reading's checks.
    Lenient,
}

/// [`decode_frame`] in lenient mode (see [`Escapes::Lenient`]): frames with
/// unescaped 0x7d bytes decode too. Errors are those of the strict reading.
///
/// # Errors
/// As [`decode_frame`], when neither reading yields a valid frame.
pub fn decode_frame_lenient(input: &[u8]) -> Result<Frame, DecodeError> {
    decode_frame_limited(input, MAX_FRAME_LEN, Escapes::Lenient).map(|(f, _)| f)
}

/// [`decode_frame`] with a caller's length limit (the stream decoder's bound)
/// and escape mode. The flag says whether the lenient reading was needed.
pub(crate) fn decode_frame_limited(
    input: &[u8],
    max: usize,
    escapes: Escapes,
) -> Result<(Frame, bool), DecodeError> {
    match decode_once(input, max, false) {
        Ok(f) => Ok((f, false)),
        Err(e) if escapes == Escapes::Lenient && lenient_may_help(&e) => {
            match decode_once(input, max, true) {
                Ok(f) => Ok((f, true)),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether an error of the strict reading can come from an unescaped 0x7d.
fn lenient_may_help(e: &DecodeError) -> bool {
    matches!(
        e.kind,
        DecodeErrorKind::InvalidEscape { .. }
            | DecodeErrorKind::LoneEscape
            | DecodeErrorKind::Checksum { .. }
            | DecodeErrorKind::BodyLength { .. }
            | DecodeErrorKind::TooShort { .. }
    )
}

/// One reading of a frame; `literal_escapes`: every 0x7d not followed by 0x02
/// is a data byte.
fn decode_once(input: &[u8], max: usize, literal_escapes: bool) -> Result<Frame, DecodeError> {
    let (&first, _) = input
        .split_first()
        .ok_or_else(|| err(0, DecodeErrorKind::Empty))?;
    if first != FLAG {
        return Err(err(0, DecodeErrorKind::MissingStartFlag { found: first }));
    }
    if input.len() > max {
        return Err(err(max, DecodeErrorKind::TooLong { max }));
    }
    let last = input.len() - 1;
    if last == 0 {
        return Err(err(1, DecodeErrorKind::MissingEndFlag { found: None }));
    }
    if input[last] != FLAG {
        return Err(err(
            last,
            DecodeErrorKind::MissingEndFlag {
                found: Some(input[last]),
            },
        ));
    }
    let inner = &input[1..last];

    // Unescape into the buffer that becomes the body.
    let mut buf = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let rest = &inner[i..];
        let run = rest
            .iter()
            .position(|&b| b == FLAG || b == ESCAPE)
            .unwrap_or(rest.len());
        buf.extend_from_slice(&rest[..run]);
        i += run;
        if i >= inner.len() {
            break;
        }
        let offset = i + 1; // in `input`
        if inner[i] == FLAG {
            return Err(err(offset, DecodeErrorKind::FlagInside));
        }
        if literal_escapes && inner.get(i + 1) != Some(&0x02) {
            buf.push(ESCAPE);
            i += 1;
            continue;
        }
        match inner.get(i + 1) {
            None => return Err(err(offset, DecodeErrorKind::LoneEscape)),
            Some(0x01) => buf.push(ESCAPE),
            Some(0x02) => buf.push(FLAG),
            Some(&next) => return Err(err(offset, DecodeErrorKind::InvalidEscape { next })),
        }
        i += 2;
    }

    let n = buf.len();
    let (version, packaged) = if n >= 4 {
        let attrs = u16::from_be_bytes([buf[2], buf[3]]);
        let v = if attrs & ATTR_VERSION_2019 != 0 {
            Version::V2019
        } else {
            Version::V2013
        };
        (v, attrs & ATTR_PACKAGED != 0)
    } else {
        (Version::V2013, false)
    };
    let hlen = version.header_len(packaged);
    if n < hlen + 1 {
        return Err(err(
            last,
            DecodeErrorKind::TooShort {
                len: n,
                version,
                header_len: hlen,
            },
        ));
    }

    let found = buf[n - 1];
    let computed = xor(&buf[..n - 1]);
    if found != computed {
        return Err(err(
            escaped_offset(input, n - 1),
            DecodeErrorKind::Checksum { found, computed },
        ));
    }

    let attrs = u16::from_be_bytes([buf[2], buf[3]]);
    let declared = usize::from(attrs & ATTR_LEN_MASK);
    let actual = n - 1 - hlen;
    if declared != actual {
        return Err(err(
            escaped_offset(input, 2),
            DecodeErrorKind::BodyLength { declared, actual },
        ));
    }

    let msg_id = u16::from_be_bytes([buf[0], buf[1]]);
    let mut p = 4;
    let protocol_version = if version == Version::V2019 {
        p += 1;
        buf[4]
    } else {
        0
    };
    let phone_len = version.phone_len();
    let phone = Phone::copy_from(&buf[p..p + phone_len]);
    p += phone_len;
    let serial = u16::from_be_bytes([buf[p], buf[p + 1]]);
    p += 2;
    let package = if packaged {
        let pkg = Package {
            count: u16::from_be_bytes([buf[p], buf[p + 1]]),
            index: u16::from_be_bytes([buf[p + 2], buf[p + 3]]),
        };
        if !pkg.is_valid() {
            return Err(err(escaped_offset(input, p), DecodeErrorKind::Package(pkg)));
        }
        Some(pkg)
    } else {
        None
    };

    // The body is what follows the header, without the checksum.
    buf.truncate(n - 1);
    buf.drain(..hlen);
    Ok(Frame {
        header: Header {
            msg_id,
            version,
            protocol_version,
            encryption: ((attrs >> ATTR_ENCRYPTION_SHIFT) & 0x07) as u8,
            phone,
            serial,
            package,
        },
        body: buf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_offset_counts_escapes() {
        let input = [0x7e, 0x7d, 0x02, 0x11, 0x7d, 0x01, 0x22, 0x7e];
        assert_eq!(escaped_offset(&input, 0), 1);
        assert_eq!(escaped_offset(&input, 1), 3);
        assert_eq!(escaped_offset(&input, 2), 4);
        assert_eq!(escaped_offset(&input, 3), 6);
    }
}
