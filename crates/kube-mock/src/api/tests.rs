use super::*;
use crate::request::{Route, route};
use crate::resources::Registry;
use http::Method;

fn store() -> Store {
    Store::new(Registry::with_builtins(), 100)
}

fn call(
    store: &Store,
    method: Method,
    path: &str,
    query: Option<&str>,
    ct: &str,
    body: &str,
) -> Result<Value, ApiError> {
    let Route::Resource(req) = route(&method, path, query, "application/json", ct, store.registry(), "/_mock")? else {
        panic!("not a resource route")
    };
    match execute(store, &req, ct, body.as_bytes())? {
        Reply::Json { body, .. } => Ok(body),
        Reply::Watch => Ok(Value::Null),
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn create_pod(s: &Store, name: &str, node: &str) -> Value {
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                          "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
                          "status": {"phase": "Pending"}});
    call(s, Method::POST, PODS, None, "application/json", &body.to_string()).unwrap()
}

#[test]
fn main_resource_put_ignores_status_and_status_put_ignores_spec() {
    let s = store();
    let mut pod = create_pod(&s, "p", "node1");
    pod["status"]["phase"] = json!("Running");
    pod["metadata"]["labels"]["x"] = json!("1");
    let updated = call(&s, Method::PUT, &format!("{PODS}/p"), None, "", &pod.to_string()).unwrap();
    assert_eq!(updated["status"]["phase"], "Pending");
    assert_eq!(updated["metadata"]["labels"]["x"], "1");

    let mut status = updated.clone();
    status["status"]["phase"] = json!("Running");
    status["spec"]["nodeName"] = json!("elsewhere");
    status["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/network-status": "[]"});
    let updated = call(&s, Method::PUT, &format!("{PODS}/p/status"), None, "", &status.to_string()).unwrap();
    assert_eq!(updated["status"]["phase"], "Running");
    assert_eq!(updated["spec"]["nodeName"], "node1");
    assert_eq!(updated["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"], "[]");

    // The first object's resourceVersion is stale now.
    let err = call(&s, Method::PUT, &format!("{PODS}/p/status"), None, "", &status.to_string()).unwrap_err();
    assert_eq!(err.reason, "Conflict");
}

#[test]
fn list_filters_and_paginates() {
    let s = store();
    for i in 0..5 {
        create_pod(&s, &format!("p{i}"), if i % 2 == 0 { "node1" } else { "node2" });
    }
    let list = call(&s, Method::GET, "/api/v1/pods", Some("fieldSelector=spec.nodeName%3Dnode1"), "", "").unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["kind"], "PodList");
    let page1 = call(&s, Method::GET, PODS, Some("limit=2"), "", "").unwrap();
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = call(&s, Method::GET, PODS, Some(&format!("limit=2&continue={token}")), "", "").unwrap();
    assert_eq!(page2["items"][0]["metadata"]["name"], "p2");
    assert_eq!(call(&s, Method::GET, PODS, Some("continue=zzz"), "", "").unwrap_err().code, 400);
    let selected = call(&s, Method::GET, PODS, Some("labelSelector=app%20in%20(p1,p3)"), "", "").unwrap();
    assert_eq!(selected["items"].as_array().unwrap().len(), 2);
}

#[test]
fn create_errors() {
    let s = store();
    create_pod(&s, "p", "n");
    let dup = json!({"metadata": {"name": "p"}}).to_string();
    assert_eq!(call(&s, Method::POST, PODS, None, "", &dup).unwrap_err().reason, "AlreadyExists");
    assert_eq!(call(&s, Method::POST, PODS, None, "", "{not json").unwrap_err().code, 400);
    assert_eq!(call(&s, Method::POST, PODS, None, "", "[]").unwrap_err().code, 400);
    let protobuf = "application/vnd.kubernetes.protobuf";
    assert_eq!(call(&s, Method::POST, PODS, None, protobuf, "k8s\0").unwrap_err().code, 415);
    assert_eq!(call(&s, Method::POST, PODS, None, protobuf, "k8s\0\u{7f}\u{7f}").unwrap_err().code, 400);
    assert_eq!(call(&s, Method::POST, PODS, None, protobuf, "{}").unwrap_err().code, 400);
    assert_eq!(call(&s, Method::POST, PODS, None, "text/plain", "x").unwrap_err().code, 415);
    let wrong_ns = json!({"metadata": {"name": "q", "namespace": "other"}}).to_string();
    assert_eq!(call(&s, Method::POST, PODS, None, "", &wrong_ns).unwrap_err().code, 400);
    let missing_ns = json!({"metadata": {"name": "q"}}).to_string();
    let err = call(&s, Method::POST, "/api/v1/namespaces/nope/pods", None, "", &missing_ns).unwrap_err();
    assert_eq!(err.message, "namespaces \"nope\" not found");
    let unnamed = json!({"metadata": {}}).to_string();
    assert_eq!(call(&s, Method::POST, PODS, None, "", &unnamed).unwrap_err().code, 422);
    let yaml = "metadata:\n  name: from-yaml\n";
    assert_eq!(call(&s, Method::POST, PODS, None, "application/yaml", yaml).unwrap()["metadata"]["name"], "from-yaml");
}

#[test]
fn patches_and_deletes() {
    let s = store();
    create_pod(&s, "p", "n");
    let patched = call(
        &s,
        Method::PATCH,
        &format!("{PODS}/p"),
        None,
        "application/strategic-merge-patch+json",
        r#"{"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":"Failed"}}"#,
    )
    .unwrap();
    assert_eq!(patched["spec"]["containers"][0]["image"], "nginx");
    assert_eq!(patched["status"]["phase"], "Pending");
    let status = call(
        &s,
        Method::PATCH,
        &format!("{PODS}/p/status"),
        None,
        "application/merge-patch+json",
        r#"{"status":{"phase":"Running"}}"#,
    )
    .unwrap();
    assert_eq!(status["status"]["phase"], "Running");
    let stale = call(
        &s,
        Method::PATCH,
        &format!("{PODS}/p"),
        None,
        "application/merge-patch+json",
        r#"{"metadata":{"resourceVersion":"1"}}"#,
    );
    assert_eq!(stale.unwrap_err().reason, "Conflict");
    let apply = call(&s, Method::PATCH, &format!("{PODS}/p"), None, "application/apply-patch+yaml", "{}");
    assert_eq!(apply.unwrap_err().code, 415);
    let nad_patch = call(
        &s,
        Method::PATCH,
        "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/x",
        None,
        "application/strategic-merge-patch+json",
        "{}",
    );
    assert_eq!(nad_patch.unwrap_err().code, 415);
    let bad_json_patch = call(
        &s,
        Method::PATCH,
        &format!("{PODS}/p"),
        None,
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/nope"}]"#,
    );
    assert_eq!(bad_json_patch.unwrap_err().code, 422);
    let deleted = call(&s, Method::DELETE, &format!("{PODS}/p"), None, "", "").unwrap();
    assert_eq!(deleted["kind"], "Pod");
    assert_eq!(call(&s, Method::GET, &format!("{PODS}/p"), None, "", "").unwrap_err().message, "pods \"p\" not found");
    let cm = json!({"metadata": {"name": "c"}}).to_string();
    call(&s, Method::POST, "/api/v1/namespaces/default/configmaps", None, "", &cm).unwrap();
    let status = call(&s, Method::DELETE, "/api/v1/namespaces/default/configmaps/c", None, "", "").unwrap();
    assert_eq!(status["status"], "Success");
}

#[test]
fn delete_collection_removes_matching() {
    let s = store();
    for i in 0..3 {
        create_pod(&s, &format!("p{i}"), "n");
    }
    let out = call(&s, Method::DELETE, PODS, Some("labelSelector=app%3Dp1"), "", "").unwrap();
    assert_eq!(out["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.list(&crate::resources::Gvr::new("", "v1", "pods"), None).0.len(), 2);
}
