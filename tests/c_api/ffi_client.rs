//! The C ABI under bad input and misuse, called exactly as C calls it, against an
//! in-process rumqttd broker on a free loopback port.

use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::size_of;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::dialect::Dialect;
use rrpc::ffi::client::*;
use rrpc::ffi::misc::*;
use rrpc::ffi::rrpc_request;
use rrpc::ffi::rrpc_status::{self, *};
use rrpc::ffi::session::*;
use rrpc::ClientStats;

use crate::common;
use crate::common::ffi::{c_defaults, last_error};
use crate::common::{Broker, Caller};

const PK: &str = "a1GFjLP3xxC";

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The defaults of `rrpc_client_config_init`.
fn client_defaults() -> rrpc_client_config {
    c_defaults(rrpc_client_config_init)
}

/// The defaults of `rrpc_mqtt_config_init`.
fn mqtt_defaults() -> rrpc_mqtt_config {
    c_defaults(rrpc_mqtt_config_init)
}

/// A client for `port`, with `tweak` applied to the defaults (the client's
/// settings and the MQTT settings they point to).
fn new_client(
    port: u16,
    tweak: impl FnOnce(&mut rrpc_client_config, &mut rrpc_mqtt_config),
) -> *mut rrpc_client {
    let host = c("127.0.0.1");
    let mut mqtt = mqtt_defaults();
    mqtt.host = host.as_ptr();
    mqtt.port = port;
    let mut cfg = client_defaults();
    tweak(&mut cfg, &mut mqtt);
    cfg.mqtt = &mqtt;
    let mut client = null_mut();
    let st = rrpc_client_new(&cfg, &mut client);
    assert_eq!(st, RRPC_STATUS_OK, "{}", last_error());
    client
}

fn add(client: *mut rrpc_client, dialect: rrpc_dialect, dn: &str) -> rrpc_status {
    let (pk, dn) = (c(PK), c(dn));
    rrpc_client_add_device(client, dialect as u32, pk.as_ptr(), dn.as_ptr(), null())
}

/// Registers the Alibaba device `dev1` (under [`PK`]); it must be accepted.
fn add_dev1(client: *mut rrpc_client) {
    assert_eq!(
        add(client, rrpc_dialect::RRPC_DIALECT_ALIBABA, "dev1"),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );
}

/// Starts `client` in thread mode; it must start.
fn start_ok(client: *mut rrpc_client) {
    assert_eq!(
        rrpc_client_start(client),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );
}

/// What the recording callback saw, and what it should do.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<Seen>>,
    /// 0: reply with the payload; 1: do not reply; 2: try stop/free/yield and record
    /// their statuses; 3: sleep 500 ms, then reply.
    mode: AtomicU32,
    reentry: Mutex<Vec<rrpc_status>>,
    started: AtomicBool,
    finished: AtomicBool,
}

#[derive(Clone, Debug)]
struct Seen {
    token: u64,
    dialect: u32,
    message_id: String,
    product_key: String,
    device_name: String,
    custom_topic: Option<String>,
    payload: Vec<u8>,
    deadline_ms: u64,
}

unsafe extern "C" fn record(
    user_data: *mut c_void,
    client: *mut rrpc_client,
    req: *const rrpc_request,
) {
    let rec = unsafe { &*(user_data as *const Recorder) };
    let req = unsafe { &*req };
    let s = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    let payload = if req.payload_len == 0 {
        assert!(req.payload.is_null());
        Vec::new()
    } else {
        unsafe { std::slice::from_raw_parts(req.payload, req.payload_len) }.to_vec()
    };
    rec.requests.lock().unwrap().push(Seen {
        token: req.token,
        dialect: req.dialect,
        message_id: s(req.message_id),
        product_key: s(req.product_key),
        device_name: s(req.device_name),
        custom_topic: (!req.custom_topic.is_null()).then(|| s(req.custom_topic)),
        payload: payload.clone(),
        deadline_ms: req.deadline_ms,
    });
    match rec.mode.load(Ordering::SeqCst) {
        0 => {
            assert_eq!(
                rrpc_client_reply(client, req.token, req.payload, req.payload_len),
                RRPC_STATUS_OK
            );
        }
        1 => {}
        2 => {
            let mut r = rec.reentry.lock().unwrap();
            r.push(rrpc_client_stop(client));
            r.push(rrpc_client_yield(client, 0));
            r.push(rrpc_client_free(client));
            r.push(rrpc_client_start(client));
            // Replying from the callback is allowed.
            r.push(rrpc_client_reply(client, req.token, b"ok".as_ptr(), 2));
        }
        3 => {
            rec.started.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(500));
            // The client may be stopping meanwhile: the status does not matter here.
            let _ = rrpc_client_reply(client, req.token, req.payload, req.payload_len);
            rec.finished.store(true, Ordering::SeqCst);
        }
        _ => unreachable!(),
    }
}

fn set_recorder(client: *mut rrpc_client, rec: &Arc<Recorder>) {
    let ud = Arc::as_ptr(rec) as *mut c_void;
    assert_eq!(
        rrpc_client_set_request_callback(client, Some(record), ud),
        RRPC_STATUS_OK
    );
}

fn stats(client: *mut rrpc_client) -> ClientStats {
    let mut s = ClientStats::default();
    assert_eq!(
        rrpc_client_get_stats(client, &mut s, size_of::<ClientStats>()),
        RRPC_STATUS_OK
    );
    s
}

/// A client started on `port` with one Alibaba device `dev1` and a recorder.
fn started(
    port: u16,
    tweak: impl FnOnce(&mut rrpc_client_config, &mut rrpc_mqtt_config),
) -> (*mut rrpc_client, Arc<Recorder>) {
    let client = new_client(port, tweak);
    add_dev1(client);
    let rec = Arc::new(Recorder::default());
    set_recorder(client, &rec);
    start_ok(client);
    (client, rec)
}

/// [`started`] on a fresh rumqttd, with a caller.
fn running(
    tweak: impl FnOnce(&mut rrpc_client_config, &mut rrpc_mqtt_config),
) -> (Broker, *mut rrpc_client, Arc<Recorder>, Caller) {
    let broker = Broker::rumqttd();
    let (client, rec) = started(broker.port, tweak);
    let caller = Caller::connect(broker.port);
    (broker, client, rec, caller)
}

fn null_pointers_are_refused_with_the_argument_named() {
    let mut client = null_mut();
    assert_eq!(
        rrpc_client_config_init(null_mut(), size_of::<rrpc_client_config>()),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("out_config"), "{}", last_error());
    assert_eq!(
        rrpc_client_new(null(), &mut client),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("config"));
    let mut cfg = client_defaults();
    assert_eq!(rrpc_client_new(&cfg, &mut client), RRPC_STATUS_NULL_POINTER);
    assert!(
        last_error().contains("config->mqtt is NULL"),
        "{}",
        last_error()
    );
    let mqtt = mqtt_defaults();
    cfg.mqtt = &mqtt;
    assert_eq!(rrpc_client_new(&cfg, &mut client), RRPC_STATUS_NULL_POINTER);
    assert!(
        last_error().contains("config->mqtt->host"),
        "{}",
        last_error()
    );
    assert!(client.is_null(), "out-params are written only on success");

    let n: *mut rrpc_client = null_mut();
    let dn = c("dev1");
    assert_eq!(
        rrpc_client_add_device(n, 0, dn.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("client is NULL"));
    assert_eq!(
        rrpc_client_remove_device(n, 0, dn.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_set_request_callback(n, None, null_mut()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(rrpc_client_start(n), RRPC_STATUS_NULL_POINTER);
    assert_eq!(rrpc_client_stop(n), RRPC_STATUS_NULL_POINTER);
    assert_eq!(rrpc_client_yield(n, 0), RRPC_STATUS_NULL_POINTER);
    assert_eq!(rrpc_client_reply(n, 1, null(), 0), RRPC_STATUS_NULL_POINTER);
    let mut b = 0;
    assert_eq!(
        rrpc_client_is_connected(n, &mut b),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_get_stats(n, null_mut(), size_of::<ClientStats>()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_get_client_id(n, null_mut(), 0, null_mut()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_free(n),
        RRPC_STATUS_OK,
        "free(NULL) is a no-op, as in C"
    );
    assert_eq!(rrpc_monotonic_ms(null_mut()), RRPC_STATUS_NULL_POINTER);
    assert_eq!(
        rrpc_dialect_from_name(null(), null_mut()),
        RRPC_STATUS_NULL_POINTER
    );

    // With a real client: NULL identity parts, NULL out-params, NULL payload with a length.
    let client = new_client(1, |_, _| {});
    assert_eq!(
        rrpc_client_add_device(client, 0, null(), dn.as_ptr(), null()),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("product_key"));
    assert_eq!(
        rrpc_client_add_device(client, 0, dn.as_ptr(), null(), null()),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("device_name"));
    assert_eq!(
        rrpc_client_is_connected(client, null_mut()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_get_stats(client, null_mut(), size_of::<ClientStats>()),
        RRPC_STATUS_NULL_POINTER
    );
    assert_eq!(
        rrpc_client_reply(client, 1, null(), 5),
        RRPC_STATUS_NULL_POINTER
    );
    assert!(last_error().contains("payload is NULL"));
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn strings_that_are_not_utf8_are_refused() {
    let client = new_client(1, |_, _| {});
    let bad = b"a1\xff\xfe\0";
    let dn = c("dev1");
    let st = rrpc_client_add_device(client, 0, bad.as_ptr().cast(), dn.as_ptr(), null());
    assert_eq!(st, RRPC_STATUS_INVALID_UTF8);
    assert!(
        last_error().contains("product_key is not valid UTF-8"),
        "{}",
        last_error()
    );
    let st = rrpc_client_add_device(client, 0, dn.as_ptr(), bad.as_ptr().cast(), null());
    assert_eq!(st, RRPC_STATUS_INVALID_UTF8);
    let mut d = 0;
    assert_eq!(
        rrpc_dialect_from_name(bad.as_ptr().cast(), &mut d),
        RRPC_STATUS_INVALID_UTF8
    );
    let mut mqtt = mqtt_defaults();
    mqtt.host = bad.as_ptr().cast();
    let mut cfg = client_defaults();
    cfg.mqtt = &mqtt;
    let mut out = null_mut();
    assert_eq!(rrpc_client_new(&cfg, &mut out), RRPC_STATUS_INVALID_UTF8);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn identities_that_could_inject_topics_are_refused() {
    let client = new_client(1, |_, _| {});
    for (pk, dn, why) in [
        ("a+b", "dev1", "wildcard"),
        ("a#", "dev1", "wildcard"),
        ("a/b", "dev1", "separator"),
        ("pk", "+", "wildcard"),
        ("pk", "dev/1", "separator"),
        ("pk", "x#", "wildcard"),
        ("", "dev1", "empty"),
        ("pk", "", "empty"),
        ("pk", "tab\there", "control"),
    ] {
        let (p, d) = (c(pk), c(dn));
        let st = rrpc_client_add_device(client, 0, p.as_ptr(), d.as_ptr(), null());
        assert_eq!(st, RRPC_STATUS_INVALID_IDENTITY, "{pk:?}/{dn:?}");
        assert!(
            last_error().contains(why),
            "{pk:?}/{dn:?}: {}",
            last_error()
        );
    }
    let long = c(&"d".repeat(129));
    let pk = c(PK);
    assert_eq!(
        rrpc_client_add_device(client, 0, pk.as_ptr(), long.as_ptr(), null()),
        RRPC_STATUS_INVALID_IDENTITY
    );
    assert!(last_error().contains("longer than 128 bytes"));
    let ok = c(&"d".repeat(128));
    assert_eq!(
        rrpc_client_add_device(client, 0, pk.as_ptr(), ok.as_ptr(), null()),
        RRPC_STATUS_OK
    );

    // Custom topics: required by the custom dialect, refused by the others, no wildcards.
    let dn = c("dev1");
    let custom = rrpc_dialect::RRPC_DIALECT_ALIBABA_CUSTOM as u32;
    assert_eq!(
        rrpc_client_add_device(client, custom, pk.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_INVALID_IDENTITY
    );
    for t in ["/a/+/b", "/a/#", "no-leading-slash"] {
        let t = c(t);
        assert_eq!(
            rrpc_client_add_device(client, custom, pk.as_ptr(), dn.as_ptr(), t.as_ptr()),
            RRPC_STATUS_INVALID_IDENTITY
        );
    }
    let t = c("/a/b");
    assert_eq!(
        rrpc_client_add_device(client, 0, pk.as_ptr(), dn.as_ptr(), t.as_ptr()),
        RRPC_STATUS_INVALID_IDENTITY,
        "a custom topic on a non-custom dialect"
    );
    assert_eq!(
        rrpc_client_add_device(client, 99, pk.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("dialect 99"));
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn devices_are_registered_once_and_removed_once() {
    let client = new_client(1, |_, _| {});
    add_dev1(client);
    assert_eq!(
        add(client, rrpc_dialect::RRPC_DIALECT_ALIBABA, "dev1"),
        RRPC_STATUS_ALREADY_EXISTS
    );
    assert_eq!(
        add(client, rrpc_dialect::RRPC_DIALECT_TENCENT, "dev1"),
        RRPC_STATUS_OK
    );
    let (pk, dn) = (c(PK), c("dev1"));
    assert_eq!(
        rrpc_client_remove_device(client, 0, pk.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_OK
    );
    assert_eq!(
        rrpc_client_remove_device(client, 0, pk.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_NOT_FOUND
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn configuration_is_validated() {
    let host = c("127.0.0.1");
    let check = |tweak: &dyn Fn(&mut rrpc_client_config, &mut rrpc_mqtt_config), what: &str| {
        let mut mqtt = mqtt_defaults();
        mqtt.host = host.as_ptr();
        let mut cfg = client_defaults();
        tweak(&mut cfg, &mut mqtt);
        cfg.mqtt = &mqtt;
        let mut out = null_mut();
        assert_eq!(
            rrpc_client_new(&cfg, &mut out),
            RRPC_STATUS_INVALID_ARGUMENT,
            "{what}"
        );
        assert!(last_error().contains(what), "{what}: {}", last_error());
    };
    check(&|_, m| m.port = 0, "port");
    check(&|_, m| m.clean_session = 0, "client id");
    check(&|c, _| c.subscribe_qos = 2, "subscribe_qos");
    check(&|c, _| c.max_pending = 0, "max_pending");
    check(&|c, _| c.max_payload = 0, "max_payload");
    check(&|_, m| m.reconnect_min_ms = 0, "reconnect");
    let empty = c("");
    check(&|_, m| m.host = empty.as_ptr(), "host");
}

fn library_facts() {
    let v = unsafe { CStr::from_ptr(rrpc_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    for s in 0..20u32 {
        let t = unsafe { CStr::from_ptr(rrpc_status_str(s)) }
            .to_str()
            .unwrap();
        assert!(!t.is_empty() && t != "unknown status", "{s}");
    }
    let t = unsafe { CStr::from_ptr(rrpc_status_str(12345)) }
        .to_str()
        .unwrap();
    assert_eq!(t, "unknown status");
    let mut d = 99;
    let name = c("tencent");
    assert_eq!(
        rrpc_dialect_from_name(name.as_ptr(), &mut d),
        RRPC_STATUS_OK
    );
    assert_eq!(d, Dialect::Tencent.to_u32());
    let name = c("nope");
    assert_eq!(
        rrpc_dialect_from_name(name.as_ptr(), &mut d),
        RRPC_STATUS_INVALID_ARGUMENT
    );
    let mut now = 0;
    assert_eq!(rrpc_monotonic_ms(&mut now), RRPC_STATUS_OK);
    assert!(now > 0);
    assert_eq!(
        rrpc_set_log_handler(None, null_mut(), 9),
        RRPC_STATUS_INVALID_ARGUMENT
    );
}

fn unreachable_broker_at_start_is_a_clear_error_and_leaves_nothing_running() {
    let port = common::free_port();
    let client = new_client(port, |_, m| m.connect_timeout_ms = 3000);
    add_dev1(client);
    let t = Instant::now();
    assert_eq!(rrpc_client_start(client), RRPC_STATUS_CONNECT_FAILED);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a refused connection fails at once"
    );
    let msg = last_error();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
    // Nothing is left running: start can be tried again, and stop is a no-op.
    assert_eq!(rrpc_client_stop(client), RRPC_STATUS_OK);
    assert_eq!(rrpc_client_start(client), RRPC_STATUS_CONNECT_FAILED);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn background_mode_reconnects_until_the_broker_appears() {
    let port = common::free_port();
    let client = new_client(port, |_, m| {
        m.connect_timeout_ms = 0;
        m.reconnect_max_ms = 200;
    });
    add_dev1(client);
    let rec = Arc::new(Recorder::default());
    set_recorder(client, &rec);
    start_ok(client);
    let mut connected = 1;
    assert_eq!(
        rrpc_client_is_connected(client, &mut connected),
        RRPC_STATUS_OK
    );
    assert_eq!(connected, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(stats(client).connection_errors >= 1);
    let _broker = Broker::rumqttd_on(port);
    common::wait_until("connect", Duration::from_secs(10), || {
        let mut c = 0;
        assert_eq!(rrpc_client_is_connected(client, &mut c), RRPC_STATUS_OK);
        c == 1
    });
    let caller = Caller::connect(port);
    let r = common::until_answered(Duration::from_secs(10), |t| {
        caller.call(Dialect::AlibabaSystem, PK, "dev1", None, b"hi", t)
    });
    assert_eq!(r.as_deref(), Some(&b"hi"[..]));
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

/// `caller` calls `dn` with `payload` until answered (within `limit`) on another
/// thread while this thread drives `client` in yield mode, `slice_ms` a yield; the
/// answer.
fn answered_while_yielding(
    client: *mut rrpc_client,
    caller: &Caller,
    dn: &str,
    payload: &[u8],
    slice_ms: u32,
    limit: Duration,
) -> Option<Vec<u8>> {
    let done = AtomicBool::new(false);
    let main_thread = std::thread::current().id();
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let r = common::until_answered(limit, |t| {
                caller.call(Dialect::AlibabaSystem, PK, dn, None, payload, t)
            });
            done.store(true, Ordering::SeqCst);
            r
        });
        while !done.load(Ordering::SeqCst) {
            let st = rrpc_client_yield(client, slice_ms);
            assert!(
                st == RRPC_STATUS_OK || st == RRPC_STATUS_CONNECT_FAILED,
                "{st:?}"
            );
        }
        assert_eq!(std::thread::current().id(), main_thread);
        t.join().unwrap()
    })
}

fn yield_mode_reports_connect_failures_and_serves_requests() {
    let port = common::free_port();
    let client = new_client(port, |_, m| m.reconnect_min_ms = 50);
    assert_eq!(
        add(client, rrpc_dialect::RRPC_DIALECT_ALIBABA, "test01"),
        RRPC_STATUS_OK
    );
    let rec = Arc::new(Recorder::default());
    set_recorder(client, &rec);
    assert_eq!(rrpc_client_yield(client, 100), RRPC_STATUS_CONNECT_FAILED);
    assert!(last_error().contains("refused"), "{}", last_error());

    let _broker = Broker::rumqttd_on(port);
    let caller = Caller::connect(port);
    let limit = Duration::from_secs(15);
    let answered = answered_while_yielding(client, &caller, "test01", b"ok", 50, limit);
    assert_eq!(answered.as_deref(), Some(&b"ok"[..]));
    let seen = rec.requests.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert_eq!(seen[0].dialect, Dialect::AlibabaSystem.to_u32());
    // Yield mode and thread mode exclude each other while running.
    start_ok(client);
    assert_eq!(rrpc_client_yield(client, 0), RRPC_STATUS_WRONG_STATE);
    assert_eq!(rrpc_client_start(client), RRPC_STATUS_WRONG_STATE);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn reply_rules_unknown_double_oversized_and_late() {
    let (_b, client, rec, caller) = running(|c, _| {
        c.max_payload = 1024;
        c.request_timeout_ms = 1000;
    });
    rec.mode.store(1, Ordering::SeqCst); // the test replies itself
    let t = std::thread::spawn(move || {
        common::until_answered(Duration::from_secs(10), |t| {
            caller.call(Dialect::AlibabaSystem, PK, "dev1", None, b"q1", t)
        })
    });
    common::wait_until("a request", Duration::from_secs(10), || {
        !rec.requests.lock().unwrap().is_empty()
    });
    let seen = rec.requests.lock().unwrap()[0].clone();
    assert_eq!(seen.product_key, PK);
    assert_eq!(seen.device_name, "dev1");
    assert_eq!(seen.custom_topic, None);
    assert_eq!(seen.payload, b"q1");
    assert!(
        seen.message_id.parse::<u64>().is_ok(),
        "the id from the topic: {}",
        seen.message_id
    );
    let mut now = 0;
    assert_eq!(rrpc_monotonic_ms(&mut now), RRPC_STATUS_OK);
    assert!(
        seen.deadline_ms > now && seen.deadline_ms <= now + 1000,
        "deadline on the monotonic clock"
    );

    assert_eq!(
        rrpc_client_reply(client, seen.token ^ 0x5a5a, b"x".as_ptr(), 1),
        RRPC_STATUS_UNKNOWN_TOKEN
    );
    let big = vec![7u8; 1025];
    assert_eq!(
        rrpc_client_reply(client, seen.token, big.as_ptr(), big.len()),
        RRPC_STATUS_PAYLOAD_TOO_LARGE
    );
    // The token survived the refused reply.
    assert_eq!(
        rrpc_client_reply(client, seen.token, b"a1".as_ptr(), 2),
        RRPC_STATUS_OK
    );
    assert_eq!(
        rrpc_client_reply(client, seen.token, b"a2".as_ptr(), 2),
        RRPC_STATUS_ALREADY_REPLIED
    );
    assert_eq!(t.join().unwrap().as_deref(), Some(&b"a1"[..]));

    // Late: the request's deadline (1000 ms) passes before the reply.
    let n = rec.requests.lock().unwrap().len();
    let caller = Caller::connect(_b.port);
    let t = std::thread::spawn(move || {
        caller.call_system(PK, "dev1", b"q2", Duration::from_millis(2500))
    });
    common::wait_until("the second request", Duration::from_secs(10), || {
        rec.requests.lock().unwrap().len() > n
    });
    let late = rec.requests.lock().unwrap()[n].clone();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        rrpc_client_reply(client, late.token, b"late".as_ptr(), 4),
        RRPC_STATUS_EXPIRED
    );
    assert!(last_error().contains("deadline"), "{}", last_error());
    assert_eq!(
        t.join().unwrap(),
        None,
        "nothing was sent after the deadline"
    );
    let s = stats(client);
    assert!(
        s.late_replies >= 1 && s.expired >= 1 && s.bad_tokens >= 2,
        "{:?}",
        (s.late_replies, s.expired, s.bad_tokens)
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn a_request_left_unanswered_expires_and_frees_its_entry() {
    let (_b, client, rec, caller) = running(|c, _| c.request_timeout_ms = 300);
    rec.mode.store(1, Ordering::SeqCst);
    assert_eq!(
        caller.call_system(PK, "dev1", b"x", Duration::from_millis(1200)),
        None
    );
    assert_eq!(rec.requests.lock().unwrap().len(), 1);
    common::wait_until("expiry", Duration::from_secs(3), || {
        let s = stats(client);
        s.expired == 1 && s.pending == 0
    });
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn oversized_requests_are_dropped_and_counted_without_losing_the_connection() {
    let (_b, client, rec, caller) = running(|c, _| c.max_payload = 1024);
    let big = vec![1u8; 4096];
    assert_eq!(
        caller.call_system(PK, "dev1", &big, Duration::from_millis(800)),
        None
    );
    // Dropped by the session before the router sees it.
    common::wait_until("the drop to be counted", Duration::from_secs(3), || {
        stats(client).oversize == 1
    });
    assert_eq!(stats(client).too_large, 0);
    assert!(rec.requests.lock().unwrap().is_empty());
    // Still connected and serving.
    let r = caller.call_system(PK, "dev1", b"small", Duration::from_secs(3));
    assert_eq!(r.as_deref(), Some(&b"small"[..]));
    assert_eq!(stats(client).connects, 1);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

static LOGGED: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn capture_log(_ud: *mut c_void, level: u32, msg: *const c_char) {
    let m = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    LOGGED.lock().unwrap().push((level, m));
}

fn malformed_request_topics_are_ignored_counted_and_logged() {
    assert_eq!(
        rrpc_set_log_handler(
            Some(capture_log),
            null_mut(),
            rrpc_log_level::RRPC_LOG_WARN as u32
        ),
        RRPC_STATUS_OK
    );
    let (_b, client, rec, caller) = running(|_, _| {});
    // `+` matches an empty level, so the broker delivers an empty message id; and
    // a control character in the id.
    caller.publish_raw(&format!("/sys/{PK}/dev1/rrpc/request/"), b"x");
    caller.publish_raw(&format!("/sys/{PK}/dev1/rrpc/request/12\x01"), b"x");
    common::wait_until("two malformed", Duration::from_secs(5), || {
        stats(client).malformed == 2
    });
    assert!(rec.requests.lock().unwrap().is_empty());
    let logged = LOGGED.lock().unwrap().clone();
    assert!(
        logged.iter().any(|(l, m)| *l == 2
            && m.contains("malformed")
            && m.contains(&format!("/sys/{PK}/dev1/rrpc/request/"))),
        "{logged:?}"
    );
    // The device still answers well-formed requests.
    let r = caller.call_system(PK, "dev1", b"fine", Duration::from_secs(3));
    assert_eq!(r.as_deref(), Some(&b"fine"[..]));
    assert_eq!(
        rrpc_set_log_handler(None, null_mut(), rrpc_log_level::RRPC_LOG_WARN as u32),
        RRPC_STATUS_OK
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn callbacks_cannot_stop_free_or_yield_their_client_but_can_reply() {
    let (_b, client, rec, caller) = running(|_, _| {});
    rec.mode.store(2, Ordering::SeqCst);
    let r = caller.call_system(PK, "dev1", b"x", Duration::from_secs(5));
    assert_eq!(r.as_deref(), Some(&b"ok"[..]));
    let statuses = rec.reentry.lock().unwrap().clone();
    assert_eq!(
        statuses,
        vec![
            RRPC_STATUS_WRONG_STATE,
            RRPC_STATUS_WRONG_STATE,
            RRPC_STATUS_WRONG_STATE,
            RRPC_STATUS_WRONG_STATE,
            RRPC_STATUS_OK
        ]
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

/// Calls `dev1` from another thread with the recorder in its slow mode (sleep
/// 500 ms, then reply), and returns once the callback is running.
fn slow_callback_running(caller: Caller, rec: &Recorder) {
    rec.mode.store(3, Ordering::SeqCst);
    std::thread::spawn(move || caller.call_system(PK, "dev1", b"x", Duration::from_secs(3)));
    common::wait_until("the callback to start", Duration::from_secs(10), || {
        rec.started.load(Ordering::SeqCst)
    });
    assert!(!rec.finished.load(Ordering::SeqCst));
}

fn free_waits_for_a_running_callback() {
    let (_b, client, rec, caller) = running(|_, _| {});
    slow_callback_running(caller, &rec);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
    assert!(
        rec.finished.load(Ordering::SeqCst),
        "free returned while the callback was running"
    );
}

fn deferred_replies_from_other_threads_and_several_devices() {
    let (b, client, rec, caller) = running(|_, _| {});
    rec.mode.store(1, Ordering::SeqCst);
    assert_eq!(
        add(client, rrpc_dialect::RRPC_DIALECT_ALIBABA, "dev2"),
        RRPC_STATUS_OK
    );
    let topic = c(&format!("/{PK}/dev3/user/update"));
    let (pk, dn3) = (c(PK), c("dev3"));
    assert_eq!(
        rrpc_client_add_device(
            client,
            rrpc_dialect::RRPC_DIALECT_ALIBABA_CUSTOM as u32,
            pk.as_ptr(),
            dn3.as_ptr(),
            topic.as_ptr()
        ),
        RRPC_STATUS_OK
    );
    let client_addr = client as usize;
    let rec2 = rec.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // A worker that answers every recorded request from its own thread.
    let worker = std::thread::spawn(move || {
        let mut answered = 0;
        while !stop2.load(Ordering::SeqCst) {
            let seen: Vec<Seen> = rec2.requests.lock().unwrap().drain(..).collect();
            for s in seen {
                let reply = format!("{}:{}", s.device_name, String::from_utf8_lossy(&s.payload));
                let st = rrpc_client_reply(
                    client_addr as *mut rrpc_client,
                    s.token,
                    reply.as_ptr(),
                    reply.len(),
                );
                assert_eq!(st, RRPC_STATUS_OK);
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        answered
    });
    let caller2 = Caller::connect(b.port);
    caller2.watch_custom(&format!("/{PK}/dev3/user/update"));
    let custom = format!("/{PK}/dev3/user/update");
    let wait = Duration::from_secs(5);
    for i in 0..5 {
        let p = format!("m{i}");
        assert_eq!(
            common::until_answered(wait, |t| caller.call(
                Dialect::AlibabaSystem,
                PK,
                "dev2",
                None,
                p.as_bytes(),
                t
            )),
            Some(format!("dev2:{p}").into_bytes())
        );
        assert_eq!(
            caller.call_system(PK, "dev1", p.as_bytes(), wait),
            Some(format!("dev1:{p}").into_bytes())
        );
        assert_eq!(
            common::until_answered(wait, |t| caller2.call(
                Dialect::AlibabaCustom,
                PK,
                "dev3",
                Some(&custom),
                p.as_bytes(),
                t
            )),
            Some(format!("dev3:{p}").into_bytes())
        );
    }
    stop.store(true, Ordering::SeqCst);
    assert!(worker.join().unwrap() >= 15);
    let s = stats(client);
    assert!(
        s.own_replies >= 5,
        "custom-topic replies came back and were recognised: {}; {:?}",
        s.own_replies,
        s
    );
    let mut id = [0 as c_char; 64];
    let mut len = 0;
    assert_eq!(
        rrpc_client_get_client_id(client, id.as_mut_ptr(), id.len(), &mut len),
        RRPC_STATUS_OK
    );
    let id = unsafe { CStr::from_ptr(id.as_ptr()) }.to_str().unwrap();
    assert!(
        id.starts_with("rrpc") && id.len() == 20 && len == 20,
        "{id}"
    );
    let mut tiny = [0 as c_char; 4];
    assert_eq!(
        rrpc_client_get_client_id(client, tiny.as_mut_ptr(), tiny.len(), &mut len),
        RRPC_STATUS_BUFFER_TOO_SMALL
    );
    assert_eq!(len, 20);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn two_clients_on_one_broker_get_distinct_default_ids() {
    let b = Broker::rumqttd();
    let rec = Arc::new(Recorder::default());
    let clients = ["devA", "devB"].map(|dn| {
        let client = new_client(b.port, |_, _| {});
        assert_eq!(
            add(client, rrpc_dialect::RRPC_DIALECT_ALIBABA, dn),
            RRPC_STATUS_OK
        );
        set_recorder(client, &rec);
        start_ok(client);
        client
    });
    let caller = Caller::connect(b.port);
    for dn in ["devA", "devB", "devA", "devB"] {
        let r = caller.call_system(PK, dn, dn.as_bytes(), Duration::from_secs(3));
        assert_eq!(r.as_deref(), Some(dn.as_bytes()), "{dn}");
    }
    // Neither took over the other's session.
    for client in clients {
        assert_eq!(stats(client).connects, 1);
        assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
    }
}

fn credentials_are_sent_and_a_refusal_is_a_clear_error() {
    let broker = Broker::mosquitto_with_user("dev1&a1GFjLP3xxC", "s3cret");

    let (user, good, bad) = (c("dev1&a1GFjLP3xxC"), c("s3cret"), c("wrong"));
    let client = new_client(broker.port, |_, m| {
        m.username = user.as_ptr();
        m.password = bad.as_ptr();
    });
    add_dev1(client);
    assert_eq!(rrpc_client_start(client), RRPC_STATUS_CONNECT_FAILED);
    let msg = last_error();
    assert!(
        msg.contains("refused") && msg.contains(&broker.port.to_string()),
        "{msg}"
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);

    let (client, _rec) = started(broker.port, |_, m| {
        m.username = user.as_ptr();
        m.password = good.as_ptr();
    });
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

/// What a test's sign callback saw and does.
#[derive(Default)]
struct SignState {
    calls: AtomicU32,
    unix_ms: Mutex<Vec<u64>>,
    /// Fail every call (return -1).
    always_fail: bool,
    client: std::sync::atomic::AtomicPtr<rrpc_client>,
    stop_from_inside: Mutex<Option<rrpc_status>>,
}

fn put(field: &mut [c_char], s: &str) {
    for (d, b) in field.iter_mut().zip(s.bytes().chain([0])) {
        *d = b as c_char;
    }
}

/// Attempt 1: a wrong password (and tries to stop its client from inside);
/// attempt 2: a user name without its NUL (so the last credentials are used);
/// from attempt 3: the right ones.
unsafe extern "C" fn sign(
    user_data: *mut c_void,
    unix_ms: u64,
    out: *mut rrpc::ffi::credentials::rrpc_credentials,
) -> i32 {
    let st = unsafe { &*(user_data as *const SignState) };
    let n = st.calls.fetch_add(1, Ordering::SeqCst) + 1;
    st.unix_ms.lock().unwrap().push(unix_ms);
    if st.always_fail {
        return -1;
    }
    let out = unsafe { &mut *out };
    match n {
        1 => {
            let client = st.client.load(Ordering::SeqCst);
            *st.stop_from_inside.lock().unwrap() = Some(rrpc_client_stop(client));
            put(&mut out.username, &format!("dev1&{PK}"));
            put(&mut out.password, "wrong");
        }
        2 => out.username.fill(b'x' as c_char),
        _ => {
            put(&mut out.username, &format!("dev1&{PK}"));
            put(&mut out.password, "s3cret");
        }
    }
    0
}

/// `rrpc_mqtt_config.sign` signs every connection attempt again: what it writes
/// is what the broker sees; a failing callback or a malformed field leaves the
/// last credentials in use; it cannot stop its own client.
fn the_sign_callback_signs_every_attempt() {
    let broker = Broker::mosquitto_with_user(&format!("dev1&{PK}"), "s3cret");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = now_ms();

    // Re-signed until the broker takes it.
    let state = Box::new(SignState::default());
    let client = new_client(broker.port, |_, m| {
        m.connect_timeout_ms = 0;
        m.reconnect_min_ms = 20;
        m.reconnect_max_ms = 50;
        m.sign = Some(sign);
        m.sign_user_data = &*state as *const SignState as *mut c_void;
    });
    state.client.store(client, Ordering::SeqCst);
    add_dev1(client);
    start_ok(client);
    common::wait_until("connected", Duration::from_secs(10), || {
        let mut c = 0;
        assert_eq!(rrpc_client_is_connected(client, &mut c), RRPC_STATUS_OK);
        c == 1
    });
    let calls = state.calls.load(Ordering::SeqCst);
    assert!(calls >= 3, "connected after {calls} signings");
    assert!(stats(client).connection_errors >= 2);
    assert_eq!(
        *state.stop_from_inside.lock().unwrap(),
        Some(RRPC_STATUS_WRONG_STATE)
    );
    let times = state.unix_ms.lock().unwrap().clone();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times[0] >= before && *times.last().unwrap() <= now_ms(),
        "{times:?}"
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);

    // A callback that always fails: the config's own credentials are used.
    let failing = Box::new(SignState {
        always_fail: true,
        ..SignState::default()
    });
    let (user, good) = (c(&format!("dev1&{PK}")), c("s3cret"));
    let (client, _rec) = started(broker.port, |_, m| {
        m.username = user.as_ptr();
        m.password = good.as_ptr();
        m.sign = Some(sign);
        m.sign_user_data = &*failing as *const SignState as *mut c_void;
    });
    assert!(failing.calls.load(Ordering::SeqCst) >= 1);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn a_stopped_client_starts_again_and_serves_in_either_mode() {
    let (_b, client, _rec, caller) = running(|_, _| {});
    let call = |p: &[u8]| caller.call_system(PK, "dev1", p, Duration::from_secs(2));
    assert_eq!(call(b"one").as_deref(), Some(&b"one"[..]));
    assert_eq!(rrpc_client_stop(client), RRPC_STATUS_OK);
    assert_eq!(
        rrpc_client_stop(client),
        RRPC_STATUS_OK,
        "stopping twice is harmless"
    );
    let mut connected = 1;
    assert_eq!(
        rrpc_client_is_connected(client, &mut connected),
        RRPC_STATUS_OK
    );
    assert_eq!(connected, 0);
    assert_eq!(call(b"while stopped"), None);
    start_ok(client);
    assert_eq!(call(b"two").as_deref(), Some(&b"two"[..]));
    // From thread mode to yield mode.
    assert_eq!(rrpc_client_stop(client), RRPC_STATUS_OK);
    let limit = Duration::from_secs(10);
    let answered = answered_while_yielding(client, &caller, "dev1", b"three", 20, limit);
    assert_eq!(answered.as_deref(), Some(&b"three"[..]));
    assert!(stats(client).connects >= 3);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

/// What a connection callback saw: (state, cause, reason, delay_ms).
#[derive(Default)]
struct Events(Mutex<Vec<(u32, u32, String, u64)>>);

unsafe extern "C" fn on_connection(user_data: *mut c_void, ev: *const rrpc_connection_event) {
    let events = unsafe { &*(user_data as *const Events) };
    let ev = unsafe { &*ev };
    let reason = if ev.reason.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(ev.reason) }
            .to_string_lossy()
            .into_owned()
    };
    events
        .0
        .lock()
        .unwrap()
        .push((ev.state, ev.cause, reason, ev.delay_ms));
}

fn states(events: &Events) -> Vec<(u32, u32)> {
    events
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.0, e.1))
        .collect()
}

const CONNECTED: u32 = rrpc_connection_state::RRPC_CONNECTION_CONNECTED as u32;
const DISCONNECTED: u32 = rrpc_connection_state::RRPC_CONNECTION_DISCONNECTED as u32;
const RECONNECTING: u32 = rrpc_connection_state::RRPC_CONNECTION_RECONNECTING as u32;
const NO_CAUSE: u32 = rrpc_disconnect_cause::RRPC_DISCONNECT_NONE as u32;
const LOST: u32 = rrpc_disconnect_cause::RRPC_DISCONNECT_LOST as u32;
const FAILED: u32 = rrpc_disconnect_cause::RRPC_DISCONNECT_CONNECT_FAILED as u32;
const STOPPED: u32 = rrpc_disconnect_cause::RRPC_DISCONNECT_STOPPED as u32;

fn connection_events_tell_a_lost_connection_from_a_failed_connect() {
    let mut broker = Broker::mosquitto();
    let client = new_client(broker.port, |_, m| {
        m.reconnect_min_ms = 200;
        m.reconnect_max_ms = 400;
    });
    let events = Arc::new(Events::default());
    assert_eq!(
        rrpc_client_set_connection_callback(
            client,
            Some(on_connection),
            Arc::as_ptr(&events) as *mut c_void
        ),
        RRPC_STATUS_OK
    );
    add_dev1(client);
    start_ok(client);
    assert_eq!(states(&events), [(CONNECTED, NO_CAUSE)]);

    // The broker dies: the connection is lost, then attempts fail, each followed
    // by the delay before the next one.
    broker.kill();
    common::wait_until("two failed attempts", Duration::from_secs(10), || {
        states(&events)
            .iter()
            .filter(|s| **s == (DISCONNECTED, FAILED))
            .count()
            >= 2
    });
    let seen = events.0.lock().unwrap().clone();
    assert_eq!((seen[1].0, seen[1].1), (DISCONNECTED, LOST), "{seen:?}");
    assert!(!seen[1].2.is_empty(), "a lost connection has a reason");
    assert_eq!(seen[2].0, RECONNECTING, "{seen:?}");
    assert!(
        (150..=500).contains(&seen[2].3),
        "the first delay is reconnect_min_ms with jitter: {seen:?}"
    );
    let failed = seen.iter().find(|e| (e.0, e.1) == (DISCONNECTED, FAILED));
    assert!(failed.unwrap().2.contains("refused"), "{seen:?}");

    // Back: connected again; a stop is an event of its own.
    broker.restart();
    common::wait_until("the reconnect", Duration::from_secs(10), || {
        states(&events).last() == Some(&(CONNECTED, NO_CAUSE))
    });
    assert_eq!(rrpc_client_stop(client), RRPC_STATUS_OK);
    assert_eq!(states(&events).last(), Some(&(DISCONNECTED, STOPPED)));
    assert!(stats(client).connects >= 2);
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn yield_tells_a_lost_connection_from_a_failed_connect() {
    let mut broker = Broker::mosquitto();
    let client = new_client(broker.port, |_, m| {
        m.reconnect_min_ms = 5000;
        m.reconnect_max_ms = 5000;
    });
    add_dev1(client);
    common::wait_until("the connection", Duration::from_secs(10), || {
        let st = rrpc_client_yield(client, 20);
        assert!(
            st == RRPC_STATUS_OK || st == RRPC_STATUS_CONNECT_FAILED,
            "{st:?}"
        );
        let mut c = 0;
        assert_eq!(rrpc_client_is_connected(client, &mut c), RRPC_STATUS_OK);
        c == 1
    });
    broker.kill();
    let mut st = RRPC_STATUS_OK;
    for _ in 0..100 {
        st = rrpc_client_yield(client, 50);
        if st != RRPC_STATUS_OK {
            break;
        }
    }
    assert_eq!(st, RRPC_STATUS_CONNECT_FAILED);
    let msg = last_error();
    assert!(
        msg.contains(&format!("connection to 127.0.0.1:{} lost: ", broker.port)),
        "{msg}"
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);

    // A client that never got through says so.
    let port = common::free_port();
    let client = new_client(port, |_, _| {});
    assert_eq!(rrpc_client_yield(client, 50), RRPC_STATUS_CONNECT_FAILED);
    assert!(
        last_error().contains(&format!("could not connect to 127.0.0.1:{port}: ")),
        "{}",
        last_error()
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn stop_sends_the_replies_already_accepted() {
    let (_b, client, rec, caller) = running(|_, _| {});
    rec.mode.store(1, Ordering::SeqCst); // the test replies, not the callback
    let caller = Arc::new(caller);
    for round in 0..10 {
        let payload = format!("last words {round}");
        let c2 = caller.clone();
        let p2 = payload.clone();
        let call = std::thread::spawn(move || {
            c2.call_system(PK, "dev1", p2.as_bytes(), Duration::from_secs(5))
        });
        common::wait_until("the request", Duration::from_secs(10), || {
            rec.requests.lock().unwrap().len() > round
        });
        let token = rec.requests.lock().unwrap()[round].token;
        // Reply and stop at once: stop sends the reply before it disconnects.
        assert_eq!(
            rrpc_client_reply(client, token, payload.as_ptr(), payload.len()),
            RRPC_STATUS_OK
        );
        assert_eq!(rrpc_client_stop(client), RRPC_STATUS_OK);
        assert_eq!(
            call.join().unwrap().as_deref(),
            Some(payload.as_bytes()),
            "round {round}: the reply accepted before stop was lost"
        );
        start_ok(client);
    }
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

fn the_request_callback_is_released_by_set_callback() {
    let (_b, client, rec, caller) = running(|_, _| {});
    slow_callback_running(caller, &rec);
    assert_eq!(
        rrpc_client_set_request_callback(client, None, null_mut()),
        RRPC_STATUS_OK
    );
    assert!(
        rec.finished.load(Ordering::SeqCst),
        "set_callback returned while the old callback was running"
    );
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);
}

/// From a C program: flag fields holding 2 and client ids with `#`, `+`, `/`
/// or control characters are refused with INVALID_ARGUMENT naming the field
/// (tests/c/config_harness.c).
fn c_flags_and_client_ids_are_checked() {
    let exe = common::c_harness("config_harness.c", "config_harness");
    common::run_c_harness(&exe);
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        null_pointers_are_refused_with_the_argument_named,
        strings_that_are_not_utf8_are_refused,
        identities_that_could_inject_topics_are_refused,
        devices_are_registered_once_and_removed_once,
        configuration_is_validated,
        library_facts,
        unreachable_broker_at_start_is_a_clear_error_and_leaves_nothing_running,
        background_mode_reconnects_until_the_broker_appears,
        yield_mode_reports_connect_failures_and_serves_requests,
        reply_rules_unknown_double_oversized_and_late,
        a_request_left_unanswered_expires_and_frees_its_entry,
        oversized_requests_are_dropped_and_counted_without_losing_the_connection,
        malformed_request_topics_are_ignored_counted_and_logged,
        callbacks_cannot_stop_free_or_yield_their_client_but_can_reply,
        free_waits_for_a_running_callback,
        deferred_replies_from_other_threads_and_several_devices,
        two_clients_on_one_broker_get_distinct_default_ids,
        credentials_are_sent_and_a_refusal_is_a_clear_error needs ["mosquitto", "mosquitto_passwd"],
        the_sign_callback_signs_every_attempt needs ["mosquitto", "mosquitto_passwd"],
        a_stopped_client_starts_again_and_serves_in_either_mode,
        connection_events_tell_a_lost_connection_from_a_failed_connect needs ["mosquitto"],
        yield_tells_a_lost_connection_from_a_failed_connect needs ["mosquitto"],
        stop_sends_the_replies_already_accepted,
        the_request_callback_is_released_by_set_callback,
        c_flags_and_client_ids_are_checked needs ["cmake", "cc"],
    ]
}
