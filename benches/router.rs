//! Experiment: what librrpc's router costs a C gateway per message, and whether that
//! holds as the number of registered devices grows.
//!
//! Subject: the router driven through its C API in process, with no network (see
//! router/c_gateway.rs): messages fed to `rrpc_router_handle_message` as a gateway's
//! MQTT stack received them, each request answered inside the shared C callback with
//! `rrpc_router_reply`, replies going to a C publish function that only counts and
//! checks. Compared: routers with N = 1, 1,000 and 100,000 devices, requests to
//! random devices; the baseline is the one-device router, measured in the same run.
//! One warm-up run each with every check on, then RRPC_BENCH_REPS timed runs, the
//! routers interleaved run by run, the bench pinned to CPU 0. Printed: messages/s
//! as medians (min..max), the ratio N=100,000 / N=1 of the medians (target >= 0.8)
//! and per repetition, and diagnostic rows (registration order, input built up
//! front). Then memory per registered device and per pending request from fresh
//! probe processes, instructions per request under callgrind (the slope between K1
//! and K2 requests) and where they go, and simulated cache misses of N=1 against
//! the largest N (scripts/callgrind-cost). docs/benchmarks.md has the method and the
//! last results.
//!
//! `cargo bench --bench router` runs it. Knobs (environment):
//!   RRPC_BENCH_M               requests per throughput run (200000)
//!   RRPC_BENCH_REPS            timed throughput runs per device count (9)
//!   RRPC_BENCH_RECV            messages per receive buffer: each run refills one
//!                              buffer of this many messages and feeds it, in turn (256)
//!   RRPC_BENCH_NS              registered devices, comma separated (1,1000,100000);
//!                              the largest also runs with its devices visited in
//!                              registration order, and the smallest and largest with
//!                              all M messages built up front (diagnostic rows)
//!   RRPC_BENCH_MEM             0 skips the memory section (1)
//!   RRPC_BENCH_MEM_DEVICES     devices added by the memory probe (100000)
//!   RRPC_BENCH_MEM_PENDING     unanswered requests of the memory probe (50000)
//!   RRPC_BENCH_MEM_REPS        fresh probe processes per figure (3)
//!   RRPC_BENCH_CALLGRIND       0 skips the callgrind sections (1)
//!   RRPC_BENCH_K1, RRPC_BENCH_K2   requests of the two callgrind runs (20000, 60000)
//!   RRPC_BENCH_CG_DEVICES      devices registered in the callgrind runs (1000)
//!   RRPC_BENCH_CACHESIM        0 skips the simulated-cache section (1)
//!
//! The same executable is also the memory probe and the callgrind subject:
//!   `router --mem-probe devices <count>`, `router --mem-probe pending <count> <devices>`,
//!   `router --cg-run <devices> <requests> <topics built>`.

#[path = "router/c_gateway.rs"]
mod c_gateway;
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use c_gateway::{default_config, Api, Input, Order, Subject, TICK_EVERY};
use support::callgrind::{self, Pair};
use support::machine::{caches, machine_line, pin_to_cpu0, Cache, Show};
use support::procs::{cpu_ticks, run_probe};
use support::report::{Report, Table};
use support::stats::{median, min_max, spread, verdict};
use support::{env_list, env_num, env_on};

fn main() {
    let modes: [(&str, support::Mode); 2] = [
        ("--mem-probe", c_gateway::probe::main),
        ("--cg-run", c_gateway::cg_subject),
    ];
    support::main("router", &modes, run);
}

struct Settings {
    m: usize,
    reps: usize,
    recv: usize,
    ns: Vec<usize>,
    mem: bool,
    mem_devices: usize,
    mem_pending: usize,
    mem_reps: usize,
    callgrind: bool,
    k: [usize; 2],
    cg_devices: usize,
    cachesim: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let s = Settings {
            m: env_num("RRPC_BENCH_M", 200_000).max(1),
            reps: env_num("RRPC_BENCH_REPS", 9).max(1),
            recv: env_num("RRPC_BENCH_RECV", 256).max(1),
            ns: env_list("RRPC_BENCH_NS", "1,1000,100000"),
            mem: env_on("RRPC_BENCH_MEM", true),
            mem_devices: env_num("RRPC_BENCH_MEM_DEVICES", 100_000),
            mem_pending: env_num("RRPC_BENCH_MEM_PENDING", 50_000),
            mem_reps: env_num("RRPC_BENCH_MEM_REPS", 3).max(1),
            callgrind: env_on("RRPC_BENCH_CALLGRIND", true),
            k: [
                env_num("RRPC_BENCH_K1", 20_000),
                env_num("RRPC_BENCH_K2", 60_000),
            ],
            cg_devices: env_num("RRPC_BENCH_CG_DEVICES", 1000),
            cachesim: env_on("RRPC_BENCH_CACHESIM", true),
        };
        assert!(
            s.ns.iter().all(|&n| n >= 1),
            "RRPC_BENCH_NS: counts must be >= 1"
        );
        assert!(s.k[1] > s.k[0], "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1");
        s
    }

    fn n_min(&self) -> usize {
        self.ns.iter().copied().min().unwrap_or(1)
    }

    fn n_max(&self) -> usize {
        self.ns.iter().copied().max().unwrap_or(1)
    }
}

/// A router of the throughput section and the rates of its timed runs.
struct Timed {
    subject: Subject,
    add_ms: f64,
    rates: Vec<f64>,
    /// Share of each run's wall time the bench's thread was on its CPU.
    on_cpu: Vec<f64>,
}

impl Timed {
    fn label(&self) -> String {
        let s = &self.subject;
        let order = if s.n == 1 {
            "one device"
        } else if s.order == Order::Registration {
            "in registration order (diagnostic)"
        } else {
            "random devices"
        };
        match s.input {
            Input::Reused { .. } => order.to_string(),
            Input::PreBuilt => format!("{order}, pre-built input (diagnostic)"),
        }
    }
}

fn run() -> i32 {
    let s = Settings::from_env();
    let callgrind = s.callgrind && callgrind::available();
    let cfg = default_config();
    let mut report = Report::new(
        "router",
        "Router through its C API, in process, no network: rrpc_router_handle_message -> shared C callback -> rrpc_router_reply -> C publish function",
        &machine_line(Show { caches: true, valgrind: callgrind, ..Show::default() }),
        &format!(
            "bench process pinned to CPU 0; rrpc_router_config_init defaults (max_pending {}, max_payload {}, request_timeout_ms {} = the dialect's 8 s; now_ms: CLOCK_MONOTONIC, read by the gateway for every message and every reply); \
             Alibaba system topics, product key \"pk\", devices dev0..dev{{N-1}} registered with rrpc_router_add_device and the shared callback; \
             each request goes to a device drawn at random (SplitMix64 of its sequence number, mod N); 16 B payloads; \
             messages reach the router from a receive buffer of {} messages, refilled (not timed) and fed (timed) in turn, as a gateway's MQTT stack reads its socket into a buffer it reuses; \
             each message handed over with the time read by rrpc_monotonic_ms (CLOCK_MONOTONIC), its reply made at that time; \
             C entry points called through opaque function pointers (nothing inlined across the API, as from C); \
             rrpc_router_tick once per {TICK_EVERY} messages",
            cfg.max_pending, cfg.max_payload, cfg.request_timeout_ms, s.recv
        ),
    );
    pin_to_cpu0();
    throughput(&mut report, &s);
    let me = std::env::current_exe().expect("current_exe");
    if s.mem {
        memory(&mut report, &s, &me);
    }
    if s.callgrind && !callgrind {
        report.section("CPU cost: SKIPPED (valgrind or callgrind_annotate not found)");
    }
    if callgrind {
        cpu_cost(&mut report, &s, &me);
        if s.cachesim && s.n_max() > 1 {
            cache_sim(&mut report, &s, &me);
        }
    }
    report.finish()
}

/// The throughput section: every router warmed up once with every check on, then
/// the timed runs, interleaved run by run so that a disturbance of the machine hits
/// all of them alike.
fn throughput(report: &mut Report, s: &Settings) {
    let api = Api::get();
    let cfg = default_config();
    let (n_min, n_max) = (s.n_min(), s.n_max());
    let reused = Input::Reused { recv: s.recv };
    let mut plan: Vec<(usize, Order, Input)> =
        s.ns.iter().map(|&n| (n, Order::Random, reused)).collect();
    if n_max > 1 {
        // The largest router once more, its devices visited in registration order:
        // how much of its cost is the spread (locality), not the size.
        plan.push((n_max, Order::Registration, reused));
        // Smallest and largest with the whole input built up front, as this bench
        // fed them before: how much the input stream itself costs the larger one.
        plan.push((n_min, Order::Random, Input::PreBuilt));
        plan.push((n_max, Order::Random, Input::PreBuilt));
    }
    let mut timed: Vec<Timed> = Vec::new();
    for (n, order, input) in plan {
        let (subject, add_ms) = Subject::new(&api, &cfg, n, order, input);
        report.progress(format!("N={n}: {n} devices added in {add_ms:.1} ms"));
        timed.push(Timed {
            subject,
            add_ms,
            rates: Vec::new(),
            on_cpu: Vec::new(),
        });
    }
    let mut run_no = 0u64;
    for t in &timed {
        run_no += 1;
        let label = format!("N={} {}", t.subject.n, t.label());
        match t.subject.run(&api, s.m, run_no, true) {
            Ok((rate, _)) => {
                report.progress(format!("{label} warm-up (full checks): {rate:.0} msgs/s"))
            }
            Err(e) => {
                report.fail(format_args!("{label} warm-up"), &e);
            }
        }
    }
    let mut raw = Vec::new();
    let ticks0 = cpu_ticks();
    for rep in 0..s.reps {
        for t in timed.iter_mut() {
            run_no += 1;
            let label = format!("rep {rep} N={:<7} {:<36}", t.subject.n, t.label());
            match t.subject.run(&api, s.m, run_no, false) {
                Ok((rate, on_cpu)) => {
                    let line = format!(
                        "  {label} {rate:>10.0} msgs/s  {:>7.1} ns/msg  on CPU {:>5.1}%",
                        1e9 / rate,
                        100.0 * on_cpu
                    );
                    report.progress(&line);
                    raw.push(line);
                    t.rates.push(rate);
                    t.on_cpu.push(on_cpu);
                }
                Err(e) => {
                    report.fail(&label, &e);
                    raw.push(format!("  {label} FAILED"));
                }
            }
        }
    }
    let ticks1 = cpu_ticks();
    report.section(format!(
        "throughput: M = {} requests per run, each answered inside its callback; median of {} timed runs after one warm-up run (min..max)",
        s.m, s.reps
    ));
    let row = |n: &dyn std::fmt::Display, label: &str, rate: &str, ns: &str, add: &str| {
        format!("  {n:>7}  {label:<36} {rate:>30} {ns:>22} {add:>10}")
    };
    report.line(row(
        &"devices",
        "device order",
        "msgs/s",
        "ns/msg",
        "add ms",
    ));
    for t in &timed {
        let ns: Vec<f64> = t.rates.iter().map(|r| 1e9 / r).collect();
        let (rates, ns) = (spread(&t.rates, 0), spread(&ns, 1));
        report.line(row(
            &t.subject.n,
            &t.label(),
            &rates,
            &ns,
            &format!("{:.1}", t.add_ms),
        ));
    }
    for input in [reused, Input::PreBuilt] {
        let random = |n: usize| {
            timed.iter().find(|t| {
                let x = &t.subject;
                x.n == n && x.order == Order::Random && x.input == input && !t.rates.is_empty()
            })
        };
        let (Some(lo), Some(hi)) = (random(n_min), random(n_max)) else {
            continue;
        };
        if n_min == n_max {
            continue;
        }
        let ratio = median(&hi.rates) / median(&lo.rates);
        // Each repetition ran the two back to back: their ratio cancels slow drift of
        // the machine; its spread shows how much a single run can be trusted.
        let paired: Vec<f64> = hi.rates.iter().zip(&lo.rates).map(|(h, l)| h / l).collect();
        let (pmin, pmax) = min_max(&paired);
        let target = if input == reused && n_min == 1 && n_max >= 100_000 {
            format!(" (target >= 0.8: {})", verdict(ratio >= 0.8))
        } else {
            String::new()
        };
        report.line(format!(
            "  ratio N={n_max} / N={n_min} ({}): {ratio:.3} of the medians{target}; per repetition {:.3} median, {pmin:.3}..{pmax:.3}",
            hi.label(),
            median(&paired)
        ));
    }
    report.line(
        "  checked in every run: rrpc_router_handle_message OK with kind REQUEST, exactly one publish per request before it returns, \
         with topic length = request topic + 1 and the request's 16 B payload (sequence number), QoS 0; \
         stats deltas messages = requests = replied = callbacks = publishes = M, pending 0, all drop/failure counters 0; \
         warm-up runs also compare the whole response topic and the request view (pk, device name, message id)",
    );
    // How undisturbed the timed runs were: the bench's thread is pinned to CPU 0, so
    // anything else running there shows as time off CPU; other CPUs share caches.
    let on: Vec<f64> = timed.iter().flat_map(|t| t.on_cpu.clone()).collect();
    let load: Vec<String> = ticks0
        .iter()
        .zip(&ticks1)
        .enumerate()
        .map(|(i, (a, b))| {
            let total = (b.total - a.total).max(1) as f64;
            let busy = (b.work + b.irq + b.steal) - (a.work + a.irq + a.steal);
            let steal = b.steal - a.steal;
            format!(
                "CPU {i} busy {:.0}% (steal {:.1}%)",
                100.0 * busy as f64 / total,
                100.0 * steal as f64 / total
            )
        })
        .collect();
    if !on.is_empty() {
        report.line(format!(
            "  machine during the timed runs: the bench's thread on CPU for {:.1}% of the runs' wall time (lowest run {:.1}%); {} (/proc/stat; input building included)",
            100.0 * median(&on),
            100.0 * min_max(&on).0,
            load.join(", ")
        ));
    }
    report.line("  runs (in execution order):");
    report.lines(raw);
}

/// The memory section: each figure from fresh probe processes.
fn memory(report: &mut Report, s: &Settings, me: &Path) {
    report.section(format!(
        "memory: fresh child process per probe (`router --mem-probe ...`), median of {} probes (min..max)",
        s.mem_reps
    ));
    report.line("  bytes per item = (after - before) / count; VmRSS and RssAnon from /proc/self/status; allocator = glibc mallinfo2 uordblks + hblkhd (bytes handed out and not freed)");
    let dev_args = ["devices".to_string(), s.mem_devices.to_string()];
    let pend_args = [
        "pending".to_string(),
        s.mem_pending.to_string(),
        "1000".into(),
    ];
    let (mut dev, mut pend, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.mem_reps {
        for (args, into) in [(&dev_args[..], &mut dev), (&pend_args[..], &mut pend)] {
            let mut cmd = Command::new(me);
            cmd.arg("--mem-probe").args(args);
            match run_probe(&mut cmd, "probe ", Duration::from_secs(600)) {
                Ok((line, kv)) => {
                    report.progress(format!("probe {i}: {line}"));
                    lines.push(format!("    {line}"));
                    into.push(kv);
                }
                Err(e) => {
                    report.fail(format_args!("memory probe {args:?}"), &e);
                }
            }
        }
    }
    // Bytes per item between two readings of each probe: [VmRSS, RssAnon, allocator].
    let per_item = |v: &[BTreeMap<String, f64>], count: usize, keys: [&str; 6]| -> [Vec<f64>; 3] {
        let col = |i: usize, scale: f64| -> Vec<f64> {
            v.iter()
                .map(|m| {
                    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
                    (g(keys[2 * i + 1]) - g(keys[2 * i])) * scale / count as f64
                })
                .collect()
        };
        [col(0, 1024.0), col(1, 1024.0), col(2, 1.0)]
    };
    let marginal = [
        "rss_before_kb",
        "rss_after_kb",
        "anon_before_kb",
        "anon_after_kb",
        "heap_before",
        "heap_after",
    ];
    let reserved = [
        "rss_base_kb",
        "rss_new_kb",
        "rss_base_kb",
        "rss_base_kb",
        "heap_base",
        "heap_new",
    ];
    let table = Table::new(&[58, 16, 16, 16]);
    report.line(table.row(["bytes", "VmRSS", "RssAnon", "allocator"]));
    let rows = [
        (
            format!("per registered device ({} added)", s.mem_devices),
            per_item(&dev, s.mem_devices, marginal),
            true,
        ),
        (
            format!("per pending request ({} unanswered)", s.mem_pending),
            per_item(&pend, s.mem_pending, marginal),
            true,
        ),
        (
            format!(
                "set aside by rrpc_router_new, per max_pending ({})",
                s.mem_pending
            ),
            per_item(&pend, s.mem_pending, reserved),
            false,
        ),
    ];
    for (label, [rss, anon, heap], with_anon) in rows {
        let anon = if with_anon {
            spread(&anon, 0)
        } else {
            String::new()
        };
        report.line(table.row([label, spread(&rss, 0), anon, spread(&heap, 0)]));
    }
    report.line(format!(
        "  device probe: rrpc_router_new (defaults), reading (before), {} x rrpc_router_add_device, reading (after).\n  \
         pending probe: the {p} request topics built (for random devices among 1000), reading (base), rrpc_router_new with max_pending {p} and request_timeout_ms 600000, reading (new), \
         1000 devices added, reading (before), the {p} requests handled by a callback that does not reply (stats: requests = pending = {p}, nothing replied or dropped), reading (after)",
        s.mem_devices,
        p = s.mem_pending
    ));
    report.line("  probes:");
    report.lines(lines);
}

/// `valgrind --tool=callgrind [extra] router --cg-run <devices> <k> <K2>` for K1 and
/// K2: both runs build the same K2 topics, so that building them cancels.
fn callgrind_pair(
    me: &Path,
    devices: usize,
    k: [usize; 2],
    extra: &[String],
    tag: &str,
) -> Result<Pair, String> {
    let mut files = Vec::new();
    for n in k {
        let file = callgrind::out_file(&format!("router.{tag}.{devices}.{n}"));
        let t = std::time::Instant::now();
        let out = callgrind::command(&file, extra)
            .arg(me)
            .arg("--cg-run")
            .args([devices, n, k[1]].map(|x| x.to_string()))
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("cg-run: handled={n} replied={n} published={n} bad=0");
        if !out.status.success() || !err.lines().any(|l| l.trim() == want) {
            return Err(format!(
                "callgrind run ({tag}, {devices} devices, {n} requests) failed ({}):\n{}",
                out.status,
                err.trim()
            ));
        }
        let ir = callgrind::totals(&file)?["Ir"];
        let secs = t.elapsed().as_secs_f64();
        eprintln!("router: callgrind {tag} N={devices} K={n}: {ir} Ir ({secs:.1} s)");
        files.push(file);
    }
    let files: [_; 2] = files.try_into().expect("two runs");
    Ok(Pair {
        k: k.map(|x| x as u64),
        files,
    })
}

/// The CPU cost section: instructions per request, inclusive costs of the entry
/// points, the top functions and the split by where the code comes from.
fn cpu_cost(report: &mut Report, s: &Settings, me: &Path) {
    report.section(format!(
        "CPU cost per request (valgrind --tool=callgrind on `router --cg-run`; N = {} devices, random order; Ir = instructions of the whole process)",
        s.cg_devices
    ));
    report.line(format!(
        "  per request = (Ir(K2) - Ir(K1)) / (K2 - K1); both runs register the same devices and build the same {} topics, so set-up cancels",
        s.k[1]
    ));
    let r = callgrind_pair(me, s.cg_devices, s.k, &[], "ir").and_then(|p| {
        let (a, b) = (callgrind::totals(&p.files[0])?["Ir"], callgrind::totals(&p.files[1])?["Ir"]);
        let (k1, k2) = (format!("Ir(K1={})", s.k[0]), format!("Ir(K2={})", s.k[1]));
        report.line(format!("  {k1:>18} {k2:>18} {:>12}", "Ir/request"));
        report.line(format!("  {a:>18.0} {b:>18.0} {:>12.0}", p.total(&["Ir"])?));
        entry_points(report, &p)?;
        report.line("  top self cost per request (Ir/request, K1..K2 slope, share of the total):");
        report.lines(p.lines("self", &["-O", "-n", "20"])?.iter().map(|l| format!("  {l}")));
        report.line("  self cost per request by where the code comes from (source file of the instructions; inlined code counts for its own file):");
        report.lines(p.lines("components", &["-n", "0"])?.iter().map(|l| format!("  {l}")));
        report.line(format!("  callgrind files: {} and {}", p.files[0].display(), p.files[1].display()));
        Ok(())
    });
    if let Err(e) = r {
        report.fail("callgrind", &e);
    }
}

/// Inclusive Ir per request of the C entry points, the bench's own C functions and
/// the router core, indented by who calls whom.
fn entry_points(report: &mut Report, p: &Pair) -> Result<(), String> {
    let inc = p.rows("inclusive", &["-a", "-O", "-n", "0"])?;
    let rows: [(&str, usize, &str); 9] = [
        (
            "c_gateway::feed",
            0,
            "the bench's loop over the messages: everything",
        ),
        (
            "rrpc_router_handle_message",
            1,
            "C entry point, callback included",
        ),
        (
            "Router::handle",
            2,
            "router core: parse topic, find device, accept",
        ),
        ("c_gateway::answer", 2, "the bench's C callback"),
        ("rrpc_router_reply", 3, "C entry point"),
        (
            "Router::begin_reply",
            4,
            "router core: check token, build response topic",
        ),
        (
            "c_gateway::publish",
            4,
            "the bench's C publish function: counts, checks",
        ),
        (
            "Router::end_reply",
            4,
            "router core: finish request, history",
        ),
        ("rrpc_router_tick", 1, "once per 16384 messages"),
    ];
    report.line("  inclusive Ir per request (callgrind_annotate --inclusive=yes, K1..K2 slope):");
    for (needle, depth, note) in rows {
        let indent = "  ".repeat(depth);
        report.line(match callgrind::find(&inc, needle) {
            Some(r) => format!(
                "    {:>8.0}  {:<48} {note}",
                r.values[0],
                format!("{indent}{}", r.name)
            ),
            None => format!(
                "    {:>8}  {:<48} not in the profile: inlined, or not called",
                "-",
                format!("{indent}{needle}")
            ),
        });
    }
    Ok(())
}

/// The simulated caches: N = 1 against the largest N, with this CPU's L1d as D1 and
/// first its L2, then its L3 as LL (valgrind's own detection reads a 384 MB
/// direct-mapped LL from this VM's CPUID).
fn cache_sim(report: &mut Report, s: &Settings, me: &Path) {
    let levels = caches();
    let level = |l: u32| levels.iter().copied().find(|c| c.level == l);
    let (Some(d1), Some(l2)) = (level(1), level(2)) else {
        report.section(
            "simulated caches: SKIPPED (no L1d/L2 geometry in /sys/devices/system/cpu/cpu0/cache)",
        );
        return;
    };
    let n_max = s.n_max();
    let (lls, odd): (Vec<Cache>, Vec<Cache>) = [Some(l2), level(3)]
        .into_iter()
        .flatten()
        .partition(Cache::simulable);
    report.section(format!(
        "simulated caches: N = 1 against N = {n_max} (callgrind --cache-sim=yes, D1 = this CPU's {}, LL = its {}, the process alone on it; no TLB, no prefetcher; K1..K2 slope)",
        d1.describe(),
        lls.iter().map(Cache::describe).collect::<Vec<_>>().join(", then its ")
    ));
    report.line(format!(
        "  {:>7}  {:<22} {:>10} {:>14} {:>14} {:>14}",
        "devices", "LL", "Ir/req", "D1 misses/req", "LL misses/req", "LL write misses"
    ));
    for c in odd {
        let what = c.describe();
        report.line(format!(
            "  (LL = {what} SKIPPED: valgrind simulates power-of-two set counts only)"
        ));
    }
    let mut l2_big = None;
    'levels: for ll in &lls {
        for n in [1, n_max] {
            let extra = [
                "--cache-sim=yes".to_string(),
                format!("--D1={}", d1.arg()),
                format!("--LL={}", ll.arg()),
            ];
            let r =
                callgrind_pair(me, n, s.k, &extra, &format!("cache-l{}", ll.level)).and_then(|p| {
                    let t = p.totals()?;
                    let sum = |e: &[&str]| e.iter().filter_map(|e| t.get(*e)).sum::<f64>();
                    report.line(format!(
                        "  {n:>7}  {:<22} {:>10.0} {:>14.2} {:>14.2} {:>14.2}",
                        ll.describe(),
                        sum(&["Ir"]),
                        sum(&["D1mr", "D1mw"]),
                        sum(&["DLmr", "DLmw"]),
                        sum(&["DLmw"])
                    ));
                    Ok(p)
                });
            match r {
                Ok(p) if ll.level == 2 && n == n_max => l2_big = Some(p),
                Ok(_) => {}
                Err(e) => {
                    report.fail("callgrind --cache-sim", &e);
                    break 'levels;
                }
            }
        }
    }
    if let Some(p) = l2_big {
        report.line(format!(
            "  functions with the most {} misses per request at N = {n_max} (self cost, K1..K2 slope; columns: Ir, D1 read misses, D1 write misses, LL read misses, LL write misses, share of LL read misses):",
            l2.describe()
        ));
        let opts = [
            "-O",
            "-e",
            "DLmr",
            "-c",
            "Ir,D1mr,D1mw,DLmr,DLmw",
            "-n",
            "12",
        ];
        match p.lines("self", &opts) {
            Ok(lines) => report.lines(lines.iter().map(|l| format!("  {l}"))),
            Err(e) => report.line(format!("    (callgrind-cost: {e})")),
        }
    }
}
