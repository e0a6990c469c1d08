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
use crate::delegate::{Delegate, load_delegate, load_delegate_from_conflist};
use crate::error::{ErrorKind, MultusError, PodRef, Warning};
use crate::model::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NadLookup, PodInfo};
use crate::selection::{check_namespace_isolation, parse_default_network, parse_network_selection};
use cni::conf::NetConfList;
use serde_json::json;
use std::path::Path;

impl Resolver<'_> {
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
            return disabled(self, e.to_string());
        }
        if list.plugins.len() > 1 {
            match load_delegate_from_conflist(&list, None, "", "") {
                Ok(d) => delegates.push(d),
                Err(e) => return disabled(self, e.to_string()),
            }
        }
        Ok(())
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

mod devices;
mod network;
mod resolver;
mod settings;

pub use devices::{DeviceIdSource, DeviceLookupError, DeviceProbe, NoDevices};
use resolver::{Fail, Resolver};
pub use resolver::{MAX_POD_NAD_CONFIG_BYTES, Resolved};
pub use settings::ResolveSettings;

#[cfg(test)]
mod tests;

/// Never panic on arbitrary input: configs, annotations, caches, results.
#[cfg(test)]
mod proptests;
