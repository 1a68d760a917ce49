//! Dialects from a C program, with no network at all: registration and its
//! refusals, names, and a router serving Azure and a registered dialect with
//! replies that carry a status; compiled by the system C compiler against the
//! CMake-built librrpc.so, run as a process, and run again under valgrind.

crate::c_harness_tests!(module "dialect_harness": dialect_c_api_without_network, dialect_c_api_runs_clean_under_valgrind);
