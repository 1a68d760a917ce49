//! The router C API from a C program, with no network at all: compiled by the
//! system C compiler against the CMake-built librrpc.so, run as a process, and
//! run again under valgrind.

mod common;

use std::process::Command;

fn harness(name: &str) -> Option<std::path::PathBuf> {
    if !common::require_tool("cmake") || !common::require_tool("cc") {
        return None;
    }
    common::cmake::c_build();
    let lib = common::cmake::build_lib_dir();
    let root = common::repo_root();
    let exe = common::scratch_dir("router-harness").join(name);
    let out = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/router_harness.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lrrpc")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "router_harness.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

#[test]
fn router_c_api_without_network() {
    let Some(exe) = harness("router_harness") else {
        return;
    };
    let out = Command::new(&exe).output().expect("run the harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn router_c_api_runs_clean_under_valgrind() {
    if !common::require_tool("valgrind") {
        return;
    }
    let Some(exe) = harness("router_harness_vg") else {
        return;
    };
    let log = common::scratch_dir("valgrind").join("router_harness.log");
    let out = Command::new("valgrind")
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99",
        ])
        .arg(format!("--log-file={}", log.display()))
        .arg(&exe)
        .output()
        .expect("run valgrind");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
}
