//! The protocol edition, the sub-package fields, the header, and a whole frame.

use std::fmt;

use super::body::{Body, BodyError, BodyKind};
use super::encode::{encode_frame, xor, EncodeError};
use super::phone::Phone;
use super::{ATTR_ENCRYPTION_SHIFT, ATTR_LEN_MASK, ATTR_PACKAGED, ATTR_VERSION_2019, MAX_BODY_LEN};

/// The protocol edition a frame follows, from bit 14 of the body attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// JT/T 808-2013: 6-byte BCD phone, no protocol-version byte.
    V2013,
    /// JT/T 808-2019: version bit set, protocol-version byte, 10-byte BCD phone.
    V2019,
}

impl Version {
    /// Bytes of the terminal phone number in this edition (6 or 10).
    pub const fn phone_len(self) -> usize {
        match self {
            Version::V2013 => 6,
            Version::V2019 => 10,
        }
    }

    /// Digits of the terminal phone number in this edition (12 or 20).
    pub const fn phone_digits(self) -> usize {
        self.phone_len() * 2
    }

    /// Header bytes in this edition, with or without the package fields
    /// (12/16 in 2013, 17/21 in 2019).
    pub const fn header_len(self, packaged: bool) -> usize {
        let base = match self {
            Version::V2013 => 12,
            Version::V2019 => 17,
        };
        if packaged {
            base + 4
        } else {
            base
        }
    }

    /// The edition's year, 2013 or 2019.
    pub const fn year(self) -> u16 {
        match self {
            Version::V2013 => 2013,
            Version::V2019 => 2019,
        }
    }

    /// The edition for a year, if it is 2013 or 2019.
    pub fn from_year(year: u16) -> Option<Version> {
        match year {
            2013 => Some(Version::V2013),
            2019 => Some(Version::V2019),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.year())
    }
}

/// The sub-package fields of a header: this packet's place in a long message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Package {
    /// Total packets of the message (at least 1).
    pub count: u16,
    /// This packet's index, from 1 to `count`.
    pub index: u16,
}

impl Package {
    /// Whether the fields are consistent: `1 <= index <= count`.
    pub fn is_valid(&self) -> bool {
        self.count >= 1 && self.index >= 1 && self.index <= self.count
    }
}

/// A frame header. The body length is not stored: encoding derives it from the
/// body, and decoding checks the field against the bytes received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Message id, e.g. 0x8900.
    pub msg_id: u16,
    /// Protocol edition; must match the phone's length.
    pub version: Version,
    /// The 2019 protocol-version byte (0 in 2013, where it is not carried).
    pub protocol_version: u8,
    /// Encryption bits (10-12 of the attributes): 0 none, 1 RSA; 3 bits.
    pub encryption: u8,
    /// Terminal phone number.
    pub phone: Phone,
    /// Message serial number (counts per terminal, wraps at 65535).
    pub serial: u16,
    /// Package count and index when the message is sub-packaged.
    pub package: Option<Package>,
}

impl Header {
    /// A header for `msg_id` to or from `phone`: the edition follows the phone
    /// (2019 when it has 10 bytes, with protocol version 1), no encryption, not
    /// sub-packaged.
    pub fn new(msg_id: u16, phone: Phone, serial: u16) -> Header {
        let version = phone.version();
        Header {
            msg_id,
            version,
            protocol_version: if version == Version::V2019 { 1 } else { 0 },
            encryption: 0,
            phone,
            serial,
            package: None,
        }
    }

    /// Header bytes on the wire, before escaping (12 to 21).
    pub fn encoded_len(&self) -> usize {
        self.version.header_len(self.package.is_some())
    }

    /// Checks the header can be encoded with a body of `body_len` bytes.
    pub(super) fn validate(&self, body_len: usize) -> Result<(), EncodeError> {
        if body_len > MAX_BODY_LEN {
            return Err(EncodeError::BodyTooLong { len: body_len });
        }
        if self.encryption > 7 {
            return Err(EncodeError::Encryption(self.encryption));
        }
        if self.phone.version() != self.version {
            return Err(EncodeError::PhoneLength {
                phone_len: self.phone.raw().len(),
                version: self.version,
            });
        }
        if self.version == Version::V2013 && self.protocol_version != 0 {
            return Err(EncodeError::ProtocolVersionIn2013(self.protocol_version));
        }
        if let Some(p) = self.package {
            if !p.is_valid() {
                return Err(EncodeError::Package(p));
            }
        }
        Ok(())
    }

    /// Writes the unescaped header for a body of `body_len` bytes; returns the
    /// number of bytes written (12 to 21). `body_len` must be at most 1023.
    pub(super) fn write_raw(&self, body_len: usize, out: &mut [u8; 21]) -> usize {
        let mut attrs = (body_len as u16) & ATTR_LEN_MASK;
        attrs |= u16::from(self.encryption & 0x07) << ATTR_ENCRYPTION_SHIFT;
        if self.package.is_some() {
            attrs |= ATTR_PACKAGED;
        }
        if self.version == Version::V2019 {
            attrs |= ATTR_VERSION_2019;
        }
        out[0..2].copy_from_slice(&self.msg_id.to_be_bytes());
        out[2..4].copy_from_slice(&attrs.to_be_bytes());
        let mut n = 4;
        if self.version == Version::V2019 {
            out[n] = self.protocol_version;
            n += 1;
        }
        let phone = self.phone.raw();
        out[n..n + phone.len()].copy_from_slice(phone);
        n += phone.len();
        out[n..n + 2].copy_from_slice(&self.serial.to_be_bytes());
        n += 2;
        if let Some(p) = self.package {
            out[n..n + 2].copy_from_slice(&p.count.to_be_bytes());
            out[n + 2..n + 4].copy_from_slice(&p.index.to_be_bytes());
            n += 4;
        }
        n
    }
}

/// A decoded frame, or a whole message put back together from sub-packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header as received.
    pub header: Header,
    /// The unescaped body.
    pub body: Vec<u8>,
}

impl Frame {
    /// Encodes this frame and appends it to `out` (see [`encode_frame`]).
    ///
    /// # Errors
    /// As [`encode_frame`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_frame(&self.header, &self.body, out)
    }

    /// The checksum this frame has on the wire: the XOR of the unescaped header
    /// and body bytes (for a body over 1023 bytes, as if the length field held
    /// its low 10 bits).
    pub fn checksum(&self) -> u8 {
        let mut raw = [0u8; 21];
        let hlen = self.header.write_raw(self.body.len(), &mut raw);
        xor(&raw[..hlen]) ^ xor(&self.body)
    }

    /// Which typed body this message id has (from the id alone).
    pub fn body_kind(&self) -> BodyKind {
        BodyKind::of(self.header.msg_id)
    }

    /// Parses the body by message id: pass-through for 0x8900/0x0900, general
    /// response for 0x0001/0x8001, [`Body::Other`] for anything else.
    ///
    /// # Errors
    /// [`BodyError::Packet`] when this frame is one packet of a sub-packaged
    /// pass-through or response (the type byte sits in the first packet only:
    /// reassemble first), and the errors of [`Body::parse`].
    pub fn parse_body(&self) -> Result<Body<'_>, BodyError> {
        if let Some(p) = self.header.package {
            if self.body_kind() != BodyKind::Other {
                return Err(BodyError::Packet {
                    msg_id: self.header.msg_id,
                    package: p,
                });
            }
        }
        Body::parse(self.header.msg_id, &self.body)
    }
}
