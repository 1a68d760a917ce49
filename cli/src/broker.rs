//! `rrpc broker`: an embedded MQTT 3.1.1 broker (rumqttd), also used in-process by
//! `rrpc demo`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::rumqttd_config::rumqttd_config;
use crate::{signals, EXIT_SYSTEM};

pub const AFTER_HELP: &str = "\
The broker is rumqttd 0.20, embedded: MQTT 3.1.1 on plain TCP, no authentication, no
persistence. It keeps retained messages and last wills, which is all presence needs.

Limitation: rumqttd refuses every subscription filter that starts with '$' and drops the
client that asks, so the Tencent dialect ($rrpc/...) does NOT work through it: use Mosquitto
(apt-get install mosquitto) for Tencent. Mosquitto works for every dialect.

Examples:
  rrpc broker                          # 127.0.0.1:1883
  rrpc broker --bind 127.0.0.1:18830
  rrpc broker --bind 0.0.0.0:1883      # reachable from the network, without authentication";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct BrokerArgs {
    /// Address to listen on (port 0 picks a free port). Loopback by default.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1883")]
    pub bind: SocketAddr,
}

/// A running in-process broker. It runs until the process ends.
pub struct Embedded {
    pub addr: SocketAddr,
    ended: Arc<AtomicBool>,
}

impl Embedded {
    /// Whether the broker's thread has ended (it only does on an error).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Where a client on this machine reaches a listener bound to `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Starts rumqttd on `bind` and returns once it accepts connections (at most 10 s).
pub fn start(bind: SocketAddr) -> Result<Embedded, String> {
    // Bind once ourselves: a clear error for an address in use, and the real port
    // for port 0. rumqttd binds it again right after (SO_REUSEADDR, nothing in
    // TIME_WAIT since nobody connected).
    let addr = TcpListener::bind(bind)
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let config = rumqttd_config(addr);
    std::thread::Builder::new()
        .name("rrpc-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("rrpc broker: rumqttd stopped: {e}");
            }
            flag.store(true, Ordering::SeqCst);
        })
        .map_err(|e| format!("cannot start the broker thread: {e}"))?;
    let target = reachable(addr);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(Embedded { addr, ended });
        }
        if ended.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("rumqttd did not start listening on {addr}"))
}

pub fn run(a: BrokerArgs) -> ExitCode {
    if let Err(e) = signals::install() {
        eprintln!("rrpc broker: cannot install signal handlers: {e}");
        return ExitCode::from(EXIT_SYSTEM);
    }
    let broker = match start(a.bind) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rrpc broker: {e}");
            return ExitCode::from(EXIT_SYSTEM);
        }
    };
    eprintln!("rrpc broker listening on {}", broker.addr);
    if !broker.addr.ip().is_loopback() {
        eprintln!(
            "rrpc broker: warning: {} is reachable from other machines and has no authentication",
            broker.addr
        );
    }
    match signals::wait(|| broker.ended()) {
        Some(sig) => {
            eprintln!("rrpc broker: {}: stopping", signals::name(sig));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("rrpc broker: the broker stopped unexpectedly");
            ExitCode::from(EXIT_SYSTEM)
        }
    }
}
