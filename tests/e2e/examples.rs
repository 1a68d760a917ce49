//! End to end: the C examples, compiled by CMake with a real C compiler, run as
//! real processes against an in-process rumqttd and a Mosquitto started on a free
//! loopback port, and are called through the broker.

use std::time::{Duration, Instant};

use rrpc::dialect::Dialect;
use rrpc::session::MqttVersion;
use rrpc::{CallParams, RrpcCode};

use crate::common;
use crate::common::{Broker, BrokerKind, Caller, Proc};

const PK: &str = "a1GFjLP3xxC";
const WAIT: Duration = Duration::from_secs(5);
const READY: Duration = Duration::from_secs(15);

fn echo_device(broker: &Broker, extra: &[&str]) -> Proc {
    let a = common::example_args(broker.port, PK, extra);
    Proc::spawn(&common::cmake::example("echo_device"), &a)
}

/// The payloads every dialect must carry unchanged.
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let mut big = Vec::with_capacity(64 * 1024);
    let mut x = 0x1234_5678u32;
    while big.len() < 64 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.push(x as u8);
    }
    vec![
        ("empty", Vec::new()),
        (
            "binary with NUL bytes",
            (0..=255u8).chain([0, 0, 0]).collect(),
        ),
        ("64 KiB", big),
        ("text", b"hello world".to_vec()),
    ]
}

fn check_echo(caller: &Caller, d: Dialect, dn: &str, topic: Option<&str>, dev: &Proc) {
    for (what, p) in payloads() {
        let r = caller.call(d, PK, dn, topic, &p, WAIT);
        assert_eq!(
            r.as_deref().map(<[u8]>::len),
            Some(p.len()),
            "{d} {what}: no or wrong-size answer\n{}",
            dev.transcript()
        );
        assert!(r.unwrap() == p, "{d} {what}: payload changed");
    }
}

fn echo_device_carries_empty_binary_and_64k_payloads_in_every_dialect() {
    for broker in common::brokers() {
        let caller = Caller::connect(broker.port);

        let dev = echo_device(&broker, &["--dialect", "alibaba", "--device-name", "dev1"]);
        dev.expect_stderr("connected", READY);
        check_echo(&caller, Dialect::AlibabaSystem, "dev1", None, &dev);
        // A reply can reach the caller before the device's line reaches our reader.
        let n = payloads().len();
        dev.expect_stdout_lines("request ", n, READY);
        let lines = dev.stdout();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("request alibaba {PK}/dev1 id="))
                    && l.ends_with("len=65536")),
            "one line per request: {lines:?}"
        );

        let topic = format!("/{PK}/dev2/user/update");
        caller.watch_custom(&topic);
        let dev2 = echo_device(&broker, &common::custom_topic_device_args("dev2", &topic));
        dev2.expect_stderr("connected", READY);
        check_echo(&caller, Dialect::AlibabaCustom, "dev2", Some(&topic), &dev2);
        // Each custom-topic reply came back to the device and was not answered again.
        let want = payloads().len();
        dev2.expect_stdout_lines("request ", want, READY);
        let n = dev2.stdout().len();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(dev2.stdout().len(), n, "the device answered its own reply");
        assert_eq!(n, payloads().len(), "{}", dev2.transcript());

        if broker.kind == BrokerKind::Mosquitto {
            // rumqttd refuses `$` topics; the Tencent dialect runs through Mosquitto.
            caller.watch_tencent();
            let dev3 = echo_device(
                &broker,
                &["--dialect", "tencent", "--device-name", "test01"],
            );
            dev3.expect_stderr("connected", READY);
            check_echo(&caller, Dialect::Tencent, "test01", None, &dev3);
            // The transcript of seeds/004: request on $rrpc/rxd/xxx/test01/41440 is
            // answered on $rrpc/txd/xxx/test01/41440.
            let dev4 = common::spawn_example(
                "echo_device",
                broker.port,
                "xxx",
                &["--dialect", "tencent", "--device-name", "test01"],
            );
            dev4.expect_stderr("connected", READY);
            let r = caller.call_topic("$rrpc/rxd/xxx/test01/41440", "41440", b"ok", WAIT);
            assert_eq!(r.as_deref(), Some(&b"ok"[..]), "{}", dev4.transcript());

            // The clouds added as data, through the C API's rrpc_dialect_from_name
            // (the `$` topics of Azure, Huawei and AWS: Mosquitto only).
            for (d, name) in [
                (Dialect::AlibabaService, Some("setLight")),
                (Dialect::ThingsBoard, None),
                (Dialect::Azure, Some("reboot")),
                (Dialect::Huawei, None),
                (Dialect::Aws, None),
            ] {
                caller.watch(d);
                let mut dev =
                    echo_device(&broker, &["--dialect", d.name(), "--device-name", "nd1"]);
                dev.expect_stderr("connected", READY);
                for (what, p) in payloads() {
                    let r = caller.call_named(d, PK, "nd1", name, &p, WAIT);
                    assert_eq!(
                        r.as_deref().map(<[u8]>::len),
                        Some(p.len()),
                        "{d} {what}: no or wrong-size answer\n{}",
                        dev.transcript()
                    );
                    assert!(r.unwrap() == p, "{d} {what}: payload changed");
                }
                dev.terminate();
            }
        }
    }
}

fn several_devices_share_one_client() {
    for broker in common::brokers() {
        let caller = Caller::connect(broker.port);
        let names: Vec<String> = (0..8).map(|i| format!("dev{i}")).collect();
        let mut a = vec!["--dialect", "alibaba"];
        for n in &names {
            a.extend(["--device-name", n.as_str()]);
        }
        let dev = echo_device(&broker, &a);
        dev.expect_stderr("connected", READY);
        for round in 0..3 {
            for n in &names {
                let p = format!("{n}-{round}");
                let r = caller.call_system(PK, n, p.as_bytes(), WAIT);
                assert_eq!(r, Some(p.into_bytes()), "{}", dev.transcript());
            }
        }
        // A reply can reach the caller before the device's line reaches our reader.
        dev.expect_stdout_lines("request ", 24, READY);
        let lines = dev.stdout();
        assert_eq!(lines.len(), 24);
        for n in &names {
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| l.contains(&format!("/{n} ")))
                    .count(),
                3
            );
        }
    }
}

fn deferred_reply_example_answers_from_a_worker_thread() {
    for broker in common::brokers() {
        let caller = Caller::connect(broker.port);
        let port = broker.port.to_string();
        let dev = common::spawn_example(
            "deferred_reply",
            &port,
            PK,
            &[
                "--dialect",
                "alibaba",
                "--device-name",
                "slow1",
                "--delay-ms",
                "50",
            ],
        );
        dev.expect_stderr("connected", READY);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for i in 0..5 {
                let (caller, tx) = (&caller, tx.clone());
                s.spawn(move || {
                    let p = format!("job{i}\0bin");
                    let r = caller.call_system(PK, "slow1", p.as_bytes(), WAIT);
                    tx.send((p, r)).unwrap();
                });
            }
        });
        drop(tx);
        for (p, r) in rx {
            assert_eq!(
                r,
                Some(format!("done:{p}").into_bytes()),
                "{}",
                dev.transcript()
            );
        }
        dev.expect_stdout_lines("replied token=", 5, WAIT);
    }
}

fn yield_mode_example_serves_requests_on_the_main_thread() {
    for broker in common::brokers() {
        let caller = Caller::connect(broker.port);
        let dev = echo_device(
            &broker,
            &["--dialect", "alibaba", "--device-name", "y1", "--yield"],
        );
        let r = common::until_answered(READY, |t| {
            caller.call(Dialect::AlibabaSystem, PK, "y1", None, b"first", t)
        });
        assert_eq!(r.as_deref(), Some(&b"first"[..]), "{}", dev.transcript());
        check_echo(&caller, Dialect::AlibabaSystem, "y1", None, &dev);
    }
}

fn device_answers_again_after_mosquitto_is_killed_and_restarted() {
    let mut broker = Broker::mosquitto();
    let caller_before = Caller::connect(broker.port);
    let dev = echo_device(
        &broker,
        &["--dialect", "alibaba", "--device-name", "phoenix"],
    );
    dev.expect_stderr("connected", READY);
    assert_eq!(
        caller_before
            .call_system(PK, "phoenix", b"before", WAIT)
            .as_deref(),
        Some(&b"before"[..])
    );
    drop(caller_before);
    broker.kill();
    assert!(
        dev.wait_stderr("connection: lost", READY),
        "the device notices: {}",
        dev.transcript()
    );
    std::thread::sleep(Duration::from_millis(700));
    broker.restart();
    let t = Instant::now();
    let caller = Caller::connect(broker.port);
    let r = common::until_answered(Duration::from_secs(30), |t| {
        caller.call(Dialect::AlibabaSystem, PK, "phoenix", None, b"after", t)
    });
    assert_eq!(r.as_deref(), Some(&b"after"[..]), "{}", dev.transcript());
    eprintln!("answered again {:?} after the restart", t.elapsed());
    check_echo(&caller, Dialect::AlibabaSystem, "phoenix", None, &dev);
}

fn unreachable_broker_at_start_exits_with_a_clear_message() {
    let extra = ["--dialect", "alibaba", "--device-name", "d"];
    let (err, port) = common::run_example_without_broker("echo_device", PK, &extra, 1);
    assert!(
        err.contains("rrpc_client_start failed")
            && err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("refused"),
        "{err}"
    );
}

fn malformed_request_topics_are_ignored_counted_and_logged_by_the_device() {
    for broker in common::brokers() {
        let caller = Caller::connect(broker.port);
        let mut dev = echo_device(&broker, &["--dialect", "alibaba", "--device-name", "m1"]);
        dev.expect_stderr("connected", READY);
        caller.publish_raw(&format!("/sys/{PK}/m1/rrpc/request/"), b"no id");
        dev.expect_stderr("malformed RRPC topic", WAIT);
        // Still serving.
        assert_eq!(
            caller.call_system(PK, "m1", b"ok", WAIT).as_deref(),
            Some(&b"ok"[..])
        );
        assert_eq!(
            dev.terminate().and_then(|s| s.code()),
            Some(0),
            "{}",
            dev.transcript()
        );
        assert!(
            dev.stderr()
                .iter()
                .any(|l| l.contains("1 requests, 1 replies, 1 dropped as malformed")),
            "{}",
            dev.transcript()
        );
    }
}

/// Runs `program args` under valgrind memcheck, feeds it `n` requests, and checks
/// that it exits cleanly with no errors and no leaks ([`common::valgrind_args`]).
fn valgrind_clean(name: &str, extra: &[&str], n: usize, reply_prefix: &[u8]) {
    let broker = Broker::rumqttd();
    let caller = Caller::connect(broker.port);
    let mut vg = common::Memcheck::new(&format!("{name}-{}.log", extra.join("")));
    let device = ["--dialect", "alibaba", "--device-name", "vg"];
    vg.command
        .arg(common::cmake::example(name))
        .args(common::example_args(broker.port, PK, &device))
        .args(["--max-requests", &n.to_string()])
        .args(extra);
    let mut dev = Proc::spawn_with(&mut vg.command);
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("vg{i}").into_bytes()).collect();
    // In thread mode the example says when it is subscribed; in yield mode it does not.
    let ready_line = (!extra.contains(&"--yield")).then_some("connected to");
    let ready = (ready_line, Duration::from_secs(60));
    caller.expect_echoes(PK, "vg", &payloads, reply_prefix, ready, &dev);
    let st = dev.wait_exit(Duration::from_secs(60));
    vg.assert_clean(st, &dev.transcript());
}

fn echo_device_runs_clean_under_valgrind_in_thread_mode() {
    valgrind_clean("echo_device", &[], 5, b"");
}

fn echo_device_runs_clean_under_valgrind_in_yield_mode() {
    valgrind_clean("echo_device", &["--yield"], 5, b"");
}

fn deferred_reply_runs_clean_under_valgrind() {
    valgrind_clean("deferred_reply", &[], 5, b"done:");
}

fn readme_quickstart_is_the_compiled_example_and_it_answers() {
    let readme = std::fs::read_to_string(common::cmake::repo_root().join("README.md")).unwrap();
    let source =
        std::fs::read_to_string(common::cmake::repo_root().join("examples-c/quickstart.c"))
            .unwrap();
    assert!(
        readme.contains(&format!("```c\n{source}```")),
        "README's C quickstart must be examples-c/quickstart.c verbatim"
    );
    assert!(
        source.lines().count() <= 40,
        "the quickstart stays under 40 lines"
    );
    for broker in common::brokers() {
        let dev = Proc::spawn(
            &common::cmake::example("quickstart"),
            &[broker.port.to_string()],
        );
        dev.expect_stderr("quickstart: connected", READY);
        let caller = Caller::connect(broker.port);
        let r = caller.call_system("a1B2c3", "dev1", b"status?", WAIT);
        assert_eq!(r.as_deref(), Some(&b"ok"[..]), "{}", dev.transcript());
        dev.expect_stdout_lines("request ", 1, WAIT);
    }
}

/// `call` until it does not time out, four tries at most: a device that has just
/// connected may still be subscribing.
fn answered_within_tries(call: impl Fn() -> rrpc::RrpcResponse) -> rrpc::RrpcResponse {
    let mut r = call();
    for _ in 0..3 {
        if r.rrpc_code != Some(RrpcCode::Timeout) {
            break;
        }
        r = call();
    }
    r
}

/// The C example device in MQTT 5 request/response (`--mqtt5 --dialect mqtt5`, its
/// filter as the custom topic), called by the library's MQTT 5 caller through
/// Mosquitto: the reply goes to the caller's Response Topic with its Correlation Data.
fn echo_device_answers_mqtt5_requests() {
    let broker = Broker::mosquitto();
    let caller = common::device::caller(broker.port, MqttVersion::V5);
    let dev = echo_device(
        &broker,
        &[
            "--mqtt5",
            "--dialect",
            "mqtt5",
            "--device-name",
            "m7",
            "--topic",
            "plant/+/rpc",
        ],
    );
    dev.expect_stderr("connected", READY);
    let call = || {
        caller.call(&CallParams {
            custom_topic: Some("plant/m7/rpc"),
            timeout_ms: Some(2000),
            ..CallParams::new(Dialect::Mqtt5, PK, "m7", b"\x00binary\xff")
        })
    };
    let r = answered_within_tries(call);
    assert_eq!(
        r.rrpc_code,
        Some(RrpcCode::Success),
        "{r:?}\n{}",
        dev.transcript()
    );
    assert_eq!(r.payload.as_deref(), Some(&b"\x00binary\xff"[..]));
}

/// The C example device in the envelope dialects (Tencent actions; ThingsBoard
/// gateway RPC with two sub-devices on one connection), called by the library's
/// caller through Mosquitto: the device sees each call's `params` and echoes them,
/// the library wraps the echo in the reply envelope with the call's id.
fn echo_device_answers_in_the_envelope_dialects() {
    let broker = Broker::mosquitto();
    let caller = common::device::caller(broker.port, MqttVersion::V311);
    let gateway = ["Sensor A", "pump-2"];
    for (d, names) in [
        (Dialect::TencentAction, &["dev1"][..]),
        (Dialect::ThingsBoardGateway, &gateway[..]),
    ] {
        let mut args = vec!["--dialect", d.name()];
        for n in names {
            args.extend(["--device-name", *n]);
        }
        let dev = echo_device(&broker, &args);
        dev.expect_stderr("connected", READY);
        for n in names {
            let params = format!(r#"{{"pin":1,"to":"{n}"}}"#);
            let call = || {
                caller.call(&CallParams {
                    name: Some("toggle"),
                    timeout_ms: Some(2000),
                    ..CallParams::new(d, PK, n, params.as_bytes())
                })
            };
            let r = answered_within_tries(call);
            assert_eq!(
                r.rrpc_code,
                Some(RrpcCode::Success),
                "{d} {n}: {r:?}\n{}",
                dev.transcript()
            );
            assert_eq!(r.payload.as_deref(), Some(params.as_bytes()), "{d} {n}");
        }
        dev.expect_stdout_lines(&format!("request {d} "), names.len(), READY);
        assert!(
            dev.stdout().iter().all(|l| l.ends_with(" name=toggle")),
            "{}",
            dev.transcript()
        );
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        echo_device_carries_empty_binary_and_64k_payloads_in_every_dialect needs ["mosquitto", "cmake", "cc"],
        several_devices_share_one_client needs ["mosquitto", "cmake", "cc"],
        deferred_reply_example_answers_from_a_worker_thread needs ["mosquitto", "cmake", "cc"],
        yield_mode_example_serves_requests_on_the_main_thread needs ["mosquitto", "cmake", "cc"],
        device_answers_again_after_mosquitto_is_killed_and_restarted needs ["mosquitto", "cmake", "cc"],
        unreachable_broker_at_start_exits_with_a_clear_message needs ["cmake", "cc"],
        malformed_request_topics_are_ignored_counted_and_logged_by_the_device needs ["mosquitto", "cmake", "cc"],
        echo_device_runs_clean_under_valgrind_in_thread_mode needs ["cmake", "cc", "valgrind"],
        echo_device_runs_clean_under_valgrind_in_yield_mode needs ["cmake", "cc", "valgrind"],
        deferred_reply_runs_clean_under_valgrind needs ["cmake", "cc", "valgrind"],
        readme_quickstart_is_the_compiled_example_and_it_answers needs ["mosquitto", "cmake", "cc"],
        echo_device_answers_in_the_envelope_dialects needs ["mosquitto", "cmake", "cc"],
        echo_device_answers_mqtt5_requests needs ["mosquitto", "cmake", "cc"],
    ]
}
