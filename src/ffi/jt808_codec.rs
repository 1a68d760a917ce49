//! `rrpc_jt808_decoder_*`, `rrpc_jt808_encode`, `rrpc_jt808_phone_from_digits`:
//! JT/T 808 frames for applications that handle them themselves (a streaming
//! decoder per connection and an encoder), and the header and frame views the
//! adapter's events share. No I/O and no threads.

use std::ffi::c_char;

use super::args::{arg_bytes, arg_out, arg_ref, arg_str, bytes_ptr, write_bytes_out};
use super::boundary::boundary;
use super::family::free_handle;
use super::handle::Castable;
use super::misc::rrpc_bool;
use super::rrpc_status::*;
use super::status::{rrpc_status, Failure};
use crate::jt808::{
    encode_frame, Frame, Header, Package, Phone, PhoneError, StreamDecoder, Version, MAX_FRAME_LEN,
};

/// A streaming JT/T 808 decoder for one TCP connection. Created by
/// `rrpc_jt808_decoder_new`, released by `rrpc_jt808_decoder_free`.
///
/// Threads: a decoder has no lock: use each one from one thread at a time (any
/// thread; different decoders on different threads at once).
pub struct rrpc_jt808_decoder {
    _private: [u8; 0],
}

/// A frame header, as decoded or to encode.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrpc_jt808_header {
    /// Message id, such as 0x8900.
    pub msg_id: u16,
    /// Protocol edition: 2013 or 2019 (bit 14 of the body attributes).
    pub version: u16,
    /// The 2019 protocol-version byte; 0 in 2013, where it is not carried.
    pub protocol_version: u8,
    /// Encryption bits (0 none, 1 RSA; 0-7).
    pub encryption: u8,
    /// Message serial number.
    pub serial: u16,
    /// Terminal phone number, raw BCD bytes as in the header: `phone_len` of them.
    pub phone: [u8; 10],
    /// 6 (2013) or 10 (2019).
    pub phone_len: usize,
    /// Package count when sub-packaged, 0 otherwise.
    pub package_count: u16,
    /// Package index (from 1) when sub-packaged, 0 otherwise.
    pub package_index: u16,
}

/// A decoded frame. Owned by the library: valid until the next call on the
/// object that produced it (or, in an event, until the callback returns).
#[repr(C)]
pub struct rrpc_jt808_frame {
    /// The header.
    pub header: rrpc_jt808_header,
    /// The phone as NUL-terminated decimal digits, leading zeros included (12
    /// digits in 2013, 20 in 2019); empty when `phone_bcd_error` is not -1.
    pub phone_digits: [c_char; 21],
    /// -1 when every phone byte is two BCD digits; otherwise the index of the
    /// first byte with a nibble above 9 (some terminals send binary numbers).
    /// The frame is valid either way: key the terminal by `header.phone`.
    pub phone_bcd_error: i32,
    /// The unescaped body; NULL when empty.
    pub body: *const u8,
    /// Body length in bytes.
    pub body_len: usize,
}

// ------------------------------------------------------------ views

/// A phone as C holds it inline: its raw bytes in front of 10, and how many.
pub(super) fn phone_view(p: &Phone) -> ([u8; 10], usize) {
    let raw = p.raw();
    let mut bytes = [0u8; 10];
    bytes[..raw.len()].copy_from_slice(raw);
    (bytes, raw.len())
}

/// A phone held inline by C (`rrpc_jt808_header`, the submit parameters).
pub(super) fn phone_from_view(bytes: &[u8; 10], len: usize) -> Result<Phone, PhoneError> {
    Phone::from_raw(bytes.get(..len).ok_or(PhoneError::RawLength(len))?)
}

/// A protocol edition given as its year.
fn version_arg(year: u16, name: &str) -> Result<Version, Failure> {
    Version::from_year(year).ok_or_else(|| {
        Failure::new(
            RRPC_STATUS_INVALID_ARGUMENT,
            format!("{name} {year} is neither 2013 nor 2019"),
        )
    })
}

fn header_view(h: &Header) -> rrpc_jt808_header {
    let (phone, phone_len) = phone_view(&h.phone);
    let (package_count, package_index) = h.package.map_or((0, 0), |p| (p.count, p.index));
    rrpc_jt808_header {
        msg_id: h.msg_id,
        version: h.version.year(),
        protocol_version: h.protocol_version,
        encryption: h.encryption,
        serial: h.serial,
        phone,
        phone_len,
        package_count,
        package_index,
    }
}

/// The view of a frame; its body pointer is valid while `f` is neither moved
/// nor dropped.
pub(super) fn frame_view(f: &Frame) -> rrpc_jt808_frame {
    let mut phone_digits = [0 as c_char; 21];
    let phone_bcd_error = match f.header.phone.digits() {
        Ok(d) => {
            for (slot, b) in phone_digits.iter_mut().zip(d.bytes().take(20)) {
                *slot = b as c_char;
            }
            -1
        }
        Err(e) => e.index as i32,
    };
    rrpc_jt808_frame {
        header: header_view(&f.header),
        phone_digits,
        phone_bcd_error,
        body: bytes_ptr(&f.body),
        body_len: f.body.len(),
    }
}

/// A C header to a Rust one.
pub(super) fn header_from_view(v: &rrpc_jt808_header) -> Result<Header, Failure> {
    let package = match (v.package_count, v.package_index) {
        (0, 0) => None,
        (count, index) => Some(Package { count, index }),
    };
    Ok(Header {
        msg_id: v.msg_id,
        version: version_arg(v.version, "version")?,
        protocol_version: v.protocol_version,
        encryption: v.encryption,
        phone: phone_from_view(&v.phone, v.phone_len)?,
        serial: v.serial,
        package,
    })
}

// ------------------------------------------------------------------ decoder

struct DecoderHandle {
    stream: StreamDecoder,
    /// The frame the last `_next` returned: its body backs the view.
    current: Option<Frame>,
}

impl Castable for DecoderHandle {
    type C = rrpc_jt808_decoder;
    const NAME: &'static str = "decoder";
}

/// Creates a streaming decoder for one connection: feed it bytes as they arrive
/// (any chunking), take frames out with `rrpc_jt808_decoder_next`. Bytes
/// outside frames are skipped; a frame longer than `max_frame_len` is reported
/// and dropped, and the decoder picks up at the next 0x7e. It never holds more
/// than `max_frame_len` bytes of an unfinished frame.
///
/// @param[in]  max_frame_len longest escaped frame, flags included; 0 for 2092
///                           (the longest the standard allows); else at least 15.
/// @param[out] out_decoder   receives the decoder; release it with
///                           `rrpc_jt808_decoder_free`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER     `out_decoder` is NULL.
/// @retval RRPC_STATUS_INVALID_ARGUMENT `max_frame_len` is 1-14.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_decoder_new(
    max_frame_len: usize,
    out_decoder: *mut *mut rrpc_jt808_decoder,
) -> rrpc_status {
    boundary("rrpc_jt808_decoder_new", || {
        // SAFETY: NULL-checked out-parameter.
        let out = unsafe { arg_out(out_decoder, "out_decoder") }?;
        let max = match max_frame_len {
            0 => MAX_FRAME_LEN,
            n if n < 15 => {
                return Err(Failure::new(
                    RRPC_STATUS_INVALID_ARGUMENT,
                    format!("max_frame_len {n} is below the shortest frame (15 bytes)"),
                ))
            }
            n => n,
        };
        let h = DecoderHandle {
            stream: StreamDecoder::new(max),
            current: None,
        };
        *out = h.into_c();
        Ok(())
    })
}

/// Releases a decoder and any frame it returned. NULL is ignored.
///
/// @param[in] decoder the decoder, or NULL.
/// @retval RRPC_STATUS_OK
///
/// Once, when no other thread uses the decoder.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_decoder_free(decoder: *mut rrpc_jt808_decoder) -> rrpc_status {
    free_handle("rrpc_jt808_decoder_free", decoder, |_: &DecoderHandle| {
        Ok(())
    })
}

/// Feeds the next chunk of the connection's bytes. Complete frames wait for
/// `rrpc_jt808_decoder_next`.
///
/// @param[in] decoder the decoder.
/// @param[in] bytes   the chunk; may be NULL when `len` is 0.
/// @param[in] len     the chunk's length in bytes.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `decoder` is NULL, or `bytes` is NULL with a length.
///
/// One thread at a time per decoder (it has no lock).
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_decoder_push(
    decoder: *mut rrpc_jt808_decoder,
    bytes: *const u8,
    len: usize,
) -> rrpc_status {
    boundary("rrpc_jt808_decoder_push", || {
        // One thread at a time per decoder, per the contract.
        let d = DecoderHandle::borrow_mut(decoder)?;
        // SAFETY: `len` readable bytes per the documented contract.
        let data = unsafe { arg_bytes(bytes, len, "bytes") }?;
        d.stream.push(data);
        Ok(())
    })
}

/// Makes the decoder lenient (true) or strict again (false, the default) for the frames
/// that complete from now on. A lenient decoder also takes frames from
/// terminals that leave 0x7d unescaped: a frame the strict reading refuses (an
/// invalid or lone escape, a wrong checksum or body length) is read again with
/// `0x7d 0x02` as 0x7e and every other 0x7d as itself, and kept when its
/// checksum and body length then hold. Frames a strict terminal sends decode
/// the same either way; about 1 in 256 corrupted frames may pass the second
/// reading's one-byte checksum.
///
/// @param[in] decoder the decoder.
/// @param[in] lenient true for lenient, false for strict.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_INVALID_ARGUMENT `lenient` is neither false nor true.
/// @retval RRPC_STATUS_NULL_POINTER `decoder` is NULL.
///
/// One thread at a time per decoder.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_decoder_set_lenient(
    decoder: *mut rrpc_jt808_decoder,
    lenient: rrpc_bool,
) -> rrpc_status {
    boundary("rrpc_jt808_decoder_set_lenient", || {
        // One thread at a time per decoder, per the contract.
        let d = DecoderHandle::borrow_mut(decoder)?;
        let escapes = super::jt808_adapter::escapes_arg(lenient, "lenient")?;
        d.stream.set_escapes(escapes);
        Ok(())
    })
}

/// Takes the next complete frame, in stream order. Unknown message ids are
/// frames like any other. A phone that is not BCD is not an error: see
/// `phone_bcd_error`.
///
/// @param[in]  decoder   the decoder.
/// @param[out] out_frame receives the frame when `*out_ready` is true; its body
///                       stays valid until the next call on this decoder.
/// @param[out] out_ready true when a frame was written; false when no complete
///                       frame is waiting (push more bytes).
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_MALFORMED_FRAME the next frame is invalid and was dropped;
///         `rrpc_last_error_message()` names the rule and the byte offset from
///         the frame's start flag, such as "byte 18: checksum 0x60, computed
///         0x61". Call again for the frames after it.
/// @retval RRPC_STATUS_NULL_POINTER `decoder`, `out_frame` or `out_ready` is NULL.
///
/// One thread at a time per decoder.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_decoder_next(
    decoder: *mut rrpc_jt808_decoder,
    out_frame: *mut rrpc_jt808_frame,
    out_ready: *mut rrpc_bool,
) -> rrpc_status {
    boundary("rrpc_jt808_decoder_next", || {
        // One thread at a time per decoder, per the contract.
        let d = DecoderHandle::borrow_mut(decoder)?;
        // SAFETY: NULL-checked out-parameters.
        let frame_out = unsafe { arg_out(out_frame, "out_frame") }?;
        let ready_out = unsafe { arg_out(out_ready, "out_ready") }?;
        d.current = None;
        match d.stream.next_frame().transpose()? {
            None => *ready_out = 0,
            Some(f) => {
                *frame_out = frame_view(d.current.insert(f));
                *ready_out = 1;
            }
        }
        Ok(())
    })
}

/// Encodes one frame (flags, header, body, checksum, escaping) into `buf`.
///
/// @param[in]  header   the header: `version` must match `phone_len` (2013: 6,
///                      2019: 10), `protocol_version` 0 in 2013, `encryption`
///                      0-7, package fields both 0 or `1 <= index <= count`.
/// @param[in]  body     the body, at most 1023 bytes; may be NULL when
///                      `body_len` is 0.
/// @param[in]  body_len the body's length in bytes.
/// @param[out] buf      receives the frame; may be NULL when `size` is 0.
/// @param[in]  size     bytes available in `buf`.
/// @param[out] out_len  receives the frame's length; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or smaller than the frame;
///         nothing written, `out_len` receives the length needed.
/// @retval RRPC_STATUS_INVALID_ARGUMENT the header or body breaks a rule above
///         (the message says which).
/// @retval RRPC_STATUS_NULL_POINTER `header` is NULL, or `body` is NULL with a
///         length.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_encode(
    header: *const rrpc_jt808_header,
    body: *const u8,
    body_len: usize,
    buf: *mut u8,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    boundary("rrpc_jt808_encode", || {
        // SAFETY: pointer contracts documented above.
        let h = unsafe { arg_ref(header, "header") }?;
        let body = unsafe { arg_bytes(body, body_len, "body") }?;
        let h = header_from_view(h)?;
        let mut wire = Vec::new();
        encode_frame(&h, body, &mut wire)?;
        // SAFETY: `buf` has `size` writable bytes per the documented contract.
        unsafe { write_bytes_out(&wire, buf, size, out_len) }
    })
}

/// Turns a phone number in decimal digits into the raw BCD header bytes,
/// left-padded with zeros: 6 bytes (12 digits) for 2013, 10 bytes (20 digits)
/// for 2019.
///
/// @param[in]  digits    NUL-terminated ASCII digits, such as "13800138000".
/// @param[in]  version   2013 or 2019.
/// @param[out] buf       receives the bytes (10 always fit).
/// @param[in]  size      size of `buf` in bytes.
/// @param[out] out_len   receives 6 or 10; may be NULL.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_INVALID_ARGUMENT empty, a non-digit, too many digits, or
///         a version that is neither 2013 nor 2019.
/// @retval RRPC_STATUS_BUFFER_TOO_SMALL `buf` is NULL or smaller than the phone
///         (`out_len` receives the length needed).
/// @retval RRPC_STATUS_NULL_POINTER `digits` is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8 `digits` is not UTF-8.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_jt808_phone_from_digits(
    digits: *const c_char,
    version: u16,
    buf: *mut u8,
    size: usize,
    out_len: *mut usize,
) -> rrpc_status {
    boundary("rrpc_jt808_phone_from_digits", || {
        // SAFETY: pointer contracts documented above.
        let digits = unsafe { arg_str(digits, "digits") }?;
        let p = Phone::from_digits(digits, version_arg(version, "version")?)?;
        // SAFETY: `buf` has `size` writable bytes per the documented contract.
        unsafe { write_bytes_out(p.raw(), buf, size, out_len) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        unsafe { CStr::from_ptr(super::super::boundary::last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn decoder_reports_malformed_frames_with_offset_and_rule() {
        let mut d = std::ptr::null_mut();
        assert_eq!(rrpc_jt808_decoder_new(0, &mut d), RRPC_STATUS_OK);
        let good = [
            0x7e, 0x80, 0x01, 0x00, 0x05, 0x01, 0x23, 0x45, 0x67, 0x89, 0x00, 0x00, 0x0a, 0x00,
            0x64, 0x02, 0x00, 0x00, 0x61, 0x7e,
        ];
        let mut bad = good;
        bad[18] = 0x60;
        let mut all = bad.to_vec();
        all.extend_from_slice(&good);
        assert_eq!(
            rrpc_jt808_decoder_push(d, all.as_ptr(), all.len()),
            RRPC_STATUS_OK
        );
        let mut f = std::mem::MaybeUninit::<rrpc_jt808_frame>::zeroed();
        let mut ready = 0u8;
        assert_eq!(
            rrpc_jt808_decoder_next(d, f.as_mut_ptr(), &mut ready),
            RRPC_STATUS_MALFORMED_FRAME
        );
        assert_eq!(
            last_error(),
            "rrpc_jt808_decoder_next: byte 18: checksum 0x60, computed 0x61"
        );
        assert_eq!(
            rrpc_jt808_decoder_next(d, f.as_mut_ptr(), &mut ready),
            RRPC_STATUS_OK
        );
        assert_eq!(ready, 1);
        let f = unsafe { f.assume_init() };
        assert_eq!(f.header.msg_id, 0x8001);
        assert_eq!(f.header.version, 2013);
        assert_eq!(&f.header.phone[..f.header.phone_len], &good[5..11]);
        let digits = unsafe { CStr::from_ptr(f.phone_digits.as_ptr()) };
        assert_eq!(digits.to_str().unwrap(), "012345678900");
        assert_eq!(f.phone_bcd_error, -1);
        let body = unsafe { std::slice::from_raw_parts(f.body, f.body_len) };
        assert_eq!(body, &good[13..18]);
        let mut f2 = std::mem::MaybeUninit::<rrpc_jt808_frame>::zeroed();
        assert_eq!(
            rrpc_jt808_decoder_next(d, f2.as_mut_ptr(), &mut ready),
            RRPC_STATUS_OK
        );
        assert_eq!(ready, 0);
        assert_eq!(rrpc_jt808_decoder_free(d), RRPC_STATUS_OK);
    }

    #[test]
    fn encode_reports_the_needed_size() {
        let phone_into = |buf: &mut [u8], len: &mut usize| {
            rrpc_jt808_phone_from_digits(
                c"13800138000".as_ptr(),
                2013,
                buf.as_mut_ptr(),
                buf.len(),
                len,
            )
        };
        let mut raw = [0u8; 10];
        let mut plen = 0usize;
        assert_eq!(phone_into(&mut raw, &mut plen), RRPC_STATUS_OK);
        assert_eq!(plen, 6);
        let mut short = [0u8; 5];
        let mut need = 0usize;
        assert_eq!(
            phone_into(&mut short, &mut need),
            RRPC_STATUS_BUFFER_TOO_SMALL
        );
        assert_eq!((need, short), (6, [0; 5]), "only the length is written");
        let h = rrpc_jt808_header {
            msg_id: 0x8900,
            version: 2013,
            protocol_version: 0,
            encryption: 0,
            serial: 1,
            phone: raw,
            phone_len: plen,
            package_count: 0,
            package_index: 0,
        };
        let body = [0x41, 0x7e];
        let mut need = 0usize;
        assert_eq!(
            rrpc_jt808_encode(&h, body.as_ptr(), 2, std::ptr::null_mut(), 0, &mut need),
            RRPC_STATUS_BUFFER_TOO_SMALL
        );
        let mut buf = vec![0u8; need];
        assert_eq!(
            rrpc_jt808_encode(&h, body.as_ptr(), 2, buf.as_mut_ptr(), buf.len(), &mut need),
            RRPC_STATUS_OK
        );
        let f = crate::jt808::decode_frame(&buf).unwrap();
        assert_eq!(f.body, body);
        let bad = rrpc_jt808_header { version: 2019, ..h };
        assert_eq!(
            rrpc_jt808_encode(
                &bad,
                body.as_ptr(),
                2,
                buf.as_mut_ptr(),
                buf.len(),
                &mut need
            ),
            RRPC_STATUS_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("2019 header holds a 10-byte phone"),
            "{}",
            last_error()
        );
    }
}
