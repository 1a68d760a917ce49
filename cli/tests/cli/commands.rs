//! The `rrpc` binary as a user runs it: calls to the C `echo_device` and to
//! `rrpc device` through rumqttd and Mosquitto, every RrpcCode for real, bad input,
//! an unreachable broker, `rrpc broker`, `rrpc demo`, and a librrpc.so that links
//! neither clap nor rumqttd.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{strings, Broker, Proc};
use crate::rrpc;

pub(crate) const PK: &str = "a1CliPk";
pub(crate) const READY: Duration = Duration::from_secs(20);

/// What a finished `rrpc` run left.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.show()))
    }

    pub(crate) fn show(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `rrpc args...` to its end, killing it (by PID) if it runs past `limit`.
pub(crate) fn run_limited(args: &[String], limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = Command::new(rrpc())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rrpc");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for rrpc") {
            break st;
        }
        if started.elapsed() > limit {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            panic!("rrpc {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    Run {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed,
    }
}

/// The arguments of `rrpc {cmd}` (`call` or `device`) for the device `dn` of [`PK`]
/// on the broker on `port`, then `extra`.
pub(crate) fn args_for(cmd: &str, port: u16, dn: &str, extra: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut a = strings(&[cmd, "--host", "127.0.0.1", "--port", &port]);
    a.extend(strings(&["--product-key", PK, "--device-name", dn]));
    a.extend(strings(extra));
    a
}

/// `rrpc call` to the device `dn` of [`PK`] on the broker on `port`, with `extra`
/// arguments (the payload, the timeout, ...).
fn call_to(port: u16, dn: &str, extra: &[&str]) -> Run {
    run_limited(&args_for("call", port, dn, extra), Duration::from_secs(30))
}

/// `rrpc device` on the broker on `port`, once it says it is connected.
pub(crate) fn rrpc_device(port: u16, extra: &[&str]) -> Proc {
    let mut a = strings(&["device", "--host", "127.0.0.1", "--port"]);
    a.push(port.to_string());
    a.extend(strings(&["--product-key", PK]));
    a.extend(strings(extra));
    let p = Proc::spawn(&rrpc(), &a);
    assert!(
        p.wait_stderr("rrpc device: connected as", READY),
        "{}",
        p.transcript()
    );
    p
}

/// The C echo device (examples-c/echo_device.c) on the broker on `port`.
fn c_echo_device(port: u16, extra: &[&str]) -> Proc {
    let a = common::example_args(port, PK, extra);
    let p = Proc::spawn(&common::cmake::example("echo_device"), &a);
    assert!(p.wait_stderr("connected", READY), "{}", p.transcript());
    p
}

fn assert_success_json(r: &Run, payload_b64: &str) -> u64 {
    assert_eq!(r.code, Some(0), "{}", r.show());
    let v = r.json();
    let o = v.as_object().expect("a JSON object");
    for k in o.keys() {
        assert!(
            [
                "RequestId",
                "Success",
                "MessageId",
                "RrpcCode",
                "PayloadBase64Byte"
            ]
            .contains(&k.as_str()),
            "unexpected field {k} in {v}"
        );
    }
    let rid = v["RequestId"].as_str().expect("RequestId");
    assert_eq!(rid.len(), 36, "{rid}");
    assert_eq!(v["Success"], serde_json::Value::Bool(true), "{v}");
    assert_eq!(v["RrpcCode"], "SUCCESS", "{v}");
    assert_eq!(v["PayloadBase64Byte"], payload_b64, "{v}");
    v["MessageId"]
        .as_u64()
        .expect("MessageId is a 64-bit number")
}

/// `rrpc call` to `dn` with `extra` arguments, answered by the echo device `dev`
/// (of `dialect`): the reply carries `b64` and the device saw `len` bytes.
fn echoed(dev: &Proc, port: u16, dialect: &str, dn: &str, extra: &[&str], b64: &str, len: usize) {
    let r = call_to(port, dn, extra);
    let id = assert_success_json(&r, b64);
    saw_request(dev, dialect, dn, id, len);
}

/// The device printed a request line for this message id.
fn saw_request(dev: &Proc, dialect: &str, dn: &str, id: u64, len: usize) {
    let line = format!("request {dialect} {PK}/{dn} id={id} len={len}");
    assert!(
        dev.wait_stdout_lines(&line, 1, Duration::from_secs(5)) == 1,
        "no `{line}`:\n{}",
        dev.transcript()
    );
}

fn calls_the_c_echo_device_through_rumqttd_and_mosquitto() {
    for b in common::brokers() {
        let dev = c_echo_device(b.port, &["--dialect", "alibaba", "--device-name", "dev1"]);
        // Text.
        echoed(
            &dev,
            b.port,
            "alibaba",
            "dev1",
            &["--payload", "hello world", "--timeout", "3000"],
            "aGVsbG8gd29ybGQ=",
            11,
        );

        // Binary, as the API's RequestBase64Byte: 00 01 02 00 ff.
        echoed(
            &dev,
            b.port,
            "alibaba",
            "dev1",
            &["--request-base64", "AAECAP8=", "--timeout", "3000"],
            "AAECAP8=",
            5,
        );

        // XML, read by a real XML parser.
        let r = call_to(
            b.port,
            "dev1",
            &["--payload", "<&>", "--timeout", "3000", "--format", "xml"],
        );
        assert_eq!(r.code, Some(0), "{}", r.show());
        let doc = roxmltree::Document::parse(&r.stdout)
            .unwrap_or_else(|e| panic!("not XML ({e}):\n{}", r.show()));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "RRpcResponse");
        let field = |name: &str| {
            root.children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(field("Success").as_deref(), Some("true"));
        assert_eq!(field("RrpcCode").as_deref(), Some("SUCCESS"));
        assert_eq!(field("PayloadBase64Byte").as_deref(), Some("PCY+"));
        assert_eq!(field("RequestId").map(|s| s.len()), Some(36));
        let id: u64 = field("MessageId")
            .unwrap()
            .parse()
            .expect("numeric MessageId");
        saw_request(&dev, "alibaba", "dev1", id, 3);
        drop(dev);

        // A custom RRPC topic.
        let topic = format!("/{PK}/dev2/user/update");
        let dev = c_echo_device(b.port, &common::custom_topic_device_args("dev2", &topic));
        echoed(
            &dev,
            b.port,
            "alibaba-custom",
            "dev2",
            &["--topic", &topic, "--payload", "on", "--timeout", "3000"],
            "b24=",
            2,
        );
    }
}

fn tencent_calls_through_mosquitto() {
    let b = Broker::mosquitto();
    let dev = c_echo_device(b.port, &["--dialect", "tencent", "--device-name", "test01"]);
    // No --timeout: Tencent's fixed 4 s.
    echoed(
        &dev,
        b.port,
        "tencent",
        "test01",
        &["--dialect", "tencent", "--payload", "rrpc test"],
        "cnJwYyB0ZXN0",
        9,
    );
}

fn content_type_travels_to_the_device_and_the_c_example() {
    let b = Broker::rumqttd();
    // Each device shows the content type its own way.
    let devices = [
        (
            rrpc_device(b.port, &["--device-name", "truck1"]),
            [
                "truck1",
                "AT+GPS",
                "65",
                "QVQrR1BT",
                "len=6 content-type=65",
            ],
        ),
        (
            c_echo_device(b.port, &["--dialect", "alibaba", "--device-name", "truck2"]),
            ["truck2", "card", "11", "Y2FyZA==", "len=4 ct=11"],
        ),
    ];
    for (dev, [dn, payload, ct, b64, shown]) in &devices {
        let r = call_to(
            b.port,
            dn,
            &[
                "--payload",
                payload,
                "--timeout",
                "3000",
                "--content-type",
                ct,
            ],
        );
        let id = assert_success_json(&r, b64);
        let line = format!("request alibaba {PK}/{dn} id={id} {shown}");
        assert_eq!(
            dev.wait_stdout_lines(&line, 1, Duration::from_secs(5)),
            1,
            "no `{line}`:\n{}",
            dev.transcript()
        );
    }
}

fn offline_comes_at_once_for_a_stopped_device() {
    for b in common::brokers() {
        let mut dev = rrpc_device(b.port, &["--device-name", "parked"]);
        let st = dev.terminate().expect("rrpc device exits on SIGTERM");
        assert!(st.success(), "{st:?}\n{}", dev.transcript());
        assert!(dev.stderr().iter().any(|l| l.contains("stopped")));
        let r = call_to(b.port, "parked", &["--payload", "x", "--timeout", "8000"]);
        assert_eq!(r.code, Some(4), "{:?}: {}", b.kind, r.show());
        assert_eq!(r.json()["RrpcCode"], "OFFLINE");
        assert!(
            r.elapsed < Duration::from_millis(1000),
            "OFFLINE must not wait for the timeout: {}",
            r.show()
        );
        assert!(r.stderr.contains("OFFLINE"), "{}", r.show());
    }
}

fn timeout_when_nobody_answers_in_time() {
    let b = Broker::mosquitto();
    let _dev = rrpc_device(b.port, &["--device-name", "sleepy", "--delay-ms", "20000"]);
    for dn in ["sleepy", "absent"] {
        let r = call_to(b.port, dn, &["--payload", "x", "--timeout", "1000"]);
        assert_eq!(r.code, Some(3), "{dn}: {}", r.show());
        let v = r.json();
        assert_eq!(v["RrpcCode"], "TIMEOUT");
        assert!(v["MessageId"].is_u64(), "{v}");
        assert!(
            r.elapsed >= Duration::from_millis(1000) && r.elapsed < Duration::from_millis(3000),
            "{dn}: {}",
            r.show()
        );
    }
}

/// Starts `rrpc call --timeout 8000` to a device that answers after 5 s and waits
/// until the device has the request.
fn call_in_flight(port: u16, dev: &Proc) -> (Proc, Instant) {
    let a = args_for(
        "call",
        port,
        "slow",
        &["--payload", "x", "--timeout", "8000"],
    );
    let started = Instant::now();
    let c = Proc::spawn(&rrpc(), &a);
    assert_eq!(
        dev.wait_stdout_lines(
            &format!("request alibaba {PK}/slow "),
            1,
            Duration::from_secs(5)
        ),
        1,
        "the request never reached the device:\n{}\n{}",
        dev.transcript(),
        c.transcript()
    );
    (c, started)
}

fn halfconn_when_the_device_dies_during_the_call() {
    let b = Broker::mosquitto();
    let dev = rrpc_device(b.port, &["--device-name", "slow", "--delay-ms", "5000"]);
    let (mut c, started) = call_in_flight(b.port, &dev);
    std::thread::sleep(Duration::from_millis(300));
    dev.signal(libc::SIGKILL); // no clean DISCONNECT: the broker publishes the last will
    let st = c
        .wait_exit(Duration::from_secs(12))
        .expect("rrpc call ends");
    let elapsed = started.elapsed();
    assert_eq!(st.code(), Some(5), "{}", c.transcript());
    assert!(
        elapsed < Duration::from_secs(4),
        "HALFCONN must come well before the 8 s timeout: {elapsed:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&c.stdout().join("\n")).unwrap();
    assert_eq!(json["RrpcCode"], "HALFCONN");
}

fn unknown_when_the_broker_dies_during_the_call() {
    let mut b = Broker::mosquitto();
    let _dev = rrpc_device(b.port, &["--device-name", "slow", "--delay-ms", "5000"]);
    let (mut c, started) = call_in_flight(b.port, &_dev);
    std::thread::sleep(Duration::from_millis(300));
    b.kill(); // the caller's own connection drops
    let st = c
        .wait_exit(Duration::from_secs(12))
        .expect("rrpc call ends");
    assert_eq!(st.code(), Some(6), "{}", c.transcript());
    assert!(started.elapsed() < Duration::from_secs(4));
    let json: serde_json::Value = serde_json::from_str(&c.stdout().join("\n")).unwrap();
    assert_eq!(json["RrpcCode"], "UNKNOWN");
}

fn bad_input_exits_2_with_the_reason_before_connecting() {
    // Nothing listens on this port: parameters are checked before connecting.
    let port = common::free_port();
    let cases: [(&[&str], &str); 8] = [
        (&["--payload", "x", "--timeout", "999"], "Timeout 999"),
        (&["--payload", "x", "--timeout", "8001"], "Timeout 8001"),
        (&["--payload", "x"], "Timeout is required"),
        (
            &["--request-base64", "not base64!", "--timeout", "1000"],
            "Base64",
        ),
        (
            &[
                "--payload",
                "x",
                "--timeout",
                "1000",
                "--content-type",
                "12",
            ],
            "ContentType 12",
        ),
        (
            &[
                "--payload",
                "x",
                "--timeout",
                "1000",
                "--dialect",
                "tencent",
                "--topic",
                "/a/b",
            ],
            "Topic",
        ),
        (
            &["--payload", "x", "--timeout", "1000", "--topic", "/a/+/b"],
            "Topic",
        ),
        (
            &[
                "--payload",
                "x",
                "--timeout",
                "1000",
                "--dialect",
                "alibaba-custom",
            ],
            "Topic",
        ),
    ];
    for (a, reason) in cases {
        let r = call_to(port, "dev1", a);
        assert_eq!(r.code, Some(2), "{a:?}: {}", r.show());
        let v = r.json();
        assert_eq!(v["Success"], false, "{v}");
        assert_eq!(v["Code"], "InvalidParameter", "{v}");
        let msg = v["ErrorMessage"].as_str().unwrap();
        assert!(msg.contains(reason), "{a:?}: {msg}");
        assert!(r.stderr.contains(reason), "{a:?}: {}", r.show());
        assert!(r.elapsed < Duration::from_secs(2), "{}", r.show());
    }
    for dn in ["dev+1", "dev#", "a/b"] {
        let r = call_to(port, dn, &["--payload", "x", "--timeout", "1000"]);
        assert_eq!(r.code, Some(2), "{dn}: {}", r.show());
        assert_eq!(r.json()["Code"], "InvalidParameter");
        assert!(r.stderr.contains("DeviceName"), "{}", r.show());
    }
    // Usage errors (clap): exit 2, the message on stderr, nothing on stdout.
    for a in [
        &["--timeout", "1000"][..],
        &["--payload", "x", "--timeout", "soon"],
        &["--payload", "x", "--request-base64", "eA=="],
    ] {
        let r = call_to(port, "d", a);
        assert_eq!(r.code, Some(2), "{a:?}: {}", r.show());
        assert!(r.stdout.is_empty(), "{}", r.show());
        assert!(r.stderr.contains("error:"), "{}", r.show());
    }
}

fn unreachable_broker_exits_7_within_the_connect_timeout() {
    let port = common::free_port();
    let unreachable = |format: &str| {
        let r = call_to(
            port,
            "dev1",
            &[
                "--payload",
                "x",
                "--timeout",
                "8000",
                "--connect-timeout-ms",
                "1000",
                "--format",
                format,
            ],
        );
        assert_eq!(r.code, Some(7), "{format}: {}", r.show());
        r
    };
    let r = unreachable("json");
    assert!(r.elapsed < Duration::from_millis(2500), "{}", r.show());
    let line = r.stderr.lines().find(|l| l.starts_with("rrpc call: "));
    let line = line.unwrap_or_else(|| panic!("no message on stderr: {}", r.show()));
    assert!(
        line.contains("cannot reach the broker") && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    // One line: the library does not print the failure it returned.
    assert!(!r.stderr.contains("librrpc"), "{}", r.show());
    let v = r.json();
    assert_eq!(v["Success"], false);
    assert_eq!(v["Code"], "iot.system.SystemException");
    assert!(v["ErrorMessage"]
        .as_str()
        .unwrap()
        .contains("cannot reach the broker"));
    // The XML form too.
    let r = unreachable("xml");
    let doc = roxmltree::Document::parse(&r.stdout).expect("XML");
    assert!(doc
        .root_element()
        .children()
        .any(|n| n.has_tag_name("Code") && n.text() == Some("iot.system.SystemException")));
}

fn device_refuses_bad_identities_and_an_unreachable_broker() {
    let port = common::free_port();
    let a = args_for("device", port, "dev#1", &[]);
    let r = run_limited(&a, Duration::from_secs(20));
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(r.stderr.contains("wildcard"), "{}", r.show());

    let a = args_for("device", port, "dev1", &["--connect-timeout-ms", "1000"]);
    let r = run_limited(&a, Duration::from_secs(20));
    assert_eq!(r.code, Some(7), "{}", r.show());
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.show()
    );
}

fn broker_command_serves_calls_and_stops_on_sigterm() {
    let port = common::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut broker = Proc::spawn(&rrpc(), &strings(&["broker", "--bind", &bind]));
    assert!(
        broker.wait_stderr(&format!("rrpc broker listening on {bind}"), READY),
        "{}",
        broker.transcript()
    );
    // A second broker on the same address says why it cannot start.
    let r = run_limited(
        &strings(&["broker", "--bind", &bind]),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(7), "{}", r.show());
    assert!(r.stderr.contains("cannot listen on"), "{}", r.show());

    let mut dev = rrpc_device(port, &["--device-name", "dev1", "--device-name", "dev2"]);
    for dn in ["dev1", "dev2"] {
        echoed(
            &dev,
            port,
            "alibaba",
            dn,
            &["--payload", "through rrpc broker", "--timeout", "3000"],
            "dGhyb3VnaCBycnBjIGJyb2tlcg==",
            19,
        );
    }
    assert!(dev.terminate().expect("device exits").success());
    let st = broker.terminate().expect("broker exits on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", broker.transcript());
    assert!(
        broker.stderr().iter().any(|l| l.contains("SIGTERM")),
        "{}",
        broker.transcript()
    );
}

fn demo_shows_every_expected_code() {
    let r = run_limited(&strings(&["demo"]), Duration::from_secs(60));
    assert_eq!(r.code, Some(0), "{}", r.show());
    for code in ["SUCCESS", "OFFLINE", "TIMEOUT", "InvalidParameter"] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(code)),
            "{code}: {}",
            r.show()
        );
    }
    assert!(!r.stdout.contains("FAIL"), "{}", r.show());
    assert!(r.stdout.contains("dlrow olleh"), "{}", r.show());
    assert!(
        r.stdout
            .contains("200 sequential calls to demo-sensor: 200 SUCCESS, p50 "),
        "{}",
        r.show()
    );
    assert!(r.stdout.contains("every call ended as expected"));
    // Each call of the demo by name: what it shows is what happened.
    for (call, code) in [
        ("text to demo-sensor", "SUCCESS"),
        ("binary to demo-sensor", "SUCCESS"),
        ("custom topic to demo-valve", "SUCCESS"),
        ("to demo-parked (stopped)", "OFFLINE"),
        ("demo-sensor ignores it", "TIMEOUT"),
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("ok ") && l.contains(call))
            .unwrap_or_else(|| panic!("no `ok` line for {call}: {}", r.show()));
        assert!(line.contains(code), "{call}: {line}");
    }
    // OFFLINE came at once although the call's timeout was 8000 ms.
    let offline = r.stdout.lines().find(|l| l.contains(" OFFLINE ")).unwrap();
    let ms: f64 = offline
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .rfind(|w| w[1] == "ms")
        .map(|w| w[0].parse().unwrap())
        .expect("a latency");
    assert!(ms < 100.0, "{offline}");
    // Every response line is a JSON document.
    let jsons: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l.trim()).expect("JSON"))
        .collect();
    assert_eq!(jsons.len(), 6, "{}", r.show());
    assert!(jsons.iter().all(|v| v["RequestId"].is_string()));
}

fn help_explains_the_commands_and_exit_statuses() {
    let r = run_limited(&strings(&["--help"]), Duration::from_secs(10));
    assert_eq!(r.code, Some(0));
    for s in ["Revert-RPC", "call", "device", "broker", "demo", "HALFCONN"] {
        assert!(r.stdout.contains(s), "{s}: {}", r.show());
    }
    let r = run_limited(&strings(&["call", "--help"]), Duration::from_secs(10));
    for s in [
        "Exit status",
        "3  TIMEOUT",
        "7  broker unreachable",
        "PayloadBase64Byte",
    ] {
        assert!(r.stdout.contains(s), "{s}: {}", r.show());
    }
    let r = run_limited(&strings(&["broker", "--help"]), Duration::from_secs(10));
    assert!(r.stdout.contains("Tencent dialect"), "{}", r.show());
    assert!(r.stdout.contains("Mosquitto"), "{}", r.show());
    let r = run_limited(&strings(&["device", "--help"]), Duration::from_secs(10));
    assert!(r.stdout.contains("Presence"), "{}", r.show());
}

/// Symbols (all of them when the file has a symbol table, else the dynamic ones) and
/// printable strings of a binary, for looking for crates that must not be in it.
fn symbols_and_strings(path: &Path) -> String {
    let mut all = String::new();
    for args in [&["--defined-only"][..], &["-D", "--defined-only"]] {
        let out = Command::new("nm")
            .args(args)
            .arg(path)
            .output()
            .expect("run nm");
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let bytes = std::fs::read(path).expect("read the binary");
    for run in bytes.split(|b| !(b.is_ascii_graphic() || *b == b' ')) {
        if run.len() >= 4 {
            all.push_str(&String::from_utf8_lossy(run));
            all.push('\n');
        }
    }
    all
}

fn mentions(text: &str, krate: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(krate))
        .take(5)
        .map(str::to_string)
        .collect()
}

fn librrpc_links_neither_clap_nor_rumqttd() {
    common::require_tool("nm");
    common::cmake::c_build();
    let lib = common::cmake::cargo_target_dir().join("release/librrpc.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    let text = symbols_and_strings(&lib);
    assert!(
        text.contains("rrpc_client_new"),
        "the check sees librrpc's own symbols"
    );
    for krate in ["clap_builder", "clap_lex", "clap_derive", "rumqttd"] {
        let hits = mentions(&text, krate);
        assert!(
            hits.is_empty(),
            "librrpc.so contains {krate}: {hits:?} ({})",
            lib.display()
        );
    }
    // The same check finds them in the rrpc binary, so it can find them at all.
    let bin = symbols_and_strings(&rrpc());
    for krate in ["clap_builder", "rumqttd"] {
        assert!(
            !mentions(&bin, krate).is_empty(),
            "{krate} not found in rrpc"
        );
    }
}

/// `rrpc credentials <words>` (split at spaces) followed by `extra` as given.
fn credentials(words: &str, extra: &[&str]) -> Run {
    let mut all = vec!["credentials".to_string()];
    all.extend(words.split_whitespace().map(str::to_string));
    all.extend(extra.iter().map(|s| s.to_string()));
    run_limited(&all, Duration::from_secs(20))
}

/// `rrpc credentials` prints what the vendors' SDKs compute for the same inputs (the
/// values and how they were produced: src/credentials.rs, scripts/vendor-vectors.py),
/// with host and port, and refuses bad input with exit 2 without echoing a secret.
fn credentials_match_the_vendor_sdks() {
    let secret = "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U";
    let ali = format!(
        "alibaba --product-key a1B2c3D4e5F --device-name sensor-01 --device-secret {secret}"
    );
    let tencent = "tencent --product-id ABCDEFGHIJ --device-name dev001 \
                   --device-psk bXlfZGV2aWNlX3BzazEyMw== --expiry 1700000000123 --conn-id Ab3dE";
    let issued = [
        (
            format!("{ali} --timestamp 1700000000 --sign-method hmacsha1 --no-tls"),
            &["--client-id", "a1B2c3D4e5F&sensor-01"][..],
            serde_json::json!({
                "username": "sensor-01&a1B2c3D4e5F",
                "password": "44a1a7816039b48ee97e2ac5fcc34519c99597b2",
                "client_id": "a1B2c3D4e5F&sensor-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000|",
                "host": "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com", "port": 1883
            }),
        ),
        (
            format!(
                "{ali} --timestamp 1700000000123 --instance-id iot-06z00abc1de2fgh --custom-rrpc"
            ),
            &[],
            serde_json::json!({
                "password": "6c7ec5593a51edd2896a0a671054a08bf9ca882d1beadcea1097bdbbaa565bc2",
                "client_id": "a1B2c3D4e5F.sensor-01|securemode=2,signmethod=hmacsha256,timestamp=1700000000123,ext=3|",
                "host": "iot-06z00abc1de2fgh.mqtt.iothub.aliyuncs.com", "port": 8883
            }),
        ),
        (
            format!("{tencent} --sdk-app-id 21010406 --sign-method hmacsha1"),
            &[],
            serde_json::json!({
                "client_id": "ABCDEFGHIJdev001",
                "username": "ABCDEFGHIJdev001;21010406;Ab3dE;1700000000123",
                "password": "507ae7d8fe4f61be26963ba8badc47f29aab108c;hmacsha1",
                "host": "ABCDEFGHIJ.iotcloud.tencentdevices.com", "port": 8883
            }),
        ),
    ];
    for (words, extra, want) in issued {
        let r = credentials(&words, extra);
        assert_eq!(r.code, Some(0), "{words}: {}", r.show());
        let got = r.json();
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&got[field], value, "{words}: {field}");
        }
    }

    // Bad input: exit 2, the field named on stderr, nothing on stdout, no secret.
    let base = "alibaba --product-key pk --device-name";
    let bad: [(String, &[&str], &str); 4] = [
        (
            format!("{base} d#1 --device-secret {secret} --timestamp 1"),
            &[],
            "device name contains an MQTT wildcard",
        ),
        (
            format!("{base} d1 --timestamp 1"),
            &["--device-secret", ""],
            "device secret is empty",
        ),
        (
            format!("{base} d1 --device-secret {secret} --timestamp 0"),
            &[],
            "timestamp must be 1 to 9999999999999",
        ),
        (
            "tencent --product-id P --device-name d1 --device-psk secret!psk --expiry 1 \
             --conn-id abcde"
                .to_string(),
            &[],
            "device PSK is not Base64",
        ),
    ];
    for (words, extra, want) in bad {
        let r = credentials(&words, extra);
        assert_eq!(r.code, Some(2), "{}", r.show());
        assert!(r.stderr.contains(want), "{}", r.show());
        assert!(r.stdout.is_empty(), "{}", r.show());
        assert!(
            !r.stderr.contains(secret) && !r.stderr.contains("secret!psk"),
            "{}",
            r.show()
        );
    }
}

/// `--password-file` logs `rrpc device` and `rrpc call` in to a Mosquitto that
/// refuses anonymous clients; a wrong, empty or missing file is refused clearly,
/// and the password never shows in the output.
fn password_file_logs_in_and_bad_files_are_named() {
    let broker = Broker::mosquitto_with_user("gateway1", "pa55 word");
    let dir = common::scratch_dir("cli-auth");
    let good = dir.join(format!("good-{}", std::process::id()));
    std::fs::write(&good, "pa55 word\n").unwrap();
    let wrong = dir.join(format!("wrong-{}", std::process::id()));
    std::fs::write(&wrong, "guess\r\n").unwrap();
    let empty = dir.join(format!("empty-{}", std::process::id()));
    std::fs::write(&empty, "\n").unwrap();
    /// The login arguments with the password in `file`.
    fn login(file: &str) -> [&str; 4] {
        ["--username", "gateway1", "--password-file", file]
    }
    let good = good.display().to_string();
    let dev = rrpc_device(
        broker.port,
        &[&["--device-name", "pwdev"][..], &login(&good)].concat(),
    );
    let hi = ["--payload", "hi", "--timeout", "3000"];
    let r = call_to(broker.port, "pwdev", &[&hi[..], &login(&good)].concat());
    assert_success_json(&r, "aGk=");
    assert_eq!(
        dev.wait_stdout_lines("request ", 1, READY),
        1,
        "{}",
        dev.transcript()
    );

    for (file, want, code) in [
        (wrong, "", 7),
        (empty, "empty", 2),
        (dir.join("no-such-file"), "No such file", 2),
    ] {
        let file = file.display().to_string();
        let r = call_to(broker.port, "pwdev", &[&hi[..], &login(&file)].concat());
        assert_eq!(r.code, Some(code), "{file}: {}", r.show());
        assert!(r.stderr.contains(want), "{file}: {}", r.show());
        assert!(
            !r.stdout.contains("guess") && !r.stderr.contains("guess"),
            "{}",
            r.show()
        );
    }
    assert!(!dev.transcript().contains("pa55"), "{}", dev.transcript());
    drop(dev);
}

/// `rrpc device --ca-file` and `rrpc call --ca-file` through a Mosquitto TLS
/// listener with certificates made here; mutual TLS with `--cert`/`--key`; a CA
/// that did not sign the broker is refused with the reason (exit 7).
fn device_and_call_over_tls() {
    let pki = common::pki::Pki::new("cli-tls");
    let (cert, key) = pki.server("server", false);
    let (ccert, ckey) = pki.leaf("cli-client", &[], true, false);
    let ca = pki.path("ca.pem");
    let broker = common::pki::tls_broker(&cert, &key, Some(&ca));
    let (ca, ccert, ckey) = (
        ca.display().to_string(),
        ccert.display().to_string(),
        ckey.display().to_string(),
    );
    let tls = ["--ca-file", &ca, "--cert", &ccert, "--key", &ckey];
    let mut dev_args = vec!["--device-name", "tlsdev"];
    dev_args.extend(tls);
    let dev = rrpc_device(broker.port, &dev_args);

    let hi = ["--payload", "hi", "--timeout", "3000"];
    let r = call_to(broker.port, "tlsdev", &[&hi[..], &tls].concat());
    assert_success_json(&r, "aGk=");
    assert_eq!(
        dev.wait_stdout_lines("request ", 1, READY),
        1,
        "{}",
        dev.transcript()
    );

    let other = common::pki::Pki::new("cli-tls-other");
    let other_ca = other.path("ca.pem").display().to_string();
    let wrong_ca = ["--ca-file", &other_ca, "--cert", &ccert, "--key", &ckey];
    let r = call_to(broker.port, "tlsdev", &[&hi[..], &wrong_ca].concat());
    assert_eq!(r.code, Some(7), "{}", r.show());
    assert!(r.stderr.contains("unknown issuer"), "{}", r.show());
}

/// `rrpc device --device-secret` connects with the cloud's signed credentials:
/// Mosquitto's log shows the signed client id and user name (Alibaba and Tencent
/// forms), the device still answers calls, and the secret and the password never
/// show in the device's output.
fn device_signs_in_with_a_device_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::scratch_dir("cli-sign");
    let log = dir.join(format!("mosquitto-{}.log", std::process::id()));
    std::fs::write(&log, "").unwrap();
    // Mosquitto started as root writes as its own user.
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let conf = format!(
        "allow_anonymous true\nlog_dest file {}\nlog_type notice\n",
        log.display()
    );
    let broker = Broker::mosquitto_with(&conf);
    let secret = "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U";
    let dev = rrpc_device(
        broker.port,
        &["--device-name", "sdev", "--device-secret", secret],
    );
    let r = call_to(
        broker.port,
        "sdev",
        &["--payload", "hi", "--timeout", "3000"],
    );
    assert_success_json(&r, "aGk=");
    let psk = "bXlfZGV2aWNlX3BzazEyMw==";
    let tdev = rrpc_device(
        broker.port,
        &[
            "--dialect",
            "tencent",
            "--device-name",
            "tdev",
            "--device-secret",
            psk,
            "--sign-method",
            "hmacsha1",
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let id = format!("as {PK}.sdev|securemode=3,signmethod=hmacsha256,timestamp=");
    assert!(text.contains(&id), "{text}");
    assert!(text.contains(&format!("u'sdev&{PK}'")), "{text}");
    assert!(text.contains(&format!("as {PK}tdev (")), "{text}");
    assert!(text.contains(&format!("u'{PK}tdev;12010126;")), "{text}");
    for d in [&dev, &tdev] {
        let out = d.transcript();
        assert!(!out.contains(secret) && !out.contains(psk), "{out}");
    }

    // Tencent's signature expires: a reconnect signs again (a new connection id).
    let mut broker = broker;
    broker.kill();
    broker.restart();
    let user = format!("u'{PK}tdev;12010126;");
    let deadline = Instant::now() + Duration::from_secs(30);
    let users = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let users: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.split_once(&user).map(|(_, rest)| rest.to_string()))
            .collect();
        if users.len() >= 2 || Instant::now() > deadline {
            break users;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        users.len() >= 2,
        "no second signature after the restart: {users:?}"
    );

    // One device per signature, and no --username beside it.
    let refused = |extra: &[&str]| {
        let mut a = strings(&["device", "--port", "1", "--product-key", PK]);
        a.extend(strings(&["--device-name", "a", "--device-secret", secret]));
        a.extend(strings(extra));
        let r = run_limited(&a, Duration::from_secs(20));
        assert_eq!(r.code, Some(2), "{}", r.show());
        r
    };
    let r = refused(&["--device-name", "b"]);
    assert!(r.stderr.contains("one --device-name"), "{}", r.show());
    let r = refused(&["--username", "u"]);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.show());
}

/// `--mqtt-version 5` on both sides: a custom-topic device answers, and No Local
/// keeps its own replies away (on MQTT 3.1.1 the same calls bring them back);
/// other versions are refused before connecting.
fn mqtt5_device_and_call_with_no_local() {
    let b = Broker::mosquitto();
    for (version, dn) in [("5", "v5dev"), ("3.1.1", "v3dev")] {
        let topic = format!("/{PK}/{dn}/user/update");
        let mut dev = rrpc_device(
            b.port,
            &[
                &["--mqtt-version", version][..],
                &common::custom_topic_device_args(dn, &topic),
            ]
            .concat(),
        );
        // Two calls: the second request reaches the device after the first
        // reply's echo would have.
        for payload in ["b24=", "b2Zm"] {
            let r = call_to(
                b.port,
                dn,
                &[
                    "--mqtt-version",
                    version,
                    "--topic",
                    &topic,
                    "--request-base64",
                    payload,
                    "--timeout",
                    "3000",
                ],
            );
            assert_success_json(&r, payload);
        }
        assert_eq!(dev.terminate().and_then(|s| s.code()), Some(0));
        let err = dev.stderr().join("\n");
        assert!(
            err.contains("stopped after 2 request(s), 2 replied"),
            "{err}"
        );
        let none_back = err.contains("replied, 0 own replies ignored");
        assert_eq!(none_back, version == "5", "MQTT {version}:\n{err}");
    }
    for cmd in ["device", "call"] {
        let r = run_limited(
            &strings(&[cmd, "--mqtt-version", "3", "--product-key", PK]),
            Duration::from_secs(10),
        );
        assert_eq!(r.code, Some(2), "{}", r.show());
        assert!(
            r.stderr.contains("--mqtt-version")
                && r.stderr
                    .contains("must be 3.1.1 (or 4, its protocol level) or 5"),
            "{}",
            r.show()
        );
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        calls_the_c_echo_device_through_rumqttd_and_mosquitto needs ["mosquitto", "cmake", "cc"],
        tencent_calls_through_mosquitto needs ["mosquitto", "cmake", "cc"],
        content_type_travels_to_the_device_and_the_c_example needs ["cmake", "cc"],
        offline_comes_at_once_for_a_stopped_device needs ["mosquitto"],
        timeout_when_nobody_answers_in_time needs ["mosquitto"],
        halfconn_when_the_device_dies_during_the_call needs ["mosquitto"],
        unknown_when_the_broker_dies_during_the_call needs ["mosquitto"],
        bad_input_exits_2_with_the_reason_before_connecting,
        unreachable_broker_exits_7_within_the_connect_timeout,
        device_refuses_bad_identities_and_an_unreachable_broker,
        broker_command_serves_calls_and_stops_on_sigterm,
        demo_shows_every_expected_code,
        help_explains_the_commands_and_exit_statuses,
        librrpc_links_neither_clap_nor_rumqttd needs ["cmake", "cc", "nm"],
        credentials_match_the_vendor_sdks,
        password_file_logs_in_and_bad_files_are_named needs ["mosquitto", "mosquitto_passwd"],
        device_and_call_over_tls needs ["mosquitto"],
        device_signs_in_with_a_device_secret needs ["mosquitto"],
        mqtt5_device_and_call_with_no_local needs ["mosquitto"],
    ]
}
