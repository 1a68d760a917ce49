//! The monotonic clock the built-in transport feeds the router with.

/// Milliseconds of `CLOCK_MONOTONIC`: the clock C code reads with
/// `clock_gettime(CLOCK_MONOTONIC, ...)`, so deadlines handed to C compare
/// directly with it.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on
    // the platforms this crate builds for.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}
