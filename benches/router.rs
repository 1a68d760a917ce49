//! The router through its C API, in process, with no network: messages fed to
//! `rrpc_router_handle_message` exactly as a C gateway feeds what its own MQTT stack
//! received, each request answered inside the shared C callback with
//! `rrpc_router_reply`, replies going to a C publish function that only counts and
//! checks. See docs/benchmarks.md for what is measured and why.
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
//!   RRPC_BENCH_CALLGRIND       0 skips the callgrind section (1)
//!   RRPC_BENCH_K1, RRPC_BENCH_K2   requests of the two callgrind runs (20000, 60000)
//!   RRPC_BENCH_CG_DEVICES      devices registered in the callgrind runs (1000)
//!   RRPC_BENCH_CACHESIM        0 skips the simulated-cache section (1)
//!
//! The same executable is also the memory probe and the callgrind subject:
//!   `router --mem-probe devices <count>`, `router --mem-probe pending <count> <devices>`,
//!   `router --cg-run <devices> <requests> <topics built>`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rrpc::ffi::misc::rrpc_dialect::RRPC_DIALECT_ALIBABA;
use rrpc::ffi::router::{
    rrpc_message_kind, rrpc_router, rrpc_router_add_device, rrpc_router_config,
    rrpc_router_config_init, rrpc_router_free, rrpc_router_get_stats, rrpc_router_handle_message,
    rrpc_router_new, rrpc_router_reply, rrpc_router_request_cb, rrpc_router_set_callback,
    rrpc_router_set_publish, rrpc_router_stats, rrpc_router_tick,
};
use rrpc::ffi::rrpc_request;
use rrpc::ffi::rrpc_status::{self, RRPC_STATUS_OK};

const PK: &CStr = c"pk";
const PAYLOAD_LEN: usize = 16;
const KIND_REQUEST: u32 = rrpc_message_kind::RRPC_MESSAGE_REQUEST as u32;
/// A gateway calls `rrpc_router_tick` now and then; here once per this many messages.
const TICK_EVERY: usize = 16_384;
/// Message ids: Alibaba-style 19-digit decimals, unique per run and message.
const ID_BASE: u64 = 1_700_000_000_000_000_000;
const ID_RUN_STRIDE: u64 = 10_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--mem-probe") => std::process::exit(probe::main(&args[2..])),
        Some("--cg-run") => std::process::exit(cg_subject(&args[2..])),
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: stay quick.
        eprintln!("router: benchmark only; run it with `cargo bench --bench router`");
        return;
    }
    bench::run();
}

// ---- the C side: entry points, callback, publish function ------------------------------

type HandleFn =
    extern "C" fn(*mut rrpc_router, *const u8, usize, *const u8, usize, *mut u32) -> rrpc_status;
type ReplyFn = extern "C" fn(*mut rrpc_router, u64, *const u8, usize) -> rrpc_status;
type TickFn = extern "C" fn(*mut rrpc_router, u64, *mut u64) -> rrpc_status;

/// The C entry points of the hot path, called through function pointers the optimiser
/// cannot see through (`black_box`): nothing of the library is inlined into the
/// bench's loop or callback, as when a C gateway calls librrpc.so.
#[derive(Clone, Copy)]
struct Api {
    handle_message: HandleFn,
    reply: ReplyFn,
    tick: TickFn,
}

impl Api {
    fn get() -> Api {
        Api {
            handle_message: std::hint::black_box(rrpc_router_handle_message as HandleFn),
            reply: std::hint::black_box(rrpc_router_reply as ReplyFn),
            tick: std::hint::black_box(rrpc_router_tick as TickFn),
        }
    }
}

/// The gateway's state, shared by the feeding loop, the callback and the publish
/// function (through `user_data`); only cells, since all three hold it at once.
struct Gateway {
    reply: ReplyFn,
    /// The message being handled: its sequence number (also in its payload) and its
    /// request topic.
    cur_seq: Cell<u64>,
    cur_topic: Cell<(*const u8, usize)>,
    /// Publishes seen for the message being handled.
    cur_pubs: Cell<u32>,
    /// Compare the whole response topic and the request view (warm-up runs).
    full_check: Cell<bool>,
    callbacks: Cell<u64>,
    published: Cell<u64>,
    bad: Cell<u64>,
    first_bad: RefCell<Option<String>>,
}

impl Gateway {
    fn new(api: &Api) -> Box<Gateway> {
        Box::new(Gateway {
            reply: api.reply,
            cur_seq: Cell::new(0),
            cur_topic: Cell::new((std::ptr::null(), 0)),
            cur_pubs: Cell::new(0),
            full_check: Cell::new(false),
            callbacks: Cell::new(0),
            published: Cell::new(0),
            bad: Cell::new(0),
            first_bad: RefCell::new(None),
        })
    }

    fn user_data(&self) -> *mut c_void {
        (self as *const Gateway).cast_mut().cast()
    }

    #[cold]
    fn note_bad(&self, what: String) {
        self.bad.set(self.bad.get() + 1);
        let mut f = self.first_bad.borrow_mut();
        if f.is_none() {
            *f = Some(what);
        }
    }

    /// The request topic being handled.
    fn request_topic(&self) -> &[u8] {
        let (p, n) = self.cur_topic.get();
        // SAFETY: set by `feed` to a span of the batch, alive while it is handled.
        unsafe { std::slice::from_raw_parts(p, n) }
    }

    fn full_checks(&self, topic: &[u8], payload: &[u8]) -> Result<(), String> {
        let req = String::from_utf8_lossy(self.request_topic()).into_owned();
        let want = req.replacen("/rrpc/request/", "/rrpc/response/", 1);
        if topic != want.as_bytes() {
            return Err(format!(
                "reply to {req} published on {}, want {want}",
                String::from_utf8_lossy(topic)
            ));
        }
        if payload[8..] != PAYLOAD_TAIL[..] {
            return Err(format!("reply to {req}: payload {payload:?}"));
        }
        Ok(())
    }
}

/// Bytes 8..16 of every request payload (bytes 0..8: the message's sequence number).
const PAYLOAD_TAIL: [u8; 8] = *b"rrpc-gw!";

/// The shared C callback: answers at once with the request's payload.
unsafe extern "C" fn answer(
    user_data: *mut c_void,
    router: *mut rrpc_router,
    request: *const rrpc_request,
) {
    // SAFETY: `user_data` is the `Gateway` registered with this callback, alive for
    // the router's lifetime; `request` is valid during the call.
    let (g, r) = unsafe { (&*user_data.cast::<Gateway>(), &*request) };
    g.callbacks.set(g.callbacks.get() + 1);
    if g.full_check.get() {
        // SAFETY: NUL-terminated strings of the request view, valid during the call.
        if let Err(e) = unsafe { check_view(g, r) } {
            g.note_bad(e);
        }
    }
    let st = (g.reply)(router, r.token, r.payload, r.payload_len);
    if st != RRPC_STATUS_OK {
        g.note_bad(format!("rrpc_router_reply returned {st:?}"));
    }
}

/// The request view must name the device and message id of the request topic.
unsafe fn check_view(g: &Gateway, r: &rrpc_request) -> Result<(), String> {
    let s = |p: *const c_char| {
        if p.is_null() {
            "(NULL)".to_string()
        } else {
            // SAFETY: NUL-terminated, valid during the callback (caller's contract).
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let got = format!(
        "/sys/{}/{}/rrpc/request/{}",
        s(r.product_key),
        s(r.device_name),
        s(r.message_id)
    );
    let want = String::from_utf8_lossy(g.request_topic()).into_owned();
    if got != want || r.dialect != RRPC_DIALECT_ALIBABA as u32 || !r.custom_topic.is_null() {
        return Err(format!(
            "request view {got} (dialect {}) for {want}",
            r.dialect
        ));
    }
    Ok(())
}

/// A callback that keeps every request pending (memory probe).
unsafe extern "C" fn ignore(
    user_data: *mut c_void,
    _router: *mut rrpc_router,
    _request: *const rrpc_request,
) {
    // SAFETY: `user_data` is the probe's `Gateway`.
    let g = unsafe { &*user_data.cast::<Gateway>() };
    g.callbacks.set(g.callbacks.get() + 1);
}

/// The publish function: no I/O; counts, and checks the topic's length (the request
/// topic's plus one: `request` -> `response`) and that the payload is the request's.
unsafe extern "C" fn publish(
    user_data: *mut c_void,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: i32,
) -> i32 {
    // SAFETY: `user_data` is the registered `Gateway`; `topic` is NUL-terminated and
    // `payload` holds `len` bytes during the call.
    let g = unsafe { &*user_data.cast::<Gateway>() };
    g.published.set(g.published.get() + 1);
    g.cur_pubs.set(g.cur_pubs.get() + 1);
    let topic = unsafe { CStr::from_ptr(topic) }.to_bytes();
    if len != PAYLOAD_LEN || payload.is_null() {
        g.note_bad(format!("published payload of {len} bytes"));
        return 0;
    }
    let payload = unsafe { std::slice::from_raw_parts(payload, len) };
    let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    if topic.len() != g.cur_topic.get().1 + 1 || seq != g.cur_seq.get() || qos != 0 {
        g.note_bad(format!(
            "publish of {} (seq {seq}, qos {qos}) while handling {} (seq {})",
            String::from_utf8_lossy(topic),
            String::from_utf8_lossy(g.request_topic()),
            g.cur_seq.get()
        ));
    } else if g.full_check.get() {
        if let Err(e) = g.full_checks(topic, payload) {
            g.note_bad(e);
        }
    }
    0
}

// ---- routers, batches, feeding -----------------------------------------------------------

/// An owned router handle, freed on drop.
struct Router(*mut rrpc_router);

impl Drop for Router {
    fn drop(&mut self) {
        let st = rrpc_router_free(self.0);
        assert_eq!(st, RRPC_STATUS_OK, "rrpc_router_free");
    }
}

fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next failing call.
    unsafe { CStr::from_ptr(rrpc::ffi::misc::rrpc_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn check(st: rrpc_status, what: &str) {
    assert_eq!(st, RRPC_STATUS_OK, "{what}: {}", last_error());
}

fn default_config() -> rrpc_router_config {
    let mut cfg = rrpc_router_config {
        max_pending: 0,
        max_payload: 0,
        request_timeout_ms: 0,
        manual_clock: false,
    };
    check(rrpc_router_config_init(&mut cfg), "rrpc_router_config_init");
    cfg
}

/// A router with the gateway's publish function and `callback` as shared callback.
fn new_router(cfg: &rrpc_router_config, g: &Gateway, callback: rrpc_router_request_cb) -> Router {
    let mut r: *mut rrpc_router = std::ptr::null_mut();
    check(rrpc_router_new(cfg, &mut r), "rrpc_router_new");
    let r = Router(r);
    check(
        rrpc_router_set_publish(r.0, Some(publish), g.user_data()),
        "rrpc_router_set_publish",
    );
    check(
        rrpc_router_set_callback(r.0, callback, g.user_data()),
        "rrpc_router_set_callback",
    );
    r
}

/// Registers dev0..dev{n-1} of product "pk" (Alibaba system topics, shared callback).
/// The names are written into a stack buffer: nothing of the bench stays on the heap.
fn add_devices(r: &Router, n: usize) {
    let mut name = [0u8; 32];
    for i in 0..n {
        let mut w = &mut name[..];
        write!(w, "dev{i}\0").expect("name fits");
        let st = rrpc_router_add_device(
            r.0,
            RRPC_DIALECT_ALIBABA as u32,
            PK.as_ptr(),
            name.as_ptr().cast(),
            std::ptr::null(),
            None,
            std::ptr::null_mut(),
        );
        check(st, "rrpc_router_add_device");
    }
}

fn stats(r: &Router) -> rrpc_router_stats {
    let mut s = rrpc_router_stats::default();
    check(rrpc_router_get_stats(r.0, &mut s), "rrpc_router_get_stats");
    s
}

/// Which device each message of a run goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// A device drawn at random (the same pseudo-random sequence in every run):
    /// requests spread over the devices with no pattern that a cache or a hardware
    /// prefetcher could learn, as from many independent callers.
    Random,
    /// Message j to device j mod N: neighbours in time are neighbours in the
    /// registration order (diagnostic).
    Registration,
}

impl Order {
    fn device(self, j: u64, devices: usize) -> u64 {
        match self {
            Order::Registration => j % devices as u64,
            Order::Random => splitmix64(j) % devices as u64,
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value for each input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Request topics and payloads laid out back to back, as a receive buffer holds
/// them: messages `first..first + len` of a run.
struct Batch {
    first: usize,
    text: Vec<u8>,
    spans: Vec<(u32, u32)>,
    payloads: Vec<[u8; PAYLOAD_LEN]>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            first: 0,
            text: Vec::new(),
            spans: Vec::new(),
            payloads: Vec::new(),
        }
    }

    /// Messages 0..m of a run, all built up front.
    fn build(devices: usize, order: Order, m: usize, run: u64) -> Batch {
        let mut b = Batch::new();
        b.fill(devices, order, 0, m, run);
        b
    }

    /// Refills the batch, keeping its memory, with messages `first..first + count`:
    /// message j goes to device `order.device(j)` with id ID_BASE + run * 10^7 + j.
    fn fill(&mut self, devices: usize, order: Order, first: usize, count: usize, run: u64) {
        assert!(
            ((first + count) as u64) < ID_RUN_STRIDE,
            "at most 10^7 messages per run"
        );
        self.first = first;
        self.text.clear();
        self.spans.clear();
        self.payloads.clear();
        for j in first as u64..(first + count) as u64 {
            let d = order.device(j, devices);
            let start = self.text.len();
            write!(
                self.text,
                "/sys/pk/dev{d}/rrpc/request/{}",
                ID_BASE + run * ID_RUN_STRIDE + j
            )
            .expect("write to a Vec");
            self.spans
                .push((start as u32, (self.text.len() - start) as u32));
            let mut p = [0u8; PAYLOAD_LEN];
            p[..8].copy_from_slice(&j.to_le_bytes());
            p[8..].copy_from_slice(&PAYLOAD_TAIL);
            self.payloads.push(p);
        }
        assert!(self.text.len() < u32::MAX as usize);
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// Feeds the first `count` messages of `b`; returns the elapsed time. Every message
/// must be classified as a request and, when `one_publish`, published exactly once
/// before `rrpc_router_handle_message` returns.
#[inline(never)]
fn feed(
    api: &Api,
    r: &Router,
    g: &Gateway,
    b: &Batch,
    count: usize,
    one_publish: bool,
) -> Duration {
    let base = b.text.as_ptr();
    let started = Instant::now();
    for (i, (&(start, len), payload)) in b.spans.iter().zip(&b.payloads).take(count).enumerate() {
        let j = b.first + i;
        // SAFETY: every span lies inside `b.text`.
        let topic = unsafe { base.add(start as usize) };
        g.cur_seq.set(j as u64);
        g.cur_topic.set((topic, len as usize));
        g.cur_pubs.set(0);
        let mut kind = u32::MAX;
        let st = (api.handle_message)(
            r.0,
            topic,
            len as usize,
            payload.as_ptr(),
            PAYLOAD_LEN,
            &mut kind,
        );
        if st != RRPC_STATUS_OK || kind != KIND_REQUEST || (one_publish && g.cur_pubs.get() != 1) {
            g.note_bad(format!(
                "message {j} ({}): status {st:?}, kind {kind}, {} publishes",
                String::from_utf8_lossy(g.request_topic()),
                g.cur_pubs.get()
            ));
        }
        if j % TICK_EVERY == TICK_EVERY - 1 {
            let st = (api.tick)(r.0, 0, std::ptr::null_mut());
            if st != RRPC_STATUS_OK {
                g.note_bad(format!("rrpc_router_tick: {st:?}"));
            }
        }
    }
    started.elapsed()
}

// ---- /proc/self/status and the allocator ---------------------------------------------------

/// VmRSS and RssAnon (kB) of this process.
fn rss_kb() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Bytes the allocator has handed out and not got back (glibc: in-use arena chunks
/// plus mmapped chunks).
fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// One reading: "rss_kb anon_kb heap_bytes".
fn reading() -> [u64; 3] {
    let h = heap_bytes();
    let (rss, anon) = rss_kb();
    [rss, anon, h]
}

/// The memory probe, in a fresh process (RSS is process-wide and never shrinks much,
/// so nothing done before may blur it). Prints one line of `key=value` pairs.
mod probe {
    use super::*;

    pub fn main(args: &[String]) -> i32 {
        let num = |i: usize| args.get(i).and_then(|v| v.parse::<usize>().ok());
        let api = Api::get();
        let g = Gateway::new(&api);
        match (args.first().map(String::as_str), num(1), num(2)) {
            (Some("devices"), Some(n), None) => {
                let cfg = default_config();
                let r = new_router(&cfg, &g, Some(answer));
                let before = reading();
                add_devices(&r, n);
                let after = reading();
                let s = stats(&r);
                if s.devices != n as u64 {
                    eprintln!("probe: {} devices registered, want {n}", s.devices);
                    return 1;
                }
                println!(
                    "probe devices={n} rss_before_kb={} rss_after_kb={} anon_before_kb={} anon_after_kb={} heap_before={} heap_after={}",
                    before[0], after[0], before[1], after[1], before[2], after[2]
                );
                0
            }
            (Some("pending"), Some(k), Some(devices)) => {
                let b = Batch::build(devices, Order::Random, k, 0);
                let mut cfg = default_config();
                cfg.max_pending = k as u32;
                cfg.request_timeout_ms = 3_600_000;
                let r0 = reading();
                let r = new_router(&cfg, &g, Some(ignore));
                let reserved = reading();
                add_devices(&r, devices);
                let before = reading();
                feed(&api, &r, &g, &b, k, false);
                let after = reading();
                let s = stats(&r);
                let ok = s.requests == k as u64
                    && s.pending == k as u64
                    && s.replied == 0
                    && s.table_full == 0
                    && g.callbacks.get() == k as u64
                    && g.published.get() == 0
                    && g.bad.get() == 0;
                if !ok {
                    eprintln!(
                        "probe: requests {} pending {} replied {} table_full {} callbacks {} published {} bad {} ({:?})",
                        s.requests,
                        s.pending,
                        s.replied,
                        s.table_full,
                        g.callbacks.get(),
                        g.published.get(),
                        g.bad.get(),
                        g.first_bad.borrow()
                    );
                    return 1;
                }
                println!(
                    "probe pending={k} devices={devices} pending_now={} rss_before_kb={} rss_after_kb={} anon_before_kb={} anon_after_kb={} heap_before={} heap_after={} rss_new_kb={} heap_new={} rss_base_kb={} heap_base={}",
                    s.pending,
                    before[0],
                    after[0],
                    before[1],
                    after[1],
                    before[2],
                    after[2],
                    reserved[0],
                    reserved[2],
                    r0[0],
                    r0[2]
                );
                0
            }
            _ => {
                eprintln!(
                    "usage: router --mem-probe devices <count> | router --mem-probe pending <count> <devices>"
                );
                2
            }
        }
    }
}

/// The callgrind subject: `<devices> <requests> <built>` registers the devices, builds
/// `built` request topics (the same number in both runs, so that building them
/// cancels in the slope) and feeds the first `requests` of them.
fn cg_subject(args: &[String]) -> i32 {
    let num = |i: usize| args.get(i).and_then(|v| v.parse::<usize>().ok());
    let (Some(devices), Some(k), Some(built)) = (num(0), num(1), num(2)) else {
        eprintln!("usage: router --cg-run <devices> <requests> <topics built>");
        return 2;
    };
    if k > built {
        eprintln!("cg-run: {k} requests but only {built} topics");
        return 2;
    }
    let api = Api::get();
    let g = Gateway::new(&api);
    let cfg = default_config();
    let r = new_router(&cfg, &g, Some(answer));
    add_devices(&r, devices);
    let b = Batch::build(devices, Order::Random, built, 0);
    feed(&api, &r, &g, &b, k, true);
    let s = stats(&r);
    let k = k as u64;
    let ok = s.messages == k
        && s.requests == k
        && s.replied == k
        && s.pending == 0
        && g.published.get() == k
        && g.bad.get() == 0;
    eprintln!(
        "cg-run: handled={} replied={} published={} bad={}",
        s.requests,
        s.replied,
        g.published.get(),
        g.bad.get()
    );
    if !ok {
        eprintln!("cg-run: FAILED ({:?})", g.first_bad.borrow());
        return 1;
    }
    0
}

// ---- the benchmark -------------------------------------------------------------------------

mod bench {
    use super::*;

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
        k1: usize,
        k2: usize,
        cg_devices: usize,
        cachesim: bool,
    }

    fn env_num(name: &str, default: usize) -> usize {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
            Err(_) => default,
        }
    }

    impl Settings {
        fn from_env() -> Settings {
            let ns: Vec<usize> = std::env::var("RRPC_BENCH_NS")
                .unwrap_or_else(|_| "1,1000,100000".into())
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("RRPC_BENCH_NS: bad count {s:?}"))
                })
                .collect();
            assert!(
                ns.iter().all(|&n| n >= 1),
                "RRPC_BENCH_NS: counts must be >= 1"
            );
            let s = Settings {
                m: env_num("RRPC_BENCH_M", 200_000),
                reps: env_num("RRPC_BENCH_REPS", 9).max(1),
                recv: env_num("RRPC_BENCH_RECV", 256).max(1),
                ns,
                mem: env_num("RRPC_BENCH_MEM", 1) != 0,
                mem_devices: env_num("RRPC_BENCH_MEM_DEVICES", 100_000),
                mem_pending: env_num("RRPC_BENCH_MEM_PENDING", 50_000),
                mem_reps: env_num("RRPC_BENCH_MEM_REPS", 3).max(1),
                callgrind: env_num("RRPC_BENCH_CALLGRIND", 1) != 0,
                k1: env_num("RRPC_BENCH_K1", 20_000),
                k2: env_num("RRPC_BENCH_K2", 60_000),
                cg_devices: env_num("RRPC_BENCH_CG_DEVICES", 1000),
                cachesim: env_num("RRPC_BENCH_CACHESIM", 1) != 0,
            };
            assert!(s.k2 > s.k1, "RRPC_BENCH_K2 must exceed RRPC_BENCH_K1");
            assert!(s.m >= 1, "RRPC_BENCH_M must be at least 1");
            s
        }
    }

    fn median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }

    fn min_max(v: &[f64]) -> (f64, f64) {
        v.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    }

    /// "median (min..max)" with `prec` decimals.
    fn mmm(v: &[f64], prec: usize) -> String {
        if v.is_empty() {
            return "?".into();
        }
        let (lo, hi) = min_max(v);
        format!("{:.prec$} ({lo:.prec$}..{hi:.prec$})", median(v))
    }

    fn verdict(ok: bool) -> &'static str {
        if ok {
            "ok"
        } else {
            "MISSED"
        }
    }

    fn out_dir() -> PathBuf {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(d.join("work")).expect("create target/bench/work");
        d
    }

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

    /// A cache of CPU 0 from sysfs: (level, size in bytes, ways, line size).
    #[derive(Clone, Copy)]
    struct Cache {
        level: u32,
        size: u64,
        ways: u64,
        line: u64,
    }

    impl Cache {
        /// As valgrind's `--D1=` / `--LL=` value.
        fn arg(&self) -> String {
            format!("{},{},{}", self.size, self.ways, self.line)
        }

        fn describe(&self) -> String {
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
    fn caches() -> Vec<Cache> {
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

    fn machine_line(valgrind: bool) -> String {
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
        let clock = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
        let caches: Vec<String> = caches().iter().map(Cache::describe).collect();
        let mut line = format!(
            "machine: nproc={nproc}, CPU {cpu} (caches {}), Linux {kernel}, clocksource {clock}",
            caches.join(", ")
        );
        if valgrind {
            let vg = first_line("valgrind", &["--version"]).unwrap_or_else(|| "valgrind ?".into());
            line.push_str(&format!(", {vg}"));
        }
        line
    }

    fn pin_to_cpu0() {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity(0) pins the
        // calling thread, and children started later inherit it.
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

    fn have(tool: &str) -> bool {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// Per CPU from /proc/stat: (busy, steal, total) in clock ticks.
    fn cpu_ticks() -> Vec<(u64, u64, u64)> {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        s.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .map(|l| {
                let v: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                let steal = v.get(7).copied().unwrap_or(0);
                (total - idle, steal, total)
            })
            .collect()
    }

    /// How the messages of a throughput run reach the router.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Input {
        /// A receive buffer of `RRPC_BENCH_RECV` messages, refilled (not timed) and
        /// fed (timed) in turn, as a gateway's MQTT stack reads from its socket
        /// into a buffer it reuses: the input stays in the caches.
        Reused,
        /// All M messages built up front and streamed through once (diagnostic: the
        /// stream, 14 MB for M = 200000, evicts the router's data from the caches).
        PreBuilt,
    }

    /// One router with its gateway, and the rates of its runs.
    struct Subject {
        n: usize,
        order: Order,
        input: Input,
        /// Dropped before the gateway its callbacks point to.
        r: Router,
        g: Box<Gateway>,
        add_ms: f64,
        rates: Vec<f64>,
        /// Share of each run's wall time (refilling the receive buffer included) the
        /// bench's thread was on its CPU.
        on_cpu: Vec<f64>,
    }

    impl Subject {
        fn order(&self) -> String {
            let order = if self.n == 1 {
                "one device".to_string()
            } else if self.order == Order::Registration {
                "in registration order (diagnostic)".into()
            } else {
                "random devices".into()
            };
            match self.input {
                Input::Reused => order,
                Input::PreBuilt => format!("{order}, pre-built input (diagnostic)"),
            }
        }
    }

    /// One throughput run: feeds M fresh messages (ids unique to `run`), then checks
    /// the gateway's counts and the router's stats against M. Only feeding is timed.
    fn throughput_run(
        api: &Api,
        s: &Subject,
        m: usize,
        recv: usize,
        run: u64,
        full_check: bool,
    ) -> Result<(f64, f64), String> {
        let g = &s.g;
        let before = stats(&s.r);
        let (cb0, pub0) = (g.callbacks.get(), g.published.get());
        g.full_check.set(full_check);
        let mut t = Duration::ZERO;
        let mut timed_feed = |b: &Batch| t += feed(api, &s.r, g, b, b.len(), true);
        let (wall0, cpu0) = (Instant::now(), thread_cpu());
        match s.input {
            Input::PreBuilt => timed_feed(&Batch::build(s.n, s.order, m, run)),
            Input::Reused => {
                let mut b = Batch::new();
                let mut first = 0;
                while first < m {
                    let count = recv.min(m - first);
                    b.fill(s.n, s.order, first, count, run);
                    timed_feed(&b);
                    first += count;
                }
            }
        }
        let on_cpu = (thread_cpu() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
        g.full_check.set(false);
        let after = stats(&s.r);
        let m64 = m as u64;
        let d = |f: fn(&rrpc_router_stats) -> u64| f(&after) - f(&before);
        let mut errs = Vec::new();
        if let Some(e) = g.first_bad.borrow_mut().take() {
            errs.push(format!("{} bad checks, first: {e}", g.bad.get()));
        }
        let counts = [
            ("stats.messages", d(|s| s.messages)),
            ("stats.requests", d(|s| s.requests)),
            ("stats.replied", d(|s| s.replied)),
            ("callbacks", g.callbacks.get() - cb0),
            ("publishes", g.published.get() - pub0),
        ];
        for (what, got) in counts {
            if got != m64 {
                errs.push(format!("{what} {got}, want {m}"));
            }
        }
        let zero = [
            ("pending", after.pending),
            ("expired", d(|s| s.expired)),
            ("duplicates", d(|s| s.duplicates)),
            ("own_replies", d(|s| s.own_replies)),
            ("unknown_device", d(|s| s.unknown_device)),
            ("malformed", d(|s| s.malformed)),
            ("not_rrpc", d(|s| s.not_rrpc)),
            ("table_full", d(|s| s.table_full)),
            ("too_large", d(|s| s.too_large)),
            ("late_replies", d(|s| s.late_replies)),
            ("bad_tokens", d(|s| s.bad_tokens)),
            ("send_failures", d(|s| s.send_failures)),
        ];
        for (what, got) in zero {
            if got != 0 {
                errs.push(format!("stats.{what} {got}, want 0"));
            }
        }
        if after.devices != s.n as u64 {
            errs.push(format!("stats.devices {}, want {}", after.devices, s.n));
        }
        g.bad.set(0);
        if errs.is_empty() {
            Ok((m as f64 / t.as_secs_f64(), on_cpu))
        } else {
            Err(errs.join("; "))
        }
    }

    fn parse_probe(line: &str) -> BTreeMap<String, u64> {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
            .collect()
    }

    fn run_probe(me: &Path, args: &[String]) -> Result<(String, BTreeMap<String, u64>), String> {
        let out = Command::new(me)
            .arg("--mem-probe")
            .args(args)
            .output()
            .map_err(|e| format!("spawn probe: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("probe "))
            .map(str::to_string);
        match (out.status.success(), line) {
            (true, Some(l)) => {
                let m = parse_probe(&l);
                Ok((l, m))
            }
            (_, l) => Err(format!(
                "probe {args:?} failed ({}): {}{}",
                out.status,
                l.unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// Bytes per item between two readings of a probe: [VmRSS, RssAnon, allocator].
    fn per_item(m: &BTreeMap<String, u64>, count: usize, keys: [&str; 6]) -> [f64; 3] {
        let g = |k: &str| m.get(k).copied().unwrap_or(0) as f64;
        let c = count as f64;
        [
            (g(keys[1]) - g(keys[0])) * 1024.0 / c,
            (g(keys[3]) - g(keys[2])) * 1024.0 / c,
            (g(keys[5]) - g(keys[4])) / c,
        ]
    }

    const MARGINAL: [&str; 6] = [
        "rss_before_kb",
        "rss_after_kb",
        "anon_before_kb",
        "anon_after_kb",
        "heap_before",
        "heap_after",
    ];
    const RESERVED: [&str; 6] = [
        "rss_base_kb",
        "rss_new_kb",
        "rss_base_kb",
        "rss_base_kb",
        "heap_base",
        "heap_new",
    ];

    // ---- callgrind -----------------------------------------------------------------------

    /// One callgrind run of `router --cg-run`.
    struct CgRun {
        k: usize,
        events: Vec<String>,
        totals: Vec<u64>,
        file: PathBuf,
    }

    /// Two runs that differ only in the number of requests: per request = slope.
    struct Pair {
        runs: [CgRun; 2],
    }

    impl Pair {
        fn per_request(&self, a: u64, b: u64) -> f64 {
            (b as f64 - a as f64) / (self.runs[1].k - self.runs[0].k) as f64
        }

        fn event(&self, name: &str) -> Option<usize> {
            self.runs[1].events.iter().position(|e| e == name)
        }

        /// Per-request total of the events in `names`, summed.
        fn total(&self, names: &[&str]) -> f64 {
            let x: f64 = names
                .iter()
                .filter_map(|n| self.event(n))
                .map(|i| self.per_request(self.runs[0].totals[i], self.runs[1].totals[i]))
                .sum();
            tidy(x)
        }
    }

    /// A slope that is zero but for rounding prints as 0, not -0.
    fn tidy(x: f64) -> f64 {
        if x.abs() < 0.005 {
            0.0
        } else {
            x
        }
    }

    /// The `events:` and `totals:` (or `summary:`) lines of a callgrind output file.
    fn callgrind_totals(path: &Path) -> Result<(Vec<String>, Vec<u64>), String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let find = |key: &str| text.lines().find_map(|l| l.strip_prefix(key));
        let events: Vec<String> = find("events:")
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let totals: Vec<u64> = find("totals:")
            .or_else(|| find("summary:"))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if events.is_empty() || totals.len() != events.len() {
            return Err(format!("no events/totals lines in {}", path.display()));
        }
        Ok((events, totals))
    }

    /// `valgrind --tool=callgrind [extra] router --cg-run <devices> <k> <built>`.
    fn callgrind_run(
        me: &Path,
        devices: usize,
        k: usize,
        built: usize,
        extra: &[String],
        tag: &str,
    ) -> Result<CgRun, String> {
        let file = out_dir()
            .join("work")
            .join(format!("callgrind.router.{tag}.{devices}.{k}.out"));
        let _ = std::fs::remove_file(&file);
        let t = Instant::now();
        let out = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .args(extra)
            .arg(me)
            .arg("--cg-run")
            .args([devices.to_string(), k.to_string(), built.to_string()])
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("cg-run: handled={k} replied={k} published={k} bad=0");
        if !out.status.success() || !err.lines().any(|l| l.trim() == want) {
            return Err(format!(
                "callgrind run ({tag}, {devices} devices, {k} requests) failed ({}):\n{}",
                out.status,
                err.trim()
            ));
        }
        let (events, totals) = callgrind_totals(&file)?;
        eprintln!(
            "router: callgrind {tag} N={devices} K={k}: {} Ir ({:.1} s)",
            totals[0],
            t.elapsed().as_secs_f64()
        );
        Ok(CgRun {
            k,
            events,
            totals,
            file,
        })
    }

    fn callgrind_pair(
        me: &Path,
        devices: usize,
        k: [usize; 2],
        extra: &[String],
        tag: &str,
    ) -> Result<Pair, String> {
        let a = callgrind_run(me, devices, k[0], k[1], extra, tag)?;
        let b = callgrind_run(me, devices, k[1], k[1], extra, tag)?;
        Ok(Pair { runs: [a, b] })
    }

    /// A source file's path without the machine-specific part: `src/router.rs`,
    /// `hashbrown-0.17.1/src/raw.rs`, `core/src/str/validations.rs` (Rust's library),
    /// `glibc malloc/malloc.c`.
    fn short_file(path: &str) -> String {
        let main = env!("CARGO_MANIFEST_DIR");
        if let Some(r) = path.strip_prefix(main) {
            return r.trim_start_matches('/').to_string();
        }
        if let Some(i) = path.find("/library/") {
            if path.starts_with("/rustc/") {
                return path[i + "/library/".len()..].to_string();
            }
        }
        if let Some(i) = path.find("/registry/src/") {
            let r = &path[i + "/registry/src/".len()..];
            return r.split_once('/').map_or(r, |x| x.1).to_string();
        }
        if path.starts_with("./") {
            let parts: Vec<&str> = path.split('/').filter(|p| *p != ".").collect();
            let n = parts.len();
            return format!("glibc {}", parts[n.saturating_sub(2)..].join("/"));
        }
        path.to_string()
    }

    /// `callgrind_annotate` per function name: every event column, for inclusive costs
    /// the largest of the pieces it lists under different source files (each already
    /// includes the calls made from it), for self costs their sum (inlined code is
    /// listed under the file it came from). With `by_file` (self costs), keyed by
    /// that source file instead.
    fn annotate(
        file: &Path,
        inclusive: bool,
        by_file: bool,
    ) -> Result<BTreeMap<String, Vec<u64>>, String> {
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
        let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for line in text.lines() {
            // Columns: numbers ("1,234" or "."), each optionally followed by "(12.3%)",
            // then "file:function [object]".
            let mut nums = Vec::new();
            let mut rest = None;
            let mut in_pct = false;
            for tok in line.split_whitespace() {
                if in_pct || tok.starts_with('(') {
                    in_pct = !tok.ends_with(')');
                    continue;
                }
                if tok == "." {
                    nums.push(0);
                } else if let Ok(v) = tok.replace(',', "").parse::<u64>() {
                    nums.push(v);
                } else {
                    let at = tok.as_ptr() as usize - line.as_ptr() as usize;
                    rest = Some(&line[at..]);
                    break;
                }
            }
            let Some(rest) = rest else { continue };
            if nums.is_empty() || rest.starts_with("PROGRAM TOTALS") {
                continue;
            }
            let func = match rest.rfind(" [") {
                Some(i) if rest.ends_with(']') => &rest[..i],
                _ => rest,
            };
            let key = match func.split_once(':') {
                Some((src, _)) if by_file => short_file(src),
                Some((_, f)) => f.to_string(),
                None => func.to_string(),
            };
            let e = m.entry(key).or_default();
            e.resize(e.len().max(nums.len()), 0);
            for (acc, v) in e.iter_mut().zip(nums) {
                *acc = if inclusive { (*acc).max(v) } else { *acc + v };
            }
        }
        Ok(m)
    }

    /// The function cut to `max` characters.
    fn short(func: &str, max: usize) -> String {
        let mut f = func.to_string();
        if f.len() > max {
            let mut cut = max - 3;
            while !f.is_char_boundary(cut) {
                cut -= 1;
            }
            f.truncate(cut);
            f.push_str("...");
        }
        f
    }

    /// Per-request slope of each function's events.
    fn per_function(p: &Pair, inclusive: bool) -> Result<BTreeMap<String, Vec<f64>>, String> {
        per_key(p, inclusive, false)
    }

    fn per_key(
        p: &Pair,
        inclusive: bool,
        by_file: bool,
    ) -> Result<BTreeMap<String, Vec<f64>>, String> {
        let a = annotate(&p.runs[0].file, inclusive, by_file)?;
        let b = annotate(&p.runs[1].file, inclusive, by_file)?;
        Ok(b.iter()
            .map(|(f, v2)| {
                let v1 = a.get(f);
                let per = v2
                    .iter()
                    .enumerate()
                    .map(|(i, &y)| {
                        p.per_request(v1.and_then(|v| v.get(i)).copied().unwrap_or(0), y)
                    })
                    .collect();
                (f.clone(), per)
            })
            .collect())
    }

    /// What a source file (as [`short_file`] gives it) belongs to.
    fn component(file: &str) -> &'static str {
        if file.starts_with("src/ffi/") {
            "librrpc C API layer (src/ffi/)"
        } else if file == "src/router.rs" || file.starts_with("src/router/") {
            "router core (src/router.rs, src/router/)"
        } else if file == "src/dialect.rs" {
            "topic parsing and building (src/dialect.rs)"
        } else if file.starts_with("src/") {
            "librrpc, other (src/)"
        } else if file.starts_with("benches/") {
            "the bench: loop, callback, publish function"
        } else if file.starts_with("hashbrown-") || file.starts_with("foldhash-") {
            "hash tables (hashbrown, foldhash)"
        } else if file.starts_with("parking_lot") || file.starts_with("lock_api") {
            "locks (parking_lot)"
        } else if file.starts_with("glibc malloc/") {
            "allocator (glibc malloc, free, realloc)"
        } else if file.starts_with("glibc ") {
            "glibc, other (memcpy, memcmp, strlen, ...)"
        } else if ["core/", "alloc/", "std/"]
            .iter()
            .any(|p| file.starts_with(p))
        {
            "Rust core/alloc/std inlined (UTF-8 check, iterators, Arc, String, ...)"
        } else {
            "other (no source: vDSO clock, ...)"
        }
    }

    /// Self Ir per request summed by [`component`].
    fn components(p: &Pair, out: &mut String) -> Result<(), String> {
        let mut m: BTreeMap<&str, f64> = BTreeMap::new();
        for (file, per) in per_key(p, false, true)? {
            *m.entry(component(&file)).or_default() += per.first().copied().unwrap_or(0.0);
        }
        let total = p.total(&["Ir"]);
        let mut v: Vec<(&str, f64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (c, x) in v {
            if x.abs() >= 0.5 {
                writeln!(out, "    {x:>8.0}  {:>5.1}%  {c}", 100.0 * x / total).unwrap();
            }
        }
        Ok(())
    }

    /// Inclusive Ir per request of the C entry points, the bench's own C functions and
    /// the router core, indented by who calls whom.
    fn entry_points(p: &Pair, out: &mut String) -> Result<(), String> {
        let inc = per_function(p, true)?;
        let rows: [(&str, usize, &str); 9] = [
            (
                "router::feed",
                0,
                "the bench's loop over the messages: everything",
            ),
            (
                "rrpc_router_handle_message",
                1,
                "C entry point, callback included",
            ),
            (
                "rrpc::router::Router::handle",
                2,
                "router core: parse topic, find device, accept",
            ),
            ("router::answer", 2, "the bench's C callback"),
            ("rrpc_router_reply", 3, "C entry point"),
            (
                "rrpc::router::Router::begin_reply",
                4,
                "router core: check token, build response topic",
            ),
            (
                "router::publish",
                4,
                "the bench's C publish function: counts, checks",
            ),
            (
                "rrpc::router::Router::end_reply",
                4,
                "router core: finish request, history",
            ),
            ("rrpc_router_tick", 1, "once per 16384 messages"),
        ];
        writeln!(
            out,
            "  inclusive Ir per request (callgrind_annotate --inclusive=yes, K1..K2 slope):"
        )
        .unwrap();
        for (needle, depth, note) in rows {
            let indent = "  ".repeat(depth);
            let hit = inc
                .get(needle)
                .map(|v| (needle.to_string(), v))
                .or_else(|| {
                    inc.iter()
                        .find(|(f, _)| f.ends_with(&format!("::{needle}")))
                        .map(|(f, v)| (f.clone(), v))
                });
            match hit {
                Some((func, v)) => {
                    let label = format!("{indent}{func}");
                    writeln!(out, "    {:>8.0}  {label:<48} {note}", v[0]).unwrap();
                }
                None => {
                    let label = format!("{indent}{needle}");
                    writeln!(
                        out,
                        "    {:>8}  {label:<48} not in the profile: inlined, or not called",
                        "-"
                    )
                    .unwrap();
                }
            }
        }
        Ok(())
    }

    /// Top functions by self cost per request of event `ev`, with Ir alongside.
    fn top_self(
        p: &Pair,
        by_file: bool,
        ev: usize,
        cols: &[usize],
        n: usize,
        out: &mut String,
    ) -> Result<(), String> {
        let mut v: Vec<(String, Vec<f64>)> = per_key(p, false, by_file)?.into_iter().collect();
        v.sort_by(|x, y| {
            let g = |r: &Vec<f64>| r.get(ev).copied().unwrap_or(0.0);
            g(&y.1).total_cmp(&g(&x.1))
        });
        let total = p.per_request(p.runs[0].totals[ev], p.runs[1].totals[ev]);
        for (f, per) in v.into_iter().take(n) {
            let x = per.get(ev).copied().unwrap_or(0.0);
            if x < 0.005 {
                break;
            }
            let mut line = String::new();
            for &c in cols {
                let y = tidy(per.get(c).copied().unwrap_or(0.0));
                if c == 0 {
                    write!(line, " {y:>7.0}").unwrap();
                } else {
                    write!(line, " {y:>7.2}").unwrap();
                }
            }
            writeln!(
                out,
                "   {line}  {:>5.1}%  {}",
                100.0 * x / total,
                short(&f, 100)
            )
            .unwrap();
        }
        Ok(())
    }

    pub fn run() {
        let started = Instant::now();
        let s = Settings::from_env();
        let callgrind = s.callgrind && have("valgrind") && have("callgrind_annotate");
        let machine = machine_line(callgrind);
        eprintln!("router: {machine}");
        pin_to_cpu0();
        let me = std::env::current_exe().expect("current_exe");
        let api = Api::get();
        let cfg = default_config();
        let mut failures: Vec<String> = Vec::new();
        let mut report = String::new();
        writeln!(
            report,
            "Router through its C API, in process, no network: rrpc_router_handle_message -> shared C callback -> rrpc_router_reply -> C publish function"
        )
        .unwrap();
        writeln!(report, "{machine}").unwrap();
        writeln!(
            report,
            "setup: bench process pinned to CPU 0; rrpc_router_config_init defaults (max_pending {}, max_payload {}, request_timeout_ms {} = the dialect's 8 s, CLOCK_MONOTONIC); \
             Alibaba system topics, product key \"pk\", devices dev0..dev{{N-1}} registered with rrpc_router_add_device and the shared callback; \
             each request goes to a device drawn at random (SplitMix64 of its sequence number, mod N); 16 B payloads; \
             messages reach the router from a receive buffer of {} messages, refilled (not timed) and fed (timed) in turn, as a gateway's MQTT stack reads its socket into a buffer it reuses; \
             C entry points called through opaque function pointers (nothing inlined across the API, as from C); \
             rrpc_router_tick once per {TICK_EVERY} messages",
            cfg.max_pending, cfg.max_payload, cfg.request_timeout_ms, s.recv
        )
        .unwrap();

        // ---- throughput ----------------------------------------------------------------
        let n_max = s.ns.iter().copied().max().unwrap_or(1);
        let n_min = s.ns.iter().copied().min().unwrap_or(1);
        let mut plan: Vec<(usize, Order, Input)> =
            s.ns.iter()
                .map(|&n| (n, Order::Random, Input::Reused))
                .collect();
        if n_max > 1 {
            // The largest router once more, its devices visited in registration order:
            // how much of its cost is the spread (locality), not the size.
            plan.push((n_max, Order::Registration, Input::Reused));
            // Smallest and largest with the whole input built up front, as this bench
            // fed them before: how much the input stream itself costs the larger one.
            plan.push((n_min, Order::Random, Input::PreBuilt));
            plan.push((n_max, Order::Random, Input::PreBuilt));
        }
        let mut subjects: Vec<Subject> = Vec::new();
        for (n, order, input) in plan {
            let g = Gateway::new(&api);
            let r = new_router(&cfg, &g, Some(answer));
            let t = Instant::now();
            add_devices(&r, n);
            let add_ms = t.elapsed().as_secs_f64() * 1e3;
            eprintln!("router: N={n}: {n} devices added in {add_ms:.1} ms");
            subjects.push(Subject {
                n,
                order,
                input,
                g,
                r,
                add_ms,
                rates: Vec::new(),
                on_cpu: Vec::new(),
            });
        }
        // Warm-up: one run per router with every check on (whole response topic, the
        // request view), not part of the result.
        let mut run_no = 0u64;
        for sub in &subjects {
            run_no += 1;
            match throughput_run(&api, sub, s.m, s.recv, run_no, true) {
                Ok((rate, _)) => eprintln!(
                    "router: N={} {} warm-up (full checks): {rate:.0} msgs/s",
                    sub.n,
                    sub.order()
                ),
                Err(e) => {
                    eprintln!("router: N={} warm-up FAILED: {e}", sub.n);
                    failures.push(format!("N={} {} warm-up: {e}", sub.n, sub.order()));
                }
            }
        }
        // Timed runs, the routers interleaved so that a disturbance of the machine hits
        // all of them alike.
        let mut raw = String::new();
        let ticks0 = cpu_ticks();
        for rep in 0..s.reps {
            for sub in subjects.iter_mut() {
                run_no += 1;
                let label = format!("rep {rep} N={:<7} {:<36}", sub.n, sub.order());
                match throughput_run(&api, sub, s.m, s.recv, run_no, false) {
                    Ok((rate, on_cpu)) => {
                        let line = format!(
                            "  {label} {rate:>10.0} msgs/s  {:>7.1} ns/msg  on CPU {:>5.1}%",
                            1e9 / rate,
                            100.0 * on_cpu
                        );
                        eprintln!("router:{line}");
                        raw.push_str(&line);
                        raw.push('\n');
                        sub.rates.push(rate);
                        sub.on_cpu.push(on_cpu);
                    }
                    Err(e) => {
                        eprintln!("router: {label} FAILED: {e}");
                        failures.push(format!("{label}: {e}"));
                        raw.push_str(&format!("  {label} FAILED\n"));
                    }
                }
            }
        }
        let ticks1 = cpu_ticks();
        writeln!(
            report,
            "\n== throughput: M = {} requests per run, each answered inside its callback; median of {} timed runs after one warm-up run (min..max) ==",
            s.m, s.reps
        )
        .unwrap();
        writeln!(
            report,
            "  {:>7}  {:<36} {:>30} {:>22} {:>10}",
            "devices", "device order", "msgs/s", "ns/msg", "add ms"
        )
        .unwrap();
        for sub in &subjects {
            let ns: Vec<f64> = sub.rates.iter().map(|r| 1e9 / r).collect();
            writeln!(
                report,
                "  {:>7}  {:<36} {:>30} {:>22} {:>10.1}",
                sub.n,
                sub.order(),
                mmm(&sub.rates, 0),
                mmm(&ns, 1),
                sub.add_ms
            )
            .unwrap();
        }
        let random = |n: usize, input: Input| {
            subjects.iter().find(|x| {
                x.n == n && x.order == Order::Random && x.input == input && !x.rates.is_empty()
            })
        };
        for input in [Input::Reused, Input::PreBuilt] {
            let (Some(lo), Some(hi)) = (random(n_min, input), random(n_max, input)) else {
                continue;
            };
            if lo.n == hi.n {
                continue;
            }
            let ratio = median(&hi.rates) / median(&lo.rates);
            // Each repetition ran the two back to back: their ratio cancels slow drift
            // of the machine; its spread shows how much a single run can be trusted.
            let paired: Vec<f64> = hi.rates.iter().zip(&lo.rates).map(|(h, l)| h / l).collect();
            let (pmin, pmax) = min_max(&paired);
            let (what, target) = match input {
                Input::Reused => (
                    "random devices",
                    if lo.n == 1 && hi.n >= 100_000 {
                        format!(" (target >= 0.8: {})", verdict(ratio >= 0.8))
                    } else {
                        String::new()
                    },
                ),
                Input::PreBuilt => (
                    "random devices, pre-built input (diagnostic)",
                    String::new(),
                ),
            };
            writeln!(
                report,
                "  ratio N={} / N={} ({what}): {ratio:.3} of the medians{target}; per repetition {:.3} median, {pmin:.3}..{pmax:.3}",
                hi.n,
                lo.n,
                median(&paired)
            )
            .unwrap();
        }
        writeln!(
            report,
            "  checked in every run: rrpc_router_handle_message OK with kind REQUEST, exactly one publish per request before it returns, \
             with topic length = request topic + 1 and the request's 16 B payload (sequence number), QoS 0; \
             stats deltas messages = requests = replied = callbacks = publishes = M, pending 0, all drop/failure counters 0; \
             warm-up runs also compare the whole response topic and the request view (pk, device name, message id)"
        )
        .unwrap();
        // How undisturbed the timed runs were: the bench's thread is pinned to CPU 0, so
        // anything else running there shows as time off CPU; other CPUs share caches.
        let on: Vec<f64> = subjects.iter().flat_map(|x| x.on_cpu.clone()).collect();
        let load: Vec<String> = ticks0
            .iter()
            .zip(&ticks1)
            .enumerate()
            .map(|(i, (a, b))| {
                let total = (b.2 - a.2).max(1) as f64;
                format!(
                    "CPU {i} busy {:.0}% (steal {:.1}%)",
                    100.0 * (b.0 - a.0) as f64 / total,
                    100.0 * (b.1 - a.1) as f64 / total
                )
            })
            .collect();
        if !on.is_empty() {
            let (lo, _) = min_max(&on);
            writeln!(
                report,
                "  machine during the timed runs: the bench's thread on CPU for {:.1}% of the runs' wall time (lowest run {:.1}%); {} (/proc/stat; input building included)",
                100.0 * median(&on),
                100.0 * lo,
                load.join(", ")
            )
            .unwrap();
        }
        writeln!(report, "  runs (in execution order):").unwrap();
        report.push_str(&raw);
        drop(subjects);

        // ---- memory --------------------------------------------------------------------
        if s.mem {
            writeln!(
                report,
                "\n== memory: fresh child process per probe (`router --mem-probe ...`), median of {} probes (min..max) ==",
                s.mem_reps
            )
            .unwrap();
            writeln!(
                report,
                "  bytes per item = (after - before) / count; VmRSS and RssAnon from /proc/self/status; allocator = glibc mallinfo2 uordblks + hblkhd (bytes handed out and not freed)"
            )
            .unwrap();
            let dev_args = vec!["devices".to_string(), s.mem_devices.to_string()];
            let pend_args = vec![
                "pending".to_string(),
                s.mem_pending.to_string(),
                "1000".to_string(),
            ];
            let mut dev = Vec::new();
            let mut pend = Vec::new();
            let mut lines = String::new();
            for i in 0..s.mem_reps {
                for (args, into) in [(&dev_args, &mut dev), (&pend_args, &mut pend)] {
                    match run_probe(&me, args) {
                        Ok((line, m)) => {
                            eprintln!("router: probe {i}: {line}");
                            lines.push_str(&format!("    {line}\n"));
                            into.push(m);
                        }
                        Err(e) => {
                            eprintln!("router: {e}");
                            failures.push(e.lines().next().unwrap_or("").to_string());
                        }
                    }
                }
            }
            let row = |report: &mut String,
                       label: String,
                       v: &[BTreeMap<String, u64>],
                       count: usize,
                       keys: [&str; 6],
                       cols: [bool; 3]| {
                let per: Vec<[f64; 3]> = v.iter().map(|m| per_item(m, count, keys)).collect();
                let col = |i: usize| {
                    if cols[i] {
                        mmm(&per.iter().map(|x| x[i]).collect::<Vec<_>>(), 0)
                    } else {
                        String::new()
                    }
                };
                writeln!(
                    report,
                    "  {label:<58} {:>16} {:>16} {:>16}",
                    col(0),
                    col(1),
                    col(2)
                )
                .unwrap();
            };
            writeln!(
                report,
                "  {:<58} {:>16} {:>16} {:>16}",
                "bytes", "VmRSS", "RssAnon", "allocator"
            )
            .unwrap();
            row(
                &mut report,
                format!("per registered device ({} added)", s.mem_devices),
                &dev,
                s.mem_devices,
                MARGINAL,
                [true; 3],
            );
            row(
                &mut report,
                format!("per pending request ({} unanswered)", s.mem_pending),
                &pend,
                s.mem_pending,
                MARGINAL,
                [true; 3],
            );
            row(
                &mut report,
                format!(
                    "set aside by rrpc_router_new, per max_pending ({})",
                    s.mem_pending
                ),
                &pend,
                s.mem_pending,
                RESERVED,
                [true, false, true],
            );
            writeln!(
                report,
                "  device probe: rrpc_router_new (defaults), reading (before), {} x rrpc_router_add_device, reading (after).\n  \
                 pending probe: the {} request topics built (for random devices among 1000), reading (base), rrpc_router_new with max_pending {} and request_timeout_ms 3600000, reading (new), \
                 1000 devices added, reading (before), the {} requests handled by a callback that does not reply (stats: requests = pending = {}, nothing replied or dropped), reading (after)",
                s.mem_devices, s.mem_pending, s.mem_pending, s.mem_pending, s.mem_pending
            )
            .unwrap();
            writeln!(report, "  probes:").unwrap();
            report.push_str(&lines);
        }

        // ---- callgrind -----------------------------------------------------------------
        if s.callgrind && !callgrind {
            writeln!(
                report,
                "\n== CPU cost: SKIPPED (valgrind or callgrind_annotate not found) =="
            )
            .unwrap();
        }
        let k = [s.k1, s.k2];
        if callgrind {
            writeln!(
                report,
                "\n== CPU cost per request (valgrind --tool=callgrind on `router --cg-run`; N = {} devices, random order; Ir = instructions of the whole process) ==",
                s.cg_devices
            )
            .unwrap();
            writeln!(
                report,
                "  per request = (Ir(K2) - Ir(K1)) / (K2 - K1); both runs register the same devices and build the same {} topics, so set-up cancels",
                s.k2
            )
            .unwrap();
            match callgrind_pair(&me, s.cg_devices, k, &[], "ir") {
                Ok(p) => {
                    writeln!(
                        report,
                        "  {:>18} {:>18} {:>12}",
                        format!("Ir(K1={})", s.k1),
                        format!("Ir(K2={})", s.k2),
                        "Ir/request"
                    )
                    .unwrap();
                    writeln!(
                        report,
                        "  {:>18} {:>18} {:>12.0}",
                        p.runs[0].totals[0],
                        p.runs[1].totals[0],
                        p.total(&["Ir"])
                    )
                    .unwrap();
                    if let Err(e) = entry_points(&p, &mut report) {
                        writeln!(report, "  (callgrind_annotate: {e})").unwrap();
                    }
                    writeln!(
                        report,
                        "  top self cost per request (Ir/request, K1..K2 slope, share of the total):"
                    )
                    .unwrap();
                    if let Err(e) = top_self(&p, false, 0, &[0], 20, &mut report) {
                        writeln!(report, "    (callgrind_annotate: {e})").unwrap();
                    }
                    writeln!(
                        report,
                        "  self cost per request by where the code comes from (source file of the instructions; inlined code counts for its own file):"
                    )
                    .unwrap();
                    if let Err(e) = components(&p, &mut report) {
                        writeln!(report, "    (callgrind_annotate: {e})").unwrap();
                    }
                    writeln!(
                        report,
                        "  callgrind files: {} and {}",
                        p.runs[0].file.display(),
                        p.runs[1].file.display()
                    )
                    .unwrap();
                }
                Err(e) => {
                    eprintln!("router: {e}");
                    failures.push(e.lines().next().unwrap_or("").to_string());
                }
            }
        }

        // ---- simulated caches: where the larger router's time goes -----------------------
        let levels = caches();
        let level = |l: u32| levels.iter().copied().find(|c| c.level == l);
        if callgrind && s.cachesim && n_max > 1 {
            match (level(1), level(2), level(3)) {
                (Some(d1), Some(l2), l3) => {
                    let mut lls = vec![l2];
                    lls.extend(l3);
                    writeln!(
                        report,
                        "\n== simulated caches: N = 1 against N = {n_max} (callgrind --cache-sim=yes, D1 = this CPU's {}, LL = its {}{}, the process alone on it; no TLB, no prefetcher; K1..K2 slope) ==",
                        d1.describe(),
                        l2.describe(),
                        l3.map(|c| format!(", then its {}", c.describe())).unwrap_or_default()
                    )
                    .unwrap();
                    writeln!(
                        report,
                        "  {:>7}  {:<22} {:>10} {:>14} {:>14} {:>14}",
                        "devices",
                        "LL",
                        "Ir/req",
                        "D1 misses/req",
                        "LL misses/req",
                        "LL write misses"
                    )
                    .unwrap();
                    let mut l2_big: Option<Pair> = None;
                    'outer: for ll in &lls {
                        for n in [1, n_max] {
                            let extra = vec![
                                "--cache-sim=yes".to_string(),
                                format!("--D1={}", d1.arg()),
                                format!("--LL={}", ll.arg()),
                            ];
                            let tag = format!("cache-l{}", ll.level);
                            match callgrind_pair(&me, n, k, &extra, &tag) {
                                Ok(p) => {
                                    writeln!(
                                        report,
                                        "  {:>7}  {:<22} {:>10.0} {:>14.2} {:>14.2} {:>14.2}",
                                        n,
                                        ll.describe(),
                                        p.total(&["Ir"]),
                                        p.total(&["D1mr", "D1mw"]),
                                        p.total(&["DLmr", "DLmw"]),
                                        p.total(&["DLmw"])
                                    )
                                    .unwrap();
                                    if ll.level == 2 && n == n_max {
                                        l2_big = Some(p);
                                    }
                                }
                                Err(e) => {
                                    eprintln!("router: {e}");
                                    failures.push(e.lines().next().unwrap_or("").to_string());
                                    break 'outer;
                                }
                            }
                        }
                    }
                    if let Some(p) = l2_big {
                        if let (Some(ir), Some(d1r), Some(d1w), Some(llr), Some(llw)) = (
                            p.event("Ir"),
                            p.event("D1mr"),
                            p.event("D1mw"),
                            p.event("DLmr"),
                            p.event("DLmw"),
                        ) {
                            writeln!(
                                report,
                                "  functions with the most {} misses per request at N = {n_max} (self cost, K1..K2 slope; columns: Ir, D1 read misses, D1 write misses, LL read misses, LL write misses, share of LL read misses):",
                                l2.describe()
                            )
                            .unwrap();
                            if let Err(e) =
                                top_self(&p, false, llr, &[ir, d1r, d1w, llr, llw], 12, &mut report)
                            {
                                writeln!(report, "    (callgrind_annotate: {e})").unwrap();
                            }
                        }
                    }
                }
                _ => {
                    writeln!(
                        report,
                        "\n== simulated caches: SKIPPED (no L1d/L2 geometry in /sys/devices/system/cpu/cpu0/cache) =="
                    )
                    .unwrap();
                }
            }
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
        let path = out_dir().join("router.txt");
        match std::fs::write(&path, &report) {
            Ok(()) => eprintln!("router: report written to {}", path.display()),
            Err(e) => eprintln!("router: cannot write {}: {e}", path.display()),
        }
        if !failures.is_empty() {
            std::process::exit(1);
        }
    }
}
