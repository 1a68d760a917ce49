//! The soak of `benches/soak.rs` for 30 s (`RRPC_SOAK_SECONDS` overrides): a
//! fault every 5 s between the device and Mosquitto, 50 calls/s. Fails when a
//! call gets no outcome, when a request is answered twice, or when the device
//! process ends with more open file descriptors or threads than it started with.
//! A plain `main` (harness = false): the binary also runs as the device process.

mod common;
#[path = "../benches/support/soak.rs"]
mod soak;

fn main() {
    soak::maybe_device();
    // `cargo test -- NAME` filters by test name: run only when asked for, or
    // when nothing is filtered.
    if std::env::args().any(|a| a == "--list") {
        println!("soak: test");
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| "soak".contains(f.as_str())) {
        return;
    }
    let plan = soak::Plan::from_env(30);
    let r = match soak::run(&plan) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => panic!("soak: {e}"),
    };
    r.print();
    assert_eq!(r.losses, 0, "calls with no outcome");
    assert_eq!(r.duplicate_responses, 0, "requests answered twice");
    assert!(
        r.faults.values().sum::<u64>() >= 3,
        "too few faults injected: {:?}",
        r.faults
    );
    assert!(
        r.outcomes.get("SUCCESS").copied().unwrap_or(0) > r.calls / 2,
        "most calls should succeed between faults: {:?}",
        r.outcomes
    );
    assert!(
        r.last.fds <= r.first.fds,
        "the device's open files grew: {} -> {}",
        r.first.fds,
        r.last.fds
    );
    assert!(
        r.last.threads <= r.first.threads,
        "the device's threads grew: {} -> {}",
        r.first.threads,
        r.last.threads
    );
    println!("soak: checks passed");
}
