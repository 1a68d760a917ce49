//! Experiment: what librrpc costs a device per RRPC round trip.
//!
//! Compared: `examples-c/echo_device --quiet`, the C example on librrpc.so, against the
//! baseline, the bare rumqttc echo device below (the minimal correct RRPC device,
//! built into this binary), both answering the same caller (support::caller) through
//! Mosquitto on loopback. Per payload size, RRPC_BENCH_REPS repetitions of each,
//! interleaved (the order alternates), each on a fresh broker, broker, device and
//! caller pinned to CPU 0: sequential round trips (p50, p99, max), pipelined calls/s,
//! the device's RSS and threads. Printed: medians (min..max) and the ratios
//! librrpc/bare of the medians (targets: p50 <= 1.05, throughput >= 0.95). Then the
//! instructions per request under callgrind, as the slope between K1 and K2 requests,
//! the library's extra instructions (target <= 2,000) and where they go, and the
//! size of librrpc.so. docs/benchmarks.md has the method and the last results.
//!
//! `cargo bench --bench roundtrip` runs it. Knobs (environment):
//!   RRPC_BENCH_REPS       repetitions per payload size and contender (5)
//!   RRPC_BENCH_SEQ        sequential round trips per run (2000; 64 KiB uses half)
//!   RRPC_BENCH_PIPE       pipelined calls per run (20000; 64 KiB uses a quarter)
//!   RRPC_BENCH_INFLIGHT   requests in flight in the pipelined phase (16)
//!   RRPC_BENCH_WARMUP     warm-up calls per run (200)
//!   RRPC_BENCH_SIZES      payload sizes in bytes, comma separated (16,1024,65536)
//!   RRPC_BENCH_CALLGRIND  0 skips the callgrind section (1)
//!   RRPC_BENCH_K1, RRPC_BENCH_K2   requests of the two callgrind runs (1000, 3000)
//!   RRPC_BENCH_VERBOSE    1 prints where the slowest sequential calls fell (0)
//!   RRPC_BENCH_TLS        1 runs everything over TLS (0): a CA and a broker certificate
//!                         made at run time, Mosquitto's listener with them, both devices
//!                         (echo_device --ca-file, the bare device on rumqttc + rustls with
//!                         ring) and the caller over TLS; adds the handshake time and the
//!                         TLS echo_device's idle RSS; report target/bench/roundtrip-tls.txt
//!
//! The same executable is also the bare device: `roundtrip --bare-device <port> <pk> <dn>
//! [<ca file>]` (with a CA file: over TLS).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Proc;
use support::caller::{check_handled, StrideCaller};
use support::machine::{machine_line, pin_to_cpu0, Show};
use support::mosquitto::{echo_device_args, fast_connection, runtime};
use support::mosquitto::{start_mosquitto, start_pinned, stop_device};
use support::procs::{self, Status};
use support::report::{paired_ratios, ratios, Column, Report, Table};
use support::stats::{print_slowest, spread_u64, verdict, Latency};
use support::{callgrind, env_list, env_num, env_on, id_base, out_dir};
use support::{Contender, CONTENDERS};

const PK: &str = "a1BenchPK0";
const DN: &str = "benchdev1";

/// Request channel capacity of the bare device's rumqttc connection.
const CHANNEL_CAP: usize = 256;

fn main() {
    support::main("roundtrip", &[("--bare-device", bare::main)], run);
}

/// The baseline: the bare rumqttc echo device. One current-thread runtime, one task,
/// no library: subscribe `/sys/{pk}/{dn}/rrpc/request/+`, answer every PUBLISH with
/// its payload on the topic with `/rrpc/request/` replaced by `/rrpc/response/`.
mod bare {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Duration;

    use rumqttc::{Event, Packet, QoS};

    use super::{fast_connection, runtime, CHANNEL_CAP};

    /// Write end of the socket pair the signal handler pokes (self-pipe trick).
    static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_signal(_sig: libc::c_int) {
        let fd = SIGNAL_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; one byte from a static buffer.
            unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
        }
    }

    pub fn main(args: &[String]) -> i32 {
        let (Some(port), Some(pk), Some(dn)) = (
            args.first().and_then(|p| p.parse::<u16>().ok()),
            args.get(1),
            args.get(2),
        ) else {
            eprintln!(
                "usage: roundtrip --bare-device <port> <product-key> <device-name> [<ca file>]"
            );
            return 2;
        };
        if let Some(ca) = args.get(3) {
            crate::support::tls::use_ca(std::path::Path::new(ca));
        }
        // SIGTERM/SIGINT end the event loop through a socket pair (no periodic timer, so
        // the callgrind counts hold no time-dependent wake-ups), and the process exits 0
        // so that callgrind writes its output file.
        let (rd, wr) = UnixStream::pair().expect("socketpair");
        wr.set_nonblocking(true).expect("nonblocking");
        SIGNAL_FD.store(wr.as_raw_fd(), Ordering::Relaxed);
        let handler: extern "C" fn(libc::c_int) = on_signal;
        // SAFETY: installing a handler that only calls write(2).
        unsafe {
            libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
            libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        }
        rd.set_nonblocking(true).expect("nonblocking");
        let (handled, failed) = runtime().block_on(async move {
            let stop = tokio::net::UnixStream::from_std(rd).expect("register the signal socket");
            let (client, mut eventloop) =
                fast_connection(format!("bare{}", std::process::id()), port, CHANNEL_CAP);
            let filter = format!("/sys/{pk}/{dn}/rrpc/request/+");
            let (mut handled, mut failed) = (0u64, 0u64);
            let mut announced = false;
            loop {
                tokio::select! {
                    biased;
                    r = stop.readable() => {
                        let mut b = [0u8; 8];
                        // try_read clears a spurious readiness (WouldBlock).
                        if r.is_err() || matches!(stop.try_read(&mut b), Ok(n) if n > 0) {
                            break;
                        }
                    }
                    ev = eventloop.poll() => match ev {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtMostOnce) {
                                eprintln!("bare: subscribe failed: {e}");
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) if !announced => {
                            eprintln!("bare: connected to 127.0.0.1:{port}");
                            announced = true;
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            if let Some(i) = p.topic.find("/rrpc/request/") {
                                let topic = format!(
                                    "{}/rrpc/response/{}",
                                    &p.topic[..i],
                                    &p.topic[i + "/rrpc/request/".len()..]
                                );
                                match client.try_publish(topic, QoS::AtMostOnce, false, p.payload) {
                                    Ok(()) => handled += 1,
                                    Err(e) => {
                                        failed += 1;
                                        eprintln!("bare: reply failed: {e}");
                                    }
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("bare: connection error: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            (handled, failed)
        });
        eprintln!(
            "bare: {} requests, {handled} replies, {failed} failed",
            handled + failed
        );
        0
    }
}

struct Settings {
    reps: usize,
    seq: usize,
    pipe: usize,
    inflight: usize,
    warmup: usize,
    sizes: Vec<usize>,
    callgrind: bool,
    k: [u64; 2],
    verbose: bool,
    tls: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let sizes = env_list("RRPC_BENCH_SIZES", "16,1024,65536");
        assert!(
            sizes.iter().all(|&s| (16..=1 << 20).contains(&s)),
            "RRPC_BENCH_SIZES: sizes must be 16 B .. 1 MiB"
        );
        let k = [
            env_num("RRPC_BENCH_K1", 1000) as u64,
            env_num("RRPC_BENCH_K2", 3000) as u64,
        ];
        assert!(k[1] > k[0], "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1");
        Settings {
            reps: env_num("RRPC_BENCH_REPS", 5).max(1),
            seq: env_num("RRPC_BENCH_SEQ", 2000).max(10),
            pipe: env_num("RRPC_BENCH_PIPE", 20000).max(10),
            inflight: env_num("RRPC_BENCH_INFLIGHT", 16).clamp(1, 200),
            warmup: env_num("RRPC_BENCH_WARMUP", 200),
            sizes,
            callgrind: env_on("RRPC_BENCH_CALLGRIND", true),
            k,
            verbose: env_on("RRPC_BENCH_VERBOSE", false),
            tls: env_on("RRPC_BENCH_TLS", false),
        }
    }

    /// Sequential and pipelined call counts for one payload size: 64 KiB and up
    /// move 64x more bytes per call, so they use a half / a quarter.
    fn counts(&self, size: usize) -> (usize, usize) {
        if size >= 32 * 1024 {
            ((self.seq / 2).max(10), (self.pipe / 4).max(10))
        } else {
            (self.seq, self.pipe)
        }
    }
}

/// The subject is librrpc's C echo_device, the baseline the bare rumqttc device.
impl Contender {
    fn name(self) -> &'static str {
        self.pick("librrpc", "bare")
    }

    /// What the device prints once it is connected and subscribed.
    fn ready_line(self) -> &'static str {
        self.pick("echo_device: connected", "bare: connected")
    }

    /// The device's program and arguments (without taskset or valgrind).
    fn argv(self, echo: &Path, port: u16) -> (PathBuf, Vec<String>) {
        match self {
            Contender::Subject => {
                let mut args = echo_device_args(port, PK, DN);
                if let Some(ca) = support::tls::ca_file() {
                    args.extend(common::strings(&["--ca-file", &ca.display().to_string()]));
                }
                (echo.to_path_buf(), args)
            }
            Contender::Baseline => {
                let mut args = common::strings(&["--bare-device", &port.to_string(), PK, DN]);
                if let Some(ca) = support::tls::ca_file() {
                    args.push(ca.display().to_string());
                }
                (std::env::current_exe().expect("current_exe"), args)
            }
        }
    }
}

/// One contender's run at one payload size.
struct Run {
    lat: Latency,
    calls_per_s: f64,
    /// The device's, after the sequential phase.
    status: Status,
}

/// A run's line in the report's run list.
fn run_line(rep: usize, c: Contender, r: &Run) -> String {
    let opt = |v: Option<u64>| v.map_or("?".into(), |x| x.to_string());
    format!(
        "  rep {rep} {:<8} p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  >10ms {:>2}  {:>8.0} calls/s  RSS {} kB  threads {}",
        c.name(),
        r.lat.p50,
        r.lat.p99,
        r.lat.max,
        r.lat.over,
        r.calls_per_s,
        opt(r.status.rss_kb),
        opt(r.status.threads),
    )
}

/// Stops a device with SIGTERM and returns what it says it handled.
fn stop(p: &mut Proc) -> Result<u64, String> {
    stop_device(p, "device", &["echo_device: ", "bare: "], |err| {
        let bad: Vec<&String> = err
            .iter()
            .filter(|l| l.contains("failed") && !l.contains(" 0 failed"))
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("device reported errors: {bad:?}"))
        }
    })
}

/// A caller for the one device, its message ids unique to the run.
async fn caller(port: u16, size: usize, run: u64) -> Result<StrideCaller, String> {
    let id = format!("benchcaller{}x{run}", std::process::id());
    StrideCaller::connect(port, id, PK, vec![DN.into()], 1, size, id_base(run)).await
}

/// Fresh broker and device; warm-up, sequential and pipelined phases; the device's
/// own request count must match the answers.
fn run_once(s: &Settings, echo: &Path, c: Contender, size: usize, run: u64) -> Result<Run, String> {
    let (seq_n, pipe_n) = s.counts(size);
    let broker = start_mosquitto(c.name(), true, "")?;
    let (program, args) = c.argv(echo, broker.port);
    let mut device = start_pinned(&program, &args, c.ready_line(), Duration::from_secs(20))?;
    let pid = procs::pid(&device)?;
    let r = runtime().block_on(async {
        let mut caller = caller(broker.port, size, run).await?;
        let mut answered = caller.warm_up(s.warmup).await?;
        let rtts = caller.sequential(seq_n).await?;
        let status = procs::status(Some(pid));
        let calls_per_s = caller.pipelined(pipe_n, s.inflight).await?;
        answered += (seq_n + pipe_n) as u64;
        caller.disconnect().await;
        if s.verbose {
            print_slowest(c.name(), &rtts, 8);
        }
        let lat = Latency::of(rtts, 10_000.0);
        Ok::<_, String>((
            Run {
                lat,
                calls_per_s,
                status,
            },
            answered,
        ))
    });
    let handled = stop(&mut device);
    drop(broker);
    let (run, answered) = r?;
    check_handled(c.name(), handled?, answered)?;
    Ok(run)
}

/// The device under callgrind answers `k` sequential 16-byte calls and is stopped
/// with SIGTERM (it exits cleanly, so callgrind writes its file). Returns what it
/// handled, which must equal the answers (late replies are skipped, never counted).
fn callgrind_run(echo: &Path, c: Contender, k: u64, run: u64) -> Result<(u64, PathBuf), String> {
    let file = callgrind::out_file(&format!("{}.{k}", c.name()));
    let broker = start_mosquitto("cg", false, "")?;
    let (program, args) = c.argv(echo, broker.port);
    let mut device = Proc::spawn_with(callgrind::command(&file, &[]).arg(program).args(args));
    if !device.wait_stderr(c.ready_line(), Duration::from_secs(180)) {
        return Err(format!(
            "{} under valgrind did not connect\n{}",
            c.name(),
            device.transcript()
        ));
    }
    let answered = runtime().block_on(async {
        let mut caller = caller(broker.port, 16, run).await?;
        let (mut answered, mut attempts) = (0u64, 0u64);
        let started = Instant::now();
        while answered < k {
            attempts += 1;
            if attempts > k + 20 || started.elapsed() > Duration::from_secs(1800) {
                return Err(format!(
                    "only {answered} of {k} calls answered under valgrind"
                ));
            }
            // Generous: valgrind is ~50x slower; late replies are skipped.
            match caller.call(Duration::from_secs(30), false).await {
                Ok(_) => answered += 1,
                Err(e) => eprintln!("  {} under valgrind: {e}; retrying", c.name()),
            }
        }
        caller.disconnect().await;
        Ok(answered)
    });
    let handled = stop(&mut device);
    drop(broker);
    let (answered, handled) = (answered?, handled?);
    if handled != answered {
        return Err(format!(
            "device handled {handled} requests under valgrind, {answered} answered"
        ));
    }
    Ok((handled, file))
}

/// The librrpc.so that echo_device loads, its size, and the size of a stripped copy.
fn library_size(echo: &Path) -> Result<(PathBuf, u64, u64), String> {
    let out = common::cmake::try_run(Command::new("ldd").arg(echo))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let so = text
        .lines()
        .find(|l| l.trim_start().starts_with("librrpc"))
        .and_then(|l| l.split("=>").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| format!("ldd does not show librrpc:\n{text}"))?;
    let real = std::fs::canonicalize(so).map_err(|e| format!("{so}: {e}"))?;
    let tmp = out_dir().join("work/librrpc.stripped.so");
    common::cmake::try_run(Command::new("strip").arg("-o").arg(&tmp).arg(&real))?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    };
    Ok((real.clone(), size(&real)?, size(&tmp)?))
}

fn run() -> i32 {
    support::require_tools(
        "round-trip",
        &[
            "mosquitto",
            "taskset",
            "cmake",
            "valgrind",
            "callgrind_annotate",
        ],
    );
    let s = Settings::from_env();
    if s.tls {
        support::tls::enable("roundtrip-tls");
    }
    let mut report = Report::new(
        if s.tls { "roundtrip-tls" } else { "roundtrip" },
        if s.tls {
            "RRPC round trip over TLS through Mosquitto on loopback: librrpc (C echo_device, rustls) vs bare rumqttc + rustls echo device"
        } else {
            "RRPC round trip through Mosquitto on loopback: librrpc (C echo_device) vs bare rumqttc echo device"
        },
        &machine_line(Show { mosquitto: true, valgrind: true, ..Show::default() }),
        &format!(
            "broker, device and caller pinned to CPU 0 (taskset -c 0 / sched_setaffinity); fresh Mosquitto per run; \
             contender order alternates per repetition; QoS 0; {} repetitions; warm-up {} calls; \
             pipelined with {} in flight; every reply's payload checked",
            s.reps, s.warmup, s.inflight
        ),
    );
    report.progress("building echo_device with CMake (target/cmake-test) ...");
    let echo = common::cmake::example("echo_device");
    // Pin after the build so that CMake and cargo may use every CPU.
    pin_to_cpu0();

    let mut run_no = 0u64;
    // The footprint: RSS and threads of the first size's runs.
    let mut footprint: BTreeMap<Contender, Vec<Status>> = BTreeMap::new();
    for &size in &s.sizes {
        let (seq_n, pipe_n) = s.counts(size);
        let one = |c| {
            run_no += 1;
            run_once(&s, &echo, c, size, run_no)
        };
        let what = format!("{size} B ");
        let (runs, raw) = report.interleave(s.reps, &what, Contender::name, one, run_line);
        if size == s.sizes[0] {
            for (c, rs) in &runs {
                footprint.insert(*c, rs.iter().map(|r| r.status).collect());
            }
        }
        report.section(format_args!(
            "payload {size} B: {seq_n} sequential round trips, {pipe_n} pipelined calls ({} in flight); median over repetitions (min..max)",
            s.inflight
        ));
        let table = Table::new(&[9, 24, 24, 26]);
        report.line(table.row(["contender", "p50 us", "p99 us", "calls/s"]));
        let cols: [Column<Run>; 3] = [
            (|r| r.lat.p50, 1),
            (|r| r.lat.p99, 1),
            (|r| r.calls_per_s, 0),
        ];
        let med = report.contenders(&table, &runs, Contender::name, &cols, |_| Vec::new());
        if let Some(r) = ratios(&med) {
            let (r50, r99, rtp) = (r[0], r[1], r[2]);
            report.line(format!(
                "  ratio librrpc/bare: p50 {r50:.3} (target <= 1.05: {}), p99 {r99:.3}, throughput {rtp:.3} (target >= 0.95: {})",
                verdict(r50 <= 1.05),
                verdict(rtp >= 0.95)
            ));
        }
        // Neighbouring runs share the machine's state of the moment: their ratios
        // say how much of a difference of the medians is the machine.
        if let (Some(p), Some(t)) = (
            paired_ratios(&runs, |r: &Run| r.lat.p50),
            paired_ratios(&runs, |r: &Run| r.calls_per_s),
        ) {
            report.line(format!(
                "  paired per repetition: p50 median {:.3} ({:.3}..{:.3}), throughput median {:.3} ({:.3}..{:.3})",
                p.0, p.1, p.2, t.0, t.1, t.2
            ));
        }
        report.line("  runs (in execution order):");
        report.lines(raw);
    }

    if s.callgrind {
        cpu_cost(&mut report, &s, &echo, &mut run_no);
    }

    report.section("footprint");
    match library_size(&echo) {
        Ok((so, size, stripped)) => report.line(format!(
            "  librrpc.so loaded by echo_device: {} ({size} bytes), stripped: {stripped} bytes ({:.0} KiB)",
            so.display(),
            stripped as f64 / 1024.0
        )),
        Err(e) => report.line(format!("  librrpc.so size: {e}")),
    }
    report.line(format!(
        "  after the sequential phase of the {} B runs, median (min..max) over repetitions:",
        s.sizes[0]
    ));
    for c in CONTENDERS {
        let st = footprint.remove(&c).unwrap_or_default();
        let col = |f: fn(&Status) -> Option<u64>| st.iter().filter_map(f).collect::<Vec<_>>();
        report.line(format!(
            "  {:<9} VmRSS {} kB, Threads {}",
            c.name(),
            spread_u64(&col(|x| x.rss_kb)),
            spread_u64(&col(|x| x.threads))
        ));
    }
    if s.tls {
        tls_costs(&mut report, &echo);
    }
    report.finish()
}

/// TLS only: connect time (TCP + TLS handshake + MQTT CONNECT/CONNACK) over TLS
/// against plain TCP on two listeners of one broker, and the idle RSS of the TLS
/// echo_device.
fn tls_costs(report: &mut Report, echo: &Path) {
    const N: usize = 30;
    let plain = common::free_port();
    let broker = match start_mosquitto("tls-costs", true, &format!("listener {plain} 127.0.0.1\n"))
    {
        Ok(b) => b,
        Err(e) => {
            report.fail("TLS costs: broker", &e);
            return;
        }
    };
    let connect_us = |port: u16, tls: bool| -> Result<Vec<f64>, String> {
        runtime().block_on(async {
            let mut times = Vec::with_capacity(N);
            for i in 0..N {
                let mut o = rumqttc::MqttOptions::new(
                    format!("hs{i}x{}", std::process::id()),
                    "127.0.0.1",
                    port,
                );
                o.set_keep_alive(Duration::from_secs(60));
                if let (true, Some(c)) = (tls, support::tls::client()) {
                    o.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(c),
                    ));
                }
                let (client, mut el) = rumqttc::AsyncClient::new(o, 8);
                let t = Instant::now();
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), el.poll()).await {
                        Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => break,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("connect: {e}")),
                        Err(_) => return Err("no CONNACK within 5 s".into()),
                    }
                }
                times.push(t.elapsed().as_secs_f64() * 1e6);
                support::mosquitto::disconnect(client, el).await;
            }
            Ok(times)
        })
    };
    report.section(format!(
        "TLS costs: connect (TCP, TLS handshake, CONNECT/CONNACK) from this process, {N} times per listener of one broker; median (min..max)"
    ));
    match (connect_us(broker.port, true), connect_us(plain, false)) {
        (Ok(t), Ok(p)) => {
            let (mt, mp) = (support::stats::median(&t), support::stats::median(&p));
            report.line(format!(
                "  over TLS {} us, plain TCP {} us: the TLS handshake adds {:.0} us",
                support::stats::spread(&t, 0),
                support::stats::spread(&p, 0),
                mt - mp
            ));
        }
        (Err(e), _) | (_, Err(e)) => report.line(format!("  connect times: {e}")),
    }
    let (program, args) = Contender::Subject.argv(echo, broker.port);
    match start_pinned(
        &program,
        &args,
        Contender::Subject.ready_line(),
        Duration::from_secs(20),
    ) {
        Ok(mut dev) => {
            std::thread::sleep(Duration::from_millis(500));
            let st = procs::pid(&dev).map(|p| procs::status(Some(p)));
            if let Ok(st) = st {
                report.line(format!(
                    "  echo_device over TLS, connected and idle: VmRSS {} kB, Threads {} (budget: 4 MB)",
                    st.rss_kb.map_or("?".into(), |v| v.to_string()),
                    st.threads.map_or("?".into(), |v| v.to_string())
                ));
            }
            let _ = stop(&mut dev);
        }
        Err(e) => report.line(format!("  echo_device over TLS: {e}")),
    }
}

/// The CPU cost section: both devices under callgrind, K1 and K2 requests each.
fn cpu_cost(report: &mut Report, s: &Settings, echo: &Path, run_no: &mut u64) {
    report.section("CPU cost per request (valgrind --tool=callgrind, 16 B sequential calls, Ir = instructions executed by the device)");
    report.line("  per request = (Ir(K2) - Ir(K1)) / (K2 - K1): start-up and shutdown cancel");
    let table = Table::new(&[9, 16, 16, 16, 14]);
    report.line(table.row([
        "device".to_string(),
        format!("Ir(K1={})", s.k[0]),
        format!("Ir(K2={})", s.k[1]),
        "handled K1/K2".into(),
        "Ir/request".into(),
    ]));
    let mut pairs: BTreeMap<Contender, (callgrind::Pair, [f64; 2])> = BTreeMap::new();
    for c in CONTENDERS {
        let mut runs = Vec::new();
        for k in s.k {
            *run_no += 1;
            let t = Instant::now();
            report.progress(format!("callgrind: {} with {k} requests ...", c.name()));
            let r = callgrind_run(echo, c, k, *run_no).and_then(|(handled, file)| {
                let ir = callgrind::totals(&file)?["Ir"];
                report.progress(format!(
                    "callgrind: {} K={k}: {ir} Ir, {handled} handled ({:.1} s)",
                    c.name(),
                    t.elapsed().as_secs_f64()
                ));
                Ok((handled, file, ir))
            });
            match r {
                Ok(x) => runs.push(x),
                Err(e) => {
                    report.fail(format_args!("callgrind {} K={k}", c.name()), &e);
                    break;
                }
            }
        }
        let [(h1, f1, ir1), (h2, f2, ir2)]: [_; 2] = match runs.try_into() {
            Ok(r) => r,
            Err(_) => {
                report.line(format!("  {:<9} (failed)", c.name()));
                continue;
            }
        };
        let pair = callgrind::Pair {
            k: [h1, h2],
            files: [f1, f2],
        };
        let per = (ir2 - ir1) / (h2 - h1) as f64;
        report.line(table.row([
            c.name().to_string(),
            format!("{ir1:.0}"),
            format!("{ir2:.0}"),
            format!("{h1}/{h2}"),
            format!("{per:.0}"),
        ]));
        pairs.insert(c, (pair, [ir2, per]));
    }
    if let (Some(a), Some(b)) = (
        pairs.get(&Contender::Subject),
        pairs.get(&Contender::Baseline),
    ) {
        let d = a.1[1] - b.1[1];
        report.line(format!(
            "  library's extra cost: {d:.0} Ir/request (target <= 2000: {})",
            verdict(d <= 2000.0)
        ));
    }
    if let Some((pair, _)) = pairs.get(&Contender::Subject) {
        if let Err(e) = entry_points(report, pair) {
            report.line(format!("  (callgrind-cost: {e})"));
        }
    }
    for (c, (pair, _)) in &pairs {
        report.line(format!(
            "  top self cost per request, {} (Ir/request, K1..K2 slope, share of the total):",
            c.name()
        ));
        match pair.lines("self", &["-n", "12"]) {
            Ok(lines) => report.lines(lines.iter().map(|l| format!("  {l}"))),
            Err(e) => report.line(format!("    (callgrind-cost: {e})")),
        }
    }
}

/// Inclusive Ir of the library's entry points: in the K2 run, per request of it, and
/// the K1..K2 slope.
fn entry_points(report: &mut Report, pair: &callgrind::Pair) -> Result<(), String> {
    let file = pair.files[1].display().to_string();
    let k2 = callgrind::rows(&common::strings(&["-a", "-n", "0", "inclusive", &file]))?;
    let slope = pair.rows("inclusive", &["-a", "-n", "0"])?;
    report.line("  inclusive Ir of library entry points (callgrind_annotate --inclusive=yes):");
    let table = Table::new(&[62, 14, 10, 12]);
    report.line(table.row([
        "function".to_string(),
        format!("Ir(K2={})", pair.k[1]),
        "Ir/K2".into(),
        "slope/req".into(),
    ]));
    let needles = [
        "Inner::on_publish",
        "rrpc_client_reply",
        "Router::handle_message_bytes",
        "Router::handle_message",
        "Router::handle",
        "Router::reply",
        "Router::begin_reply",
    ];
    let mut found = 0;
    for n in needles {
        let suffix = format!("::{n}");
        let hits = k2.iter().filter(|r| {
            let f = r.name.split(" [").next().unwrap_or("");
            f == n || f.ends_with(&suffix)
        });
        for r in hits.take(3) {
            let per = slope
                .iter()
                .find(|x| x.name == r.name)
                .map_or(0.0, |x| x.values[0]);
            let mut label = r.name.clone();
            if label.len() > 90 {
                let cut = (0..=87)
                    .rev()
                    .find(|&i| label.is_char_boundary(i))
                    .unwrap_or(0);
                label = format!("{}...", &label[..cut]);
            }
            report.line(table.row([
                label,
                format!("{:.0}", r.values[0]),
                format!("{:.0}", r.values[0] / pair.k[1] as f64),
                format!("{per:.0}"),
            ]));
            found += 1;
        }
    }
    if found == 0 {
        report.line(
            "  (no rrpc symbols found in the callgrind output: the library build has no symbols)",
        );
    }
    Ok(())
}
