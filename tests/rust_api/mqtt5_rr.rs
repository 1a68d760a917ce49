//! MQTT 5 request/response (the `mqtt5` dialect) end to end through
//! Mosquitto: a raw rumqttc MQTT 5 client publishes requests with a Response
//! Topic and Correlation Data on a topic a device serves, and receives each
//! reply on its Response Topic with the same Correlation Data and no Response
//! Topic; the device refuses the dialect on MQTT 3.1.1.

use std::sync::mpsc;
use std::time::Duration;

use rrpc::session::MqttVersion;
use rrpc::{Client, ClientError, Dialect, Identity};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client as V5Client, Event, MqttOptions};

use crate::common::device::client_config;
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

fn an_mqtt5_request_is_answered_on_its_response_topic_with_its_correlation_data() {
    let b = Broker::mosquitto();
    let filter = "plant/line1/+/rpc";
    let dev = Client::new(client_config(b.port, MqttVersion::V5)).unwrap();
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

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        an_mqtt5_request_is_answered_on_its_response_topic_with_its_correlation_data needs ["mosquitto"],
        the_mqtt5_dialect_is_refused_on_mqtt311,
    ]
}
