//! Cloud credentials from C (tests/c/credentials_harness.c): the vendors' SDK
//! values through `rrpc_credentials_alibaba` and `rrpc_credentials_tencent`, and
//! every bad input with its status; also clean under valgrind.

crate::c_harness_tests!("credentials_harness": credentials_from_c,
    credentials_from_c_run_clean_under_valgrind);

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        credentials_from_c needs ["cmake", "cc"],
        credentials_from_c_run_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
    ]
}
