//! The CNI error object (spec §"Error"), printed on stdout with a non-zero exit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Well-known error codes. 0–99 are reserved by the spec; 8 and 999 are libcni's own.
pub mod code {
    /// Unknown error; also what libcni reports when a plugin's error output cannot be parsed.
    pub const UNKNOWN: u32 = 0;
    pub const INCOMPATIBLE_CNI_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT_VARIABLES: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// libcni only: `CNI_NETNS` is the plugin's own network namespace.
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests now.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// libcni: any plugin failure that is not a typed CNI error.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error object: `{"code": N, "msg": "...", "details": "..."}`.
///
/// `cniVersion` is accepted when parsing (the spec lists it) but never emitted,
/// matching what the reference plugins print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: details.into() }
    }

    /// Parse an error object as a runtime reads it from a plugin's stdout.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire {
            code: u32,
            #[serde(default)]
            msg: String,
            #[serde(default)]
            details: String,
        }
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        Some(Self { code: wire.code, msg: wire.msg, details: wire.details })
    }

    /// The compact JSON form a plugin prints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"code\":{},\"msg\":\"\"}}", self.code))
    }

    /// The 4-space indented JSON form the Go `skel` prints.
    pub fn to_json_pretty(&self) -> String {
        crate::json::to_string_pretty4(self)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() { write!(f, "{}", self.msg) } else { write!(f, "{}; {}", self.msg, self.details) }
    }
}

impl std::error::Error for CniError {}
