//! The caller's RRpc semantics against real brokers, with devices built on the
//! library's Rust API (the C and command-line paths have their own tests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rrpc::caller::{
    decode_request_base64, CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse,
};
use rrpc::presence::PresenceTopics;
use rrpc::{Client, ClientConfig, Dialect, Identity};

use crate::common;
use crate::common::device;
use crate::common::{Broker, MqttClient};

const PK: &str = "a1CallerPk";

/// A device on the Rust API: echoes, except payload "slow" (answered after 1.5 s)
/// and "mute" (never answered).
fn device(port: u16, names: &[&str], dialect: Dialect, presence: bool) -> Client {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.router.max_pending = 20_000; // room for the 10,000-in-flight test
    cfg.reply_queue_max = 20_000; // and for its replies, queued faster than they are written
    if presence {
        cfg.presence = Some(PresenceTopics::default());
    }
    let c = Client::new(cfg).unwrap();
    for n in names {
        c.add_device(dialect, &device::identity(PK, n)).unwrap();
    }
    let r = c.replier();
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        match req.payload {
            b"mute" => {}
            b"slow" => {
                let (r, t) = (r.clone(), req.token);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    let _ = r.reply(t, b"late");
                });
            }
            p => {
                let _ = r.reply(req.token, p);
            }
        }
    })))
    .unwrap();
    c.start().unwrap();
    c
}

fn params<'a>(dn: &'a str, payload: &'a [u8], timeout: u32) -> CallParams<'a> {
    device::system_call(PK, dn, payload, timeout)
}

fn caller(port: u16) -> Caller {
    Caller::connect(CallerConfig::new("127.0.0.1", port)).expect("caller connects")
}

fn code(r: &RrpcResponse) -> Option<RrpcCode> {
    r.rrpc_code
}

fn success_carries_binary_payloads_and_the_api_fields() {
    for b in common::brokers() {
        let _d = device(b.port, &["dev1"], Dialect::AlibabaSystem, true);
        let c = caller(b.port);
        let payload: Vec<u8> = (0..=255u8).collect();
        let r = c.call(&params("dev1", &payload, 3000));
        assert!(r.success, "{r:?}");
        assert_eq!(code(&r), Some(RrpcCode::Success));
        assert_eq!(r.payload.as_deref(), Some(&payload[..]));
        assert!(r.message_id.unwrap() > 0);
        assert_eq!(r.request_id.len(), 36);
        let json = r.to_json();
        assert!(
            json.starts_with("{\"RequestId\":\"") && json.contains("\"Success\":true"),
            "{json}"
        );
        assert!(
            json.contains("\"RrpcCode\":\"SUCCESS\"") && json.contains("\"PayloadBase64Byte\":\"")
        );
        // The seed's example payload round-trips through Base64.
        let req = decode_request_base64("aGVsbG8gd29ybGQ=").unwrap();
        let r = c.call(&params("dev1", &req, 3000));
        assert_eq!(r.payload_base64().as_deref(), Some("aGVsbG8gd29ybGQ="));
        assert!(r.to_xml().contains("<RrpcCode>SUCCESS</RrpcCode>"));
    }
}

fn tencent_and_custom_topic_calls() {
    let b = Broker::mosquitto();
    let _t = device(b.port, &["test01"], Dialect::Tencent, false);
    let topic = format!("/{PK}/dev9/user/update");
    let custom = {
        let cfg = ClientConfig::new("127.0.0.1", b.port);
        let c = Client::new(cfg).unwrap();
        c.add_device(
            Dialect::AlibabaCustom,
            &Identity {
                product_key: PK,
                device_name: "dev9",
                custom_topic: Some(&topic),
            },
        )
        .unwrap();
        let r = c.replier();
        c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
            let _ = r.reply(req.token, b"custom-ok");
        })))
        .unwrap();
        c.start().unwrap();
        c
    };
    let c = caller(b.port);
    let mut p = params("test01", b"ok?", 3000);
    p.dialect = Dialect::Tencent;
    p.timeout_ms = None; // Tencent: fixed 4 s
    let r = c.call(&p);
    assert_eq!(
        (code(&r), r.payload.as_deref()),
        (Some(RrpcCode::Success), Some(&b"ok?"[..]))
    );
    let mut p = params("dev9", b"x", 3000);
    p.custom_topic = Some(&topic);
    let r = c.call(&p);
    assert_eq!(
        (code(&r), r.payload.as_deref()),
        (Some(RrpcCode::Success), Some(&b"custom-ok"[..])),
        "{r:?}"
    );
    drop(custom);
}

fn invalid_parameters_are_refused_with_the_reason() {
    let b = Broker::rumqttd();
    let c = caller(b.port);
    let cases: Vec<(CallParams<'_>, &str)> = vec![
        (params("dev1", b"", 999), "Timeout 999"),
        (params("dev1", b"", 8001), "Timeout 8001"),
        (
            CallParams {
                timeout_ms: None,
                ..params("dev1", b"", 1000)
            },
            "Timeout is required",
        ),
        (
            params("dev+1", b"", 1000),
            "DeviceName contains an MQTT wildcard",
        ),
        (
            params("dev/1", b"", 1000),
            "DeviceName contains the topic separator",
        ),
        (
            CallParams {
                product_key: "a#",
                ..params("dev1", b"", 1000)
            },
            "ProductKey contains an MQTT wildcard",
        ),
        (
            CallParams {
                content_type: Some(12),
                ..params("dev1", b"", 1000)
            },
            "ContentType 12",
        ),
        (
            CallParams {
                custom_topic: Some("/a/+/b"),
                ..params("dev1", b"", 1000)
            },
            "Topic contains an MQTT wildcard",
        ),
    ];
    for (p, why) in cases {
        let r = c.call(&p);
        assert!(!r.success, "{p:?}");
        assert_eq!(r.code.as_deref(), Some("InvalidParameter"));
        assert!(
            r.error_message.as_deref().unwrap_or("").contains(why),
            "{why}: {r:?}"
        );
        assert!(r.to_json().contains("\"Success\":false"));
    }
    for ok in [0, 11, 65, 66, 240, 255] {
        let p = CallParams {
            content_type: Some(ok),
            ..params("nobody", b"", 1000)
        };
        assert!(c.call(&p).success, "ContentType {ok} is valid");
    }
    assert!(decode_request_base64("not base64!")
        .unwrap_err()
        .contains("not valid Base64"));
    assert_eq!(c.stats().refused, 8);
}

fn offline_is_immediate_timeout_waits_and_halfconn_follows_the_last_will() {
    for b in common::brokers() {
        // A device that stops cleanly leaves a retained "offline".
        let d = device(b.port, &["gone"], Dialect::AlibabaSystem, true);
        drop(d);
        let c = caller(b.port);
        assert_eq!(c.device_online(PK, "gone"), Some(false));
        let t = Instant::now();
        let r = c.call(&params("gone", b"x", 5000));
        assert_eq!(code(&r), Some(RrpcCode::Offline), "{r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "OFFLINE without waiting"
        );

        // A device that never answers: TIMEOUT after the timeout.
        let _m = device(b.port, &["mute"], Dialect::AlibabaSystem, true);
        let t = Instant::now();
        let r = c.call(&params("mute", b"mute", 1000));
        assert_eq!(code(&r), Some(RrpcCode::Timeout), "{r:?}");
        // Not before the timeout; the upper bound only catches a call that waits for
        // something else (a loaded machine can add a few hundred ms).
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(1000) && waited < Duration::from_millis(4000),
            "TIMEOUT after {waited:?}, want 1 s"
        );
        assert!(c.device_online(PK, "mute") == Some(true));

        // Its late reply is discarded and counted.
        let _s = device(b.port, &["slow"], Dialect::AlibabaSystem, true);
        let r = c.call(&params("slow", b"slow", 1000));
        assert_eq!(code(&r), Some(RrpcCode::Timeout));
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(c.stats().late_responses, 1);
    }
}

fn many_threads_and_many_calls_in_flight_on_one_connection() {
    let b = Broker::rumqttd();
    let _d = device(
        b.port,
        &["d0", "d1", "d2", "d3"],
        Dialect::AlibabaSystem,
        false,
    );
    let c = Arc::new(caller(b.port));
    // 1,000 calls from 8 threads, all correct.
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (c, ok) = (&c, &ok);
            s.spawn(move || {
                for i in 0..125 {
                    let dn = format!("d{}", i % 4);
                    let p = format!("t{t}-{i}");
                    let r = c.call(&params(&dn, p.as_bytes(), 8000));
                    if r.rrpc_code == Some(RrpcCode::Success)
                        && r.payload.as_deref() == Some(p.as_bytes())
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::Relaxed), 1000);
    // 10,000 calls in flight at once, each completed exactly once.
    let done = Arc::new(AtomicUsize::new(0));
    let right = Arc::new(AtomicUsize::new(0));
    for i in 0..10_000u32 {
        let p = i.to_le_bytes();
        let (done, right) = (done.clone(), right.clone());
        c.call_async(
            &params(&format!("d{}", i % 4), &p, 8000),
            Box::new(move |r| {
                if r.payload.as_deref() == Some(&p[..]) {
                    right.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }),
        );
    }
    // Unanswered calls would end at their 8 s timeout: wait past it.
    let end = Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::Relaxed) < 10_000 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(done.load(Ordering::Relaxed), 10_000, "{:?}", c.stats());
    assert_eq!(right.load(Ordering::Relaxed), 10_000);
    let s = c.stats();
    assert_eq!(
        (s.success, s.in_flight, s.duplicate_responses),
        (11_000, 0, 0)
    );
}

fn unreachable_broker_is_a_clear_error_within_the_timeout() {
    let port = common::free_port();
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.connect_timeout_ms = 2000;
    let t = Instant::now();
    let e = Caller::connect(cfg).unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_millis(2500));
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("refused"),
        "{e}"
    );
}

/// A misbehaving device on raw rumqttc: answers every request twice ("first",
/// then "second") and also sends a response for an id nobody asked for.
fn double_answering_device(port: u16, dn: &str) -> std::thread::JoinHandle<()> {
    let requests = format!("/sys/{PK}/{dn}/rrpc/request/+");
    let rogue = MqttClient::subscribed(port, &format!("rogue-{dn}"), &requests);
    std::thread::spawn(move || {
        // Until the broker goes away.
        while let Some(m) = rogue.recv(Duration::from_secs(60)) {
            let resp = m.topic.replace("/rrpc/request/", "/rrpc/response/");
            for body in [&b"first"[..], b"second"] {
                rogue.publish(&resp, body, false);
            }
            let stray = resp.rsplit_once('/').unwrap().0.to_string() + "/42";
            rogue.publish(&stray, b"?", false);
        }
    })
}

fn duplicate_responses_first_wins_and_unknown_ids_are_counted() {
    let b = Broker::rumqttd();
    let _rogue = double_answering_device(b.port, "rogue");
    let c = caller(b.port);
    let end = Instant::now() + Duration::from_secs(10);
    let mut r = c.call(&params("rogue", b"q", 1000));
    while r.rrpc_code != Some(RrpcCode::Success) && Instant::now() < end {
        r = c.call(&params("rogue", b"q", 1000)); // the rogue may still be subscribing
    }
    assert_eq!(r.payload.as_deref(), Some(&b"first"[..]), "{r:?}");
    let wait = Instant::now() + Duration::from_secs(3);
    while (c.stats().duplicate_responses < 1 || c.stats().unknown_responses < 1)
        && Instant::now() < wait
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = c.stats();
    assert!(
        s.duplicate_responses >= 1 && s.unknown_responses >= 1,
        "{s:?}"
    );
    assert_eq!(s.in_flight, 0);
}

fn removing_a_device_announces_it_offline_and_connection_wills_cover_several_devices() {
    let b = Broker::mosquitto();
    let c = caller(b.port);
    let d = device(b.port, &["keep", "drop"], Dialect::AlibabaSystem, true);
    let wait_for = |dn: &str, want: Option<bool>| {
        let end = Instant::now() + Duration::from_secs(5);
        while c.device_online(PK, dn) != want && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(c.device_online(PK, dn), want, "{dn}");
    };
    wait_for("keep", Some(true));
    wait_for("drop", Some(true));
    d.remove_device(Dialect::AlibabaSystem, &device::identity(PK, "drop"))
        .unwrap();
    wait_for("drop", Some(false));
    assert_eq!(
        code(&c.call(&params("drop", b"x", 3000))),
        Some(RrpcCode::Offline)
    );
    assert_eq!(
        code(&c.call(&params("keep", b"x", 3000))),
        Some(RrpcCode::Success)
    );
    // A clean stop takes the remaining device offline too.
    drop(d);
    wait_for("keep", Some(false));
}

fn blocking_calls_work_from_inside_a_tokio_runtime_and_are_refused_in_completions() {
    let b = Broker::rumqttd();
    let _d = device(b.port, &["dev1"], Dialect::AlibabaSystem, false);
    let c = Arc::new(caller(b.port));
    // An application already inside its own tokio runtime: the caller's thread
    // serves the call instead of this one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r = rt.block_on(async { c.call(&params("dev1", b"from async", 3000)) });
    assert_eq!(r.payload.as_deref(), Some(&b"from async"[..]), "{r:?}");
    // A completion that makes a blocking call would wait for itself: refused.
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    c.call_async(
        &params("dev1", b"outer", 3000),
        Box::new(move |_| {
            let inner = c2.call(&params("dev1", b"inner", 3000));
            tx.send(inner).unwrap();
        }),
    );
    let inner = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the completion ran");
    assert!(!inner.success);
    assert!(inner.error_message.unwrap().contains("would deadlock"));
    // After blocking calls, the caller's own thread drives again: presence
    // updates arrive with nobody calling.
    for i in 0..50 {
        let p = format!("seq{i}");
        assert_eq!(
            c.call(&params("dev1", p.as_bytes(), 3000)).payload,
            Some(p.into_bytes())
        );
    }
    let d2 = device(b.port, &["late"], Dialect::AlibabaSystem, true);
    let end = Instant::now() + Duration::from_secs(5);
    while c.device_online(PK, "late") != Some(true) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c.device_online(PK, "late"), Some(true));
    drop(d2);
}

fn the_caller_reports_its_connection_and_calls_in_flight_end_unknown_when_it_drops() {
    use rrpc::{ConnectionEvent, DisconnectCause};
    let mut broker = Broker::mosquitto();
    let _dev = device(broker.port, &["ev1"], Dialect::AlibabaSystem, false);
    let mut cfg = CallerConfig::new("127.0.0.1", broker.port);
    cfg.mqtt.reconnect_min_ms = 100;
    cfg.mqtt.reconnect_max_ms = 200;
    let c = Caller::connect(cfg).unwrap();
    assert!(c.is_connected());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    c.set_connection_listener(Some(Box::new(move |e: &ConnectionEvent| {
        s2.lock().unwrap().push(e.clone())
    })))
    .unwrap();
    // A call the device never answers, in flight when the broker dies.
    let (tx, rx) = std::sync::mpsc::channel();
    c.call_async(
        &params("ev1", b"mute", 8000),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    std::thread::sleep(Duration::from_millis(200));
    broker.kill();
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the call ends");
    assert_eq!(code(&r), Some(RrpcCode::Unknown));
    let until = Instant::now() + Duration::from_secs(10);
    while !seen.lock().unwrap().iter().any(|e| {
        matches!(
            e,
            ConnectionEvent::Disconnected {
                cause: DisconnectCause::ConnectFailed,
                ..
            }
        )
    }) {
        assert!(Instant::now() < until, "{:?}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(
            &events[0],
            ConnectionEvent::Disconnected { cause: DisconnectCause::Lost, reason } if !reason.is_empty()
        ),
        "{events:?}"
    );
    assert!(
        matches!(events[1], ConnectionEvent::Reconnecting { attempt: 1, .. }),
        "{events:?}"
    );
    broker.restart();
    let until = Instant::now() + Duration::from_secs(10);
    while !c.is_connected() {
        assert!(Instant::now() < until, "{:?}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.lock().unwrap().contains(&ConnectionEvent::Connected));
    assert!(c.conn_stats().connects >= 2);
    // After the listener is cleared, it hears nothing more.
    c.set_connection_listener(None).unwrap();
    let n = seen.lock().unwrap().len();
    drop(c);
    assert_eq!(seen.lock().unwrap().len(), n);
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        success_carries_binary_payloads_and_the_api_fields needs ["mosquitto"],
        tencent_and_custom_topic_calls needs ["mosquitto"],
        invalid_parameters_are_refused_with_the_reason,
        offline_is_immediate_timeout_waits_and_halfconn_follows_the_last_will needs ["mosquitto"],
        many_threads_and_many_calls_in_flight_on_one_connection,
        unreachable_broker_is_a_clear_error_within_the_timeout,
        duplicate_responses_first_wins_and_unknown_ids_are_counted,
        removing_a_device_announces_it_offline_and_connection_wills_cover_several_devices needs ["mosquitto"],
        blocking_calls_work_from_inside_a_tokio_runtime_and_are_refused_in_completions,
        the_caller_reports_its_connection_and_calls_in_flight_end_unknown_when_it_drops needs ["mosquitto"],
    ]
}
