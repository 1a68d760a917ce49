//! The C API: the C test programs of tests/c/ compiled against the CMake-built
//! library and run (plain, under valgrind, under the sanitizers and
//! ThreadSanitizer), and the C functions called from Rust (ffi_client).

#[path = "../common/mod.rs"]
mod common;

mod caller_reentry_c;
mod credentials_c;
mod dialect_c;
mod dialect_ffi;
mod ffi_client;
mod release_c;
mod router_c;
mod sanitizers;
mod thread_stress;
mod valgrind;

fn main() {
    common::harness::main(crate::modules![
        caller_reentry_c,
        credentials_c,
        dialect_c,
        dialect_ffi,
        ffi_client,
        release_c,
        router_c,
        sanitizers,
        thread_stress,
        valgrind
    ])
}
