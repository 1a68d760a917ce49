//! The router bench's C gateway: what a gateway written in C does around librrpc's
//! router, here in Rust through the exported C functions (`rrpc::ffi::router::*`).
//! Messages are fed to `rrpc_router_handle_message` as a gateway's MQTT stack
//! received them; the shared C callback answers each request at once with
//! `rrpc_router_reply`; the publish function does no I/O, it counts and checks.
//! The C entry points that are about to change names or shape are all in [`Api`].
//!
//! Also the two child-process modes of the bench binary: the memory probe
//! (`router --mem-probe ...`) and the callgrind subject (`router --cg-run ...`).

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CStr};
use std::io::Write as _;
use std::time::{Duration, Instant};

use rrpc::ffi::misc::rrpc_dialect::RRPC_DIALECT_ALIBABA;
use rrpc::ffi::router::{
    rrpc_message_kind, rrpc_router, rrpc_router_add_device, rrpc_router_config,
    rrpc_router_config_init, rrpc_router_free, rrpc_router_get_stats, rrpc_router_handle_message,
    rrpc_router_new, rrpc_router_reply, rrpc_router_request_cb, rrpc_router_set_publish,
    rrpc_router_set_request_callback, rrpc_router_tick,
};
use rrpc::ffi::rrpc_request;
use rrpc::ffi::rrpc_status::{self, RRPC_STATUS_OK};
use rrpc::router::RouterStats as rrpc_router_stats;

use crate::support::procs::{heap_bytes, status, thread_cpu_ns};

const PK: &CStr = c"pk";
const PAYLOAD_LEN: usize = 16;
const KIND_REQUEST: u32 = rrpc_message_kind::RRPC_MESSAGE_REQUEST as u32;
/// A gateway calls `rrpc_router_tick` now and then; here once per this many messages.
pub const TICK_EVERY: usize = 16_384;
/// Message ids: Alibaba-style 19-digit decimals, unique per run and message.
const ID_BASE: u64 = 1_700_000_000_000_000_000;
const ID_RUN_STRIDE: u64 = 10_000_000;

// ---- the C entry points of the hot path, the callback, the publish function -------------

type HandleFn = extern "C" fn(
    *mut rrpc_router,
    *const u8,
    usize,
    *const u8,
    usize,
    u8,
    u64,
    *mut u32,
) -> rrpc_status;
type ReplyFn = extern "C" fn(*mut rrpc_router, u64, *const u8, usize, u64) -> rrpc_status;
type TickFn = extern "C" fn(*mut rrpc_router, u64, *mut u64) -> rrpc_status;

/// The C entry points of the hot path, called through function pointers the optimiser
/// cannot see through (`black_box`): nothing of the library is inlined into the
/// bench's loop or callback, as when a C gateway calls librrpc.so.
#[derive(Clone, Copy)]
pub struct Api {
    handle_message: HandleFn,
    reply: ReplyFn,
    tick: TickFn,
}

impl Api {
    pub fn get() -> Api {
        Api {
            handle_message: std::hint::black_box(rrpc_router_handle_message as HandleFn),
            reply: std::hint::black_box(rrpc_router_reply as ReplyFn),
            tick: std::hint::black_box(rrpc_router_tick as TickFn),
        }
    }

    /// `rrpc_router_tick` now; its out-parameter is not read.
    fn tick(&self, r: *mut rrpc_router) -> rrpc_status {
        (self.tick)(r, now_ms(), std::ptr::null_mut())
    }
}

/// The gateway's clock (the router has none): CLOCK_MONOTONIC in ms, read for
/// every message and every reply, as `rrpc_monotonic_ms` gives it to C.
fn now_ms() -> u64 {
    rrpc::clock::now_ms()
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
    let st = (g.reply)(router, r.token, r.payload, r.payload_len, now_ms());
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

pub fn default_config() -> rrpc_router_config {
    let mut cfg = rrpc_router_config {
        struct_size: 0,
        max_pending: 0,
        max_payload: 0,
        request_timeout_ms: 0,
        max_devices: 0,
    };
    check(
        rrpc_router_config_init(&mut cfg, std::mem::size_of_val(&cfg)),
        "rrpc_router_config_init",
    );
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
        rrpc_router_set_request_callback(r.0, callback, g.user_data()),
        "rrpc_router_set_request_callback",
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
    check(
        rrpc_router_get_stats(r.0, &mut s, std::mem::size_of_val(&s)),
        "rrpc_router_get_stats",
    );
    s
}

/// Which device each message of a run goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
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
            0,
            now_ms(),
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
            let st = api.tick(r.0);
            if st != RRPC_STATUS_OK {
                g.note_bad(format!("rrpc_router_tick: {st:?}"));
            }
        }
    }
    started.elapsed()
}

/// How the messages of a throughput run reach the router.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A receive buffer of `recv` messages, refilled (not timed) and fed (timed) in
    /// turn, as a gateway's MQTT stack reads from its socket into a buffer it reuses:
    /// the input stays in the caches.
    Reused { recv: usize },
    /// All M messages built up front and streamed through once (diagnostic: the
    /// stream, 14 MB for M = 200000, evicts the router's data from the caches).
    PreBuilt,
}

/// A router with its gateway, fed the messages of `n` devices in `order` through
/// `input`.
pub struct Subject {
    pub n: usize,
    pub order: Order,
    pub input: Input,
    /// Dropped before the gateway its callbacks point to.
    r: Router,
    g: Box<Gateway>,
}

impl Subject {
    /// A router with the default configuration and `n` devices; returns it and the
    /// milliseconds the devices took to add.
    pub fn new(
        api: &Api,
        cfg: &rrpc_router_config,
        n: usize,
        order: Order,
        input: Input,
    ) -> (Subject, f64) {
        let g = Gateway::new(api);
        let r = new_router(cfg, &g, Some(answer));
        let t = Instant::now();
        add_devices(&r, n);
        let add_ms = t.elapsed().as_secs_f64() * 1e3;
        (
            Subject {
                n,
                order,
                input,
                r,
                g,
            },
            add_ms,
        )
    }

    /// One throughput run: feeds `m` fresh messages (ids unique to `run`), then checks
    /// the gateway's counts and the router's stats against M. Returns messages/s
    /// (only feeding is timed) and the share of the run's wall time (input building
    /// included) that this thread was on its CPU.
    pub fn run(
        &self,
        api: &Api,
        m: usize,
        run: u64,
        full_check: bool,
    ) -> Result<(f64, f64), String> {
        let (r, g, devices, order) = (&self.r, &*self.g, self.n, self.order);
        let before = stats(r);
        let (cb0, pub0) = (g.callbacks.get(), g.published.get());
        g.full_check.set(full_check);
        let mut t = Duration::ZERO;
        let mut timed_feed = |b: &Batch| t += feed(api, r, g, b, b.len(), true);
        let (wall0, cpu0) = (Instant::now(), thread_cpu_ns());
        match self.input {
            Input::PreBuilt => timed_feed(&Batch::build(devices, order, m, run)),
            Input::Reused { recv } => {
                let mut b = Batch::new();
                let mut first = 0;
                while first < m {
                    let count = recv.min(m - first);
                    b.fill(devices, order, first, count, run);
                    timed_feed(&b);
                    first += count;
                }
            }
        }
        let on_cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9 / wall0.elapsed().as_secs_f64();
        g.full_check.set(false);
        let after = stats(r);
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
        for (what, got) in counts.into_iter().filter(|c| c.1 != m as u64) {
            errs.push(format!("{what} {got}, want {m}"));
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
        for (what, got) in zero.into_iter().filter(|z| z.1 != 0) {
            errs.push(format!("stats.{what} {got}, want 0"));
        }
        if after.devices != devices as u64 {
            errs.push(format!("stats.devices {}, want {devices}", after.devices));
        }
        g.bad.set(0);
        if errs.is_empty() {
            Ok((m as f64 / t.as_secs_f64(), on_cpu))
        } else {
            Err(errs.join("; "))
        }
    }
}

/// One reading: "rss_kb anon_kb heap_bytes".
fn reading() -> [u64; 3] {
    let h = heap_bytes();
    let st = status(None);
    [st.rss_kb.unwrap_or(0), st.anon_kb.unwrap_or(0), h]
}

/// The memory probe, in a fresh process (RSS is process-wide and never shrinks much,
/// so nothing done before may blur it). Prints one line of `key=value` pairs.
pub mod probe {
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
                cfg.request_timeout_ms = 600_000; // the maximum: nothing expires while measured
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
pub fn cg_subject(args: &[String]) -> i32 {
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
