//! Encoding: header and body into one escaped frame with its checksum.

use super::frame::{Header, Package, Version};
use super::{ESCAPE, FLAG, MAX_BODY_LEN};

/// Why a header and body could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body is longer than the 1023 bytes one frame carries (sub-package it).
    #[error(
        "body of {len} bytes is longer than one frame carries ({MAX_BODY_LEN}); sub-package it"
    )]
    BodyTooLong {
        /// Body bytes given.
        len: usize,
    },
    /// Encryption bits above 7 (the field has 3 bits).
    #[error("encryption {0} does not fit the 3-bit field (0-7)")]
    Encryption(u8),
    /// The phone's length does not fit the header's edition.
    #[error("a {version} header holds a {}-byte phone, this one has {phone_len}", .version.phone_len())]
    PhoneLength {
        /// Phone bytes (6 or 10).
        phone_len: usize,
        /// The header's edition.
        version: Version,
    },
    /// A protocol-version byte set on a 2013 header, which does not carry one.
    #[error("protocol version {0} given for a 2013 header, which carries none (only 2019 does)")]
    ProtocolVersionIn2013(u8),
    /// Package fields with `index` outside `1..=count`.
    #[error("package index {} of {} (indices run from 1 to the count)", .0.index, .0.count)]
    Package(Package),
    /// A sub-package size outside 2..=1023 bytes.
    #[error("sub-package body size {0} is outside 2..={MAX_BODY_LEN}")]
    MaxBody(usize),
    /// More than 65535 packets would be needed.
    #[error("{0} packets needed, the package count field holds at most 65535")]
    TooManyPackets(usize),
}

/// Appends `src` to `out` with 0x7e and 0x7d escaped.
fn escape_into(src: &[u8], out: &mut Vec<u8>) {
    // Room for the worst case (every byte escaped), written by index, then cut to
    // what was written: one capacity check per call instead of one per byte.
    let start = out.len();
    out.resize(start + 2 * src.len(), 0);
    let buf = &mut out[start..];
    let (mut w, mut rest) = (0, src);
    while let Some(i) = rest.iter().position(|&b| b == FLAG || b == ESCAPE) {
        if i > 0 {
            buf[w..w + i].copy_from_slice(&rest[..i]);
            w += i;
        }
        buf[w] = ESCAPE;
        buf[w + 1] = rest[i] - 0x7c; // 0x7e -> 0x02, 0x7d -> 0x01
        w += 2;
        rest = &rest[i + 1..];
    }
    buf[w..w + rest.len()].copy_from_slice(rest);
    w += rest.len();
    out.truncate(start + w);
}

/// The XOR of `bytes`: the frame checksum.
pub(super) fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc ^ b)
}

/// Encodes one frame (flags, header, body, checksum, escaping) and appends it to
/// `out`; `out` is not cleared, so frames can be written back to back.
///
/// # Errors
/// [`EncodeError`] for a body over 1023 bytes, encryption above 7, a phone whose
/// length does not match `header.version`, a protocol version on a 2013 header,
/// or package fields outside `1 <= index <= count`. Nothing is appended on error.
pub fn encode_frame(header: &Header, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    header.validate(body.len())?;
    let mut raw = [0u8; 21];
    let hlen = header.write_raw(body.len(), &mut raw);
    let checksum = xor(&raw[..hlen]) ^ xor(body);
    out.reserve(hlen + body.len() + 4);
    out.push(FLAG);
    escape_into(&raw[..hlen], out);
    escape_into(body, out);
    escape_into(&[checksum], out);
    out.push(FLAG);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trip() {
        let mut out = Vec::new();
        escape_into(&[0x30, 0x7e, 0x08, 0x7d, 0x55], &mut out);
        assert_eq!(out, [0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55]);
    }
}
