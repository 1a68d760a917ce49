//! Cloud credentials from C (tests/c/credentials_harness.c): the vendors' SDK
//! values through `rrpc_credentials_alibaba` and `rrpc_credentials_tencent`, and
//! every bad input with its status; also clean under valgrind.

use crate::common;

fn credentials_from_c() {
    let exe = common::c_harness("credentials_harness.c", "credentials_harness");
    common::run_c_harness(&exe);
}

fn credentials_from_c_run_clean_under_valgrind() {
    let exe = common::c_harness("credentials_harness.c", "credentials_harness_vg");
    common::run_c_harness_under_valgrind(&exe, "credentials_harness.log");
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        credentials_from_c needs ["cmake", "cc"],
        credentials_from_c_run_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
