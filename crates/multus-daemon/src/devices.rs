//! The production [`Devices`] seam: the kubelet's pod-resources API (or its checkpoint) and
//! DRA claims through the API server, via the `multus-devices` crate; device-info files in the
//! standard directories.

use crate::seams::{BoxFuture, DeviceInfoCopyError, DeviceLookupError, DeviceMap, Devices};
use multus::model::PodInfo;
use multus_devices::devinfo::DeviceInfoDirs;
use multus_devices::kubelet::KubeletSource;
use multus_devices::{DeviceError, DeviceResolver, PodDevicesQuery};
use std::path::Path;

/// The node's device sources.
#[derive(Debug, Clone)]
pub struct NodeDevices {
    resolver: DeviceResolver,
    dirs: DeviceInfoDirs,
}

impl NodeDevices {
    /// Devices from `resolver`, device-info files in `dirs`.
    pub fn new(resolver: DeviceResolver, dirs: DeviceInfoDirs) -> Self {
        Self { resolver, dirs }
    }
}

/// multus-rs daemon-config key moving the kubelet's pod-resources socket (for the fake kubelet
/// of the demo and the tests; a real node keeps the kubelet's path).
pub const POD_RESOURCES_SOCKET_KEY: &str = "kubeletPodResourcesSocket";
/// multus-rs daemon-config key moving the kubelet's device-manager checkpoint file (as
/// [`POD_RESOURCES_SOCKET_KEY`]).
pub const CHECKPOINT_FILE_KEY: &str = "kubeletCheckpointFile";

/// The node's device sources for `config`: the kubelet's paths (or the keys above) and DRA
/// through `client`.
pub fn node_devices(config: &multus::config::DaemonConfig, client: kube::Client) -> NodeDevices {
    let path = |key: &str| config.raw.get(key).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty());
    let mut kubelet = KubeletSource::default();
    if let Some(socket) = path(POD_RESOURCES_SOCKET_KEY) {
        kubelet.socket = socket.into();
    }
    if let Some(checkpoint) = path(CHECKPOINT_FILE_KEY) {
        kubelet.checkpoint = checkpoint.into();
    }
    NodeDevices::new(DeviceResolver::new(kubelet, Some(client)), DeviceInfoDirs::default())
}

/// What the device lookup reads of a pod.
pub fn devices_query(pod: &PodInfo) -> PodDevicesQuery {
    let status = &pod.claim_status;
    PodDevicesQuery::from_pod(&serde_json::json!({
        "metadata": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "spec": {"nodeName": pod.node_name},
        "status": {
            "resourceClaimStatuses": status.get("resourceClaimStatuses"),
            "extendedResourceClaimStatus": status.get("extendedResourceClaimStatus"),
        },
    }))
}

/// The reference's two stages: building the client, or reading the pod's map.
fn lookup_error(e: &DeviceError) -> DeviceLookupError {
    let client = matches!(
        e,
        DeviceError::KubeletConnect { .. }
            | DeviceError::KubeletList { .. }
            | DeviceError::KubeletTimeout { .. }
            | DeviceError::CheckpointRead { .. }
            | DeviceError::CheckpointParse { .. }
    );
    if client { DeviceLookupError::client(e.to_string()) } else { DeviceLookupError::resource_map(e.to_string()) }
}

impl Devices for NodeDevices {
    fn pod_devices<'a>(&'a self, pod: &'a PodInfo) -> BoxFuture<'a, Result<DeviceMap, DeviceLookupError>> {
        Box::pin(async move {
            let query = devices_query(pod);
            self.resolver.pod_devices(&query).await.map_err(|e| lookup_error(&e))
        })
    }

    fn copy_device_info(
        &self,
        resource_name: &str,
        device_id: &str,
        destination: &str,
    ) -> Result<(), DeviceInfoCopyError> {
        Ok(self.dirs.copy_from_device_plugin(resource_name, device_id, Path::new(destination))?)
    }
}
