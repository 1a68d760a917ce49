//! The RRpc ContentType end to end: carried from the caller to the device in the
//! message-id level of the request topic (`{messageId};ct={ContentType}`), over
//! MQTT 3.1.1 and MQTT 5, while a request without one keeps the documented topic
//! byte for byte.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode};
use rrpc::{Client, ClientConfig, Dialect};

use crate::common;
use crate::common::device;
use crate::common::{Broker, MqttClient};

const PK: &str = "a1CtPk";

/// What the device saw of each request: (message id, ContentType, payload).
type Seen = Arc<Mutex<Vec<(String, Option<u8>, Vec<u8>)>>>;

/// An echo device on the Rust API that records the ContentType of each request.
fn device(port: u16, name: &str) -> (Client, Seen) {
    let c = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    c.add_device(Dialect::AlibabaSystem, &device::identity(PK, name))
        .unwrap();
    let seen: Seen = Arc::default();
    let (r, s) = (c.replier(), seen.clone());
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        s.lock().unwrap().push((
            req.message_id().to_string(),
            req.content_type,
            req.payload.to_vec(),
        ));
        let _ = r.reply(req.token, req.payload);
    })))
    .unwrap();
    c.start().unwrap();
    (c, seen)
}

fn params<'a>(dn: &'a str, payload: &'a [u8], content_type: Option<u32>) -> CallParams<'a> {
    CallParams {
        content_type,
        ..device::system_call(PK, dn, payload, 3000)
    }
}

/// Request topics as a third MQTT 3.1.1 client sees them on the broker.
fn tap(port: u16) -> MqttClient {
    let id = format!("tap-{}", std::process::id());
    MqttClient::subscribed(port, &id, &format!("/sys/{PK}/+/rrpc/request/+"))
}

/// The topic of the next request the tap sees, within 5 s.
fn tapped(tap: &MqttClient) -> String {
    tap.recv(Duration::from_secs(5)).expect("a request").topic
}

fn content_type_reaches_the_device_and_plain_requests_keep_the_documented_topic() {
    for b in common::brokers() {
        let (_d, seen) = device(b.port, "truck1");
        let topics = tap(b.port);
        let caller = Caller::connect(CallerConfig::new("127.0.0.1", b.port)).unwrap();

        // Without ContentType: `/sys/{pk}/{dn}/rrpc/request/{messageId}`, the id all digits.
        let r = caller.call(&params("truck1", b"plain", None));
        assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
        let t = tapped(&topics);
        let id = t
            .strip_prefix(&format!("/sys/{PK}/truck1/rrpc/request/"))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(id.bytes().all(|c| c.is_ascii_digit()), "{t}");
        assert_eq!(r.message_id.map(|m| m.to_string()).as_deref(), Some(id));

        // Each ContentType class: GNSS, IC card, serial ports, user-defined.
        for ct in [0u32, 11, 65, 66, 240, 255] {
            let payload = format!("ct {ct}");
            let r = caller.call(&params("truck1", payload.as_bytes(), Some(ct)));
            assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{ct}: {r:?}");
            assert_eq!(r.payload.as_deref(), Some(payload.as_bytes()));
            let t = tapped(&topics);
            let id = r.message_id.unwrap();
            assert_eq!(t, format!("/sys/{PK}/truck1/rrpc/request/{id};ct={ct}"));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(seen[0].1, None);
        let cts: Vec<Option<u8>> = seen[1..].iter().map(|s| s.1).collect();
        assert_eq!(cts, [0, 11, 65, 66, 240, 255].map(Some));
        // The device sees the bare message id.
        assert!(
            seen.iter().all(|s| s.0.bytes().all(|c| c.is_ascii_digit())),
            "{seen:?}"
        );

        // A ContentType outside the RRpc set is refused by the caller, nothing sent.
        let r = caller.call(&params("truck1", b"x", Some(7)));
        assert_eq!(r.code.as_deref(), Some("InvalidParameter"), "{r:?}");
        assert_eq!(topics.recv(Duration::from_millis(300)), None);
    }
}

/// An MQTT 5 cloud side (rumqttc's v5 client through Mosquitto) calling an MQTT
/// 3.1.1 device built on the library: the ContentType crosses the protocol versions
/// because it is part of the topic.
fn content_type_crosses_mqtt5_and_mqtt311() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{Client as Client5, Event, MqttOptions};

    let b = Broker::mosquitto();
    let (_d, seen) = device(b.port, "truck5");
    let mut o = MqttOptions::new(format!("v5-{}", std::process::id()), "127.0.0.1", b.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client5::new(o, 16);
    client
        .subscribe(format!("/sys/{PK}/truck5/rrpc/response/+"), QoS::AtMostOnce)
        .unwrap();
    let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send((String::new(), Vec::new()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        p.payload.to_vec(),
                    ));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, "");
    // The device subscribes before `start` returns; give the broker a moment anyway
    // by retrying the first request until it is answered.
    let mut got = None;
    for attempt in 0..20 {
        let level = format!("{};ct=65", 900_000_000_000_000_000u64 + attempt);
        client
            .publish(
                format!("/sys/{PK}/truck5/rrpc/request/{level}"),
                QoS::AtMostOnce,
                false,
                b"serial-1".to_vec(),
            )
            .unwrap();
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(500)) {
            got = Some((level, r));
            break;
        }
    }
    let (level, (topic, payload)) = got.expect("an MQTT 5 request answered");
    assert_eq!(topic, format!("/sys/{PK}/truck5/rrpc/response/{level}"));
    assert_eq!(payload, b"serial-1");
    let seen = seen.lock().unwrap().clone();
    let last = seen.last().unwrap();
    assert_eq!(last.1, Some(65));
    assert_eq!(format!("{};ct=65", last.0), level);
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        content_type_reaches_the_device_and_plain_requests_keep_the_documented_topic needs ["mosquitto"],
        content_type_crosses_mqtt5_and_mqtt311 needs ["mosquitto"],
    ]
}
