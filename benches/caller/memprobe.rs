//! The caller bench's memory probe: memory per in-flight call, measured in a fresh
//! process of its own (the bench binary re-executed as `caller --mem-probe ...`), so
//! that nothing the benchmark did before (allocator state, other runs) blurs the RSS
//! difference. It prints one `memprobe key=value ...` line; [`section`] runs the
//! probes and writes the report's memory section.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rrpc::caller::{Caller, CallerConfig, RrpcCode, RrpcResponse};
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, QoS};

use super::{bare_connect, params, self_rss_kb, Settings, DN, PK};
use crate::support::mosquitto::{runtime, start_mosquitto};
use crate::support::procs;
use crate::support::report::Report;
use crate::support::stats::spread;
use crate::support::Pattern;

pub fn main(args: &[String]) -> i32 {
    let num = |i: usize| args.get(i).and_then(|p| p.parse::<usize>().ok());
    let (Some(who), Some(port), Some(m), Some(batch)) = (args.first(), num(1), num(2), num(3))
    else {
        eprintln!("usage: caller --mem-probe librrpc|bare <port> <calls> <batch>");
        return 2;
    };
    let r = match who.as_str() {
        "librrpc" => librrpc(port as u16, m, batch),
        "bare" => bare(port as u16, m, batch),
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

/// Waits (bounded) until `done()` holds.
fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end && !done() {
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
        let done = move |_| {
            w.fetch_add(1, Ordering::Relaxed);
        };
        caller.call_async(&params(&payload, 1000), Box::new(done));
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
        let done = move |r: RrpcResponse| {
            s.times[i].fetch_add(1, Ordering::Relaxed);
            let code = if r.rrpc_code == Some(RrpcCode::Timeout) {
                &s.timeouts
            } else {
                &s.other
            };
            code.fetch_add(1, Ordering::Relaxed);
            s.completions.fetch_add(1, Ordering::Relaxed);
        };
        caller.call_async(&params(&payload, 8000), Box::new(done));
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
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (completions, timeouts, other) = (
        load(&seen.completions),
        load(&seen.timeouts),
        load(&seen.other),
    );
    let once = seen
        .times
        .iter()
        .filter(|t| t.load(Ordering::Relaxed) == 1)
        .count();
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
    runtime().block_on(async move {
        let id = format!("memprobe{}", std::process::id());
        let (client, mut eventloop) = bare_connect(id, port).await?;
        let mut out = Outbox {
            client: &client,
            eventloop: &mut eventloop,
            prefix: format!("/sys/{PK}/{DN}/rrpc/request/"),
            pat: Pattern::new(16),
            next_id: 889_455_942_124_347_392,
        };
        // Warm-up: one batch through every path.
        out.send(&mut HashMap::new(), batch).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = self_rss_kb();
        let t0 = Instant::now();
        let mut pending: HashMap<u64, Instant> = HashMap::new();
        while pending.len() < m {
            let n = batch.min(m - pending.len());
            out.send(&mut pending, n).await?;
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

struct Outbox<'a> {
    client: &'a AsyncClient,
    eventloop: &'a mut EventLoop,
    prefix: String,
    pat: Pattern,
    next_id: u64,
}

impl Outbox<'_> {
    /// Queues `n` requests and polls the event loop until all of them were written.
    async fn send(&mut self, pending: &mut HashMap<u64, Instant>, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            pending.insert(id, Instant::now());
            let topic = format!("{}{id}", self.prefix);
            self.client
                .try_publish(topic, QoS::AtMostOnce, false, self.pat.payload(id))
                .map_err(|e| format!("queue request: {e}"))?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut written = 0;
        while written < n {
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Err(_) => return Err(format!("only {written} of {n} requests written in 10 s")),
                Ok(Err(e)) => return Err(format!("connection: {e}")),
                Ok(Ok(Event::Outgoing(Outgoing::Publish(_)))) => written += 1,
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }
}

/// One memory probe in a child process against a fresh Mosquitto with no device.
/// Returns (bytes per call from VmRSS, from RssAnon, the probe's line).
fn mem_probe(who: &str, m: usize, batch: usize) -> Result<(f64, f64, String), String> {
    let broker = start_mosquitto(&format!("caller-mem-{who}"), true, "")?;
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(me);
    cmd.args(["--mem-probe", who])
        .arg(broker.port.to_string())
        .arg(m.to_string())
        .arg(batch.to_string());
    let (line, kv) = procs::run_probe(&mut cmd, "memprobe ", Duration::from_secs(90))?;
    let field = |name: &str| {
        kv.get(name)
            .copied()
            .ok_or_else(|| format!("no {name} in {line:?}"))
    };
    let per = |a: &str, b: &str| Ok::<f64, String>((field(a)? - field(b)?) * 1024.0 / m as f64);
    let line = line.trim_start_matches("memprobe ").to_string();
    Ok((
        per("after_kb", "before_kb")?,
        per("after_anon_kb", "before_anon_kb")?,
        line,
    ))
}

/// The memory section: each probe a fresh process and a fresh Mosquitto.
pub fn section(report: &mut Report, s: &Settings) {
    let m = s.mem_calls;
    report.section(format!(
        "memory per in-flight call: {m} calls to an absent device (Timeout 8000 ms) kept in flight; \
         (VmRSS after - VmRSS before) / {m}; each probe a fresh process and a fresh Mosquitto; \
         median over {} probes (min..max)",
        s.mem_reps
    ));
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
        let (mut vm, mut anon, mut lines) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..s.mem_reps {
            let t = Instant::now();
            match mem_probe(who, m, batch) {
                Ok((a, b, line)) => {
                    let secs = t.elapsed().as_secs_f64();
                    report.progress(format!(
                        "memory {label} #{i}: {a:.0} B/call (RssAnon {b:.0}) [{line}] ({secs:.1} s)"
                    ));
                    vm.push(a);
                    anon.push(b);
                    lines.push(line);
                }
                Err(e) => {
                    let first = report.fail(format_args!("memory {label} #{i}"), &e);
                    lines.push(format!("FAILED: {first}"));
                }
            }
        }
        if vm.is_empty() {
            report.line(format!("  {label}: no successful probe"));
        } else {
            report.line(format!(
                "  {label}:\n    {} bytes per in-flight call (from RssAnon: {})",
                spread(&vm, 0),
                spread(&anon, 0)
            ));
        }
        report.lines(lines.iter().map(|l| format!("    probe: {l}")));
    }
    report.line(format!(
        "  (librrpc probes: before the first reading 1000 calls timed out once (warm-up); after the second, \
         stats().in_flight must equal {m}, and every completion must then run exactly once with TIMEOUT)"
    ));
}
