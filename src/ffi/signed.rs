//! `rrpc_credentials`: what a device presents in its MQTT CONNECT, in fixed-size
//! fields (no allocation to free). `rrpc_credentials_*` write it; a session's
//! sign callback (`rrpc_mqtt_config.sign`) fills it before every connection
//! attempt. Built with either of them; the header declares it in every build.

use std::ffi::c_char;

/// Bytes of `rrpc_credentials.client_id` and `.username`, the NUL included: room
/// for the longest identities the credentials accept (128 bytes each).
pub const RRPC_CREDENTIALS_ID_SIZE: usize = 384;
/// Bytes of `rrpc_credentials.password`, the NUL included.
pub const RRPC_CREDENTIALS_PASSWORD_SIZE: usize = 128;
/// Bytes of `rrpc_credentials.host`, the NUL included.
pub const RRPC_CREDENTIALS_HOST_SIZE: usize = 256;

/// What a device presents in its MQTT CONNECT, and where it connects: each string
/// NUL-terminated. `password` is derived from the device secret: clear the struct
/// (for example with memset) when it is no longer needed.
#[repr(C)]
pub struct rrpc_credentials {
    /// The MQTT client id of the CONNECT.
    pub client_id: [c_char; RRPC_CREDENTIALS_ID_SIZE],
    /// The MQTT user name of the CONNECT.
    pub username: [c_char; RRPC_CREDENTIALS_ID_SIZE],
    /// The MQTT password of the CONNECT: a signature made with the device's
    /// secret, itself a secret.
    pub password: [c_char; RRPC_CREDENTIALS_PASSWORD_SIZE],
    /// The cloud's MQTT host for this device.
    pub host: [c_char; RRPC_CREDENTIALS_HOST_SIZE],
    /// 8883 with TLS, 1883 without.
    pub port: u16,
}

/// The NUL-terminated UTF-8 string in `field`, if it is one.
#[cfg(feature = "session")]
pub(crate) fn field_str(field: &[c_char]) -> Option<&str> {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes = unsafe { std::slice::from_raw_parts(field.as_ptr().cast::<u8>(), field.len()) };
    std::ffi::CStr::from_bytes_until_nul(bytes)
        .ok()?
        .to_str()
        .ok()
}

/// Zeroes `c` (its password is a secret) in a way the compiler keeps.
#[cfg(feature = "session")]
pub(crate) fn wipe(c: &mut rrpc_credentials) {
    // SAFETY: `c` is a valid, exclusively borrowed plain-data struct; all zero
    // bytes are a valid value of it.
    unsafe { std::ptr::write_volatile(c as *mut rrpc_credentials, std::mem::zeroed()) };
}

/// `s` and a NUL into `field`, the rest zeroed; `s` fits (checked by the writer).
#[cfg(feature = "credentials")]
pub(crate) fn copy_field(field: &mut [c_char], s: &str) {
    field.fill(0);
    for (d, &b) in field.iter_mut().zip(s.as_bytes()) {
        *d = b as c_char;
    }
}
