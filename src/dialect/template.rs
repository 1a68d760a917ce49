//! Topic templates: literal text and placeholders, parsed from their text form
//! (`/sys/{pk}/{dn}/rrpc/request/{id}`), rendered into topics and matched
//! against received ones without allocating.

use std::fmt;

use super::{Identity, ParsedTopic};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Lit(&'static str),
    /// Product key / product id: one level, or part of one.
    Pk,
    /// Device name (device id, thing name).
    Dn,
    /// Message id / process id / request id.
    Id,
    /// Method, service or command name.
    Name,
    /// A request's payload format, echoed in the reply (AWS IoT commands).
    Format,
    /// The reply's status code (replies only).
    Status,
    /// Custom topic: the rest of the topic, starting with `/` (built-in
    /// custom-topic dialects only).
    Topic,
}

use Part::*;

/// The placeholders a template may hold, by their text form.
pub(super) const PLACEHOLDERS: [(&str, Part); 7] = [
    ("pk", Pk),
    ("dn", Dn),
    ("id", Id),
    ("name", Name),
    ("format", Format),
    ("status", Status),
    ("topic", Topic),
];

#[derive(Clone, Copy)]
pub(super) struct Template(pub(super) &'static [Part]);

/// The values a template is rendered with, besides the device's identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    /// The message id (the whole message-id level).
    pub id: &'a str,
    /// The method, service or command name, for dialects that carry one.
    pub name: Option<&'a str>,
    /// The request's payload format, for dialects that echo one.
    pub format: Option<&'a str>,
    /// The reply's status, for dialects that carry one.
    pub status: Option<u16>,
}

impl<'a> Vars<'a> {
    /// Only a message id.
    pub fn id(id: &'a str) -> Vars<'a> {
        Vars {
            id,
            ..Vars::default()
        }
    }
}

/// Placeholder values found by [`Template::matches`].
#[derive(Default)]
struct Match<'a> {
    pk: Option<&'a str>,
    dn: Option<&'a str>,
    id: &'a str,
    name: Option<&'a str>,
    format: Option<&'a str>,
    status: Option<&'a str>,
    topic: Option<&'a str>,
    id_start: usize,
}

/// Why a template's text was refused (see [`Template::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TemplateError {
    Empty,
    Unclosed(usize),
    Unopened,
    Unknown(String),
    Twice(&'static str),
    Adjacent,
    Wildcard,
    Forbidden(&'static str),
    TooLong,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => f.write_str("is empty"),
            TemplateError::Unclosed(at) => write!(f, "has a '{{' at byte {at} that is not closed"),
            TemplateError::Unopened => f.write_str("has a '}' without a '{'"),
            TemplateError::Unknown(p) => write!(
                f,
                "has the unknown placeholder {{{p}}} (known: {{pk}} {{dn}} {{id}} {{name}} {{format}} {{status}})"
            ),
            TemplateError::Twice(p) => write!(f, "holds {{{p}}} twice"),
            TemplateError::Adjacent => f.write_str(
                "has two placeholders with nothing between them (where one ends is ambiguous)",
            ),
            TemplateError::Wildcard => {
                f.write_str("contains an MQTT wildcard ('+' or '#'), which only a subscribe filter may hold")
            }
            TemplateError::Forbidden(what) => write!(f, "contains {what}"),
            TemplateError::TooLong => f.write_str("is longer than 512 bytes"),
        }
    }
}

/// Longest template text accepted.
pub(super) const MAX_TEMPLATE_LEN: usize = 512;

/// `{name}` of a placeholder.
pub(super) fn placeholder_text(p: Part) -> String {
    format!("{{{}}}", name_of(p))
}

fn name_of(p: Part) -> &'static str {
    PLACEHOLDERS
        .iter()
        .find(|(_, q)| *q == p)
        .map_or("", |(n, _)| n)
}

impl Template {
    /// Parses a template's text: literal text with placeholders in braces. With
    /// `filter`, `+` and `#` are literal (a subscribe filter); otherwise they are
    /// refused. Placeholders are not checked against what the template is for
    /// (the dialect's validation does that); the parts are leaked: dialects live
    /// as long as the process.
    pub(super) fn parse(text: &str, filter: bool) -> Result<Template, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong);
        }
        if let Some(b) = text.bytes().find(|&b| b < 0x20 || b == 0x7f) {
            return Err(TemplateError::Forbidden(if b == 0 {
                "a NUL byte"
            } else {
                "a control character"
            }));
        }
        if !filter && text.contains(['+', '#']) {
            return Err(TemplateError::Wildcard);
        }
        // Literals stay owned until the whole text has parsed: a refused
        // template leaves nothing behind.
        let mut parts: Vec<Part> = Vec::new();
        let mut lits: Vec<String> = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let close = rest.find('}').ok_or(TemplateError::Unclosed(at))?;
                    let name = &rest[1..close];
                    let p = PLACEHOLDERS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, p)| *p)
                        .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
                    if parts.contains(&p) {
                        return Err(TemplateError::Twice(name_of(p)));
                    }
                    // A custom topic starts with '/': it ends the level before it.
                    if p != Topic && matches!(parts.last(), Some(q) if !matches!(q, Lit(_))) {
                        return Err(TemplateError::Adjacent);
                    }
                    parts.push(p);
                    rest = &rest[close + 1..];
                    at += close + 1;
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let lit = &rest[..end];
                    if lit.contains('}') {
                        return Err(TemplateError::Unopened);
                    }
                    // A stand-in, replaced by the leaked literal below.
                    parts.push(Lit(""));
                    lits.push(lit.to_string());
                    rest = &rest[end..];
                    at += end;
                }
            }
        }
        let mut lits = lits.into_iter();
        for p in &mut parts {
            if let Lit(_) = p {
                let lit = lits.next().expect("one literal per stand-in");
                *p = Lit(Box::leak(lit.into_boxed_str()));
            }
        }
        Ok(Template(Box::leak(parts.into_boxed_slice())))
    }

    /// Frees a template made by [`Template::parse`].
    ///
    /// # Safety
    ///
    /// `self` came from [`Template::parse`] (each literal and the list of
    /// parts are leaked boxes) and nothing refers to it any more.
    pub(super) unsafe fn free(self) {
        for p in self.0 {
            if let Lit(s) = p {
                drop(Box::from_raw(*s as *const str as *mut str));
            }
        }
        drop(Box::from_raw(self.0 as *const [Part] as *mut [Part]));
    }

    pub(super) fn lead(&self) -> &'static str {
        match self.0.first() {
            Some(Lit(s)) => s,
            _ => "",
        }
    }

    /// Whether `topic` claims to be of this template: it starts with the first
    /// literal and holds every further literal longer than a separator, in order.
    /// `/sys/pk/dn/thing/event` is not an RRPC topic at all; `/sys/pk/rrpc/request/1`
    /// is one with a level missing.
    pub(super) fn in_namespace(&self, topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix(self.lead()) else {
            return false;
        };
        let mut rest = rest;
        for p in self.0.iter().skip(1) {
            if let Lit(s) = p {
                if s.len() > 1 {
                    match rest.find(s) {
                        Some(at) => rest = &rest[at + s.len()..],
                        None => return false,
                    }
                }
            }
        }
        true
    }

    pub(super) fn has(&self, p: Part) -> bool {
        self.0.contains(&p)
    }

    pub(super) fn split_at_id(&self, d: &Identity<'_>) -> (String, String) {
        // Envelope dialects' templates carry no id: all of it comes first.
        let at = self.0.iter().position(|p| *p == Id).unwrap_or(self.0.len());
        if at == self.0.len() {
            return (self.render(d, &Vars::default()), String::new());
        }
        let before = Template(&self.0[..at]).render(d, &Vars::default());
        let after = Template(&self.0[at + 1..]).render(d, &Vars::default());
        (before, after)
    }

    pub(super) fn render(&self, d: &Identity<'_>, v: &Vars<'_>) -> String {
        let mut status = [0u8; 5];
        let status = v.status.map(|s| fmt_u16(s, &mut status));
        let value = |p: &Part| -> &str {
            match *p {
                Lit(s) => s,
                Pk => d.product_key,
                Dn => d.device_name,
                Id => v.id,
                Name => v.name.unwrap_or(""),
                Format => v.format.unwrap_or(""),
                Status => status.unwrap_or("200"),
                Topic => d.custom_topic.unwrap_or(""),
            }
        };
        // Sized first, with room for a C string's terminator, so that a
        // transport that appends one does not reallocate.
        let len: usize = self.0.iter().map(|p| value(p).len()).sum();
        let mut s = String::with_capacity(len + 1);
        for p in self.0 {
            s.push_str(value(p));
        }
        s
    }

    /// The template with `+` for every level that holds a placeholder other
    /// than the device's (product key, device name) and `#` for a custom
    /// topic's place: the filter that receives every topic of the template
    /// for the device `d` (`+` for both names: of every device).
    pub(super) fn wildcard(&self, d: &Identity<'_>) -> String {
        let mut out = String::new();
        let mut level = String::new();
        let mut wild = false;
        let flush = |out: &mut String, level: &mut String, wild: &mut bool| {
            out.push_str(if *wild { "+" } else { level });
            level.clear();
            *wild = false;
        };
        for p in self.0 {
            match *p {
                Lit(s) => {
                    let mut pieces = s.split('/');
                    if let Some(first) = pieces.next() {
                        level.push_str(first);
                    }
                    for piece in pieces {
                        flush(&mut out, &mut level, &mut wild);
                        out.push('/');
                        level.push_str(piece);
                    }
                }
                Pk => level.push_str(d.product_key),
                Dn => level.push_str(d.device_name),
                // A custom topic starts with '/': it ends the level before it,
                // and its own levels are literal.
                Topic => {
                    flush(&mut out, &mut level, &mut wild);
                    match d.custom_topic {
                        Some(t) => out.push_str(t),
                        None => {
                            out.push_str("/#");
                            return out;
                        }
                    }
                }
                Id | Name | Format | Status => wild = true,
            }
        }
        flush(&mut out, &mut level, &mut wild);
        out
    }

    /// Matches `topic` against the template. A placeholder other than `Topic`
    /// takes a non-empty run of characters inside one level: up to the end of the
    /// level when the next literal starts a new level (or nothing follows), else up
    /// to where the next literal begins inside the level. `Topic` takes the rest.
    pub(super) fn matches<'a>(&self, topic: &'a str) -> Option<MatchWithPrefix<'a>> {
        match_parts(self.0, topic)
    }

    /// The template split into topic levels, each a list of parts (literals
    /// without `/`).
    pub(super) fn levels(&self) -> Vec<Vec<Part>> {
        let mut levels = vec![Vec::new()];
        for p in self.0 {
            match *p {
                Lit(s) => {
                    let mut pieces = s.split('/');
                    if let Some(first) = pieces.next().filter(|f| !f.is_empty()) {
                        levels.last_mut().expect("one level").push(Lit(first));
                    }
                    for piece in pieces {
                        levels.push(Vec::new());
                        if !piece.is_empty() {
                            levels.last_mut().expect("one level").push(Lit(piece));
                        }
                    }
                }
                p => levels.last_mut().expect("one level").push(p),
            }
        }
        levels
    }
}

/// [`Template::matches`] for any list of parts.
pub(super) fn match_parts<'a>(parts: &[Part], topic: &'a str) -> Option<MatchWithPrefix<'a>> {
    let mut m = Match::default();
    let mut pos = 0usize;
    for (i, part) in parts.iter().enumerate() {
        let rest = &topic[pos..];
        match *part {
            Lit(s) => {
                if !rest.starts_with(s) {
                    return None;
                }
                pos += s.len();
            }
            Topic => {
                m.topic = Some(rest);
                pos = topic.len();
            }
            p => {
                let level_end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
                let end = match parts.get(i + 1) {
                    Some(Lit(next)) if next.starts_with('/') => level_end,
                    Some(Lit(next)) => rest[..level_end].find(next)?,
                    Some(Topic) => level_end,
                    Some(_) => return None, // two placeholders in a row are ambiguous
                    None if level_end == rest.len() => level_end,
                    None => return None, // extra levels
                };
                if end == 0 {
                    return None;
                }
                let v = &rest[..end];
                match p {
                    Pk => m.pk = Some(v),
                    Dn => m.dn = Some(v),
                    Id => {
                        m.id = v;
                        m.id_start = pos;
                    }
                    Name => m.name = Some(v),
                    Format => m.format = Some(v),
                    Status => m.status = Some(v),
                    Lit(_) | Topic => unreachable!(),
                }
                pos += end;
            }
        }
    }
    if pos != topic.len() {
        return None;
    }
    let prefix = &topic[..m.id_start];
    Some(MatchWithPrefix { m, prefix })
}

/// `v` in decimal, in `buf`.
fn fmt_u16(mut v: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits")
}

pub(super) struct MatchWithPrefix<'a> {
    m: Match<'a>,
    prefix: &'a str,
}

impl<'a> MatchWithPrefix<'a> {
    pub(super) fn into_parsed(self, dialect: super::Dialect) -> ParsedTopic<'a> {
        let m = self.m;
        ParsedTopic {
            dialect,
            product_key: m.pk,
            device_name: m.dn,
            message_id: m.id,
            name: m.name,
            format: m.format,
            status: m.status,
            device_prefix: if m.topic.is_none() { self.prefix } else { "" },
            custom_topic: m.topic,
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            match p {
                Lit(s) => f.write_str(s)?,
                p => write!(f, "{{{}}}", name_of(*p))?,
            }
        }
        Ok(())
    }
}
