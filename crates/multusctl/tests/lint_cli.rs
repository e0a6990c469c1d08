//! `multusctl lint` on the fixtures: findings as snapshots, exit codes for CI (0 clean, 1
//! findings, 2 usage or I/O errors).

mod common;

use common::{fixtures, multusctl, node_args, redact};

fn lint(paths: &[&str], extra: &[&str]) -> common::Run {
    let fx = fixtures();
    let mut args: Vec<String> = vec!["lint".into()];
    args.extend(paths.iter().map(|p| fx.join(p).display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    multusctl(&args)
}

#[test]
fn every_finding_of_the_fixtures() {
    let node = node_args();
    let node: Vec<&str> = node.iter().map(String::as_str).collect();
    let run = lint(&["nads", "pods"], &node);
    assert_eq!(run.code, 1, "{run:?}");
    insta::assert_snapshot!("findings_table", redact(&run.stdout, &[]));
    let mut json_args = node.clone();
    json_args.splice(0..0, ["-o", "json"]);
    let run = lint(&["nads", "pods"], &json_args);
    assert_eq!(run.code, 1, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&redact(&run.stdout, &[])).unwrap();
    insta::assert_json_snapshot!("findings_json", report);
}

#[test]
fn clean_nads_exit_0() {
    let bin = fixtures().join("bin").display().to_string();
    let run = lint(&["nads/cluster.yaml", "nads/demo.yaml"], &["--bin-dir", &bin]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "5 object(s) checked: no findings\n");
}

#[test]
fn without_a_node_config_pods_get_a_stand_in_cluster_network() {
    let run = lint(&["nads", "pods/pods.yaml"], &["--no-exec", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(report["notes"][0].as_str().unwrap().starts_with("pods are planned with a stand-in cluster network"));
    let codes: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["object"].as_str().unwrap().starts_with("Pod "))
        .map(|f| (f["object"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    // Without namespaceIsolation (the stand-in has none), "isolated" is fine.
    assert_eq!(
        codes,
        [
            ("Pod demo/clash", "interface-clash"),
            ("Pod demo/second-missing", "add-fails"),
            ("Pod demo/default-route", "capability-not-declared"),
            ("Pod demo/deprecated", "deprecated-interface-request"),
            ("Pod demo/deprecated", "capability-not-declared"),
        ]
    );
}

#[test]
fn malformed_objects_are_findings_and_unreadable_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: bad-nad, namespace: x}\nspec: {config: 1}\n",
    )
    .unwrap();
    let run = multusctl(["lint", "--no-exec", &file.display().to_string()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("invalid-object"), "{}", run.stdout);
    assert!(run.stdout.contains("spec.config must be a string (of JSON), got 1"), "{}", run.stdout);

    let run = multusctl(["lint", "/nonexistent/multusctl/nads.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("/nonexistent/multusctl/nads.yaml"), "{}", run.stderr);
    std::fs::write(&file, "{ not yaml: [").unwrap();
    let run = multusctl(["lint", &file.display().to_string()]);
    assert_eq!(run.code, 2, "{run:?}");
}
