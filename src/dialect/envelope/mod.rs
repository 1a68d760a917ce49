//! Envelopes: dialects whose message id, method name (and, for a gateway, the
//! sub-device) travel inside a JSON body instead of the topic.
//!
//! | envelope               | request body                                                                  | reply body                                                                              |
//! |------------------------|-------------------------------------------------------------------------------|-----------------------------------------------------------------------------------------|
//! | `TencentAction`        | `{"method":"action","clientToken":"<id>","actionId":"<name>","params":{..}}` | `{"method":"action_reply","clientToken":"<id>","code":0,"status":"","response":<reply>}` |
//! | `ThingsBoardGateway`   | `{"device":"<dn>","data":{"id":<n>,"method":"<name>","params":<any>}}`       | `{"device":"<dn>","id":<n>,"data":<reply>}`                                              |
//!
//! The decoder is a bounded scanner over the body: it checks the whole text is
//! JSON (RFC 8259 grammar, UTF-8), nests at most 32 arrays and
//! objects, and borrows what it finds: the id as its JSON text (a string's
//! content with its escapes, an integer's digits), the name likewise, the
//! `params` value as its raw JSON text. Only a gateway's device name is
//! unescaped (it is compared with registered names). No allocation unless that
//! name holds an escape. A hand-written scanner rather than `serde_json`: the
//! router needs spans of the received text, not a tree, and the library stays
//! free of a dependency it would use for a few dozen lines.

use std::borrow::Cow;

use super::MAX_IDENTITY_LEN;

/// Where a dialect's id, name and device travel, besides the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Envelope {
    /// Everything the router needs is in the topic; the body is the
    /// application's.
    #[default]
    None,
    /// Tencent IoT Explorer actions: `clientToken` (a string) and `actionId`.
    TencentAction,
    /// ThingsBoard gateway RPC: `device`, `data.id` (an integer) and
    /// `data.method`; one connection serves many sub-devices.
    ThingsBoardGateway,
}

impl Envelope {
    /// Whether the envelope names the device (the topic does not).
    pub fn names_device(self) -> bool {
        self == Envelope::ThingsBoardGateway
    }
}

/// Deepest nesting of arrays and objects accepted in a body.
pub(crate) const MAX_DEPTH: usize = 32;

/// A request's envelope taken apart. Every field but an unescaped device name
/// borrows from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeRequest<'a> {
    /// The id as it appears in the body: a string's content, escapes included
    /// (Tencent `clientToken`), or an integer's decimal digits (ThingsBoard
    /// `data.id`, at most `u64::MAX`). The reply repeats it byte for byte.
    pub id: &'a str,
    /// `actionId` or `data.method`, as it appears in the body (escapes
    /// included).
    pub name: &'a str,
    /// The sub-device (`device`), unescaped: gateway envelopes only.
    pub device: Option<Cow<'a, str>>,
    /// The raw JSON text of `params` (`null` when absent): the request's
    /// payload for the application.
    pub params: &'a [u8],
}

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not an envelope of the dialect, or not JSON; the text says what.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// A reply (it has the reply's keys): on a topic that carries both
    /// directions, the device's own reply coming back.
    #[error("a reply, not a request")]
    Reply,
}

use EnvelopeError::Malformed;

/// Decodes a request body of `envelope`. [`Envelope::None`] is refused.
pub fn decode_request(
    envelope: Envelope,
    body: &[u8],
) -> Result<EnvelopeRequest<'_>, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(|_| Malformed("the body is not UTF-8"))?;
    let mut s = Scanner::new(text);
    let top = s.top_object()?;
    match envelope {
        Envelope::None => Err(Malformed("the dialect has no envelope")),
        Envelope::TencentAction => tencent_request(text, &top),
        Envelope::ThingsBoardGateway => gateway_request(text, &top),
    }
}

/// Keys of an object that matter, each at most once, with their values' spans.
struct Fields<const N: usize> {
    spans: [Option<(usize, usize)>; N],
}

impl<const N: usize> Fields<N> {
    /// The members of the object at `span` of `text` whose keys are `keys`
    /// (compared with the raw key text). A key given twice is refused.
    fn of(text: &str, span: (usize, usize), keys: [&str; N]) -> Result<Self, EnvelopeError> {
        let mut spans = [None; N];
        let mut s = Scanner::at(text, span.0);
        s.members(|key, value| {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                if spans[i].replace(value).is_some() {
                    return Err(Malformed("a key is given twice"));
                }
            }
            Ok(())
        })?;
        Ok(Fields { spans })
    }

    fn get(&self, i: usize) -> Option<(usize, usize)> {
        self.spans[i]
    }
}

fn tencent_request<'a>(
    text: &'a str,
    top: &(usize, usize),
) -> Result<EnvelopeRequest<'a>, EnvelopeError> {
    let f = Fields::of(
        text,
        *top,
        ["method", "clientToken", "actionId", "params", "code"],
    )?;
    let method = string_at(text, f.get(0))?;
    if method == "action_reply" || f.get(4).is_some() {
        return Err(EnvelopeError::Reply);
    }
    if method != "action" {
        return Err(Malformed("method is not \"action\""));
    }
    let id = id_string(text, f.get(1))?;
    let name = name_at(text, f.get(2))?;
    Ok(EnvelopeRequest {
        id,
        name,
        device: None,
        params: params_at(text, f.get(3)),
    })
}

fn gateway_request<'a>(
    text: &'a str,
    top: &(usize, usize),
) -> Result<EnvelopeRequest<'a>, EnvelopeError> {
    let f = Fields::of(text, *top, ["device", "data", "id"])?;
    if f.get(2).is_some() {
        return Err(EnvelopeError::Reply);
    }
    let device = device_at(text, f.get(0))?;
    let Some(data) = f.get(1).filter(|d| text.as_bytes()[d.0] == b'{') else {
        return Err(Malformed("data is missing or not an object"));
    };
    let d = Fields::of(text, data, ["id", "method", "params"])?;
    let id = id_integer(text, d.get(0))?;
    let name = name_at(text, d.get(1))?;
    Ok(EnvelopeRequest {
        id,
        name,
        device: Some(device),
        params: params_at(text, d.get(2)),
    })
}

/// The content of the string value at `span`, escapes included.
fn string_at(text: &str, span: Option<(usize, usize)>) -> Result<&str, EnvelopeError> {
    match span {
        Some((a, b)) if text.as_bytes()[a] == b'"' => Ok(&text[a + 1..b - 1]),
        Some(_) => Err(Malformed("a key the envelope needs is not a string")),
        None => Err(Malformed("a key the envelope needs is missing")),
    }
}

fn id_string(text: &str, span: Option<(usize, usize)>) -> Result<&str, EnvelopeError> {
    match span {
        Some((a, _)) if text.as_bytes()[a] != b'"' => Err(Malformed("the id is not a string")),
        _ => bounded(string_at(text, span)?, "the id"),
    }
}

fn name_at(text: &str, span: Option<(usize, usize)>) -> Result<&str, EnvelopeError> {
    bounded(string_at(text, span)?, "the name")
}

fn bounded<'a>(s: &'a str, what: &'static str) -> Result<&'a str, EnvelopeError> {
    if s.is_empty() {
        Err(Malformed(if what == "the id" {
            "the id is empty"
        } else {
            "the name is empty"
        }))
    } else if s.len() > MAX_IDENTITY_LEN {
        Err(Malformed(if what == "the id" {
            "the id is longer than 128 bytes"
        } else {
            "the name is longer than 128 bytes"
        }))
    } else {
        Ok(s)
    }
}

/// The decimal digits of the integer id at `span`, if it fits in a `u64`.
fn id_integer(text: &str, span: Option<(usize, usize)>) -> Result<&str, EnvelopeError> {
    let Some((a, b)) = span else {
        return Err(Malformed("the id is missing"));
    };
    let digits = &text[a..b];
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Malformed("the id is not a non-negative integer"));
    }
    if digits.parse::<u64>().is_err() {
        return Err(Malformed("the id does not fit in 64 bits"));
    }
    Ok(digits)
}

fn device_at(text: &str, span: Option<(usize, usize)>) -> Result<Cow<'_, str>, EnvelopeError> {
    let raw = string_at(text, span)?;
    let name = unescape(raw)?;
    if name.is_empty() {
        return Err(Malformed("the device is empty"));
    }
    if name.len() > MAX_IDENTITY_LEN {
        return Err(Malformed("the device is longer than 128 bytes"));
    }
    Ok(name)
}

fn params_at(text: &str, span: Option<(usize, usize)>) -> &[u8] {
    match span {
        Some((a, b)) => &text.as_bytes()[a..b],
        None => b"null",
    }
}

/// The string content `raw` (valid JSON escapes, checked by the scanner) with
/// its escapes resolved; borrowed when it has none.
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, EnvelopeError> {
    if !raw.contains('\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars
            .next()
            .ok_or(Malformed("a string ends in an escape"))?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err(Malformed("a string holds a lone surrogate"));
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(Malformed("a string holds a lone surrogate"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or(Malformed("a string holds a lone surrogate"))?
            }
            _ => return Err(Malformed("a string holds an unknown escape")),
        });
    }
    Ok(Cow::Owned(out))
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, EnvelopeError> {
    let mut v = 0;
    for _ in 0..4 {
        let d = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or(Malformed("a string holds a bad \\u escape"))?;
        v = v * 16 + d;
    }
    Ok(v)
}

/// `s` as the content of a JSON string: `"` and `\` escaped, control
/// characters as `\u00XX`.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => out.push(b),
        }
    }
}

/// Why a reply cannot be wrapped: it is not one JSON value.
pub const REPLY_NOT_JSON: &str =
    "the reply is not valid JSON (an envelope dialect's reply is one JSON value, or empty)";

/// The reply body of `envelope` around the application's `reply` (one JSON
/// value, or empty for `{}`), to the request of id `id` (as
/// [`EnvelopeRequest::id`] gave it) of `device` (gateway envelopes), with
/// `code` (Tencent's `code`: 0 unless set). `Err` names the problem: a reply
/// that is not JSON.
pub fn wrap_reply(
    envelope: Envelope,
    id: &str,
    device: &str,
    code: Option<u16>,
    reply: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let value = json_value(reply).ok_or(REPLY_NOT_JSON)?;
    let value: &[u8] = if value.is_empty() { b"{}" } else { value };
    let mut out = Vec::with_capacity(value.len() + id.len() + device.len() + 96);
    match envelope {
        Envelope::None => return Ok(reply.to_vec()),
        Envelope::TencentAction => {
            out.extend_from_slice(b"{\"method\":\"action_reply\",\"clientToken\":\"");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\",\"code\":");
            out.extend_from_slice(code.unwrap_or(0).to_string().as_bytes());
            out.extend_from_slice(b",\"status\":\"\",\"response\":");
            out.extend_from_slice(value);
            out.push(b'}');
        }
        Envelope::ThingsBoardGateway => {
            out.extend_from_slice(b"{\"device\":\"");
            escape_into(&mut out, device);
            out.extend_from_slice(b"\",\"id\":");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(value);
            out.push(b'}');
        }
    }
    Ok(out)
}

/// `reply` without surrounding whitespace, if it is one JSON value or only
/// whitespace (then empty).
fn json_value(reply: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(reply).ok()?;
    let mut s = Scanner::new(text);
    s.ws();
    if s.pos == text.len() {
        return Some(&[]);
    }
    let (a, b) = s.value(0).ok()?;
    s.ws();
    (s.pos == text.len()).then(|| &reply[a..b])
}

/// Whether `body` is one JSON value (whitespace around it allowed) within the
/// nesting bound.
pub fn is_json(body: &[u8]) -> bool {
    matches!(json_value(body), Some(v) if !v.is_empty())
}

/// The request body of `envelope` for the caller: id `id` (Tencent: a
/// string's content, escaped as JSON wants; ThingsBoard: decimal digits),
/// method or action `name`, sub-device `device` (gateway), `params` (one JSON
/// value; empty for `{}`). `timestamp_s` is Tencent's `timestamp`.
pub fn wrap_request(
    envelope: Envelope,
    id: &str,
    name: &str,
    device: &str,
    timestamp_s: u64,
    params: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let value = json_value(params).ok_or("the params are not valid JSON")?;
    let value: &[u8] = if value.is_empty() { b"{}" } else { value };
    let mut out = Vec::with_capacity(value.len() + id.len() + name.len() + device.len() + 96);
    match envelope {
        Envelope::None => return Ok(params.to_vec()),
        Envelope::TencentAction => {
            out.extend_from_slice(b"{\"method\":\"action\",\"clientToken\":\"");
            escape_into(&mut out, id);
            out.extend_from_slice(b"\",\"actionId\":\"");
            escape_into(&mut out, name);
            out.extend_from_slice(b"\",\"timestamp\":");
            out.extend_from_slice(timestamp_s.to_string().as_bytes());
            out.extend_from_slice(b",\"params\":");
        }
        Envelope::ThingsBoardGateway => {
            if id.parse::<u64>().is_err() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a ThingsBoard gateway id is a non-negative integer");
            }
            out.extend_from_slice(b"{\"device\":\"");
            escape_into(&mut out, device);
            out.extend_from_slice(b"\",\"data\":{\"id\":");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b",\"method\":\"");
            escape_into(&mut out, name);
            out.extend_from_slice(b"\",\"params\":");
        }
    }
    out.extend_from_slice(value);
    out.extend_from_slice(if envelope == Envelope::ThingsBoardGateway {
        b"}}"
    } else {
        b"}"
    });
    Ok(out)
}

/// A reply's envelope taken apart, for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeReply<'a> {
    /// As in [`EnvelopeRequest::id`].
    pub id: &'a str,
    /// The gateway's sub-device, unescaped.
    pub device: Option<Cow<'a, str>>,
    /// Tencent's `code` (0 when absent; `None` for gateway replies).
    pub code: Option<i64>,
    /// The raw JSON text of `response` / `data` (`null` when absent).
    pub payload: &'a [u8],
}

/// Decodes a reply body of `envelope` (the caller's side).
pub fn unwrap_reply(envelope: Envelope, body: &[u8]) -> Result<EnvelopeReply<'_>, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(|_| Malformed("the body is not UTF-8"))?;
    let top = Scanner::new(text).top_object()?;
    match envelope {
        Envelope::None => Err(Malformed("the dialect has no envelope")),
        Envelope::TencentAction => {
            let f = Fields::of(text, top, ["method", "clientToken", "code", "response"])?;
            if string_at(text, f.get(0))? != "action_reply" {
                return Err(Malformed("method is not \"action_reply\""));
            }
            let id = id_string(text, f.get(1))?;
            let code = match f.get(2) {
                None => 0,
                Some((a, b)) => text[a..b]
                    .parse::<i64>()
                    .map_err(|_| Malformed("code is not an integer"))?,
            };
            Ok(EnvelopeReply {
                id,
                device: None,
                code: Some(code),
                payload: params_at(text, f.get(3)),
            })
        }
        Envelope::ThingsBoardGateway => {
            let f = Fields::of(text, top, ["device", "id", "data"])?;
            let device = device_at(text, f.get(0))?;
            let id = id_integer(text, f.get(1))?;
            Ok(EnvelopeReply {
                id,
                device: Some(device),
                code: None,
                payload: params_at(text, f.get(2)),
            })
        }
    }
}

/// A bounded JSON scanner: positions in a text, values as `(start, end)` spans.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            b: text.as_bytes(),
            pos: 0,
        }
    }

    fn at(text: &'a str, pos: usize) -> Self {
        Scanner {
            b: text.as_bytes(),
            pos,
        }
    }

    /// The whole text is one object (whitespace around it allowed): its span.
    fn top_object(&mut self) -> Result<(usize, usize), EnvelopeError> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(Malformed("the body is not a JSON object"));
        }
        let span = self.value(0)?;
        self.ws();
        if self.pos != self.b.len() {
            return Err(Malformed("the body has text after its JSON object"));
        }
        Ok(span)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Walks the members of the (already checked) object starting here,
    /// handing each raw key text and value span to `f`.
    fn members(
        &mut self,
        mut f: impl FnMut(&'a str, (usize, usize)) -> Result<(), EnvelopeError>,
    ) -> Result<(), EnvelopeError> {
        if !self.eat(b'{') {
            return Err(Malformed("not a JSON object"));
        }
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            let (ka, kb) = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return Err(Malformed("the body is not valid JSON"));
            }
            self.ws();
            let v = self.value(1)?;
            let key = std::str::from_utf8(&self.b[ka + 1..kb - 1]).expect("UTF-8 checked");
            f(key, v)?;
            self.ws();
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(Malformed("the body is not valid JSON"));
            }
        }
    }

    /// One value at `depth` (arrays and objects open at most [`MAX_DEPTH`]
    /// levels), checked: its span.
    fn value(&mut self, depth: usize) -> Result<(usize, usize), EnvelopeError> {
        let start = self.pos;
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => {
                return Err(Malformed("the body nests deeper than 32 levels"))
            }
            Some(b'{') => {
                self.pos += 1;
                self.ws();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        self.string()?;
                        self.ws();
                        if !self.eat(b':') {
                            return Err(Malformed("the body is not valid JSON"));
                        }
                        self.ws();
                        self.value(depth + 1)?;
                        self.ws();
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(Malformed("the body is not valid JSON"));
                        }
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                self.ws();
                if !self.eat(b']') {
                    loop {
                        self.ws();
                        self.value(depth + 1)?;
                        self.ws();
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(Malformed("the body is not valid JSON"));
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string()?;
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            _ => return Err(Malformed("the body is not valid JSON")),
        }
        Ok((start, self.pos))
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), EnvelopeError> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed("the body is not valid JSON"))
        }
    }

    /// A string with its quotes: checked escapes, no raw control character.
    fn string(&mut self) -> Result<(usize, usize), EnvelopeError> {
        let start = self.pos;
        if !self.eat(b'"') {
            return Err(Malformed("the body is not valid JSON"));
        }
        loop {
            match self.peek() {
                None => return Err(Malformed("a string is not closed")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start, self.pos));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = self.b.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(Malformed("a string holds a bad \\u escape"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(Malformed("a string holds an unknown escape")),
                    }
                }
                Some(0..=0x1f) => return Err(Malformed("a string holds a control character")),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A number per the JSON grammar.
    fn number(&mut self) -> Result<(), EnvelopeError> {
        let bad = Malformed("a number is not valid JSON");
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(bad),
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad);
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad);
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}

/// The checks the fuzz target runs on one input: decoding never panics; what
/// it accepts has an id, a name and params that are one JSON value; the reply
/// built for it decodes back to the same id and device; the caller's request
/// built from it decodes back too.
#[cfg(any(fuzzing, test))]
pub fn fuzz_check(data: &[u8]) {
    for envelope in [Envelope::TencentAction, Envelope::ThingsBoardGateway] {
        let _ = unwrap_reply(envelope, data);
        let Ok(r) = decode_request(envelope, data) else {
            continue;
        };
        assert!(!r.id.is_empty() && r.id.len() <= MAX_IDENTITY_LEN);
        assert!(!r.name.is_empty() && r.name.len() <= MAX_IDENTITY_LEN);
        assert!(is_json(r.params), "params are one JSON value");
        assert_eq!(r.device.is_some(), envelope.names_device());
        let device = r.device.as_deref().unwrap_or("");
        let body = wrap_reply(envelope, r.id, device, Some(7), r.params).expect("params are JSON");
        assert!(
            decode_request(envelope, &body).is_err(),
            "a reply is never a request"
        );
        let back = unwrap_reply(envelope, &body).expect("a reply built decodes");
        assert_eq!(back.id, r.id);
        assert_eq!(back.device.as_deref(), r.device.as_deref());
        assert_eq!(back.payload, r.params);
        if envelope == Envelope::ThingsBoardGateway {
            let req = wrap_request(
                envelope,
                r.id,
                &unescape(r.name).unwrap_or_default(),
                device,
                0,
                r.params,
            )
            .expect("a request built from a decoded one");
            let again = decode_request(envelope, &req).expect("a request built decodes");
            assert_eq!((again.id, again.device.as_deref()), (r.id, Some(device)));
        }
    }
}

#[cfg(test)]
mod tests;
