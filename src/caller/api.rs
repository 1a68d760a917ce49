//! The RRpc API as the cloud defines it, independent of any connection: call
//! parameters and their validation, `RrpcCode`, and the response with its exact
//! fields in JSON and XML.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

use crate::dialect::envelope::is_json;
use crate::dialect::{validate_custom_topic, validate_part, Dialect, Envelope};
use crate::encoding::json_str;

/// The outcome of an RRpc call, as the RRpc API names it. Values are part of the C ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RrpcCode {
    /// The device answered in time.
    Success = 0,
    /// The device did not answer within the timeout.
    Timeout = 1,
    /// The device is known to be offline; nothing was sent.
    Offline = 2,
    /// The device was online when the request went out, and its connection dropped
    /// (its last will arrived) before the reply.
    HalfConn = 3,
    /// A system error: the caller's own connection to the broker failed mid-call.
    Unknown = 4,
}

impl RrpcCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RrpcCode::Success => "SUCCESS",
            RrpcCode::Timeout => "TIMEOUT",
            RrpcCode::Offline => "OFFLINE",
            RrpcCode::HalfConn => "HALFCONN",
            RrpcCode::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for RrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Code` of a call refused for its parameters.
pub const CODE_INVALID_PARAMETER: &str = "InvalidParameter";
/// `Code` of a call that failed in the system (no connection, queue full).
pub const CODE_SYSTEM_EXCEPTION: &str = "iot.system.SystemException";

/// The RRpc API's response, field for field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrpcResponse {
    /// Unique id of this call (UUID form).
    pub request_id: String,
    /// Whether the call was carried out (`false`: refused or failed before sending).
    pub success: bool,
    /// Error code when `success` is false.
    pub code: Option<String>,
    /// Error text when `success` is false.
    pub error_message: Option<String>,
    /// The message id the request went out with.
    pub message_id: Option<u64>,
    /// The outcome when `success` is true.
    pub rrpc_code: Option<RrpcCode>,
    /// The device's reply (SUCCESS only).
    pub payload: Option<Vec<u8>>,
    /// The status the device's reply topic carried (`{status}` of dialects
    /// such as Azure direct methods); `None` for dialects without one. An
    /// extension of the RRpc API's response: `ReplyStatus` in JSON and XML,
    /// present only when set.
    pub reply_status: Option<u16>,
}

impl RrpcResponse {
    /// A response for a call that was not carried out (`Success` false), with its
    /// `Code` (e.g. [`CODE_INVALID_PARAMETER`], [`CODE_SYSTEM_EXCEPTION`]) and
    /// `ErrorMessage`, and a fresh `RequestId`.
    pub fn failed(code: &str, message: impl Into<String>) -> RrpcResponse {
        RrpcResponse {
            request_id: request_id(),
            success: false,
            code: Some(code.to_string()),
            error_message: Some(message.into()),
            message_id: None,
            rrpc_code: None,
            payload: None,
            reply_status: None,
        }
    }

    pub(crate) fn done(
        message_id: Option<u64>,
        code: RrpcCode,
        payload: Option<Vec<u8>>,
    ) -> RrpcResponse {
        RrpcResponse {
            request_id: request_id(),
            success: true,
            code: None,
            error_message: None,
            message_id,
            rrpc_code: Some(code),
            payload,
            reply_status: None,
        }
    }

    /// `PayloadBase64Byte`.
    pub fn payload_base64(&self) -> Option<String> {
        self.payload
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
    }

    /// The JSON form, with the field names of the RRpc API; absent fields are left out.
    pub fn to_json(&self) -> String {
        let mut f: Vec<String> = vec![
            format!("\"RequestId\":{}", json_str(&self.request_id)),
            format!("\"Success\":{}", self.success),
        ];
        if let Some(c) = &self.code {
            f.push(format!("\"Code\":{}", json_str(c)));
        }
        if let Some(m) = &self.error_message {
            f.push(format!("\"ErrorMessage\":{}", json_str(m)));
        }
        if let Some(id) = self.message_id {
            f.push(format!("\"MessageId\":{id}"));
        }
        if let Some(r) = self.rrpc_code {
            f.push(format!("\"RrpcCode\":\"{r}\""));
        }
        if let Some(p) = self.payload_base64() {
            f.push(format!("\"PayloadBase64Byte\":\"{p}\""));
        }
        if let Some(s) = self.reply_status {
            f.push(format!("\"ReplyStatus\":{s}"));
        }
        format!("{{{}}}", f.join(","))
    }

    /// The XML form: `<RRpcResponse>` with one element per present field.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version='1.0' encoding='UTF-8'?>\n<RRpcResponse>\n");
        let mut el =
            |name: &str, v: &str| x.push_str(&format!("  <{name}>{}</{name}>\n", xml_text(v)));
        el("RequestId", &self.request_id);
        el("Success", if self.success { "true" } else { "false" });
        if let Some(c) = &self.code {
            el("Code", c);
        }
        if let Some(m) = &self.error_message {
            el("ErrorMessage", m);
        }
        if let Some(id) = self.message_id {
            el("MessageId", &id.to_string());
        }
        if let Some(r) = self.rrpc_code {
            el("RrpcCode", r.as_str());
        }
        if let Some(p) = self.payload_base64() {
            el("PayloadBase64Byte", &p);
        }
        if let Some(s) = self.reply_status {
            el("ReplyStatus", &s.to_string());
        }
        x.push_str("</RRpcResponse>\n");
        x
    }
}

fn xml_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// A request id in UUID (version 4) form: a process-wide counter through a keyed
/// bijective mix, so ids never repeat within a process and differ between
/// processes, at the cost of two multiplications rather than a system call.
fn request_id() -> String {
    static KEY: once_cell::sync::Lazy<[u64; 2]> = once_cell::sync::Lazy::new(|| {
        let mut b = [0u8; 16];
        crate::random::fill(&mut b);
        [
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        ]
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mix64(n ^ KEY[0]).to_be_bytes());
    b[8..].copy_from_slice(&mix64(n.wrapping_add(KEY[1])).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 15)] as char);
    }
    out
}

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What an RRpc call asks for. `payload` is the decoded request (see
/// [`decode_request_base64`] for the API's `RequestBase64Byte`).
#[derive(Clone, Debug)]
pub struct CallParams<'a> {
    /// Any dialect, built-in or registered; `AlibabaSystem` with `custom_topic`
    /// is the Alibaba custom-topic dialect.
    pub dialect: Dialect,
    pub product_key: &'a str,
    pub device_name: &'a str,
    pub payload: &'a [u8],
    /// Milliseconds, 1000-8000. `None` is allowed for Tencent only (4000).
    pub timeout_ms: Option<u32>,
    /// Custom RRPC topic (the API's `Topic`), such as `/a1B2/dev1/user/update`.
    pub custom_topic: Option<&'a str>,
    /// JT/T 808 pass-through type: 0, 11, 65, 66 or 240-255. Sent in the
    /// message-id level of the request topic as `{messageId};ct={ContentType}`
    /// ([`crate::dialect::CONTENT_TYPE_SEPARATOR`]); without it the topic is the plain
    /// documented format.
    pub content_type: Option<u32>,
    /// The method, service or command name, for dialects whose request topic
    /// or envelope carries one (alibaba-service, azure, tencent-action's
    /// `actionId`, thingsboard-gateway's `data.method`; required there).
    pub name: Option<&'a str>,
}

impl<'a> CallParams<'a> {
    /// A call of `payload` to a device on its dialect's own request topic, with
    /// no timeout (only Tencent's default of 4000 ms applies: set `timeout_ms`
    /// for Alibaba), no custom topic and no ContentType. Set the other fields
    /// with struct update syntax:
    /// `CallParams { timeout_ms: Some(2000), ..CallParams::new(d, pk, dn, b"on") }`.
    pub fn new(
        dialect: Dialect,
        product_key: &'a str,
        device_name: &'a str,
        payload: &'a [u8],
    ) -> Self {
        CallParams {
            dialect,
            product_key,
            device_name,
            payload,
            timeout_ms: None,
            custom_topic: None,
            content_type: None,
            name: None,
        }
    }
}

/// Checks the RRpc API's parameters; the error text says which one and why.
pub fn validate_params(p: &CallParams<'_>, max_payload: usize) -> Result<(), String> {
    let d = p.dialect;
    if d.uses_product_key() || !p.product_key.is_empty() {
        validate_part("ProductKey", p.product_key).map_err(|e| e.to_string())?;
    }
    if d.uses_device_name() || !p.device_name.is_empty() {
        validate_part("DeviceName", p.device_name).map_err(|e| e.to_string())?;
    }
    if d.needs_custom_topic() && p.custom_topic.is_none() {
        return Err(format!("the {d} dialect needs Topic"));
    }
    let alibaba = matches!(d, Dialect::AlibabaSystem | Dialect::AlibabaCustom);
    if let (Some(t), true) = (p.custom_topic, d.uses_mqtt5_properties()) {
        super::mqtt5::check_topic("Topic", t)?;
    } else if let Some(t) = p.custom_topic {
        if !alibaba {
            return Err("Topic (custom RRPC topics) exists only for Alibaba and mqtt5".to_string());
        }
        validate_custom_topic(t).map_err(|e| format!("Topic {}", e.reason))?;
    }
    if d.has_name() && p.name.is_none() {
        return Err(format!("the {d} dialect needs the method or service name"));
    }
    if let Some(n) = p.name {
        validate_part("name", n).map_err(|e| e.to_string())?;
    }
    match (p.timeout_ms, alibaba) {
        (None, true) => return Err("Timeout is required (1000 to 8000 ms)".to_string()),
        (Some(t), true) if !(1000..=8000).contains(&t) => {
            return Err(format!("Timeout {t} is outside 1000 to 8000 ms"))
        }
        (Some(t), false) if !(1..=crate::dialect::MAX_TIMEOUT_MS).contains(&t) => {
            return Err(format!(
                "Timeout {t} is outside 1 to {} ms",
                crate::dialect::MAX_TIMEOUT_MS
            ))
        }
        _ => {}
    }
    if d.envelope() != Envelope::None {
        // The request travels inside a JSON envelope: as its params.
        if !p
            .payload
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            && !is_json(p.payload)
        {
            return Err(format!(
                "the payload is not valid JSON: the {d} dialect sends it as the params of its JSON envelope (one JSON value, or empty for {{}})"
            ));
        }
        if p.content_type.is_some() {
            return Err(format!(
                "ContentType travels in the request topic's message-id level, which the {d} dialect does not have"
            ));
        }
    }
    if let Some(ct) = p.content_type {
        if !matches!(ct, 0 | 11 | 65 | 66 | 240..=255) {
            return Err(format!(
                "ContentType {ct} is not one of 0, 11, 65, 66 or 240 to 255"
            ));
        }
    }
    if p.payload.len() > max_payload {
        return Err(format!(
            "the request is {} bytes, more than the {max_payload} allowed",
            p.payload.len()
        ));
    }
    Ok(())
}

/// Decodes the RRpc API's `RequestBase64Byte` (standard alphabet, padded).
pub fn decode_request_base64(b64: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("RequestBase64Byte is not valid Base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_calls_need_a_name_and_a_json_payload_and_take_no_content_type() {
        let p = |d, payload: &'static [u8]| CallParams {
            name: Some("toggle"),
            ..CallParams::new(d, "pid", "Sensor A", payload)
        };
        for d in [Dialect::TencentAction, Dialect::ThingsBoardGateway] {
            for ok in [&b""[..], b" \n", b"{\"pin\":1}", b"[1,2]", b"3", b"null"] {
                assert_eq!(validate_params(&p(d, ok), 1024), Ok(()), "{d} {ok:?}");
            }
            for bad in [&b"hello"[..], b"{", b"{} {}", b"\x0c{}", b"\xff"] {
                let e = validate_params(&p(d, bad), 1024).unwrap_err();
                assert!(e.contains("not valid JSON") && e.contains(d.name()), "{e}");
            }
            let unnamed = CallParams {
                name: None,
                ..p(d, b"{}")
            };
            assert!(validate_params(&unnamed, 1024).is_err());
            let ct = CallParams {
                content_type: Some(65),
                ..p(d, b"{}")
            };
            assert!(validate_params(&ct, 1024)
                .unwrap_err()
                .contains("ContentType"));
        }
        // Other dialects keep their bytes as they are.
        let plain = CallParams {
            timeout_ms: Some(2000),
            ..CallParams::new(Dialect::AlibabaSystem, "pk", "dn", b"hello")
        };
        assert_eq!(validate_params(&plain, 1024), Ok(()));
    }
}
