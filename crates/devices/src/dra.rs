//! Device IDs from dynamic resource allocation (spec §5.10.1, reference HEAD behaviour).
//!
//! For each of the pod's `status.resourceClaimStatuses[]` that names a claim, the ResourceClaim
//! (`resource.k8s.io/v1`, the pod's namespace) is read; it must be allocated. Each allocation
//! result (driver, pool, device) is looked up in the ResourceSlices of the pod's node and that
//! driver (one list per node/driver, field selector `spec.nodeName=<node>,spec.driver=<driver>`),
//! and the device's string attributes `k8s.cni.cncf.io/deviceID` and
//! `k8s.cni.cncf.io/resourceName` give the ID and the key it is filed under. Devices missing from
//! the slices or lacking either attribute are skipped with a warning (a GPU claim without CNI
//! attributes must not break networking).
//!
//! `status.extendedResourceClaimStatus` (extended resources backed by DRA) is stricter: every
//! request mapping must have allocated devices, each found in the slices with a `deviceID`, and
//! its `resourceName` attribute must equal the mapping's resource name, under which it is filed.
//!
//! The whole lookup has one overall timeout (20 s by default).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Deserialize;

use crate::query::PodDevicesQuery;
use crate::{DeviceMap, DraError, append_ids};

/// Overall timeout of one pod's DRA lookup.
pub const DEFAULT_DRA_TIMEOUT: Duration = Duration::from_secs(20);
/// Device attribute holding the ID handed to the delegate (PCI address, …).
pub const DEVICE_ID_ATTRIBUTE: &str = "k8s.cni.cncf.io/deviceID";
/// Device attribute holding the resource name a NAD's `resourceName` annotation refers to.
pub const RESOURCE_NAME_ATTRIBUTE: &str = "k8s.cni.cncf.io/resourceName";
/// API group and version of ResourceClaims and ResourceSlices.
pub const RESOURCE_API_GROUP: &str = "resource.k8s.io";
/// API version read.
pub const RESOURCE_API_VERSION: &str = "v1";

/// Reads the pod's claims and the node's slices through the Kubernetes API.
#[derive(Clone)]
pub struct DraSource {
    client: kube::Client,
    timeout: Duration,
}

impl std::fmt::Debug for DraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DraSource").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl DraSource {
    /// A source using `client`, with the default overall timeout.
    pub fn new(client: kube::Client) -> Self {
        Self { client, timeout: DEFAULT_DRA_TIMEOUT }
    }

    /// Replaces the overall timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The overall timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Appends the pod's DRA device IDs to `map` (nothing when the pod has no claims). On error
    /// `map` is left unchanged.
    pub async fn add_pod_devices(&self, pod: &PodDevicesQuery, map: &mut DeviceMap) -> Result<(), DraError> {
        if !pod.has_resource_claims() {
            return Ok(());
        }
        if pod.node_name.is_empty() {
            return Err(DraError::NoNodeName { namespace: pod.namespace.clone(), name: pod.name.clone() });
        }
        let mut lookup = Lookup::new(&self.client, &pod.namespace, &pod.node_name);
        let found = tokio::time::timeout(self.timeout, lookup.pod_devices(pod))
            .await
            .map_err(|_| DraError::Timeout { timeout: self.timeout })??;
        for (resource_name, ids) in found {
            append_ids(map, &resource_name, ids);
        }
        Ok(())
    }
}

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(RESOURCE_API_GROUP, RESOURCE_API_VERSION, kind), plural)
}

/// One allocated device of a claim (`status.allocation.devices.results[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AllocatedDevice {
    /// The claim request (or `request/subrequest`) it satisfies.
    #[serde(default)]
    pub request: String,
    /// The DRA driver.
    #[serde(default)]
    pub driver: String,
    /// The pool within the driver.
    #[serde(default)]
    pub pool: String,
    /// The device name within the pool.
    #[serde(default)]
    pub device: String,
}

impl AllocatedDevice {
    fn display(&self) -> String {
        format!("{}/{}/{}", self.driver, self.pool, self.device)
    }

    /// Whether this result satisfies request `name` (directly or through one of its subrequests).
    fn satisfies(&self, name: &str) -> bool {
        self.request == name || self.request.strip_prefix(name).is_some_and(|rest| rest.starts_with('/'))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ClaimBody {
    #[serde(default)]
    status: Option<ClaimStatus>,
}

#[derive(Debug, Default, Deserialize)]
struct ClaimStatus {
    #[serde(default)]
    allocation: Option<Allocation>,
}

#[derive(Debug, Default, Deserialize)]
struct Allocation {
    #[serde(default)]
    devices: Option<DeviceAllocation>,
}

#[derive(Debug, Default, Deserialize)]
struct DeviceAllocation {
    #[serde(default)]
    results: Vec<AllocatedDevice>,
}

/// The allocated devices of a claim object's body; `None` when it has no allocation.
pub fn claim_allocation(claim: &serde_json::Value) -> Result<Option<Vec<AllocatedDevice>>, serde_json::Error> {
    let body = ClaimBody::deserialize(claim)?;
    Ok(body.status.and_then(|s| s.allocation).map(|a| a.devices.map(|d| d.results).unwrap_or_default()))
}

#[derive(Debug, Default, Deserialize)]
struct SliceBody {
    #[serde(default)]
    spec: SliceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliceSpec {
    #[serde(default)]
    driver: String,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    pool: SlicePool,
    #[serde(default)]
    devices: Vec<SliceDevice>,
}

#[derive(Debug, Default, Deserialize)]
struct SlicePool {
    #[serde(default)]
    name: String,
    #[serde(default)]
    generation: i64,
}

#[derive(Debug, Default, Deserialize)]
struct SliceDevice {
    #[serde(default)]
    name: String,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
}

/// The devices of one node and driver, by (pool, device name).
#[derive(Debug, Default)]
pub struct SliceIndex {
    devices: BTreeMap<(String, String), IndexedDevice>,
}

#[derive(Debug)]
struct IndexedDevice {
    generation: i64,
    attributes: BTreeMap<String, serde_json::Value>,
}

/// What an attribute lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// A string attribute.
    String(String),
    /// Absent.
    Missing,
    /// Present but not a string (`int`, `bool`, `version`).
    NotAString,
}

impl SliceIndex {
    /// Indexes the slices of `driver` on `node`: a device listed by several slices of one pool
    /// is taken from the newest pool generation.
    pub fn from_slices(node: &str, driver: &str, slices: &[serde_json::Value]) -> Result<Self, DraError> {
        let mut index = Self::default();
        for slice in slices {
            let name = slice["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let body = SliceBody::deserialize(slice).map_err(|source| DraError::Malformed {
                kind: "ResourceSlice",
                name: name.clone(),
                source,
            })?;
            let spec = body.spec;
            // The API server filtered by node and driver already; a server that ignored the
            // selector must not mix in other nodes' devices.
            if spec.driver != driver || spec.node_name.as_deref() != Some(node) {
                continue;
            }
            for device in spec.devices {
                let key = (spec.pool.name.clone(), device.name);
                let newer = index.devices.get(&key).is_none_or(|d| d.generation <= spec.pool.generation);
                if newer {
                    index
                        .devices
                        .insert(key, IndexedDevice { generation: spec.pool.generation, attributes: device.attributes });
                }
            }
        }
        Ok(index)
    }

    /// Number of indexed devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is indexed.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Whether the pool has this device.
    pub fn contains(&self, pool: &str, device: &str) -> bool {
        self.devices.contains_key(&(pool.to_string(), device.to_string()))
    }

    /// Attribute `qualified_name` (`domain/name`) of a device. An attribute written without a
    /// domain belongs to the driver's domain, so `deviceID` of driver `k8s.cni.cncf.io` counts.
    pub fn attribute(&self, pool: &str, device: &str, driver: &str, qualified_name: &str) -> Attribute {
        let Some(indexed) = self.devices.get(&(pool.to_string(), device.to_string())) else {
            return Attribute::Missing;
        };
        let unqualified = qualified_name.split_once('/').filter(|(domain, _)| *domain == driver).map(|(_, name)| name);
        let value =
            indexed.attributes.get(qualified_name).or_else(|| unqualified.and_then(|n| indexed.attributes.get(n)));
        match value {
            None => Attribute::Missing,
            Some(v) => match v.get("string").and_then(serde_json::Value::as_str) {
                Some(s) => Attribute::String(s.to_string()),
                None => Attribute::NotAString,
            },
        }
    }
}

/// One pod's lookup, with its caches: claims by namespace/name, slices by driver (the node is
/// the pod's).
struct Lookup<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    node: &'a str,
    claims: BTreeMap<(String, String), Vec<AllocatedDevice>>,
    slices: BTreeMap<String, SliceIndex>,
}

impl<'a> Lookup<'a> {
    fn new(client: &'a kube::Client, namespace: &'a str, node: &'a str) -> Self {
        Self { client, namespace, node, claims: BTreeMap::new(), slices: BTreeMap::new() }
    }

    async fn pod_devices(&mut self, pod: &PodDevicesQuery) -> Result<DeviceMap, DraError> {
        let mut map = DeviceMap::new();
        let mut done = BTreeSet::new();
        for status in &pod.resource_claim_statuses {
            let Some(claim) = status.resource_claim_name.as_deref().filter(|c| !c.is_empty()) else {
                continue;
            };
            if !done.insert(claim.to_string()) {
                continue;
            }
            self.claim_devices(claim, &mut map).await?;
        }
        if let Some(extended) = &pod.extended_resource_claim_status {
            self.extended_devices(extended, &mut map).await?;
        }
        Ok(map)
    }

    /// Devices of an ordinary claim: unresolvable devices are skipped with a warning.
    async fn claim_devices(&mut self, claim: &str, map: &mut DeviceMap) -> Result<(), DraError> {
        for result in self.claim(claim).await? {
            let index = self.slices(&result.driver).await?;
            if !index.contains(&result.pool, &result.device) {
                tracing::warn!(
                    claim,
                    device = %result.display(),
                    node = self.node,
                    "DRA device not found in the node's ResourceSlices; skipped"
                );
                continue;
            }
            let attribute = |name| index.attribute(&result.pool, &result.device, &result.driver, name);
            match (attribute(DEVICE_ID_ATTRIBUTE), attribute(RESOURCE_NAME_ATTRIBUTE)) {
                (Attribute::String(id), Attribute::String(resource_name)) => append_ids(map, &resource_name, [id]),
                (id, resource_name) => tracing::warn!(
                    claim,
                    device = %result.display(),
                    device_id = ?id,
                    resource_name = ?resource_name,
                    "DRA device lacks the string attributes {DEVICE_ID_ATTRIBUTE} and {RESOURCE_NAME_ATTRIBUTE}; skipped"
                ),
            }
        }
        Ok(())
    }

    /// Devices of the extended-resource claim: every mapping must resolve and match.
    async fn extended_devices(
        &mut self,
        extended: &crate::PodExtendedResourceClaimStatus,
        map: &mut DeviceMap,
    ) -> Result<(), DraError> {
        let claim = extended.resource_claim_name.as_str();
        if claim.is_empty() {
            return Ok(());
        }
        let results = self.claim(claim).await?;
        for mapping in &extended.request_mappings {
            let resource_name = mapping.resource_name.as_str();
            let matching: Vec<&AllocatedDevice> =
                results.iter().filter(|r| r.satisfies(&mapping.request_name)).collect();
            if matching.is_empty() {
                return Err(DraError::ExtendedRequestUnallocated {
                    resource_name: resource_name.to_string(),
                    request: mapping.request_name.clone(),
                    claim: claim.to_string(),
                });
            }
            for result in matching {
                let index = self.slices(&result.driver).await?;
                let unresolved = |problem| DraError::ExtendedDeviceUnresolved {
                    resource_name: resource_name.to_string(),
                    device: result.display(),
                    problem,
                };
                if !index.contains(&result.pool, &result.device) {
                    return Err(unresolved("is not in the node's ResourceSlices"));
                }
                let attribute = |name| index.attribute(&result.pool, &result.device, &result.driver, name);
                let Attribute::String(id) = attribute(DEVICE_ID_ATTRIBUTE) else {
                    return Err(unresolved("has no string attribute k8s.cni.cncf.io/deviceID"));
                };
                let actual = match attribute(RESOURCE_NAME_ATTRIBUTE) {
                    Attribute::String(s) => s,
                    _ => String::new(),
                };
                if actual != resource_name {
                    return Err(DraError::ExtendedResourceNameMismatch {
                        resource_name: resource_name.to_string(),
                        device: result.display(),
                        actual,
                    });
                }
                append_ids(map, resource_name, [id]);
            }
        }
        Ok(())
    }

    /// The allocated devices of claim `name` in the pod's namespace (cached).
    async fn claim(&mut self, name: &str) -> Result<Vec<AllocatedDevice>, DraError> {
        let key = (self.namespace.to_string(), name.to_string());
        if let Some(cached) = self.claims.get(&key) {
            return Ok(cached.clone());
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, &api_resource("ResourceClaim", "resourceclaims"));
        let object = api.get(name).await.map_err(|source| DraError::GetClaim {
            namespace: self.namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        })?;
        let allocation = claim_allocation(&object.data)
            .map_err(|source| DraError::Malformed { kind: "ResourceClaim", name: name.to_string(), source })?
            .ok_or_else(|| DraError::NoAllocation { claim: name.to_string() })?;
        self.claims.insert(key, allocation.clone());
        Ok(allocation)
    }

    /// The node's slices of `driver` (listed once per driver).
    async fn slices(&mut self, driver: &str) -> Result<&SliceIndex, DraError> {
        if !self.slices.contains_key(driver) {
            let objects = self.list_slices(driver).await?;
            let index = SliceIndex::from_slices(self.node, driver, &objects)?;
            self.slices.insert(driver.to_string(), index);
        }
        Ok(&self.slices[driver])
    }

    async fn list_slices(&self, driver: &str) -> Result<Vec<serde_json::Value>, DraError> {
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &api_resource("ResourceSlice", "resourceslices"));
        let selector = format!("spec.nodeName={},spec.driver={driver}", self.node);
        let error = |source| DraError::ListSlices {
            node: self.node.to_string(),
            driver: driver.to_string(),
            source: Box::new(source),
        };
        let mut params = ListParams::default().fields(&selector);
        let mut slices = Vec::new();
        loop {
            let page = api.list(&params).await.map_err(error)?;
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            for object in page.items {
                let mut value = object.data;
                value["metadata"] = serde_json::json!({"name": object.metadata.name});
                slices.push(value);
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(slices),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(
        name: &str,
        node: &str,
        driver: &str,
        pool: &str,
        generation: i64,
        devices: serde_json::Value,
    ) -> serde_json::Value {
        json!({"metadata": {"name": name},
               "spec": {"driver": driver, "nodeName": node, "pool": {"name": pool, "generation": generation}, "devices": devices}})
    }

    #[test]
    fn allocation_results_are_read_and_absence_is_none() {
        let claim = json!({"spec": {}, "status": {"allocation": {"devices": {"results": [
            {"request": "vf", "driver": "d", "pool": "p", "device": "x", "adminAccess": false}
        ]}, "nodeSelector": {}}}});
        let devices = claim_allocation(&claim).unwrap().unwrap();
        assert_eq!(
            devices,
            [AllocatedDevice { request: "vf".into(), driver: "d".into(), pool: "p".into(), device: "x".into() }]
        );
        assert_eq!(claim_allocation(&json!({"spec": {}})).unwrap(), None);
        assert_eq!(claim_allocation(&json!({"status": {}})).unwrap(), None);
        assert_eq!(claim_allocation(&json!({"status": {"allocation": {}}})).unwrap(), Some(vec![]));
        assert!(claim_allocation(&json!({"status": {"allocation": {"devices": {"results": "x"}}}})).is_err());
    }

    #[test]
    fn subrequest_results_satisfy_their_request() {
        let result = |request: &str| AllocatedDevice { request: request.into(), ..Default::default() };
        assert!(result("vf").satisfies("vf"));
        assert!(result("vf/small").satisfies("vf"));
        assert!(!result("vf2").satisfies("vf"));
        assert!(!result("v").satisfies("vf"));
    }

    #[test]
    fn index_keeps_this_node_and_driver_and_the_newest_generation() {
        let slices = vec![
            slice(
                "a",
                "node1",
                "d",
                "p",
                1,
                json!([{"name": "x", "attributes": {"k8s.cni.cncf.io/deviceID": {"string": "old"}}}]),
            ),
            slice(
                "b",
                "node1",
                "d",
                "p",
                2,
                json!([{"name": "x", "attributes": {"k8s.cni.cncf.io/deviceID": {"string": "new"}}},
                                                    {"name": "y", "attributes": {"k8s.cni.cncf.io/deviceID": {"int": 3}}}]),
            ),
            slice(
                "c",
                "node2",
                "d",
                "p",
                9,
                json!([{"name": "x", "attributes": {"k8s.cni.cncf.io/deviceID": {"string": "node2"}}}]),
            ),
            slice("e", "node1", "other", "p", 9, json!([{"name": "z"}])),
        ];
        let index = SliceIndex::from_slices("node1", "d", &slices).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.attribute("p", "x", "d", DEVICE_ID_ATTRIBUTE), Attribute::String("new".into()));
        assert_eq!(index.attribute("p", "y", "d", DEVICE_ID_ATTRIBUTE), Attribute::NotAString);
        assert_eq!(index.attribute("p", "y", "d", RESOURCE_NAME_ATTRIBUTE), Attribute::Missing);
        assert_eq!(index.attribute("p", "nope", "d", DEVICE_ID_ATTRIBUTE), Attribute::Missing);
        assert!(!index.contains("p", "z"));
        assert!(
            SliceIndex::from_slices("node1", "d", &[json!({"metadata": {"name": "bad"}, "spec": {"devices": 1}})])
                .is_err()
        );
    }

    #[test]
    fn unqualified_attributes_belong_to_the_driver_domain() {
        let slices = vec![slice(
            "a",
            "n",
            "k8s.cni.cncf.io",
            "p",
            0,
            json!([{"name": "x", "attributes": {"deviceID": {"string": "id"}}}]),
        )];
        let index = SliceIndex::from_slices("n", "k8s.cni.cncf.io", &slices).unwrap();
        assert_eq!(index.attribute("p", "x", "k8s.cni.cncf.io", DEVICE_ID_ATTRIBUTE), Attribute::String("id".into()));
        let other = vec![slice(
            "a",
            "n",
            "sriov.example.com",
            "p",
            0,
            json!([{"name": "x", "attributes": {"deviceID": {"string": "id"}}}]),
        )];
        let index = SliceIndex::from_slices("n", "sriov.example.com", &other).unwrap();
        assert_eq!(index.attribute("p", "x", "sriov.example.com", DEVICE_ID_ATTRIBUTE), Attribute::Missing);
    }
}
