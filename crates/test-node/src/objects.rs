//! Kubernetes objects a node's API server is seeded with.

use serde_json::{Value, json};

/// The node every pod is scheduled on and the daemon serves (`MULTUS_NODE_NAME`).
pub const NODE_NAME: &str = "node1";

pub fn pod(namespace: &str, name: &str, uid: &str, networks: Option<&str>) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(n) = networks {
        annotations.insert("k8s.v1.cni.cncf.io/networks".into(), json!(n));
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "annotations": annotations},
        "spec": {"nodeName": NODE_NAME, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    })
}

pub fn nad(namespace: &str, name: &str, config: &Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config.to_string()}
    })
}
