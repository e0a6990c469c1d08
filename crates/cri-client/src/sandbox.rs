//! What the kubelet sends in RunPodSandbox and what it reads back (pure: no I/O).

use std::collections::{BTreeMap, HashMap};

use crate::pb;

/// One `hostPort` of a pod's containers, as the kubelet collects them into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    /// `tcp`, `udp` or `sctp` (the Kubernetes spelling, any case).
    pub protocol: String,
    pub container_port: i32,
    pub host_port: i32,
    pub host_ip: String,
}

/// The pod a sandbox is made for: what the kubelet knows from the API server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// 0 for the first sandbox of a pod; the kubelet counts up when it recreates one.
    pub attempt: u32,
    /// The pod's labels and annotations (the runtime offers the annotations to CNI as the
    /// `io.kubernetes.cri.pod-annotations` capability).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub port_mappings: Vec<PortMap>,
    /// Where container logs would go (`/var/log/pods/<ns>_<name>_<uid>` on a node).
    pub log_directory: String,
    /// The pod's cgroup parent; empty leaves it to the runtime.
    pub cgroup_parent: String,
}

/// The labels the kubelet adds to every sandbox (its own bookkeeping; runtimes and CNI plugins
/// read them too).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

fn protocol(name: &str) -> pb::Protocol {
    match name.to_ascii_lowercase().as_str() {
        "udp" => pb::Protocol::Udp,
        "sctp" => pb::Protocol::Sctp,
        _ => pb::Protocol::Tcp,
    }
}

/// The `PodSandboxConfig` the kubelet sends for a pod on the pod network: pod-scoped network
/// and IPC namespaces, a container-scoped PID namespace, the pod's name as hostname.
pub fn pod_sandbox_config(spec: &SandboxSpec) -> pb::PodSandboxConfig {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(POD_NAME_LABEL.into(), spec.name.clone());
    labels.insert(POD_NAMESPACE_LABEL.into(), spec.namespace.clone());
    labels.insert(POD_UID_LABEL.into(), spec.uid.clone());
    let mut annotations: HashMap<String, String> = spec.annotations.clone().into_iter().collect();
    annotations.entry("kubernetes.io/config.source".into()).or_insert_with(|| "api".into());
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: spec.name.clone(),
            uid: spec.uid.clone(),
            namespace: spec.namespace.clone(),
            attempt: spec.attempt,
        }),
        hostname: spec.name.clone(),
        log_directory: spec.log_directory.clone(),
        dns_config: Some(pb::DnsConfig::default()),
        port_mappings: spec
            .port_mappings
            .iter()
            .map(|p| pb::PortMapping {
                protocol: protocol(&p.protocol) as i32,
                container_port: p.container_port,
                host_port: p.host_port,
                host_ip: p.host_ip.clone(),
            })
            .collect(),
        labels,
        annotations,
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: spec.cgroup_parent.clone(),
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(pb::NamespaceOption {
                    network: pb::NamespaceMode::Pod as i32,
                    pid: pb::NamespaceMode::Container as i32,
                    ipc: pb::NamespaceMode::Pod as i32,
                    target_id: String::new(),
                }),
                privileged: false,
            }),
            sysctls: HashMap::new(),
        }),
    }
}

/// A sandbox as PodSandboxStatus describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxView {
    pub id: String,
    pub ready: bool,
    /// The pod IP the kubelet reports (the first IP of the runtime's default interface, `eth0`).
    pub ip: String,
    pub additional_ips: Vec<String>,
    /// The sandbox's network namespace (from the runtime's verbose info; `None` when it has none).
    pub netns_path: Option<String>,
}

impl SandboxView {
    pub fn from_response(response: &pb::PodSandboxStatusResponse) -> Option<Self> {
        let status = response.status.as_ref()?;
        let network = status.network.clone().unwrap_or_default();
        Some(Self {
            id: status.id.clone(),
            ready: status.state == pb::PodSandboxState::SandboxReady as i32,
            ip: network.ip,
            additional_ips: network.additional_ips.into_iter().map(|p| p.ip).collect(),
            netns_path: response.info.get("info").and_then(|info| netns_path_from_info(info)),
        })
    }
}

/// The network namespace path in a runtime's verbose sandbox info: containerd puts the OCI
/// runtime spec there (`runtimeSpec.linux.namespaces[type=network].path`).
pub fn netns_path_from_info(info: &str) -> Option<String> {
    let info: serde_json::Value = serde_json::from_str(info).ok()?;
    info.pointer("/runtimeSpec/linux/namespaces")?
        .as_array()?
        .iter()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .filter(|path| !path.is_empty())
        .map(str::to_string)
}

/// The runtime's `NetworkReady` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCondition {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl NetworkCondition {
    pub fn from_status(status: &pb::StatusResponse) -> Option<Self> {
        status.status.as_ref()?.conditions.iter().find(|c| c.r#type == "NetworkReady").map(|c| Self {
            ready: c.status,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
