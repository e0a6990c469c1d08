//! The API objects a thick case seeds through kubectl (works against any API server): its
//! NADs, a NAD for the network it defines, and a pod per attachment.

use super::node::ThickNode;
use crate::case_env::CaseEnv;
use crate::errors::KubeError;
use crate::model::{Case, NadSpec, PodSpec};
use crate::template::{merge_patch, render_str, render_value};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// `kubectl --kubeconfig <node's> <args>`, stdout on success.
pub fn kubectl(node: &ThickNode, args: &[&str], stdin: Option<&[u8]>) -> Result<String, KubeError> {
    let mut cmd = Command::new(&node.spec.kubectl);
    cmd.arg("--kubeconfig")
        .arg(&node.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| KubeError::Kubectl(e.to_string()))?;
    if let Some(mut sin) = child.stdin.take() {
        let _ = sin.write_all(stdin.unwrap_or_default());
    }
    let out = child.wait_with_output().map_err(|e| KubeError::Kubectl(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(KubeError::Refused {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A template of a case's objects: the case id (its namespace) and the node's variables.
pub fn render_case(node: &ThickNode, env: &CaseEnv, s: &str) -> String {
    render_str(s, &|k| match k {
        "id" | "pod_namespace" => Some(Value::String(env.id.clone())),
        _ => node.vars.get(k).map(|v| Value::String(v.clone())),
    })
}

fn pod_object(node: &ThickNode, env: &CaseEnv, att: &str, spec: &PodSpec) -> Option<Value> {
    let a = env.attachments.get(att)?;
    let ns = spec.namespace.clone().unwrap_or_else(|| env.id.clone());
    let annotations: BTreeMap<String, String> =
        spec.annotations.iter().map(|(k, v)| (k.clone(), render_case(node, env, v))).collect();
    Some(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": a.pod, "namespace": ns, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "conformance.invalid/none"}]}}))
}

fn nad_object(node: &ThickNode, env: &CaseEnv, nad: &NadSpec) -> Value {
    let ns = nad.namespace.clone().unwrap_or_else(|| env.id.clone());
    let mut config = match nad.delegate.as_deref() {
        Some("fake") | None => {
            json!({"cniVersion": "1.0.0", "name": nad.name, "type": "fake-cni", "fake": {"recordDir": node.vars["records"], "subnet": "10.77.0.0/16"}})
        }
        Some(other) => json!({"cniVersion": "1.0.0", "name": nad.name, "type": other}),
    };
    if let Some(p) = &nad.config {
        let p = render_value(p, &|k| match k {
            "id" => Some(Value::String(env.id.clone())),
            _ => node.vars.get(k).map(|v| Value::String(v.clone())),
        });
        merge_patch(&mut config, &p);
    }
    let annotations: BTreeMap<String, String> =
        nad.annotations.iter().map(|(k, v)| (k.clone(), render_case(node, env, v))).collect();
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": nad.name, "namespace": ns, "annotations": annotations},
        "spec": {"config": config.to_string()}})
}

/// The objects of a case. `network` (rendered config and capability arguments) becomes a NAD
/// named like the network, selected by every default pod's annotation with the capability
/// arguments as selection fields (`portMappings`, `bandwidth`, `ips`, `mac`, …). Also whether
/// the case has pods or NADs (the daemon's informers need a moment to see them).
pub fn case_objects(
    node: &ThickNode,
    case: &Case,
    env: &CaseEnv,
    network: Option<&(Value, Value)>,
) -> (Vec<Value>, bool) {
    let mut items: Vec<Value> = case.setup.nads.iter().map(|n| nad_object(node, env, n)).collect();
    let mut default_annotations = BTreeMap::new();
    if let Some((config, caps)) = network {
        let name = config.get("name").and_then(Value::as_str).unwrap_or("net").to_lowercase();
        items.push(json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": env.id}, "spec": {"config": config.to_string()}}));
        let mut selection = json!({"name": name});
        if let (Some(m), Value::Object(c)) = (selection.as_object_mut(), caps) {
            m.extend(c.clone());
        }
        default_annotations.insert("k8s.v1.cni.cncf.io/networks".to_string(), json!([selection]).to_string());
    }
    let pods: Vec<PodSpec> = match &case.setup.pods {
        Some(p) => p.clone(),
        None => env
            .attachments
            .keys()
            .map(|a| PodSpec { attachment: a.clone(), namespace: None, annotations: default_annotations.clone() })
            .collect(),
    };
    items.extend(pods.iter().filter_map(|p| pod_object(node, env, &p.attachment, p)));
    (items, !pods.is_empty() || !case.setup.nads.is_empty())
}

/// The pod of attachment `att` with no annotations.
pub fn plain_pod(node: &ThickNode, env: &CaseEnv, att: &str) -> Result<Value, KubeError> {
    let spec = PodSpec { attachment: att.to_string(), namespace: None, annotations: Default::default() };
    pod_object(node, env, att, &spec).ok_or(KubeError::NoAttachment)
}

/// Namespaces created so far (each once per run).
#[derive(Default)]
pub struct Namespaces(Mutex<BTreeSet<String>>);

impl Namespaces {
    /// Create `items` (and the namespaces they need that do not exist yet) in one request.
    pub fn apply(&self, node: &ThickNode, items: Vec<Value>) -> Result<(), KubeError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut namespaces: Vec<String> = items
            .iter()
            .filter_map(|i| i.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let mut created = self.0.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.retain(|n| created.insert(n.clone()));
        drop(created);
        let mut all: Vec<Value> = namespaces
            .into_iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
            .collect();
        all.extend(items);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": all});
        kubectl(node, &["create", "--validate=false", "-f", "-"], Some(list.to_string().as_bytes())).map(|_| ())
    }
}
