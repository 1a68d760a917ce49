//! Thread stress from C (tests/c/thread_stress.c): callers calling devices through
//! Mosquitto while other threads reply by token, add and remove devices, replace the
//! callbacks and free the replaced user_data at once, and poll the client's state.
//!
//! Built twice: with ThreadSanitizer, which reports data races in the C program and
//! between it and the threads the library calls it from (a callback run after its
//! release, or two at once, races with the free of its user_data), and with
//! AddressSanitizer + UndefinedBehaviorSanitizer, which report the same misuse as a
//! use after free, plus leaks at exit. The Rust library is not instrumented: races
//! inside it are out of ThreadSanitizer's sight (Rust's type system rules out data
//! races in safe code; the unsafe FFI layer is what these runs exercise), and its
//! internal locks are invisible too, so the C program orders its own accesses with
//! its own atomics and mutexes. Valgrind's helgrind and DRD were not chosen: they do
//! not understand the futex-based locks and atomics of Rust's std and tokio, so they
//! report thousands of false races inside the library and no pass/fail is possible.
//!
//! `RRPC_STRESS_SECONDS` sets how long each run lasts (default 5).

use std::process::Command;

use crate::common;
use crate::common::cmake::{sanitizer_env, sanitizer_flags, SANITIZERS};
use crate::common::Broker;

fn seconds() -> String {
    std::env::var("RRPC_STRESS_SECONDS").unwrap_or_else(|_| "5".to_owned())
}

/// Builds the stress program with `sanitizers` and runs it against Mosquitto; it must
/// exit 0, print its checks, and no sanitizer may report anything.
fn stress(sanitizers: &str, name: &str) {
    let mut flags = sanitizer_flags(sanitizers);
    // C11 for <stdatomic.h> (the harnesses default to C99).
    flags.extend(["-std=c11".to_owned(), "-pthread".to_owned()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let exe = common::c_harness_with("thread_stress.c", name, &flags);
    let broker = Broker::mosquitto();
    let out = Command::new(&exe)
        .args([broker.port.to_string(), seconds()])
        .envs(sanitizer_env())
        .output()
        .expect("run thread_stress");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{sanitizers}: {stdout}");
    assert!(
        out.status.success(),
        "thread_stress ({sanitizers}) failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("checks passed"), "{stdout}\n{stderr}");
    for report in [
        "WARNING: ThreadSanitizer",
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
    ] {
        assert!(!stderr.contains(report), "{report}:\n{stderr}");
    }
}

fn many_threads_reply_churn_devices_and_swap_callbacks_under_tsan() {
    stress("thread", "thread_stress_tsan");
}

fn many_threads_reply_churn_devices_and_swap_callbacks_under_asan() {
    stress(SANITIZERS, "thread_stress_asan");
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        many_threads_reply_churn_devices_and_swap_callbacks_under_tsan needs ["mosquitto", "cmake", "cc"],
        many_threads_reply_churn_devices_and_swap_callbacks_under_asan needs ["mosquitto", "cmake", "cc"],
    ]
}
