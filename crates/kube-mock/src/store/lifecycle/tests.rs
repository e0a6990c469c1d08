use super::*;
use crate::resources::Registry;
use std::collections::BTreeMap;
use std::time::Duration;

fn store() -> Store {
    Store::new(Registry::with_builtins(), 1000)
}

fn ds(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": name}}}})
}

fn owned_pod(name: &str, owner: &Value, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "ownerReferences": [{
                   "apiVersion": "apps/v1", "kind": "DaemonSet", "name": owner["metadata"]["name"],
                   "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block}]},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}})
}

fn pods(s: &Store) -> Vec<Value> {
    s.list_kind("v1", "Pod", Some("default"))
}

#[test]
fn options_parse_and_validate() {
    let o = DeleteOptions::from_json(&json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5,
                                                 "preconditions": {"uid": "u", "resourceVersion": "7"}}))
    .unwrap();
    assert_eq!(o.propagation_policy, Some(Propagation::Foreground));
    assert_eq!((o.grace_period_seconds, o.precondition_uid.as_deref()), (Some(5), Some("u")));
    let bad = DeleteOptions::from_json(&json!({"propagationPolicy": "Bogus"})).unwrap_err();
    assert_eq!(bad.code, 422);
    assert!(bad.message.contains("Unsupported value: \"Bogus\""), "{}", bad.message);
    let both = DeleteOptions::from_json(&json!({"propagationPolicy": "Orphan", "orphanDependents": true}));
    assert_eq!(both.unwrap_err().code, 422);
    assert_eq!(DeleteOptions::from_json(&json!({"gracePeriodSeconds": "x"})).unwrap_err().code, 400);
    assert_eq!(DeleteOptions::from_json(&json!([])).unwrap_err().code, 400);
    let mut query = BTreeMap::new();
    query.insert("propagationPolicy".to_string(), "Orphan".to_string());
    query.insert("gracePeriodSeconds".to_string(), "0".to_string());
    let q = DeleteOptions::from_query(&query).unwrap();
    assert_eq!((q.propagation_policy, q.grace_period_seconds), (Some(Propagation::Orphan), Some(0)));
}

#[test]
fn finalizers_hold_an_object_until_the_last_one_goes() {
    let s = store();
    s.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "default", "finalizers": ["example.com/a"]}}))
        .unwrap();
    let deletion = s.delete_kind_with("v1", "ConfigMap", "default", "c", &DeleteOptions::default()).unwrap();
    assert!(!deletion.removed);
    assert!(deletion.object["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deletion.object["metadata"]["deletionGracePeriodSeconds"], 0);
    let mut current = s.get_kind("v1", "ConfigMap", "default", "c").unwrap();
    current["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    let err = s.update(current.clone()).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err.message.contains("no new finalizers can be added"), "{}", err.message);
    current["metadata"]["finalizers"] = json!([]);
    s.update(current).unwrap();
    assert!(s.get_kind("v1", "ConfigMap", "default", "c").is_none());
}

#[test]
fn preconditions_conflict() {
    let s = store();
    s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}))
        .unwrap();
    let err = s.delete_kind_with("v1", "ConfigMap", "default", "c", &DeleteOptions::default().with_uid("nope"));
    let err = err.unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.starts_with("Operation cannot be fulfilled on ConfigMap \"c\": the UID in the precondition (nope)")
    );
    let rv = DeleteOptions { precondition_resource_version: Some("1".into()), ..Default::default() };
    assert_eq!(s.delete_kind_with("v1", "ConfigMap", "default", "c", &rv).unwrap_err().code, 409);
}

#[test]
fn pods_terminate_gracefully_and_the_kubelet_finishes_them() {
    let s = store();
    s.set_kubelet_delay(None);
    let mut pod = owned_pod("p", &json!({"metadata": {"name": "x", "uid": "none"}}), false);
    pod["metadata"].as_object_mut().unwrap().remove("ownerReferences");
    pod["spec"]["terminationGracePeriodSeconds"] = json!(12);
    s.create(pod).unwrap();
    let deletion = s.delete_kind("v1", "Pod", "default", "p").unwrap();
    assert_eq!(deletion["metadata"]["deletionGracePeriodSeconds"], 12);
    assert!(s.get_kind("v1", "Pod", "default", "p").is_some());
    // A longer grace period changes nothing; a shorter one shortens it.
    let again = s.delete_kind_with("v1", "Pod", "default", "p", &DeleteOptions::default().with_grace_period(60));
    assert_eq!(again.unwrap().object["metadata"]["deletionGracePeriodSeconds"], 12);
    let shorter = s.delete_kind_with("v1", "Pod", "default", "p", &DeleteOptions::default().with_grace_period(3));
    assert_eq!(shorter.unwrap().object["metadata"]["deletionGracePeriodSeconds"], 3);
    // The kubelet finishes terminating pods as soon as it is told to act.
    s.set_kubelet_delay(Some(Duration::ZERO));
    assert!(s.get_kind("v1", "Pod", "default", "p").is_none());
    // Unscheduled pods go at once.
    s.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "u", "namespace": "default"}})).unwrap();
    s.set_kubelet_delay(None);
    let deletion = s.delete_kind_with("v1", "Pod", "default", "u", &DeleteOptions::default()).unwrap();
    assert!(deletion.removed);
}

#[test]
fn background_foreground_and_orphan_propagation() {
    let s = store();
    let history_start = s.resource_version();
    // Background: the DaemonSet goes at once, its pods after it.
    let owner = s.create(ds("bg")).unwrap();
    s.create(owned_pod("bg-1", &owner, true)).unwrap();
    s.create(owned_pod("bg-2", &owner, true)).unwrap();
    let deletion = s.delete_kind("apps/v1", "DaemonSet", "default", "bg").unwrap();
    assert!(deletion["metadata"]["deletionTimestamp"].is_null());
    assert!(s.get_kind("apps/v1", "DaemonSet", "default", "bg").is_none());
    assert!(pods(&s).is_empty());
    let gvr = Gvr::new("", "v1", "pods");
    let events = s.subscribe(&gvr, None, super::super::WatchStart::After(history_start)).unwrap().replay;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    // Each pod: ADDED, then MODIFIED (deletionTimestamp), MODIFIED (grace 0, the kubelet), DELETED.
    assert_eq!(kinds.iter().filter(|k| **k == "DELETED").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"MODIFIED"));

    // Foreground with a kubelet that never finishes: the owner waits for its pods.
    s.set_kubelet_delay(None);
    let owner = s.create(ds("fg")).unwrap();
    s.create(owned_pod("fg-1", &owner, true)).unwrap();
    let foreground = DeleteOptions::propagation(Propagation::Foreground);
    let deletion = s.delete_kind_with("apps/v1", "DaemonSet", "default", "fg", &foreground).unwrap();
    assert!(!deletion.removed);
    assert_eq!(deletion.object["metadata"]["finalizers"], json!([FOREGROUND_FINALIZER]));
    let waiting = s.get_kind("apps/v1", "DaemonSet", "default", "fg").unwrap();
    assert!(waiting["metadata"]["deletionTimestamp"].is_string());
    let pod = s.get_kind("v1", "Pod", "default", "fg-1").unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    // The pod goes: so does its owner.
    s.set_kubelet_delay(Some(Duration::ZERO));
    assert!(s.get_kind("v1", "Pod", "default", "fg-1").is_none());
    assert!(s.get_kind("apps/v1", "DaemonSet", "default", "fg").is_none());

    // Orphan: the pods stay without their reference.
    let owner = s.create(ds("or")).unwrap();
    s.create(owned_pod("or-1", &owner, true)).unwrap();
    let orphan = DeleteOptions::propagation(Propagation::Orphan);
    let deletion = s.delete_kind_with("apps/v1", "DaemonSet", "default", "or", &orphan).unwrap();
    assert!(!deletion.removed, "the orphan finalizer is set first");
    assert!(s.get_kind("apps/v1", "DaemonSet", "default", "or").is_none());
    let pod = s.get_kind("v1", "Pod", "default", "or-1").unwrap();
    assert!(pod["metadata"]["ownerReferences"].is_null() && pod["metadata"]["deletionTimestamp"].is_null());
}

#[test]
fn a_dependent_with_another_live_owner_only_loses_the_reference() {
    let s = store();
    let a = s.create(ds("a")).unwrap();
    let b = s.create(ds("b")).unwrap();
    let mut pod = owned_pod("shared", &a, false);
    let second = owned_pod("x", &b, false)["metadata"]["ownerReferences"][0].clone();
    pod["metadata"]["ownerReferences"].as_array_mut().unwrap().push(second);
    s.create(pod).unwrap();
    s.delete_kind("apps/v1", "DaemonSet", "default", "a").unwrap();
    let pod = s.get_kind("v1", "Pod", "default", "shared").unwrap();
    assert_eq!(pod["metadata"]["ownerReferences"].as_array().unwrap().len(), 1);
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], b["metadata"]["uid"]);
    s.delete_kind("apps/v1", "DaemonSet", "default", "b").unwrap();
    assert!(s.get_kind("v1", "Pod", "default", "shared").is_none());
}

#[test]
fn crd_deletion_waits_for_custom_resources_with_finalizers() {
    let s = store();
    let nad = |name: &str, finalizers: Value| {
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": "default", "finalizers": finalizers}})
    };
    s.create(nad("plain", json!([]))).unwrap();
    s.create(nad("held", json!(["example.com/hold"]))).unwrap();
    let crd = "network-attachment-definitions.k8s.cni.cncf.io";
    let deletion = s.delete_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).unwrap();
    assert!(deletion["metadata"]["finalizers"].as_array().unwrap().contains(&json!(CRD_CLEANUP_FINALIZER)));
    let terminating = s.get_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).unwrap();
    assert!(terminating["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Terminating"));
    assert!(s.get_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "default", "plain").is_none());
    let def = s.registry().find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").unwrap();
    assert_eq!(s.create(nad("new", json!([]))).unwrap_err().code, 405);
    // The held one goes when its finalizer is removed; then the CRD goes.
    s.modify(&def, "default", "held", |current| {
        let mut next = current.clone();
        next["metadata"]["finalizers"] = json!([]);
        Ok(next)
    })
    .unwrap();
    assert!(s.get_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).is_none());
    assert!(s.registry().find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").is_none());
    // Created again: served again, empty.
    s.create(crate::resources::network_attachment_definition_crd()).unwrap();
    assert!(s.list_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", None).is_empty());
    s.create(nad("fresh", json!([]))).unwrap();
}
