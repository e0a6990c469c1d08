//! One network's delegate: a NAD by name (`getKubernetesDelegate`) or a `clusterNetwork` /
//! `defaultNetworks` value (`getNetDelegate`: a NAD, a config name in `confDir`, a file or a
//! directory).

use super::devices::DeviceLookupError;
use super::resolver::{MAX_POD_NAD_CONFIG_BYTES, Resolver};
use crate::conf_files::ConfFileError;
use crate::delegate::{
    Budget, Delegate, DelegateError, conf_files, config_from_dir, config_from_nad, load_conflist_file, load_delegate,
    load_delegate_from_conflist, load_delegate_within,
};
use crate::error::Warning;
use crate::model::NetworkSelectionElement;
use serde_json::Value;
use std::path::Path;

/// Why a network has no delegate; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NetworkError {
    /// No NAD of that name (the reason is the API's, or the node's cache's).
    #[error("getKubernetesDelegate: {0}")]
    NadNotFound(String),
    /// The pod's devices could not be looked up.
    #[error("getKubernetesDelegate: {0}")]
    Devices(DeviceLookupError),
    /// A config file or directory could not be used.
    #[error(transparent)]
    File(#[from] ConfFileError),
    /// The config does not make a delegate.
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// A path value names nothing.
    #[error("stat {path}: {reason}")]
    Stat { path: String, reason: String },
    /// A directory value cannot be listed.
    #[error("{0}")]
    ListDir(String),
    /// A `.conflist` path value cannot be loaded.
    #[error("error loading CNI conflist file {path}: {reason}")]
    ConflistFile { path: String, reason: String },
    /// A file path value cannot be loaded.
    #[error("error loading CNI config file {path}: {reason}")]
    ConfigFile { path: String, reason: String },
    /// A value that is neither a NAD nor a config.
    #[error("getNetDelegate: cannot find network: {0}")]
    NotFound(String),
}

/// Go's `os.Stat` error text.
fn stat_error(path: &str, e: &std::io::Error) -> NetworkError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    NetworkError::Stat { path: path.to_string(), reason }
}

impl Resolver<'_> {
    /// `getKubernetesDelegate`. Messages start with `getKubernetesDelegate:` or come from loading.
    pub(super) fn kubernetes_delegate(&mut self, el: &NetworkSelectionElement) -> Result<Delegate, NetworkError> {
        let Some(nad) = self.nads.get_nad(&el.namespace, &el.name) else {
            let reason = self
                .nads
                .missing_reason(&el.namespace, &el.name)
                .unwrap_or_else(|| format!("networkattachmentdefinition.k8s.cni.cncf.io \"{}\" not found", el.name));
            let msg = format!(
                "cannot find a network-attachment-definition ({name}) in namespace ({ns}): {reason}",
                name = el.name,
                ns = el.namespace
            );
            self.warnings.push(Warning::event(Warning::NO_NETWORK_FOUND, msg.clone()));
            return Err(NetworkError::NadNotFound(msg));
        };
        let mut device_id = String::new();
        let resource_name = nad.resource_name().unwrap_or("").to_string();
        let pod_named = self.pod.is_some_and(|p| !p.name.is_empty() && !p.namespace.is_empty());
        if !resource_name.is_empty() && pod_named {
            device_id = self.devices.allocate(&resource_name).map_err(NetworkError::Devices)?.unwrap_or_default();
            if device_id.is_empty() {
                // The delegate runs without a device; say so where the operator looks.
                self.warnings.push(Warning::event(
                    Warning::NO_DEVICE,
                    format!(
                        "network {}/{} asks for a device of resource {resource_name:?}, but the pod has none left for it",
                        el.namespace, el.name
                    ),
                ));
            }
        }
        let budget = Budget { left: self.nad_bytes_left, limit: MAX_POD_NAD_CONFIG_BYTES };
        let result = config_from_nad(&nad.name, &nad.config, &self.settings.conf_dir)
            .map_err(NetworkError::from)
            .and_then(|bytes| Ok(load_delegate_within(&bytes, Some(el), &device_id, &resource_name, budget)?));
        if let Ok(d) = &result {
            self.nad_bytes_left = self.nad_bytes_left.saturating_sub(d.bytes().len());
        }
        if result.is_err() && !device_id.is_empty() {
            self.devices.release(&resource_name, &device_id);
        }
        result
    }

    /// `getNetDelegate`: a `clusterNetwork`/`defaultNetworks` value (§5.6).
    pub(super) fn net_delegate(&mut self, value: &str) -> Result<Delegate, NetworkError> {
        let settings = self.settings;
        if !value.contains('/') {
            let el = NetworkSelectionElement {
                name: value.to_string(),
                namespace: settings.multus_namespace.clone(),
                ..Default::default()
            };
            match self.kubernetes_delegate(&el) {
                Ok(d) => return Ok(d),
                Err(e) => self.warnings.push(Warning::log("NetworkLookup", format!("{value}: {e}"))),
            }
            if let Ok(bytes) = config_from_dir(value, &settings.conf_dir) {
                return Ok(load_delegate(&bytes, None, "", "")?);
            }
        } else {
            let path = Path::new(value);
            let meta = std::fs::metadata(path).map_err(|e| stat_error(value, &e))?;
            if meta.is_dir() {
                let files =
                    conf_files(path, &[".conf", ".conflist"]).map_err(|e| NetworkError::ListDir(e.to_string()))?;
                if !files.is_empty() {
                    let bytes = config_from_dir("", path)?;
                    return Ok(load_delegate(&bytes, None, "", "")?);
                }
            } else if value.ends_with(".conflist") {
                let conflist = |reason: String| NetworkError::ConflistFile { path: value.to_string(), reason };
                if !meta.is_file() {
                    return Err(conflist("not a regular file".into()));
                }
                let list = load_conflist_file(path).map_err(|e| conflist(e.to_string()))?;
                return Ok(load_delegate_from_conflist(&list, None, "", "")?);
            } else {
                let config_file = |reason: String| NetworkError::ConfigFile { path: value.to_string(), reason };
                let bytes = std::fs::read(path).map_err(|e| config_file(e.to_string()))?;
                let map = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => return Err(config_file("error parsing configuration: expected a JSON object".into())),
                    Err(e) => return Err(config_file(format!("error parsing configuration: {e}"))),
                };
                if map.get("type").and_then(Value::as_str).unwrap_or("").is_empty() {
                    return Err(config_file("no 'type'; perhaps this is a .conflist?".into()));
                }
                return Ok(load_delegate(&bytes, None, "", "")?);
            }
        }
        Err(NetworkError::NotFound(value.to_string()))
    }
}
