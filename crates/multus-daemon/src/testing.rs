//! Recording fakes of the daemon's seams, for in-process tests of every command rule: a
//! cluster with scripted pods, NADs and failures, and network namespaces that exist only as
//! sets of link names. Delegate execution is faked with `cni::exec::testing::RecordingExec`.
//!
//! Clones share state: keep one, hand a clone (in an `Arc`) to the daemon, inspect the other.

use crate::daemon::{Daemon, Seams};
use crate::seams::{
    BoxFuture, Cluster, ClusterError, DeviceLookupError, DeviceMap, Devices, Netns, NetnsError, NetnsPresence,
    PodEvent, PodLookup,
};
use cni::exec::testing::RecordingExec;
use multus::config::DaemonConfig;
use multus::model::{Nad, NadLookup, PodInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

type Key = (String, String);

#[derive(Debug, Default)]
struct ClusterState {
    pods: BTreeMap<Key, PodInfo>,
    nads: BTreeMap<Key, Nad>,
    lookup_error: Option<ClusterError>,
    status_error: Option<ClusterError>,
    lookups: Vec<Key>,
    status_writes: Vec<(Key, String)>,
    events: Vec<PodEvent>,
}

/// What [`FakeCluster::status_writes`] records for a removed network-status annotation.
pub const REMOVED_STATUS: &str = "<removed>";

/// A cluster held in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<ClusterState>>,
}

impl FakeCluster {
    /// An empty cluster: no pods, no NADs, nothing failing.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, ClusterState> {
        // Test state: a panicking test thread must not hide what was recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add (or replace) a pod; lookups and the cache both see it.
    pub fn add_pod(&self, pod: PodInfo) -> &Self {
        self.state().pods.insert((pod.namespace.clone(), pod.name.clone()), pod);
        self
    }

    /// Delete a pod: lookups answer [`PodLookup::NotFound`] from now on.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> &Self {
        self.state().pods.remove(&(namespace.to_string(), name.to_string()));
        self
    }

    /// Add (or replace) a NetworkAttachmentDefinition.
    pub fn add_nad(&self, nad: Nad) -> &Self {
        self.state().nads.insert((nad.namespace.clone(), nad.name.clone()), nad);
        self
    }

    /// Every pod lookup fails with `error` (`None`: lookups work again).
    pub fn fail_lookups(&self, error: Option<ClusterError>) -> &Self {
        self.state().lookup_error = error;
        self
    }

    /// Every status write fails with `error` (`None`: writes work again).
    pub fn fail_status_writes(&self, error: Option<ClusterError>) -> &Self {
        self.state().status_error = error;
        self
    }

    /// `(namespace, name)` of every live lookup, in order.
    pub fn lookups(&self) -> Vec<Key> {
        self.state().lookups.clone()
    }

    /// `((namespace, name), annotation value)` of every successful status write, in order.
    pub fn status_writes(&self) -> Vec<(Key, String)> {
        self.state().status_writes.clone()
    }

    /// Every event emitted, in order.
    pub fn events(&self) -> Vec<PodEvent> {
        self.state().events.clone()
    }
}

impl NadLookup for FakeCluster {
    fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
        self.state().nads.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

impl Cluster for FakeCluster {
    fn lookup_pod<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<PodLookup, ClusterError>> {
        let outcome = {
            let mut state = self.state();
            state.lookups.push((namespace.to_string(), name.to_string()));
            match &state.lookup_error {
                Some(e) => Err(e.clone()),
                None => Ok(state
                    .pods
                    .get(&(namespace.to_string(), name.to_string()))
                    .cloned()
                    .map_or(PodLookup::NotFound, PodLookup::Found)),
            }
        };
        Box::pin(async move { outcome })
    }

    /// Recorded as a status write of [`REMOVED_STATUS`].
    fn clear_network_status<'a>(&'a self, pod: &'a PodInfo) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.write_network_status(pod, REMOVED_STATUS)
    }

    fn cached_pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.state().pods.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    fn write_network_status<'a>(&'a self, pod: &'a PodInfo, value: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        let outcome = {
            let mut state = self.state();
            match &state.status_error {
                Some(e) => Err(e.clone()),
                None => {
                    state.status_writes.push(((pod.namespace.clone(), pod.name.clone()), value.to_string()));
                    Ok(())
                }
            }
        };
        Box::pin(async move { outcome })
    }

    fn emit(&self, event: PodEvent) {
        self.state().events.push(event);
    }
}

#[derive(Debug, Default)]
struct NetnsState {
    /// Namespaces that exist (every other path is absent).
    present: BTreeSet<String>,
    links: BTreeSet<(String, String)>,
    unopenable: BTreeSet<String>,
    route_edits: Vec<String>,
}

/// Network namespaces as sets of link names; route edits are recorded as text.
#[derive(Debug, Clone, Default)]
pub struct FakeNetns {
    state: Arc<Mutex<NetnsState>>,
}

impl FakeNetns {
    /// No links, every namespace opens, and none is present for the reconciler.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, NetnsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The namespace at `netns` exists (for the orphan reconciler; commands do not ask).
    pub fn add_netns(&self, netns: &str) -> &Self {
        self.state().present.insert(netns.to_string());
        self
    }

    /// The namespace at `netns` is gone.
    pub fn remove_netns(&self, netns: &str) -> &Self {
        self.state().present.remove(netns);
        self
    }

    /// A link that already exists in `netns`.
    pub fn add_link(&self, netns: &str, ifname: &str) -> &Self {
        self.state().links.insert((netns.to_string(), ifname.to_string()));
        self
    }

    /// `netns` cannot be opened.
    pub fn unopenable(&self, netns: &str) -> &Self {
        self.state().unopenable.insert(netns.to_string());
        self
    }

    /// `del <netns> <ifname> v4=<b> v6=<b>` / `add <netns> <ifname> <gw>`, in order.
    pub fn route_edits(&self) -> Vec<String> {
        self.state().route_edits.clone()
    }

    fn open(&self, netns: &str) -> Result<(), NetnsError> {
        if self.state().unopenable.contains(netns) {
            return Err(NetnsError::Open(multus_node::netns::OpenError::Open {
                path: netns.to_string(),
                reason: "No such file or directory".into(),
            }));
        }
        Ok(())
    }
}

impl Netns for FakeNetns {
    fn presence(&self, netns: &str) -> NetnsPresence {
        if self.state().present.contains(netns) { NetnsPresence::Present } else { NetnsPresence::Absent }
    }

    fn link_exists<'a>(&'a self, netns: &'a str, ifname: &'a str) -> BoxFuture<'a, Result<bool, NetnsError>> {
        let outcome = self.open(netns).map(|()| self.state().links.contains(&(netns.to_string(), ifname.to_string())));
        Box::pin(async move { outcome })
    }

    fn delete_default_routes<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        v4: bool,
        v6: bool,
    ) -> BoxFuture<'a, Result<(), NetnsError>> {
        let outcome = self.open(netns).map(|()| {
            self.state().route_edits.push(format!("del {netns} {ifname} v4={v4} v6={v6}"));
        });
        Box::pin(async move { outcome })
    }

    fn add_default_route<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        gateway: IpAddr,
    ) -> BoxFuture<'a, Result<(), NetnsError>> {
        let outcome = self.open(netns).map(|()| {
            self.state().route_edits.push(format!("add {netns} {ifname} {gateway}"));
        });
        Box::pin(async move { outcome })
    }
}

#[derive(Debug, Default)]
struct DevicesState {
    /// Per pod `namespace/name`; a pod without an entry has no devices.
    devices: BTreeMap<String, DeviceMap>,
    error: Option<DeviceLookupError>,
    lookups: Vec<String>,
    copies: Vec<(String, String, String)>,
}

/// Devices per pod, scripted; device-info copies recorded, nothing written.
#[derive(Debug, Clone, Default)]
pub struct FakeDevices {
    state: Arc<Mutex<DevicesState>>,
}

impl FakeDevices {
    fn state(&self) -> MutexGuard<'_, DevicesState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod `namespace/name` has `ids` of `resource`.
    pub fn give(&self, pod: &str, resource: &str, ids: &[&str]) -> &Self {
        let mut state = self.state();
        let map = state.devices.entry(pod.to_string()).or_default();
        map.entry(resource.to_string()).or_default().extend(ids.iter().map(|s| s.to_string()));
        self
    }

    /// Every lookup fails with `error` (`None`: lookups work again).
    pub fn fail(&self, error: Option<DeviceLookupError>) -> &Self {
        self.state().error = error;
        self
    }

    /// `namespace/name` of every pod looked up, in order.
    pub fn lookups(&self) -> Vec<String> {
        self.state().lookups.clone()
    }

    /// `(resource, device ID, destination)` of every device-info copy, in order.
    pub fn copies(&self) -> Vec<(String, String, String)> {
        self.state().copies.clone()
    }
}

impl Devices for FakeDevices {
    fn pod_devices<'a>(&'a self, pod: &'a PodInfo) -> BoxFuture<'a, Result<DeviceMap, DeviceLookupError>> {
        let key = format!("{}/{}", pod.namespace, pod.name);
        let outcome = {
            let mut state = self.state();
            state.lookups.push(key.clone());
            match &state.error {
                Some(e) => Err(e.clone()),
                None => Ok(state.devices.get(&key).cloned().unwrap_or_default()),
            }
        };
        Box::pin(async move { outcome })
    }

    fn copy_device_info(
        &self,
        resource_name: &str,
        device_id: &str,
        destination: &str,
    ) -> Result<(), crate::seams::DeviceInfoCopyError> {
        self.state().copies.push((resource_name.into(), device_id.into(), destination.into()));
        Ok(())
    }
}

/// A daemon wired to fakes, and the fakes to script and inspect.
pub struct FakeNode {
    /// The daemon, acting through clones of the fakes below.
    pub daemon: Arc<Daemon>,
    /// Delegate executions: script plugin answers, read the calls.
    pub exec: RecordingExec,
    /// Pods, NADs, status writes and events.
    pub cluster: FakeCluster,
    /// Namespaces, links and route edits.
    pub netns: FakeNetns,
    /// Pod devices and device-info copies.
    pub devices: FakeDevices,
}

impl FakeNode {
    /// A daemon with `config` and fresh fakes (no process `CNI_PATH`/`CNI_ARGS`).
    pub fn new(config: DaemonConfig) -> Self {
        let exec = RecordingExec::new();
        let cluster = FakeCluster::new();
        let netns = FakeNetns::new();
        let devices = FakeDevices::default();
        let seams = Seams {
            exec: Arc::new(exec.clone()),
            cluster: Arc::new(cluster.clone()),
            netns: Arc::new(netns.clone()),
            devices: Arc::new(devices.clone()),
        };
        let daemon = Arc::new(Daemon::with_process_env(config, seams, None, None));
        Self { daemon, exec, cluster, netns, devices }
    }
}
