//! The thick plugin end to end, as a node runs it: kube-mock over TLS with in-cluster files,
//! multus-daemon in in-cluster mode, multus-shim invoked like a runtime, Debian's real bridge,
//! macvlan and host-local plugins, and a real network namespace per pod. Needs root: the
//! tests are #[ignore]d and CI runs them with --include-ignored.

use serde_json::{Value, json};
use test_node::*;

/// Host-side links the test creates or makes the bridge plugin create, all uniquely named.
struct Net {
    cluster_bridge: String,
    nad_bridge: String,
    macvlan_master: String,
}

fn setup(thick: &mut Node) -> Net {
    let net = Net { cluster_bridge: unique("mcb"), nad_bridge: unique("mnb"), macvlan_master: unique("mvm") };
    let peer = format!("{}p", net.macvlan_master);
    let out = ip(&["link", "add", &net.macvlan_master, "type", "veth", "peer", "name", &peer]);
    assert!(out.status.success(), "veth: {}", String::from_utf8_lossy(&out.stderr));
    ip(&["link", "set", &net.macvlan_master, "up"]);
    for link in [&net.macvlan_master, &net.cluster_bridge, &net.nad_bridge] {
        thick.cleanup.record_link(link);
    }
    net
}

fn seed_for(thick: &Node, net: &Net, pod_ns: &str, pod_name: &str, uid: &str) -> Vec<Value> {
    let bridge_nad = json!({"cniVersion": "1.0.0", "name": "bridge-net", "type": "bridge", "bridge": net.nad_bridge,
        "ipam": thick.ipam("10.214.0.0/24")});
    let macvlan_nad = json!({"cniVersion": "1.0.0", "name": "macvlan-net", "type": "macvlan",
        "master": net.macvlan_master, "mode": "bridge", "ipam": thick.ipam("10.215.0.0/24")});
    vec![
        nad("default", "bridge-net", &bridge_nad),
        nad("default", "macvlan-net", &macvlan_nad),
        pod(pod_ns, pod_name, uid, Some("macvlan-net,bridge-net")),
    ]
}

fn primary(thick: &Node, net: &Net) -> Value {
    json!({"cniVersion": "1.0.0", "name": "test-cluster-net", "plugins": [
        {"type": "bridge", "bridge": net.cluster_bridge, "isGateway": false, "ipMasq": false,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.0.0/24", "gateway": "10.213.0.1"}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": thick.path("ipam").to_string_lossy()}}
    ]})
}

#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn pod_with_two_nads_gets_three_interfaces_and_del_removes_everything() {
    if !require(root_skip_reason()) {
        return;
    }
    let uid = "11111111-1111-1111-1111-111111111111";
    // The seed needs the link names, which need a Node; create it with the seed afterwards.
    let mut thick = Node::new(vec![]);
    let net = setup(&mut thick);
    for obj in seed_for(&thick, &net, "default", "pod1", uid) {
        thick.mock.store().create(obj).expect("seed");
    }
    thick.install_plugins(&["bridge", "macvlan", "host-local"], &[]);
    thick.write_primary("10-test.conflist", &primary(&thick, &net));
    thick.start_daemon();

    let generated: Value = serde_json::from_slice(&std::fs::read(thick.multus_conf()).unwrap()).unwrap();
    assert_eq!(generated["type"], "multus-shim");
    assert_eq!(generated["name"], "multus-cni-network");

    let sandbox = thick.sandbox("default", "pod1", uid);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "ADD failed: {add:?}\n{}", thick.daemon_log());
    let result = add.json();
    assert_eq!(result["cniVersion"], "1.0.0", "the result comes in the config's version");
    let eth0 = result["interfaces"].as_array().unwrap().iter().position(|i| i["name"] == "eth0").expect("eth0");
    assert_eq!(result["interfaces"][eth0]["sandbox"], sandbox.netns_path());
    assert!(result["ips"][0]["address"].as_str().unwrap().starts_with("10.213.0."));

    let mut addrs = thick.pod_addresses(&sandbox);
    addrs.sort();
    let names: Vec<&str> = addrs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["eth0", "net1", "net2"], "{addrs:?}");
    let subnet_of = |name: &str| addrs.iter().find(|(n, _)| n == name).map(|(_, a)| a.join(",")).unwrap();
    assert!(subnet_of("eth0").starts_with("10.213.0."));
    assert!(subnet_of("net1").starts_with("10.215.0."), "net1 is the macvlan NAD");
    assert!(subnet_of("net2").starts_with("10.214.0."), "net2 is the bridge NAD");

    // The network-status annotation, written with one status write.
    let pod = thick.pod_object("default", "pod1");
    let status_text =
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"].as_str().expect("network-status");
    eprintln!("network-status: {status_text}");
    let status: Value = serde_json::from_str(status_text).unwrap();
    let entries = status.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{status_text}");
    assert_eq!(entries[0]["name"], "test-cluster-net");
    assert_eq!(entries[0]["interface"], "eth0");
    assert_eq!(entries[0]["default"], true);
    assert_eq!(entries[1]["name"], "default/macvlan-net");
    assert_eq!(entries[1]["interface"], "net1");
    assert_eq!(entries[2]["name"], "default/bridge-net");
    assert!(status_text.starts_with("[{\n    \"name\""), "Go's layout: {status_text}");

    // Delegate cache and libcni result caches.
    let cache_file = thick.path("cni").join(&sandbox.container_id);
    assert!(cache_file.exists(), "delegate cache");
    let cache: Value = serde_json::from_slice(&std::fs::read(&cache_file).unwrap()).unwrap();
    assert_eq!(cache.as_array().unwrap().len(), 3);
    assert_eq!(thick.files_under("cni/results").len(), 3);
    assert_eq!(thick.leases().len(), 3);

    let check = thick.shim("CHECK", &sandbox);
    assert_eq!(check.code, 0, "CHECK failed: {check:?}\n{}", thick.daemon_log());
    assert!(check.stdout.is_empty());

    // A second ADD without DEL fails and must not disturb the first attachment (the Go daemon's
    // rollback deletes the existing eth0 here).
    let again = thick.shim("ADD", &sandbox);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.json()["msg"].as_str().unwrap().contains("interface name eth0 already exists"), "{again:?}");
    let mut after = thick.pod_addresses(&sandbox);
    after.sort();
    assert_eq!(after, addrs, "the first attachment is untouched");
    assert!(cache_file.exists(), "the first ADD's delegate cache survives");
    assert_eq!(thick.leases().len(), 3);

    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(thick.pod_addresses(&sandbox).is_empty(), "links left: {:?}", thick.pod_addresses(&sandbox));
    assert!(thick.leases().is_empty(), "leases left: {:?}", thick.leases());
    assert!(!cache_file.exists(), "delegate cache left");
    assert!(thick.files_under("cni/results").is_empty(), "result caches left");
    assert!(thick.daemon_log().lines().all(|l| !l.contains("errors:")), "{}", thick.daemon_log());

    let again = thick.shim("DEL", &sandbox);
    assert_eq!(again.code, 0, "a second DEL succeeds: {again:?}");
}

/// `default-route` on an additional network (spec §5.15, e2e case 83): the pod's default route
/// moves to that interface, the cluster network's default route goes, and both the pod and the
/// cached results say so. Done over netlink (the image has no `ip`).
#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn default_route_moves_to_the_requested_network() {
    if !require(root_skip_reason()) {
        return;
    }
    let uid = "44444444-4444-4444-4444-444444444444";
    let mut thick = Node::new(vec![]);
    let net = setup(&mut thick);
    let mut seed = seed_for(&thick, &net, "default", "other", "x");
    seed.pop();
    seed.push(pod("default", "gw-pod", uid, Some(r#"[{"name":"bridge-net","default-route":["10.214.0.1"]}]"#)));
    for obj in seed {
        thick.mock.store().create(obj).expect("seed");
    }
    thick.install_plugins(&["bridge", "macvlan", "host-local"], &[]);
    thick.write_primary("10-test.conflist", &primary(&thick, &net));
    thick.start_daemon();
    let sandbox = thick.sandbox("default", "gw-pod", uid);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}\n{}", thick.daemon_log());

    let out = ip(&["-n", &sandbox.netns, "-4", "-j", "route", "show", "default"]);
    let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let routes = routes.as_array().unwrap();
    assert_eq!(routes.len(), 1, "exactly one default route: {routes:?}");
    assert_eq!(routes[0]["gateway"], "10.214.0.1");
    assert_eq!(routes[0]["dev"], "net1");

    let cached: Value = serde_json::from_slice(
        &std::fs::read(thick.path("cni/results").join(format!("test-cluster-net-{}-eth0", sandbox.container_id)))
            .unwrap(),
    )
    .unwrap();
    let eth0_routes = cached["result"]["routes"].as_array().cloned().unwrap_or_default();
    assert!(
        eth0_routes.iter().all(|r| r["dst"] != "0.0.0.0/0"),
        "eth0's cached default route removed: {eth0_routes:?}"
    );
    let net1: Value = serde_json::from_slice(
        &std::fs::read(thick.path("cni/results").join(format!("bridge-net-{}-net1", sandbox.container_id))).unwrap(),
    )
    .unwrap();
    assert!(
        net1["result"]["routes"].as_array().unwrap().iter().any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == "10.214.0.1"),
        "{net1}"
    );
    // CHECK still passes against the edited caches, and DEL cleans up.
    assert_eq!(thick.shim("CHECK", &sandbox).code, 0, "{}", thick.daemon_log());
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
    assert!(thick.pod_addresses(&sandbox).is_empty());
    assert!(thick.leases().is_empty());
}

/// A sandbox lost while the daemon was down (kill -9, then the runtime removed the namespace and
/// never sent a DEL): the restarted daemon's orphan reconciler runs the DEL from the delegate
/// cache, so the host-local lease and every cache go; a live pod next to it is not touched.
#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni (containernetworking-plugins)"]
fn a_restarted_daemon_reclaims_attachments_whose_sandbox_is_gone() {
    if !require(root_skip_reason()) {
        return;
    }
    let uid = "33333333-3333-3333-3333-333333333333";
    let mut thick = Node::new(vec![]);
    let net = setup(&mut thick);
    for obj in seed_for(&thick, &net, "default", "lost", uid) {
        thick.mock.store().create(obj).expect("seed");
    }
    thick.mock.store().create(pod("default", "alive", uid, None)).expect("seed");
    thick.install_plugins(&["bridge", "macvlan", "host-local"], &[]);
    thick.write_primary("10-test.conflist", &primary(&thick, &net));
    thick.start_daemon();

    let lost = thick.sandbox("default", "lost", uid);
    let alive = thick.sandbox("default", "alive", uid);
    assert_eq!(thick.shim("ADD", &lost).code, 0, "{}", thick.daemon_log());
    assert_eq!(thick.shim("ADD", &alive).code, 0, "{}", thick.daemon_log());
    assert_eq!(thick.leases().len(), 4);

    // kill -9 (by PID), then the runtime loses the sandbox without a DEL.
    let mut daemon = thick.take_daemon().expect("daemon process");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    ip(&["netns", "del", &lost.netns]);

    thick.start_daemon();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while thick.path("cni").join(&lost.container_id).exists() {
        assert!(std::time::Instant::now() < deadline, "not reclaimed:\n{}", thick.daemon_log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        thick.leases().len(),
        1,
        "only the live pod's lease is left: {:?}\n{}",
        thick.leases(),
        thick.daemon_log()
    );
    assert!(thick.path("cni").join(&alive.container_id).exists(), "the live pod is untouched");
    assert_eq!(thick.pod_addresses(&alive).len(), 1);
    assert!(thick.daemon_log().contains("deleted an orphan attachment"), "{}", thick.daemon_log());
    assert_eq!(thick.shim("DEL", &alive).code, 0);
    assert!(thick.leases().is_empty());
}
