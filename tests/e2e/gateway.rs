//! End to end: examples-c/paho_gateway.c, a gateway that owns its MQTT connection
//! (Eclipse Paho MQTT C) and uses the transport-less router API, serving 1,000
//! sub-devices on one connection through Mosquitto; the same under valgrind; and
//! benches/c/paho_bare_echo.c, the benchmark's Paho baseline without librrpc.
//!
//! Both programs are built by the CMake tree only when Paho is installed
//! (`libpaho-mqtt-dev`): outside CI the tests skip without it, under CI they fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Broker, Caller, Proc};

const PK: &str = "a1GFjLP3xxC";
const WAIT: Duration = Duration::from_secs(5);
const READY: Duration = Duration::from_secs(15);
const DEVICES: usize = 1000;

/// `target/cmake-test/examples-c/<name>`, a Paho program (skipped without Paho).
fn paho_program(name: &str) -> PathBuf {
    common::cmake::paho_program(common::cmake::c_build(), name)
}

fn args(port: u16, devices: usize, extra: &[&str]) -> Vec<String> {
    let mut a = common::example_args(port, PK, &["--devices", &devices.to_string()]);
    a.extend(common::strings(extra));
    a
}

/// 256 byte values and a run of NULs.
fn binary_payload() -> Vec<u8> {
    (0..=255u8).chain([0, 0, 0]).collect()
}

/// Calls `dn` and checks the echo.
fn call_echo(caller: &Caller, dn: &str, payload: &[u8], proc: &Proc) {
    let r = caller.call_system(PK, dn, payload, WAIT);
    assert!(
        r.as_deref() == Some(payload),
        "{dn}: expected the {}-byte payload back, got {:?}\n{}",
        payload.len(),
        r.map(|v| v.len()),
        proc.transcript()
    );
}

fn paho_gateway_serves_1000_sub_devices_on_one_connection() {
    let program = paho_program("paho_gateway");
    let broker = Broker::mosquitto();
    let mut gw = Proc::spawn(&program, &args(broker.port, DEVICES, &[]));
    gw.expect_stderr("paho_gateway: connected, serving 1000 devices", READY);
    let caller = Caller::connect(broker.port);

    // 3 rounds over all 1,000 devices in a stride order (397 is coprime with 1,000, so
    // each round is a permutation): consecutive calls hit far-apart devices.
    let rounds = 3;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        for i in 0..DEVICES {
            let d = (round * 131 + i * 397) % DEVICES;
            let dn = format!("dev{d}");
            let p = format!("round{round}:{dn}:{i}");
            let t = Instant::now();
            call_echo(&caller, &dn, p.as_bytes(), &gw);
            slowest = slowest.max(t.elapsed());
        }
    }
    let elapsed = start.elapsed();
    let calls = rounds * DEVICES;
    eprintln!(
        "paho_gateway: {calls} sequential calls over {DEVICES} devices in {:.2} s \
         ({:.0} calls/s, {:.0} us mean round trip, slowest {:.1} ms)",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / calls as f64,
        slowest.as_secs_f64() * 1e3
    );

    // Binary-safe in both directions; empty payloads too.
    call_echo(&caller, "dev0", &binary_payload(), &gw);
    call_echo(&caller, "dev999", &binary_payload(), &gw);
    call_echo(&caller, "dev500", b"", &gw);
    let total = calls + 3;

    // One stdout line per request, each device three times plus the extra calls.
    gw.expect_stdout_lines("request ", total, WAIT);
    let lines = gw.stdout();
    assert_eq!(lines.len(), total, "only request lines on stdout");
    let mut per_device = vec![0usize; DEVICES];
    let prefix = format!("request {PK}/dev");
    for l in &lines {
        let rest = l
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected line {l:?}"));
        let (num, tail) = rest.split_once(" id=").expect("id= field");
        let (id, len) = tail.split_once(" len=").expect("len= field");
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "{l}"
        );
        assert!(len.parse::<usize>().is_ok(), "{l}");
        per_device[num.parse::<usize>().expect("device number")] += 1;
    }
    for (d, n) in per_device.iter().enumerate() {
        let extra = usize::from(d == 0 || d == 999 || d == 500);
        assert_eq!(*n, rounds + extra, "dev{d} served {n} times");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("request {PK}/dev0 id=")) && l.ends_with(" len=259")),
        "binary request line"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("request {PK}/dev500 id=")) && l.ends_with(" len=0")),
        "empty request line"
    );

    // dev1000 is not registered: the wildcard delivers its request, nothing answers.
    let r = caller.call_system(PK, "dev1000", b"anyone?", Duration::from_millis(1500));
    assert_eq!(r, None, "an unregistered device was answered");
    assert_eq!(gw.stdout().len(), total, "{}", gw.transcript());

    let st = gw.terminate();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", gw.transcript());
    let stats = gw
        .stderr()
        .into_iter()
        .find(|l| l.starts_with("paho_gateway: stats "))
        .unwrap_or_else(|| panic!("no stats line at exit\n{}", gw.transcript()));
    for want in [
        format!(" requests={total} "),
        format!(" replied={total} "),
        " unknown_device=1 ".to_string(),
        " malformed=0 ".to_string(),
        " send_failures=0 ".to_string(),
        " pending=0 ".to_string(),
        " devices=1000".to_string(),
    ] {
        assert!(stats.contains(&want), "{want:?} not in {stats}");
    }
}

fn paho_gateway_runs_clean_under_valgrind() {
    let program = paho_program("paho_gateway");
    let broker = Broker::mosquitto();
    let mut vg = common::Memcheck::new("paho_gateway.log");
    vg.command
        .arg(&program)
        .args(args(broker.port, 10, &["--max-requests", "5"]));
    let mut gw = Proc::spawn_with(&mut vg.command);
    gw.expect_stderr(
        "paho_gateway: connected, serving 10 devices",
        Duration::from_secs(60),
    );
    let caller = Caller::connect(broker.port);
    let payloads: [(&str, Vec<u8>); 5] = [
        ("dev0", b"vg0".to_vec()),
        ("dev9", binary_payload()),
        ("dev3", Vec::new()),
        ("dev7", b"vg3".to_vec()),
        ("dev1", b"vg4".to_vec()),
    ];
    for (dn, p) in &payloads {
        let r = caller.call_system(PK, dn, p, Duration::from_secs(20));
        assert!(
            r.as_deref() == Some(&p[..]),
            "{dn}: {r:?}\n{}",
            gw.transcript()
        );
    }
    let st = gw.wait_exit(Duration::from_secs(60));
    vg.assert_clean(st, &gw.transcript());
    assert!(
        gw.stderr()
            .iter()
            .any(|l| l.contains(" requests=5 ") && l.contains(" replied=5 ")),
        "{}",
        gw.transcript()
    );
}

fn paho_bare_echo_baseline_answers() {
    let program = paho_program("paho_bare_echo");
    for broker in common::brokers() {
        let mut echo = Proc::spawn(&program, &args(broker.port, DEVICES, &[]));
        echo.expect_stderr("paho_bare_echo: connected", READY);
        let caller = Caller::connect(broker.port);
        call_echo(&caller, "dev0", b"hello", &echo);
        call_echo(&caller, "dev999", &binary_payload(), &echo);
        call_echo(&caller, "dev1000", b"", &echo); // no registry: any device name
        let start = Instant::now();
        let n = 200;
        for i in 0..n {
            let dn = format!("dev{}", (i * 397) % DEVICES);
            call_echo(&caller, &dn, format!("bare{i}").as_bytes(), &echo);
        }
        let elapsed = start.elapsed();
        eprintln!(
            "paho_bare_echo ({:?}): {n} sequential calls in {:.3} s ({:.0} us mean round trip)",
            broker.kind,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / n as f64
        );
        let total = n + 3;
        echo.expect_stdout_lines("request /sys/", total, WAIT);
        let st = echo.terminate();
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", echo.transcript());
        assert!(
            echo.stderr()
                .iter()
                .any(|l| l.starts_with(&format!("paho_bare_echo: {total} requests"))),
            "{}",
            echo.transcript()
        );
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        paho_gateway_serves_1000_sub_devices_on_one_connection needs ["mosquitto", "cmake", "cc"],
        paho_gateway_runs_clean_under_valgrind needs ["mosquitto", "cmake", "cc", "valgrind"],
        paho_bare_echo_baseline_answers needs ["mosquitto", "cmake", "cc"],
    ]
}
