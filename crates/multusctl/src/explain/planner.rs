//! The [`Planner`]: fills an [`Explanation`] from the resolver's delegate list (or from why
//! resolving failed), predicting what the daemon only learns while it runs.

use super::{
    Binary, DeviceEntry, DeviceState, Devices, EventNote, ExplainRequest, Explanation, NetworkEntry, NetworkState,
    Outcome, PluginEntry, Problem, Role, RouteEntry, Severity,
};
use cni::CniError;
use cni::conf::PluginConf;
use cni::error::code;
use cni::exec::ExecError;
use cni::runtime::{RuntimeConf, RuntimeError, runtime_config_for};
use multus::delegate::Delegate;
use multus::error::{MultusError, PodRef, Warning};
use multus::model::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelectionElement, PodInfo};
use multus::plan::{self, DelegateInvocation, Operation, PlanContext};
use multus::resolve::{self, ResolveSettings, Resolved};
use multus::selection::parse_network_selection;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What every step of an explanation needs: the request, the resolver's settings, the pod and
/// the planning context the daemon would use.
pub(super) struct Planner<'a> {
    pub(super) req: &'a ExplainRequest<'a>,
    pub(super) settings: &'a ResolveSettings,
    pub(super) who: &'a PodRef,
    pub(super) ctx: &'a PlanContext<'a>,
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
    pub(super) fn planned(&self, ex: &mut Explanation, resolved: Resolved) {
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
    pub(super) fn failed(&self, ex: &mut Explanation, e: &MultusError) {
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
