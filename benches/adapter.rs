//! Experiment: what the JT/T 808 leg costs an RRpc call, end to end.
//!
//! Compared: RRpc calls with ContentType 65 through Mosquitto to
//! `examples-c/jt808_adapter`, which sends a 0x8900 over TCP to a simulated terminal
//! (`rrpc jt808 terminal --answer echo`); the terminal acks with 0x0001 and answers
//! with a 0x0900 echoing the content, which the adapter publishes as the reply.
//! Baseline: the plain MQTT echo round trip to the same device names
//! (`benches/c/paho_bare_echo`, a Paho loop answering every request topic, no librrpc,
//! no terminal leg). The same caller (support::caller) and call order for both;
//! RRPC_BENCH_REPS runs of each, interleaved, each on a fresh broker, everything pinned
//! to CPU 0. Printed: p50, p99 and pipelined calls/s as medians (min..max), and the
//! ratios adapter/echo of the medians. docs/benchmarks.md has the method and the last
//! results.
//!
//! `cargo bench --bench adapter` runs it. Knobs (environment):
//!   RRPC_BENCH_REPS       runs per contender (5)
//!   RRPC_BENCH_TERMINALS  simulated terminals (1000)
//!   RRPC_BENCH_SEQ        sequential calls per run (3000)
//!   RRPC_BENCH_PIPE       pipelined calls per run (20000)
//!   RRPC_BENCH_INFLIGHT   calls in flight in the pipelined phase (16)

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{strings, Proc};
use support::caller::StrideCaller;
use support::machine::{machine_line, pin_to_cpu0, Show};
use support::mosquitto::{example_args, runtime, start_mosquitto, start_pinned};
use support::report::{ratios, Column, Report, Table};
use support::stats::Latency;
use support::{env_num, golden_stride, id_base, Contender};

const PK: &str = "a1AdapterPK";
const PAYLOAD: usize = 16;
const FIRST_PHONE: u64 = 13_800_000_000;
const READY: Duration = Duration::from_secs(60);

fn main() {
    support::main("adapter", &[], run);
}

struct Settings {
    reps: usize,
    terminals: usize,
    seq: usize,
    pipe: usize,
    inflight: usize,
}

/// The subject is the adapter with its terminals, the baseline the plain MQTT echo.
impl Contender {
    fn name(self) -> &'static str {
        self.pick(
            "adapter (MQTT + JT/T 808 leg)",
            "plain MQTT echo (baseline)",
        )
    }
}

struct Run {
    lat: Latency,
    calls_per_s: f64,
}

/// The `rrpc` tool, built in its own target directory (the bench's cargo holds the
/// default one).
fn rrpc_tool() -> Result<PathBuf, String> {
    let root = common::repo_root();
    let dir = root.join("target/bench-cli");
    common::cmake::try_run(
        Command::new(common::cmake::cargo())
            .args(["build", "--release", "-p", "rrpc-cli", "--target-dir"])
            .arg(&dir)
            .current_dir(root),
    )?;
    Ok(dir.join("release/rrpc"))
}

/// The contender's processes on a broker at `port`, ready to answer.
fn start(c: Contender, s: &Settings, rrpc: &Path, broker_port: u16) -> Result<Vec<Proc>, String> {
    let n = s.terminals.to_string();
    if c == Contender::Baseline {
        let args = example_args(broker_port, &["--product-key", PK, "--devices", &n]);
        let echo = common::cmake::example("paho_bare_echo");
        return Ok(vec![start_pinned(
            &echo,
            &args,
            "paho_bare_echo: connected",
            READY,
        )?]);
    }
    let listen = common::free_port().to_string();
    let args = example_args(
        broker_port,
        &["--product-key", PK, "--listen-port", &listen],
    );
    let adapter = common::cmake::example("jt808_adapter");
    let adapter = start_pinned(&adapter, &args, "listening on", READY)?;
    let phone = FIRST_PHONE.to_string();
    let connect = format!("127.0.0.1:{listen}");
    let args = strings(&[
        "jt808",
        "terminal",
        "--connect",
        &connect,
        "--phone",
        &phone,
        "--count",
        &n,
        "--answer",
        "echo",
        "--quiet",
    ]);
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]).arg(rrpc).args(args);
    let sims = Proc::spawn_with(&mut cmd);
    if adapter.wait_stdout_lines("terminal ", s.terminals, READY) != s.terminals {
        return Err(format!(
            "terminals not online\n{}\n{}",
            adapter.transcript(),
            sims.transcript()
        ));
    }
    Ok(vec![adapter, sims])
}

/// One run of `c` on a fresh broker: every device once (warm-up), then the sequential
/// and the pipelined phase.
fn run_once(c: Contender, s: &Settings, rrpc: &Path, rep: u64) -> Result<Run, String> {
    let broker = start_mosquitto("adapter", true, "set_tcp_nodelay true\n")?;
    let mut procs = start(c, s, rrpc, broker.port)?;
    let names: Vec<String> = (0..s.terminals as u64)
        .map(|i| (FIRST_PHONE + i).to_string())
        .collect();
    let stride = golden_stride(s.terminals);
    let result = runtime().block_on(async {
        let id = format!("bench-caller-{rep}");
        let caller =
            StrideCaller::connect(broker.port, id, PK, names, stride, PAYLOAD, id_base(rep));
        let mut caller = caller.await?.with_level_suffix(";ct=65");
        // Warm-up: subscriptions in place, every terminal's first frames.
        caller.warm_up(s.terminals).await?;
        let rtts = caller.sequential(s.seq).await?;
        let calls_per_s = caller.pipelined(s.pipe, s.inflight).await?;
        caller.disconnect().await;
        Ok::<Run, String>(Run {
            lat: Latency::of(rtts, f64::INFINITY),
            calls_per_s,
        })
    });
    for p in &mut procs {
        p.terminate();
    }
    result
}

fn run() -> i32 {
    support::require_tools("adapter", &["mosquitto", "taskset", "cmake"]);
    let s = Settings {
        reps: env_num("RRPC_BENCH_REPS", 5).max(1),
        terminals: env_num("RRPC_BENCH_TERMINALS", 1000).max(1),
        seq: env_num("RRPC_BENCH_SEQ", 3000).max(1),
        pipe: env_num("RRPC_BENCH_PIPE", 20_000).max(1),
        inflight: env_num("RRPC_BENCH_INFLIGHT", 16).max(1),
    };
    let n = s.terminals;
    let mut report = Report::new(
        "adapter",
        &format!(
            "RRpc calls with ContentType 65 to {n} JT/T 808 terminals through examples-c/jt808_adapter and `rrpc jt808 terminal` \
             (0x8900 -> 0x0001 + 0x0900 echo), against the plain MQTT echo round trip (benches/c/paho_bare_echo) to the same {n} device names"
        ),
        &machine_line(Show { mosquitto: true, ..Show::default() }),
        &format!(
            "Mosquitto (set_tcp_nodelay true), contender processes and the caller pinned to CPU 0, a fresh broker per run, \
             contenders interleaved; {PAYLOAD} B payloads; device order stride ~0.618 N; {} sequential calls then {} pipelined \
             with {} in flight per run; {} runs each, medians (min..max)",
            s.seq, s.pipe, s.inflight, s.reps
        ),
    );
    report.progress("building the C examples (CMake) and the rrpc tool ...");
    common::cmake::c_build();
    let rrpc = match rrpc_tool() {
        Ok(p) => p,
        Err(e) => {
            report.fail("the rrpc tool", &e);
            return report.finish();
        }
    };
    pin_to_cpu0();
    let mut rep = 0;
    let one = |c| {
        rep += 1;
        run_once(c, &s, &rrpc, rep)
    };
    let line = |rep, c: Contender, r: &Run| {
        let (p50, p99, tp) = (r.lat.p50, r.lat.p99, r.calls_per_s);
        format!(
            "  rep {rep} {}: p50 {p50:.0} us, p99 {p99:.0} us, {tp:.0} calls/s",
            c.name()
        )
    };
    let (runs, raw) = report.interleave(s.reps, "", Contender::name, one, line);
    let table = Table::new(&[32, 24, 24, 26]);
    report.line(table.row(["contender", "p50 us", "p99 us", "calls/s (pipelined)"]));
    let cols: [Column<Run>; 3] = [
        (|r| r.lat.p50, 0),
        (|r| r.lat.p99, 0),
        (|r| r.calls_per_s, 0),
    ];
    let med = report.contenders(&table, &runs, Contender::name, &cols, |_| Vec::new());
    if let Some(r) = ratios(&med) {
        let (p50, tp) = (r[0], r[2]);
        report.line(format!(
            "  ratio adapter/echo: p50 {p50:.2}, calls/s {tp:.2}"
        ));
    }
    report.line("  every reply checked: from the called device, for the outstanding message id, payload = request payload");
    report.line("  runs (in execution order):");
    report.lines(raw);
    report.finish()
}
