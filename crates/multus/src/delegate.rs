//! Delegates: the networks Multus attaches, each an independent CNI invocation (spec §5.10–§5.11).
//!
//! A [`Delegate`] holds the exact CNI config bytes it runs with (authoritative for ADD, CHECK and
//! DEL, and what the delegate cache stores), the parsed form of those bytes, the display name and
//! the per-attachment requests copied from the network selection element.
//!
//! Loading follows the Go reference's `LoadDelegateNetConf` (§5.10 steps 3–4, error texts kept),
//! with these deliberate differences (quirk 31 and the v4.2.x conflist DEL bug):
//!
//! * odd input never panics: a non-object `args`/`args.cni`, a non-array `plugins`, an empty
//!   `plugins` list or a non-object plugin is an error;
//! * a config that libcni would refuse when executing it (e.g. a conflist without `name`, a later
//!   plugin without `type`) is refused when loading, with libcni's message, so that the failure
//!   happens before any delegate ran;
//! * conflists loaded from files keep every key: list keys from the file and every plugin's raw
//!   object, including plugins appended from the libcni subdirectory (§5.6), so DEL gets exactly
//!   what ADD got (the Go v4.2.x cache dropped plugin-specific keys);
//! * bytes are re-serialised only when something is injected (`name`, `deviceID`/`pciBusID`,
//!   `args.cni`); the original key order is kept and new keys are appended. Otherwise the input
//!   bytes are kept verbatim.

pub(crate) use crate::config::fields::json_kind;
use crate::model::{Bandwidth, NetworkSelectionElement, PortMapping};
use cni::conf::{NetConfList, PluginConf};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Errors of delegate loading. The texts are the Go reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegateError {
    /// The config is not a JSON object.
    #[error("LoadDelegateNetConf: error unmarshalling delegate config: {0}")]
    Unmarshal(String),
    #[error(
        "LoadDelegateNetConf: failed with: LoadDelegateNetConfList: delegate must have the 'type' or 'plugin' field"
    )]
    /// The config has neither `type` nor `plugins`.
    NoTypeOrPlugins,
    /// A conflist plugin has no `type`.
    #[error("LoadDelegateNetConf: failed with: LoadDelegateNetConfList: a plugin delegate must have the 'type' field")]
    PluginWithoutType,
    /// The conflist could not be parsed.
    #[error("LoadDelegateNetConf: failed with: LoadDelegateNetConfList: error unmarshalling delegate conflist: {0}")]
    ConfList(String),
    /// Injection into a config that does not have the expected shape.
    #[error("{0}")]
    Inject(String),
    /// The config would be refused by libcni when executed.
    #[error("{0}")]
    Invalid(String),
    /// With its `cni-args` injected the config would be larger than the bytes left for it.
    #[error(
        "LoadDelegateNetConf: the delegate config would be {needed} bytes, more than the {left} bytes left of the {limit} bytes the networks of one pod may use together"
    )]
    TooLarge {
        /// The size the config would have (at least).
        needed: usize,
        /// What was left of the budget.
        left: usize,
        /// The whole budget.
        limit: usize,
    },
}

/// The parsed config of a delegate: a single plugin or a conflist.
pub type DelegateConfig = cni::NetworkConfig;

/// One network to attach.
#[derive(Debug, Clone, PartialEq)]
pub struct Delegate {
    bytes: Vec<u8>,
    config: DelegateConfig,
    /// Display name: config `name` for file-based networks, `<ns>/<nad>` for NAD-based ones.
    pub name: String,
    /// The master (cluster network or its override): uses `CNI_IFNAME`, gets the runtime's
    /// capability args, its result is returned.
    pub is_master: bool,
    /// `interface` of the selection element: the interface name to use instead of `net<N>`.
    pub ifname_request: String,
    /// `mac` of the selection element, passed as the `mac` capability and `MAC` CNI arg.
    pub mac_request: String,
    /// `ips` of the selection element, passed as the `ips` capability and `IP` CNI arg.
    pub ip_request: Vec<String>,
    /// `infiniband-guid` of the selection element, passed as the `infinibandGUID` capability.
    pub infiniband_guid_request: String,
    /// `bandwidth` of the selection element, passed as the `bandwidth` capability.
    pub bandwidth_request: Option<Bandwidth>,
    /// `portMappings` of the selection element, passed as the `portMappings` capability.
    pub port_mappings_request: Vec<PortMapping>,
    /// Device ID: from the resource map (also injected into the config) or the element's `deviceID`.
    pub device_id: String,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`, set when a resource device ID was found.
    pub resource_name: String,
    /// `None`: not requested. `Some(vec![])`: requested with an empty list.
    pub default_route: Option<Vec<IpAddr>>,
    /// Remove the IPv4 default route this delegate installs (another delegate owns it).
    pub filter_v4_gateway: bool,
    /// Remove the IPv6 default route this delegate installs (another delegate owns it).
    pub filter_v6_gateway: bool,
    /// Plugged into a running pod (`dynamicNetworks`), not by the runtime's ADD.
    pub hotplugged: bool,
    /// The master's entry only, with `dynamicNetworks`: the selection annotation the sandbox's
    /// attachments were made for (what a later change is compared with, also after a restart).
    pub selection: Option<String>,
}

impl Delegate {
    /// A delegate with the given bytes and no selection fields. `is_conflist` chooses how the
    /// bytes are parsed (libcni `ConfListFromBytes` / `ConfFromBytes`).
    pub fn from_bytes(bytes: Vec<u8>, is_conflist: bool) -> Result<Self, DelegateError> {
        let config = parse_config(&bytes, is_conflist)?;
        Ok(Self::from_parts(bytes, config))
    }

    /// A delegate of `bytes` whose parsed form is `config` (already decoded: not parsed again).
    fn from_parts(bytes: Vec<u8>, config: DelegateConfig) -> Self {
        let name = config.name().to_string();
        Self {
            bytes,
            config,
            name,
            is_master: false,
            ifname_request: String::new(),
            mac_request: String::new(),
            ip_request: Vec::new(),
            infiniband_guid_request: String::new(),
            bandwidth_request: None,
            port_mappings_request: Vec::new(),
            device_id: String::new(),
            resource_name: String::new(),
            default_route: None,
            filter_v4_gateway: false,
            filter_v6_gateway: false,
            hotplugged: false,
            selection: None,
        }
    }

    /// The exact config bytes the delegate runs with.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The parsed config.
    pub fn config(&self) -> &DelegateConfig {
        &self.config
    }

    /// Whether the config is a conflist.
    pub fn is_conflist(&self) -> bool {
        matches!(self.config, DelegateConfig::List(_))
    }

    /// CNI network name of the config (used in per-delegate error prefixes and the libcni result
    /// cache file name).
    pub fn network_name(&self) -> &str {
        self.config.name()
    }

    /// The plugin `type` (first plugin for conflists).
    pub fn plugin_type(&self) -> &str {
        match &self.config {
            DelegateConfig::Single(c) => c.plugin_type(),
            DelegateConfig::List(l) => l.plugins.first().map(PluginConf::plugin_type).unwrap_or(""),
        }
    }

    /// Replace the config bytes (re-parsed; the delegate is unchanged on error).
    pub fn set_bytes(&mut self, bytes: Vec<u8>) -> Result<(), DelegateError> {
        self.config = parse_config(&bytes, self.is_conflist())?;
        self.bytes = bytes;
        Ok(())
    }

    /// DEL step 7 (§6.1): a conflist without `cniVersion` gets Multus' version, injected
    /// losslessly into the bytes. Returns whether something changed.
    pub fn inject_cni_version_if_missing(&mut self, cni_version: &str) -> Result<bool, DelegateError> {
        let DelegateConfig::List(list) = &self.config else { return Ok(false) };
        if !list.cni_version.is_empty() || cni_version.is_empty() {
            return Ok(false);
        }
        let mut map = object_of(&self.bytes)?;
        map.insert("cniVersion".into(), Value::String(cni_version.to_string()));
        self.set_bytes(to_bytes(&map))?;
        Ok(true)
    }
}

fn parse_config(bytes: &[u8], is_conflist: bool) -> Result<DelegateConfig, DelegateError> {
    if is_conflist {
        NetConfList::from_bytes(bytes)
            .map(DelegateConfig::List)
            .map_err(|e| DelegateError::Invalid(format!("error converting the raw bytes into a conflist: {e}")))
    } else {
        PluginConf::from_bytes(bytes)
            .map(DelegateConfig::Single)
            .map_err(|e| DelegateError::Invalid(format!("error in converting the raw bytes to conf: {e}")))
    }
}

/// [`parse_config`] of an already decoded object.
fn config_of_map(map: Map<String, Value>, is_conflist: bool) -> Result<DelegateConfig, DelegateError> {
    if is_conflist {
        NetConfList::from_map(map)
            .map(DelegateConfig::List)
            .map_err(|e| DelegateError::Invalid(format!("error converting the raw bytes into a conflist: {e}")))
    } else {
        PluginConf::from_map(map)
            .map(DelegateConfig::Single)
            .map_err(|e| DelegateError::Invalid(format!("error in converting the raw bytes to conf: {e}")))
    }
}

fn object_of(bytes: &[u8]) -> Result<Map<String, Value>, DelegateError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(DelegateError::Unmarshal(format!("expected a JSON object, got {}", json_kind(&other)))),
        Err(e) => Err(DelegateError::Unmarshal(e.to_string())),
    }
}

fn to_bytes(map: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(map).unwrap_or_default()
}

/// `LoadDelegateNetConf`: a delegate from config bytes (single plugin or conflist), with the
/// resource device ID and the element's `cni-args` injected and its selection fields copied.
///
/// * `type` empty or absent → conflist: `plugins` must be present and `plugins[0].type` non-empty;
/// * `device_id` non-empty → `deviceID` and `pciBusID` set (conflist: in every plugin) and
///   `resource_name` recorded;
/// * `cni-args` present → merged into `args.cni` (conflist: every plugin), creating objects;
/// * display name: config name, or `<ns>/<name>` when the element has a name.
pub fn load_delegate(
    bytes: &[u8],
    element: Option<&NetworkSelectionElement>,
    device_id: &str,
    resource_name: &str,
) -> Result<Delegate, DelegateError> {
    load_delegate_within(bytes, element, device_id, resource_name, Budget { left: usize::MAX, limit: usize::MAX })
}

/// Bytes of delegate config a resolution may still produce (see [`load_delegate_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What is left.
    pub left: usize,
    /// The whole budget (for the error text).
    pub limit: usize,
}

/// [`load_delegate`], refusing a config that would exceed `budget.left` bytes once the
/// element's `cni-args` are injected — checked before injecting them into every plugin of a
/// conflist, so that a small annotation cannot make a huge config.
pub fn load_delegate_within(
    bytes: &[u8],
    element: Option<&NetworkSelectionElement>,
    device_id: &str,
    resource_name: &str,
    budget: Budget,
) -> Result<Delegate, DelegateError> {
    let too_large = |needed: usize| DelegateError::TooLarge { needed, left: budget.left, limit: budget.limit };
    if bytes.len() > budget.left {
        return Err(too_large(bytes.len()));
    }
    let mut map = object_of(bytes)?;
    let plugin_type = match map.get("type") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(DelegateError::Unmarshal(format!(
                "json: cannot unmarshal {} into Go struct field NetConf.type of type string",
                json_kind(other)
            )));
        }
    };
    let is_conflist = plugin_type.is_empty();
    if is_conflist {
        match map.get("plugins") {
            None | Some(Value::Null) => return Err(DelegateError::NoTypeOrPlugins),
            Some(Value::Array(plugins)) => {
                let first_type = plugins.first().and_then(|p| p.get("type")).and_then(Value::as_str).unwrap_or("");
                if first_type.is_empty() {
                    return Err(DelegateError::PluginWithoutType);
                }
            }
            Some(other) => {
                return Err(DelegateError::ConfList(format!(
                    "json: cannot unmarshal {} into Go struct field NetConfList.plugins",
                    json_kind(other)
                )));
            }
        }
    }

    let mut modified = false;
    if !device_id.is_empty() {
        if is_conflist {
            for_each_plugin(&mut map, "addDeviceIDInConfList", |plugin| {
                plugin.insert("deviceID".into(), Value::String(device_id.to_string()));
                plugin.insert("pciBusID".into(), Value::String(device_id.to_string()));
                Ok(())
            })?;
        } else {
            map.insert("deviceID".into(), Value::String(device_id.to_string()));
            map.insert("pciBusID".into(), Value::String(device_id.to_string()));
        }
        modified = true;
    }
    if let Some(cni_args) = element.and_then(|e| e.cni_args.as_ref()) {
        if budget.left != usize::MAX {
            let targets =
                if is_conflist { map.get("plugins").and_then(Value::as_array).map_or(0, Vec::len) } else { 1 };
            let args_len = serde_json::to_vec(cni_args).map_or(0, |v| v.len());
            let needed = bytes.len().saturating_add(targets.saturating_mul(args_len));
            if needed > budget.left {
                return Err(too_large(needed));
            }
        }
        if is_conflist {
            for_each_plugin(&mut map, "addCNIArgsInConfList()", |plugin| inject_cni_args(plugin, cni_args))?;
        } else {
            inject_cni_args(&mut map, cni_args)?;
        }
        modified = true;
    }

    let final_bytes = if modified { to_bytes(&map) } else { bytes.to_vec() };
    if final_bytes.len() > budget.left {
        return Err(too_large(final_bytes.len()));
    }
    // The decoded object becomes the delegate's parsed config: the bytes are not parsed again.
    let mut delegate = Delegate::from_parts(final_bytes, config_of_map(map, is_conflist)?);
    if !device_id.is_empty() {
        delegate.device_id = device_id.to_string();
        delegate.resource_name = resource_name.to_string();
    }
    if let Some(el) = element {
        apply_element(&mut delegate, el, device_id);
    }
    Ok(delegate)
}

/// `LoadDelegateNetConfFromConfList`: a delegate from a conflist loaded from a file (plugins
/// appended from the subdirectory included), serialised losslessly.
pub fn load_delegate_from_conflist(
    list: &NetConfList,
    element: Option<&NetworkSelectionElement>,
    device_id: &str,
    resource_name: &str,
) -> Result<Delegate, DelegateError> {
    load_delegate(&list.to_bytes(), element, device_id, resource_name)
}

fn apply_element(delegate: &mut Delegate, el: &NetworkSelectionElement, resource_device_id: &str) {
    if !el.name.is_empty() {
        delegate.name = format!("{}/{}", el.namespace, el.name);
    }
    let ifname = el.requested_interface();
    if !ifname.is_empty() {
        delegate.ifname_request = ifname.to_string();
    }
    if !el.mac.is_empty() {
        delegate.mac_request = el.mac.clone();
    }
    if !el.ips.is_empty() {
        delegate.ip_request = el.ips.clone();
    }
    if el.bandwidth.is_some() {
        delegate.bandwidth_request = el.bandwidth.clone();
    }
    if !el.port_mappings.is_empty() {
        delegate.port_mappings_request = el.port_mappings.clone();
    }
    if let Some(gws) = &el.default_route {
        delegate.default_route.get_or_insert_with(Vec::new).extend(gws.iter().copied());
    }
    if !el.infiniband_guid.is_empty() {
        delegate.infiniband_guid_request = el.infiniband_guid.clone();
    }
    if !el.device_id.is_empty() && resource_device_id.is_empty() {
        delegate.device_id = el.device_id.clone();
    }
}

fn for_each_plugin(
    map: &mut Map<String, Value>,
    what: &str,
    mut f: impl FnMut(&mut Map<String, Value>) -> Result<(), DelegateError>,
) -> Result<(), DelegateError> {
    let Some(plugins) = map.get_mut("plugins") else {
        return Err(DelegateError::Inject(format!("{what}: unable to get plugin list")));
    };
    let Value::Array(plugins) = plugins else {
        return Err(DelegateError::Inject(format!("{what}: unable to typecast plugin list")));
    };
    for (idx, plugin) in plugins.iter_mut().enumerate() {
        let Value::Object(plugin) = plugin else {
            return Err(DelegateError::Inject(format!("{what}: unable to typecast plugin #{idx}")));
        };
        f(plugin)?;
    }
    Ok(())
}

/// Merge `cni_args` into `config.args.cni`, creating `args` and `cni` as needed. A non-object
/// `args` or `args.cni` is an error (the reference panics).
fn inject_cni_args(config: &mut Map<String, Value>, cni_args: &Map<String, Value>) -> Result<(), DelegateError> {
    let args = config.entry("args").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(args) = args else {
        return Err(DelegateError::Inject(format!("injectCNIArgs: 'args' is {}, expected an object", json_kind(args))));
    };
    match args.get_mut("cni") {
        Some(Value::Object(cni)) => {
            for (k, v) in cni_args {
                cni.insert(k.clone(), v.clone());
            }
        }
        Some(other) => {
            return Err(DelegateError::Inject(format!(
                "injectCNIArgs: 'args.cni' is {}, expected an object",
                json_kind(other)
            )));
        }
        None => {
            args.insert("cni".into(), Value::Object(cni_args.clone()));
        }
    }
    Ok(())
}

pub use crate::conf_files::{
    ConfFileError, append_subdirectory_plugins, conf_files, config_from_dir, config_from_nad, load_conflist_file,
    subdirectory_plugins,
};

#[cfg(test)]
mod tests;
