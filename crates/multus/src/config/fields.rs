//! Typed access to a raw JSON object: `null` = absent, wrong types are errors naming the key.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Read typed values out of a JSON object. Errors are plain strings naming the key; callers wrap
/// them into their own error type.
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

/// How an error names a JSON value's type ("a string", "an array", …).
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn wrong_type(key: &str, expected: &str, got: &Value) -> String {
    format!("key {key:?}: expected {expected}, got {}", json_kind(got))
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        #[cfg(test)]
        super::key_audit::record(key);
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong_type(key, "a string", v)),
        }
    }

    /// A string, `""` when absent.
    pub(crate) fn str_or_empty(&self, key: &str) -> Result<String, String> {
        Ok(self.string(key)?.unwrap_or_default())
    }

    /// A string; absent or empty gives `default`.
    pub(crate) fn str_or(&self, key: &str, default: &str) -> Result<String, String> {
        Ok(self.string(key)?.filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(key, "a boolean", v)),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| format!("key {key:?}: expected an integer, got {n}"))
            }
            Some(v) => Err(wrong_type(key, "an integer", v)),
        }
    }

    pub(crate) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(wrong_type(key, "an object", v)),
        }
    }

    pub(crate) fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    // Go decodes a null array element into "".
                    Value::Null => Ok(String::new()),
                    v => Err(wrong_type(&format!("{key}[{i}]"), "a string", v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(wrong_type(key, "an array of strings", v)),
        }
    }

    /// A capabilities map: non-boolean values are ignored (the Go reference fails or panics).
    pub(crate) fn capabilities(&self, key: &str) -> Result<BTreeMap<String, bool>, String> {
        Ok(self
            .object(key)?
            .map(|m| m.iter().filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b))).collect())
            .unwrap_or_default())
    }
}

pub(crate) fn object_from_bytes(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(v) => Err(format!("expected a JSON object, got {}", json_kind(&v))),
        Err(e) => Err(e.to_string()),
    }
}
