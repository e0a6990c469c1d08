//! Kubernetes objects from YAML/JSON files, reduced to what Multus reads — with the daemon's own
//! conversion for pods ([`multus_node::objects::pod_info`]), so a pod read from a file is seen
//! exactly as the daemon's watch cache sees it.

use k8s_openapi::api::core::v1::Pod;
use multus::model::{Nad, PodInfo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why objects could not be loaded or read as what they claim to be.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Load(#[from] kube_objects::LoadError),
    #[error("{what} in {path} is not a valid {kind}: {message}")]
    Invalid { path: PathBuf, what: String, kind: &'static str, message: String },
}

pub use kube_objects::Loaded;

/// What `multusctl` reads of a loaded object.
pub trait ObjectView {
    /// The object's `kind`.
    fn kind(&self) -> &str;
    /// `namespace/name` (namespace `default` when absent, as `kubectl apply` would create it).
    fn display_name(&self) -> String;
}

impl ObjectView for Loaded {
    fn kind(&self) -> &str {
        self.object.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    fn display_name(&self) -> String {
        let (ns, name) = namespace_and_name(&self.object);
        format!("{ns}/{name}")
    }
}

fn namespace_and_name(object: &Value) -> (String, String) {
    let meta = object.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
    let ns = field("namespace");
    (if ns.is_empty() { "default".to_string() } else { ns }, field("name"))
}

/// Every object of several paths, in order (see [`kube_objects::load_paths`]).
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Loaded>, LoadError> {
    Ok(kube_objects::load_paths(paths)?)
}

/// The kind of a NetworkAttachmentDefinition.
pub const NAD_KIND: &str = "NetworkAttachmentDefinition";

/// A pod object as the daemon sees it.
pub fn pod_from_value(value: &Value) -> Result<PodInfo, String> {
    let mut value = value.clone();
    // A pod written for `kubectl apply` may lack a namespace; the daemon's view has one.
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty)
    {
        meta.insert("namespace".into(), Value::String("default".into()));
    }
    let pod: Pod = serde_json::from_value(value).map_err(|e| e.to_string())?;
    multus_node::objects::pod_info(&pod).map(|(_, info)| info).ok_or_else(|| "the pod has no name".to_string())
}

/// A NetworkAttachmentDefinition object as the daemon sees it: `spec.config` (empty when
/// absent) and the annotations.
pub fn nad_from_value(value: &Value) -> Result<Nad, String> {
    let (namespace, name) = namespace_and_name(value);
    if name.is_empty() {
        return Err("the NetworkAttachmentDefinition has no name".into());
    }
    let config = match value.get("spec").and_then(|s| s.get("config")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("spec.config must be a string (of JSON), got {other}")),
    };
    let annotations = value
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    Ok(Nad { namespace, name, config, annotations })
}

/// NADs by namespace and name (what the planner looks them up in).
pub type NadSet = BTreeMap<(String, String), Nad>;

/// Split loaded objects into pods and NADs; other kinds are skipped. A malformed pod or NAD is
/// an error naming it.
pub fn pods_and_nads(objects: &[Loaded]) -> Result<(Vec<PodInfo>, NadSet), LoadError> {
    let mut pods = Vec::new();
    let mut nads = NadSet::new();
    for o in objects {
        let invalid =
            |kind, message| LoadError::Invalid { path: o.path.clone(), what: o.display_name(), kind, message };
        match o.kind() {
            "Pod" => pods.push(pod_from_value(&o.object).map_err(|m| invalid("Pod", m))?),
            NAD_KIND => {
                let nad = nad_from_value(&o.object).map_err(|m| invalid(NAD_KIND, m))?;
                nads.insert((nad.namespace.clone(), nad.name.clone()), nad);
            }
            _ => {}
        }
    }
    Ok((pods, nads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_lists_and_defaults() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    k8s.v1.cni.cncf.io/networks: a,b
spec:
  nodeName: node1
  containers: [{name: c}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: k8s.cni.cncf.io/v1
    kind: NetworkAttachmentDefinition
    metadata: {name: a, namespace: default, annotations: {k8s.v1.cni.cncf.io/resourceName: r}}
    spec: {config: '{"type":"bridge"}'}
  - apiVersion: k8s.cni.cncf.io/v1
    kind: NetworkAttachmentDefinition
    metadata: {name: b}
"#;
        let objects: Vec<Loaded> = kube_objects::parse_text(text)
            .unwrap()
            .into_iter()
            .map(|object| Loaded { path: "x".into(), object })
            .collect();
        let (pods, nads) = pods_and_nads(&objects).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!((pods[0].namespace.as_str(), pods[0].node_name.as_str()), ("default", "node1"));
        assert_eq!(pods[0].annotation(multus::model::NETWORKS_ANNOTATION), Some("a,b"));
        let a = &nads[&("default".to_string(), "a".to_string())];
        assert_eq!((a.config.as_str(), a.resource_name()), (r#"{"type":"bridge"}"#, Some("r")));
        assert_eq!(nads[&("default".to_string(), "b".to_string())].config, "");
    }

    #[test]
    fn malformed_objects_are_named() {
        let objects = vec![Loaded {
            path: "f.yaml".into(),
            object: serde_json::json!({"kind": NAD_KIND, "metadata": {"name": "n", "namespace": "x"}, "spec": {"config": 1}}),
        }];
        let e = pods_and_nads(&objects).unwrap_err().to_string();
        assert_eq!(
            e,
            "x/n in f.yaml is not a valid NetworkAttachmentDefinition: spec.config must be a string (of JSON), got 1"
        );
        assert!(kube_objects::parse_text("{").is_err());
    }
}
