//! Valgrind out of the box: a C program that uses librrpc passes memcheck with the
//! options the README documents (`common::valgrind_args`: full leak check, definite,
//! indirect and possible leaks are errors, `--error-exitcode`) and the shipped
//! suppression file `valgrind/rrpc.supp`. Without the file, exactly one block is
//! reported: the Rust standard library's handle (48 bytes on x86_64) of the program's main thread
//! (see the file), the same however many clients the program made. The other valgrind
//! runs (examples and harnesses) use the same options.

use std::path::Path;
use std::process::Command;

use crate::common;
use crate::common::Broker;

/// Runs `exe port` under memcheck with `args`; returns (exit code, report).
fn memcheck(exe: &Path, port: u16, args: &[String], log_name: &str) -> (Option<i32>, String) {
    let log = common::scratch_dir("valgrind").join(log_name);
    let out = Command::new("valgrind")
        .args(args)
        .arg(format!("--log-file={}", log.display()))
        .arg(exe)
        .arg(port.to_string())
        .output()
        .expect("run valgrind");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("checks passed"), "{stdout}");
    (
        out.status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

/// The LEAK SUMMARY line that starts with `label`, trimmed ("" if none).
fn summary<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .filter(|l| !l.contains("ERROR SUMMARY"))
        .filter_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .next_back()
        .unwrap_or("")
}

fn memcheck_passes_with_the_documented_options_and_the_shipped_suppressions() {
    common::require_tool("valgrind");
    let exe = common::c_harness("valgrind_probe.c", "valgrind_probe");
    let broker = Broker::rumqttd();

    let (code, report) = memcheck(&exe, broker.port, &common::valgrind_args(), "probe.log");
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
    // The suppression matched exactly one block: it does not grow with the number of
    // clients, and nothing else hides behind it.
    assert!(
        summary(&report, "suppressed:").ends_with("in 1 blocks"),
        "the suppression should cover exactly the main thread's handle:\n{report}"
    );

    // Without the suppression file: that block, and only it, fails the run.
    let bare: Vec<String> = common::valgrind_args()
        .into_iter()
        .filter(|a| !a.starts_with("--suppressions="))
        .collect();
    let (code, report) = memcheck(&exe, broker.port, &bare, "probe-unsuppressed.log");
    assert_eq!(code, Some(99), "{report}");
    assert!(
        summary(&report, "possibly lost:").ends_with("in 1 blocks")
            && summary(&report, "definitely lost:").ends_with("0 bytes in 0 blocks")
            && summary(&report, "indirectly lost:").ends_with("0 bytes in 0 blocks")
            && report.contains("init_current"),
        "{report}"
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        memcheck_passes_with_the_documented_options_and_the_shipped_suppressions needs ["cmake", "cc", "valgrind"],
    ]
}
