//! End to end for the cloud side in C: `examples-c/call_device` (rrpc_caller_*)
//! against the C devices, as real processes, through rumqttd and Mosquitto; every
//! RrpcCode produced for real, with presence from the device library.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Broker, BrokerKind, Proc};

const PK: &str = "a1CallPk";
const READY: Duration = Duration::from_secs(15);

/// Runs call_device to call `dn` with `payload`, waiting `timeout_ms` (and the
/// options `extra`), to completion; returns (exit status, stdout, elapsed).
fn call(
    port: u16,
    dn: &str,
    payload: &str,
    timeout_ms: u32,
    extra: &[&str],
) -> (i32, String, Duration) {
    let timeout = timeout_ms.to_string();
    let mut a = common::example_args(
        port,
        PK,
        &[
            "--device-name",
            dn,
            "--payload",
            payload,
            "--timeout",
            &timeout,
        ],
    );
    a.extend(common::strings(extra));
    let t = Instant::now();
    let mut p = Proc::spawn(&common::cmake::example("call_device"), &a);
    let st = p
        .wait_exit(Duration::from_secs(30))
        .expect("call_device exits");
    (st.code().unwrap_or(-1), p.stdout().join("\n"), t.elapsed())
}

/// Expects call_device's exit status `st` to be `status`, and each of `wanted` in
/// its output `out`.
fn assert_says(st: i32, out: &str, status: i32, wanted: &[&str]) {
    assert_eq!(st, status, "{out}");
    for w in wanted {
        assert!(out.contains(w), "no {w} in: {out}");
    }
}

fn echo_device(port: u16, dn: &str, extra: &[&str]) -> Proc {
    let mut a = common::example_args(port, PK, &["--dialect", "alibaba", "--device-name", dn]);
    a.extend(common::strings(extra));
    let p = Proc::spawn(&common::cmake::example("echo_device"), &a);
    p.expect_stderr("connected", READY);
    p
}

fn call_device_gets_success_json_and_xml() {
    for b in common::brokers() {
        let _d = echo_device(b.port, "dev1", &[]);
        let (st, out, _) = call(b.port, "dev1", "hello world", 3000, &[]);
        // "hello world" in Base64, as in the RRpc documents' example.
        let base64 = "\"PayloadBase64Byte\":\"aGVsbG8gd29ybGQ=\"";
        assert_says(
            st,
            &out,
            0,
            &["\"Success\":true", "\"RrpcCode\":\"SUCCESS\"", base64],
        );
        assert!(out.starts_with("{\"RequestId\":\""), "{out}");
        let (st, out, _) = call(b.port, "dev1", "x", 3000, &["--xml"]);
        let xml = [
            "<RRpcResponse>",
            "<RrpcCode>SUCCESS</RrpcCode>",
            "<PayloadBase64Byte>eA==</PayloadBase64Byte>",
        ];
        assert_says(st, &out, 0, &xml);
        // Many calls in flight from C at once, each answered.
        let (st, out, _) = call(b.port, "dev1", "p", 8000, &["--concurrent", "300"]);
        assert_eq!(st, 0);
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("\"RrpcCode\":\"SUCCESS\""))
                .count(),
            300
        );
    }
}

fn every_rrpc_code_for_real_from_c() {
    let b = Broker::mosquitto();
    assert_eq!(b.kind, BrokerKind::Mosquitto);
    let port = b.port;

    // OFFLINE: a presence device stopped cleanly leaves a retained "offline";
    // the call returns at once instead of waiting its 8 s.
    let mut gone = echo_device(port, "gone", &["--presence"]);
    assert_eq!(
        gone.terminate().and_then(|s| s.code()),
        Some(0),
        "{}",
        gone.transcript()
    );
    let (st, out, took) = call(port, "gone", "x", 8000, &[]);
    assert_says(st, &out, 4, &["\"RrpcCode\":\"OFFLINE\""]);
    assert!(
        took < Duration::from_secs(3),
        "OFFLINE without waiting: {took:?}"
    );

    // TIMEOUT: a device nobody serves, after the 1000 ms timeout.
    let (st, out, took) = call(port, "nobody", "x", 1000, &[]);
    assert_says(st, &out, 3, &["\"RrpcCode\":\"TIMEOUT\"", "\"MessageId\":"]);
    assert!(took >= Duration::from_millis(1000), "{took:?}");

    // HALFCONN: the device (presence on, answering after 5 s) is killed during
    // the call; its last will ends the call at once.
    let slow = common::spawn_example(
        "deferred_reply",
        port,
        PK,
        &[
            "--dialect",
            "alibaba",
            "--device-name",
            "fragile",
            "--delay-ms",
            "5000",
            "--presence",
            "1",
        ],
    );
    slow.expect_stderr("connected", READY);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        slow.signal(libc::SIGKILL);
        slow
    });
    let (st, out, took) = call(port, "fragile", "x", 8000, &[]);
    drop(killer.join());
    assert_says(st, &out, 5, &["\"RrpcCode\":\"HALFCONN\""]);
    assert!(
        took < Duration::from_secs(6),
        "HALFCONN before the timeout: {took:?}"
    );

    // And back: the device restarted is online again.
    let _again = echo_device(port, "fragile", &["--presence"]);
    let (st, out, _) = call(port, "fragile", "x", 3000, &[]);
    assert_eq!(st, 0, "{out}");
}

fn call_device_refuses_bad_parameters_and_reports_an_unreachable_broker() {
    let b = Broker::rumqttd();
    let (st, out, _) = call(b.port, "d", "x", 999, &[]);
    let refused = ["\"Success\":false", "\"Code\":\"InvalidParameter\""];
    assert_says(st, &out, 2, &refused);
    assert!(out.contains("Timeout 999"), "{out}");
    let (st, out, _) = call(b.port, "d/e", "x", 1000, &[]);
    assert_eq!(st, 2, "{out}");
    let extra = ["--device-name", "d", "--timeout", "1000"];
    let (err, port) = common::run_example_without_broker("call_device", PK, &extra, 7);
    assert!(
        err.contains(&format!("could not connect to 127.0.0.1:{port}")) && err.contains("refused"),
        "{err}"
    );
    // The example prints the error rrpc_caller_new returned; the library does not
    // print it a second time.
    assert!(!err.contains("librrpc"), "{err}");
}

fn call_device_runs_clean_under_valgrind() {
    let b = Broker::rumqttd();
    let _d = echo_device(b.port, "vg", &[]);
    let mut vg = common::Memcheck::new("call_device.log");
    vg.command
        .arg(common::cmake::example("call_device"))
        .args(common::example_args(b.port, PK, &["--device-name", "vg"]))
        .args(["--payload", "leak check", "--timeout", "5000"])
        .args(["--concurrent", "20"]);
    let mut p = Proc::spawn_with(&mut vg.command);
    let st = p.wait_exit(Duration::from_secs(60));
    vg.assert_clean(st, &p.transcript());
}

fn a_crashed_client_serving_several_devices_takes_them_all_offline() {
    let b = Broker::mosquitto();
    let dev = echo_device(b.port, "multi1", &["--device-name", "multi2", "--presence"]);
    for dn in ["multi1", "multi2"] {
        let (st, out, _) = call(b.port, dn, "x", 3000, &[]);
        assert_eq!(st, 0, "{dn}: {out}");
    }
    dev.signal(libc::SIGKILL); // no clean stop: only the connection's last will speaks
    std::thread::sleep(Duration::from_millis(500));
    for dn in ["multi1", "multi2"] {
        let (st, out, took) = call(b.port, dn, "x", 8000, &[]);
        assert_eq!(st, 4, "{dn}: {out}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        call_device_gets_success_json_and_xml needs ["mosquitto", "cmake", "cc"],
        every_rrpc_code_for_real_from_c needs ["mosquitto", "cmake", "cc"],
        call_device_refuses_bad_parameters_and_reports_an_unreachable_broker needs ["cmake", "cc"],
        call_device_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
        a_crashed_client_serving_several_devices_takes_them_all_offline needs ["mosquitto", "cmake", "cc"],
    ]
}
