//! The daemon's side effects behind narrow seams, so that every command rule is testable in
//! process: the cluster (pods, NADs, the status write, events), the work inside a pod's
//! network namespace, and the pod's devices. Delegate execution is the `cni` crate's [`cni::exec::Exec`] seam.
//!
//! Production implementations: [`crate::kube::KubeContext`], [`crate::netns::HostNetns`] and
//! [`crate::devices::NodeDevices`];
//! test doubles: `crate::testing` (feature `testing`, and this crate's tests).

use crate::nad_cache::{Key as NadKey, NadAnswer};
use multus::model::{Nad, NadLookup, PodInfo};
pub use multus::resolve::DeviceLookupError;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// A boxed future, so the seams are object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The outcome of a pod lookup.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "short-lived, one per request; boxing would cost an allocation")]
pub enum PodLookup {
    /// The pod, from the cache or the API server.
    Found(PodInfo),
    /// The API server has no such pod (deleted meanwhile): ADD answers with a placeholder
    /// result, DEL goes on without it.
    NotFound,
}

/// A failure to talk to the API server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The pod lookup failed for another reason than "not found" (API server down, timeout…).
    #[error("error waiting for pod: {0}")]
    PodLookup(String),
    /// Writing the network-status annotation failed.
    #[error("error setting the networks status: {0}")]
    StatusWrite(String),
    /// The status write found a different pod under the same name.
    #[error("SetNetworkStatus: expected pod {namespace}/{name} UID {expected:?} but got {actual:?} from Kube API")]
    UidChanged {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// The UID of the pod the request was for.
        expected: String,
        /// The UID the API server returned under that name.
        actual: String,
    },
    /// The pod's annotations exceed the API server's own limit: refused without reading them.
    #[error(
        "pod {namespace}/{name} has {} of annotations, more than the {} an API server allows: refused, its networks are not read",
        crate::nad_cache::human_bytes(*bytes),
        crate::nad_cache::human_bytes(*limit)
    )]
    PodTooLarge {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// Its annotations' size (keys and values).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The daemon runs without a Kubernetes client (tests, standalone use).
    #[error("no Kubernetes client configured")]
    NotConfigured,
}

/// What is known about each NAD a request asked for.
pub type NadAnswers = BTreeMap<NadKey, NadAnswer>;

/// The NADs one request resolves against: the answers fetched for it beforehand
/// ([`Cluster::nad_answers`]), and the cluster's own synchronous lookup for any other.
pub struct NadView<'a> {
    answers: NadAnswers,
    cluster: &'a dyn Cluster,
}

impl<'a> NadView<'a> {
    /// The view of `answers` over `cluster`.
    pub fn new(answers: NadAnswers, cluster: &'a dyn Cluster) -> Self {
        Self { answers, cluster }
    }

    fn answer(&self, namespace: &str, name: &str) -> Option<&NadAnswer> {
        self.answers.get(&(namespace.to_string(), name.to_string()))
    }

    /// Bytes of config text of the NADs found, what a request copies into its delegates.
    pub fn config_bytes(&self) -> usize {
        self.answers.values().map(|a| if let NadAnswer::Found(nad) = a { nad.config.len() } else { 0 }).sum()
    }
}

impl NadLookup for NadView<'_> {
    fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
        match self.answer(namespace, name) {
            Some(NadAnswer::Found(nad)) => Some(Nad::clone(nad)),
            Some(_) => None,
            None => self.cluster.get_nad(namespace, name),
        }
    }

    fn missing_reason(&self, namespace: &str, name: &str) -> Option<String> {
        match self.answer(namespace, name) {
            Some(answer @ (NadAnswer::TooLarge { .. } | NadAnswer::Unavailable(_))) => answer.reason(name),
            Some(_) => None,
            None => self.cluster.missing_reason(namespace, name),
        }
    }
}

/// An event to record on a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    /// The pod the event is about (the event's involved object).
    pub pod: PodInfo,
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The event's machine-readable reason, e.g. `AddedInterface`.
    pub reason: String,
    /// The event's text.
    pub message: String,
}

/// Everything the commands need from Kubernetes.
pub trait Cluster: NadLookup + Send + Sync {
    /// The pod from the watch cache, with a live GET on a miss (§5.5).
    fn lookup_pod<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<PodLookup, ClusterError>>;

    /// The pod from the watch cache only (UID recovery, which must not wait).
    fn cached_pod(&self, namespace: &str, name: &str) -> Option<PodInfo>;

    /// Write the `network-status` annotation (`value` is the formatted annotation). A pod
    /// deleted meanwhile is not an error.
    fn write_network_status<'a>(&'a self, pod: &'a PodInfo, value: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Remove the `network-status` annotation: an ADD that wrote it was undone (its caller went
    /// away), so the interfaces it lists are gone. A pod deleted meanwhile is not an error.
    fn clear_network_status<'a>(&'a self, _pod: &'a PodInfo) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }

    /// Queue an event; never blocks the request.
    fn emit(&self, event: PodEvent);

    /// Wakes whenever a pod of the node changes (a watch cache); `None` when nothing watches.
    fn pod_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// What is known about each NAD of `keys`, for a request to resolve against
    /// ([`NadView`]): the production cluster answers from its node's NAD cache and fetches the
    /// misses (at the same time, one GET each). By default, from [`NadLookup::get_nad`].
    fn nad_answers<'a>(&'a self, keys: &'a [NadKey]) -> BoxFuture<'a, NadAnswers> {
        let answers = keys
            .iter()
            .map(|k| {
                let answer = match self.get_nad(&k.0, &k.1) {
                    Some(nad) => NadAnswer::Found(std::sync::Arc::new(nad)),
                    None => NadAnswer::NotFound,
                };
                (k.clone(), answer)
            })
            .collect();
        Box::pin(async move { answers })
    }
}

/// No cluster: every lookup fails with [`ClusterError::NotConfigured`], there are no NADs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCluster;

impl NadLookup for NoCluster {
    fn get_nad(&self, _namespace: &str, _name: &str) -> Option<multus::model::Nad> {
        None
    }
}

impl Cluster for NoCluster {
    fn lookup_pod<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<PodLookup, ClusterError>> {
        Box::pin(async { Err(ClusterError::NotConfigured) })
    }
    fn cached_pod(&self, _: &str, _: &str) -> Option<PodInfo> {
        None
    }
    fn write_network_status<'a>(&'a self, _: &'a PodInfo, _: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Err(ClusterError::NotConfigured) })
    }
    fn emit(&self, _: PodEvent) {}
}

/// Device IDs per resource name (`intel.com/sriov` → sorted IDs).
pub type DeviceMap = std::collections::BTreeMap<String, Vec<String>>;

/// The devices the kubelet (device plugins) and DRA drivers gave a pod (§5.10.1), and the
/// device-info files that describe them (§5.13).
pub trait Devices: Send + Sync {
    /// Every device of the pod, per resource name. Called only for pods with a network that
    /// has a resource name.
    fn pod_devices<'a>(&'a self, pod: &'a PodInfo) -> BoxFuture<'a, Result<DeviceMap, DeviceLookupError>>;

    /// Copy the device plugin's description of `device_id` to the attachment's
    /// `CNIDeviceInfoFile` (`destination`).
    fn copy_device_info(
        &self,
        resource_name: &str,
        device_id: &str,
        destination: &str,
    ) -> Result<(), DeviceInfoCopyError>;
}

/// Why a device's description could not be given to its delegate.
#[derive(Debug, thiserror::Error)]
pub enum DeviceInfoCopyError {
    /// The node has no device source.
    #[error("no device source configured")]
    NoSource,
    /// The device plugin's file could not be read, parsed or copied.
    #[error(transparent)]
    Copy(#[from] multus_devices::devinfo::DeviceInfoError),
}

/// No device source: a network with a resource name fails the ADD, as on a node without a
/// kubelet pod-resources socket or checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeviceSource;

impl Devices for NoDeviceSource {
    fn pod_devices<'a>(&'a self, _: &'a PodInfo) -> BoxFuture<'a, Result<DeviceMap, DeviceLookupError>> {
        Box::pin(async { Err(DeviceLookupError::client("no device source configured")) })
    }

    fn copy_device_info(&self, _: &str, _: &str, _: &str) -> Result<(), DeviceInfoCopyError> {
        Err(DeviceInfoCopyError::NoSource)
    }
}

/// A failure inside a pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened, or is not a network namespace.
    #[error(transparent)]
    Open(#[from] multus_node::netns::OpenError),
    /// `setns` into the namespace failed.
    #[error("failed to enter netns {path:?}: {reason}")]
    Enter {
        /// The netns path the runtime gave.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The worker thread could not be spawned or ended without an answer.
    #[error("netns worker thread failed: {0}")]
    Thread(String),
    /// A netlink route edit inside the namespace failed.
    #[error("{0}")]
    Route(String),
}

pub use multus_node::netns::NetnsPresence;

/// Work inside a pod's network namespace.
pub trait Netns: Send + Sync {
    /// Whether the namespace at `netns` exists (the orphan reconciler's safety check).
    fn presence(&self, netns: &str) -> NetnsPresence;

    /// Whether a link named `ifname` exists (the delegate clash check, §5.13).
    fn link_exists<'a>(&'a self, netns: &'a str, ifname: &'a str) -> BoxFuture<'a, Result<bool, NetnsError>>;

    /// Delete the default routes (of the given families) that use `ifname` (§5.15).
    fn delete_default_routes<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        v4: bool,
        v6: bool,
    ) -> BoxFuture<'a, Result<(), NetnsError>>;

    /// Add a default route via `gateway` on `ifname` (an identical existing route is fine).
    fn add_default_route<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        gateway: IpAddr,
    ) -> BoxFuture<'a, Result<(), NetnsError>>;
}
