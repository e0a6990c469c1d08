//! NADs and files → the delegate list of a request (spec §5.3 steps 4–6, §5.6–§5.11, §6.1 step 6,
//! §7).
//!
//! Order of the list: cluster network (master, index 0) or static delegates, then
//! `defaultNetworks` (not for pods in `systemNamespaces`), then the networks of the selection
//! annotation, then the auxiliary chain. The default-network annotation replaces delegate 0.
//!
//! Error texts are the Go reference's full chains, e.g. `Multus: [default/pod/uid]: error loading
//! k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod:
//! GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a
//! network-attachment-definition (x) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io "x" not found`.
//! Events to emit (`NoNetworkFound`) and log-only notes come back as [`Warning`]s, also attached
//! to errors ([`MultusError::warnings`]).
//!
//! Decisions:
//!
//! * **device IDs (quirk 25)** — one allocator is shared by every network of the request,
//!   including the default-network annotation (the reference gives that one its own map, so two
//!   networks could get the same device). When the annotation replaces the cluster network, the
//!   device the cluster network took is released first, so the override gets the same ID as in
//!   the reference and later networks never get a duplicate.
//! * **namespace isolation** is checked per element in annotation order, interleaved with the NAD
//!   lookups, so the first failing element decides the error as in the reference.
//! * the gateway check also runs when only the default-network annotation carries a
//!   `default-route` (the reference skips it without a selection annotation).
//! * **quirk 27** — the auxiliary chain keeps `net<N>` naming and an invalid chain name or a
//!   loading error still disables it silently for the pod (a log-only [`Warning`] says why).
//! * the DEL recompute path (cache missing, pod known) also appends the auxiliary chain, which
//!   the ADD ran, so that it is deleted too.

use crate::default_route::apply_gateway_check;
use crate::delegate::{
    Budget, Delegate, conf_files, config_from_dir, config_from_nad, load_conflist_file, load_delegate,
    load_delegate_from_conflist, load_delegate_within,
};
use crate::error::{ErrorKind, MultusError, PodRef, Warning};
use crate::model::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NadLookup, NetworkSelectionElement, PodInfo};
use crate::selection::{check_namespace_isolation, parse_default_network, parse_network_selection};
use cni::conf::NetConfList;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most bytes of delegate config the NetworkAttachmentDefinitions of one pod may produce
/// together (their configs with the selection's `cni-args` injected). The API server stores a NAD
/// of up to about 1.5 MB and a pod may name up to 128 networks — a NAD repeatedly, or a conflist
/// that gets the `cni-args` in every plugin — so without a limit one pod could make the daemon
/// hold hundreds of MB. Real pods use a few KB.
pub const MAX_POD_NAD_CONFIG_BYTES: usize = 4 << 20;

/// The parts of the Multus config that resolution reads (the daemon fills it from its NetConf).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveSettings {
    /// `cniVersion` of the request, given to configs loaded from files and to the auxiliary chain.
    pub cni_version: String,
    /// Empty: use `static_delegates`.
    pub cluster_network: String,
    /// `defaultNetworks`: networks attached to every pod outside `system_namespaces`.
    pub default_networks: Vec<String>,
    /// `multusNamespace`: where NADs named without a namespace by the config are looked up.
    pub multus_namespace: String,
    /// `confDir`: CNI configs for NADs with an empty spec and networks named by file.
    pub conf_dir: PathBuf,
    /// `systemNamespaces`: namespaces whose pods get no `default_networks`.
    pub system_namespaces: Vec<String>,
    /// `namespaceIsolation`: selections may only name NADs of the pod's namespace or of `global_namespaces`.
    pub namespace_isolation: bool,
    /// Already split and trimmed (`["default"]` when unset).
    pub global_namespaces: Vec<String>,
    /// `auxiliaryCNIChainName`: the auxiliary chain appended as the last delegate; empty → none.
    pub auxiliary_cni_chain_name: String,
    /// The `delegates` list, used when `cluster_network` is empty (first = master).
    pub static_delegates: Vec<Value>,
}

impl Default for ResolveSettings {
    fn default() -> Self {
        Self {
            cni_version: String::new(),
            cluster_network: String::new(),
            default_networks: Vec::new(),
            multus_namespace: "kube-system".into(),
            conf_dir: PathBuf::from("/etc/cni/multus/net.d"),
            system_namespaces: vec!["kube-system".into()],
            namespace_isolation: false,
            global_namespaces: vec!["default".into()],
            auxiliary_cni_chain_name: String::new(),
            static_delegates: Vec::new(),
        }
    }
}

impl ResolveSettings {
    /// The settings of an effective request config (§2.4), as every ADD, DEL, STATUS and GC
    /// resolves with them; one mapping so that the daemon and `multusctl explain` cannot differ.
    pub fn from_netconf(conf: &crate::config::NetConf) -> Self {
        Self {
            cni_version: conf.cni_version.clone(),
            cluster_network: conf.cluster_network.clone(),
            default_networks: conf.default_networks.clone(),
            multus_namespace: conf.multus_namespace.clone(),
            conf_dir: PathBuf::from(&conf.conf_dir),
            system_namespaces: conf.system_namespaces.clone(),
            namespace_isolation: conf.namespace_isolation,
            global_namespaces: conf.non_isolated_namespaces.clone(),
            auxiliary_cni_chain_name: conf.auxiliary_cni_chain_name.clone(),
            static_delegates: conf.delegates.iter().map(|m| Value::Object(m.clone())).collect(),
        }
    }
}

/// A failed device lookup, with the stage the reference names in its error chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if *.client { "failed to get a ResourceClient instance" } else { "failed to get resourceMap from ResourceClient" })]
pub struct DeviceLookupError {
    /// `true`: the client could not be built (kubelet socket, checkpoint file); `false`: the
    /// lookup itself failed (pod arguments, DRA).
    pub client: bool,
    /// What failed.
    pub message: String,
}

impl DeviceLookupError {
    /// The device source could not be reached or read.
    pub fn client(message: impl Into<String>) -> Self {
        Self { client: true, message: message.into() }
    }

    /// The source answered but the pod's devices could not be determined.
    pub fn resource_map(message: impl Into<String>) -> Self {
        Self { client: false, message: message.into() }
    }
}

/// Device IDs allocated to the pod per resource name (§5.10.1). The daemon implements it over
/// kubelet/DRA (built lazily, once per request); an error fails the resolution.
pub trait DeviceIdSource {
    /// All device IDs of `resource_name` for the pod, in allocation order (sorted).
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError>;
}

impl DeviceIdSource for BTreeMap<String, Vec<String>> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(self.get(resource_name).cloned().unwrap_or_default())
    }
}

/// Devices looked up beforehand; a failed lookup fails the resolution where the first network
/// asks for a device, with the reference's error chain.
impl DeviceIdSource for Result<BTreeMap<String, Vec<String>>, DeviceLookupError> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        match self {
            Ok(map) => map.device_ids(resource_name),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Answers no device and notes whether any was asked for: a first resolution with it tells
/// whether the pod's devices must be looked up at all (the reference looks them up lazily, only
/// for pods with a network that has a resource name).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceProbe {
    /// Some network asked for a device.
    pub asked: bool,
}

impl DeviceIdSource for DeviceProbe {
    fn device_ids(&mut self, _resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        self.asked = true;
        Ok(Vec::new())
    }
}

/// No devices at all (STATUS/GC, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDevices;

impl DeviceIdSource for NoDevices {
    fn device_ids(&mut self, _resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(Vec::new())
    }
}

/// Hands out each resource's IDs in order, never twice.
struct DeviceAllocator<'a> {
    source: &'a mut dyn DeviceIdSource,
    ids: BTreeMap<String, Vec<String>>,
    used: BTreeMap<String, BTreeSet<String>>,
}

impl DeviceAllocator<'_> {
    fn allocate(&mut self, resource: &str) -> Result<Option<String>, DeviceLookupError> {
        if !self.ids.contains_key(resource) {
            let ids = self.source.device_ids(resource)?;
            self.ids.insert(resource.to_string(), ids);
        }
        let used = self.used.entry(resource.to_string()).or_default();
        let id = self.ids[resource].iter().find(|id| !used.contains(*id)).cloned();
        if let Some(id) = &id {
            used.insert(id.clone());
        }
        Ok(id)
    }

    fn release(&mut self, resource: &str, id: &str) {
        if let Some(used) = self.used.get_mut(resource) {
            used.remove(id);
        }
    }
}

/// The delegate list of a request and the events/notes to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The delegates in execution order, the master first.
    pub delegates: Vec<Delegate>,
    /// Events and log lines to emit whatever the outcome.
    pub warnings: Vec<Warning>,
}

/// An internal failure before the reference's outer prefix is applied.
struct Fail {
    network: Option<String>,
    message: String,
}

impl Fail {
    fn new(network: Option<&str>, message: impl Into<String>) -> Self {
        Self { network: network.map(str::to_string), message: message.into() }
    }
}

struct Resolver<'a> {
    settings: &'a ResolveSettings,
    who: Option<&'a PodRef>,
    pod: Option<&'a PodInfo>,
    nads: &'a dyn NadLookup,
    devices: DeviceAllocator<'a>,
    warnings: Vec<Warning>,
    /// Bytes of NAD-based delegate config still allowed ([`MAX_POD_NAD_CONFIG_BYTES`]).
    nad_bytes_left: usize,
}

/// Go's `os.Stat` error text.
fn stat_error(path: &str, e: &std::io::Error) -> String {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("stat {path}: {reason}")
}

impl<'a> Resolver<'a> {
    fn new(
        settings: &'a ResolveSettings,
        who: Option<&'a PodRef>,
        pod: Option<&'a PodInfo>,
        nads: &'a dyn NadLookup,
        devices: &'a mut dyn DeviceIdSource,
    ) -> Self {
        Self {
            settings,
            who,
            pod,
            nads,
            devices: DeviceAllocator { source: devices, ids: BTreeMap::new(), used: BTreeMap::new() },
            warnings: Vec::new(),
            nad_bytes_left: MAX_POD_NAD_CONFIG_BYTES,
        }
    }

    fn error(&mut self, kind: ErrorKind, fail: Fail, prefix: &str) -> MultusError {
        let message = format!("{prefix}{}", fail.message);
        let e = match fail.network {
            Some(n) => MultusError::command_for_network(self.who, kind, n, message),
            None => MultusError::command(self.who, kind, message),
        };
        e.with_warnings(std::mem::take(&mut self.warnings))
    }

    /// `getKubernetesDelegate`. Messages start with `getKubernetesDelegate:` or come from loading.
    fn kubernetes_delegate(&mut self, el: &NetworkSelectionElement) -> Result<Delegate, String> {
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
            return Err(format!("getKubernetesDelegate: {msg}"));
        };
        let mut device_id = String::new();
        let resource_name = nad.resource_name().unwrap_or("").to_string();
        let pod_named = self.pod.is_some_and(|p| !p.name.is_empty() && !p.namespace.is_empty());
        if !resource_name.is_empty() && pod_named {
            device_id = self
                .devices
                .allocate(&resource_name)
                .map_err(|e| format!("getKubernetesDelegate: {e}"))?
                .unwrap_or_default();
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
        let result = config_from_nad(&nad.name, &nad.config, &self.settings.conf_dir).and_then(|bytes| {
            load_delegate_within(&bytes, Some(el), &device_id, &resource_name, budget).map_err(|e| e.to_string())
        });
        if let Ok(d) = &result {
            self.nad_bytes_left = self.nad_bytes_left.saturating_sub(d.bytes().len());
        }
        if result.is_err() && !device_id.is_empty() {
            self.devices.release(&resource_name, &device_id);
        }
        result
    }

    /// `getNetDelegate`: a `clusterNetwork`/`defaultNetworks` value (§5.6).
    fn net_delegate(&mut self, value: &str) -> Result<Delegate, String> {
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
                return load_delegate(&bytes, None, "", "").map_err(|e| e.to_string());
            }
        } else {
            let path = Path::new(value);
            let meta = std::fs::metadata(path).map_err(|e| stat_error(value, &e))?;
            if meta.is_dir() {
                let files = conf_files(path, &[".conf", ".conflist"]).map_err(|e| e.to_string())?;
                if !files.is_empty() {
                    let bytes = config_from_dir("", path)?;
                    return load_delegate(&bytes, None, "", "").map_err(|e| e.to_string());
                }
            } else if value.ends_with(".conflist") {
                if !meta.is_file() {
                    return Err(format!("error loading CNI conflist file {value}: not a regular file"));
                }
                let list =
                    load_conflist_file(path).map_err(|e| format!("error loading CNI conflist file {value}: {e}"))?;
                return load_delegate_from_conflist(&list, None, "", "").map_err(|e| e.to_string());
            } else {
                let bytes = std::fs::read(path).map_err(|e| format!("error loading CNI config file {value}: {e}"))?;
                let map = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => {
                        return Err(format!(
                            "error loading CNI config file {value}: error parsing configuration: expected a JSON object"
                        ));
                    }
                    Err(e) => {
                        return Err(format!("error loading CNI config file {value}: error parsing configuration: {e}"));
                    }
                };
                if map.get("type").and_then(Value::as_str).unwrap_or("").is_empty() {
                    return Err(format!(
                        "error loading CNI config file {value}: no 'type'; perhaps this is a .conflist?"
                    ));
                }
                return load_delegate(&bytes, None, "", "").map_err(|e| e.to_string());
            }
        }
        Err(format!("getNetDelegate: cannot find network: {value}"))
    }

    /// Cluster network + default networks, or the static delegates. Errors are complete texts
    /// (without the `Multus: [...]: ` prefix).
    fn base_delegates(&mut self) -> Result<Vec<Delegate>, (ErrorKind, Fail)> {
        let settings = self.settings;
        if settings.cluster_network.is_empty() {
            if settings.static_delegates.is_empty() {
                return Err((
                    ErrorKind::NetConf,
                    Fail::new(
                        None,
                        "error loading netconf: LoadNetConf: at least one delegate/clusterNetwork must be specified",
                    ),
                ));
            }
            let mut out = Vec::new();
            for (idx, raw) in settings.static_delegates.iter().enumerate() {
                let bytes = serde_json::to_vec(raw).unwrap_or_default();
                let mut d = load_delegate(&bytes, None, "", "").map_err(|e| {
                    (
                        ErrorKind::NetConf,
                        Fail::new(
                            None,
                            format!("error loading netconf: LoadNetConf: failed to load delegate {idx} config: {e}"),
                        ),
                    )
                })?;
                d.is_master = idx == 0;
                out.push(d);
            }
            return Ok(out);
        }
        let cluster = settings.cluster_network.as_str();
        let mut master = self.net_delegate(cluster).map_err(|reason| {
            self.warnings.push(Warning::log("ClusterNetworkError", format!("clusterNetwork {cluster}: {reason}")));
            (
                ErrorKind::DefaultNetworks,
                Fail::new(
                    Some(cluster),
                    format!(
                        "failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork {cluster} in namespace {}",
                        settings.multus_namespace
                    ),
                ),
            )
        })?;
        master.is_master = true;
        let mut out = vec![master];
        if let Some(pod) = self.pod
            && !settings.system_namespaces.contains(&pod.namespace)
        {
            for value in &settings.default_networks {
                let d = self.net_delegate(value).map_err(|e| {
                    (
                        ErrorKind::DefaultNetworks,
                        Fail::new(Some(value), format!("failed to get clusterNetwork/defaultNetworks: {e}")),
                    )
                })?;
                out.push(d);
            }
        }
        Ok(out)
    }

    /// `TryLoadPodDelegates`: default-network annotation, selection annotation, gateway check.
    /// On error `delegates` holds what was resolved before the failing step.
    fn pod_delegates(&mut self, delegates: &mut Vec<Delegate>) -> Result<(), Fail> {
        let Some(pod) = self.pod else { return Ok(()) };
        let settings = self.settings;
        if let Some(annotation) = pod.annotation(DEFAULT_NETWORK_ANNOTATION) {
            const CTX: &str = "TryLoadPodDelegates: error in loading K8s cluster default network from pod annotation: ";
            let el = parse_default_network(annotation, &settings.multus_namespace)
                .map_err(|e| Fail::new(None, format!("{CTX}{e}")))?;
            if let Some(old) = delegates.first()
                && !old.resource_name.is_empty()
                && !old.device_id.is_empty()
            {
                let (r, id) = (old.resource_name.clone(), old.device_id.clone());
                self.devices.release(&r, &id);
            }
            let mut d = self.kubernetes_delegate(&el).map_err(|e| {
                Fail::new(Some(&el.name), format!("{CTX}tryLoadK8sPodDefaultNetwork: failed getting the delegate: {e}"))
            })?;
            d.is_master = true;
            match delegates.first_mut() {
                Some(first) => *first = d,
                None => delegates.push(d),
            }
        }

        let annotation = pod.annotation(NETWORKS_ANNOTATION).unwrap_or("");
        if !annotation.is_empty() {
            let elements =
                parse_network_selection(annotation, &pod.namespace).map_err(|e| Fail::new(None, e.to_string()))?;
            const CTX: &str = "TryLoadPodDelegates: error in getting k8s network for pod: ";
            let mut added = Vec::with_capacity(elements.len());
            for el in &elements {
                let display = format!("{}/{}", el.namespace, el.name);
                if settings.namespace_isolation {
                    check_namespace_isolation(&pod.namespace, std::slice::from_ref(el), &settings.global_namespaces)
                        .map_err(|e| Fail::new(Some(&display), format!("{CTX}{e}")))?;
                }
                let d = self.kubernetes_delegate(el).map_err(|e| {
                    Fail::new(Some(&display), format!("{CTX}GetNetworkDelegates: failed getting the delegate: {e}"))
                })?;
                added.push(d);
            }
            delegates.extend(added);
        }
        apply_gateway_check(delegates).map_err(|e| Fail::new(None, e.to_string()))
    }

    /// §5.11: append the auxiliary chain when it has more than the `passthru` plugin.
    fn auxiliary_chain(&mut self, delegates: &mut Vec<Delegate>) -> Result<(), Fail> {
        let settings = self.settings;
        let aux = settings.auxiliary_cni_chain_name.as_str();
        if aux.is_empty() {
            return Ok(());
        }
        if !settings.cluster_network.contains('/') {
            return Err(Fail::new(
                None,
                format!(
                    "auxiliary chain used but ClusterNetwork must be a path, and it is not a path: {}",
                    settings.cluster_network
                ),
            ));
        }
        let raw = json!({"cniVersion": settings.cni_version, "name": aux, "plugins": [{"type": "passthru", "name": "passthru-cni"}]});
        let disabled = |this: &mut Self, why: String| {
            this.warnings
                .push(Warning::log("AuxiliaryChainDisabled", format!("auxiliary CNI chain {aux:?} disabled: {why}")));
            Ok(())
        };
        let mut list = match NetConfList::from_value(raw) {
            Ok(l) => l,
            Err(e) => return disabled(self, e.to_string()),
        };
        let dir = Path::new(&settings.cluster_network).parent().unwrap_or(Path::new("/"));
        if let Err(e) = crate::delegate::append_subdirectory_plugins(&mut list, dir) {
            return disabled(self, e);
        }
        if list.plugins.len() > 1 {
            match load_delegate_from_conflist(&list, None, "", "") {
                Ok(d) => delegates.push(d),
                Err(e) => return disabled(self, e.to_string()),
            }
        }
        Ok(())
    }

    fn finish(self, delegates: Vec<Delegate>) -> Resolved {
        Resolved { delegates, warnings: self.warnings }
    }
}

/// The NADs (`(namespace, name)`) a resolution of the pod may look up, in the order it looks
/// them up: the cluster network and `defaultNetworks` given by name (in `multusNamespace`), the
/// default-network annotation and the selection annotation's elements (up to the first that
/// namespace isolation refuses). The daemon fetches the ones its node has not cached before
/// resolving, so that resolution itself stays synchronous and pure. An annotation that does not
/// parse names nothing (resolution reports it).
pub fn nad_keys(settings: &ResolveSettings, pod: Option<&PodInfo>) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let by_name = |value: &str| (!value.contains('/')).then(|| (settings.multus_namespace.clone(), value.to_string()));
    if !settings.cluster_network.is_empty() {
        keys.extend(by_name(&settings.cluster_network));
        if let Some(pod) = pod
            && !settings.system_namespaces.contains(&pod.namespace)
        {
            keys.extend(settings.default_networks.iter().filter_map(|v| by_name(v)));
        }
    }
    let Some(pod) = pod else { return keys };
    if let Some(annotation) = pod.annotation(DEFAULT_NETWORK_ANNOTATION)
        && let Ok(el) = parse_default_network(annotation, &settings.multus_namespace)
    {
        keys.push((el.namespace, el.name));
    }
    let annotation = pod.annotation(NETWORKS_ANNOTATION).unwrap_or("");
    if !annotation.is_empty()
        && let Ok(elements) = parse_network_selection(annotation, &pod.namespace)
    {
        for el in elements {
            if settings.namespace_isolation
                && check_namespace_isolation(&pod.namespace, std::slice::from_ref(&el), &settings.global_namespaces)
                    .is_err()
            {
                break;
            }
            if !keys.iter().any(|(ns, n)| *ns == el.namespace && *n == el.name) {
                keys.push((el.namespace, el.name));
            }
        }
    }
    keys
}

/// ADD (§5.3 steps 4–6): cluster/default networks (or static delegates), pod annotations,
/// gateway check, auxiliary chain. `who` is the pod identity from `CNI_ARGS` (error prefixes);
/// `pod` the pod object (`None`: no annotations, no default networks, no device IDs).
pub fn resolve_add_delegates(
    settings: &ResolveSettings,
    who: Option<&PodRef>,
    pod: Option<&PodInfo>,
    nads: &dyn NadLookup,
    devices: &mut dyn DeviceIdSource,
) -> Result<Resolved, MultusError> {
    let mut r = Resolver::new(settings, who, pod, nads, devices);
    let mut delegates = match r.base_delegates() {
        Ok(d) => d,
        Err((kind, fail)) => return Err(r.error(kind, fail, "")),
    };
    if let Err(fail) = r.pod_delegates(&mut delegates) {
        return Err(r.error(ErrorKind::PodDelegates, fail, "error loading k8s delegates k8s args: "));
    }
    if let Err(fail) = r.auxiliary_chain(&mut delegates) {
        return Err(r.error(ErrorKind::AuxiliaryChain, fail, ""));
    }
    Ok(r.finish(delegates))
}

/// DEL without a cache file and with a known pod (§6.1 step 6): as ADD, but a failure of the
/// annotation networks keeps what was resolved (a log-only warning says why). Device IDs come
/// from `devices` again (the reference re-reads them too).
pub fn resolve_del_delegates(
    settings: &ResolveSettings,
    who: Option<&PodRef>,
    pod: &PodInfo,
    nads: &dyn NadLookup,
    devices: &mut dyn DeviceIdSource,
) -> Result<Resolved, MultusError> {
    let mut r = Resolver::new(settings, who, Some(pod), nads, devices);
    let mut delegates = match r.base_delegates() {
        Ok(d) => d,
        Err((kind, fail)) => return Err(r.error(kind, fail, "")),
    };
    if let Err(fail) = r.pod_delegates(&mut delegates) {
        if delegates.is_empty() {
            return Err(r.error(ErrorKind::DelDelegates, fail, "failed to get delegates: "));
        }
        r.warnings.push(Warning::log(
            "DelegatesIncomplete",
            format!("Multus: failed to get delegates: {}, but continue to delete clusterNetwork", fail.message),
        ));
    }
    if let Err(fail) = r.auxiliary_chain(&mut delegates) {
        r.warnings.push(Warning::log("AuxiliaryChainDisabled", fail.message));
    }
    Ok(r.finish(delegates))
}

/// STATUS and GC (§7): the cluster network only, without a pod (no default networks, no device
/// IDs); with static delegates, the first one. The result has exactly one delegate, the master.
pub fn resolve_cluster_network(settings: &ResolveSettings, nads: &dyn NadLookup) -> Result<Resolved, MultusError> {
    let mut devices = NoDevices;
    let mut r = Resolver::new(settings, None, None, nads, &mut devices);
    let mut delegates = match r.base_delegates() {
        Ok(d) => d,
        Err((kind, fail)) => return Err(r.error(kind, fail, "")),
    };
    delegates.truncate(1);
    Ok(r.finish(delegates))
}

#[cfg(test)]
mod tests;

/// Never panic on arbitrary input: configs, annotations, caches, results.
#[cfg(test)]
mod proptests;
