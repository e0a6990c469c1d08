//! What a plugin receives: the arguments of an attachment ([`RuntimeConf`]), the `CNI_*`
//! environment and the request config built as libcni's `buildOneConfig` does.

use super::gojson;
use crate::conf::PluginConf;
use crate::env::Command;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;

/// The arguments of one attachment, apart from the network configuration (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// Path of the container's network namespace.
    pub netns: String,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order (duplicates kept).
    pub args: Vec<(String, String)>,
    /// Capability arguments; each plugin gets those it declares in `capabilities` as
    /// `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// An attachment without `CNI_ARGS` or capability arguments.
    pub fn new(container_id: impl Into<String>, netns: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self { container_id: container_id.into(), netns: netns.into(), ifname: ifname.into(), ..Self::default() }
    }

    /// Append a `CNI_ARGS` pair.
    pub fn with_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.args.push((key.into(), value.into()));
        self
    }

    /// Offer the capability argument `name` to the plugins that declare it.
    pub fn with_capability(mut self, name: impl Into<String>, value: Value) -> Self {
        self.capability_args.insert(name.into(), value);
        self
    }

    /// `CNI_ARGS`: `K=V` pairs joined with `;`.
    pub fn cni_args(&self) -> String {
        self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ValidAttachment {
    /// The container the attachment belongs to.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The attachment's interface inside the container.
    pub ifname: String,
}

impl ValidAttachment {
    /// The attachment of `container_id`'s interface `ifname`.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self { container_id: container_id.into(), ifname: ifname.into() }
    }
}

impl fmt::Display for ValidAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

/// The six `CNI_*` variables, always all set (empty when unused), in libcni's order.
pub fn plugin_env(command: Command, rt: &RuntimeConf, plugin_dirs: &[PathBuf]) -> Vec<(String, String)> {
    let path = plugin_dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
    vec![
        ("CNI_COMMAND".into(), command.as_str().into()),
        ("CNI_CONTAINERID".into(), rt.container_id.clone()),
        ("CNI_NETNS".into(), rt.netns.clone()),
        ("CNI_ARGS".into(), rt.cni_args()),
        ("CNI_IFNAME".into(), rt.ifname.clone()),
        ("CNI_PATH".into(), path),
    ]
}

/// `runtimeConfig` for a plugin: the capabilities it marks `true` that the runtime supplied.
pub fn runtime_config_for(plugin: &PluginConf, rt: &RuntimeConf) -> Map<String, Value> {
    plugin
        .capabilities()
        .keys()
        .filter_map(|cap| rt.capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect()
}

/// ADD/DEL/CHECK request config (libcni `buildOneConfig`): the plugin object as written (unknown
/// keys and `capabilities` kept), `name` and `cniVersion` from the list, `prevResult` when
/// given, and `runtimeConfig` ([`runtime_config_for`]) when not empty. Keys sorted, as Go writes
/// a re-marshalled map.
pub fn build_plugin_config(
    net_name: &str,
    cni_version: &str,
    plugin: &PluginConf,
    prev_result: Option<&Value>,
    rt: &RuntimeConf,
) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let rc = runtime_config_for(plugin, rt);
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    gojson::sorted(&Value::Object(conf))
}

/// GC request config: the plugin object with `name`, `cniVersion` and — only when the caller
/// passed a set — both `cni.dev/valid-attachments` and the legacy `cni.dev/attachments`.
pub fn build_gc_config(
    net_name: &str,
    cni_version: &str,
    plugin: &PluginConf,
    valid: Option<&[ValidAttachment]>,
) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    if let Some(valid) = valid {
        let list = serde_json::to_value(valid).unwrap_or(Value::Array(vec![]));
        conf.insert("cni.dev/valid-attachments".into(), list.clone());
        conf.insert("cni.dev/attachments".into(), list);
    }
    gojson::sorted(&Value::Object(conf))
}

/// STATUS request config: the plugin object with `name` and `cniVersion`.
pub fn build_status_config(net_name: &str, cni_version: &str, plugin: &PluginConf) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    gojson::sorted(&Value::Object(conf))
}

/// The bytes a plugin receives on stdin for a request config.
pub fn config_bytes(conf: &Value) -> Vec<u8> {
    gojson::to_vec(conf)
}
