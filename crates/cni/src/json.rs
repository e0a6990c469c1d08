//! JSON as Go writes it: 4-space indentation, and the HTML-safe escaping of `encoding/json`.

use serde::Serialize;

/// Serialise with 4-space indentation, as Go's `json.MarshalIndent(v, "", "    ")` does.
pub fn to_string_pretty4<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_err() {
        return String::from("null");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. None of them can
/// occur outside a string in JSON text, so replacing them in serialised output is exact.
pub fn go_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"a": "<b>&\u{2028}"});
        assert_eq!(go_escape(v.to_string()), r#"{"a":"\u003cb\u003e\u0026\u2028"}"#);
        assert_eq!(to_string_pretty4(&serde_json::json!({"k": 1})), "{\n    \"k\": 1\n}");
    }
}
