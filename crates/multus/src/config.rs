//! `daemon-config.json` and the per-request Multus configuration (spec §2).
//!
//! The daemon config file is consumed three ways (§2.2):
//!
//! - [`DaemonConfig`] — daemon/server settings (**D** keys), read once at startup; it also keeps
//!   the whole raw object for the request merge.
//! - [`crate::generate::GeneratorConfig`] — the config-generator settings (**G** keys).
//! - [`merge_request_config`] + [`NetConf`] — on every request the raw daemon object is
//!   shallow-merged over the shim's stdin config (§2.4) and the result is parsed as the Multus
//!   network configuration (**R** keys).
//!
//! [`ShimConfig`] is the small subset of the stdin config the shim itself reads (§4.8 step 2).
//!
//! Differences from the Go reference, all deliberate:
//!
//! - Odd JSON never panics: non-boolean `capabilities` values are ignored, a delegate with an
//!   empty `plugins` list is an error instead of an index panic, a `null` client config is an
//!   error instead of a nil-map panic.
//! - Wrong value types are errors naming the key (Go: `json: cannot unmarshal …`); `null` means
//!   "absent" as in Go.
//! - The merged request config keeps the client's key order (replaced keys stay in place, new
//!   daemon keys are appended) and numbers are kept exactly; Go re-serialises a
//!   `map[string]interface{}` (alphabetical keys, numbers through `float64`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default path of the daemon config file (`-config` flag default).
pub const DEFAULT_DAEMON_CONFIG_PATH: &str = "/etc/cni/net.d/multus.d/daemon-config.json";
/// Default server socket directory (`socketDir`, and the shim's `daemonSocketDir`).
pub const DEFAULT_SOCKET_DIR: &str = "/run/multus/";
/// File name of the server socket inside the socket directory.
pub const SOCKET_FILE_NAME: &str = "multus.sock";
/// `multusConfigFile` value selecting config generation.
pub const AUTO_CONFIG: &str = "auto";
/// Per-request defaults (§2.4).
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// Per-request default of `confDir`: on-disk CNI configs for NADs with an empty spec and for networks named by file.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// Per-request default of `cniDir`: the delegate cache and libcni result cache.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// Per-request default of `multusNamespace`.
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
/// The namespace `globalNamespaces` stands for when it is empty.
pub const DEFAULT_NON_ISOLATED_NAMESPACE: &str = "default";
/// Per-request default of `systemNamespaces` (its only entry).
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kube-system";
/// `perNodeCertificate.certDuration` default.
pub const DEFAULT_CERT_DURATION: &str = "10m";
/// The key stripped from requests in auto mode.
pub const READINESS_INDICATOR_KEY: &str = "readinessindicatorfile";

/// Why a daemon, shim or request configuration was rejected; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The daemon config file is not a JSON object or has a key of the wrong type.
    #[error("failed to unmarshall the daemon configuration: {0}")]
    Daemon(String),
    /// `connectionLimit` ≤ 0 (a server start-up error in the reference).
    #[error("connectionLimit must be greater than 0, got {0}")]
    ConnectionLimit(i64),
    /// The shim's stdin config could not be parsed as a JSON object (§2.4).
    #[error("failed to unmarshall CNI config: {0}")]
    ClientConfig(String),
    /// The daemon config bytes given to [`merge_request_config_bytes`] are not a JSON object.
    #[error("failed to unmarshall CNI override config: {0}")]
    OverrideConfig(String),
    /// The effective request config is not valid Multus configuration.
    #[error("LoadNetConf: failed to load netconf: {0}")]
    NetConf(String),
    /// `prevResult` is not a valid result of the config's `cniVersion`.
    #[error("LoadNetConf: could not parse prevResult: {0}")]
    PrevResult(String),
    /// Neither `clusterNetwork` nor a non-empty `delegates` list is given.
    #[error("LoadNetConf: at least one delegate/clusterNetwork must be specified")]
    NoDelegates,
    /// Entry `index` of `delegates` is not a valid CNI config.
    #[error("LoadNetConf: failed to load delegate {index} config: {reason}")]
    Delegate {
        /// Position in `delegates`.
        index: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// The shim's stdin config.
    #[error("invalid multus-shim configuration: {0}")]
    Shim(String),
}

// ---------------------------------------------------------------------------------------------
// Typed access to a raw JSON object: `null` = absent, wrong types are errors naming the key.

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

fn wrong_type(key: &str, expected: &str, got: &Value) -> String {
    format!("key {key:?}: expected {expected}, got {}", json_kind(got))
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        #[cfg(test)]
        key_audit::record(key);
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

    pub(crate) fn log_options(&self, key: &str) -> Result<Option<LogOptions>, String> {
        self.object(key)?.map(LogOptions::from_map).transpose()
    }
}

/// Test-only: which keys a parser asked [`Fields`] for, so the `*_KEYS` lists below are checked
/// against the parsers themselves.
#[cfg(test)]
pub(crate) mod key_audit;

// ---------------------------------------------------------------------------------------------
// The keys each parser reads (for reference documentation and `multusctl`; a unit test checks
// every list against its parser).

/// Top-level keys [`DaemonConfig::from_map`] reads (the **D** view).
pub const DAEMON_CONFIG_KEYS: &[&str] = &[
    "chrootDir",
    "cniVersion",
    "connectionLimit",
    "enablePprof",
    "logFile",
    "logLevel",
    "logOptions",
    "logToStderr",
    "metricsPort",
    "multusConfigFile",
    "perNodeCertificate",
    READINESS_INDICATOR_KEY,
    "socketDir",
];

/// Keys [`NetConf::from_map`] reads from the effective request config (the **R** view).
pub const NETCONF_KEYS: &[&str] = &[
    "auxiliaryCNIChainName",
    "binDir",
    "capabilities",
    "clusterNetwork",
    "cniDir",
    "cniVersion",
    "confDir",
    "daemonSocketDir",
    "defaultNetworks",
    "delegates",
    "globalNamespaces",
    "kubeconfig",
    "logFile",
    "logLevel",
    "logOptions",
    "logToStderr",
    "multusNamespace",
    "name",
    "namespaceIsolation",
    "prevResult",
    READINESS_INDICATOR_KEY,
    "retryDeleteOnError",
    "runtimeConfig",
    "systemNamespaces",
    "type",
];

/// Keys of the `logOptions` object.
pub const LOG_OPTIONS_KEYS: &[&str] = &["compress", "maxAge", "maxBackups", "maxSize"];

/// Keys of the `perNodeCertificate` object.
pub const PER_NODE_CERTIFICATE_KEYS: &[&str] = &["bootstrapKubeconfig", "certDir", "certDuration", "enabled"];

fn object_from_bytes(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(v) => Err(format!("expected a JSON object, got {}", json_kind(&v))),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared value types

/// Log rotation settings (`logOptions`). Unset fields keep the logger's defaults
/// (see [`LogOptions::effective`]). Serialises like Go's struct of pointers: set fields only,
/// in the order `maxAge`, `maxSize`, `maxBackups`, `compress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// `maxAge`: days a rotated log file is kept.
    #[serde(rename = "maxAge", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `maxSize`: megabytes a log file may grow to before it is rotated.
    #[serde(rename = "maxSize", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    /// `maxBackups`: how many rotated files are kept.
    #[serde(rename = "maxBackups", default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i64>,
    /// `compress`: gzip rotated files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
}

/// [`LogOptions`] with the logger defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLogOptions {
    /// Days.
    pub max_age: i64,
    /// Megabytes.
    pub max_size: i64,
    /// Rotated files kept.
    pub max_backups: i64,
    /// Whether rotated files are gzipped.
    pub compress: bool,
}

impl LogOptions {
    fn from_map(m: &Map<String, Value>) -> Result<Self, String> {
        let f = Fields(m);
        let ctx = |e: String| format!("logOptions: {e}");
        Ok(Self {
            max_age: f.int("maxAge").map_err(ctx)?,
            max_size: f.int("maxSize").map_err(ctx)?,
            max_backups: f.int("maxBackups").map_err(ctx)?,
            compress: f.bool("compress").map_err(ctx)?,
        })
    }

    /// Unset fields take the reference logger's defaults: 5 days, 100 MB, 5 backups, compress.
    pub fn effective(&self) -> EffectiveLogOptions {
        EffectiveLogOptions {
            max_age: self.max_age.unwrap_or(5),
            max_size: self.max_size.unwrap_or(100),
            max_backups: self.max_backups.unwrap_or(5),
            compress: self.compress.unwrap_or(true),
        }
    }
}

/// The path of the server socket in `dir` (`<dir>/multus.sock`).
pub fn socket_path(dir: &str) -> PathBuf {
    PathBuf::from(dir).join(SOCKET_FILE_NAME)
}

// ---------------------------------------------------------------------------------------------
// D: daemon settings

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
    fn from_map(m: &Map<String, Value>) -> Result<Self, String> {
        let f = Fields(m);
        let ctx = |e: String| format!("perNodeCertificate: {e}");
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
                    .map_err(|_| ConfigError::Daemon(format!("key \"metricsPort\": {p} is not a TCP port")))?,
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
            log_options: f.log_options("logOptions").map_err(e)?,
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

// ---------------------------------------------------------------------------------------------
// R: the merge

/// The effective per-request config (§2.4): every top-level key of the daemon config replaces
/// the client's (shallow). With `ignore_readiness` (auto mode) `readinessindicatorfile` is
/// deleted from the client and not copied from the daemon. An empty daemon config outside auto
/// mode returns the client bytes verbatim.
pub fn merge_request_config(
    client: &[u8],
    daemon_raw: &Map<String, Value>,
    ignore_readiness: bool,
) -> Result<Vec<u8>, ConfigError> {
    if daemon_raw.is_empty() && !ignore_readiness {
        return Ok(client.to_vec());
    }
    let mut cni = object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
    if ignore_readiness {
        cni.shift_remove(READINESS_INDICATOR_KEY);
    }
    for (key, value) in daemon_raw {
        if ignore_readiness && key == READINESS_INDICATOR_KEY {
            continue;
        }
        cni.insert(key.clone(), value.clone());
    }
    serde_json::to_vec(&cni).map_err(|e| ConfigError::ClientConfig(e.to_string()))
}

/// [`merge_request_config`] with the daemon config as bytes, exactly like the reference: empty
/// daemon bytes return the client bytes verbatim; unparsable daemon bytes are
/// "failed to unmarshall CNI override config: …".
pub fn merge_request_config_bytes(
    client: &[u8],
    daemon: &[u8],
    ignore_readiness: bool,
) -> Result<Vec<u8>, ConfigError> {
    if daemon.is_empty() {
        return Ok(client.to_vec());
    }
    // The client config is parsed first, as in the reference.
    object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
    let daemon_raw = object_from_bytes(daemon).map_err(ConfigError::OverrideConfig)?;
    if daemon_raw.is_empty() {
        // Go re-serialises the client even for `{}`; keep the observable result (a parsed and
        // re-serialised client) for that case.
        let mut cni = object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
        if ignore_readiness {
            cni.shift_remove(READINESS_INDICATOR_KEY);
        }
        return serde_json::to_vec(&cni).map_err(|e| ConfigError::ClientConfig(e.to_string()));
    }
    merge_request_config(client, &daemon_raw, ignore_readiness)
}

// ---------------------------------------------------------------------------------------------
// R: the Multus network configuration

/// The effective Multus configuration of one request (§2.2 R keys, §2.4 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion` of the request (the daemon config's, when it sets one).
    pub cni_version: String,
    /// `name` of the Multus network.
    pub name: String,
    /// `type` (normally `multus-shim`).
    pub plugin_type: String,
    /// `clusterNetwork`: the pod's primary network, as a NAD name, a config name in `confDir` or a
    /// file path; empty → the static `delegates` are used.
    pub cluster_network: String,
    /// `defaultNetworks`: extra networks attached to every pod outside `systemNamespaces`.
    pub default_networks: Vec<String>,
    /// Static delegates (raw objects; the first one is the master). Only validated (and only
    /// meaningful) when `cluster_network` is empty.
    pub delegates: Vec<Map<String, Value>>,
    /// The runtime-supplied (or daemon-overridden) `runtimeConfig` object, raw.
    pub runtime_config: Option<Value>,
    /// `capabilities`; non-boolean values are dropped.
    pub capabilities: BTreeMap<String, bool>,
    /// `readinessindicatorfile`: a file whose presence ADD/STATUS/GC wait for (stripped in auto mode).
    pub readiness_indicator_file: String,
    /// `namespaceIsolation`: a pod may only use NADs of its own namespace or of a global namespace.
    pub namespace_isolation: bool,
    /// `globalNamespaces` as written.
    pub raw_global_namespaces: String,
    /// `globalNamespaces` split on commas and trimmed, or `["default"]`.
    pub non_isolated_namespaces: Vec<String>,
    /// `systemNamespaces`: namespaces whose pods get no `defaultNetworks`; default `["kube-system"]`.
    pub system_namespaces: Vec<String>,
    /// `multusNamespace`: where NADs named without a namespace by `clusterNetwork`,
    /// `defaultNetworks` and the default-network annotation are looked up; default `kube-system`.
    pub multus_namespace: String,
    /// `auxiliaryCNIChainName`: a conflist of `passthru` plus the plugins in
    /// `<dir of clusterNetwork>/<name>/`, appended as the last delegate; empty → none.
    pub auxiliary_cni_chain_name: String,
    /// `retryDeleteOnError`: keep the delegate cache when a DEL fails, so the runtime's retry finds it.
    pub retry_delete_on_error: bool,
    /// `daemonSocketDir`: the shim's socket directory (the daemon uses `socketDir`).
    pub daemon_socket_dir: String,
    /// Parsed but unused by the daemon.
    pub kubeconfig: String,
    /// `prevResult`, raw (validated as a result of `cni_version`).
    pub prev_result: Option<Value>,
    /// `binDir`: first directory searched for delegate binaries; default `/opt/cni/bin`.
    pub bin_dir: String,
    /// `confDir`: CNI configs for NADs with an empty spec and networks named by file; default
    /// `/etc/cni/multus/net.d`.
    pub conf_dir: String,
    /// `cniDir`: the delegate cache and libcni result cache; default `/var/lib/cni/multus`.
    pub cni_dir: String,
    /// `logFile`: log file path; empty → no file.
    pub log_file: String,
    /// `logLevel`: `debug`, `verbose`, `error` or `panic`; empty means `panic`.
    pub log_level: String,
    /// Per request the default is **true**.
    pub log_to_stderr: bool,
    /// `logOptions`: rotation of the log file.
    pub log_options: Option<LogOptions>,
    /// The merged object as parsed.
    pub raw: Map<String, Value>,
}

impl NetConf {
    /// Parse the effective request config (the output of [`merge_request_config`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_map(object_from_bytes(bytes).map_err(ConfigError::NetConf)?)
    }

    /// Reads the configuration from the merged object, applying the §2.4 defaults; wrong types
    /// are errors naming the key.
    pub fn from_map(raw: Map<String, Value>) -> Result<Self, ConfigError> {
        let f = Fields(&raw);
        let e = ConfigError::NetConf;
        let cni_version = f.str_or_empty("cniVersion").map_err(e)?;

        let runtime_config = f.object("runtimeConfig").map_err(e)?.map(|m| Value::Object(m.clone()));
        let prev_result = f.object("prevResult").map_err(e)?.map(|m| Value::Object(m.clone()));
        if let Some(prev) = &prev_result {
            let default_version = cni::version::Version::parse(&cni_version).ok();
            cni::result::CniResult::from_value_with_default(prev, default_version)
                .map_err(|err| ConfigError::PrevResult(err.to_string()))?;
        }

        let delegates = match f.get("delegates") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(m) => Ok(m.clone()),
                    v => Err(ConfigError::NetConf(wrong_type(&format!("delegates[{i}]"), "an object", v))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => return Err(ConfigError::NetConf(wrong_type("delegates", "an array", v))),
        };

        let raw_global_namespaces = f.str_or_empty("globalNamespaces").map_err(e)?;
        let non_isolated_namespaces = if raw_global_namespaces.is_empty() {
            vec![DEFAULT_NON_ISOLATED_NAMESPACE.to_string()]
        } else {
            raw_global_namespaces.split(',').map(|s| s.trim().to_string()).collect()
        };

        let conf = Self {
            name: f.str_or_empty("name").map_err(e)?,
            plugin_type: f.str_or_empty("type").map_err(e)?,
            cluster_network: f.str_or_empty("clusterNetwork").map_err(e)?,
            default_networks: f.string_list("defaultNetworks").map_err(e)?.unwrap_or_default(),
            delegates,
            runtime_config,
            capabilities: f.capabilities("capabilities").map_err(e)?,
            readiness_indicator_file: f.str_or_empty(READINESS_INDICATOR_KEY).map_err(e)?,
            namespace_isolation: f.bool("namespaceIsolation").map_err(e)?.unwrap_or(false),
            raw_global_namespaces,
            non_isolated_namespaces,
            system_namespaces: f
                .string_list("systemNamespaces")
                .map_err(e)?
                .unwrap_or_else(|| vec![DEFAULT_SYSTEM_NAMESPACE.to_string()]),
            multus_namespace: f.str_or("multusNamespace", DEFAULT_MULTUS_NAMESPACE).map_err(e)?,
            auxiliary_cni_chain_name: f.str_or_empty("auxiliaryCNIChainName").map_err(e)?,
            retry_delete_on_error: f.bool("retryDeleteOnError").map_err(e)?.unwrap_or(false),
            daemon_socket_dir: f.str_or_empty("daemonSocketDir").map_err(e)?,
            kubeconfig: f.str_or_empty("kubeconfig").map_err(e)?,
            prev_result,
            bin_dir: f.str_or("binDir", DEFAULT_BIN_DIR).map_err(e)?,
            conf_dir: f.str_or("confDir", DEFAULT_CONF_DIR).map_err(e)?,
            cni_dir: f.str_or("cniDir", DEFAULT_CNI_DIR).map_err(e)?,
            log_file: f.str_or_empty("logFile").map_err(e)?,
            log_level: f.str_or_empty("logLevel").map_err(e)?,
            log_to_stderr: f.bool("logToStderr").map_err(e)?.unwrap_or(true),
            log_options: f.log_options("logOptions").map_err(e)?,
            cni_version,
            raw: Map::new(),
        };

        if conf.delegates.is_empty() && conf.cluster_network.is_empty() {
            return Err(ConfigError::NoDelegates);
        }
        if conf.cluster_network.is_empty() {
            for (index, delegate) in conf.delegates.iter().enumerate() {
                check_delegate_shape(delegate).map_err(|reason| ConfigError::Delegate { index, reason })?;
            }
        }
        Ok(Self { raw, ..conf })
    }

    /// The static delegates are used (no `clusterNetwork`); the first one is the master.
    pub fn uses_static_delegates(&self) -> bool {
        self.cluster_network.is_empty()
    }

    /// Pods in these namespaces do not get `defaultNetworks`.
    pub fn is_system_namespace(&self, namespace: &str) -> bool {
        self.system_namespaces.iter().any(|ns| ns == namespace)
    }

    /// Namespaces any pod may reference under namespace isolation.
    pub fn is_non_isolated_namespace(&self, namespace: &str) -> bool {
        self.non_isolated_namespaces.iter().any(|ns| ns == namespace)
    }

    /// Where the shim looks for the socket (`daemonSocketDir`, default `/run/multus/`).
    pub fn daemon_socket_dir_or_default(&self) -> &str {
        if self.daemon_socket_dir.is_empty() { DEFAULT_SOCKET_DIR } else { &self.daemon_socket_dir }
    }
}

/// The minimal checks of the reference's delegate loading: a non-empty `type`, or a `plugins`
/// list whose first plugin has a `type`. Messages follow the reference.
fn check_delegate_shape(delegate: &Map<String, Value>) -> Result<(), String> {
    const PREFIX: &str = "LoadDelegateNetConf: failed with: LoadDelegateNetConfList:";
    match delegate.get("type") {
        Some(Value::String(t)) if !t.is_empty() => return Ok(()),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(v) => {
            return Err(format!(
                "LoadDelegateNetConf: error unmarshalling delegate config: {}",
                wrong_type("type", "a string", v)
            ));
        }
    }
    match delegate.get("plugins") {
        None | Some(Value::Null) => Err(format!("{PREFIX} delegate must have the 'type' or 'plugin' field")),
        Some(Value::Array(plugins)) => {
            let first_type = plugins.first().and_then(|p| p.get("type")).and_then(Value::as_str);
            match first_type {
                Some(t) if !t.is_empty() => Ok(()),
                _ => Err(format!("{PREFIX} a plugin delegate must have the 'type' field")),
            }
        }
        Some(v) => {
            Err(format!("{PREFIX} error unmarshalling delegate conflist: {}", wrong_type("plugins", "an array", v)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shim's view

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

#[cfg(test)]
pub(crate) mod tests;
