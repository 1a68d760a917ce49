//! What the benches read about processes and CPUs: memory and threads from
//! /proc/<pid>/status, CPU time from /proc/<pid>/stat, schedstat and the clocks,
//! context switches, per-CPU ticks from /proc/stat, the allocator's count, and the
//! one-line results of probe processes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::Proc;

/// The PID of a child process (`taskset` execs its program: the PID is the program's).
pub fn pid(p: &Proc) -> Result<u32, String> {
    p.child
        .as_ref()
        .map(|c| c.id())
        .ok_or_else(|| format!("{} is not running", p.name))
}

/// From /proc/<pid>/status (None: this process); kB, and the thread count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub rss_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub anon_kb: Option<u64>,
    pub threads: Option<u64>,
}

pub fn status(pid: Option<u32>) -> Status {
    let path = pid.map_or("/proc/self/status".into(), |p| format!("/proc/{p}/status"));
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Status {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        anon_kb: field("RssAnon:"),
        threads: field("Threads:"),
    }
}

/// Bytes the allocator has handed out and not got back (glibc `mallinfo2`: in-use
/// arena chunks plus mmapped chunks).
pub fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Clock ticks per second (USER_HZ) of the /proc times.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU time of a process so far: utime+stime from /proc/<pid>/stat (clock ticks, all
/// threads), and the scheduler's exact runtime summed over /proc/<pid>/task/*/schedstat
/// (ns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub ticks: u64,
    pub sched_ns: u64,
}

impl Cpu {
    /// `pid` None: this process.
    pub fn of(pid: Option<u32>) -> Result<Cpu, String> {
        let dir = pid.map_or("/proc/self".into(), |p| format!("/proc/{p}"));
        let stat = std::fs::read_to_string(format!("{dir}/stat"))
            .map_err(|e| format!("read {dir}/stat: {e}"))?;
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map(|x| x.1)
            .ok_or_else(|| format!("{dir}/stat: no ')'"))?
            .split_whitespace()
            .collect();
        let num = |i: usize| -> Result<u64, String> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{dir}/stat: field {} missing", i + 3))
        };
        let sched_ns = std::fs::read_dir(format!("{dir}/task"))
            .map_err(|e| format!("read {dir}/task: {e}"))?
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Ok(Cpu {
            ticks: num(11)? + num(12)?,
            sched_ns,
        })
    }

    /// CPU µs per call since `earlier`: (from stat, from schedstat).
    pub fn per_call_since(&self, earlier: &Cpu, calls: usize) -> (f64, f64) {
        let n = calls as f64;
        (
            self.ticks.saturating_sub(earlier.ticks) as f64 / clk_tck() * 1e6 / n,
            self.sched_ns.saturating_sub(earlier.sched_ns) as f64 / 1e3 / n,
        )
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of every thread of this process so far, in ns (the scheduler's exact
/// runtime, unlike the tick-sampled rusage times).
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread so far, in ns.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Voluntary plus involuntary context switches of this process (every thread) so far.
pub fn ctx_switches() -> u64 {
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

/// One CPU's times from /proc/stat, in clock ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    /// user + nice + system.
    pub work: u64,
    /// irq + softirq (a process's utime+stime includes softirq work done on its
    /// behalf, such as loopback packets).
    pub irq: u64,
    pub steal: u64,
    /// All eight fields, idle and iowait included.
    pub total: u64,
}

/// Every CPU's ticks, CPU 0 first.
pub fn cpu_ticks() -> Vec<CpuTicks> {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .chain(std::iter::repeat(0))
                .take(8)
                .collect();
            // user nice system idle iowait irq softirq steal
            CpuTicks {
                work: v[0] + v[1] + v[2],
                irq: v[5] + v[6],
                steal: v[7],
                total: v.iter().sum(),
            }
        })
        .collect()
}

/// `key=value` pairs of a result line, the numbers among them.
pub fn key_values(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Runs a probe process (the bench binary re-executed, so that nothing the bench did
/// before blurs what it measures) and returns its stdout line that starts with
/// `prefix`, and that line's `key=value` numbers.
pub fn run_probe(
    cmd: &mut Command,
    prefix: &str,
    timeout: Duration,
) -> Result<(String, BTreeMap<String, f64>), String> {
    let mut p = Proc::spawn_with(cmd);
    let st = p.wait_exit(timeout);
    let line = p.stdout().into_iter().find(|l| l.starts_with(prefix));
    match (st, line) {
        (Some(s), Some(l)) if s.success() => {
            let kv = key_values(&l);
            Ok((l, kv))
        }
        (st, _) => Err(format!("probe {cmd:?} failed ({st:?})\n{}", p.transcript())),
    }
}
