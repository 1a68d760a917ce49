//! The router C API from a C program, with no network at all: compiled by the
//! system C compiler against the CMake-built librrpc.so, run as a process, and
//! run again under valgrind.

use crate::common;

fn router_c_api_without_network() {
    let exe = common::c_harness("router_harness.c", "router_harness");
    common::run_c_harness(&exe);
}

fn router_c_api_runs_clean_under_valgrind() {
    let exe = common::c_harness("router_harness.c", "router_harness_vg");
    common::run_c_harness_under_valgrind(&exe, "router_harness.log");
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        router_c_api_without_network needs ["cmake", "cc"],
        router_c_api_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
