use super::*;

fn store() -> Store {
    Store::new(Registry::with_builtins(), 100)
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
               "spec": {"nodeName": "node1"}})
}

#[test]
fn create_assigns_identity_and_rejects_duplicates() {
    let s = store();
    let created = s.create(pod("a")).unwrap();
    assert!(created["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let rv: u64 = created["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert_eq!(rv, s.resource_version());
    let err = s.create(pod("a")).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[test]
fn generate_name_and_auto_namespace() {
    let s = store();
    let created = s
        .create(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-", "namespace": "fresh"}}),
        )
        .unwrap();
    assert!(created["metadata"]["name"].as_str().unwrap().starts_with("cm-"));
    assert!(s.namespace_exists("fresh"));
}

#[test]
fn stale_resource_version_conflicts() {
    let s = store();
    let created = s.create(pod("a")).unwrap();
    let mut v1 = created.clone();
    v1["metadata"]["labels"] = json!({"x": "1"});
    s.update(v1).unwrap();
    let mut stale = created;
    stale["metadata"]["labels"] = json!({"x": "2"});
    assert_eq!(s.update(stale).unwrap_err().reason, "Conflict");
}

#[test]
fn history_is_bounded_and_compaction_expires_old_versions() {
    let s = Store::new(Registry::with_builtins(), 3);
    let gvr = Gvr::new("", "v1", "pods");
    let start = s.resource_version();
    for i in 0..5 {
        s.create(pod(&format!("p{i}"))).unwrap();
    }
    assert_eq!(s.subscribe(&gvr, None, WatchStart::After(start)).err().map(|e| e.code), Some(410));
    let recent = s.resource_version() - 2;
    assert_eq!(s.subscribe(&gvr, None, WatchStart::After(recent)).unwrap().replay.len(), 2);
    s.compact(Some(&gvr));
    assert!(s.subscribe(&gvr, None, WatchStart::After(recent)).is_err());
    // A version from the future (a client resuming against a restarted server): 410 too.
    let future = s.resource_version() + 1000;
    let e = s.subscribe(&gvr, None, WatchStart::After(future)).err().unwrap();
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert!(s.subscribe(&gvr, None, WatchStart::After(s.resource_version())).is_ok());
}

#[test]
fn crd_lifecycle_serves_and_removes_resources() {
    let s = store();
    s.create(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    }))
    .unwrap();
    s.create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})).unwrap();
    assert_eq!(s.list_kind("example.com/v1", "Widget", None).len(), 1);
    s.delete_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com").unwrap();
    assert!(s.registry().find("example.com", "v1", "widgets").is_none());
    assert!(s.list(&Gvr::new("example.com", "v1", "widgets"), None).0.is_empty());
}

#[test]
fn noop_update_keeps_resource_version() {
    let s = store();
    let created = s.create(pod("a")).unwrap();
    let again = s.update(created.clone()).unwrap();
    assert_eq!(again["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
}
