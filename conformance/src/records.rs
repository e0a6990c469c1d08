//! fake-cni's record of its calls (`calls.jsonl`): reading it and matching records.

use serde_json::Value;
use std::path::Path;

/// Every record of fake-cni's `calls.jsonl` under `{{records}}`, oldest first.
pub fn recorded_calls(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `"$present"`, `"$absent"` or an exact value at a JSON pointer.
pub fn pointer_matches(v: &Value, pointer: &str, want: &Value) -> bool {
    let got = v.pointer(pointer);
    match want.as_str() {
        Some("$present") => got.is_some_and(|g| !g.is_null()),
        Some("$absent") => got.is_none_or(Value::is_null),
        _ => got == Some(want),
    }
}

pub fn short_call(c: &Value) -> String {
    let plugin =
        c.pointer("/stdin/x-plugin").and_then(Value::as_str).map(|p| format!(" plugin {p}")).unwrap_or_default();
    format!(
        "{} {} {}{plugin}",
        c["command"].as_str().unwrap_or(""),
        c["name"].as_str().unwrap_or(""),
        c["ifname"].as_str().unwrap_or("")
    )
}
