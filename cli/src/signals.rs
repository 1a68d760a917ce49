//! SIGINT and SIGTERM as a flag: the long-running commands (`broker`, `device`)
//! poll it and shut down cleanly. The handler only stores into an atomic, which is
//! async-signal-safe.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler only
        // stores into an atomic; the pointers passed are valid for the call.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Waits for SIGINT or SIGTERM, or until `stop_early` says so (checked every 50 ms).
/// Returns the signal, or `None` when `stop_early` ended the wait.
pub fn wait(mut stop_early: impl FnMut() -> bool) -> Option<i32> {
    loop {
        if let Some(s) = received() {
            return Some(s);
        }
        if stop_early() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `SIGINT` / `SIGTERM` for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
