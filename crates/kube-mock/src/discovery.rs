//! Discovery documents, minimal OpenAPI documents and Table output, all derived from the
//! resource registry.

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceDef, api_version};

/// The `gitVersion` the mock reports (kubectl prints it as the server version).
pub const SERVER_VERSION: &str = "v1.33.0-kube-mock";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": SERVER_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: the core group's versions and the address clients should use.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": api_version(name, v), "version": v})).collect();
    json!({"name": name, "versions": entries, "preferredVersion": entries.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis` as a plain APIGroupList. kubectl asks for the aggregated (apidiscovery.k8s.io/v2)
/// form first and falls back to per-group requests when it gets this one.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry.groups().iter().map(|(name, versions)| group_json(name, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` as an APIGroup; `None` for a group that is not served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry.groups().into_iter().find(|(g, _)| g == name).map(|(g, versions)| {
        let mut doc = group_json(&g, &versions);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

/// `/apis/<group>/<version>` (or `/api/v1`): the APIResourceList of a group version.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = registry
        .all()
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .flat_map(ResourceDef::api_resources)
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": resources
    })
}

/// `/openapi/v2`: an empty but valid Swagger document (JSON only; clients that insist on the
/// protobuf form get 406 and fall back to built-in knowledge).
pub fn openapi_v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION},
        "paths": {},
        "definitions": {}
    })
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A stable digest of the served resources of one group/version, used as the `hash` query
/// parameter so that clients caching OpenAPI documents notice CRD changes.
fn gv_hash(registry: &Registry, group: &str, version: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for def in registry.all().iter().filter(|d| d.group == group && d.version == version) {
        for byte in def.plural.bytes().chain(def.kind.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016X}")
}

/// `/openapi/v3`: one entry per served group/version.
pub fn openapi_v3_index(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (group, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    for (group, version) in gvs {
        let path = gv_path(&group, &version);
        let url = format!("/openapi/v3/{path}?hash={}", gv_hash(registry, &group, &version));
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv>`: for each resource, a PATCH operation tagged with its GroupVersionKind
/// that declares the `fieldValidation` query parameter. That is what kubectl looks for to
/// decide that the server validates fields itself, so `kubectl create/apply` work without
/// `--validate=false` and without a full schema. No request body types are declared, so
/// kubectl computes apply patches from its built-in types (strategic merge) or, for custom
/// resources, as JSON merge patches, exactly as with a server that predates OpenAPI v3.
pub fn openapi_v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<ResourceDef> =
        registry.all().into_iter().filter(|d| d.group == group && d.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for def in &defs {
        let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
        let base = format!("/{}", gv_path(group, version));
        let item = if def.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural)
        } else {
            format!("{base}/{}/{{name}}", def.plural)
        };
        let parameter =
            |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        paths.insert(
            item,
            json!({
                "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get",
                        "responses": {"200": {"description": "OK"}}},
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "x-kubernetes-action": "patch",
                    "parameters": [parameter("dryRun"), parameter("fieldManager"), parameter("fieldValidation")],
                    "responses": {"200": {"description": "OK"}}
                }
            }),
        );
        let schema_name = format!(
            "{}.{}.{}",
            if def.group.is_empty() { "io.k8s.api.core" } else { def.group.as_str() },
            def.version,
            def.kind
        );
        schemas.insert(
            schema_name,
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [gvk],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

/// kubectl-style age: `42s`, `7m`, `3h`, `5d`.
fn age(creation: &Value) -> String {
    let Some(created) = creation.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let seconds = (chrono::Utc::now() - created.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn column(name: &str, format: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0})
}

fn columns(def: &ResourceDef) -> Vec<Value> {
    if def.kind == "Pod" && def.group.is_empty() {
        vec![
            column("Name", "name"),
            column("Ready", ""),
            column("Status", ""),
            column("Restarts", ""),
            column("Age", ""),
        ]
    } else if crate::csr::is_csr(def) {
        vec![
            column("Name", "name"),
            column("Age", ""),
            column("SignerName", ""),
            column("Requestor", ""),
            column("RequestedDuration", ""),
            column("Condition", ""),
        ]
    } else {
        vec![column("Name", "name"), column("Age", "")]
    }
}

fn cells(def: &ResourceDef, object: &Value) -> Vec<Value> {
    let name = json!(object["metadata"]["name"].as_str().unwrap_or_default());
    let age = json!(age(&object["metadata"]["creationTimestamp"]));
    if def.kind == "Pod" && def.group.is_empty() {
        let containers = object["spec"]["containers"].as_array().map_or(0, Vec::len);
        let statuses = object["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        let ready = statuses.iter().filter(|s| s["ready"].as_bool() == Some(true)).count();
        let restarts: i64 = statuses.iter().filter_map(|s| s["restartCount"].as_i64()).sum();
        let phase = object["status"]["phase"].as_str().unwrap_or("Unknown");
        vec![name, json!(format!("{ready}/{containers}")), json!(phase), json!(restarts), age]
    } else if crate::csr::is_csr(def) {
        let spec = &object["spec"];
        let duration = match spec["expirationSeconds"].as_u64() {
            Some(s) if s % 3600 == 0 => format!("{}h", s / 3600),
            Some(s) if s % 60 == 0 => format!("{}m", s / 60),
            Some(s) => format!("{s}s"),
            None => "<none>".into(),
        };
        let mut condition: Vec<String> = object["status"]["conditions"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["type"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if object["status"]["certificate"].as_str().is_some_and(|c| !c.is_empty()) {
            condition.push("Issued".into());
        }
        if condition.is_empty() {
            condition.push("Pending".into());
        }
        vec![
            name,
            age,
            json!(spec["signerName"].as_str().unwrap_or_default()),
            json!(spec["username"].as_str().unwrap_or_default()),
            json!(duration),
            json!(condition.join(",")),
        ]
    } else {
        vec![name, age]
    }
}

/// `includeObject` of Table requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// `includeObject=None`: rows only.
    None,
    /// `includeObject=Metadata` (the default): each row carries the object's metadata.
    Metadata,
    /// `includeObject=Object`: each row carries the whole object.
    Object,
}

impl IncludeObject {
    /// The query parameter's value; anything unknown means the default.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Objects as a `meta.k8s.io/v1` Table, the form kubectl's human-readable output asks for.
pub fn table<'a>(
    def: &ResourceDef,
    objects: impl IntoIterator<Item = &'a Value>,
    list_metadata: Value,
    include: IncludeObject,
) -> Value {
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|object| {
            let embedded = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Object => object.clone(),
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object["metadata"]
                }),
            };
            json!({"cells": cells(def, object), "object": embedded})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns(def),
        "rows": rows
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_builtin_and_nad() {
        let registry = Registry::with_builtins();
        let groups = group_list(&registry);
        let names: Vec<&str> =
            groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"k8s.cni.cncf.io") && names.contains(&"apps"));
        let core = resource_list(&registry, "", "v1");
        assert!(core["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/status"));
        let nad = resource_list(&registry, "k8s.cni.cncf.io", "v1");
        assert_eq!(nad["resources"][0]["shortNames"], json!(["net-attach-def", "nad"]));
    }

    #[test]
    fn openapi_v3_declares_field_validation_per_kind() {
        let registry = Registry::with_builtins();
        let index = openapi_v3_index(&registry);
        let url = index["paths"]["apis/k8s.cni.cncf.io/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/k8s.cni.cncf.io/v1?hash="));
        let doc = openapi_v3_group_version(&registry, "k8s.cni.cncf.io", "v1").unwrap();
        let path =
            &doc["paths"]["/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions/{name}"];
        assert_eq!(path["patch"]["x-kubernetes-group-version-kind"]["kind"], "NetworkAttachmentDefinition");
        assert!(path["patch"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(openapi_v3_group_version(&registry, "nope", "v1").is_none());
    }

    #[test]
    fn pod_table_has_kubectl_columns() {
        let registry = Registry::with_builtins();
        let pods = registry.find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
                         "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}});
        let t = table(&pods, [&pod], json!({}), IncludeObject::Metadata);
        assert_eq!(t["rows"][0]["cells"][0], "p");
        assert_eq!(t["rows"][0]["cells"][1], "0/1");
        assert_eq!(t["rows"][0]["cells"][2], "Running");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
