//! The gRPC client on the runtime's unix socket.

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::pb;
use crate::pb::runtime_service_client::RuntimeServiceClient;
use crate::sandbox::{NetworkCondition, SandboxSpec, SandboxView, pod_sandbox_config};

/// What went wrong talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the runtime at {socket}: {reason}", socket = socket.display())]
    Connect { socket: PathBuf, reason: String },
    #[error("{method}: {code:?}: {message}")]
    Call { method: &'static str, code: tonic::Code, message: String },
    #[error("{method}: the runtime's answer has no {field}")]
    Incomplete { method: &'static str, field: &'static str },
}

impl CriError {
    /// The runtime's own words (for a failed RunPodSandbox: the CNI plugin's error).
    pub fn message(&self) -> String {
        match self {
            CriError::Call { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// A connection to a CRI runtime, as the kubelet holds one.
#[derive(Clone)]
pub struct CriClient {
    runtime: RuntimeServiceClient<Channel>,
    /// Each call's deadline (the kubelet's `--runtime-request-timeout`, 2 min by default; it gives
    /// RunPodSandbox twice that).
    timeout: Duration,
}

fn call_error(method: &'static str) -> impl Fn(tonic::Status) -> CriError {
    move |status| CriError::Call { method, code: status.code(), message: status.message().to_string() }
}

impl CriClient {
    /// Connect to the runtime's socket (`unix://` prefix accepted, as crictl takes it).
    pub async fn connect(socket: impl AsRef<Path>, timeout: Duration) -> Result<Self, CriError> {
        let raw = socket.as_ref().to_string_lossy();
        let socket = PathBuf::from(raw.strip_prefix("unix://").unwrap_or(&raw));
        let path = socket.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        });
        // The URI only fills the :authority header; the connector ignores it.
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(5));
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| CriError::Connect { socket: socket.clone(), reason: error_chain(&e) })?;
        Ok(Self { runtime: RuntimeServiceClient::new(channel), timeout })
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        request
    }

    /// The runtime's name and version (`containerd`, `v1.6.20~ds1`) and its CRI version.
    pub async fn version(&self) -> Result<pb::VersionResponse, CriError> {
        let request = self.request(pb::VersionRequest { version: "v1".into() }, self.timeout);
        Ok(self.runtime.clone().version(request).await.map_err(call_error("Version"))?.into_inner())
    }

    /// The runtime's `NetworkReady` condition (false until it has loaded a CNI config).
    pub async fn network_ready(&self) -> Result<NetworkCondition, CriError> {
        let request = self.request(pb::StatusRequest { verbose: false }, self.timeout);
        let status = self.runtime.clone().status(request).await.map_err(call_error("Status"))?.into_inner();
        NetworkCondition::from_status(&status).ok_or(CriError::Incomplete { method: "Status", field: "NetworkReady" })
    }

    /// The runtime's verbose status info (containerd: `cniconfig`, the CNI networks it loaded,
    /// and `lastCNILoadStatus`), as JSON texts by key.
    pub async fn status_info(&self) -> Result<std::collections::HashMap<String, String>, CriError> {
        let request = self.request(pb::StatusRequest { verbose: true }, self.timeout);
        Ok(self.runtime.clone().status(request).await.map_err(call_error("Status"))?.into_inner().info)
    }

    /// RunPodSandbox, as the kubelet sends it for `spec`; the sandbox ID. The runtime runs CNI ADD
    /// before it answers; a failed ADD fails the call (the runtime cleans up with its own DEL).
    pub async fn run_pod_sandbox(&self, spec: &SandboxSpec) -> Result<String, CriError> {
        let message =
            pb::RunPodSandboxRequest { config: Some(pod_sandbox_config(spec)), runtime_handler: String::new() };
        let request = self.request(message, self.timeout * 2);
        let response = self.runtime.clone().run_pod_sandbox(request).await.map_err(call_error("RunPodSandbox"))?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    /// PodSandboxStatus (verbose: the netns path comes from the runtime's info).
    pub async fn sandbox_status(&self, id: &str) -> Result<SandboxView, CriError> {
        let message = pb::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        let request = self.request(message, self.timeout);
        let response =
            self.runtime.clone().pod_sandbox_status(request).await.map_err(call_error("PodSandboxStatus"))?;
        SandboxView::from_response(&response.into_inner())
            .ok_or(CriError::Incomplete { method: "PodSandboxStatus", field: "status" })
    }

    /// StopPodSandbox: the runtime runs CNI DEL (idempotent: the kubelet may call it again).
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let request = self.request(pb::StopPodSandboxRequest { pod_sandbox_id: id.into() }, self.timeout);
        self.runtime.clone().stop_pod_sandbox(request).await.map_err(call_error("StopPodSandbox"))?;
        Ok(())
    }

    /// RemovePodSandbox (after a stop, as the kubelet does).
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let request = self.request(pb::RemovePodSandboxRequest { pod_sandbox_id: id.into() }, self.timeout);
        self.runtime.clone().remove_pod_sandbox(request).await.map_err(call_error("RemovePodSandbox"))?;
        Ok(())
    }

    /// Every sandbox the runtime knows, ready or not.
    pub async fn list_pod_sandboxes(&self) -> Result<Vec<pb::PodSandbox>, CriError> {
        let request = self.request(pb::ListPodSandboxRequest { filter: None }, self.timeout);
        let response = self.runtime.clone().list_pod_sandbox(request).await.map_err(call_error("ListPodSandbox"))?;
        Ok(response.into_inner().items)
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
