//! Device IDs of a pod for Multus (spec `multus-thick.md` §5.10.1, §5.13, §5.17).
//!
//! A NetworkAttachmentDefinition with a `k8s.v1.cni.cncf.io/resourceName` annotation asks for one
//! of the devices the pod was given for that resource (an SR-IOV VF, an RDMA device, …). This
//! crate finds those devices, in the reference's order of sources:
//!
//! * [`kubelet`]: the kubelet's pod-resources gRPC API (`v1.PodResourcesLister/List` on
//!   `/var/lib/kubelet/pod-resources/kubelet.sock`): every container's device-plugin devices of
//!   the pod with the same name and namespace; when the socket does not exist,
//! * [`checkpoint`]: the device manager's checkpoint file, matched by pod UID;
//! * [`dra`]: dynamic resource allocation — the pod's ResourceClaims (`resource.k8s.io/v1`),
//!   their allocation results and the `k8s.cni.cncf.io/deviceID` / `k8s.cni.cncf.io/resourceName`
//!   attributes of the allocated devices in the node's ResourceSlices.
//!
//! [`DeviceResolver::pod_devices`] combines them into one [`DeviceMap`] (resource name → sorted
//! device IDs), once per ADD. [`devinfo`] copies the device plugin's device-info file to the
//! per-attachment file a delegate and the network-status annotation read.
//!
//! [`podresources::v1`] holds the generated messages, client and server of the kubelet API
//! (vendored `proto/podresources/v1/api.proto`); `fake-kubelet` serves it in tests.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod devinfo;
pub mod dra;
mod error;
pub mod kubelet;
mod query;
mod resolver;

pub use error::{DeviceError, DraError};
pub use query::{
    ContainerExtendedResourceRequest, PodDevicesQuery, PodExtendedResourceClaimStatus, PodResourceClaimStatus,
};
pub use resolver::DeviceResolver;

/// Device IDs per resource name (`intel.com/sriov_netdevice` → `["0000:af:06.0", …]`).
pub type DeviceMap = std::collections::BTreeMap<String, Vec<String>>;

/// The kubelet pod-resources API (`k8s.io/kubelet/pkg/apis/podresources`), generated at build
/// time from the vendored proto file.
pub mod podresources {
    /// Version v1: messages, `pod_resources_lister_client` and `pod_resources_lister_server`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("v1");
    }
}

/// Sorts every key's device IDs (the reference sorts since v4.3.0, so that the n-th NAD of a
/// resource gets the same device whatever order the kubelet or the API listed them in).
pub fn sort_device_ids(map: &mut DeviceMap) {
    for ids in map.values_mut() {
        ids.sort();
    }
}

/// Appends `ids` to the entry of `resource_name`, creating it when needed.
pub(crate) fn append_ids<I>(map: &mut DeviceMap, resource_name: &str, ids: I)
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    map.entry(resource_name.to_string()).or_default().extend(ids.into_iter().map(Into::into));
}
