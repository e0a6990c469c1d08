//! Errors of the device lookups. Any of them fails the ADD (spec §5.10.1).

use std::path::PathBuf;
use std::time::Duration;

/// A failed device lookup for one pod.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The kubelet API matches pods by name and namespace; one of them is empty.
    #[error("pod name or namespace cannot be empty")]
    EmptyPodName,
    /// The checkpoint matches pods by UID; it is empty.
    #[error("pod UID cannot be empty")]
    EmptyPodUid,
    /// The pod-resources socket exists but no gRPC connection could be made.
    #[error("cannot connect to the kubelet pod-resources socket {}: {reason}", socket.display())]
    KubeletConnect {
        /// The socket path.
        socket: PathBuf,
        /// Why the connection failed (includes the dial timeout).
        reason: String,
    },
    /// `v1.PodResourcesLister/List` answered with a gRPC error.
    #[error("kubelet pod-resources List on {} failed: {code:?}: {message}", socket.display())]
    KubeletList {
        /// The socket path.
        socket: PathBuf,
        /// The gRPC status code.
        code: tonic::Code,
        /// The gRPC status message.
        message: String,
    },
    /// `v1.PodResourcesLister/List` did not answer within the call timeout.
    #[error("kubelet pod-resources List on {} timed out after {timeout:?}", socket.display())]
    KubeletTimeout {
        /// The socket path.
        socket: PathBuf,
        /// The call timeout that passed.
        timeout: Duration,
    },
    /// The socket is absent and the checkpoint file cannot be read.
    #[error("cannot read the device-plugin checkpoint {}: {source}", path.display())]
    CheckpointRead {
        /// The checkpoint path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The checkpoint file is not the kubelet's checkpoint JSON.
    #[error("cannot parse the device-plugin checkpoint {}: {source}", path.display())]
    CheckpointParse {
        /// The checkpoint path.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The DRA lookup failed.
    #[error(transparent)]
    Dra(#[from] DraError),
}

impl DeviceError {
    /// The reference reports errors of building the kubelet/checkpoint client (socket, List,
    /// checkpoint file) as `getKubernetesDelegate: failed to get a ResourceClient instance: …`
    /// and the rest as `getKubernetesDelegate: failed to get resourceMap from ResourceClient: …`;
    /// this returns the middle part for this error.
    pub fn go_context(&self) -> &'static str {
        match self {
            Self::KubeletConnect { .. }
            | Self::KubeletList { .. }
            | Self::KubeletTimeout { .. }
            | Self::CheckpointRead { .. }
            | Self::CheckpointParse { .. } => "failed to get a ResourceClient instance",
            Self::EmptyPodName | Self::EmptyPodUid | Self::Dra(_) => "failed to get resourceMap from ResourceClient",
        }
    }
}

/// A failed lookup of the pod's DRA devices (ResourceClaims and ResourceSlices).
#[derive(Debug, thiserror::Error)]
pub enum DraError {
    /// The pod has resource claims but the resolver has no Kubernetes client.
    #[error("pod {namespace}/{name} has resource claims but no Kubernetes client is configured")]
    NoClient {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// ResourceSlices are selected by node; the pod has none.
    #[error("pod {namespace}/{name} has resource claims but no node name")]
    NoNodeName {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// GET of a ResourceClaim failed (including not found).
    #[error("failed to get ResourceClaim {namespace}/{name}: {source}")]
    GetClaim {
        /// Claim namespace.
        namespace: String,
        /// Claim name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// A ResourceClaim has no `status.allocation`.
    #[error("claim {claim} has no device allocation")]
    NoAllocation {
        /// Claim name.
        claim: String,
    },
    /// Listing the node's ResourceSlices of a driver failed.
    #[error("failed to list ResourceSlices with fieldSelector spec.nodeName={node},spec.driver={driver}: {source}")]
    ListSlices {
        /// Node name.
        node: String,
        /// Driver name.
        driver: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// An object returned by the API server does not have the shape of its kind.
    #[error("malformed {kind} {name}: {source}")]
    Malformed {
        /// `ResourceClaim` or `ResourceSlice`.
        kind: &'static str,
        /// Object name.
        name: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// An extended-resource request mapping names a request without allocated devices.
    #[error("extended resource {resource_name}: request {request} has no allocated device in claim {claim}")]
    ExtendedRequestUnallocated {
        /// The mapping's resource name.
        resource_name: String,
        /// The mapping's request name.
        request: String,
        /// The extended-resource claim.
        claim: String,
    },
    /// A device allocated for an extended resource is missing from the ResourceSlices or has no
    /// `k8s.cni.cncf.io/deviceID` attribute.
    #[error("extended resource {resource_name}: device {device} {problem}")]
    ExtendedDeviceUnresolved {
        /// The mapping's resource name.
        resource_name: String,
        /// `driver/pool/device`.
        device: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A device allocated for an extended resource carries another `k8s.cni.cncf.io/resourceName`.
    #[error(
        "extended resource {resource_name}: device {device} has k8s.cni.cncf.io/resourceName {actual:?}, expected {resource_name:?}"
    )]
    ExtendedResourceNameMismatch {
        /// The mapping's resource name.
        resource_name: String,
        /// `driver/pool/device`.
        device: String,
        /// The device's attribute (empty when absent).
        actual: String,
    },
    /// The whole DRA lookup took longer than its timeout.
    #[error("DRA device lookup did not finish within {timeout:?}")]
    Timeout {
        /// The overall timeout.
        timeout: Duration,
    },
}
