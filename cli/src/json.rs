//! One-line JSON output: objects written field by field, strings escaped.

use std::fmt::Write as _;

use rrpc::encoding::push_json_str;

/// A JSON object written field by field.
pub struct Obj {
    s: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj { s: "{".to_string() }
    }
    pub fn key(&mut self, k: &str) {
        if self.s.len() > 1 {
            self.s.push(',');
        }
        push_json_str(&mut self.s, k);
        self.s.push(':');
    }
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_str(&mut self.s, v);
    }
    pub fn num(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        let _ = write!(self.s, "{v}");
    }
    pub fn null(&mut self, k: &str) {
        self.key(k);
        self.s.push_str("null");
    }
    pub fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.s.push_str(json);
    }
    pub fn finish(mut self) -> String {
        self.s.push('}');
        self.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects() {
        let mut o = Obj::new();
        o.str("a", "x");
        o.num("b", 2);
        o.null("c");
        assert_eq!(o.finish(), r#"{"a":"x","b":2,"c":null}"#);
    }
}
