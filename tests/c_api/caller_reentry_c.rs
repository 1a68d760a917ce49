//! Re-entrancy from a caller's response callback, from C
//! (tests/c/caller_reentry_harness.c): stopping, yielding or freeing a device
//! client, freeing the caller or making a blocking call from inside the callback
//! returns RRPC_STATUS_WRONG_STATE with a message, never a panic, and nothing
//! leaks (also run under valgrind).

use crate::common;
use crate::common::Broker;

fn client_and_caller_calls_inside_a_response_callback_are_refused_cleanly() {
    let exe = common::c_harness("caller_reentry_harness.c", "caller_reentry_harness");
    let broker = Broker::rumqttd();
    let stderr = common::run_c_harness_args(&exe, &[broker.port.to_string()]);
    assert!(!stderr.contains("panic"), "{stderr}");
}

fn refused_calls_inside_a_response_callback_run_clean_under_valgrind() {
    let exe = common::c_harness("caller_reentry_harness.c", "caller_reentry_harness_vg");
    let broker = Broker::rumqttd();
    common::run_c_harness_under_valgrind_args(
        &exe,
        "caller_reentry_harness.log",
        &[broker.port.to_string()],
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        client_and_caller_calls_inside_a_response_callback_are_refused_cleanly needs ["cmake", "cc"],
        refused_calls_inside_a_response_callback_run_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
