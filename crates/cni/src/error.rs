//! The CNI error object (spec §"Error"), printed on stdout with a non-zero exit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Well-known error codes. 0–99 are reserved by the spec; 8 and 999 are libcni's own.
pub mod code {
    /// Unknown error; also what libcni reports when a plugin's error output cannot be parsed.
    pub const UNKNOWN: u32 = 0;
    /// The config's `cniVersion` is not one the plugin supports.
    pub const INCOMPATIBLE_CNI_VERSION: u32 = 1;
    /// A field of the config is not supported; `details` names it.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container ID is unknown or malformed.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A `CNI_*` variable is missing or invalid; `details` names it.
    pub const INVALID_ENVIRONMENT_VARIABLES: u32 = 4;
    /// An I/O failure, e.g. reading the config from stdin.
    pub const IO_FAILURE: u32 = 5;
    /// The config could not be decoded.
    pub const DECODING_FAILURE: u32 = 6;
    /// The config is not valid for this plugin.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// libcni only: `CNI_NETNS` is the plugin's own network namespace.
    pub const INVALID_NETNS: u32 = 8;
    /// A transient condition: the runtime may retry the same request later.
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
    /// The error code (see [`code`]).
    pub code: u32,
    /// A short, human-readable message.
    pub msg: String,
    /// More context for humans; omitted from the JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error object without details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    /// An error object with a longer explanation in `details`.
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
