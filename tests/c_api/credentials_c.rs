//! Cloud credentials from C (tests/c/credentials_harness.c): the vendors' SDK
//! values through `rrpc_credentials_alibaba` and `rrpc_credentials_tencent`, and
//! every bad input with its status; also clean under valgrind.

crate::c_harness_tests!(module "credentials_harness": credentials_from_c, credentials_from_c_run_clean_under_valgrind);
