//! Restart or uninstall (issue: safe to install, upgrade and remove): a stopped daemon keeps
//! `00-multus.conf` when it is expected back, and removes it when Multus is being removed from
//! the cluster (its API rights are gone), after which the node's runtime uses the primary
//! configuration directly. A SIGTERM while an ADD runs drains it before the process exits.
//! fake-cni is the primary and records its calls; only the drain test needs root (a pod netns).

use serde_json::json;
use test_node::*;

/// What a CRI runtime does: the first config of the directory (libcni's order: by name,
/// extensions .conf, .conflist, .json).
fn runtime_config(thick: &Node) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(thick.path("net.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json")))
        .collect();
    files.sort();
    files.into_iter().next().expect("a CNI config")
}

/// The node, or `None` (recorded as skipped) without the binaries.
fn start() -> Option<Node> {
    if !require(missing_bins()) {
        return None;
    }
    Some(
        NodeBuilder::default().fake_delegates(&["fake-cni"]).primary_with("10-primary.conf", primary).started().build(),
    )
}

#[test]
fn a_restart_keeps_the_config_and_an_uninstall_removes_it() {
    let Some(mut thick) = start() else { return };
    assert!(thick.multus_conf().exists());

    // Restart (rolling update, crash): the API server still knows the daemon.
    thick.stop_daemon();
    assert!(thick.multus_conf().exists(), "a restart keeps 00-multus.conf:\n{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("keeping 00-multus.conf"), "{}", thick.daemon_log());

    // Uninstall: the ServiceAccount's rights are gone (kubectl delete -f removes RBAC first).
    thick.start_daemon();
    thick.mock.set_deny_rules(vec!["*:*".parse().unwrap()]);
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "an uninstall removes 00-multus.conf:\n{}", thick.daemon_log());
    assert!(thick.path("net.d/10-primary.conf").exists(), "the primary stays");

    // The runtime's next ADD goes to the primary directly.
    let chosen = runtime_config(&thick);
    assert_eq!(chosen, thick.path("net.d/10-primary.conf"));
    let stdin = std::fs::read(&chosen).unwrap();
    let out = std::process::Command::new(bin("fake-cni").unwrap())
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "after-uninstall")
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", thick.path("bin"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&stdin)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let calls = fake_cni::read_calls(thick.path("calls"));
    assert_eq!(calls.last().map(|c| (c.command.as_str(), c.name.as_str())), Some(("ADD", "primary-net")));
}

#[test]
fn cleanup_config_on_exit_always_removes_it() {
    let Some(mut thick) = start() else { return };
    thick.stop_daemon();
    thick.daemon_config["cleanupConfigOnExit"] = json!(true);
    thick.start_daemon();
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
}

const DS_UID: &str = "d5000000-0000-0000-0000-000000000001";

/// The daemon as the manifest runs it: pod `kube-system/kube-multus-ds-x1` controlled by
/// DaemonSet `kube-system/kube-multus-ds`, its identity passed through the downward API.
/// fake-cni as the cluster network, recording its calls under the node's `calls/`.
fn primary(node: &Node) -> serde_json::Value {
    json!({"cniVersion": "1.0.0", "name": "primary-net", "type": "fake-cni",
        "fake": {"recordDir": node.path("calls").to_string_lossy()}})
}

fn start_owned() -> Option<Node> {
    if !require(missing_bins()) {
        return None;
    }
    let mut thick = Node::new(vec![]);
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-multus-ds", "namespace": "kube-system", "uid": DS_UID},
        "spec": {"selector": {"matchLabels": {"name": "multus"}},
                 "template": {"metadata": {"labels": {"name": "multus"}},
                              "spec": {"containers": [{"name": "kube-multus", "image": "multus-rs"}]}}}});
    let own_pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kube-multus-ds-x1", "namespace": "kube-system", "labels": {"name": "multus"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-multus-ds",
                                          "uid": DS_UID, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": "node1", "containers": [{"name": "kube-multus", "image": "multus-rs"}]}});
    thick.mock.store().create(ds).expect("seed the DaemonSet");
    thick.mock.store().create(own_pod).expect("seed the daemon's pod");
    thick.install_plugins(&[], &["fake-cni"]);
    thick.write_primary("10-primary.conf", &primary(&thick));
    thick.daemon_env = vec![
        ("MULTUS_POD_NAME".into(), "kube-multus-ds-x1".into()),
        ("MULTUS_POD_NAMESPACE".into(), "kube-system".into()),
    ];
    thick.start_daemon();
    wait_for_log(&thick, "following DaemonSet kube-system/kube-multus-ds");
    Some(thick)
}

fn wait_for_log(thick: &Node, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !thick.daemon_log().contains(text) {
        assert!(std::time::Instant::now() < deadline, "no {text:?} in the log:\n{}", thick.daemon_log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn delete_daemonset(thick: &Node, propagation: kube_mock::Propagation) {
    let options = kube_mock::DeleteOptions { propagation_policy: Some(propagation), ..Default::default() };
    thick.mock.store().delete_kind_with("apps/v1", "DaemonSet", "kube-system", "kube-multus-ds", &options).unwrap();
}

/// `kubectl delete ds` / a Helm uninstall / an operator: the DaemonSet goes first (Background
/// propagation), then its pods are stopped. The daemon's rights are all still there, so before
/// the owner evidence the file was kept and every later pod ADD waited 60 s and failed.
#[test]
fn deleting_only_the_daemonset_removes_the_config() {
    let Some(mut thick) = start_owned() else { return };
    delete_daemonset(&thick, kube_mock::Propagation::Background);
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("its DaemonSet kube-system/kube-multus-ds is gone"), "{}", thick.daemon_log());
}

/// `kubectl delete ds --cascade=foreground`: the DaemonSet stays with a deletionTimestamp
/// while its pods are stopped.
#[test]
fn a_foreground_deletion_of_the_daemonset_removes_the_config() {
    let Some(mut thick) = start_owned() else { return };
    thick.mock.set_kubelet_delete_after(None); // the pod stays terminating: the DaemonSet waits
    delete_daemonset(&thick, kube_mock::Propagation::Foreground);
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("is being deleted"), "{}", thick.daemon_log());
}

/// A rolling update or a deleted pod: the DaemonSet stays and brings a daemon back.
#[test]
fn deleting_the_pod_but_not_the_daemonset_keeps_the_config() {
    let Some(mut thick) = start_owned() else { return };
    thick.mock.store().delete_kind("v1", "Pod", "kube-system", "kube-multus-ds-x1").unwrap();
    thick.stop_daemon();
    assert!(thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("its DaemonSet kube-system/kube-multus-ds exists"), "{}", thick.daemon_log());
}

/// The DaemonSet is deleted, then the API server becomes unreachable before the daemon is
/// stopped: what the watch saw decides. Before, an unreachable API server always meant "keep".
#[test]
fn an_api_server_down_at_stop_still_sees_the_daemonset_gone() {
    let Some(mut thick) = start_owned() else { return };
    delete_daemonset(&thick, kube_mock::Propagation::Background);
    wait_for_log(&thick, "will remove 00-multus.conf when it is stopped");
    thick.api_down();
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("going by what its watch saw last"), "{}", thick.daemon_log());
}

/// A Helm-style uninstall that deletes the ServiceAccount first: its token gets 401.
#[test]
fn a_deleted_service_account_removes_the_config() {
    let Some(mut thick) = start_owned() else { return };
    thick.mock.store().delete_kind("v1", "ServiceAccount", "kube-system", "multus").unwrap();
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("the API server refuses the daemon (401"), "{}", thick.daemon_log());
}

/// `kubectl delete -f` of the manifest removes the CRD (and with it every NAD) first.
#[test]
fn a_deleted_crd_removes_the_config() {
    let Some(mut thick) = start_owned() else { return };
    thick
        .mock
        .store()
        .delete_kind(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "network-attachment-definitions.k8s.cni.cncf.io",
        )
        .unwrap();
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("the API server refuses the daemon (404"), "{}", thick.daemon_log());
}

/// A restart while an ADD runs (the daemon's process gets SIGTERM mid-request, as the kubelet
/// sends it): `/readyz` answers 500 at once while `/healthz` stays 200, the ADD in flight still
/// gets its result, and the daemon then exits 0, well inside its 25 s drain.
#[test]
#[ignore = "needs root (the pod's network namespace)"]
fn a_sigterm_during_an_add_drains_it_before_exiting() {
    if !require(root_skip_reason()) {
        return;
    }
    const UID: &str = "5d0c4b2a-0000-4000-8000-00000000d4a1";
    let mut thick = NodeBuilder::default()
        .fake_delegates(&["fake-cni"])
        .primary_with("10-primary.conf", |node| {
            json!({"cniVersion": "1.0.0", "name": "primary-net", "type": "fake-cni",
                "fake": {"recordDir": node.path("calls").to_string_lossy(), "sleepMs": 2000, "sleepOn": ["ADD"]}})
        })
        .seed([pod("default", "drain-pod", UID, None)])
        .started()
        .build();
    let sandbox = thick.sandbox("default", "drain-pod", UID);
    let stdin = std::fs::read(thick.multus_conf()).unwrap();
    let shim = thick.spawn_shim("ADD", &sandbox, &stdin, &[]);
    // The ADD is with the sleeping delegate once the daemon logs it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !thick.daemon_log().contains("drain-pod") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let socket = thick.socket();
    let mut daemon = thick.take_daemon().expect("the daemon");
    let sigterm = std::time::Instant::now();
    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut readyz = None;
    while sigterm.elapsed() < std::time::Duration::from_secs(1) {
        readyz = http_status(&socket, READYZ);
        if readyz == Some(500) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(readyz, Some(500), "/readyz after SIGTERM");
    assert_eq!(http_status(&socket, HEALTHZ), Some(200), "still alive while draining");
    let out = shim.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the ADD in flight is answered: {stdout}\n{}", thick.daemon_log());
    assert!(stdout.contains("\"ips\""), "with its result: {stdout}");
    let status = daemon.wait().unwrap();
    let drained = sigterm.elapsed();
    assert!(status.success(), "exit {status}\n{}", thick.daemon_log());
    assert!(drained < std::time::Duration::from_secs(25), "exited {drained:?} after SIGTERM");
    assert!(!socket.exists(), "its socket removed");
    eprintln!("SIGTERM with an ADD in flight (delegate 2 s): answered, exit 0 after {drained:?}");
}
