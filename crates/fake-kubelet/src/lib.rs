//! A fake kubelet pod-resources server: the real `v1.PodResourcesLister` gRPC API (`List`, `Get`,
//! `GetAllocatableResources`) on a unix socket, answering from a script — devices per pod and
//! container, an optional delay and an optional gRPC failure. Used in-process by tests and as
//! the `fake-kubelet` binary by the demo, e2e and conformance (see README.md).

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use multus_devices::podresources::v1 as api;
use multus_devices::podresources::v1::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the fake kubelet answers. JSON or YAML, camelCase keys; unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Script {
    /// The pods `List` reports (and `Get` finds).
    #[serde(default)]
    pub pods: Vec<PodScript>,
    /// What `GetAllocatableResources` reports; when empty, every device of `pods`.
    #[serde(default)]
    pub allocatable: Vec<DeviceScript>,
    /// Wait this long before answering any call.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer every call with this gRPC error (after the delay).
    #[serde(default)]
    pub fail: Option<Failure>,
}

/// One pod's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodScript {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Its containers.
    #[serde(default)]
    pub containers: Vec<ContainerScript>,
}

/// One container's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerScript {
    /// Container name.
    pub name: String,
    /// Device-plugin devices.
    #[serde(default)]
    pub devices: Vec<DeviceScript>,
    /// DRA devices as the kubelet reports them (Multus at HEAD does not read these).
    #[serde(default)]
    pub dynamic_resources: Vec<DynamicResourceScript>,
}

/// Device-plugin devices of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceScript {
    /// Resource name, e.g. `intel.com/sriov_netdevice`.
    pub resource_name: String,
    /// Device IDs, in the order to report them.
    #[serde(default)]
    pub device_ids: Vec<String>,
    /// NUMA nodes of the devices (topology), if any.
    #[serde(default)]
    pub numa_nodes: Vec<i64>,
}

/// One DRA claim's devices of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicResourceScript {
    /// ResourceClaim name.
    pub claim_name: String,
    /// ResourceClaim namespace.
    pub claim_namespace: String,
    /// Allocated devices.
    #[serde(default)]
    pub claim_resources: Vec<ClaimResourceScript>,
}

/// One allocated DRA device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimResourceScript {
    /// Driver name.
    pub driver_name: String,
    /// Pool name.
    pub pool_name: String,
    /// Device name.
    pub device_name: String,
    /// Fully qualified CDI device names (`vendor.com/class=name`).
    #[serde(default)]
    pub cdi_devices: Vec<String>,
}

/// A scripted gRPC error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    /// gRPC code: a name (`unavailable`, `Unavailable`, `UNAVAILABLE`, `permission_denied`) or a
    /// number (`14`).
    pub code: String,
    /// Status message.
    #[serde(default = "default_failure_message")]
    pub message: String,
}

fn default_failure_message() -> String {
    "fake-kubelet: configured failure".into()
}

/// Errors of scripts and of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum FakeKubeletError {
    /// A script file cannot be read.
    #[error("cannot read script {}: {source}", path.display())]
    ReadScript {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A script does not parse.
    #[error("invalid script {origin}: {reason}")]
    InvalidScript {
        /// File path or flag.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The socket path is taken by something that is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding the socket failed.
    #[error("cannot listen on {}: {source}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Script {
    /// Parses JSON or YAML (JSON is tried first when the text starts with `{`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, FakeKubeletError> {
        let invalid = |reason: String| FakeKubeletError::InvalidScript { origin: origin.to_string(), reason };
        let script: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
        } else if text.trim().is_empty() {
            Self::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        if let Some(failure) = &script.fail {
            parse_code(&failure.code).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(script)
    }

    /// Reads and parses a script file.
    pub fn read(path: &Path) -> Result<Self, FakeKubeletError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| FakeKubeletError::ReadScript { path: path.to_path_buf(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// `self` with `overlay` on top: pods and allocatable devices of both; the overlay's delay
    /// (when non-zero) and failure (when set) win.
    pub fn overlaid_with(mut self, overlay: &Script) -> Self {
        self.pods.extend(overlay.pods.iter().cloned());
        self.allocatable.extend(overlay.allocatable.iter().cloned());
        if overlay.delay_ms != 0 {
            self.delay_ms = overlay.delay_ms;
        }
        if overlay.fail.is_some() {
            self.fail = overlay.fail.clone();
        }
        self
    }

    /// Adds devices to a pod's container, creating both when needed.
    pub fn add_devices(&mut self, namespace: &str, pod: &str, container: &str, device: DeviceScript) {
        let index = match self.pods.iter().position(|p| p.namespace == namespace && p.name == pod) {
            Some(i) => i,
            None => {
                self.pods.push(PodScript { namespace: namespace.into(), name: pod.into(), containers: Vec::new() });
                self.pods.len() - 1
            }
        };
        let containers = &mut self.pods[index].containers;
        match containers.iter_mut().find(|c| c.name == container) {
            Some(c) => c.devices.push(device),
            None => {
                containers.push(ContainerScript { name: container.into(), devices: vec![device], ..Default::default() })
            }
        }
    }

    fn pod_resources(&self) -> Vec<api::PodResources> {
        self.pods.iter().map(pod_message).collect()
    }

    fn allocatable_devices(&self) -> Vec<api::ContainerDevices> {
        if !self.allocatable.is_empty() {
            return self.allocatable.iter().map(device_message).collect();
        }
        let mut by_resource: Vec<DeviceScript> = Vec::new();
        for device in self.pods.iter().flat_map(|p| &p.containers).flat_map(|c| &c.devices) {
            match by_resource.iter_mut().find(|d| d.resource_name == device.resource_name) {
                Some(entry) => entry.device_ids.extend(device.device_ids.iter().cloned()),
                None => by_resource.push(DeviceScript { numa_nodes: Vec::new(), ..device.clone() }),
            }
        }
        by_resource.iter().map(device_message).collect()
    }
}

/// Parses a `--device` flag: `NAMESPACE/POD[/CONTAINER]:RESOURCE=ID[,ID…]` (container
/// `container` when omitted). Returns (namespace, pod, container, devices).
pub fn parse_device_flag(flag: &str) -> Result<(String, String, String, DeviceScript), FakeKubeletError> {
    let invalid = |reason: &str| FakeKubeletError::InvalidScript {
        origin: format!("--device {flag}"),
        reason: format!("{reason} (expected NAMESPACE/POD[/CONTAINER]:RESOURCE=ID[,ID...])"),
    };
    let (who, rest) = flag.split_once(':').ok_or_else(|| invalid("missing ':'"))?;
    let (resource, ids) = rest.split_once('=').ok_or_else(|| invalid("missing '='"))?;
    let parts: Vec<&str> = who.split('/').collect();
    let (namespace, pod, container) = match parts.as_slice() {
        [ns, pod] => (*ns, *pod, "container"),
        [ns, pod, container] => (*ns, *pod, *container),
        _ => return Err(invalid("pod must be NAMESPACE/POD or NAMESPACE/POD/CONTAINER")),
    };
    if namespace.is_empty() || pod.is_empty() || container.is_empty() || resource.is_empty() {
        return Err(invalid("empty namespace, pod, container or resource"));
    }
    let device_ids = ids.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    Ok((
        namespace.into(),
        pod.into(),
        container.into(),
        DeviceScript { resource_name: resource.into(), device_ids, numa_nodes: Vec::new() },
    ))
}

/// A gRPC code that [`parse_code`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownCode {
    /// A number outside 0..=16.
    #[error("unknown gRPC code {0}")]
    Number(i32),
    /// A name that is no code's.
    #[error("unknown gRPC code {0:?}")]
    Name(String),
}

/// A gRPC code from its name (any case, `_` optional) or number.
pub fn parse_code(code: &str) -> Result<tonic::Code, UnknownCode> {
    if let Ok(number) = code.trim().parse::<i32>() {
        return match tonic::Code::from_i32(number) {
            tonic::Code::Unknown if number != 2 => Err(UnknownCode::Number(number)),
            c => Ok(c),
        };
    }
    let wanted: String = code.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
    (0..=16)
        .map(tonic::Code::from_i32)
        .find(|c| format!("{c:?}").to_ascii_lowercase() == wanted)
        .ok_or_else(|| UnknownCode::Name(code.to_string()))
}

fn topology(numa_nodes: &[i64]) -> Option<api::TopologyInfo> {
    (!numa_nodes.is_empty())
        .then(|| api::TopologyInfo { nodes: numa_nodes.iter().map(|id| api::NumaNode { id: *id }).collect() })
}

fn device_message(device: &DeviceScript) -> api::ContainerDevices {
    api::ContainerDevices {
        resource_name: device.resource_name.clone(),
        device_ids: device.device_ids.clone(),
        topology: topology(&device.numa_nodes),
    }
}

fn pod_message(pod: &PodScript) -> api::PodResources {
    api::PodResources {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        containers: pod
            .containers
            .iter()
            .map(|c| api::ContainerResources {
                name: c.name.clone(),
                devices: c.devices.iter().map(device_message).collect(),
                dynamic_resources: c
                    .dynamic_resources
                    .iter()
                    .map(|d| api::DynamicResource {
                        claim_name: d.claim_name.clone(),
                        claim_namespace: d.claim_namespace.clone(),
                        claim_resources: d
                            .claim_resources
                            .iter()
                            .map(|r| api::ClaimResource {
                                cdi_devices: r.cdi_devices.iter().map(|n| api::CdiDevice { name: n.clone() }).collect(),
                                driver_name: r.driver_name.clone(),
                                pool_name: r.pool_name.clone(),
                                device_name: r.device_name.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Counts of answered calls, per method.
#[derive(Debug, Default)]
pub struct CallCounts {
    list: AtomicU64,
    get: AtomicU64,
    allocatable: AtomicU64,
}

impl CallCounts {
    /// `List` calls so far.
    pub fn list(&self) -> u64 {
        self.list.load(Ordering::Relaxed)
    }

    /// `Get` calls so far.
    pub fn get(&self) -> u64 {
        self.get.load(Ordering::Relaxed)
    }

    /// `GetAllocatableResources` calls so far.
    pub fn allocatable(&self) -> u64 {
        self.allocatable.load(Ordering::Relaxed)
    }
}

struct State {
    /// Re-read on every call, so a running server follows edits of the file.
    file: Option<PathBuf>,
    /// Set programmatically or from flags; laid over the file.
    overlay: RwLock<Script>,
    calls: CallCounts,
}

impl State {
    fn script(&self) -> Result<Script, tonic::Status> {
        let overlay = self.overlay.read().unwrap_or_else(|p| p.into_inner()).clone();
        match &self.file {
            None => Ok(overlay),
            Some(path) => Script::read(path)
                .map(|base| base.overlaid_with(&overlay))
                .map_err(|e| tonic::Status::internal(format!("fake-kubelet: {e}"))),
        }
    }

    /// The script for one call, after its delay; or its scripted failure.
    async fn begin(&self, method: &str) -> Result<Script, tonic::Status> {
        let script = self.script()?;
        if script.delay_ms > 0 {
            tracing::info!(method, delay_ms = script.delay_ms, "delaying the answer");
            tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
        }
        if let Some(failure) = &script.fail {
            let code = parse_code(&failure.code).map_err(|e| tonic::Status::internal(e.to_string()))?;
            tracing::info!(method, ?code, message = %failure.message, "answering with the scripted failure");
            return Err(tonic::Status::new(code, failure.message.clone()));
        }
        Ok(script)
    }
}

struct Service(Arc<State>);

#[tonic::async_trait]
impl PodResourcesLister for Service {
    async fn list(
        &self,
        _request: tonic::Request<api::ListPodResourcesRequest>,
    ) -> Result<tonic::Response<api::ListPodResourcesResponse>, tonic::Status> {
        self.0.calls.list.fetch_add(1, Ordering::Relaxed);
        let script = self.0.begin("List").await?;
        let pod_resources = script.pod_resources();
        tracing::info!(pods = pod_resources.len(), "List");
        Ok(tonic::Response::new(api::ListPodResourcesResponse { pod_resources }))
    }

    async fn get_allocatable_resources(
        &self,
        _request: tonic::Request<api::AllocatableResourcesRequest>,
    ) -> Result<tonic::Response<api::AllocatableResourcesResponse>, tonic::Status> {
        self.0.calls.allocatable.fetch_add(1, Ordering::Relaxed);
        let script = self.0.begin("GetAllocatableResources").await?;
        let devices = script.allocatable_devices();
        tracing::info!(resources = devices.len(), "GetAllocatableResources");
        Ok(tonic::Response::new(api::AllocatableResourcesResponse { devices, ..Default::default() }))
    }

    async fn get(
        &self,
        request: tonic::Request<api::GetPodResourcesRequest>,
    ) -> Result<tonic::Response<api::GetPodResourcesResponse>, tonic::Status> {
        self.0.calls.get.fetch_add(1, Ordering::Relaxed);
        let script = self.0.begin("Get").await?;
        let wanted = request.into_inner();
        let pod = script.pods.iter().find(|p| p.namespace == wanted.pod_namespace && p.name == wanted.pod_name);
        tracing::info!(namespace = %wanted.pod_namespace, name = %wanted.pod_name, found = pod.is_some(), "Get");
        match pod {
            Some(pod) => {
                Ok(tonic::Response::new(api::GetPodResourcesResponse { pod_resources: Some(pod_message(pod)) }))
            }
            None => Err(tonic::Status::not_found(format!(
                "pod {} in namespace {} not found",
                wanted.pod_name, wanted.pod_namespace
            ))),
        }
    }
}

/// A running fake kubelet. Dropping it (or [`FakeKubelet::shutdown`]) stops the server and
/// removes the socket.
pub struct FakeKubelet {
    socket: PathBuf,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl FakeKubelet {
    /// Serves `script` on `socket` (a stale socket there is replaced; its directory is created).
    pub async fn start(socket: impl Into<PathBuf>, script: Script) -> Result<Self, FakeKubeletError> {
        Self::start_with_file(socket, None, script).await
    }

    /// Serves the script in `file` (re-read on every call; `None`: no file) with `overlay` laid
    /// over it.
    pub async fn start_with_file(
        socket: impl Into<PathBuf>,
        file: Option<PathBuf>,
        overlay: Script,
    ) -> Result<Self, FakeKubeletError> {
        let socket = socket.into();
        if let Some(path) = &file {
            Script::read(path)?;
        }
        let listen_error = |source| FakeKubeletError::Listen { path: socket.clone(), source };
        match std::fs::symlink_metadata(&socket) {
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
                std::fs::remove_file(&socket).map_err(listen_error)?;
            }
            Ok(_) => return Err(FakeKubeletError::NotASocket { path: socket }),
            Err(_) => {}
        }
        if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(listen_error)?;
        }
        let listener = UnixListener::bind(&socket).map_err(listen_error)?;
        let state = Arc::new(State { file, overlay: RwLock::new(overlay), calls: CallCounts::default() });
        let (stop, stopped) = oneshot::channel::<()>();
        let service = PodResourcesListerServer::new(Service(state.clone()));
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let task =
            tokio::spawn(tonic::transport::Server::builder().serve_with_incoming_shutdown(service, incoming, async {
                let _ = stopped.await;
            }));
        Ok(Self { socket, state, stop: Some(stop), task: Some(task) })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Replaces the programmatic script (laid over the file, if any) for the next calls.
    pub fn set_script(&self, script: Script) {
        *self.state.overlay.write().unwrap_or_else(|p| p.into_inner()) = script;
    }

    /// Calls received so far.
    pub fn calls(&self) -> &CallCounts {
        &self.state.calls
    }

    /// Stops serving, waits for the server task and removes the socket.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // In-flight delayed calls would hold a graceful shutdown; they are cut off.
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests;
