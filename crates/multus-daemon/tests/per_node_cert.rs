//! `perNodeCertificate` against kube-mock over TLS with client-certificate authentication: the
//! first start files a CSR as the Go daemon does and authenticates with the issued
//! certificate; a restart reuses it; a short-lived certificate is renewed while the API server
//! refuses the expired one and the daemon's client (a watch included) keeps working; a denied
//! CSR ends startup with the reason; a CA rotated on disk is picked up from the bootstrap
//! kubeconfig; and the daemon binary serves with it, or stops with a clear message when the
//! settings are incomplete. Waits are bounded; nothing asserts on speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_mock::{CsrApproval, CsrSettings, IssuedCertificate, MockApiServer, MockConfig};
use multus_daemon::certs::{
    CURRENT_FILE, CertError, CertManager, CertManagerConfig, ClientCertificate, RotationError, Timing,
};
use serde_json::{Value, json};
use test_node::DaemonProcess;
use x509_parser::prelude::FromDer;

const TOKEN: &str = "abcdef.0123456789abcdef";
const NODE: &str = "node1";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn mock(approval: CsrApproval, short_lived: bool) -> MockApiServer {
    let csr = if short_lived {
        // Lifetimes of seconds, not backdated, so renewal happens within the test.
        CsrSettings { approval, min_expiration_seconds: 5, backdate: Duration::ZERO, ..CsrSettings::default() }
    } else {
        CsrSettings { approval, ..CsrSettings::default() }
    };
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod1", "namespace": "default"},
                     "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}});
    MockApiServer::start(MockConfig {
        tls: true,
        token: Some(TOKEN.into()),
        seed: vec![pod],
        csr,
        ..MockConfig::default()
    })
    .await
    .expect("kube-mock starts")
}

/// The kubelet's kubeconfig (client certificate `system:node:node1`), as Multus deployments
/// use for `bootstrapKubeconfig`.
fn write_kubelet_bootstrap(server: &MockApiServer, dir: &Path) -> PathBuf {
    let kubelet = server
        .issue_client_certificate(&format!("system:node:{NODE}"), Some("system:nodes"), Duration::from_secs(3600))
        .unwrap();
    let path = dir.join("bootstrap.kubeconfig");
    std::fs::write(&path, server.kubeconfig_yaml_with_client_certificate(&kubelet)).unwrap();
    path
}

fn manager_config(dir: &Path, bootstrap: PathBuf, cert_duration: Duration) -> CertManagerConfig {
    CertManagerConfig {
        node_name: NODE.into(),
        bootstrap_kubeconfig: bootstrap,
        cert_dir: dir.join("certs"),
        cert_duration,
        timing: Timing {
            startup_wait: Duration::from_secs(30),
            csr_wait: Duration::from_secs(20),
            ..Timing::for_duration(cert_duration)
        },
    }
}

async fn client_from_yaml(yaml: &str) -> kube::Client {
    install_crypto();
    let kubeconfig = Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn stored_pair(dir: &Path) -> ClientCertificate {
    let pair = std::fs::read_to_string(dir.join("certs").join(CURRENT_FILE)).expect("the current pair is stored");
    ClientCertificate::from_pair_pem(&pair).expect("a usable pair")
}

/// Users of the API requests in the journal that match `path_part`.
fn users_of(server: &MockApiServer, path_part: &str) -> Vec<String> {
    server.journal().into_iter().filter(|e| e.path.contains(path_part)).filter_map(|e| e.user).collect()
}

/// Subject CN and O of the PEM CSR in a stored CSR object, and whether its key is ECDSA P-256.
fn request_subject(csr: &Value) -> (String, Vec<String>, bool) {
    let pem = serde_json::from_value::<k8s_openapi::ByteString>(csr["spec"]["request"].clone()).unwrap().0;
    let der = rustls::pki_types::CertificateSigningRequestDer::from(
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents,
    );
    let (_, request) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    let info = &request.certification_request_info;
    let cn = info.subject.iter_common_name().next().unwrap().as_str().unwrap().to_string();
    let orgs = info.subject.iter_organization().map(|o| o.as_str().unwrap().to_string()).collect();
    let spki = &info.subject_pki;
    let ec_p256 = spki.algorithm.algorithm.to_id_string() == "1.2.840.10045.2.1"
        && spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string())
            == Some("1.2.840.10045.3.1.7".to_string());
    (cn, orgs, ec_p256)
}

async fn list_pods(client: kube::Client) -> Result<usize, kube::Error> {
    Api::<Pod>::all(client).list(&ListParams::default()).await.map(|l| l.items.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_files_the_go_csr_and_authenticates_with_the_certificate() {
    let server = mock(CsrApproval::MultusCertApprover, false).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_kubelet_bootstrap(&server, dir.path());
    let manager = CertManager::start(manager_config(dir.path(), bootstrap, Duration::from_secs(600))).await.unwrap();

    let csrs = server.csrs();
    assert_eq!(csrs.len(), 1, "{csrs:#?}");
    let csr = &csrs[0];
    assert!(csr["metadata"]["name"].as_str().unwrap().starts_with("csr-"));
    assert_eq!(csr["spec"]["signerName"], "kubernetes.io/kube-apiserver-client");
    assert_eq!(csr["spec"]["usages"], json!(["digital signature", "client auth"]));
    assert_eq!(csr["spec"]["expirationSeconds"], 600);
    assert_eq!(csr["spec"]["username"], "system:node:node1");
    let (cn, orgs, ec_p256) = request_subject(csr);
    assert_eq!((cn.as_str(), orgs), ("system:multus:node1", vec!["system:multus".to_string()]));
    assert!(ec_p256, "the key is ECDSA P-256 like client-go's");
    assert_eq!(csr["status"]["conditions"][0]["type"], "Approved");

    // client-go's store: the current link points at a timestamped pair (certificate, then key).
    let current = dir.path().join("certs").join(CURRENT_FILE);
    let target = std::fs::read_link(&current).expect("multus-client-current.pem is a symlink");
    assert!(target.to_str().unwrap().starts_with("multus-client-2"), "{target:?}");
    let pair = std::fs::read_to_string(&current).unwrap();
    assert!(pair.starts_with("-----BEGIN CERTIFICATE-----") && pair.contains("PRIVATE KEY-----"));
    let stored = stored_pair(dir.path());
    assert_eq!(stored.common_name, "system:multus:node1");
    assert_eq!(stored.serial, manager.current().serial);
    assert_eq!(manager.current().generation, 1);

    // The daemon's client authenticates as system:multus:node1.
    server.clear_journal();
    assert_eq!(list_pods(manager.client()).await.unwrap(), 1);
    assert_eq!(users_of(&server, "/pods"), vec!["system:multus:node1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_stored_certificate_without_a_new_csr() {
    let server = mock(CsrApproval::ApproveAll, false).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_kubelet_bootstrap(&server, dir.path());
    let config = manager_config(dir.path(), bootstrap, Duration::from_secs(600));
    let first = CertManager::start(config.clone()).await.unwrap();
    let serial = first.current().serial;
    drop(first);

    let restarted = CertManager::start(config).await.unwrap();
    assert_eq!(restarted.current().serial, serial);
    assert_eq!(server.csrs().len(), 1, "no second CSR");
    assert_eq!(list_pods(restarted.client()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_and_the_expired_one_is_refused() {
    let server = mock(CsrApproval::MultusCertApprover, true).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_kubelet_bootstrap(&server, dir.path());
    let lifetime = Duration::from_secs(20);
    let mut config = manager_config(dir.path(), bootstrap, lifetime);
    // Accelerated: renew at 30–40 % of the lifetime (Go: 70–90 %), retry after 1 s.
    config.timing.rotation_fraction = (0.3, 0.4);
    config.timing.retry_initial = Duration::from_secs(1);
    config.timing.reload_interval = Duration::from_secs(1);
    let manager = CertManager::start(config).await.unwrap();
    let first = stored_pair(dir.path());
    let first_link = std::fs::read_link(dir.path().join("certs").join(CURRENT_FILE)).unwrap();
    let client = manager.client();

    // A watch opened with the first certificate, kept across renewals.
    let pods: Api<Pod> = Api::all(client.clone());
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(kube::runtime::watcher(pods, Default::default()));
        while let Some(event) = events.next().await {
            if let Ok(kube::runtime::watcher::Event::Apply(pod) | kube::runtime::watcher::Event::InitApply(pod)) = event
            {
                let _ = seen_tx.send(pod.metadata.name.unwrap_or_default());
            }
        }
    });
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await.unwrap().as_deref(), Some("pod1"));

    // Renewed (bounded wait: the lifetime plus a margin), with the current certificate.
    let mut changes = manager.subscribe();
    tokio::time::timeout(lifetime * 3, changes.wait_for(|info| info.generation >= 2))
        .await
        .expect("renewed within three lifetimes")
        .unwrap();
    assert_ne!(manager.current().serial, first.serial);
    assert_ne!(std::fs::read_link(dir.path().join("certs").join(CURRENT_FILE)).unwrap(), first_link);
    let csrs = server.csrs();
    assert!(csrs.len() >= 2);
    assert_eq!(
        csrs.iter().filter(|c| c["spec"]["username"] == "system:node:node1").count(),
        1,
        "only the first with the bootstrap identity"
    );
    assert!(csrs.iter().any(|c| c["spec"]["username"] == "system:multus:node1"));

    // Once the first certificate has expired the API server refuses it…
    if let Ok(left) = first.not_after.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(1500)).await;
    }
    let expired = IssuedCertificate { certificate_pem: first.certificate_pem.clone(), key_pem: first.key_pem.clone() };
    let with_expired = client_from_yaml(&server.kubeconfig_yaml_with_client_certificate(&expired)).await;
    let refused = list_pods(with_expired).await.unwrap_err();
    assert!(matches!(&refused, kube::Error::Api(s) if s.code == 401), "{refused:?}");

    // …while the daemon's client keeps working, the old watch included.
    assert_eq!(list_pods(client.clone()).await.unwrap(), 1);
    let pod2 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod2", "namespace": "default"},
                      "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}});
    server.store().create(pod2).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some(name)) if name == "pod2" => break,
            Ok(Some(_)) => {}
            other => panic!("the watch did not see pod2: {other:?}"),
        }
    }
    watch.abort();
    // The watch opened with the first certificate was closed when it was replaced and opened
    // again with a newer one (the API server checks certificates when a request starts).
    let watches = server
        .journal()
        .into_iter()
        .filter(|e| e.path == "/api/v1/pods" && e.query.as_deref().is_some_and(|q| q.contains("watch=true")))
        .count();
    assert!(watches >= 2, "the pod watch was not re-established: {watches} watch request(s)");
    // Every authenticated request came from the node's certificates or the kubelet's.
    let users = users_of(&server, "/");
    assert!(users.iter().all(|u| u == "system:multus:node1" || u == "system:node:node1"), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_csr_is_a_clear_startup_error_after_the_bounded_wait() {
    let server = mock(CsrApproval::MultusCertApprover, false).await;
    let dir = tempfile::tempdir().unwrap();
    // The bootstrap token's user is not a node: Multus' cert-approver denies the request.
    let bootstrap = dir.path().join("bootstrap.kubeconfig");
    server.write_kubeconfig(&bootstrap).unwrap();
    let mut config = manager_config(dir.path(), bootstrap, Duration::from_secs(600));
    config.timing.startup_wait = Duration::from_secs(3);
    config.timing.retry_initial = Duration::from_secs(1);
    let err = CertManager::start(config).await.err().expect("startup fails");
    match &err {
        CertError::NotIssued { common_name, last: RotationError::Denied { reason, message, .. }, .. } => {
            assert_eq!(common_name, "system:multus:node1");
            assert_eq!(reason, "CSRDenied");
            assert!(message.contains("unexpected user"), "{message}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("no client certificate for system:multus:node1 after waiting"), "{text}");
    assert!(text.contains("was denied"), "{text}");
    assert!(!dir.path().join("certs").join(CURRENT_FILE).exists());
    assert!(!server.csrs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_kubeconfig_is_read_again_after_an_unknown_authority() {
    let server = mock(CsrApproval::ApproveAll, false).await;
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(write_kubelet_bootstrap(&server, dir.path())).unwrap();
    // A kubeconfig for this server that trusts another CA (another mock's): the API server's
    // certificate is unknown to it.
    let other = mock(CsrApproval::Manual, false).await;
    let kubelet =
        server.issue_client_certificate("system:node:node1", Some("system:nodes"), Duration::from_secs(3600)).unwrap();
    let stale = other.kubeconfig_yaml_with_client_certificate(&kubelet).replace(&other.url(), &server.url());
    assert!(stale.contains(&server.url()) && !stale.contains(&other.url()));
    let bootstrap = dir.path().join("bootstrap.kubeconfig");
    std::fs::write(&bootstrap, &stale).unwrap();
    let mut config = manager_config(dir.path(), bootstrap.clone(), Duration::from_secs(600));
    config.timing.retry_initial = Duration::from_secs(1);
    let starting = tokio::spawn(CertManager::start(config));
    // The first attempt fails at the TLS handshake; the CA on disk is then fixed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.csrs().is_empty());
    std::fs::write(&bootstrap, &good).unwrap();
    let manager = starting.await.unwrap().expect("started with the re-read kubeconfig");
    assert_eq!(server.csrs().len(), 1);
    assert_eq!(list_pods(manager.client()).await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// the daemon binary

/// A daemon config in `dir` (auto mode, one primary network) with `per_node` as
/// `perNodeCertificate`.
fn write_daemon_config(dir: &Path, per_node: Value) -> PathBuf {
    for sub in ["net.d", "run", "cni"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("net.d/10-cluster.conf"),
        json!({"cniVersion": "1.0.0", "name": "cluster", "type": "bridge"}).to_string(),
    )
    .unwrap();
    let p = |rel: &str| dir.join(rel).to_string_lossy().into_owned();
    let config = json!({
        "cniVersion": "1.0.0",
        "logLevel": "debug",
        "logToStderr": true,
        "cniConfigDir": p("net.d"),
        "multusAutoconfigDir": p("net.d"),
        "socketDir": p("run"),
        "daemonSocketDir": p("run"),
        "cniDir": p("cni"),
        "perNodeCertificate": per_node,
    });
    let path = dir.join("daemon-config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn daemon_command(config: &Path, node: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multus-daemon"));
    command
        .arg("-config")
        .arg(config)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KUBECONFIG")
        .env_remove("MULTUS_NODE_NAME");
    if let Some(node) = node {
        command.env("MULTUS_NODE_NAME", node);
    }
    command
}

/// Runs the daemon until it exits (bounded): exit code and stderr.
fn run_to_exit(command: Command) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = DaemonProcess::spawn(command, &dir.path().join("stderr")).expect("multus-daemon starts");
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("multus-daemon did not stop");
    (status.code().unwrap_or(-1), daemon.log())
}

#[test]
fn incomplete_settings_stop_the_daemon_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.kubeconfig");
    let certs = dir.path().join("certs").to_string_lossy().into_owned();
    let cases = [
        (json!({"enabled": true, "certDir": certs}), Some(NODE), "perNodeCertificate.bootstrapKubeconfig is required"),
        (
            json!({"enabled": true, "bootstrapKubeconfig": bootstrap}),
            Some(NODE),
            "perNodeCertificate.certDir is required",
        ),
        (json!({"enabled": true, "bootstrapKubeconfig": bootstrap, "certDir": certs}), None, "MULTUS_NODE_NAME"),
        (
            json!({"enabled": true, "bootstrapKubeconfig": bootstrap, "certDir": certs, "certDuration": "10 minutes"}),
            Some(NODE),
            "perNodeCertificate.certDuration \"10 minutes\"",
        ),
        (
            json!({"enabled": true, "bootstrapKubeconfig": bootstrap, "certDir": certs}),
            Some(NODE),
            "failed to load bootstrap kubeconfig",
        ),
    ];
    for (per_node, node, expected) in cases {
        let config = write_daemon_config(dir.path(), per_node.clone());
        let (code, stderr) = run_to_exit(daemon_command(&config, node));
        assert_eq!(code, 3, "{per_node}: {stderr}");
        assert!(stderr.contains(expected), "{per_node}: expected {expected:?} in:\n{stderr}");
    }
}

#[test]
fn the_daemon_serves_with_its_per_node_certificate() {
    let server = MockApiServer::start_blocking(MockConfig {
        tls: true,
        token: Some(TOKEN.into()),
        csr: CsrSettings { approval: CsrApproval::MultusCertApprover, ..CsrSettings::default() },
        ..MockConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_kubelet_bootstrap(&server, dir.path());
    let certs = dir.path().join("certs");
    let config = write_daemon_config(
        dir.path(),
        json!({"enabled": true, "bootstrapKubeconfig": bootstrap, "certDir": certs, "certDuration": "10m"}),
    );
    let mut daemon = DaemonProcess::spawn(daemon_command(&config, Some(NODE)), &dir.path().join("daemon.log"))
        .expect("multus-daemon starts");
    daemon
        .wait_ready(&dir.path().join("run/multus.sock"), None, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(certs.join(CURRENT_FILE).exists());
    let csrs = server.csrs();
    assert_eq!(csrs.len(), 1);
    assert_eq!(csrs[0]["spec"]["username"], "system:node:node1");
    // The watch caches list and watch as the node's Multus identity.
    let users = users_of(&server, "/pods");
    assert!(!users.is_empty() && users.iter().all(|u| u == "system:multus:node1"), "{users:?}");
    let nad_users = users_of(&server, "network-attachment-definitions");
    assert!(!nad_users.is_empty() && nad_users.iter().all(|u| u == "system:multus:node1"), "{nad_users:?}");
}
