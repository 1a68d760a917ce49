//! MQTT 5 request/response (the `mqtt5` dialect) end to end through
//! Mosquitto: a raw rumqttc MQTT 5 client publishes requests with a Response
//! Topic and Correlation Data on a topic a device serves, and receives each
//! reply on its Response Topic with the same Correlation Data and no Response
//! Topic; the device refuses the dialect on MQTT 3.1.1. The library's own
//! `Caller` calls such a device (and a raw one that replies with the wrong
//! Correlation Data first), and refuses the dialect on MQTT 3.1.1 too.

use std::sync::mpsc;
use std::time::Duration;

use rrpc::session::MqttVersion;
use rrpc::{CallParams, Client, ClientError, Dialect, Identity, RrpcCode, RrpcResponse};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client as V5Client, Event, MqttOptions};

use crate::common::device::{caller, client_config};
use crate::common::Broker;

/// What the requester received: topic, payload, Correlation Data, Response Topic.
type Received = (String, Vec<u8>, Option<Vec<u8>>, Option<String>);

/// A raw MQTT 5 requester subscribed to `reply_filter`: its client, and what
/// it receives.
fn requester(port: u16, reply_filter: &str) -> (V5Client, mpsc::Receiver<Received>) {
    let mut o = MqttOptions::new(
        format!("mqtt5-rr-{}", crate::common::message_id()),
        "127.0.0.1",
        port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = V5Client::new(o, 100);
    let (tx, rx) = mpsc::channel();
    let (subacked_tx, subacked) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in connection.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.unwrap_or_default();
                    let got = (
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        p.payload.to_vec(),
                        props.correlation_data.map(|c| c.to_vec()),
                        props.response_topic,
                    );
                    if tx.send(got).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subacked_tx.send(());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.subscribe(reply_filter, QoS::AtMostOnce).unwrap();
    subacked
        .recv_timeout(Duration::from_secs(5))
        .expect("the requester's subscription is acknowledged");
    (client, rx)
}

fn request(c: &V5Client, topic: &str, payload: &[u8], reply_to: &str, corr: Option<&[u8]>) {
    let props = PublishProperties {
        response_topic: Some(reply_to.to_string()),
        correlation_data: corr.map(bytes::Bytes::copy_from_slice),
        ..Default::default()
    };
    c.publish_with_properties(topic, QoS::AtMostOnce, false, payload.to_vec(), props)
        .unwrap();
}

/// A started MQTT 5 device client on `port` serving one mqtt5 device on `filter`
/// that answers every request with `echo:` and its payload.
fn echo_device(port: u16, filter: &str) -> Client {
    let dev = Client::new(client_config(port, MqttVersion::V5)).unwrap();
    let id = Identity {
        product_key: "",
        device_name: "",
        custom_topic: Some(filter),
    };
    dev.add_device(Dialect::Mqtt5, &id).unwrap();
    let replier = dev.replier();
    dev.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        let mut out = b"echo:".to_vec();
        out.extend_from_slice(req.payload);
        replier.reply(req.token, &out).unwrap();
    })))
    .unwrap();
    dev.start().unwrap();
    dev
}

fn an_mqtt5_request_is_answered_on_its_response_topic_with_its_correlation_data() {
    let b = Broker::mosquitto();
    let filter = "plant/line1/+/rpc";
    let dev = echo_device(b.port, filter);
    let (c, replies) = requester(b.port, "clients/c1/#");
    // Binary Correlation Data, not UTF-8.
    let corr: &[u8] = &[0x00, 0xff, 0xfe, 0x7f, b'a'];
    request(
        &c,
        "plant/line1/m7/rpc",
        b"ping",
        "clients/c1/reply",
        Some(corr),
    );
    let got = replies
        .recv_timeout(Duration::from_secs(5))
        .expect("a reply");
    assert_eq!(
        got,
        (
            "clients/c1/reply".to_string(),
            b"echo:ping".to_vec(),
            Some(corr.to_vec()),
            None
        )
    );
    // A second delivery of the same Correlation Data is a duplicate.
    request(
        &c,
        "plant/line1/m7/rpc",
        b"ping",
        "clients/c1/reply",
        Some(corr),
    );
    // Without Correlation Data the reply carries none; a bad Response Topic
    // is never answered.
    request(
        &c,
        "plant/line1/m8/rpc",
        b"x",
        "clients/c1/bad/+",
        Some(b"k"),
    );
    request(&c, "plant/line1/m8/rpc", b"y", "clients/c1/other", None);
    let got = replies
        .recv_timeout(Duration::from_secs(5))
        .expect("a reply");
    assert_eq!(
        got,
        (
            "clients/c1/other".to_string(),
            b"echo:y".to_vec(),
            None,
            None
        )
    );
    assert!(replies.recv_timeout(Duration::from_millis(300)).is_err());
    let s = dev.stats();
    assert_eq!((s.requests, s.replied), (2, 2), "{s:?}");
    assert_eq!((s.duplicates, s.malformed), (1, 1), "{s:?}");
    dev.stop().unwrap();
}

fn the_mqtt5_dialect_is_refused_on_mqtt311() {
    let dev = Client::new(client_config(1, MqttVersion::V311)).unwrap();
    let id = Identity {
        product_key: "",
        device_name: "",
        custom_topic: Some("a/+"),
    };
    match dev.add_device(Dialect::Mqtt5, &id) {
        Err(ClientError::InvalidArgument(m)) => assert!(m.contains("MQTT 5"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// An mqtt5 call of `payload` on `topic`.
fn mqtt5_call<'a>(topic: &'a str, payload: &'a [u8], timeout_ms: u32) -> CallParams<'a> {
    CallParams {
        dialect: Dialect::Mqtt5,
        product_key: "",
        device_name: "",
        payload,
        timeout_ms: Some(timeout_ms),
        custom_topic: Some(topic),
        content_type: None,
        name: None,
    }
}

fn the_caller_calls_an_mqtt5_device() {
    let b = Broker::mosquitto();
    let dev = echo_device(b.port, "plant/line1/+/rpc");
    let c = caller(b.port, MqttVersion::V5);
    for (machine, payload) in [("m7", &b"ping"[..]), ("m8", b"pong")] {
        let topic = format!("plant/line1/{machine}/rpc");
        let r = c.call(&mqtt5_call(&topic, payload, 5000));
        assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
        let mut want = b"echo:".to_vec();
        want.extend_from_slice(payload);
        assert_eq!(r.payload.as_deref(), Some(&want[..]));
        assert_eq!(r.reply_status, None);
    }
    // A topic no device serves: nobody answers.
    let r = c.call(&mqtt5_call("plant/line2/m1/rpc", b"x", 1000));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "{r:?}");
    let s = c.stats();
    assert_eq!(
        (s.success, s.timeout, s.unknown_responses),
        (2, 1, 0),
        "{s:?}"
    );
    assert_eq!(dev.stats().replied, 2);
    dev.stop().unwrap();
}

fn a_reply_with_other_correlation_data_does_not_complete_the_call() {
    let b = Broker::mosquitto();
    // A raw device: it receives the request with its properties and answers
    // by hand.
    let (dev, requests) = requester(b.port, "valves/v1/rpc");
    let c = caller(b.port, MqttVersion::V5);
    let (tx, rx) = mpsc::channel::<RrpcResponse>();
    c.call_async(
        &mqtt5_call("valves/v1/rpc", b"open", 5000),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    let (topic, payload, corr, reply_to) = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("the request");
    assert_eq!(
        (topic.as_str(), &payload[..]),
        ("valves/v1/rpc", &b"open"[..])
    );
    let reply_to = reply_to.expect("a Response Topic");
    assert_eq!(reply_to, format!("rrpc/caller/{}/response", c.client_id()));
    let corr = corr.expect("Correlation Data");
    let id: u64 = std::str::from_utf8(&corr).unwrap().parse().unwrap();
    let reply = |corr: Option<&[u8]>, body: &[u8]| {
        let props = PublishProperties {
            correlation_data: corr.map(bytes::Bytes::copy_from_slice),
            ..Default::default()
        };
        dev.publish_with_properties(&reply_to, QoS::AtMostOnce, false, body.to_vec(), props)
            .unwrap();
    };
    let other = (id ^ 1).to_string();
    reply(Some(other.as_bytes()), b"wrong id");
    reply(Some(&[0xff, 0x00]), b"not an id");
    reply(None, b"no id");
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "completed by a reply with another Correlation Data"
    );
    reply(Some(&corr), b"opened");
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the outcome");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.message_id, Some(id));
    assert_eq!(r.payload.as_deref(), Some(&b"opened"[..]));
    // Once answered, the same Correlation Data again is a duplicate.
    reply(Some(&corr), b"again");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.stats().duplicate_responses == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = c.stats();
    assert_eq!(
        (s.success, s.unknown_responses, s.duplicate_responses),
        (1, 3, 1),
        "{s:?}"
    );
}

fn the_caller_refuses_mqtt5_calls_on_mqtt311() {
    let b = Broker::mosquitto();
    let c = caller(b.port, MqttVersion::V311);
    let r = c.call(&mqtt5_call("valves/v1/rpc", b"open", 1000));
    assert!(!r.success, "{r:?}");
    assert_eq!(
        r.code.as_deref(),
        Some(rrpc::caller::CODE_INVALID_PARAMETER)
    );
    let m = r.error_message.unwrap_or_default();
    assert!(m.contains("needs an MQTT 5 session"), "{m}");
    // A filter is not a topic to publish on.
    let c5 = caller(b.port, MqttVersion::V5);
    let r = c5.call(&mqtt5_call("valves/+/rpc", b"open", 1000));
    assert_eq!(
        r.code.as_deref(),
        Some(rrpc::caller::CODE_INVALID_PARAMETER)
    );
    assert!(r.error_message.unwrap_or_default().contains("wildcard"));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        an_mqtt5_request_is_answered_on_its_response_topic_with_its_correlation_data needs ["mosquitto"],
        the_mqtt5_dialect_is_refused_on_mqtt311,
        the_caller_calls_an_mqtt5_device needs ["mosquitto"],
        a_reply_with_other_correlation_data_does_not_complete_the_call needs ["mosquitto"],
        the_caller_refuses_mqtt5_calls_on_mqtt311 needs ["mosquitto"],
    ]
}
