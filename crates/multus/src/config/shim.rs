//! The small subset of the stdin config the shim itself reads (§4.8 step 2).

use super::defaults::*;
use super::error::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// What `multus-shim` reads from its stdin config (§4.8 step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimConfig {
    /// `cniVersion` of the shim's config.
    pub cni_version: String,
    /// Default [`DEFAULT_SOCKET_DIR`].
    pub daemon_socket_dir: String,
    /// `logFile`: the shim's log file; empty → none.
    pub log_file: String,
    /// `logLevel` of the shim's log.
    pub log_level: String,
    /// Default false.
    pub log_to_stderr: bool,
}

/// Only the five keys; everything else in the config is skipped without being materialised.
#[derive(Deserialize)]
struct RawShimConfig {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(rename = "daemonSocketDir", default)]
    daemon_socket_dir: Option<String>,
    #[serde(rename = "logFile", default)]
    log_file: Option<String>,
    #[serde(rename = "logLevel", default)]
    log_level: Option<String>,
    #[serde(rename = "logToStderr", default)]
    log_to_stderr: Option<bool>,
}

impl ShimConfig {
    /// Reads the five shim keys from its stdin config; other keys are not materialised.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawShimConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError::Shim(e.to_string()))?;
        Ok(Self {
            cni_version: raw.cni_version.unwrap_or_default(),
            daemon_socket_dir: raw
                .daemon_socket_dir
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_string()),
            log_file: raw.log_file.unwrap_or_default(),
            log_level: raw.log_level.unwrap_or_default(),
            log_to_stderr: raw.log_to_stderr.unwrap_or(false),
        })
    }

    /// `<daemonSocketDir>/multus.sock`.
    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.daemon_socket_dir)
    }
}
