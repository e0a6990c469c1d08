//! The `cert-approver` binary against kube-mock's CSR API (TLS, client certificates, the
//! approval subresource, the client signer; kube-mock's own approver off): multus-daemon's
//! certificate manager gets its first certificate and renews it; a node's kubelet asking for
//! another node's identity is denied with the reason, so is a node that does not exist (the
//! daemon's startup error says why); other signers' requests stay pending; and the RBAC of
//! `deployments/cert-approver.yml` is what the approver needs (with a part missing, nothing is
//! approved and the log says which permission). Waits are bounded; nothing asserts on speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_mock::{CsrApproval, CsrSettings, MockApiServer, MockConfig};
use multus_daemon::certs::{CertError, CertManager, CertManagerConfig, RotationError, Timing};
use serde_json::{Value, json};
use test_node::DaemonProcess;

const TOKEN: &str = "abcdef.0123456789abcdef";
const RBAC: &str = "rbac.authorization.k8s.io/v1";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

/// kube-mock with nodes node1 and node2, nobody approving, short lifetimes allowed.
async fn mock(extra_seed: Vec<Value>, enforce_rbac: bool) -> MockApiServer {
    let mut seed = vec![node("node1"), node("node2")];
    seed.extend(extra_seed);
    MockApiServer::start(MockConfig {
        tls: true,
        token: Some(TOKEN.into()),
        seed,
        enforce_rbac,
        csr: CsrSettings {
            approval: CsrApproval::Manual,
            min_expiration_seconds: 5,
            backdate: Duration::ZERO,
            ..CsrSettings::default()
        },
        ..MockConfig::default()
    })
    .await
    .expect("kube-mock starts")
}

/// The approver binary with `kubeconfig`, once it says it watches.
fn start_approver(kubeconfig: &Path, dir: &Path) -> DaemonProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cert-approver"));
    command.arg("--kubeconfig").arg(kubeconfig).env("RUST_LOG", "info,cert_approver=debug");
    let mut approver = DaemonProcess::spawn(command, &dir.join("approver.log")).expect("cert-approver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !approver.log().contains("watching CertificateSigningRequests") {
        assert!(approver.exited().is_none(), "cert-approver exited:\n{}", approver.log());
        assert!(Instant::now() < deadline, "cert-approver did not start:\n{}", approver.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    approver
}

/// The approver with the mock's administrator token.
fn start_admin_approver(server: &MockApiServer, dir: &Path) -> DaemonProcess {
    let kubeconfig = dir.join("approver.kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    start_approver(&kubeconfig, dir)
}

/// A kubeconfig with the kubelet client certificate of `node`.
fn kubelet_kubeconfig(server: &MockApiServer, node: &str, dir: &Path) -> PathBuf {
    let kubelet = server
        .issue_client_certificate(&format!("system:node:{node}"), Some("system:nodes"), Duration::from_secs(3600))
        .unwrap();
    let path = dir.join(format!("kubelet-{node}.kubeconfig"));
    std::fs::write(&path, server.kubeconfig_yaml_with_client_certificate(&kubelet)).unwrap();
    path
}

async fn client(kubeconfig: &Path) -> kube::Client {
    install_crypto();
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn manager_config(node: &str, bootstrap: PathBuf, dir: &Path, lifetime: Duration) -> CertManagerConfig {
    let mut timing = Timing::for_duration(lifetime);
    timing.startup_wait = Duration::from_secs(20);
    timing.csr_wait = Duration::from_secs(15);
    CertManagerConfig {
        node_name: node.into(),
        bootstrap_kubeconfig: bootstrap,
        cert_dir: dir.join(format!("certs-{node}")),
        cert_duration: lifetime,
        timing,
    }
}

/// A CSR as multus-daemon files it, for `cn`, with `signer`.
fn request(cn: &str, signer: &str) -> CertificateSigningRequest {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:multus");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: signer.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds: Some(600),
            ..Default::default()
        },
        status: None,
    }
}

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

async fn file(kubeconfig: &Path, csr: &CertificateSigningRequest) -> String {
    let api: Api<CertificateSigningRequest> = Api::all(client(kubeconfig).await);
    api.create(&PostParams::default(), csr).await.unwrap().metadata.name.unwrap()
}

fn stored(server: &MockApiServer, name: &str) -> Value {
    server.csrs().into_iter().find(|c| c["metadata"]["name"] == name).unwrap_or_else(|| panic!("no CSR {name}"))
}

/// The decision condition (type, reason, message) of a stored CSR, once there is one.
async fn decision(server: &MockApiServer, name: &str, approver: &DaemonProcess) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let csr = stored(server, name);
        if let Some(c) = csr["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Approved" || c["type"] == "Denied"))
        {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            return (s("type"), s("reason"), s("message"));
        }
        assert!(Instant::now() < deadline, "CSR {name} was not decided:\n{csr:#}\n{}", approver.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_certificate(csr: &Value) -> bool {
    csr["status"]["certificate"].as_str().is_some_and(|c| !c.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_certificate_and_its_renewal_are_approved() {
    let server = mock(vec![], false).await;
    let dir = tempfile::tempdir().unwrap();
    let approver = start_admin_approver(&server, dir.path());
    let bootstrap = kubelet_kubeconfig(&server, "node1", dir.path());
    let lifetime = Duration::from_secs(20);
    let mut config = manager_config("node1", bootstrap, dir.path(), lifetime);
    // Renew at 30–40 % of the lifetime (Go: 70–90 %), so the test sees a rotation.
    config.timing.rotation_fraction = (0.3, 0.4);
    config.timing.retry_initial = Duration::from_secs(1);
    let manager = CertManager::start(config).await.unwrap_or_else(|e| panic!("{e}\n{}", approver.log()));
    let mut changes = manager.subscribe();
    tokio::time::timeout(lifetime * 3, changes.wait_for(|info| info.generation >= 2))
        .await
        .unwrap_or_else(|_| panic!("not renewed:\n{}", approver.log()))
        .unwrap();

    let csrs = server.csrs();
    let by = |user: &str| csrs.iter().filter(|c| c["spec"]["username"] == user).cloned().collect::<Vec<_>>();
    let (first, renewals) = (by("system:node:node1"), by("system:multus:node1"));
    assert_eq!(first.len(), 1, "{csrs:#?}");
    assert!(!renewals.is_empty(), "the renewal asks with the daemon's own certificate: {csrs:#?}");
    for csr in first.iter().chain(&renewals) {
        let approved = &csr["status"]["conditions"][0];
        assert_eq!((approved["type"].as_str(), approved["reason"].as_str()), (Some("Approved"), Some("AutoApproved")));
        assert!(approved["message"].as_str().unwrap().contains("node node1"), "{approved}");
        assert!(has_certificate(csr), "{csr:#}");
    }
    let log = approver.log();
    assert!(log.contains("approved"), "{log}");
    approver.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_node_name_and_an_unknown_node_are_denied_with_the_reason() {
    let server = mock(vec![], false).await;
    let dir = tempfile::tempdir().unwrap();
    let approver = start_admin_approver(&server, dir.path());

    // node1's kubelet credentials asking for node2's multus identity.
    let node1 = kubelet_kubeconfig(&server, "node1", dir.path());
    let forged = file(&node1, &request("system:multus:node2", CLIENT_SIGNER)).await;
    let (kind, reason, message) = decision(&server, &forged, &approver).await;
    assert_eq!((kind.as_str(), reason.as_str()), ("Denied", "NodeNameMismatch"));
    assert!(message.contains("\"system:multus:node2\" does not match the requesting node \"node1\""), "{message}");

    // A node the cluster does not have: the daemon's startup fails with the approver's reason.
    let node3 = kubelet_kubeconfig(&server, "node3", dir.path());
    let mut config = manager_config("node3", node3, dir.path(), Duration::from_secs(600));
    config.timing.startup_wait = Duration::from_secs(3);
    config.timing.retry_initial = Duration::from_secs(1);
    let err = CertManager::start(config).await.err().expect("no certificate for a missing node");
    match &err {
        CertError::NotIssued { last: RotationError::Denied { reason, message, .. }, .. } => {
            assert_eq!(reason, "NodeNotFound");
            assert_eq!(message, "node \"node3\" does not exist");
        }
        other => panic!("unexpected error: {other:?}\n{}", approver.log()),
    }
    // Nothing was signed for either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.csrs().iter().all(|c| !has_certificate(c)), "{:#?}", server.csrs());
    let log = approver.log();
    assert!(log.contains("denied") && log.contains("NodeNameMismatch") && log.contains("NodeNotFound"), "{log}");
    approver.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_stay_pending() {
    let server = mock(vec![], false).await;
    let dir = tempfile::tempdir().unwrap();
    let approver = start_admin_approver(&server, dir.path());
    let node1 = kubelet_kubeconfig(&server, "node1", dir.path());
    // Another signer, and another subject: not the approver's to decide.
    let kubelet_signer =
        file(&node1, &request("system:multus:node1", "kubernetes.io/kube-apiserver-client-kubelet")).await;
    let other_subject = file(&node1, &request("system:node:node1", CLIENT_SIGNER)).await;
    // Filed after them and decided: the approver has seen the others by now.
    let ours = file(&node1, &request("system:multus:node1", CLIENT_SIGNER)).await;
    assert_eq!(decision(&server, &ours, &approver).await.0, "Approved");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in [kubelet_signer, other_subject] {
        let csr = stored(&server, &name);
        assert!(csr["status"]["conditions"].is_null(), "{csr:#}");
    }
    approver.stop(Duration::from_secs(5));
}

/// The approver's RBAC objects of `deployments/cert-approver.yml`, without rules for `drop`.
fn manifest_rbac(drop: Option<&str>) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/cert-approver.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects: Vec<Value> = kube_objects::parse_text(&text)
        .unwrap()
        .into_iter()
        .filter(|o| o["metadata"]["name"] == "multus-cert-approver" && o["kind"] != "Deployment")
        .collect();
    assert_eq!(objects.len(), 3);
    if let Some(resource) = drop {
        let role = objects.iter_mut().find(|o| o["kind"] == "ClusterRole").unwrap();
        let rules = role["rules"].as_array_mut().unwrap();
        rules.retain(|r| !r["resources"].as_array().unwrap().iter().any(|x| x == resource));
    }
    assert!(objects.iter().all(|o| o["apiVersion"] == "v1" || o["apiVersion"] == RBAC));
    objects
}

/// The approver as the manifest's service account, with RBAC enforced.
async fn approver_as_service_account(drop: Option<&str>, dir: &Path) -> (MockApiServer, DaemonProcess) {
    let server = mock(manifest_rbac(drop), true).await;
    let token = server.issue_service_account_token("kube-system", "multus-cert-approver", None).unwrap();
    let kubeconfig = dir.join("approver.kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml_with_token(&token)).unwrap();
    let approver = start_approver(&kubeconfig, dir);
    (server, approver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_rbac_is_what_the_approver_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, approver) = approver_as_service_account(None, dir.path()).await;
    let node1 = kubelet_kubeconfig(&server, "node1", dir.path());
    let name = file(&node1, &request("system:multus:node1", CLIENT_SIGNER)).await;
    assert_eq!(decision(&server, &name, &approver).await.0, "Approved");
    approver.stop(Duration::from_secs(5));

    // Without `approve` on the signer, reading nodes or listing requests, nothing is decided
    // and the log names the missing permission.
    for (dropped, expected) in [
        ("signers", "user not permitted to approve requests with signerName"),
        ("nodes", "cannot get resource \"nodes\""),
        ("certificatesigningrequests", "cannot list resource \"certificatesigningrequests\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (server, approver) = approver_as_service_account(Some(dropped), dir.path()).await;
        let node1 = kubelet_kubeconfig(&server, "node1", dir.path());
        let name = file(&node1, &request("system:multus:node1", CLIENT_SIGNER)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !approver.log().contains(expected) {
            assert!(Instant::now() < deadline, "without {dropped}: no {expected:?} in\n{}", approver.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(stored(&server, &name)["status"]["conditions"].is_null(), "without {dropped}");
        approver.stop(Duration::from_secs(5));
    }
}
