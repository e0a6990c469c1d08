//! JSON bytes as Go's `encoding/json` writes them: compact, `<`, `>`, `&`, U+2028 and U+2029
//! escaped, and (for values that went through a Go `map[string]interface{}`) keys sorted.

use serde::Serialize;
use serde_json::{Map, Value};
use std::io;

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Compact bytes with Go's HTML-safe string escaping; key order as given.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    if value.serialize(&mut ser).is_err() {
        return b"null".to_vec();
    }
    out
}

/// The value with every object's keys sorted (Go marshals maps in key order).
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_like_go_and_sorts() {
        let v = json!({"b": "<a&b>\u{2028}", "a": {"z": 1, "y": [{"d": 1, "c": 2}]}});
        assert_eq!(
            String::from_utf8(to_vec(&sorted(&v))).unwrap(),
            r#"{"a":{"y":[{"c":2,"d":1}],"z":1},"b":"\u003ca\u0026b\u003e\u2028"}"#
        );
    }
}
