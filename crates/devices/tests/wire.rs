//! The vendored podresources v1 API on the wire: field numbers and the gRPC method paths must be
//! the kubelet's. The expected bytes are written out by hand from the published field numbers
//! (tag byte = field number << 3 | wire type; 2 = length-delimited, 0 = varint).

use std::sync::{Arc, Mutex};

use multus_devices::podresources::v1::pod_resources_lister_client::PodResourcesListerClient;
use multus_devices::podresources::v1::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, CdiDevice, ClaimResource, ContainerDevices,
    ContainerMemory, ContainerResources, DynamicResource, GetPodResourcesRequest, ListPodResourcesRequest,
    ListPodResourcesResponse, NumaNode, PodResources, TopologyInfo,
};
use prost::Message;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn list_response_field_numbers_are_the_kubelets() {
    let response = ListPodResourcesResponse {
        pod_resources: vec![PodResources {
            name: "p".into(),
            namespace: "n".into(),
            containers: vec![ContainerResources {
                name: "c".into(),
                devices: vec![ContainerDevices {
                    resource_name: "r".into(),
                    device_ids: vec!["d".into()],
                    topology: Some(TopologyInfo { nodes: vec![NumaNode { id: 1 }] }),
                }],
                cpu_ids: vec![3],
                memory: vec![],
                dynamic_resources: vec![DynamicResource {
                    claim_name: "k".into(),
                    claim_namespace: "n".into(),
                    claim_resources: vec![ClaimResource {
                        cdi_devices: vec![CdiDevice { name: "x".into() }],
                        driver_name: "v".into(),
                        pool_name: "o".into(),
                        device_name: "e".into(),
                    }],
                }],
            }],
        }],
    };
    let numa_node = "08 01"; // ID = 1
    let topology = format!("0a 02 {numa_node}"); // nodes = 1
    // resource_name = 1, device_ids = 2, topology = 3
    let devices = format!("0a 01 72 12 01 64 1a 04 {topology}");
    let cdi_device = "0a 01 78"; // name = 1
    // cdi_devices = 1, driver_name = 2, pool_name = 3, device_name = 4
    let claim_resource = format!("0a 03 {cdi_device} 12 01 76 1a 01 6f 22 01 65");
    // claim_name = 2, claim_namespace = 3, claim_resources = 4 (field 1 is retired)
    let dynamic = format!("12 01 6b 1a 01 6e 22 0e {claim_resource}");
    // name = 1, devices = 2, cpu_ids = 3 (packed), dynamic_resources = 5
    let container = format!("0a 01 63 12 0c {devices} 1a 01 03 2a 16 {dynamic}");
    // name = 1, namespace = 2, containers = 3
    let pod = format!("0a 01 70 12 01 6e 1a 2c {container}");
    // pod_resources = 1
    let expected = format!("0a 34 {pod}");
    let encoded = response.encode_to_vec();
    assert_eq!(hex(&encoded), expected);
    assert_eq!(ListPodResourcesResponse::decode(encoded.as_slice()).unwrap(), response);
}

#[test]
fn get_and_allocatable_field_numbers_are_the_kubelets() {
    let request = GetPodResourcesRequest { pod_name: "a".into(), pod_namespace: "b".into() };
    assert_eq!(hex(&request.encode_to_vec()), "0a 01 61 12 01 62");
    let allocatable = AllocatableResourcesResponse {
        devices: vec![],
        cpu_ids: vec![7],
        memory: vec![ContainerMemory { memory_type: "m".into(), size: 5, topology: None }],
    };
    // cpu_ids = 2 (packed), memory = 3 { memory_type = 1, size = 2 }
    assert_eq!(hex(&allocatable.encode_to_vec()), "12 01 07 1a 05 0a 01 6d 10 05");
    assert!(ListPodResourcesRequest {}.encode_to_vec().is_empty());
}

#[tokio::test]
async fn method_paths_are_the_kubelets() {
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = paths.clone();
    // A transport that records the request path and answers every call with UNIMPLEMENTED.
    let transport = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        recorded.lock().unwrap().push(request.uri().path().to_string());
        async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "12")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            )
        }
    });
    let mut client = PodResourcesListerClient::with_origin(transport, "http://localhost".parse().unwrap());
    assert!(client.list(ListPodResourcesRequest {}).await.is_err());
    assert!(client.get(GetPodResourcesRequest::default()).await.is_err());
    assert!(client.get_allocatable_resources(AllocatableResourcesRequest {}).await.is_err());
    assert_eq!(
        *paths.lock().unwrap(),
        ["/v1.PodResourcesLister/List", "/v1.PodResourcesLister/Get", "/v1.PodResourcesLister/GetAllocatableResources"]
    );
}
