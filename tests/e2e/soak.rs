//! The soak of `benches/soak.rs` for 30 s (`RRPC_SOAK_SECONDS` overrides): a
//! fault every 5 s between the device and Mosquitto, 50 calls/s. Fails when a
//! call gets no outcome, when a request is answered twice, or when the device
//! process ends with more open file descriptors or threads than it started with.
//! The device is this test binary run again ([`maybe_device`], first thing in
//! `main`).

#[path = "../../benches/support/soak.rs"]
mod run;

pub use run::maybe_device;

fn soak() {
    let plan = run::Plan::from_env(30);
    let r = run::run(&plan).unwrap_or_else(|e| panic!("soak: {e}"));
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

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![soak needs ["mosquitto"]]
}
