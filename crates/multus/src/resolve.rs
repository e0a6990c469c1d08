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
mod tests {
    use super::*;
    use crate::model::Nad;
    use serde_json::json;

    type Nads = BTreeMap<(String, String), Nad>;

    fn nads(list: &[(&str, &str, &str)]) -> Nads {
        list.iter()
            .map(|(ns, name, config)| {
                (
                    (ns.to_string(), name.to_string()),
                    Nad {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        config: config.to_string(),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn with_resource(mut n: Nads, ns: &str, name: &str, resource: &str) -> Nads {
        let nad = n.get_mut(&(ns.to_string(), name.to_string())).unwrap();
        nad.annotations.insert(crate::model::RESOURCE_NAME_ANNOTATION.into(), resource.into());
        n
    }

    fn pod(ns: &str, annotations: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: "pod1".into(),
            uid: "uid1".into(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn who() -> PodRef {
        PodRef::new("default", "pod1", "uid1")
    }

    /// A confDir with a cluster network file; returns (tempdir, settings).
    fn setup() -> (tempfile::TempDir, ResolveSettings) {
        let dir = tempfile::tempdir().unwrap();
        let conflist = dir.path().join("10-cluster.conflist");
        std::fs::write(&conflist, r#"{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","k":1}]}"#)
            .unwrap();
        let settings = ResolveSettings {
            cni_version: "1.0.0".into(),
            cluster_network: conflist.display().to_string(),
            conf_dir: dir.path().join("multus.d"),
            ..Default::default()
        };
        (dir, settings)
    }

    const MACVLAN: &str = r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","capabilities":{"ips":true}}"#;

    fn names(r: &Resolved) -> Vec<&str> {
        r.delegates.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn comma_annotation_and_missing_nad() {
        // §12.4 item 44
        let (_d, s) = setup();
        let n = nads(&[("default", "macvlan-net", MACVLAN), ("other", "bridge-net", r#"{"type":"bridge"}"#)]);
        let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net@macvlan1, other/bridge-net")]);
        let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["cluster", "default/macvlan-net", "other/bridge-net"]);
        assert!(r.delegates[0].is_master && r.delegates[0].is_conflist());
        assert_eq!(r.delegates[1].ifname_request, "macvlan1");
        assert_eq!(r.delegates[1].network_name(), "macvlan-net");
        assert!(r.warnings.is_empty());

        let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net,no-such-nad")]);
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition (no-such-nad) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"no-such-nad\" not found"
        );
        assert_eq!(e.network(), Some("default/no-such-nad"));
        assert_eq!(e.warnings().len(), 1);
        assert_eq!(e.warnings()[0].reason, "NoNetworkFound");
        assert!(e.warnings()[0].event);
        assert_eq!(
            e.warnings()[0].message,
            "cannot find a network-attachment-definition (no-such-nad) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"no-such-nad\" not found"
        );
    }

    #[test]
    fn json_annotation_default_route_and_errors() {
        // §12.4 items 45-46
        let (_d, s) = setup();
        let n = nads(&[("default", "macvlan-net", MACVLAN), ("kube-system", "sys-net", r#"{"type":"ipvlan"}"#)]);
        let p = pod(
            "default",
            &[(
                NETWORKS_ANNOTATION,
                r#"[{"name":"macvlan-net","ips":["10.1.1.11/24"],"default-route":["10.1.1.254"]},{"name":"sys-net","namespace":"kube-system"}]"#,
            )],
        );
        let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["cluster", "default/macvlan-net", "kube-system/sys-net"]);
        let flags: Vec<(bool, bool)> = r.delegates.iter().map(|d| (d.filter_v4_gateway, d.filter_v6_gateway)).collect();
        assert_eq!(flags, [(true, true), (false, true), (true, true)]);
        assert_eq!(r.delegates[1].default_route, Some(vec!["10.1.1.254".parse().unwrap()]));

        let p = pod("default", &[(NETWORKS_ANNOTATION, r#"[{"name":"macvlan-net""#)]);
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(
            e.to_string().starts_with("Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: "),
            "{e}"
        );

        // ECMP
        let p = pod(
            "default",
            &[(
                NETWORKS_ANNOTATION,
                r#"[{"name":"macvlan-net","default-route":["10.1.1.254"]},{"name":"sys-net","namespace":"kube-system","default-route":["10.2.2.254"]}]"#,
            )],
        );
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: multus does not support ECMP for default-route"
        );
    }

    #[test]
    fn nad_with_empty_spec_and_name_injection() {
        // §12.4 items 47-48
        let (_d, s) = setup();
        std::fs::create_dir_all(&s.conf_dir).unwrap();
        std::fs::write(s.conf_dir.join("10-ondisk.conf"), r#"{"cniVersion":"1.0.0","name":"ondisk","type":"ptp"}"#)
            .unwrap();
        let n = nads(&[
            ("default", "ondisk", ""),
            ("default", "mini", r#"{"type":"mynet"}"#),
            ("default", "missing-file", ""),
        ]);
        let p = pod("default", &[(NETWORKS_ANNOTATION, "ondisk,mini")]);
        let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
        assert_eq!(r.delegates[1].plugin_type(), "ptp");
        assert_eq!(r.delegates[2].network_name(), "mini");
        let p = pod("default", &[(NETWORKS_ANNOTATION, "missing-file")]);
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "no network available in the name missing-file in cni dir {}",
                s.conf_dir.display()
            )),
            "{e}"
        );
        std::fs::write(s.conf_dir.join("05-bad.conf"), "{not json").unwrap();
        let p = pod("default", &[(NETWORKS_ANNOTATION, "ondisk")]);
        assert!(resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).is_err());
    }

    #[test]
    fn cluster_network_from_nad_and_default_networks() {
        // §12.3 item 31, §12.4 item 49
        let (_d, mut s) = setup();
        s.cluster_network = "cluster-nad".into();
        s.default_networks = vec!["extra-nad".into()];
        let n = nads(&[
            ("kube-system", "cluster-nad", r#"{"cniVersion":"1.0.0","name":"c","type":"bridge"}"#),
            ("kube-system", "extra-nad", MACVLAN),
        ]);
        let r = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["kube-system/cluster-nad", "kube-system/extra-nad"]);
        assert!(r.delegates[0].is_master && !r.delegates[1].is_master);
        let r = resolve_add_delegates(&s, Some(&who()), Some(&pod("kube-system", &[])), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["kube-system/cluster-nad"]);

        s.default_networks = vec!["nope".into()];
        let e = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Multus: [default/pod1/uid1]: failed to get clusterNetwork/defaultNetworks: getNetDelegate: cannot find network: nope"
        );
        // the miss emits NoNetworkFound
        assert!(e.warnings().iter().any(|w| w.event && w.reason == "NoNetworkFound"));

        s.cluster_network = "nope".into();
        let e = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Multus: [default/pod1/uid1]: failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork nope in namespace kube-system"
        );
        assert_eq!(e.network(), Some("nope"));
    }

    #[test]
    fn cluster_network_from_file_dir_and_name() {
        // §12.4 item 50
        let (d, mut s) = setup();
        let n = nads(&[]);
        // file path (conflist) done in setup
        let r = resolve_cluster_network(&s, &n).unwrap();
        assert_eq!(names(&r), ["cluster"]);
        // single-plugin file
        let conf = d.path().join("20-single.conf");
        std::fs::write(&conf, r#"{"cniVersion":"1.0.0","name":"single","type":"ptp"}"#).unwrap();
        s.cluster_network = conf.display().to_string();
        assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["single"]);
        std::fs::write(&conf, r#"{"cniVersion":"1.0.0","name":"single"}"#).unwrap();
        let e = resolve_cluster_network(&s, &n).unwrap_err();
        assert!(e.to_string().starts_with(
            "Multus: failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork"
        ));
        assert!(e.warnings().iter().any(|w| w.message.contains("perhaps this is a .conflist?")));
        // directory: first file, no name matching
        s.cluster_network = d.path().display().to_string();
        assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["cluster"]);
        let empty = d.path().join("emptydir");
        std::fs::create_dir(&empty).unwrap();
        s.cluster_network = empty.display().to_string();
        assert!(resolve_cluster_network(&s, &n).is_err());
        // a name from confDir
        std::fs::create_dir_all(&s.conf_dir).unwrap();
        std::fs::write(
            s.conf_dir.join("10-named.conflist"),
            r#"{"cniVersion":"1.0.0","name":"named","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        s.cluster_network = "named".into();
        let r = resolve_cluster_network(&s, &n).unwrap();
        assert_eq!(names(&r), ["named"]);
        assert!(r.delegates[0].is_conflist());
        // nonexistent path, bad confDir
        s.cluster_network = "/nonexistent/x.conf".into();
        assert!(
            resolve_cluster_network(&s, &n).unwrap_err().warnings()[0]
                .message
                .contains("stat /nonexistent/x.conf: no such file or directory")
        );
        s.cluster_network = "named".into();
        s.conf_dir = "/nonexistent".into();
        assert!(resolve_cluster_network(&s, &n).is_err());
    }

    #[test]
    fn default_network_annotation_replaces_master() {
        // §12.4 item 51, §5.7
        let (_d, s) = setup();
        let n = nads(&[
            ("kube-system", "alt", r#"{"cniVersion":"1.0.0","name":"alt","type":"ptp"}"#),
            ("default", "macvlan-net", MACVLAN),
        ]);
        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt@ext0"), (NETWORKS_ANNOTATION, "macvlan-net")]);
        let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["kube-system/alt", "default/macvlan-net"]);
        assert!(r.delegates[0].is_master);
        assert_eq!(r.delegates[0].ifname_request, "ext0");
        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt,alt")]);
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(e.to_string().contains("TryLoadPodDelegates: error in loading K8s cluster default network from pod annotation: tryLoadK8sPodDefaultNetwork: more than one default network is specified"), "{e}");
        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "missing")]);
        let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(e.to_string().contains("tryLoadK8sPodDefaultNetwork: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition (missing) in namespace (kube-system)"), "{e}");
        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "")]);
        assert!(resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).is_err());
    }

    #[test]
    fn settings_from_an_effective_config() {
        let conf = crate::config::NetConf::from_bytes(
            br#"{"cniVersion":"1.0.0","clusterNetwork":"/etc/cni/net.d/10-c.conflist","defaultNetworks":["d1"],
                "multusNamespace":"multus","confDir":"/c","systemNamespaces":["s1","s2"],"namespaceIsolation":true,
                "globalNamespaces":"g1, g2","auxiliaryCNIChainName":"aux","delegates":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(
            ResolveSettings::from_netconf(&conf),
            ResolveSettings {
                cni_version: "1.0.0".into(),
                cluster_network: "/etc/cni/net.d/10-c.conflist".into(),
                default_networks: vec!["d1".into()],
                multus_namespace: "multus".into(),
                conf_dir: PathBuf::from("/c"),
                system_namespaces: vec!["s1".into(), "s2".into()],
                namespace_isolation: true,
                global_namespaces: vec!["g1".into(), "g2".into()],
                auxiliary_cni_chain_name: "aux".into(),
                static_delegates: vec![json!({"type":"bridge"})],
            }
        );
        // The request defaults are the resolver's defaults.
        let conf = crate::config::NetConf::from_bytes(br#"{"clusterNetwork":"c"}"#).unwrap();
        assert_eq!(
            ResolveSettings::from_netconf(&conf),
            ResolveSettings { cluster_network: "c".into(), ..ResolveSettings::default() }
        );
    }

    #[test]
    fn nad_keys_name_every_nad_resolution_may_need() {
        let settings = ResolveSettings {
            cluster_network: "k8s-pod-network".into(),
            default_networks: vec!["extra".into(), "/etc/cni/net.d/x.conf".into()],
            ..Default::default()
        };
        let p = pod(
            "default",
            &[(NETWORKS_ANNOTATION, "a, other/b@net9, a"), (DEFAULT_NETWORK_ANNOTATION, "kube-system/primary")],
        );
        let k = |ns: &str, n: &str| (ns.to_string(), n.to_string());
        assert_eq!(
            nad_keys(&settings, Some(&p)),
            vec![
                k("kube-system", "k8s-pod-network"),
                k("kube-system", "extra"),
                k("kube-system", "primary"),
                k("default", "a"),
                k("other", "b")
            ]
        );
        // No default networks in a system namespace; a path names no NAD; no pod, no annotations.
        let sys = pod("kube-system", &[(NETWORKS_ANNOTATION, "x")]);
        assert_eq!(nad_keys(&settings, Some(&sys)), vec![k("kube-system", "k8s-pod-network"), k("kube-system", "x")]);
        let (_dir, file_settings) = setup();
        assert!(nad_keys(&file_settings, None).is_empty());
        // Namespace isolation stops at the first element it refuses, as resolution does.
        let isolated = ResolveSettings { namespace_isolation: true, ..file_settings };
        let p = pod("default", &[(NETWORKS_ANNOTATION, "a,other/b,c")]);
        assert_eq!(nad_keys(&isolated, Some(&p)), vec![k("default", "a")]);
    }

    #[test]
    fn the_networks_of_one_pod_have_a_size_limit() {
        let (_dir, settings) = setup();
        let big = format!(r#"{{"cniVersion":"1.0.0","type":"macvlan","pad":"{}"}}"#, "x".repeat(1 << 20));
        let plugins: Vec<String> = (0..1000).map(|_| r#"{"type":"tuning"}"#.to_string()).collect();
        let many = format!(r#"{{"cniVersion":"1.0.0","plugins":[{}]}}"#, plugins.join(","));
        let n = nads(&[("default", "big", &big), ("default", "many", &many)]);
        // Three uses of a 1 MiB NAD fit, five do not.
        let ok = pod("default", &[(NETWORKS_ANNOTATION, "big,big,big")]);
        assert_eq!(
            resolve_add_delegates(&settings, Some(&who()), Some(&ok), &n, &mut NoDevices).unwrap().delegates.len(),
            4
        );
        let over = pod("default", &[(NETWORKS_ANNOTATION, "big,big,big,big,big")]);
        let e = resolve_add_delegates(&settings, Some(&who()), Some(&over), &n, &mut NoDevices).unwrap_err();
        assert!(e.to_string().contains("the networks of one pod may use together"), "{e}");
        // cni-args that every one of 1000 plugins would get are refused before they are copied.
        let args = json!({"blob": "y".repeat(10_000)});
        let annotation = json!([{"name": "many", "cni-args": args}]).to_string();
        let p = pod("default", &[(NETWORKS_ANNOTATION, annotation.as_str())]);
        let e = resolve_add_delegates(&settings, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(e.to_string().contains("the delegate config would be 100"), "{e}");
    }

    #[test]
    fn a_missing_nad_can_say_why() {
        struct Refusing;
        impl NadLookup for Refusing {
            fn get_nad(&self, _: &str, _: &str) -> Option<Nad> {
                None
            }
            fn missing_reason(&self, _: &str, name: &str) -> Option<String> {
                Some(format!("{name} is too large"))
            }
        }
        let (_dir, settings) = setup();
        let p = pod("default", &[(NETWORKS_ANNOTATION, "big")]);
        let e = resolve_add_delegates(&settings, Some(&who()), Some(&p), &Refusing, &mut NoDevices).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "cannot find a network-attachment-definition (big) in namespace (default): big is too large"
            ),
            "{e}"
        );
        assert_eq!(
            e.warnings()[0].message,
            "cannot find a network-attachment-definition (big) in namespace (default): big is too large"
        );
    }

    #[test]
    fn namespace_isolation() {
        // §12.4 item 54
        let (_d, mut s) = setup();
        s.namespace_isolation = true;
        let n = nads(&[("kube-system", "net1", MACVLAN), ("test", "local", MACVLAN)]);
        let p = pod("test", &[(NETWORKS_ANNOTATION, "local,kube-system/net1")]);
        let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut NoDevices).unwrap_err();
        assert!(e.to_string().ends_with(": GetNetworkDelegates: namespace isolation enabled, annotation violates permission, pod is in namespace test but refers to target namespace kube-system"), "{e}");
        assert!(e.to_string().starts_with(
            "Multus: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: "
        ));
        s.global_namespaces = vec!["kube-system".into(), "donkey-kong".into()];
        let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut NoDevices).unwrap();
        assert_eq!(r.delegates.len(), 3);
    }

    #[test]
    fn device_ids_consumed_per_resource_and_shared_with_the_override() {
        let (_d, s) = setup();
        let sriov = r#"{"cniVersion":"1.0.0","type":"sriov"}"#;
        let n = nads(&[
            ("default", "a", sriov),
            ("default", "b", sriov),
            ("default", "c", sriov),
            ("kube-system", "alt", sriov),
        ]);
        let n = with_resource(n, "default", "a", "intel.com/sriov");
        let n = with_resource(n, "default", "b", "intel.com/sriov");
        let n = with_resource(n, "default", "c", "intel.com/sriov");
        let n = with_resource(n, "kube-system", "alt", "intel.com/sriov");
        let mut devices: BTreeMap<String, Vec<String>> =
            [("intel.com/sriov".to_string(), vec!["0000:01".to_string(), "0000:02".to_string()])].into();
        let p = pod("default", &[(NETWORKS_ANNOTATION, "a,b,c")]);
        let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut devices).unwrap();
        let ids: Vec<&str> = r.delegates.iter().map(|d| d.device_id.as_str()).collect();
        assert_eq!(ids, ["", "0000:01", "0000:02", ""]);
        let v: Value = serde_json::from_slice(r.delegates[1].bytes()).unwrap();
        assert_eq!(v["pciBusID"], "0000:01");
        assert_eq!(r.delegates[1].resource_name, "intel.com/sriov");
        assert_eq!(r.delegates[3].resource_name, "");

        // the default-network override takes from the same pool (no duplicate)
        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt"), (NETWORKS_ANNOTATION, "a")]);
        let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut devices).unwrap();
        let ids: Vec<&str> = r.delegates.iter().map(|d| d.device_id.as_str()).collect();
        assert_eq!(ids, ["0000:01", "0000:02"]);

        // a failing resource client fails the resolution
        struct Broken;
        impl DeviceIdSource for Broken {
            fn device_ids(&mut self, _: &str) -> Result<Vec<String>, DeviceLookupError> {
                Err(DeviceLookupError::resource_map("kubelet socket unavailable"))
            }
        }
        let p = pod("default", &[(NETWORKS_ANNOTATION, "a")]);
        let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut Broken).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "getKubernetesDelegate: failed to get resourceMap from ResourceClient: kubelet socket unavailable"
            ),
            "{e}"
        );
        let mut unreachable: Result<BTreeMap<String, Vec<String>>, _> =
            Err(DeviceLookupError::client("dial unix /var/lib/kubelet/pod-resources/kubelet.sock: timeout"));
        let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut unreachable).unwrap_err();
        assert!(e.to_string().ends_with("getKubernetesDelegate: failed to get a ResourceClient instance: dial unix /var/lib/kubelet/pod-resources/kubelet.sock: timeout"), "{e}");

        // Only networks with a resource name ask for devices: the probe tells whether to look.
        let mut probe = DeviceProbe::default();
        resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut probe).unwrap();
        assert!(!probe.asked);
        resolve_add_delegates(&s, None, Some(&p), &n, &mut probe).unwrap();
        assert!(probe.asked);

        // A network whose resource has no device left runs without one, and an event says so.
        let mut none: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut none).unwrap();
        assert!(r.warnings.iter().any(|w| w.reason == Warning::NO_DEVICE && w.event), "{:?}", r.warnings);
    }

    #[test]
    fn auxiliary_chain() {
        let (d, mut s) = setup();
        s.auxiliary_cni_chain_name = "vendor-cni-chain".into();
        let n = nads(&[]);
        // no subdirectory: only passthru → not appended
        let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
        assert_eq!(r.delegates.len(), 1);
        std::fs::create_dir(d.path().join("vendor-cni-chain")).unwrap();
        std::fs::write(d.path().join("vendor-cni-chain/10-tuning.conf"), r#"{"type":"tuning","sysctl":{"x":"1"}}"#)
            .unwrap();
        let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["cluster", "vendor-cni-chain"]);
        let aux = &r.delegates[1];
        assert!(!aux.is_master && aux.is_conflist());
        let v: Value = serde_json::from_slice(aux.bytes()).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion":"1.0.0","name":"vendor-cni-chain","plugins":[{"type":"passthru","name":"passthru-cni"},{"type":"tuning","sysctl":{"x":"1"}}]})
        );
        assert_eq!(crate::plan::interface_name(aux, 1, "eth0"), "net1");
        // invalid name → silently disabled (log warning)
        s.auxiliary_cni_chain_name = "bad/name".into();
        let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
        assert_eq!(r.delegates.len(), 1);
        assert!(r.warnings.iter().any(|w| w.reason == "AuxiliaryChainDisabled" && !w.event));
        // cluster network not a path
        s.auxiliary_cni_chain_name = "vendor-cni-chain".into();
        s.cluster_network = "cluster-nad".into();
        let n = nads(&[("kube-system", "cluster-nad", MACVLAN)]);
        let e = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Multus: auxiliary chain used but ClusterNetwork must be a path, and it is not a path: cluster-nad"
        );
    }

    #[test]
    fn del_recompute_keeps_what_resolved() {
        let (_d, s) = setup();
        let n = nads(&[("default", "macvlan-net", MACVLAN)]);
        let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net")]);
        let r = resolve_del_delegates(&s, None, &p, &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["cluster", "default/macvlan-net"]);
        let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net,gone")]);
        let r = resolve_del_delegates(&s, None, &p, &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["cluster"]);
        assert!(r.warnings.iter().any(|w| w.message.starts_with("Multus: failed to get delegates: ")
            && w.message.ends_with(", but continue to delete clusterNetwork")));
        let mut bad = s.clone();
        bad.cluster_network = "/nonexistent.conflist".into();
        assert!(resolve_del_delegates(&bad, None, &p, &n, &mut NoDevices).is_err());
    }

    #[test]
    fn static_delegates_and_status_resolution() {
        let s = ResolveSettings {
            static_delegates: vec![
                json!({"cniVersion":"1.0.0","name":"a","type":"bridge"}),
                json!({"cniVersion":"1.0.0","name":"b","type":"ptp"}),
            ],
            ..Default::default()
        };
        let n = nads(&[]);
        let r = resolve_add_delegates(&s, None, None, &n, &mut NoDevices).unwrap();
        assert_eq!(names(&r), ["a", "b"]);
        assert!(r.delegates[0].is_master && !r.delegates[1].is_master);
        let plans = crate::plan::plan_all(
            &r.delegates,
            &crate::plan::PlanContext { ifname: "eth0", ..Default::default() },
            crate::plan::Operation::Add,
        )
        .unwrap();
        assert_eq!(plans.iter().map(|p| p.ifname.as_str()).collect::<Vec<_>>(), ["eth0", "net1"]);
        assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["a"]);
        let bad = ResolveSettings { static_delegates: vec![json!({"name":"x"})], ..Default::default() };
        assert_eq!(
            resolve_cluster_network(&bad, &n).unwrap_err().to_string(),
            "Multus: error loading netconf: LoadNetConf: failed to load delegate 0 config: LoadDelegateNetConf: failed with: LoadDelegateNetConfList: delegate must have the 'type' or 'plugin' field"
        );
        assert!(resolve_cluster_network(&ResolveSettings::default(), &n).is_err());
    }
}

/// Never panic on arbitrary input: configs, annotations, caches, results.
#[cfg(test)]
mod proptests {
    use super::*;
    use crate::model::Nad;
    use crate::plan::{Operation, PlanContext, RuntimeConfig, plan_invocation};
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "type",
        "name",
        "plugins",
        "args",
        "cni",
        "capabilities",
        "cniVersion",
        "ipam",
        "dns",
        "deviceID",
        "ips",
        "mac",
        "portMappings",
        "bandwidth",
        "routes",
        "dst",
        "gw",
        "ip4",
        "ip6",
        "interfaces",
        "sandbox",
        "interface",
        "address",
        "gateway",
        "default-route",
        "namespace",
        "cni-args",
        "x",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            prop_oneof![
                Just("".to_string()),
                Just("bridge".to_string()),
                Just("0.0.0.0/0".to_string()),
                Just("::/0".to_string()),
                Just("10.1.1.254".to_string()),
                Just("1.0.0".to_string()),
                Just("0.2.0".to_string()),
                "[a-z0-9./:@,-]{0,12}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    fn element() -> impl Strategy<Value = Option<NetworkSelectionElement>> {
        json_value().prop_map(|v| serde_json::from_value(v).ok())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn loaders_and_planner_never_panic(conf in json_value(), el in element(), rc in json_value(), dev in "[a-z0-9:]{0,6}") {
            let bytes = serde_json::to_vec(&conf).unwrap();
            let _ = config_from_nad("nad", &String::from_utf8_lossy(&bytes), Path::new("/nonexistent"));
            if let Ok(mut d) = load_delegate(&bytes, el.as_ref(), &dev, "res") {
                let rc = RuntimeConfig::from_value(&rc);
                let ctx = PlanContext { ifname: "eth0", runtime_config: Some(&rc), process_cni_args: Some("A=b;c;=d=e"), ..Default::default() };
                for op in [Operation::Add, Operation::Del] {
                    let _ = plan_invocation(&d, 3, &ctx, op);
                }
                d.is_master = true;
                let _ = plan_invocation(&d, 0, &ctx, Operation::Add);
                let _ = d.inject_cni_version_if_missing("1.0.0");
                let cached = crate::cache::parse_cache(&crate::cache::serialize_delegates(std::slice::from_ref(&d))).unwrap();
                prop_assert_eq!(cached[0].bytes(), d.bytes());
            }
        }

        #[test]
        fn cache_and_results_never_panic(v in json_value(), v4: bool, v6: bool) {
            let _ = crate::cache::parse_cache(&serde_json::to_vec(&v).unwrap());
            let _ = crate::cache::parse_cache(&serde_json::to_vec(&json!([v])).unwrap());
            let mut r = v.clone();
            let _ = crate::default_route::remove_default_routes(&mut r, v4, v6);
            let mut r = v.clone();
            let _ = crate::default_route::add_default_routes(&mut r, &["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]);
            let _ = crate::status::network_statuses_from_json(&v, "n", v4, None);
        }

        #[test]
        fn resolver_never_panics(nets in "[a-z0-9/@, \\[\\]{}\":-]{0,40}", default_net in proptest::option::of("[a-z0-9/@,]{0,12}"), conf in json_value(), isolation: bool) {
            let nad_conf = serde_json::to_string(&conf).unwrap();
            let nads: BTreeMap<(String, String), Nad> = ["a", "b", "net1"].iter().map(|n| (
                ("default".to_string(), n.to_string()),
                Nad { namespace: "default".into(), name: n.to_string(), config: nad_conf.clone(), ..Default::default() },
            )).collect();
            let mut annotations = BTreeMap::new();
            annotations.insert(NETWORKS_ANNOTATION.to_string(), nets);
            if let Some(d) = default_net {
                annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
            }
            let pod = PodInfo { namespace: "default".into(), name: "p".into(), annotations, ..Default::default() };
            let settings = ResolveSettings {
                static_delegates: vec![json!({"name":"s","type":"bridge"})],
                namespace_isolation: isolation,
                ..Default::default()
            };
            let mut devices: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let _ = resolve_add_delegates(&settings, None, Some(&pod), &nads, &mut devices);
            let _ = resolve_del_delegates(&settings, None, &pod, &nads, &mut devices);
        }

        /// The daemon fetches `nad_keys` before resolving: resolution never asks for another.
        #[test]
        fn resolution_looks_up_only_the_keys_named_beforehand(
            nets in "(([a-z]{1,3}/)?[a-z]{1,3}(@n[0-9])?,){0,4}|\\[(\\{\"name\":\"[a-z]{1,3}\"(,\"namespace\":\"[a-z]{1,3}\")?\\},?){0,3}\\]",
            default_net in proptest::option::of("([a-z]{1,2}/)?[a-z]{1,3}"),
            cluster in "[a-z]{1,3}|/no/such/path",
            defaults in proptest::collection::vec("[a-z]{1,2}", 0..3),
            pod_ns in "default|kube-system|[a-z]{1,3}",
            isolation: bool,
            present in proptest::collection::vec(("[a-z]{1,3}", "[a-z]{1,3}"), 0..6),
        ) {
            let mut nads: BTreeMap<(String, String), Nad> = BTreeMap::new();
            for (ns, name) in present.iter().chain([("kube-system".to_string(), cluster.clone())].iter()) {
                nads.insert((ns.clone(), name.clone()), Nad { namespace: ns.clone(), name: name.clone(),
                    config: r#"{"cniVersion":"1.0.0","type":"bridge"}"#.into(), ..Default::default() });
            }
            let mut annotations = BTreeMap::new();
            annotations.insert(NETWORKS_ANNOTATION.to_string(), nets);
            if let Some(d) = default_net {
                annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
            }
            let pod = PodInfo { namespace: pod_ns, name: "p".into(), annotations, ..Default::default() };
            let settings = ResolveSettings {
                cluster_network: cluster,
                default_networks: defaults,
                namespace_isolation: isolation,
                ..Default::default()
            };
            struct Recording<'a>(&'a BTreeMap<(String, String), Nad>, std::cell::RefCell<Vec<(String, String)>>);
            impl NadLookup for Recording<'_> {
                fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
                    self.1.borrow_mut().push((namespace.to_string(), name.to_string()));
                    self.0.get_nad(namespace, name)
                }
            }
            let keys = nad_keys(&settings, Some(&pod));
            let recording = Recording(&nads, Default::default());
            let _ = resolve_add_delegates(&settings, None, Some(&pod), &recording, &mut NoDevices);
            let _ = resolve_del_delegates(&settings, None, &pod, &recording, &mut NoDevices);
            for asked in recording.1.borrow().iter() {
                prop_assert!(keys.contains(asked), "{asked:?} was looked up but not in {keys:?}");
            }
        }
    }
}
