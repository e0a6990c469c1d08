//! Normalisation before comparing two implementations, so that a diff shows behaviour, not
//! noise: random MACs and veth names, the run's container ids, netns paths and temp dirs, key
//! order, `dns: {}` vs absent, empty lists vs absent, Go-style capitalised keys
//! (`HostPort` → `hostPort`), and error texts reduced to their code.

use regex::Regex;
use serde_json::{Map, Value};
use std::sync::LazyLock;

static MAC: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b").unwrap());
static VETH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bveth[0-9a-f]{8}\b").unwrap());
static RUN_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bcc[0-9]+x[0-9]+[a-z0-9-]*").unwrap());
static TMP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"/tmp/cniconf-[A-Za-z0-9_-]+").unwrap());

/// Literal strings of one run to replace by placeholders (longest first).
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    pairs: Vec<(String, String)>,
}

impl Placeholders {
    pub fn new() -> Self {
        Self::default()
    }
    /// Replace `literal` with `<name>`. Empty literals are ignored.
    pub fn add(&mut self, literal: impl Into<String>, name: &str) {
        let literal = literal.into();
        if literal.is_empty() {
            return;
        }
        self.pairs.push((literal, format!("<{name}>")));
        self.pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }
    pub fn apply(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (lit, ph) in &self.pairs {
            out = out.replace(lit.as_str(), ph);
        }
        out
    }
}

/// Normalise free text (stderr, messages).
pub fn text(s: &str, ph: &Placeholders) -> String {
    let s = ph.apply(s);
    let s = TMP.replace_all(&s, "<tmp>");
    let s = MAC.replace_all(&s, "<mac>");
    let s = VETH.replace_all(&s, "<veth>");
    RUN_ID.replace_all(&s, "<id>").into_owned()
}

/// Go's `encoding/json` matches keys case-insensitively, so containerd sends `HostPort`; fold a
/// leading capital followed by a lower-case letter (`HostPort` → `hostPort`, `CNIDeviceInfoFile`
/// unchanged).
pub fn fold_key(k: &str) -> String {
    let mut chars = k.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => {
            let mut s = a.to_ascii_lowercase().to_string();
            s.push_str(&k[1..]);
            s
        }
        _ => k.to_string(),
    }
}

/// Normalise a JSON value: sorted keys, folded keys, placeholders in strings, MACs/veths
/// masked, empty `dns`, empty lists and nulls dropped.
pub fn value(v: &Value, ph: &Placeholders) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<(String, &Value)> = m.iter().map(|(k, v)| (fold_key(k), v)).collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in keys {
                let nv = value(v, ph);
                let drop = match &nv {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty() && k == "dns",
                    _ => false,
                };
                if !drop {
                    out.insert(k, nv);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| value(x, ph)).collect()),
        Value::String(s) => Value::String(text(s, ph)),
        other => other.clone(),
    }
}

/// Normalise stdout: JSON is normalised as a value (error objects keep only `code`, because
/// messages are implementation prose); anything else as text.
pub fn stdout(s: &str, ph: &Placeholders) -> Value {
    if s.trim().is_empty() {
        return Value::Null;
    }
    match crate::stdout_json::single_json(s) {
        Ok(v) => value(&v, ph),
        Err(_) => Value::String(text(s.trim(), ph)),
    }
}

/// Compact comparable form of an error: `code N`.
pub fn error_key(v: &Value) -> Option<u64> {
    v.get("code").and_then(Value::as_u64)
}

/// A result reduced for "equivalent" comparisons (cni.md §5.26): normalised, with MACs kept
/// (the same plugin run must keep them) but key order and empty sections ignored.
pub fn result_for_compare(v: &Value) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<_> = m.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = Map::new();
                for (k, v) in keys {
                    let nv = strip(v);
                    let drop = nv.is_null()
                        || nv.as_array().is_some_and(Vec::is_empty)
                        || (k == "dns" && nv.as_object().is_some_and(Map::is_empty));
                    if !drop {
                        out.insert(k.clone(), nv);
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn folds_masks_and_sorts() {
        let mut ph = Placeholders::new();
        ph.add("cc123x4-main", "cid");
        ph.add("/run/netns/cc123x4a", "netns");
        let v = json!({
            "interfaces": [{"name": "veth1a2b3c4d", "mac": "AA:bb:cc:dd:ee:ff"}, {"name": "eth0", "sandbox": "/run/netns/cc123x4a"}],
            "dns": {},
            "routes": [],
            "cniVersion": "1.0.0",
            "runtimeConfig": {"portMappings": [{"HostPort": 80, "hostIP": "", "CNIDeviceInfoFile": "x"}]},
            "msg": "container cc123x4-main failed"
        });
        insta::assert_json_snapshot!(value(&v, &ph), @r#"
        {
          "cniVersion": "1.0.0",
          "interfaces": [
            {
              "mac": "<mac>",
              "name": "<veth>"
            },
            {
              "name": "eth0",
              "sandbox": "<netns>"
            }
          ],
          "msg": "container <cid> failed",
          "runtimeConfig": {
            "portMappings": [
              {
                "CNIDeviceInfoFile": "x",
                "hostIP": "",
                "hostPort": 80
              }
            ]
          }
        }
        "#);
    }

    #[test]
    fn dns_absent_equals_empty() {
        let ph = Placeholders::new();
        assert_eq!(value(&json!({"a": 1, "dns": {}}), &ph), value(&json!({"a": 1}), &ph));
        assert_eq!(result_for_compare(&json!({"ips": [], "b": 1})), json!({"b": 1}));
    }

    #[test]
    fn stdout_forms() {
        let ph = Placeholders::new();
        assert_eq!(stdout("", &ph), Value::Null);
        assert_eq!(stdout("garbage 02:00:00:00:00:01", &ph), json!("garbage <mac>"));
        assert_eq!(stdout(r#"{"b":1,"a":2}"#, &ph).to_string(), r#"{"a":2,"b":1}"#);
    }
}
