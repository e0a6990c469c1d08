//! The `kube-mock` binary driven by a real kubectl, as a user would against a cluster.
//! `#[ignore = "needs kubectl"]`: run with `-- --include-ignored` (CI and `cargo xtask test`
//! do); they fail, rather than pass, when kubectl is missing.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the child process by PID when dropped, so a failing test leaves nothing behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl_available() -> bool {
    Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Starts the binary and returns it with the URL from its first stdout line.
fn start_mock(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-mock"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kube-mock starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).expect("first line");
    let url = first_line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
    (running, url.to_string())
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(&self.cache).args(args);
        command
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}");
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("kubectl printed JSON")
    }
}

fn nad_manifest(kind_of_bridge: &str) -> String {
    format!(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: kubectl-net\n  namespace: default\nspec:\n  config: '{{\"cniVersion\":\"1.0.0\",\"name\":\"kubectl-net\",\"type\":\"{kind_of_bridge}\"}}'\n"
    )
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_works_against_the_binary() {
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let seed = fixtures().join("seed");
    let (_mock, url) =
        start_mock(&["--seed", seed.to_str().unwrap(), "--kubeconfig-out", kubeconfig.to_str().unwrap()]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let kubectl = Kubectl { kubeconfig, cache: dir.path().join("cache") };

    // create, apply (unchanged), apply (edited): no --validate=false anywhere.
    let manifest = dir.path().join("nad.yaml");
    std::fs::write(&manifest, nad_manifest("bridge")).unwrap();
    let file = manifest.to_str().unwrap();
    assert!(kubectl.ok(&["create", "-f", file]).contains("created"));
    assert!(kubectl.ok(&["apply", "-f", file]).contains("kubectl-net"));
    std::fs::write(&manifest, nad_manifest("macvlan")).unwrap();
    assert!(kubectl.ok(&["apply", "-f", file]).contains("configured"));
    let nad = kubectl.json(&["get", "net-attach-def", "kubectl-net", "-o", "json"]);
    assert!(nad["spec"]["config"].as_str().unwrap().contains("macvlan"));
    assert!(nad["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

    let nads = kubectl.json(&["get", "net-attach-def", "-A", "-o", "json"]);
    assert_eq!(nads["items"].as_array().unwrap().len(), 5);
    assert!(kubectl.ok(&["get", "nad", "-A"]).contains("macvlan-net"));

    let on_node1 = kubectl.ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=node1"]);
    assert!(on_node1.contains("pod1") && !on_node1.contains("pod-othernode"), "{on_node1}");

    // A core type through apply: created, then a strategic merge patch.
    let pod_manifest = dir.path().join("pod.yaml");
    let pod = |image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: applied\n  namespace: default\nspec:\n  nodeName: node1\n  containers:\n  - name: c\n    image: {image}\n"
        )
    };
    std::fs::write(&pod_manifest, pod("busybox")).unwrap();
    kubectl.ok(&["apply", "-f", pod_manifest.to_str().unwrap()]);
    std::fs::write(&pod_manifest, pod("nginx")).unwrap();
    assert!(kubectl.ok(&["apply", "-f", pod_manifest.to_str().unwrap()]).contains("configured"));
    assert_eq!(kubectl.ok(&["get", "pod", "applied", "-o", "jsonpath={.spec.containers[0].image}"]), "nginx");

    kubectl.ok(&["annotate", "pod", "pod1", "example.com/note=hello"]);
    kubectl.ok(&["patch", "pod", "pod1", "--type", "merge", "-p", r#"{"metadata":{"labels":{"merge":"yes"}}}"#]);
    kubectl.ok(&[
        "patch",
        "pod",
        "pod1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ]);
    kubectl.ok(&[
        "patch",
        "pod",
        "pod1",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"containers":[{"name":"c","image":"alpine"}]}}"#,
    ]);
    let pod1 = kubectl.json(&["get", "pod", "pod1", "-o", "json"]);
    assert_eq!(pod1["metadata"]["annotations"]["example.com/note"], "hello");
    assert_eq!(pod1["metadata"]["labels"]["merge"], "yes");
    assert_eq!(pod1["metadata"]["labels"]["json"], "yes");
    assert_eq!(pod1["spec"]["containers"][0]["image"], "alpine");
    kubectl.ok(&["patch", "nad", "kubectl-net", "--type", "merge", "-p", r#"{"metadata":{"labels":{"x":"y"}}}"#]);

    // get -w shows a change made meanwhile.
    let mut watch = Running(
        kubectl
            .command(&["get", "pods", "-w", "--request-timeout=20s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut watch_out = watch.0.stdout.take().unwrap();
    let (listed_tx, listed_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buffer = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(15);
        // Initial list (header + 9 pods), then the label change shows pod0 once more.
        while Instant::now() < deadline && seen.matches("pod0").count() < 2 {
            match watch_out.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
                    if seen.contains("pod0") {
                        let _ = listed_tx.send(());
                    }
                }
            }
        }
        seen
    });
    // Change pod0 only once the initial list has been printed, so the change comes by watch.
    listed_rx.recv_timeout(Duration::from_secs(15)).expect("kubectl get -w printed the initial list");
    std::thread::sleep(Duration::from_millis(200));
    kubectl.ok(&["label", "pod", "pod0", "changed=yes"]);
    let seen = reader.join().unwrap();
    drop(watch);
    assert!(seen.contains("NAME"), "{seen}");
    assert_eq!(seen.matches("pod0").count(), 2, "watch output:\n{seen}");

    assert!(kubectl.ok(&["delete", "nad", "kubectl-net"]).contains("deleted"));
    assert!(kubectl.ok(&["delete", "pod", "pod0"]).contains("deleted"));
    assert!(!kubectl.ok(&["get", "pods"]).contains("pod0 "));
    let missing = kubectl.command(&["get", "pod", "pod0"]).output().unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("pods \"pod0\" not found"));
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_over_tls_with_a_token() {
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let in_cluster = dir.path().join("serviceaccount");
    let (_mock, url) = start_mock(&[
        "--tls",
        "--token",
        "sekret",
        "--kubeconfig-out",
        kubeconfig.to_str().unwrap(),
        "--in-cluster-dir",
        in_cluster.to_str().unwrap(),
    ]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(std::fs::read_to_string(in_cluster.join("token")).unwrap(), "sekret");
    assert!(std::fs::read_to_string(in_cluster.join("ca.crt")).unwrap().contains("BEGIN CERTIFICATE"));
    let kubectl = Kubectl { kubeconfig, cache: dir.path().join("cache") };
    assert!(kubectl.ok(&["get", "namespaces"]).contains("kube-system"));
    assert!(kubectl.ok(&["get", "crd"]).contains("network-attachment-definitions.k8s.cni.cncf.io"));

    // The in-cluster files work the way a pod's service account does.
    let output = Command::new("kubectl")
        .args(["--server", &url, "--certificate-authority"])
        .arg(in_cluster.join("ca.crt"))
        .arg("--token")
        .arg(std::fs::read_to_string(in_cluster.join("token")).unwrap())
        .args(["--cache-dir", dir.path().join("cache2").to_str().unwrap(), "get", "pods", "-n", "default"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_with_a_client_certificate_files_and_approves_csrs() {
    use base64::Engine as _;
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubelet-kc");
    let (_mock, _url) = start_mock(&[
        "--tls",
        "--token",
        "sekret",
        "--client-cert-kubeconfig-out",
        kubeconfig.to_str().unwrap(),
        "--client-cert-subject",
        "system:node:node1/system:nodes",
    ]);
    // client-go (inside kubectl) authenticates with the certificate: no token in this file.
    let kubectl = Kubectl { kubeconfig, cache: dir.path().join("cache") };
    assert!(kubectl.ok(&["get", "namespaces"]).contains("kube-system"));

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:multus");
    params.distinguished_name.push(rcgen::DnType::CommonName, "system:multus:node1");
    let request =
        base64::engine::general_purpose::STANDARD.encode(params.serialize_request(&key).unwrap().pem().unwrap());
    let manifest = dir.path().join("csr.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: multus-node1\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 600\n  usages: [digital signature, client auth]\n"
        ),
    )
    .unwrap();
    kubectl.ok(&["create", "-f", manifest.to_str().unwrap()]);
    let listed = kubectl.ok(&["get", "csr"]);
    assert!(
        listed.contains("multus-node1") && listed.contains("system:node:node1") && listed.contains("Pending"),
        "{listed}"
    );

    kubectl.ok(&["certificate", "approve", "multus-node1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let certificate = loop {
        let csr = kubectl.json(&["get", "csr", "multus-node1", "-o", "json"]);
        if let Some(certificate) = csr["status"]["certificate"].as_str() {
            break certificate.to_string();
        }
        assert!(Instant::now() < deadline, "not issued: {csr}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pem = base64::engine::general_purpose::STANDARD.decode(certificate).unwrap();
    assert!(String::from_utf8(pem).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(kubectl.ok(&["get", "csr"]).contains("Approved,Issued"));
}

impl Kubectl {
    /// Runs kubectl expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("kubectl runs");
        assert!(!output.status.success(), "kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `kubectl create -f` of a manifest written to `dir`.
    fn create(&self, dir: &Path, file: &str, manifest: &str) -> String {
        let path = dir.join(file);
        std::fs::write(&path, manifest).unwrap();
        self.ok(&["create", "-f", path.to_str().unwrap()])
    }
}

fn daemonset_yaml(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - {{name: c, image: busybox}}\n"
    )
}

/// Pods of the DaemonSet `owner`, as its controller would create them (the mock has none).
fn create_daemon_pods(kubectl: &Kubectl, dir: &Path, owner: &str, namespace: &str, pods: &[&str]) {
    let uid = kubectl.ok(&["-n", namespace, "get", "ds", owner, "-o", "jsonpath={.metadata.uid}"]);
    assert!(!uid.is_empty());
    for pod in pods {
        kubectl.create(
            dir,
            &format!("{pod}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: {namespace}\n  labels: {{app: {owner}}}\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: DaemonSet, name: {owner}, uid: {uid}, controller: true, blockOwnerDeletion: true}}\nspec:\n  nodeName: node1\n  containers:\n  - {{name: c, image: busybox}}\n"
            ),
        );
    }
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_deletes_daemonsets_with_each_cascade() {
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    // The stand-in kubelet takes 1.5 s to finish a terminating pod.
    let (_mock, _url) =
        start_mock(&["--kubeconfig-out", kubeconfig.to_str().unwrap(), "--kubelet-delete-after-ms", "1500"]);
    let kubectl = Kubectl { kubeconfig, cache: dir.path().join("cache") };
    for ds in ["bg", "fg", "or"] {
        kubectl.create(dir.path(), &format!("{ds}.yaml"), &daemonset_yaml(ds, "default"));
        create_daemon_pods(&kubectl, dir.path(), ds, "default", &[&format!("{ds}-a"), &format!("{ds}-b")]);
    }

    // Default (background): the DaemonSet is gone at once, its pods are terminating, then gone.
    assert!(kubectl.ok(&["delete", "ds", "bg"]).contains("daemonset.apps \"bg\" deleted"));
    assert!(kubectl.fails(&["get", "ds", "bg"]).contains("daemonsets.apps \"bg\" not found"));
    let pod = kubectl.json(&["get", "pod", "bg-a", "-o", "json"]);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    kubectl.ok(&["wait", "--for=delete", "pod/bg-a", "pod/bg-b", "--timeout=15s"]);

    // Foreground: the DaemonSet stays (deletionTimestamp, foregroundDeletion) until its pods are gone.
    kubectl.ok(&["delete", "ds", "fg", "--cascade=foreground", "--wait=false"]);
    let ds = kubectl.json(&["get", "ds", "fg", "-o", "json"]);
    assert!(ds["metadata"]["deletionTimestamp"].is_string(), "{ds}");
    assert_eq!(ds["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]));
    assert!(kubectl.json(&["get", "pod", "fg-a", "-o", "json"])["metadata"]["deletionTimestamp"].is_string());
    kubectl.ok(&["wait", "--for=delete", "ds/fg", "--timeout=15s"]);
    assert!(kubectl.fails(&["get", "pod", "fg-a"]).contains("not found"));

    // Orphan: the pods stay, without their owner reference.
    assert!(kubectl.ok(&["delete", "ds", "or", "--cascade=orphan"]).contains("deleted"));
    assert!(kubectl.fails(&["get", "ds", "or"]).contains("not found"));
    let pod = kubectl.json(&["get", "pod", "or-a", "-o", "json"]);
    assert!(pod["metadata"]["ownerReferences"].is_null() && pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");

    // --grace-period=0 --force removes a pod at once; a plain delete waits for the kubelet.
    kubectl.ok(&["delete", "pod", "or-a", "--grace-period=0", "--force"]);
    assert!(kubectl.fails(&["get", "pod", "or-a"]).contains("not found"));
    let started = Instant::now();
    kubectl.ok(&["delete", "pod", "or-b"]);
    assert!(started.elapsed() >= Duration::from_millis(1000), "kubectl waited for the kubelet");
    assert!(kubectl.fails(&["get", "pod", "or-b"]).contains("not found"));
}

const MANIFEST: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: network-attachment-definitions.k8s.cni.cncf.io
spec:
  group: k8s.cni.cncf.io
  scope: Namespaced
  names:
    plural: network-attachment-definitions
    singular: network-attachment-definition
    kind: NetworkAttachmentDefinition
    shortNames: [net-attach-def]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {config: {type: string}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: multus
rules:
- apiGroups: [k8s.cni.cncf.io]
  resources: ["*"]
  verbs: ["*"]
- apiGroups: [""]
  resources: [pods, pods/status]
  verbs: [get, list, watch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: multus
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: multus
subjects:
- kind: ServiceAccount
  name: multus
  namespace: kube-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: multus
  namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-multus-ds
  namespace: kube-system
spec:
  selector:
    matchLabels: {name: multus}
  template:
    metadata:
      labels: {name: multus}
    spec:
      serviceAccountName: multus
      containers:
      - {name: kube-multus, image: multus-rs:dev}
"#;

#[test]
#[ignore = "needs kubectl"]
fn kubectl_delete_f_takes_the_crd_rbac_service_account_and_daemonset() {
    assert!(kubectl_available(), "this test needs kubectl");
    let dir = tempfile::tempdir().unwrap();
    let (sa_kubeconfig, admin_kubeconfig) = (dir.path().join("sa-kc"), dir.path().join("admin-kc"));
    let (_mock, _url) = start_mock(&[
        "--tls",
        "--token",
        "daemon-token",
        "--enforce-rbac",
        "--kubeconfig-out",
        sa_kubeconfig.to_str().unwrap(),
        "--client-cert-kubeconfig-out",
        admin_kubeconfig.to_str().unwrap(),
        "--client-cert-subject",
        "kube-admin/system:masters",
    ]);
    let admin = Kubectl { kubeconfig: admin_kubeconfig, cache: dir.path().join("cache") };
    // The token is the multus ServiceAccount's, whose rights RBAC decides.
    let daemon = Kubectl { kubeconfig: sa_kubeconfig, cache: dir.path().join("cache-sa") };
    let manifest = dir.path().join("multus.yml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let manifest = manifest.to_str().unwrap();
    admin.ok(&["apply", "-f", manifest]);
    create_daemon_pods(&admin, dir.path(), "kube-multus-ds", "kube-system", &["kube-multus-ds-a"]);
    admin.create(
        dir.path(),
        "nad.yaml",
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: net, namespace: default}\nspec: {config: '{}'}\n",
    );

    assert!(daemon.ok(&["get", "net-attach-def", "-A"]).contains("net"));
    daemon.ok(&["-n", "kube-system", "get", "pods"]);
    let refused = daemon.fails(&["get", "configmaps", "-A"]);
    assert!(
        refused.contains(
            "User \"system:serviceaccount:kube-system:multus\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope"
        ),
        "{refused}"
    );
    // kubectl create token: a TokenRequest.
    let token = admin.ok(&["-n", "kube-system", "create", "token", "multus"]);
    assert_eq!(token.trim().split('.').count(), 3, "{token}");

    let deleted = admin.ok(&["delete", "-f", manifest]);
    for what in [
        "customresourcedefinition.apiextensions.k8s.io \"network-attachment-definitions.k8s.cni.cncf.io\" deleted",
        "clusterrole.rbac.authorization.k8s.io \"multus\" deleted",
        "clusterrolebinding.rbac.authorization.k8s.io \"multus\" deleted",
        "serviceaccount \"multus\" deleted",
        "daemonset.apps \"kube-multus-ds\" deleted",
    ] {
        assert!(deleted.contains(what), "{what} not in:\n{deleted}");
    }
    // The daemon's token died with its ServiceAccount, the NADs with their CRD, the pods
    // with their DaemonSet.
    assert!(daemon.fails(&["get", "pods", "-A"]).contains("Unauthorized"));
    // With its discovery cache kubectl still knows the resource and gets the 404 of an
    // unknown resource; with a fresh discovery it no longer knows the type.
    let nads = admin.fails(&["get", "net-attach-def", "-A"]);
    assert!(nads.contains("the server could not find the requested resource"), "{nads}");
    let fresh = Kubectl { kubeconfig: admin.kubeconfig.clone(), cache: dir.path().join("cache-fresh") };
    let nads = fresh.fails(&["get", "net-attach-def", "-A"]);
    assert!(nads.contains("the server doesn't have a resource type \"net-attach-def\""), "{nads}");
    assert!(!admin.ok(&["get", "crd"]).contains("network-attachment-definitions"));
    assert!(!admin.ok(&["-n", "kube-system", "get", "pods"]).contains("kube-multus-ds-a"));
}
