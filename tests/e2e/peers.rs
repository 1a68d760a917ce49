//! End to end: the vendors' own device SDKs of `tests/peers/` (ThingsBoard's
//! tb-mqtt-client, Azure IoT Hub's azure-iot-device) as processes against Mosquitto,
//! driven with the raw MQTT client the way each cloud sends RPCs: the peers the interop
//! tests of the dialects talk to answer exactly as `tests/peers/README.md` says.
//!
//! Then the interop itself: the library's `Caller` calls the ThingsBoard and Azure
//! SDK devices with `Dialect::ThingsBoard` and `Dialect::Azure` (Azure over TLS), and
//! the library's `Client`, with a device of either dialect, answers calls published
//! exactly as ThingsBoard's server and IoT Hub send them. The ThingsBoard gateway's RPC
//! (`v1/gateway/rpc`, the sub-device named in the JSON envelope) both ways: the
//! caller's `Dialect::ThingsBoardGateway` calls to two sub-devices of the SDK's gateway,
//! and a library client serving two sub-devices answering RPCs shaped as
//! ThingsBoard's server sends them.

use std::sync::mpsc;
use std::time::Duration;

use rrpc::session::MqttVersion;
use rrpc::tls::TlsConfig;
use rrpc::{CallParams, Caller, CallerConfig, Client, Dialect, Identity, RrpcCode, RrpcResponse};

use crate::common::device::client_config;
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

/// A request as the library device's handler saw it: `Request::name()` and the payload.
type Seen = (Option<String>, Vec<u8>);

/// A per-connection device (ThingsBoard, Azure): nothing of it in the topics.
const NO_DEVICE: Identity<'static> = Identity {
    product_key: "",
    device_name: "",
    custom_topic: None,
};

/// A library caller on 127.0.0.1:`port` (MQTT 3.1.1, 3 s to connect), over TLS
/// when `tls` is given.
fn library_caller(port: u16, tls: Option<TlsConfig>) -> Caller {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.protocol = MqttVersion::V311;
    cfg.mqtt.connect_timeout_ms = 3000;
    cfg.mqtt.tls = tls;
    Caller::connect(cfg).expect("the caller connects")
}

/// Asserts a SUCCESS response and gives its payload as text.
fn answered(r: &RrpcResponse, peer: &crate::common::Proc) -> String {
    assert!(
        r.success && r.rrpc_code == Some(RrpcCode::Success),
        "not answered: {r:?}\n{}",
        peer.transcript()
    );
    String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned()
}

/// The `"method"` string of a ThingsBoard RPC body, such as `getTemp` in
/// `{"method":"getTemp","params":{}}` (no escapes: the tests' own method names).
fn json_method(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    text.split_once(r#""method":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(method, _)| method.to_string())
        .unwrap_or_default()
}

/// A library device client on Mosquitto at `port` serving one device of `dialect`
/// (per connection: no product key or device name) that answers every request with
/// `{"method":<Request::name(), else the payload's "method">,"by":"librrpc"}` (status 202
/// where the dialect carries one) and hands
/// each request's name and payload to the returned channel; started.
fn library_device(port: u16, dialect: Dialect) -> (Client, mpsc::Receiver<Seen>) {
    let client = Client::new(client_config(port, MqttVersion::V311)).expect("a client");
    client
        .add_device(dialect, &NO_DEVICE)
        .expect("add the device");
    let (tx, rx) = mpsc::channel();
    let replier = client.replier();
    client
        .set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
            let name = req.name().map(str::to_string);
            let method = name.clone().unwrap_or_else(|| json_method(req.payload));
            let reply = format!(r#"{{"method":"{method}","by":"librrpc"}}"#);
            let _ = replier.reply_with_status(req.token, Some(202), reply.as_bytes());
            let _ = tx.send((name, req.payload.to_vec()));
        })))
        .expect("set the handler");
    client.start().expect("start the client");
    (client, rx)
}

/// The ThingsBoard device SDK answers the library's caller. `tb-mqtt-client` 1.13.14
/// (`tb_device_mqtt.py`): `TBDeviceMqttClient._on_connect` subscribes
/// `v1/devices/me/rpc/request/+` (`RPC_REQUEST_TOPIC`), `_on_decoded_message` hands
/// the request to the handler of `set_server_side_rpc_request_handler`, and
/// `send_rpc_reply(req_id, resp)` publishes `orjson.dumps(resp)` on
/// `v1/devices/me/rpc/response/{id}` (`RPC_RESPONSE_TOPIC`). The caller renders
/// `Dialect::ThingsBoard`'s `v1/devices/me/rpc/request/{id}` with an empty product key
/// and device name. (`rrpc call --dialect thingsboard` against the same peer:
/// `cli/tests/cli/peers.rs`.)
fn tb_device_sdk_answers_the_library_caller() {
    let broker = Broker::mosquitto();
    let device = peers::tb_device(broker.port, "tb-device-token");
    let caller = library_caller(broker.port, None);
    let payload = br#"{"method":"setGpio","params":{"pin":7}}"#;
    let r = caller.call(&CallParams {
        timeout_ms: Some(8000),
        ..CallParams::new(Dialect::ThingsBoard, "", "", payload)
    });
    assert_eq!(
        answered(&r, &device),
        r#"{"method":"setGpio","params":{"pin":7},"by":"tb-device"}"#
    );
}

/// The library's device answers a call shaped as ThingsBoard's server sends it to a
/// `tb-mqtt-client` 1.13.14 device (`tb_device_mqtt.py`: `RPC_REQUEST_TOPIC`
/// `v1/devices/me/rpc/request/` + id, answered by `TBDeviceMqttClient.send_rpc_reply`
/// on `RPC_RESPONSE_TOPIC` `v1/devices/me/rpc/response/` + id; payload
/// `{"method":...,"params":...}` as `_on_decoded_message` decodes it).
fn library_device_answers_a_thingsboard_server_side_rpc() {
    let broker = Broker::mosquitto();
    let (_device, requests) = library_device(broker.port, Dialect::ThingsBoard);
    let tap = MqttClient::subscribed(broker.port, "tap-tb-lib", "v1/devices/me/rpc/response/+");
    let request = br#"{"method":"getTemp","params":{}}"#;
    publish_acked(broker.port, "v1/devices/me/rpc/request/42", request, false);
    let reply = tap
        .next("v1/devices/me/rpc/response/", WAIT)
        .expect("a reply from the library device");
    assert_eq!(reply.topic, "v1/devices/me/rpc/response/42");
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        r#"{"method":"getTemp","by":"librrpc"}"#
    );
    let (name, payload) = requests.recv_timeout(WAIT).expect("the request");
    assert_eq!(name, None, "ThingsBoard has no name in the topic");
    assert_eq!(payload, request);
}

/// The Azure IoT Hub device SDK answers the library's caller over TLS.
/// `azure-iot-device` 2.14.0 (`azure/iot/device/`): `GenericIoTHubClient._enable_feature`
/// subscribes `$iothub/methods/POST/#` (`iothub/pipeline/mqtt_topic_iothub.py`
/// `get_method_topic_for_subscribe`), `IoTHubMQTTTranslationStage._handle_pipeline_event`
/// takes the method from `get_method_name_from_topic` and the rid from
/// `get_method_request_id_from_topic`, and `IoTHubDeviceClient.send_method_response`
/// publishes `json.dumps(payload)` on `$iothub/methods/res/{status}/?$rid={rid}`
/// (`get_method_topic_for_publish`), status 200 from `azure_device.py`'s
/// `MethodResponse.create_from_method_request`. The caller renders
/// `Dialect::Azure`'s `$iothub/methods/POST/{name}/?$rid={id}`.
fn azure_device_sdk_answers_the_library_caller_over_tls() {
    let pki = Pki::new("azure-interop");
    let (_broker, tls_port) = peers::azure_broker(&pki);
    let connection_string =
        peers::azure_connection_string("rrpc-test.azure-devices.net", "thermostat-1", AZURE_KEY);
    let device = peers::azure_device(tls_port, &pki.path("ca.pem"), &connection_string);
    let tls = TlsConfig {
        ca_file: Some(pki.path("ca.pem")),
        ..TlsConfig::default()
    };
    let caller = library_caller(tls_port, Some(tls));
    let r = caller.call(&CallParams {
        name: Some("reboot"),
        timeout_ms: Some(8000),
        ..CallParams::new(Dialect::Azure, "", "", br#"{"delay":5}"#)
    });
    assert_eq!(
        answered(&r, &device),
        r#"{"method": "reboot", "payload": {"delay": 5}, "by": "azure"}"#
    );
}

/// The library's device answers a direct method shaped as IoT Hub sends it to an
/// `azure-iot-device` 2.14.0 device: request on `$iothub/methods/POST/{method}/?$rid={rid}`
/// (`iothub/pipeline/mqtt_topic_iothub.py` `get_method_name_from_topic`,
/// `get_method_request_id_from_topic`), reply on `$iothub/methods/res/{status}/?$rid={rid}`
/// (`get_method_topic_for_publish`, as `IoTHubDeviceClient.send_method_response` sends
/// it), with the status the device gave.
fn library_device_answers_an_azure_direct_method() {
    let broker = Broker::mosquitto();
    let (_device, requests) = library_device(broker.port, Dialect::Azure);
    let tap = MqttClient::subscribed(broker.port, "tap-azure-lib", "$iothub/methods/res/#");
    publish_acked(
        broker.port,
        "$iothub/methods/POST/reboot/?$rid=1f",
        br#"{"delay":5}"#,
        false,
    );
    let reply = tap
        .next("$iothub/methods/res/", WAIT)
        .expect("a reply from the library device");
    assert_eq!(reply.topic, "$iothub/methods/res/202/?$rid=1f");
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        r#"{"method":"reboot","by":"librrpc"}"#
    );
    let (name, payload) = requests.recv_timeout(WAIT).expect("the request");
    assert_eq!(name.as_deref(), Some("reboot"));
    assert_eq!(payload, br#"{"delay":5}"#);
}

/// The ThingsBoard gateway SDK answers the library caller's `Dialect::ThingsBoardGateway`
/// calls to two of its sub-devices, in flight at once. `tb-mqtt-client` 1.13.14
/// (`tb_gateway_mqtt.py`): `TBGatewayMqttClient._on_connect` subscribes
/// `v1/gateway/rpc` (`GATEWAY_RPC_TOPIC`), `_on_decoded_message` hands the body
/// `{"device":..,"data":{"id":..,"method":..,"params":..}}` to the handler of
/// `gw_set_server_side_rpc_request_handler`, and `gw_send_rpc_reply(device, id, resp)`
/// publishes `{"device":device,"id":id,"data":resp}` on that same topic. The caller is
/// on MQTT 3.1.1, so its own requests come back to it on `v1/gateway/rpc`: they are no
/// reply envelope and are counted as unknown responses.
fn tb_gateway_sdk_answers_the_library_caller() {
    let broker = Broker::mosquitto();
    let gateway = peers::tb_gateway(broker.port, "tb-gateway-token", &["Sensor A", "pump-2"]);
    let caller = library_caller(broker.port, None);
    let (tx, rx) = mpsc::channel();
    for dn in ["Sensor A", "pump-2"] {
        let tx = tx.clone();
        caller.call_async(
            &CallParams {
                name: Some("toggle_gpio"),
                timeout_ms: Some(8000),
                ..CallParams::new(Dialect::ThingsBoardGateway, "", dn, br#"{"pin":1}"#)
            },
            Box::new(move |r| {
                let _ = tx.send((dn, r));
            }),
        );
    }
    for _ in 0..2 {
        let (dn, r) = rx.recv_timeout(WAIT).expect("a call's outcome");
        assert_eq!(
            answered(&r, &gateway),
            format!(
                r#"{{"device":"{dn}","method":"toggle_gpio","params":{{"pin":1}},"by":"tb-gateway"}}"#
            )
        );
        let id = r.message_id.expect("a message id");
        assert!((1..=i32::MAX as u64).contains(&id), "{r:?}");
        assert_eq!(r.reply_status, None);
    }
    let s = caller.stats();
    assert_eq!((s.success, s.mismatched_responses), (2, 0), "{s:?}");
    // The two requests themselves, back on the shared topic.
    assert_eq!(s.unknown_responses, 2, "{s:?}");
}

/// A library client serving two ThingsBoard gateway sub-devices on one connection,
/// answering every request with `{"device":<its device>,"method":<name>,"by":"librrpc"}`;
/// each request's device, name and payload go to the returned channel; started.
fn library_gateway(port: u16, devices: &[&str]) -> (Client, mpsc::Receiver<(String, Seen)>) {
    let client = Client::new(client_config(port, MqttVersion::V311)).expect("a client");
    for dn in devices {
        let id = Identity {
            device_name: dn,
            ..NO_DEVICE
        };
        client
            .add_device(Dialect::ThingsBoardGateway, &id)
            .expect("add the sub-device");
    }
    let (tx, rx) = mpsc::channel();
    let replier = client.replier();
    client
        .set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
            let name = req.name().map(str::to_string);
            let dn = req.device_name().to_string();
            let reply = format!(
                r#"{{"device":"{dn}","method":"{}","by":"librrpc"}}"#,
                name.as_deref().unwrap_or_default()
            );
            let _ = replier.reply(req.token, reply.as_bytes());
            let _ = tx.send((dn, (name, req.payload.to_vec())));
        })))
        .expect("set the handler");
    client.start().expect("start the client");
    (client, rx)
}

/// The library's device answers gateway RPCs shaped as ThingsBoard's server sends them
/// to a `tb-mqtt-client` 1.13.14 gateway (`tb_gateway_mqtt.py`: the body
/// `{"device":..,"data":{"id":..,"method":..,"params":..}}` on `GATEWAY_RPC_TOPIC`
/// `v1/gateway/rpc`, answered as `gw_send_rpc_reply` does, `{"device":..,"id":..,
/// "data":..}` on the same topic), each sub-device its own; its own replies, back on
/// that topic, are not taken for requests.
fn library_device_answers_thingsboard_gateway_rpcs() {
    let broker = Broker::mosquitto();
    let (device, requests) = library_gateway(broker.port, &["Sensor A", "pump-2"]);
    let tap = MqttClient::subscribed(broker.port, "tap-gw-lib", "v1/gateway/rpc");
    for (dn, id) in [("Sensor A", 7), ("pump-2", 8)] {
        let request = format!(
            r#"{{"device":"{dn}","data":{{"id":{id},"method":"toggle_gpio","params":{{"pin":1}}}}}}"#
        );
        publish_acked(broker.port, "v1/gateway/rpc", request.as_bytes(), false);
        let seen = tap.next("v1/gateway/rpc", WAIT).expect("the request");
        assert_eq!(seen.payload, request.as_bytes());
        let reply = tap
            .next("v1/gateway/rpc", WAIT)
            .expect("a reply from the library gateway");
        assert_eq!(
            String::from_utf8_lossy(&reply.payload),
            format!(
                r#"{{"device":"{dn}","id":{id},"data":{{"device":"{dn}","method":"toggle_gpio","by":"librrpc"}}}}"#
            )
        );
        let (device_name, (name, payload)) = requests.recv_timeout(WAIT).expect("the request");
        assert_eq!(device_name, dn);
        assert_eq!(name.as_deref(), Some("toggle_gpio"));
        assert_eq!(payload, br#"{"pin":1}"#);
    }
    // A sub-device it does not serve: no answer.
    publish_acked(
        broker.port,
        "v1/gateway/rpc",
        br#"{"device":"other","data":{"id":9,"method":"toggle_gpio","params":{}}}"#,
        false,
    );
    let seen = tap.next("v1/gateway/rpc", WAIT).expect("the request");
    assert!(String::from_utf8_lossy(&seen.payload).contains(r#""other""#));
    let more = tap.next("v1/gateway/rpc", Duration::from_secs(1));
    assert!(more.is_none(), "answered for another device: {more:?}");
    assert!(requests.try_recv().is_err());
    drop(device);
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        vendor_sdks_install_and_import needs ["python3"],
        tb_device_answers_a_server_side_rpc needs ["python3", "mosquitto"],
        tb_gateway_connects_its_devices_and_answers_a_gateway_rpc needs ["python3", "mosquitto"],
        azure_device_answers_a_direct_method_over_tls needs ["python3", "mosquitto"],
        tb_device_sdk_answers_the_library_caller needs ["python3", "mosquitto"],
        library_device_answers_a_thingsboard_server_side_rpc needs ["mosquitto"],
        azure_device_sdk_answers_the_library_caller_over_tls needs ["python3", "mosquitto"],
        library_device_answers_an_azure_direct_method needs ["mosquitto"],
        tb_gateway_sdk_answers_the_library_caller needs ["python3", "mosquitto"],
        library_device_answers_thingsboard_gateway_rpcs needs ["mosquitto"],
    ]
}
