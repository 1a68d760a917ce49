//! Callback release from C (tests/c/release_harness.c): a callback sleeping on
//! another thread is waited for by the call that replaces or removes it, never
//! runs after, and cannot release itself from inside. The router and log cases
//! need no network; the client cases run against an embedded broker. Also run
//! under valgrind, which reports any touch of user_data freed after a release.

use crate::common;
use crate::common::Broker;

fn harness(name: &str) -> std::path::PathBuf {
    common::c_harness_with("release_harness.c", name, &["-pthread"])
}

fn args(broker: &Broker) -> Vec<String> {
    vec![broker.port.to_string(), common::free_port().to_string()]
}

fn released_callbacks_are_waited_for_and_never_run_again() {
    let exe = harness("release_harness");
    let broker = Broker::rumqttd();
    let stderr = common::run_c_harness_args(&exe, &args(&broker));
    // The failed connection is returned to start (and told to the callback): the
    // library does not also print it.
    assert!(
        !stderr.contains("could not connect"),
        "an error returned to the caller was logged again:\n{stderr}"
    );
}

fn callback_release_runs_clean_under_valgrind() {
    let exe = harness("release_harness_vg");
    let broker = Broker::rumqttd();
    common::run_c_harness_under_valgrind_args(&exe, "release_harness.log", &args(&broker));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        released_callbacks_are_waited_for_and_never_run_again needs ["cmake", "cc"],
        callback_release_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
