//! Gateway mode under concurrency: messages handled on several threads while
//! other threads add and remove devices, through the C ABI as C calls it.

use std::ffi::{c_char, c_void, CString};
use std::mem::size_of;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rrpc::ffi::misc::rrpc_monotonic_ms;
use rrpc::ffi::router::*;
use rrpc::ffi::rrpc_request;
use rrpc::ffi::rrpc_status::{self, *};
use rrpc::RouterStats;

use crate::common::ffi::{assert_ok, c_defaults, last_error};

/// The time, on the clock the router is given.
fn now_ms() -> u64 {
    let mut t = 0;
    assert_ok(rrpc_monotonic_ms(&mut t));
    t
}

static PUBLISHED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn publish(
    _: *mut c_void,
    _: *const c_char,
    _: *const u8,
    _: usize,
    _: i32,
) -> i32 {
    PUBLISHED.fetch_add(1, Ordering::Relaxed);
    0
}

unsafe extern "C" fn echo(_: *mut c_void, router: *mut rrpc_router, req: *const rrpc_request) {
    let req = unsafe { &*req };
    let st = rrpc_router_reply(router, req.token, req.payload, req.payload_len, now_ms());
    // The device may have been removed between accept and reply by another thread;
    // if this thread was descheduled while more than the history's 1,024 requests
    // finished, the cancelled token is not even remembered any more.
    assert!(
        st == RRPC_STATUS_OK || st == RRPC_STATUS_DEVICE_REMOVED || st == RRPC_STATUS_UNKNOWN_TOKEN,
        "{st:?}"
    );
}

/// A router with the default settings.
fn new_router() -> *mut rrpc_router {
    let mut router = null_mut();
    assert_ok(rrpc_router_new(
        &c_defaults(rrpc_router_config_init),
        &mut router,
    ));
    router
}

/// Adds the Alibaba device `pk`/`dn`, with no secret and no callback of its own.
fn add_device(router: *mut rrpc_router, pk: &CString, dn: &CString) -> rrpc_status {
    rrpc_router_add_device(
        router,
        0,
        pk.as_ptr(),
        dn.as_ptr(),
        std::ptr::null(),
        None,
        null_mut(),
    )
}

/// The router's counters.
fn stats(router: *mut rrpc_router) -> RouterStats {
    let mut st = RouterStats::default();
    assert_ok(rrpc_router_get_stats(
        router,
        &mut st,
        size_of::<RouterStats>(),
    ));
    st
}

fn devices_come_and_go_while_messages_flow() {
    let router = new_router();
    assert_ok(rrpc_router_set_publish(router, Some(publish), null_mut()));
    assert_ok(rrpc_router_set_request_callback(
        router,
        Some(echo),
        null_mut(),
    ));
    let pk = CString::new("pk").unwrap();
    let name = |i: u32| CString::new(format!("dev{i}")).unwrap();
    for i in 0..100 {
        assert_ok(add_device(router, &pk, &name(i)));
    }
    let r = router as usize;
    let stop = AtomicBool::new(false);
    let handled = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (stop, handled) = (&stop, &handled);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 200_000 {
                    let topic = format!("/sys/pk/dev{}/rrpc/request/{t}-{n}", n % 150);
                    let mut kind = 99u32;
                    let st = rrpc_router_handle_message(
                        r as *mut rrpc_router,
                        topic.as_ptr(),
                        topic.len(),
                        b"x".as_ptr(),
                        1,
                        0,
                        now_ms(),
                        &mut kind,
                    );
                    assert_ok(st);
                    assert!(
                        kind == 0 || kind == 3,
                        "request or dropped (unknown device): {kind}"
                    );
                    n += 1;
                }
                handled.fetch_add(n, Ordering::Relaxed);
            });
        }
        // Devices 100..150 are added and removed over and over meanwhile.
        for round in 0..200 {
            for i in 100..150 {
                let dn = name(i);
                let st = if round % 2 == 0 {
                    add_device(r as *mut rrpc_router, &pk, &dn)
                } else {
                    rrpc_router_remove_device(
                        r as *mut rrpc_router,
                        0,
                        pk.as_ptr(),
                        dn.as_ptr(),
                        std::ptr::null(),
                        now_ms(),
                    )
                };
                assert_ok(st);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let st = stats(router);
    let handled = handled.load(Ordering::Relaxed);
    assert_eq!(st.messages, handled);
    assert_eq!(
        st.requests + st.unknown_device,
        handled,
        "every message either served or counted"
    );
    assert_eq!(
        st.replied + st.bad_tokens,
        st.requests,
        "each request replied once or refused (removed)"
    );
    assert_eq!(PUBLISHED.load(Ordering::Relaxed), st.replied);
    assert_eq!(st.devices, 100);
    assert_ok(rrpc_router_free(router));
}

/// A `retained` byte other than 0 or 1 (which a C `bool` cannot hold, but garbage
/// can) is refused with the argument named, and the out-parameter is left alone.
fn a_retained_flag_other_than_0_or_1_is_refused() {
    let router = new_router();
    let (pk, dn) = (CString::new("pk").unwrap(), CString::new("dev4").unwrap());
    assert_ok(add_device(router, &pk, &dn));
    let topic = b"/sys/pk/dev4/rrpc/request/r1";
    let mut kind = 99u32;
    let st = rrpc_router_handle_message(
        router,
        topic.as_ptr(),
        topic.len(),
        std::ptr::null(),
        0,
        2,
        now_ms(),
        &mut kind,
    );
    assert_eq!(st, RRPC_STATUS_INVALID_ARGUMENT);
    assert_eq!(kind, 99);
    let msg = last_error();
    assert!(
        msg.contains("retained must be 0 (false) or 1 (true), not 2"),
        "{msg}"
    );
    let st = stats(router);
    assert_eq!((st.messages, st.requests), (0, 0), "nothing was taken in");
    assert_ok(rrpc_router_free(router));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        devices_come_and_go_while_messages_flow,
        a_retained_flag_other_than_0_or_1_is_refused,
    ]
}
