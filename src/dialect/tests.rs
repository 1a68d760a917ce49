//! The dialects' topics against the documents and vendor SDKs they come from.

use super::*;

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
    for d in Dialect::ALL {
        let topic = d.spec().request.render(&id, "42");
        let want: Option<&[u8]> = (!d.needs_custom_topic()).then_some(b"a1B2c3/dev-1");
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
    for d in Dialect::ALL {
        let by_names = d.response_topic_by_names("a1B2c3/dev-1", "42");
        if d.needs_custom_topic() {
            assert_eq!(by_names, None);
        } else {
            assert_eq!(by_names, Some(d.response_topic(&id, "42")), "{d:?}");
        }
    }
}

#[test]
fn template_literals_fit_the_render_reserve() {
    for d in Dialect::ALL {
        for t in [&d.spec().request, &d.spec().response] {
            let lits: usize =
                t.0.iter()
                    .map(|p| match p {
                        Lit(s) => s.len(),
                        _ => 0,
                    })
                    .sum();
            assert!(lits < 32, "{d:?}: {lits} literal bytes");
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
    ];
    for c in &cases {
        let (d, name) = (c.dialect, c.dialect.name());
        assert_eq!(d.subscribe_filter(&c.id), c.filter, "{name}: filter");
        assert_eq!(d.request_topic(&c.id, c.message_id), c.request, "{name}");
        assert_eq!(d.response_topic(&c.id, c.message_id), c.response, "{name}");
        assert_eq!(d.default_timeout_ms(), c.default_timeout_ms, "{name}");
        let p = parse_request(c.request).unwrap();
        let names = match c.id.custom_topic {
            None => (Some(c.id.product_key), Some(c.id.device_name)),
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
    for d in Dialect::ALL {
        assert_eq!(Dialect::from_name(d.name()), Some(d));
        assert_eq!(Dialect::from_u32(d as u32), Some(d));
    }
    assert_eq!(Dialect::from_name("aws"), None);
    assert_eq!(Dialect::from_u32(3), None);
    assert_eq!(
        Dialect::AlibabaSystem.request_template(),
        "/sys/{pk}/{dn}/rrpc/request/{id}"
    );
}
