//! Networks that follow the pod (`"dynamicNetworks": true`, issue 23), from outside: a real
//! daemon process, the real shim as the runtime, Debian's bridge and host-local in a real
//! network namespace; the pod's selection annotation changed through the API server as a user's
//! `kubectl annotate` would. Needs root: #[ignore]d, CI runs them with --include-ignored.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use test_node::*;

const UID: &str = "23000000-0000-0000-0000-000000000001";

/// Cluster network (bridge + host-local) and NADs `net-a` and `net-b` (bridges), `broken`
/// (fake-cni failing its ADD); pod `default/p` selecting `selection`.
fn start(selection: &str) -> Node {
    let mut thick = Node::new(vec![]);
    let bridges: Vec<String> = (0..3).map(|_| unique("dyb")).collect();
    for b in &bridges {
        thick.cleanup.record_link(b);
    }
    let nad_conf = |name: &str, bridge: &str, ipam: Value| json!({"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge, "ipam": ipam});
    let a = nad_conf("net-a", &bridges[1], thick.ipam("10.231.0.0/24"));
    let b = nad_conf("net-b", &bridges[2], thick.ipam("10.232.0.0/24"));
    let broken = json!({"cniVersion": "1.0.0", "name": "broken", "type": "fake-cni",
        "fake": {"failOn": ["ADD"], "failMsg": "broken: refused by design"}});
    for obj in [
        nad("default", "net-a", &a),
        nad("default", "net-b", &b),
        nad("default", "broken", &broken),
        pod("default", "p", UID, Some(selection)),
    ] {
        thick.mock.store().create(obj).expect("seed");
    }
    thick.install_plugins(&["bridge", "host-local"], &["fake-cni"]);
    thick.write_primary(
        "10-cluster.conflist",
        &json!({"cniVersion": "1.0.0", "name": "dyn-cluster-net", "plugins": [
            {"type": "bridge", "bridge": bridges[0], "isGateway": false, "ipMasq": false,
             "ipam": thick.ipam("10.230.0.0/24")}]}),
    );
    thick.daemon_config["dynamicNetworks"] = json!(true);
    thick.start_daemon();
    thick
}

/// [`start`], and the pod `p` added by the runtime through the shim.
fn start_with_pod(selection: &str) -> (Node, PodSandbox) {
    let mut thick = start(selection);
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}\n{}", thick.daemon_log());
    (thick, sandbox)
}

fn annotate(thick: &Node, selection: &str) {
    let mut pod = thick.pod_object("default", "p");
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = json!(selection);
    thick.mock.store().update(pod).expect("update the pod");
}

fn interfaces(thick: &Node, sandbox: &PodSandbox) -> Vec<String> {
    let mut names: Vec<String> = thick.pod_addresses(sandbox).into_iter().map(|(n, _)| n).collect();
    names.sort();
    names
}

fn status_names(thick: &Node) -> Vec<(String, String)> {
    let status = thick.pod_object("default", "p")["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    let entries: Vec<Value> = serde_json::from_str(&status).unwrap_or_default();
    entries
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e["interface"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn eventually(within: Duration, what: impl Fn() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !what() {
        assert!(Instant::now() < deadline, "{}", state());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leases_in(thick: &Node, subnet_prefix: &str) -> usize {
    thick.leases().iter().filter(|l| l.contains(subnet_prefix)).count()
}

#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn a_network_added_to_and_removed_from_a_running_pod_follows_the_annotation() {
    if !require(root_skip_reason()) {
        return;
    }
    let (mut thick, sandbox) = start_with_pod("net-a");
    assert_eq!(interfaces(&thick, &sandbox), ["eth0", "net1"]);

    // Plug net-b in: it appears as net2 with its address, and network-status lists it.
    annotate(&thick, "net-a,net-b");
    eventually(
        Duration::from_secs(20),
        || interfaces(&thick, &sandbox) == ["eth0", "net1", "net2"] && status_names(&thick).len() == 3,
        || {
            format!(
                "net-b not plugged in: {:?}, status {:?}\n{}",
                interfaces(&thick, &sandbox),
                status_names(&thick),
                thick.daemon_log()
            )
        },
    );
    assert!(
        thick.pod_addresses(&sandbox).iter().any(|(n, a)| n == "net2" && a.iter().any(|a| a.starts_with("10.232.0."))),
        "{:?}",
        thick.pod_addresses(&sandbox)
    );
    assert!(status_names(&thick).contains(&("default/net-b".into(), "net2".into())), "{:?}", status_names(&thick));
    // multusctl tells the hot-plugged attachment from the runtime's.
    match bin("multusctl") {
        None => {
            let _ = require(Some("target/debug/multusctl is not built: the hot-plug listing is not checked"));
        }
        Some(multusctl) => {
            let out = std::process::Command::new(multusctl)
                .args(["attachments", "--no-api", "-o", "json", "--cni-dir"])
                .arg(thick.path("cni"))
                .output()
                .expect("run multusctl");
            let report: Value = serde_json::from_slice(&out.stdout).expect("multusctl's JSON");
            let networks = &report["attachments"][0]["networks"];
            let hot: Vec<&str> = networks
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["hotplugged"] == true)
                .filter_map(|n| n["name"].as_str())
                .collect();
            assert_eq!(hot, ["default/net-b"], "{report}");
        }
    }

    // Unplug net-a: net1 goes, its lease is freed, net-b stays on net2 (no renaming).
    annotate(&thick, "net-b");
    eventually(
        Duration::from_secs(20),
        || interfaces(&thick, &sandbox) == ["eth0", "net2"] && leases_in(&thick, "10.231.0.") == 0,
        || {
            format!(
                "net-a not unplugged: {:?}, leases {:?}\n{}",
                interfaces(&thick, &sandbox),
                thick.leases(),
                thick.daemon_log()
            )
        },
    );
    eventually(
        Duration::from_secs(5),
        || {
            status_names(&thick)
                == [("dyn-cluster-net".to_string(), "eth0".to_string()), ("default/net-b".into(), "net2".into())]
        },
        || format!("network-status: {:?}", status_names(&thick)),
    );

    // A daemon restart neither re-runs nor forgets the hot-plugs: the runtime's DEL removes all.
    thick.restart_daemon();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(interfaces(&thick, &sandbox), ["eth0", "net2"], "{}", thick.daemon_log());
    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(thick.pod_addresses(&sandbox).is_empty(), "links left: {:?}", thick.pod_addresses(&sandbox));
    assert!(thick.leases().is_empty(), "leases left: {:?}", thick.leases());
    assert!(!thick.path("cni").join(&sandbox.container_id).exists(), "delegate cache left");
}

#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn a_network_that_fails_to_plug_in_leaves_the_pod_as_it_was_and_says_why() {
    if !require(root_skip_reason()) {
        return;
    }
    let (thick, sandbox) = start_with_pod("net-a");
    let cache_before = std::fs::read(thick.path("cni").join(&sandbox.container_id)).unwrap();

    annotate(&thick, "net-a,broken");
    eventually(
        Duration::from_secs(20),
        || {
            thick
                .mock
                .store()
                .list_kind("v1", "Event", Some("default"))
                .iter()
                .any(|e| e["reason"] == "DynamicNetworkFailed")
        },
        || format!("no Warning event\n{}", thick.daemon_log()),
    );
    let events = thick.mock.store().list_kind("v1", "Event", Some("default"));
    let event = events.iter().find(|e| e["reason"] == "DynamicNetworkFailed").unwrap();
    assert_eq!(event["type"], "Warning");
    assert!(event["message"].as_str().unwrap_or("").contains("refused by design"), "{event}");
    assert_eq!(interfaces(&thick, &sandbox), ["eth0", "net1"]);
    assert_eq!(std::fs::read(thick.path("cni").join(&sandbox.container_id)).unwrap(), cache_before, "cache changed");
    assert_eq!(leases_in(&thick, "10.231.0."), 1);

    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(thick.leases().is_empty(), "leases left: {:?}", thick.leases());
}

/// The runtime's GC (CNI 1.1, the sandbox no longer valid) removes hot-plugged attachments as it
/// removes the runtime's own: the cache names their interfaces.
#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn gc_removes_hot_plugged_attachments_too() {
    if !require(root_skip_reason()) {
        return;
    }
    let (thick, sandbox) = start_with_pod("");
    annotate(&thick, "net-b");
    eventually(
        Duration::from_secs(20),
        // network-status is written once the plug-in is complete.
        || interfaces(&thick, &sandbox) == ["eth0", "net1"] && status_names(&thick).len() == 2,
        || format!("net-b not plugged in: {:?}\n{}", interfaces(&thick, &sandbox), thick.daemon_log()),
    );
    assert_eq!(
        leases_in(&thick, "10.232.0."),
        1,
        "leases {:?}, addresses {:?}",
        thick.leases(),
        thick.pod_addresses(&sandbox)
    );

    let mut stdin: Value = serde_json::from_slice(&std::fs::read(thick.multus_conf()).unwrap()).unwrap();
    stdin["cniVersion"] = json!("1.1.0");
    stdin["cni.dev/valid-attachments"] = json!([]);
    let gc = thick.shim_with("GC", &sandbox, &serde_json::to_vec(&stdin).unwrap(), &[]);
    assert_eq!(gc.code, 0, "{gc:?}\n{}", thick.daemon_log());
    assert!(thick.pod_addresses(&sandbox).is_empty(), "links left: {:?}", thick.pod_addresses(&sandbox));
    assert!(thick.leases().is_empty(), "leases left: {:?}", thick.leases());
    assert!(!thick.path("cni").join(&sandbox.container_id).exists(), "delegate cache left");
}

/// A change made while the daemon was down is applied when it is back (the delegate cache
/// records the selection the sandbox was made for); an unchanged pod is left alone.
#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn a_change_made_while_the_daemon_was_down_is_applied_when_it_is_back() {
    if !require(root_skip_reason()) {
        return;
    }
    let (mut thick, sandbox) = start_with_pod("net-a");
    thick.stop_daemon();
    annotate(&thick, "net-a,net-b");
    thick.start_daemon();
    eventually(
        Duration::from_secs(20),
        || interfaces(&thick, &sandbox) == ["eth0", "net1", "net2"] && status_names(&thick).len() == 3,
        || {
            format!(
                "net-b not plugged in after the restart: {:?}\n{}",
                interfaces(&thick, &sandbox),
                thick.daemon_log()
            )
        },
    );
    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(thick.leases().is_empty(), "leases left: {:?}", thick.leases());
}
