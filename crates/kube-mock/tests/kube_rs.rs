//! kube-rs against the mock: reflectors with field selectors, watch expiry, status
//! subresource, custom resources, streaming lists, TLS, tokens and in-cluster files.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};
use kube_mock::{MockApiServer, MockConfig};
use serde_json::json;

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn fixture_seed() -> Vec<serde_json::Value> {
    kube_mock::seed::load_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed")).expect("fixtures")
}

async fn client_for(server: &MockApiServer) -> Client {
    install_crypto();
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// Polls `condition` for up to five seconds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn pod(name: &str, node: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
}

fn names(reader: &reflector::Store<Pod>) -> Vec<String> {
    let mut names: Vec<String> = reader.state().iter().filter_map(|p| p.metadata.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn node_scoped_reflector_follows_changes_and_relists_after_expiry() {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..MockConfig::default() }).await.unwrap();
    let client = client_for(&server).await;
    let pods: Api<Pod> = Api::all(client);
    let (reader, writer) = reflector::store::<Pod>();
    let stream = reflector(writer, watcher(pods, watcher::Config::default().fields("spec.nodeName=node1")))
        .applied_objects()
        .boxed();
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready()).await.unwrap().unwrap();
    let initial = names(&reader);
    assert!(initial.contains(&"pod1".to_string()));
    assert!(!initial.contains(&"pod-othernode".to_string()), "{initial:?}");

    // Live changes: a pod on this node appears, one elsewhere does not.
    server.store().create(pod("live-1", "node1")).unwrap();
    server.store().create(pod("elsewhere", "node2")).unwrap();
    eventually("live-1 in the cache", || names(&reader).contains(&"live-1".to_string())).await;
    assert!(!names(&reader).contains(&"elsewhere".to_string()));

    // An object that stops matching the selector leaves the cache (DELETED to this watcher).
    let mut moved = server.store().get_kind("v1", "Pod", "default", "live-1").unwrap();
    moved["spec"]["nodeName"] = json!("node2");
    server.store().update(moved).unwrap();
    eventually("live-1 gone", || !names(&reader).contains(&"live-1".to_string())).await;

    // 410 Expired: kube-rs relists and keeps following changes.
    server.clear_journal();
    server.expire_watches();
    server.store().create(pod("after-expiry", "node1")).unwrap();
    eventually("after-expiry in the cache", || names(&reader).contains(&"after-expiry".to_string())).await;
    let relisted = server
        .journal()
        .iter()
        .any(|e| e.path == "/api/v1/pods" && !e.query.clone().unwrap_or_default().contains("watch=true"));
    assert!(relisted, "expected a relist after 410: {:#?}", server.journal());
    driver.abort();
}

#[tokio::test]
async fn streaming_list_gets_initial_events_and_bookmark() {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..MockConfig::default() }).await.unwrap();
    let pods: Api<Pod> = Api::all(client_for(&server).await);
    let (reader, writer) = reflector::store::<Pod>();
    let config = watcher::Config::default().fields("spec.nodeName=node1").streaming_lists();
    let driver = tokio::spawn(reflector(writer, watcher(pods, config)).applied_objects().for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready()).await.unwrap().unwrap();
    assert!(names(&reader).contains(&"pod1".to_string()));
    let journal = server.journal();
    assert!(journal.iter().any(|e| e.query.clone().unwrap_or_default().contains("sendInitialEvents=true")));
    assert!(
        !journal.iter().any(|e| e.path == "/api/v1/pods" && !e.query.clone().unwrap_or_default().contains("watch"))
    );
    driver.abort();
}

#[tokio::test]
async fn status_subresource_round_trips() {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..MockConfig::default() }).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client_for(&server).await, "default");

    let patched = pods
        .patch_status(
            "pod1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.9"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().phase.as_deref(), Some("Running"));

    let mut pod = pods.get_status("pod1").await.unwrap();
    pod.metadata.annotations.get_or_insert_default().insert("k8s.v1.cni.cncf.io/network-status".into(), "[]".into());
    pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
    pod.spec.as_mut().unwrap().node_name = Some("ignored-by-status".into());
    let replaced = pods.replace_status("pod1", &PostParams::default(), &pod).await.unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(replaced.spec.unwrap().node_name.as_deref(), Some("node1"));
    assert_eq!(replaced.metadata.annotations.unwrap()["k8s.v1.cni.cncf.io/network-status"], "[]");

    // The object read before the last write is stale now: 409 Conflict.
    let err = pods.replace_status("pod1", &PostParams::default(), &pod).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409), "{err:?}");
    let missing = pods.get("nope").await.unwrap_err();
    assert!(matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.message == "pods \"nope\" not found"));
}

#[tokio::test]
async fn network_attachment_definitions_as_dynamic_objects() {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..MockConfig::default() }).await.unwrap();
    let client = client_for(&server).await;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    );
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let listed = nads.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 4);

    let new_nad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "created-by-kube-rs"},
        "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\"}"}
    }))
    .unwrap();
    let created = nads.create(&PostParams::default(), &new_nad).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let again = nads.create(&PostParams::default(), &new_nad).await.unwrap_err();
    assert!(matches!(&again, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));
    assert_eq!(server.store().list_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", Some("default")).len(), 5);

    // A CRD created through the API becomes a served resource.
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let discovery = kube::discovery::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "example.com"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets"),
    );
    let widget: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}}))
            .unwrap();
    widgets.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn tls_with_token_from_in_cluster_files() {
    let server = MockApiServer::start(MockConfig {
        tls: true,
        token: Some("sekret".into()),
        seed: fixture_seed(),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();
    server.write_in_cluster_dir(dir.path()).unwrap();
    for file in ["token", "ca.crt", "namespace"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    install_crypto();

    // What an in-cluster client does with KUBERNETES_SERVICE_HOST=127.0.0.1 and the
    // service-account files, with the files read from our directory.
    let mut config = Config::new(server.url().parse().unwrap());
    config.default_namespace = std::fs::read_to_string(dir.path().join("namespace")).unwrap();
    config.root_cert_file = Some(dir.path().join("ca.crt"));
    config.auth_info.token_file = Some(dir.path().join("token").display().to_string());
    let pods: Api<Pod> = Api::default_namespaced(Client::try_from(config.clone()).unwrap());
    assert_eq!(pods.get("pod1").await.unwrap().metadata.name.as_deref(), Some("pod1"));

    // The kubeconfig carries CA data and the token too.
    let pods_from_kubeconfig: Api<Pod> = Api::all(client_for(&server).await);
    assert!(pods_from_kubeconfig.list(&ListParams::default()).await.unwrap().items.len() >= 8);

    // Without the token: 401 Unauthorized.
    config.auth_info.token_file = None;
    let anonymous: Api<Pod> = Api::default_namespaced(Client::try_from(config).unwrap());
    let err = anonymous.get("pod1").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 401), "{err:?}");
}

#[tokio::test]
async fn api_server_down_and_up_on_the_same_port() {
    let server = MockApiServer::start(MockConfig::default()).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client_for(&server).await);
    pods.list(&ListParams::default()).await.unwrap();
    let addr = server.addr();
    server.stop_listening().await;
    assert!(pods.list(&ListParams::default()).await.is_err());
    server.resume_listening().await;
    assert_eq!(server.addr(), addr);
    pods.list(&ListParams::default()).await.unwrap();
}
