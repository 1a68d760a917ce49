//! The router C API from a C program, with no network at all: compiled by the
//! system C compiler against the CMake-built librrpc.so, run as a process, and
//! run again under valgrind.

crate::c_harness_tests!(module "router_harness": router_c_api_without_network, router_c_api_runs_clean_under_valgrind);
