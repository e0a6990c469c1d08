//! multusctl against an API server: kube-mock (TLS, token) seeded with the fixtures' pods and
//! NADs. What `explain` says from the API is exactly what it says offline from the same files;
//! `lint` reads the NADs and pods of a namespace; `attachments` asks whether the pods exist.

mod common;

use common::{fixtures, multusctl, node_args, redact};
use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};
use std::path::PathBuf;

struct Cluster {
    _server: MockApiServer,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

fn cluster() -> Cluster {
    let mut seed: Vec<Value> = ["demo", "other"]
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    seed.extend(kube_mock::seed::load_path(&fixtures().join("nads")).unwrap());
    seed.extend(kube_mock::seed::load_path(&fixtures().join("pods")).unwrap());
    // The pod of the fixture cache's corrupt attachment, recreated under a new UID.
    seed.push(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "recreated", "namespace": "demo", "uid": "cccccccc-1111-1111-1111-111111111111"},
        "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "registry.invalid/app"}]}
    }));
    let server = MockApiServer::start_blocking(MockConfig {
        tls: true,
        token: Some("multusctl".into()),
        seed,
        ..Default::default()
    })
    .expect("kube-mock");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    Cluster { _server: server, _dir: dir, kubeconfig }
}

fn with_kubeconfig(c: &Cluster, args: &[&str]) -> common::Run {
    let mut all = vec!["--kubeconfig".to_string(), c.kubeconfig.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    multusctl(&all)
}

#[test]
fn explain_from_the_api_server_matches_the_offline_explanation() {
    let c = cluster();
    let fx = fixtures();
    for pod in ["second-missing", "two-nets", "clash"] {
        let mut api_args = vec!["explain", pod, "-n", "demo"];
        let node = node_args();
        api_args.extend(node.iter().map(String::as_str));
        let from_api = with_kubeconfig(&c, &api_args);
        let (pods, nads) = (fx.join("pods").display().to_string(), fx.join("nads").display().to_string());
        let mut offline_args = vec!["explain", pod, "-n", "demo", "-f", &pods, "--nads", &nads];
        offline_args.extend(node.iter().map(String::as_str));
        let offline = multusctl(&offline_args);
        assert_eq!(from_api.stdout, offline.stdout, "{pod}: stderr {}", from_api.stderr);
        assert_eq!(from_api.code, offline.code, "{pod}");
    }
    // The demo's case: the second network is missing, and the reason is on the result line.
    let mut args = vec!["explain", "demo/second-missing"];
    let node = node_args();
    args.extend(node.iter().map(String::as_str));
    let run = with_kubeconfig(&c, &args);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("Result: FAILS — demo/missing-net: no NetworkAttachmentDefinition demo/missing-net"),
        "{}",
        run.stdout
    );
    let run = with_kubeconfig(&c, &["explain", "nope", "-n", "demo"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("pod demo/nope not found"), "{}", run.stderr);
}

#[test]
fn lint_reads_nads_and_pods_from_the_api_server() {
    let c = cluster();
    let mut args = vec!["lint", "-n", "demo", "--pods"];
    let node = node_args();
    args.extend(node.iter().map(String::as_str));
    let run = with_kubeconfig(&c, &args);
    assert_eq!(run.code, 1, "{run:?}");
    insta::assert_snapshot!(redact(&run.stdout, &[]));
}

#[test]
fn attachments_know_which_pods_are_gone() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .args(["-r", &format!("{}/.", fixtures().join("cni-dir").display()), &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(copy.success());
    let run = with_kubeconfig(&c, &["-o", "json", "attachments", "--cni-dir", &dir.path().display().to_string()]);
    assert_eq!(run.code, 1, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let states: Vec<(String, Value)> = report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["pod"]["name"].as_str().unwrap().to_string(), a["podState"].clone()))
        .collect();
    assert_eq!(
        states,
        [
            ("gone".to_string(), json!({"state": "gone"})),
            ("recreated".to_string(), json!({"state": "replaced", "uid": "cccccccc-1111-1111-1111-111111111111"})),
            ("two-nets".to_string(), json!({"state": "exists"})),
        ]
    );
    assert!(report.get("notes").is_none(), "{report}");
}
