//! What `multusctl explain` reports: the [`Explanation`] of a pod's ADD, network by network,
//! with the problems found. Serialized as is for `-o json`.

use serde::Serialize;
use serde_json::{Map, Value};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// Something the operator should know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// A stable name of the check (`interface-clash`, `plugin-not-found`, …).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub message: String,
}

/// The pod as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodSummary {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
}

/// The settings of the effective request config that planning reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub cni_version: String,
    pub cluster_network: String,
    pub default_networks: Vec<String>,
    pub multus_namespace: String,
    pub system_namespaces: Vec<String>,
    pub namespace_isolation: bool,
    pub global_namespaces: Vec<String>,
    pub auxiliary_cni_chain_name: String,
    pub bin_dir: String,
    pub conf_dir: String,
    pub cni_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Value>,
}

/// Where the configuration came from and what it says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    pub daemon_config: String,
    pub request_config: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The daemon cannot parse the merged request config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    /// Where plugin binaries were looked for (absent: not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_dirs: Option<Vec<String>>,
}

/// The pod's Multus annotations as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_network: Option<String>,
}

/// Whether the ADD goes through.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub succeeds: bool,
    pub summary: String,
    /// The error the runtime gets (the daemon's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_network: Option<String>,
}

/// Why a network is in the delegate list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ClusterNetwork,
    DefaultNetworkOverride,
    StaticDelegate,
    DefaultNetwork,
    Selected,
    AuxiliaryChain,
}

impl Role {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ClusterNetwork => "cluster network",
            Self::DefaultNetworkOverride => "default-network override",
            Self::StaticDelegate => "static delegate",
            Self::DefaultNetwork => "default network",
            Self::Selected => "selected",
            Self::AuxiliaryChain => "auxiliary chain",
        }
    }
}

/// What became of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkState {
    /// In the plan; will be invoked.
    Planned,
    /// Resolves, but the request fails elsewhere, so it is not invoked.
    Resolves,
    Failed,
    /// Could not be looked at: the request fails before it.
    NotChecked,
}

/// Whether a plugin binary is on the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Binary {
    Found { path: String },
    Missing { searched: Vec<String> },
    NotChecked,
}

/// One plugin of a network.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginEntry {
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The plugin object's own `name` (error messages name it).
    #[serde(skip)]
    pub name: Option<String>,
    pub binary: Binary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam_binary: Option<Binary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The `runtimeConfig` libcni gives this plugin (the capability args it declares).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub runtime_config: Map<String, Value>,
}

/// How a network gets its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceState {
    /// The next device of the resource.
    Allocated,
    /// Every device of the resource is taken (or the pod has none): the network runs without.
    NoneLeft,
    /// Offline: the pod's devices were not looked up.
    NotLookedUp,
    /// The selection element's `deviceID`.
    Requested,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceEntry {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    pub state: DeviceState,
}

/// What `default-route` does on this network's interface after its ADD.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntry {
    pub removes_default_v4: bool,
    pub removes_default_v6: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adds_default_via: Vec<String>,
}

/// One network of the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEntry {
    /// Position in the delegate list (`net<index>` naming).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub role: Role,
    /// The network as referenced (`namespace/name`, a `clusterNetwork` value, a chain name).
    pub reference: String,
    pub state: NetworkState,
    /// Where its config comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why it failed, in short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The daemon's error for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The CNI network name (libcni's result cache, per-delegate errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<String>,
    /// Capability arguments given to libcni (each plugin gets those it declares).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_route: Option<RouteEntry>,
}

/// An event (or log line) the daemon emits while planning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventNote {
    /// `Warning` (an event on the pod) or `log`.
    pub kind: String,
    pub reason: String,
    pub message: String,
}

/// One entry of the pod's current `network-status` annotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrentStatus {
    pub name: String,
    pub interface: String,
    pub ips: Vec<String>,
    pub default: bool,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub pod: PodSummary,
    pub config: ConfigSummary,
    pub annotations: AnnotationSummary,
    pub outcome: Outcome,
    pub networks: Vec<NetworkEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventNote>,
    /// What the last ADD wrote (`k8s.v1.cni.cncf.io/network-status`), for comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<Vec<CurrentStatus>>,
}

impl Explanation {
    /// The ADD fails, or a problem of severity `error` makes it fail when it runs.
    pub fn fails(&self) -> bool {
        !self.outcome.succeeds || self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}
