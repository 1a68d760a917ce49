//! A caller's incoming-message path without a broker, for fuzzing: the same
//! `route` the session calls for every PUBLISH, with a few calls in flight
//! whose ids and topics are fixed, so that a fuzzer can hit (and try to fool)
//! the correlation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

use super::calls::{DeviceKey, PendingCall, State, Sub, SubEntry};
use super::{CallerConfig, CallerCore, RrpcCode, RrpcResponse};
use crate::dialect::{self, envelope, Dialect, Envelope, Identity};
use crate::session::{ConnectionState, Inbound, Session, SessionOwner};

/// The calls kept in flight: (dialect, product key, device name, custom topic,
/// message id, ContentType, request payload).
type Fixture = (
    Dialect,
    &'static str,
    &'static str,
    Option<&'static str>,
    u64,
    Option<u8>,
    &'static [u8],
);

const CALLS: [Fixture; 7] = [
    (
        Dialect::AlibabaSystem,
        "a1Pk",
        "dev1",
        None,
        889_455_942_124_347_392,
        None,
        b"req",
    ),
    (
        Dialect::AlibabaSystem,
        "a1Pk",
        "dev2",
        None,
        42,
        Some(65),
        b"req",
    ),
    (
        Dialect::AlibabaCustom,
        "a1Pk",
        "dev3",
        Some("/a1Pk/dev3/user/update"),
        7,
        None,
        b"echo me",
    ),
    (Dialect::Tencent, "pid", "dev4", None, 41440, None, b""),
    // Envelope dialects: the id (and the sub-device) in the reply's body.
    (
        Dialect::TencentAction,
        "pid",
        "dev5",
        None,
        5005,
        None,
        b"{}",
    ),
    (
        Dialect::ThingsBoardGateway,
        "",
        "Sensor A",
        None,
        7,
        None,
        b"{}",
    ),
    (
        Dialect::ThingsBoardGateway,
        "",
        "Sensor B",
        None,
        8,
        None,
        b"{}",
    ),
];

/// The id of the mqtt5 call kept in flight (Correlation Data `5`).
const MQTT5_CALL: u64 = 5;

/// A caller's response path, fed by hand. See the module documentation.
#[doc(hidden)]
pub struct ResponseFuzz {
    inner: Arc<CallerCore>,
    _session: Session,
    /// Every completed call's response.
    completed: Arc<Mutex<Vec<RrpcResponse>>>,
    /// The responses of the last `feed`.
    last: Mutex<Vec<RrpcResponse>>,
}

impl Default for ResponseFuzz {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseFuzz {
    /// A caller (never connected) with presence on and the fixed calls in flight.
    pub fn new() -> ResponseFuzz {
        let mut cfg = CallerConfig::new("127.0.0.1", 1);
        cfg.max_presence = 64;
        let link = Arc::new(ConnectionState::new(cfg.mqtt.address()));
        let session = Session::open(&cfg.mqtt, None, "fuzz", cfg.max_payload, 64, link.clone());
        let inner = Arc::new(CallerCore {
            client_id: "fuzz".into(),
            link,
            publisher: session.publisher(),
            state: Mutex::new(State::new(cfg.max_presence)),
            ready: AtomicBool::new(false),
            echo_key: hashbrown::DefaultHashBuilder::default(),
            stats: Default::default(),
            outbox_ready: tokio::sync::Notify::new(),
            mqtt5_topic: super::default_response_topic("fuzz"),
            cfg,
        });
        let f = ResponseFuzz {
            inner,
            _session: session,
            completed: Arc::new(Mutex::new(Vec::new())),
            last: Mutex::new(Vec::new()),
        };
        f.refill();
        f
    }

    /// The response topics of the calls in flight (the real replies), for seeds.
    pub fn response_topics() -> Vec<String> {
        CALLS
            .iter()
            .map(|&(d, pk, dn, topic, id, ct, _)| {
                let level = dialect::message_id_level(&id.to_string(), ct);
                d.response_topic(
                    &Identity {
                        product_key: pk,
                        device_name: dn,
                        custom_topic: topic,
                    },
                    &level,
                )
            })
            .collect()
    }

    /// Puts every fixed call that is not in flight back in flight.
    fn refill(&self) {
        let topics = Self::response_topics();
        let mut st = self.inner.state.lock();
        for (&(d, pk, dn, topic, id, _, payload), response_topic) in CALLS.iter().zip(topics) {
            if st.pending.contains_key(&id) {
                continue;
            }
            let filter = d.response_wildcard(topic);
            st.subs.entry(filter.clone()).or_insert(SubEntry {
                state: Sub::Active,
                users: 0,
                idle_since_ms: 0,
            });
            let done = self.completed.clone();
            let call = PendingCall {
                device: DeviceKey(pk.into(), dn.into()),
                deadline_ms: u64::MAX / 2,
                response_topic: response_topic.into(),
                filter: filter.into(),
                echo: (d == Dialect::AlibabaCustom).then(|| self.inner.echo_hash(payload)),
                bytes: payload.len(),
                unsent: None,
                envelope: d.envelope(),
                done: Box::new(move |r| done.lock().push(r)),
            };
            st.insert(id, call);
        }
        if !st.pending.contains_key(&MQTT5_CALL) {
            let topic = self.inner.mqtt5_topic.clone();
            st.subs.entry(topic.clone()).or_insert(SubEntry {
                state: Sub::Active,
                users: 0,
                idle_since_ms: 0,
            });
            let done = self.completed.clone();
            let call = PendingCall {
                device: DeviceKey(String::new(), String::new()),
                deadline_ms: u64::MAX / 2,
                response_topic: topic.as_str().into(),
                filter: topic.into(),
                echo: None,
                bytes: 0,
                unsent: None,
                envelope: Envelope::None,
                done: Box::new(move |r| done.lock().push(r)),
            };
            st.insert(MQTT5_CALL, call);
        }
    }

    /// One incoming PUBLISH: topic bytes (not UTF-8: dropped, as the session
    /// does), payload and retain flag. Returns the calls it completed, with
    /// their codes, after checking that a SUCCESS came from the call's own
    /// response topic, live.
    pub fn feed(&self, topic: &[u8], payload: &[u8], retain: bool) -> Vec<(u64, RrpcCode)> {
        self.feed_v5(topic, payload, retain, None)
    }

    /// [`ResponseFuzz::feed`] for an MQTT 5 PUBLISH with Correlation Data
    /// (`Some`: an MQTT 5 reply, as the session hands it over); an mqtt5 call
    /// (id 5) is in flight too, completed only on the caller's mqtt5
    /// response topic with its id as Correlation Data.
    pub fn feed_v5(
        &self,
        topic: &[u8],
        payload: &[u8],
        retain: bool,
        correlation: Option<&[u8]>,
    ) -> Vec<(u64, RrpcCode)> {
        let Ok(topic) = std::str::from_utf8(topic) else {
            return Vec::new();
        };
        let how = Inbound {
            retain,
            early: false,
        };
        match correlation {
            Some(c) => self.inner.on_reply_v5(topic, payload, how, c),
            None => self.inner.route(topic, payload, how),
        }
        let responses = std::mem::take(&mut *self.completed.lock());
        let done: Vec<(u64, RrpcCode)> = responses
            .iter()
            .filter_map(|r| Some((r.message_id?, r.rrpc_code?)))
            .collect();
        *self.last.lock() = responses;
        let topics = Self::response_topics();
        for &(id, code) in &done {
            if code == RrpcCode::Success {
                assert!(!retain, "a retained message completed call {id}");
                if id == MQTT5_CALL {
                    assert_eq!(
                        topic, self.inner.mqtt5_topic,
                        "the mqtt5 call from elsewhere"
                    );
                    assert_eq!(
                        correlation,
                        Some(&b"5"[..]),
                        "the mqtt5 call's Correlation Data"
                    );
                    continue;
                }
                let i = CALLS.iter().position(|c| c.4 == id).expect("a fixed call");
                assert_eq!(topic, topics[i], "call {id} completed from another topic");
                let (d, dn) = (CALLS[i].0, CALLS[i].2);
                if d.envelope() != Envelope::None {
                    let r = envelope::unwrap_reply(d.envelope(), payload)
                        .expect("only a reply envelope completes an envelope call");
                    assert_eq!(r.id, id.to_string(), "call {id} completed by another id");
                    if let Some(device) = r.device {
                        assert_eq!(device, dn, "call {id} completed by another sub-device");
                    }
                }
            }
        }
        self.refill();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_each_calls_own_topic_completes_it_and_the_echo_does_not() {
        let f = ResponseFuzz::new();
        let t = ResponseFuzz::response_topics();
        assert!(f.feed(t[0].as_bytes(), b"r", true).is_empty(), "retained");
        // Near misses of call 42's response topic.
        assert_eq!(t[1], "/sys/a1Pk/dev2/rrpc/response/42;ct=65");
        for near in [
            "/sys/a1Pk/devX/rrpc/response/42;ct=65",
            "/sys/a1Pk/dev2/rrpc/response/042;ct=65",
            "/sys/a1Pk/dev2/rrpc/response/42",
            "/sys/a1Pk/dev2/rrpc/response/42;ct=66",
        ] {
            assert!(f.feed(near.as_bytes(), b"r", false).is_empty(), "{near}");
        }
        assert_eq!(
            f.feed(t[1].as_bytes(), b"r", false),
            vec![(42, RrpcCode::Success)]
        );
        // The custom-topic request's own copy first, then the reply.
        assert!(f.feed(t[2].as_bytes(), b"echo me", false).is_empty());
        assert_eq!(
            f.feed(t[2].as_bytes(), b"echo me", false),
            vec![(7, RrpcCode::Success)]
        );
        assert_eq!(
            f.feed(t[3].as_bytes(), b"", false),
            vec![(41440, RrpcCode::Success)]
        );
        assert!(f.feed(&[0xff, 0xfe], b"", false).is_empty());
        // Envelope replies: the id and the sub-device in the body.
        assert_eq!(t[4], "$thing/up/action/pid/dev5");
        assert_eq!(t[5], "v1/gateway/rpc");
        for hostile in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"device\":\"Sensor A\",\"data\":{\"id\":7,\"method\":\"m\",\"params\":{}}}",
            b"{\"device\":\"Sensor B\",\"id\":7,\"data\":1}",
            b"{\"device\":\"Sensor A\",\"id\":9,\"data\":1}",
            b"{\"device\":\"Sensor A\",\"id\":\"7\",\"data\":1}",
            b"{\"device\":\"Sensor A\",\"id\":7,\"id\":8,\"data\":1}",
        ] {
            assert!(f.feed(t[5].as_bytes(), hostile, false).is_empty());
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(f.feed(t[5].as_bytes(), deep.as_bytes(), false).is_empty());
        assert!(f
            .feed(
                t[4].as_bytes(),
                b"{\"method\":\"action_reply\",\"clientToken\":\"7\",\"code\":0}",
                false
            )
            .is_empty());
        assert_eq!(
            f.feed(
                t[5].as_bytes(),
                b"{\"device\":\"Sensor B\",\"id\":8,\"data\":{\"ok\":true}}",
                false
            ),
            vec![(8, RrpcCode::Success)]
        );
        let r = f.last.lock()[0].clone();
        assert_eq!(
            (r.payload.as_deref(), r.reply_status),
            (Some(&b"{\"ok\":true}"[..]), None)
        );
        assert_eq!(
            f.feed(
                t[4].as_bytes(),
                b"{\"method\":\"action_reply\",\"clientToken\":\"5005\",\"code\":3,\"status\":\"no\",\"response\":[1]}",
                false
            ),
            vec![(5005, RrpcCode::Success)]
        );
        let r = f.last.lock()[0].clone();
        assert_eq!(
            (r.payload.as_deref(), r.reply_status),
            (Some(&b"[1]"[..]), Some(3))
        );
        // A device's offline status ends its call HALFCONN.
        assert_eq!(
            f.feed(b"rrpc/presence/a1Pk/dev1", b"offline", false),
            vec![(889_455_942_124_347_392, RrpcCode::HalfConn)]
        );
        let s = f
            .inner
            .stats
            .get(super::super::CallerCounter::mismatched_responses);
        // Three near misses, a reply of Sensor B with Sensor A's id, and a
        // Tencent reply with the id of a gateway call.
        assert_eq!(s, 5);
    }

    #[test]
    fn only_the_mqtt5_calls_correlation_data_on_its_topic_completes_it() {
        let f = ResponseFuzz::new();
        let topic = f.inner.mqtt5_topic.clone();
        assert_eq!(topic, "rrpc/caller/fuzz/response");
        let t = topic.as_bytes();
        for (c, retain) in [
            (None, false),
            (Some(&b"6"[..]), false),
            (Some(b"05"), false),
            (Some(b"\x05"), false),
            (Some(b"5"), true),
        ] {
            assert!(f.feed_v5(t, b"r", retain, c).is_empty(), "{c:?} {retain}");
        }
        // The right Correlation Data on another call's topic completes that
        // call (by its topic), not the mqtt5 one.
        let other = ResponseFuzz::response_topics()[3].clone();
        assert_eq!(
            f.feed_v5(other.as_bytes(), b"r", false, Some(b"5")),
            vec![(41440, RrpcCode::Success)]
        );
        assert_eq!(
            f.feed_v5(t, b"r", false, Some(b"5")),
            vec![(MQTT5_CALL, RrpcCode::Success)]
        );
        let s = |c| f.inner.stats.get(c);
        use super::super::CallerCounter as C;
        assert_eq!(s(C::unknown_responses), 4);
        assert_eq!(s(C::retained_responses), 1);
    }
}
