//! Experiment: what librrpc's transport-less router costs a C gateway that owns its
//! MQTT connection (Eclipse Paho MQTT C) and serves many sub-devices on it.
//!
//! Compared: `examples-c/paho_gateway` (Paho plus the router) against the baseline,
//! `benches/c/paho_bare_echo` (the same Paho loop answering every request topic
//! without librrpc), both serving dev0..dev{N-1} and driven by the same caller
//! (support::caller, calls in stride order over the devices) through Mosquitto on
//! loopback. For each socket mode (the gateway's socket as Paho leaves it, and with
//! TCP_NODELAY forced on it from outside), RRPC_BENCH_REPS repetitions of each,
//! interleaved, each on a fresh broker and gateway, everything pinned to CPU 0:
//! sequential round trips (p50, p99, max, calls over 1 ms), pipelined calls/s, CPU
//! time per call of gateway, broker and caller, the gateway's RSS, and CPU 0's
//! other load. Printed: medians (min..max) and the ratios router/bare of the
//! medians (1.0 = no visible cost). docs/benchmarks.md has the method and the last
//! results.
//!
//! `cargo bench --bench gateway` runs it. Knobs (environment):
//!   RRPC_BENCH_REPS       repetitions per contender and socket mode (5)
//!   RRPC_BENCH_DEVICES    sub-devices dev0..dev{N-1} served by the gateway (1000)
//!   RRPC_BENCH_STRIDE     device stride of the call order (0: the value coprime to N
//!                         nearest above 0.618 N, 619 for 1000)
//!   RRPC_BENCH_WARMUP     warm-up calls per run (0: one per device, N)
//!   RRPC_BENCH_SEQ        sequential round trips per run (10000)
//!   RRPC_BENCH_PIPE       pipelined calls per run (50000)
//!   RRPC_BENCH_INFLIGHT   requests in flight in the pipelined phase (16)
//!   RRPC_BENCH_NODELAY    the gateway's socket: `paho` only as Paho leaves it (Nagle
//!                         on), `forced` only with TCP_NODELAY set on it from outside
//!                         once the gateway is up, `both` a section for each (both)
//!   RRPC_BENCH_VERBOSE    1 prints where the slowest sequential calls fell (0)

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Proc;
use support::caller::{check_handled, StrideCaller};
use support::machine::{machine_line, pin_to_cpu0, Show};
use support::mosquitto::{example_args, runtime, start_mosquitto};
use support::mosquitto::{start_pinned, stop_clean, stop_device};
use support::procs::{self, clk_tck, cpu_ticks, key_values, Cpu, Status};
use support::report::{ratios, Column, Report, Table};
use support::stats::{median, print_slowest, spread, Latency};
use support::{env_choice, env_num, env_on, gcd, golden_stride, id_base};
use support::{Contender, CONTENDERS};

const PK: &str = "a1GatewayPK";
/// Payload of every request and reply.
const PAYLOAD: usize = 16;
/// Extra Mosquitto config: Paho cannot set TCP_NODELAY on its socket, and with Nagle on
/// the broker's side the first call stalls ~40 ms; the same broker for both contenders.
const BROKER_CONF: &str = "set_tcp_nodelay true\n";
/// Other load on CPU 0 (% of a run's measured phases) above which a run is flagged.
const FOREIGN_LIMIT_PCT: f64 = 5.0;

fn main() {
    support::main("gateway", &[], run);
}

/// The gateway's own TCP socket (to the broker).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// As Paho MQTT C leaves it: Nagle on (Paho has no TCP_NODELAY option).
    Paho,
    /// TCP_NODELAY set on it from outside ([`force_nodelay`]) once the gateway is up.
    Forced,
}

impl Mode {
    fn title(self) -> &'static str {
        match self {
            Mode::Paho => "gateway socket as Paho leaves it (Nagle on)",
            Mode::Forced => "TCP_NODELAY forced on the gateway's socket (pidfd_getfd + setsockopt)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Mode::Paho => "paho",
            Mode::Forced => "forced",
        }
    }
}

struct Settings {
    reps: usize,
    devices: usize,
    stride: usize,
    warmup: usize,
    seq: usize,
    pipe: usize,
    inflight: usize,
    modes: Vec<Mode>,
    verbose: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let devices = env_num("RRPC_BENCH_DEVICES", 1000).clamp(1, 1_000_000);
        let stride = match env_num("RRPC_BENCH_STRIDE", 0) {
            0 => golden_stride(devices),
            s => s,
        };
        assert!(
            gcd(stride, devices) == 1,
            "RRPC_BENCH_STRIDE={stride} must be coprime to RRPC_BENCH_DEVICES={devices}"
        );
        let modes = match env_choice("RRPC_BENCH_NODELAY", &["paho", "forced", "both"], "both") {
            "paho" => vec![Mode::Paho],
            "forced" => vec![Mode::Forced],
            _ => vec![Mode::Paho, Mode::Forced],
        };
        Settings {
            reps: env_num("RRPC_BENCH_REPS", 5).max(1),
            devices,
            stride,
            warmup: match env_num("RRPC_BENCH_WARMUP", 0) {
                0 => devices,
                w => w,
            },
            seq: env_num("RRPC_BENCH_SEQ", 10000).max(10),
            pipe: env_num("RRPC_BENCH_PIPE", 50000).max(10),
            inflight: env_num("RRPC_BENCH_INFLIGHT", 16).clamp(1, 200),
            modes,
            verbose: env_on("RRPC_BENCH_VERBOSE", false),
        }
    }
}

/// The subject is paho_gateway (Paho with the router), the baseline bare Paho.
impl Contender {
    fn name(self) -> &'static str {
        self.pick("librrpc router", "bare Paho")
    }
    fn short(self) -> &'static str {
        self.pick("router", "bare")
    }
    fn program(self) -> &'static str {
        self.pick("paho_gateway", "paho_bare_echo")
    }
    /// What the gateway prints once it is connected and subscribed.
    fn ready_line(self, devices: usize) -> String {
        let router = format!("paho_gateway: connected, serving {devices} devices");
        self.pick(router, "paho_bare_echo: connected".into())
    }
}

/// Sets TCP_NODELAY on the socket of process `pid` that is connected to
/// 127.0.0.1:`port`, from outside: Paho MQTT C has no option for it and no public way to
/// reach its descriptor. pidfd_getfd(2) (Linux 5.6+; the gateway is our child)
/// duplicates the descriptor into this process; a socket option belongs to the socket,
/// so setting it on the duplicate sets it for the gateway. Checked with getsockopt.
fn force_nodelay(pid: u32, port: u16) -> Result<(), String> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("read /proc/{pid}/fd: {e}"))?;
    // SAFETY: pidfd_open(2) on our own child's PID; the result is a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
    if pidfd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("pidfd_open({pid}): {e}"));
    }
    let mut found = 0;
    let mut errors = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Some(target) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let is_socket =
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: pidfd_getfd(2) with a pidfd we own; returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as i32;
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            errors.push(format!("pidfd_getfd({target}): {e}"));
            continue;
        }
        // SAFETY: getpeername/setsockopt/getsockopt on the descriptor we were just given,
        // with buffers of the sizes passed; it is closed right after.
        unsafe {
            let mut sa: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let sa_ptr = (&mut sa as *mut libc::sockaddr_storage).cast();
            let peer_ok = libc::getpeername(fd, sa_ptr, &mut len) == 0
                && i32::from(sa.ss_family) == libc::AF_INET;
            let sin = &*(&sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            if peer_ok && u16::from_be(sin.sin_port) == port {
                let one: libc::c_int = 1;
                let mut got: libc::c_int = 0;
                let int_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                let mut glen = int_len;
                let (level, opt) = (libc::IPPROTO_TCP, libc::TCP_NODELAY);
                if libc::setsockopt(fd, level, opt, (&one as *const libc::c_int).cast(), int_len)
                    == 0
                    && libc::getsockopt(fd, level, opt, (&mut got as *mut i32).cast(), &mut glen)
                        == 0
                    && got != 0
                {
                    found += 1;
                } else {
                    let e = std::io::Error::last_os_error();
                    errors.push(format!("TCP_NODELAY on fd {target}: {e}"));
                }
            }
            libc::close(fd);
        }
    }
    // SAFETY: closing the pidfd we opened.
    unsafe { libc::close(pidfd) };
    match found {
        1 => Ok(()),
        n => Err(format!(
            "found {n} sockets of {pid} connected to port {port} with TCP_NODELAY set (expected 1); {errors:?}"
        )),
    }
}

/// The three processes of a run (gateway, broker, this process: the caller), CPU 0's
/// ticks, and the time.
#[derive(Clone, Copy)]
struct Snapshot {
    procs: [Cpu; 3],
    cpu0: procs::CpuTicks,
    at: Instant,
}

impl Snapshot {
    fn take(gateway: u32, broker: u32) -> Result<Snapshot, String> {
        Ok(Snapshot {
            procs: [
                Cpu::of(Some(gateway))?,
                Cpu::of(Some(broker))?,
                Cpu::of(None)?,
            ],
            cpu0: *cpu_ticks().first().ok_or("/proc/stat: no cpu0 line")?,
            at: Instant::now(),
        })
    }

    /// Per process (gateway, broker, caller): CPU µs per call since `a` (stat, schedstat).
    fn per_call_since(&self, a: &Snapshot, calls: usize) -> [(f64, f64); 3] {
        [0, 1, 2].map(|i| self.procs[i].per_call_since(&a.procs[i], calls))
    }

    /// Since `a`: CPU 0 time spent by anything but our three processes (busy and
    /// irq+softirq ticks minus theirs), and steal, as % of the wall time. Our
    /// processes run only on CPU 0, so a few % is accounting noise; more means
    /// another workload shared the CPU.
    fn foreign_load_since(&self, a: &Snapshot, verbose: bool) -> (f64, f64) {
        let ours: u64 = (0..3)
            .map(|i| self.procs[i].ticks.saturating_sub(a.procs[i].ticks))
            .sum();
        let busy = self.cpu0.work.saturating_sub(a.cpu0.work);
        let irq = self.cpu0.irq.saturating_sub(a.cpu0.irq);
        let steal = self.cpu0.steal.saturating_sub(a.cpu0.steal);
        let wall = (self.at - a.at).as_secs_f64() * clk_tck();
        if verbose {
            eprintln!("  CPU 0 ticks: wall {wall:.0}, busy {busy}, irq+softirq {irq}, our processes {ours}, steal {steal}");
        }
        (
            (busy + irq).saturating_sub(ours) as f64 / wall * 100.0,
            steal as f64 / wall * 100.0,
        )
    }
}

/// One contender run.
struct Run {
    /// Of the sequential phase; `over`: calls slower than 1 ms (stalls).
    lat: Latency,
    calls_per_s: f64,
    /// Per process (gateway, broker, caller): CPU µs per call (stat, schedstat).
    cpu_seq: [(f64, f64); 3],
    cpu_pipe: [(f64, f64); 3],
    /// The gateway's, after the pipelined phase.
    status: Status,
    /// Requests the gateway says it handled.
    handled: u64,
    /// Over the measured phases: CPU 0 time of other processes, and steal, % of wall.
    foreign_pct: f64,
    steal_pct: f64,
}

/// Stops the gateway with SIGTERM and returns the requests it handled, checking its
/// exit line(s) for errors: paho_gateway's router stats must show every message
/// replied and nothing dropped, pending or failed.
fn stop_gateway(c: Contender, p: &mut Proc) -> Result<u64, String> {
    if c == Contender::Baseline {
        return stop_device(p, "paho_bare_echo", &["paho_bare_echo: "], |err| {
            let bad: Vec<&String> = err
                .iter()
                .filter(|l| {
                    (l.contains("failures") && !l.contains(" 0 publish failures"))
                        || l.contains("failed")
                        || l.contains("not connected")
                })
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!("paho_bare_echo reported errors: {bad:?}"))
            }
        });
    }
    let err = stop_clean(p, "paho_gateway")?;
    let bad: Vec<&String> = err
        .iter()
        .filter(|l| l.contains("failed") || l.contains("not connected"))
        .collect();
    if !bad.is_empty() {
        return Err(format!("paho_gateway reported errors: {bad:?}"));
    }
    let stats = err
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("paho_gateway: stats "))
        .ok_or_else(|| format!("no stats line in\n{}", p.transcript()))?;
    let m = key_values(stats);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .ok_or_else(|| format!("stats line without {k}: {stats}"))
    };
    let requests = get("requests")?;
    if get("replied")? != requests || get("messages")? != requests {
        return Err(format!("paho_gateway: not every message replied: {stats}"));
    }
    for k in [
        "expired",
        "duplicates",
        "malformed",
        "unknown_device",
        "table_full",
        "too_large",
        "late_replies",
        "bad_tokens",
        "send_failures",
        "not_rrpc",
        "pending",
    ] {
        if get(k)? != 0.0 {
            return Err(format!("paho_gateway: {k} is not 0: {stats}"));
        }
    }
    Ok(requests as u64)
}

/// Fresh broker and gateway; warm-up, sequential and pipelined phases.
fn run_once(
    s: &Settings,
    program: &Path,
    c: Contender,
    mode: Mode,
    run: u64,
) -> Result<Run, String> {
    let broker = start_mosquitto(c.short(), true, BROKER_CONF)?;
    let broker_pid = procs::pid(&broker.proc)?;
    let devices = s.devices.to_string();
    let args = example_args(broker.port, &["--product-key", PK, "--devices", &devices]);
    let ready = c.ready_line(s.devices);
    let mut gw = start_pinned(program, &args, &ready, Duration::from_secs(30))?;
    let gw_pid = procs::pid(&gw)?;
    if mode == Mode::Forced {
        force_nodelay(gw_pid, broker.port)?;
    }
    let devices: Vec<String> = (0..s.devices).map(|i| format!("dev{i}")).collect();
    let r = runtime().block_on(async {
        let id = format!("gwbench{}x{run}", std::process::id());
        let mut caller = StrideCaller::connect(
            broker.port,
            id,
            PK,
            devices,
            s.stride,
            PAYLOAD,
            id_base(run),
        )
        .await?;
        let mut answered = caller.warm_up(s.warmup).await?;
        let t0 = Snapshot::take(gw_pid, broker_pid)?;
        let rtts = caller.sequential(s.seq).await?;
        let t1 = Snapshot::take(gw_pid, broker_pid)?;
        let calls_per_s = caller.pipelined(s.pipe, s.inflight).await?;
        let t2 = Snapshot::take(gw_pid, broker_pid)?;
        answered += (s.seq + s.pipe) as u64;
        let status = procs::status(Some(gw_pid));
        caller.disconnect().await;
        if s.verbose {
            print_slowest(c.short(), &rtts, 12);
        }
        let (foreign_pct, steal_pct) = t2.foreign_load_since(&t0, s.verbose);
        let run = Run {
            lat: Latency::of(rtts, 1000.0),
            calls_per_s,
            cpu_seq: t1.per_call_since(&t0, s.seq),
            cpu_pipe: t2.per_call_since(&t1, s.pipe),
            status,
            handled: 0,
            foreign_pct,
            steal_pct,
        };
        Ok::<_, String>((run, answered))
    });
    let handled = stop_gateway(c, &mut gw);
    drop(broker);
    let (mut run, answered) = r?;
    run.handled = handled?;
    check_handled(c.program(), run.handled, answered)?;
    Ok(run)
}

/// The per-run line of the report.
fn run_line(rep: usize, c: Contender, r: &Run) -> String {
    let opt = |v: Option<u64>| v.map_or("?".into(), |x| x.to_string());
    format!(
        "  rep {rep} {:<6} p50 {:>5.1} us  p99 {:>6.1} us  max {:>6.1} us  >1ms {:>3}  {:>6.0} calls/s  \
         CPU us/call (stat) seq: gw {:>4.1} broker {:>4.1} caller {:>4.1}, pipelined: gw {:>4.1} broker {:>4.1} caller {:>4.1}  \
         VmRSS {} kB  threads {}  handled {}  other load on CPU 0 {:.0}%",
        c.short(),
        r.lat.p50,
        r.lat.p99,
        r.lat.max,
        r.lat.over,
        r.calls_per_s,
        r.cpu_seq[0].0,
        r.cpu_seq[1].0,
        r.cpu_seq[2].0,
        r.cpu_pipe[0].0,
        r.cpu_pipe[1].0,
        r.cpu_pipe[2].0,
        opt(r.status.rss_kb),
        opt(r.status.threads),
        r.handled,
        r.foreign_pct,
    )
}

/// The report section of one socket mode; returns its summary line (router/bare).
fn section(
    out: &mut Report,
    s: &Settings,
    mode: Mode,
    runs: &BTreeMap<Contender, Vec<Run>>,
    raw: Vec<String>,
) -> Option<String> {
    out.line(format!(
        "\n======== {}: median over repetitions (min..max) ========",
        mode.title()
    ));
    out.section(format!(
        "round trips: {} sequential (latency), {} pipelined with {} in flight (throughput)",
        s.seq, s.pipe, s.inflight
    ));
    let table = Table::new(&[15, 20, 24, 24, 12]);
    out.line(table.row(["contender", "p50 us", "p99 us", "calls/s", ">1ms (all)"]));
    let col = |rs: &[Run], f: &dyn Fn(&Run) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
    let cols: [Column<Run>; 3] = [
        (|r| r.lat.p50, 1),
        (|r| r.lat.p99, 1),
        (|r| r.calls_per_s, 0),
    ];
    let stalls = |rs: &[Run]| vec![rs.iter().map(|r| r.lat.over).sum::<usize>().to_string()];
    let med = out.contenders(&table, runs, Contender::name, &cols, stalls);
    if let Some(r) = ratios(&med) {
        out.line(format!(
            "  ratio router/bare: p50 {:.3}, p99 {:.3}, throughput {:.3}  (latency: lower is better; 1.0 = no visible cost)",
            r[0], r[1], r[2]
        ));
    }

    out.section(format!(
        "CPU time per call: utime+stime from /proc/<pid>/stat ({} Hz ticks, all threads) over the phase / its calls; \
         [median from /proc/<pid>/task/*/schedstat, ns resolution]",
        clk_tck()
    ));
    let table = Table::new(&[15, 10, 28, 28, 28]).left(2);
    out.line(table.row([
        "contender",
        "phase",
        "gateway us/call",
        "broker us/call",
        "caller us/call",
    ]));
    // The gateway's medians: contender -> [seq stat, seq sched, pipe stat, pipe sched].
    let mut gw_cpu: BTreeMap<Contender, [f64; 4]> = BTreeMap::new();
    for (c, rs) in runs {
        for (ph, phase) in ["sequential", "pipelined"].into_iter().enumerate() {
            let pick = |r: &Run, i: usize| if ph == 0 { r.cpu_seq[i] } else { r.cpu_pipe[i] };
            let mut cells = vec![
                if ph == 0 { c.name() } else { "" }.to_string(),
                phase.into(),
            ];
            for i in 0..3 {
                let st = col(rs, &|r| pick(r, i).0);
                let sc = col(rs, &|r| pick(r, i).1);
                if i == 0 {
                    let e = gw_cpu.entry(*c).or_default();
                    (e[2 * ph], e[2 * ph + 1]) = (median(&st), median(&sc));
                }
                cells.push(format!("{} [{:.1}]", spread(&st, 1), median(&sc)));
            }
            out.line(table.row(cells));
        }
    }
    let (ca, cb) = (
        gw_cpu.get(&Contender::Subject),
        gw_cpu.get(&Contender::Baseline),
    );
    if let (Some(a), Some(b)) = (ca, cb) {
        out.line(format!(
            "  gateway CPU router/bare (stat): sequential {:.2} ({:+.1} us/call), pipelined {:.2} ({:+.1} us/call)",
            a[0] / b[0], a[0] - b[0], a[2] / b[2], a[2] - b[2],
        ));
        out.line(format!(
            "  gateway CPU router/bare (schedstat): sequential {:.2} ({:+.2} us/call), pipelined {:.2} ({:+.2} us/call)",
            a[1] / b[1], a[1] - b[1], a[3] / b[3], a[3] - b[3],
        ));
    }

    out.section("gateway process after the run (/proc/<pid>/status after the pipelined phase)");
    for (c, rs) in runs {
        let kb = |f: fn(&Status) -> Option<u64>| {
            spread(
                &rs.iter()
                    .filter_map(|r| f(&r.status))
                    .map(|x| x as f64)
                    .collect::<Vec<_>>(),
                0,
            )
        };
        out.line(format!(
            "  {:<15} VmRSS {} kB, VmHWM {} kB, Threads {}",
            c.name(),
            kb(|x| x.rss_kb),
            kb(|x| x.hwm_kb),
            kb(|x| x.threads)
        ));
    }
    out.section("CPU 0 shared with other work over the measured phases (/proc/stat busy time minus our three processes; steal)");
    for (c, rs) in runs {
        let (f, st) = (col(rs, &|r| r.foreign_pct), col(rs, &|r| r.steal_pct));
        out.line(format!(
            "  {:<15} other load {} %, steal {} %",
            c.name(),
            spread(&f, 1),
            spread(&st, 1)
        ));
    }
    let loaded = runs
        .values()
        .flatten()
        .filter(|r| r.foreign_pct > FOREIGN_LIMIT_PCT)
        .count();
    if loaded > 0 {
        out.line(format!(
            "  WARNING: {loaded} run(s) shared CPU 0 with other work (> {FOREIGN_LIMIT_PCT:.0}%): their latencies are not the gateway's"
        ));
    }
    out.section("runs (in execution order)");
    out.lines(raw);
    let (a, b, ca, cb) = (
        med.get(&Contender::Subject)?,
        med.get(&Contender::Baseline)?,
        ca?,
        cb?,
    );
    Some(format!(
        "  {:<6} p50 {:.1} / {:.1} us = {:.3}, throughput {:.0} / {:.0} calls/s = {:.3}; \
         gateway CPU per call {:+.1} us sequential, {:+.1} us pipelined (schedstat: {:+.2}, {:+.2})",
        mode.short(),
        a[0],
        b[0],
        a[0] / b[0],
        a[2],
        b[2],
        a[2] / b[2],
        ca[0] - cb[0],
        ca[2] - cb[2],
        ca[1] - cb[1],
        ca[3] - cb[3],
    ))
}

fn run() -> i32 {
    support::require_tools("gateway", &["mosquitto", "taskset", "cmake"]);
    let s = Settings::from_env();
    let mut report = Report::new(
        "gateway",
        &format!(
            "RRPC round trips through Mosquitto on loopback to a Paho MQTT C gateway serving {} sub-devices on one connection: \
             librrpc router (examples-c/paho_gateway) vs bare Paho (benches/c/paho_bare_echo)",
            s.devices
        ),
        &machine_line(Show { mosquitto: true, ..Show::default() }),
        &format!(
            "broker (set_tcp_nodelay true), gateway and caller (rumqttc, TCP_NODELAY) pinned to CPU 0; \
             fresh Mosquitto and gateway per run; contender order alternates per repetition; QoS 0; payload {PAYLOAD} B; \
             {} repetitions; requests to dev0..dev{} in stride order (call k -> dev(k*{} mod {})); warm-up {} calls; \
             {} sequential round trips; {} pipelined calls with {} in flight; \
             every reply's device, id and payload checked; the gateways' request counters checked",
            s.reps, s.devices - 1, s.stride, s.devices, s.warmup, s.seq, s.pipe, s.inflight
        ),
    );
    report.progress("building paho_gateway and paho_bare_echo with CMake (target/cmake-test) ...");
    let programs = CONTENDERS.map(|c| common::cmake::example(c.program()));
    // Pin after the build so that CMake and cargo may use every CPU.
    pin_to_cpu0();

    let mut summary: Vec<String> = Vec::new();
    let mut run_no = 0u64;
    for &mode in &s.modes {
        report.progress(mode.title());
        let one = |c: Contender| {
            run_no += 1;
            run_once(&s, &programs[c as usize], c, mode, run_no)
        };
        let what = format!("{} ", mode.short());
        let (runs, raw) = report.interleave(s.reps, &what, Contender::short, one, run_line);
        summary.extend(section(&mut report, &s, mode, &runs, raw));
    }
    report.section("summary: router/bare, medians (paho: the gateway's socket as Paho leaves it; forced: TCP_NODELAY set on it)");
    report.lines(summary);
    report.finish()
}
