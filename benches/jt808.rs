//! The JT/T 808 codec in process: frames/s through `StreamDecoder` (TCP-sized
//! chunks in, frames out) and `encode_frame`, for pass-through frames whose content
//! needs no escaping and for content made only of 0x7e/0x7d (every byte escaped,
//! the frame twice as long). The baseline, measured in the same run on the same
//! bytes, is the least work any decoder or encoder must do: a plain byte loop that
//! finds the flags, unescapes (or escapes) and XORs the checksum, with no header,
//! no validation and no frame objects. The ratio codec/baseline says what the
//! codec's checks and structure cost. Instructions per frame come from callgrind
//! (two-run slope, counted inside the timed function only), which is exact on a
//! noisy machine.
//!
//! `cargo bench --bench jt808` runs it. Knobs (environment):
//!   RRPC_BENCH_FRAMES    frames per timed run (20000)
//!   RRPC_BENCH_REPS      timed runs per case (7; the median is reported)
//!   RRPC_BENCH_CALLGRIND 0 skips the callgrind section (1)
//! The same executable is the callgrind subject: `jt808 --cg-run <op> <kind> <len> <frames>`.

#[path = "../tests/common/mod.rs"]
mod common;
// Not every shared helper is used here.
#[allow(dead_code)]
mod support;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use rrpc::jt808::{encode_frame, Header, Phone, StreamDecoder, Version};
use support::{env_num, median, min_max, pin_to_cpu0};

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
fn cg_run(args: &[String]) {
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
}

/// Instructions per frame of `op`: callgrind totals of two runs, their slope.
fn instructions(op: &str, kind: Kind, len: usize) -> Option<f64> {
    let me = std::env::current_exe().ok()?;
    let total = |frames: usize| -> Option<f64> {
        let out =
            std::env::temp_dir().join(format!("callgrind.jt808.{}.{frames}", std::process::id()));
        let st = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--toggle-collect=*jt808::run*")
            .arg(&me)
            .args([
                "--cg-run",
                op,
                kind.name(),
                &len.to_string(),
                &frames.to_string(),
            ])
            .output()
            .ok()?;
        let text = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        if !st.status.success() {
            eprintln!(
                "jt808: callgrind {op} failed: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            return None;
        }
        text?
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
    };
    let (a, b) = (total(2000)?, total(6000)?);
    Some((b - a) / 4000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cg-run") {
        return cg_run(&args[1..]);
    }
    pin_to_cpu0();
    let frames = env_num("RRPC_BENCH_FRAMES", 20_000);
    let reps = env_num("RRPC_BENCH_REPS", 7).max(1);
    let callgrind = env_num("RRPC_BENCH_CALLGRIND", 1) != 0;
    println!(
        "JT/T 808 codec in process (bench pinned to CPU 0): 0x0900 frames, 2013 header, body = type 0x41 + content; \
         decoder fed {CHUNK}-byte chunks; {frames} frames per run, median of {reps} runs (min..max)"
    );
    println!(
        "  {:<8} {:<8} {:>6} {:>7}  {:>26}  {:>26}  {:>6}  {:>9} {:>9}",
        "op",
        "content",
        "body",
        "wire",
        "codec frames/s",
        "baseline frames/s",
        "ratio",
        "Ir/frame",
        "base Ir"
    );
    let mut out = Vec::with_capacity(4096);
    for op in ["decode", "encode"] {
        for kind in [Kind::Plain, Kind::Escaped] {
            for len in [64usize, 1000] {
                let wire = stream(kind, len, frames);
                let per_frame = wire.len() / frames;
                let base_op = format!("{op}-baseline");
                let (mut ours, mut base) = (Vec::new(), Vec::new());
                run(op, kind, len, frames, &wire, &mut out); // warm-up
                run(&base_op, kind, len, frames, &wire, &mut out);
                for rep in 0..reps {
                    // Interleaved, the order alternating, so neither always goes first.
                    let order = if rep % 2 == 0 {
                        [op, &base_op[..]]
                    } else {
                        [&base_op[..], op]
                    };
                    for o in order {
                        let t = Instant::now();
                        let n = run(o, kind, len, frames, &wire, &mut out);
                        let rate = n as f64 / t.elapsed().as_secs_f64();
                        assert_eq!(n, frames, "{o}");
                        if o == op {
                            ours.push(rate)
                        } else {
                            base.push(rate)
                        }
                    }
                }
                let span = |v: &[f64]| {
                    let (lo, hi) = min_max(v);
                    format!("{:.0} ({:.0}..{:.0})", median(v), lo, hi)
                };
                let (m_ours, m_base) = (median(&ours), median(&base));
                let (ir, ir_base) = if callgrind {
                    (
                        instructions(op, kind, len),
                        instructions(&base_op, kind, len),
                    )
                } else {
                    (None, None)
                };
                let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
                println!(
                    "  {:<8} {:<8} {:>6} {:>7}  {:>26}  {:>26}  {:>6.2}  {:>9} {:>9}",
                    op,
                    kind.name(),
                    len,
                    per_frame,
                    span(&ours),
                    span(&base),
                    m_ours / m_base,
                    f(ir),
                    f(ir_base)
                );
            }
        }
    }
    println!(
        "  body: bytes of the 0x0900 body; wire: bytes per escaped frame; ratio: codec/baseline frames/s (medians); \
         Ir/frame: callgrind instructions per frame (slope of 2000 and 6000 frames, input building excluded)"
    );
}
