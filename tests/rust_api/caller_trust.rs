//! The caller against hostile neighbours and its own bounds, through Mosquitto
//! started here on a free loopback port: replies are taken only from the called
//! device's own response topic, with the canonical id and the call's
//! ContentType, never from a retained message; message ids are random; on MQTT 5
//! a request expires in the broker with its call; every table is bounded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
use rrpc::session::MqttVersion;
use rrpc::{Client, ClientConfig, Dialect, Identity};

use crate::common::device;
use crate::common::mqtt::{self, MqttClient};
use crate::common::Broker;

const PK: &str = "a1TrustPk";

fn custom_topic(dn: &str) -> String {
    format!("/{PK}/{dn}/user/update")
}

fn mosquitto() -> Broker {
    Broker::mosquitto()
}

/// A caller on 127.0.0.1:`port` (5 s to connect), with `settings` applied.
fn connect_caller(port: u16, settings: impl FnOnce(&mut CallerConfig)) -> Arc<Caller> {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.connect_timeout_ms = 5000;
    settings(&mut cfg);
    Arc::new(Caller::connect(cfg).unwrap())
}

/// Waits (up to `secs` seconds) while `busy` holds.
fn wait_while(secs: u64, busy: impl Fn() -> bool) {
    let t0 = Instant::now();
    while busy() && t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn system_params<'a>(dn: &'a str, payload: &'a [u8], timeout: u32) -> CallParams<'a> {
    device::system_call(PK, dn, payload, timeout)
}

/// Calls `dn` on its custom topic ([`custom_topic`]) with `payload`, for up to 1 s.
fn call_custom(caller: &Caller, dn: &str, payload: &[u8]) -> RrpcResponse {
    let topic = custom_topic(dn);
    caller.call(&CallParams {
        custom_topic: Some(&topic),
        ..device::system_call(PK, dn, payload, 1000)
    })
}

/// Starts a call on its own thread; the handle gives its response.
fn call_in_background(
    caller: &Arc<Caller>,
    dn: &str,
    topic: Option<String>,
    ct: Option<u32>,
    payload: &[u8],
    timeout: u32,
) -> std::thread::JoinHandle<RrpcResponse> {
    let (c, dn, payload) = (caller.clone(), dn.to_string(), payload.to_vec());
    std::thread::spawn(move || {
        c.call(&CallParams {
            dialect: Dialect::AlibabaSystem,
            product_key: PK,
            device_name: &dn,
            payload: &payload,
            timeout_ms: Some(timeout),
            custom_topic: topic.as_deref(),
            content_type: ct,
            name: None,
        })
    })
}

/// A device on the library that answers its custom topic `answer` after `delay`.
fn slow_custom_device(port: u16, dn: &str, delay: Duration) -> Client {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.connect_timeout_ms = 5000;
    let c = Client::new(cfg).unwrap();
    let topic = custom_topic(dn);
    c.add_device(
        Dialect::AlibabaCustom,
        &Identity {
            product_key: PK,
            device_name: dn,
            custom_topic: Some(&topic),
        },
    )
    .unwrap();
    let r = c.replier();
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        let (r, t) = (r.clone(), req.token);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = r.reply(t, b"genuine");
        });
    })))
    .unwrap();
    c.start().unwrap();
    c
}

fn another_device_cannot_answer_a_call_under_its_own_custom_topic() {
    let b = mosquitto();
    let _victim = slow_custom_device(b.port, "victim", Duration::from_millis(600));
    // The other device reads the victim's requests here (no ACL on this
    // broker: the worst case, it knows the id) and answers under its own topic.
    let victims_responses = Dialect::AlibabaCustom.response_wildcard(Some(&custom_topic("victim")));
    let attacker = MqttClient::subscribed(b.port, "attacker", &victims_responses);
    let caller = connect_caller(b.port, |_| {});
    // The caller also calls the attacker's own topic, so it listens there.
    let own = custom_topic("attacker");
    let r = call_custom(&caller, "attacker", b"hello");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout));

    let victim_topic = custom_topic("victim");
    let call = call_in_background(
        &caller,
        "victim",
        Some(victim_topic.clone()),
        None,
        b"do",
        3000,
    );
    let topic = attacker
        .next("/ext/rrpc/", Duration::from_secs(3))
        .expect("the request on the victim's topic")
        .topic;
    let level = topic.split('/').nth(3).unwrap().to_string();
    attacker.publish(&format!("/ext/rrpc/{level}{own}"), b"forged", false);
    let r = call.join().unwrap();
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.payload.as_deref(), Some(&b"genuine"[..]));
    let s = caller.stats();
    assert_eq!(s.mismatched_responses, 1, "{s:?}");
    assert_eq!(s.duplicate_responses, 0, "{s:?}");
}

fn leading_zeros_and_another_content_type_do_not_answer_a_call() {
    let b = mosquitto();
    let dev = MqttClient::subscribed(
        b.port,
        "raw-device",
        &format!("/sys/{PK}/raw/rrpc/request/+"),
    );
    let caller = connect_caller(b.port, |_| {});
    let call = call_in_background(&caller, "raw", None, Some(65), b"q", 3000);
    let topic = dev
        .next("/sys/", Duration::from_secs(3))
        .expect("the request")
        .topic;
    let level = topic.rsplit('/').next().unwrap().to_string();
    let (id, ct) = level.split_once(";ct=").expect("the ContentType travels");
    assert_eq!(ct, "65");
    let resp = |l: &str| format!("/sys/{PK}/raw/rrpc/response/{l}");
    dev.publish(&resp(&format!("0{id};ct=65")), b"zero", false);
    dev.publish(&resp(&format!("{id};ct=66")), b"other type", false);
    dev.publish(&resp(&format!("{id}x;ct=65")), b"not an id", false);
    std::thread::sleep(Duration::from_millis(300));
    dev.publish(&resp(&level), b"right", false);
    let r = call.join().unwrap();
    assert_eq!(r.payload.as_deref(), Some(&b"right"[..]), "{r:?}");
    let s = caller.stats();
    assert_eq!(s.mismatched_responses, 1, "{s:?}");
    assert_eq!(s.unknown_responses, 2, "{s:?}");
}

fn retained_responses_are_never_taken_and_are_counted() {
    let b = mosquitto();
    let dev = MqttClient::connect(b.port, "retainer");
    // Stored by anyone before the caller subscribes: delivered with retain set.
    dev.publish(&format!("/sys/{PK}/x/rrpc/response/123"), b"stale", true);
    dev.publish(
        &format!("/ext/rrpc/77{}", custom_topic("y")),
        b"stale",
        true,
    );
    std::thread::sleep(Duration::from_millis(200));
    let caller = connect_caller(b.port, |_| {});
    wait_while(3, || caller.stats().retained_responses < 1);
    // A call that subscribes the custom topic gets that one too.
    let r = call_custom(&caller, "y", b"q");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout));
    let s = caller.stats();
    assert_eq!(s.retained_responses, 2, "{s:?}");
    assert_eq!(s.unknown_responses, 0, "{s:?}");
}

fn message_ids_are_random_and_unique() {
    let b = mosquitto();
    let dev = MqttClient::subscribed(b.port, "id-watcher", &format!("/sys/{PK}/+/rrpc/request/+"));
    let caller = connect_caller(b.port, |_| {});
    let ids = Arc::new(Mutex::new(Vec::new()));
    for i in 0..64 {
        let ids = ids.clone();
        caller.call_async(
            &system_params(&format!("d{i}"), b"", 1000),
            Box::new(move |r| ids.lock().unwrap().push(r.message_id.unwrap())),
        );
    }
    let mut seen = Vec::new();
    while seen.len() < 64 {
        let t = dev
            .next("/sys/", Duration::from_secs(3))
            .expect("requests")
            .topic;
        seen.push(t.rsplit('/').next().unwrap().parse::<u64>().unwrap());
    }
    wait_while(5, || ids.lock().unwrap().len() < 64);
    let mut ids = ids.lock().unwrap().clone();
    ids.sort_unstable();
    seen.sort_unstable();
    assert_eq!(ids, seen, "the topics carry the responses' MessageId");
    ids.dedup();
    assert_eq!(ids.len(), 64, "unique");
    assert!(!ids.contains(&0));
    // Sequential ids differ by small steps; 64 random ones cover the whole range.
    assert!(ids.windows(2).all(|w| w[1] - w[0] > 1_000_000), "{ids:?}");
    assert!(ids[0] < 1 << 61 && ids[63] > 3 << 61, "{ids:?}");
    // ...and stay valid signed 64-bit numbers (a Java `long` MessageId).
    assert!(ids[63] <= i64::MAX as u64, "{ids:?}");
}

/// A device that subscribes with a persistent session and goes away: with
/// queue_qos0_messages, Mosquitto keeps the requests published meanwhile.
fn away_device(port: u16, id: &str, filter: &str, subscribe: bool) -> MqttClient {
    let mut o = mqtt::options(port, id);
    o.set_clean_session(false);
    let dev = MqttClient::connect_with(o);
    if subscribe {
        dev.subscribe(filter);
    }
    dev
}

fn on_mqtt5_a_request_expires_in_the_broker_with_its_call() {
    let b = Broker::mosquitto_with("allow_anonymous true\nqueue_qos0_messages true\n");
    let filter = format!("/sys/{PK}/away/rrpc/request/+");
    let dev = away_device(b.port, "away-dev", &filter, true);
    dev.client.disconnect().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let call_away = |protocol: MqttVersion| {
        let caller = connect_caller(b.port, |c| {
            c.mqtt.protocol = protocol;
            c.presence = None;
        });
        let r = caller.call(&system_params(
            "away",
            protocol.number().to_string().as_bytes(),
            1000,
        ));
        assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout));
        // Away for longer than the call's timeout (and its expiry, 1 s).
        std::thread::sleep(Duration::from_millis(1500));
        let dev = away_device(b.port, "away-dev", &filter, false);
        let got = dev.next("/sys/", Duration::from_millis(1500));
        dev.client.disconnect().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        got
    };
    // Without an expiry (MQTT 3.1.1) the broker hands the stale request over...
    let got = call_away(MqttVersion::V311);
    assert_eq!(got.map(|m| m.payload), Some(b"4".to_vec()));
    // ...with one (MQTT 5) it drops it itself.
    assert_eq!(call_away(MqttVersion::V5), None);
}

fn bounds_are_refused_at_config_time_with_the_field_named() {
    type Set = fn(&mut CallerConfig, usize);
    let cases: [(&str, Set, usize); 5] = [
        ("max_payload", |c, v| c.max_payload = v, 16 << 20),
        ("max_in_flight", |c, v| c.max_in_flight = v, 65_536),
        (
            "max_in_flight_bytes",
            |c, v| c.max_in_flight_bytes = v,
            1 << 30,
        ),
        ("max_presence", |c, v| c.max_presence = v, 1_000_000),
        ("max_subscriptions", |c, v| c.max_subscriptions = v, 65_536),
    ];
    // The documented maxima, as the C header names them.
    use rrpc::ffi::caller::*;
    let named = [
        RRPC_CALLER_MAX_PAYLOAD,
        RRPC_CALLER_MAX_IN_FLIGHT,
        RRPC_CALLER_MAX_IN_FLIGHT_BYTES,
        RRPC_CALLER_MAX_PRESENCE,
        RRPC_CALLER_MAX_SUBSCRIPTIONS,
    ];
    assert_eq!(cases.map(|c| c.2 as u32), named);
    for (name, set, max) in cases {
        for v in [0, max + 1] {
            let mut cfg = CallerConfig::new("127.0.0.1", 1);
            set(&mut cfg, v);
            if name == "max_payload" {
                cfg.max_in_flight_bytes = 1 << 30;
            }
            let e = Caller::connect(cfg).unwrap_err().to_string();
            assert!(e.contains(name), "{name}={v}: {e}");
        }
        let mut cfg = CallerConfig::new("127.0.0.1", 1);
        set(&mut cfg, max);
        if name == "max_payload" {
            cfg.max_in_flight_bytes = max;
        }
        assert!(cfg.validate_bounds().is_ok(), "{name}={max}");
    }
    let mut cfg = CallerConfig::new("127.0.0.1", 1);
    cfg.subscription_idle_ms = RRPC_CALLER_MAX_SUBSCRIPTION_IDLE_MS + 1;
    let e = Caller::connect(cfg).unwrap_err().to_string();
    assert!(e.contains("subscription_idle_ms"), "{e}");
    let mut cfg = CallerConfig::new("127.0.0.1", 1);
    cfg.max_in_flight_bytes = cfg.max_payload - 1;
    let e = Caller::connect(cfg).unwrap_err().to_string();
    assert!(e.contains("max_in_flight_bytes"), "{e}");
}

fn refused(r: &RrpcResponse, what: &str) -> bool {
    !r.success && r.error_message.as_deref().is_some_and(|m| m.contains(what))
}

fn request_bytes_in_flight_are_bounded() {
    let b = mosquitto();
    let caller = connect_caller(b.port, |c| {
        c.max_payload = 1000;
        c.max_in_flight_bytes = 2500;
    });
    let big = vec![7u8; 1000];
    let a = call_in_background(&caller, "mute1", None, None, &big, 1000);
    let b2 = call_in_background(&caller, "mute2", None, None, &big, 1000);
    wait_while(3, || caller.stats().in_flight < 2);
    let r = caller.call(&system_params("mute3", &big, 1000));
    assert!(refused(&r, "request bytes"), "{r:?}");
    // A small one still fits.
    let r = caller.call(&system_params("mute3", &big[..400], 1000));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "{r:?}");
    a.join().unwrap();
    b2.join().unwrap();
    let r = caller.call(&system_params("mute3", &big, 1000));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "room again: {r:?}");
}

fn custom_topic_subscriptions_are_bounded_and_dropped_when_unused() {
    let b = mosquitto();
    let caller = connect_caller(b.port, |c| {
        c.max_subscriptions = 2;
        c.subscription_idle_ms = 600_000;
    });
    let t1 = call_in_background(&caller, "s1", Some(custom_topic("s1")), None, b"q", 1500);
    let t2 = call_in_background(&caller, "s2", Some(custom_topic("s2")), None, b"q", 1500);
    wait_while(3, || caller.stats().in_flight < 2);
    let r = call_custom(&caller, "s3", b"q");
    assert!(refused(&r, "max_subscriptions"), "{r:?}");
    // The same topics again are fine: they share the subscriptions.
    let r = call_custom(&caller, "s1", b"q");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "{r:?}");
    t1.join().unwrap();
    t2.join().unwrap();
    // Unused now: one makes room for the new topic before its grace period.
    let r = call_custom(&caller, "s3", b"q");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "{r:?}");
    assert!(caller.stats().unsubscribed >= 1);
}

fn an_unused_subscription_is_dropped_after_its_grace_period() {
    let b = mosquitto();
    let caller = connect_caller(b.port, |c| {
        c.subscription_idle_ms = 300;
    });
    let dev = MqttClient::connect(b.port, "replayer");
    let topic = custom_topic("g");
    let r = call_custom(&caller, "g", b"q");
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout));
    // Still subscribed right after: a stray reply reaches the caller (late).
    dev.publish(
        &format!("/ext/rrpc/{}{topic}", r.message_id.unwrap()),
        b"x",
        false,
    );
    wait_while(3, || caller.stats().late_responses < 1);
    assert_eq!(caller.stats().late_responses, 1);
    wait_while(5, || caller.stats().unsubscribed < 1);
    assert_eq!(caller.stats().unsubscribed, 1);
    std::thread::sleep(Duration::from_millis(200));
    dev.publish(
        &format!("/ext/rrpc/{}{topic}", r.message_id.unwrap()),
        b"x",
        false,
    );
    std::thread::sleep(Duration::from_millis(500));
    let s = caller.stats();
    assert_eq!(s.late_responses, 1, "no longer delivered: {s:?}");
}

fn presence_is_bounded_and_forgets_the_oldest() {
    let b = mosquitto();
    let caller = connect_caller(b.port, |c| {
        c.max_presence = 10;
    });
    let dev = MqttClient::connect(b.port, "presence-flood");
    for i in 0..50 {
        dev.publish(&format!("rrpc/presence/{PK}/p{i}"), b"offline", false);
    }
    for i in 0..30 {
        dev.publish(&format!("rrpc/connection/c{i}"), b"offline", false);
    }
    wait_while(5, || caller.stats().presence_evicted < 60);
    assert_eq!(caller.stats().presence_evicted, 60);
    assert_eq!(caller.device_online(PK, "p0"), None);
    assert_eq!(caller.device_online(PK, "p49"), Some(false));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        another_device_cannot_answer_a_call_under_its_own_custom_topic needs ["mosquitto"],
        leading_zeros_and_another_content_type_do_not_answer_a_call needs ["mosquitto"],
        retained_responses_are_never_taken_and_are_counted needs ["mosquitto"],
        message_ids_are_random_and_unique needs ["mosquitto"],
        on_mqtt5_a_request_expires_in_the_broker_with_its_call needs ["mosquitto"],
        bounds_are_refused_at_config_time_with_the_field_named,
        request_bytes_in_flight_are_bounded needs ["mosquitto"],
        custom_topic_subscriptions_are_bounded_and_dropped_when_unused needs ["mosquitto"],
        an_unused_subscription_is_dropped_after_its_grace_period needs ["mosquitto"],
        presence_is_bounded_and_forgets_the_oldest needs ["mosquitto"],
    ]
}
