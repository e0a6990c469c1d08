//! Memory bounded by what the node uses, not by what the cluster holds.

use serde_json::Value;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

use crate::args::Args;
use crate::host::{Cleanup, drop_netns, netns_many, shim_run};
use crate::measure::{cid, storm};
use crate::node::{Node, pod, start_node_with};
use crate::numbers::{proc_status_kib, round, rss_kib};

/// A macvlan NAD of about `bytes` bytes of config text in `namespace` (padded with an unused key).
pub fn sized_nad(namespace: &str, name: &str, master: &str, bytes: usize) -> Value {
    let mut config = json!({"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": master, "mode": "bridge",
        "ipam": {}, "padding": ""});
    let pad = bytes.saturating_sub(config.to_string().len());
    config["padding"] = json!("x".repeat(pad));
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config.to_string()}})
}

/// The API requests the daemon sent since the journal was last cleared (watches excluded),
/// by kind: reads, the network-status write, events, anything else.
pub fn api_requests(node: &Node) -> Value {
    let entries = node.base.mock.journal();
    let (mut reads, mut status, mut events, mut other) = (0, 0, 0, 0);
    for e in &entries {
        let query = e.query.as_deref().unwrap_or("");
        if query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1") {
            continue;
        }
        if e.path.contains("/events") {
            events += 1;
        } else if e.path.ends_with("/status") {
            status += 1;
        } else if e.method == "GET" {
            reads += 1;
        } else {
            other += 1;
        }
    }
    json!({"total": reads + status + events + other, "reads": reads, "status_writes": status, "events": events, "other": other,
           "paths": entries.iter().filter(|e| !e.query.as_deref().unwrap_or("").contains("watch=")).map(|e| format!("{} {}", e.method, e.path)).collect::<Vec<_>>()})
}

/// One command through the shim, then the API requests it caused (events are sent off the
/// request path: counted after they had time to go out).
pub fn requests_of(node: &Node, shim: &Path, cmd: &str, cid: &str, netns: &str, pod: &str) -> Value {
    node.base.mock.clear_journal();
    let (code, out) = shim_run(shim, &node.env(cmd, cid, netns, pod), &node.stdin);
    assert_eq!(code, 0, "{cmd} failed: {out}");
    std::thread::sleep(Duration::from_millis(500));
    api_requests(node)
}

/// RSS and ready time of a daemon on a node with 110 pods, against an API server that also
/// holds 10,000 small NADs of other tenants, or 40 NADs of 1 MB (then deleted); the API
/// requests of a pod's ADD and DEL. Every API request but watches costs `latency`.
pub fn memory_bounded(args: &Args, cleanup: &Cleanup, master: &str) -> Value {
    let latency = Some(Duration::from_millis(2));
    // 3 shapes × 37 pods = 111 pods on the node.
    let pods = 37;
    let settle = |node: &Node| {
        std::thread::sleep(Duration::from_secs(2));
        json!({"ready_ms": round(node.ready_ms), "rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")})
    };
    let mut out = serde_json::Map::new();

    eprintln!("bench: memory: no other NADs; API requests per ADD and DEL");
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), Vec::new(), latency);
    out.insert("no_nads".into(), settle(&node));
    let ns = netns_many(cleanup, "r", 1);
    let mut requests = serde_json::Map::new();
    for (label, pod) in [("nad2", Node::pod_name("nad2", 0)), ("plain", Node::pod_name("plain", 0))] {
        let (first, second) = (cid("rq"), cid("rq"));
        requests.insert(format!("{label}_first_add"), requests_of(&node, &args.shim, "ADD", &first, &ns[0], &pod));
        requests.insert(format!("{label}_first_del"), requests_of(&node, &args.shim, "DEL", &first, &ns[0], &pod));
        requests.insert(format!("{label}_next_add"), requests_of(&node, &args.shim, "ADD", &second, &ns[0], &pod));
        requests.insert(format!("{label}_next_del"), requests_of(&node, &args.shim, "DEL", &second, &ns[0], &pod));
    }
    drop_netns(cleanup, &ns);
    out.insert("requests".into(), Value::Object(requests));
    eprintln!("bench: memory: a {pods}-way storm, then idle");
    out.insert("storm".into(), storm(args, &node, cleanup, pods));
    drop(node);

    eprintln!("bench: memory: 10,000 NADs of 1 KB in 1,000 namespaces");
    let many: Vec<Value> =
        (0..10_000).map(|i| sized_nad(&format!("tenant-{}", i % 1000), &format!("net-{i}"), master, 1024)).collect();
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), many, latency);
    out.insert("nads_10k_1kb".into(), settle(&node));
    drop(node);

    eprintln!("bench: memory: 40 NADs of 1 MB in one namespace, then deleted");
    let mut big: Vec<Value> = (0..40).map(|i| sized_nad("tenant-big", &format!("big-{i}"), master, 1 << 20)).collect();
    // A pod that uses four of them.
    big.push(pod("big-user", Some("tenant-big/big-0,tenant-big/big-1,tenant-big/big-2,tenant-big/big-3")));
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), big, latency);
    out.insert("nads_40_1mb".into(), settle(&node));
    let ns = netns_many(cleanup, "u", 1);
    let before = rss_kib(node.pid);
    let used = node.multus_pod(&args.shim, &cid("big"), &ns[0], "big-user");
    let right_after = rss_kib(node.pid);
    std::thread::sleep(Duration::from_secs(3));
    drop_netns(cleanup, &ns);
    out.insert(
        "pod_using_4_big_nads".into(),
        json!({"ok": used.is_ok(), "error": used.err(), "rss_before_kib": before, "rss_right_after_kib": right_after,
               "rss_idle_after_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );
    for i in 0..40 {
        let _ = node.base.mock.store().delete_kind(
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
            "tenant-big",
            &format!("big-{i}"),
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    out.insert(
        "nads_40_1mb_deleted".into(),
        json!({"rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );
    drop(node);
    Value::Object(out)
}
