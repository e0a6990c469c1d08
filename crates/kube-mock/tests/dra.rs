//! `resource.k8s.io/v1` ResourceClaims and ResourceSlices (dynamic resource allocation) through
//! kubectl and kube-rs: discovery, create, get, list with the slice field selectors, watch and
//! the claim status subresource. kubectl cases skip with a message when kubectl is missing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};

const DRIVER: &str = "sriov.example.com";

/// Kills the child process by PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn slice(name: &str, node: &str, driver: &str, devices: &[&str]) -> Value {
    let devices: Vec<Value> = devices
        .iter()
        .map(|d| json!({"name": d, "attributes": {"k8s.cni.cncf.io/deviceID": {"string": format!("0000:af:00.{d}")}}}))
        .collect();
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name},
        "spec": {"driver": driver, "nodeName": node, "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                 "devices": devices}
    })
}

fn claim(name: &str) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "vf", "exactly": {"deviceClassName": "vf.example.com"}}]}}
    })
}

fn api_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("resource.k8s.io", "v1", kind))
}

async fn client_for(server: &MockApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

fn names(list: &[DynamicObject]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().filter_map(|o| o.metadata.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn kube_rs_creates_lists_and_watches_claims_and_slices() {
    let server = MockApiServer::start(MockConfig::default()).await.unwrap();
    let client = client_for(&server).await;

    // Discovery knows both kinds with their scopes (kube-rs resolves them as a user would).
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery.groups().find(|g| g.name() == "resource.k8s.io").expect("resource.k8s.io served");
    let kinds: Vec<(String, bool)> = group
        .resources_by_stability()
        .into_iter()
        .map(|(ar, caps)| (ar.kind, caps.scope == kube::discovery::Scope::Namespaced))
        .collect();
    assert!(kinds.contains(&("ResourceClaim".to_string(), true)), "{kinds:?}");
    assert!(kinds.contains(&("ResourceSlice".to_string(), false)), "{kinds:?}");

    let slices: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource("ResourceSlice"));
    for s in [
        slice("node1-sriov", "node1", DRIVER, &["0", "1"]),
        slice("node2-sriov", "node2", DRIVER, &["2"]),
        slice("node1-gpu", "node1", "gpu.example.com", &["3"]),
    ] {
        let object: DynamicObject = serde_json::from_value(s).unwrap();
        slices.create(&PostParams::default(), &object).await.unwrap();
    }
    let pinned = ListParams::default().fields(&format!("spec.nodeName=node1,spec.driver={DRIVER}"));
    assert_eq!(names(&slices.list(&pinned).await.unwrap().items), ["node1-sriov"]);
    assert_eq!(
        names(&slices.list(&ListParams::default().fields("spec.nodeName=node1")).await.unwrap().items),
        ["node1-gpu", "node1-sriov"]
    );
    let bad = slices.list(&ListParams::default().fields("spec.pool.name=node1")).await.unwrap_err();
    assert!(bad.to_string().contains("field label not supported"), "{bad}");

    // Claims: namespaced, spec and status written separately (status subresource).
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &api_resource("ResourceClaim"));
    let created =
        claims.create(&PostParams::default(), &serde_json::from_value(claim("vf-claim")).unwrap()).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let allocation = json!({"status": {"allocation": {"devices": {"results": [
        {"request": "vf", "driver": DRIVER, "pool": "node1", "device": "0"}
    ]}}}});
    claims.patch_status("vf-claim", &PatchParams::default(), &Patch::Merge(&allocation)).await.unwrap();
    let fetched = claims.get("vf-claim").await.unwrap();
    assert_eq!(fetched.data["status"]["allocation"]["devices"]["results"][0]["device"], "0");
    // A main-resource update does not touch status.
    let spec_only = json!({"metadata": {"labels": {"x": "y"}}, "status": {"allocation": null}});
    claims.patch("vf-claim", &PatchParams::default(), &Patch::Merge(&spec_only)).await.unwrap();
    assert!(claims.get("vf-claim").await.unwrap().data["status"]["allocation"].is_object());
    let missing = claims.get("nope").await.unwrap_err();
    assert!(missing.to_string().contains("resourceclaims.resource.k8s.io \"nope\" not found"), "{missing}");

    // A node/driver-scoped watch sees a new slice for its node only.
    let stream = watcher(
        slices.clone(),
        watcher::Config::default().fields(&format!("spec.nodeName=node1,spec.driver={DRIVER}")),
    )
    .applied_objects()
    .boxed();
    let created_later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for s in [slice("node2-later", "node2", DRIVER, &["7"]), slice("node1-later", "node1", DRIVER, &["8"])] {
            slices.create(&PostParams::default(), &serde_json::from_value(s).unwrap()).await.unwrap();
        }
    };
    let seen = async {
        let mut stream = stream;
        let mut seen = Vec::new();
        while let Some(Ok(object)) = stream.next().await {
            seen.push(object.metadata.name.unwrap_or_default());
            if seen.iter().any(|n| n == "node1-later") {
                break;
            }
        }
        seen
    };
    let (_, seen) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(created_later, seen) })
        .await
        .expect("watch delivered node1-later");
    assert_eq!(seen, ["node1-sriov", "node1-later"]);
    server.shutdown().await;
}

fn kubectl_available() -> bool {
    Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success())
}

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_creates_and_lists_claims_and_slices() {
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let cache = dir.path().join("cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-mock"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kube-mock starts");
    let stdout = child.stdout.take().unwrap();
    let _mock = Running(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    assert!(first_line.starts_with("listening on "), "{first_line}");

    // Multi-document YAML (each document written as JSON, which is YAML too).
    let manifest = dir.path().join("dra.yaml");
    let documents: Vec<String> = [
        claim("vf-claim"),
        slice("node1-sriov", "node1", DRIVER, &["0", "1"]),
        slice("node2-sriov", "node2", DRIVER, &["2"]),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    std::fs::write(&manifest, documents.join("\n---\n")).unwrap();
    let created = kubectl(&kubeconfig, &cache, &["create", "-f", manifest.to_str().unwrap()]);
    assert!(created.contains("resourceclaim.resource.k8s.io/vf-claim created"), "{created}");
    assert!(created.contains("resourceslice.resource.k8s.io/node2-sriov created"), "{created}");

    let resources = kubectl(&kubeconfig, &cache, &["api-resources", "--api-group", "resource.k8s.io"]);
    assert!(resources.contains("resourceclaims") && resources.contains("resourceslices"), "{resources}");

    let selected = kubectl(
        &kubeconfig,
        &cache,
        &[
            "get",
            "resourceslices",
            "--field-selector",
            &format!("spec.nodeName=node1,spec.driver={DRIVER}"),
            "-o",
            "name",
        ],
    );
    assert_eq!(selected.trim(), "resourceslice.resource.k8s.io/node1-sriov");
    let table = kubectl(&kubeconfig, &cache, &["get", "resourceslices"]);
    assert!(table.contains("NAME") && table.contains("node2-sriov"), "{table}");

    let claim: Value = serde_json::from_str(&kubectl(
        &kubeconfig,
        &cache,
        &["get", "resourceclaims.v1.resource.k8s.io", "vf-claim", "-n", "default", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(claim["spec"]["devices"]["requests"][0]["name"], "vf");
    let patch = r#"{"status":{"allocation":{"devices":{"results":[{"request":"vf","driver":"sriov.example.com","pool":"node1","device":"1"}]}}}}"#;
    kubectl(
        &kubeconfig,
        &cache,
        &["patch", "resourceclaim", "vf-claim", "--subresource", "status", "--type", "merge", "-p", patch],
    );
    let device = kubectl(
        &kubeconfig,
        &cache,
        &["get", "resourceclaim", "vf-claim", "-o", "jsonpath={.status.allocation.devices.results[0].device}"],
    );
    assert_eq!(device, "1");
    assert!(kubectl(&kubeconfig, &cache, &["delete", "resourceslice", "node2-sriov"]).contains("deleted"));
}
