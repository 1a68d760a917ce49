//! Shared test helpers (filled in by the end-to-end suites).
#![allow(dead_code)]

use std::path::PathBuf;

/// Whether `tool` is on PATH. Under CI (`CI` set) a missing tool fails the test:
/// CI installs everything the suite needs, so absence there is a bug.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required by this test and CI must install it");
        }
        eprintln!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    }
    found
}

/// A directory under target/ for this test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-scratch")
        .join(name);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}
