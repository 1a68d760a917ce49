//! The benches' cloud-side RRPC caller (Alibaba system topics, QoS 0), the same for
//! every contender of a bench, so that only the device side differs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};

use super::mosquitto::{connect_subscribed, disconnect};
use super::Pattern;

/// Whether a device's own request count matches the caller's answers: equal, or up
/// to 3 more, since [`StrideCaller::warm_up`] may retry its first call 3 times.
pub fn check_handled(who: &str, handled: u64, answered: u64) -> Result<(), String> {
    if handled < answered || handled > answered + 3 {
        return Err(format!(
            "{who}: handled {handled} requests, the caller got {answered} answers"
        ));
    }
    Ok(())
}

/// A caller for one or many devices: rumqttc on the current-thread runtime, one task
/// driving the event loop itself (no channel hop for replies), TCP_NODELAY,
/// subscribed to `/sys/{pk}/+/rrpc/response/+`. Call k (counted from connect, warm-up
/// included) goes to device `(k * stride) % devices.len()`, so with a stride coprime
/// to the count every run of `devices.len()` consecutive calls reaches every device
/// once, in an order with no locality. Message ids are unique decimals; each request
/// carries its id in its first 8 bytes and a fixed pseudo-random pattern after it
/// ([`Pattern`]); every reply's device name, id and payload are checked.
pub struct StrideCaller {
    client: AsyncClient,
    eventloop: EventLoop,
    /// "/sys/{pk}/"
    sys_prefix: String,
    devices: Vec<String>,
    stride: usize,
    /// Calls made so far (the next one's position in the stride order).
    calls: usize,
    next_id: u64,
    pattern: Pattern,
    /// Appended to the message id in request topics (`;ct=65`: a ContentType).
    level_suffix: String,
}

impl StrideCaller {
    /// Connects and subscribes (10 s). Message ids count up from `first_id`.
    pub async fn connect(
        port: u16,
        client_id: String,
        pk: &str,
        devices: Vec<String>,
        stride: usize,
        size: usize,
        first_id: u64,
    ) -> Result<StrideCaller, String> {
        assert!(
            !devices.is_empty() && size >= 8,
            "devices and 8+ byte payloads"
        );
        let (client, eventloop) =
            connect_subscribed(client_id, port, 256, format!("/sys/{pk}/+/rrpc/response/+"))
                .await
                .map_err(|e| format!("caller: {e}"))?;
        Ok(StrideCaller {
            client,
            eventloop,
            sys_prefix: format!("/sys/{pk}/"),
            devices,
            stride,
            calls: 0,
            next_id: first_id,
            pattern: Pattern::new(size),
            level_suffix: String::new(),
        })
    }

    /// Requests carry `suffix` after the message id, e.g. `;ct=65` for a ContentType
    /// (replies come back on the same level).
    pub fn with_level_suffix(mut self, suffix: &str) -> StrideCaller {
        self.level_suffix = suffix.to_string();
        self
    }

    /// The next call's message id and device index.
    fn next_target(&mut self) -> (u64, usize) {
        let n = self.devices.len();
        let id = self.next_id;
        self.next_id += 1;
        let dev = (self.calls % n) * (self.stride % n) % n;
        self.calls += 1;
        (id, dev)
    }

    fn send(&self, id: u64, dev: usize) -> Result<(), String> {
        let topic = format!(
            "{}{}/rrpc/request/{id}{}",
            self.sys_prefix, self.devices[dev], self.level_suffix
        );
        self.client
            .try_publish(topic, QoS::AtMostOnce, false, self.pattern.payload(id))
            .map_err(|e| format!("queue request: {e}"))
    }

    /// Device name and message id of a reply topic `/sys/{pk}/{dn}/rrpc/response/{id}`.
    fn parse_reply<'a>(&self, topic: &'a str) -> Option<(&'a str, u64)> {
        let (dn, rest) = topic
            .strip_prefix(self.sys_prefix.as_str())?
            .split_once('/')?;
        let level = rest.strip_prefix("rrpc/response/")?;
        let id = level
            .strip_suffix(self.level_suffix.as_str())?
            .parse()
            .ok()?;
        Some((dn, id))
    }

    /// Checks a reply (already matched to call `id` for device `dev`) against the request.
    fn verify(&self, id: u64, dev: usize, dn: &str, payload: &[u8]) -> Result<(), String> {
        if dn != self.devices[dev] {
            return Err(format!(
                "reply to {id} came from device {dn:?}, the request went to {:?}",
                self.devices[dev]
            ));
        }
        self.pattern.check(id, payload)
    }

    /// The next reply PUBLISH before `deadline`.
    async fn next_reply(&mut self, deadline: tokio::time::Instant) -> Result<Publish, String> {
        loop {
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Err(_) => return Err("timed out waiting for a reply".into()),
                Ok(Err(e)) => return Err(format!("caller connection: {e}")),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return Ok(p),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// One sequential call; returns its round-trip time. `strict`: any reply that is
    /// not this call's is an error (otherwise late replies are skipped).
    pub async fn call(&mut self, timeout: Duration, strict: bool) -> Result<Duration, String> {
        let (id, dev) = self.next_target();
        let deadline = tokio::time::Instant::now() + timeout;
        let t0 = Instant::now();
        self.send(id, dev)?;
        loop {
            let p = self
                .next_reply(deadline)
                .await
                .map_err(|e| format!("call {id} to {}: {e}", self.devices[dev]))?;
            let (dn, rid) = self
                .parse_reply(&p.topic)
                .ok_or_else(|| format!("unexpected reply topic {:?}", p.topic))?;
            if rid == id {
                let rtt = t0.elapsed();
                self.verify(id, dev, dn, &p.payload)?;
                return Ok(rtt);
            }
            if strict {
                return Err(format!("waiting for {id}, got a reply to {rid}"));
            }
        }
    }

    /// `n` warm-up calls, not measured; returns how many were answered. The first may
    /// race the device's subscription: up to 3 retries; late replies are skipped.
    pub async fn warm_up(&mut self, n: usize) -> Result<u64, String> {
        let mut answered = 0;
        for i in 0..n.max(1) {
            let mut tries = 0;
            loop {
                match self.call(Duration::from_secs(5), false).await {
                    Ok(_) => break,
                    Err(e) if i == 0 && tries < 3 => {
                        tries += 1;
                        eprintln!("  first call: {e}; retrying");
                    }
                    Err(e) => return Err(format!("warm-up: {e}")),
                }
            }
            answered += 1;
        }
        Ok(answered)
    }

    /// `n` sequential calls (5 s each, strict); their round-trip times in µs.
    pub async fn sequential(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let mut rtts = Vec::with_capacity(n);
        for _ in 0..n {
            rtts.push(self.call(Duration::from_secs(5), true).await?.as_secs_f64() * 1e6);
        }
        Ok(rtts)
    }

    /// `total` calls with `inflight` outstanding at all times; returns calls/s. Every
    /// reply must answer an outstanding request, once, from the right device.
    pub async fn pipelined(&mut self, total: usize, inflight: usize) -> Result<f64, String> {
        let mut outstanding: HashMap<u64, usize> = HashMap::with_capacity(inflight * 2);
        let mut sent = 0usize;
        let mut received = 0usize;
        let t0 = Instant::now();
        while sent < inflight.min(total) {
            let (id, dev) = self.next_target();
            self.send(id, dev)?;
            outstanding.insert(id, dev);
            sent += 1;
        }
        while received < total {
            // A stall of 10 s means a lost request or reply: fail instead of hanging.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let p = self
                .next_reply(deadline)
                .await
                .map_err(|e| format!("pipelined: {e} after {received} of {total} replies"))?;
            let (dn, rid) = self
                .parse_reply(&p.topic)
                .ok_or_else(|| format!("pipelined: unexpected reply topic {:?}", p.topic))?;
            let dev = outstanding
                .remove(&rid)
                .ok_or_else(|| format!("pipelined: unexpected or duplicate reply {rid}"))?;
            self.verify(rid, dev, dn, &p.payload)?;
            received += 1;
            if sent < total {
                let (id, dev) = self.next_target();
                self.send(id, dev)?;
                outstanding.insert(id, dev);
                sent += 1;
            }
        }
        Ok(total as f64 / t0.elapsed().as_secs_f64())
    }

    /// Sends DISCONNECT and drives the event loop until it is out (2 s at most).
    pub async fn disconnect(self) {
        disconnect(self.client, self.eventloop).await;
    }
}
