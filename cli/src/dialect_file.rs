//! `--dialect NAME` and `--dialect-file FILE`: the built-in dialects by name,
//! and dialects of the application's own read from a small text file.
//!
//! The file format (docs/caller.md, "Dialect files"):
//!
//! ```text
//! # comments and blank lines are ignored
//! [acme]
//! request = acme/{pk}/{dn}/rpc/{id}
//! response = acme/{pk}/{dn}/rpc/{id}/reply
//! subscribe = acme/{pk}/{dn}/rpc/+        # optional
//! timeout_ms = 5000                        # optional, default 8000
//! ```
//!
//! `[name]` starts a dialect; `request` and `response` are required, the rest
//! optional. Every error names the file, the line and the field.

use std::path::{Path, PathBuf};

use clap::Args;
use rrpc::dialect::{register, DialectConfig};
use rrpc::Dialect;

/// The dialect options `rrpc call` and `rrpc device` share.
#[derive(Args, Debug, Clone)]
pub struct DialectOpts {
    /// Topic conventions: alibaba, alibaba-custom, tencent, alibaba-service,
    /// thingsboard, azure, huawei, aws, or a dialect of a --dialect-file.
    #[arg(long, value_name = "NAME", default_value = "alibaba")]
    pub dialect: String,
    /// Registers the dialects of FILE (see "Dialect files" in docs/caller.md);
    /// repeat for several files. --dialect then names one of them.
    #[arg(long, value_name = "FILE")]
    pub dialect_file: Vec<PathBuf>,
}

impl DialectOpts {
    /// Registers the files' dialects, then finds `--dialect`.
    pub fn resolve(&self) -> Result<Dialect, String> {
        for f in &self.dialect_file {
            load(f)?;
        }
        Dialect::from_name(&self.dialect).ok_or_else(|| {
            let known: Vec<&str> = Dialect::all().map(|d| d.name()).collect();
            format!(
                "--dialect {}: no such dialect (known: {})",
                self.dialect,
                known.join(", ")
            )
        })
    }
}

/// One `[name]` section of a dialect file, with the line of each key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub request: Option<(String, usize)>,
    pub response: Option<(String, usize)>,
    pub subscribe: Option<(String, usize)>,
    pub timeout_ms: Option<(u32, usize)>,
}

impl Section {
    /// The line a registration error of `field` is about.
    fn line_of(&self, field: &str) -> usize {
        let at = |v: &Option<(String, usize)>| v.as_ref().map(|x| x.1);
        match field {
            "request" => at(&self.request),
            "response" => at(&self.response),
            "subscribe" => at(&self.subscribe),
            "default_timeout_ms" => self.timeout_ms.map(|x| x.1),
            _ => None,
        }
        .unwrap_or(self.line)
    }
}

/// The file's name for a key of `DialectConfig`.
fn key_of(field: &str) -> &str {
    match field {
        "default_timeout_ms" => "timeout_ms",
        f => f,
    }
}

/// Parses a dialect file's text; `file` names it in the errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, String> {
    let mut out: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let e = |what: String| format!("{file}:{n}: {what}");
        let line = match raw.find('#') {
            Some(at) => &raw[..at],
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(e(format!(
                    "{line:?} starts a section without its closing ]"
                )));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(e("name: a section needs a dialect name: [name]".into()));
            }
            if let Some(s) = out.iter().find(|s| s.name == name) {
                return Err(e(format!(
                    "name: the dialect {name} is already defined at line {}",
                    s.line
                )));
            }
            out.push(Section {
                name: name.to_string(),
                line: n,
                ..Section::default()
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(e(format!("{line:?} is neither [name] nor key = value")));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(s) = out.last_mut() else {
            return Err(e(format!("{key}: comes before any [name] section")));
        };
        if value.is_empty() {
            return Err(e(format!("{key}: the value is empty")));
        }
        let slot = match key {
            "request" => &mut s.request,
            "response" => &mut s.response,
            "subscribe" => &mut s.subscribe,
            "timeout_ms" => {
                if let Some((_, at)) = s.timeout_ms {
                    return Err(e(format!("timeout_ms: given twice (first at line {at})")));
                }
                let ms = value.parse::<u32>().map_err(|_| {
                    e(format!(
                        "timeout_ms: {value:?} is not a number of milliseconds"
                    ))
                })?;
                s.timeout_ms = Some((ms, n));
                continue;
            }
            k => {
                return Err(e(format!(
                    "{k}: unknown key (request, response, subscribe, timeout_ms)"
                )))
            }
        };
        if let Some((_, at)) = slot {
            return Err(e(format!("{key}: given twice (first at line {at})")));
        }
        *slot = Some((value.to_string(), n));
    }
    for s in &out {
        for (key, v) in [("request", &s.request), ("response", &s.response)] {
            if v.is_none() {
                return Err(format!(
                    "{file}:{}: {key}: the dialect {} has no {key} = ... line",
                    s.line, s.name
                ));
            }
        }
    }
    Ok(out)
}

/// Registers one parsed section; errors name the file, line and field.
pub fn register_section(file: &str, s: &Section) -> Result<Dialect, String> {
    let value = |v: &Option<(String, usize)>| v.as_ref().map(|x| x.0.clone());
    let request = value(&s.request).unwrap_or_default();
    let response = value(&s.response).unwrap_or_default();
    let subscribe = value(&s.subscribe);
    let cfg = DialectConfig {
        name: &s.name,
        subscribe: subscribe.as_deref(),
        request: &request,
        response: &response,
        default_timeout_ms: s
            .timeout_ms
            .map_or(DialectConfig::default().default_timeout_ms, |x| x.0),
    };
    register(&cfg).map_err(|e| {
        format!(
            "{file}:{}: {}: {}",
            s.line_of(e.field),
            key_of(e.field),
            e.message
        )
    })
}

/// Reads, parses and registers the dialects of one file.
pub fn load(path: &Path) -> Result<Vec<Dialect>, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    parse(&file, &text)?
        .iter()
        .map(|s| register_section(&file, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# Acme's devices
[acme-cli-test]
request = acme/{pk}/{dn}/rpc/{id}   # the request
response = acme/{pk}/{dn}/rpc/{id}/reply

subscribe = acme/{pk}/{dn}/rpc/+
timeout_ms = 5000
[acme-cli-test2]
request=acme2/{dn}/{id}/{name}
response=acme2/{dn}/{id}/res/{status}
";

    #[test]
    fn a_good_file_registers_its_dialects() {
        let s = parse("acme.dialect", GOOD).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "acme-cli-test");
        assert_eq!(s[0].line, 2);
        assert_eq!(s[0].request, Some(("acme/{pk}/{dn}/rpc/{id}".into(), 3)));
        assert_eq!(s[0].subscribe.as_ref().map(|x| x.1), Some(6));
        assert_eq!(s[0].timeout_ms, Some((5000, 7)));
        assert_eq!(s[1].timeout_ms, None);
        let d = register_section("acme.dialect", &s[0]).unwrap();
        assert_eq!(d.name(), "acme-cli-test");
        assert_eq!(d.default_timeout_ms(), 5000);
        let d2 = register_section("acme.dialect", &s[1]).unwrap();
        assert!(d2.has_name() && d2.has_status());
        // The same file again is the same dialects.
        assert_eq!(register_section("acme.dialect", &s[0]).unwrap(), d);
    }

    fn parse_err(text: &str) -> String {
        parse("acme.dialect", text).unwrap_err()
    }

    #[test]
    fn each_parse_error_names_the_file_the_line_and_the_field() {
        assert_eq!(
            parse_err("request = a/{id}\n"),
            "acme.dialect:1: request: comes before any [name] section"
        );
        assert!(parse_err("[x\n").starts_with("acme.dialect:1: \"[x\" starts a section"));
        assert!(parse_err("[]\n").starts_with("acme.dialect:1: name: "));
        assert!(parse_err("[a]\nrequest=a/{id}\nresponse=b/{id}\n[a]\n")
            .starts_with("acme.dialect:4: name: the dialect a is already defined at line 1"));
        assert!(
            parse_err("[a]\njust text\n").starts_with("acme.dialect:2: \"just text\" is neither")
        );
        assert!(parse_err("[a]\ncolour = red\n").starts_with("acme.dialect:2: colour: unknown key"));
        assert!(parse_err("[a]\nrequest =\n")
            .starts_with("acme.dialect:2: request: the value is empty"));
        assert!(parse_err("[a]\nrequest = a/{id}\nrequest = b/{id}\n")
            .starts_with("acme.dialect:3: request: given twice (first at line 2)"));
        assert!(parse_err("[a]\ntimeout_ms = soon\n")
            .starts_with("acme.dialect:2: timeout_ms: \"soon\" is not a number"));
        assert_eq!(
            parse_err("\n[a]\nrequest = a/{id}\n"),
            "acme.dialect:2: response: the dialect a has no response = ... line"
        );
        assert_eq!(
            parse_err("[a]\nresponse = a/{id}\n"),
            "acme.dialect:1: request: the dialect a has no request = ... line"
        );
    }

    fn register_err(text: &str) -> String {
        let s = parse("acme.dialect", text).unwrap();
        register_section("acme.dialect", &s[0]).unwrap_err()
    }

    #[test]
    fn each_registration_error_names_the_file_the_line_and_the_field() {
        let e = register_err("[acme-bad1]\n\nresponse = y/{id}\nrequest = x/{idd}\n");
        assert!(
            e.starts_with("acme.dialect:4: request: ") && e.contains("{idd}"),
            "{e}"
        );
        let e = register_err("[acme-bad2]\nrequest = x2/{dn}/{id}\nresponse = y2/{dn}\n");
        assert!(e.starts_with("acme.dialect:3: response: "), "{e}");
        let e = register_err(
            "[acme-bad3]\nrequest = x3/{dn}/{id}\nresponse = y3/{dn}/{id}\nsubscribe = z3/#\n",
        );
        assert!(e.starts_with("acme.dialect:4: subscribe: "), "{e}");
        let e = register_err(
            "[acme-bad4]\nrequest = x4/{dn}/{id}\nresponse = y4/{dn}/{id}\ntimeout_ms = 0\n",
        );
        assert!(e.starts_with("acme.dialect:4: timeout_ms: "), "{e}");
        let e = register_err("[tencent]\nrequest = x5/{dn}/{id}\nresponse = y5/{dn}/{id}\n");
        assert!(e.starts_with("acme.dialect:1: name: "), "{e}");
        let e = register_err("[Bad Name]\nrequest = x6/{dn}/{id}\nresponse = y6/{dn}/{id}\n");
        assert!(e.starts_with("acme.dialect:1: name: "), "{e}");
    }
}
