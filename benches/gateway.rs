//! RRPC round trips through Mosquitto on loopback to a gateway on Eclipse Paho MQTT C
//! serving many sub-devices on one connection: `examples-c/paho_gateway` (librrpc's
//! transport-less router) against `benches/c/paho_bare_echo` (the same Paho loop without
//! librrpc), driven by the same caller. See docs/benchmarks.md for what is measured and
//! why.
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
// Not every shared helper is used here.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Proc;
use support::{
    env_num, gcd, golden_stride, machine_line, median, min_max, out_dir, percentile, pin_to_cpu0,
    runtime, start_mosquitto_with, StrideCaller,
};

const PK: &str = "a1GatewayPK";
/// Payload of every request and reply.
const PAYLOAD: usize = 16;
/// Extra Mosquitto config: Paho cannot set TCP_NODELAY on its socket, and with Nagle on
/// the broker's side the first call stalls ~40 ms; the same broker for both contenders.
const BROKER_CONF: &str = "set_tcp_nodelay true\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: stay quick.
        eprintln!("gateway: benchmark only; run it with `cargo bench --bench gateway`");
        return;
    }
    std::process::exit(run());
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
        let warmup = match env_num("RRPC_BENCH_WARMUP", 0) {
            0 => devices,
            w => w,
        };
        let modes = match std::env::var("RRPC_BENCH_NODELAY").as_deref() {
            Err(_) | Ok("both") => vec![Mode::Paho, Mode::Forced],
            Ok("paho") => vec![Mode::Paho],
            Ok("forced") => vec![Mode::Forced],
            Ok(v) => panic!("RRPC_BENCH_NODELAY={v:?}: expected paho, forced or both"),
        };
        Settings {
            reps: env_num("RRPC_BENCH_REPS", 5).max(1),
            devices,
            stride,
            warmup,
            seq: env_num("RRPC_BENCH_SEQ", 10000).max(10),
            pipe: env_num("RRPC_BENCH_PIPE", 50000).max(10),
            inflight: env_num("RRPC_BENCH_INFLIGHT", 16).clamp(1, 200),
            modes,
            verbose: env_num("RRPC_BENCH_VERBOSE", 0) != 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Router,
    Bare,
}

const CONTENDERS: [Contender; 2] = [Contender::Router, Contender::Bare];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Router => "librrpc router",
            Contender::Bare => "bare Paho",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Contender::Router => "router",
            Contender::Bare => "bare",
        }
    }
    fn program(self) -> &'static str {
        match self {
            Contender::Router => "paho_gateway",
            Contender::Bare => "paho_bare_echo",
        }
    }
    fn ready_line(self, devices: usize) -> String {
        match self {
            Contender::Router => format!("paho_gateway: connected, serving {devices} devices"),
            Contender::Bare => "paho_bare_echo: connected".into(),
        }
    }
}

/// Sets TCP_NODELAY on the socket of process `pid` that is connected to
/// 127.0.0.1:`port`, from outside: Paho MQTT C has no option for it and no public way to
/// reach its descriptor. pidfd_getfd(2) (Linux 5.6+; the gateway is our child)
/// duplicates the descriptor into this process; a socket option belongs to the socket,
/// so setting it on the duplicate sets it for the gateway. Checked with getsockopt.
fn force_nodelay(pid: u32, port: u16) -> Result<(), String> {
    // SAFETY: pidfd_open(2) on our own child's PID; the result is a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
    if pidfd < 0 {
        return Err(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut found = 0;
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(d) => d,
        Err(e) => {
            // SAFETY: closing the pidfd we opened.
            unsafe { libc::close(pidfd) };
            return Err(format!("read /proc/{pid}/fd: {e}"));
        }
    };
    for e in entries.filter_map(Result::ok) {
        let Some(target) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let is_socket = std::fs::read_link(e.path())
            .map(|l| l.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        if !is_socket {
            continue;
        }
        // SAFETY: pidfd_getfd(2) with a pidfd we own; returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as i32;
        if fd < 0 {
            errors.push(format!(
                "pidfd_getfd({target}): {}",
                std::io::Error::last_os_error()
            ));
            continue;
        }
        // SAFETY: getpeername/setsockopt/getsockopt on the descriptor we were just given,
        // with buffers of the sizes passed; it is closed right after.
        unsafe {
            let mut sa: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let peer_ok = libc::getpeername(
                fd,
                (&mut sa as *mut libc::sockaddr_storage).cast(),
                &mut len,
            ) == 0
                && i32::from(sa.ss_family) == libc::AF_INET;
            if peer_ok {
                let sin = &*(&sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                if u16::from_be(sin.sin_port) == port {
                    let one: libc::c_int = 1;
                    let mut got: libc::c_int = 0;
                    let mut glen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                    let int_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                    if libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_NODELAY,
                        (&one as *const libc::c_int).cast(),
                        int_len,
                    ) == 0
                        && libc::getsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&mut got as *mut libc::c_int).cast(),
                            &mut glen,
                        ) == 0
                        && got != 0
                    {
                        found += 1;
                    } else {
                        errors.push(format!(
                            "TCP_NODELAY on fd {target}: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
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

/// CPU time of a process so far: utime+stime from /proc/<pid>/stat (clock ticks, all
/// threads), and the scheduler's exact runtime summed over /proc/<pid>/task/*/schedstat
/// as a cross-check with ns resolution.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    ticks: u64,
    sched_ns: u64,
}

/// Clock ticks per second (USER_HZ) of the stat times.
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `pid` of None: this process.
fn cpu_of(pid: Option<u32>) -> Result<Cpu, String> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".into(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .map_err(|e| format!("read {dir}/stat: {e}"))?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .ok_or_else(|| format!("{dir}/stat: no ')'"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{dir}/stat: field {} missing", i + 3))
    };
    let ticks = num(11)? + num(12)?;
    let sched_ns = std::fs::read_dir(format!("{dir}/task"))
        .map_err(|e| format!("read {dir}/task: {e}"))?
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Ok(Cpu { ticks, sched_ns })
}

/// CPU µs per call between two readings: (from stat, from schedstat).
fn per_call(a: Cpu, b: Cpu, calls: usize) -> (f64, f64) {
    let n = calls as f64;
    (
        b.ticks.saturating_sub(a.ticks) as f64 / clk_tck() * 1e6 / n,
        b.sched_ns.saturating_sub(a.sched_ns) as f64 / 1e3 / n,
    )
}

/// CPU 0's busy time (user+nice+system), steal, and irq+softirq from /proc/stat, in
/// ticks. (A process's utime+stime includes the softirq work done on its behalf, such
/// as loopback packets, which /proc/stat counts as softirq.)
fn cpu0_ticks() -> Result<(u64, u64, u64), String> {
    let stat =
        std::fs::read_to_string("/proc/stat").map_err(|e| format!("read /proc/stat: {e}"))?;
    let f: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu0 "))
        .ok_or("/proc/stat: no cpu0 line")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if f.len() < 8 {
        return Err("/proc/stat: short cpu0 line".into());
    }
    // user nice system idle iowait irq softirq steal
    Ok((f[0] + f[1] + f[2], f[7], f[5] + f[6]))
}

/// The three processes of a run (gateway, broker, this process: the caller), CPU 0's
/// busy and steal ticks, and the time.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    procs: [Cpu; 3],
    cpu0: (u64, u64, u64),
    at: Instant,
}

fn snapshot(gateway: u32, broker: u32) -> Result<Snapshot, String> {
    Ok(Snapshot {
        procs: [cpu_of(Some(gateway))?, cpu_of(Some(broker))?, cpu_of(None)?],
        cpu0: cpu0_ticks()?,
        at: Instant::now(),
    })
}

/// Between two snapshots: CPU 0 time spent by anything but our three processes (busy
/// and irq+softirq ticks minus theirs), and steal, as % of the wall time. Our processes
/// run only on CPU 0, so a few % is accounting noise; more means another workload
/// shared the CPU.
fn foreign_load(a: &Snapshot, b: &Snapshot, verbose: bool) -> (f64, f64) {
    let ours: u64 = (0..3)
        .map(|i| b.procs[i].ticks.saturating_sub(a.procs[i].ticks))
        .sum();
    let busy = b.cpu0.0.saturating_sub(a.cpu0.0);
    let irq = b.cpu0.2.saturating_sub(a.cpu0.2);
    let steal = b.cpu0.1.saturating_sub(a.cpu0.1);
    let wall = (b.at - a.at).as_secs_f64() * clk_tck();
    if verbose {
        eprintln!("  CPU 0 ticks: wall {wall:.0}, busy {busy}, irq+softirq {irq}, our processes {ours}, steal {steal}");
    }
    (
        (busy + irq).saturating_sub(ours) as f64 / wall * 100.0,
        steal as f64 / wall * 100.0,
    )
}

/// Per process (gateway, broker, caller): CPU µs per call (stat, schedstat).
fn phase_cpu(a: Snapshot, b: Snapshot, calls: usize) -> [(f64, f64); 3] {
    [0, 1, 2].map(|i| per_call(a.procs[i], b.procs[i], calls))
}

/// VmRSS, VmHWM (kB) and Threads of a running process.
fn proc_status(pid: u32) -> (Option<u64>, Option<u64>, Option<u64>) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

/// One contender run.
#[derive(Clone, Debug)]
struct Run {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Sequential round trips slower than 1 ms (stalls).
    over_1ms: usize,
    calls_per_s: f64,
    /// Per process (gateway, broker, caller): CPU µs per call (stat, schedstat).
    cpu_seq: [(f64, f64); 3],
    cpu_pipe: [(f64, f64); 3],
    rss_kb: Option<u64>,
    hwm_kb: Option<u64>,
    threads: Option<u64>,
    /// Requests the gateway says it handled.
    handled: u64,
    /// Over the measured phases: CPU 0 time of other processes, and steal, % of wall.
    foreign_pct: f64,
    steal_pct: f64,
}

/// Unique decimal message ids (Alibaba-style 64-bit numbers), per process and run.
fn id_base(run: u64) -> u64 {
    889_455_942_124_347_392 + u64::from(std::process::id()) * 1_000_000_000 + run * 10_000_000
}

/// Stops the gateway with SIGTERM and returns the requests it handled, checking its
/// exit line(s) for errors.
fn stop_gateway(c: Contender, p: &mut Proc) -> Result<u64, String> {
    match c {
        Contender::Bare => {
            support::stop_device(p, "paho_bare_echo", &["paho_bare_echo: "], |err| {
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
            })
        }
        Contender::Router => {
            match p.terminate() {
                Some(s) if s.success() => {}
                other => {
                    return Err(format!(
                        "paho_gateway did not exit cleanly on SIGTERM ({other:?})\n{}",
                        p.transcript()
                    ))
                }
            }
            let err = p.stderr();
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
            let m: BTreeMap<&str, u64> = stats
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k, v.parse().ok()?))
                })
                .collect();
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
                if get(k)? != 0 {
                    return Err(format!("paho_gateway: {k} is not 0: {stats}"));
                }
            }
            Ok(requests)
        }
    }
}

/// Fresh broker and gateway; warm-up, sequential and pipelined phases.
fn run_once(
    s: &Settings,
    program: &Path,
    c: Contender,
    mode: Mode,
    run_no: u64,
) -> Result<Run, String> {
    let (broker, port) = start_mosquitto_with(c.short(), true, BROKER_CONF)?;
    let broker_pid = broker
        .proc
        .child
        .as_ref()
        .map(|ch| ch.id())
        .ok_or("no broker pid")?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(program)
        .args(["--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--product-key", PK, "--devices"])
        .arg(s.devices.to_string())
        .arg("--quiet");
    let mut gw = Proc::spawn_with(&mut cmd);
    if !gw.wait_stderr(&c.ready_line(s.devices), Duration::from_secs(30)) {
        return Err(format!(
            "{} did not connect\n{}",
            c.program(),
            gw.transcript()
        ));
    }
    // taskset execs the program: the child's PID is the gateway's.
    let gw_pid = gw
        .child
        .as_ref()
        .map(|ch| ch.id())
        .ok_or("no gateway pid")?;
    if mode == Mode::Forced {
        force_nodelay(gw_pid, port)?;
    }
    let devices: Vec<String> = (0..s.devices).map(|i| format!("dev{i}")).collect();
    let rt = runtime();
    let r: Result<(Run, u64), String> = rt.block_on(async {
        let mut caller = StrideCaller::connect(
            port,
            format!("gwbench{}x{run_no}", std::process::id()),
            PK,
            devices,
            s.stride,
            PAYLOAD,
            id_base(run_no),
        )
        .await?;
        let mut answered = 0u64;
        for i in 0..s.warmup {
            // The first call may race the gateway's subscription; allow a few tries.
            let timeout = if i == 0 { 5 } else { 2 };
            let mut tries = 0;
            loop {
                match caller.call(Duration::from_secs(timeout), i != 0).await {
                    Ok(_) => break,
                    Err(e) if i == 0 && tries < 3 => {
                        tries += 1;
                        eprintln!("  first call: {e}; retrying");
                    }
                    Err(e) => return Err(format!("warm-up: {e}")),
                }
            }
            answered += 1;
        }
        let t0 = snapshot(gw_pid, broker_pid)?;
        let mut rtts = Vec::with_capacity(s.seq);
        for _ in 0..s.seq {
            let d = caller.call(Duration::from_secs(5), true).await?;
            rtts.push(d.as_secs_f64() * 1e6);
        }
        answered += s.seq as u64;
        let t1 = snapshot(gw_pid, broker_pid)?;
        let calls_per_s = caller.pipelined(s.pipe, s.inflight).await?;
        answered += s.pipe as u64;
        let t2 = snapshot(gw_pid, broker_pid)?;
        let (rss_kb, hwm_kb, threads) = proc_status(gw_pid);
        caller.disconnect().await;
        if s.verbose {
            // Where the slowest sequential calls fell (index into the phase: µs).
            let mut idx: Vec<(usize, f64)> = rtts.iter().copied().enumerate().collect();
            idx.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = idx
                .iter()
                .take(12)
                .map(|(i, v)| format!("#{i}:{v:.0}"))
                .collect();
            eprintln!(
                "  {} slowest sequential calls: {}",
                c.short(),
                top.join(" ")
            );
        }
        let over_1ms = rtts.iter().filter(|&&x| x > 1000.0).count();
        let (foreign_pct, steal_pct) = foreign_load(&t0, &t2, s.verbose);
        rtts.sort_by(f64::total_cmp);
        Ok((
            Run {
                p50_us: percentile(&rtts, 50.0),
                p99_us: percentile(&rtts, 99.0),
                max_us: *rtts.last().unwrap(),
                over_1ms,
                calls_per_s,
                cpu_seq: phase_cpu(t0, t1, s.seq),
                cpu_pipe: phase_cpu(t1, t2, s.pipe),
                rss_kb,
                hwm_kb,
                threads,
                handled: 0,
                foreign_pct,
                steal_pct,
            },
            answered,
        ))
    });
    drop(rt);
    let handled = stop_gateway(c, &mut gw);
    drop(broker);
    let (mut run, answered) = r?;
    let handled = handled?;
    // The first call may have been retried: the gateway may have seen up to 3 extra.
    if handled < answered || handled > answered + 3 {
        return Err(format!(
            "{}: handled {handled} requests, the caller got {answered} answers",
            c.program()
        ));
    }
    run.handled = handled;
    Ok(run)
}

/// "median (min..max)" with `prec` decimals.
fn stat(v: &[f64], prec: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (lo, hi) = min_max(v);
    format!("{:.p$} ({lo:.p$}..{hi:.p$})", median(v), p = prec)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("?".into(), |x| x.to_string())
}

/// The per-run line of the report.
fn run_line(rep: usize, c: Contender, r: &Run) -> String {
    format!(
        "  rep {rep} {:<6} p50 {:>5.1} us  p99 {:>6.1} us  max {:>6.1} us  >1ms {:>3}  {:>6.0} calls/s  \
         CPU us/call (stat) seq: gw {:>4.1} broker {:>4.1} caller {:>4.1}, pipelined: gw {:>4.1} broker {:>4.1} caller {:>4.1}  \
         VmRSS {} kB  threads {}  handled {}  other load on CPU 0 {:.0}%",
        c.short(),
        r.p50_us,
        r.p99_us,
        r.max_us,
        r.over_1ms,
        r.calls_per_s,
        r.cpu_seq[0].0,
        r.cpu_seq[1].0,
        r.cpu_seq[2].0,
        r.cpu_pipe[0].0,
        r.cpu_pipe[1].0,
        r.cpu_pipe[2].0,
        opt(r.rss_kb),
        opt(r.threads),
        r.handled,
        r.foreign_pct,
    )
}

/// Other load on CPU 0 (% of a run's measured phases) above which a run is flagged.
const FOREIGN_LIMIT_PCT: f64 = 5.0;

/// The report section of one socket mode; returns its summary line (router/bare).
fn section(
    out: &mut String,
    s: &Settings,
    mode: Mode,
    runs: &BTreeMap<&str, Vec<Run>>,
    raw: &str,
) -> Option<String> {
    writeln!(
        out,
        "\n======== {}: median over repetitions (min..max) ========",
        mode.title()
    )
    .unwrap();
    writeln!(
        out,
        "\n== round trips: {} sequential (latency), {} pipelined with {} in flight (throughput) ==",
        s.seq, s.pipe, s.inflight
    )
    .unwrap();
    writeln!(
        out,
        "  {:<15} {:>20} {:>24} {:>24} {:>12}",
        "contender", "p50 us", "p99 us", "calls/s", ">1ms (all)"
    )
    .unwrap();
    // Medians: contender -> (p50, p99, calls/s).
    let mut med: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for c in CONTENDERS {
        let Some(rs) = runs.get(c.short()) else {
            writeln!(out, "  {:<15} (no successful run)", c.name()).unwrap();
            continue;
        };
        let col = |f: &dyn Fn(&Run) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
        let (p50, p99, tp) = (
            col(&|r| r.p50_us),
            col(&|r| r.p99_us),
            col(&|r| r.calls_per_s),
        );
        writeln!(
            out,
            "  {:<15} {:>20} {:>24} {:>24} {:>12}",
            c.name(),
            stat(&p50, 1),
            stat(&p99, 1),
            stat(&tp, 0),
            rs.iter().map(|r| r.over_1ms).sum::<usize>()
        )
        .unwrap();
        med.insert(c.short(), (median(&p50), median(&p99), median(&tp)));
    }
    if let (Some(a), Some(b)) = (med.get("router"), med.get("bare")) {
        writeln!(
            out,
            "  ratio router/bare: p50 {:.3}, p99 {:.3}, throughput {:.3}  (latency: lower is better; 1.0 = no visible cost)",
            a.0 / b.0,
            a.1 / b.1,
            a.2 / b.2
        )
        .unwrap();
    }

    writeln!(
        out,
        "\n== CPU time per call: utime+stime from /proc/<pid>/stat ({} Hz ticks, all threads) over the phase / its calls; \
         [median from /proc/<pid>/task/*/schedstat, ns resolution] ==",
        clk_tck()
    )
    .unwrap();
    writeln!(
        out,
        "  {:<15} {:<10} {:>28} {:>28} {:>28}",
        "contender", "phase", "gateway us/call", "broker us/call", "caller us/call"
    )
    .unwrap();
    // The gateway's medians: contender -> [seq stat, seq sched, pipe stat, pipe sched].
    let mut gw_cpu: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
    for c in CONTENDERS {
        let Some(rs) = runs.get(c.short()) else {
            continue;
        };
        for (ph, phase) in ["sequential", "pipelined"].into_iter().enumerate() {
            let pick = |r: &Run| if ph == 0 { r.cpu_seq } else { r.cpu_pipe };
            let mut cells = Vec::new();
            for i in 0..3 {
                let st: Vec<f64> = rs.iter().map(|r| pick(r)[i].0).collect();
                let sc: Vec<f64> = rs.iter().map(|r| pick(r)[i].1).collect();
                if i == 0 {
                    let e = gw_cpu.entry(c.short()).or_default();
                    e[2 * ph] = median(&st);
                    e[2 * ph + 1] = median(&sc);
                }
                cells.push(format!("{} [{:.1}]", stat(&st, 1), median(&sc)));
            }
            writeln!(
                out,
                "  {:<15} {:<10} {:>28} {:>28} {:>28}",
                if ph == 0 { c.name() } else { "" },
                phase,
                cells[0],
                cells[1],
                cells[2]
            )
            .unwrap();
        }
    }
    if let (Some(a), Some(b)) = (gw_cpu.get("router"), gw_cpu.get("bare")) {
        writeln!(
            out,
            "  gateway CPU router/bare (stat): sequential {:.2} ({:+.1} us/call), pipelined {:.2} ({:+.1} us/call)",
            a[0] / b[0],
            a[0] - b[0],
            a[2] / b[2],
            a[2] - b[2],
        )
        .unwrap();
        writeln!(
            out,
            "  gateway CPU router/bare (schedstat): sequential {:.2} ({:+.2} us/call), pipelined {:.2} ({:+.2} us/call)",
            a[1] / b[1],
            a[1] - b[1],
            a[3] / b[3],
            a[3] - b[3],
        )
        .unwrap();
    }

    writeln!(
        out,
        "\n== gateway process after the run (/proc/<pid>/status after the pipelined phase) =="
    )
    .unwrap();
    for c in CONTENDERS {
        let Some(rs) = runs.get(c.short()) else {
            continue;
        };
        let col = |f: &dyn Fn(&Run) -> Option<u64>| -> Vec<f64> {
            rs.iter().filter_map(f).map(|x| x as f64).collect()
        };
        writeln!(
            out,
            "  {:<15} VmRSS {} kB, VmHWM {} kB, Threads {}",
            c.name(),
            stat(&col(&|r| r.rss_kb), 0),
            stat(&col(&|r| r.hwm_kb), 0),
            stat(&col(&|r| r.threads), 0)
        )
        .unwrap();
    }
    writeln!(
        out,
        "\n== CPU 0 shared with other work over the measured phases (/proc/stat busy time minus our three processes; steal) =="
    )
    .unwrap();
    for c in CONTENDERS {
        let Some(rs) = runs.get(c.short()) else {
            continue;
        };
        let f: Vec<f64> = rs.iter().map(|r| r.foreign_pct).collect();
        let st: Vec<f64> = rs.iter().map(|r| r.steal_pct).collect();
        writeln!(
            out,
            "  {:<15} other load {} %, steal {} %",
            c.name(),
            stat(&f, 1),
            stat(&st, 1)
        )
        .unwrap();
    }
    let loaded = runs
        .values()
        .flatten()
        .filter(|r| r.foreign_pct > FOREIGN_LIMIT_PCT)
        .count();
    if loaded > 0 {
        writeln!(
            out,
            "  WARNING: {loaded} run(s) shared CPU 0 with other work (> {FOREIGN_LIMIT_PCT:.0}%): their latencies are not the gateway's"
        )
        .unwrap();
    }
    writeln!(out, "\n== runs (in execution order) ==").unwrap();
    out.push_str(raw);
    let (a, b) = (med.get("router")?, med.get("bare")?);
    let (ca, cb) = (gw_cpu.get("router")?, gw_cpu.get("bare")?);
    Some(format!(
        "  {:<6} p50 {:.1} / {:.1} us = {:.3}, throughput {:.0} / {:.0} calls/s = {:.3}; \
         gateway CPU per call {:+.1} us sequential, {:+.1} us pipelined (schedstat: {:+.2}, {:+.2})",
        mode.short(),
        a.0,
        b.0,
        a.0 / b.0,
        a.2,
        b.2,
        a.2 / b.2,
        ca[0] - cb[0],
        ca[2] - cb[2],
        ca[1] - cb[1],
        ca[3] - cb[3],
    ))
}

fn run() -> i32 {
    let started = Instant::now();
    for tool in ["mosquitto", "taskset", "cmake"] {
        assert!(
            common::require_tool(tool),
            "the gateway benchmark needs {tool}"
        );
    }
    let s = Settings::from_env();
    let machine = machine_line(false);
    eprintln!("gateway: {machine}");
    eprintln!(
        "gateway: building paho_gateway and paho_bare_echo with CMake (target/cmake-test) ..."
    );
    let programs: BTreeMap<&str, PathBuf> = CONTENDERS
        .into_iter()
        .map(|c| (c.short(), common::cmake::example(c.program())))
        .collect();
    // Pin after the build so that CMake and cargo may use every CPU.
    pin_to_cpu0();

    let mut report = String::new();
    writeln!(
        report,
        "RRPC round trips through Mosquitto on loopback to a Paho MQTT C gateway serving {} sub-devices on one connection: \
         librrpc router (examples-c/paho_gateway) vs bare Paho (benches/c/paho_bare_echo)",
        s.devices
    )
    .unwrap();
    writeln!(report, "{machine}").unwrap();
    writeln!(
        report,
        "setup: broker (set_tcp_nodelay true), gateway and caller (rumqttc, TCP_NODELAY) pinned to CPU 0; \
         fresh Mosquitto and gateway per run; contender order alternates per repetition; QoS 0; payload {PAYLOAD} B; \
         {} repetitions; requests to dev0..dev{} in stride order (call k -> dev(k*{} mod {})); warm-up {} calls; \
         {} sequential round trips; {} pipelined calls with {} in flight; \
         every reply's device, id and payload checked; the gateways' request counters checked",
        s.reps,
        s.devices - 1,
        s.stride,
        s.devices,
        s.warmup,
        s.seq,
        s.pipe,
        s.inflight
    )
    .unwrap();

    let mut failures: Vec<String> = Vec::new();
    let mut summary: Vec<String> = Vec::new();
    let mut run_no = 0u64;
    for &mode in &s.modes {
        eprintln!("gateway: {}", mode.title());
        let mut runs: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
        let mut raw = String::new();
        for rep in 0..s.reps {
            let order = if rep % 2 == 0 {
                CONTENDERS
            } else {
                [CONTENDERS[1], CONTENDERS[0]]
            };
            for c in order {
                run_no += 1;
                let t = Instant::now();
                match run_once(&s, &programs[c.short()], c, mode, run_no) {
                    Ok(r) => {
                        let line = run_line(rep, c, &r);
                        eprintln!("{line} ({:.1} s)", t.elapsed().as_secs_f64());
                        raw.push_str(&line);
                        raw.push('\n');
                        runs.entry(c.short()).or_default().push(r);
                    }
                    Err(e) => {
                        eprintln!("{} rep {rep} {}: FAILED: {e}", mode.short(), c.short());
                        let first = e.lines().next().unwrap_or("").to_string();
                        failures.push(format!("{} rep {rep} {}: {first}", mode.short(), c.short()));
                        raw.push_str(&format!("  rep {rep} {:<6} FAILED: {first}\n", c.short()));
                    }
                }
            }
        }
        summary.extend(section(&mut report, &s, mode, &runs, &raw));
    }

    writeln!(
        report,
        "\n== summary: router/bare, medians (paho: the gateway's socket as Paho leaves it; forced: TCP_NODELAY set on it) =="
    )
    .unwrap();
    for line in &summary {
        writeln!(report, "{line}").unwrap();
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
    let path = out_dir().join("gateway.txt");
    match std::fs::write(&path, &report) {
        Ok(()) => eprintln!("gateway: report written to {}", path.display()),
        Err(e) => eprintln!("gateway: cannot write {}: {e}", path.display()),
    }
    i32::from(!failures.is_empty())
}
