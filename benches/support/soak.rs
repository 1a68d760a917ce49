//! The soak run shared by `cargo bench --bench soak` (minutes) and the 30 s
//! `tests/e2e/soak.rs`: a device process (this binary re-executed with
//! `RRPC_SOAK_DEVICE_PORT` set: the library's client, echoing) behind the fault
//! proxy, Mosquitto, and a caller making calls at a fixed rate straight to the
//! broker. Every few seconds the proxy injects the next fault of a rotation:
//! drop (FIN), reset (RST), black hole (until the session notices), a cut
//! packet, then 200 ms of delay on everything. Every call must end with an
//! outcome (an RrpcCode, or a refusal while the caller's own link is down);
//! the device's RSS, open file descriptors and threads are sampled throughout.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode};
use rrpc::presence::PresenceTopics;
use rrpc::{Client, ClientConfig, Dialect, Identity};

use crate::common::proxy::{Proxy, Target};
use crate::common::{Broker, Proc};

#[path = "procs.rs"]
mod procs;

const PK: &str = "a1SoakPk";
const DN: &str = "soak1";
/// The environment variable that makes this binary the device process.
pub const DEVICE_ENV: &str = "RRPC_SOAK_DEVICE_PORT";
/// The device's keep-alive: a black hole is noticed within 1.5x of it.
const KEEP_ALIVE_S: u16 = 2;

/// What a soak run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub duration: Duration,
    pub calls_per_s: u32,
    pub fault_every: Duration,
    pub call_timeout_ms: u32,
}

impl Plan {
    /// `RRPC_SOAK_SECONDS` (else `default_s`), 50 calls/s, a fault every 5 s
    /// (`RRPC_SOAK_FAULT_MS`), calls with a 2 s timeout.
    pub fn from_env(default_s: u64) -> Plan {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Plan {
            duration: Duration::from_secs(env("RRPC_SOAK_SECONDS").unwrap_or(default_s).max(5)),
            calls_per_s: env("RRPC_SOAK_RATE").map_or(50, |r| r.clamp(1, 1000) as u32),
            fault_every: Duration::from_millis(env("RRPC_SOAK_FAULT_MS").unwrap_or(5000).max(500)),
            call_timeout_ms: 2000,
        }
    }
}

/// One sample of the device process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub at_s: f64,
    pub rss_kb: u64,
    pub fds: u64,
    pub threads: u64,
}

fn sample(pid: u32, start: Instant) -> Sample {
    let st = procs::status(Some(pid));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kb: st.rss_kb.unwrap_or(0),
        fds,
        threads: st.threads.unwrap_or(0),
    }
}

/// What a soak run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub seconds: f64,
    pub calls: u64,
    /// Outcomes by RrpcCode (or `refused:<Code>` for calls refused before sending).
    pub outcomes: BTreeMap<String, u64>,
    /// Calls that never got an outcome: must be 0.
    pub losses: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// The device's reconnections seen by the proxy.
    pub device_connections: u64,
    /// Responses the caller discarded as second answers to one call.
    pub duplicate_responses: u64,
    pub first: Sample,
    pub last: Sample,
    pub max: Sample,
    /// The device's RSS in kB at the end of each minute of load.
    pub rss_by_minute: Vec<u64>,
}

impl Report {
    /// The report's lines, as printed.
    pub fn text(&self) -> String {
        let codes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let (f, l) = (self.first, self.last);
        format!(
            "soak: {:.0} s, {} calls, losses {}, duplicate responses {}\n\
             soak: outcomes {}\n\
             soak: faults {} ({} device connections)\n\
             soak: device RSS {} kB -> {} kB (drift {:+} kB, max {} kB); fds {} -> {} ({:+}); threads {} -> {} ({:+})\n",
            self.seconds,
            self.calls,
            self.losses,
            self.duplicate_responses,
            codes.join(" "),
            faults.join(" "),
            self.device_connections,
            f.rss_kb,
            l.rss_kb,
            l.rss_kb as i64 - f.rss_kb as i64,
            self.max.rss_kb,
            f.fds,
            l.fds,
            l.fds as i64 - f.fds as i64,
            f.threads,
            l.threads,
            l.threads as i64 - f.threads as i64
        ) + &format!("soak: device RSS by minute (kB): {:?}\n", self.rss_by_minute)
    }

    pub fn print(&self) {
        print!("{}", self.text());
    }
}

/// The device process's main: connects to 127.0.0.1:`port`, echoes, prints
/// "ready", and runs until killed.
pub fn device_main(port: u16) -> ! {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.keep_alive_s = KEEP_ALIVE_S;
    cfg.mqtt.reconnect_min_ms = 50;
    cfg.mqtt.reconnect_max_ms = 1000;
    cfg.mqtt.connect_timeout_ms = 10_000;
    cfg.presence = Some(PresenceTopics::default());
    let c = Client::new(cfg).expect("device config");
    c.add_device(
        Dialect::AlibabaSystem,
        &Identity {
            product_key: PK,
            device_name: DN,
            custom_topic: None,
        },
    )
    .expect("add the device");
    let r = c.replier();
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        let _ = r.reply(req.token, req.payload);
    })))
    .expect("handler");
    c.start().expect("device connects");
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// If this process is the device (see [`DEVICE_ENV`]), runs it and never returns.
pub fn maybe_device() {
    if let Some(port) = std::env::var(DEVICE_ENV).ok().and_then(|p| p.parse().ok()) {
        device_main(port);
    }
}

fn params(payload: &[u8], timeout_ms: u32) -> CallParams<'_> {
    CallParams {
        timeout_ms: Some(timeout_ms),
        ..CallParams::new(Dialect::AlibabaSystem, PK, DN, payload)
    }
}

/// Calls until a call succeeds (30 s at most): the device is up and subscribed.
fn wait_answered(caller: &Caller, device: &Proc, failure: &str) -> Result<(), String> {
    let ok_by = Instant::now() + Duration::from_secs(30);
    while caller.call(&params(b"probe", 1000)).rrpc_code != Some(RrpcCode::Success) {
        if Instant::now() > ok_by {
            return Err(format!("{failure}\n{}", device.transcript()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

const FAULTS: [&str; 5] = ["drop", "reset", "blackhole", "truncate", "delay"];

/// Runs the soak (Mosquitto must be installed); `Err` when the setup failed.
pub fn run(plan: &Plan) -> Result<Report, String> {
    let broker = Broker::mosquitto();
    let proxy = Proxy::start(broker.port);
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let device =
        Proc::spawn_with(std::process::Command::new(exe).env(DEVICE_ENV, proxy.port.to_string()));
    let ready_by = Instant::now() + Duration::from_secs(30);
    while !device.stdout().iter().any(|l| l == "ready") {
        if Instant::now() > ready_by {
            return Err(format!("the device did not start\n{}", device.transcript()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = procs::pid(&device)?;
    let mut cfg = CallerConfig::new("127.0.0.1", broker.port);
    cfg.mqtt.reconnect_min_ms = 50;
    cfg.mqtt.reconnect_max_ms = 1000;
    let caller = Caller::connect(cfg).map_err(|e| format!("caller: {e}"))?;
    wait_answered(&caller, &device, "the device never answered")?;

    let start = Instant::now();
    let first = sample(pid, start);
    let mut max = first;
    let mut rss_by_minute = Vec::new();
    let outcomes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let period = Duration::from_secs(1) / plan.calls_per_s;
    let total = (plan.duration.as_secs_f64() * f64::from(plan.calls_per_s)) as u64;
    let mut next_fault = start + plan.fault_every;
    let mut next_sample = start + Duration::from_secs(1);
    let mut fault_no = 0usize;
    let mut blackholed: Option<u64> = None;
    for n in 0..total {
        let due = start + period * n as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if Instant::now() >= next_fault {
            // Undo the last fault that lasts: the delay, a black-holed connection
            // (the device has left it; the proxy closes its side).
            proxy.set_delay(Duration::ZERO);
            if let Some(id) = blackholed.take() {
                proxy.drop_conn(Target::Conn(id));
            }
            let kind = FAULTS[fault_no % FAULTS.len()];
            fault_no += 1;
            match kind {
                "drop" => proxy.drop_conn(Target::All),
                "reset" => proxy.reset(Target::All),
                "blackhole" => {
                    blackholed = proxy.connections().last().copied();
                    proxy.blackhole(Target::All);
                }
                "truncate" => proxy.truncate(Target::All, 3),
                _ => proxy.set_delay(Duration::from_millis(200)),
            }
            *faults.entry(kind).or_default() += 1;
            next_fault += plan.fault_every;
        }
        if Instant::now() >= next_sample {
            let s = sample(pid, start);
            max.rss_kb = max.rss_kb.max(s.rss_kb);
            max.fds = max.fds.max(s.fds);
            max.threads = max.threads.max(s.threads);
            if s.at_s >= 60.0 * (rss_by_minute.len() + 1) as f64 {
                rss_by_minute.push(s.rss_kb);
            }
            next_sample += Duration::from_secs(1);
        }
        let (o, d) = (outcomes.clone(), done.clone());
        let payload = n.to_string();
        caller.call_async(
            &params(payload.as_bytes(), plan.call_timeout_ms),
            Box::new(move |r| {
                let key = match r.rrpc_code {
                    Some(c) => c.as_str().to_string(),
                    None => format!("refused:{}", r.code.unwrap_or_default()),
                };
                *o.lock().unwrap().entry(key).or_default() += 1;
                d.fetch_add(1, Ordering::SeqCst);
            }),
        );
    }
    // Every call has its timeout: wait for the last ones, plus room for a
    // loaded machine.
    proxy.set_delay(Duration::ZERO);
    if let Some(id) = blackholed.take() {
        proxy.drop_conn(Target::Conn(id));
    }
    let drain_by = Instant::now() + Duration::from_millis(u64::from(plan.call_timeout_ms)) * 5;
    while done.load(Ordering::SeqCst) < total && Instant::now() < drain_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = start.elapsed().as_secs_f64();
    // The device is back and idle: the last sample is the lowest of three (a
    // reconnect in progress holds one more socket for a moment).
    wait_answered(&caller, &device, "the device did not recover")?;
    let mut last = sample(pid, start);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        let s = sample(pid, start);
        if (s.fds, s.threads) < (last.fds, last.threads) {
            last = s;
        }
    }
    let calls = total;
    let completed = done.load(Ordering::SeqCst);
    let outcomes = outcomes.lock().unwrap().clone();
    Ok(Report {
        seconds,
        calls,
        outcomes,
        losses: calls.saturating_sub(completed),
        faults,
        device_connections: proxy.accepted(),
        duplicate_responses: caller.stats().duplicate_responses,
        first,
        last,
        max,
        rss_by_minute,
    })
}
