//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic
//! merge patch for the fields clients actually patch.

use serde_json::{Map, Value};

/// The patch formats the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// Server-side apply: recognised so it can be refused with a clear message.
    Apply,
}

impl PatchKind {
    /// The kind a request's `Content-Type` names; `None` for a type that is not a patch.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied; the API answers 400 or 422 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON.
    #[error("the patch is not valid JSON: {0}")]
    Syntax(String),
    /// The patch does not fit the object (a failed `test`, a missing path, …).
    #[error("{0}")]
    Apply(String),
}

/// Applies a patch of the given kind to a copy of `target`.
pub fn apply_patch(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| PatchError::Syntax(e.to_string()))?;
    let mut result = target.clone();
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(PatchError::Apply("a merge patch must be a JSON object".into()));
            }
            json_patch::merge(&mut result, &patch);
        }
        PatchKind::Json => {
            let operations: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| PatchError::Syntax(e.to_string()))?;
            json_patch::patch(&mut result, &operations.0).map_err(|e| PatchError::Apply(e.to_string()))?;
        }
        PatchKind::StrategicMerge => {
            let Value::Object(patch) = patch else {
                return Err(PatchError::Apply("a strategic merge patch must be a JSON object".into()));
            };
            result = strategic_merge(Some(&result), &patch)?;
        }
        PatchKind::Apply => {
            return Err(PatchError::Apply("server-side apply is not supported".into()));
        }
    }
    Ok(result)
}

/// The merge key of lists that strategic merge patch merges element-wise, by field name.
/// Lists whose elements lack the key are replaced, which also covers same-named fields
/// with another key elsewhere (a Service's `ports` carry `port`, not `containerPort`).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "resourceClaims"
        | "volumeDevices" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "podIPs" | "hostIPs" | "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars that strategic merge patch unions instead of replacing.
fn is_merged_scalar_list(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: Option<&Value>, patch: &Map<String, Value>) -> Result<Value, PatchError> {
    // `$patch: replace` swaps the whole map; `$patch: delete` removes it.
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            return Ok(Value::Object(strip_directives(replaced)));
        }
        Some("delete") => return Ok(Value::Null),
        Some(other) => {
            return Err(PatchError::Apply(format!("unknown patch directive {other:?}")));
        }
        None => {}
    }
    let mut result = match target {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        result.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Value::Array(remove)) = (result.get_mut(field), value) {
                existing.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                result.remove(key);
            }
            Value::Object(sub_patch) => {
                let merged = strategic_merge(result.get(key), sub_patch)?;
                if merged.is_null() {
                    result.remove(key);
                } else {
                    result.insert(key.clone(), merged);
                }
            }
            Value::Array(items) => {
                let merged = merge_list(key, result.get(key), items)?;
                result.insert(key.clone(), merged);
            }
            scalar => {
                result.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(Value::Object(result))
}

fn merge_list(field: &str, target: Option<&Value>, items: &[Value]) -> Result<Value, PatchError> {
    let existing = target.and_then(Value::as_array).cloned().unwrap_or_default();
    if is_merged_scalar_list(field) {
        let mut out = existing;
        for item in items {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let Some(key) = merge_key(field) else {
        return Ok(Value::Array(items.iter().map(strip_directives_value).collect()));
    };
    let keyed = items.iter().all(|i| i.get(key).is_some() || i.get("$patch").is_some());
    if !keyed || items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        let kept = items.iter().filter(|i| i.get("$patch").is_none());
        return Ok(Value::Array(kept.map(strip_directives_value).collect()));
    }
    let mut out = existing;
    for item in items {
        let Value::Object(item_patch) = item else {
            continue;
        };
        let Some(id) = item_patch.get(key) else {
            continue;
        };
        let position = out.iter().position(|e| e.get(key) == Some(id));
        if item_patch.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = position {
                out.remove(i);
            }
            continue;
        }
        match position {
            Some(i) => out[i] = strategic_merge(Some(&out[i]), item_patch)?,
            None => out.push(strategic_merge(None, item_patch)?),
        }
    }
    Ok(Value::Array(out))
}

fn strip_directives(mut map: Map<String, Value>) -> Map<String, Value> {
    map.retain(|k, _| !k.starts_with('$'));
    for value in map.values_mut() {
        *value = strip_directives_value(value);
    }
    map
}

fn strip_directives_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(strip_directives(map.clone())),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"containers": [
                {"name": "c1", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
                {"name": "c2", "image": "nginx"}
            ], "tolerations": [{"key": "t"}]}
        })
    }

    fn smp(target: &Value, patch: Value) -> Value {
        apply_patch(PatchKind::StrategicMerge, target, patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn strategic_merges_maps_and_containers_by_name() {
        let out = smp(
            &pod(),
            json!({"metadata": {"labels": {"a": null, "c": "3"}},
                   "spec": {"containers": [{"name": "c2", "image": "nginx:2"}, {"name": "c3", "image": "x"}],
                            "$setElementOrder/containers": [{"name": "c1"}, {"name": "c2"}, {"name": "c3"}]}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let containers = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 3);
        assert_eq!(containers[0]["env"][0]["value"], "1");
        assert_eq!(containers[1]["image"], "nginx:2");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_directives() {
        let out = smp(
            &pod(),
            json!({"metadata": {"finalizers": ["y"]},
                   "spec": {"containers": [{"name": "c1", "$patch": "delete"}], "tolerations": [{"key": "u"}]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        let replaced = smp(&pod(), json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}));
        assert_eq!(replaced["metadata"]["labels"], json!({"z": "9"}));
        let removed = smp(&pod(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(removed["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn merge_and_json_patch() {
        let merged = apply_patch(PatchKind::Merge, &pod(), br#"{"metadata":{"annotations":{"k":"v"}}}"#).unwrap();
        assert_eq!(merged["metadata"]["annotations"]["k"], "v");
        let patched =
            apply_patch(PatchKind::Json, &pod(), br#"[{"op":"replace","path":"/metadata/labels/a","value":"9"}]"#)
                .unwrap();
        assert_eq!(patched["metadata"]["labels"]["a"], "9");
        assert!(apply_patch(PatchKind::Json, &pod(), br#"[{"op":"remove","path":"/nope"}]"#).is_err());
        assert!(apply_patch(PatchKind::Json, &pod(), b"{").is_err());
        assert!(apply_patch(PatchKind::Merge, &pod(), b"[1]").is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"), Some(PatchKind::Merge));
        assert_eq!(PatchKind::from_content_type("application/apply-patch+yaml"), Some(PatchKind::Apply));
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
