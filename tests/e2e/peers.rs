//! End to end: the vendors' own device SDKs of `tests/peers/` (ThingsBoard's
//! tb-mqtt-client, Azure IoT Hub's azure-iot-device) as processes against Mosquitto,
//! driven with the raw MQTT client the way each cloud sends RPCs: the peers the interop
//! tests of the dialects talk to answer exactly as `tests/peers/README.md` says.

use std::time::Duration;

use crate::common::peers::{self, Sdk};
use crate::common::pki::Pki;
use crate::common::{publish_acked, Broker, MqttClient};

const WAIT: Duration = Duration::from_secs(10);

/// A device symmetric key, base64 (any bytes do: the broker does not check the SAS token).
const AZURE_KEY: &str = "bGlicnJwYy10ZXN0LWRldmljZS1rZXktMzJieXRlcyE=";

fn vendor_sdks_install_and_import() {
    for sdk in [Sdk::ThingsBoard, Sdk::Azure] {
        let python = peers::python(sdk);
        let out = peers::python_command(&python)
            .args(["-c", &format!("import {}", sdk.modules())])
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{}: import {}: {out:?}",
            sdk.name(),
            sdk.modules()
        );
    }
}

fn tb_device_answers_a_server_side_rpc() {
    let broker = Broker::mosquitto();
    let device = peers::tb_device(broker.port, "tb-device-token");
    let tap = MqttClient::subscribed(broker.port, "tap-tb", "v1/devices/me/rpc/response/+");
    publish_acked(
        broker.port,
        "v1/devices/me/rpc/request/4242",
        br#"{"method":"setGpio","params":{"pin":7,"value":1}}"#,
        false,
    );
    let reply = tap
        .next("v1/devices/me/rpc/response/4242", WAIT)
        .unwrap_or_else(|| panic!("no reply\n{}", device.transcript()));
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        r#"{"method":"setGpio","params":{"pin":7,"value":1},"by":"tb-device"}"#
    );
}

fn tb_gateway_connects_its_devices_and_answers_a_gateway_rpc() {
    let broker = Broker::mosquitto();
    let tap = MqttClient::subscribed(broker.port, "tap-gw", "v1/gateway/#");
    let gateway = peers::tb_gateway(broker.port, "tb-gateway-token", &["Sensor A", "pump-2"]);
    for device in ["Sensor A", "pump-2"] {
        let connect = tap
            .next("v1/gateway/connect", WAIT)
            .expect("a connect message");
        assert_eq!(
            String::from_utf8_lossy(&connect.payload),
            format!(r#"{{"device":"{device}","type":"default"}}"#)
        );
    }
    let request =
        br#"{"device":"Sensor A","data":{"id":7,"method":"toggle_gpio","params":{"pin":1}}}"#;
    publish_acked(broker.port, "v1/gateway/rpc", request, false);
    // The request itself comes by on the same topic first.
    let seen = tap.next("v1/gateway/rpc", WAIT).expect("the request");
    assert_eq!(seen.payload, request);
    let reply = tap
        .next("v1/gateway/rpc", WAIT)
        .unwrap_or_else(|| panic!("no reply\n{}", gateway.transcript()));
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        r#"{"device":"Sensor A","id":7,"data":{"device":"Sensor A","method":"toggle_gpio","params":{"pin":1},"by":"tb-gateway"}}"#
    );
    // The gateway hears its own reply on that topic and must not answer it.
    let more = tap.next("v1/gateway/rpc", Duration::from_secs(1));
    assert!(
        more.is_none(),
        "the gateway answered its own reply: {more:?}"
    );
}

fn azure_device_answers_a_direct_method_over_tls() {
    let pki = Pki::new("azure-peer");
    let (broker, tls_port) = peers::azure_broker(&pki);
    let connection_string =
        peers::azure_connection_string("rrpc-test.azure-devices.net", "thermostat-1", AZURE_KEY);
    let device = peers::azure_device(tls_port, &pki.path("ca.pem"), &connection_string);
    let tap = MqttClient::subscribed(broker.port, "tap-azure", "$iothub/methods/res/#");
    publish_acked(
        broker.port,
        "$iothub/methods/POST/reboot/?$rid=1a2b",
        br#"{"delay":5}"#,
        false,
    );
    let reply = tap
        .next("$iothub/methods/res/", WAIT)
        .unwrap_or_else(|| panic!("no reply\n{}", device.transcript()));
    assert_eq!(reply.topic, "$iothub/methods/res/200/?$rid=1a2b");
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        r#"{"method": "reboot", "payload": {"delay": 5}, "by": "azure"}"#
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        vendor_sdks_install_and_import needs ["python3"],
        tb_device_answers_a_server_side_rpc needs ["python3", "mosquitto"],
        tb_gateway_connects_its_devices_and_answers_a_gateway_rpc needs ["python3", "mosquitto"],
        azure_device_answers_a_direct_method_over_tls needs ["python3", "mosquitto"],
    ]
}
