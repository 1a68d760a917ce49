//! The tooling around the code: the generated C header (and its Doxygen reference),
//! the ABI against abi/, packaging (CMake, install, CPack, pkg-config), the
//! module map of docs/architecture.md, and every code block and link of the docs.

#[path = "../common/mod.rs"]
mod common;

mod abi;
mod architecture;
mod docs;
mod header;
mod packaging;

fn main() {
    common::harness::main(crate::modules![abi, architecture, docs, header, packaging])
}
