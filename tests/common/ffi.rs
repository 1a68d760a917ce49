//! The C API called from Rust as a C program calls it: a settings struct's
//! defaults, and the thread's last error message.

use std::ffi::CStr;
use std::mem::{size_of, MaybeUninit};

use rrpc::ffi::misc::rrpc_last_error_message;
use rrpc::ffi::rrpc_status;

/// The defaults that `init` (an `rrpc_*_config_init`) writes into a `T` the size
/// of this library's: `c_defaults(rrpc_mqtt_config_init)`.
pub fn c_defaults<T>(init: extern "C" fn(*mut T, usize) -> rrpc_status) -> T {
    let mut settings = MaybeUninit::<T>::uninit();
    assert_eq!(
        init(settings.as_mut_ptr(), size_of::<T>()),
        rrpc_status::RRPC_STATUS_OK,
        "{}_init",
        std::any::type_name::<T>()
    );
    // SAFETY: `init` succeeded, so it wrote every field of the struct.
    unsafe { settings.assume_init() }
}

/// Expects `st` to be `RRPC_STATUS_OK`; otherwise fails with it and this thread's
/// last error message.
#[track_caller]
pub fn assert_ok(st: rrpc_status) {
    assert_eq!(st, rrpc_status::RRPC_STATUS_OK, "{}", last_error());
}

/// `rrpc_last_error_message()` of this thread, copied.
pub fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string, never NULL, valid until
    // this thread's next call into it.
    unsafe { CStr::from_ptr(rrpc_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}
