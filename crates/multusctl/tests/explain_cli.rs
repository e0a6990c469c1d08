//! `multusctl explain` on the fixtures, offline: the table and JSON outputs are snapshots, and
//! the exit code says whether the ADD goes through.

mod common;

use common::{fixtures, multusctl, node_args, redact};

/// `explain <pod> -n demo -f pods --nads nads` with the fixture node, plus `extra`.
fn explain(pod: &str, extra: &[&str]) -> common::Run {
    let fx = fixtures();
    let mut args: Vec<String> = vec!["explain".into(), pod.into(), "-n".into(), "demo".into()];
    args.extend(["-f".into(), fx.join("pods").display().to_string()]);
    args.extend(["--nads".into(), fx.join("nads").display().to_string()]);
    args.extend(node_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    multusctl(&args)
}

fn table(pod: &str, extra: &[&str], expected_code: i32) -> String {
    let run = explain(pod, extra);
    assert_eq!(run.code, expected_code, "{pod}: {run:?}");
    assert!(run.stderr.is_empty(), "{pod}: {}", run.stderr);
    redact(&run.stdout, &[])
}

fn json(pod: &str, extra: &[&str], expected_code: i32) -> serde_json::Value {
    let mut args = vec!["-o", "json"];
    args.extend_from_slice(extra);
    let run = explain(pod, &args);
    assert_eq!(run.code, expected_code, "{pod}: {run:?}");
    serde_json::from_str(&redact(&run.stdout, &[])).expect("JSON output")
}

#[test]
fn a_pod_with_two_networks() {
    insta::assert_snapshot!(table(
        "two-nets",
        &[
            "--runtime-config",
            r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000}}"#
        ],
        0
    ));
}

#[test]
fn the_second_network_is_missing() {
    let out = table("second-missing", &[], 1);
    assert!(out.contains("Result: FAILS — demo/missing-net: no NetworkAttachmentDefinition demo/missing-net"), "{out}");
    insta::assert_snapshot!(out);
    insta::assert_json_snapshot!(json("second-missing", &[], 1));
}

#[test]
fn namespace_isolation() {
    insta::assert_snapshot!(table("isolated", &[], 1));
}

#[test]
fn interface_name_clash() {
    insta::assert_snapshot!(table("clash", &[], 1));
}

#[test]
fn default_route_mac_and_ips() {
    insta::assert_snapshot!(table("default-route", &[], 0));
    insta::assert_json_snapshot!(json("default-route", &[], 0));
}

#[test]
fn device_ids_given_and_not_looked_up() {
    insta::assert_snapshot!("sriov_offline", table("sriov", &[], 0));
    let devices = fixtures().join("node/devices.json").display().to_string();
    insta::assert_snapshot!("sriov_devices", table("sriov", &["--devices", &devices, "--container-id", "0123abcd"], 0));
}

#[test]
fn deprecated_interface_request() {
    insta::assert_snapshot!(table("deprecated", &[], 0));
}

#[test]
fn a_plugin_missing_from_bin_dir() {
    insta::assert_snapshot!(table("missing-plugin", &[], 1));
}

#[test]
fn usage_errors_exit_2() {
    let run = explain("no-such-pod", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no pod no-such-pod in the files"), "{}", run.stderr);
    let run = multusctl(["explain", "some-pod"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no cluster credentials"), "{}", run.stderr);
    let run = multusctl(["explain", "-f", "/nonexistent/pod.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = multusctl(["explain", "--bogus"]);
    assert_eq!(run.code, 2, "{run:?}");
}
