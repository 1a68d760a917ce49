//! One JT/T 808 frame: header, escaping, checksum, and the typed bodies the
//! pass-through adapter needs (0x8900/0x0900 pass-through, 0x0001/0x8001
//! general responses).
//!
//! A frame on the wire is `0x7e | header | body | checksum | 0x7e`, where the
//! checksum is the XOR of every unescaped header and body byte, and every 0x7e
//! or 0x7d between the two flags (checksum included) is escaped as
//! `0x7d 0x02` / `0x7d 0x01`.

use std::fmt;

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

const ATTR_LEN_MASK: u16 = 0x03ff;
const ATTR_ENCRYPTION_SHIFT: u16 = 10;
const ATTR_PACKAGED: u16 = 1 << 13;
const ATTR_VERSION_2019: u16 = 1 << 14;

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

/// A terminal phone number as carried in the header: the raw BCD bytes (6 in
/// 2013, 10 in 2019), kept as received.
///
/// Some terminals write the number in binary rather than BCD; such a phone still
/// decodes (the frame is not rejected), [`Phone::digits`] reports the offending
/// byte, and [`Phone::raw`] gives the bytes to key the terminal by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phone {
    bytes: [u8; 10],
    len: u8,
}

/// A phone number that cannot be turned into header bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneError {
    /// The digit string is empty.
    Empty,
    /// A character that is not an ASCII digit, at this character index.
    NotDigit {
        /// Character index in the input.
        index: usize,
        /// The character found.
        found: char,
    },
    /// More digits than the edition holds.
    TooLong {
        /// Digits given.
        digits: usize,
        /// Digits the edition holds (12 or 20).
        max: usize,
    },
    /// Raw bytes of a length that is neither 6 nor 10.
    RawLength(usize),
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Empty => write!(f, "phone number is empty"),
            PhoneError::NotDigit { index, found } => {
                write!(
                    f,
                    "phone number character {index} is {found:?}, not a digit"
                )
            }
            PhoneError::TooLong { digits, max } => {
                write!(f, "phone number has {digits} digits, at most {max} fit")
            }
            PhoneError::RawLength(n) => {
                write!(
                    f,
                    "phone of {n} bytes (a header holds 6 in 2013, 10 in 2019)"
                )
            }
        }
    }
}

impl std::error::Error for PhoneError {}

/// A phone byte that is not two BCD digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BcdError {
    /// Index of the byte within the phone field (0-based).
    pub index: usize,
    /// The byte's value.
    pub byte: u8,
}

impl fmt::Display for BcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "phone byte {} is 0x{:02x}, not two BCD digits (each nibble must be 0-9)",
            self.index, self.byte
        )
    }
}

impl std::error::Error for BcdError {}

impl Phone {
    /// Builds the BCD phone field from decimal digits, left-padded with zeros to
    /// 12 digits (2013) or 20 digits (2019).
    ///
    /// # Errors
    /// [`PhoneError::Empty`], [`PhoneError::NotDigit`] for any non-digit, and
    /// [`PhoneError::TooLong`] for more digits than the edition holds.
    pub fn from_digits(digits: &str, version: Version) -> Result<Phone, PhoneError> {
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some((index, found)) = digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(PhoneError::NotDigit { index, found });
        }
        let max = version.phone_digits();
        let given = digits.len(); // all ASCII, so bytes == characters
        if given > max {
            return Err(PhoneError::TooLong { digits: given, max });
        }
        let mut nibbles = [0u8; 20];
        for (slot, d) in nibbles[max - given..max].iter_mut().zip(digits.bytes()) {
            *slot = d - b'0';
        }
        let mut bytes = [0u8; 10];
        for (i, b) in bytes[..version.phone_len()].iter_mut().enumerate() {
            *b = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
        }
        Ok(Phone {
            bytes,
            len: version.phone_len() as u8,
        })
    }

    /// Wraps raw phone bytes as found in a header (6 or 10 bytes, BCD or not).
    ///
    /// # Errors
    /// [`PhoneError::RawLength`] for any other length.
    pub fn from_raw(raw: &[u8]) -> Result<Phone, PhoneError> {
        if raw.len() != 6 && raw.len() != 10 {
            return Err(PhoneError::RawLength(raw.len()));
        }
        Ok(Phone::copy_from(raw))
    }

    /// Copies up to 10 bytes; callers pass 6 or 10.
    fn copy_from(raw: &[u8]) -> Phone {
        let n = raw.len().min(10);
        let mut bytes = [0u8; 10];
        bytes[..n].copy_from_slice(&raw[..n]);
        Phone {
            bytes,
            len: n as u8,
        }
    }

    /// The phone bytes exactly as carried in the header.
    pub fn raw(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The edition whose phone field has this length.
    pub fn version(&self) -> Version {
        if self.len == 10 {
            Version::V2019
        } else {
            Version::V2013
        }
    }

    /// The number as decimal digits, leading zeros included (12 digits in 2013,
    /// 20 in 2019), so that `Phone::from_digits(&p.digits()?, v)` gives `p` back.
    ///
    /// # Errors
    /// [`BcdError`] naming the first byte with a nibble above 9.
    pub fn digits(&self) -> Result<String, BcdError> {
        let mut s = String::with_capacity(self.raw().len() * 2);
        for (index, &byte) in self.raw().iter().enumerate() {
            let (hi, lo) = (byte >> 4, byte & 0x0f);
            if hi > 9 || lo > 9 {
                return Err(BcdError { index, byte });
            }
            s.push(char::from(b'0' + hi));
            s.push(char::from(b'0' + lo));
        }
        Ok(s)
    }

    /// The raw bytes as lower-case hex (for logs and keys when the digits are bad).
    pub fn raw_hex(&self) -> String {
        let mut s = String::with_capacity(self.raw().len() * 2);
        for b in self.raw() {
            push_hex_byte(&mut s, *b);
        }
        s
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.digits() {
            Ok(d) => write!(f, "Phone({d})"),
            Err(_) => write!(f, "Phone(raw {})", self.raw_hex()),
        }
    }
}

impl fmt::Display for Phone {
    /// The digits, or `raw:<hex>` when the bytes are not BCD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.digits() {
            Ok(d) => f.write_str(&d),
            Err(_) => write!(f, "raw:{}", self.raw_hex()),
        }
    }
}

fn push_hex_byte(s: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    s.push(char::from(HEX[usize::from(b >> 4)]));
    s.push(char::from(HEX[usize::from(b & 0x0f)]));
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
    fn validate(&self, body_len: usize) -> Result<(), EncodeError> {
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
    fn write_raw(&self, body_len: usize, out: &mut [u8; 21]) -> usize {
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

/// Why a header and body could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The body is longer than the 1023 bytes one frame carries (sub-package it).
    BodyTooLong {
        /// Body bytes given.
        len: usize,
    },
    /// Encryption bits above 7 (the field has 3 bits).
    Encryption(u8),
    /// The phone's length does not fit the header's edition.
    PhoneLength {
        /// Phone bytes (6 or 10).
        phone_len: usize,
        /// The header's edition.
        version: Version,
    },
    /// A protocol-version byte set on a 2013 header, which does not carry one.
    ProtocolVersionIn2013(u8),
    /// Package fields with `index` outside `1..=count`.
    Package(Package),
    /// A sub-package size outside 2..=1023 bytes.
    MaxBody(usize),
    /// More than 65535 packets would be needed.
    TooManyPackets(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BodyTooLong { len } => write!(
                f,
                "body of {len} bytes is longer than one frame carries ({MAX_BODY_LEN}); sub-package it"
            ),
            EncodeError::Encryption(e) => {
                write!(f, "encryption {e} does not fit the 3-bit field (0-7)")
            }
            EncodeError::PhoneLength { phone_len, version } => write!(
                f,
                "a {version} header holds a {}-byte phone, this one has {phone_len}",
                version.phone_len()
            ),
            EncodeError::ProtocolVersionIn2013(v) => write!(
                f,
                "protocol version {v} given for a 2013 header, which carries none (only 2019 does)"
            ),
            EncodeError::Package(p) => write!(
                f,
                "package index {} of {} (indices run from 1 to the count)",
                p.index, p.count
            ),
            EncodeError::MaxBody(n) => write!(
                f,
                "sub-package body size {n} is outside 2..={MAX_BODY_LEN}"
            ),
            EncodeError::TooManyPackets(n) => {
                write!(f, "{n} packets needed, the package count field holds at most 65535")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

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

fn xor(bytes: &[u8]) -> u8 {
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// A 0x8900/0x0900 body with no type byte.
    EmptyPassthrough {
        /// The message id.
        msg_id: u16,
    },
    /// A 0x0001/0x8001 body that is not 5 bytes.
    ResponseLength {
        /// The message id.
        msg_id: u16,
        /// Body bytes received.
        len: usize,
    },
    /// One packet of a sub-packaged message: only the whole message has a typed body.
    Packet {
        /// The message id.
        msg_id: u16,
        /// The packet's package fields.
        package: Package,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::EmptyPassthrough { msg_id } => write!(
                f,
                "0x{msg_id:04x} body is empty (a pass-through body starts with its type byte)"
            ),
            BodyError::ResponseLength { msg_id, len } => write!(
                f,
                "0x{msg_id:04x} body has {len} bytes, a general response has 5 (reply serial, reply id, result)"
            ),
            BodyError::Packet { msg_id, package } => write!(
                f,
                "0x{msg_id:04x} packet {} of {}: reassemble the packets before parsing the body",
                package.index, package.count
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// A frame that could not be decoded: where, in the escaped bytes as received
/// (0 is the start flag), and which rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the escaped input.
    pub offset: usize,
    /// The rule broken.
    pub kind: DecodeErrorKind,
}

/// The rule a frame breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// No input at all.
    Empty,
    /// The first byte is not the 0x7e flag.
    MissingStartFlag {
        /// The byte found.
        found: u8,
    },
    /// The last byte is not the 0x7e flag (`None`: the input ends after the
    /// start flag).
    MissingEndFlag {
        /// The byte found.
        found: Option<u8>,
    },
    /// An unescaped 0x7e between the flags.
    FlagInside,
    /// 0x7d followed by something other than 0x01 or 0x02.
    InvalidEscape {
        /// The byte after 0x7d.
        next: u8,
    },
    /// 0x7d as the last byte before the end flag.
    LoneEscape,
    /// Fewer bytes between the flags than the header and checksum need.
    TooShort {
        /// Unescaped bytes between the flags (header, body and checksum).
        len: usize,
        /// The edition the attributes announce (2013 when they are cut off).
        version: Version,
        /// Header bytes that edition needs.
        header_len: usize,
    },
    /// The checksum byte differs from the XOR of header and body.
    Checksum {
        /// The checksum received.
        found: u8,
        /// The XOR computed.
        computed: u8,
    },
    /// The body-length field disagrees with the bytes received.
    BodyLength {
        /// What the field says.
        declared: usize,
        /// Body bytes received.
        actual: usize,
    },
    /// Package fields with `index` outside `1..=count`.
    Package(Package),
    /// The escaped frame is longer than the limit.
    TooLong {
        /// The limit in bytes, flags included.
        max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: ", self.offset)?;
        match &self.kind {
            DecodeErrorKind::Empty => write!(f, "no input (a frame starts and ends with 0x7e)"),
            DecodeErrorKind::MissingStartFlag { found } => {
                write!(f, "frame starts with 0x{found:02x}, not the 0x7e flag")
            }
            DecodeErrorKind::MissingEndFlag { found: Some(b) } => {
                write!(f, "frame ends with 0x{b:02x}, not the 0x7e flag")
            }
            DecodeErrorKind::MissingEndFlag { found: None } => {
                write!(f, "input ends after the start flag (no end flag)")
            }
            DecodeErrorKind::FlagInside => write!(
                f,
                "unescaped 0x7e inside the frame (0x7e must be sent as 0x7d 0x02)"
            ),
            DecodeErrorKind::InvalidEscape { next } => write!(
                f,
                "0x7d followed by 0x{next:02x} (only 0x01 and 0x02 may follow 0x7d)"
            ),
            DecodeErrorKind::LoneEscape => write!(f, "lone 0x7d at end of frame"),
            DecodeErrorKind::TooShort {
                len,
                version,
                header_len,
            } => write!(
                f,
                "frame of {len} bytes is shorter than a {version} header ({header_len} bytes) and checksum"
            ),
            DecodeErrorKind::Checksum { found, computed } => {
                write!(f, "checksum 0x{found:02x}, computed 0x{computed:02x}")
            }
            DecodeErrorKind::BodyLength { declared, actual } => {
                write!(f, "body-length field says {declared}, frame carries {actual}")
            }
            DecodeErrorKind::Package(p) => write!(
                f,
                "package index {} of {} (indices run from 1 to the count)",
                p.index, p.count
            ),
            DecodeErrorKind::TooLong { max } => {
                write!(f, "frame longer than the limit of {max} bytes")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

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

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn phone_digits_round_trip_and_pad() {
        let p = Phone::from_digits("13800138000", Version::V2013).unwrap();
        assert_eq!(p.raw(), &hex("013800138000")[..]);
        assert_eq!(p.digits().unwrap(), "013800138000");
        let p = Phone::from_digits("17299841738", Version::V2019).unwrap();
        assert_eq!(p.raw(), &hex("00000000017299841738")[..]);
        assert_eq!(
            Phone::from_digits("1234567890123", Version::V2013),
            Err(PhoneError::TooLong {
                digits: 13,
                max: 12
            })
        );
        assert_eq!(
            Phone::from_digits("12a4", Version::V2013),
            Err(PhoneError::NotDigit {
                index: 2,
                found: 'a'
            })
        );
        assert_eq!(
            Phone::from_digits("", Version::V2013),
            Err(PhoneError::Empty)
        );
        assert_eq!(
            Phone::from_digits("١٢", Version::V2013),
            Err(PhoneError::NotDigit {
                index: 0,
                found: '١'
            })
        );
    }

    #[test]
    fn escape_round_trip() {
        let mut out = Vec::new();
        escape_into(&[0x30, 0x7e, 0x08, 0x7d, 0x55], &mut out);
        assert_eq!(out, [0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55]);
    }

    #[test]
    fn escaped_offset_counts_escapes() {
        let input = [0x7e, 0x7d, 0x02, 0x11, 0x7d, 0x01, 0x22, 0x7e];
        assert_eq!(escaped_offset(&input, 0), 1);
        assert_eq!(escaped_offset(&input, 1), 3);
        assert_eq!(escaped_offset(&input, 2), 4);
        assert_eq!(escaped_offset(&input, 3), 6);
    }

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
