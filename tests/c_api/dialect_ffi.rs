//! Dialects through the C functions, called as C calls them: a dialect
//! registered with `rrpc_dialect_register` served by `rrpc_client`, whose
//! `rrpc_client_reply_status` puts the status into the reply topic, against an
//! in-process rumqttd broker on a free loopback port.

use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rrpc::ffi::client::*;
use rrpc::ffi::dialect::*;
use rrpc::ffi::rrpc_request;
use rrpc::ffi::rrpc_status::{self, *};
use rrpc::ffi::session::*;

use crate::common::ffi::{c_defaults, last_error};
use crate::common::Broker;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Registers `name` with these templates.
fn register(name: &str, request: &str, response: &str) -> Result<u32, (rrpc_status, String)> {
    let (n, q, r) = (c(name), c(request), c(response));
    let mut cfg: rrpc_dialect_config = c_defaults(rrpc_dialect_config_init);
    cfg.name = n.as_ptr();
    cfg.request = q.as_ptr();
    cfg.response = r.as_ptr();
    let mut d = u32::MAX;
    match rrpc_dialect_register(&cfg, &mut d) {
        RRPC_STATUS_OK => Ok(d),
        st => {
            assert_eq!(d, u32::MAX, "written only on success");
            Err((st, last_error()))
        }
    }
}

fn registration_names_the_refused_field() {
    let d = register(
        "ffi-reg",
        "ffireg/{pk}/{dn}/call/{id}",
        "ffireg/{pk}/{dn}/reply/{id}",
    )
    .unwrap();
    assert!(d >= RRPC_DIALECT_USER_FIRST);
    assert_eq!(
        register(
            "ffi-reg",
            "ffireg/{pk}/{dn}/call/{id}",
            "ffireg/{pk}/{dn}/reply/{id}"
        ),
        Ok(d),
        "the same definition twice is the same dialect"
    );
    let (st, msg) =
        register("ffi-noid", "ffinoid/{dn}/call", "ffinoid/{dn}/reply/{id}").unwrap_err();
    assert_eq!(st, RRPC_STATUS_INVALID_DIALECT);
    assert!(
        msg.starts_with("rrpc_dialect_register: request: ") && msg.contains("has no {id}"),
        "{msg}"
    );
    let (st, msg) = register("ffi-noid", "ffinoid/{dn}/{id}", "ffinoid/{dn}/{idd}").unwrap_err();
    assert_eq!(st, RRPC_STATUS_INVALID_DIALECT);
    assert!(msg.contains("response: "), "{msg}");
    let mut buf = [0 as std::ffi::c_char; 16];
    let mut len = 0;
    assert_eq!(
        rrpc_dialect_name(d, buf.as_mut_ptr(), buf.len(), &mut len),
        RRPC_STATUS_OK
    );
    assert_eq!(len, 7);
    assert_eq!(
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str(),
        Ok("ffi-reg")
    );
}

unsafe extern "C" fn reply_404(
    _user_data: *mut c_void,
    client: *mut rrpc_client,
    req: *const rrpc_request,
) {
    let req = unsafe { &*req };
    let name = unsafe { CStr::from_ptr(req.name) }.to_str().unwrap();
    assert_eq!(name, "lookup");
    assert_eq!(
        rrpc_client_reply_status(client, req.token, 99, null(), 0),
        RRPC_STATUS_INVALID_ARGUMENT
    );
    assert_eq!(
        rrpc_client_reply_status(client, req.token, 404, b"none".as_ptr(), 4),
        RRPC_STATUS_OK
    );
}

fn a_client_reply_carries_its_status_in_the_topic() {
    let d = register(
        "ffi-status",
        "ffistat/{pk}/{dn}/call/{id}/{name}",
        "ffistat/{pk}/{dn}/reply/{id}/{status}",
    )
    .unwrap();
    let broker = Broker::rumqttd();

    // A watcher of the replies.
    let mut o = rumqttc::MqttOptions::new("ffi-status-watcher", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut connection) = rumqttc::Client::new(o, 100);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in connection.iter() {
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send(Some((p.topic.clone(), p.payload.to_vec())));
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = tx.send(None);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    watcher
        .subscribe("ffistat/p1/d1/reply/#", rumqttc::QoS::AtMostOnce)
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), None);

    let host = c("127.0.0.1");
    let mut mqtt: rrpc_mqtt_config = c_defaults(rrpc_mqtt_config_init);
    mqtt.host = host.as_ptr();
    mqtt.port = broker.port;
    let mut cfg: rrpc_client_config = c_defaults(rrpc_client_config_init);
    cfg.mqtt = &mqtt;
    let mut client = null_mut();
    assert_eq!(
        rrpc_client_new(&cfg, &mut client),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );
    let (pk, dn) = (c("p1"), c("d1"));
    assert_eq!(
        rrpc_client_add_device(client, d, pk.as_ptr(), dn.as_ptr(), null()),
        RRPC_STATUS_OK
    );
    assert_eq!(
        rrpc_client_set_request_callback(client, Some(reply_404), null_mut()),
        RRPC_STATUS_OK
    );
    assert_eq!(
        rrpc_client_start(client),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );

    // Until the device's subscription is in place, requests go unheard: repeat.
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    let mut n = 0;
    while got.is_none() && Instant::now() < end {
        n += 1;
        watcher
            .publish(
                format!("ffistat/p1/d1/call/{n}/lookup"),
                rumqttc::QoS::AtMostOnce,
                false,
                b"{}".to_vec(),
            )
            .unwrap();
        if let Ok(Some(reply)) = rx.recv_timeout(Duration::from_millis(300)) {
            got = Some(reply);
        }
    }
    let (topic, payload) = got.expect("a reply");
    assert!(
        topic.starts_with("ffistat/p1/d1/reply/") && topic.ends_with("/404"),
        "{topic}"
    );
    assert_eq!(payload, b"none");
    assert_eq!(rrpc_client_free(client), RRPC_STATUS_OK);

    assert_eq!(
        rrpc_client_reply_status(null_mut(), 1, 200, null(), 0),
        RRPC_STATUS_NULL_POINTER
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        registration_names_the_refused_field,
        a_client_reply_carries_its_status_in_the_topic,
    ]
}
