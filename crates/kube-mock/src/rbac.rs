//! RBAC authorization from the stored `rbac.authorization.k8s.io/v1` objects, as the real
//! server's RBAC authorizer evaluates them (`plugin/pkg/auth/authorizer/rbac`).
//!
//! Off by default; when enforced ([`crate::MockConfig::enforce_rbac`], `--enforce-rbac`, the
//! admin API's `/rbac`), requests of service-account users (`system:serviceaccount:…`) are
//! allowed only when a ClusterRoleBinding (anywhere) or a RoleBinding (in the request's
//! namespace) binds the user — as a `ServiceAccount`, `User` or one of its `Group`s — to a
//! ClusterRole or Role with a rule that matches:
//! - `verbs`: the request's verb or `*`;
//! - `apiGroups`: its group (`""` for core) or `*`;
//! - `resources`: `pods`, `pods/status` for the subresource, `*`, or `*/status`;
//! - `resourceNames`: empty, or containing the object's name (list and watch name it through
//!   a `metadata.name` field selector, as for the real server);
//!
//! ClusterRoles with an `aggregationRule` also have the rules of the ClusterRoles its
//! selectors match. Other users (client certificates, anonymous, bootstrap tokens) and
//! `system:masters` keep full access; discovery and OpenAPI are always allowed (the
//! `system:discovery` role of a real cluster). A refusal is the real 403 Status, e.g.
//! `pods "p" is forbidden: User "system:serviceaccount:kube-system:multus" cannot get resource
//! "pods" in API group "" in the namespace "default"`, followed by `: RBAC: clusterrole.rbac.
//! authorization.k8s.io "multus" not found` when a binding names a role that does not exist.

use serde_json::Value;

use crate::auth::UserInfo;
use crate::selector::LabelSelector;
use crate::status::ApiError;
use crate::store::Store;

const RBAC_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// What is being asked, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// The RBAC verb (`get`, `list`, …).
    pub verb: &'a str,
    /// API group (`""` for core).
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Subresource (`status`), if any.
    pub subresource: Option<&'a str>,
    /// Namespace of the request, if any.
    pub namespace: Option<&'a str>,
    /// Object name, if the request names one.
    pub name: Option<&'a str>,
}

/// Whether RBAC allows the request; `Err` is the 403 Status to answer.
pub fn authorize(store: &Store, attributes: &Attributes<'_>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let cluster_roles = store.list_kind(RBAC_VERSION, "ClusterRole", None);
    for binding in store.list_kind(RBAC_VERSION, "ClusterRoleBinding", None) {
        if !binds(&binding, attributes.user, "") {
            continue;
        }
        match role_rules(store, &cluster_roles, &binding, "") {
            Ok(rules) if rules.iter().any(|rule| allows(rule, attributes)) => return Ok(()),
            Ok(_) => {}
            Err(error) => errors.push(error),
        }
    }
    if let Some(namespace) = attributes.namespace.filter(|ns| !ns.is_empty()) {
        for binding in store.list_kind(RBAC_VERSION, "RoleBinding", Some(namespace)) {
            if !binds(&binding, attributes.user, namespace) {
                continue;
            }
            match role_rules(store, &cluster_roles, &binding, namespace) {
                Ok(rules) if rules.iter().any(|rule| allows(rule, attributes)) => return Ok(()),
                Ok(_) => {}
                Err(error) => errors.push(error),
            }
        }
    }
    let reason = match errors.len() {
        0 => None,
        1 => Some(format!("RBAC: {}", errors[0])),
        _ => Some(format!("RBAC: [{}]", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))),
    };
    Err(forbidden(attributes, reason.as_deref()))
}

/// The 403 of a refused request, worded as the API server's authorization filter words it.
pub fn forbidden(attributes: &Attributes<'_>, reason: Option<&str>) -> ApiError {
    let resource = match attributes.subresource {
        Some(sub) => format!("{}/{sub}", attributes.resource),
        None => attributes.resource.to_string(),
    };
    let scope = match attributes.namespace.filter(|ns| !ns.is_empty()) {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut message = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        attributes.user.username, attributes.verb, attributes.group
    );
    if let Some(reason) = reason {
        message = format!("{message}: {reason}");
    }
    let qualified = if attributes.group.is_empty() {
        attributes.resource.to_string()
    } else {
        format!("{}.{}", attributes.resource, attributes.group)
    };
    let name = attributes.name.unwrap_or_default();
    let full = if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {message}")
    };
    let mut err = ApiError::new(403, "Forbidden", full);
    let mut details = serde_json::json!({"kind": attributes.resource});
    if !name.is_empty() {
        details["name"] = serde_json::json!(name);
    }
    if !attributes.group.is_empty() {
        details["group"] = serde_json::json!(attributes.group);
    }
    err.details = Some(Box::new(details));
    err
}

/// Whether one of a binding's subjects is the user (appliesToUser).
fn binds(binding: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    binding["subjects"].as_array().is_some_and(|subjects| {
        subjects.iter().any(|subject| {
            let name = subject["name"].as_str().unwrap_or_default();
            match subject["kind"].as_str().unwrap_or_default() {
                "User" => user.username == name,
                "Group" => user.groups.iter().any(|g| g == name),
                "ServiceAccount" => {
                    let namespace =
                        subject["namespace"].as_str().filter(|ns| !ns.is_empty()).unwrap_or(binding_namespace);
                    !namespace.is_empty() && user.username == format!("system:serviceaccount:{namespace}:{name}")
                }
                _ => false,
            }
        })
    })
}

/// Why a binding's role has no rules to offer (worded as the real authorizer words it).
#[derive(Debug, thiserror::Error)]
enum RoleRefError {
    /// The role (`resource`: `role` or `clusterrole`) does not exist.
    #[error("{resource}.rbac.authorization.k8s.io \"{name}\" not found")]
    NotFound { resource: &'static str, name: String },
    /// A `roleRef.kind` other than ClusterRole, or Role in a RoleBinding.
    #[error("unsupported roleRef kind {0:?}")]
    UnsupportedKind(String),
}

/// The rules of the role a binding refers to, or why there are none.
fn role_rules(
    store: &Store,
    cluster_roles: &[Value],
    binding: &Value,
    binding_namespace: &str,
) -> Result<Vec<Value>, RoleRefError> {
    let role_ref = &binding["roleRef"];
    let name = role_ref["name"].as_str().unwrap_or_default();
    match role_ref["kind"].as_str().unwrap_or_default() {
        "ClusterRole" => {
            let role = cluster_roles
                .iter()
                .find(|r| r["metadata"]["name"] == name)
                .ok_or_else(|| RoleRefError::NotFound { resource: "clusterrole", name: name.to_string() })?;
            Ok(cluster_role_rules(cluster_roles, role))
        }
        "Role" if !binding_namespace.is_empty() => {
            let role = store
                .get_kind(RBAC_VERSION, "Role", binding_namespace, name)
                .ok_or_else(|| RoleRefError::NotFound { resource: "role", name: name.to_string() })?;
            Ok(rules_of(&role))
        }
        other => Err(RoleRefError::UnsupportedKind(other.to_string())),
    }
}

fn rules_of(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

/// A ClusterRole's rules, plus those of the ClusterRoles its `aggregationRule` selects.
fn cluster_role_rules(cluster_roles: &[Value], role: &Value) -> Vec<Value> {
    let mut rules = rules_of(role);
    let selectors: Vec<LabelSelector> = role["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .map(|s| s.iter().filter_map(label_selector).collect())
        .unwrap_or_default();
    if !selectors.is_empty() {
        for other in cluster_roles.iter().filter(|r| r["metadata"]["name"] != role["metadata"]["name"]) {
            if selectors.iter().any(|s| s.matches(other)) {
                rules.extend(rules_of(other));
            }
        }
    }
    rules
}

/// A `metav1.LabelSelector` (matchLabels, matchExpressions) as a selector; None when malformed
/// or empty (an empty aggregation selector selects nothing useful here).
fn label_selector(selector: &Value) -> Option<LabelSelector> {
    let mut parts = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (key, value) in labels {
            parts.push(format!("{key}={}", value.as_str()?));
        }
    }
    for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = expression["key"].as_str()?;
        let values: Vec<&str> =
            expression["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        parts.push(match expression["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    if parts.is_empty() {
        return None;
    }
    LabelSelector::parse(&parts.join(",")).ok()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// RuleAllows for a resource request.
fn allows(rule: &Value, attributes: &Attributes<'_>) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == attributes.verb) {
        return false;
    }
    let groups = strings(&rule["apiGroups"]);
    if !groups.iter().any(|g| *g == "*" || *g == attributes.group) {
        return false;
    }
    let combined = match attributes.subresource {
        Some(sub) => format!("{}/{sub}", attributes.resource),
        None => attributes.resource.to_string(),
    };
    let resource_matches = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || attributes.subresource.is_some_and(|sub| r.strip_prefix("*/").is_some_and(|rest| rest == sub))
    });
    if !resource_matches {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || attributes.name.is_some_and(|n| !n.is_empty() && names.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    fn store() -> Store {
        let s = Store::new(Registry::with_builtins(), 10);
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "ClusterRole", "metadata": {"name": "multus"},
        "rules": [
            {"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["only-this"], "verbs": ["get", "watch"]}
        ]}))
        .unwrap();
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "ClusterRoleBinding", "metadata": {"name": "multus"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "multus"},
            "subjects": [{"kind": "ServiceAccount", "name": "multus", "namespace": "kube-system"}]}))
            .unwrap();
        s
    }

    fn ask<'a>(user: &'a UserInfo, verb: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
        Attributes { user, verb, group, resource, subresource: None, namespace: Some("default"), name: None }
    }

    #[test]
    fn cluster_role_binding_grants_and_its_deletion_takes() {
        let s = store();
        let multus = UserInfo::service_account("kube-system", "multus");
        let other = UserInfo::service_account("default", "other");
        assert!(authorize(&s, &ask(&multus, "list", "k8s.cni.cncf.io", "network-attachment-definitions")).is_ok());
        assert!(authorize(&s, &ask(&multus, "get", "", "pods")).is_ok());
        let status = Attributes { subresource: Some("status"), name: Some("p"), ..ask(&multus, "update", "", "pods") };
        assert!(authorize(&s, &status).is_ok());
        let patch_status = Attributes { verb: "patch", ..status.clone() };
        let err = authorize(&s, &patch_status).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"default\""
        );
        assert!(authorize(&s, &ask(&other, "get", "", "pods")).is_err());
        // resourceNames: only the named object, and list without a name is refused.
        let named = Attributes { name: Some("only-this"), ..ask(&multus, "get", "", "configmaps") };
        assert!(authorize(&s, &named).is_ok());
        assert!(authorize(&s, &Attributes { name: Some("other"), ..named.clone() }).is_err());
        assert!(authorize(&s, &Attributes { name: None, verb: "watch", ..named }).is_err());

        s.delete_kind(RBAC_VERSION, "ClusterRole", "", "multus").unwrap();
        let err =
            authorize(&s, &ask(&multus, "list", "k8s.cni.cncf.io", "network-attachment-definitions")).unwrap_err();
        assert_eq!(
            err.message,
            "network-attachment-definitions.k8s.cni.cncf.io is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot list resource \"network-attachment-definitions\" in API group \"k8s.cni.cncf.io\" in the namespace \"default\": RBAC: clusterrole.rbac.authorization.k8s.io \"multus\" not found"
        );
        s.delete_kind(RBAC_VERSION, "ClusterRoleBinding", "", "multus").unwrap();
        let err = authorize(&s, &ask(&multus, "get", "", "pods")).unwrap_err();
        assert!(!err.message.contains("RBAC:"), "{}", err.message);
    }

    #[test]
    fn role_bindings_groups_wildcards_and_aggregation() {
        let s = store();
        let user = UserInfo::service_account("apps", "worker");
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "Role", "metadata": {"name": "r", "namespace": "apps"},
            "rules": [{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["patch"]}]}))
            .unwrap();
        s.create(
            json!({"apiVersion": RBAC_VERSION, "kind": "RoleBinding", "metadata": {"name": "b", "namespace": "apps"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "worker"}]}),
        )
        .unwrap();
        let in_apps = Attributes {
            namespace: Some("apps"),
            subresource: Some("status"),
            name: Some("x"),
            ..ask(&user, "patch", "apps", "daemonsets")
        };
        assert!(authorize(&s, &in_apps).is_ok());
        assert!(authorize(&s, &Attributes { namespace: Some("default"), ..in_apps.clone() }).is_err());
        assert!(authorize(&s, &Attributes { subresource: None, ..in_apps.clone() }).is_err());
        // A group subject and an aggregated ClusterRole.
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "ClusterRole",
            "metadata": {"name": "piece", "labels": {"aggregate-to-view": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]}))
            .unwrap();
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "ClusterRole", "metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-view": "true"}}]}}))
            .unwrap();
        s.create(json!({"apiVersion": RBAC_VERSION, "kind": "ClusterRoleBinding", "metadata": {"name": "all-sa"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:apps"}]}))
            .unwrap();
        let nodes = Attributes { namespace: None, ..ask(&user, "list", "", "nodes") };
        assert!(authorize(&s, &nodes).is_ok());
        let err = authorize(&s, &Attributes { verb: "delete", name: Some("n1"), ..nodes }).unwrap_err();
        assert!(err.message.ends_with("cannot delete resource \"nodes\" in API group \"\" at the cluster scope"));
    }
}
