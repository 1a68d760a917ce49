//! The C examples and the C test harnesses built with
//! `-fsanitize=address,undefined -fno-sanitize-recover=all` (AddressSanitizer with
//! LeakSanitizer, and UndefinedBehaviorSanitizer) against the CMake-built librrpc, run
//! as real processes against real brokers. Any sanitizer report fails the test: the
//! programs run with `halt_on_error=1` and leak detection, exit with a sanitizer's own
//! status, and their stderr is searched for reports as well.
//!
//! The examples come from a second CMake tree, `target/cmake-sanitize`
//! (`-DRRPC_SANITIZE=address,undefined`); the harnesses are compiled by `cc` with the
//! same flags. The Rust library itself is not instrumented, but every allocation it
//! makes goes through the sanitizer's malloc (double frees, frees of foreign pointers
//! and leaks are caught), and everything the C code reads or writes in memory the
//! library hands out or takes is checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::cmake::{sanitized_example, sanitizer_env, sanitizer_flags, SANITIZERS};
use crate::common::{Broker, Caller, Proc};

const PK: &str = "a1SanItize";
const READY: Duration = Duration::from_secs(30);

/// What a sanitizer prints when it reports something.
const REPORTS: [&str; 5] = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "SUMMARY: ",
];

fn assert_no_report(what: &str, stderr: &str) {
    for needle in REPORTS {
        assert!(
            !stderr.contains(needle),
            "{what}: sanitizer report ({needle}):\n{stderr}"
        );
    }
}

/// `tests/c/{source}` compiled with the sanitizers (and `extra`).
fn harness(source: &str, name: &str, extra: &[&str]) -> PathBuf {
    let mut flags = sanitizer_flags(SANITIZERS);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    common::c_harness_with(source, name, &flags)
}

/// Runs a sanitized harness: exit 0, "checks passed", no report.
fn run_harness(exe: &Path, args: &[String]) {
    let out = Command::new(exe)
        .args(args)
        .envs(sanitizer_env())
        .output()
        .expect("run the harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {}\n{stdout}\n{stderr}",
        exe.display(),
        out.status
    );
    assert!(stdout.contains("checks passed"), "{stdout}\n{stderr}");
    assert_no_report(&exe.display().to_string(), &stderr);
}

/// A sanitized example, started with the sanitizer environment.
fn spawn_example(name: &str, args: &[String]) -> Proc {
    let mut cmd = Command::new(sanitized_example(name));
    cmd.args(args).envs(sanitizer_env());
    Proc::spawn_with(&mut cmd)
}

/// Waits for `p` to exit by itself and checks it exited 0 without any report.
fn assert_clean_exit(p: &mut Proc, what: &str) {
    let st = p.wait_exit(Duration::from_secs(60));
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(0),
        "{what}: {st:?}\n{}",
        p.transcript()
    );
    assert_no_report(what, &p.stderr().join("\n"));
}

fn router_harness_is_clean_under_asan_and_ubsan() {
    let exe = harness("router_harness.c", "router_harness_asan", &[]);
    run_harness(&exe, &[]);
}

fn credentials_harness_is_clean_under_asan_and_ubsan() {
    let exe = harness("credentials_harness.c", "credentials_harness_asan", &[]);
    run_harness(&exe, &[]);
}

fn jt808_harness_is_clean_under_asan_and_ubsan() {
    let exe = harness("jt808_harness.c", "jt808_harness_asan", &["-pthread"]);
    run_harness(&exe, &[]);
}

fn release_harness_is_clean_under_asan_and_ubsan() {
    let exe = harness("release_harness.c", "release_harness_asan", &["-pthread"]);
    let broker = Broker::rumqttd();
    run_harness(
        &exe,
        &[broker.port.to_string(), common::free_port().to_string()],
    );
}

/// The sanitized device example `name` (`--max-requests n`) answers `n` calls
/// through Mosquitto, then exits 0 with no report.
fn device_example_is_clean(name: &str, extra: &[&str], n: usize, reply_prefix: &[u8]) {
    let broker = Broker::mosquitto();
    let max = n.to_string();
    let device = [
        "--dialect",
        "alibaba",
        "--device-name",
        "san",
        "--max-requests",
        &max,
    ];
    let mut args = common::example_args(broker.port, PK, &device);
    args.extend(common::strings(extra));
    let mut dev = spawn_example(name, &args);
    let caller = Caller::connect(broker.port);
    // 0, 1 KiB and 64 KiB payloads with every byte value, NULs included.
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            (0..[0usize, 1024, 64 * 1024][i % 3])
                .map(|k| (k * 7 + i) as u8)
                .collect()
        })
        .collect();
    let ready_line = (!extra.contains(&"--yield")).then_some("connected to");
    caller.expect_echoes(
        PK,
        "san",
        &payloads,
        reply_prefix,
        (ready_line, READY),
        &dev,
    );
    assert_clean_exit(&mut dev, name);
}

fn echo_device_is_clean_under_asan_and_ubsan_in_thread_mode() {
    device_example_is_clean("echo_device", &[], 6, b"");
}

fn echo_device_is_clean_under_asan_and_ubsan_in_yield_mode() {
    device_example_is_clean("echo_device", &["--yield"], 6, b"");
}

fn deferred_reply_is_clean_under_asan_and_ubsan() {
    device_example_is_clean("deferred_reply", &["--presence", "1"], 6, b"done:");
}

fn call_device_is_clean_under_asan_and_ubsan() {
    let broker = Broker::mosquitto();
    let port = broker.port.to_string();
    let dev = common::spawn_example(
        "echo_device",
        &port,
        PK,
        &["--dialect", "alibaba", "--device-name", "callee"],
    );
    assert!(dev.wait_stderr("connected", READY), "{}", dev.transcript());
    let base = ["--port", &port, "--product-key", PK, "--payload", "asan"];
    // Concurrent asynchronous calls answered; JSON and XML; a timeout; a refused parameter.
    let cases: [(&[&str], i32); 4] = [
        (&["--device-name", "callee", "--concurrent", "20"], 0),
        (&["--device-name", "callee", "--xml"], 0),
        (&["--device-name", "nobody", "--timeout", "1000"], 3),
        (&["--device-name", "callee", "--timeout", "10"], 2),
    ];
    for (extra, want) in cases {
        let mut args = common::strings(&base);
        args.extend(common::strings(extra));
        if !extra.contains(&"--timeout") {
            args.extend(common::strings(&["--timeout", "5000"]));
        }
        let mut p = spawn_example("call_device", &args);
        let st = p.wait_exit(Duration::from_secs(60));
        assert_eq!(
            st.and_then(|s| s.code()),
            Some(want),
            "call_device {extra:?}\n{}",
            p.transcript()
        );
        assert_no_report("call_device", &p.stderr().join("\n"));
    }
}

fn quickstart_is_clean_under_asan_and_ubsan() {
    let broker = Broker::mosquitto();
    let mut dev = spawn_example("quickstart", &[broker.port.to_string()]);
    assert!(
        dev.wait_stderr("quickstart: connected", READY),
        "{}",
        dev.transcript()
    );
    let caller = Caller::connect(broker.port);
    let r = caller.call_system("a1B2c3", "dev1", b"status?", Duration::from_secs(10));
    assert_eq!(r.as_deref(), Some(&b"ok"[..]), "{}", dev.transcript());
    // The quickstart has no signal handler (it ends by being killed), so only what it
    // did while running is checked here; the other examples exit by themselves and
    // LeakSanitizer checks them at exit too.
    dev.terminate();
    assert_no_report("quickstart", &dev.stderr().join("\n"));
}

fn paho_gateway_is_clean_under_asan_and_ubsan() {
    // Built only where CMake found Paho MQTT C.
    common::cmake::paho_program(common::cmake::sanitized_build(), "paho_gateway");
    let broker = Broker::mosquitto();
    let args = common::example_args(broker.port, PK, &["--devices", "10", "--max-requests", "4"]);
    let mut gw = spawn_example("paho_gateway", &args);
    assert!(
        gw.wait_stderr("paho_gateway: connected, serving 10 devices", READY),
        "{}",
        gw.transcript()
    );
    let caller = Caller::connect(broker.port);
    for (i, dn) in ["dev0", "dev9", "dev3", "dev7"].into_iter().enumerate() {
        let p: Vec<u8> = (0..i * 300).map(|k| k as u8).collect();
        let r = caller.call_system(PK, dn, &p, Duration::from_secs(20));
        assert!(
            r.as_deref() == Some(&p[..]),
            "{dn}: {r:?}\n{}",
            gw.transcript()
        );
    }
    assert_clean_exit(&mut gw, "paho_gateway");
}

fn jt808_adapter_is_clean_under_asan_and_ubsan() {
    let broker = Broker::mosquitto();
    let listen = common::free_port();
    let args = common::example_args(broker.port, PK, &["--listen-port", &listen.to_string()]);
    let mut adapter = spawn_example("jt808_adapter", &args);
    assert!(
        adapter.wait_stderr("listening on", READY),
        "{}",
        adapter.transcript()
    );
    // A connection that sends garbage and half a frame, then goes away.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).expect("connect");
        s.write_all(&[0x7e, 0x01, 0x02, 0x7d, 0x7d, 0x7e, 0x7e, 0x00, 0x7d])
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    adapter.signal(libc::SIGTERM);
    assert_clean_exit(&mut adapter, "jt808_adapter");
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        router_harness_is_clean_under_asan_and_ubsan needs ["cmake", "cc"],
        credentials_harness_is_clean_under_asan_and_ubsan needs ["cmake", "cc"],
        jt808_harness_is_clean_under_asan_and_ubsan needs ["cmake", "cc"],
        release_harness_is_clean_under_asan_and_ubsan needs ["cmake", "cc"],
        echo_device_is_clean_under_asan_and_ubsan_in_thread_mode needs ["mosquitto", "cmake", "cc"],
        echo_device_is_clean_under_asan_and_ubsan_in_yield_mode needs ["mosquitto", "cmake", "cc"],
        deferred_reply_is_clean_under_asan_and_ubsan needs ["mosquitto", "cmake", "cc"],
        call_device_is_clean_under_asan_and_ubsan needs ["mosquitto", "cmake", "cc"],
        quickstart_is_clean_under_asan_and_ubsan needs ["mosquitto", "cmake", "cc"],
        paho_gateway_is_clean_under_asan_and_ubsan needs ["mosquitto", "cmake", "cc"],
        jt808_adapter_is_clean_under_asan_and_ubsan needs ["mosquitto", "cmake", "cc"],
    ]
}
