//! Network faults between the device and the broker, injected by the loopback
//! proxy of `common::proxy`: a black-holed link, dropped, reset and truncated
//! connections, refused reconnects, a broker killed and restarted under load, and
//! a broker whose ACL refuses the device's subscription. The device is the
//! library's Rust client, the calling side its caller, the broker Mosquitto.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
use rrpc::{Client, ClientConfig, ConnectionEvent, Dialect};

use crate::common;
use crate::common::device;
use crate::common::proxy::{Proxy, Target};
use crate::common::Broker;

const PK: &str = "a1FaultPk";
/// Deadlines for things that take milliseconds on an idle machine: generous for
/// a loaded 2-core one.
const READY: Duration = Duration::from_secs(20);

/// A device on the Rust client: counts how often each request (by message id)
/// reached its handler, and echoes the payload, after `gate` when one is set.
struct Device {
    client: Client,
    events: Arc<Mutex<Vec<(Instant, ConnectionEvent)>>>,
    executions: Arc<Mutex<HashMap<String, u32>>>,
}

type Gate = Arc<Mutex<Option<mpsc::Receiver<()>>>>;

impl Device {
    fn start(
        port: u16,
        dn: &str,
        tweak: impl FnOnce(&mut ClientConfig),
        gate: Option<Gate>,
    ) -> Device {
        let mut cfg = ClientConfig::new("127.0.0.1", port);
        cfg.mqtt.reconnect_min_ms = 50;
        cfg.mqtt.reconnect_max_ms = 500;
        cfg.mqtt.connect_timeout_ms = 10_000;
        tweak(&mut cfg);
        let client = Client::new(cfg).expect("client config");
        client
            .add_device(Dialect::AlibabaSystem, &device::identity(PK, dn))
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        client
            .set_connection_listener(Some(Box::new(move |e: &ConnectionEvent| {
                ev.lock().unwrap().push((Instant::now(), e.clone()));
            })))
            .unwrap();
        let executions = Arc::new(Mutex::new(HashMap::new()));
        let ex = executions.clone();
        let r = client.replier();
        client
            .set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
                *ex.lock()
                    .unwrap()
                    .entry(req.message_id().to_string())
                    .or_insert(0) += 1;
                let (r, token, payload) = (r.clone(), req.token, req.payload.to_vec());
                match &gate {
                    // Reply from another thread once the test opens the gate.
                    Some(g) => {
                        let g = g.clone();
                        std::thread::spawn(move || {
                            if let Some(rx) = g.lock().unwrap().take() {
                                let _ = rx.recv_timeout(READY);
                            }
                            let _ = r.reply(token, &payload);
                        });
                    }
                    None => {
                        let _ = r.reply(token, &payload);
                    }
                }
            })))
            .unwrap();
        client.start().expect("device connects");
        Device {
            client,
            events,
            executions,
        }
    }

    fn connects(&self) -> u64 {
        self.client.stats().connects
    }

    /// Waits for the `n`th CONNACK; true when it came.
    fn wait_connects(&self, n: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.connects() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// When the first `Disconnected` event after `since` came, and its reason.
    fn lost_after(&self, since: Instant) -> Option<(Instant, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find_map(|(t, e)| match e {
                ConnectionEvent::Disconnected { reason, .. } if *t >= since => {
                    Some((*t, reason.clone()))
                }
                _ => None,
            })
    }

    fn executions_total(&self) -> u32 {
        self.executions.lock().unwrap().values().sum()
    }
}

fn params<'a>(dn: &'a str, payload: &'a [u8], timeout_ms: u32) -> CallParams<'a> {
    device::system_call(PK, dn, payload, timeout_ms)
}

fn caller(port: u16) -> Caller {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.presence = None;
    cfg.mqtt.reconnect_min_ms = 50;
    cfg.mqtt.reconnect_max_ms = 500;
    Caller::connect(cfg).expect("caller connects")
}

/// Calls until one call succeeds (the device may still be subscribing after a
/// reconnect), for up to `total`; the successful response.
fn call_until_success(
    c: &Caller,
    dn: &str,
    payload: &[u8],
    total: Duration,
) -> Option<RrpcResponse> {
    let end = Instant::now() + total;
    while Instant::now() < end {
        let r = c.call(&params(dn, payload, 1000));
        if r.rrpc_code == Some(RrpcCode::Success) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits until the proxy forwards nothing for `quiet` on connection `id`, then
/// until it forwards something from the broker again: a PINGRESP on an idle
/// link, so the keep-alive cycle starts over right now.
fn wait_for_ping_cycle(proxy: &Proxy, id: u64, quiet: Duration, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut last = proxy.forwarded_to_client(id);
    let mut still_since = Instant::now();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        let now = proxy.forwarded_to_client(id);
        if now != last {
            if still_since.elapsed() >= quiet {
                return true;
            }
            last = now;
            still_since = Instant::now();
        }
    }
    false
}

/// A link that stops forwarding in both directions without closing is noticed
/// within 1.5x the keep-alive (the session times the PINGRESP itself; rumqttc
/// alone notices only when the next ping is due, 2x), then the device
/// reconnects and answers calls made after the reconnection.
fn blackholed_link_is_detected_within_one_and_a_half_keep_alives_and_reconnected() {
    let broker = Broker::mosquitto();
    let proxy = Proxy::start(broker.port);
    let keep_alive = Duration::from_secs(4);
    let dev = Device::start(
        proxy.port,
        "bh1",
        |c| c.mqtt.keep_alive_s = keep_alive.as_secs() as u16,
        None,
    );
    let c = caller(broker.port);
    assert!(call_until_success(&c, "bh1", b"before", READY).is_some());
    let first = proxy.connections()[0];
    // Start the black hole right after a PINGRESP went through: the worst case,
    // a whole keep-alive before the next PINGREQ.
    assert!(
        wait_for_ping_cycle(&proxy, first, keep_alive / 2, keep_alive * 4),
        "no keep-alive traffic seen"
    );
    let t0 = Instant::now();
    proxy.blackhole(Target::Conn(first));
    let limit = keep_alive * 3 / 2;
    let end = t0 + keep_alive * 4;
    let (lost_at, reason) = loop {
        if let Some(l) = dev.lost_after(t0) {
            break l;
        }
        assert!(Instant::now() < end, "the dead link was never noticed");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = lost_at - t0;
    eprintln!("black hole noticed after {took:?} ({reason})");
    assert!(
        took <= limit,
        "a black-holed link took {took:?} to notice, more than 1.5x the keep-alive ({limit:?}): {reason}"
    );
    assert!(
        dev.wait_connects(2, READY),
        "no reconnect after the black hole"
    );
    assert!(proxy.accepted() >= 2);
    let r = call_until_success(&c, "bh1", b"after", READY).expect("answered after reconnecting");
    assert_eq!(r.payload.as_deref(), Some(&b"after"[..]));
}

/// A fault the proxy injects.
type Fault = fn(&Proxy);

/// After each kind of fault (FIN, RST, a packet cut in the middle, and new
/// connections refused for a while) the device reconnects by itself and
/// answers the requests published after it did.
fn requests_after_each_kind_of_reconnection_are_answered() {
    let broker = Broker::mosquitto();
    let proxy = Proxy::start(broker.port);
    let dev = Device::start(proxy.port, "rc1", |c| c.mqtt.keep_alive_s = 5, None);
    let c = caller(broker.port);
    assert!(call_until_success(&c, "rc1", b"first", READY).is_some());
    let faults: [(&str, Fault); 4] = [
        ("drop", |p| p.drop_conn(Target::All)),
        ("reset", |p| p.reset(Target::All)),
        // The next packet from the broker to the device is cut in the middle
        // (the call below provokes one: its request).
        ("truncate", |p| p.truncate(Target::All, 3)),
        ("refuse", |p| {
            p.refuse_for(Duration::from_secs(2));
            p.reset(Target::All);
        }),
    ];
    for (name, fault) in faults {
        let before = dev.connects();
        let last = proxy.last_id();
        fault(&proxy);
        if name == "truncate" {
            // A request is a packet from the broker to the device: cut in half.
            let _ = c.call(&params("rc1", b"cut in half", 1000));
        }
        assert!(
            dev.wait_connects(before + 1, READY),
            "{name}: no reconnect; events {:?}",
            dev.events.lock().unwrap()
        );
        assert!(
            proxy.wait_new_connection(last, READY).is_some(),
            "{name}: no new connection through the proxy"
        );
        let payload = format!("after {name}");
        let r = call_until_success(&c, "rc1", payload.as_bytes(), READY)
            .unwrap_or_else(|| panic!("{name}: calls after the reconnection are not answered"));
        assert_eq!(r.payload.as_deref(), Some(payload.as_bytes()));
    }
    assert!(proxy.refused() > 0, "the refusal window saw no attempt");
}

/// A request (QoS 1, persistent session) reaches the device's handler; the
/// device's PUBACK and reply are held by the link, which is then reset. The
/// broker delivers the request again on the resumed session: the handler must
/// not run twice, and at most one reply may ever reach the broker.
fn a_request_in_flight_during_a_reset_is_answered_at_most_once() {
    let broker = Broker::mosquitto();
    let proxy = Proxy::start(broker.port);
    let (open_gate, gate_rx) = mpsc::channel();
    let gate: Gate = Arc::new(Mutex::new(Some(gate_rx)));
    let client_id = format!("faults-inflight-{}", std::process::id());
    let dev = Device::start(
        proxy.port,
        "if1",
        |c| {
            c.mqtt.client_id = Some(client_id.clone());
            c.mqtt.clean_session = false;
            c.subscribe_qos = 1;
            c.mqtt.keep_alive_s = 5;
        },
        Some(gate),
    );
    // The calling side: QoS 1 requests and a count of every reply seen.
    let mut o = rumqttc::MqttOptions::new(
        format!("faults-observer-{}", std::process::id()),
        "127.0.0.1",
        broker.port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    let (obs, mut conn) = rumqttc::Client::new(o, 100);
    let replies = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let (suback_tx, suback_rx) = mpsc::channel();
    let rp = replies.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if let Ok(r) = Dialect::AlibabaSystem.parse_response(&p.topic) {
                        *rp.lock()
                            .unwrap()
                            .entry(r.message_id.to_string())
                            .or_insert(0) += 1;
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = suback_tx.send(());
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    obs.subscribe(
        Dialect::AlibabaSystem.response_wildcard(None),
        rumqttc::QoS::AtMostOnce,
    )
    .unwrap();
    suback_rx.recv_timeout(READY).expect("observer SUBACK");
    assert!(proxy.wait_connections(1, READY));

    // The device's direction stops (PUBACK and reply held), the broker's flows.
    proxy.hold_upstream(Target::All);
    let id = common::message_id();
    let topic = format!("/sys/{PK}/if1/rrpc/request/{id}");
    obs.publish(&topic, rumqttc::QoS::AtLeastOnce, false, b"once".to_vec())
        .unwrap();
    let end = Instant::now() + READY;
    while dev.executions_total() == 0 {
        assert!(
            Instant::now() < end,
            "the request never reached the handler"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = dev.connects();
    let last = proxy.last_id();
    proxy.reset(Target::All);
    assert!(
        dev.wait_connects(before + 1, READY),
        "no reconnect after the reset"
    );
    assert!(proxy.wait_new_connection(last, READY).is_some());
    // Now the handler's reply goes out (on the new connection, or not at all).
    open_gate.send(()).unwrap();
    // Long enough for a redelivered request and any second reply to show.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    let executions = dev
        .executions
        .lock()
        .unwrap()
        .get(&id)
        .copied()
        .unwrap_or(0);
    let seen = replies.lock().unwrap().get(&id).copied().unwrap_or(0);
    let stats = dev.client.stats();
    eprintln!("executions {executions}, replies seen {seen}, device stats {stats:?}");
    assert_eq!(
        executions, 1,
        "the handler ran {executions} times for one request"
    );
    assert!(
        seen <= 1,
        "{seen} replies reached the broker for one request"
    );
    // The device still serves: a new request is answered exactly once.
    let id2 = common::message_id();
    obs.publish(
        format!("/sys/{PK}/if1/rrpc/request/{id2}"),
        rumqttc::QoS::AtLeastOnce,
        false,
        b"again".to_vec(),
    )
    .unwrap();
    let end = Instant::now() + READY;
    while replies.lock().unwrap().get(&id2).copied().unwrap_or(0) == 0 {
        assert!(
            Instant::now() < end,
            "a request after the reset got no reply"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The broker is killed (SIGKILL) and started again while the caller makes 20
/// calls a second: every call ends exactly once, SUCCESS or with an RrpcCode or a
/// refusal; no request runs twice on the device; calls succeed again afterwards.
fn broker_restart_under_a_steady_call_load_loses_and_doubles_nothing() {
    let mut broker = Broker::mosquitto();
    let dev = Device::start(broker.port, "rs1", |c| c.mqtt.keep_alive_s = 5, None);
    let c = caller(broker.port);
    assert!(call_until_success(&c, "rs1", b"warm", READY).is_some());

    let outcomes: Arc<Mutex<HashMap<u64, Vec<String>>>> = Arc::default();
    let issued = AtomicU64::new(0);
    let period = Duration::from_millis(50);
    let start = Instant::now();
    let mut killed = false;
    let mut restarted = false;
    let mut restarted_at = None;
    let mut after_restart_success = 0usize;
    let done_count = Arc::new(AtomicUsize::new(0));
    // 3 s of load, the broker down for 2 s, then load until calls succeed again
    // for a while (at most 30 s).
    loop {
        let elapsed = start.elapsed();
        if !killed && elapsed >= Duration::from_secs(3) {
            broker.kill();
            killed = true;
        }
        if killed && !restarted && elapsed >= Duration::from_secs(5) {
            broker.restart();
            restarted = true;
            restarted_at = Some(issued.load(Ordering::SeqCst));
        }
        if let Some(from) = restarted_at {
            after_restart_success = outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|(n, o)| **n >= from && o.iter().any(|s| s == "SUCCESS"))
                .count();
            if after_restart_success >= 40 {
                break;
            }
        }
        assert!(
            elapsed < Duration::from_secs(30),
            "calls did not succeed again after the restart ({after_restart_success} of them did)"
        );
        let n = issued.fetch_add(1, Ordering::SeqCst);
        let payload = n.to_string();
        let (out, dc) = (outcomes.clone(), done_count.clone());
        c.call_async(
            &params("rs1", payload.as_bytes(), 1000),
            Box::new(move |r: RrpcResponse| {
                let what = match r.rrpc_code {
                    Some(code) => code.as_str().to_string(),
                    None => format!("refused:{}", r.code.unwrap_or_default()),
                };
                out.lock().unwrap().entry(n).or_default().push(what);
                dc.fetch_add(1, Ordering::SeqCst);
            }),
        );
        std::thread::sleep(period);
    }
    let total = issued.load(Ordering::SeqCst) as usize;
    // Every call has a timeout of 1 s: all are over within a few seconds.
    let end = Instant::now() + READY;
    while done_count.load(Ordering::SeqCst) < total && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let outcomes = outcomes.lock().unwrap();
    let mut per_code: HashMap<&str, usize> = HashMap::new();
    for o in outcomes.values() {
        for s in o {
            *per_code.entry(s.as_str()).or_default() += 1;
        }
    }
    eprintln!("{total} calls: {per_code:?}; caller {:?}", c.stats());
    let lost: Vec<u64> = (0..total as u64)
        .filter(|n| !outcomes.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "calls with no outcome: {lost:?}");
    let doubled: Vec<_> = outcomes.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(doubled.is_empty(), "calls ended twice: {doubled:?}");
    let executed_twice: Vec<_> = dev
        .executions
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id.clone(), *n))
        .collect();
    assert!(
        executed_twice.is_empty(),
        "requests run twice: {executed_twice:?}"
    );
    assert_eq!(c.stats().duplicate_responses, 0);
    assert!(
        per_code.keys().any(|k| *k != "SUCCESS"),
        "no call failed while the broker was down: the fault did not happen"
    );
    assert!(dev.connects() >= 2, "the device never reconnected");
}

/// Mosquitto's dynamic-security plugin, which refuses a SUBSCRIBE its ACLs deny
/// in the SUBACK (0x80, MQTT 5: 0x87). Mosquitto's `acl_file` cannot: it grants
/// every subscription and then delivers nothing, which no client can detect.
const DYNSEC: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// A broker whose ACL denies the device's request filter, over MQTT 3.1.1 and
/// 5: the SUBACK's refusal shows as a counter and a warning that names the
/// refused filter, not as silence.
fn a_refused_subscription_is_counted_and_logged() {
    if !std::path::Path::new(DYNSEC).exists() {
        common::skip(format!(
            "Mosquitto's dynamic-security plugin ({DYNSEC}) is not installed"
        ));
    }
    let dir = common::scratch_dir("acl");
    let conf = dir.join(format!("dynsec-{}.json", std::process::id()));
    // No roles: every subscription is refused, publishing is allowed.
    std::fs::write(
        &conf,
        r#"{"defaultACLAccess":{"publishClientSend":true,"publishClientReceive":true,"subscribe":false,"unsubscribe":true},"clients":[],"groups":[],"roles":[]}"#,
    )
    .unwrap();
    let broker = Broker::mosquitto_with(&format!(
        "allow_anonymous true\nplugin {DYNSEC}\nplugin_opt_config_file {}\n",
        conf.display()
    ));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    rrpc::log::set_sink(
        Some(Box::new(move |_level, msg: &str| {
            l.lock().unwrap().push(msg.to_string())
        })),
        Some(rrpc::log::Level::Warn),
    )
    .unwrap();
    for (protocol, dn) in [
        (rrpc::session::MqttVersion::V311, "acl3"),
        (rrpc::session::MqttVersion::V5, "acl5"),
    ] {
        let dev = Device::start(broker.port, dn, |c| c.mqtt.protocol = protocol, None);
        let end = Instant::now() + READY;
        while dev.client.stats().subscribe_failures == 0 {
            assert!(
                Instant::now() < end,
                "{protocol:?}: the refusal was not counted: {:?}",
                dev.client.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let filter = format!("/sys/{PK}/{dn}/rrpc/request/+");
        let lines = log.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("refused") && l.contains("ACL") && l.contains(&filter)),
            "{protocol:?}: no warning naming the refused filter {filter}: {lines:?}"
        );
    }
    let _ = rrpc::log::set_sink(None, Some(rrpc::log::Level::Warn));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        blackholed_link_is_detected_within_one_and_a_half_keep_alives_and_reconnected needs ["mosquitto"],
        requests_after_each_kind_of_reconnection_are_answered needs ["mosquitto"],
        a_request_in_flight_during_a_reset_is_answered_at_most_once needs ["mosquitto"],
        broker_restart_under_a_steady_call_load_loses_and_doubles_nothing needs ["mosquitto"],
        a_refused_subscription_is_counted_and_logged needs ["mosquitto"],
    ]
}
