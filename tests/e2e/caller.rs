//! End to end for the cloud side in C: `examples-c/call_device` (rrpc_caller_*)
//! against the C devices, as real processes, through rumqttd and Mosquitto; every
//! RrpcCode produced for real, with presence from the device library.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Broker, BrokerKind, Proc};

const PK: &str = "a1CallPk";
const READY: Duration = Duration::from_secs(15);

/// Runs call_device to completion; returns (exit status, stdout, elapsed).
fn call(port: u16, extra: &[&str]) -> (i32, String, Duration) {
    let a = common::example_args(port, PK, extra);
    let t = Instant::now();
    let mut p = Proc::spawn(&common::cmake::example("call_device"), &a);
    let st = p
        .wait_exit(Duration::from_secs(30))
        .expect("call_device exits");
    (st.code().unwrap_or(-1), p.stdout().join("\n"), t.elapsed())
}

fn echo_device(port: u16, dn: &str, extra: &[&str]) -> Proc {
    let mut a = common::example_args(port, PK, &["--dialect", "alibaba", "--device-name", dn]);
    a.extend(common::strings(extra));
    let p = Proc::spawn(&common::cmake::example("echo_device"), &a);
    assert!(p.wait_stderr("connected", READY), "{}", p.transcript());
    p
}

fn call_device_gets_success_json_and_xml() {
    for b in common::brokers() {
        let _d = echo_device(b.port, "dev1", &[]);
        let (st, out, _) = call(
            b.port,
            &[
                "--device-name",
                "dev1",
                "--payload",
                "hello world",
                "--timeout",
                "3000",
            ],
        );
        assert_eq!(st, 0, "{out}");
        assert!(
            out.starts_with("{\"RequestId\":\"") && out.contains("\"Success\":true"),
            "{out}"
        );
        assert!(out.contains("\"RrpcCode\":\"SUCCESS\""), "{out}");
        // "hello world" in Base64, as in the RRpc documents' example.
        assert!(
            out.contains("\"PayloadBase64Byte\":\"aGVsbG8gd29ybGQ=\""),
            "{out}"
        );
        let (st, out, _) = call(
            b.port,
            &[
                "--device-name",
                "dev1",
                "--payload",
                "x",
                "--timeout",
                "3000",
                "--xml",
            ],
        );
        assert_eq!(st, 0, "{out}");
        assert!(
            out.contains("<RRpcResponse>") && out.contains("<RrpcCode>SUCCESS</RrpcCode>"),
            "{out}"
        );
        assert!(
            out.contains("<PayloadBase64Byte>eA==</PayloadBase64Byte>"),
            "{out}"
        );
        // Many calls in flight from C at once, each answered.
        let (st, out, _) = call(
            b.port,
            &[
                "--device-name",
                "dev1",
                "--payload",
                "p",
                "--timeout",
                "8000",
                "--concurrent",
                "300",
            ],
        );
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
    let (st, out, took) = call(
        port,
        &[
            "--device-name",
            "gone",
            "--payload",
            "x",
            "--timeout",
            "8000",
        ],
    );
    assert_eq!(st, 4, "{out}");
    assert!(out.contains("\"RrpcCode\":\"OFFLINE\""), "{out}");
    assert!(
        took < Duration::from_secs(3),
        "OFFLINE without waiting: {took:?}"
    );

    // TIMEOUT: a device nobody serves, after the 1000 ms timeout.
    let (st, out, took) = call(
        port,
        &[
            "--device-name",
            "nobody",
            "--payload",
            "x",
            "--timeout",
            "1000",
        ],
    );
    assert_eq!(st, 3, "{out}");
    assert!(
        out.contains("\"RrpcCode\":\"TIMEOUT\"") && out.contains("\"MessageId\":"),
        "{out}"
    );
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
    assert!(
        slow.wait_stderr("connected", READY),
        "{}",
        slow.transcript()
    );
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        slow.signal(libc::SIGKILL);
        slow
    });
    let (st, out, took) = call(
        port,
        &[
            "--device-name",
            "fragile",
            "--payload",
            "x",
            "--timeout",
            "8000",
        ],
    );
    drop(killer.join());
    assert_eq!(st, 5, "{out}");
    assert!(out.contains("\"RrpcCode\":\"HALFCONN\""), "{out}");
    assert!(
        took < Duration::from_secs(6),
        "HALFCONN before the timeout: {took:?}"
    );

    // And back: the device restarted is online again.
    let _again = echo_device(port, "fragile", &["--presence"]);
    let (st, out, _) = call(
        port,
        &[
            "--device-name",
            "fragile",
            "--payload",
            "x",
            "--timeout",
            "3000",
        ],
    );
    assert_eq!(st, 0, "{out}");
}

fn call_device_refuses_bad_parameters_and_reports_an_unreachable_broker() {
    let b = Broker::rumqttd();
    let (st, out, _) = call(
        b.port,
        &["--device-name", "d", "--payload", "x", "--timeout", "999"],
    );
    assert_eq!(st, 2, "{out}");
    assert!(
        out.contains("\"Success\":false") && out.contains("\"Code\":\"InvalidParameter\""),
        "{out}"
    );
    assert!(out.contains("Timeout 999"), "{out}");
    let (st, out, _) = call(
        b.port,
        &[
            "--device-name",
            "d/e",
            "--payload",
            "x",
            "--timeout",
            "1000",
        ],
    );
    assert_eq!(st, 2, "{out}");
    let port = common::free_port();
    let mut p = common::spawn_example(
        "call_device",
        port,
        PK,
        &["--device-name", "d", "--timeout", "1000"],
    );
    let st = p.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(st.code(), Some(7));
    let err = p.stderr().join("\n");
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
        let (st, out, _) = call(
            b.port,
            &["--device-name", dn, "--payload", "x", "--timeout", "3000"],
        );
        assert_eq!(st, 0, "{dn}: {out}");
    }
    dev.signal(libc::SIGKILL); // no clean stop: only the connection's last will speaks
    std::thread::sleep(Duration::from_millis(500));
    for dn in ["multi1", "multi2"] {
        let (st, out, took) = call(
            b.port,
            &["--device-name", dn, "--payload", "x", "--timeout", "8000"],
        );
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
