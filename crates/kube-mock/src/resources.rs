//! Resource definitions: the table that drives discovery, routing and OpenAPI.
//!
//! Built-in types are registered at start; every CustomResourceDefinition stored through
//! `apiextensions.k8s.io/v1` adds (or removes) served resources at runtime.

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

/// Group/version/resource triple. The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version within the group (`v1`, `v1beta1`, …).
    pub version: String,
    /// Plural resource name as it appears in URLs (`pods`).
    pub resource: String,
}

impl Gvr {
    /// A triple from its three parts.
    pub fn new(group: &str, version: &str, resource: &str) -> Self {
        Self { group: group.into(), version: version.into(), resource: resource.into() }
    }

    /// `apiVersion` as written in objects: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// `pods` for core, `networkattachmentdefinitions.k8s.cni.cncf.io` otherwise: the
    /// qualified name the real server uses in error messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }
}

/// `apiVersion` as written in objects for a group and version: `v1` for core, `group/version` otherwise.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// One served resource (one version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version of this definition.
    pub version: String,
    /// Object kind (`Pod`).
    pub kind: String,
    /// Plural name used in URLs (`pods`).
    pub plural: String,
    /// Singular name (the lower-cased kind for built-ins).
    pub singular: String,
    /// Short names kubectl accepts (`po`).
    pub short_names: Vec<String>,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs listed in discovery.
    pub verbs: Vec<String>,
    /// Whether `<plural>/status` is served.
    pub status_subresource: bool,
    /// Other subresources served with get/update/patch (`approval` of CSRs).
    pub extra_subresources: Vec<String>,
    /// Subresources served with create only (`token` of service accounts: TokenRequest).
    pub create_subresources: Vec<String>,
    /// Categories listed in discovery (`all`).
    pub categories: Vec<String>,
    /// Served because of a CustomResourceDefinition: such resources take no strategic merge patch.
    pub custom: bool,
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceDef {
    /// A definition served with every verb and no subresources.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
            namespaced,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            status_subresource: false,
            extra_subresources: Vec::new(),
            create_subresources: Vec::new(),
            categories: Vec::new(),
            custom: false,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_create_subresource(mut self, name: &str) -> Self {
        self.create_subresources.push(name.to_string());
        self
    }

    fn with_subresource(mut self, name: &str) -> Self {
        self.extra_subresources.push(name.to_string());
        self
    }

    /// Whether `<plural>/<name>/<subresource>` is served.
    pub fn serves_subresource(&self, subresource: &str) -> bool {
        (subresource == "status" && self.status_subresource)
            || self.extra_subresources.iter().any(|s| s == subresource)
            || self.serves_create_subresource(subresource)
    }

    /// Whether `POST <plural>/<name>/<subresource>` creates something (a TokenRequest).
    pub fn serves_create_subresource(&self, subresource: &str) -> bool {
        self.create_subresources.iter().any(|s| s == subresource)
    }

    /// Its group/version/resource triple.
    pub fn gvr(&self) -> Gvr {
        Gvr::new(&self.group, &self.version, &self.plural)
    }

    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// The APIResource entries (main resource and status) for an APIResourceList.
    pub fn api_resources(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
        })];
        if !self.short_names.is_empty() {
            out[0]["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            out[0]["categories"] = json!(self.categories);
        }
        let subresources = self.status_subresource.then_some("status").into_iter();
        for sub in subresources.chain(self.extra_subresources.iter().map(String::as_str)) {
            out.push(json!({
                "name": format!("{}/{sub}", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &self.create_subresources {
            let mut entry = json!({
                "name": format!("{}/{sub}", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["create"],
            });
            if sub == "token" {
                entry["group"] = json!("authentication.k8s.io");
                entry["version"] = json!("v1");
                entry["kind"] = json!("TokenRequest");
            }
            out.push(entry);
        }
        out
    }
}

/// The resources served out of the box.
pub fn builtin_resources() -> Vec<ResourceDef> {
    let core = |kind: &str, plural: &str, namespaced: bool| ResourceDef::new("", "v1", kind, plural, namespaced);
    let mut defs = vec![
        core("Pod", "pods", true).short(&["po"]).with_status(),
        core("Namespace", "namespaces", false).short(&["ns"]).with_status(),
        core("Node", "nodes", false).short(&["no"]).with_status(),
        core("Event", "events", true).short(&["ev"]),
        core("ConfigMap", "configmaps", true).short(&["cm"]),
        core("ServiceAccount", "serviceaccounts", true).short(&["sa"]).with_create_subresource("token"),
        core("Secret", "secrets", true),
        core("Service", "services", true).short(&["svc"]).with_status(),
        ResourceDef::new("events.k8s.io", "v1", "Event", "events", true).short(&["ev"]),
        ResourceDef::new("apps", "v1", "DaemonSet", "daemonsets", true).short(&["ds"]).with_status(),
        ResourceDef::new("apps", "v1", "Deployment", "deployments", true).short(&["deploy"]).with_status(),
        ResourceDef::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
            .short(&["crd", "crds"])
            .with_status(),
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases", true),
        // Dynamic resource allocation: the claims a pod's devices come from and the slices that
        // describe those devices (Multus reads both to find device IDs).
        ResourceDef::new("resource.k8s.io", "v1", "ResourceClaim", "resourceclaims", true).with_status(),
        ResourceDef::new("resource.k8s.io", "v1", "ResourceSlice", "resourceslices", false),
        // Client certificates (Multus' perNodeCertificate): see crate::csr.
        ResourceDef::new("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", false)
            .short(&["csr"])
            .with_status()
            .with_subresource("approval"),
    ];
    for (kind, plural, namespaced) in [
        ("ClusterRole", "clusterroles", false),
        ("ClusterRoleBinding", "clusterrolebindings", false),
        ("Role", "roles", true),
        ("RoleBinding", "rolebindings", true),
    ] {
        defs.push(ResourceDef::new("rbac.authorization.k8s.io", "v1", kind, plural, namespaced));
    }
    defs
}

/// The Multus CRD, stored at start (as in a cluster where Multus is installed): the NAD
/// resource is served because of it, and deleting it stops serving NADs, as on a real server.
pub fn network_attachment_definition_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
        "spec": {
            "group": "k8s.cni.cncf.io",
            "scope": "Namespaced",
            "names": {
                "plural": "network-attachment-definitions",
                "singular": "network-attachment-definition",
                "kind": "NetworkAttachmentDefinition",
                "shortNames": ["net-attach-def", "nad"]
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {"type": "object", "properties": {"config": {"type": "string"}}}
                    }
                }}
            }]
        }
    })
}

/// Served resource definitions described by a CRD object (one per served version).
/// Malformed CRDs yield nothing rather than an error: validation happens at create time.
pub fn resources_from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(plural), Some(kind)) =
        (spec["group"].as_str(), names["plural"].as_str(), names["kind"].as_str())
    else {
        return Vec::new();
    };
    let singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| v["name"].as_str())
        .map(|version| {
            let status = versions
                .iter()
                .find(|v| v["name"].as_str() == Some(version))
                .is_some_and(|v| v["subresources"]["status"].is_object());
            ResourceDef {
                singular: singular.clone(),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: status,
                custom: true,
                ..ResourceDef::new(group, version, kind, plural, namespaced)
            }
        })
        .collect()
}

/// What a CRD lacks to be served: one `field: reason` per problem (the message of a 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .causes.join(", "))]
pub struct InvalidCrd {
    /// `field: reason`, in the order the fields are checked.
    pub causes: Vec<String>,
}

/// Checks the parts of a CRD that are needed to serve it.
pub fn validate_crd(crd: &Value) -> Result<(), InvalidCrd> {
    let spec = &crd["spec"];
    let mut missing = Vec::new();
    for (path, value) in [
        ("spec.group", &spec["group"]),
        ("spec.names.plural", &spec["names"]["plural"]),
        ("spec.names.kind", &spec["names"]["kind"]),
    ] {
        if value.as_str().is_none_or(str::is_empty) {
            missing.push(format!("{path}: Required value"));
        }
    }
    if spec["versions"].as_array().is_none_or(|v| v.is_empty()) {
        missing.push("spec.versions: Invalid value: must have exactly one version marked as storage version".into());
    }
    if let (Some(name), Some(plural), Some(group)) =
        (crd["metadata"]["name"].as_str(), spec["names"]["plural"].as_str(), spec["group"].as_str())
        && name != format!("{plural}.{group}")
    {
        missing.push(format!("metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"));
    }
    if missing.is_empty() { Ok(()) } else { Err(InvalidCrd { causes: missing }) }
}

/// Thread-safe, cloneable registry of served resources.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<RegistryState>>,
}

#[derive(Default)]
struct RegistryState {
    builtin: Vec<ResourceDef>,
    /// CRD name → its definitions.
    custom: Vec<(String, Vec<ResourceDef>)>,
}

impl Registry {
    /// A registry holding the built-in resources and the resources of the NAD CRD
    /// ([`network_attachment_definition_crd`]), which a new store stores.
    pub fn with_builtins() -> Self {
        let registry = Self::default();
        registry.write().builtin = builtin_resources();
        registry.apply_crd(&network_attachment_definition_crd());
        registry
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RegistryState> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RegistryState> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// All served definitions, built-ins first, in registration order.
    pub fn all(&self) -> Vec<ResourceDef> {
        let state = self.read();
        let mut out = state.builtin.clone();
        for (_, defs) in &state.custom {
            for def in defs {
                // A CRD cannot shadow a built-in resource.
                if !out.iter().any(|d| d.gvr() == def.gvr()) {
                    out.push(def.clone());
                }
            }
        }
        out
    }

    /// The definition served at `group/version/plural`, if any.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.all().into_iter().find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// The definition for an object's `apiVersion` and `kind`, if served.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.all().into_iter().find(|d| d.api_version() == api_version && d.kind == kind)
    }

    /// Whether some resource in the group/version is served.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.all().iter().any(|d| d.group == group && d.version == version)
    }

    /// Registers or replaces the resources of one CRD.
    pub fn apply_crd(&self, crd: &Value) {
        let Some(name) = crd["metadata"]["name"].as_str() else {
            return;
        };
        let defs = resources_from_crd(crd);
        let mut state = self.write();
        state.custom.retain(|(n, _)| n != name);
        state.custom.push((name.to_string(), defs));
    }

    /// Stops serving the resources of the CRD called `name`.
    pub fn remove_crd(&self, name: &str) {
        self.write().custom.retain(|(n, _)| n != name);
    }

    /// Served groups with their versions, in first-seen order (core group excluded).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for def in self.all().into_iter().filter(|d| !d.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == def.group) {
                Some((_, versions)) if !versions.contains(&def.version) => versions.push(def.version),
                Some(_) => {}
                None => groups.push((def.group, vec![def.version])),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nad_is_served_out_of_the_box() {
        let registry = Registry::with_builtins();
        let nad = registry.find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").unwrap();
        assert_eq!(nad.kind, "NetworkAttachmentDefinition");
        assert!(nad.namespaced);
        assert_eq!(nad.short_names, vec!["net-attach-def", "nad"]);
    }

    #[test]
    fn dra_resources_are_served() {
        let registry = Registry::with_builtins();
        let claims = registry.find("resource.k8s.io", "v1", "resourceclaims").unwrap();
        assert!(claims.namespaced && claims.status_subresource);
        assert_eq!(claims.kind, "ResourceClaim");
        let slices = registry.find("resource.k8s.io", "v1", "resourceslices").unwrap();
        assert!(!slices.namespaced && !slices.status_subresource);
        assert_eq!(registry.find_kind("resource.k8s.io/v1", "ResourceSlice"), Some(slices));
    }

    #[test]
    fn csrs_are_served_with_approval() {
        let registry = Registry::with_builtins();
        let csr = registry.find("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        assert!(!csr.namespaced && csr.serves_subresource("status") && csr.serves_subresource("approval"));
        assert!(!csr.serves_subresource("scale"));
        let names: Vec<Value> = csr.api_resources().iter().map(|r| r["name"].clone()).collect();
        assert_eq!(
            names,
            vec![
                json!("certificatesigningrequests"),
                json!("certificatesigningrequests/status"),
                json!("certificatesigningrequests/approval")
            ]
        );
    }

    #[test]
    fn crd_adds_and_removes_resources() {
        let registry = Registry::with_builtins();
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "subresources": {"status": {}}},
                                  {"name": "v2", "served": false}]}
        });
        assert!(validate_crd(&crd).is_ok());
        registry.apply_crd(&crd);
        let widget = registry.find("example.com", "v1", "widgets").unwrap();
        assert!(!widget.namespaced);
        assert!(widget.status_subresource);
        assert!(registry.find("example.com", "v2", "widgets").is_none());
        assert!(registry.groups().iter().any(|(g, _)| g == "example.com"));
        registry.remove_crd("widgets.example.com");
        assert!(registry.find("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn crd_validation_reports_missing_fields() {
        let err = validate_crd(&json!({"metadata": {"name": "x"}, "spec": {}})).unwrap_err();
        assert!(err.to_string().contains("spec.group"), "{err}");
    }
}
