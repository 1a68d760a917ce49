//! Calls of MQTT 5 request/response ([`Dialect::Mqtt5`]; MQTT 5.0, 4.10): the
//! request goes out on the call's custom topic (an exact topic) with two
//! properties, Response Topic = the caller's own response topic and
//! Correlation Data = the call's message id in decimal text (the RRpc
//! `MessageId`, 1 to 19 ASCII digits); the call is completed by a live message
//! on that response topic carrying that Correlation Data.
//!
//! The response topic is [`CallerConfig::response_topic`](super::CallerConfig::response_topic),
//! by default `rrpc/caller/{client id}/response`; it is subscribed (QoS 0)
//! before the first mqtt5 call, like any response filter, and stays while calls
//! use it. A message there without Correlation Data, with Correlation Data that
//! is not a call's id, or retained, completes nothing and is counted
//! (`unknown_responses`, `late_responses`, `duplicate_responses`,
//! `retained_responses`).
//!
//! MQTT 3.1.1 has no properties: an mqtt5 call on such a session is refused
//! (InvalidParameter).

use super::calls::Finished;
use super::core::CallerCore;
use super::{CallerCounter, RrpcCode};
use crate::dialect::{self, Dialect};
use crate::session::MqttVersion;

/// The default topic a caller with MQTT client id `client_id` receives its
/// mqtt5 replies on.
pub fn default_response_topic(client_id: &str) -> String {
    format!("rrpc/caller/{client_id}/response")
}

/// Why a call of `dialect` cannot be made on a session of `protocol`: an
/// mqtt5 call needs MQTT 5 (its request and reply travel in properties).
pub fn check_protocol(dialect: Dialect, protocol: MqttVersion) -> Result<(), String> {
    if dialect.uses_mqtt5_properties() && protocol != MqttVersion::V5 {
        return Err(format!(
            "the {dialect} dialect needs an MQTT 5 session (the caller's protocol is 3.1.1): \
             its Response Topic and Correlation Data are MQTT 5 properties"
        ));
    }
    Ok(())
}

/// Checks the topic an mqtt5 call is published on (`what` = "Topic") or asks
/// its reply on ("response_topic"): an exact topic (no `+` or `#`), not empty,
/// no NUL or control character, at most 1 KiB.
pub(super) fn check_topic(what: &str, topic: &str) -> Result<(), String> {
    dialect::validate_response_topic(topic)
        .map_err(|why| why.replace("the Response Topic", "the topic"))
        .and_then(|()| match topic.bytes().any(|b| b < 0x20 || b == 0x7f) {
            true => Err("the topic contains a control character".to_string()),
            false => Ok(()),
        })
        .map_err(|why| format!("{what}: {why}"))
}

/// The Correlation Data of the call with message id `id`: its decimal text.
pub(super) fn correlation(id: u64) -> Vec<u8> {
    id.to_string().into_bytes()
}

/// The call id a reply's Correlation Data names, if it is one (decimal text of
/// a non-zero id, at most 20 bytes).
pub(super) fn parse_correlation(c: &[u8]) -> Option<u64> {
    if c.len() > 20 {
        return None;
    }
    super::parse_message_id(std::str::from_utf8(c).ok()?)
}

impl CallerCore {
    /// Whether `topic` is this caller's mqtt5 response topic.
    pub(super) fn is_mqtt5_reply_topic(&self, topic: &str) -> bool {
        topic == self.mqtt5_topic
    }

    /// A message on the caller's mqtt5 response topic, with its Correlation
    /// Data (`None`: the message had none).
    pub(super) fn on_mqtt5_reply(
        &self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        correlation: Option<&[u8]>,
    ) {
        if retained {
            self.bump(CallerCounter::retained_responses);
            return debug!("retained message on the mqtt5 response topic discarded");
        }
        let Some(id) = correlation.and_then(parse_correlation) else {
            self.bump(CallerCounter::unknown_responses);
            return debug!("a message on the mqtt5 response topic without a call's Correlation Data; discarded");
        };
        let mut st = self.state.lock();
        let Some(call) = st.pending.get_mut(&id) else {
            let counter = match st.finished(id) {
                Some(Finished::TimedOut) => CallerCounter::late_responses,
                Some(Finished::Answered | Finished::AnsweredEchoDue) => {
                    CallerCounter::duplicate_responses
                }
                _ => CallerCounter::unknown_responses,
            };
            drop(st);
            return self.bump(counter);
        };
        // A call of another dialect expects its reply elsewhere.
        if call.reply_matches(topic).is_none() {
            drop(st);
            self.bump(CallerCounter::mismatched_responses);
            return debug!(
                "a reply on the mqtt5 response topic for call {id} of another dialect; discarded"
            );
        }
        let done = st.finish(id, RrpcCode::Success, Some(payload.to_vec()), None);
        drop(st);
        self.complete(done.into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_data_is_the_decimal_message_id() {
        assert_eq!(correlation(42), b"42");
        assert_eq!(parse_correlation(b"42"), Some(42));
        assert_eq!(
            parse_correlation(&correlation(i64::MAX as u64)),
            Some(i64::MAX as u64)
        );
        for bad in [&b""[..], b"0", b"042", b"4 2", b"\xff\x00", &[b'1'; 21]] {
            assert_eq!(parse_correlation(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mqtt5_calls_need_mqtt5_and_an_exact_topic() {
        assert!(check_protocol(Dialect::Mqtt5, MqttVersion::V5).is_ok());
        let e = check_protocol(Dialect::Mqtt5, MqttVersion::V311).unwrap_err();
        assert!(e.contains("needs an MQTT 5 session"), "{e}");
        assert!(check_protocol(Dialect::Tencent, MqttVersion::V311).is_ok());
        assert!(check_topic("Topic", "plant/line1/m7/rpc").is_ok());
        let e = check_topic("Topic", "plant/+/rpc").unwrap_err();
        assert_eq!(e, "Topic: the topic contains an MQTT wildcard");
        for bad in ["", "a\nb", "a\0b", &"x".repeat(1025)] {
            assert!(check_topic("Topic", bad).is_err(), "{bad:?}");
        }
    }
}
