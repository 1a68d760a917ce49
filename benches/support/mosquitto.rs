//! The processes of a run: a fresh Mosquitto per contender, devices and gateways
//! pinned to CPU 0 and stopped by their PID, and the rumqttc connections and tokio
//! runtime of the bench's own MQTT clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};

use super::out_dir;
use crate::common::{self, Proc};

/// A Mosquitto child process: stopped by its PID (SIGTERM, then SIGKILL) and its
/// config file removed when dropped.
pub struct Mosquitto {
    pub proc: Proc,
    pub port: u16,
    conf: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.proc.terminate();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// A fresh Mosquitto on a free loopback port (`max_packet_size` 2 MiB, no
/// persistence), under `taskset -c 0` when `pinned`, with `extra` config lines (each
/// ending in '\n', e.g. "set_tcp_nodelay true\n"); its config file is
/// target/bench/work/mosquitto-<tag>-<port>.conf.
pub fn start_mosquitto(tag: &str, pinned: bool, extra: &str) -> Result<Mosquitto, String> {
    let port = common::free_port();
    let conf = out_dir()
        .join("work")
        .join(format!("mosquitto-{tag}-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\n{}allow_anonymous true\nmax_packet_size 2097152\npersistence false\n{extra}",
            super::tls::listener_conf()
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
        port,
        conf,
    };
    if !common::wait_listening(port, Duration::from_secs(10)) {
        return Err(format!(
            "mosquitto did not listen on {port}\n{}",
            m.proc.transcript()
        ));
    }
    Ok(m)
}

/// A C example's command line against the broker on `port`: `--host 127.0.0.1
/// --port <port>`, then `more`, then `--quiet`.
pub fn example_args(port: u16, more: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut args = common::strings(&["--host", "127.0.0.1", "--port", &port]);
    args.extend(common::strings(more));
    args.push("--quiet".into());
    args
}

/// `examples-c/echo_device`'s command line: one device, Alibaba system topics.
pub fn echo_device_args(port: u16, pk: &str, dn: &str) -> Vec<String> {
    let more = [
        "--dialect",
        "alibaba",
        "--product-key",
        pk,
        "--device-name",
        dn,
    ];
    example_args(port, &more)
}

/// `program args` under `taskset -c 0`, waited for until a stderr line contains
/// `ready`.
pub fn start_pinned(
    program: &Path,
    args: &[String],
    ready: &str,
    timeout: Duration,
) -> Result<Proc, String> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]).arg(program).args(args);
    let p = Proc::spawn_with(&mut cmd);
    if !p.wait_stderr(ready, timeout) {
        return Err(format!(
            "{} did not get ready (\"{ready}\")\n{}",
            program.display(),
            p.transcript()
        ));
    }
    Ok(p)
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
    let err = stop_clean(p, who)?;
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

/// SIGTERM; an error unless the process exits 0. Returns its stderr lines.
pub fn stop_clean(p: &mut Proc, who: &str) -> Result<Vec<String>, String> {
    match p.terminate() {
        Some(s) if s.success() => Ok(p.stderr()),
        other => Err(format!(
            "{who} did not exit cleanly on SIGTERM ({other:?})\n{}",
            p.transcript()
        )),
    }
}

/// A rumqttc connection as the benches use it: TCP_NODELAY (rumqttc leaves Nagle on),
/// 2 MiB packets, 60 s keep-alive, TLS when [`super::tls`] is on; `cap` is the
/// capacity of its request channel.
pub fn fast_connection(client_id: String, port: u16, cap: usize) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1".to_string(), port);
    o.set_max_packet_size(2 << 20, 2 << 20);
    o.set_keep_alive(Duration::from_secs(60));
    if let Some(tls) = super::tls::client() {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    let (client, mut eventloop) = AsyncClient::new(o, cap);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// A [`fast_connection`] subscribed to `filter` (QoS 0), once the SUBACK is in (10 s).
pub async fn connect_subscribed(
    client_id: String,
    port: u16,
    cap: usize,
    filter: String,
) -> Result<(AsyncClient, EventLoop), String> {
    let (client, mut eventloop) = fast_connection(client_id, port, cap);
    client
        .try_subscribe(filter, QoS::AtMostOnce)
        .map_err(|e| format!("queue subscribe: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => return Err("no SUBACK within 10 s".into()),
            Ok(Err(e)) => return Err(format!("connection: {e}")),
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok((client, eventloop)),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends DISCONNECT and drives the event loop until it is out (2 s at most).
pub async fn disconnect(client: AsyncClient, mut eventloop: EventLoop) {
    let _ = client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// The bench's own runtime: tokio on the current thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime")
}
