//! The DRA source against an in-process kube-mock serving `resource.k8s.io/v1` ResourceClaims and
//! ResourceSlices, alone and merged with kubelet devices from fake-kubelet (spec §5.10.1,
//! §12.4 items 59–60, §12.6 item 78).

use std::time::Duration;

use fake_kubelet::{DeviceScript, FakeKubelet, Script};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_mock::{MockApiServer, MockConfig, RequestMatcher};
use multus_devices::dra::DraSource;
use multus_devices::kubelet::KubeletSource;
use multus_devices::{
    ContainerExtendedResourceRequest, DeviceError, DeviceMap, DeviceResolver, DraError, PodDevicesQuery,
    PodExtendedResourceClaimStatus, PodResourceClaimStatus,
};
use serde_json::{Value, json};

const SRIOV: &str = "sriov.example.com";
const GPU: &str = "gpu.example.com";

/// kube-mock plus a temp dir whose checkpoint is empty (so the kubelet source succeeds).
struct Env {
    server: MockApiServer,
    client: kube::Client,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = MockApiServer::start(MockConfig::default()).await.unwrap();
        let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint"), "{}").unwrap();
        Self { server, client, dir }
    }

    fn create(&self, object: Value) {
        self.server.store().create(object).unwrap();
    }

    /// A resolver without kubelet socket (empty checkpoint) and with DRA.
    fn resolver(&self) -> DeviceResolver {
        DeviceResolver::new(self.kubelet_source(&self.dir.path().join("absent.sock")), Some(self.client.clone()))
    }

    fn kubelet_source(&self, socket: &std::path::Path) -> KubeletSource {
        KubeletSource { checkpoint: self.dir.path().join("checkpoint"), ..KubeletSource::with_socket(socket) }
    }

    /// Requests the mock received for `resource` (`resourceclaims`, `resourceslices`).
    fn requests(&self, resource: &str) -> Vec<String> {
        self.server
            .journal()
            .into_iter()
            .filter(|e| e.path.contains(&format!("/{resource}")))
            .map(|e| format!("{} {}?{}", e.method, e.path, e.query.unwrap_or_default()))
            .collect()
    }
}

/// A device of a slice: name, then optional deviceID and resourceName attributes.
fn device(name: &str, device_id: Option<&str>, resource_name: Option<&str>) -> Value {
    let mut attributes = serde_json::Map::new();
    if let Some(id) = device_id {
        attributes.insert("k8s.cni.cncf.io/deviceID".into(), json!({"string": id}));
    }
    if let Some(resource) = resource_name {
        attributes.insert("k8s.cni.cncf.io/resourceName".into(), json!({"string": resource}));
    }
    attributes.insert("example.com/numa".into(), json!({"int": 0}));
    json!({"name": name, "attributes": attributes})
}

fn slice(name: &str, node: &str, driver: &str, pool: &str, devices: Vec<Value>) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name},
        "spec": {"driver": driver, "nodeName": node,
                 "pool": {"name": pool, "generation": 1, "resourceSliceCount": 1}, "devices": devices}
    })
}

/// An allocated claim in `default`: results are (request, driver, pool, device).
fn claim(name: &str, results: &[(&str, &str, &str, &str)]) -> Value {
    let results: Vec<Value> = results
        .iter()
        .map(|(request, driver, pool, device)| json!({"request": request, "driver": driver, "pool": pool, "device": device}))
        .collect();
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "vf", "exactly": {"deviceClassName": "vf.example.com"}}]}},
        "status": {"allocation": {"devices": {"results": results}}}
    })
}

fn unallocated_claim(name: &str) -> Value {
    let mut claim = claim(name, &[]);
    claim["status"] = json!({});
    claim
}

fn pod_with_claims(claims: &[&str]) -> PodDevicesQuery {
    PodDevicesQuery {
        namespace: "default".into(),
        name: "web".into(),
        uid: "uid-web".into(),
        node_name: "node1".into(),
        resource_claim_statuses: claims
            .iter()
            .enumerate()
            .map(|(i, c)| PodResourceClaimStatus {
                name: format!("claim{i}"),
                resource_claim_name: Some(c.to_string()),
            })
            .collect(),
        extended_resource_claim_status: None,
    }
}

fn extended(claim: &str, mappings: &[(&str, &str)]) -> PodExtendedResourceClaimStatus {
    PodExtendedResourceClaimStatus {
        resource_claim_name: claim.into(),
        request_mappings: mappings
            .iter()
            .map(|(resource, request)| ContainerExtendedResourceRequest {
                container_name: "app".into(),
                resource_name: resource.to_string(),
                request_name: request.to_string(),
            })
            .collect(),
    }
}

fn map(entries: &[(&str, &[&str])]) -> DeviceMap {
    entries.iter().map(|(k, ids)| (k.to_string(), ids.iter().map(|s| s.to_string()).collect())).collect()
}

/// node1 has VFs vf0..vf3 (resource intel.com/sriov), an RDMA device (example.com/rdma) and a GPU
/// without CNI attributes; node2 has vf9 in a pool of the same name.
fn seed_node_devices(env: &Env) {
    env.create(slice(
        "node1-sriov",
        "node1",
        SRIOV,
        "node1",
        vec![
            device("vf0", Some("0000:af:06.0"), Some("intel.com/sriov")),
            device("vf1", Some("0000:af:06.1"), Some("intel.com/sriov")),
            device("vf2", Some("0000:af:06.2"), Some("intel.com/sriov")),
            device("rdma0", Some("mlx5_0"), Some("example.com/rdma")),
            device("no-id", None, Some("intel.com/sriov")),
            device("no-resource", Some("0000:af:06.7"), None),
        ],
    ));
    // A second slice of the same pool (large pools are split).
    env.create(slice(
        "node1-sriov-2",
        "node1",
        SRIOV,
        "node1",
        vec![device("vf3", Some("0000:af:06.3"), Some("intel.com/sriov"))],
    ));
    env.create(slice("node1-gpu", "node1", GPU, "node1", vec![device("gpu0", None, None)]));
    // Same pool and device names on another node: must never be used for node1's pods.
    env.create(slice(
        "node2-sriov",
        "node2",
        SRIOV,
        "node1",
        vec![device("vf0", Some("0000:b0:00.0"), Some("intel.com/sriov"))],
    ));
}

#[tokio::test]
async fn pods_without_claims_make_no_api_request() {
    let env = Env::start().await;
    let found = env.resolver().pod_devices(&pod_with_claims(&[])).await.unwrap();
    assert!(found.is_empty());
    // A claim status without a claim name (no claim was needed) counts as none.
    let mut unneeded = pod_with_claims(&[]);
    unneeded.resource_claim_statuses.push(PodResourceClaimStatus { name: "x".into(), resource_claim_name: None });
    assert!(env.resolver().pod_devices(&unneeded).await.unwrap().is_empty());
    assert!(env.requests("resourceclaims").is_empty() && env.requests("resourceslices").is_empty());
    // Without a Kubernetes client, pods without claims are fine too.
    let no_client = DeviceResolver::new(env.kubelet_source(&env.dir.path().join("absent.sock")), None);
    assert!(no_client.pod_devices(&unneeded).await.unwrap().is_empty());
}

#[tokio::test]
async fn allocated_devices_resolve_through_the_node_slices() {
    let env = Env::start().await;
    seed_node_devices(&env);
    // Several devices for one request, devices of two resource names, one from the pool's
    // second slice; listed out of order.
    env.create(claim(
        "web-vfs",
        &[
            ("vf", SRIOV, "node1", "vf3"),
            ("vf", SRIOV, "node1", "vf0"),
            ("rdma", SRIOV, "node1", "rdma0"),
            ("vf", SRIOV, "node1", "vf1"),
        ],
    ));
    let found = env.resolver().pod_devices(&pod_with_claims(&["web-vfs"])).await.unwrap();
    assert_eq!(
        found,
        map(&[
            ("example.com/rdma", &["mlx5_0"]),
            ("intel.com/sriov", &["0000:af:06.0", "0000:af:06.1", "0000:af:06.3"])
        ])
    );
    // node2's vf0 (0000:b0:00.0) was excluded by the node field selector.
    assert_eq!(
        env.requests("resourceclaims"),
        ["GET /apis/resource.k8s.io/v1/namespaces/default/resourceclaims/web-vfs?"]
    );
    assert_eq!(
        env.requests("resourceslices"),
        [
            "GET /apis/resource.k8s.io/v1/resourceslices?&fieldSelector=spec.nodeName%3Dnode1%2Cspec.driver%3Dsriov.example.com"
        ]
    );
}

#[tokio::test]
async fn claims_and_slices_are_read_once_per_lookup() {
    let env = Env::start().await;
    seed_node_devices(&env);
    env.create(claim("a", &[("vf", SRIOV, "node1", "vf0")]));
    env.create(claim("b", &[("vf", SRIOV, "node1", "vf2"), ("gpu", GPU, "node1", "gpu0")]));
    // Claim `a` is referenced twice: read once, its device counted once.
    let found = env.resolver().pod_devices(&pod_with_claims(&["a", "b", "a"])).await.unwrap();
    assert_eq!(found, map(&[("intel.com/sriov", &["0000:af:06.0", "0000:af:06.2"])]));
    assert_eq!(env.requests("resourceclaims").len(), 2);
    // One list per node/driver: sriov and gpu.
    let lists = env.requests("resourceslices");
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(lists[1].contains("spec.driver%3Dgpu.example.com"), "{lists:?}");
}

#[tokio::test]
async fn unresolvable_devices_are_skipped_and_kubelet_entries_kept() {
    let env = Env::start().await;
    seed_node_devices(&env);
    env.create(claim(
        "partial",
        &[
            ("vf", SRIOV, "node1", "vf2"),
            ("vf", SRIOV, "node1", "no-id"),
            ("vf", SRIOV, "node1", "no-resource"),
            ("vf", SRIOV, "node1", "vanished"),
            ("vf", SRIOV, "other-pool", "vf0"),
            ("x", "unknown-driver.example.com", "node1", "d0"),
        ],
    ));
    env.create(claim("gpu-only", &[("gpu", GPU, "node1", "gpu0")]));
    // The kubelet (device plugin) reports an SR-IOV VF of its own for this pod.
    let socket = env.dir.path().join("kubelet.sock");
    let mut script = Script::default();
    script.add_devices(
        "default",
        "web",
        "app",
        DeviceScript {
            resource_name: "intel.com/sriov".into(),
            device_ids: vec!["0000:af:10.0".into()],
            numa_nodes: vec![],
        },
    );
    script.add_devices(
        "default",
        "web",
        "app",
        DeviceScript { resource_name: "example.com/dp-only".into(), device_ids: vec!["d1".into()], numa_nodes: vec![] },
    );
    let kubelet = FakeKubelet::start(&socket, script).await.unwrap();
    let resolver = DeviceResolver::new(env.kubelet_source(&socket), Some(env.client.clone()));

    // A GPU claim without CNI attributes: skipped, the device-plugin entries still resolve.
    let gpu = resolver.pod_devices(&pod_with_claims(&["gpu-only"])).await.unwrap();
    assert_eq!(gpu, map(&[("example.com/dp-only", &["d1"]), ("intel.com/sriov", &["0000:af:10.0"])]));

    // Partially resolvable: the good device is appended to the kubelet's entry, sorted.
    let partial = resolver.pod_devices(&pod_with_claims(&["partial"])).await.unwrap();
    assert_eq!(
        partial,
        map(&[("example.com/dp-only", &["d1"]), ("intel.com/sriov", &["0000:af:06.2", "0000:af:10.0"])])
    );
    kubelet.shutdown().await;
}

#[tokio::test]
async fn claim_errors_fail_the_lookup() {
    let env = Env::start().await;
    seed_node_devices(&env);
    env.create(unallocated_claim("pending"));
    env.create(claim("good", &[("vf", SRIOV, "node1", "vf0")]));

    let err = env.resolver().pod_devices(&pod_with_claims(&["good", "pending"])).await.unwrap_err();
    assert_eq!(err.to_string(), "claim pending has no device allocation");
    assert_eq!(err.go_context(), "failed to get resourceMap from ResourceClient");

    let err = env.resolver().pod_devices(&pod_with_claims(&["missing"])).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::GetClaim { .. })), "{err}");
    assert!(err.to_string().contains("default/missing"), "{err}");

    // Claims are read in the pod's namespace: a same-named claim elsewhere does not count.
    let mut elsewhere = claim("only-in-other", &[("vf", SRIOV, "node1", "vf1")]);
    elsewhere["metadata"]["namespace"] = json!("other");
    env.create(elsewhere);
    assert!(env.resolver().pod_devices(&pod_with_claims(&["only-in-other"])).await.is_err());

    // API errors while listing slices fail the lookup.
    env.server.faults().fail_next(RequestMatcher::resource("resourceslices"), 1, 500, None).unwrap();
    let err = env.resolver().pod_devices(&pod_with_claims(&["good"])).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::ListSlices { .. })), "{err}");

    // Claims but no client, or no node name: errors, not silence.
    let no_client = DeviceResolver::new(env.kubelet_source(&env.dir.path().join("absent.sock")), None);
    let err = no_client.pod_devices(&pod_with_claims(&["good"])).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::NoClient { .. })), "{err}");
    let mut nodeless = pod_with_claims(&["good"]);
    nodeless.node_name.clear();
    let err = env.resolver().pod_devices(&nodeless).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::NoNodeName { .. })), "{err}");
}

#[tokio::test]
async fn same_named_claims_in_two_namespaces_are_distinct() {
    let env = Env::start().await;
    seed_node_devices(&env);
    env.create(claim("vfs", &[("vf", SRIOV, "node1", "vf0")]));
    let mut other = claim("vfs", &[("vf", SRIOV, "node1", "vf1")]);
    other["metadata"]["namespace"] = json!("other");
    env.create(other);
    let resolver = env.resolver();
    let default_pod = pod_with_claims(&["vfs"]);
    let other_pod = PodDevicesQuery { namespace: "other".into(), ..pod_with_claims(&["vfs"]) };
    assert_eq!(resolver.pod_devices(&default_pod).await.unwrap(), map(&[("intel.com/sriov", &["0000:af:06.0"])]));
    assert_eq!(resolver.pod_devices(&other_pod).await.unwrap(), map(&[("intel.com/sriov", &["0000:af:06.1"])]));
}

#[tokio::test]
async fn extended_resource_mappings() {
    let env = Env::start().await;
    seed_node_devices(&env);
    // The scheduler-created claim for `intel.com/sriov: 2` (count > 1) and `example.com/rdma: 1`.
    env.create(claim(
        "web-extended",
        &[
            ("container-0-request-0", SRIOV, "node1", "vf2"),
            ("container-0-request-0", SRIOV, "node1", "vf1"),
            ("container-0-request-1", SRIOV, "node1", "rdma0"),
        ],
    ));
    env.create(claim("ordinary", &[("vf", SRIOV, "node1", "vf0")]));
    let pod = PodDevicesQuery {
        extended_resource_claim_status: Some(extended(
            "web-extended",
            &[("intel.com/sriov", "container-0-request-0"), ("example.com/rdma", "container-0-request-1")],
        )),
        ..pod_with_claims(&["ordinary"])
    };
    // Ordinary claims and the extended status are both processed.
    assert_eq!(
        env.resolver().pod_devices(&pod).await.unwrap(),
        map(&[
            ("example.com/rdma", &["mlx5_0"]),
            ("intel.com/sriov", &["0000:af:06.0", "0000:af:06.1", "0000:af:06.2"])
        ])
    );
    // Extended status alone.
    let only_extended = PodDevicesQuery {
        extended_resource_claim_status: Some(extended(
            "web-extended",
            &[("example.com/rdma", "container-0-request-1")],
        )),
        ..pod_with_claims(&[])
    };
    assert_eq!(env.resolver().pod_devices(&only_extended).await.unwrap(), map(&[("example.com/rdma", &["mlx5_0"])]));

    // The device's resourceName attribute must match the mapping.
    let mismatched = PodDevicesQuery {
        extended_resource_claim_status: Some(extended("web-extended", &[("example.com/vf", "container-0-request-0")])),
        ..pod_with_claims(&[])
    };
    let err = env.resolver().pod_devices(&mismatched).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::ExtendedResourceNameMismatch { .. })), "{err}");
    assert!(err.to_string().contains("\"intel.com/sriov\""), "{err}");

    // Every mapping must resolve: a request without devices, a device missing from the slices.
    let unallocated = PodDevicesQuery {
        extended_resource_claim_status: Some(extended("web-extended", &[("intel.com/sriov", "container-1-request-0")])),
        ..pod_with_claims(&[])
    };
    let err = env.resolver().pod_devices(&unallocated).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::ExtendedRequestUnallocated { .. })), "{err}");
    env.create(claim("stale-extended", &[("r0", SRIOV, "node1", "vanished")]));
    let vanished = PodDevicesQuery {
        extended_resource_claim_status: Some(extended("stale-extended", &[("intel.com/sriov", "r0")])),
        ..pod_with_claims(&[])
    };
    let err = env.resolver().pod_devices(&vanished).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::ExtendedDeviceUnresolved { .. })), "{err}");
}

#[tokio::test]
async fn a_slow_api_server_hits_the_overall_timeout() {
    let env = Env::start().await;
    seed_node_devices(&env);
    env.create(claim("web-vfs", &[("vf", SRIOV, "node1", "vf0")]));
    env.server.faults().add_latency(RequestMatcher::resource("resourceslices"), Duration::from_secs(30)).unwrap();
    let resolver = env.resolver().with_dra_timeout(Duration::from_millis(300));
    let err = resolver.pod_devices(&pod_with_claims(&["web-vfs"])).await.unwrap_err();
    assert!(matches!(err, DeviceError::Dra(DraError::Timeout { .. })), "{err}");

    // DraSource on its own leaves the map untouched on failure.
    let source = DraSource::new(env.client.clone()).with_timeout(Duration::from_millis(300));
    let mut existing = map(&[("intel.com/sriov", &["keep"])]);
    assert!(source.add_pod_devices(&pod_with_claims(&["web-vfs"]), &mut existing).await.is_err());
    assert_eq!(existing, map(&[("intel.com/sriov", &["keep"])]));
    assert_eq!(source.timeout(), Duration::from_millis(300));
    assert_eq!(DraSource::new(env.client.clone()).timeout(), Duration::from_secs(20));
}
