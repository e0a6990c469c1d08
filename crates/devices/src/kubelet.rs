//! Device-plugin devices of a pod from the kubelet: the pod-resources gRPC API when its socket
//! exists, else the device manager's checkpoint file (spec §5.10.1, §4.7).

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::checkpoint::{Checkpoint, DEFAULT_CHECKPOINT_PATH};
use crate::podresources::v1::pod_resources_lister_client::PodResourcesListerClient;
use crate::podresources::v1::{ListPodResourcesRequest, PodResources};
use crate::{DeviceError, DeviceMap, append_ids};

/// The kubelet's pod-resources socket.
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Connection timeout to the socket (as the reference).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of the `List` call (as the reference).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `List` answer accepted (as the reference: 16 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Where and how to ask the kubelet. [`Default`] gives the reference's paths and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSource {
    /// The pod-resources unix socket; used when it exists.
    pub socket: PathBuf,
    /// The device manager's checkpoint; read when the socket does not exist.
    pub checkpoint: PathBuf,
    /// Timeout for connecting to the socket.
    pub dial_timeout: Duration,
    /// Timeout for the `List` call.
    pub call_timeout: Duration,
    /// Largest accepted `List` answer, in bytes.
    pub max_message_size: usize,
}

impl Default for KubeletSource {
    fn default() -> Self {
        Self {
            socket: DEFAULT_POD_RESOURCES_SOCKET.into(),
            checkpoint: DEFAULT_CHECKPOINT_PATH.into(),
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl KubeletSource {
    /// The defaults with another socket path (the reference's override).
    pub fn with_socket(socket: impl Into<PathBuf>) -> Self {
        Self { socket: socket.into(), ..Self::default() }
    }

    /// Whether the pod-resources API is used: the socket path exists (whatever it is; a dead
    /// socket is a connection error, not a reason to read the checkpoint).
    pub fn uses_socket(&self) -> bool {
        std::fs::symlink_metadata(&self.socket).is_ok()
    }

    /// Device-plugin devices of the pod, per resource, sorted: from the pod-resources API (pod
    /// matched by `namespace` and `name`) when the socket exists, else from the checkpoint (pod
    /// matched by `uid`).
    pub async fn device_map(&self, namespace: &str, name: &str, uid: &str) -> Result<DeviceMap, DeviceError> {
        if self.uses_socket() {
            if namespace.is_empty() || name.is_empty() {
                return Err(DeviceError::EmptyPodName);
            }
            let resources = self.list_pod_resources().await?;
            Ok(device_plugin_devices(&resources, namespace, name))
        } else {
            tracing::debug!(checkpoint = %self.checkpoint.display(), "pod-resources socket absent, reading the checkpoint");
            Checkpoint::read(&self.checkpoint)?.device_map(uid)
        }
    }

    /// `v1.PodResourcesLister/List` on the socket, with the dial and call timeouts.
    pub async fn list_pod_resources(&self) -> Result<Vec<PodResources>, DeviceError> {
        let mut client = self.client().await?;
        let mut request = tonic::Request::new(ListPodResourcesRequest {});
        // Tells the kubelet the deadline (grpc-timeout), as a Go client with a context deadline does.
        request.set_timeout(self.call_timeout);
        let timeout = || DeviceError::KubeletTimeout { socket: self.socket.clone(), timeout: self.call_timeout };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.call_timeout, client.list(request)).await {
            Err(_) => Err(timeout()),
            // The server gave up at the deadline it was sent (a Go kubelet says DeadlineExceeded,
            // a tonic server Cancelled).
            Ok(Err(status))
                if status.code() == tonic::Code::DeadlineExceeded || started.elapsed() >= self.call_timeout =>
            {
                Err(timeout())
            }
            Ok(Err(status)) => Err(DeviceError::KubeletList {
                socket: self.socket.clone(),
                code: status.code(),
                message: status.message().to_string(),
            }),
            Ok(Ok(response)) => Ok(response.into_inner().pod_resources),
        }
    }

    /// A pod-resources client connected to the socket (dial timeout and message size applied;
    /// callers set their own call deadlines).
    pub async fn client(&self) -> Result<PodResourcesListerClient<Channel>, DeviceError> {
        let channel = self.connect().await?;
        Ok(PodResourcesListerClient::new(channel).max_decoding_message_size(self.max_message_size))
    }

    async fn connect(&self) -> Result<Channel, DeviceError> {
        let socket = self.socket.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        });
        // The URI only fills the :authority header; the connector ignores it.
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(self.dial_timeout);
        let error = |reason: String| DeviceError::KubeletConnect { socket: self.socket.clone(), reason };
        match tokio::time::timeout(self.dial_timeout, endpoint.connect_with_connector(connector)).await {
            Err(_) => Err(error(format!("no connection within {:?}", self.dial_timeout))),
            Ok(Err(e)) => Err(error(error_chain(&e))),
            Ok(Ok(channel)) => Ok(channel),
        }
    }
}

/// The error and its sources, `: `-separated (tonic's transport error alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Device-plugin devices of every container of the pod `namespace`/`name` in a `List` answer,
/// per resource name, sorted. DRA entries of the answer are not used (the DRA source reads the
/// API instead, spec §5.10.1). An unknown pod gives an empty map.
pub fn device_plugin_devices(resources: &[PodResources], namespace: &str, name: &str) -> DeviceMap {
    let mut map = DeviceMap::new();
    for pod in resources.iter().filter(|p| p.name == name && p.namespace == namespace) {
        for device in pod.containers.iter().flat_map(|c| &c.devices) {
            append_ids(&mut map, &device.resource_name, device.device_ids.iter().cloned());
        }
    }
    crate::sort_device_ids(&mut map);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podresources::v1::{ContainerDevices, ContainerResources};
    use proptest::prelude::*;
    use std::path::Path;

    fn pod(namespace: &str, name: &str, containers: &[&[(&str, &[&str])]]) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: namespace.into(),
            containers: containers
                .iter()
                .enumerate()
                .map(|(i, devices)| ContainerResources {
                    name: format!("c{i}"),
                    devices: devices
                        .iter()
                        .map(|(resource, ids)| ContainerDevices {
                            resource_name: resource.to_string(),
                            device_ids: ids.iter().map(|s| s.to_string()).collect(),
                            topology: None,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn pods_are_matched_by_name_and_namespace_across_containers() {
        let list = vec![
            pod(
                "ns1",
                "web",
                &[
                    &[("intel.com/sriov", &["0000:af:06.2", "0000:af:06.0"])],
                    &[("intel.com/sriov", &["0000:af:06.1"]), ("example.com/rdma", &["mlx5_1"])],
                ],
            ),
            // Same name, other namespace; same namespace, other name.
            pod("ns2", "web", &[&[("intel.com/sriov", &["0000:af:07.0"])]]),
            pod("ns1", "db", &[&[("intel.com/sriov", &["0000:af:08.0"])]]),
        ];
        let map = device_plugin_devices(&list, "ns1", "web");
        assert_eq!(map["intel.com/sriov"], ["0000:af:06.0", "0000:af:06.1", "0000:af:06.2"]);
        assert_eq!(map["example.com/rdma"], ["mlx5_1"]);
        assert_eq!(map.len(), 2);
        assert_eq!(device_plugin_devices(&list, "ns2", "web")["intel.com/sriov"], ["0000:af:07.0"]);
        assert!(device_plugin_devices(&list, "ns3", "web").is_empty());
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let source = KubeletSource::default();
        assert_eq!(source.socket, Path::new("/var/lib/kubelet/pod-resources/kubelet.sock"));
        assert_eq!(source.checkpoint, Path::new("/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"));
        assert_eq!((source.dial_timeout, source.call_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
        assert_eq!(source.max_message_size, 16 << 20);
        assert_eq!(KubeletSource::with_socket("/x").socket, Path::new("/x"));
    }

    #[tokio::test]
    async fn empty_pod_name_or_namespace_is_an_error_with_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kubelet.sock");
        std::fs::write(&socket, "").unwrap();
        let source = KubeletSource::with_socket(&socket);
        for (ns, name) in [("", "p"), ("ns", ""), ("", "")] {
            assert!(matches!(source.device_map(ns, name, "uid").await, Err(DeviceError::EmptyPodName)));
        }
    }

    proptest! {
        /// The map holds exactly the devices of the matching pod, sorted, whatever the others hold.
        #[test]
        fn only_the_matching_pod_counts(
            pods in proptest::collection::vec(
                (0..2usize, 0..2usize, proptest::collection::vec((0..2usize, proptest::collection::vec("[0-9a-f]{1,6}", 0..3)), 0..3)),
                0..6,
            )
        ) {
            let names = ["a", "b"];
            let resources = ["r/x", "r/y"];
            let list: Vec<PodResources> = pods.iter().map(|(ns, name, devices)| PodResources {
                name: names[*name].into(),
                namespace: names[*ns].into(),
                containers: vec![ContainerResources {
                    name: "c".into(),
                    devices: devices.iter().map(|(r, ids)| ContainerDevices {
                        resource_name: resources[*r].into(),
                        device_ids: ids.clone(),
                        topology: None,
                    }).collect(),
                    ..Default::default()
                }],
            }).collect();
            let map = device_plugin_devices(&list, "a", "b");
            let mut expected = DeviceMap::new();
            for (_, _, devices) in pods.iter().filter(|(ns, name, _)| *ns == 0 && *name == 1) {
                for (r, ids) in devices {
                    expected.entry(resources[*r].to_string()).or_default().extend(ids.iter().cloned());
                }
            }
            crate::sort_device_ids(&mut expected);
            prop_assert_eq!(map, expected);
        }
    }
}
