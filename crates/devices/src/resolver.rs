//! The composite lookup the daemon calls once per ADD.

use std::time::Duration;

use crate::dra::DraSource;
use crate::kubelet::KubeletSource;
use crate::query::PodDevicesQuery;
use crate::{DeviceError, DeviceMap, DraError};

/// Finds a pod's devices: device-plugin devices from the kubelet (or its checkpoint) plus DRA
/// devices from the API. Cheap to clone; share one per daemon.
#[derive(Debug, Clone)]
pub struct DeviceResolver {
    kubelet: KubeletSource,
    dra: Option<DraSource>,
}

impl Default for DeviceResolver {
    /// The reference's kubelet paths and timeouts, without DRA.
    fn default() -> Self {
        Self::new(KubeletSource::default(), None)
    }
}

impl DeviceResolver {
    /// A resolver reading the kubelet as `kubelet` says and, when `client` is given, DRA claims
    /// and slices through it (default 20 s overall timeout).
    pub fn new(kubelet: KubeletSource, client: Option<kube::Client>) -> Self {
        Self { kubelet, dra: client.map(DraSource::new) }
    }

    /// Replaces the DRA overall timeout.
    pub fn with_dra_timeout(mut self, timeout: Duration) -> Self {
        self.dra = self.dra.map(|dra| dra.with_timeout(timeout));
        self
    }

    /// The kubelet settings.
    pub fn kubelet(&self) -> &KubeletSource {
        &self.kubelet
    }

    /// Device IDs of the pod per resource name, each list sorted (spec §5.10.1):
    ///
    /// 1. device-plugin devices: the pod-resources API when its socket exists (pod matched by
    ///    name and namespace, every container), else the checkpoint (pod matched by UID); a
    ///    failure of either is an error;
    /// 2. when the pod has resource claims: DRA devices appended under their
    ///    `k8s.cni.cncf.io/resourceName` (or the extended-resource mapping's name);
    /// 3. every key's IDs sorted.
    ///
    /// Call it only when a NAD asks for a resource (the reference builds the map lazily): a node
    /// without kubelet socket and checkpoint fails every lookup.
    pub async fn pod_devices(&self, pod: &PodDevicesQuery) -> Result<DeviceMap, DeviceError> {
        let mut map = self.kubelet.device_map(&pod.namespace, &pod.name, &pod.uid).await?;
        if pod.has_resource_claims() {
            let dra = self
                .dra
                .as_ref()
                .ok_or_else(|| DraError::NoClient { namespace: pod.namespace.clone(), name: pod.name.clone() })?;
            dra.add_pod_devices(pod, &mut map).await?;
        }
        crate::sort_device_ids(&mut map);
        Ok(map)
    }
}
