//! What benches/roundtrip.rs and benches/caller.rs share: the output directory, the
//! machine line of the reports, CPU pinning, the environment knobs, the statistics,
//! Mosquitto and device processes, the rumqttc connection and the tokio runtime.
//!
//! It sits in a subdirectory so that cargo does not take it for a bench target of its
//! own; each bench declares it with `mod support;` next to its `mod common;`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions};

use crate::common::{self, Proc};

/// Where the benches keep their files: target/bench.
pub fn out_dir() -> PathBuf {
    let d = common::cmake::repo_root().join("target/bench");
    std::fs::create_dir_all(d.join("work")).expect("create target/bench/work");
    d
}

fn command_line(prog: &str, args: &[&str]) -> Option<String> {
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

/// The report's "machine:" line; `valgrind`: with the valgrind version at the end.
pub fn machine_line(valgrind: bool) -> String {
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
    let kernel = command_line("uname", &["-r"]).unwrap_or_else(|| "?".into());
    let mosq = command_line("mosquitto", &["-h"]).unwrap_or_else(|| "mosquitto ?".into());
    let mut line = format!("machine: nproc={nproc}, CPU {cpu}, Linux {kernel}, {mosq}");
    if valgrind {
        let vg = command_line("valgrind", &["--version"]).unwrap_or_else(|| "valgrind ?".into());
        line.push_str(&format!(", {vg}"));
    }
    line
}

pub fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity(0) pins the
    // calling thread, and every thread and child started later inherits it.
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

/// A number from the environment, `default` when the variable is not set.
pub fn env_num(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

/// A Mosquitto child process: stopped by its PID (SIGTERM, then SIGKILL) and its
/// config file removed when dropped.
pub struct Mosquitto {
    pub proc: Proc,
    conf: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.proc.terminate();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// A fresh Mosquitto on a free loopback port, optionally under `taskset -c 0`; its
/// config file is target/bench/work/mosquitto-<tag>-<port>.conf.
pub fn start_mosquitto(tag: &str, pinned: bool) -> Result<(Mosquitto, u16), String> {
    let port = common::free_port();
    let conf = out_dir()
        .join("work")
        .join(format!("mosquitto-{tag}-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 2097152\npersistence false\n"
        ),
    )
    .map_err(|e| format!("write {}: {e}", conf.display()))?;
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "mosquitto"]);
        c
    } else {
        Command::new("mosquitto")
    };
    cmd.arg("-c").arg(&conf);
    let m = Mosquitto {
        proc: Proc::spawn_with(&mut cmd),
        conf,
    };
    if !common::wait_listening(port, Duration::from_secs(10)) {
        return Err(format!(
            "mosquitto did not listen on {port}\n{}",
            m.proc.transcript()
        ));
    }
    Ok((m, port))
}

/// Stops a device with SIGTERM (clean exit, so it prints its counters and callgrind
/// writes its file) and returns the request count of its exit line ("<prefix>N
/// requests ...", the last such line, for the first of `prefixes` that fits).
/// `who` names the device in the error of an unclean exit; `reported` looks through
/// its stderr lines for errors it printed.
pub fn stop_device(
    p: &mut Proc,
    who: &str,
    prefixes: &[&str],
    reported: impl FnOnce(&[String]) -> Result<(), String>,
) -> Result<u64, String> {
    match p.terminate() {
        Some(s) if s.success() => {}
        other => {
            return Err(format!(
                "{who} did not exit cleanly on SIGTERM ({other:?})\n{}",
                p.transcript()
            ))
        }
    }
    let err = p.stderr();
    reported(&err)?;
    err.iter()
        .rev()
        .find_map(|l| {
            let rest = prefixes.iter().find_map(|pre| l.strip_prefix(pre))?;
            let (n, tail) = rest.split_once(' ')?;
            if tail.starts_with("requests") {
                n.parse().ok()
            } else {
                None
            }
        })
        .ok_or_else(|| format!("no request count in\n{}", p.transcript()))
}

/// A rumqttc connection as the benches use it: TCP_NODELAY (rumqttc leaves Nagle on),
/// 2 MiB packets, 60 s keep-alive; `cap` is the capacity of its request channel.
pub fn fast_connection(client_id: String, port: u16, cap: usize) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1".to_string(), port);
    o.set_max_packet_size(2 << 20, 2 << 20);
    o.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(o, cap);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime")
}
