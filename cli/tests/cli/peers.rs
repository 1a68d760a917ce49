//! The vendors' own device SDKs answer `rrpc call --dialect NAME` as processes, as
//! they answer their clouds: ThingsBoard's `tb-mqtt-client` device (plain MQTT) and
//! Azure's `azure-iot-device` (TLS with a test CA). The SDKs, the strings they use and
//! how they are run: `tests/peers/README.md` and `tests/common/peers.rs`; the library's
//! caller against the same peers: `tests/e2e/peers.rs`.

use std::time::Duration;

use crate::commands::{run_limited, Run};
use crate::common::peers;
use crate::common::pki::Pki;

/// Base64 of a 32-byte device key for the Azure connection string (a test value).
const AZURE_KEY: &str = "bGlicnJwYy10ZXN0LWRldmljZS1rZXktMzJieXRlcyE=";

/// `rrpc call` on the broker on `port` with `extra`: no product key or device name
/// (the dialects of these SDKs name no device in their topics).
fn call(port: u16, extra: &[&str]) -> Run {
    let mut a: Vec<String> = ["call", "--host", "127.0.0.1", "--port"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(port.to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    run_limited(&a, Duration::from_secs(30))
}

/// The reply's payload, decoded, of a call that succeeded.
fn answered(r: &Run, peer: &crate::common::Proc) -> String {
    assert_eq!(r.code, Some(0), "{}\n{}", r.show(), peer.transcript());
    let v = r.json();
    assert_eq!(v["RrpcCode"], "SUCCESS", "{v}\n{}", peer.transcript());
    let b64 = v["PayloadBase64Byte"].as_str().expect("a payload");
    let bytes = rrpc::caller::decode_request_base64(b64).expect("Base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// `tb-mqtt-client` 1.13.14's `TBDeviceMqttClient` answers `rrpc call --dialect
/// thingsboard` (its `send_rpc_reply` publishes on `v1/devices/me/rpc/response/{id}`).
fn thingsboard_sdk_device_answers_rrpc_call() {
    let broker = crate::common::Broker::mosquitto();
    let device = peers::tb_device(broker.port, "tb-cli-token");
    let r = call(
        broker.port,
        &[
            "--dialect",
            "thingsboard",
            "--payload",
            r#"{"method":"setGpio","params":{"pin":7}}"#,
            "--timeout",
            "8000",
        ],
    );
    assert_eq!(
        answered(&r, &device),
        r#"{"method":"setGpio","params":{"pin":7},"by":"tb-device"}"#
    );
}

/// `azure-iot-device` 2.14.0's `IoTHubDeviceClient` answers `rrpc call --dialect azure
/// --name reboot` over TLS (its `send_method_response` publishes on
/// `$iothub/methods/res/200/?$rid={rid}`): the status comes back as ReplyStatus.
fn azure_sdk_device_answers_rrpc_call_over_tls() {
    let pki = Pki::new("azure-cli-interop");
    let (_broker, tls_port) = peers::azure_broker(&pki);
    let cs =
        peers::azure_connection_string("rrpc-test.azure-devices.net", "thermostat-2", AZURE_KEY);
    let device = peers::azure_device(tls_port, &pki.path("ca.pem"), &cs);
    let ca = pki.path("ca.pem");
    let r = call(
        tls_port,
        &[
            "--ca-file",
            ca.to_str().expect("a UTF-8 path"),
            "--dialect",
            "azure",
            "--name",
            "reboot",
            "--payload",
            r#"{"delay":5}"#,
            "--timeout",
            "8000",
        ],
    );
    assert_eq!(
        answered(&r, &device),
        r#"{"method": "reboot", "payload": {"delay": 5}, "by": "azure"}"#
    );
    assert_eq!(r.json()["ReplyStatus"], 200, "{}", r.show());
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        thingsboard_sdk_device_answers_rrpc_call needs ["python3", "mosquitto"],
        azure_sdk_device_answers_rrpc_call_over_tls needs ["python3", "mosquitto"],
    ]
}
