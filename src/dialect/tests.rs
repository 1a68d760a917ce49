//! The dialects' topics against the documents and vendor SDKs they come from.

use super::*;
use spec::topic_matches;

fn id<'a>(pk: &'a str, dn: &'a str) -> Identity<'a> {
    Identity {
        product_key: pk,
        device_name: dn,
        custom_topic: None,
    }
}

#[test]
fn content_type_rides_in_the_message_id_level() {
    assert_eq!(
        message_id_level("889455942124347392", None),
        "889455942124347392"
    );
    assert_eq!(
        message_id_level("889455942124347392", Some(65)),
        "889455942124347392;ct=65"
    );
    for ct in [0u8, 11, 65, 66, 131, 240, 255] {
        let level = message_id_level("42", Some(ct));
        assert_eq!(split_content_type(&level), ("42", Some(ct)));
    }
    // Not a ContentType suffix: the whole level is the id.
    for level in [
        "42",
        "42;ct=",
        "42;ct=256",
        "42;ct=065",
        "42;ct=+5",
        "42;ct=6a",
        ";ct=5",
        "42;CT=5",
    ] {
        assert_eq!(split_content_type(level), (level, None), "{level}");
    }
    assert_eq!(split_content_type("a;ct=1;ct=2"), ("a;ct=1", Some(2)));
}

/// An identity that every dialect can render (custom topic included).
const ANY_DIALECT: Identity<'static> = Identity {
    product_key: "a1B2c3",
    device_name: "dev-1",
    custom_topic: Some("/a1B2c3/dev-1/user/update"),
};

#[test]
fn device_names_hint_takes_the_two_levels_after_the_lead() {
    let id = ANY_DIALECT;
    for d in Dialect::BUILTIN {
        let topic = d.spec().request.render(&id, &Vars::id("42"));
        let adjacent = matches!(d, Dialect::AlibabaSystem | Dialect::Tencent);
        let want: Option<&[u8]> = adjacent.then_some(b"a1B2c3/dev-1");
        assert_eq!(
            Dialect::device_names_hint(topic.as_bytes()),
            want,
            "{topic}"
        );
    }
    for topic in [
        "",
        "/sys/",
        "/sys/a1B2c3",
        "/sys/a1B2c3/dev-1",
        "$rrpc/rxd/p/",
    ] {
        assert_eq!(
            Dialect::device_names_hint(topic.as_bytes()),
            None,
            "{topic}"
        );
    }
    // A hint, not a check: the parse decides.
    assert_eq!(
        Dialect::device_names_hint(b"/sys//x/anything"),
        Some(&b"/x"[..])
    );
}

#[test]
fn response_topics_by_names_equal_rendered_ones() {
    let id = ANY_DIALECT;
    for d in Dialect::BUILTIN {
        let by_names = d.response_topic_by_names("a1B2c3/dev-1", "42");
        if matches!(d, Dialect::AlibabaSystem | Dialect::Tencent) {
            assert_eq!(by_names, Some(d.response_topic(&id, "42")), "{d:?}");
        } else {
            assert_eq!(by_names, None, "{d:?}");
        }
    }
}

/// One dialect's topics for one device and message id, as its source shows them.
struct Topics {
    dialect: Dialect,
    id: Identity<'static>,
    message_id: &'static str,
    filter: &'static str,
    request: &'static str,
    response: &'static str,
    default_timeout_ms: u32,
}

#[test]
fn topics_match_the_documents_and_transcripts() {
    let cases = [
        // Alibaba "System-defined topics" (seeds/003): subscription, request, response.
        Topics {
            dialect: Dialect::AlibabaSystem,
            id: id("a1GFjLP3xxC", "device1"),
            message_id: "889455942124347392",
            filter: "/sys/a1GFjLP3xxC/device1/rrpc/request/+",
            request: "/sys/a1GFjLP3xxC/device1/rrpc/request/889455942124347392",
            response: "/sys/a1GFjLP3xxC/device1/rrpc/response/889455942124347392",
            default_timeout_ms: 8000,
        },
        // Tencent transcript (seeds/004): subscribe $rrpc/rxd/xxx/test01/+, request on
        // $rrpc/rxd/xxx/test01/41440, reply "ok" on $rrpc/txd/xxx/test01/41440.
        Topics {
            dialect: Dialect::Tencent,
            id: id("xxx", "test01"),
            message_id: "41440",
            filter: "$rrpc/rxd/xxx/test01/+",
            request: "$rrpc/rxd/xxx/test01/41440",
            response: "$rrpc/txd/xxx/test01/41440",
            default_timeout_ms: 4000,
        },
        // Alibaba custom topics: subscribe /ext/rrpc/+/{topic}, request
        // /ext/rrpc/{messageId}/{topic}, answered on the same topic. The names are
        // not in the topic.
        Topics {
            dialect: Dialect::AlibabaCustom,
            id: Identity {
                product_key: "a1GFjLP3xxC",
                device_name: "device1",
                custom_topic: Some("/a1GFjLP3xxC/device1/user/update"),
            },
            message_id: "1234567890",
            filter: "/ext/rrpc/+/a1GFjLP3xxC/device1/user/update",
            request: "/ext/rrpc/1234567890/a1GFjLP3xxC/device1/user/update",
            response: "/ext/rrpc/1234567890/a1GFjLP3xxC/device1/user/update",
            default_timeout_ms: 8000,
        },
        // Alibaba Link SDK 4.x, components/data-model/aiot_dm_api.c (public copy
        // larryli/esp-aliyun-iot-linksdk @784098f): receive table
        // "/ext/rrpc/+/sys/+/+/thing/service/+" (line 89), sync service reply
        // "/ext/rrpc/%s/sys/%s/%s/thing/service/%s" (line 50): the request topic
        // itself; aliyun-iot-linkkit 1.2.13 (PyPI) linkkit.py thing_answer_service
        // replies on the stored request topic too.
        Topics {
            dialect: Dialect::AlibabaService,
            id: id("a1GFjLP3xxC", "device1"),
            message_id: "1234567890",
            filter: "/ext/rrpc/+/sys/a1GFjLP3xxC/device1/thing/service/+",
            request: "/ext/rrpc/1234567890/sys/a1GFjLP3xxC/device1/thing/service/SetLight",
            response: "/ext/rrpc/1234567890/sys/a1GFjLP3xxC/device1/thing/service/SetLight",
            default_timeout_ms: 8000,
        },
        // ThingsBoard MQTT API, RPC (thingsboard.io/docs/reference/mqtt-api):
        // subscribe v1/devices/me/rpc/request/+, request
        // v1/devices/me/rpc/request/$request_id, reply
        // v1/devices/me/rpc/response/$request_id; tb-mqtt-client 1.13.13
        // tb_device_mqtt.py RPC_REQUEST_TOPIC / RPC_RESPONSE_TOPIC (lines 74-75).
        Topics {
            dialect: Dialect::ThingsBoard,
            id: id("", ""),
            message_id: "1",
            filter: "v1/devices/me/rpc/request/+",
            request: "v1/devices/me/rpc/request/1",
            response: "v1/devices/me/rpc/response/1",
            default_timeout_ms: 10_000,
        },
        // Azure IoT Hub MQTT support, "Respond to a direct method"
        // (learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub): subscribe
        // $iothub/methods/POST/#, request $iothub/methods/POST/{method-name}/?$rid={request-id},
        // reply $iothub/methods/res/{status}/?$rid={request-id}; azure-iot-sdk-c
        // iothubtransport_mqtt_common.c "$iothub/methods/res/%d/?$rid=%s".
        Topics {
            dialect: Dialect::Azure,
            id: id("", "dev1"),
            message_id: "a",
            filter: "$iothub/methods/POST/#",
            request: "$iothub/methods/POST/{name}/?$rid=a",
            response: "$iothub/methods/res/200/?$rid=a",
            default_timeout_ms: 30_000,
        },
        // Huawei IoTDA "Platform Delivering a Command"
        // (support.huaweicloud.com/api-iothub/iot_06_v5_3014.html): downstream
        // $oc/devices/{device_id}/sys/commands/request_id={request_id}, upstream
        // $oc/devices/{device_id}/sys/commands/response/request_id={request_id},
        // subscribe $oc/devices/{device_id}/sys/commands/#; huaweicloud-iot-device-sdk-c
        // include/service/base.h TOPIC_SUFFIX_COMMAND_RSP_REQ.
        Topics {
            dialect: Dialect::Huawei,
            id: id("", "6109_node1"),
            message_id: "ab-12",
            filter: "$oc/devices/6109_node1/sys/commands/#",
            request: "$oc/devices/6109_node1/sys/commands/request_id=ab-12",
            response: "$oc/devices/6109_node1/sys/commands/response/request_id=ab-12",
            default_timeout_ms: 20_000,
        },
        // AWS IoT commands (docs.aws.amazon.com/iot/latest/developerguide/
        // iot-remote-command-execution-start-monitor.html): request
        // $aws/commands/things/<DeviceID>/executions/+/request/<PayloadFormat>;
        // aws-iot-device-sdk-cpp-v2 commands/source/IotCommandsClientV2.cpp: reply
        // ".../executions/" << ExecutionId << "/response/json" (lines 126-127).
        Topics {
            dialect: Dialect::Aws,
            id: id("", "thing1"),
            message_id: "e-9",
            filter: "$aws/commands/things/thing1/executions/+/request/#",
            request: "$aws/commands/things/thing1/executions/e-9/request/{format}",
            response: "$aws/commands/things/thing1/executions/e-9/response/json",
            default_timeout_ms: 10_000,
        },
    ];
    for c in &cases {
        let (d, name) = (c.dialect, c.dialect.name());
        assert_eq!(d.subscribe_filter(&c.id), c.filter, "{name}: filter");
        let vars = Vars {
            id: c.message_id,
            name: Some("SetLight"),
            format: Some("json"),
            status: None,
        };
        // `{name}` and `{format}` in a case's request stand for these values.
        let request = c
            .request
            .replace("{name}", "SetLight")
            .replace("{format}", "json");
        assert_eq!(d.request_topic_with(&c.id, &vars), request, "{name}");
        assert_eq!(d.response_topic_with(&c.id, &vars), c.response, "{name}");
        assert_eq!(d.default_timeout_ms(), c.default_timeout_ms, "{name}");
        assert!(
            topic_matches(&d.subscribe_filter(&c.id), &request),
            "{name}"
        );
        let p = parse_request(&request).unwrap();
        let some = |v: &'static str, used: bool| used.then_some(v);
        let names = match c.id.custom_topic {
            None => (
                some(c.id.product_key, d.uses_product_key()),
                some(c.id.device_name, d.uses_device_name()),
            ),
            Some(_) => (None, None),
        };
        assert_eq!(p.dialect, d, "{name}");
        assert_eq!((p.product_key, p.device_name), names, "{name}");
        assert_eq!(p.message_id, c.message_id, "{name}");
        assert_eq!(p.custom_topic, c.id.custom_topic, "{name}");
    }
    let p = parse_request(cases[0].request).unwrap();
    assert_eq!(p.device_prefix, "/sys/a1GFjLP3xxC/device1/rrpc/request/");
}

#[test]
fn caller_side_wildcards_and_response_parsing() {
    assert_eq!(
        Dialect::AlibabaSystem.response_wildcard(None),
        "/sys/+/+/rrpc/response/+"
    );
    assert_eq!(Dialect::Tencent.response_wildcard(None), "$rrpc/txd/+/+/+");
    assert_eq!(
        Dialect::AlibabaCustom.response_wildcard(Some("/pk/dn/user/update")),
        "/ext/rrpc/+/pk/dn/user/update"
    );
    assert_eq!(
        Dialect::Azure.response_wildcard(None),
        "$iothub/methods/res/+/+"
    );
    assert_eq!(
        Dialect::AlibabaService.response_wildcard(None),
        "/ext/rrpc/+/sys/+/+/thing/service/+"
    );
    let p = Dialect::Tencent
        .parse_response("$rrpc/txd/xxx/test01/41440")
        .unwrap();
    assert_eq!(p.message_id, "41440");
    assert_eq!(
        Dialect::AlibabaSystem.parse_response("/sys/a/b/rrpc/request/1"),
        Err(TopicError::NoMatch)
    );
}

#[test]
fn topics_outside_rrpc_are_no_match_not_malformed() {
    for t in [
        "/sys/pk/dn/thing/event/property/post",
        "/a1/dev/user/update",
        "$SYS/broker/uptime",
        "$rrpc/txd/xxx/test01/41440", // a response is not a request
        "",
        "sys/pk/dn/rrpc/request/1",
    ] {
        assert_eq!(parse_request(t), Err(TopicError::NoMatch), "{t:?}");
    }
}

#[test]
fn broken_rrpc_topics_are_malformed() {
    for t in [
        "/sys/pk/dn/rrpc/request/",        // empty id
        "/sys/pk/dn/rrpc/request/1/2",     // extra level
        "/sys/pk/rrpc/request/1",          // missing device name
        "/sys//dn/rrpc/request/1",         // empty product key
        "/sys/pk/dn/extra/rrpc/request/1", // extra level in the middle
        "$rrpc/rxd/xxx/test01/",           // empty process id
        "$rrpc/rxd/xxx/test01/1/2",        // extra level
        "$rrpc/rxd/xxx/1",                 // missing level
        "/ext/rrpc/123",                   // no custom topic
        "/ext/rrpc//a/b",                  // empty id
        "/ext/rrpc/123/",                  // custom topic is only "/"
    ] {
        assert!(
            matches!(parse_request(t), Err(TopicError::Malformed(_))),
            "{t:?} gave {:?}",
            parse_request(t)
        );
    }
    let long_id = format!("/sys/pk/dn/rrpc/request/{}", "9".repeat(129));
    assert!(matches!(
        parse_request(&long_id),
        Err(TopicError::Malformed(_))
    ));
}

#[test]
fn identity_rules() {
    assert!(validate_part("device name", "dev-1_a.b:c@d").is_ok());
    for bad in ["", "a+b", "a#", "a/b", "a\0b", "a\nb", "\u{7f}"] {
        assert!(validate_part("device name", bad).is_err(), "{bad:?}");
    }
    assert!(validate_part("product key", &"k".repeat(128)).is_ok());
    assert!(validate_part("product key", &"k".repeat(129)).is_err());
    let e = validate_part("device name", "a/b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "device name contains the topic separator '/'"
    );

    assert!(validate_custom_topic("/pk/dn/user/update").is_ok());
    for bad in ["pk/dn/user", "/", "/a/+/b", "/a/#", "/a\0"] {
        assert!(validate_custom_topic(bad).is_err(), "{bad:?}");
    }
    let no_topic = id("pk", "dn");
    assert!(validate_identity(Dialect::AlibabaCustom, &no_topic).is_err());
    let with_topic = Identity {
        custom_topic: Some("/x"),
        ..no_topic
    };
    assert!(validate_identity(Dialect::AlibabaSystem, &with_topic).is_err());
    assert!(validate_identity(Dialect::AlibabaCustom, &with_topic).is_ok());
}

#[test]
fn names_round_trip() {
    for d in Dialect::BUILTIN {
        assert_eq!(Dialect::from_name(d.name()), Some(d));
        assert_eq!(Dialect::from_u32(d.to_u32()), Some(d));
        // The hand-written parts are what the text form parses to.
        for t in [&d.spec().request, &d.spec().response] {
            let parsed = template::Template::parse(&t.to_string(), false).unwrap();
            assert_eq!(parsed.0, t.0, "{d:?}");
        }
        if let Some(f) = &d.spec().subscribe {
            let parsed = template::Template::parse(&f.to_string(), true).unwrap();
            assert_eq!(parsed.0, f.0, "{d:?}");
        }
    }
    for (d, s) in &spec::PARSE_FIRST {
        assert!(std::ptr::eq(d.spec(), *s), "{d:?}");
    }
    assert_eq!(Dialect::from_name("nope"), None);
    assert_eq!(Dialect::from_u32(11), None);
    assert_eq!(Dialect::from_u32(USER_DIALECT_FIRST + 63), None);
    assert_eq!(
        Dialect::AlibabaSystem.request_template(),
        "/sys/{pk}/{dn}/rrpc/request/{id}"
    );
}

#[test]
fn registered_dialects_are_validated_field_by_field() {
    let cfg = |name, request, response| DialectConfig {
        name,
        request,
        response,
        ..DialectConfig::default()
    };
    let refused = |c: DialectConfig<'_>| register(&c).unwrap_err();
    let e = refused(cfg("t-unknown", "t/{dn}/{idd}", "t/{dn}/r/{id}"));
    assert_eq!(e.field, "request");
    assert!(e.message.contains("unknown placeholder {idd}"), "{e}");
    let e = refused(cfg("t-noid", "t/{dn}/req", "t/{dn}/r/{id}"));
    assert_eq!(
        (e.field, e.message.contains("has no {id}")),
        ("request", true),
        "{e}"
    );
    let e = refused(cfg("t-noid2", "t/{dn}/req/{id}", "t/{dn}/r"));
    assert_eq!(e.field, "response", "{e}");
    let e = refused(cfg("t-wild", "t/+/{id}", "t/r/{id}"));
    assert!(e.message.contains("wildcard"), "{e}");
    let e = refused(cfg("t-adj", "t/{dn}{id}", "t/r/{id}"));
    assert!(e.message.contains("nothing between them"), "{e}");
    let e = refused(cfg("t-status", "t/{status}/{id}", "t/r/{id}"));
    assert!(e.message.contains("reply only"), "{e}");
    let e = refused(cfg("t-extra", "t/{id}", "t/{dn}/r/{id}"));
    assert_eq!(e.field, "response");
    assert!(e.message.contains("{dn}"), "{e}");
    let e = refused(cfg("t-unclosed", "t/{id", "t/r/{id}"));
    assert!(e.message.contains("not closed"), "{e}");
    let e = refused(cfg("t-nul", "t/\0/{id}", "t/r/{id}"));
    assert!(e.message.contains("NUL"), "{e}");
    let e = refused(cfg("Bad Name", "t/{id}", "t/r/{id}"));
    assert_eq!(e.field, "name");
    let e = refused(cfg("tencent", "t/{id}", "t/r/{id}"));
    assert!(e.message.contains("built-in"), "{e}");
    let e = refused(DialectConfig {
        default_timeout_ms: 0,
        ..cfg("t-timeout", "t0/{id}", "t0/r/{id}")
    });
    assert_eq!(e.field, "default_timeout_ms");
    // Filters: only names as whole levels, and they must receive the requests.
    let with_filter = |name, f| DialectConfig {
        subscribe: Some(f),
        ..cfg(
            name,
            "f/{pk}/{dn}/rpc/{name}/{id}",
            "f/{pk}/{dn}/rpc/{id}/reply",
        )
    };
    for (f, why) in [
        ("f/{pk}/{dn}/rpc/+/{id}", "only {pk} and {dn}"),
        ("f/{pk}/{dn}/#/+", "'#' the whole last level"),
        ("f/{pk}/{dn}/rpc+/#", "'+' must be a whole level"),
        ("f/{pk}/{dn}/other/#", "does not receive the requests"),
        ("f/{pk}/+/rpc/#", "must both or neither hold {dn}"),
    ] {
        let e = refused(with_filter("t-filter", f));
        assert_eq!(e.field, "subscribe", "{f}");
        assert!(e.message.contains(why), "{f}: {e}");
    }
    // Ambiguous against a built-in: Huawei's request with another reply.
    let e = refused(cfg(
        "t-overlap",
        "$oc/devices/{dn}/sys/commands/request_id={id}",
        "$oc/devices/{dn}/r/{id}",
    ));
    assert_eq!(e.field, "request");
    assert!(e.message.contains("huawei"), "{e}");
    let e = refused(cfg(
        "t-overlap2",
        "v1/devices/me/rpc/request/x{id}",
        "x/{id}",
    ));
    assert!(e.message.contains("thingsboard"), "{e}");
}

#[test]
fn a_registered_dialect_works_as_a_built_in_one() {
    let c = DialectConfig {
        name: "t-acme",
        subscribe: Some("acme/{pk}/{dn}/rpc/#"),
        request: "acme/{pk}/{dn}/rpc/call-{id}/{name}",
        response: "acme/{pk}/{dn}/rpc/reply-{id}/{status}",
        default_timeout_ms: 5000,
    };
    let d = register(&c).unwrap();
    assert!(!d.is_builtin());
    assert!(d.to_u32() >= USER_DIALECT_FIRST);
    // The same again is the same dialect; other templates under the name are refused.
    assert_eq!(register(&c).unwrap(), d);
    let e = register(&DialectConfig {
        default_timeout_ms: 6000,
        ..c.clone()
    })
    .unwrap_err();
    assert!(e.message.contains("already registered"), "{e}");
    assert_eq!(Dialect::from_name("t-acme"), Some(d));
    assert_eq!(Dialect::from_u32(d.to_u32()), Some(d));
    assert_eq!(d.default_timeout_ms(), 5000);
    let id = id("p1", "d1");
    assert_eq!(d.subscribe_filter(&id), "acme/p1/d1/rpc/#");
    let vars = Vars {
        id: "7",
        name: Some("reboot"),
        format: None,
        status: Some(404),
    };
    let t = d.request_topic_with(&id, &vars);
    assert_eq!(t, "acme/p1/d1/rpc/call-7/reboot");
    assert_eq!(
        d.response_topic_with(&id, &vars),
        "acme/p1/d1/rpc/reply-7/404"
    );
    let p = parse_request(&t).unwrap();
    assert_eq!(p.dialect, d);
    assert_eq!((p.message_id, p.name), ("7", Some("reboot")));
    assert_eq!(d.response_wildcard(None), "acme/+/+/rpc/+/+");
    let r = d.parse_response("acme/p1/d1/rpc/reply-7/200").unwrap();
    assert_eq!((r.message_id, r.status), ("7", Some("200")));
    assert!(matches!(
        d.parse_response("acme/p1/d1/rpc/reply-7/OK"),
        Err(TopicError::Malformed(_))
    ));
    // Its derived filter, when none is given.
    let plain = register(&DialectConfig {
        name: "t-plain",
        request: "plain/{dn}/req/{id}",
        response: "plain/{dn}/res/{id}",
        ..DialectConfig::default()
    })
    .unwrap();
    assert_eq!(plain.subscribe_filter(&id), "plain/d1/req/+");
    assert_eq!(plain.subscribe_template(), "plain/{dn}/req/+");
    assert_eq!(plain.request_wildcard(), "plain/+/req/+");
}
