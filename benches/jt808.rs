//! Experiment: what the JT/T 808 codec's checks and structure cost per frame.
//!
//! Compared: `StreamDecoder` (TCP-sized chunks in, frames out) and `encode_frame`, on
//! 0x0900 pass-through frames whose content needs no escaping ("plain") and whose
//! content is only 0x7e/0x7d ("escaped": every byte escaped, the frame twice as long),
//! 64- and 1,000-byte bodies. Baseline, measured in the same run on the same bytes:
//! the least work any decoder or encoder must do, a plain byte loop that finds the
//! flags, unescapes (or escapes) and XORs the checksum, with no header, no validation
//! and no frame objects. RRPC_BENCH_REPS timed runs of each, interleaved (the order
//! alternates), in process, pinned to CPU 0. Printed: frames/s as medians (min..max),
//! the ratio codec/baseline of the medians, and instructions per frame from callgrind
//! (counted inside the timed function only, the slope between K1 and K2 frames),
//! which is exact on a noisy machine. docs/benchmarks.md has the last results.
//!
//! `cargo bench --bench jt808` runs it. Knobs (environment):
//!   RRPC_BENCH_FRAMES    frames per timed run (20000)
//!   RRPC_BENCH_REPS      timed runs per case (7; the median is reported)
//!   RRPC_BENCH_CALLGRIND 0 skips the callgrind columns (1)
//!   RRPC_BENCH_K1, RRPC_BENCH_K2   frames of the two callgrind runs (2000, 6000)
//! The same executable is the callgrind subject: `jt808 --cg-run <op> <kind> <len> <frames>`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::hint::black_box;
use std::time::Instant;

use rrpc::jt808::{encode_frame, Header, Phone, StreamDecoder, Version};
use support::machine::{machine_line, pin_to_cpu0, Show};
use support::report::{Report, Table};
use support::stats::{median, spread};
use support::{callgrind, env_num, env_on, order};

/// TCP segment payload size the decoder is fed in.
const CHUNK: usize = 1460;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Content bytes that never need escaping.
    Plain,
    /// Content made only of 0x7e and 0x7d: every byte escaped.
    Escaped,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Escaped => "escaped",
        }
    }

    fn parse(s: &str) -> Kind {
        if s == "escaped" {
            Kind::Escaped
        } else {
            Kind::Plain
        }
    }

    fn content(self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| match self {
                Kind::Plain => (i % 100) as u8 + 0x20,
                Kind::Escaped => [0x7e, 0x7d][i % 2],
            })
            .collect()
    }
}

fn header(serial: u16) -> Header {
    let phone = Phone::from_digits("13800138000", Version::V2013).expect("phone");
    Header::new(0x0900, phone, serial)
}

/// The body of a 0x0900: type byte 0x41 then the content.
fn body(kind: Kind, len: usize) -> Vec<u8> {
    let mut b = vec![0x41];
    b.extend(kind.content(len - 1));
    b
}

/// `frames` encoded 0x0900 frames back to back, as a terminal's TCP stream.
fn stream(kind: Kind, len: usize, frames: usize) -> Vec<u8> {
    let body = body(kind, len);
    let mut out = Vec::new();
    for i in 0..frames {
        encode_frame(&header(i as u16), &body, &mut out).expect("encode");
    }
    out
}

fn decode_codec(wire: &[u8]) -> usize {
    let mut dec = StreamDecoder::default();
    let mut n = 0;
    for chunk in wire.chunks(CHUNK) {
        dec.push(chunk);
        while let Some(f) = dec.next_frame() {
            let f = f.expect("valid frame");
            black_box(&f);
            n += 1;
        }
    }
    n
}

/// The baseline decoder: flags, unescape and checksum, nothing else.
fn decode_baseline(wire: &[u8]) -> usize {
    let mut n = 0;
    let mut frame: Vec<u8> = Vec::with_capacity(2048);
    let (mut inside, mut escaped) = (false, false);
    for chunk in wire.chunks(CHUNK) {
        for &b in chunk {
            if b == 0x7e {
                if inside && !frame.is_empty() {
                    let x = frame.iter().fold(0u8, |a, &c| a ^ c);
                    assert_eq!(x, 0, "checksum");
                    black_box(&frame);
                    n += 1;
                    frame.clear();
                    inside = false;
                } else {
                    inside = true;
                }
            } else if escaped {
                frame.push(if b == 0x02 { 0x7e } else { 0x7d });
                escaped = false;
            } else if b == 0x7d {
                escaped = true;
            } else {
                frame.push(b);
            }
        }
    }
    n
}

fn encode_codec(kind: Kind, len: usize, frames: usize, out: &mut Vec<u8>) -> usize {
    let body = body(kind, len);
    for i in 0..frames {
        out.clear();
        encode_frame(&header(i as u16), black_box(&body), out).expect("encode");
        black_box(&out);
    }
    frames
}

/// The baseline encoder: the header bytes laid out by hand, escaping, checksum.
fn encode_baseline(kind: Kind, len: usize, frames: usize, out: &mut Vec<u8>) -> usize {
    let body = body(kind, len);
    let mut raw = Vec::with_capacity(2048);
    for i in 0..frames {
        raw.clear();
        raw.extend_from_slice(&[0x09, 0x00]);
        raw.extend_from_slice(&(body.len() as u16).to_be_bytes());
        raw.extend_from_slice(&[0x01, 0x38, 0x00, 0x13, 0x80, 0x00]);
        raw.extend_from_slice(&(i as u16).to_be_bytes());
        raw.extend_from_slice(black_box(&body));
        let x = raw.iter().fold(0u8, |a, &c| a ^ c);
        raw.push(x);
        out.clear();
        out.push(0x7e);
        for &b in &raw {
            match b {
                0x7e => out.extend_from_slice(&[0x7d, 0x02]),
                0x7d => out.extend_from_slice(&[0x7d, 0x01]),
                _ => out.push(b),
            }
        }
        out.push(0x7e);
        black_box(&out);
    }
    frames
}

/// Runs one operation over `frames` frames; returns frames done. Callgrind counts
/// only inside this function (`--toggle-collect`), so building the input is excluded.
#[inline(never)]
fn run(op: &str, kind: Kind, len: usize, frames: usize, wire: &[u8], out: &mut Vec<u8>) -> usize {
    match op {
        "decode" => decode_codec(wire),
        "decode-baseline" => decode_baseline(wire),
        "encode" => encode_codec(kind, len, frames, out),
        "encode-baseline" => encode_baseline(kind, len, frames, out),
        _ => panic!("unknown operation {op}"),
    }
}

/// The callgrind subject: one run of `op`.
fn cg_run(args: &[String]) -> i32 {
    let [op, kind, len, frames] = args else {
        panic!("usage: jt808 --cg-run <op> <plain|escaped> <body len> <frames>");
    };
    let (kind, len, frames) = (
        Kind::parse(kind),
        len.parse().expect("len"),
        frames.parse().expect("frames"),
    );
    let wire = stream(kind, len, frames);
    let mut out = Vec::with_capacity(4096);
    let n = run(op, kind, len, frames, &wire, &mut out);
    assert_eq!(n, frames);
    0
}

/// Instructions per frame of `op`: callgrind totals of two runs, their slope.
fn instructions(op: &str, kind: Kind, len: usize, k: [usize; 2]) -> Result<f64, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut ir = [0.0; 2];
    for (i, frames) in k.into_iter().enumerate() {
        let file = callgrind::out_file(&format!("jt808.{op}.{}.{len}.{frames}", kind.name()));
        let toggle = ["--toggle-collect=*jt808::run*".to_string()];
        let args = [kind.name().to_string(), len.to_string(), frames.to_string()];
        let out = callgrind::command(&file, &toggle)
            .arg(&me)
            .args(["--cg-run", op])
            .args(args)
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "callgrind {op}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        ir[i] = callgrind::totals(&file)?["Ir"];
    }
    Ok((ir[1] - ir[0]) / (k[1] - k[0]) as f64)
}

fn main() {
    support::main("jt808", &[("--cg-run", cg_run)], experiment);
}

/// Both operations, both kinds of content, both body sizes: codec and baseline
/// interleaved, then their instruction counts.
fn experiment() -> i32 {
    let frames = env_num("RRPC_BENCH_FRAMES", 20_000).max(1);
    let reps = env_num("RRPC_BENCH_REPS", 7).max(1);
    let k = [
        env_num("RRPC_BENCH_K1", 2000),
        env_num("RRPC_BENCH_K2", 6000),
    ];
    assert!(k[1] > k[0], "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1");
    let callgrind = env_on("RRPC_BENCH_CALLGRIND", true) && callgrind::available();
    pin_to_cpu0();
    let mut report = Report::new(
        "jt808",
        "JT/T 808 codec in process: StreamDecoder and encode_frame against a minimal byte loop (the baseline)",
        &machine_line(Show { valgrind: callgrind, ..Show::default() }),
        &format!(
            "bench pinned to CPU 0; 0x0900 frames, 2013 header, body = type 0x41 + content; \
             decoder fed {CHUNK}-byte chunks; {frames} frames per run, median of {reps} runs (min..max); codec and baseline interleaved"
        ),
    );
    let table = Table::new(&[8, 8, 6, 7, 27, 27, 7, 10, 9]).left(2);
    report.line(table.row([
        "op",
        "content",
        "body",
        "wire",
        "codec frames/s",
        "baseline frames/s",
        "ratio",
        "Ir/frame",
        "base Ir",
    ]));
    let mut out = Vec::with_capacity(4096);
    for op in ["decode", "encode"] {
        let base_op = format!("{op}-baseline");
        for kind in [Kind::Plain, Kind::Escaped] {
            for len in [64usize, 1000] {
                let wire = stream(kind, len, frames);
                run(op, kind, len, frames, &wire, &mut out); // warm-up
                run(&base_op, kind, len, frames, &wire, &mut out);
                let (mut ours, mut base) = (Vec::new(), Vec::new());
                for rep in 0..reps {
                    for o in order([op, &base_op], rep) {
                        let t = Instant::now();
                        let n = run(o, kind, len, frames, &wire, &mut out);
                        let rate = n as f64 / t.elapsed().as_secs_f64();
                        assert_eq!(n, frames, "{o}");
                        if o == op { &mut ours } else { &mut base }.push(rate);
                    }
                }
                let mut ir = |o: &str| -> String {
                    if !callgrind {
                        return "-".into();
                    }
                    match instructions(o, kind, len, k) {
                        Ok(v) => format!("{v:.0}"),
                        Err(e) => {
                            report.fail(format_args!("{o} {} {len}", kind.name()), &e);
                            "-".into()
                        }
                    }
                };
                let (ir_ours, ir_base) = (ir(op), ir(&base_op));
                report.line(table.row([
                    op.to_string(),
                    kind.name().into(),
                    len.to_string(),
                    (wire.len() / frames).to_string(),
                    spread(&ours, 0),
                    spread(&base, 0),
                    format!("{:.2}", median(&ours) / median(&base)),
                    ir_ours,
                    ir_base,
                ]));
            }
        }
    }
    report.line(format!(
        "  body: bytes of the 0x0900 body; wire: bytes per escaped frame; ratio: codec/baseline frames/s (medians); \
         Ir/frame: callgrind instructions per frame (slope of {} and {} frames, input building excluded)",
        k[0], k[1]
    ));
    report.finish()
}
