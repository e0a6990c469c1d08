//! The delegate cache `<cniDir>/<containerID>` used by DEL (spec §5.12, §6.1 step 6).
//!
//! Format: a JSON array, one object per delegate in execution order, with the Go reference's
//! field names so that the Go daemon can read what we write (downgrade) and we can read what it
//! wrote (upgrade): `Conf`, `ConfList`, `Name`, `ifnameRequest`, `macRequest`,
//! `infinibandGUIDRequest`, `ipRequest`, `default-route`, `IsFilterV4Gateway`,
//! `IsFilterV6Gateway`, `deviceID`, `resourceName`, `Bytes`.
//!
//! Decisions:
//!
//! * `Bytes` (base64) always holds the full, exact config the delegate ran with — for conflists
//!   too, every plugin key included (the v4.2.x bug: lossy conflist bytes broke DEL, e.g.
//!   Calico). `Conf`/`ConfList` are informational summaries written in the reference's shape; a
//!   delegate is a conflist iff `ConfList.plugins` is non-empty (as the reference decides).
//! * **quirk 29** — port-mapping and bandwidth requests are stored too, under the extra keys
//!   `portMappingsRequest` and `bandwidthRequest` (the Go reader ignores unknown keys), so that
//!   DEL hands plugins (e.g. `portmap`, `bandwidth`) the same capability args as ADD.
//! * v4.2.x files also carry `CNINetworkConfigList` (libcni's list with each plugin's raw
//!   bytes); when it is populated, the lossless conflist is rebuilt from it (list keys + raw
//!   plugins) and the housekeeping injections of the lossy `Bytes` (`deviceID`, `pciBusID`,
//!   `args.cni`) are merged back, as the reference's HEAD does.
//! * The file is written atomically (temporary file in the same directory + rename), dir 0700,
//!   file 0600.

use crate::delegate::{Delegate, DelegateConfig, DelegateError, json_kind};
use crate::model::{Bandwidth, PortMapping};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Failures writing or reading the delegate cache; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The data directory could not be created.
    #[error("saveScratchNetConf: failed to create the multus data directory({dir:?}): {reason}")]
    CreateDir {
        /// The data directory (`cniDir`).
        dir: String,
        /// The I/O error.
        reason: String,
    },
    /// The cache file could not be written.
    #[error("saveScratchNetConf: failed to write container data in the path({path:?}): {reason}")]
    Write {
        /// The cache file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a valid delegate cache.
    #[error("failed to load netconf: {0}")]
    Invalid(String),
    /// One entry of the file is not a valid delegate.
    #[error("failed to load netconf: entry {index}: {cause}")]
    Entry {
        /// Its position in the file.
        index: usize,
        /// What is wrong with it.
        cause: EntryError,
    },
}

/// Why one cache entry is not a delegate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A bytes field is not base64.
    #[error("{what}: {reason}")]
    Base64 {
        /// The field.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A bytes field is not a string.
    #[error("{what}: expected a base64 string, got {got}")]
    NotAString {
        /// The field.
        what: &'static str,
        /// The JSON type found.
        got: &'static str,
    },
    /// The legacy conflist or one of its plugins is not a JSON object.
    #[error("{0}")]
    Legacy(String),
    /// The legacy conflist and the housekeeping bytes disagree on the plugins.
    #[error(
        "mergeConfListBytes: plugin count differs between legacy and housekeeping bytes: {legacy} != {housekeeping}"
    )]
    PluginCount {
        /// Plugins of the legacy list.
        legacy: usize,
        /// Plugins of the housekeeping bytes.
        housekeeping: usize,
    },
    /// No config bytes at all.
    #[error("no Bytes")]
    NoBytes,
    /// The bytes are not a delegate.
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// A conflist without plugins (ADD never caches one).
    #[error("a conflist without plugins")]
    NoPlugins,
}

/// One cache entry as stored on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// `Conf`: the delegate's single-plugin config, parsed (empty for a conflist).
    #[serde(rename = "Conf", default)]
    pub conf: Value,
    /// `ConfList`: the delegate's conflist, parsed (empty for a single plugin).
    #[serde(rename = "ConfList", default)]
    pub conf_list: Value,
    /// v4.2.x only; read, never written.
    #[serde(rename = "CNINetworkConfigList", default, skip_serializing)]
    pub legacy_network_config_list: Option<Value>,
    /// `Name`: the network's name (`<namespace>/<nad>` for a NAD).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// `ifnameRequest`: the interface name the selection asked for.
    #[serde(rename = "ifnameRequest", default, skip_serializing_if = "String::is_empty")]
    pub ifname_request: String,
    /// `macRequest`: the MAC address the selection asked for.
    #[serde(rename = "macRequest", default, skip_serializing_if = "String::is_empty")]
    pub mac_request: String,
    /// `infinibandGUIDRequest`: the InfiniBand GUID the selection asked for.
    #[serde(rename = "infinibandGUIDRequest", default, skip_serializing_if = "String::is_empty")]
    pub infiniband_guid_request: String,
    /// `ipRequest`: the static IPs (CIDR notation) the selection asked for.
    #[serde(rename = "ipRequest", default, skip_serializing_if = "Option::is_none")]
    pub ip_request: Option<Vec<String>>,
    /// `default-route`: gateways the selection asked to use as the pod's default route.
    #[serde(rename = "default-route", default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<IpAddr>>,
    /// `IsFilterV4Gateway`: drop the IPv4 default route this delegate would install.
    #[serde(rename = "IsFilterV4Gateway", default)]
    pub is_filter_v4_gateway: bool,
    /// `IsFilterV6Gateway`: drop the IPv6 default route this delegate would install.
    #[serde(rename = "IsFilterV6Gateway", default)]
    pub is_filter_v6_gateway: bool,
    /// `deviceID`: the device (PCI address, …) passed to the delegate.
    #[serde(rename = "deviceID", default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    /// `resourceName`: the device-plugin resource the device came from.
    #[serde(rename = "resourceName", default, skip_serializing_if = "String::is_empty")]
    pub resource_name: String,
    /// base64 of the exact config.
    #[serde(rename = "Bytes", default)]
    pub bytes: Option<String>,
    /// Ours (quirk 29 fix); ignored by the Go reader.
    #[serde(rename = "portMappingsRequest", default, skip_serializing_if = "Option::is_none")]
    pub port_mappings_request: Option<Vec<PortMapping>>,
    /// Ours (quirk 29 fix); ignored by the Go reader.
    #[serde(rename = "bandwidthRequest", default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_request: Option<Bandwidth>,
    /// Ours (`dynamicNetworks`): plugged into the running pod; ignored by the Go reader, which
    /// deletes it like any other.
    #[serde(rename = "hotplugged", default, skip_serializing_if = "std::ops::Not::not")]
    pub hotplugged: bool,
    /// Ours (`dynamicNetworks`, master entry): the selection annotation the attachments were
    /// made for; ignored by the Go reader.
    #[serde(rename = "selection", default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
}

/// `<cniDir>/<containerID>`
pub fn cache_path(cni_dir: &Path, container_id: &str) -> PathBuf {
    cni_dir.join(container_id)
}

fn ipam_summary(plugin: &Map<String, Value>) -> Value {
    let mut ipam = Map::new();
    if let Some(t) = plugin.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str).filter(|t| !t.is_empty()) {
        ipam.insert("type".into(), json!(t));
    }
    Value::Object(ipam)
}

/// Go `types.DNS` (nameservers, domain, search, options; empty fields omitted).
fn dns_summary(plugin: &Map<String, Value>) -> Value {
    let mut dns = Map::new();
    if let Some(Value::Object(src)) = plugin.get("dns") {
        for key in ["nameservers", "domain", "search", "options"] {
            match src.get(key) {
                Some(Value::String(s)) if !s.is_empty() => {
                    dns.insert(key.into(), json!(s));
                }
                Some(Value::Array(a)) if !a.is_empty() => {
                    dns.insert(key.into(), Value::Array(a.clone()));
                }
                _ => {}
            }
        }
    }
    Value::Object(dns)
}

/// Go marshals `capabilities` (a `map[string]bool`) with sorted keys; non-boolean values are
/// skipped (the reference fails on them).
fn capabilities_summary(plugin: &Map<String, Value>) -> Option<Value> {
    let mut caps: Vec<(String, Value)> = plugin
        .get("capabilities")
        .and_then(Value::as_object)?
        .iter()
        .filter(|(_, v)| v.is_boolean())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    caps.sort_by(|a, b| a.0.cmp(&b.0));
    (!caps.is_empty()).then(|| Value::Object(caps.into_iter().collect()))
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `Conf` of a single-plugin delegate as the v4.2.4 daemon writes it (keys sorted, `dns` only
/// when non-empty), e.g. `{"cniVersion":"1.0.0","ipam":{"type":"host-local"},"name":"n","type":"bridge"}`.
fn conf_summary(plugin: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    if let Some(caps) = capabilities_summary(plugin) {
        m.insert("capabilities".into(), caps);
    }
    m.insert("cniVersion".into(), json!(str_of(plugin, "cniVersion")));
    let dns = dns_summary(plugin);
    if dns.as_object().is_some_and(|d| !d.is_empty()) {
        m.insert("dns".into(), dns);
    }
    m.insert("ipam".into(), ipam_summary(plugin));
    for key in ["name", "type"] {
        let v = str_of(plugin, key);
        if !v.is_empty() {
            m.insert(key.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// A plugin of `ConfList.plugins` (Go `types.PluginConf` field order).
fn plugin_summary(plugin: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    for key in ["cniVersion", "name", "type"] {
        let v = str_of(plugin, key);
        if !v.is_empty() {
            m.insert(key.into(), json!(v));
        }
    }
    if let Some(caps) = capabilities_summary(plugin) {
        m.insert("capabilities".into(), caps);
    }
    m.insert("ipam".into(), ipam_summary(plugin));
    m.insert("dns".into(), dns_summary(plugin));
    Value::Object(m)
}

fn entry_of(d: &Delegate) -> CacheEntry {
    let (conf, conf_list) = match d.config() {
        DelegateConfig::Single(c) => (conf_summary(c.raw()), json!({})),
        DelegateConfig::List(l) => {
            let mut cl = Map::new();
            if !l.cni_version.is_empty() {
                cl.insert("cniVersion".into(), json!(l.cni_version));
            }
            if !l.name.is_empty() {
                cl.insert("name".into(), json!(l.name));
            }
            if l.disable_check {
                cl.insert("disableCheck".into(), json!(true));
            }
            if l.disable_gc {
                cl.insert("disableGC".into(), json!(true));
            }
            cl.insert("plugins".into(), Value::Array(l.plugins.iter().map(|p| plugin_summary(p.raw())).collect()));
            (json!({"ipam": {}}), Value::Object(cl))
        }
    };
    CacheEntry {
        conf,
        conf_list,
        legacy_network_config_list: None,
        name: d.name.clone(),
        ifname_request: d.ifname_request.clone(),
        mac_request: d.mac_request.clone(),
        infiniband_guid_request: d.infiniband_guid_request.clone(),
        ip_request: (!d.ip_request.is_empty()).then(|| d.ip_request.clone()),
        default_route: d.default_route.clone(),
        is_filter_v4_gateway: d.filter_v4_gateway,
        is_filter_v6_gateway: d.filter_v6_gateway,
        device_id: d.device_id.clone(),
        resource_name: d.resource_name.clone(),
        bytes: Some(B64.encode(d.bytes())),
        port_mappings_request: (!d.port_mappings_request.is_empty()).then(|| d.port_mappings_request.clone()),
        bandwidth_request: d.bandwidth_request.clone(),
        hotplugged: d.hotplugged,
        selection: d.selection.clone(),
    }
}

/// The cache file content for `delegates`.
pub fn serialize_delegates(delegates: &[Delegate]) -> Vec<u8> {
    // One entry at a time into a buffer sized up front: a delegate's config is in the file as
    // base64 (4/3 of it), and neither every entry's base64 at once nor a buffer grown by doubling
    // is held besides the output (the same bytes as serialising the whole list).
    let estimate: usize = delegates.iter().map(|d| d.bytes().len() / 3 * 4 + 1024).sum();
    let mut out = Vec::with_capacity(estimate + 2);
    out.push(b'[');
    for (i, d) in delegates.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut out, &entry_of(d)).is_err() {
            return Vec::new();
        }
    }
    out.push(b']');
    out
}

/// Write the cache atomically (0600 in a 0700 directory, as libcni's result cache). Returns the
/// file path.
pub fn write_cache(cni_dir: &Path, container_id: &str, delegates: &[Delegate]) -> Result<PathBuf, CacheError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cni_dir)
        .map_err(|e| CacheError::CreateDir { dir: cni_dir.display().to_string(), reason: e.to_string() })?;
    let path = cache_path(cni_dir, container_id);
    cni::runtime::write_atomic(&path, &serialize_delegates(delegates))
        .map_err(|e| CacheError::Write { path: path.display().to_string(), reason: e.to_string() })?;
    Ok(path)
}

/// Remove the cache file (a missing file is not an error).
pub fn remove_cache(cni_dir: &Path, container_id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(cache_path(cni_dir, container_id)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn is_conflist_entry(entry: &CacheEntry) -> bool {
    entry.conf_list.get("plugins").and_then(Value::as_array).is_some_and(|p| !p.is_empty())
}

fn decode_b64(v: &Value, what: &'static str) -> Result<Vec<u8>, EntryError> {
    match v {
        Value::String(s) => B64.decode(s).map_err(|e| EntryError::Base64 { what, reason: e.to_string() }),
        other => Err(EntryError::NotAString { what, got: json_kind(other) }),
    }
}

/// Rebuild lossless conflist bytes from a v4.2.x `CNINetworkConfigList` (list bytes + each
/// plugin's raw bytes), merging the housekeeping keys injected into the lossy `Bytes`.
fn restore_legacy_conflist(legacy: &Value, housekeeping: &[u8]) -> Result<Option<Vec<u8>>, EntryError> {
    let plugins = legacy.get("Plugins").and_then(Value::as_array).filter(|p| !p.is_empty());
    let list_bytes = legacy.get("Bytes").filter(|b| !b.is_null());
    let (Some(plugins), Some(list_bytes)) = (plugins, list_bytes) else { return Ok(None) };
    let mut list: Map<String, Value> =
        serde_json::from_slice(&decode_b64(list_bytes, "CNINetworkConfigList.Bytes")?)
            .map_err(|e| EntryError::Legacy(format!("rawConfListBytes: failed to unmarshal conflist bytes: {e}")))?;
    let mut raw_plugins = Vec::with_capacity(plugins.len());
    for (idx, p) in plugins.iter().enumerate() {
        let b = decode_b64(p.get("Bytes").unwrap_or(&Value::Null), "CNINetworkConfigList.Plugins[].Bytes")?;
        let v: Map<String, Value> = serde_json::from_slice(&b)
            .map_err(|e| EntryError::Legacy(format!("rawConfListBytes: failed to unmarshal plugin #{idx}: {e}")))?;
        raw_plugins.push(v);
    }
    if !housekeeping.is_empty() {
        let hk: Value = serde_json::from_slice(housekeeping).map_err(|e| {
            EntryError::Legacy(format!("mergeConfListBytes: failed to unmarshal housekeeping bytes: {e}"))
        })?;
        let hk_plugins = hk.get("plugins").and_then(Value::as_array).cloned().unwrap_or_default();
        if hk_plugins.len() != raw_plugins.len() {
            return Err(EntryError::PluginCount { legacy: raw_plugins.len(), housekeeping: hk_plugins.len() });
        }
        for (raw, hk) in raw_plugins.iter_mut().zip(&hk_plugins) {
            for key in ["deviceID", "pciBusID"] {
                if let Some(v) = hk.get(key) {
                    raw.insert(key.into(), v.clone());
                }
            }
            if let Some(hk_cni) = hk.get("args").and_then(|a| a.get("cni")).and_then(Value::as_object) {
                let args = raw.entry("args").or_insert_with(|| json!({}));
                if let Value::Object(args) = args {
                    let cni = args.entry("cni").or_insert_with(|| json!({}));
                    if let Value::Object(cni) = cni {
                        for (k, v) in hk_cni {
                            cni.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }
    list.insert("plugins".into(), Value::Array(raw_plugins.into_iter().map(Value::Object).collect()));
    Ok(Some(serde_json::to_vec(&list).unwrap_or_default()))
}

fn delegate_of(entry: CacheEntry, index: usize) -> Result<Delegate, EntryError> {
    let is_conflist = is_conflist_entry(&entry);
    let mut bytes = match &entry.bytes {
        Some(s) => B64.decode(s).map_err(|e| EntryError::Base64 { what: "Bytes", reason: e.to_string() })?,
        None => Vec::new(),
    };
    if is_conflist
        && let Some(legacy) = &entry.legacy_network_config_list
        && let Some(restored) = restore_legacy_conflist(legacy, &bytes)?
    {
        bytes = restored;
    }
    if bytes.is_empty() {
        return Err(EntryError::NoBytes);
    }
    let mut d = Delegate::from_bytes(bytes, is_conflist)?;
    // ADD never caches such a list (a delegate needs plugins[0].type); one found here was damaged
    // (found by the fuzzer: it would not even be written back as a list).
    if matches!(d.config(), cni::NetworkConfig::List(list) if list.plugins.is_empty()) {
        return Err(EntryError::NoPlugins);
    }
    d.name = entry.name;
    d.ifname_request = entry.ifname_request;
    d.mac_request = entry.mac_request;
    d.infiniband_guid_request = entry.infiniband_guid_request;
    d.ip_request = entry.ip_request.unwrap_or_default();
    d.default_route = entry.default_route;
    d.filter_v4_gateway = entry.is_filter_v4_gateway;
    d.filter_v6_gateway = entry.is_filter_v6_gateway;
    d.device_id = entry.device_id;
    d.resource_name = entry.resource_name;
    d.port_mappings_request = entry.port_mappings_request.unwrap_or_default();
    d.bandwidth_request = entry.bandwidth_request;
    d.hotplugged = entry.hotplugged;
    d.selection = entry.selection;
    d.is_master = index == 0;
    Ok(d)
}

/// Parse a cache file (ours or the Go daemon's). Entry 0 is the master. An empty list is
/// invalid (the reference panics on it).
pub fn parse_cache(bytes: &[u8]) -> Result<Vec<Delegate>, CacheError> {
    let entries: Vec<CacheEntry> = serde_json::from_slice(bytes).map_err(|e| CacheError::Invalid(e.to_string()))?;
    if entries.is_empty() {
        return Err(CacheError::Invalid("empty delegate list".into()));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, e)| delegate_of(e, index).map_err(|cause| CacheError::Entry { index, cause }))
        .collect()
}

/// Outcome of reading the cache file.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheRead {
    /// The cache was read and parsed.
    Found {
        /// The file read.
        path: PathBuf,
        /// Its delegates, the master first.
        delegates: Vec<Delegate>,
    },
    /// No cache file for the container.
    Missing,
    /// Exists but could not be read (permissions, I/O error…).
    Unreadable(String),
    /// Read but not a valid delegate cache.
    Invalid(String),
}

/// Read `<cniDir>/<containerID>`.
pub fn read_cache(cni_dir: &Path, container_id: &str) -> CacheRead {
    let path = cache_path(cni_dir, container_id);
    match std::fs::read(&path) {
        Ok(bytes) => match parse_cache(&bytes) {
            Ok(delegates) => CacheRead::Found { path, delegates },
            Err(e) => CacheRead::Invalid(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheRead::Missing,
        Err(e) => CacheRead::Unreadable(e.to_string()),
    }
}

/// What DEL does with the delegate list (§6.1 step 6).
#[derive(Debug, Clone, PartialEq)]
pub enum DelSource {
    /// Delete these (from the cache; entry 0 is the master). The cache file is then removed per
    /// `retryDeleteOnError` (§6.1 step 9).
    UseCache {
        /// The cache file, removed afterwards.
        path: PathBuf,
        /// The cached delegates.
        delegates: Vec<Delegate>,
    },
    /// Cache missing and the pod is known: recompute with `resolve::resolve_del_delegates`.
    Recompute,
    /// Nothing can be deleted: log `reason` and return success (quirk 29 kept: a DEL error would
    /// make the runtime retry forever without ever having more information).
    Nothing {
        /// The log line saying why.
        reason: String,
    },
}

/// The decision table of §6.1 step 6.
pub fn del_decision(read: CacheRead, pod_known: bool) -> DelSource {
    let nothing = |why: String| DelSource::Nothing {
        reason: format!("Multus: failed to get the cached delegates file: {why}, cannot properly delete"),
    };
    match read {
        CacheRead::Found { path, delegates } => DelSource::UseCache { path, delegates },
        CacheRead::Missing if pod_known => DelSource::Recompute,
        CacheRead::Missing => nothing("no such file or directory".into()),
        CacheRead::Unreadable(e) | CacheRead::Invalid(e) => nothing(e),
    }
}

/// §6.1 step 10: the combined DEL error, `errors: <e1> / <e2> …` (HEAD format), or `None`.
pub fn combine_del_errors(errors: &[String]) -> Option<String> {
    (!errors.is_empty()).then(|| format!("errors: {}", errors.join(" / ")))
}

/// §6.1 step 9: whether to remove the cache file after DEL used it. With `retryDeleteOnError`
/// it is kept unless every DEL succeeded or the combined error mentions a missing file.
pub fn should_remove_cache(retry_delete_on_error: bool, errors: &[String]) -> bool {
    !retry_delete_on_error || errors.is_empty() || errors.iter().any(|e| e.contains("no such file or directory"))
}

#[cfg(test)]
mod tests;
