//! `rrpc device --dialect X` answers `rrpc call --dialect X` through Mosquitto
//! for the clouds added as data (Alibaba service calls, ThingsBoard, Azure,
//! Huawei, AWS), for the envelope dialects (Tencent actions, ThingsBoard
//! gateway with two sub-devices on one connection), for MQTT 5
//! request/response (`mqtt5`), and for a dialect of a `--dialect-file` on both
//! sides.

use std::time::Duration;

use crate::commands::{args_for, rrpc_device, run_limited, Run};
use crate::common::{scratch_dir, Broker};

/// `rrpc call` of `dialect` to `dn` with `extra`, answered by an `rrpc device`
/// of the same dialect started with `device_extra`, on the broker on `port`.
fn call_through(
    port: u16,
    dialect: &[&str],
    dn: &str,
    extra: &[&str],
    device_extra: &[&str],
) -> Run {
    let mut dev_args = dialect.to_vec();
    dev_args.extend(["--device-name", dn, "--no-presence"]);
    dev_args.extend(device_extra);
    let mut dev = rrpc_device(port, &dev_args);
    let mut call = dialect.to_vec();
    call.extend(["--payload", "hello", "--timeout", "5000"]);
    call.extend(extra);
    let r = run_limited(&args_for("call", port, dn, &call), Duration::from_secs(30));
    let name = dialect[dialect.len() - 1];
    assert_eq!(
        dev.wait_stdout_lines(&format!("request {name} "), 1, Duration::from_secs(5)),
        1,
        "{}\n{}",
        r.show(),
        dev.transcript()
    );
    dev.terminate();
    r
}

fn assert_echoed(r: &Run) {
    assert_eq!(r.code, Some(0), "{}", r.show());
    let v = r.json();
    assert_eq!(v["RrpcCode"], "SUCCESS", "{v}");
    assert_eq!(v["PayloadBase64Byte"], "aGVsbG8=", "{v}");
}

fn each_new_builtin_dialect_answers_through_mosquitto() {
    let b = Broker::mosquitto();
    for (dialect, name) in [
        ("alibaba-service", Some("setLight")),
        ("thingsboard", None),
        ("azure", Some("reboot")),
        ("huawei", None),
        ("aws", None),
    ] {
        let mut extra = Vec::new();
        if let Some(n) = name {
            extra.extend(["--name", n]);
        }
        let r = call_through(b.port, &["--dialect", dialect], "dev1", &extra, &[]);
        assert_echoed(&r);
        let v = r.json();
        if dialect == "azure" {
            assert_eq!(v["ReplyStatus"], 200, "{v}");
        } else {
            assert!(v.get("ReplyStatus").is_none(), "{dialect}: {v}");
        }
    }
}

fn an_azure_reply_status_comes_back_as_reply_status() {
    let b = Broker::mosquitto();
    let r = call_through(
        b.port,
        &["--dialect", "azure"],
        "dev1",
        &["--name", "reboot"],
        &["--reply-status", "404"],
    );
    assert_echoed(&r);
    assert_eq!(r.json()["ReplyStatus"], 404, "{}", r.show());
}

fn a_dialect_file_serves_both_sides() {
    let dir = scratch_dir("cli-dialect-file");
    let file = dir.join("acme.dialect");
    std::fs::write(
        &file,
        "# Acme's devices\n[acme-e2e]\nrequest = acme/{pk}/{dn}/rpc/{id}/{name}\n\
         response = acme/{pk}/{dn}/rpc/{id}/res/{status}\ntimeout_ms = 3000\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let b = Broker::mosquitto();
    let r = call_through(
        b.port,
        &["--dialect-file", f, "--dialect", "acme-e2e"],
        "dev1",
        &["--name", "blink"],
        &[],
    );
    assert_echoed(&r);
    assert_eq!(r.json()["ReplyStatus"], 200, "{}", r.show());

    // A broken file: the call names the file, the line and the field.
    std::fs::write(
        &file,
        "[acme-e2e-bad]\nrequest = x/{idd}\nresponse = y/{id}\n",
    )
    .unwrap();
    let r = run_limited(
        &args_for(
            "call",
            b.port,
            "dev1",
            &[
                "--dialect-file",
                f,
                "--dialect",
                "acme-e2e-bad",
                "--payload",
                "x",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr.contains(&format!("{f}:2: request: ")) && r.stderr.contains("{idd}"),
        "{}",
        r.show()
    );
}

/// `rrpc call --dialect {dialect} --name toggle` of a JSON payload to `dn`.
fn envelope_call(port: u16, dialect: &str, dn: &str) -> Run {
    let call = [
        "--dialect",
        dialect,
        "--name",
        "toggle",
        "--payload",
        r#"{"pin":1}"#,
        "--timeout",
        "5000",
        "--no-presence",
    ];
    run_limited(&args_for("call", port, dn, &call), Duration::from_secs(30))
}

fn envelope_dialects_answer_through_mosquitto() {
    let b = Broker::mosquitto();
    // Tencent actions: clientToken and actionId in the body; code 0 back.
    let mut dev = rrpc_device(
        b.port,
        &[
            "--dialect",
            "tencent-action",
            "--device-name",
            "dev1",
            "--no-presence",
        ],
    );
    let r = envelope_call(b.port, "tencent-action", "dev1");
    assert_eq!(r.code, Some(0), "{}\n{}", r.show(), dev.transcript());
    let v = r.json();
    assert_eq!(v["RrpcCode"], "SUCCESS", "{v}");
    // The device echoes the params: the reply envelope's response.
    assert_eq!(v["PayloadBase64Byte"], "eyJwaW4iOjF9", "{v}");
    assert_eq!(v["ReplyStatus"], 0, "{v}");
    assert_eq!(
        dev.wait_stdout_lines("request tencent-action ", 1, Duration::from_secs(5)),
        1,
        "{}",
        dev.transcript()
    );
    assert!(
        dev.stdout().iter().any(|l| l.contains(" name=toggle")),
        "{}",
        dev.transcript()
    );
    // Not JSON: refused before anything is sent.
    let r = run_limited(
        &args_for(
            "call",
            b.port,
            "dev1",
            &[
                "--dialect",
                "tencent-action",
                "--name",
                "toggle",
                "--payload",
                "hello",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stdout.contains("InvalidParameter") && r.stderr.contains("JSON"),
        "{}",
        r.show()
    );
    dev.terminate();

    // One gateway connection, two sub-devices: each answers its own call.
    let mut gw = rrpc_device(
        b.port,
        &[
            "--dialect",
            "thingsboard-gateway",
            "--device-name",
            "sensor-a",
            "--device-name",
            "sensor-b",
            "--no-presence",
        ],
    );
    for (i, dn) in ["sensor-a", "sensor-b"].into_iter().enumerate() {
        let r = envelope_call(b.port, "thingsboard-gateway", dn);
        assert_eq!(r.code, Some(0), "{}\n{}", r.show(), gw.transcript());
        let v = r.json();
        assert_eq!(v["RrpcCode"], "SUCCESS", "{v}");
        assert_eq!(v["PayloadBase64Byte"], "eyJwaW4iOjF9", "{v}");
        assert!(v.get("ReplyStatus").is_none(), "{v}");
        let id = v["MessageId"].as_u64().expect("a MessageId");
        assert!((1..=i32::MAX as u64).contains(&id), "{v}");
        assert_eq!(
            gw.wait_stdout_lines(
                "request thingsboard-gateway ",
                i + 1,
                Duration::from_secs(5)
            ),
            i + 1,
            "{}",
            gw.transcript()
        );
        let line = format!("/{dn} id={id} ");
        assert!(
            gw.stdout().iter().any(|l| l.contains(&line)),
            "{line}: {}",
            gw.transcript()
        );
    }
    // A sub-device the gateway does not serve: nobody answers.
    let r = run_limited(
        &args_for(
            "call",
            b.port,
            "sensor-c",
            &[
                "--dialect",
                "thingsboard-gateway",
                "--name",
                "toggle",
                "--payload",
                "{}",
                "--timeout",
                "1000",
                "--no-presence",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.json()["RrpcCode"], "TIMEOUT", "{}", r.show());
    gw.terminate();
}

fn an_mqtt5_call_is_answered_by_an_mqtt5_device() {
    let b = Broker::mosquitto();
    let v5 = ["--mqtt-version", "5"];
    let r = call_through(
        b.port,
        &["--dialect", "mqtt5"],
        "m7",
        &[
            &v5[..],
            &[
                "--topic",
                "plant/line1/m7/rpc",
                "--response-topic",
                "ops/replies",
            ],
        ]
        .concat(),
        &[&v5[..], &["--topic", "plant/line1/+/rpc"]].concat(),
    );
    assert_echoed(&r);
    assert!(r.json().get("ReplyStatus").is_none(), "{}", r.show());
}

fn an_mqtt5_call_is_refused_on_mqtt311() {
    let args = args_for(
        "call",
        1,
        "m7",
        &[
            "--dialect",
            "mqtt5",
            "--topic",
            "plant/m7/rpc",
            "--payload",
            "x",
        ],
    );
    let r = run_limited(&args, Duration::from_secs(30));
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(r.stderr.contains("needs an MQTT 5 session"), "{}", r.show());
    assert_eq!(r.json()["Code"], "InvalidParameter", "{}", r.show());
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        envelope_dialects_answer_through_mosquitto needs ["mosquitto"],
        an_mqtt5_call_is_answered_by_an_mqtt5_device needs ["mosquitto"],
        an_mqtt5_call_is_refused_on_mqtt311,
        each_new_builtin_dialect_answers_through_mosquitto needs ["mosquitto"],
        an_azure_reply_status_comes_back_as_reply_status needs ["mosquitto"],
        a_dialect_file_serves_both_sides needs ["mosquitto"],
    ]
}
