//! Deletion, identity and rights as a real API server handles them, seen by kube-rs and raw
//! HTTP: a deleted CRD takes its objects and stops being served, a deleted ServiceAccount
//! invalidates its tokens, deleted RBAC takes rights, DELETE options and owners (Background,
//! Foreground, Orphan, graceful pods, finalizers, preconditions), metadata-only answers and
//! the request counters.

mod common;

use std::time::Duration;

use common::{Http, read_events};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    Preconditions, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};

const CRD: &str = "network-attachment-definitions.k8s.cni.cncf.io";
const NADS: &str = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";
const RBAC: &str = "rbac.authorization.k8s.io/v1";

async fn start(cfg: MockConfig) -> (MockApiServer, Http) {
    let server = MockApiServer::start(cfg).await.expect("kube-mock starts");
    let http = Http::new(&server.url());
    (server, http)
}

async fn client_from(yaml: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// Polls `condition` for up to five seconds.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn api_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn daemonset(name: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

/// A pod of `owner` as the DaemonSet controller creates it.
fn daemon_pod(name: &str, owner: &DaemonSet) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": owner.metadata.name},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": owner.metadata.name, "uid": owner.metadata.uid,
                                          "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn deleting_the_nad_crd_takes_its_objects_and_stops_serving_them() {
    let (server, http) = start(MockConfig { seed: common::fixture_seed(), ..Default::default() }).await;
    let client = client_from(&server.kubeconfig_yaml()).await;
    let nads: Api<DynamicObject> = Api::all_with(client.clone(), &nad_resource());
    let count = nads.list(&ListParams::default()).await.unwrap().items.len();
    assert!(count > 0);

    let rv = server.store().resource_version();
    let (status, mut watch) = http.open(&format!("{NADS}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(status, 200);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let answer = crds.delete(CRD, &DeleteParams::background()).await.unwrap();
    let terminating = answer.left().expect("the CRD, being deleted");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(terminating.metadata.finalizers.unwrap().contains(&"customresourcecleanup.apiextensions.k8s.io".into()));

    // Watchers get a DELETED event per object, then their watch ends.
    let events = read_events(&mut watch, count + 1).await;
    assert_eq!(events.len(), count, "{events:#?}");
    assert!(events.iter().all(|e| e["type"] == "DELETED"));

    // Now an unknown resource, as on a real server.
    let not_found = "the server could not find the requested resource";
    for reply in [
        http.get(NADS).await,
        http.get("/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/macvlan-net").await,
        http.get(&format!("{NADS}?watch=true")).await,
        http.json("POST", "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions", &json!({}))
            .await,
    ] {
        assert_eq!(reply.status, 404);
        assert_eq!(reply.json()["message"], not_found);
    }
    assert_eq!(api_code(nads.list(&ListParams::default()).await).0, 404);
    assert_eq!(api_code(crds.get(CRD).await).0, 404);
    let groups = http.get("/apis").await.json();
    assert!(!groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "k8s.cni.cncf.io"));
    assert_eq!(http.get("/apis/k8s.cni.cncf.io").await.status, 404);

    // Created again: served again, empty.
    let crd: CustomResourceDefinition =
        serde_json::from_value(kube_mock::resources::network_attachment_definition_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    assert!(nads.list(&ListParams::default()).await.unwrap().items.is_empty());
    let nad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "again"}, "spec": {"config": "{}"}
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client, "default", &nad_resource())
        .create(&PostParams::default(), &nad)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_custom_resource_with_a_finalizer_keeps_its_crd_terminating() {
    let (server, http) = start(MockConfig::default()).await;
    let held = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                      "metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]}});
    server.store().create(held).unwrap();
    let crd_path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}");
    assert_eq!(http.send("DELETE", &crd_path, &[], "").await.status, 200);
    let crd = http.get(&crd_path).await.json();
    let terminating = crd["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Terminating");
    assert_eq!(terminating.unwrap()["status"], "True");
    let nad_path = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/held";
    assert!(http.get(nad_path).await.json()["metadata"]["deletionTimestamp"].is_string());
    let refused = http
        .json(
            "POST",
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions",
            &json!({"metadata": {"name": "new"}}),
        )
        .await;
    assert_eq!(refused.status, 405);
    assert_eq!(refused.json()["message"], "create not allowed while custom resource definition is terminating");

    let merge = [("content-type", "application/merge-patch+json")];
    let released = http.send("PATCH", nad_path, &merge, r#"{"metadata":{"finalizers":null}}"#).await;
    assert_eq!(released.status, 200);
    assert_eq!(released.json()["metadata"]["name"], "held");
    assert_eq!(http.get(&crd_path).await.status, 404);
    assert_eq!(http.get(NADS).await.status, 404);
}

#[tokio::test]
async fn deleting_a_service_account_invalidates_its_tokens() {
    let (server, http) = start(MockConfig { token: Some("t0k3n".into()), ..Default::default() }).await;
    let configured = [("authorization", "Bearer t0k3n")];
    assert_eq!(http.send("GET", "/api/v1/namespaces/default/pods", &configured, "").await.status, 200);
    // The configured token's ServiceAccount exists.
    assert!(server.store().get_kind("v1", "ServiceAccount", "kube-system", "multus").is_some());

    // A TokenRequest needs the ServiceAccount.
    let token_path = "/api/v1/namespaces/default/serviceaccounts/app/token";
    let request =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let send = |path: &'static str, body: Value| {
        let http = &http;
        async move {
            http.send(
                "POST",
                path,
                &[("authorization", "Bearer t0k3n"), ("content-type", "application/json")],
                body.to_string(),
            )
            .await
        }
    };
    assert_eq!(send(token_path, request.clone()).await.status, 404);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}});
    assert_eq!(send("/api/v1/namespaces/default/serviceaccounts", sa).await.status, 201);
    let issued = send(token_path, request.clone()).await;
    assert_eq!(issued.status, 201);
    let issued = issued.json();
    assert_eq!(issued["kind"], "TokenRequest");
    let token = issued["status"]["token"].as_str().unwrap().to_string();
    assert!(issued["status"]["expirationTimestamp"].is_string());
    let too_short = send(token_path, json!({"spec": {"expirationSeconds": 60}})).await;
    assert_eq!(too_short.status, 422);

    // kube-rs with the issued token is that ServiceAccount.
    let app = client_from(&server.kubeconfig_yaml_with_token(&token)).await;
    let pods: Api<Pod> = Api::namespaced(app, "default");
    pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(server.journal().last().unwrap().user.as_deref(), Some("system:serviceaccount:default:app"));

    // Deleting its ServiceAccount: 401, also after a ServiceAccount of that name is back.
    server.store().delete_kind("v1", "ServiceAccount", "default", "app").unwrap();
    let (code, message) = api_code(pods.list(&ListParams::default()).await);
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));
    let multus = client_from(&server.kubeconfig_yaml()).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(multus.clone(), "kube-system");
    accounts.delete("multus", &DeleteParams::default()).await.unwrap();
    let unauthorized = http.send("GET", "/api/v1/namespaces/default/pods", &configured, "").await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.json()["reason"], "Unauthorized");
    server
        .store()
        .create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "multus", "namespace": "kube-system"}}))
        .unwrap();
    assert_eq!(http.send("GET", "/api/v1/namespaces/default/pods", &configured, "").await.status, 401);
    // A new token for the new ServiceAccount works (admin API and library).
    let minted = http.json("POST", "/_mock/tokens", &json!({"namespace": "kube-system", "name": "multus"})).await;
    assert_eq!(minted.status, 200);
    let fresh = format!("Bearer {}", minted.json()["token"].as_str().unwrap());
    assert_eq!(http.send("GET", "/api/v1/pods", &[("authorization", &fresh)], "").await.status, 200);
    let library = server.issue_service_account_token("kube-system", "multus", Some(Duration::from_secs(600))).unwrap();
    let bearer = format!("Bearer {library}");
    assert_eq!(http.send("GET", "/api/v1/pods", &[("authorization", &bearer)], "").await.status, 200);
}

fn multus_rbac() -> Vec<Value> {
    vec![
        json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "multus"}, "rules": [
            {"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]}
        ]}),
        json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "multus"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "multus"},
               "subjects": [{"kind": "ServiceAccount", "name": "multus", "namespace": "kube-system"}]}),
    ]
}

#[tokio::test]
async fn enforced_rbac_grants_what_the_bindings_say_and_deleting_them_takes_it() {
    let mut seed = common::fixture_seed();
    seed.extend(multus_rbac());
    let cfg = MockConfig { token: Some("t0k3n".into()), seed, enforce_rbac: true, ..Default::default() };
    let (server, http) = start(cfg).await;
    let client = client_from(&server.kubeconfig_yaml()).await;
    let nads: Api<DynamicObject> = Api::all_with(client.clone(), &nad_resource());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nads.list(&ListParams::default()).await.unwrap();
    nads.list_metadata(&ListParams::default().limit(1)).await.unwrap();
    pods.get("pod1").await.unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let (code, message) = api_code(configmaps.create(&PostParams::default(), &cm).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "configmaps is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let status_patch = Patch::Merge(json!({"status": {"phase": "Running"}}));
    let (code, message) = api_code(pods.patch_status("pod1", &PatchParams::default(), &status_patch).await);
    assert_eq!(code, 403);
    assert!(message.starts_with("pods \"pod1\" is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot patch resource \"pods/status\""), "{message}");
    assert_eq!(http.get("/_mock/rbac").await.json(), json!({"enforce": true}));

    // The binding goes (kubectl delete -f removes RBAC): 403.
    server.store().delete_kind(RBAC, "ClusterRoleBinding", "", "multus").unwrap();
    let (code, message) = api_code(nads.list_metadata(&ListParams::default().limit(1)).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "network-attachment-definitions.k8s.cni.cncf.io is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot list resource \"network-attachment-definitions\" in API group \"k8s.cni.cncf.io\" at the cluster scope"
    );
    // The binding is back but the role is gone: the reason says so.
    server.store().create(multus_rbac()[1].clone()).unwrap();
    nads.list(&ListParams::default()).await.unwrap();
    server.store().delete_kind(RBAC, "ClusterRole", "", "multus").unwrap();
    let (code, message) = api_code(pods.get("pod1").await);
    assert_eq!(code, 403);
    assert!(message.ends_with(": RBAC: clusterrole.rbac.authorization.k8s.io \"multus\" not found"), "{message}");

    // Enforcement off (admin API): everything again.
    assert_eq!(http.json("PUT", "/_mock/rbac", &json!({"enforce": false})).await.status, 200);
    assert!(!server.rbac_enforced());
    pods.get("pod1").await.unwrap();
}

#[tokio::test]
async fn daemonset_deletion_background_foreground_and_orphan() {
    let (server, http) = start(MockConfig::default()).await;
    let client = client_from(&server.kubeconfig_yaml()).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Background (kubectl's default): the DaemonSet goes at once, its pods right after it,
    // gracefully: a MODIFIED event with deletionTimestamp, then DELETED.
    let ds = daemonsets.create(&PostParams::default(), &daemonset("bg")).await.unwrap();
    for name in ["bg-a", "bg-b"] {
        pods.create(&PostParams::default(), &daemon_pod(name, &ds)).await.unwrap();
    }
    let rv = server.store().resource_version();
    let (_, mut pod_watch) =
        http.open(&format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}")).await;
    let answer = daemonsets.delete("bg", &DeleteParams::background()).await.unwrap();
    let status = answer.right().expect("a Success Status");
    assert_eq!(status.details.unwrap().uid, ds.metadata.uid.clone().unwrap());
    assert_eq!(api_code(daemonsets.get("bg").await).0, 404);
    let events = read_events(&mut pod_watch, 6).await;
    for pod in ["bg-a", "bg-b"] {
        let of_pod: Vec<&Value> = events.iter().filter(|e| e["object"]["metadata"]["name"] == pod).collect();
        assert_eq!(of_pod.first().unwrap()["type"], "MODIFIED");
        assert!(of_pod.first().unwrap()["object"]["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(of_pod.last().unwrap()["type"], "DELETED");
    }
    assert!(pods.list(&ListParams::default()).await.unwrap().items.is_empty());

    // Foreground, with a kubelet that takes 300 ms: the DaemonSet waits for its pods.
    server.set_kubelet_delete_after(Some(Duration::from_millis(300)));
    let ds = daemonsets.create(&PostParams::default(), &daemonset("fg")).await.unwrap();
    pods.create(&PostParams::default(), &daemon_pod("fg-a", &ds)).await.unwrap();
    let answer = daemonsets.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = answer.left().expect("the DaemonSet, waiting for its pods");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(waiting.metadata.finalizers, Some(vec!["foregroundDeletion".to_string()]));
    assert!(daemonsets.get("fg").await.unwrap().metadata.deletion_timestamp.is_some());
    let terminating = pods.get("fg-a").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    eventually("the pod and then its DaemonSet gone", || async {
        daemonsets.get_opt("fg").await.unwrap().is_none() && pods.get_opt("fg-a").await.unwrap().is_none()
    })
    .await;

    // Orphan: the pod stays, without its owner reference.
    let ds = daemonsets.create(&PostParams::default(), &daemonset("or")).await.unwrap();
    pods.create(&PostParams::default(), &daemon_pod("or-a", &ds)).await.unwrap();
    daemonsets.delete("or", &DeleteParams::orphan()).await.unwrap();
    assert_eq!(api_code(daemonsets.get("or").await).0, 404);
    let orphan = pods.get("or-a").await.unwrap();
    assert!(orphan.metadata.owner_references.is_none() && orphan.metadata.deletion_timestamp.is_none());
    drop(server);
}

#[tokio::test]
async fn graceful_pods_finalizers_and_preconditions() {
    let (server, http) = start(MockConfig { kubelet_delete_after: None, ..Default::default() }).await;
    let client = client_from(&server.kubeconfig_yaml()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"nodeName": "node1", "terminationGracePeriodSeconds": 45, "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let terminating = pods.delete("p", &DeleteParams::default()).await.unwrap().left().expect("the pod");
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(45));
    let deadline = terminating.metadata.deletion_timestamp.unwrap().0;
    let ahead = deadline.as_second() - now_seconds();
    assert!((40..=46).contains(&ahead), "deletionTimestamp {ahead}s ahead");
    assert!(pods.get("p").await.unwrap().metadata.deletion_timestamp.is_some(), "no kubelet: it stays");
    assert_eq!(http.get("/_mock/kubelet").await.json(), json!({"deleteAfterMillis": null}));
    // gracePeriodSeconds=0 removes it (the answer is the pod).
    let dp = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
    assert!(pods.delete("p", &dp).await.unwrap().is_left());
    assert_eq!(api_code(pods.get("p").await).0, 404);

    // The kubelet setting through the admin API: terminating pods go after the delay.
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let set = http.json("PUT", "/_mock/kubelet", &json!({"deleteAfterMillis": 200})).await;
    assert_eq!(set.json(), json!({"deleteAfterMillis": 200}));
    assert!(pods.get_opt("p").await.unwrap().is_some());
    eventually("the kubelet removed the pod", || async { pods.get_opt("p").await.unwrap().is_none() }).await;

    // Preconditions: 409 with the real message.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})).unwrap();
    let created = configmaps.create(&PostParams::default(), &cm).await.unwrap();
    let wrong = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("not-the-uid".into()), resource_version: None }),
        ..DeleteParams::default()
    };
    let (code, message) = api_code(configmaps.delete("held", &wrong).await);
    assert_eq!(code, 409);
    assert_eq!(
        message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"held\": the UID in the precondition (not-the-uid) does not match the UID in record ({}). The object might have been deleted and then recreated",
            created.metadata.uid.unwrap()
        )
    );
    // A finalizer holds the object (MODIFIED, deletionTimestamp) until an update removes it.
    let rv = server.store().resource_version();
    let (_, mut watch) =
        http.open(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")).await;
    let held = configmaps.delete("held", &DeleteParams::default()).await.unwrap().left().expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    let adding = Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}));
    let (code, message) = api_code(configmaps.patch("held", &PatchParams::default(), &adding).await);
    assert_eq!(code, 422);
    assert!(message.contains("no new finalizers can be added if the object is being deleted"), "{message}");
    let releasing = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let released = configmaps.patch("held", &PatchParams::default(), &releasing).await.unwrap();
    assert!(released.metadata.finalizers.is_none());
    assert_eq!(api_code(configmaps.get("held").await).0, 404);
    let events = read_events(&mut watch, 2).await;
    assert_eq!((events[0]["type"].as_str(), events[1]["type"].as_str()), (Some("MODIFIED"), Some("DELETED")));

    // Malformed options are refused like the real server does.
    let cm = json!({"metadata": {"name": "c"}});
    assert_eq!(http.json("POST", "/api/v1/namespaces/default/configmaps", &cm).await.status, 201);
    let bogus =
        http.json("DELETE", "/api/v1/namespaces/default/configmaps/c", &json!({"propagationPolicy": "Sideways"})).await;
    assert_eq!(bogus.status, 422);
    assert_eq!(
        bogus.json()["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    assert_eq!(http.send("DELETE", "/api/v1/namespaces/default/configmaps/c", &[], "{nope").await.status, 400);
    let stale = http
        .json("DELETE", "/api/v1/namespaces/default/configmaps/c", &json!({"preconditions": {"resourceVersion": "1"}}))
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(
        http.send("DELETE", "/api/v1/namespaces/default/configmaps/c?propagationPolicy=Foreground", &[], "")
            .await
            .status,
        200
    );
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

#[tokio::test]
async fn metadata_only_lists_gets_and_watches() {
    let (server, http) = start(MockConfig::default()).await;
    for i in 0..5 {
        server
            .store()
            .create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "namespace": "default", "labels": {"app": "x"}},
                           "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}}))
            .unwrap();
    }
    let client = client_from(&server.kubeconfig_yaml()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Paginated metadata lists.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = pods.list_metadata(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        for item in &page.items {
            let types = item.types.as_ref().unwrap();
            assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("meta.k8s.io/v1", "PartialObjectMetadata"));
            names.push(item.metadata.name.clone().unwrap());
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    let raw = http.send("GET", "/api/v1/namespaces/default/pods?limit=3", &[("accept", PARTIAL_LIST)], "").await.json();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["metadata"]["remainingItemCount"], 2);
    assert!(raw["items"][0]["spec"].is_null() && raw["items"][0]["metadata"]["uid"].is_string());
    assert_eq!(raw["items"][0]["kind"], "PartialObjectMetadata");

    let one = pods.get_metadata("p1").await.unwrap();
    assert_eq!(one.metadata.labels.unwrap()["app"], "x");
    let raw = http.send("GET", "/api/v1/namespaces/default/pods/p1", &[("accept", PARTIAL)], "").await.json();
    assert_eq!(
        raw,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": raw["metadata"]})
    );
    let wrong = http.send("GET", "/api/v1/namespaces/default/pods/p1", &[("accept", PARTIAL_LIST)], "").await;
    assert_eq!((wrong.status, wrong.json()["reason"].as_str()), (406, Some("NotAcceptable")));
    assert_eq!(http.send("GET", "/api/v1/namespaces/default/pods", &[("accept", PARTIAL)], "").await.status, 406);

    // Metadata watches: events carry PartialObjectMetadata.
    let mut events = pods.watch_metadata(&WatchParams::default().timeout(5), "0").await.unwrap().boxed();
    let mut added = 0;
    while added < 5 {
        match events.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(meta) => {
                assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
                added += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    server.store().delete_kind("v1", "Pod", "default", "p0").unwrap();
    let mut saw_deleted = false;
    while let Some(event) = events.try_next().await.unwrap() {
        match event {
            WatchEvent::Modified(meta) => assert!(meta.metadata.deletion_timestamp.is_some()),
            WatchEvent::Deleted(meta) => {
                assert_eq!(meta.metadata.name.as_deref(), Some("p0"));
                saw_deleted = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_deleted);
    let rv = server.store().resource_version();
    server
        .store()
        .create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "namespace": "default"}}))
        .unwrap();
    let watch = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1");
    let body = http.send("GET", &watch, &[("accept", PARTIAL)], "").await;
    let first: Value = serde_json::from_slice(body.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "PartialObjectMetadata");
    assert!(first["object"]["spec"].is_null() && first["object"]["metadata"]["name"] == "late");

    // kube::runtime::metadata_watcher and a watcher of Api<PartialObjectMeta<Pod>>, also with
    // streaming lists (their bookmarks come in metadata form).
    let metadata_pods: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), "default");
    for (deprecated, config) in [
        (true, watcher::Config::default()),
        (true, watcher::Config::default().streaming_lists()),
        (false, watcher::Config::default()),
        (false, watcher::Config::default().streaming_lists()),
    ] {
        #[allow(deprecated)]
        let stream = if deprecated {
            kube::runtime::metadata_watcher(pods.clone(), config).applied_objects().boxed()
        } else {
            watcher(metadata_pods.clone(), config).applied_objects().boxed()
        };
        let seen: Vec<String> = stream.take(5).map(|m| m.unwrap().metadata.name.unwrap()).collect::<Vec<_>>().await;
        assert_eq!(seen.len(), 5);
        assert!(seen.contains(&"late".to_string()));
    }
}

#[tokio::test]
async fn request_counts_and_journal_name_verbs_and_resources() {
    let (server, http) = start(MockConfig::default()).await;
    server
        .store()
        .create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}))
        .unwrap();
    http.get("/_mock/requests").await;
    assert_eq!(http.send("DELETE", "/_mock/requests", &[], "").await.status, 200);
    http.get("/api/v1/namespaces/default/pods/p").await;
    http.get("/api/v1/namespaces/default/pods/p").await;
    let merge = [("content-type", "application/merge-patch+json")];
    http.send("PATCH", "/api/v1/namespaces/default/pods/p/status", &merge, r#"{"status":{"phase":"Running"}}"#).await;
    http.get("/api/v1/namespaces/default/pods/missing").await;
    http.get("/api").await;
    let counts = http.get("/_mock/requests").await.json();
    assert_eq!(counts["total"], 5);
    assert_eq!(counts["byRequest"]["get pods"], 3);
    assert_eq!(counts["byRequest"]["patch pods/status"], 1);
    assert_eq!(counts["byRequest"]["GET /api"], 1);
    assert_eq!(counts["byResource"]["pods/status"], 1);
    assert_eq!(counts["byStatus"]["404"], 1);
    assert_eq!(counts["byUser"]["system:anonymous"], 5);
    let entry = server.journal().into_iter().find(|e| e.path.ends_with("/status")).unwrap();
    assert_eq!(
        (entry.verb.as_deref(), entry.resource.as_deref(), entry.namespace.as_deref()),
        (Some("patch"), Some("pods/status"), Some("default"))
    );
    // DELETE returns the counts and starts again.
    let taken = http.send("DELETE", "/_mock/requests", &[], "").await.json();
    assert_eq!(taken["total"], 5);
    assert_eq!(server.request_counts().total, 0);
    http.get("/api").await;
    assert_eq!(server.take_request_counts().total, 1);
}

#[tokio::test]
async fn admin_and_collection_deletes_follow_the_same_rules() {
    let (server, http) = start(MockConfig { kubelet_delete_after: None, ..Default::default() }).await;
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"set": "a"}},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}})
    };
    for name in ["a1", "a2", "a3"] {
        server.store().create(pod(name)).unwrap();
    }
    // The admin API deletes as the API does (the pod is terminating, no kubelet) ...
    let target = json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "a1"});
    let answer = http.json("DELETE", "/_mock/objects", &target).await.json();
    assert!(answer["metadata"]["deletionTimestamp"].is_string());
    assert!(server.store().get_kind("v1", "Pod", "default", "a1").is_some());
    // ... or at once with force.
    let mut forced = target.clone();
    forced["force"] = json!(true);
    assert_eq!(http.json("DELETE", "/_mock/objects", &forced).await.status, 200);
    assert!(server.store().get_kind("v1", "Pod", "default", "a1").is_none());
    let mut zero = json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "a2"});
    zero["gracePeriodSeconds"] = json!(0);
    assert_eq!(http.json("DELETE", "/_mock/objects", &zero).await.status, 200);
    assert!(server.store().get_kind("v1", "Pod", "default", "a2").is_none());

    // DeleteCollection passes its options to every delete.
    server.store().create(pod("a4")).unwrap();
    let listed = http
        .json("DELETE", "/api/v1/namespaces/default/pods?labelSelector=set%3Da", &json!({"gracePeriodSeconds": 0}))
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 2);
    assert!(server.store().list_kind("v1", "Pod", Some("default")).is_empty());
    // The kubelet setting reads back as set; an invalid one is a 400.
    assert_eq!(http.json("PUT", "/_mock/kubelet", &json!({})).await.status, 400);
    assert_eq!(http.json("PUT", "/_mock/kubelet", &json!({"deleteAfterMillis": "soon"})).await.status, 400);
    assert_eq!(server.kubelet_delete_after(), None);
}
