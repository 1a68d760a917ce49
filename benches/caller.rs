//! The cloud side: RRPC calls through Mosquitto on loopback to the C `echo_device`, made
//! by the library's `rrpc::caller::Caller` and by a bare rumqttc request/response loop
//! (the least any caller must do). See docs/benchmarks.md for what is measured and why.
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
//!   RRPC_BENCH_ONLY       `librrpc` or `bare`: run one contender only (for profiling;
//!                         the report then goes to target/bench/caller-<contender>.txt)
//!
//! The same executable is also the memory probe:
//!   `caller --mem-probe librrpc <port> <calls> <batch>` (batch 0: all at once) and
//!   `caller --mem-probe bare <port> <calls> <batch>`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::Proc;
use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
use rrpc::dialect::Dialect;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use support::{
    env_num, fast_connection, machine_line, median, min_max, out_dir, percentile, pin_to_cpu0,
    runtime, start_mosquitto, verdict,
};

const PK: &str = "a1CallerPK";
const DN: &str = "callerdev1";

/// Timeout of every measured librrpc call (ms); a stall this long fails the run.
const CALL_TIMEOUT_MS: u32 = 5000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--mem-probe") {
        std::process::exit(memprobe::main(&args[2..]));
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: stay quick.
        eprintln!("caller: benchmark only; run it with `cargo bench --bench caller`");
        return;
    }
    bench::run();
}

/// The request payload: the call's sequence number in the first 8 bytes, then a fixed
/// pseudo-random pattern. The echo must bring back exactly this.
struct Pattern {
    base: Vec<u8>,
}

impl Pattern {
    fn new(size: usize) -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
        let base = (0..size.max(8))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Pattern { base }
    }

    fn payload(&self, seq: u64) -> Vec<u8> {
        let mut v = self.base.clone();
        v[..8].copy_from_slice(&seq.to_le_bytes());
        v
    }

    fn check(&self, seq: u64, payload: &[u8]) -> Result<(), String> {
        if payload.len() != self.base.len()
            || payload[..8] != seq.to_le_bytes()
            || payload[8..] != self.base[8..]
        {
            return Err(format!(
                "reply to call {seq} has a wrong payload ({} bytes, expected {})",
                payload.len(),
                self.base.len()
            ));
        }
        Ok(())
    }
}

/// VmRSS and RssAnon of this process, in kB.
fn self_rss_kb() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// From a start point: CPU time and context switches of this process (all its
/// threads), and CPU time of other processes (the broker and the device).
struct Meter {
    cpu_ns: u64,
    csw: u64,
    others: Vec<u32>,
    others_ns: u64,
}

/// What a [`Meter`] saw, per call: this process's CPU µs and context switches, and
/// the other processes' CPU µs.
#[derive(Clone, Copy, Debug)]
struct PerCall {
    cpu_us: f64,
    csw: f64,
    others_us: f64,
}

impl Meter {
    fn start(others: &[u32]) -> Meter {
        Meter {
            cpu_ns: process_cpu_ns(),
            csw: process_ctx_switches(),
            others: others.to_vec(),
            others_ns: others.iter().map(|&p| pid_cpu_ns(p)).sum(),
        }
    }

    /// Per call, for `n` calls since the start.
    fn per_call(&self, n: usize) -> PerCall {
        let n = n as f64;
        let others: u64 = self.others.iter().map(|&p| pid_cpu_ns(p)).sum();
        PerCall {
            cpu_us: process_cpu_ns().saturating_sub(self.cpu_ns) as f64 / 1e3 / n,
            csw: process_ctx_switches().saturating_sub(self.csw) as f64 / n,
            others_us: others.saturating_sub(self.others_ns) as f64 / 1e3 / n,
        }
    }
}

/// CPU time of every thread of another process so far, in ns
/// (`/proc/<pid>/task/*/schedstat`, first field).
fn pid_cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of every thread of this process so far, in ns (CLOCK_PROCESS_CPUTIME_ID:
/// the scheduler's exact runtime, unlike the tick-sampled rusage times).
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Voluntary plus involuntary context switches of this process (every thread) so far.
fn process_ctx_switches() -> u64 {
    // SAFETY: getrusage only fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0;
        }
        ru
    };
    (ru.ru_nvcsw + ru.ru_nivcsw) as u64
}

/// Connects the bare loop's client and waits for the SUBACK of the response wildcard.
/// Its request channel holds 1024 (K is at most 256 here, so `try_publish` never finds
/// it full).
async fn bare_connect(client_id: String, port: u16) -> Result<(AsyncClient, EventLoop), String> {
    let (client, mut eventloop) = fast_connection(client_id, port, 1024);
    client
        .try_subscribe(format!("/sys/{PK}/{DN}/rrpc/response/+"), QoS::AtMostOnce)
        .map_err(|e| format!("queue subscribe: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => return Err("bare loop: no SUBACK within 10 s".into()),
            Ok(Err(e)) => return Err(format!("bare loop connection: {e}")),
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok((client, eventloop)),
            Ok(Ok(_)) => {}
        }
    }
}

/// Memory per in-flight call, measured in a fresh process of its own so that nothing the
/// benchmark did before (allocator state, other runs) blurs the RSS difference.
mod memprobe {
    use super::*;

    pub fn main(args: &[String]) -> i32 {
        let (Some(who), Some(port), Some(m), Some(batch)) = (
            args.first(),
            args.get(1).and_then(|p| p.parse::<u16>().ok()),
            args.get(2).and_then(|p| p.parse::<usize>().ok()),
            args.get(3).and_then(|p| p.parse::<usize>().ok()),
        ) else {
            eprintln!("usage: caller --mem-probe librrpc|bare <port> <calls> <batch>");
            return 2;
        };
        let r = match who.as_str() {
            "librrpc" => librrpc(port, m, batch),
            "bare" => bare(port, m, batch),
            _ => Err(format!("unknown probe {who:?}")),
        };
        match r {
            Ok(line) => {
                println!("memprobe {line}");
                0
            }
            Err(e) => {
                eprintln!("memprobe: {e}");
                1
            }
        }
    }

    /// The probe's RSS readings, (VmRSS, RssAnon) in kB before and after, as `key=value`.
    fn rss_fields(before: (u64, u64), after: (u64, u64)) -> String {
        format!(
            "before_kb={} after_kb={} before_anon_kb={} after_anon_kb={}",
            before.0, after.0, before.1, after.1
        )
    }

    /// What the completions saw: per call how often it completed, and the codes.
    struct Seen {
        times: Vec<AtomicU8>,
        timeouts: AtomicU64,
        other: AtomicU64,
        completions: AtomicU64,
    }

    fn params(payload: &[u8], timeout_ms: u32) -> CallParams<'_> {
        CallParams {
            dialect: Dialect::AlibabaSystem,
            product_key: PK,
            device_name: DN,
            payload,
            timeout_ms: Some(timeout_ms),
            topic: None,
            content_type: None,
        }
    }

    /// Waits (bounded) until `done()` holds.
    fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        done()
    }

    fn librrpc(port: u16, m: usize, batch: usize) -> Result<String, String> {
        let mut cfg = CallerConfig::new("127.0.0.1", port);
        cfg.max_in_flight = m + 2048;
        let caller = Caller::connect(cfg).map_err(|e| format!("connect: {e}"))?;
        let payload = Pattern::new(16).base;

        // Warm-up: every code path of a call that times out (call_async, publish, the
        // deadline task, the completion) runs once before the first reading.
        let warm = Arc::new(AtomicU64::new(0));
        for _ in 0..1000 {
            let w = warm.clone();
            caller.call_async(
                &params(&payload, 1000),
                Box::new(move |_| {
                    w.fetch_add(1, Ordering::Relaxed);
                }),
            );
        }
        if !wait_until(Duration::from_secs(10), || {
            warm.load(Ordering::Relaxed) == 1000
        }) {
            return Err("warm-up calls did not all complete".into());
        }
        // Allocated and written (so resident) before the first reading.
        let seen = Arc::new(Seen {
            times: (0..m).map(|_| AtomicU8::new(0)).collect(),
            timeouts: AtomicU64::new(0),
            other: AtomicU64::new(0),
            completions: AtomicU64::new(0),
        });
        std::thread::sleep(Duration::from_millis(200));
        let before = self_rss_kb();

        let t0 = Instant::now();
        for i in 0..m {
            let s = seen.clone();
            caller.call_async(
                &params(&payload, 8000),
                Box::new(move |r: RrpcResponse| {
                    s.times[i].fetch_add(1, Ordering::Relaxed);
                    if r.rrpc_code == Some(RrpcCode::Timeout) {
                        s.timeouts.fetch_add(1, Ordering::Relaxed);
                    } else {
                        s.other.fetch_add(1, Ordering::Relaxed);
                    }
                    s.completions.fetch_add(1, Ordering::Relaxed);
                }),
            );
            if batch > 0 && (i + 1) % batch == 0 {
                // Lets the caller's thread write the batch out before the next one.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let issue_ms = t0.elapsed().as_secs_f64() * 1e3;
        // Let the caller's thread send everything (the requests leave rumqttc's queue).
        std::thread::sleep(Duration::from_millis(700));
        let rss = rss_fields(before, self_rss_kb());
        let st = caller.stats();
        let early = seen.completions.load(Ordering::Relaxed);
        if st.in_flight != m as u64 || early != 0 {
            return Err(format!(
                "expected {m} calls in flight, stats say {} ({early} already completed, stats {st:?})",
                st.in_flight
            ));
        }

        // They all time out 8 s after they were made.
        let t1 = Instant::now();
        let all = wait_until(Duration::from_secs(20), || {
            seen.completions.load(Ordering::Relaxed) >= m as u64
        });
        let wait_s = t1.elapsed().as_secs_f64();
        // A second completion of any call would show up here.
        std::thread::sleep(Duration::from_millis(300));
        let st2 = caller.stats();
        drop(caller);
        let completions = seen.completions.load(Ordering::Relaxed);
        let once = seen
            .times
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) == 1)
            .count();
        let timeouts = seen.timeouts.load(Ordering::Relaxed);
        let other = seen.other.load(Ordering::Relaxed);
        if !all || completions != m as u64 || once != m || timeouts != m as u64 || other != 0 {
            return Err(format!(
                "completions {completions} of {m}, exactly once {once}, TIMEOUT {timeouts}, other {other}"
            ));
        }
        if st2.in_flight != 0 || st2.timeout != m as u64 + 1000 {
            return Err(format!("stats after the timeouts: {st2:?}"));
        }
        Ok(format!(
            "{rss} in_flight={} completed_once={once} timeouts={timeouts} issue_ms={issue_ms:.0} wait_s={wait_s:.1}",
            st.in_flight
        ))
    }

    /// The bare loop's bookkeeping: the requests go out (in batches, so rumqttc's queue
    /// stays small) and their ids wait in the `HashMap<u64, Instant>` the loop matches
    /// responses with. No completions exist here.
    fn bare(port: u16, m: usize, batch: usize) -> Result<String, String> {
        let batch = if batch == 0 { 1000 } else { batch.min(1000) };
        let rt = runtime();
        rt.block_on(async move {
            let (client, mut eventloop) =
                bare_connect(format!("memprobe{}", std::process::id()), port).await?;
            let prefix = format!("/sys/{PK}/{DN}/rrpc/request/");
            let pat = Pattern::new(16);
            let mut next_id: u64 = 889_455_942_124_347_392;
            // Warm-up: one batch through every path.
            let mut warm: HashMap<u64, Instant> = HashMap::new();
            send_batch(
                &client,
                &mut eventloop,
                &prefix,
                &pat,
                &mut next_id,
                &mut warm,
                batch,
            )
            .await?;
            drop(warm);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = self_rss_kb();
            let t0 = Instant::now();
            let mut pending: HashMap<u64, Instant> = HashMap::new();
            while pending.len() < m {
                let n = batch.min(m - pending.len());
                send_batch(
                    &client,
                    &mut eventloop,
                    &prefix,
                    &pat,
                    &mut next_id,
                    &mut pending,
                    n,
                )
                .await?;
            }
            let issue_ms = t0.elapsed().as_secs_f64() * 1e3;
            tokio::time::sleep(Duration::from_millis(700)).await;
            let rss = rss_fields(before, self_rss_kb());
            let _ = client.try_disconnect();
            let (len, cap) = (pending.len(), pending.capacity());
            Ok(format!(
                "{rss} in_flight={len} capacity={cap} issue_ms={issue_ms:.0}"
            ))
        })
    }

    /// Queues `n` requests and polls the event loop until all of them were written.
    async fn send_batch(
        client: &AsyncClient,
        eventloop: &mut EventLoop,
        prefix: &str,
        pat: &Pattern,
        next_id: &mut u64,
        pending: &mut HashMap<u64, Instant>,
        n: usize,
    ) -> Result<(), String> {
        for _ in 0..n {
            let id = *next_id;
            *next_id += 1;
            pending.insert(id, Instant::now());
            client
                .try_publish(
                    format!("{prefix}{id}"),
                    QoS::AtMostOnce,
                    false,
                    pat.payload(id),
                )
                .map_err(|e| format!("queue request: {e}"))?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut written = 0;
        while written < n {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => return Err(format!("only {written} of {n} requests written in 10 s")),
                Ok(Err(e)) => return Err(format!("connection: {e}")),
                Ok(Ok(Event::Outgoing(Outgoing::Publish(_)))) => written += 1,
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }
}

mod bench {
    use super::*;

    /// Settings from the environment.
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
        only: Option<Contender>,
    }

    impl Settings {
        fn from_env() -> Settings {
            let ks = std::env::var("RRPC_BENCH_KS")
                .unwrap_or_else(|_| "1,16,256".to_string())
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .unwrap_or_else(|_| panic!("RRPC_BENCH_KS: bad value {s:?}"))
                })
                .collect::<Vec<_>>();
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
                mem: env_num("RRPC_BENCH_MEM", 1) != 0,
                mem_calls: env_num("RRPC_BENCH_MEM_CALLS", 50000).clamp(100, 1 << 20),
                mem_reps: env_num("RRPC_BENCH_MEM_REPS", 3).max(1),
                only: match std::env::var("RRPC_BENCH_ONLY").as_deref() {
                    Err(_) | Ok("") => None,
                    Ok("librrpc") => Some(Contender::Librrpc),
                    Ok("bare") => Some(Contender::Bare),
                    Ok(v) => panic!("RRPC_BENCH_ONLY={v:?}: librrpc or bare"),
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

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Contender {
        Librrpc,
        Bare,
    }

    impl Contender {
        fn name(self) -> &'static str {
            match self {
                Contender::Librrpc => "librrpc caller",
                Contender::Bare => "bare loop",
            }
        }
    }

    /// One run: fresh broker and device, one contender, one K.
    #[derive(Clone, Debug)]
    struct Run {
        /// Only for K=1 (sequential calls).
        lat: Option<(f64, f64, f64)>,
        calls_per_s: f64,
        /// The bench process's CPU time per measured call (µs, every thread: the
        /// caller's own thread included) and its context switches per call.
        cost: PerCall,
        /// Requests the caller sent in the whole run (first call, warm-up, measured).
        sent: u64,
        /// Verified answers.
        answered: u64,
    }

    /// The C echo_device under `taskset -c 0`, waited for until it is connected.
    fn start_device(echo: &std::path::Path, port: u16) -> Result<Proc, String> {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"])
            .arg(echo)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args([
                "--dialect",
                "alibaba",
                "--product-key",
                PK,
                "--device-name",
                DN,
                "--quiet",
            ]);
        let device = Proc::spawn_with(&mut cmd);
        if !device.wait_stderr("echo_device: connected", Duration::from_secs(20)) {
            return Err(format!(
                "echo_device did not connect\n{}",
                device.transcript()
            ));
        }
        Ok(device)
    }

    /// Stops the device with SIGTERM and returns the request count of its exit line.
    fn stop_device(p: &mut Proc) -> Result<u64, String> {
        support::stop_device(p, "echo_device", &["echo_device: "], |err| {
            match err.iter().find(|l| l.contains("reply failed")) {
                Some(l) => Err(format!("echo_device reported: {l}")),
                None => Ok(()),
            }
        })
    }

    /// "median (min..max)" with `prec` decimals.
    fn spread(v: &[f64], prec: usize) -> String {
        let (lo, hi) = min_max(v);
        format!("{:.prec$} ({lo:.prec$}..{hi:.prec$})", median(v))
    }

    /// p50, p99, max of round-trip times in µs.
    fn latency(mut rtts: Vec<f64>) -> (f64, f64, f64) {
        rtts.sort_by(f64::total_cmp);
        (
            percentile(&rtts, 50.0),
            percentile(&rtts, 99.0),
            *rtts.last().unwrap(),
        )
    }

    /// Median calls/s of a contender at one K and, for K=1, median (p50, p99) in µs.
    type Medians = (f64, Option<(f64, f64)>);

    // ---- contender A: the library's Caller --------------------------------------------

    fn params(payload: &[u8], timeout_ms: u32) -> CallParams<'_> {
        CallParams {
            dialect: Dialect::AlibabaSystem,
            product_key: PK,
            device_name: DN,
            payload,
            timeout_ms: Some(timeout_ms),
            topic: None,
            content_type: None,
        }
    }

    /// A SUCCESS with a message id and the echo of call `seq`'s payload.
    fn check_response(pat: &Pattern, seq: u64, r: &RrpcResponse) -> Result<(), String> {
        if !r.success || r.rrpc_code != Some(RrpcCode::Success) || r.message_id.is_none() {
            return Err(format!(
                "call {seq}: {}",
                r.to_json() // says which code, or why it was refused
            ));
        }
        pat.check(seq, r.payload.as_deref().unwrap_or(&[]))
    }

    /// `n` sequential blocking calls; returns their round-trip times (µs).
    fn lib_sequential(
        caller: &Caller,
        pat: &Pattern,
        seq: &mut u64,
        n: usize,
    ) -> Result<Vec<f64>, String> {
        let mut buf = pat.base.clone();
        let mut rtts = Vec::with_capacity(n);
        for _ in 0..n {
            *seq += 1;
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            let t0 = Instant::now();
            let r = caller.call(&params(&buf, CALL_TIMEOUT_MS));
            let rtt = t0.elapsed();
            check_response(pat, *seq, &r)?;
            rtts.push(rtt.as_secs_f64() * 1e6);
        }
        Ok(rtts)
    }

    /// `n` calls with `k` in flight: each completion goes through a channel to this
    /// thread, which checks it and makes the next call. Returns calls/s.
    fn lib_pipelined(
        caller: &Caller,
        pat: &Pattern,
        seq: &mut u64,
        n: usize,
        k: usize,
    ) -> Result<f64, String> {
        let (tx, rx) = mpsc::channel::<(u64, RrpcResponse)>();
        let first = *seq + 1;
        // Completions seen per call of this phase: each must complete exactly once.
        let mut seen = vec![0u8; n];
        let mut buf = pat.base.clone();
        let mut issue = |seq: &mut u64| {
            *seq += 1;
            let s = *seq;
            buf[..8].copy_from_slice(&s.to_le_bytes());
            let tx = tx.clone();
            caller.call_async(
                &params(&buf, CALL_TIMEOUT_MS),
                Box::new(move |r| {
                    let _ = tx.send((s, r));
                }),
            );
        };
        let t0 = Instant::now();
        let mut sent = 0usize;
        while sent < k.min(n) {
            issue(seq);
            sent += 1;
        }
        let mut received = 0usize;
        while received < n {
            // A stall this long means a lost request or reply: fail instead of hanging.
            let (s, r) = rx
                .recv_timeout(Duration::from_millis(u64::from(CALL_TIMEOUT_MS) + 5000))
                .map_err(|e| format!("no completion ({e}) after {received} of {n}"))?;
            let idx = s.checked_sub(first).map(|i| i as usize).filter(|&i| i < n);
            let Some(idx) = idx else {
                return Err(format!("completion for unknown call {s}"));
            };
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
        Ok(n as f64 / t0.elapsed().as_secs_f64())
    }

    /// `n` calls at K: sequential for K=1, else pipelined. Returns (calls/s, rtts).
    fn lib_phase(
        caller: &Caller,
        pat: &Pattern,
        seq: &mut u64,
        n: usize,
        k: usize,
    ) -> Result<(f64, Vec<f64>), String> {
        if k == 1 {
            let t0 = Instant::now();
            let rtts = lib_sequential(caller, pat, seq, n)?;
            Ok((n as f64 / t0.elapsed().as_secs_f64(), rtts))
        } else {
            Ok((lib_pipelined(caller, pat, seq, n, k)?, Vec::new()))
        }
    }

    fn librrpc_run(s: &Settings, port: u16, k: usize, others: &[u32]) -> Result<Run, String> {
        let caller = Caller::connect(CallerConfig::new("127.0.0.1", port))
            .map_err(|e| format!("Caller::connect: {e}"))?;
        let pat = Pattern::new(s.payload);
        let mut seq = 0u64;
        let mut sent = 0u64;
        // The first call may race the device's subscription: a few short tries.
        let mut tries = 0;
        loop {
            seq += 1;
            sent += 1;
            let r = caller.call(&params(&pat.payload(seq), 2000));
            match check_response(&pat, seq, &r) {
                Ok(()) => break,
                Err(e) if tries < 3 => {
                    tries += 1;
                    eprintln!("  first call: {e}; retrying");
                }
                Err(e) => return Err(format!("first call: {e}")),
            }
        }
        let warm = s.warmup;
        lib_phase(&caller, &pat, &mut seq, warm, k).map_err(|e| format!("warm-up: {e}"))?;
        let n = s.count(k);
        let meter = Meter::start(others);
        let (calls_per_s, rtts) = lib_phase(&caller, &pat, &mut seq, n, k)?;
        let cost = meter.per_call(n);
        sent += (warm + n) as u64;
        let st = caller.stats();
        let answered = 1 + (warm + n) as u64;
        if st.success != answered
            || st.in_flight != 0
            || st.unknown_responses != 0
            || st.duplicate_responses != 0
        {
            return Err(format!(
                "caller stats disagree ({answered} answers expected): {st:?}"
            ));
        }
        drop(caller);
        Ok(Run {
            lat: (k == 1).then(|| latency(rtts)),
            calls_per_s,
            cost,
            sent,
            answered,
        })
    }

    // ---- contender B: the bare rumqttc loop --------------------------------------------

    /// The minimal caller: rumqttc on a current-thread runtime, one task driving the
    /// event loop itself, requests matched with responses through a `HashMap` from
    /// message id to the time the request was made (what a caller needs for a deadline).
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
                // Unique decimal (Alibaba-style 64-bit) ids per process and run.
                next_id: 889_455_942_124_347_392
                    + u64::from(std::process::id()) * 1_000_000_000
                    + run * 10_000_000,
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

        /// Waits for the next reply to a pending request, checks it, removes it from
        /// the pending table and returns its id and round-trip time.
        async fn next_reply(
            &mut self,
            deadline: tokio::time::Instant,
        ) -> Result<(u64, Duration), String> {
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
                        return Ok((id, rtt));
                    }
                    Ok(Ok(_)) => {}
                }
            }
        }

        /// `n` calls at K: sequential for K=1 (returns the round-trip times), else with
        /// `k` in flight. Returns (calls/s, rtts).
        async fn phase(&mut self, n: usize, k: usize) -> Result<(f64, Vec<f64>), String> {
            let stall = Duration::from_millis(u64::from(CALL_TIMEOUT_MS));
            let t0 = Instant::now();
            let mut rtts = Vec::with_capacity(if k == 1 { n } else { 0 });
            let mut sent = 0usize;
            let mut received = 0usize;
            while sent < k.min(n) {
                self.send()?;
                sent += 1;
            }
            while received < n {
                let deadline = tokio::time::Instant::now() + stall;
                let (_, rtt) = self
                    .next_reply(deadline)
                    .await
                    .map_err(|e| format!("{e} after {received} of {n} replies"))?;
                received += 1;
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

        async fn disconnect(mut self) {
            let _ = self.client.try_disconnect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        }
    }

    fn bare_run(
        s: &Settings,
        port: u16,
        k: usize,
        run_no: u64,
        others: &[u32],
    ) -> Result<Run, String> {
        let rt = runtime();
        rt.block_on(async {
            let mut b = Bare::connect(port, s.payload, run_no, k).await?;
            let mut sent = 0u64;
            let mut tries = 0;
            loop {
                let id = b.send()?;
                sent += 1;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                match b.next_reply(deadline).await {
                    Ok(_) => break,
                    Err(e) if tries < 3 => {
                        tries += 1;
                        b.pending.remove(&id);
                        b.abandoned.push(id);
                        eprintln!("  first call: {e}; retrying");
                    }
                    Err(e) => return Err(format!("first call: {e}")),
                }
            }
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
            b.disconnect().await;
            Ok(Run {
                lat: (k == 1).then(|| latency(rtts)),
                calls_per_s,
                cost,
                sent,
                answered: 1 + (s.warmup + n) as u64,
            })
        })
    }

    /// Fresh broker and device, one contender at one K; the device's own request count
    /// must match what the caller sent and got answered.
    fn run_once(
        s: &Settings,
        echo: &std::path::Path,
        c: Contender,
        k: usize,
        run_no: u64,
    ) -> Result<Run, String> {
        let (broker, port) = start_mosquitto(&format!("caller-{run_no}"), true)?;
        let mut device = start_device(echo, port)?;
        let others: Vec<u32> = [&broker.proc, &device]
            .iter()
            .filter_map(|p| p.child.as_ref().map(|c| c.id()))
            .collect();
        let r = match c {
            Contender::Librrpc => librrpc_run(s, port, k, &others),
            Contender::Bare => bare_run(s, port, k, run_no, &others),
        };
        let handled = stop_device(&mut device);
        drop(broker);
        let run = r?;
        let handled = handled?;
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

    // ---- memory --------------------------------------------------------------------------

    /// One memory probe in a child process against a fresh Mosquitto with no device.
    /// Returns (bytes per call from VmRSS, from RssAnon, the probe's line).
    fn mem_probe(who: &str, m: usize, batch: usize) -> Result<(f64, f64, String), String> {
        let (broker, port) = start_mosquitto(&format!("caller-mem-{who}"), true)?;
        let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(me);
        cmd.args(["--mem-probe", who])
            .arg(port.to_string())
            .arg(m.to_string())
            .arg(batch.to_string());
        let mut p = Proc::spawn_with(&mut cmd);
        let st = p.wait_exit(Duration::from_secs(90));
        let out = p.stdout();
        let transcript = p.transcript();
        drop(p); // kills it by PID if it is still running
        drop(broker);
        match st {
            Some(s) if s.success() => {}
            other => {
                return Err(format!(
                    "memory probe {who} failed ({other:?})\n{transcript}"
                ))
            }
        }
        let line = out
            .iter()
            .find_map(|l| l.strip_prefix("memprobe "))
            .ok_or_else(|| format!("no result line\n{transcript}"))?
            .to_string();
        let field = |name: &str| -> Result<f64, String> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in {line:?}"))
        };
        let per = |a: &str, b: &str| -> Result<f64, String> {
            Ok((field(a)? - field(b)?) * 1024.0 / m as f64)
        };
        Ok((
            per("after_kb", "before_kb")?,
            per("after_anon_kb", "before_anon_kb")?,
            line,
        ))
    }

    pub fn run() {
        let started = Instant::now();
        for tool in ["mosquitto", "taskset", "cmake"] {
            assert!(
                common::require_tool(tool),
                "the caller benchmark needs {tool}"
            );
        }
        let s = Settings::from_env();
        let machine = machine_line(false);
        eprintln!("caller: {machine}");
        eprintln!("caller: building echo_device with CMake (target/cmake-test) ...");
        let echo = common::cmake::example("echo_device");
        // Pin after the build so that CMake and cargo may use every CPU.
        pin_to_cpu0();

        let mut report = String::new();
        writeln!(
            report,
            "RRPC calls through Mosquitto on loopback to the C echo_device: librrpc Caller vs a bare rumqttc request/response loop"
        )
        .unwrap();
        writeln!(report, "{machine}").unwrap();
        writeln!(
            report,
            "setup: broker, device (examples-c/echo_device --quiet, Alibaba system topics) and caller pinned to CPU 0; \
             fresh Mosquitto and device per run; contender order alternates; QoS 0; payload {} B; {} repetitions; \
             warm-up {} calls at the run's K; K=1: {} sequential calls, K>1: {} calls with K in flight; \
             every response's payload checked, device request counts checked; \
             per measured call (medians): caller CPU us and ctx sw of the bench process (all its threads), \
             broker+dev CPU us of Mosquitto and echo_device",
            s.payload,
            s.reps,
            s.warmup,
            s.seq,
            s.calls
        )
        .unwrap();
        writeln!(
            report,
            "librrpc caller: Caller::connect(CallerConfig::new(..)) (presence on), blocking call() for K=1, \
             call_async() + completion -> mpsc channel -> driver thread issues the next call for K>1; \
             bare loop: AsyncClient + EventLoop on a current-thread runtime, HashMap<id, Instant> of pending calls"
        )
        .unwrap();

        let contenders = [Contender::Librrpc, Contender::Bare];
        let mut run_no = 0u64;
        let mut failures: Vec<String> = Vec::new();
        // (K, contender) -> runs; raw lines per K.
        let mut runs: BTreeMap<(usize, &str), Vec<Run>> = BTreeMap::new();
        let mut raw: BTreeMap<usize, String> = BTreeMap::new();
        for rep in 0..s.reps {
            for (ki, &k) in s.ks.iter().enumerate() {
                let order = if (rep + ki) % 2 == 0 {
                    contenders
                } else {
                    [contenders[1], contenders[0]]
                };
                for c in order {
                    if s.only.is_some_and(|o| o != c) {
                        continue;
                    }
                    run_no += 1;
                    let t = Instant::now();
                    let line = match run_once(&s, &echo, c, k, run_no) {
                        Ok(r) => {
                            let lat = r.lat.map_or(String::new(), |(p50, p99, max)| {
                                format!("  p50 {p50:>6.1} us  p99 {p99:>6.1} us  max {max:>8.1} us")
                            });
                            let line = format!(
                                "  rep {rep} {:<15}{:>9.0} calls/s  caller CPU {:>5.1} us/call  ctx sw {:>4.2}/call  broker+device CPU {:>5.1} us/call{lat}",
                                c.name(),
                                r.calls_per_s,
                                r.cost.cpu_us,
                                r.cost.csw,
                                r.cost.others_us
                            );
                            runs.entry((k, c.name())).or_default().push(r);
                            line
                        }
                        Err(e) => {
                            let first = e.lines().next().unwrap_or("").to_string();
                            eprintln!("K={k} rep {rep} {}: FAILED: {e}", c.name());
                            failures.push(format!("K={k} rep {rep} {}: {first}", c.name()));
                            format!("  rep {rep} {:<15}FAILED: {first}", c.name())
                        }
                    };
                    eprintln!("K={k:<3}{line} ({:.1} s)", t.elapsed().as_secs_f64());
                    let r = raw.entry(k).or_default();
                    r.push_str(&line);
                    r.push('\n');
                }
            }
        }

        let mut summary: Vec<(usize, Option<f64>, Option<f64>)> = Vec::new();
        for &k in &s.ks {
            let n = s.count(k);
            if k == 1 {
                writeln!(
                    report,
                    "\n== K = 1: {n} sequential calls per run; median over repetitions (min..max) =="
                )
                .unwrap();
            } else {
                writeln!(
                    report,
                    "\n== K = {k}: {n} calls per run, {k} in flight; median over repetitions (min..max) =="
                )
                .unwrap();
            }
            writeln!(
                report,
                "  {:<15} {:>22} {:>19} {:>20} {:>17} {:>12} {:>18}",
                "contender",
                "calls/s",
                "p50 us",
                "p99 us",
                "caller CPU us",
                "ctx sw",
                "broker+dev CPU us"
            )
            .unwrap();
            let mut med: BTreeMap<&str, Medians> = BTreeMap::new();
            for c in contenders {
                let Some(rs) = runs.get(&(k, c.name())) else {
                    writeln!(report, "  {:<15} (no successful run)", c.name()).unwrap();
                    continue;
                };
                let tp: Vec<f64> = rs.iter().map(|r| r.calls_per_s).collect();
                let p50: Vec<f64> = rs.iter().filter_map(|r| r.lat.map(|l| l.0)).collect();
                let p99: Vec<f64> = rs.iter().filter_map(|r| r.lat.map(|l| l.1)).collect();
                let (l50, l99) = if p50.is_empty() {
                    ("-".to_string(), "-".to_string())
                } else {
                    (spread(&p50, 1), spread(&p99, 1))
                };
                let med_of = |f: &dyn Fn(&PerCall) -> f64| {
                    median(&rs.iter().map(|r| f(&r.cost)).collect::<Vec<_>>())
                };
                writeln!(
                    report,
                    "  {:<15} {:>22} {:>19} {:>20} {:>17.1} {:>12.2} {:>18.1}",
                    c.name(),
                    spread(&tp, 0),
                    l50,
                    l99,
                    med_of(&|p| p.cpu_us),
                    med_of(&|p| p.csw),
                    med_of(&|p| p.others_us)
                )
                .unwrap();
                let lat = (!p50.is_empty()).then(|| (median(&p50), median(&p99)));
                med.insert(c.name(), (median(&tp), lat));
            }
            let (a, b) = (
                med.get(Contender::Librrpc.name()),
                med.get(Contender::Bare.name()),
            );
            let ratio = a.zip(b).map(|(a, b)| a.0 / b.0);
            if let (Some(a), Some(b)) = (a, b) {
                let mut line = format!(
                    "  ratio librrpc/bare: throughput {:.3} (target >= 0.9: {})",
                    a.0 / b.0,
                    verdict(a.0 / b.0 >= 0.9)
                );
                if let (Some(la), Some(lb)) = (a.1, b.1) {
                    write!(
                        line,
                        ", p50 {:.3}, p99 {:.3} (latency: lower is better)",
                        la.0 / lb.0,
                        la.1 / lb.1
                    )
                    .unwrap();
                }
                writeln!(report, "{line}").unwrap();
            }
            summary.push((k, a.map(|x| x.0), ratio));
            writeln!(report, "  runs (in execution order):").unwrap();
            report.push_str(raw.get(&k).map_or("", String::as_str));
        }
        writeln!(report, "\n== summary: throughput ratio librrpc/bare ==").unwrap();
        for (k, tp, ratio) in &summary {
            writeln!(
                report,
                "  K={k:<4} librrpc {:>8} calls/s  ratio {}",
                tp.map_or("?".into(), |v| format!("{v:.0}")),
                ratio.map_or("?".into(), |r| format!(
                    "{r:.3} (target >= 0.9: {})",
                    verdict(r >= 0.9)
                ))
            )
            .unwrap();
        }

        // ---- memory per in-flight call -----------------------------------------------
        if s.mem {
            let m = s.mem_calls;
            writeln!(
                report,
                "\n== memory per in-flight call: {m} calls to an absent device (Timeout 8000 ms) kept in flight; \
                 (VmRSS after - VmRSS before) / {m}; each probe a fresh process and a fresh Mosquitto; \
                 median over {} probes (min..max) ==",
                s.mem_reps
            )
            .unwrap();
            let probes: [(&str, usize, &str); 3] = [
                (
                    "librrpc",
                    0,
                    "librrpc caller, all calls at once (call_async in a tight loop)",
                ),
                (
                    "librrpc",
                    500,
                    "librrpc caller, paced (2 ms pause every 500 calls)",
                ),
                (
                    "bare",
                    500,
                    "bare loop, its HashMap<u64, Instant> (500 requests written per batch)",
                ),
            ];
            for (who, batch, label) in probes {
                let mut vm = Vec::new();
                let mut anon = Vec::new();
                let mut lines = Vec::new();
                for i in 0..s.mem_reps {
                    let t = Instant::now();
                    match mem_probe(who, m, batch) {
                        Ok((a, b, line)) => {
                            eprintln!(
                                "memory {label} #{i}: {a:.0} B/call (RssAnon {b:.0}) [{line}] ({:.1} s)",
                                t.elapsed().as_secs_f64()
                            );
                            vm.push(a);
                            anon.push(b);
                            lines.push(line);
                        }
                        Err(e) => {
                            eprintln!("memory {label} #{i}: FAILED: {e}");
                            let first = e.lines().next().unwrap_or("").to_string();
                            failures.push(format!("memory {label} #{i}: {first}"));
                            lines.push(format!("FAILED: {first}"));
                        }
                    }
                }
                if vm.is_empty() {
                    writeln!(report, "  {label}: no successful probe").unwrap();
                } else {
                    writeln!(
                        report,
                        "  {label}:\n    {} bytes per in-flight call (from RssAnon: {})",
                        spread(&vm, 0),
                        spread(&anon, 0)
                    )
                    .unwrap();
                }
                for l in lines {
                    writeln!(report, "    probe: {l}").unwrap();
                }
            }
            writeln!(
                report,
                "  (librrpc probes: before the first reading 1000 calls timed out once (warm-up); after the second, \
                 stats().in_flight must equal {m}, and every completion must then run exactly once with TIMEOUT)"
            )
            .unwrap();
        }

        if !failures.is_empty() {
            writeln!(report, "\n== failures ==").unwrap();
            for f in &failures {
                writeln!(report, "  {f}").unwrap();
            }
        }
        writeln!(
            report,
            "\ntotal runtime: {:.0} s",
            started.elapsed().as_secs_f64()
        )
        .unwrap();

        print!("{report}");
        // A one-contender (profiling) run does not replace the full report.
        let path = out_dir().join(match s.only {
            None => "caller.txt".to_string(),
            Some(c) => format!("caller-{}.txt", c.name().replace(' ', "-")),
        });
        match std::fs::write(&path, &report) {
            Ok(()) => eprintln!("caller: report written to {}", path.display()),
            Err(e) => eprintln!("caller: cannot write {}: {e}", path.display()),
        }
        if !failures.is_empty() {
            std::process::exit(1);
        }
    }
}
