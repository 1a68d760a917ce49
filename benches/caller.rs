//! Experiment: what librrpc's caller costs the cloud side of RRPC.
//!
//! Compared: the library's `rrpc::caller::Caller` (as a user makes it: presence on;
//! blocking `call()` for K=1, `call_async()` with K in flight otherwise) against the
//! baseline, a bare rumqttc request/response loop (the least any caller must do: one
//! task, a `HashMap<id, Instant>` of pending calls, no timeouts, no validation, no
//! presence), both calling the C `examples-c/echo_device --quiet` through Mosquitto
//! on loopback. Per K (calls in flight), RRPC_BENCH_REPS repetitions of each,
//! interleaved (the order alternates), each with a fresh broker and device, everything
//! pinned to CPU 0: calls/s, p50/p99 for K=1, and per call the CPU time and context
//! switches of the caller side and the CPU time of broker and device. Printed: medians
//! (min..max) and the ratios librrpc/bare of the medians (target: throughput >= 0.9).
//! Then memory per in-flight call, from probe processes that keep M calls in flight
//! to an absent device. docs/benchmarks.md has the method and the last results.
//!
//! `cargo bench --bench caller` runs it. Knobs (environment):
//!   RRPC_BENCH_REPS       repetitions per K and contender (5)
//!   RRPC_BENCH_KS         calls in flight, comma separated, 1..1000 (1,16,256); K=1 is sequential
//!   RRPC_BENCH_SEQ        calls per run for K=1 (2000)
//!   RRPC_BENCH_CALLS      calls per run for K>1 (20000)
//!   RRPC_BENCH_WARMUP     warm-up calls per run, at the run's K (1000)
//!   RRPC_BENCH_PAYLOAD    request payload in bytes (16; at least 8)
//!   RRPC_BENCH_MEM        0 skips the memory section (1)
//!   RRPC_BENCH_MEM_CALLS  calls kept in flight by the memory probe (50000)
//!   RRPC_BENCH_MEM_REPS   memory probe repetitions (3)
//!   RRPC_BENCH_CALLGRIND 0 skips the instruction counts (1)
//!   RRPC_BENCH_K1, RRPC_BENCH_K2   sequential calls of the two callgrind runs (300, 1500)
//!   RRPC_BENCH_ONLY       `librrpc` or `bare`: run one contender only (for profiling;
//!                         the report then goes to target/bench/caller-<contender>.txt)
//!
//! The same executable is also the callgrind subject, `caller --cg-run librrpc|bare
//! <port> <calls>`, and the memory probe:
//!   `caller --mem-probe librrpc <port> <calls> <batch>` (batch 0: all at once) and
//!   `caller --mem-probe bare <port> <calls> <batch>`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
use rrpc::dialect::Dialect;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use support::callgrind;
use support::machine::{machine_line, pin_to_cpu0, Show};
use support::mosquitto::{connect_subscribed, disconnect, runtime, start_mosquitto};
use support::mosquitto::{echo_device_args, start_pinned, stop_device};
use support::procs::{self, ctx_switches, process_cpu_ns, Cpu};
use support::report::{paired, Report, Table};
use support::stats::{median, spread, verdict, Latency};
use support::{env_choice, env_list, env_num, env_on, id_base, order, Pattern};
use support::{Contender, CONTENDERS};

const PK: &str = "a1CallerPK";
const DN: &str = "callerdev1";

/// Timeout of every measured librrpc call (ms); a stall this long fails the run.
const CALL_TIMEOUT_MS: u32 = 5000;

fn main() {
    support::main(
        "caller",
        &[("--mem-probe", memprobe::main), ("--cg-run", cg::main)],
        run,
    );
}

/// The librrpc caller's request: Alibaba system topics, to the one device.
fn params(payload: &[u8], timeout_ms: u32) -> CallParams<'_> {
    CallParams {
        timeout_ms: Some(timeout_ms),
        ..CallParams::new(Dialect::AlibabaSystem, PK, DN, payload)
    }
}

/// The bare loop's connection, subscribed to the responses. Its request channel holds
/// 1024 (K is at most 1000 here, so `try_publish` never finds it full).
async fn bare_connect(client_id: String, port: u16) -> Result<(AsyncClient, EventLoop), String> {
    let filter = format!("/sys/{PK}/{DN}/rrpc/response/+");
    connect_subscribed(client_id, port, 1024, filter)
        .await
        .map_err(|e| format!("bare loop: {e}"))
}

/// (VmRSS, RssAnon) of this process, kB.
fn self_rss_kb() -> (u64, u64) {
    let st = procs::status(None);
    (st.rss_kb.unwrap_or(0), st.anon_kb.unwrap_or(0))
}

#[path = "caller/memprobe.rs"]
mod memprobe;

#[path = "caller/cg.rs"]
mod cg;

/// From a start point: CPU time and context switches of this process (all its
/// threads: the caller side), and CPU time of the broker and the device.
struct Meter {
    cpu_ns: u64,
    csw: u64,
    others: Vec<u32>,
    others_ns: u64,
}

/// What a [`Meter`] saw, per call: the caller side's CPU µs and context switches, and
/// the broker's and device's CPU µs.
#[derive(Clone, Copy, Debug)]
struct PerCall {
    cpu_us: f64,
    csw: f64,
    others_us: f64,
}

impl Meter {
    fn others_ns(others: &[u32]) -> u64 {
        others
            .iter()
            .map(|&p| Cpu::of(Some(p)).map_or(0, |c| c.sched_ns))
            .sum()
    }

    fn start(others: &[u32]) -> Meter {
        Meter {
            cpu_ns: process_cpu_ns(),
            csw: ctx_switches(),
            others: others.to_vec(),
            others_ns: Meter::others_ns(others),
        }
    }

    /// Per call, for `n` calls since the start.
    fn per_call(&self, n: usize) -> PerCall {
        let n = n as f64;
        let others = Meter::others_ns(&self.others);
        PerCall {
            cpu_us: process_cpu_ns().saturating_sub(self.cpu_ns) as f64 / 1e3 / n,
            csw: ctx_switches().saturating_sub(self.csw) as f64 / n,
            others_us: others.saturating_sub(self.others_ns) as f64 / 1e3 / n,
        }
    }
}

struct Settings {
    reps: usize,
    ks: Vec<usize>,
    seq: usize,
    calls: usize,
    warmup: usize,
    payload: usize,
    mem: bool,
    mem_calls: usize,
    mem_reps: usize,
    /// Instruction counts: whether, and the calls of the two callgrind runs.
    cg: bool,
    cg_calls: [usize; 2],
    only: Option<Contender>,
}

impl Settings {
    fn from_env() -> Settings {
        let ks = env_list("RRPC_BENCH_KS", "1,16,256");
        let (k1, k2) = (
            env_num("RRPC_BENCH_K1", 300),
            env_num("RRPC_BENCH_K2", 1500),
        );
        assert!(
            k2 > k1 && k1 > 0,
            "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1 > 0"
        );
        assert!(
            ks.iter().all(|&k| (1..=1000).contains(&k)),
            "RRPC_BENCH_KS: values must be 1 .. 1000 (the bare loop's request channel holds 1024)"
        );
        Settings {
            reps: env_num("RRPC_BENCH_REPS", 5).max(1),
            ks,
            seq: env_num("RRPC_BENCH_SEQ", 2000).max(10),
            calls: env_num("RRPC_BENCH_CALLS", 20000).max(10),
            warmup: env_num("RRPC_BENCH_WARMUP", 1000),
            payload: env_num("RRPC_BENCH_PAYLOAD", 16).clamp(8, 1 << 20),
            mem: env_on("RRPC_BENCH_MEM", true),
            mem_calls: env_num("RRPC_BENCH_MEM_CALLS", 50000).clamp(100, 1 << 20),
            mem_reps: env_num("RRPC_BENCH_MEM_REPS", 3).max(1),
            cg: env_on("RRPC_BENCH_CALLGRIND", true) && callgrind::available(),
            cg_calls: [k1, k2],
            only: match env_choice("RRPC_BENCH_ONLY", &["librrpc", "bare"], "") {
                "librrpc" => Some(Contender::Subject),
                "bare" => Some(Contender::Baseline),
                _ => None,
            },
        }
    }

    /// Measured calls of a run with `k` in flight.
    fn count(&self, k: usize) -> usize {
        if k == 1 {
            self.seq
        } else {
            self.calls.max(k)
        }
    }
}

/// The subject is librrpc's `Caller`, the baseline the bare rumqttc loop.
impl Contender {
    fn name(self) -> &'static str {
        self.pick("librrpc caller", "bare loop")
    }
}

/// One run: fresh broker and device, one contender, one K.
struct Run {
    /// Only for K=1 (sequential calls).
    lat: Option<Latency>,
    calls_per_s: f64,
    cost: PerCall,
    /// Requests the caller sent in the whole run (first call, warm-up, measured).
    sent: u64,
    /// Verified answers.
    answered: u64,
}

impl Run {
    fn new(
        k: usize,
        calls_per_s: f64,
        rtts: Vec<f64>,
        cost: PerCall,
        sent: u64,
        answered: u64,
    ) -> Run {
        let lat = (k == 1).then(|| Latency::of(rtts, f64::INFINITY));
        Run {
            lat,
            calls_per_s,
            cost,
            sent,
            answered,
        }
    }
}

// ---- contender A: the library's Caller ------------------------------------------------

/// A SUCCESS with a message id and the echo of call `seq`'s payload.
fn check_response(pat: &Pattern, seq: u64, r: &RrpcResponse) -> Result<(), String> {
    if !r.success || r.rrpc_code != Some(RrpcCode::Success) || r.message_id.is_none() {
        // The JSON form says which code, or why the call was refused.
        return Err(format!("call {seq}: {}", r.to_json()));
    }
    pat.check(seq, r.payload.as_deref().unwrap_or(&[]))
}

/// `n` calls at K, numbered on from `seq`: blocking `call()`s for K=1, otherwise
/// `call_async()`s whose completions go through a channel to this thread, which
/// checks each and makes the next call. Returns calls/s and, for K=1, the round-trip
/// times (µs).
fn lib_phase(
    caller: &Caller,
    pat: &Pattern,
    seq: &mut u64,
    n: usize,
    k: usize,
) -> Result<(f64, Vec<f64>), String> {
    let mut buf = pat.base.clone();
    let t0 = Instant::now();
    if k == 1 {
        let mut rtts = Vec::with_capacity(n);
        for _ in 0..n {
            *seq += 1;
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            let t = Instant::now();
            let r = caller.call(&params(&buf, CALL_TIMEOUT_MS));
            let rtt = t.elapsed();
            check_response(pat, *seq, &r)?;
            rtts.push(rtt.as_secs_f64() * 1e6);
        }
        return Ok((n as f64 / t0.elapsed().as_secs_f64(), rtts));
    }
    let (tx, rx) = mpsc::channel::<(u64, RrpcResponse)>();
    let first = *seq + 1;
    // Completions seen per call of this phase: each must complete exactly once.
    let mut seen = vec![0u8; n];
    let mut issue = |seq: &mut u64| {
        *seq += 1;
        let s = *seq;
        buf[..8].copy_from_slice(&s.to_le_bytes());
        let tx = tx.clone();
        let done = move |r| {
            let _ = tx.send((s, r));
        };
        caller.call_async(&params(&buf, CALL_TIMEOUT_MS), Box::new(done));
    };
    let mut sent = 0usize;
    while sent < k.min(n) {
        issue(seq);
        sent += 1;
    }
    let mut received = 0usize;
    while received < n {
        // A stall this long means a lost request or reply: fail instead of hanging.
        let wait = Duration::from_millis(u64::from(CALL_TIMEOUT_MS) + 5000);
        let (s, r) = rx
            .recv_timeout(wait)
            .map_err(|e| format!("no completion ({e}) after {received} of {n}"))?;
        let idx = s.checked_sub(first).map(|i| i as usize).filter(|&i| i < n);
        let idx = idx.ok_or_else(|| format!("completion for unknown call {s}"))?;
        seen[idx] += 1;
        if seen[idx] != 1 {
            return Err(format!("call {s} completed twice"));
        }
        check_response(pat, s, &r)?;
        received += 1;
        if sent < n {
            issue(seq);
            sent += 1;
        }
    }
    Ok((n as f64 / t0.elapsed().as_secs_f64(), Vec::new()))
}

/// The first call of a run, which may race the device's subscription: up to four
/// tries of `timeout_ms` each. Returns the requests sent.
fn lib_first_call(
    caller: &Caller,
    pat: &Pattern,
    seq: &mut u64,
    timeout_ms: u32,
) -> Result<u64, String> {
    for tries in 1.. {
        *seq += 1;
        let r = caller.call(&params(&pat.payload(*seq), timeout_ms));
        match check_response(pat, *seq, &r) {
            Ok(()) => return Ok(tries),
            Err(e) if tries < 4 => eprintln!("  first call: {e}; retrying"),
            Err(e) => return Err(format!("first call: {e}")),
        }
    }
    unreachable!()
}

fn librrpc_run(s: &Settings, port: u16, k: usize, others: &[u32]) -> Result<Run, String> {
    let caller = Caller::connect(CallerConfig::new("127.0.0.1", port))
        .map_err(|e| format!("Caller::connect: {e}"))?;
    let pat = Pattern::new(s.payload);
    let mut seq = 0u64;
    let mut sent = lib_first_call(&caller, &pat, &mut seq, 2000)?;
    lib_phase(&caller, &pat, &mut seq, s.warmup, k).map_err(|e| format!("warm-up: {e}"))?;
    let n = s.count(k);
    let meter = Meter::start(others);
    let (calls_per_s, rtts) = lib_phase(&caller, &pat, &mut seq, n, k)?;
    let cost = meter.per_call(n);
    sent += (s.warmup + n) as u64;
    let st = caller.stats();
    let answered = 1 + (s.warmup + n) as u64;
    if st.success != answered
        || st.in_flight != 0
        || st.unknown_responses != 0
        || st.duplicate_responses != 0
    {
        return Err(format!(
            "caller stats disagree ({answered} answers expected): {st:?}"
        ));
    }
    Ok(Run::new(k, calls_per_s, rtts, cost, sent, answered))
}

// ---- contender B: the bare rumqttc loop -------------------------------------------------

/// The minimal caller: rumqttc on a current-thread runtime, one task driving the event
/// loop itself, requests matched with responses through a `HashMap` from message id
/// to the time the request was made (what a caller needs for a deadline).
struct Bare {
    client: AsyncClient,
    eventloop: EventLoop,
    req_prefix: String,
    resp_prefix: String,
    next_id: u64,
    pat: Pattern,
    pending: HashMap<u64, Instant>,
    /// Ids given up on (first-call retries): their late replies are skipped.
    abandoned: Vec<u64>,
}

impl Bare {
    async fn connect(port: u16, size: usize, run: u64, k: usize) -> Result<Bare, String> {
        let (client, eventloop) =
            bare_connect(format!("benchcaller{}x{run}", std::process::id()), port).await?;
        Ok(Bare {
            client,
            eventloop,
            req_prefix: format!("/sys/{PK}/{DN}/rrpc/request/"),
            resp_prefix: format!("/sys/{PK}/{DN}/rrpc/response/"),
            next_id: id_base(run),
            pat: Pattern::new(size),
            pending: HashMap::with_capacity(2 * k),
            abandoned: Vec::new(),
        })
    }

    fn send(&mut self) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let topic = format!("{}{id}", self.req_prefix);
        let payload = self.pat.payload(id);
        self.pending.insert(id, Instant::now());
        self.client
            .try_publish(topic, QoS::AtMostOnce, false, payload)
            .map_err(|e| format!("queue request: {e}"))?;
        Ok(id)
    }

    /// Waits for the next reply to a pending request, checks it, removes it from the
    /// pending table and returns its round-trip time.
    async fn next_reply(&mut self, deadline: tokio::time::Instant) -> Result<Duration, String> {
        loop {
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Err(_) => return Err("timed out waiting for a reply".into()),
                Ok(Err(e)) => return Err(format!("bare loop connection: {e}")),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    let id = p
                        .topic
                        .strip_prefix(self.resp_prefix.as_str())
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| format!("unexpected reply topic {:?}", p.topic))?;
                    let Some(t0) = self.pending.remove(&id) else {
                        if self.abandoned.contains(&id) {
                            continue;
                        }
                        return Err(format!("unexpected or duplicate reply {id}"));
                    };
                    let rtt = t0.elapsed();
                    self.pat.check(id, &p.payload)?;
                    return Ok(rtt);
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The first call of a run, as [`lib_first_call`]: up to four tries, the replies
    /// of abandoned ones skipped later. Returns the requests sent.
    async fn first_call(&mut self, timeout: Duration) -> Result<u64, String> {
        for tries in 1.. {
            let id = self.send()?;
            let deadline = tokio::time::Instant::now() + timeout;
            match self.next_reply(deadline).await {
                Ok(_) => return Ok(tries),
                Err(e) if tries < 4 => {
                    self.pending.remove(&id);
                    self.abandoned.push(id);
                    eprintln!("  first call: {e}; retrying");
                }
                Err(e) => return Err(format!("first call: {e}")),
            }
        }
        unreachable!()
    }

    /// `n` calls with `k` in flight (K=1: sequential). Returns calls/s and, for K=1,
    /// the round-trip times (µs).
    async fn phase(&mut self, n: usize, k: usize) -> Result<(f64, Vec<f64>), String> {
        let stall = Duration::from_millis(u64::from(CALL_TIMEOUT_MS));
        let t0 = Instant::now();
        let mut rtts = Vec::with_capacity(if k == 1 { n } else { 0 });
        let mut sent = 0usize;
        while sent < k.min(n) {
            self.send()?;
            sent += 1;
        }
        for received in 0..n {
            let deadline = tokio::time::Instant::now() + stall;
            let rtt = self
                .next_reply(deadline)
                .await
                .map_err(|e| format!("{e} after {received} of {n} replies"))?;
            if k == 1 {
                rtts.push(rtt.as_secs_f64() * 1e6);
            }
            if sent < n {
                self.send()?;
                sent += 1;
            }
        }
        Ok((n as f64 / t0.elapsed().as_secs_f64(), rtts))
    }
}

fn bare_run(s: &Settings, port: u16, k: usize, run_no: u64, others: &[u32]) -> Result<Run, String> {
    runtime().block_on(async {
        let mut b = Bare::connect(port, s.payload, run_no, k).await?;
        let mut sent = b.first_call(Duration::from_secs(2)).await?;
        b.phase(s.warmup, k)
            .await
            .map_err(|e| format!("warm-up: {e}"))?;
        let n = s.count(k);
        let meter = Meter::start(others);
        let (calls_per_s, rtts) = b.phase(n, k).await?;
        let cost = meter.per_call(n);
        sent += (s.warmup + n) as u64;
        if !b.pending.is_empty() {
            return Err(format!("{} requests still pending", b.pending.len()));
        }
        disconnect(b.client, b.eventloop).await;
        Ok(Run::new(
            k,
            calls_per_s,
            rtts,
            cost,
            sent,
            1 + (s.warmup + n) as u64,
        ))
    })
}

/// Fresh broker and device, one contender at one K; the device's own request count
/// must match what the caller sent and got answered.
fn run_once(s: &Settings, echo: &Path, c: Contender, k: usize, run_no: u64) -> Result<Run, String> {
    let broker = start_mosquitto(&format!("caller-{run_no}"), true, "")?;
    let args = echo_device_args(broker.port, PK, DN);
    let ready = "echo_device: connected";
    let mut device = start_pinned(echo, &args, ready, Duration::from_secs(20))?;
    let others = [procs::pid(&broker.proc)?, procs::pid(&device)?];
    let r = match c {
        Contender::Subject => librrpc_run(s, broker.port, k, &others),
        Contender::Baseline => bare_run(s, broker.port, k, run_no, &others),
    };
    let handled = stop_device(
        &mut device,
        "echo_device",
        &["echo_device: "],
        |err| match err.iter().find(|l| l.contains("reply failed")) {
            Some(l) => Err(format!("echo_device reported: {l}")),
            None => Ok(()),
        },
    );
    drop(broker);
    let (run, handled) = (r?, handled?);
    if handled < run.answered || handled > run.sent {
        return Err(format!(
            "{}: device handled {handled} requests; caller sent {} and got {} answers",
            c.name(),
            run.sent,
            run.answered
        ));
    }
    Ok(run)
}

fn run() -> i32 {
    support::require_tools("caller", &["mosquitto", "taskset", "cmake"]);
    let s = Settings::from_env();
    let mut report = Report::new(
        "caller",
        "RRPC calls through Mosquitto on loopback to the C echo_device: librrpc Caller vs a bare rumqttc request/response loop",
        &machine_line(Show { mosquitto: true, valgrind: s.cg, ..Show::default() }),
        &format!(
            "broker, device (examples-c/echo_device --quiet, Alibaba system topics) and caller pinned to CPU 0; \
             fresh Mosquitto and device per run; contender order alternates; QoS 0; payload {} B; {} repetitions; \
             warm-up {} calls at the run's K; K=1: {} sequential calls, K>1: {} calls with K in flight; \
             every response's payload checked, device request counts checked; \
             per measured call (medians): caller CPU us and ctx sw of the bench process (all its threads), \
             broker+dev CPU us of Mosquitto and echo_device",
            s.payload, s.reps, s.warmup, s.seq, s.calls
        ),
    );
    report.line(
        "librrpc caller: Caller::connect(CallerConfig::new(..)) (presence on), blocking call() for K=1, \
         call_async() + completion -> mpsc channel -> driver thread issues the next call for K>1; \
         bare loop: AsyncClient + EventLoop on a current-thread runtime, HashMap<id, Instant> of pending calls",
    );
    report.progress("building echo_device with CMake (target/cmake-test) ...");
    let echo = common::cmake::example("echo_device");
    // Pin after the build so that CMake and cargo may use every CPU.
    pin_to_cpu0();

    let mut run_no = 0u64;
    // (K, contender) -> runs; the run lines per K.
    let mut runs: BTreeMap<(usize, Contender), Vec<Run>> = BTreeMap::new();
    let mut raw: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for rep in 0..s.reps {
        for (ki, &k) in s.ks.iter().enumerate() {
            for c in order(CONTENDERS, rep + ki) {
                if s.only.is_some_and(|o| o != c) {
                    continue;
                }
                run_no += 1;
                let t = Instant::now();
                let line = match run_once(&s, &echo, c, k, run_no) {
                    Ok(r) => {
                        let lat = r.lat.map_or(String::new(), |l| {
                            format!(
                                "  p50 {:>6.1} us  p99 {:>6.1} us  max {:>8.1} us",
                                l.p50, l.p99, l.max
                            )
                        });
                        let line = format!(
                            "  rep {rep} {:<15}{:>9.0} calls/s  caller CPU {:>5.1} us/call  ctx sw {:>4.2}/call  broker+device CPU {:>5.1} us/call{lat}",
                            c.name(), r.calls_per_s, r.cost.cpu_us, r.cost.csw, r.cost.others_us
                        );
                        runs.entry((k, c)).or_default().push(r);
                        line
                    }
                    Err(e) => {
                        let first = report.fail(format_args!("K={k} rep {rep} {}", c.name()), &e);
                        format!("  rep {rep} {:<15}FAILED: {first}", c.name())
                    }
                };
                eprintln!("K={k:<3}{line} ({:.1} s)", t.elapsed().as_secs_f64());
                raw.entry(k).or_default().push(line);
            }
        }
    }

    let mut summary = Vec::new();
    let table = Table::new(&[15, 22, 19, 20, 17, 12, 18]);
    for &k in &s.ks {
        let n = s.count(k);
        report.section(if k == 1 {
            format!("K = 1: {n} sequential calls per run; median over repetitions (min..max)")
        } else {
            format!("K = {k}: {n} calls per run, {k} in flight; median over repetitions (min..max)")
        });
        report.line(table.row([
            "contender",
            "calls/s",
            "p50 us",
            "p99 us",
            "caller CPU us",
            "ctx sw",
            "broker+dev CPU us",
        ]));
        // Medians: calls/s, and p50, p99 for K=1.
        let mut med: BTreeMap<Contender, (f64, Option<(f64, f64)>)> = BTreeMap::new();
        for c in CONTENDERS {
            let Some(rs) = runs.get(&(k, c)) else {
                report.line(format!("  {:<15} (no successful run)", c.name()));
                continue;
            };
            let col =
                |f: &dyn Fn(&Run) -> Option<f64>| rs.iter().filter_map(f).collect::<Vec<f64>>();
            let tp = col(&|r| Some(r.calls_per_s));
            let p50 = col(&|r| r.lat.map(|l| l.p50));
            let p99 = col(&|r| r.lat.map(|l| l.p99));
            report.line(table.row([
                c.name().to_string(),
                spread(&tp, 0),
                spread(&p50, 1),
                spread(&p99, 1),
                format!("{:.1}", median(&col(&|r| Some(r.cost.cpu_us)))),
                format!("{:.2}", median(&col(&|r| Some(r.cost.csw)))),
                format!("{:.1}", median(&col(&|r| Some(r.cost.others_us)))),
            ]));
            let lat = (!p50.is_empty()).then(|| (median(&p50), median(&p99)));
            med.insert(c, (median(&tp), lat));
        }
        let (a, b) = (med.get(&Contender::Subject), med.get(&Contender::Baseline));
        let ratio = a.zip(b).map(|(a, b)| a.0 / b.0);
        if let (Some(a), Some(b), Some(r)) = (a, b, ratio) {
            let mut line = format!(
                "  ratio librrpc/bare: throughput {r:.3} (target >= 0.9: {})",
                verdict(r >= 0.9)
            );
            if let (Some(la), Some(lb)) = (a.1, b.1) {
                line += &format!(
                    ", p50 {:.3}, p99 {:.3} (latency: lower is better)",
                    la.0 / lb.0,
                    la.1 / lb.1
                );
            }
            report.line(line);
        }
        if let (Some(ra), Some(rb)) = (
            runs.get(&(k, Contender::Subject)),
            runs.get(&(k, Contender::Baseline)),
        ) {
            if let Some((m, lo, hi)) = paired(ra, rb, |r: &Run| r.calls_per_s) {
                report.line(format!(
                    "  paired per repetition: throughput median {m:.3} ({lo:.3}..{hi:.3})"
                ));
            }
        }
        let tp = a.map_or("?".into(), |x| format!("{:.0}", x.0));
        let r = ratio.map_or("?".into(), |r| {
            format!("{r:.3} (target >= 0.9: {})", verdict(r >= 0.9))
        });
        summary.push(format!("  K={k:<4} librrpc {tp:>8} calls/s  ratio {r}"));
        report.line("  runs (in execution order):");
        report.lines(raw.remove(&k).unwrap_or_default());
    }
    report.section("summary: throughput ratio librrpc/bare");
    report.lines(summary);

    if s.cg && s.only.is_none() {
        cg::section(&mut report, &s, &echo);
    } else if env_on("RRPC_BENCH_CALLGRIND", true) && !callgrind::available() {
        report.section(
            "instructions per call: SKIPPED (valgrind or callgrind_annotate not installed)",
        );
    }
    if s.mem {
        memprobe::section(&mut report, &s);
    }
    match s.only {
        // A one-contender (profiling) run does not replace the full report.
        Some(c) => report.finish_as(&format!("caller-{}", c.name().replace(' ', "-"))),
        None => report.finish(),
    }
}
