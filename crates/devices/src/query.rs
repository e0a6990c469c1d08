//! What the device lookup needs to know about a pod.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the device lookup needs to know about a pod: plain data, filled from the daemon's pod
/// model or with [`PodDevicesQuery::from_pod`] from a Pod object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDevicesQuery {
    /// `metadata.namespace` (kubelet API match; DRA claims live here).
    pub namespace: String,
    /// `metadata.name` (kubelet API match).
    pub name: String,
    /// `metadata.uid` (checkpoint match).
    pub uid: String,
    /// `spec.nodeName` (ResourceSlices are read for this node).
    pub node_name: String,
    /// `status.resourceClaimStatuses`.
    #[serde(default)]
    pub resource_claim_statuses: Vec<PodResourceClaimStatus>,
    /// `status.extendedResourceClaimStatus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_resource_claim_status: Option<PodExtendedResourceClaimStatus>,
}

/// One entry of a pod's `status.resourceClaimStatuses`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodResourceClaimStatus {
    /// The pod's name for the claim (`spec.resourceClaims[].name`).
    #[serde(default)]
    pub name: String,
    /// The ResourceClaim object; absent when no claim was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_claim_name: Option<String>,
}

/// A pod's `status.extendedResourceClaimStatus`: the claim created for extended resources
/// (`example.com/vf: 2` in a container's requests) that a DRA driver serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodExtendedResourceClaimStatus {
    /// Which claim request serves which container's extended resource.
    #[serde(default)]
    pub request_mappings: Vec<ContainerExtendedResourceRequest>,
    /// The claim's name (in the pod's namespace).
    #[serde(default)]
    pub resource_claim_name: String,
}

/// One `requestMappings` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExtendedResourceRequest {
    /// The container asking for the extended resource.
    #[serde(default)]
    pub container_name: String,
    /// The extended resource name (the key its devices are filed under).
    #[serde(default)]
    pub resource_name: String,
    /// The claim request that serves it.
    #[serde(default)]
    pub request_name: String,
}

impl PodDevicesQuery {
    /// Reads the fields from a Pod object (JSON as the API serves it). Missing or malformed
    /// fields read as empty.
    pub fn from_pod(pod: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let status = &pod["status"];
        Self {
            namespace: text(&pod["metadata"]["namespace"]),
            name: text(&pod["metadata"]["name"]),
            uid: text(&pod["metadata"]["uid"]),
            node_name: text(&pod["spec"]["nodeName"]),
            resource_claim_statuses: Vec::deserialize(&status["resourceClaimStatuses"]).unwrap_or_default(),
            extended_resource_claim_status: Option::deserialize(&status["extendedResourceClaimStatus"]).ok().flatten(),
        }
    }

    /// Whether the DRA source has anything to read for this pod.
    pub fn has_resource_claims(&self) -> bool {
        self.resource_claim_statuses.iter().any(|s| s.resource_claim_name.as_deref().is_some_and(|c| !c.is_empty()))
            || self.extended_resource_claim_status.as_ref().is_some_and(|e| !e.resource_claim_name.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_from_a_pod_object() {
        let pod = json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": "u-1"},
            "spec": {"nodeName": "node1"},
            "status": {
                "resourceClaimStatuses": [{"name": "vf", "resourceClaimName": "p-vf-x7k2"}, {"name": "unused"}],
                "extendedResourceClaimStatus": {
                    "resourceClaimName": "p-extended-resources-abc",
                    "requestMappings": [{"containerName": "c", "resourceName": "example.com/vf", "requestName": "container-0-request-0"}]
                }
            }
        });
        let query = PodDevicesQuery::from_pod(&pod);
        assert_eq!((query.namespace.as_str(), query.name.as_str(), query.uid.as_str()), ("ns", "p", "u-1"));
        assert_eq!(query.node_name, "node1");
        assert_eq!(query.resource_claim_statuses[0].resource_claim_name.as_deref(), Some("p-vf-x7k2"));
        assert_eq!(query.resource_claim_statuses[1].resource_claim_name, None);
        let extended = query.extended_resource_claim_status.as_ref().unwrap();
        assert_eq!(extended.request_mappings[0].resource_name, "example.com/vf");
        assert!(query.has_resource_claims());
        // The query round-trips through its own serde form (the daemon may cache it).
        assert_eq!(serde_json::from_value::<PodDevicesQuery>(serde_json::to_value(&query).unwrap()).unwrap(), query);
    }

    #[test]
    fn pods_without_claims_have_none() {
        let plain = PodDevicesQuery::from_pod(&json!({"metadata": {"name": "p"}}));
        assert!(!plain.has_resource_claims());
        assert!(plain.namespace.is_empty() && plain.node_name.is_empty());
        let unneeded = PodDevicesQuery::from_pod(&json!({"status": {"resourceClaimStatuses": [{"name": "x"}]}}));
        assert!(!unneeded.has_resource_claims());
        let malformed = PodDevicesQuery::from_pod(&json!({"status": {"resourceClaimStatuses": "x"}}));
        assert!(malformed.resource_claim_statuses.is_empty());
    }
}
