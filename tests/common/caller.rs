//! The raw test caller: a rumqttc client that publishes requests on a dialect's
//! request topic and waits for the response with the same message id (the
//! library's own `rrpc::Caller` is what the tests check, not a helper).

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::dialect::{self, Dialect};

use super::{message_id, Proc};

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Vec<u8>>>>>;

/// A minimal cloud-side caller for tests: publishes requests on a dialect's
/// request topic and waits for the response with the same message id.
pub struct Caller {
    client: rumqttc::Client,
    waiters: Waiters,
    subacks: Mutex<mpsc::Receiver<()>>,
}

impl Caller {
    /// Connects and subscribes the Alibaba system response wildcard (Tencent and
    /// custom topics are added by [`Caller::watch_tencent`] and
    /// [`Caller::watch_custom`]: rumqttd refuses `$` filters).
    pub fn connect(port: u16) -> Caller {
        let mut o =
            rumqttc::MqttOptions::new(format!("test-caller-{}", message_id()), "127.0.0.1", port);
        o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(o, 1000);
        // rumqttc leaves Nagle on: without this the caller's own requests stall ~40 ms.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let (suback_tx, subacks) = mpsc::channel();
        let w = waiters.clone();
        std::thread::spawn(move || {
            // Custom-topic requests come back to the caller too (same topic): the
            // first delivery of an id is our own request, the second the reply.
            let mut seen_custom: HashMap<String, u32> = HashMap::new();
            for ev in connection.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let id = match response_id(&p.topic) {
                            Some((id, true)) => {
                                let n = seen_custom.entry(id.clone()).or_insert(0);
                                *n += 1;
                                if *n == 1 {
                                    continue;
                                }
                                id
                            }
                            Some((id, false)) => id,
                            None => continue,
                        };
                        if let Some(tx) = w.lock().unwrap().remove(&id) {
                            let _ = tx.send(p.payload.to_vec());
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
        let c = Caller {
            client,
            waiters,
            subacks: Mutex::new(subacks),
        };
        c.subscribe(&Dialect::AlibabaSystem.response_wildcard(None));
        c
    }

    fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, rumqttc::QoS::AtMostOnce)
            .expect("queue subscribe");
        self.subacks
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .expect("SUBACK from the broker");
    }

    /// Subscribes Tencent responses (`$rrpc/txd/+/+/+`). Mosquitto only: rumqttd
    /// 0.20 refuses filters that start with `$` and drops the connection.
    pub fn watch_tencent(&self) {
        self.subscribe(&Dialect::Tencent.response_wildcard(None));
    }

    /// Subscribes the custom topic's RRPC wildcard (`/ext/rrpc/+{topic}`).
    pub fn watch_custom(&self, custom_topic: &str) {
        self.subscribe(&Dialect::AlibabaCustom.response_wildcard(Some(custom_topic)));
    }

    /// Publishes a request (QoS 0) for `id` on `topic` and waits for its response.
    pub fn call_topic(
        &self,
        topic: &str,
        id: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        self.waiters.lock().unwrap().insert(id.to_string(), tx);
        self.client
            .publish(topic, rumqttc::QoS::AtMostOnce, false, payload.to_vec())
            .expect("queue publish");
        let r = rx.recv_timeout(timeout).ok();
        self.waiters.lock().unwrap().remove(id);
        r
    }

    /// Calls a device of `dialect` with a fresh message id.
    pub fn call(
        &self,
        dialect: Dialect,
        pk: &str,
        dn: &str,
        custom_topic: Option<&str>,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let ident = dialect::Identity {
            product_key: pk,
            device_name: dn,
            custom_topic,
        };
        self.call_as(dialect, &ident, None, payload, timeout)
    }

    /// Subscribes the response wildcard of `dialect` (the `$` topics of Tencent,
    /// Azure, Huawei and AWS through Mosquitto only).
    pub fn watch(&self, dialect: Dialect) {
        self.subscribe(&dialect.response_wildcard(None));
    }

    /// Calls a device of `dialect` with a fresh message id and the method
    /// `name` (for dialects whose request topic carries one).
    pub fn call_named(
        &self,
        dialect: Dialect,
        pk: &str,
        dn: &str,
        name: Option<&str>,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let ident = dialect::Identity {
            product_key: pk,
            device_name: dn,
            custom_topic: None,
        };
        self.call_as(dialect, &ident, name, payload, timeout)
    }

    /// A call of `payload` to the device `ident` of `dialect` with a fresh
    /// message id and the method `name`; AWS requests say they are JSON.
    fn call_as(
        &self,
        dialect: Dialect,
        ident: &dialect::Identity<'_>,
        name: Option<&str>,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let id = message_id();
        let vars = dialect::Vars {
            id: &id,
            name,
            format: Some("json"),
            status: None,
        };
        let topic = dialect.request_topic_with(ident, &vars);
        self.call_topic(&topic, &id, payload, timeout)
    }

    /// Calls the Alibaba system-topic device `pk/dn` with a fresh message id.
    pub fn call_system(
        &self,
        pk: &str,
        dn: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        self.call(Dialect::AlibabaSystem, pk, dn, None, payload, timeout)
    }

    /// Calls the Alibaba (system topic) device `pk/dn` once per payload, in order, and
    /// checks that each answer is `reply_prefix` followed by the payload; each call waits
    /// up to 20 s. With `ready_line`, the device says on stderr when it is subscribed:
    /// that is waited for (up to `ready`) first. Without, the first call is repeated
    /// until answered, for up to `ready`, each attempt waiting 5 s: an attempt the device
    /// received is one of the requests it counts, so it must not time out merely
    /// because the device is slow (valgrind, a sanitizer, a loaded machine).
    pub fn expect_echoes(
        &self,
        pk: &str,
        dn: &str,
        payloads: &[Vec<u8>],
        reply_prefix: &[u8],
        (ready_line, ready): (Option<&str>, Duration),
        dev: &Proc,
    ) {
        if let Some(line) = ready_line {
            assert!(dev.wait_stderr(line, ready), "{}", dev.transcript());
        }
        for (i, p) in payloads.iter().enumerate() {
            let d = Dialect::AlibabaSystem;
            let r = if i == 0 && ready_line.is_none() {
                let end = Instant::now() + ready;
                let mut r = None;
                while r.is_none() && Instant::now() < end {
                    r = self.call(d, pk, dn, None, p, Duration::from_secs(5));
                }
                r
            } else {
                self.call(d, pk, dn, None, p, Duration::from_secs(20))
            };
            let mut want = reply_prefix.to_vec();
            want.extend_from_slice(p);
            assert!(r == Some(want), "call {i}: {r:?}\n{}", dev.transcript());
        }
    }

    /// Publishes raw bytes on any topic (for malformed-topic tests).
    pub fn publish_raw(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, rumqttc::QoS::AtMostOnce, false, payload.to_vec())
            .expect("queue publish");
    }
}

/// The message id of a response topic of any dialect, and whether the
/// dialect replies on the request's own topic (custom topics, Alibaba service
/// calls), so that the caller's own request comes back first.
fn response_id(topic: &str) -> Option<(String, bool)> {
    for d in Dialect::all() {
        if let Ok(p) = d.parse_response(topic) {
            return Some((p.message_id.to_string(), d.replies_on_request_topic()));
        }
    }
    None
}

/// Repeats `call` (each try waits up to 300 ms for its answer) until the device
/// answers (it may still be subscribing), for up to `total`; returns the first
/// answer.
pub fn until_answered(
    total: Duration,
    mut call: impl FnMut(Duration) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if let Some(r) = call(Duration::from_millis(300)) {
            return Some(r);
        }
    }
    None
}
