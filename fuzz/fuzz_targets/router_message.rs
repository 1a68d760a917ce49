//! Arbitrary messages through the router's message entry point, with devices
//! of every dialect registered: every dialect's topic parser, the duplicate
//! check, admission and the reply path.
//!
//! Input layout: byte 0 holds the flags (bit 0 the MQTT retain flag, bit 1
//! answer an accepted request, bits 2-4 pick a topic lead prepended to the
//! topic bytes so that the fuzzer starts inside each dialect's namespace),
//! byte 1 the length of the topic bytes that follow; the rest is the payload.
//! The same message is then delivered a second time, not retained.
//!
//! Checked: nothing panics; a retained message is never accepted; an accepted
//! request's message id and ContentType come out of the topic's last level; a
//! reply goes out on a topic its dialect parses back to the same device and
//! message-id level; a second delivery of an accepted request is never
//! accepted again (duplicate, or the device's own reply).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rrpc::dialect::{split_content_type, Dialect, Identity};
use rrpc::router::{Dropped, Router, RouterConfig};

const LEADS: [&[u8]; 8] = [
    b"",
    b"/sys/",
    b"/sys/pk/dev/rrpc/request/",
    b"$rrpc/rxd/",
    b"$rrpc/rxd/pk/dev/",
    b"/ext/rrpc/",
    b"/ext/rrpc/1/pk/dev/user/rrpc",
    b"/sys/pk/dev/rrpc/request/1;ct=",
];

fn router() -> Router {
    let mut r = Router::new(RouterConfig {
        max_pending: 8,
        max_payload: 64,
        ..RouterConfig::default()
    });
    let dev = |dn| Identity {
        product_key: "pk",
        device_name: dn,
        custom_topic: None,
    };
    r.add_device(Dialect::AlibabaSystem, &dev("dev")).unwrap();
    r.add_device(Dialect::Tencent, &dev("dev")).unwrap();
    r.add_device(
        Dialect::AlibabaCustom,
        &Identity {
            product_key: "pk",
            device_name: "dev",
            custom_topic: Some("/pk/dev/user/rrpc"),
        },
    )
    .unwrap();
    r
}

fuzz_target!(|data: &[u8]| {
    let [flags, tlen, rest @ ..] = data else {
        return;
    };
    let retained = flags & 1 != 0;
    let answer = flags & 2 != 0;
    let lead = LEADS[usize::from(flags >> 2 & 7)];
    let tlen = usize::from(*tlen).min(rest.len());
    let (raw_topic, payload) = rest.split_at(tlen);
    let mut topic = lead.to_vec();
    topic.extend_from_slice(raw_topic);

    let mut r = router();
    let first = r.handle_received(&topic, payload, retained, 0);
    if retained {
        assert!(first.is_err(), "a retained message was accepted");
    }
    let accepted = first.map(|a| (a.token, a.message_id.to_string(), a.content_type));
    if let Ok((token, id, ct)) = &accepted {
        let text = std::str::from_utf8(&topic).expect("an accepted topic is UTF-8");
        let level = match rrpc::dialect::parse_request(text) {
            Ok(p) => p.message_id,
            Err(e) => panic!("accepted {text:?}, which does not parse: {e}"),
        };
        assert_eq!(split_content_type(level), (id.as_str(), *ct));
        if answer {
            let mut sent = None;
            r.reply(*token, b"ok", 1, |t, _| {
                sent = Some(t.to_string());
                Ok::<(), ()>(())
            })
            .expect("a fresh request can be answered");
            let sent = sent.expect("the reply was sent");
            let parsed = Dialect::all()
                .find_map(|d| d.parse_response(&sent).ok())
                .unwrap_or_else(|| panic!("reply topic {sent:?} does not parse"));
            assert_eq!(parsed.message_id, level, "{sent}");
        }
    }
    let second = r.handle_received(&topic, payload, false, 2);
    if accepted.is_ok() {
        assert!(
            matches!(second, Err(Dropped::Duplicate | Dropped::OwnReply)),
            "a second delivery: {second:?}"
        );
    }
    let s = r.stats();
    assert_eq!(s.messages, 2);
    assert!(s.requests <= 2);
});
