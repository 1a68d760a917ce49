//! RRPC round trip through Mosquitto on loopback: the C `echo_device` built on librrpc
//! against a bare rumqttc echo device (the minimal correct RRPC device), driven by the
//! same caller. See docs/benchmarks.md for what is measured and why.
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
//!
//! The same executable is also the bare device: `roundtrip --bare-device <port> <pk> <dn>`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Proc;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use support::{
    env_num, fast_connection, machine_line, median, min_max, out_dir, percentile, pin_to_cpu0,
    runtime, start_mosquitto, verdict,
};

const PK: &str = "a1BenchPK0";
const DN: &str = "benchdev1";

/// Request channel capacity of the bare device's and the caller's rumqttc connections.
const CHANNEL_CAP: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-device") {
        std::process::exit(bare::main(&args[2..]));
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: stay quick.
        eprintln!("roundtrip: benchmark only; run it with `cargo bench --bench roundtrip`");
        return;
    }
    bench::run();
}

/// The bare rumqttc echo device: one current-thread runtime, one task, no library.
mod bare {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Duration;

    use rumqttc::{Event, Packet, QoS};

    use super::{fast_connection, CHANNEL_CAP};

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
            eprintln!("usage: roundtrip --bare-device <port> <product-key> <device-name>");
            return 2;
        };
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("runtime");
        let (handled, failed) = rt.block_on(async move {
            let stop = tokio::net::UnixStream::from_std(rd).expect("register the signal socket");
            let (client, mut eventloop) =
                fast_connection(format!("bare{}", std::process::id()), port, CHANNEL_CAP);
            let filter = format!("/sys/{pk}/{dn}/rrpc/request/+");
            let mut handled: u64 = 0;
            let mut failed: u64 = 0;
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
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if !announced {
                                eprintln!("bare: connected to 127.0.0.1:{port}");
                                announced = true;
                            }
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
            "bare: {} requests, {} replies, {} failed",
            handled + failed,
            handled,
            failed
        );
        0
    }
}

mod bench {
    use super::*;

    /// Settings from the environment.
    struct Settings {
        reps: usize,
        seq: usize,
        pipe: usize,
        inflight: usize,
        warmup: usize,
        sizes: Vec<usize>,
        callgrind: bool,
        k1: u64,
        k2: u64,
    }

    impl Settings {
        fn from_env() -> Settings {
            let sizes = std::env::var("RRPC_BENCH_SIZES")
                .unwrap_or_else(|_| "16,1024,65536".to_string())
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .unwrap_or_else(|_| panic!("RRPC_BENCH_SIZES: bad size {s:?}"))
                })
                .collect::<Vec<_>>();
            assert!(
                sizes.iter().all(|&s| (16..=1 << 20).contains(&s)),
                "RRPC_BENCH_SIZES: sizes must be 16 B .. 1 MiB"
            );
            let s = Settings {
                reps: env_num("RRPC_BENCH_REPS", 5).max(1),
                seq: env_num("RRPC_BENCH_SEQ", 2000).max(10),
                pipe: env_num("RRPC_BENCH_PIPE", 20000).max(10),
                inflight: env_num("RRPC_BENCH_INFLIGHT", 16).clamp(1, 200),
                warmup: env_num("RRPC_BENCH_WARMUP", 200),
                sizes,
                callgrind: env_num("RRPC_BENCH_CALLGRIND", 1) != 0,
                k1: env_num("RRPC_BENCH_K1", 1000) as u64,
                k2: env_num("RRPC_BENCH_K2", 3000) as u64,
            };
            assert!(s.k2 > s.k1, "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1");
            s
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

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Contender {
        Librrpc,
        Bare,
    }

    impl Contender {
        fn name(self) -> &'static str {
            match self {
                Contender::Librrpc => "librrpc",
                Contender::Bare => "bare",
            }
        }
        fn ready_line(self) -> &'static str {
            match self {
                Contender::Librrpc => "echo_device: connected",
                Contender::Bare => "bare: connected",
            }
        }
    }

    /// Paths of the two device programs.
    struct Devices {
        echo: PathBuf,
        me: PathBuf,
    }

    impl Devices {
        /// The device's command line (program first), without taskset/valgrind.
        fn argv(&self, c: Contender, port: u16) -> Vec<String> {
            match c {
                Contender::Librrpc => vec![
                    self.echo.display().to_string(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                    "--dialect".into(),
                    "alibaba".into(),
                    "--product-key".into(),
                    PK.into(),
                    "--device-name".into(),
                    DN.into(),
                    "--quiet".into(),
                ],
                Contender::Bare => vec![
                    self.me.display().to_string(),
                    "--bare-device".into(),
                    port.to_string(),
                    PK.into(),
                    DN.into(),
                ],
            }
        }
    }

    /// One contender run of one payload size.
    #[derive(Clone, Debug)]
    struct Run {
        p50_us: f64,
        p99_us: f64,
        max_us: f64,
        /// Sequential round trips slower than 10 ms (stalls).
        slow: usize,
        calls_per_s: f64,
        rss_kb: Option<u64>,
        threads: Option<u64>,
    }

    fn pid_of(p: &Proc) -> Option<u32> {
        p.child.as_ref().map(|c| c.id())
    }

    /// VmRSS (kB) and Threads of a running process.
    fn proc_status(pid: u32) -> (Option<u64>, Option<u64>) {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l[name.len()..].split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        (field("VmRSS:"), field("Threads:"))
    }

    /// Stops a device with SIGTERM and returns what it says it handled.
    fn stop_device(p: &mut Proc) -> Result<u64, String> {
        support::stop_device(p, "device", &["echo_device: ", "bare: "], |err| {
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

    /// The bench's cloud-side caller: rumqttc on a current-thread runtime, one task that
    /// drives the event loop itself (no channel hop for replies).
    struct Caller {
        client: AsyncClient,
        eventloop: EventLoop,
        req_prefix: String,
        resp_prefix: String,
        next_id: u64,
        base: Vec<u8>,
    }

    /// Unique decimal message ids (Alibaba-style 64-bit numbers), per process and run.
    fn id_base(run: u64) -> u64 {
        889_455_942_124_347_392 + u64::from(std::process::id()) * 1_000_000_000 + run * 10_000_000
    }

    impl Caller {
        async fn connect(port: u16, size: usize, run: u64) -> Result<Caller, String> {
            let (client, mut eventloop) = fast_connection(
                format!("benchcaller{}x{run}", std::process::id()),
                port,
                CHANNEL_CAP,
            );
            client
                .try_subscribe(format!("/sys/{PK}/{DN}/rrpc/response/+"), QoS::AtMostOnce)
                .map_err(|e| format!("queue subscribe: {e}"))?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                    Err(_) => return Err("caller: no SUBACK within 10 s".into()),
                    Ok(Err(e)) => return Err(format!("caller connection: {e}")),
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                    Ok(Ok(_)) => {}
                }
            }
            // A pseudo-random pattern; each request carries its id in the first 8 bytes.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
            let base = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Ok(Caller {
                client,
                eventloop,
                req_prefix: format!("/sys/{PK}/{DN}/rrpc/request/"),
                resp_prefix: format!("/sys/{PK}/{DN}/rrpc/response/"),
                next_id: id_base(run),
                base,
            })
        }

        fn payload(&self, id: u64) -> Vec<u8> {
            let mut v = self.base.clone();
            v[..8].copy_from_slice(&id.to_le_bytes());
            v
        }

        fn verify(&self, id: u64, payload: &[u8]) -> Result<(), String> {
            if payload.len() != self.base.len()
                || payload[..8] != id.to_le_bytes()
                || payload[8..] != self.base[8..]
            {
                return Err(format!(
                    "reply to {id} has a wrong payload ({} bytes, expected {})",
                    payload.len(),
                    self.base.len()
                ));
            }
            Ok(())
        }

        fn send(&mut self, id: u64) -> Result<(), String> {
            let topic = format!("{}{id}", self.req_prefix);
            let payload = self.payload(id);
            self.client
                .try_publish(topic, QoS::AtMostOnce, false, payload)
                .map_err(|e| format!("queue request: {e}"))
        }

        /// The next reply's message id and payload, within `timeout`.
        async fn next_reply(
            &mut self,
            deadline: tokio::time::Instant,
        ) -> Result<(u64, rumqttc::Publish), String> {
            loop {
                match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                    Err(_) => return Err("timed out waiting for a reply".into()),
                    Ok(Err(e)) => return Err(format!("caller connection: {e}")),
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        let id = p
                            .topic
                            .strip_prefix(self.resp_prefix.as_str())
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or_else(|| format!("unexpected reply topic {:?}", p.topic))?;
                        return Ok((id, p));
                    }
                    Ok(Ok(_)) => {}
                }
            }
        }

        /// One sequential call; returns its round-trip time. `strict`: any reply that is
        /// not this call's is an error (otherwise late replies are skipped).
        async fn call(&mut self, timeout: Duration, strict: bool) -> Result<Duration, String> {
            let id = self.next_id;
            self.next_id += 1;
            let topic = format!("{}{id}", self.req_prefix);
            let payload = self.payload(id);
            let deadline = tokio::time::Instant::now() + timeout;
            let t0 = Instant::now();
            self.client
                .try_publish(topic, QoS::AtMostOnce, false, payload)
                .map_err(|e| format!("queue request: {e}"))?;
            loop {
                let (rid, p) = self
                    .next_reply(deadline)
                    .await
                    .map_err(|e| format!("call {id}: {e}"))?;
                if rid == id {
                    let rtt = t0.elapsed();
                    self.verify(id, &p.payload)?;
                    return Ok(rtt);
                }
                if strict {
                    return Err(format!("waiting for {id}, got a reply to {rid}"));
                }
            }
        }

        /// `total` calls with `inflight` outstanding at all times; returns calls/s.
        async fn pipelined(&mut self, total: usize, inflight: usize) -> Result<f64, String> {
            let mut outstanding = HashSet::with_capacity(inflight * 2);
            let mut sent = 0usize;
            let mut received = 0usize;
            let t0 = Instant::now();
            while sent < inflight.min(total) {
                let id = self.next_id;
                self.next_id += 1;
                self.send(id)?;
                outstanding.insert(id);
                sent += 1;
            }
            while received < total {
                // A stall of 10 s means a lost request or reply: fail instead of hanging.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let (rid, p) = self
                    .next_reply(deadline)
                    .await
                    .map_err(|e| format!("pipelined: {e} after {received} of {total} replies"))?;
                if !outstanding.remove(&rid) {
                    return Err(format!("pipelined: unexpected or duplicate reply {rid}"));
                }
                self.verify(rid, &p.payload)?;
                received += 1;
                if sent < total {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.send(id)?;
                    outstanding.insert(id);
                    sent += 1;
                }
            }
            Ok(total as f64 / t0.elapsed().as_secs_f64())
        }

        async fn disconnect(mut self) {
            let _ = self.client.try_disconnect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        }
    }

    /// RRPC_BENCH_VERBOSE=1: more detail on stderr (where the slowest calls fell).
    fn verbose() -> bool {
        env_num("RRPC_BENCH_VERBOSE", 0) != 0
    }

    /// Fresh broker, device, caller; warm-up, sequential and pipelined phases.
    fn run_once(
        s: &Settings,
        dev: &Devices,
        c: Contender,
        size: usize,
        run_no: u64,
    ) -> Result<Run, String> {
        let (seq_n, pipe_n) = s.counts(size);
        let (broker, port) = start_mosquitto(c.name(), true)?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"]).args(dev.argv(c, port));
        let mut device = Proc::spawn_with(&mut cmd);
        if !device.wait_stderr(c.ready_line(), Duration::from_secs(20)) {
            return Err(format!(
                "{} did not connect\n{}",
                c.name(),
                device.transcript()
            ));
        }
        let pid = pid_of(&device).expect("device pid");
        let rt = runtime();
        let r: Result<(Run, u64), String> = rt.block_on(async {
            let mut caller = Caller::connect(port, size, run_no).await?;
            let mut answered = 0u64;
            for i in 0..s.warmup.max(1) {
                // The first call may race the device's subscription; allow a few tries.
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
            let mut rtts = Vec::with_capacity(seq_n);
            for _ in 0..seq_n {
                let d = caller.call(Duration::from_secs(5), true).await?;
                rtts.push(d.as_secs_f64() * 1e6);
            }
            answered += seq_n as u64;
            let (rss_kb, threads) = proc_status(pid);
            let calls_per_s = caller.pipelined(pipe_n, s.inflight).await?;
            answered += pipe_n as u64;
            caller.disconnect().await;
            if verbose() {
                // Where the slowest sequential calls fell (index into the phase, µs).
                let mut idx: Vec<(usize, f64)> = rtts.iter().copied().enumerate().collect();
                idx.sort_by(|a, b| b.1.total_cmp(&a.1));
                let top: Vec<String> = idx
                    .iter()
                    .take(8)
                    .map(|(i, v)| format!("#{i}:{v:.0}"))
                    .collect();
                eprintln!("  {} slowest sequential calls: {}", c.name(), top.join(" "));
            }
            rtts.sort_by(f64::total_cmp);
            Ok((
                Run {
                    p50_us: percentile(&rtts, 50.0),
                    p99_us: percentile(&rtts, 99.0),
                    max_us: *rtts.last().unwrap(),
                    slow: rtts.iter().filter(|&&x| x > 10_000.0).count(),
                    calls_per_s,
                    rss_kb,
                    threads,
                },
                answered,
            ))
        });
        drop(rt);
        let handled = stop_device(&mut device);
        drop(broker);
        let (run, answered) = r?;
        let handled = handled?;
        // The first call may have been retried: the device may have seen up to 3 extra.
        if handled < answered || handled > answered + 3 {
            return Err(format!(
                "{}: device handled {handled} requests, caller got {answered} answers",
                c.name()
            ));
        }
        Ok(run)
    }

    /// Per-request instruction counts from callgrind.
    struct Callgrind {
        ir: [u64; 2],
        handled: [u64; 2],
        files: [PathBuf; 2],
    }

    impl Callgrind {
        fn per_request(&self) -> f64 {
            (self.ir[1] as f64 - self.ir[0] as f64)
                / (self.handled[1] as f64 - self.handled[0] as f64)
        }
    }

    /// Total Ir of a callgrind output file (`totals:` or `summary:` line).
    fn callgrind_total(path: &Path) -> Result<u64, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let find = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        find("totals:")
            .or_else(|| find("summary:"))
            .ok_or_else(|| format!("no totals/summary line in {}", path.display()))
    }

    /// One callgrind run: the device under valgrind answers `k` sequential 16-byte calls.
    fn callgrind_run(
        dev: &Devices,
        c: Contender,
        k: u64,
        run_no: u64,
    ) -> Result<(u64, u64, PathBuf), String> {
        let file = out_dir()
            .join("work")
            .join(format!("callgrind.{}.{k}.out", c.name()));
        let _ = std::fs::remove_file(&file);
        let (broker, port) = start_mosquitto("cg", false)?;
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .args(dev.argv(c, port));
        let mut device = Proc::spawn_with(&mut cmd);
        if !device.wait_stderr(c.ready_line(), Duration::from_secs(180)) {
            return Err(format!(
                "{} under valgrind did not connect\n{}",
                c.name(),
                device.transcript()
            ));
        }
        let rt = runtime();
        let answered: Result<u64, String> = rt.block_on(async {
            let mut caller = Caller::connect(port, 16, run_no).await?;
            let mut answered = 0u64;
            let mut attempts = 0u64;
            let started = Instant::now();
            while answered < k {
                attempts += 1;
                if attempts > k + 20 || started.elapsed() > Duration::from_secs(1800) {
                    return Err(format!(
                        "{}: only {answered} of {k} calls answered under valgrind",
                        c.name()
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
        drop(rt);
        let handled = stop_device(&mut device);
        drop(broker);
        let answered = answered?;
        let handled = handled?;
        if handled != answered {
            return Err(format!(
                "{}: device handled {handled} requests under valgrind, {answered} answered",
                c.name()
            ));
        }
        let ir = callgrind_total(&file)?;
        Ok((ir, handled, file))
    }

    /// `callgrind_annotate` output summed per function name (inlined pieces that it
    /// lists under other source files are added up): name -> (Ir, object file name).
    fn annotate(file: &Path, inclusive: bool) -> Result<BTreeMap<String, (u64, String)>, String> {
        let out = Command::new("callgrind_annotate")
            .arg(format!(
                "--inclusive={}",
                if inclusive { "yes" } else { "no" }
            ))
            .arg("--threshold=100")
            .arg("--auto=no")
            .arg(file)
            .output()
            .map_err(|e| format!("callgrind_annotate: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "callgrind_annotate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut m: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for line in text.lines() {
            let t = line.trim_start();
            let Some((num, rest)) = t.split_once(' ') else {
                continue;
            };
            let Ok(ir) = num.replace(',', "").parse::<u64>() else {
                continue;
            };
            // Skip the "(12.34%)" column, keep "file:function [object]".
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix('(') {
                Some(r) => r.split_once(')').map(|x| x.1).unwrap_or(r).trim_start(),
                None => rest,
            };
            if rest.is_empty() || rest.starts_with("PROGRAM TOTALS") {
                continue;
            }
            let (func, obj) = match rest.rfind(" [") {
                Some(i) if rest.ends_with(']') => (&rest[..i], &rest[i + 2..rest.len() - 1]),
                _ => (rest, ""),
            };
            let func = func.split_once(':').map_or(func, |(_file, f)| f);
            let obj = Path::new(obj)
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let e = m.entry(func.to_string()).or_insert((0, String::new()));
            e.0 += ir;
            if e.1.is_empty() {
                e.1 = obj;
            }
        }
        Ok(m)
    }

    /// "function [object]", the function cut to 90 characters.
    fn short_label(func: &str, obj: &str) -> String {
        let mut f = func.to_string();
        if f.len() > 90 {
            let mut cut = 87;
            while !f.is_char_boundary(cut) {
                cut -= 1;
            }
            f.truncate(cut);
            f.push_str("...");
        }
        if obj.is_empty() {
            f
        } else {
            format!("{f} [{obj}]")
        }
    }

    /// The library's entry points (inclusive, K2 run, and their K1..K2 slope).
    fn entry_points(cg: &Callgrind, k: [u64; 2], out: &mut String) -> Result<(), String> {
        let inc = [annotate(&cg.files[0], true)?, annotate(&cg.files[1], true)?];
        let needles = [
            "rrpc::client::Inner::on_publish",
            "rrpc_client_reply",
            "rrpc::router::Router::handle_message",
            "rrpc::router::Router::reply",
        ];
        writeln!(
            out,
            "  inclusive Ir of library entry points (callgrind_annotate --inclusive=yes):"
        )
        .unwrap();
        writeln!(
            out,
            "  {:<62} {:>14} {:>10} {:>12}",
            "function",
            format!("Ir(K2={})", k[1]),
            "Ir/K2",
            "slope/req"
        )
        .unwrap();
        let mut found = 0;
        for n in needles {
            let hits: Vec<(&String, &(u64, String))> =
                inc[1].iter().filter(|(f, _)| f.ends_with(n)).collect();
            for (func, (ir2, obj)) in hits.into_iter().take(3) {
                let ir1 = inc[0].get(func).map_or(0, |x| x.0);
                let slope = (*ir2 as f64 - ir1 as f64) / (cg.handled[1] - cg.handled[0]) as f64;
                writeln!(
                    out,
                    "  {:<62} {:>14} {:>10.0} {:>12.0}",
                    short_label(func, obj),
                    ir2,
                    *ir2 as f64 / cg.handled[1] as f64,
                    slope
                )
                .unwrap();
                found += 1;
            }
        }
        if found == 0 {
            writeln!(
                out,
                "  (no rrpc symbols found in the callgrind output: the library build has no symbols)"
            )
            .unwrap();
        }
        Ok(())
    }

    /// Top functions by self cost per request (slope between the two runs).
    fn top_self(cg: &Callgrind, n: usize, out: &mut String) -> Result<(), String> {
        let a = annotate(&cg.files[0], false)?;
        let b = annotate(&cg.files[1], false)?;
        let dk = (cg.handled[1] - cg.handled[0]) as f64;
        let mut v: Vec<(f64, String)> = b
            .iter()
            .map(|(f, (ir2, obj))| {
                let ir1 = a.get(f).map_or(0, |x| x.0);
                ((*ir2 as f64 - ir1 as f64) / dk, short_label(f, obj))
            })
            .collect();
        v.sort_by(|x, y| y.0.total_cmp(&x.0));
        for (per, l) in v.into_iter().take(n) {
            writeln!(out, "    {per:>8.0}  {l}").unwrap();
        }
        Ok(())
    }

    /// Size of the librrpc.so that echo_device loads, and of a stripped copy.
    fn library_size(echo: &Path) -> Result<(PathBuf, u64, u64), String> {
        let out = Command::new("ldd")
            .arg(echo)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let so = text
            .lines()
            .find(|l| l.trim_start().starts_with("librrpc"))
            .and_then(|l| l.split("=>").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .map(PathBuf::from)
            .ok_or_else(|| format!("ldd does not show librrpc:\n{text}"))?;
        let real = std::fs::canonicalize(&so).map_err(|e| format!("{}: {e}", so.display()))?;
        let size = std::fs::metadata(&real).map_err(|e| e.to_string())?.len();
        let tmp = out_dir().join("work/librrpc.stripped.so");
        common::cmake::try_run(Command::new("strip").arg("-o").arg(&tmp).arg(&real))?;
        let stripped = std::fs::metadata(&tmp).map_err(|e| e.to_string())?.len();
        Ok((real, size, stripped))
    }

    fn fmt_opt(v: &[u64]) -> String {
        if v.is_empty() {
            return "?".into();
        }
        let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let (lo, hi) = min_max(&f);
        format!("{:.0} ({lo:.0}..{hi:.0})", median(&f))
    }

    pub fn run() {
        let started = Instant::now();
        for tool in [
            "mosquitto",
            "taskset",
            "cmake",
            "valgrind",
            "callgrind_annotate",
        ] {
            assert!(
                common::require_tool(tool),
                "the round-trip benchmark needs {tool}"
            );
        }
        let s = Settings::from_env();
        let machine = machine_line(true);
        eprintln!("roundtrip: {machine}");
        eprintln!("roundtrip: building echo_device with CMake (target/cmake-test) ...");
        let dev = Devices {
            echo: common::cmake::example("echo_device"),
            me: std::env::current_exe().expect("current_exe"),
        };
        // Pin after the build so that CMake and cargo may use every CPU.
        pin_to_cpu0();

        let mut report = String::new();
        writeln!(
            report,
            "RRPC round trip through Mosquitto on loopback: librrpc (C echo_device) vs bare rumqttc echo device"
        )
        .unwrap();
        writeln!(report, "{machine}").unwrap();
        writeln!(
            report,
            "setup: broker, device and caller pinned to CPU 0 (taskset -c 0 / sched_setaffinity); fresh Mosquitto per run; \
             contender order alternates per repetition; QoS 0; {} repetitions; warm-up {} calls; \
             pipelined with {} in flight; every reply's payload checked",
            s.reps, s.warmup, s.inflight
        )
        .unwrap();

        let mut run_no = 0u64;
        let mut failures: Vec<String> = Vec::new();
        let mut footprint: BTreeMap<&str, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
        let contenders = [Contender::Librrpc, Contender::Bare];
        for &size in &s.sizes {
            let (seq_n, pipe_n) = s.counts(size);
            let mut runs: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
            let mut raw = String::new();
            for rep in 0..s.reps {
                let order = if rep % 2 == 0 {
                    contenders
                } else {
                    [contenders[1], contenders[0]]
                };
                for c in order {
                    run_no += 1;
                    let t = Instant::now();
                    match run_once(&s, &dev, c, size, run_no) {
                        Ok(r) => {
                            let line = format!(
                                "  rep {rep} {:<8} p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  >10ms {:>2}  {:>8.0} calls/s  RSS {} kB  threads {}",
                                c.name(),
                                r.p50_us,
                                r.p99_us,
                                r.max_us,
                                r.slow,
                                r.calls_per_s,
                                r.rss_kb.map_or("?".into(), |v| v.to_string()),
                                r.threads.map_or("?".into(), |v| v.to_string()),
                            );
                            eprintln!("{size} B{line} ({:.1} s)", t.elapsed().as_secs_f64());
                            raw.push_str(&line);
                            raw.push('\n');
                            if size == s.sizes[0] {
                                let e = footprint.entry(c.name()).or_default();
                                e.0.extend(r.rss_kb);
                                e.1.extend(r.threads);
                            }
                            runs.entry(c.name()).or_default().push(r);
                        }
                        Err(e) => {
                            eprintln!("{size} B rep {rep} {}: FAILED: {e}", c.name());
                            let first = e.lines().next().unwrap_or("").to_string();
                            failures.push(format!("{size} B rep {rep} {}: {first}", c.name()));
                            raw.push_str(&format!("  rep {rep} {:<8} FAILED: {first}\n", c.name()));
                        }
                    }
                }
            }
            writeln!(
                report,
                "\n== payload {size} B: {seq_n} sequential round trips, {pipe_n} pipelined calls ({} in flight); median over repetitions (min..max) ==",
                s.inflight
            )
            .unwrap();
            writeln!(
                report,
                "  {:<9} {:>24} {:>24} {:>26}",
                "contender", "p50 us", "p99 us", "calls/s"
            )
            .unwrap();
            let mut med: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
            for c in contenders {
                let Some(rs) = runs.get(c.name()) else {
                    writeln!(report, "  {:<9} (no successful run)", c.name()).unwrap();
                    continue;
                };
                let col = |f: &dyn Fn(&Run) -> f64| {
                    let v: Vec<f64> = rs.iter().map(f).collect();
                    let (lo, hi) = min_max(&v);
                    (median(&v), lo, hi)
                };
                let p50 = col(&|r| r.p50_us);
                let p99 = col(&|r| r.p99_us);
                let tp = col(&|r| r.calls_per_s);
                writeln!(
                    report,
                    "  {:<9} {:>24} {:>24} {:>26}",
                    c.name(),
                    format!("{:.1} ({:.1}..{:.1})", p50.0, p50.1, p50.2),
                    format!("{:.1} ({:.1}..{:.1})", p99.0, p99.1, p99.2),
                    format!("{:.0} ({:.0}..{:.0})", tp.0, tp.1, tp.2),
                )
                .unwrap();
                med.insert(c.name(), (p50.0, p99.0, tp.0));
            }
            if let (Some(a), Some(b)) = (med.get("librrpc"), med.get("bare")) {
                let (r50, r99, rtp) = (a.0 / b.0, a.1 / b.1, a.2 / b.2);
                writeln!(
                    report,
                    "  ratio librrpc/bare: p50 {r50:.3} (target <= 1.05: {}), p99 {r99:.3}, throughput {rtp:.3} (target >= 0.95: {})",
                    verdict(r50 <= 1.05),
                    verdict(rtp >= 0.95)
                )
                .unwrap();
            }
            writeln!(report, "  runs (in execution order):").unwrap();
            report.push_str(&raw);
        }

        // ---- callgrind --------------------------------------------------------------
        if s.callgrind {
            writeln!(
                report,
                "\n== CPU cost per request (valgrind --tool=callgrind, 16 B sequential calls, Ir = instructions executed by the device) =="
            )
            .unwrap();
            writeln!(
                report,
                "  per request = (Ir(K2) - Ir(K1)) / (K2 - K1): start-up and shutdown cancel"
            )
            .unwrap();
            let mut cg: BTreeMap<&str, Callgrind> = BTreeMap::new();
            for c in contenders {
                let mut ir = [0u64; 2];
                let mut handled = [0u64; 2];
                let mut files = [PathBuf::new(), PathBuf::new()];
                let mut ok = true;
                for (i, k) in [s.k1, s.k2].into_iter().enumerate() {
                    run_no += 1;
                    let t = Instant::now();
                    eprintln!("callgrind: {} with {k} requests ...", c.name());
                    match callgrind_run(&dev, c, k, run_no) {
                        Ok((total, h, f)) => {
                            eprintln!(
                                "callgrind: {} K={k}: {total} Ir, {h} handled ({:.1} s)",
                                c.name(),
                                t.elapsed().as_secs_f64()
                            );
                            ir[i] = total;
                            handled[i] = h;
                            files[i] = f;
                        }
                        Err(e) => {
                            eprintln!("callgrind: {} K={k} FAILED: {e}", c.name());
                            failures.push(format!(
                                "callgrind {} K={k}: {}",
                                c.name(),
                                e.lines().next().unwrap_or("")
                            ));
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    cg.insert(c.name(), Callgrind { ir, handled, files });
                }
            }
            writeln!(
                report,
                "  {:<9} {:>16} {:>16} {:>16} {:>14}",
                "device",
                format!("Ir(K1={})", s.k1),
                format!("Ir(K2={})", s.k2),
                "handled K1/K2",
                "Ir/request"
            )
            .unwrap();
            for c in contenders {
                if let Some(g) = cg.get(c.name()) {
                    writeln!(
                        report,
                        "  {:<9} {:>16} {:>16} {:>16} {:>14.0}",
                        c.name(),
                        g.ir[0],
                        g.ir[1],
                        format!("{}/{}", g.handled[0], g.handled[1]),
                        g.per_request()
                    )
                    .unwrap();
                } else {
                    writeln!(report, "  {:<9} (failed)", c.name()).unwrap();
                }
            }
            if let (Some(a), Some(b)) = (cg.get("librrpc"), cg.get("bare")) {
                let d = a.per_request() - b.per_request();
                writeln!(
                    report,
                    "  library's extra cost: {d:.0} Ir/request (target <= 2000: {})",
                    verdict(d <= 2000.0)
                )
                .unwrap();
            }
            if let Some(a) = cg.get("librrpc") {
                if let Err(e) = entry_points(a, [s.k1, s.k2], &mut report) {
                    writeln!(report, "  (callgrind_annotate: {e})").unwrap();
                }
            }
            for c in contenders {
                if let Some(g) = cg.get(c.name()) {
                    writeln!(
                        report,
                        "  top self cost per request, {} (Ir/request, K1..K2 slope):",
                        c.name()
                    )
                    .unwrap();
                    if let Err(e) = top_self(g, 12, &mut report) {
                        writeln!(report, "    (callgrind_annotate: {e})").unwrap();
                    }
                }
            }
        }

        // ---- footprint -----------------------------------------------------------------
        writeln!(report, "\n== footprint ==").unwrap();
        match library_size(&dev.echo) {
            Ok((so, size, stripped)) => writeln!(
                report,
                "  librrpc.so loaded by echo_device: {} ({size} bytes), stripped: {stripped} bytes ({:.0} KiB)",
                so.display(),
                stripped as f64 / 1024.0
            )
            .unwrap(),
            Err(e) => writeln!(report, "  librrpc.so size: {e}").unwrap(),
        }
        writeln!(
            report,
            "  after the sequential phase of the {} B runs, median (min..max) over repetitions:",
            s.sizes[0]
        )
        .unwrap();
        for c in contenders {
            let (rss, thr) = footprint.remove(c.name()).unwrap_or_default();
            writeln!(
                report,
                "  {:<9} VmRSS {} kB, Threads {}",
                c.name(),
                fmt_opt(&rss),
                fmt_opt(&thr)
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
        let path = out_dir().join("roundtrip.txt");
        match std::fs::write(&path, &report) {
            Ok(()) => eprintln!("roundtrip: report written to {}", path.display()),
            Err(e) => eprintln!("roundtrip: cannot write {}: {e}", path.display()),
        }
    }
}
