//! The router as a transport drives it: requests in, replies out, counted.
//! Also the helpers the tests of the other router modules share.

use super::*;

pub(super) const PK: &str = "a1GFjLP3xxC";

pub(super) fn dev(dn: &str) -> Identity<'_> {
    Identity {
        product_key: PK,
        device_name: dn,
        custom_topic: None,
    }
}

/// A router serving one Alibaba device, `dev1`.
pub(super) fn router() -> Router {
    router_with(RouterConfig::default())
}

/// The token of a new request `id` at `now` for `dev1` of [`router`].
pub(super) fn request(r: &mut Router, id: &str, now: u64) -> u64 {
    let topic = format!("/sys/{PK}/dev1/rrpc/request/{id}");
    r.handle_message(&topic, b"", now).unwrap().token
}

/// A router with settings `cfg` serving one Alibaba device, `dev1`.
pub(super) fn router_with(cfg: RouterConfig) -> Router {
    let mut r = Router::new(cfg);
    r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
    r
}

/// A router with the default settings as `set` changes them, serving
/// `devices`: a dialect and a device name (of [`PK`]) each.
pub(super) fn router_of(
    devices: &[(Dialect, &str)],
    set: impl FnOnce(&mut RouterConfig),
) -> Router {
    let mut cfg = RouterConfig::default();
    set(&mut cfg);
    let mut r = Router::new(cfg);
    for &(dialect, dn) in devices {
        r.add_device(dialect, &dev(dn)).unwrap();
    }
    r
}

pub(super) fn send_ok(
    sent: &mut Vec<(String, Vec<u8>)>,
) -> impl FnOnce(&str, &[u8]) -> Result<(), ()> + '_ {
    move |t, p| {
        sent.push((t.to_string(), p.to_vec()));
        Ok(())
    }
}

#[test]
fn request_reply_round_trip() {
    let mut r = router();
    let a = r
        .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/42", b"ping", 1000)
        .unwrap();
    assert_eq!(a.message_id, "42");
    assert_eq!(a.payload, b"ping");
    assert_eq!(
        r.request_device(a.device).unwrap().identity.device_name,
        "dev1"
    );
    assert_eq!(a.deadline_ms, 1000 + 8000);
    let token = a.token;
    assert_ne!(token, 0);
    let mut sent = Vec::new();
    r.reply(token, b"pong", 1001, send_ok(&mut sent)).unwrap();
    assert_eq!(
        sent,
        vec![(
            "/sys/a1GFjLP3xxC/dev1/rrpc/response/42".to_string(),
            b"pong".to_vec()
        )]
    );
    assert_eq!(r.pending_len(), 0);
    let s = r.stats();
    assert_eq!((s.messages, s.requests, s.replied), (1, 1, 1));
}

#[test]
fn exactly_one_reply_per_token() {
    let mut r = router();
    let t = request(&mut r, "1", 0);
    let mut sent = Vec::new();
    r.reply(t, b"a", 1, send_ok(&mut sent)).unwrap();
    assert_eq!(
        r.reply(t, b"b", 2, send_ok(&mut sent)),
        Err(ReplyError::AlreadyReplied)
    );
    assert_eq!(
        r.reply(t ^ 0xdead, b"c", 2, send_ok(&mut sent)),
        Err(ReplyError::UnknownToken)
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(r.stats().bad_tokens, 2);
}

#[test]
fn late_reply_is_refused_and_entry_expires() {
    let mut r = router();
    let t = request(&mut r, "1", 0);
    let mut sent = Vec::new();
    assert_eq!(
        r.reply(t, b"late", 8001, send_ok(&mut sent)),
        Err(ReplyError::Expired)
    );
    assert!(sent.is_empty());
    assert_eq!(r.pending_len(), 0);
    assert_eq!(
        r.reply(t, b"later", 9000, send_ok(&mut sent)),
        Err(ReplyError::Expired)
    );
    let s = r.stats();
    assert_eq!((s.expired, s.late_replies), (1, 2));
}

#[test]
fn failed_send_keeps_the_token() {
    let mut r = router();
    let t = request(&mut r, "1", 0);
    assert_eq!(
        r.reply(t, b"x", 1, |_, _| Err("link down")),
        Err(ReplyError::Send("link down"))
    );
    assert_eq!(r.pending_len(), 1);
    assert_eq!(r.stats().send_failures, 1);
    r.reply(t, b"x", 2, |_, _| Ok::<(), &str>(())).unwrap();
}

#[test]
fn payload_limits() {
    let mut r = router_with(RouterConfig {
        max_payload: 4,
        ..RouterConfig::default()
    });
    assert_eq!(
        r.handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"12345", 0)
            .unwrap_err(),
        Dropped::TooLarge
    );
    let t = r
        .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/2", b"1234", 0)
        .unwrap()
        .token;
    assert_eq!(
        r.reply(t, b"12345", 1, |_, _| Ok::<(), ()>(())),
        Err(ReplyError::TooLarge)
    );
    r.reply(t, b"1234", 1, |_, _| Ok::<(), ()>(())).unwrap();
}

#[test]
fn unknown_devices_malformed_and_foreign_topics_are_counted() {
    let mut r = router();
    assert_eq!(
        r.handle_message("/sys/a1GFjLP3xxC/other/rrpc/request/1", b"", 0)
            .unwrap_err(),
        Dropped::UnknownDevice
    );
    assert!(matches!(
        r.handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/", b"", 0)
            .unwrap_err(),
        Dropped::Malformed(_)
    ));
    assert!(matches!(
        r.handle_message_bytes(b"/sys/\xff/dev1/rrpc/request/1", b"", 0)
            .unwrap_err(),
        Dropped::Malformed(_)
    ));
    assert_eq!(
        r.handle_message("/sys/a1GFjLP3xxC/dev1/thing/event", b"", 0)
            .unwrap_err(),
        Dropped::NotRrpc
    );
    let s = r.stats();
    assert_eq!(
        (s.unknown_device, s.malformed, s.not_rrpc, s.messages),
        (1, 2, 1, 4)
    );
}

#[test]
fn two_phase_replies_exclude_each_other_and_keep_the_token_on_failure() {
    let mut r = router();
    let t = request(&mut r, "1", 0);
    let topic = r.begin_reply(t, 3, 1).unwrap();
    assert_eq!(topic, "/sys/a1GFjLP3xxC/dev1/rrpc/response/1");
    // While the first reply is being sent, a second is refused.
    assert_eq!(r.begin_reply(t, 3, 1), Err(ReplyError::InProgress));
    assert_eq!(
        r.reply(t, b"x", 1, |_, _| Ok::<(), ()>(())),
        Err(ReplyError::InProgress)
    );
    r.end_reply(t, true, 2);
    assert_eq!(r.begin_reply(t, 3, 3), Err(ReplyError::AlreadyReplied));
    assert_eq!(r.stats().replied, 1);

    // A failed send keeps the request pending: it may be answered again
    // until its deadline, as after a failed `reply`.
    let t2 = request(&mut r, "2", 0);
    r.begin_reply(t2, 0, 1).unwrap();
    r.end_reply(t2, false, 1);
    assert_eq!(r.pending_len(), 1);
    assert_eq!(r.stats().send_failures, 1);
    assert_eq!(
        r.begin_reply(t2, 0, 2).unwrap(),
        "/sys/a1GFjLP3xxC/dev1/rrpc/response/2"
    );
    r.end_reply(t2, false, 2);
    r.reply(t2, b"", 3, |_, _| Ok::<(), ()>(())).unwrap();
    assert_eq!(r.pending_len(), 0);
    assert_eq!(r.begin_reply(t2, 0, 4), Err(ReplyError::AlreadyReplied));
    let s = r.stats();
    assert_eq!((s.send_failures, s.replied), (2, 2));

    // The deadline may pass while a reply is being sent: the request stays
    // expired, and the reply is counted as what it was, sent or not.
    for (id, sent) in [("3", true), ("4", false)] {
        let t = r
            .handle_message(&format!("/sys/a1GFjLP3xxC/dev1/rrpc/request/{id}"), b"", 0)
            .unwrap()
            .token;
        r.begin_reply(t, 0, 1).unwrap();
        let before = r.stats();
        assert_eq!(r.expire(9000), 1);
        r.end_reply(t, sent, 9001);
        let s = r.stats();
        assert_eq!(
            (
                s.replied - before.replied,
                s.send_failures - before.send_failures
            ),
            if sent { (1, 0) } else { (0, 1) }
        );
        assert_eq!(r.begin_reply(t, 0, 9002), Err(ReplyError::Expired));
        assert_eq!(r.pending_len(), 0);
    }
}

#[test]
fn content_type_comes_out_of_the_message_id_level() {
    let mut r = router();
    let topic = format!("/sys/{PK}/dev1/rrpc/request/889455942124347392;ct=65");
    let a = r.handle_message(&topic, b"x", 0).unwrap();
    assert_eq!(a.message_id, "889455942124347392");
    assert_eq!(a.content_type, Some(65));
    let mut sent = String::new();
    r.reply(a.token, b"y", 1, |t, _| {
        sent = t.to_string();
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(
        sent,
        format!("/sys/{PK}/dev1/rrpc/response/889455942124347392;ct=65")
    );
    // The same request again is a duplicate, and so is the same id without
    // the ContentType (see content_type_suffixes_do_not_make_a_new_request).
    assert_eq!(
        r.handle_message(&topic, b"x", 2).unwrap_err(),
        Dropped::Duplicate
    );
    let plain = format!("/sys/{PK}/dev1/rrpc/request/889455942124347393");
    let a = r.handle_message(&plain, b"x", 3).unwrap();
    assert_eq!((a.message_id, a.content_type), ("889455942124347393", None));
}

#[test]
fn content_type_suffixes_do_not_make_a_new_request() {
    let mut r = router();
    let t = request(&mut r, "42", 0);
    for level in ["42", "42;ct=0", "42;ct=65", "42;ct=065", "42;ct=x"] {
        let topic = format!("/sys/{PK}/dev1/rrpc/request/{level}");
        assert_eq!(
            r.handle_message(&topic, b"", 1).unwrap_err(),
            Dropped::Duplicate,
            "{level}"
        );
    }
    // Answered, still the same request; the reply went out on the level it came on.
    let topic = format!("/sys/{PK}/dev1/rrpc/request/43;ct=65");
    let a = r.handle_message(&topic, b"", 2).unwrap();
    assert_eq!((a.message_id, a.content_type), ("43", Some(65)));
    let mut sent = Vec::new();
    r.reply(a.token, b"", 3, send_ok(&mut sent)).unwrap();
    assert_eq!(sent[0].0, format!("/sys/{PK}/dev1/rrpc/response/43;ct=65"));
    assert_eq!(
        r.handle_message(&format!("/sys/{PK}/dev1/rrpc/request/43"), b"", 4)
            .unwrap_err(),
        Dropped::Duplicate
    );
    assert_eq!(r.stats().duplicates, 6);
    assert_eq!(r.stats().requests, 2);
    r.reply(t, b"", 5, |_, _| Ok::<(), ()>(())).unwrap();
}

#[test]
fn retained_requests_are_never_executed() {
    let mut r = router();
    let topic = format!("/sys/{PK}/dev1/rrpc/request/7");
    assert_eq!(
        r.handle_received(topic.as_bytes(), b"old", true, 0)
            .unwrap_err(),
        Dropped::Retained
    );
    // Not remembered as seen: the same id delivered live is a request.
    assert!(r
        .handle_received(topic.as_bytes(), b"new", false, 1)
        .is_ok());
    assert_eq!(
        r.handle_received(b"other/topic", b"", true, 2).unwrap_err(),
        Dropped::NotRrpc
    );
    assert!(matches!(
        r.handle_received(b"/sys/x/y/rrpc/request/", b"", true, 2),
        Err(Dropped::Malformed(_))
    ));
    assert_eq!(
        r.handle_received(b"/sys/\xff/y/rrpc/request/1", b"", true, 2)
            .unwrap_err(),
        Dropped::Malformed("the topic is not valid UTF-8")
    );
    let s = r.stats();
    assert_eq!((s.retained, s.requests, s.not_rrpc), (1, 1, 1));
    assert_eq!((s.messages, s.malformed), (5, 2));
}

#[test]
fn every_bound_has_a_documented_maximum() {
    let ok = RouterConfig::default();
    ok.validate().unwrap();
    let at_max = RouterConfig {
        max_pending: MAX_PENDING_LIMIT,
        max_payload: MAX_PAYLOAD_LIMIT,
        request_timeout_ms: MAX_REQUEST_TIMEOUT_MS,
        history_ms: MAX_HISTORY_MS,
        max_history: MAX_HISTORY_LIMIT,
        max_devices: MAX_DEVICES_LIMIT,
    };
    at_max.validate().unwrap();
    let over: [(&str, RouterConfig); 8] = [
        (
            "max_pending",
            RouterConfig {
                max_pending: 0,
                ..ok.clone()
            },
        ),
        (
            "max_pending",
            RouterConfig {
                max_pending: u32::MAX as usize,
                ..ok.clone()
            },
        ),
        (
            "max_payload",
            RouterConfig {
                max_payload: MAX_PAYLOAD_LIMIT + 1,
                ..ok.clone()
            },
        ),
        (
            "request_timeout_ms",
            RouterConfig {
                request_timeout_ms: u32::MAX,
                ..ok.clone()
            },
        ),
        (
            "history_ms",
            RouterConfig {
                history_ms: u64::MAX,
                ..ok.clone()
            },
        ),
        (
            "max_history",
            RouterConfig {
                max_history: usize::MAX,
                ..ok.clone()
            },
        ),
        (
            "max_devices",
            RouterConfig {
                max_devices: 0,
                ..ok.clone()
            },
        ),
        (
            "max_devices",
            RouterConfig {
                max_devices: MAX_DEVICES_LIMIT + 1,
                ..ok.clone()
            },
        ),
    ];
    for (field, cfg) in over {
        let e = cfg.validate().unwrap_err();
        assert!(e.starts_with(field), "{e}");
    }
    // A configuration that skipped validation does not allocate for its bound.
    let r = Router::new(RouterConfig {
        max_pending: u32::MAX as usize,
        ..ok
    });
    assert_eq!(r.pending_len(), 0);
}

#[test]
fn the_device_table_is_bounded() {
    let mut r = router_of(
        &[(Dialect::AlibabaSystem, "a"), (Dialect::Tencent, "a")],
        |c| c.max_devices = 2,
    );
    assert_eq!(
        r.add_device(Dialect::AlibabaSystem, &dev("b")).unwrap_err(),
        DeviceError::TableFull
    );
    r.remove_device(Dialect::Tencent, &dev("a"), 0).unwrap();
    r.add_device(Dialect::AlibabaSystem, &dev("b")).unwrap();
    assert_eq!(r.device_count(), 2);
}

#[test]
fn a_received_topic_is_text_or_bytes() {
    let mut r = router();
    let topic = format!("/sys/{PK}/dev1/rrpc/request/8");
    // Text, as an MQTT client library hands it over, and the same as bytes.
    assert_eq!(
        r.handle_received(topic.as_str(), b"", true, 0).unwrap_err(),
        Dropped::Retained
    );
    assert!(r.handle_received(topic.as_str(), b"a", false, 1).is_ok());
    let other = format!("/sys/{PK}/dev1/rrpc/request/9");
    assert!(r.handle_received(other.as_bytes(), b"b", false, 1).is_ok());
    assert_eq!(
        r.handle_received(b"/sys/\xff/y/rrpc/request/1", b"", false, 2)
            .unwrap_err(),
        Dropped::Malformed("the topic is not valid UTF-8")
    );
    assert_eq!(ReceivedTopic::from(&b"\xff"[..]).text(), None);
    assert_eq!(ReceivedTopic::from(&vec![b'a']).text(), Some("a"));
    assert_eq!(ReceivedTopic::from(&topic), ReceivedTopic::Text(&topic));
    assert_eq!(ReceivedTopic::from("t").text(), Some("t"));
    let s = r.stats();
    assert_eq!(
        (s.messages, s.requests, s.retained, s.malformed),
        (4, 2, 1, 1)
    );
}

/// Accepts `topic` and replies `status`; returns the name the request carried
/// and the reply topic.
fn round_trip(r: &mut Router, topic: &str, status: Option<u16>) -> (Option<String>, String) {
    let a = r.handle_message(topic, b"{}", 0).unwrap();
    let name = a.name.map(str::to_string);
    let mut sent = Vec::new();
    r.reply_with_status(a.token, status, b"ok", 1, send_ok(&mut sent))
        .unwrap();
    (name, sent.remove(0).0)
}

#[test]
fn every_built_in_dialect_routes_and_answers() {
    let mut r = Router::new(RouterConfig::default());
    let anon = Identity {
        product_key: "",
        device_name: "",
        custom_topic: None,
    };
    r.add_device(Dialect::AlibabaService, &dev("dev1")).unwrap();
    r.add_device(Dialect::ThingsBoard, &anon).unwrap();
    r.add_device(Dialect::Azure, &dev("dev1")).unwrap();
    r.add_device(Dialect::Huawei, &dev("6109_node1")).unwrap();
    r.add_device(Dialect::Aws, &dev("thing1")).unwrap();
    let cases = [
        (
            format!("/ext/rrpc/42/sys/{PK}/dev1/thing/service/SetLight"),
            None,
            Some("SetLight"),
            format!("/ext/rrpc/42/sys/{PK}/dev1/thing/service/SetLight"),
        ),
        (
            "v1/devices/me/rpc/request/17".to_string(),
            None,
            None,
            "v1/devices/me/rpc/response/17".to_string(),
        ),
        (
            "$iothub/methods/POST/reboot/?$rid=1f".to_string(),
            None,
            Some("reboot"),
            "$iothub/methods/res/200/?$rid=1f".to_string(),
        ),
        (
            "$iothub/methods/POST/reboot/?$rid=20".to_string(),
            Some(404),
            Some("reboot"),
            "$iothub/methods/res/404/?$rid=20".to_string(),
        ),
        (
            "$oc/devices/6109_node1/sys/commands/request_id=ab-12".to_string(),
            None,
            None,
            "$oc/devices/6109_node1/sys/commands/response/request_id=ab-12".to_string(),
        ),
        (
            "$aws/commands/things/thing1/executions/e-9/request/cbor".to_string(),
            Some(500),
            None,
            "$aws/commands/things/thing1/executions/e-9/response/json".to_string(),
        ),
    ];
    for (request, status, name, reply) in cases {
        let (got_name, got_reply) = round_trip(&mut r, &request, status);
        assert_eq!(got_name.as_deref(), name, "{request}");
        assert_eq!(got_reply, reply, "{request}");
    }
    // The service call's reply comes back on its subscription: an own reply.
    let echo = format!("/ext/rrpc/42/sys/{PK}/dev1/thing/service/SetLight");
    assert_eq!(
        r.handle_message(&echo, b"ok", 2).unwrap_err(),
        Dropped::OwnReply
    );
    // So does a Huawei reply on sys/commands/#: not a request at all.
    let own = "$oc/devices/6109_node1/sys/commands/response/request_id=ab-12";
    assert_eq!(r.handle_message(own, b"", 2).unwrap_err(), Dropped::NotRrpc);
    // A device not registered.
    let other = "$aws/commands/things/thing2/executions/e-9/request/json";
    assert_eq!(
        r.handle_message(other, b"", 2).unwrap_err(),
        Dropped::UnknownDevice
    );
}

#[test]
fn dialects_whose_topics_name_no_device_serve_one_device_per_router() {
    let mut r = Router::new(RouterConfig::default());
    let a = Identity {
        product_key: "",
        device_name: "dev-a",
        custom_topic: None,
    };
    r.add_device(Dialect::Azure, &a).unwrap();
    assert!(Dialect::Azure.per_connection() && Dialect::ThingsBoard.per_connection());
    assert!(!Dialect::Huawei.per_connection());
    let b = Identity {
        device_name: "dev-b",
        ..a
    };
    let e = r.add_device(Dialect::Azure, &b).unwrap_err();
    assert!(matches!(e, DeviceError::OnePerConnection { .. }), "{e:?}");
    assert!(
        e.to_string().contains("one device of it per connection"),
        "{e}"
    );
    assert_eq!(
        r.add_device(Dialect::Azure, &a).unwrap_err(),
        DeviceError::AlreadyExists
    );
    // Another per-connection dialect is another device.
    r.add_device(Dialect::ThingsBoard, &b).unwrap();
    let got = r
        .handle_message("$iothub/methods/POST/m/?$rid=1", b"", 0)
        .unwrap();
    assert_eq!(
        r.request_device(got.device).unwrap().identity.device_name,
        "dev-a"
    );
    r.remove_device(Dialect::Azure, &a, 1).unwrap();
    r.add_device(Dialect::Azure, &b).unwrap();
    // Names the topics do not carry may be empty, those they carry may not.
    let anon = Identity {
        product_key: "",
        device_name: "",
        custom_topic: None,
    };
    assert!(matches!(
        r.add_device(Dialect::Huawei, &anon).unwrap_err(),
        DeviceError::Invalid(_)
    ));
}
