//! Arbitrary bodies through the envelope decoder and through a router serving
//! devices of the envelope dialects (a Tencent action device; two
//! ThingsBoard gateway sub-devices on one connection).
//!
//! Input layout: byte 0 holds the flags (bit 0: the gateway topic rather than
//! the Tencent one; bit 1: answer an accepted request with the request's own
//! params); the rest is the body.
//!
//! Checked: nothing panics (`envelope::fuzz_check`: what the decoder accepts
//! has a bounded id and name and params that are one JSON value, and the reply
//! built for it decodes back to the same id and device); an accepted request
//! is for the device the envelope names; its reply goes out on that device's
//! reply topic, names that device and no other, and repeats the id; a second
//! delivery is never accepted again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rrpc::dialect::envelope::{self, Envelope};
use rrpc::dialect::{Dialect, Identity};
use rrpc::router::{Dropped, Router, RouterConfig};

const TENCENT_TOPIC: &str = "$thing/down/action/pk/dev";
const GATEWAY_TOPIC: &str = "v1/gateway/rpc";

fn router() -> Router {
    let mut r = Router::new(RouterConfig {
        max_pending: 8,
        max_payload: 4096,
        ..RouterConfig::default()
    });
    let dev = |pk, dn| Identity {
        product_key: pk,
        device_name: dn,
        custom_topic: None,
    };
    r.add_device(Dialect::TencentAction, &dev("pk", "dev"))
        .unwrap();
    for dn in ["Device A", "Device B"] {
        r.add_device(Dialect::ThingsBoardGateway, &dev("", dn))
            .unwrap();
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let [flags, body @ ..] = data else {
        return;
    };
    envelope::fuzz_check(body);
    let gateway = flags & 1 != 0;
    let answer = flags & 2 != 0;
    let (topic, kind) = if gateway {
        (GATEWAY_TOPIC, Envelope::ThingsBoardGateway)
    } else {
        (TENCENT_TOPIC, Envelope::TencentAction)
    };
    let mut r = router();
    let first = r.handle_message(topic, body, 0);
    let accepted = first.map(|a| {
        (
            a.token,
            a.device,
            a.message_id.to_string(),
            a.payload.to_vec(),
        )
    });
    if let Ok((token, device, id, params)) = &accepted {
        let decoded = envelope::decode_request(kind, body).expect("an accepted body decodes");
        assert_eq!(&decoded.id, id);
        assert_eq!(decoded.params, params.as_slice());
        let d = r.request_device(*device).expect("the device is registered");
        let name = d.identity.device_name.to_string();
        if gateway {
            assert_eq!(decoded.device.as_deref(), Some(name.as_str()));
        }
        if answer {
            let mut sent = None;
            r.reply(*token, params, 1, |t, p| {
                sent = Some((t.to_string(), p.to_vec()));
                Ok::<(), ()>(())
            })
            .expect("params are JSON: a fresh request can be answered");
            let (t, p) = sent.expect("the reply was sent");
            let reply = envelope::unwrap_reply(kind, &p).expect("the reply decodes");
            assert_eq!(reply.id, id.as_str());
            assert_eq!(reply.payload, params.as_slice());
            if gateway {
                assert_eq!(t, GATEWAY_TOPIC);
                assert_eq!(reply.device.as_deref(), Some(name.as_str()));
                // The reply comes back on the gateway's subscription: its own.
                assert_eq!(r.handle_message(topic, &p, 1), Err(Dropped::OwnReply));
            } else {
                assert_eq!(t, "$thing/up/action/pk/dev");
            }
        }
    }
    let second = r.handle_message(topic, body, 2);
    if accepted.is_ok() {
        assert!(
            matches!(second, Err(Dropped::Duplicate)),
            "a second delivery: {second:?}"
        );
    }
    assert!(r.stats().requests <= 1);
});
