//! RRpc calls to 1,000 JT/T 808 terminals through the adapter, end to end: the caller
//! publishes a request with ContentType 65 through Mosquitto to `examples-c/jt808_adapter`,
//! which sends a 0x8900 over TCP to a simulated terminal (`rrpc jt808 terminal`); the
//! terminal acks with 0x0001 and answers with a 0x0900 echoing the content, which the
//! adapter publishes as the reply. The baseline, in the same run: the plain MQTT echo
//! round trip to the same 1,000 device names (`benches/c/paho_bare_echo`, a Paho loop
//! that answers every request topic, no librrpc, no terminal leg). Same caller, same call
//! order, a fresh broker per run, contenders interleaved, everything pinned to CPU 0.
//!
//! `cargo bench --bench adapter` runs it. Knobs (environment):
//!   RRPC_BENCH_REPS       runs per contender (5)
//!   RRPC_BENCH_TERMINALS  simulated terminals (1000)
//!   RRPC_BENCH_SEQ        sequential calls per run (3000)
//!   RRPC_BENCH_PIPE       pipelined calls per run (20000)
//!   RRPC_BENCH_INFLIGHT   calls in flight in the pipelined phase (16)

#[path = "../tests/common/mod.rs"]
mod common;
// Not every shared helper is used here.
#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{strings as s, Proc};
use support::{
    env_num, golden_stride, machine_line, median, min_max, out_dir, percentile, pin_to_cpu0,
    runtime, start_mosquitto_with, StrideCaller,
};

const PK: &str = "a1AdapterPK";
const PAYLOAD: usize = 16;
const FIRST_PHONE: u64 = 13_800_000_000;
const READY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    Adapter,
    Echo,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Adapter => "adapter (MQTT + JT/T 808 leg)",
            Contender::Echo => "plain MQTT echo (baseline)",
        }
    }
}

struct Run {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
}

fn pinned(program: &PathBuf, args: &[String]) -> Proc {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg("0").arg(program).args(args);
    Proc::spawn_with(&mut cmd)
}

/// The `rrpc` tool, built in its own target directory (the bench's cargo holds the
/// default one).
fn rrpc_tool() -> Result<PathBuf, String> {
    let root = common::repo_root();
    let dir = root.join("target/bench-cli");
    let out = Command::new(common::cmake::cargo())
        .args(["build", "--release", "-p", "rrpc-cli", "--target-dir"])
        .arg(&dir)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo build -p rrpc-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p rrpc-cli failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("release/rrpc"))
}

/// One run of `c` on a fresh broker.
fn run_once(c: Contender, rrpc: &PathBuf, terminals: usize, rep: u64) -> Result<Run, String> {
    let (_broker, port) = start_mosquitto_with("adapter", true, "set_tcp_nodelay true\n")?;
    let mut procs: Vec<Proc> = Vec::new();
    match c {
        Contender::Adapter => {
            let listen = common::free_port();
            let mut a = s(&["--host", "127.0.0.1", "--port"]);
            a.push(port.to_string());
            a.extend(s(&["--product-key", PK, "--listen-port"]));
            a.push(listen.to_string());
            a.push("--quiet".into());
            let adapter = pinned(&common::cmake::example("jt808_adapter"), &a);
            if !adapter.wait_stderr("listening on", READY) {
                return Err(format!("adapter not ready\n{}", adapter.transcript()));
            }
            let mut t = s(&["jt808", "terminal", "--connect"]);
            t.push(format!("127.0.0.1:{listen}"));
            t.extend(s(&["--phone"]));
            t.push(FIRST_PHONE.to_string());
            t.extend(s(&["--count"]));
            t.push(terminals.to_string());
            t.extend(s(&["--answer", "echo", "--quiet"]));
            let sims = pinned(rrpc, &t);
            if adapter.wait_stdout_lines("terminal ", terminals, READY) != terminals {
                return Err(format!(
                    "terminals not online\n{}\n{}",
                    adapter.transcript(),
                    sims.transcript()
                ));
            }
            procs.push(adapter);
            procs.push(sims);
        }
        Contender::Echo => {
            let mut a = s(&["--host", "127.0.0.1", "--port"]);
            a.push(port.to_string());
            a.extend(s(&["--product-key", PK, "--devices"]));
            a.push(terminals.to_string());
            a.push("--quiet".into());
            let echo = pinned(&common::cmake::example("paho_bare_echo"), &a);
            if !echo.wait_stderr("paho_bare_echo: connected", READY) {
                return Err(format!("echo not ready\n{}", echo.transcript()));
            }
            procs.push(echo);
        }
    }
    let names: Vec<String> = (0..terminals as u64)
        .map(|i| (FIRST_PHONE + i).to_string())
        .collect();
    let stride = golden_stride(terminals);
    let (seq, pipe, inflight) = (
        env_num("RRPC_BENCH_SEQ", 3000),
        env_num("RRPC_BENCH_PIPE", 20_000),
        env_num("RRPC_BENCH_INFLIGHT", 16),
    );
    let first_id =
        889_455_942_124_347_392 + u64::from(std::process::id()) * 1_000_000_000 + rep * 10_000_000;
    let rt = runtime();
    let result = rt.block_on(async {
        let mut caller = StrideCaller::connect(
            port,
            format!("bench-caller-{rep}"),
            PK,
            names,
            stride,
            PAYLOAD,
            first_id,
        )
        .await?
        .with_level_suffix(";ct=65");
        // Warm-up: every device once (subscriptions in place, terminals' first frames).
        for _ in 0..terminals {
            caller.call(Duration::from_secs(5), false).await?;
        }
        let mut rtts = Vec::with_capacity(seq);
        for _ in 0..seq {
            rtts.push(
                caller
                    .call(Duration::from_secs(5), true)
                    .await?
                    .as_secs_f64()
                    * 1e6,
            );
        }
        rtts.sort_by(f64::total_cmp);
        let calls_per_s = caller.pipelined(pipe, inflight).await?;
        caller.disconnect().await;
        Ok::<Run, String>(Run {
            p50_us: percentile(&rtts, 50.0),
            p99_us: percentile(&rtts, 99.0),
            calls_per_s,
        })
    });
    for p in &mut procs {
        p.terminate();
    }
    result
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("adapter: benchmark only; run it with `cargo bench --bench adapter`");
        return;
    }
    for tool in ["mosquitto", "taskset", "cmake"] {
        if !common::require_tool(tool) {
            eprintln!("adapter: {tool} is needed");
            std::process::exit(1);
        }
    }
    let reps = env_num("RRPC_BENCH_REPS", 5).max(1);
    let terminals = env_num("RRPC_BENCH_TERMINALS", 1000);
    eprintln!("adapter: building the C examples (CMake) and the rrpc tool ...");
    common::cmake::c_build();
    let rrpc = match rrpc_tool() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("adapter: {e}");
            std::process::exit(1);
        }
    };
    pin_to_cpu0();
    let started = Instant::now();
    let mut runs: Vec<(Contender, Run)> = Vec::new();
    for rep in 0..reps as u64 {
        let order = if rep % 2 == 0 {
            [Contender::Adapter, Contender::Echo]
        } else {
            [Contender::Echo, Contender::Adapter]
        };
        for c in order {
            match run_once(c, &rrpc, terminals, rep) {
                Ok(r) => {
                    eprintln!(
                        "adapter: rep {rep} {}: p50 {:.0} us, p99 {:.0} us, {:.0} calls/s",
                        c.name(),
                        r.p50_us,
                        r.p99_us,
                        r.calls_per_s
                    );
                    runs.push((c, r));
                }
                Err(e) => {
                    eprintln!("adapter: rep {rep} {} failed: {e}", c.name());
                    std::process::exit(1);
                }
            }
        }
    }
    let mut report = String::new();
    report.push_str(&format!(
        "RRpc calls with ContentType 65 to {terminals} JT/T 808 terminals through examples-c/jt808_adapter and `rrpc jt808 terminal` (0x8900 -> 0x0001 + 0x0900 echo), against the plain MQTT echo round trip (benches/c/paho_bare_echo) to the same {terminals} device names\n{}\nsetup: Mosquitto (set_tcp_nodelay true), contender processes and the caller pinned to CPU 0, a fresh broker per run, contenders interleaved; {PAYLOAD} B payloads; device order stride ~0.618 N; {} sequential calls then {} pipelined with {} in flight per run; {reps} runs each, medians (min..max)\n",
        machine_line(false),
        env_num("RRPC_BENCH_SEQ", 3000),
        env_num("RRPC_BENCH_PIPE", 20_000),
        env_num("RRPC_BENCH_INFLIGHT", 16)
    ));
    let col = |c: Contender, f: fn(&Run) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(k, _)| *k == c)
            .map(|(_, r)| f(r))
            .collect()
    };
    let show = |v: &[f64]| {
        let (lo, hi) = min_max(v);
        format!("{:.0} ({:.0}..{:.0})", median(v), lo, hi)
    };
    report.push_str(&format!(
        "  {:<32} {:>24} {:>24} {:>26}\n",
        "contender", "p50 us", "p99 us", "calls/s (pipelined)"
    ));
    for c in [Contender::Adapter, Contender::Echo] {
        report.push_str(&format!(
            "  {:<32} {:>24} {:>24} {:>26}\n",
            c.name(),
            show(&col(c, |r| r.p50_us)),
            show(&col(c, |r| r.p99_us)),
            show(&col(c, |r| r.calls_per_s))
        ));
    }
    let ratio =
        |f: fn(&Run) -> f64| median(&col(Contender::Adapter, f)) / median(&col(Contender::Echo, f));
    report.push_str(&format!(
        "  ratio adapter/echo: p50 {:.2}, calls/s {:.2}\n  every reply checked: from the called device, for the outstanding message id, payload = request payload\n\ntotal runtime: {:.0} s\n",
        ratio(|r| r.p50_us),
        ratio(|r| r.calls_per_s),
        started.elapsed().as_secs_f64()
    ));
    print!("{report}");
    let path = out_dir().join("adapter.txt");
    let _ = std::fs::write(&path, &report);
    eprintln!("adapter: report written to {}", path.display());
}
