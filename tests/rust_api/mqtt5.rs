//! MQTT 5 as a session option, end to end through Mosquitto started here on a
//! free loopback port: a device and a caller on MQTT 5 (Alibaba system and
//! custom topics), No Local keeping the device's own custom-topic replies away
//! (and the same setup on MQTT 3.1.1, where they come back), MQTT 3.1.1 and 5
//! mixed, reason codes of a refused connection and of the broker's DISCONNECT,
//! the maximum packet size announced to the broker, session expiry, and the
//! C configuration fields.

use std::ffi::{c_void, CString};
use std::ptr::null_mut;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode};
use rrpc::session::{ConnectionEvent, MqttVersion};
use rrpc::{Client, ClientConfig, ClientError, ClientStats, Dialect};

use crate::common;
use crate::common::device::{self, caller, client_config as device_config};
use crate::common::Broker;

const PK: &str = "a1Mqtt5Pk";

fn custom_topic(dn: &str) -> String {
    format!("/{PK}/{dn}/user/update")
}

/// An echo device serving `dn` on the system topics and `dn`-custom on its
/// custom topic, started.
fn echo_device(cfg: ClientConfig, dn: &str) -> Client {
    let custom_dn = format!("{dn}-custom");
    let topic = custom_topic(&custom_dn);
    let devices = [
        device::system(PK, dn),
        device::custom(PK, &custom_dn, &topic),
    ];
    device::started_echo_device(cfg, &devices)
}

fn call(c: &Caller, dialect: Dialect, dn: &str, custom_topic: Option<&str>, payload: &[u8]) {
    let r = c.call(&CallParams {
        dialect,
        product_key: PK,
        device_name: dn,
        payload,
        timeout_ms: Some(3000),
        custom_topic,
        content_type: None,
        name: None,
    });
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{}", r.to_json());
    assert_eq!(r.payload.as_deref(), Some(payload));
}

/// Three custom-topic calls and then one on the system topics (it reaches the
/// device after any echo of the replies before it: the broker queued those
/// first), answered by a device on `device` through a caller on `caller`; the
/// device's counters.
fn round(port: u16, device: MqttVersion, caller_on: MqttVersion, dn: &str) -> ClientStats {
    let dev = echo_device(device_config(port, device), dn);
    let c = caller(port, caller_on);
    let custom_dn = format!("{dn}-custom");
    let topic = custom_topic(&custom_dn);
    for i in 0..3 {
        let p = format!("custom {i}");
        call(
            &c,
            Dialect::AlibabaCustom,
            &custom_dn,
            Some(&topic),
            p.as_bytes(),
        );
    }
    call(&c, Dialect::AlibabaSystem, dn, None, b"system");
    call(&c, Dialect::AlibabaSystem, dn, None, &vec![0x5a; 64 * 1024]);
    let s = dev.stats();
    assert_eq!(s.requests, 5, "{s:?}");
    assert_eq!(s.replied, 5, "{s:?}");
    dev.stop().unwrap();
    s
}

fn mqtt5_device_and_caller_with_no_local_and_mqtt311_for_contrast() {
    let b = Broker::mosquitto();
    let v5 = round(b.port, MqttVersion::V5, MqttVersion::V5, "both5");
    assert_eq!(
        v5.own_replies, 0,
        "No Local: the device's own custom-topic replies never reach it: {v5:?}"
    );
    let v3 = round(b.port, MqttVersion::V311, MqttVersion::V311, "both3");
    assert_eq!(
        v3.own_replies, 3,
        "MQTT 3.1.1: every custom-topic reply comes back and is recognised: {v3:?}"
    );
}

fn mqtt311_and_mqtt5_mixed_through_one_broker() {
    let b = Broker::mosquitto();
    // No Local is the subscriber's: a 3.1.1 device still gets its replies back.
    let s = round(b.port, MqttVersion::V311, MqttVersion::V5, "dev3call5");
    assert_eq!(s.own_replies, 3, "{s:?}");
    let s = round(b.port, MqttVersion::V5, MqttVersion::V311, "dev5call3");
    assert_eq!(s.own_replies, 0, "{s:?}");
}

fn a_refused_mqtt5_connection_names_the_reason_code() {
    let b = Broker::mosquitto_with("allow_anonymous false\n");
    let start = |protocol| {
        let c = Client::new(device_config(b.port, protocol)).unwrap();
        let e = c.start().unwrap_err();
        eprintln!("{protocol:?}: {e}");
        e
    };
    match start(MqttVersion::V5) {
        ClientError::ConnectFailed(m) => assert!(
            m.contains("broker refused the connection: not authorized (0x87)"),
            "{m}"
        ),
        e => panic!("{e:?}"),
    }
    // MQTT 3.1.1 has a return code, not a reason code.
    match start(MqttVersion::V311) {
        ClientError::ConnectFailed(m) => {
            assert!(m.contains("broker refused the connection"), "{m}");
            assert!(!m.contains("(0x"), "{m}");
        }
        e => panic!("{e:?}"),
    }
}

/// A broker that accepts one MQTT 5 connection and then ends it with a
/// DISCONNECT carrying a reason code and a reason string (Mosquitto 2.0 closes
/// a taken-over connection without one, so the broker is played here).
fn disconnecting_broker() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf); // CONNECT
        s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap(); // CONNACK: success
        std::thread::sleep(Duration::from_millis(300));
        let why = b"another connection";
        let mut props = vec![0x1F, 0x00, why.len() as u8]; // reason string
        props.extend_from_slice(why);
        let mut pkt = vec![0xE0, (2 + props.len()) as u8, 0x8E, props.len() as u8];
        pkt.extend_from_slice(&props);
        s.write_all(&pkt).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    port
}

fn the_brokers_disconnect_reason_reaches_the_listener() {
    let port = disconnecting_broker();
    let mut cfg = device_config(port, MqttVersion::V5);
    cfg.mqtt.reconnect_min_ms = 5000;
    cfg.mqtt.reconnect_max_ms = 5000;
    let dev = Client::new(cfg).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    dev.set_connection_listener(Some(Box::new(move |e: &ConnectionEvent| {
        s2.lock().unwrap().push(e.clone())
    })))
    .unwrap();
    dev.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reason = loop {
        let found = seen.lock().unwrap().iter().find_map(|e| match e {
            ConnectionEvent::Disconnected { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no DISCONNECTED event");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        reason,
        "broker disconnected: session taken over (0x8E): \"another connection\""
    );
    assert_eq!(dev.stats().connection_errors, 1);
    dev.stop().unwrap();
}

/// A request over `max_payload` but within the incoming packet limit is
/// dropped and counted with the connection kept, on both protocols. One over
/// the incoming limit (announced on MQTT 5 as the Maximum Packet Size) never
/// reaches an MQTT 5 device; on MQTT 3.1.1 rumqttc cannot skip it and the
/// connection ends, counted and explained.
fn oversize_requests_are_dropped_and_the_maximum_packet_size_is_announced() {
    let b = Broker::mosquitto();
    let publisher = common::Caller::connect(b.port);
    for (protocol, dn) in [(MqttVersion::V5, "small5"), (MqttVersion::V311, "small3")] {
        let mut cfg = device_config(b.port, protocol);
        cfg.router.max_payload = 1024;
        cfg.mqtt.reconnect_min_ms = 5000;
        cfg.mqtt.reconnect_max_ms = 5000;
        let dev = echo_device(cfg, dn);
        let answered = |big: usize| {
            let topic = format!("/sys/{PK}/{dn}/rrpc/request/{}", common::message_id());
            publisher.publish_raw(&topic, &vec![0x42; big]);
            // A request after it tells when the broker has dealt with both.
            let c = caller(b.port, MqttVersion::V311);
            let after = Instant::now() + Duration::from_secs(4);
            loop {
                let r = c.call(&CallParams {
                    dialect: Dialect::AlibabaSystem,
                    product_key: PK,
                    device_name: dn,
                    payload: b"after",
                    timeout_ms: Some(1000),
                    custom_topic: None,
                    content_type: None,
                    name: None,
                });
                if r.rrpc_code == Some(RrpcCode::Success) || Instant::now() > after {
                    break r.rrpc_code == Some(RrpcCode::Success);
                }
            }
        };
        // 200 KiB: over max_payload, within the default 1 MiB incoming limit.
        assert!(
            answered(200 * 1024),
            "{protocol:?}: the device stays connected"
        );
        let conn = dev.stats();
        assert_eq!(conn.connection_errors, 0, "{protocol:?}: {conn:?}");
        assert_eq!(conn.oversize, 1, "{protocol:?}: {conn:?}");
        assert_eq!(dev.stats().too_large, 0, "never handed to the router");
        // 2 MiB: over the incoming limit.
        let listener = Arc::new(Mutex::new(Vec::new()));
        let l2 = listener.clone();
        dev.set_connection_listener(Some(Box::new(move |e: &ConnectionEvent| {
            l2.lock().unwrap().push(e.clone())
        })))
        .unwrap();
        let ok = answered(2 * 1024 * 1024);
        let conn = dev.stats();
        match protocol {
            MqttVersion::V5 => {
                assert!(ok, "the device stays connected");
                assert_eq!(conn.connection_errors, 0, "{conn:?}");
                assert_eq!(conn.oversize, 1, "the broker dropped it: {conn:?}");
            }
            MqttVersion::V311 => {
                assert!(conn.connection_errors >= 1, "{conn:?}");
                assert_eq!(conn.oversize, 2, "{conn:?}");
                let told = listener.lock().unwrap().iter().any(|e| {
                    matches!(e, ConnectionEvent::Disconnected { reason, .. } if reason.contains("max_incoming_packet"))
                });
                assert!(told, "{:?}", listener.lock().unwrap());
            }
        }
        dev.set_connection_listener(None).unwrap();
        dev.stop().unwrap();
    }
}

/// With `clean_session = false` an MQTT 5 session outlives its connection for
/// `session_expiry_s`: a QoS 1 request published while the device is stopped
/// is delivered when it starts again.
fn a_kept_mqtt5_session_holds_requests_while_the_device_is_away() {
    let b = Broker::mosquitto();
    // 0: the documented default (an hour); a clean session holds nothing.
    for (clean, expiry, kept) in [(false, 60, true), (false, 0, true), (true, 0, false)] {
        let dn = format!("kept{expiry}{clean}");
        let mut cfg = device_config(b.port, MqttVersion::V5);
        cfg.mqtt.client_id = Some(format!("mqtt5-{dn}"));
        cfg.mqtt.clean_session = clean;
        cfg.mqtt.session_expiry_s = expiry;
        cfg.subscribe_qos = 1;
        // Requests queued while away are dropped by default (see
        // tests/rust_api/hostile_network.rs); this test is about the session holding them.
        cfg.accept_queued = true;
        let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let c = Client::new(cfg).unwrap();
        c.add_device(Dialect::AlibabaSystem, &device::identity(PK, &dn))
            .unwrap();
        let s2 = seen.clone();
        c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
            s2.lock().unwrap().push(req.payload.to_vec());
        })))
        .unwrap();
        c.start().unwrap();
        c.stop().unwrap();
        let topic = format!("/sys/{PK}/{dn}/rrpc/request/{}", common::message_id());
        common::publish_acked(b.port, &topic, b"while away", false);
        c.start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            !seen.lock().unwrap().is_empty(),
            kept,
            "clean_session {clean}, session_expiry_s {expiry}"
        );
        c.stop().unwrap();
    }
}

// ---- C configuration ----

use rrpc::ffi::client::*;
use rrpc::ffi::misc::*;
use rrpc::ffi::rrpc_status::*;
use rrpc::ffi::session::*;

use crate::common::ffi::{assert_ok, c_defaults, last_error};

/// The MQTT settings' defaults, for `host` and `port`.
fn c_mqtt(host: &CString, port: u16) -> rrpc_mqtt_config {
    let mut m = c_defaults(rrpc_mqtt_config_init);
    m.host = host.as_ptr();
    m.port = port;
    m
}

/// The client settings' defaults, with `mqtt`.
fn c_config(mqtt: &rrpc_mqtt_config) -> rrpc_client_config {
    let mut cfg = c_defaults(rrpc_client_config_init);
    cfg.mqtt = mqtt;
    cfg
}

fn c_config_mqtt_version_and_session_expiry() {
    let host = CString::new("127.0.0.1").unwrap();
    let id = CString::new("c-kept").unwrap();
    let d = c_mqtt(&host, 1883);
    assert_eq!(
        d.mqtt_version,
        rrpc_mqtt_version::RRPC_MQTT_V311 as u32,
        "MQTT 3.1.1 by default"
    );
    assert_eq!(d.mqtt_version, 4, "the protocol level of MQTT 3.1.1");
    assert_eq!(d.session_expiry_s, 0);
    let new = |tweak: &dyn Fn(&mut rrpc_mqtt_config)| {
        let mut mqtt = c_mqtt(&host, 1883);
        tweak(&mut mqtt);
        let cfg = c_config(&mqtt);
        let mut client = null_mut();
        let st = rrpc_client_new(&cfg, &mut client);
        assert_ok(rrpc_client_free(client));
        st
    };
    for v in [4, 5] {
        assert_eq!(new(&|m| m.mqtt_version = v), RRPC_STATUS_OK, "{v}");
    }
    let refused = |tweak: &dyn Fn(&mut rrpc_mqtt_config), why: &str| {
        assert_eq!(new(tweak), RRPC_STATUS_INVALID_ARGUMENT, "{why}");
        assert!(last_error().contains(why), "{why}: {}", last_error());
    };
    for v in [0, 1, 2, 3, 6, 255] {
        refused(
            &|m| m.mqtt_version = v,
            &format!(
                "config->mqtt->mqtt_version must be RRPC_MQTT_V311 (4) or RRPC_MQTT_V5 (5), not {v}"
            ),
        );
    }
    let kept = |m: &mut rrpc_mqtt_config| {
        m.clean_session = 0;
        m.client_id = id.as_ptr();
        m.session_expiry_s = 120;
    };
    let kept5 = |m: &mut rrpc_mqtt_config| {
        kept(m);
        m.mqtt_version = 5;
    };
    assert_ok(new(&kept5));
    refused(&kept, "session_expiry_s is an MQTT 5 setting");
    refused(
        &|m| {
            kept5(m);
            m.clean_session = 1;
        },
        "session_expiry_s needs clean_session = false",
    );
    refused(
        &|m| {
            m.mqtt_version = 5;
            m.keep_alive_s = 0;
        },
        "keep_alive_s must be at least 5 with MQTT 5",
    );
}

unsafe extern "C" fn c_echo(
    _user_data: *mut c_void,
    client: *mut rrpc_client,
    req: *const rrpc::ffi::rrpc_request,
) {
    let r = &*req;
    // Counted by the client (`replied`), which the test checks.
    let _ = rrpc_client_reply(client, r.token, r.payload, r.payload_len);
}

/// The C API on MQTT 5: a custom-topic device answers, its replies never come
/// back.
fn c_client_on_mqtt5_answers_without_own_replies() {
    let b = Broker::mosquitto();
    let host = CString::new("127.0.0.1").unwrap();
    let mut mqtt = c_mqtt(&host, b.port);
    mqtt.mqtt_version = rrpc_mqtt_version::RRPC_MQTT_V5 as u32;
    let cfg = c_config(&mqtt);
    let mut client = null_mut();
    assert_ok(rrpc_client_new(&cfg, &mut client));
    let (pk, dn) = (CString::new(PK).unwrap(), CString::new("cdev").unwrap());
    let topic = custom_topic("cdev");
    let ctopic = CString::new(topic.clone()).unwrap();
    assert_ok(rrpc_client_add_device(
        client,
        rrpc_dialect::RRPC_DIALECT_ALIBABA_CUSTOM as u32,
        pk.as_ptr(),
        dn.as_ptr(),
        ctopic.as_ptr(),
    ));
    assert_ok(rrpc_client_set_request_callback(
        client,
        Some(c_echo),
        null_mut(),
    ));
    assert_ok(rrpc_client_start(client));
    let c = caller(b.port, MqttVersion::V5);
    for p in [&b"one"[..], b"two"] {
        call(&c, Dialect::AlibabaCustom, "cdev", Some(&topic), p);
    }
    let mut s = ClientStats::default();
    assert_ok(rrpc_client_get_stats(
        client,
        &mut s,
        size_of::<ClientStats>(),
    ));
    assert_eq!((s.requests, s.replied, s.own_replies), (2, 2, 0));
    assert_ok(rrpc_client_stop(client));
    assert_ok(rrpc_client_free(client));
}

/// TLS works the same on MQTT 5: device and caller over rustls, and a refused
/// certificate still reads as a TLS failure.
fn mqtt5_over_tls() {
    use crate::common::pki::{tls_broker, Pki};
    use rrpc::tls::TlsConfig;
    let pki = Pki::new("mqtt5");
    let (cert, key) = pki.server("server", false);
    let b = tls_broker(&cert, &key, None);
    let tls = TlsConfig {
        ca_file: Some(pki.path("ca.pem")),
        ..TlsConfig::default()
    };
    let mut cfg = device_config(b.port, MqttVersion::V5);
    cfg.mqtt.tls = Some(tls.clone());
    let dev = echo_device(cfg, "tls5");
    let mut ccfg = CallerConfig::new("127.0.0.1", b.port);
    ccfg.mqtt.protocol = MqttVersion::V5;
    ccfg.mqtt.tls = Some(tls);
    let c = Caller::connect(ccfg).expect("MQTT 5 caller over TLS");
    let topic = custom_topic("tls5-custom");
    call(
        &c,
        Dialect::AlibabaCustom,
        "tls5-custom",
        Some(&topic),
        b"custom",
    );
    call(&c, Dialect::AlibabaSystem, "tls5", None, b"over tls");
    assert_eq!(dev.stats().own_replies, 0);
    // Trusting no CA of the broker's: the handshake fails, named as such.
    let mut cfg = device_config(b.port, MqttVersion::V5);
    cfg.mqtt.tls = Some(TlsConfig {
        ca_file: Some(Pki::new("mqtt5-other").path("ca.pem")),
        ..TlsConfig::default()
    });
    match Client::new(cfg).unwrap().start() {
        Err(ClientError::Tls(m)) => assert!(m.contains("unknown issuer"), "{m}"),
        other => panic!("{other:?}"),
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        mqtt5_device_and_caller_with_no_local_and_mqtt311_for_contrast needs ["mosquitto"],
        mqtt311_and_mqtt5_mixed_through_one_broker needs ["mosquitto"],
        a_refused_mqtt5_connection_names_the_reason_code needs ["mosquitto"],
        the_brokers_disconnect_reason_reaches_the_listener,
        oversize_requests_are_dropped_and_the_maximum_packet_size_is_announced needs ["mosquitto"],
        a_kept_mqtt5_session_holds_requests_while_the_device_is_away needs ["mosquitto"],
        c_config_mqtt_version_and_session_expiry,
        c_client_on_mqtt5_answers_without_own_replies needs ["mosquitto"],
        mqtt5_over_tls needs ["mosquitto"],
    ]
}
