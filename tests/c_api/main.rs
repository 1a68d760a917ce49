//! The C API: the C test programs of tests/c/ compiled against the CMake-built
//! library and run (plain, under valgrind, under the sanitizers and
//! ThreadSanitizer), and the C functions called from Rust (ffi_client).

#[path = "../common/mod.rs"]
mod common;

mod caller_reentry_c;
mod credentials_c;
mod ffi_client;
mod release_c;
mod router_c;
mod sanitizers;
mod thread_stress;
mod valgrind;

fn main() {
    common::harness::main(vec![
        ("caller_reentry_c", caller_reentry_c::tests()),
        ("credentials_c", credentials_c::tests()),
        ("ffi_client", ffi_client::tests()),
        ("release_c", release_c::tests()),
        ("router_c", router_c::tests()),
        ("sanitizers", sanitizers::tests()),
        ("thread_stress", thread_stress::tests()),
        ("valgrind", valgrind::tests()),
    ])
}
