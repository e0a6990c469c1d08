//! Typed access to a raw JSON object: `null` = absent, wrong types are errors naming the key.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why a value of a JSON object is refused; the texts name the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The value has another JSON type.
    #[error("key {key:?}: expected {expected}, got {got}")]
    WrongType {
        /// The key (`key[i]` for an array element).
        key: String,
        /// The type wanted.
        expected: &'static str,
        /// The type found.
        got: &'static str,
    },
    /// A number that is not an integer (or too large).
    #[error("key {key:?}: expected an integer, got {number}")]
    NotAnInteger {
        /// The key.
        key: String,
        /// The number found.
        number: String,
    },
    /// An integer that is not a TCP port.
    #[error("key {key:?}: {value} is not a TCP port")]
    NotAPort {
        /// The key.
        key: &'static str,
        /// The integer found.
        value: i64,
    },
    /// A value of a nested object.
    #[error("{section}: {cause}")]
    In {
        /// The key of the nested object.
        section: &'static str,
        /// What is wrong inside it.
        cause: Box<FieldError>,
    },
    /// The bytes are JSON, but not an object.
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The bytes are not JSON.
    #[error("{0}")]
    Json(String),
}

impl FieldError {
    /// This error, found inside the object at `section`.
    pub(crate) fn within(self, section: &'static str) -> Self {
        Self::In { section, cause: Box::new(self) }
    }
}

/// Read typed values out of a JSON object. Errors name the key; callers wrap them into their
/// own error type.
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

pub(crate) fn wrong_type(key: &str, expected: &'static str, got: &Value) -> FieldError {
    FieldError::WrongType { key: key.to_string(), expected, got: json_kind(got) }
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        #[cfg(test)]
        super::key_audit::record(key);
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong_type(key, "a string", v)),
        }
    }

    /// A string, `""` when absent.
    pub(crate) fn str_or_empty(&self, key: &str) -> Result<String, FieldError> {
        Ok(self.string(key)?.unwrap_or_default())
    }

    /// A string; absent or empty gives `default`.
    pub(crate) fn str_or(&self, key: &str, default: &str) -> Result<String, FieldError> {
        Ok(self.string(key)?.filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(key, "a boolean", v)),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| FieldError::NotAnInteger { key: key.to_string(), number: n.to_string() }),
            Some(v) => Err(wrong_type(key, "an integer", v)),
        }
    }

    pub(crate) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(wrong_type(key, "an object", v)),
        }
    }

    pub(crate) fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, FieldError> {
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
    pub(crate) fn capabilities(&self, key: &str) -> Result<BTreeMap<String, bool>, FieldError> {
        Ok(self
            .object(key)?
            .map(|m| m.iter().filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b))).collect())
            .unwrap_or_default())
    }
}

pub(crate) fn object_from_bytes(bytes: &[u8]) -> Result<Map<String, Value>, FieldError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(v) => Err(FieldError::NotAnObject(json_kind(&v))),
        Err(e) => Err(FieldError::Json(e.to_string())),
    }
}
