//! The router with the envelope dialects: ids, names and (gateway) devices
//! found in the body, replies wrapped around the application's, and every
//! broken body dropped and counted.

use super::tests::{dev, send_ok, PK};
use super::*;

const TENCENT_TOPIC: &str = "$thing/down/action/a1GFjLP3xxC/dev1";
const GATEWAY_TOPIC: &str = "v1/gateway/rpc";

/// The request of the Tencent protocol document
/// (https://cloud.tencent.com/document/product/1081/34916, 设备行为调用).
const TENCENT_REQUEST: &str = r#"{"method": "action", "clientToken": "20a4ccfd-d308-11e9-86c6-5254008a4f10", "actionId": "openDoor", "timestamp": 1212121221, "params": {"userid": "323343"}}"#;

/// The gateway request of ThingsBoard's gateway MQTT API
/// (thingsboard.github.io `docs/reference/gateway-mqtt-api.md`), for `device`
/// and request id `id`.
fn gateway_request(device: &str, id: u64) -> String {
    format!(
        r#"{{"device": "{device}", "data": {{"id": {id}, "method": "toggle_gpio", "params": {{"pin":1}}}}}}"#
    )
}

fn gateway_device(dn: &str) -> Identity<'_> {
    Identity {
        product_key: "",
        device_name: dn,
        custom_topic: None,
    }
}

fn gateway_router() -> Router {
    let mut r = Router::new(RouterConfig::default());
    for dn in ["Device A", "Device B"] {
        let d = r
            .add_device(Dialect::ThingsBoardGateway, &gateway_device(dn))
            .unwrap();
        assert_eq!(d.filter(), GATEWAY_TOPIC);
    }
    r
}

#[test]
fn tencent_action_request_and_reply_in_the_envelope() {
    let mut r = Router::new(RouterConfig::default());
    let d = r.add_device(Dialect::TencentAction, &dev("dev1")).unwrap();
    assert_eq!(d.filter(), TENCENT_TOPIC);
    let a = r
        .handle_message(TENCENT_TOPIC, TENCENT_REQUEST.as_bytes(), 0)
        .unwrap();
    assert_eq!(a.message_id, "20a4ccfd-d308-11e9-86c6-5254008a4f10");
    assert_eq!(a.name, Some("openDoor"));
    assert_eq!(a.payload, br#"{"userid": "323343"}"#);
    assert_eq!(a.content_type, None);
    assert_eq!(a.deadline_ms, 5000);
    // A second delivery of the same clientToken is a duplicate.
    assert_eq!(
        r.handle_message(TENCENT_TOPIC, TENCENT_REQUEST.as_bytes(), 1),
        Err(Dropped::Duplicate)
    );
    // The reply: the application's JSON as `response`, the status as `code`.
    let mut sent = Vec::new();
    r.reply_with_status(a.token, Some(3), br#"{"Code": 0}"#, 2, send_ok(&mut sent))
        .unwrap();
    assert_eq!(sent[0].0, format!("$thing/up/action/{PK}/dev1"));
    assert_eq!(
        std::str::from_utf8(&sent[0].1).unwrap(),
        r#"{"method":"action_reply","clientToken":"20a4ccfd-d308-11e9-86c6-5254008a4f10","code":3,"status":"","response":{"Code": 0}}"#
    );
    // Another device's topic names a device this router does not serve.
    let other = format!("$thing/down/action/{PK}/dev2");
    assert_eq!(
        r.handle_message(&other, TENCENT_REQUEST.as_bytes(), 3),
        Err(Dropped::UnknownDevice)
    );
    let s = r.stats();
    assert_eq!(
        (s.requests, s.duplicates, s.replied, s.unknown_device),
        (1, 1, 1, 1)
    );
}

#[test]
fn a_reply_that_is_not_json_is_refused_and_the_token_stays_valid() {
    let mut r = Router::new(RouterConfig::default());
    r.add_device(Dialect::TencentAction, &dev("dev1")).unwrap();
    let t = r
        .handle_message(TENCENT_TOPIC, TENCENT_REQUEST.as_bytes(), 0)
        .unwrap()
        .token;
    let mut sent = Vec::new();
    assert_eq!(
        r.reply(t, b"ok", 1, send_ok(&mut sent)),
        Err(ReplyError::Envelope(envelope::REPLY_NOT_JSON))
    );
    assert!(sent.is_empty());
    // The length-only half cannot wrap a reply it does not see.
    assert!(matches!(
        r.begin_reply(t, 2, 1),
        Err(ReplyError::Envelope(_))
    ));
    // An empty reply is `{}`, through the two halves.
    let (topic, body) = r.begin_reply_body(t, None, b"", 2).unwrap();
    assert_eq!(topic, format!("$thing/up/action/{PK}/dev1"));
    assert!(body.ends_with(br#""code":0,"status":"","response":{}}"#));
    r.end_reply(t, true, 3);
    assert_eq!(r.stats().replied, 1);
    assert_eq!(r.stats().bad_tokens, 0);
}

#[test]
fn one_gateway_connection_serves_many_devices_by_the_envelopes_device() {
    let mut r = gateway_router();
    assert!(!Dialect::ThingsBoardGateway.per_connection());
    let b_req = gateway_request("Device B", 1);
    let b = r
        .handle_message(GATEWAY_TOPIC, b_req.as_bytes(), 0)
        .unwrap();
    assert_eq!(
        r.request_device(b.device).unwrap().identity.device_name,
        "Device B"
    );
    assert_eq!((b.message_id, b.name), ("1", Some("toggle_gpio")));
    assert_eq!(b.payload, br#"{"pin":1}"#);
    // The same id for another device is another request.
    let a_req = gateway_request("Device A", 1);
    let a = r
        .handle_message(GATEWAY_TOPIC, a_req.as_bytes(), 1)
        .unwrap();
    assert_eq!(
        r.request_device(a.device).unwrap().identity.device_name,
        "Device A"
    );
    assert_eq!(
        r.handle_message(GATEWAY_TOPIC, b_req.as_bytes(), 2),
        Err(Dropped::Duplicate)
    );
    // A device this router does not serve.
    assert_eq!(
        r.handle_message(GATEWAY_TOPIC, gateway_request("Device C", 1).as_bytes(), 2),
        Err(Dropped::UnknownDevice)
    );
    // The reply names the request's device, never another.
    let mut sent = Vec::new();
    r.reply(b.token, br#"{"success":true}"#, 3, send_ok(&mut sent))
        .unwrap();
    assert_eq!(sent[0].0, GATEWAY_TOPIC);
    assert_eq!(
        sent[0].1,
        br#"{"device":"Device B","id":1,"data":{"success":true}}"#
    );
    // The reply comes back on the gateway's subscription: its own.
    assert_eq!(
        r.handle_message(GATEWAY_TOPIC, &sent[0].1, 4),
        Err(Dropped::OwnReply)
    );
    // An escaped device name is the registered one.
    let escaped = r#"{"device":"Device\u0020A","data":{"id":2,"method":"m"}}"#;
    let e = r
        .handle_message(GATEWAY_TOPIC, escaped.as_bytes(), 5)
        .unwrap();
    assert_eq!((e.device, e.payload), (a.device, &b"null"[..]));
    // Removing one device leaves the other served.
    r.remove_device(Dialect::ThingsBoardGateway, &gateway_device("Device B"), 6)
        .unwrap();
    assert_eq!(
        r.handle_message(GATEWAY_TOPIC, gateway_request("Device B", 9).as_bytes(), 7),
        Err(Dropped::UnknownDevice)
    );
    let s = r.stats();
    assert_eq!(
        (s.requests, s.duplicates, s.unknown_device, s.own_replies),
        (3, 1, 2, 1)
    );
}

#[test]
fn broken_envelopes_are_dropped_as_malformed_and_counted() {
    let mut r = gateway_router();
    r.add_device(Dialect::TencentAction, &dev("dev1")).unwrap();
    let gateway: &[&[u8]] = &[
        b"",
        b"not json",
        b"\xff\xfe",
        br#"{"device":"Device A","data":{"id":"1","method":"m"}}"#,
        br#"{"device":"Device A","data":{"id":-1,"method":"m"}}"#,
        br#"{"device":"Device A","data":{"id":18446744073709551616,"method":"m"}}"#,
        br#"{"device":"Device A","data":{"id":1,"id":2,"method":"m"}}"#,
        br#"{"device":"Device A","data":{"method":"m"}}"#,
        br#"{"device":"Device A","data":{"id":1,"method":"m","params":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}"#,
        br#"{"device":"Device A","data":{"id":1,"method":"m"}} trailing"#,
    ];
    for body in gateway {
        match r.handle_message(GATEWAY_TOPIC, body, 0) {
            Err(Dropped::Malformed(_)) => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    let tencent: &[&[u8]] = &[
        br#"{"method":"action","clientToken":5,"actionId":"a"}"#,
        br#"{"method":"action","actionId":"a"}"#,
        br#"{"method":"action","clientToken":"t","clientToken":"u","actionId":"a"}"#,
        br#"{"method":"action","clientToken":"t","actionId":"a""#,
    ];
    for body in tencent {
        assert!(
            matches!(
                r.handle_message(TENCENT_TOPIC, body, 0),
                Err(Dropped::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let s = r.stats();
    assert_eq!(s.malformed, (gateway.len() + tencent.len()) as u64);
    assert_eq!((s.requests, s.pending), (0, 0));
    // Oversize bodies are refused before they are read.
    let mut small = Router::new(RouterConfig {
        max_payload: 16,
        ..RouterConfig::default()
    });
    small
        .add_device(Dialect::ThingsBoardGateway, &gateway_device("Device A"))
        .unwrap();
    assert_eq!(
        small.handle_message(GATEWAY_TOPIC, gateway_request("Device A", 1).as_bytes(), 0),
        Err(Dropped::TooLarge)
    );
    // A retained request is never executed.
    assert_eq!(
        r.handle_received(
            GATEWAY_TOPIC,
            gateway_request("Device A", 1).as_bytes(),
            true,
            0
        ),
        Err(Dropped::Retained)
    );
}

#[test]
fn the_shared_router_hands_over_the_params_and_publishes_the_wrapped_reply() {
    type Sent = Arc<parking_lot::Mutex<Vec<(String, Vec<u8>)>>>;
    let r = Arc::new(SharedRouter::<()>::new(RouterConfig::default()).unwrap());
    let sent: Sent = Default::default();
    let s = sent.clone();
    r.set_publish(Some(Box::new(
        move |t: String, p: &[u8], _: Option<&[u8]>| {
            s.lock().push((t, p.to_vec()));
            Ok(())
        },
    )))
    .unwrap();
    let weak = Arc::downgrade(&r);
    let seen: Sent = Default::default();
    let seen2 = seen.clone();
    r.set_request_callback(Some(Box::new(move |req: &Request<'_>| {
        let r = weak.upgrade().unwrap();
        seen2
            .lock()
            .push((req.message_id().to_string(), req.payload.to_vec()));
        assert_eq!(
            r.reply(req.token, b"not json", 1),
            Err(ReplyError::Envelope(envelope::REPLY_NOT_JSON))
        );
        r.reply(req.token, req.payload, 1).unwrap();
    })))
    .unwrap();
    r.add_device(
        Dialect::ThingsBoardGateway,
        &gateway_device("Device A"),
        None,
    )
    .unwrap();
    let body = gateway_request("Device A", 12);
    r.handle_message(GATEWAY_TOPIC, body.as_bytes(), false, 0)
        .unwrap();
    assert_eq!(seen.lock()[0], ("12".to_string(), br#"{"pin":1}"#.to_vec()));
    assert_eq!(
        sent.lock()[0],
        (
            GATEWAY_TOPIC.to_string(),
            br#"{"device":"Device A","id":12,"data":{"pin":1}}"#.to_vec()
        )
    );
}
