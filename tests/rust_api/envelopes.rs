//! The envelope dialects end to end over a broker: a device client serving a
//! Tencent IoT Explorer action device and two ThingsBoard gateway sub-devices
//! on one connection, driven by a raw MQTT client that speaks as the cloud
//! does (the bodies of the vendors' documents). On Mosquitto: rumqttd refuses
//! every filter that starts with `$` but `$share`, Tencent's included.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::{Client, ClientConfig, Dialect};

use crate::common::device;
use crate::common::{Broker, MqttClient};

const PK: &str = "EnvPk01";

/// What the device saw of each request: (device name, message id, name, payload).
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Vec<u8>)>>>;

/// The device: answers each request with its own params.
fn device(port: u16) -> (Client, Seen) {
    let c = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    c.add_device(Dialect::TencentAction, &device::identity(PK, "lock1"))
        .unwrap();
    for dn in ["Device A", "Device B"] {
        c.add_device(Dialect::ThingsBoardGateway, &device::identity("", dn))
            .unwrap();
    }
    let seen: Seen = Arc::default();
    let (r, s) = (c.replier(), seen.clone());
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        s.lock().unwrap().push((
            req.device_name().to_string(),
            req.message_id().to_string(),
            req.name().map(str::to_string),
            req.payload.to_vec(),
        ));
        let _ = r.reply(req.token, req.payload);
    })))
    .unwrap();
    c.start().unwrap();
    (c, seen)
}

/// Publishes `body` on `topic` until a message on `reply_topic` that holds
/// `needle` arrives (the device may still be subscribing); that message.
fn ask(cloud: &MqttClient, topic: &str, body: &str, reply_topic: &str, needle: &str) -> Vec<u8> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        cloud.publish(topic, body.as_bytes(), false);
        let wait = Instant::now() + Duration::from_millis(300);
        while let Some(left) = wait.checked_duration_since(Instant::now()) {
            match cloud.next(reply_topic, left) {
                Some(m) if String::from_utf8_lossy(&m.payload).contains(needle) => {
                    return m.payload
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    panic!("no reply on {reply_topic} holding {needle}");
}

fn envelope_dialects_answer_in_their_envelopes() {
    let b = Broker::mosquitto();
    let (_d, seen) = device(b.port);
    let cloud = MqttClient::connect(b.port, "envelope-cloud");
    cloud.subscribe(&format!("$thing/up/action/{PK}/lock1"));
    cloud.subscribe("v1/gateway/rpc");

    // Tencent protocol document (cloud.tencent.com/document/product/1081/34916).
    let request = r#"{"method": "action", "clientToken": "20a4ccfd-d308-11e9-86c6-5254008a4f10", "actionId": "openDoor", "timestamp": 1212121221, "params": {"userid": "323343"}}"#;
    let reply = ask(
        &cloud,
        &format!("$thing/down/action/{PK}/lock1"),
        request,
        &format!("$thing/up/action/{PK}/lock1"),
        "action_reply",
    );
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        r#"{"method":"action_reply","clientToken":"20a4ccfd-d308-11e9-86c6-5254008a4f10","code":0,"status":"","response":{"userid": "323343"}}"#
    );

    // ThingsBoard gateway MQTT API: one connection, the device in the body.
    for (dn, id) in [("Device B", 7), ("Device A", 7)] {
        let request = format!(
            r#"{{"device": "{dn}", "data": {{"id": {id}, "method": "toggle_gpio", "params": {{"pin":1}}}}}}"#
        );
        let needle = format!(r#""device":"{dn}","id":{id}"#);
        let reply = ask(
            &cloud,
            "v1/gateway/rpc",
            &request,
            "v1/gateway/rpc",
            &needle,
        );
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!(r#"{{"device":"{dn}","id":{id},"data":{{"pin":1}}}}"#)
        );
    }
    let seen = seen.lock().unwrap().clone();
    let firsts: Vec<_> = ["lock1", "Device B", "Device A"]
        .iter()
        .map(|dn| {
            seen.iter()
                .find(|s| s.0 == *dn)
                .expect("each device asked")
                .clone()
        })
        .collect();
    assert_eq!(firsts[0].1, "20a4ccfd-d308-11e9-86c6-5254008a4f10");
    assert_eq!(firsts[0].2.as_deref(), Some("openDoor"));
    assert_eq!(firsts[0].3, br#"{"userid": "323343"}"#);
    for f in &firsts[1..] {
        assert_eq!((f.1.as_str(), f.2.as_deref()), ("7", Some("toggle_gpio")));
        assert_eq!(f.3, br#"{"pin":1}"#);
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![envelope_dialects_answer_in_their_envelopes needs ["mosquitto"]]
}
