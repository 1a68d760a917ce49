//! The envelope scanner: the exact bodies of the vendors' documents and SDKs,
//! and every kind of broken body a network can deliver.

use super::*;

const TENCENT: Envelope = Envelope::TencentAction;
const GATEWAY: Envelope = Envelope::ThingsBoardGateway;

fn malformed(e: Envelope, body: &str) -> &'static str {
    match decode_request(e, body.as_bytes()) {
        Err(EnvelopeError::Malformed(why)) => why,
        other => panic!("{body}: {other:?}"),
    }
}

/// Tencent IoT Explorer protocol (https://cloud.tencent.com/document/product/1081/34916,
/// 设备行为调用; the same text in tencentyun/qcloud-iot-explorer-sdk-embedded-c
/// `docs/数据模板开发/数据模板协议.md` lines 393-491): the request and the reply
/// as the document prints them.
#[test]
fn tencent_action_round_trip_of_the_documented_bodies() {
    let request = r#"{"method": "action", "clientToken": "20a4ccfd-d308-11e9-86c6-5254008a4f10", "actionId": "openDoor", "timestamp": 1212121221, "params": {"userid": "323343"}}"#;
    let r = decode_request(TENCENT, request.as_bytes()).unwrap();
    assert_eq!(r.id, "20a4ccfd-d308-11e9-86c6-5254008a4f10");
    assert_eq!(r.name, "openDoor");
    assert_eq!(r.device, None);
    assert_eq!(r.params, br#"{"userid": "323343"}"#);
    // The document's reply carries `"response": {"Code": 0}`; our reply has its
    // keys, in the Python SDK's spelling (`__build_action_reply`,
    // tencentyun/iot-device-python explorer/services/template/template.py lines 96-104).
    let body = wrap_reply(TENCENT, r.id, "", None, br#"{"Code": 0}"#).unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"method":"action_reply","clientToken":"20a4ccfd-d308-11e9-86c6-5254008a4f10","code":0,"status":"","response":{"Code": 0}}"#
    );
    let back = unwrap_reply(TENCENT, &body).unwrap();
    assert_eq!((back.id, back.code), (r.id, Some(0)));
    assert_eq!(back.payload, br#"{"Code": 0}"#);
    // The document's own reply decodes on the caller's side.
    let documented = r#"{"method": "action_reply", "clientToken": "20a4ccfd-d308-11e9-86c6-5254008a4f10", "code": 0, "status": "some message wher error", "response": {"Code": 0}}"#;
    let d = unwrap_reply(TENCENT, documented.as_bytes()).unwrap();
    assert_eq!(
        (d.id, d.code, d.payload),
        (r.id, Some(0), &br#"{"Code": 0}"#[..])
    );
    // A status sets `code`; the Python sample's reply `{"err_code": 0}`
    // (explorer/sample/template/example_template.py lines 76-85).
    let body = wrap_reply(TENCENT, r.id, "", Some(1), br#"{"err_code": 0}"#).unwrap();
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains(r#""code":1,"status":"","response":{"err_code": 0}}"#));
    // The reply is never taken for a request.
    assert_eq!(decode_request(TENCENT, &body), Err(EnvelopeError::Reply));
}

/// ThingsBoard gateway MQTT API (thingsboard/thingsboard.github.io
/// `docs/reference/gateway-mqtt-api.md`, "Server-side RPC"; the new page
/// https://thingsboard.io/docs/paas/reference/gateway-api/rpc/ prints the
/// compact reply `{"device":"Device A","id":1,"data":{"success":true}}`).
#[test]
fn thingsboard_gateway_round_trip_of_the_documented_bodies() {
    let request = r#"{"device": "Device A", "data": {"id": 1, "method": "toggle_gpio", "params": {"pin":1}}}"#;
    let r = decode_request(GATEWAY, request.as_bytes()).unwrap();
    assert_eq!((r.id, r.name), ("1", "toggle_gpio"));
    assert_eq!(r.device.as_deref(), Some("Device A"));
    assert_eq!(r.params, br#"{"pin":1}"#);
    let body = wrap_reply(GATEWAY, r.id, "Device A", None, br#"{"success":true}"#).unwrap();
    assert_eq!(
        body,
        br#"{"device":"Device A","id":1,"data":{"success":true}}"#
    );
    // Replies come back on the same topic: they are not requests.
    assert_eq!(decode_request(GATEWAY, &body), Err(EnvelopeError::Reply));
    let back = unwrap_reply(GATEWAY, &body).unwrap();
    assert_eq!((back.id, back.device.as_deref()), ("1", Some("Device A")));
    // tb-mqtt-client's example answers with a bare number
    // (examples/gateway/respond_to_rpc.py: `psutil.cpu_percent(...)`), sent as
    // `{"device": device, "id": req_id, "data": resp}` (tb_gateway_mqtt.py lines 282-292).
    let body = wrap_reply(GATEWAY, "42", "Device A", None, b" 12.5\n").unwrap();
    assert_eq!(body, br#"{"device":"Device A","id":42,"data":12.5}"#);
    // Without params the application sees null.
    let r = decode_request(
        GATEWAY,
        br#"{"device":"Device A","data":{"id":7,"method":"reboot"}}"#,
    )
    .unwrap();
    assert_eq!(r.params, b"null");
}

#[test]
fn replies_must_be_json_and_empty_is_an_empty_object() {
    for e in [TENCENT, GATEWAY] {
        let body = wrap_reply(e, "1", "d", None, b"").unwrap();
        assert!(
            body.ends_with(b":{}}"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        let body = wrap_reply(e, "1", "d", None, b"  \r\n").unwrap();
        assert!(body.ends_with(b":{}}"));
        for bad in [
            &b"ok"[..],
            b"{",
            b"{} {}",
            b"\xff",
            b"[1,]",
            b"'x'",
            b"01",
            b"1.",
        ] {
            assert_eq!(
                wrap_reply(e, "1", "d", None, bad),
                Err(REPLY_NOT_JSON),
                "{bad:?}"
            );
        }
    }
    // The device name is escaped as JSON wants.
    let body = wrap_reply(GATEWAY, "1", "a\"b\\c", None, b"1").unwrap();
    assert_eq!(body, br#"{"device":"a\"b\\c","id":1,"data":1}"#);
}

#[test]
fn ids_of_the_wrong_type_or_size_are_malformed() {
    // Tencent's clientToken is a string, ThingsBoard's id an integer.
    let t = |token: &str| {
        format!(r#"{{"method":"action","clientToken":{token},"actionId":"a","params":{{}}}}"#)
    };
    assert_eq!(malformed(TENCENT, &t("12")), "the id is not a string");
    assert_eq!(malformed(TENCENT, &t("null")), "the id is not a string");
    assert_eq!(malformed(TENCENT, &t(r#""""#)), "the id is empty");
    let long = format!("\"{}\"", "x".repeat(129));
    assert_eq!(
        malformed(TENCENT, &t(&long)),
        "the id is longer than 128 bytes"
    );
    assert!(decode_request(TENCENT, t(&format!("\"{}\"", "x".repeat(128))).as_bytes()).is_ok());
    let g = |id: &str| format!(r#"{{"device":"d","data":{{"id":{id},"method":"m"}}}}"#);
    for bad in [r#""1""#, "-1", "1.5", "1e3", "true", "null", "{}", "[1]"] {
        assert_eq!(
            malformed(GATEWAY, &g(bad)),
            "the id is not a non-negative integer",
            "{bad}"
        );
    }
    assert_eq!(
        malformed(GATEWAY, &g("18446744073709551616")),
        "the id does not fit in 64 bits"
    );
    assert_eq!(
        malformed(GATEWAY, &g(&"9".repeat(400))),
        "the id does not fit in 64 bits"
    );
    let max = g("18446744073709551615");
    let max = decode_request(GATEWAY, max.as_bytes()).unwrap();
    assert_eq!(max.id, "18446744073709551615");
    assert_eq!(decode_request(GATEWAY, g("0").as_bytes()).unwrap().id, "0");
}

#[test]
fn missing_and_duplicate_keys_are_malformed() {
    for body in [
        r#"{"method":"action","actionId":"a"}"#,
        r#"{"method":"action","clientToken":"t"}"#,
        r#"{"clientToken":"t","actionId":"a"}"#,
    ] {
        malformed(TENCENT, body);
    }
    assert_eq!(
        malformed(
            TENCENT,
            r#"{"method":"property","clientToken":"t","actionId":"a"}"#
        ),
        "method is not \"action\""
    );
    assert_eq!(
        malformed(
            TENCENT,
            r#"{"method":"action","clientToken":"t","clientToken":"u","actionId":"a"}"#
        ),
        "a key is given twice"
    );
    assert_eq!(
        malformed(
            GATEWAY,
            r#"{"device":"d","data":{"id":1,"id":2,"method":"m"}}"#
        ),
        "a key is given twice"
    );
    assert_eq!(
        malformed(
            GATEWAY,
            r#"{"device":"d","device":"e","data":{"id":1,"method":"m"}}"#
        ),
        "a key is given twice"
    );
    for body in [
        r#"{"data":{"id":1,"method":"m"}}"#,
        r#"{"device":"d"}"#,
        r#"{"device":"d","data":[1]}"#,
        r#"{"device":"d","data":{"method":"m"}}"#,
        r#"{"device":"d","data":{"id":1}}"#,
        r#"{"device":"","data":{"id":1,"method":"m"}}"#,
        r#"{"device":7,"data":{"id":1,"method":"m"}}"#,
        r#"{"device":"d","data":{"id":1,"method":""}}"#,
    ] {
        malformed(GATEWAY, body);
    }
    // A key that is not the envelope's may repeat; the key's own duplicates
    // inside params are the application's.
    let ok =
        r#"{"device":"d","x":1,"x":2,"data":{"id":1,"method":"m","params":{"id":"a","id":"b"}}}"#;
    assert_eq!(
        decode_request(GATEWAY, ok.as_bytes()).unwrap().params,
        br#"{"id":"a","id":"b"}"#
    );
}

#[test]
fn broken_json_is_malformed_and_never_panics() {
    let bodies: &[&[u8]] = &[
        b"",
        b" ",
        b"null",
        b"[]",
        b"\"x\"",
        b"{",
        b"{\"device\"",
        b"{\"device\":",
        b"{\"device\":\"d\"",
        b"{\"device\":\"d\",}",
        b"{\"device\" \"d\"}",
        b"{device:\"d\"}",
        b"{\"device\":\"d\"}}",
        b"{\"device\":\"d\"} x",
        b"{\"device\":\"\xff\"}",
        b"{\"device\":\"a\x01b\"}",
        b"{\"device\":\"a\\qb\"}",
        b"{\"device\":\"a\\u12\"}",
        b"{\"device\":\"a\\",
        b"{\"device\":tru}",
        b"{\"device\":-}",
        b"{\"device\":01}",
        b"{\"device\":1.}",
        b"{\"device\":1e}",
        b"{\"device\":[1,2}",
        b"{\"device\":{\"a\" 1}}",
    ];
    for body in bodies {
        for e in [TENCENT, GATEWAY] {
            assert!(
                matches!(decode_request(e, body), Err(EnvelopeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(unwrap_reply(e, body).is_err());
            fuzz_check(body);
        }
    }
    assert_eq!(
        decode_request(Envelope::None, b"{}"),
        Err(Malformed("the dialect has no envelope"))
    );
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| {
        format!(
            r#"{{"device":"d","data":{{"id":1,"method":"m","params":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    // The envelope itself takes two levels.
    assert!(decode_request(GATEWAY, nested(MAX_DEPTH - 2).as_bytes()).is_ok());
    assert_eq!(
        malformed(GATEWAY, &nested(MAX_DEPTH - 1)),
        "the body nests deeper than 32 levels"
    );
    // Deep enough to overflow a stack without the bound.
    let deep = "[".repeat(1_000_000);
    assert_eq!(
        malformed(TENCENT, &format!("{{\"a\":{deep}")),
        "the body nests deeper than 32 levels"
    );
    assert!(!is_json(deep.as_bytes()));
}

#[test]
fn device_names_are_unescaped_and_bounded() {
    let g = |device: &str| format!(r#"{{"device":"{device}","data":{{"id":1,"method":"m"}}}}"#);
    // Gson (ThingsBoard's server side) escapes '=' as \u003d.
    let body = g(r"Device\u0020A\u003d\/\u00e9\ud83d\ude00");
    let r = decode_request(GATEWAY, body.as_bytes()).unwrap();
    assert_eq!(r.device.as_deref(), Some("Device A=/é😀"));
    assert_eq!(
        malformed(GATEWAY, &g(r"a\ud83d")),
        "a string holds a lone surrogate"
    );
    assert_eq!(
        malformed(GATEWAY, &g(r"a\ude00")),
        "a string holds a lone surrogate"
    );
    assert_eq!(
        malformed(GATEWAY, &g(r"a\ud83dx\u0041")),
        "a string holds a lone surrogate"
    );
    assert_eq!(
        malformed(GATEWAY, &g(&"d".repeat(129))),
        "the device is longer than 128 bytes"
    );
    assert!(decode_request(
        GATEWAY,
        g(&format!("{}\\u0041", "d".repeat(127))).as_bytes()
    )
    .is_ok());
    let name = format!(
        r#"{{"device":"d","data":{{"id":1,"method":"{}"}}}}"#,
        "m".repeat(129)
    );
    assert_eq!(
        malformed(GATEWAY, &name),
        "the name is longer than 128 bytes"
    );
}

#[test]
fn the_callers_wrap_and_unwrap_are_the_devices_inverse() {
    let body = wrap_request(
        TENCENT,
        "tok-1",
        "openDoor",
        "",
        1212121221,
        br#"{"userid":"323343"}"#,
    )
    .unwrap();
    assert_eq!(
        body,
        br#"{"method":"action","clientToken":"tok-1","actionId":"openDoor","timestamp":1212121221,"params":{"userid":"323343"}}"#
    );
    let r = decode_request(TENCENT, &body).unwrap();
    assert_eq!(
        (r.id, r.name, r.params),
        ("tok-1", "openDoor", &br#"{"userid":"323343"}"#[..])
    );
    let body = wrap_request(GATEWAY, "5", "toggle_gpio", "Device A", 0, b"").unwrap();
    assert_eq!(
        body,
        br#"{"device":"Device A","data":{"id":5,"method":"toggle_gpio","params":{}}}"#
    );
    assert!(wrap_request(GATEWAY, "x", "m", "d", 0, b"").is_err());
    assert!(wrap_request(GATEWAY, "1", "m", "d", 0, b"{").is_err());
    let reply = unwrap_reply(
        TENCENT,
        br#"{"method":"action_reply","clientToken":"t","code":-3,"response":[1]}"#,
    )
    .unwrap();
    assert_eq!((reply.code, reply.payload), (Some(-3), &b"[1]"[..]));
    assert!(unwrap_reply(TENCENT, br#"{"method":"action","clientToken":"t"}"#).is_err());
    assert!(unwrap_reply(GATEWAY, br#"{"device":"d","id":"1","data":1}"#).is_err());
}
