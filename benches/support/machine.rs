//! The machine a bench runs on: pinning to CPU 0, the report's "machine:" line,
//! the cache geometry from sysfs, and whether a tool is installed.

use std::path::PathBuf;
use std::process::Command;

/// Pins the calling thread to CPU 0; every thread and child started later inherits
/// it. On a 2-vCPU VM, cross-CPU wake-ups add ~50 µs per hop and make runs swing.
pub fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity(0) pins the
    // calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            panic!(
                "sched_setaffinity(CPU 0): {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Whether `tool` is on PATH (no CI rule: for optional sections).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The first non-empty line a program prints (its version, say).
fn first_line(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// What the "machine:" line names beyond CPU count, CPU model and kernel.
#[derive(Clone, Copy, Default)]
pub struct Show {
    /// The cache sizes and the clock source (in-process benches).
    pub caches: bool,
    /// The Mosquitto version (benches through a broker).
    pub mosquitto: bool,
    /// The valgrind version (benches with callgrind sections).
    pub valgrind: bool,
}

/// The report's "machine:" line.
pub fn machine_line(show: Show) -> String {
    // SAFETY: sysconf has no preconditions.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = first_line("uname", &["-r"]).unwrap_or_else(|| "?".into());
    let mut line = format!("machine: nproc={nproc}, CPU {cpu}");
    if show.caches {
        let caches: Vec<String> = caches().iter().map(Cache::describe).collect();
        line += &format!(" (caches {})", caches.join(", "));
    }
    line += &format!(", Linux {kernel}");
    if show.caches {
        let clock = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
        line += &format!(", clocksource {clock}");
    }
    if show.mosquitto {
        line += ", ";
        line += &first_line("mosquitto", &["-h"]).unwrap_or_else(|| "mosquitto ?".into());
    }
    if show.valgrind {
        line += ", ";
        line += &first_line("valgrind", &["--version"]).unwrap_or_else(|| "valgrind ?".into());
    }
    line
}

/// A data or unified cache of CPU 0, from sysfs.
#[derive(Clone, Copy)]
pub struct Cache {
    pub level: u32,
    pub size: u64,
    pub ways: u64,
    pub line: u64,
}

impl Cache {
    /// As valgrind's `--D1=` / `--LL=` value.
    pub fn arg(&self) -> String {
        format!("{},{},{}", self.size, self.ways, self.line)
    }

    /// Whether valgrind can simulate it: it needs a power-of-two number of sets.
    pub fn simulable(&self) -> bool {
        let sets = self.size / (self.ways * self.line).max(1);
        sets.is_power_of_two() && sets * self.ways * self.line == self.size
    }

    pub fn describe(&self) -> String {
        let kib = self.size / 1024;
        let size = if kib >= 1024 && kib % 1024 == 0 {
            format!("{} MiB", kib / 1024)
        } else {
            format!("{kib} KiB")
        };
        format!("L{} {size} {}-way", self.level, self.ways)
    }
}

/// L1d, L2 and L3 of CPU 0, as far as sysfs tells.
pub fn caches() -> Vec<Cache> {
    let mut v = Vec::new();
    for i in 0..8 {
        let d = PathBuf::from(format!("/sys/devices/system/cpu/cpu0/cache/index{i}"));
        let read = |f: &str| {
            std::fs::read_to_string(d.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(level), Some(kind), Some(size), Some(ways), Some(line)) = (
            read("level"),
            read("type"),
            read("size"),
            read("ways_of_associativity"),
            read("coherency_line_size"),
        ) else {
            continue;
        };
        if kind == "Instruction" {
            continue;
        }
        let size = match size.strip_suffix('K') {
            Some(k) => k.parse::<u64>().ok().map(|k| k * 1024),
            None => size.parse::<u64>().ok(),
        };
        if let (Ok(level), Some(size), Ok(ways), Ok(line)) =
            (level.parse(), size, ways.parse(), line.parse())
        {
            v.push(Cache {
                level,
                size,
                ways,
                line,
            });
        }
    }
    v.sort_by_key(|c| c.level);
    v
}
