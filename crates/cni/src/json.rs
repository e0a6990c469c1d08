//! JSON helpers shared by the crate: Go-style 4-space indentation.

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
