//! The helpers every test binary shares (and the benches, through `#[path]`), one
//! of each: the runner with its tool requirements ([`harness`]), brokers
//! ([`broker`]), the raw test caller ([`caller`]), the raw MQTT client ([`mqtt`]),
//! the echo device on the Rust API ([`device`]), the C API called from Rust
//! ([`ffi`]), JT/T 808 test data ([`jt808`]), child processes, C test programs
//! and valgrind ([`process`]), the CMake builds ([`cmake`]), test certificates
//! ([`pki`]), the fault-injection proxy ([`proxy`]) and the vendors' device SDKs
//! as processes ([`peers`]).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod broker;
pub mod caller;
pub mod cmake;
pub mod device;
pub mod ffi;
pub mod harness;
pub mod jt808;
pub mod mqtt;
pub mod peers;
pub mod pki;
pub mod process;
pub mod proxy;

// Each binary uses some of these.
#[allow(unused_imports)]
pub use broker::{brokers, Broker, BrokerKind};
#[allow(unused_imports)]
pub use caller::{until_answered, Caller};
#[allow(unused_imports)]
pub use harness::{have_tool, require_tool, skip, Test};
#[allow(unused_imports)]
pub use mqtt::{publish_acked, MqttClient};
#[allow(unused_imports)]
pub use process::{
    c_harness, c_harness_with, custom_topic_device_args, example_args, run_c_harness,
    run_c_harness_args, run_c_harness_under_valgrind, run_c_harness_under_valgrind_args,
    run_example_without_broker, spawn_example, valgrind_args, valgrind_suppressions, Memcheck,
    Proc,
};

/// The repository root: the nearest directory above the crate under test that
/// holds CMakeLists.txt (the library's own directory, or the parent of `cli/`).
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        start
            .ancestors()
            .find(|d| d.join("CMakeLists.txt").exists())
            .unwrap_or(start)
            .to_path_buf()
    })
}

/// A directory under target/ for this test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target/test-scratch").join(name);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Owned copies of command-line arguments.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A unique Alibaba-style 64-bit decimal message id.
pub fn message_id() -> String {
    let base = 889_455_942_124_347_392u64;
    (base + (std::process::id() as u64) * 1_000_000 + NEXT_ID.fetch_add(1, Ordering::Relaxed))
        .to_string()
}

/// Polls `done` every 20 ms until it is true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
