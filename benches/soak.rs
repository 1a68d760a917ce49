//! Soak: calls at a fixed rate (50/s) for minutes through Mosquitto, with the
//! device behind the fault proxy and a fault injected every few seconds (drop,
//! reset, black hole, cut packet, delay). Prints the outcomes per RrpcCode, the
//! losses (calls with no outcome: must be 0) and the device process's RSS, open
//! file descriptors and threads, first, last and drift.
//!
//!   cargo bench --bench soak                       # 180 s
//!   RRPC_SOAK_SECONDS=600 cargo bench --bench soak
//!
//! Also `RRPC_SOAK_RATE` (calls/s) and `RRPC_SOAK_FAULT_MS` (ms between faults).
//! The 30 s version runs with the tests (`tests/e2e/soak.rs`). The report also goes
//! to `target/bench/soak.txt`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/soak.rs"]
mod soak;

fn main() {
    soak::maybe_device();
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("soak: benchmark only; run it with `cargo bench --bench soak`");
        return;
    }
    if !common::have_tool("mosquitto") {
        println!("soak: skipped (no mosquitto)");
        return;
    }
    let plan = soak::Plan::from_env(180);
    println!(
        "soak: {} s at {} calls/s, a fault every {} ms",
        plan.duration.as_secs(),
        plan.calls_per_s,
        plan.fault_every.as_millis()
    );
    match soak::run(&plan) {
        Ok(r) => {
            r.print();
            let dir = common::repo_root().join("target/bench");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("soak.txt"), r.text());
            if r.losses > 0 {
                eprintln!("soak: {} calls got no outcome", r.losses);
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("soak failed: {e}");
            std::process::exit(1);
        }
    }
}
