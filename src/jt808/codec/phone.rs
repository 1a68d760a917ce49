//! The terminal phone number of a header: BCD digits, or raw bytes as received.

use std::fmt;

use super::frame::Version;

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The digit string is empty.
    #[error("phone number is empty")]
    Empty,
    /// A character that is not an ASCII digit, at this character index.
    #[error("phone number character {index} is {found:?}, not a digit")]
    NotDigit {
        /// Character index in the input.
        index: usize,
        /// The character found.
        found: char,
    },
    /// More digits than the edition holds.
    #[error("phone number has {digits} digits, at most {max} fit")]
    TooLong {
        /// Digits given.
        digits: usize,
        /// Digits the edition holds (12 or 20).
        max: usize,
    },
    /// Raw bytes of a length that is neither 6 nor 10.
    #[error("phone of {0} bytes (a header holds 6 in 2013, 10 in 2019)")]
    RawLength(usize),
}

/// A phone byte that is not two BCD digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("phone byte {index} is 0x{byte:02x}, not two BCD digits (each nibble must be 0-9)")]
pub struct BcdError {
    /// Index of the byte within the phone field (0-based).
    pub index: usize,
    /// The byte's value.
    pub byte: u8,
}

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
    pub(super) fn copy_from(raw: &[u8]) -> Phone {
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
        crate::encoding::hex(self.raw())
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
}
