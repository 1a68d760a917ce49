//! Dialects from a C program, with no network at all: registration and its
//! refusals, names, and a router serving Azure and a registered dialect with
//! replies that carry a status; compiled by the system C compiler against the
//! CMake-built librrpc.so, run as a process, and run again under valgrind (a
//! refused definition leaves nothing behind: its parsed templates are freed).

use crate::common;

fn dialect_c_api_without_network() {
    let exe = common::c_harness_with("dialect_harness.c", "dialect_harness", &[]);
    common::run_c_harness(&exe);
}

fn dialect_c_api_runs_clean_under_valgrind() {
    let exe = common::c_harness_with("dialect_harness.c", "dialect_harness_vg", &[]);
    common::run_c_harness_under_valgrind(&exe, "dialect_harness.log");
}

pub fn tests() -> Vec<common::Test> {
    crate::tests![
        dialect_c_api_without_network needs ["cmake", "cc"],
        dialect_c_api_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
