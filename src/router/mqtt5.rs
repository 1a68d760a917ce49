//! MQTT 5 request/response ([`Dialect::Mqtt5`]; MQTT 5.0, 4.10): a request is a
//! PUBLISH carrying the Response Topic property on a topic that an mqtt5
//! device's request filter matches; the reply goes to that Response Topic and
//! carries the request's Correlation Data back, and no Response Topic of its
//! own.
//!
//! The topic's text names nothing of the request, so the router needs the
//! properties: [`Router::handle_received_v5`]. A message without a Response
//! Topic (a device's own reply coming back to its subscription, any other
//! traffic), or on a topic no mqtt5 filter matches, takes the ordinary path
//! ([`Router::handle_received`]), where other dialects pay nothing for this
//! one. The devices' filters are matched one by one, in registration order:
//! at most [`MAX_MQTT5_DEVICES`](super::MAX_MQTT5_DEVICES) of them.
//!
//! The message id (for duplicate suppression) is the Correlation Data in
//! lowercase hex; a request without Correlation Data gets an id of its own
//! (`n` and a counter, never hex), so a second delivery of it is not
//! recognised as a duplicate.

use std::fmt::Write as _;

use super::devices::DeviceKey;
use super::pending::ReplyParts;
use super::types::{Accepted, Dropped, ReceivedTopic, RouterCounter};
use super::Router;
use crate::dialect::{self, Dialect, ParsedTopic};

/// Longest Correlation Data accepted, in bytes; a longer one is malformed.
pub const MAX_CORRELATION_LEN: usize = 1024;

/// The MQTT 5 properties of a received PUBLISH that the router reads, and
/// room for the message id it makes of them (see [`Router::handle_received_v5`]).
#[derive(Clone, Debug, Default)]
pub struct RequestProperties<'a> {
    /// Response Topic (0x08): present only on a request.
    pub response_topic: Option<&'a str>,
    /// Correlation Data (0x09), copied into the reply.
    pub correlation: Option<&'a [u8]>,
    /// The request's message id, made here (the accepted request borrows it).
    id: String,
}

impl<'a> RequestProperties<'a> {
    pub fn new(response_topic: Option<&'a str>, correlation: Option<&'a [u8]>) -> Self {
        RequestProperties {
            response_topic,
            correlation,
            id: String::new(),
        }
    }
}

/// Whether MQTT topic `topic` matches subscription filter `filter` (`+` one
/// level, `#` the rest; a filter starting with a wildcard matches no topic
/// starting with `$`, MQTT 5.0 4.7.2).
pub(super) fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(l)) if f == l => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

impl Router {
    /// [`Router::handle_received`] for a transport that reads MQTT 5
    /// properties: a PUBLISH with a Response Topic on a topic an mqtt5
    /// device's filter matches is that device's request (retained: dropped,
    /// `retained`; a Response Topic that is empty, over 1 KiB or holds a
    /// wildcard or NUL, or Correlation Data over [`MAX_CORRELATION_LEN`]
    /// bytes: malformed, never answered). Anything else is
    /// [`Router::handle_received`]. The accepted request borrows its message
    /// id from `props`.
    pub fn handle_received_v5<'a>(
        &mut self,
        topic: &'a str,
        payload: &'a [u8],
        retained: bool,
        props: &'a mut RequestProperties<'_>,
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let Some(response_topic) = props.response_topic else {
            return self.handle_received(ReceivedTopic::Text(topic), payload, retained, now_ms);
        };
        let Some((index, filter)) = self.registry.match_mqtt5(topic) else {
            return self.handle_received(ReceivedTopic::Text(topic), payload, retained, now_ms);
        };
        let filter = filter.to_string();
        self.stats.bump(RouterCounter::messages);
        if retained {
            return Err(self.dropped(Dropped::Retained));
        }
        if let Err(why) = dialect::validate_response_topic(response_topic) {
            return Err(self.dropped(Dropped::Malformed(why)));
        }
        let correlation = props.correlation;
        if correlation.is_some_and(|c| c.len() > MAX_CORRELATION_LEN) {
            return Err(self.dropped(Dropped::Malformed(
                "the Correlation Data is longer than 1024 bytes",
            )));
        }
        if payload.len() > self.cfg.max_payload {
            return Err(self.dropped(Dropped::TooLarge));
        }
        props.id.clear();
        match correlation {
            Some(c) => {
                props.id.reserve(2 * c.len());
                for b in c {
                    let _ = write!(props.id, "{b:02x}");
                }
            }
            None => {
                self.anonymous = self.anonymous.wrapping_add(1);
                let _ = write!(props.id, "n{}", self.anonymous);
            }
        }
        let id: &'a str = &props.id;
        self.requests.trim_history(now_ms);
        let generation = self
            .registry
            .record(index)
            .expect("a matched slot is live")
            .generation;
        if self.requests.seen(index, id, generation).is_some() {
            return Err(self.dropped(Dropped::Duplicate));
        }
        if self.requests.len() >= self.cfg.max_pending {
            self.expire(now_ms);
            if self.requests.len() >= self.cfg.max_pending {
                return Err(self.dropped(Dropped::TableFull));
            }
        }
        let parsed = ParsedTopic {
            dialect: Dialect::Mqtt5,
            product_key: None,
            device_name: None,
            message_id: id,
            name: None,
            format: None,
            status: None,
            custom_topic: None,
            device_prefix: "",
        };
        let parts = Box::new(ReplyParts {
            response_topic: Some(response_topic.into()),
            correlation: correlation.map(Into::into),
            ..ReplyParts::default()
        });
        let key = DeviceKey::Topic(&filter);
        let mut a = self
            .admit(index, &key, &parsed, payload, now_ms, Some(parts))
            .ok_or_else(|| self.dropped(Dropped::TableFull))?;
        (a.message_id, a.content_type) = (id, None);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::router_with;
    use super::super::*;
    use super::{filter_matches, RequestProperties};

    const FILTER: &str = "devices/dev1/rpc/+";

    fn mqtt5_router() -> Router {
        let mut r = router_with(RouterConfig::default());
        let id = Identity {
            product_key: "",
            device_name: "",
            custom_topic: Some(FILTER),
        };
        let d = r.add_device(Dialect::Mqtt5, &id).unwrap();
        assert_eq!(d.filter(), FILTER);
        r
    }

    /// What a reply sends: topic, payload and Correlation Data.
    type Sent = Vec<(String, Vec<u8>, Option<Vec<u8>>)>;

    fn reply(r: &mut Router, token: u64, body: &[u8], now: u64, sent: &mut Sent) {
        r.reply_v5(token, None, body, now, |t, p, c| {
            sent.push((t.to_string(), p.to_vec(), c.map(<[u8]>::to_vec)));
            Ok::<(), ()>(())
        })
        .unwrap();
    }

    #[test]
    fn filters_match_as_mqtt_says() {
        for (f, t, m) in [
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a/b/d", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "$SYS/x", false),
            ("+/x", "$a/x", false),
            ("$a/+", "$a/x", true),
            ("a/b", "a/b", true),
            ("a/b", "a/b/", false),
            ("a/+", "a/", true),
        ] {
            assert_eq!(filter_matches(f, t), m, "{f} {t}");
        }
    }

    #[test]
    fn the_reply_goes_to_the_response_topic_with_the_correlation_data() {
        let mut r = mqtt5_router();
        let corr = [0u8, 0xff, 0x10, b'x'];
        let mut p = RequestProperties::new(Some("clients/c1/reply"), Some(&corr));
        let a = r
            .handle_received_v5("devices/dev1/rpc/reboot", b"req", false, &mut p, 0)
            .unwrap();
        assert_eq!((a.message_id, a.payload), ("00ff1078", &b"req"[..]));
        assert_eq!(a.deadline_ms, 10_000);
        let d = r.request_device(a.device).unwrap();
        assert_eq!(d.dialect, Dialect::Mqtt5);
        let token = a.token;
        let mut sent = Sent::new();
        reply(&mut r, token, b"ok", 1, &mut sent);
        assert_eq!(
            sent,
            [(
                "clients/c1/reply".into(),
                b"ok".to_vec(),
                Some(corr.to_vec())
            )]
        );
        assert_eq!(r.stats().replied, 1);
        // Without Correlation Data, the reply carries none.
        let mut p = RequestProperties::new(Some("clients/c1/reply"), None);
        let a = r
            .handle_received_v5("devices/dev1/rpc/x", b"", false, &mut p, 2)
            .unwrap();
        assert_eq!(a.message_id, "n1");
        let t = a.token;
        reply(&mut r, t, b"", 3, &mut sent);
        assert_eq!(sent[1], ("clients/c1/reply".into(), vec![], None));
    }

    #[test]
    fn a_second_delivery_of_the_same_correlation_data_is_a_duplicate() {
        let mut r = mqtt5_router();
        let topic = "devices/dev1/rpc/a";
        let mut p = RequestProperties::new(Some("r/1"), Some(b"id-1"));
        let t = r
            .handle_received_v5(topic, b"", false, &mut p, 0)
            .unwrap()
            .token;
        let mut p = RequestProperties::new(Some("r/1"), Some(b"id-1"));
        assert_eq!(
            r.handle_received_v5(topic, b"", false, &mut p, 1)
                .unwrap_err(),
            Dropped::Duplicate
        );
        reply(&mut r, t, b"", 2, &mut Sent::new());
        let mut p = RequestProperties::new(Some("r/1"), Some(b"id-1"));
        assert_eq!(
            r.handle_received_v5(topic, b"", false, &mut p, 3)
                .unwrap_err(),
            Dropped::Duplicate
        );
        // Without Correlation Data nothing tells a second delivery apart.
        for now in [4, 5] {
            let mut p = RequestProperties::new(Some("r/1"), None);
            assert!(r.handle_received_v5(topic, b"", false, &mut p, now).is_ok());
        }
        assert_eq!((r.stats().requests, r.stats().duplicates), (3, 2));
    }

    #[test]
    fn bad_response_topics_are_malformed_and_never_answered() {
        let mut r = mqtt5_router();
        let long = "r".repeat(1025);
        for rt in ["", "r/+", "r/#", "r/\0", &long] {
            let mut p = RequestProperties::new(Some(rt), Some(b"c"));
            assert!(
                matches!(
                    r.handle_received_v5("devices/dev1/rpc/a", b"", false, &mut p, 0),
                    Err(Dropped::Malformed(_))
                ),
                "{rt:?}"
            );
        }
        let big = [0u8; 1025];
        let mut p = RequestProperties::new(Some("r"), Some(&big));
        assert!(matches!(
            r.handle_received_v5("devices/dev1/rpc/a", b"", false, &mut p, 0),
            Err(Dropped::Malformed(_))
        ));
        assert_eq!((r.stats().malformed, r.pending_len()), (6, 0));
        // Retained: never executed.
        let mut p = RequestProperties::new(Some("r"), Some(b"c"));
        assert_eq!(
            r.handle_received_v5("devices/dev1/rpc/a", b"", true, &mut p, 0)
                .unwrap_err(),
            Dropped::Retained
        );
    }

    #[test]
    fn messages_without_a_response_topic_or_off_the_filters_take_the_ordinary_path() {
        let mut r = mqtt5_router();
        // The device's own reply coming back, or plain traffic.
        let mut p = RequestProperties::new(None, Some(b"c"));
        assert_eq!(
            r.handle_received_v5("devices/dev1/rpc/a", b"", false, &mut p, 0)
                .unwrap_err(),
            Dropped::NotRrpc
        );
        let mut p = RequestProperties::new(Some("r"), None);
        assert_eq!(
            r.handle_received_v5("devices/dev2/rpc/a", b"", false, &mut p, 0)
                .unwrap_err(),
            Dropped::NotRrpc
        );
        // Another dialect's request with a Response Topic is that dialect's.
        r.add_device(Dialect::Tencent, &super::super::tests::dev("dev1"))
            .unwrap();
        let mut p = RequestProperties::new(Some("r"), None);
        let a = r
            .handle_received_v5("$rrpc/rxd/a1GFjLP3xxC/dev1/7", b"", false, &mut p, 0)
            .unwrap();
        assert_eq!(a.message_id, "7");
        // And the ordinary path never takes an mqtt5 request.
        assert_eq!(
            r.handle_message("devices/dev1/rpc/a", b"", 0).unwrap_err(),
            Dropped::NotRrpc
        );
    }

    #[test]
    fn request_filters_are_validated_and_bounded() {
        let mut r = router_with(RouterConfig::default());
        for bad in ["", "a/b+", "a/#/b", "a/\u{1}"] {
            let id = Identity {
                product_key: "",
                device_name: "",
                custom_topic: Some(bad),
            };
            assert!(
                matches!(
                    r.add_device(Dialect::Mqtt5, &id),
                    Err(DeviceError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        let none = Identity {
            product_key: "",
            device_name: "",
            custom_topic: None,
        };
        assert!(matches!(
            r.add_device(Dialect::Mqtt5, &none),
            Err(DeviceError::Invalid(_))
        ));
        let filters: Vec<String> = (0..=MAX_MQTT5_DEVICES)
            .map(|i| format!("d/{i}/#"))
            .collect();
        for (i, f) in filters.iter().enumerate() {
            let id = Identity {
                custom_topic: Some(f),
                ..none
            };
            let got = r.add_device(Dialect::Mqtt5, &id);
            if i < MAX_MQTT5_DEVICES {
                got.unwrap();
            } else {
                assert_eq!(got.unwrap_err(), DeviceError::Mqtt5Full);
            }
        }
        // A removed device's filter no longer matches; its place is free.
        let id = Identity {
            custom_topic: Some("d/3/#"),
            ..none
        };
        r.remove_device(Dialect::Mqtt5, &id, 0).unwrap();
        let mut p = RequestProperties::new(Some("r"), None);
        assert_eq!(
            r.handle_received_v5("d/3/x", b"", false, &mut p, 0)
                .unwrap_err(),
            Dropped::NotRrpc
        );
        let id = Identity {
            custom_topic: Some("d/new"),
            ..none
        };
        r.add_device(Dialect::Mqtt5, &id).unwrap();
    }
}
