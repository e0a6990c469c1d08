//! D: the daemon settings, read once at start-up.

use super::defaults::*;
use super::error::ConfigError;
use super::fields::{FieldError, Fields, object_from_bytes};
use super::log_options::LogOptions;
use super::merge::merge_request_config;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// `perNodeCertificate` (§2.5). Validation (mandatory fields when enabled, `MULTUS_NODE_NAME`)
/// is the daemon's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerNodeCertificate {
    /// `enabled`: authenticate with a per-node client certificate instead of the in-cluster service account.
    pub enabled: bool,
    /// `bootstrapKubeconfig`: kubeconfig used to request the node's certificate (mandatory when enabled).
    pub bootstrap_kubeconfig: String,
    /// `certDir`: directory where the issued certificate and key are kept (mandatory when enabled).
    pub cert_dir: String,
    /// A Go duration string; empty means [`DEFAULT_CERT_DURATION`].
    pub cert_duration: String,
}

impl PerNodeCertificate {
    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self, FieldError> {
        let f = Fields(m);
        let ctx = |e: FieldError| e.within("perNodeCertificate");
        Ok(Self {
            enabled: f.bool("enabled").map_err(ctx)?.unwrap_or(false),
            bootstrap_kubeconfig: f.str_or_empty("bootstrapKubeconfig").map_err(ctx)?,
            cert_dir: f.str_or_empty("certDir").map_err(ctx)?,
            cert_duration: f.str_or_empty("certDuration").map_err(ctx)?,
        })
    }

    /// `certDuration`, defaulting to `10m`.
    pub fn cert_duration_or_default(&self) -> &str {
        if self.cert_duration.is_empty() { DEFAULT_CERT_DURATION } else { &self.cert_duration }
    }
}

/// Daemon/server settings of `daemon-config.json` (the **D** keys of §2.2), plus the raw object.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Non-empty → delegates run chrooted into this directory.
    pub chroot_dir: String,
    /// Server socket directory; default [`DEFAULT_SOCKET_DIR`].
    pub socket_dir: String,
    /// Raw `connectionLimit`; use [`DaemonConfig::connection_limit`] to validate.
    pub connection_limit: Option<i64>,
    /// `metricsPort`: TCP port of the `/metrics` listener; unset → no listener.
    pub metrics_port: Option<u16>,
    /// `enablePprof`: with `metricsPort`, also serve `/debug/pprof/*` there.
    pub enable_pprof: bool,
    /// `perNodeCertificate`: the client-certificate settings, when present.
    pub per_node_certificate: Option<PerNodeCertificate>,
    /// `logFile`: log file path; empty → no file.
    pub log_file: String,
    /// `logLevel`: `debug`, `verbose`, `error` or `panic` (case-insensitive); empty means `panic`.
    pub log_level: String,
    /// Default false at startup (unlike the per-request default).
    pub log_to_stderr: bool,
    /// `logOptions`: rotation of the log file.
    pub log_options: Option<LogOptions>,
    /// `readinessindicatorfile`: a file that must exist before the node is ready (auto mode: waited
    /// for at start-up and watched).
    pub readiness_indicator_file: String,
    /// `auto` (default) or the path of a ready-made config.
    pub multus_config_file: String,
    /// `cniVersion`: written into the generated config and overriding the shim's per request.
    pub cni_version: String,
    /// The whole object as read, overlaid on every request (§2.4).
    pub raw: Map<String, Value>,
}

impl DaemonConfig {
    /// Parses the bytes of `daemon-config.json`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_map(object_from_bytes(bytes).map_err(ConfigError::Daemon)?)
    }

    /// Reads the daemon settings from the config object; wrong types are errors naming the key.
    pub fn from_map(raw: Map<String, Value>) -> Result<Self, ConfigError> {
        let f = Fields(&raw);
        let e = ConfigError::Daemon;
        let metrics_port = match f.int("metricsPort").map_err(e)? {
            None => None,
            Some(p) => Some(
                u16::try_from(p)
                    .map_err(|_| ConfigError::Daemon(FieldError::NotAPort { key: "metricsPort", value: p }))?,
            ),
        };
        let per_node_certificate =
            f.object("perNodeCertificate").map_err(e)?.map(PerNodeCertificate::from_map).transpose().map_err(e)?;
        Ok(Self {
            chroot_dir: f.str_or_empty("chrootDir").map_err(e)?,
            socket_dir: f.str_or("socketDir", DEFAULT_SOCKET_DIR).map_err(e)?,
            connection_limit: f.int("connectionLimit").map_err(e)?,
            metrics_port,
            enable_pprof: f.bool("enablePprof").map_err(e)?.unwrap_or(false),
            per_node_certificate,
            log_file: f.str_or_empty("logFile").map_err(e)?,
            log_level: f.str_or_empty("logLevel").map_err(e)?,
            log_to_stderr: f.bool("logToStderr").map_err(e)?.unwrap_or(false),
            log_options: LogOptions::read(&f, "logOptions").map_err(e)?,
            readiness_indicator_file: f.str_or_empty(READINESS_INDICATOR_KEY).map_err(e)?,
            multus_config_file: f.str_or("multusConfigFile", AUTO_CONFIG).map_err(e)?,
            cni_version: f.str_or_empty("cniVersion").map_err(e)?,
            raw,
        })
    }

    /// `multusConfigFile` is `auto`: the daemon generates `00-multus.conf`, watches the readiness
    /// indicator itself and strips `readinessindicatorfile` from requests.
    pub fn is_auto_mode(&self) -> bool {
        self.multus_config_file == AUTO_CONFIG
    }

    /// The validated connection limit: `None` = unlimited; ≤ 0 is an error.
    pub fn connection_limit(&self) -> Result<Option<usize>, ConfigError> {
        match self.connection_limit {
            None => Ok(None),
            Some(n) if n <= 0 => Err(ConfigError::ConnectionLimit(n)),
            Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    /// `<socketDir>/multus.sock`.
    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.socket_dir)
    }

    /// Overlay this daemon config on a request's config (§2.4).
    pub fn merge_request_config(&self, client: &[u8]) -> Result<Vec<u8>, ConfigError> {
        merge_request_config(client, &self.raw, self.is_auto_mode())
    }
}
