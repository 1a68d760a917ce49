//! What any client of the broker can send a device or a caller, through
//! Mosquitto started here on a free loopback port: retained messages larger
//! than the payload limit (they used to end every connection at every
//! reconnect), topics that are not UTF-8, retained requests, requests a
//! persistent session queued while the device was away, and malformed topics
//! of 60 KiB (the log stays bounded). Each on MQTT 3.1.1 and 5 where the
//! protocols differ.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::caller::{Caller, RrpcCode};
use rrpc::session::MqttVersion;
use rrpc::{Client, ClientConfig, Dialect};

use crate::common;
use crate::common::device::{self, caller, client_config as device_config};
use crate::common::Broker;

const PK: &str = "a1HostilePk";

fn request_topic(dn: &str, id: &str) -> String {
    format!("/sys/{PK}/{dn}/rrpc/request/{id}")
}

/// A device serving `dn` that echoes every request and counts them, not started.
fn echo_device(cfg: ClientConfig, dn: &str) -> (Client, Arc<AtomicUsize>) {
    device::echo_device(cfg, &[device::system(PK, dn)])
}

/// [`echo_device`] serving `dn` on 127.0.0.1:`port` over `protocol`, started.
fn started_echo_device(port: u16, protocol: MqttVersion, dn: &str) -> (Client, Arc<AtomicUsize>) {
    let (dev, handled) = echo_device(device_config(port, protocol), dn);
    dev.start().unwrap();
    (dev, handled)
}

fn answered(c: &Caller, dn: &str, payload: &[u8]) -> bool {
    let r = c.call(&device::system_call(PK, dn, payload, 2000));
    r.rrpc_code == Some(RrpcCode::Success) && r.payload.as_deref() == Some(payload)
}

/// A retained 400 KiB message (over the default 256 KiB payload limit) on a
/// device's request topic and on a presence topic the caller follows: both
/// connect, stay connected through a restart of the device (the retained
/// message comes again at every subscription) and keep answering; each copy is
/// counted as `oversize`.
fn a_retained_oversize_message_takes_down_neither_device_nor_caller() {
    let b = Broker::mosquitto();
    for protocol in [MqttVersion::V311, MqttVersion::V5] {
        let dn = format!("big{}", protocol.number());
        let big = vec![0x41; 400 * 1024];
        common::publish_acked(b.port, &request_topic(&dn, "1"), &big, true);
        common::publish_acked(b.port, &format!("rrpc/presence/x/{dn}"), &big, true);
        let (dev, handled) = started_echo_device(b.port, protocol, &dn);
        let c = caller(b.port, protocol);
        assert!(answered(&c, &dn, b"first"), "{protocol:?}");
        dev.stop().unwrap();
        dev.start().unwrap();
        assert!(answered(&c, &dn, b"after a restart"), "{protocol:?}");
        let d = dev.stats();
        assert_eq!((d.connects, d.connection_errors), (2, 0), "{d:?}");
        assert_eq!(d.oversize, 2, "one per subscription: {d:?}");
        assert_eq!(handled.load(Ordering::SeqCst), 2);
        let s = c.conn_stats();
        assert_eq!((s.connects, s.connection_errors), (1, 0), "{s:?}");
        assert!(s.oversize >= 1, "{s:?}");
        dev.stop().unwrap();
    }
}

/// MQTT 3.1.1's CONNECT for `client_id`, then a QoS 0 PUBLISH on the raw
/// topic bytes `topic`.
fn raw_publish_frames(client_id: &str, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    connect.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    connect.extend_from_slice(client_id.as_bytes());
    let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
    publish.extend_from_slice(topic);
    publish.extend_from_slice(payload);
    let mut out = Vec::new();
    for (header, body) in [(0x10u8, connect), (0x30, publish)] {
        out.push(header);
        let mut len = body.len();
        loop {
            let byte = (len % 128) as u8;
            len /= 128;
            out.push(if len > 0 { byte | 0x80 } else { byte });
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(&body);
    }
    out
}

/// A PUBLISH whose topic is not UTF-8 on a topic the device subscribes:
/// Mosquitto refuses it from the publisher (it closes that connection), so the
/// device never sees it, stays connected and keeps answering. (A broker that
/// forwarded it would end an MQTT 3.1.1 connection in rumqttc's decoder,
/// counted as `malformed`; on MQTT 5 it is dropped and counted.)
fn a_topic_that_is_not_utf8_changes_nothing_for_the_device() {
    let b = Broker::mosquitto();
    for protocol in [MqttVersion::V311, MqttVersion::V5] {
        let dn = format!("utf{}", protocol.number());
        let (dev, handled) = started_echo_device(b.port, protocol, &dn);
        let c = caller(b.port, protocol);
        assert!(answered(&c, &dn, b"before"));
        let before = (dev.stats(), dev.stats().messages);
        let mut topic = format!("/sys/{PK}/{dn}/rrpc/request/").into_bytes();
        topic.extend_from_slice(b"12\xff\xfe");
        let mut s = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(&raw_publish_frames("raw-utf8", &topic, b"x"))
            .unwrap();
        // CONNACK, then the broker closes the connection over the bad topic.
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("the broker kept the publisher connected: {e}"),
            }
        }
        assert_eq!(got.first(), Some(&0x20), "CONNACK first: {got:?}");
        assert!(answered(&c, &dn, b"after"), "{protocol:?}");
        let after = dev.stats();
        assert_eq!(after.connects, before.0.connects, "{after:?}");
        assert_eq!(after.connection_errors, 0, "{after:?}");
        assert_eq!(dev.stats().messages, before.1 + 1, "only the call");
        assert_eq!(handled.load(Ordering::SeqCst), 2);
        dev.stop().unwrap();
    }
}

/// A retained request is delivered live once (retain flag clear: executed, it
/// is a request like any other) and again, retained, at every subscription
/// after: never executed then, however old it is, counted as `retained`.
fn retained_requests_are_never_executed() {
    let b = Broker::mosquitto();
    for protocol in [MqttVersion::V311, MqttVersion::V5] {
        let dn = format!("ret{}", protocol.number());
        let (dev, handled) = started_echo_device(b.port, protocol, &dn);
        common::publish_acked(
            b.port,
            &request_topic(&dn, &common::message_id()),
            b"run once",
            true,
        );
        common::wait_until("the live request", Duration::from_secs(3), || {
            handled.load(Ordering::SeqCst) == 1
        });
        for restart in 1..=2 {
            dev.stop().unwrap();
            dev.start().unwrap();
            common::wait_until("the retained copy", Duration::from_secs(3), || {
                dev.stats().retained == restart
            });
        }
        let c = caller(b.port, protocol);
        assert!(answered(&c, &dn, b"live"), "{protocol:?}");
        assert_eq!(handled.load(Ordering::SeqCst), 2, "{protocol:?}");
        dev.stop().unwrap();
        // Clear the retained message for the next round.
        common::publish_acked(b.port, &request_topic(&dn, "0"), b"", true);
    }
}

/// With a persistent session (`clean_session = false`, QoS 1), requests
/// published while the device is stopped are queued by the broker and
/// delivered right after the next CONNACK, before the SUBACK: dropped and
/// counted as `stale` by default, executed with `accept_queued`. Requests
/// published once the device is back are answered either way.
fn requests_queued_while_the_device_was_away_are_dropped_unless_accepted() {
    let b = Broker::mosquitto();
    for protocol in [MqttVersion::V311, MqttVersion::V5] {
        for accept in [false, true] {
            let dn = format!("away{}{accept}", protocol.number());
            let mut cfg = device_config(b.port, protocol);
            cfg.mqtt.client_id = Some(format!("hostile-{dn}"));
            cfg.mqtt.clean_session = false;
            cfg.subscribe_qos = 1;
            cfg.accept_queued = accept;
            let (dev, handled) = echo_device(cfg, &dn);
            dev.start().unwrap();
            dev.stop().unwrap();
            for i in 0..3 {
                let p = format!("queued {i}");
                common::publish_acked(
                    b.port,
                    &request_topic(&dn, &common::message_id()),
                    p.as_bytes(),
                    false,
                );
            }
            dev.start().unwrap();
            let c = caller(b.port, protocol);
            assert!(answered(&c, &dn, b"live"), "{protocol:?} {accept}");
            let s = dev.stats();
            if accept {
                assert_eq!(handled.load(Ordering::SeqCst), 4, "{s:?}");
                assert_eq!(s.stale, 0, "{s:?}");
            } else {
                assert_eq!(handled.load(Ordering::SeqCst), 1, "{s:?}");
                assert_eq!(s.stale, 3, "{s:?}");
            }
            dev.stop().unwrap();
        }
    }
}

/// Fifty malformed request topics of 60 KiB, with a quote in them: each is
/// counted, the log gets at most a few lines of that kind,
/// each short, escaped, and the first after the window says how many were
/// suppressed.
fn malformed_topics_make_few_short_escaped_log_lines() {
    let b = Broker::mosquitto();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    rrpc::log::set_sink(
        Some(Box::new(move |_, msg: &str| {
            if msg.contains("malformed RRPC topic") {
                l2.lock().unwrap().push(msg.to_string());
            }
        })),
        Some(rrpc::log::Level::Warn),
    )
    .unwrap();
    let dn = "noisy";
    let (dev, handled) = started_echo_device(b.port, MqttVersion::V311, dn);
    let publisher = common::Caller::connect(b.port);
    // Mosquitto refuses control characters in topics; a quote is escaped.
    let id = format!("\"é{}", "9".repeat(60 * 1024));
    for _ in 0..50 {
        publisher.publish_raw(&request_topic(dn, &id), b"x");
    }
    let end = Instant::now() + Duration::from_secs(5);
    while dev.stats().malformed < 50 {
        assert!(Instant::now() < end, "{:?} {:?}", dev.stats(), dev.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = caller(b.port, MqttVersion::V311);
    assert!(answered(&c, dn, b"still here"));
    rrpc::log::set_sink(None, Some(rrpc::log::Level::Warn)).unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        (1..=5).contains(&lines.len()),
        "{} lines: {:?}",
        lines.len(),
        lines
            .iter()
            .map(|l| &l[..l.len().min(200)])
            .collect::<Vec<_>>()
    );
    for l in lines.iter() {
        assert!(l.len() < 400, "{} bytes: {}", l.len(), &l[..200]);
        assert!(l.contains("/\\\"é999"), "escaped: {l}");
        let all = request_topic(dn, &id).len();
        assert!(l.contains(&format!("({all} bytes in all)")), "{l}");
    }
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    dev.stop().unwrap();
}

/// The reply queue holds at most `reply_queue_max` messages and
/// `reply_queue_bytes` payload bytes. In yield mode nothing is written to the
/// network between two `yield_for`s, like a stalled link: replies beyond the
/// bounds fail with `Busy` (their tokens stay valid) and count in
/// `queue_full`; the queue's content shows in `queued` and `queued_bytes`, and
/// empties at the next `yield_for`.
fn the_reply_queue_is_bounded_in_messages_and_bytes() {
    let b = Broker::mosquitto();
    let dn = "stalled";
    let mut cfg = device_config(b.port, MqttVersion::V311);
    cfg.reply_queue_max = 4;
    cfg.reply_queue_bytes = 1000;
    let dev = Client::new(cfg).unwrap();
    dev.add_device(Dialect::AlibabaSystem, &device::identity(PK, dn))
        .unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let t2 = tokens.clone();
    dev.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        t2.lock().unwrap().push(req.token);
    })))
    .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    while !dev.is_connected() {
        assert!(Instant::now() < end, "no connection");
        dev.yield_for(50).unwrap();
    }
    // Let the SUBACK in before requests are published.
    dev.yield_for(200).unwrap();
    let publisher = common::Caller::connect(b.port);
    for _ in 0..12 {
        publisher.publish_raw(&request_topic(dn, &common::message_id()), b"q");
    }
    let end = Instant::now() + Duration::from_secs(3);
    while tokens.lock().unwrap().len() < 12 {
        assert!(Instant::now() < end, "{:?}", dev.stats());
        dev.yield_for(50).unwrap();
    }
    let mut tokens = tokens.lock().unwrap().clone().into_iter();
    let mut reply = |len: usize| dev.reply(tokens.next().unwrap(), &vec![b'r'; len]);
    // Messages: four fit, the fifth does not.
    for _ in 0..4 {
        reply(100).unwrap();
    }
    assert_eq!(reply(100), Err(rrpc::ClientError::Busy));
    let s = dev.stats();
    assert_eq!(
        (s.queued, s.queued_bytes, s.queue_full),
        (4, 400, 1),
        "{s:?}"
    );
    dev.yield_for(100).unwrap();
    let s = dev.stats();
    assert_eq!((s.queued, s.queued_bytes), (0, 0), "written: {s:?}");
    // Bytes: two of 400 fit in 1000, the third does not...
    reply(400).unwrap();
    reply(400).unwrap();
    assert_eq!(reply(400), Err(rrpc::ClientError::Busy));
    assert_eq!(dev.stats().queue_full, 2);
    dev.yield_for(100).unwrap();
    // ...and one larger than the whole bound goes when nothing else waits.
    reply(5000).unwrap();
    assert_eq!(reply(1), Err(rrpc::ClientError::Busy));
    dev.yield_for(100).unwrap();
    let s = dev.stats();
    assert_eq!((s.queued, s.queue_full), (0, 3), "{s:?}");
    assert_eq!(dev.stats().replied, 7);
    dev.stop().unwrap();
}

/// The bounds are refused at config time beyond their documented maxima.
fn reply_queue_bounds_are_checked_at_config_time() {
    for (max, bytes, want) in [
        (0, 1, "reply_queue_max must be 1 to 65536"),
        (65_537, 1, "reply_queue_max must be 1 to 65536"),
        (1, 0, "reply_queue_bytes must be 1 to 268435456"),
        (
            1,
            256 * 1024 * 1024 + 1,
            "reply_queue_bytes must be 1 to 268435456",
        ),
    ] {
        let mut cfg = ClientConfig::new("127.0.0.1", 1883);
        cfg.reply_queue_max = max;
        cfg.reply_queue_bytes = bytes;
        let e = Client::new(cfg).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

/// Passwords, signed passwords, device secrets and PSKs never show in `Debug`.
fn secrets_never_show_in_the_debug_of_any_config() {
    let mut c = rrpc::MqttConfig::new("h", 1);
    c.username = Some("user".into());
    c.password = Some("s3cret-pass".into());
    c.tls = Some(rrpc::tls::TlsConfig {
        key_file: Some("/etc/dev/key.pem".into()),
        ..rrpc::tls::TlsConfig::default()
    });
    c.signer = Some(Arc::new(|_| Ok(("u".into(), "s3cret-signed".into()))));
    let mut shown = vec![format!("{c:?}")];
    shown.push(format!(
        "{:?}",
        rrpc::client::ClientConfig {
            mqtt: c.clone(),
            ..rrpc::client::ClientConfig::new("h", 1)
        }
    ));
    shown.push(format!(
        "{:?}",
        rrpc::caller::CallerConfig {
            mqtt: c.clone(),
            ..rrpc::caller::CallerConfig::new("h", 1)
        }
    ));
    {
        use rrpc::credentials::{AlibabaDevice, TencentDevice};
        let a = AlibabaDevice::new("a1Pk", "dev", "s3cret-device");
        shown.push(format!("{a:?}"));
        shown.push(format!("{:?}", a.sign(1_700_000_000_000).unwrap()));
        let t = TencentDevice::new("PID0123456", "dev", "czNjcmV0LXBzaw==");
        shown.push(format!("{t:?}"));
    }
    for d in &shown {
        assert!(!d.contains("s3cret") && !d.contains("czNjcmV0"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }
    assert!(shown[0].contains("key.pem"), "paths are fine: {}", shown[0]);
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        a_retained_oversize_message_takes_down_neither_device_nor_caller needs ["mosquitto"],
        a_topic_that_is_not_utf8_changes_nothing_for_the_device needs ["mosquitto"],
        retained_requests_are_never_executed needs ["mosquitto"],
        requests_queued_while_the_device_was_away_are_dropped_unless_accepted needs ["mosquitto"],
        malformed_topics_make_few_short_escaped_log_lines needs ["mosquitto"],
        the_reply_queue_is_bounded_in_messages_and_bytes needs ["mosquitto"],
        reply_queue_bounds_are_checked_at_config_time,
        secrets_never_show_in_the_debug_of_any_config,
    ]
}
