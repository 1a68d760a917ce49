//! The raw MQTT 3.1.1 test client (rumqttc): it publishes and subscribes beside the
//! library under test, to inject messages (forged replies, retained or stale ones,
//! floods) and to observe what goes over the broker.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::message_id;

/// A message a [`MqttClient`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A connected rumqttc client: what it receives comes out of [`MqttClient::recv`]
/// and friends, in order.
pub struct MqttClient {
    pub client: Client,
    rx: mpsc::Receiver<Message>,
    acks: mpsc::Receiver<()>,
}

/// Options for a client `id` on 127.0.0.1:`port`: keep-alive 30 s, packets up to
/// 4 MiB, a clean session.
pub fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    o
}

impl MqttClient {
    /// Connects an anonymous client `id` and waits for the broker's CONNACK.
    pub fn connect(port: u16, id: &str) -> MqttClient {
        MqttClient::connect_with(options(port, id))
    }

    /// Connects an anonymous client `id` and subscribes `filter` (see
    /// [`MqttClient::subscribe`]): a device on raw MQTT, or a tap on the broker.
    pub fn subscribed(port: u16, id: &str, filter: &str) -> MqttClient {
        let c = MqttClient::connect(port, id);
        c.subscribe(filter);
        c
    }

    /// Connects with `o` (credentials, a persistent session, ...) and waits for the
    /// broker's CONNACK.
    pub fn connect_with(o: MqttOptions) -> MqttClient {
        let (client, mut conn) = Client::new(o, 100);
        let (tx, rx) = mpsc::channel();
        let (ack_tx, acks) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let m = Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        };
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_) | Packet::SubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let c = MqttClient { client, rx, acks };
        c.ack();
        c
    }

    fn ack(&self) {
        self.acks
            .recv_timeout(Duration::from_secs(10))
            .expect("an acknowledgement from the broker");
    }

    /// Subscribes `filter` at QoS 1 and waits for the SUBACK (granted or refused).
    pub fn subscribe(&self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        self.ack();
    }

    /// Publishes at QoS 1 (the client's queue; see [`publish_acked`] to wait for
    /// the broker).
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .unwrap();
    }

    /// The next message received within `wait`.
    pub fn recv(&self, wait: Duration) -> Option<Message> {
        self.rx.recv_timeout(wait).ok()
    }

    /// The next message on a topic that starts with `prefix`, within `wait`; the
    /// others are passed over.
    pub fn next(&self, prefix: &str, wait: Duration) -> Option<Message> {
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(m) if m.topic.starts_with(prefix) => return Some(m),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Everything received until a message on `topic` arrives (included); panics
    /// after `wait`.
    pub fn until(&self, topic: &str, wait: Duration) -> Vec<Message> {
        let end = Instant::now() + wait;
        let mut got = Vec::new();
        while Instant::now() < end {
            if let Some(m) = self.recv(Duration::from_millis(100)) {
                let done = m.topic == topic;
                got.push(m);
                if done {
                    return got;
                }
            }
        }
        panic!("nothing on {topic} within {wait:?}; got {got:?}");
    }
}

/// Publishes one QoS 1 message (retained or not, up to 1 MiB) from a client of
/// its own and waits for the broker's PUBACK.
pub fn publish_acked(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut o = rumqttc::MqttOptions::new(format!("pub-{}", message_id()), "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_vec())
        .unwrap();
    for ev in conn.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}
