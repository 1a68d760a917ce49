//! The README's first command, `cargo run --release --example demo`, works: the
//! demo (built by `cargo test` with the other examples) runs its embedded
//! broker, device and calls, and exits 0.

use std::path::PathBuf;
use std::process::Command;

fn demo_binary() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/demo
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    profile_dir.join("examples").join("demo")
}

#[test]
fn demo_serves_its_calls_and_exits_cleanly() {
    let bin = demo_binary();
    assert!(
        bin.exists(),
        "{} is built by a plain `cargo test` (which builds the examples)",
        bin.display()
    );
    let out = Command::new(&bin).output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for line in [
        "ping the sensor",
        "text to the sensor",
        "binary to the sensor",
        "custom topic to the valve",
    ] {
        let l = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_default();
        assert!(l.contains("SUCCESS"), "{line}: {l}\n{stdout}");
    }
    assert!(stdout.contains("dlrow olleh"), "{stdout}");
    for line in ["a device nobody serves", "a request the device ignores"] {
        let l = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_default();
        assert!(l.contains("TIMEOUT"), "{line}: {l}");
    }
    assert!(
        stdout.contains("200 sequential calls: 200 answered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 own custom-topic replies recognised"),
        "{stdout}"
    );
}
