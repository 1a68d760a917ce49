//! The caller in the dialects added as data: an Azure direct method answered
//! by a raw MQTT device with a status (ReplyStatus), replies with another id
//! ignored; a ThingsBoard call answered by a library device; the name a
//! dialect needs.

use std::time::Duration;

use rrpc::caller::{CallParams, RrpcCode, CODE_INVALID_PARAMETER};
use rrpc::session::MqttVersion;
use rrpc::Dialect;

use crate::common::device;
use crate::common::{Broker, MqttClient};

fn azure_replies_carry_their_status_and_only_the_calls_own_id_completes_it() {
    let b = Broker::mosquitto();
    let dev = MqttClient::subscribed(b.port, "azure-raw-device", "$iothub/methods/POST/#");
    let answer = std::thread::spawn(move || {
        let m = dev
            .next(
                "$iothub/methods/POST/reboot/?$rid=",
                Duration::from_secs(10),
            )
            .expect("the request reaches the device");
        let rid = m.topic.rsplit_once("?$rid=").unwrap().1.to_string();
        // Another call's id, then a status that is not a number: both ignored.
        dev.publish("$iothub/methods/res/200/?$rid=12345", b"not yours", false);
        dev.publish(&format!("$iothub/methods/res/x/?$rid={rid}"), b"bad", false);
        dev.publish(
            &format!("$iothub/methods/res/404/?$rid={rid}"),
            b"{\"no\":1}",
            false,
        );
        std::thread::sleep(Duration::from_millis(500));
        m.payload
    });
    let caller = device::caller(b.port, MqttVersion::V311);
    let r = caller.call(&CallParams {
        name: Some("reboot"),
        timeout_ms: Some(5000),
        ..CallParams::new(Dialect::Azure, "", "", b"{}")
    });
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.payload.as_deref(), Some(&b"{\"no\":1}"[..]));
    assert_eq!(r.reply_status, Some(404));
    assert!(
        r.to_json().ends_with(",\"ReplyStatus\":404}"),
        "{}",
        r.to_json()
    );
    assert!(r.to_xml().contains("<ReplyStatus>404</ReplyStatus>"));
    assert_eq!(answer.join().unwrap(), b"{}");
    let s = caller.stats();
    assert!(s.mismatched_responses + s.unknown_responses >= 2, "{s:?}");
}

fn thingsboard_calls_reach_a_library_device_and_carry_no_status() {
    let b = Broker::mosquitto();
    let cfg = device::client_config(b.port, MqttVersion::V311);
    let id = device::identity("", "tb1");
    let _dev = device::started_echo_device(cfg, &[(Dialect::ThingsBoard, id)]);
    let caller = device::caller(b.port, MqttVersion::V311);
    let r = crate::common::until_answered(Duration::from_secs(10), |t| {
        let r = caller.call(&CallParams {
            timeout_ms: Some(t.as_millis() as u32),
            ..CallParams::new(Dialect::ThingsBoard, "", "tb1", b"ping")
        });
        r.payload
    });
    assert_eq!(r.as_deref(), Some(&b"ping"[..]));
    let r = caller.call(&CallParams {
        timeout_ms: Some(3000),
        ..CallParams::new(Dialect::ThingsBoard, "", "tb1", b"pong")
    });
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.reply_status, None);
    assert!(!r.to_json().contains("ReplyStatus"));
}

/// A registered dialect whose reply topic also parses as an Alibaba custom-topic
/// one (`/ext/rrpc/{id}{topic}` reads `r` as the id): the call in flight decides.
fn a_reply_topic_that_another_dialect_also_parses_completes_its_call() {
    let d = rrpc::dialect::register(&rrpc::dialect::DialectConfig {
        name: "overlap-reply",
        request: "ovl/{dn}/{id}",
        response: "/ext/rrpc/r/{id}",
        ..Default::default()
    })
    .unwrap();
    let b = Broker::mosquitto();
    let dev = MqttClient::subscribed(b.port, "overlap-raw-device", "ovl/#");
    let answer = std::thread::spawn(move || {
        let m = dev
            .next("ovl/dev1/", Duration::from_secs(10))
            .expect("the request reaches the device");
        let id = m.topic.rsplit_once('/').unwrap().1.to_string();
        dev.publish(&format!("/ext/rrpc/r/{id}"), b"yes", false);
        std::thread::sleep(Duration::from_millis(300));
    });
    let caller = device::caller(b.port, MqttVersion::V311);
    let r = caller.call(&CallParams {
        timeout_ms: Some(5000),
        ..CallParams::new(d, "", "dev1", b"?")
    });
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.payload.as_deref(), Some(&b"yes"[..]));
    answer.join().unwrap();
}

fn dialects_that_name_a_method_need_it() {
    let b = Broker::mosquitto();
    let caller = device::caller(b.port, MqttVersion::V311);
    for d in [Dialect::Azure, Dialect::AlibabaService] {
        let r = caller.call(&CallParams {
            timeout_ms: Some(2000),
            ..CallParams::new(d, "pk", "dn", b"x")
        });
        assert!(!r.success, "{d}: {r:?}");
        assert_eq!(r.code.as_deref(), Some(CODE_INVALID_PARAMETER));
        assert!(r.error_message.unwrap().contains("name"), "{d}");
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        azure_replies_carry_their_status_and_only_the_calls_own_id_completes_it needs ["mosquitto"],
        thingsboard_calls_reach_a_library_device_and_carry_no_status needs ["mosquitto"],
        a_reply_topic_that_another_dialect_also_parses_completes_its_call needs ["mosquitto"],
        dialects_that_name_a_method_need_it needs ["mosquitto"],
    ]
}
