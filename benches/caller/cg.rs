//! The caller bench's instruction count: what one sequential call costs the caller
//! process (all its threads), counted by callgrind, which is exact and repeatable
//! where the throughput ratios of this noisy machine wander by ±10 %. The subject is
//! the bench binary re-executed as `caller --cg-run librrpc|bare <port> <calls>`: it
//! connects, makes one call that may retry (the device's subscription), then `calls`
//! sequential calls, each answer checked. Two runs that differ only in `calls` give
//! the instructions per call as their slope; connect, set-up and exit cancel.

use std::path::Path;
use std::time::Duration;

use rrpc::caller::{Caller, CallerConfig};

use super::{lib_first_call, lib_phase, Bare, Settings, DN, PK};
use crate::support::callgrind;
use crate::support::mosquitto::{echo_device_args, runtime, start_mosquitto};
use crate::support::mosquitto::{start_pinned, stop_device};
use crate::support::report::Report;
use crate::support::{env_num, Pattern};

pub fn main(args: &[String]) -> i32 {
    let num = |i: usize| args.get(i).and_then(|p| p.parse::<usize>().ok());
    let (Some(who), Some(port), Some(n)) = (args.first(), num(1), num(2)) else {
        eprintln!("usage: caller --cg-run librrpc|bare <port> <calls>");
        return 2;
    };
    let payload = env_num("RRPC_BENCH_PAYLOAD", 16).clamp(8, 1 << 20);
    let r = match who.as_str() {
        "librrpc" => librrpc(port as u16, n, payload),
        "bare" => bare(port as u16, n, payload),
        _ => Err(format!("unknown contender {who:?}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cg-run {who}: {e}");
            1
        }
    }
}

fn librrpc(port: u16, n: usize, payload: usize) -> Result<(), String> {
    let caller = Caller::connect(CallerConfig::new("127.0.0.1", port))
        .map_err(|e| format!("Caller::connect: {e}"))?;
    let pat = Pattern::new(payload);
    let mut seq = 0u64;
    lib_first_call(&caller, &pat, &mut seq, 5000)?;
    lib_phase(&caller, &pat, &mut seq, n, 1).map(drop)
}

fn bare(port: u16, n: usize, payload: usize) -> Result<(), String> {
    runtime().block_on(async {
        let mut b = Bare::connect(port, payload, 0, 1).await?;
        b.first_call(Duration::from_secs(5)).await?;
        b.phase(n, 1).await.map(drop)
    })
}

/// Instructions per call of one contender: a fresh broker and device, two callgrind
/// runs of the subject, their slope.
fn per_call(echo: &Path, who: &str, k: [usize; 2]) -> Result<f64, String> {
    let broker = start_mosquitto(&format!("caller-cg-{who}"), true, "")?;
    let args = echo_device_args(broker.port, PK, DN);
    let mut device = start_pinned(
        echo,
        &args,
        "echo_device: connected",
        Duration::from_secs(20),
    )?;
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"));
    let mut ir = [0.0; 2];
    let mut err = None;
    for (i, calls) in k.into_iter().enumerate() {
        let file = callgrind::out_file(&format!("caller.{who}.{calls}"));
        let out = me.clone().and_then(|me| {
            callgrind::command(&file, &[])
                .arg(me)
                .args(["--cg-run", who])
                .arg(broker.port.to_string())
                .arg(calls.to_string())
                .output()
                .map_err(|e| format!("valgrind: {e}"))
        });
        match out {
            Ok(o) if o.status.success() => match callgrind::totals(&file) {
                Ok(t) => ir[i] = t["Ir"],
                Err(e) => err = Some(e),
            },
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                err = Some(format!("callgrind {who} {calls}: {}", tail.join(" | ")));
            }
            Err(e) => err = Some(e),
        }
        if err.is_some() {
            break;
        }
    }
    let handled = stop_device(&mut device, "echo_device", &["echo_device: "], |_| Ok(()));
    drop(broker);
    if let Some(e) = err {
        return Err(e);
    }
    // Each run: its calls plus at least one first call.
    let least = (k[0] + k[1] + 2) as u64;
    match handled {
        Ok(h) if h >= least => Ok((ir[1] - ir[0]) / (k[1] - k[0]) as f64),
        Ok(h) => Err(format!(
            "echo_device handled {h} requests, expected at least {least}"
        )),
        Err(e) => Err(e),
    }
}

/// The callgrind section: instructions per sequential call, librrpc and bare.
pub fn section(report: &mut Report, s: &Settings, echo: &Path) {
    let k = s.cg_calls;
    report.section(format!(
        "instructions per sequential call (K=1) in the caller process, all threads: callgrind, \
         (Ir of a run with {} calls - Ir of a run with {} calls) / {}; fresh Mosquitto and echo_device per contender",
        k[1],
        k[0],
        k[1] - k[0]
    ));
    let mut ir = [None, None];
    for (i, (who, label)) in [("librrpc", "librrpc caller"), ("bare", "bare loop")]
        .into_iter()
        .enumerate()
    {
        match per_call(echo, who, k) {
            Ok(x) => {
                report.line(format!("  {label:<15} {x:>9.0} Ir/call"));
                ir[i] = Some(x);
            }
            Err(e) => {
                let first = report.fail(format_args!("callgrind {label}"), &e);
                report.line(format!("  {label:<15} FAILED: {first}"));
            }
        }
    }
    if let [Some(a), Some(b)] = ir {
        report.line(format!(
            "  ratio librrpc/bare {:.3}; the library's extra cost {:.0} Ir/call",
            a / b,
            a - b
        ));
    }
}
