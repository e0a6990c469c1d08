//! Kubernetes objects as Multus reads them.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ApiResource;
use multus::model::PodInfo;

/// A pod's (namespace, name).
pub type PodKey = (String, String);

/// The NetworkAttachmentDefinition resource.
pub fn nad_resource() -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".into(),
        version: "v1".into(),
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        plural: "network-attachment-definitions".into(),
    }
}

/// Reduce a Pod to what Multus reads (`None` without a namespace or name).
pub fn pod_info(pod: &Pod) -> Option<(PodKey, PodInfo)> {
    pod_info_with(pod, true)
}

/// As [`pod_info`]; without its annotations when `with_annotations` is false (a pod whose
/// annotations are refused for their size keeps its identity only).
pub fn pod_info_with(pod: &Pod, with_annotations: bool) -> Option<(PodKey, PodInfo)> {
    let meta = &pod.metadata;
    let (ns, name) = (meta.namespace.clone()?, meta.name.clone()?);
    let info = PodInfo {
        namespace: ns.clone(),
        name: name.clone(),
        uid: meta.uid.clone().unwrap_or_default(),
        annotations: if with_annotations { meta.annotations.clone().unwrap_or_default() } else { Default::default() },
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        claim_status: claim_status(pod),
    };
    Some(((ns, name), info))
}

/// `status.resourceClaimStatuses` and `status.extendedResourceClaimStatus`, for the DRA
/// device lookup (`Null` without claims, the common case: nothing kept per pod).
fn claim_status(pod: &Pod) -> serde_json::Value {
    let Some(status) = pod.status.as_ref() else { return serde_json::Value::Null };
    let mut out = serde_json::Map::new();
    if let Some(claims) = status.resource_claim_statuses.as_ref().filter(|c| !c.is_empty()) {
        out.insert("resourceClaimStatuses".into(), serde_json::to_value(claims).unwrap_or_default());
    }
    if let Some(extended) = &status.extended_resource_claim_status {
        out.insert("extendedResourceClaimStatus".into(), serde_json::to_value(extended).unwrap_or_default());
    }
    if out.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(out) }
}
