//! R: the Multus network configuration of a request.

use super::defaults::*;
use super::error::ConfigError;
use super::fields::{Fields, object_from_bytes, wrong_type};
use super::log_options::LogOptions;
use crate::delegate::DelegateError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    /// Parse the effective request config (the output of [`merge_request_config`](crate::config::merge_request_config)).
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
            log_options: LogOptions::read(&f, "logOptions").map_err(e)?,
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
fn check_delegate_shape(delegate: &Map<String, Value>) -> Result<(), DelegateError> {
    match delegate.get("type") {
        Some(Value::String(t)) if !t.is_empty() => return Ok(()),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(v) => return Err(DelegateError::Unmarshal(wrong_type("type", "a string", v).to_string())),
    }
    match delegate.get("plugins") {
        None | Some(Value::Null) => Err(DelegateError::NoTypeOrPlugins),
        Some(Value::Array(plugins)) => {
            let first_type = plugins.first().and_then(|p| p.get("type")).and_then(Value::as_str);
            match first_type {
                Some(t) if !t.is_empty() => Ok(()),
                _ => Err(DelegateError::PluginWithoutType),
            }
        }
        Some(v) => Err(DelegateError::ConfList(wrong_type("plugins", "an array", v).to_string())),
    }
}
