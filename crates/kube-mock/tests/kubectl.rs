//! The `kube-mock` binary driven by a real kubectl, as a user would against a cluster.
//! Skips (with a message) when kubectl is not installed.

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
fn kubectl_works_against_the_binary() {
    if !kubectl_available() {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
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
fn kubectl_over_tls_with_a_token() {
    if !kubectl_available() {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
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
fn kubectl_with_a_client_certificate_files_and_approves_csrs() {
    use base64::Engine as _;
    if !kubectl_available() {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
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
