//! `multusctl explain`: the plan the daemon makes for a pod's ADD, and why it fails when it does.
//!
//! The plan comes from the daemon's own planning functions, called the way the daemon calls
//! them (`crates/multus-daemon/src/commands/add.rs`): [`ResolveSettings::from_netconf`] of the
//! effective request config, [`resolve::resolve_add_delegates`] for the delegate list (cluster
//! network, default networks, default-network override, selection annotation, gateway check,
//! auxiliary chain) and [`plan::plan_all`] for each delegate's interface name, `CNI_ARGS` and
//! capability arguments. So the explanation cannot drift from what the daemon does.
//!
//! What the daemon only learns while it runs is predicted here and marked as such: an interface
//! name used twice in the plan (the second delegate fails the netns clash check and the ADD is
//! rolled back), a plugin binary missing from the node's `binDir`, and the routes `default-route`
//! removes and adds. When resolution fails, the daemon stops at the first failing network; each
//! selected network is then also resolved on its own, so that every broken one is named.

use crate::node::NodeConfig;
use cni::CniError;
use cni::conf::PluginConf;
use cni::error::code;
use cni::exec::ExecError;
use cni::runtime::{RuntimeConf, RuntimeError, runtime_config_for};
use multus::delegate::Delegate;
use multus::error::{MultusError, PodRef, Warning};
use multus::model::{
    DEFAULT_NETWORK_ANNOTATION, NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, NadLookup, NetworkSelectionElement,
    PodInfo,
};
use multus::plan::{self, DelegateInvocation, Operation, PlanContext, RuntimeConfig};
use multus::resolve::{self, DeviceIdSource, DeviceLookupError, ResolveSettings, Resolved};
use multus::selection::parse_network_selection;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Everything an explanation is made from.
pub struct ExplainRequest<'a> {
    pub pod: &'a PodInfo,
    pub nads: &'a dyn NadLookup,
    pub node: &'a NodeConfig,
    /// The pod's device IDs per resource name; `None`: not looked up.
    pub devices: Option<&'a BTreeMap<String, Vec<String>>>,
    /// Directories searched for plugin binaries; `None`: binaries are not checked.
    pub plugin_dirs: Option<&'a [PathBuf]>,
    /// `CNI_IFNAME` of the request (the runtime's: `eth0`).
    pub ifname: &'a str,
    /// `CNI_CONTAINERID` (also `K8S_POD_INFRA_CONTAINER_ID`): unknown before the pod runs.
    pub container_id: &'a str,
}

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

/// Devices for the resolver: a given map, or none (offline, not looked up).
struct Devices<'a>(Option<&'a BTreeMap<String, Vec<String>>>);

impl DeviceIdSource for Devices<'_> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(self.0.and_then(|m| m.get(resource_name).cloned()).unwrap_or_default())
    }
}

/// Explain the ADD of `req.pod`.
pub fn explain(req: &ExplainRequest<'_>) -> Explanation {
    let pod = req.pod;
    let mut ex = Explanation {
        pod: PodSummary {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            node: pod.node_name.clone(),
        },
        config: ConfigSummary {
            daemon_config: req.node.daemon_config_source.clone(),
            request_config: req.node.request_config_source.clone(),
            notes: req.node.notes.clone(),
            error: None,
            settings: None,
            plugin_dirs: req.plugin_dirs.map(|d| d.iter().map(|p| p.display().to_string()).collect()),
        },
        annotations: AnnotationSummary {
            networks: pod.annotation(NETWORKS_ANNOTATION).map(str::to_string),
            default_network: pod.annotation(DEFAULT_NETWORK_ANNOTATION).map(str::to_string),
        },
        outcome: Outcome { succeeds: true, summary: String::new(), error: None, failing_network: None },
        networks: Vec::new(),
        problems: Vec::new(),
        events: Vec::new(),
        current_status: current_status(pod),
    };
    let conf = match &req.node.effective {
        Ok(c) => c,
        Err(e) => {
            ex.config.error = Some(e.clone());
            ex.outcome = Outcome {
                succeeds: false,
                summary: if req.node.notes.is_empty() {
                    "the daemon cannot parse the request config: every ADD on this node fails".into()
                } else {
                    "the request config cannot be parsed; see the notes on how it was found (give --daemon-config and --multus-conf for a node's)".into()
                },
                error: Some(format!("Multus: error loading netconf: {e}")),
                failing_network: None,
            };
            return ex;
        }
    };
    let settings = ResolveSettings::from_netconf(conf);
    let runtime_config = conf.runtime_config.as_ref().map(RuntimeConfig::from_value);
    ex.config.settings = Some(Settings {
        cni_version: conf.cni_version.clone(),
        cluster_network: conf.cluster_network.clone(),
        default_networks: conf.default_networks.clone(),
        multus_namespace: conf.multus_namespace.clone(),
        system_namespaces: conf.system_namespaces.clone(),
        namespace_isolation: conf.namespace_isolation,
        global_namespaces: conf.non_isolated_namespaces.clone(),
        auxiliary_cni_chain_name: conf.auxiliary_cni_chain_name.clone(),
        bin_dir: conf.bin_dir.clone(),
        conf_dir: conf.conf_dir.clone(),
        cni_dir: conf.cni_dir.clone(),
        runtime_config: conf.runtime_config.clone(),
    });
    let who = PodRef::new(&pod.namespace, &pod.name, &pod.uid);
    let ctx = PlanContext {
        container_id: req.container_id,
        ifname: req.ifname,
        pod_namespace: &pod.namespace,
        pod_name: &pod.name,
        pod_uid: &pod.uid,
        sandbox_id: req.container_id,
        runtime_config: runtime_config.as_ref(),
        process_cni_args: None,
    };
    let planner = Planner { req, settings: &settings, who: &who, ctx: &ctx };
    match resolve::resolve_add_delegates(&settings, Some(&who), Some(pod), req.nads, &mut Devices(req.devices)) {
        Ok(resolved) => planner.planned(&mut ex, resolved),
        Err(e) => planner.failed(&mut ex, &e),
    }
    ex.problems.sort_by_key(|p| p.severity);
    // A network selected twice has its problems twice.
    let mut seen = BTreeSet::new();
    ex.problems.retain(|p| seen.insert((p.code, p.network.clone(), p.message.clone())));
    ex
}

fn current_status(pod: &PodInfo) -> Option<Vec<CurrentStatus>> {
    let text = pod.annotation(NETWORK_STATUS_ANNOTATION)?;
    let entries = multus::status::parse_network_status(text).ok()?;
    Some(
        entries
            .into_iter()
            .map(|e| CurrentStatus { name: e.name, interface: e.interface, ips: e.ips, default: e.default })
            .collect(),
    )
}

struct Planner<'a> {
    req: &'a ExplainRequest<'a>,
    settings: &'a ResolveSettings,
    who: &'a PodRef,
    ctx: &'a PlanContext<'a>,
}

/// The selection annotation's elements, if it parses.
fn selection_elements(pod: &PodInfo) -> Result<Vec<NetworkSelectionElement>, String> {
    parse_network_selection(pod.annotation(NETWORKS_ANNOTATION).unwrap_or(""), &pod.namespace)
        .map_err(|e| e.to_string())
}

impl Planner<'_> {
    /// The role of delegate `index` of a resolved list (the resolver's order: cluster network
    /// or static delegates, default networks, selected networks, auxiliary chain).
    fn roles(&self, delegates: &[Delegate], selected: usize) -> Vec<Role> {
        let s = self.settings;
        let pod = self.req.pod;
        let mut roles = Vec::with_capacity(delegates.len());
        if s.cluster_network.is_empty() {
            roles.extend((0..s.static_delegates.len()).map(|_| Role::StaticDelegate));
        } else {
            roles.push(Role::ClusterNetwork);
            if !s.system_namespaces.contains(&pod.namespace) {
                roles.extend(s.default_networks.iter().map(|_| Role::DefaultNetwork));
            }
        }
        if pod.annotation(DEFAULT_NETWORK_ANNOTATION).is_some() {
            match roles.first_mut() {
                Some(first) => *first = Role::DefaultNetworkOverride,
                None => roles.push(Role::DefaultNetworkOverride),
            }
        }
        roles.extend((0..selected).map(|_| Role::Selected));
        while roles.len() < delegates.len() {
            roles.push(Role::AuxiliaryChain);
        }
        roles.truncate(delegates.len());
        roles
    }

    fn reference(&self, role: Role, delegate: &Delegate, index: usize) -> String {
        let s = self.settings;
        match role {
            Role::ClusterNetwork => s.cluster_network.clone(),
            Role::DefaultNetwork => s.default_networks.get(index - 1).cloned().unwrap_or_else(|| delegate.name.clone()),
            Role::AuxiliaryChain => s.auxiliary_cni_chain_name.clone(),
            _ => delegate.name.clone(),
        }
    }

    fn source(&self, role: Role, delegate: &Delegate, reference: &str) -> String {
        if delegate.name.contains('/') {
            return format!("NetworkAttachmentDefinition {}", delegate.name);
        }
        match role {
            Role::StaticDelegate => "the delegates list of the config".into(),
            Role::AuxiliaryChain => format!(
                "passthru + the plugins of {}/{}/",
                std::path::Path::new(&self.settings.cluster_network)
                    .parent()
                    .unwrap_or(std::path::Path::new("/"))
                    .display(),
                reference
            ),
            _ if reference.contains('/') => format!("file {reference}"),
            _ => format!("the file in {} named {reference}", self.settings.conf_dir.display()),
        }
    }

    fn device(&self, delegate: &Delegate) -> Option<DeviceEntry> {
        let nad = delegate.name.split_once('/').and_then(|(ns, name)| self.req.nads.get_nad(ns, name));
        let resource = nad.as_ref().and_then(|n| n.resource_name()).unwrap_or("").to_string();
        if resource.is_empty() {
            return (!delegate.device_id.is_empty()).then(|| DeviceEntry {
                resource_name: String::new(),
                device_id: delegate.device_id.clone(),
                state: DeviceState::Requested,
            });
        }
        let state = if !delegate.device_id.is_empty() {
            DeviceState::Allocated
        } else if self.req.devices.is_some() {
            DeviceState::NoneLeft
        } else {
            DeviceState::NotLookedUp
        };
        Some(DeviceEntry { resource_name: resource, device_id: delegate.device_id.clone(), state })
    }

    fn binary(&self, plugin_type: &str) -> Binary {
        let Some(dirs) = self.req.plugin_dirs else { return Binary::NotChecked };
        match cni::exec::find_in_path(plugin_type, dirs) {
            Ok(path) => Binary::Found { path: path.display().to_string() },
            Err(_) => Binary::Missing { searched: dirs.iter().map(|d| d.display().to_string()).collect() },
        }
    }

    fn plugins(&self, delegate: &Delegate, invocation: Option<&DelegateInvocation>) -> Vec<PluginEntry> {
        let list = delegate.config().to_list();
        let rt = RuntimeConf {
            capability_args: invocation.map(|i| i.capability_args.clone()).unwrap_or_default(),
            ..RuntimeConf::default()
        };
        list.plugins
            .iter()
            .map(|p: &PluginConf| {
                let ipam = p.raw().get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str).map(str::to_string);
                PluginEntry {
                    plugin_type: p.plugin_type().to_string(),
                    name: p.name().map(str::to_string),
                    binary: self.binary(p.plugin_type()),
                    ipam_binary: ipam.as_deref().map(|t| self.binary(t)),
                    ipam,
                    capabilities: p.capabilities().into_keys().collect(),
                    runtime_config: runtime_config_for(p, &rt),
                }
            })
            .collect()
    }

    /// An entry for a resolved delegate (without its invocation when the request fails).
    fn entry(
        &self,
        role: Role,
        delegate: &Delegate,
        index: usize,
        invocation: Option<&DelegateInvocation>,
    ) -> NetworkEntry {
        let reference = self.reference(role, delegate, index);
        let actions = multus::default_route::planned_route_actions(delegate);
        NetworkEntry {
            index: invocation.map(|_| index),
            role,
            source: Some(self.source(role, delegate, &reference)),
            reference,
            state: if invocation.is_some() { NetworkState::Planned } else { NetworkState::Resolves },
            reason: None,
            error: None,
            network_name: Some(delegate.network_name().to_string()),
            interface: invocation.map(|i| i.ifname.clone()),
            plugins: self.plugins(delegate, invocation),
            cni_args: invocation.map(DelegateInvocation::cni_args_string),
            capability_args: invocation.map(|i| i.capability_args.clone()).unwrap_or_default(),
            device: self.device(delegate),
            default_route: (!actions.is_empty()).then(|| RouteEntry {
                removes_default_v4: actions.delete_default_v4,
                removes_default_v6: actions.delete_default_v6,
                adds_default_via: actions.add_gateways.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    fn warnings(&self, ex: &mut Explanation, warnings: &[Warning]) {
        for w in warnings {
            if w.reason == Warning::NO_DEVICE && self.req.devices.is_none() {
                continue; // said once per network as "not looked up"
            }
            ex.events.push(EventNote {
                kind: if w.event { "Warning".into() } else { "log".into() },
                reason: w.reason.clone(),
                message: w.message.clone(),
            });
        }
    }

    /// The request resolves: plan every delegate and predict what the run will find.
    fn planned(&self, ex: &mut Explanation, resolved: Resolved) {
        self.warnings(ex, &resolved.warnings);
        let delegates = resolved.delegates;
        let selected = selection_elements(self.req.pod).map(|e| e.len()).unwrap_or(0);
        let roles = self.roles(&delegates, selected);
        let first_error = plan::plan_all(&delegates, self.ctx, Operation::Add).err();
        for (i, (delegate, role)) in delegates.iter().zip(roles).enumerate() {
            match plan::plan_invocation(delegate, i, self.ctx, Operation::Add) {
                Ok(inv) => ex.networks.push(self.entry(role, delegate, i, Some(&inv))),
                Err(e) => {
                    let mut entry = self.entry(role, delegate, i, None);
                    entry.index = Some(i);
                    entry.state = NetworkState::Failed;
                    entry.reason = Some(e.to_string());
                    ex.networks.push(entry);
                }
            }
        }
        if let Some((i, e)) = first_error {
            let net = delegates[i].network_name();
            ex.outcome = Outcome {
                succeeds: false,
                summary: format!("ADD fails at {} before it runs", delegates[i].name),
                error: Some(MultusError::delegate_add(Some(self.who), net, &e).to_string()),
                failing_network: Some(delegates[i].name.clone()),
            };
            ex.problems.push(Problem {
                severity: Severity::Error,
                code: "add-fails",
                network: Some(delegates[i].name.clone()),
                message: e.to_string(),
            });
            self.roll_back_note(ex, i);
            return;
        }
        self.predict(ex, &delegates);
        if ex.outcome.succeeds {
            let names: Vec<String> = ex
                .networks
                .iter()
                .map(|n| format!("{} ({})", n.interface.as_deref().unwrap_or("?"), n.reference))
                .collect();
            ex.outcome.summary = format!("ADD attaches {} network(s): {}", names.len(), names.join(", "));
        }
    }

    /// Delegates before `failed` ran and are deleted again.
    fn roll_back_note(&self, ex: &mut Explanation, failed: usize) {
        if failed > 0 {
            ex.outcome.summary.push_str(&format!(
                "; the {failed} network(s) before it are added and then rolled back (DEL), the pod gets none"
            ));
        }
    }

    /// What the run will find that planning does not: interface clashes, invalid names,
    /// missing binaries; requests no plugin takes; devices not looked up.
    fn predict(&self, ex: &mut Explanation, delegates: &[Delegate]) {
        let mut failure: Option<(usize, String, String)> = None;
        let mut fail_at = |i: usize, summary: String, cause: String| {
            if failure.as_ref().is_none_or(|(j, _, _)| i < *j) {
                failure = Some((i, summary, cause));
            }
        };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, (entry, delegate)) in ex.networks.iter().zip(delegates).enumerate() {
            let ifname = entry.interface.clone().unwrap_or_default();
            if let Err(e) = cni::validate::validate_interface_name(&ifname) {
                let cause = e.to_string();
                ex.problems.push(Problem {
                    severity: Severity::Error,
                    code: "invalid-interface-name",
                    network: Some(entry.reference.clone()),
                    message: format!("interface name {ifname:?} is refused by libcni: {cause}"),
                });
                fail_at(i, format!("invalid interface name {ifname:?}"), cause);
            }
            if let Err(e) = cni::validate::validate_network_name(delegate.network_name()) {
                let cause = e.to_string();
                ex.problems.push(Problem {
                    severity: Severity::Error,
                    code: "invalid-network-name",
                    network: Some(entry.reference.clone()),
                    message: format!("CNI network name {:?} is refused by libcni: {cause}", delegate.network_name()),
                });
                fail_at(i, "invalid CNI network name".into(), cause);
            }
            if let Some(&first) = seen.get(&ifname) {
                let other = &ex.networks[first].reference;
                ex.problems.push(Problem {
                    severity: Severity::Error,
                    code: "interface-clash",
                    network: Some(entry.reference.clone()),
                    message: format!(
                        "interface {ifname} is planned for {other} and again for {}: the second ADD finds it \
                         already in the pod and fails",
                        entry.reference
                    ),
                });
                fail_at(
                    i,
                    format!("interface name clash on {ifname}"),
                    format!(
                        "DelegateAdd: cannot set \"{}\" interface name to \"{ifname}\": validateIfName: interface name {ifname} already exists",
                        delegate.plugin_type()
                    ),
                );
            } else {
                seen.insert(ifname.clone(), i);
            }
            for p in &entry.plugins {
                let dirs = |searched: &[String]| searched.iter().map(PathBuf::from).collect::<Vec<_>>();
                if let Binary::Missing { searched } = &p.binary {
                    ex.problems.push(Problem {
                        severity: Severity::Error,
                        code: "plugin-not-found",
                        network: Some(entry.reference.clone()),
                        message: format!("plugin {:?} is not in {}", p.plugin_type, searched.join(":")),
                    });
                    let cause =
                        plugin_failure(p, ExecError::NotFound { plugin: p.plugin_type.clone(), dirs: dirs(searched) });
                    fail_at(i, format!("plugin {} not found", p.plugin_type), cause);
                }
                if let (Some(ipam), Some(Binary::Missing { searched })) = (&p.ipam, &p.ipam_binary) {
                    ex.problems.push(Problem {
                        severity: Severity::Error,
                        code: "ipam-plugin-not-found",
                        network: Some(entry.reference.clone()),
                        message: format!("IPAM plugin {ipam:?} of {} is not in {}", p.plugin_type, searched.join(":")),
                    });
                    // The plugin runs, fails to find its IPAM plugin and reports libcni's text.
                    let lookup = ExecError::NotFound { plugin: ipam.clone(), dirs: dirs(searched) };
                    let cause = plugin_failure(p, ExecError::Plugin(CniError::new(code::INTERNAL, lookup.to_string())));
                    fail_at(i, format!("IPAM plugin {ipam} not found"), cause);
                }
            }
            self.unheard_requests(&mut ex.problems, entry, delegate);
            if entry.device.as_ref().is_some_and(|d| d.state == DeviceState::NotLookedUp) {
                ex.problems.push(Problem {
                    severity: Severity::Info,
                    code: "device-not-looked-up",
                    network: Some(entry.reference.clone()),
                    message: format!(
                        "needs a device of {}: not looked up (give --devices FILE); with none left it runs without one",
                        entry.device.as_ref().map(|d| d.resource_name.as_str()).unwrap_or("")
                    ),
                });
            }
            if entry.device.as_ref().is_some_and(|d| d.state == DeviceState::NoneLeft) {
                ex.problems.push(Problem {
                    severity: Severity::Warning,
                    code: "no-device-left",
                    network: Some(entry.reference.clone()),
                    message: "no device of its resource is left for it: it runs without a device ID".into(),
                });
            }
        }
        if let Some((i, summary, cause)) = failure {
            ex.outcome = Outcome {
                succeeds: false,
                summary: format!("ADD fails at {} when it runs: {summary}", delegates[i].name),
                error: Some(MultusError::delegate_add(Some(self.who), delegates[i].network_name(), cause).to_string()),
                failing_network: Some(delegates[i].name.clone()),
            };
            self.roll_back_note(ex, i);
        }
    }

    /// Requests of the selection element that go to libcni as capability args but that no
    /// plugin of the network declares: libcni drops them.
    fn unheard_requests(&self, problems: &mut Vec<Problem>, entry: &NetworkEntry, delegate: &Delegate) {
        let declared: BTreeSet<&str> =
            entry.plugins.iter().flat_map(|p| p.capabilities.iter().map(String::as_str)).collect();
        let requested = [
            ("ips", !delegate.ip_request.is_empty(), " (they still reach the plugins as CNI_ARGS IP=…)"),
            ("mac", !delegate.mac_request.is_empty(), " (it still reaches the plugins as CNI_ARGS MAC=…)"),
            ("portMappings", !delegate.port_mappings_request.is_empty(), ""),
            ("bandwidth", delegate.bandwidth_request.is_some(), ""),
            ("infinibandGUID", !delegate.infiniband_guid_request.is_empty(), ""),
            // A resource device is also written into the config (deviceID, pciBusID); a
            // selection's deviceID reaches the plugin only as a capability argument.
            ("deviceID", !delegate.device_id.is_empty() && delegate.resource_name.is_empty(), ""),
        ];
        for (cap, asked, note) in requested {
            if asked && !delegate.is_master && !declared.contains(cap) {
                problems.push(Problem {
                    severity: Severity::Warning,
                    code: "capability-not-declared",
                    network: Some(entry.reference.clone()),
                    message: format!(
                        "the pod asks for {cap} but no plugin of the network declares the {cap:?} capability: libcni does not pass it{note}"
                    ),
                });
            }
        }
    }

    /// Resolution failed: the daemon's error, and each network's own state.
    fn failed(&self, ex: &mut Explanation, e: &MultusError) {
        self.warnings(ex, e.warnings());
        self.diagnose(ex, e);
        let failing = e.network().map(str::to_string);
        // The failing network's own reason when it has one, else the end of the daemon's chain.
        let reason = ex
            .networks
            .iter()
            .find(|n| n.state == NetworkState::Failed && Some(&n.reference) == failing.as_ref())
            .or_else(|| ex.networks.iter().find(|n| n.state == NetworkState::Failed))
            .and_then(|n| n.reason.clone())
            .unwrap_or_else(|| short_reason(&e.to_string()));
        let subject = failing.as_deref().map(|n| format!("{n}: ")).unwrap_or_default();
        ex.outcome = Outcome {
            succeeds: false,
            summary: format!(
                "{subject}{reason} — the ADD fails before any delegate runs; nothing is attached and the runtime retries"
            ),
            error: Some(e.to_string()),
            failing_network: failing.clone(),
        };
        ex.problems
            .insert(0, Problem { severity: Severity::Error, code: "add-fails", network: failing, message: reason });
    }

    /// Each network's own state when resolution failed.
    fn diagnose(&self, ex: &mut Explanation, e: &MultusError) {
        let pod = self.req.pod;
        // The networks every pod gets (and the default-network override), without the selection.
        let mut base_pod = pod.clone();
        base_pod.annotations.remove(NETWORKS_ANNOTATION);
        let base = self.resolve(&base_pod);
        let base = match base {
            Ok(b) => b,
            Err(base_error) => {
                let role = if pod.annotation(DEFAULT_NETWORK_ANNOTATION).is_some()
                    && base_error.to_string().contains("tryLoadK8sPodDefaultNetwork")
                {
                    Role::DefaultNetworkOverride
                } else if base_error.network().is_some_and(|n| self.settings.default_networks.iter().any(|d| d == n)) {
                    Role::DefaultNetwork
                } else if base_error.to_string().contains("auxiliary chain") {
                    Role::AuxiliaryChain
                } else if self.settings.cluster_network.is_empty() {
                    Role::StaticDelegate
                } else {
                    Role::ClusterNetwork
                };
                ex.networks.push(NetworkEntry {
                    reference: base_error
                        .network()
                        .map(str::to_string)
                        .unwrap_or_else(|| self.settings.cluster_network.clone()),
                    state: NetworkState::Failed,
                    reason: Some(short_reason(&base_error.to_string())),
                    error: Some(base_error.to_string()),
                    ..empty_entry(role)
                });
                if let Ok(elements) = selection_elements(pod) {
                    for el in elements {
                        ex.networks.push(NetworkEntry {
                            reference: element_reference(&el),
                            state: NetworkState::NotChecked,
                            reason: Some("not looked at: the request fails before the selection".into()),
                            ..empty_entry(Role::Selected)
                        });
                    }
                }
                return;
            }
        };
        let base_delegates: Vec<&Delegate> = base
            .delegates
            .iter()
            .filter(|d| {
                self.settings.auxiliary_cni_chain_name.is_empty()
                    || d.network_name() != self.settings.auxiliary_cni_chain_name
                    || !d.is_conflist()
            })
            .collect();
        let roles = self.roles(&base.delegates, 0);
        for (i, (d, role)) in base_delegates.iter().zip(roles).enumerate() {
            ex.networks.push(self.entry(role, d, i, None));
        }
        let elements = match selection_elements(pod) {
            Ok(e) => e,
            Err(parse_error) => {
                ex.networks.push(NetworkEntry {
                    reference: pod.annotation(NETWORKS_ANNOTATION).unwrap_or("").to_string(),
                    state: NetworkState::Failed,
                    reason: Some(format!("the {NETWORKS_ANNOTATION} annotation cannot be parsed: {parse_error}")),
                    ..empty_entry(Role::Selected)
                });
                return;
            }
        };
        for el in &elements {
            let mut one = pod.clone();
            let annotation = serde_json::to_string(&[el]).unwrap_or_default();
            one.annotations.insert(NETWORKS_ANNOTATION.into(), annotation);
            match self.resolve(&one) {
                Ok(r) => match r.delegates.get(base_delegates.len()) {
                    Some(d) => ex.networks.push(self.entry(Role::Selected, d, base_delegates.len(), None)),
                    None => ex.networks.push(NetworkEntry {
                        reference: element_reference(el),
                        state: NetworkState::Resolves,
                        ..empty_entry(Role::Selected)
                    }),
                },
                Err(err) => {
                    let reason = self.element_reason(el, &err);
                    ex.networks.push(NetworkEntry {
                        reference: element_reference(el),
                        state: NetworkState::Failed,
                        reason: Some(reason.clone()),
                        error: Some(err.to_string()),
                        ..empty_entry(Role::Selected)
                    });
                    if e.network() != Some(element_reference(el).as_str()) {
                        ex.problems.push(Problem {
                            severity: Severity::Error,
                            code: "network-fails",
                            network: Some(element_reference(el)),
                            message: format!("also fails: {reason}"),
                        });
                    }
                }
            }
        }
    }

    fn resolve(&self, pod: &PodInfo) -> Result<Resolved, MultusError> {
        resolve::resolve_add_delegates(
            self.settings,
            Some(self.who),
            Some(pod),
            self.req.nads,
            &mut Devices(self.req.devices),
        )
    }

    /// A short reason for a selected network that failed on its own.
    fn element_reason(&self, el: &NetworkSelectionElement, err: &MultusError) -> String {
        let s = self.settings;
        let pod_ns = &self.req.pod.namespace;
        if s.namespace_isolation && &el.namespace != pod_ns && !s.global_namespaces.contains(&el.namespace) {
            return format!(
                "namespace isolation: a pod in {pod_ns} may only use networks of {pod_ns} and of {}",
                s.global_namespaces.join(", ")
            );
        }
        if self.req.nads.get_nad(&el.namespace, &el.name).is_none() {
            return format!(
                "no NetworkAttachmentDefinition {}/{} (or not yet in the daemon's cache)",
                el.namespace, el.name
            );
        }
        format!("its config is refused: {}", short_reason(&err.to_string()))
    }
}

/// The text of a plugin's failed ADD as the daemon's libcni runtime reports it.
fn plugin_failure(plugin: &PluginEntry, error: ExecError) -> String {
    RuntimeError::Plugin {
        plugin_type: plugin.plugin_type.clone(),
        plugin_name: plugin.name.clone(),
        command: cni::Command::Add,
        error,
    }
    .to_string()
}

/// The part of a daemon error after its context chain.
fn short_reason(text: &str) -> String {
    for marker in ["failed getting the delegate: ", "GetDefaultNetworks: ", "Multus: "] {
        if let Some((_, tail)) = text.rsplit_once(marker) {
            return tail.trim_start_matches("getKubernetesDelegate: ").to_string();
        }
    }
    text.to_string()
}

fn element_reference(el: &NetworkSelectionElement) -> String {
    format!("{}/{}", el.namespace, el.name)
}

fn empty_entry(role: Role) -> NetworkEntry {
    NetworkEntry {
        index: None,
        role,
        reference: String::new(),
        state: NetworkState::NotChecked,
        source: None,
        reason: None,
        error: None,
        network_name: None,
        interface: None,
        plugins: Vec::new(),
        cni_args: None,
        capability_args: Map::new(),
        device: None,
        default_route: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus::config::{DaemonConfig, NetConf};
    use multus::model::Nad;
    use serde_json::json;

    type Nads = BTreeMap<(String, String), Nad>;

    fn node(conf: Value) -> NodeConfig {
        NodeConfig {
            daemon_config_source: "test".into(),
            request_config_source: "test".into(),
            daemon: DaemonConfig::from_bytes(b"{}").unwrap(),
            effective: NetConf::from_bytes(conf.to_string().as_bytes()).map_err(|e| e.to_string()),
            notes: Vec::new(),
        }
    }

    fn nads(list: &[(&str, &str)]) -> Nads {
        list.iter()
            .map(|(ns, name)| {
                let config = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge"}).to_string();
                let nad = Nad { namespace: ns.to_string(), name: name.to_string(), config, ..Default::default() };
                ((ns.to_string(), name.to_string()), nad)
            })
            .collect()
    }

    fn pod(ns: &str, annotations: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: "p".into(),
            uid: "u".into(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn run(pod: &PodInfo, nads: &Nads, node: &NodeConfig) -> Explanation {
        explain(&ExplainRequest {
            pod,
            nads,
            node,
            devices: None,
            plugin_dirs: None,
            ifname: "eth0",
            container_id: "c",
        })
    }

    fn roles(ex: &Explanation) -> Vec<(Role, Option<&str>)> {
        ex.networks.iter().map(|n| (n.role, n.interface.as_deref())).collect()
    }

    #[test]
    fn roles_follow_the_resolvers_order() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("10-cluster.conflist");
        std::fs::write(&cluster, r#"{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge"}]}"#).unwrap();
        std::fs::create_dir(dir.path().join("aux")).unwrap();
        std::fs::write(dir.path().join("aux/10-tuning.conf"), r#"{"type":"tuning"}"#).unwrap();
        let node = node(json!({"cniVersion": "1.0.0", "clusterNetwork": cluster, "defaultNetworks": ["extra"],
            "auxiliaryCNIChainName": "aux"}));
        let n = nads(&[("kube-system", "extra"), ("kube-system", "alt"), ("default", "a")]);

        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt"), (NETWORKS_ANNOTATION, "a")]);
        let ex = run(&p, &n, &node);
        assert!(ex.outcome.succeeds, "{:?}", ex.outcome);
        assert_eq!(
            roles(&ex),
            [
                (Role::DefaultNetworkOverride, Some("eth0")),
                (Role::DefaultNetwork, Some("net1")),
                (Role::Selected, Some("net2")),
                (Role::AuxiliaryChain, Some("net3")),
            ]
        );
        assert_eq!(
            ex.networks[3].plugins.iter().map(|p| p.plugin_type.as_str()).collect::<Vec<_>>(),
            ["passthru", "tuning"]
        );

        // No default networks for a system namespace.
        let ex = run(&pod("kube-system", &[(NETWORKS_ANNOTATION, "default/a")]), &n, &node);
        assert_eq!(
            roles(&ex),
            [
                (Role::ClusterNetwork, Some("eth0")),
                (Role::Selected, Some("net1")),
                (Role::AuxiliaryChain, Some("net2"))
            ]
        );
        assert_eq!(ex.networks[0].source.as_deref(), Some(format!("file {}", cluster.display()).as_str()));

        // Static delegates when there is no cluster network.
        let node =
            super::tests::node(json!({"delegates": [{"name": "s1", "type": "bridge"}, {"name": "s2", "type": "ptp"}]}));
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "a")]), &n, &node);
        assert_eq!(
            roles(&ex),
            [
                (Role::StaticDelegate, Some("eth0")),
                (Role::StaticDelegate, Some("net1")),
                (Role::Selected, Some("net2"))
            ]
        );
    }

    #[test]
    fn a_broken_cluster_network_fails_every_pod_and_the_selection_is_not_looked_at() {
        let node = node(json!({"clusterNetwork": "/nonexistent/cluster.conflist"}));
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "a,b")]), &nads(&[("default", "a")]), &node);
        assert!(ex.fails());
        assert!(ex.outcome.error.as_deref().unwrap().contains("failed to get clusterNetwork"), "{:?}", ex.outcome);
        let states: Vec<(Role, NetworkState)> = ex.networks.iter().map(|n| (n.role, n.state)).collect();
        assert_eq!(
            states,
            [
                (Role::ClusterNetwork, NetworkState::Failed),
                (Role::Selected, NetworkState::NotChecked),
                (Role::Selected, NetworkState::NotChecked)
            ]
        );
    }

    #[test]
    fn every_failing_selected_network_is_named() {
        let node = node(json!({"clusterNetwork": "cluster"}));
        let n = nads(&[("kube-system", "cluster"), ("default", "ok")]);
        let mut bad = n.clone();
        bad.insert(
            ("default".into(), "broken".into()),
            Nad { namespace: "default".into(), name: "broken".into(), config: "{".into(), ..Default::default() },
        );
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "missing,ok,broken")]), &bad, &node);
        let states: Vec<(&str, NetworkState)> = ex.networks.iter().map(|n| (n.reference.as_str(), n.state)).collect();
        assert_eq!(
            states,
            [
                ("cluster", NetworkState::Resolves),
                ("default/missing", NetworkState::Failed),
                ("default/ok", NetworkState::Resolves),
                ("default/broken", NetworkState::Failed),
            ]
        );
        assert_eq!(ex.outcome.failing_network.as_deref(), Some("default/missing"));
        assert!(
            ex.networks[3].reason.as_deref().unwrap().starts_with("its config is refused: "),
            "{:?}",
            ex.networks[3]
        );
        assert!(
            ex.problems.iter().any(|p| p.code == "network-fails" && p.network.as_deref() == Some("default/broken"))
        );
        // The event the daemon emits for the first one.
        assert_eq!(ex.events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["NoNetworkFound"]);

        // A selection that does not parse.
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "[{")]), &n, &node);
        assert!(ex.fails());
        assert_eq!(ex.networks.last().unwrap().state, NetworkState::Failed);
    }

    #[test]
    fn an_unparsable_request_config_fails_every_add() {
        let ex = run(&pod("default", &[]), &nads(&[]), &node(json!({"name": "no cluster network"})));
        assert!(ex.fails());
        assert_eq!(
            ex.config.error.as_deref(),
            Some("LoadNetConf: at least one delegate/clusterNetwork must be specified")
        );
        assert!(ex.networks.is_empty());
    }

    #[test]
    fn a_malformed_mac_request_fails_the_plan_and_the_current_status_is_shown() {
        let node = node(json!({"clusterNetwork": "cluster"}));
        let n = nads(&[("kube-system", "cluster"), ("default", "a")]);
        let status = r#"[{"name":"cluster","interface":"eth0","ips":["10.0.0.5"],"default":true,"dns":{}}]"#;
        let p = pod(
            "default",
            &[(NETWORKS_ANNOTATION, r#"[{"name":"a","mac":"not-a-mac"}]"#), (NETWORK_STATUS_ANNOTATION, status)],
        );
        let ex = run(&p, &n, &node);
        // The selection parser already refuses the MAC: the daemon fails before planning.
        assert!(ex.fails());
        assert_eq!(ex.current_status.as_ref().unwrap()[0].interface, "eth0");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use multus::config::{DaemonConfig, NetConf};
    use multus::model::Nad;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Any annotation and NAD config gives an explanation, and "fails" agrees with the outcome.
        #[test]
        fn explain_never_panics(
            networks in "[a-z0-9/@, \\[\\]{}\":-]{0,40}",
            default_net in proptest::option::of("[a-z/]{0,8}"),
            config in "[a-z{}\":, \\[\\]]{0,40}",
            isolation: bool,
        ) {
            let node = NodeConfig {
                daemon_config_source: String::new(),
                request_config_source: String::new(),
                daemon: DaemonConfig::from_bytes(b"{}").unwrap(),
                effective: NetConf::from_bytes(
                    serde_json::json!({"clusterNetwork": "c", "namespaceIsolation": isolation}).to_string().as_bytes(),
                )
                .map_err(|e| e.to_string()),
                notes: Vec::new(),
            };
            let mut nads = BTreeMap::new();
            for (ns, name, config) in [("kube-system", "c", r#"{"name":"c","type":"bridge"}"#.to_string()), ("default", "a", config.clone()), ("x", "b", config)] {
                nads.insert((ns.to_string(), name.to_string()), Nad { namespace: ns.into(), name: name.into(), config, ..Default::default() });
            }
            let mut annotations = BTreeMap::new();
            annotations.insert(NETWORKS_ANNOTATION.to_string(), networks);
            if let Some(d) = default_net {
                annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
            }
            let pod = PodInfo { namespace: "default".into(), name: "p".into(), annotations, ..Default::default() };
            let ex = explain(&ExplainRequest { pod: &pod, nads: &nads, node: &node, devices: None, plugin_dirs: None, ifname: "eth0", container_id: "c" });
            if !ex.outcome.succeeds {
                prop_assert!(ex.fails());
                prop_assert!(ex.outcome.error.is_some());
            }
            let _ = crate::render::explanation(&ex);
        }
    }
}
