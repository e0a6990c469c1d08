//! Who runs CNI in the e2e cases: `multus-shim` executed directly with the CNI environment (as a
//! runtime does), or a real runtime, containerd's CRI, driven as the kubelet drives it (the runtime
//! then loads `00-multus.conf` and executes the shim itself).

use anyhow::{Context, Result};
use cri_client::{PortMap, SandboxSpec};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

use crate::cri::CriNode;
use crate::e2e_local::sends_check;
use crate::harness::{LocalEnv, PodRun, ShimOutput};

#[derive(Clone, Copy)]
pub(crate) enum Caller<'a> {
    Shim,
    Cri(&'a CriNode),
}

impl Caller<'_> {
    /// A pod's sandbox before ADD. The shim caller makes the network namespace; under CRI the
    /// runtime makes it at RunPodSandbox (ID and netns are known after [`Caller::add`]).
    pub fn sandbox(&self, env: &LocalEnv, namespace: &str, name: &str) -> Result<PodRun> {
        match self {
            Caller::Shim => env.sandbox(namespace, name),
            Caller::Cri(_) => {
                let pod = env.get_pod(namespace, name)?;
                Ok(PodRun {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid: pod["metadata"]["uid"].as_str().context("pod has no uid")?.to_string(),
                    container_id: String::new(),
                    netns: String::new(),
                    netns_path: String::new(),
                })
            }
        }
    }

    /// Does this caller send CHECK for a config of `cni_version`? containerd's CRI never does.
    pub fn sends_check(&self, cni_version: &str) -> bool {
        matches!(self, Caller::Shim) && sends_check(cni_version)
    }

    /// ADD: the shim with `CNI_COMMAND=ADD`, or RunPodSandbox. Under CRI, `pod` learns its
    /// sandbox ID and netns, and the output is the sandbox status (`{"ip": ..}`).
    pub fn add(&self, env: &LocalEnv, pod: &mut PodRun) -> Result<ShimOutput> {
        let node = match self {
            Caller::Shim => return env.shim("ADD", pod),
            Caller::Cri(node) => node,
        };
        let spec = sandbox_spec(&env.get_pod(&pod.namespace, &pod.name)?, &env.run.join("logs/pods"))?;
        let id = match node.run_pod(&spec) {
            Ok(id) => id,
            Err(e) => return Ok(ShimOutput { success: false, stdout: String::new(), stderr: e.message() }),
        };
        let view = node.status(&id).with_context(|| format!("PodSandboxStatus {id}"))?;
        pod.container_id = id;
        pod.netns_path = view.netns_path.clone().unwrap_or_default();
        pod.netns = Path::new(&pod.netns_path).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let stdout = json!({ "ip": view.ip, "additionalIps": view.additional_ips, "ready": view.ready });
        Ok(ShimOutput { success: true, stdout: stdout.to_string(), stderr: String::new() })
    }

    /// CHECK (the shim caller only: see [`Caller::sends_check`]).
    pub fn check(&self, env: &LocalEnv, pod: &PodRun) -> Result<ShimOutput> {
        env.shim("CHECK", pod)
    }

    /// DEL: the shim with `CNI_COMMAND=DEL`, or StopPodSandbox + RemovePodSandbox.
    pub fn del(&self, env: &LocalEnv, pod: &PodRun) -> Result<ShimOutput> {
        match self {
            Caller::Shim => env.shim("DEL", pod),
            Caller::Cri(node) => Ok(match node.stop_and_remove(&pod.container_id) {
                Ok(()) => ShimOutput { success: true, stdout: String::new(), stderr: String::new() },
                Err(e) => ShimOutput { success: false, stdout: String::new(), stderr: e.message() },
            }),
        }
    }

    /// What only a runtime leaves: containerd's own libcni cache (`/var/lib/cni/results`) naming
    /// the sandbox after DEL.
    pub fn runtime_leftovers(&self, pod: &PodRun) -> Vec<String> {
        match self {
            Caller::Shim => vec![],
            Caller::Cri(_) => {
                let mut found = Vec::new();
                crate::util::walk_files(Path::new("/var/lib/cni/results"), &mut |p: &Path| {
                    if !pod.container_id.is_empty() && p.display().to_string().contains(&pod.container_id) {
                        found.push(p.display().to_string());
                    }
                });
                found
            }
        }
    }
}

/// The sandbox the kubelet asks for a pod of the API server: its identity, labels, annotations
/// and the host ports of its containers.
pub fn sandbox_spec(pod: &Value, log_root: &Path) -> Result<SandboxSpec> {
    let meta = &pod["metadata"];
    let text = |v: &Value, what: &str| v.as_str().map(str::to_string).with_context(|| format!("pod has no {what}"));
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default()
    };
    let (name, namespace, uid) =
        (text(&meta["name"], "name")?, text(&meta["namespace"], "namespace")?, text(&meta["uid"], "uid")?);
    let port_mappings = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["hostPort"].as_i64().is_some_and(|h| h > 0))
        .map(|p| PortMap {
            protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
            container_port: p["containerPort"].as_i64().unwrap_or(0) as i32,
            host_port: p["hostPort"].as_i64().unwrap_or(0) as i32,
            host_ip: p["hostIP"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    Ok(SandboxSpec {
        log_directory: log_root.join(format!("{namespace}_{name}_{uid}")).display().to_string(),
        labels: map(&meta["labels"]),
        annotations: map(&meta["annotations"]),
        name,
        namespace,
        uid,
        attempt: 0,
        port_mappings,
        cgroup_parent: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_spec_takes_identity_annotations_and_only_host_ports_from_the_pod() {
        let pod = json!({
            "metadata": { "name": "web", "namespace": "ns1", "uid": "u-1",
                          "labels": { "app": "web" }, "annotations": { "k8s.v1.cni.cncf.io/networks": "a" } },
            "spec": { "containers": [ { "ports": [
                { "containerPort": 80, "hostPort": 8080, "protocol": "TCP" },
                { "containerPort": 9090 } ] } ] }
        });
        let spec = sandbox_spec(&pod, Path::new("/run/logs")).unwrap();
        assert_eq!((spec.name.as_str(), spec.namespace.as_str(), spec.uid.as_str()), ("web", "ns1", "u-1"));
        assert_eq!(spec.annotations["k8s.v1.cni.cncf.io/networks"], "a");
        assert_eq!(spec.labels["app"], "web");
        assert_eq!(
            spec.port_mappings,
            vec![PortMap { protocol: "TCP".into(), container_port: 80, host_port: 8080, host_ip: String::new() }]
        );
        assert_eq!(spec.log_directory, "/run/logs/ns1_web_u-1");
    }
}
