//! What every bench shares, once: the environment knobs, the statistics
//! ([`stats`]), CPU pinning and the report's machine line ([`machine`]), process
//! readers ([`procs`]), Mosquitto and device processes ([`mosquitto`]), the
//! cloud-side caller ([`caller`]), callgrind runs and their costs ([`callgrind`],
//! through scripts/callgrind-cost), TLS when a bench compares over it ([`tls`]) and
//! the report itself ([`report`]).
//!
//! It sits in a subdirectory so that cargo does not take it for a bench target of its
//! own; each bench declares it with `mod support;` next to its `mod common;`, and
//! uses what its experiment needs.
#![allow(dead_code)]

pub mod caller;
pub mod callgrind;
pub mod machine;
pub mod mosquitto;
pub mod procs;
pub mod report;
pub mod stats;
pub mod tls;

use std::path::PathBuf;

use crate::common;

/// Where the benches keep their files: target/bench (reports), target/bench/work
/// (callgrind files, broker configs).
pub fn out_dir() -> PathBuf {
    let d = common::cmake::repo_root().join("target/bench");
    std::fs::create_dir_all(d.join("work")).expect("create target/bench/work");
    d
}

/// A child-process mode of a bench binary: its arguments in, its exit code out.
pub type Mode = fn(&[String]) -> i32;

/// A bench's `main`. `<bench> <mode> args...` runs one of its child-process `modes`
/// (a probe, a callgrind subject, the baseline device) and exits with its code.
/// Otherwise, under `cargo bench` (which passes `--bench`), `run` runs the experiment;
/// `cargo test --all-targets` runs bench targets without it, and they only say so.
pub fn main(name: &str, modes: &[(&str, Mode)], run: fn() -> i32) {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str);
    if let Some((_, f)) = modes.iter().find(|(m, _)| Some(*m) == mode) {
        std::process::exit(f(&args[2..]));
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("{name}: benchmark only; run it with `cargo bench --bench {name}`");
        return;
    }
    std::process::exit(run());
}

/// Fails unless every tool is on PATH.
pub fn require_tools(bench: &str, tools: &[&str]) {
    for tool in tools {
        assert!(
            common::have_tool(tool),
            "the {bench} benchmark needs {tool}"
        );
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

/// A switch from the environment: `0` is off, anything else on.
pub fn env_on(name: &str, default: bool) -> bool {
    env_num(name, usize::from(default)) != 0
}

/// A comma-separated list of numbers from the environment.
pub fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

/// One of `choices` from the environment (`default` when unset or empty).
pub fn env_choice(name: &str, choices: &[&'static str], default: &'static str) -> &'static str {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) if v.is_empty() => default,
        Ok(v) => choices
            .iter()
            .find(|c| **c == v)
            .copied()
            .unwrap_or_else(|| panic!("{name}={v:?}: expected one of {choices:?}")),
    }
}

/// An experiment's two contenders: the subject (librrpc's side) and its baseline,
/// measured in the same run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Contender {
    Subject,
    Baseline,
}

/// Both contenders, the subject first.
pub const CONTENDERS: [Contender; 2] = [Contender::Subject, Contender::Baseline];

impl Contender {
    /// `subject` or `baseline`, whichever this contender is.
    pub fn pick<T>(self, subject: T, baseline: T) -> T {
        match self {
            Contender::Subject => subject,
            Contender::Baseline => baseline,
        }
    }
}

/// Two contenders in the order of repetition `rep`: as given on even repetitions,
/// swapped on odd ones, so that neither always runs first.
pub fn order<T: Copy>(pair: [T; 2], rep: usize) -> [T; 2] {
    if rep % 2 == 0 {
        pair
    } else {
        [pair[1], pair[0]]
    }
}

/// Unique decimal message ids (Alibaba-style 64-bit numbers), per process and run.
pub fn id_base(run: u64) -> u64 {
    889_455_942_124_347_392 + u64::from(std::process::id()) * 1_000_000_000 + run * 10_000_000
}

/// A request payload pattern: `size` pseudo-random bytes (at least 8). Each request
/// puts its sequence number or message id into the first 8 bytes, so that every echo
/// can be checked against exactly the request it answers.
#[derive(Clone)]
pub struct Pattern {
    pub base: Vec<u8>,
}

impl Pattern {
    pub fn new(size: usize) -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
        let base = (0..size.max(8))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Pattern { base }
    }

    pub fn payload(&self, seq: u64) -> Vec<u8> {
        let mut v = self.base.clone();
        v[..8].copy_from_slice(&seq.to_le_bytes());
        v
    }

    /// Whether `payload` is exactly request `seq`'s.
    pub fn check(&self, seq: u64, payload: &[u8]) -> Result<(), String> {
        if payload.len() != self.base.len()
            || payload[..8] != seq.to_le_bytes()
            || payload[8..] != self.base[8..]
        {
            return Err(format!(
                "reply to {seq} has a wrong payload ({} bytes, expected {})",
                payload.len(),
                self.base.len()
            ));
        }
        Ok(())
    }
}

/// Greatest common divisor.
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The [`caller::StrideCaller`] stride for `n` devices: near the golden ratio of N, so
/// that consecutive calls land far apart, and coprime with N, so that every device is
/// called.
pub fn golden_stride(n: usize) -> usize {
    let mut s = ((n as f64 * 0.618).round() as usize).max(1);
    while gcd(s, n) != 1 {
        s += 1;
    }
    s
}
