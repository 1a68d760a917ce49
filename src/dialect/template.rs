//! Topic templates: literal text and placeholders, one table row per dialect,
//! rendered into topics and matched against received ones without allocating.

use std::fmt;

use super::{Dialect, Identity, ParsedTopic};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Lit(&'static str),
    /// Product key / product id: one level, or part of one.
    Pk,
    /// Device name.
    Dn,
    /// Message id / process id.
    Id,
    /// Custom topic: the rest of the topic, starting with `/`.
    Topic,
}

pub(super) struct Template(pub(super) &'static [Part]);

pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) request: Template,
    pub(super) response: Template,
    pub(super) default_timeout_ms: u32,
    /// What a topic in this dialect's namespace that fails to match lacks.
    pub(super) shape_error: &'static str,
}

use Part::*;

pub(super) static SPECS: [Spec; 3] = [
    Spec {
        name: "alibaba",
        request: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/request/"), Id]),
        response: Template(&[Lit("/sys/"), Pk, Lit("/"), Dn, Lit("/rrpc/response/"), Id]),
        default_timeout_ms: 8000,
        shape_error: "expected /sys/{pk}/{dn}/rrpc/request/{messageId}",
    },
    Spec {
        name: "alibaba-custom",
        request: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        response: Template(&[Lit("/ext/rrpc/"), Id, Topic]),
        default_timeout_ms: 8000,
        shape_error: "expected /ext/rrpc/{messageId}/{topic}",
    },
    Spec {
        name: "tencent",
        request: Template(&[Lit("$rrpc/rxd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        response: Template(&[Lit("$rrpc/txd/"), Pk, Lit("/"), Dn, Lit("/"), Id]),
        default_timeout_ms: 4000,
        shape_error: "expected $rrpc/rxd/{productId}/{deviceName}/{processId}",
    },
];

/// Placeholder values found by [`Template::matches`].
#[derive(Default)]
struct Match<'a> {
    pk: Option<&'a str>,
    dn: Option<&'a str>,
    id: &'a str,
    topic: Option<&'a str>,
    id_start: usize,
}

impl<'a> Match<'a> {
    fn into_parsed_inner(self, dialect: Dialect) -> ParsedTopic<'a> {
        ParsedTopic {
            dialect,
            product_key: self.pk,
            device_name: self.dn,
            message_id: self.id,
            custom_topic: self.topic,
            device_prefix: "",
        }
    }
}

impl Template {
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
        for p in &self.0[1..] {
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
        let at = self
            .0
            .iter()
            .position(|p| *p == Id)
            .expect("every template has an id");
        let before = Template(&self.0[..at]).render(d, "");
        let after = Template(&self.0[at + 1..]).render(d, "");
        (before, after)
    }

    pub(super) fn render(&self, d: &Identity<'_>, id: &str) -> String {
        let value = |p: &Part| -> &str {
            match *p {
                Lit(s) => s,
                Pk => d.product_key,
                Dn => d.device_name,
                Id => id,
                Topic => d.custom_topic.unwrap_or(""),
            }
        };
        // One pass, with room for the literals (shorter than 32 bytes in every
        // template) and for a C string's terminator, so that a transport that
        // appends one does not reallocate.
        let vars = d.product_key.len() + d.device_name.len() + id.len();
        let mut s = String::with_capacity(32 + vars + d.custom_topic.map_or(0, str::len));
        for p in self.0 {
            s.push_str(value(p));
        }
        s
    }

    /// Matches `topic` against the template. A placeholder other than `Topic`
    /// takes a non-empty run of characters inside one level: up to the end of the
    /// level when the next literal starts a new level (or nothing follows), else up
    /// to where the next literal begins inside the level. `Topic` takes the rest.
    pub(super) fn matches<'a>(&self, topic: &'a str) -> Option<MatchWithPrefix<'a>> {
        let mut m = Match::default();
        let mut pos = 0usize;
        let parts = self.0;
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
                        _ => unreachable!(),
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
}

pub(super) struct MatchWithPrefix<'a> {
    m: Match<'a>,
    prefix: &'a str,
}

impl<'a> MatchWithPrefix<'a> {
    pub(super) fn into_parsed(self, dialect: Dialect) -> ParsedTopic<'a> {
        let prefix = self.prefix;
        let mut p = self.m.into_parsed_inner(dialect);
        if p.custom_topic.is_none() {
            p.device_prefix = prefix;
        }
        p
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            match p {
                Lit(s) => f.write_str(s)?,
                Pk => f.write_str("{pk}")?,
                Dn => f.write_str("{dn}")?,
                Id => f.write_str("{id}")?,
                Topic => f.write_str("{topic}")?,
            }
        }
        Ok(())
    }
}
