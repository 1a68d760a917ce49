//! The panic boundary and the thread-local last-error message.
//!
//! Every exported function that returns a status runs its body through
//! [`boundary`]: a panic becomes `RRPC_STATUS_PANIC`, an error becomes its status
//! (see `status.rs`), and either records the message that
//! `rrpc_last_error_message()` returns on the calling thread.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{rrpc_status, Failure};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs `body`, maps its error or a panic to a status code and records the
/// message, prefixed with the function's name.
pub(crate) fn boundary(
    name: &'static str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> rrpc_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => rrpc_status::RRPC_STATUS_OK,
        Ok(Err(f)) => {
            set_last_error(&format!("{name}: {}", f.message));
            f.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("{name}: internal panic: {what}"));
            rrpc_status::RRPC_STATUS_PANIC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        let st = boundary("rrpc_test", || panic!("boom at the boundary"));
        assert_eq!(st, rrpc_status::RRPC_STATUS_PANIC);
        let msg = last();
        assert!(
            msg.contains("rrpc_test") && msg.contains("boom at the boundary"),
            "{msg}"
        );
    }

    #[test]
    fn errors_set_the_message_and_success_keeps_it() {
        let st = boundary("rrpc_test", || {
            Err(Failure::new(rrpc_status::RRPC_STATUS_BUSY, "queue full"))
        });
        assert_eq!(st, rrpc_status::RRPC_STATUS_BUSY);
        assert_eq!(boundary("rrpc_ok", || Ok(())), rrpc_status::RRPC_STATUS_OK);
        assert_eq!(last(), "rrpc_test: queue full");
    }
}
