//! What benches/roundtrip.rs and benches/caller.rs share: the output directory, the
//! machine line of the reports, CPU pinning, the environment knobs, the statistics,
//! Mosquitto and device processes, the rumqttc connection and the tokio runtime.
//!
//! It sits in a subdirectory so that cargo does not take it for a bench target of its
//! own; each bench declares it with `mod support;` next to its `mod common;`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions};

use crate::common::{self, Proc};

/// Where the benches keep their files: target/bench.
pub fn out_dir() -> PathBuf {
    let d = common::cmake::repo_root().join("target/bench");
    std::fs::create_dir_all(d.join("work")).expect("create target/bench/work");
    d
}

fn command_line(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The report's "machine:" line; `valgrind`: with the valgrind version at the end.
pub fn machine_line(valgrind: bool) -> String {
    // SAFETY: sysconf has no preconditions.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = command_line("uname", &["-r"]).unwrap_or_else(|| "?".into());
    let mosq = command_line("mosquitto", &["-h"]).unwrap_or_else(|| "mosquitto ?".into());
    let mut line = format!("machine: nproc={nproc}, CPU {cpu}, Linux {kernel}, {mosq}");
    if valgrind {
        let vg = command_line("valgrind", &["--version"]).unwrap_or_else(|| "valgrind ?".into());
        line.push_str(&format!(", {vg}"));
    }
    line
}

pub fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity(0) pins the
    // calling thread, and every thread and child started later inherits it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            panic!(
                "sched_setaffinity(CPU 0): {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// A number from the environment, `default` when the variable is not set.
pub fn env_num(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

/// A Mosquitto child process: stopped by its PID (SIGTERM, then SIGKILL) and its
/// config file removed when dropped.
pub struct Mosquitto {
    pub proc: Proc,
    conf: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.proc.terminate();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// A fresh Mosquitto on a free loopback port, optionally under `taskset -c 0`; its
/// config file is target/bench/work/mosquitto-<tag>-<port>.conf.
pub fn start_mosquitto(tag: &str, pinned: bool) -> Result<(Mosquitto, u16), String> {
    start_mosquitto_with(tag, pinned, "")
}

/// Stops a device with SIGTERM (clean exit, so it prints its counters and callgrind
/// writes its file) and returns the request count of its exit line ("<prefix>N
/// requests ...", the last such line, for the first of `prefixes` that fits).
/// `who` names the device in the error of an unclean exit; `reported` looks through
/// its stderr lines for errors it printed.
pub fn stop_device(
    p: &mut Proc,
    who: &str,
    prefixes: &[&str],
    reported: impl FnOnce(&[String]) -> Result<(), String>,
) -> Result<u64, String> {
    match p.terminate() {
        Some(s) if s.success() => {}
        other => {
            return Err(format!(
                "{who} did not exit cleanly on SIGTERM ({other:?})\n{}",
                p.transcript()
            ))
        }
    }
    let err = p.stderr();
    reported(&err)?;
    err.iter()
        .rev()
        .find_map(|l| {
            let rest = prefixes.iter().find_map(|pre| l.strip_prefix(pre))?;
            let (n, tail) = rest.split_once(' ')?;
            if tail.starts_with("requests") {
                n.parse().ok()
            } else {
                None
            }
        })
        .ok_or_else(|| format!("no request count in\n{}", p.transcript()))
}

/// A rumqttc connection as the benches use it: TCP_NODELAY (rumqttc leaves Nagle on),
/// 2 MiB packets, 60 s keep-alive; `cap` is the capacity of its request channel.
pub fn fast_connection(client_id: String, port: u16, cap: usize) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1".to_string(), port);
    o.set_max_packet_size(2 << 20, 2 << 20);
    o.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(o, cap);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Like [`start_mosquitto`], with `extra` appended to the config file (whole lines,
/// each ending in '\n'), e.g. "set_tcp_nodelay true\n" for the Paho gateway bench.
pub fn start_mosquitto_with(
    tag: &str,
    pinned: bool,
    extra: &str,
) -> Result<(Mosquitto, u16), String> {
    let port = common::free_port();
    let conf = out_dir()
        .join("work")
        .join(format!("mosquitto-{tag}-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 2097152\npersistence false\n{extra}"
        ),
    )
    .map_err(|e| format!("write {}: {e}", conf.display()))?;
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "mosquitto"]);
        c
    } else {
        Command::new("mosquitto")
    };
    cmd.arg("-c").arg(&conf);
    let m = Mosquitto {
        proc: Proc::spawn_with(&mut cmd),
        conf,
    };
    if !common::wait_listening(port, Duration::from_secs(10)) {
        return Err(format!(
            "mosquitto did not listen on {port}\n{}",
            m.proc.transcript()
        ));
    }
    Ok((m, port))
}

#[allow(dead_code)]
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The [`StrideCaller`] stride for `n` devices: near the golden ratio of N, so that
/// consecutive calls land far apart, and coprime with N, so that every device is called.
#[allow(dead_code)]
pub fn golden_stride(n: usize) -> usize {
    let mut s = ((n as f64 * 0.618).round() as usize).max(1);
    while gcd(s, n) != 1 {
        s += 1;
    }
    s
}

/// The benches' cloud-side RRPC caller for many devices (Alibaba system topics, QoS 0):
/// the scheme of benches/roundtrip.rs's caller, spread over several device names.
/// rumqttc on the current-thread [`runtime`], one task driving the event loop itself (no
/// channel hop for replies), subscribed to `/sys/{pk}/+/rrpc/response/+`. Call k (counted
/// from connect, warm-up included) goes to device `(k * stride) % devices.len()`, so
/// with a stride coprime to the count every run of `devices.len()` consecutive calls
/// reaches every device once, in an order with no locality. Each request carries its
/// message id in its first 8 bytes and a fixed pseudo-random pattern after it; every
/// reply's device name, id and payload are checked.
#[allow(dead_code)]
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
    base: Vec<u8>,
    /// Appended to the message id in request topics (`;ct=65`: a ContentType).
    level_suffix: String,
}

#[allow(dead_code)]
impl StrideCaller {
    /// Requests carry `suffix` after the message id, e.g. `;ct=65` for a ContentType
    /// (replies come back on the same level).
    pub fn with_level_suffix(mut self, suffix: &str) -> StrideCaller {
        self.level_suffix = suffix.to_string();
        self
    }

    /// Connects with TCP_NODELAY ([`fast_connection`]), subscribes and waits for the
    /// SUBACK (10 s). Message ids count up from `first_id` (decimal in the topic).
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
        let (client, mut eventloop) = fast_connection(client_id, port, 256);
        client
            .try_subscribe(
                format!("/sys/{pk}/+/rrpc/response/+"),
                rumqttc::QoS::AtMostOnce,
            )
            .map_err(|e| format!("queue subscribe: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => return Err("caller: no SUBACK within 10 s".into()),
                Ok(Err(e)) => return Err(format!("caller connection: {e}")),
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
        let base = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Ok(StrideCaller {
            client,
            eventloop,
            sys_prefix: format!("/sys/{pk}/"),
            devices,
            stride,
            calls: 0,
            next_id: first_id,
            base,
            level_suffix: String::new(),
        })
    }

    /// The next call's message id and device index.
    fn next_target(&mut self) -> (u64, usize) {
        let id = self.next_id;
        self.next_id += 1;
        let dev = (self.calls % self.devices.len()) * (self.stride % self.devices.len())
            % self.devices.len();
        self.calls += 1;
        (id, dev)
    }

    fn send(&self, id: u64, dev: usize) -> Result<(), String> {
        let topic = format!(
            "{}{}/rrpc/request/{id}{}",
            self.sys_prefix, self.devices[dev], self.level_suffix
        );
        let mut payload = self.base.clone();
        payload[..8].copy_from_slice(&id.to_le_bytes());
        self.client
            .try_publish(topic, rumqttc::QoS::AtMostOnce, false, payload)
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
        if payload.len() != self.base.len()
            || payload[..8] != id.to_le_bytes()
            || payload[8..] != self.base[8..]
        {
            return Err(format!(
                "reply to {id} has a wrong payload ({} bytes, expected {})",
                payload.len(),
                self.base.len()
            ));
        }
        Ok(())
    }

    /// The next reply PUBLISH before `deadline`.
    async fn next_reply(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<rumqttc::Publish, String> {
        loop {
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Err(_) => return Err("timed out waiting for a reply".into()),
                Ok(Err(e)) => return Err(format!("caller connection: {e}")),
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => return Ok(p),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// One sequential call; returns its round-trip time. `strict`: any reply that is
    /// not this call's is an error (otherwise late replies are skipped).
    pub async fn call(&mut self, timeout: Duration, strict: bool) -> Result<Duration, String> {
        let (id, dev) = self.next_target();
        let deadline = tokio::time::Instant::now() + timeout;
        let t0 = std::time::Instant::now();
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

    /// `total` calls with `inflight` outstanding at all times; returns calls/s. Every
    /// reply must answer an outstanding request, once, from the right device.
    pub async fn pipelined(&mut self, total: usize, inflight: usize) -> Result<f64, String> {
        let mut outstanding: std::collections::HashMap<u64, usize> =
            std::collections::HashMap::with_capacity(inflight * 2);
        let mut sent = 0usize;
        let mut received = 0usize;
        let t0 = std::time::Instant::now();
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
    pub async fn disconnect(mut self) {
        let _ = self.client.try_disconnect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
            if matches!(ev, rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    }
}
