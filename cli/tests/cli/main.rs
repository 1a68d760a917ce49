//! The `rrpc` command-line tool as a process: its commands against real brokers and
//! the C examples (commands), and its JT/T 808 codec, adapter and simulated
//! terminals.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

mod commands;
mod dialects;
mod jt808;
mod jt808_e2e;
mod jt808_terminal;
mod peers;

/// The `rrpc` binary cargo built for these tests.
fn rrpc() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rrpc"))
}

fn main() {
    common::harness::main(crate::modules![
        commands,
        dialects,
        jt808,
        jt808_e2e,
        jt808_terminal,
        peers
    ])
}
