//! Kubernetes-side inputs of the meta-plugin, reduced to what Multus reads.
//!
//! These are plain structs, independent of any Kubernetes client library, so that planning is
//! pure and testable. The daemon fills them from its watch caches.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Pod annotation: the network selection (`k8s.v1.cni.cncf.io/networks`).
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Pod annotation: the default-network override.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";
/// Pod annotation written by Multus after ADD.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Pod annotation marking a static (mirror) pod's source; anything but `api` is static.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// NetworkAttachmentDefinition annotation naming a device-plugin resource.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// The parts of a Pod that Multus reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, compared with `K8S_POD_UID`.
    pub uid: String,
    /// `metadata.annotations` (network selection, default-network override, …).
    pub annotations: BTreeMap<String, String>,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `metadata.resourceVersion` of the copy read.
    pub resource_version: String,
    /// The parts of `status` that dynamic resource allocation reads
    /// (`resourceClaimStatuses`, `extendedResourceClaimStatus`), as the API served them;
    /// `Null` for a pod without claims.
    #[serde(default)]
    pub claim_status: serde_json::Value,
}

impl PodInfo {
    /// A static pod's mirror object has a UID of its own, so UID checks are skipped for it.
    pub fn is_static(&self) -> bool {
        self.annotations.get(CONFIG_SOURCE_ANNOTATION).is_some_and(|src| src != "api")
    }

    /// The value of annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// A NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nad {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.config`: a CNI config (single plugin or conflist) as JSON text; may be empty, in
    /// which case the config is looked up by name in `confDir`.
    pub config: String,
    /// `metadata.annotations` (the device-plugin `resourceName`, …).
    pub annotations: BTreeMap<String, String>,
}

impl Nad {
    /// The non-empty `k8s.v1.cni.cncf.io/resourceName` annotation, if set.
    pub fn resource_name(&self) -> Option<&str> {
        self.annotations.get(RESOURCE_NAME_ANNOTATION).map(String::as_str).filter(|s| !s.is_empty())
    }
}

/// Where the planner gets NetworkAttachmentDefinitions from (the daemon: the NADs its node
/// uses, fetched before planning).
pub trait NadLookup {
    /// The NAD `namespace/name`, if it exists (and can be used).
    fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad>;

    /// Why [`NadLookup::get_nad`] has no NAD `namespace/name` when the reason is not simply that
    /// it does not exist: the text that follows `cannot find a network-attachment-definition
    /// (<name>) in namespace (<namespace>): ` (e.g. the NAD is too large, or the API server
    /// could not be asked). `None`: not found.
    fn missing_reason(&self, _namespace: &str, _name: &str) -> Option<String> {
        None
    }
}

impl NadLookup for BTreeMap<(String, String), Nad> {
    fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
        self.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

/// A port mapping request (CNI `portMappings` capability). Written in the CONVENTIONS spelling;
/// read in it and in containerd's, which serializes its Go struct without JSON tags (`HostPort`,
/// `ContainerPort`, `Protocol`, `HostIP`; cni.md §2.5). Go Multus reads both because Go's JSON
/// decoding ignores case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `hostPort`: the port on the node.
    #[serde(rename = "hostPort", alias = "HostPort")]
    pub host_port: i32,
    /// `containerPort`: the port in the pod.
    #[serde(rename = "containerPort", alias = "ContainerPort")]
    pub container_port: i32,
    /// `protocol` (`tcp`, `udp`, …); empty means the plugin's default.
    #[serde(default, alias = "Protocol", skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// `hostIP`: the node address to bind; empty means all.
    #[serde(rename = "hostIP", alias = "HostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A bandwidth request (CNI `bandwidth` capability); containerd's Go field names accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// `ingressRate`: bits per second into the pod.
    #[serde(rename = "ingressRate", alias = "IngressRate", default)]
    pub ingress_rate: i64,
    /// `ingressBurst`: bits of ingress burst.
    #[serde(rename = "ingressBurst", alias = "IngressBurst", default)]
    pub ingress_burst: i64,
    /// `egressRate`: bits per second out of the pod.
    #[serde(rename = "egressRate", alias = "EgressRate", default)]
    pub egress_rate: i64,
    /// `egressBurst`: bits of egress burst.
    #[serde(rename = "egressBurst", alias = "EgressBurst", default)]
    pub egress_burst: i64,
}

/// One element of the network selection annotation (JSON form field names on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSelectionElement {
    /// `name`: the NAD (or `confDir` network) to attach.
    pub name: String,
    /// `namespace` of the NAD; empty → the pod's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `interface`: the interface name in the pod; empty → `net<N>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// Deprecated alias of `interface`, used only when `interface` is empty.
    #[serde(rename = "interfaceRequest", default, skip_serializing_if = "String::is_empty")]
    pub interface_request: String,
    /// `ips`: static IPs (CIDR notation) for the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `mac`: the interface's MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `infiniband-guid`: the interface's InfiniBand GUID.
    #[serde(rename = "infiniband-guid", default, skip_serializing_if = "String::is_empty")]
    pub infiniband_guid: String,
    /// `portMappings`: port mappings for this network.
    #[serde(rename = "portMappings", default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// `bandwidth`: traffic shaping for this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// `deviceID`: the device to use, when not taken from the NAD's resource.
    #[serde(rename = "deviceID", default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    /// `cni-args`: extra keys for the delegate config's `args.cni` object.
    #[serde(rename = "cni-args", default, skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, serde_json::Value>>,
    /// `None`: key absent. `Some(vec![])`: present but empty (still triggers the gateway check).
    #[serde(rename = "default-route", default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<IpAddr>>,
}

impl NetworkSelectionElement {
    /// The requested interface name (`interface`, else the deprecated `interfaceRequest`).
    pub fn requested_interface(&self) -> &str {
        if self.interface.is_empty() { &self.interface_request } else { &self.interface }
    }
}
