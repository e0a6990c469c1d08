//! The node's NAD cache and the size limits end to end: shim → daemon → fake-cni delegates,
//! against kube-mock. The first ADD that uses a NAD fetches it (one GET), the next ADD costs no
//! read; a NAD modified between ADDs is seen, a deleted one gives the reference's error; a NAD
//! over the size limit and a pod whose annotations exceed the API server's limit are refused
//! with a clear error and a Warning event; a big but legal `cni-args` reaches the delegate.
//! Needs root (the daemon enters the pod's netns).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use test_node::*;

fn skip() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    missing_bins()
}

fn fake(thick: &Node, name: &str, extra: Value) -> Value {
    let mut config = json!({"cniVersion": "1.0.0", "name": name, "type": "fake-cni",
        "fake": {"recordDir": thick.path("calls").to_string_lossy(), "subnet": "10.78.0.0/24"}});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    config
}

fn start(seed: impl FnOnce(&Node) -> Vec<Value> + 'static) -> Node {
    NodeBuilder::default()
        .seed_with(seed)
        .fake_delegates(&["fake-cni"])
        .primary_with("10-cluster.conf", |node| fake(node, "cluster-net", json!({})))
        .started()
        .build()
}

/// GETs of one NAD the API server saw.
fn nad_gets(thick: &Node, name: &str) -> usize {
    let path = format!("/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/{name}");
    thick.mock.journal().iter().filter(|e| e.method == "GET" && e.path == path).count()
}

/// The config the delegate named `net` got on stdin at its last ADD.
fn last_add_stdin(thick: &Node, net: &str) -> Value {
    fake_cni::read_calls(thick.path("calls"))
        .into_iter()
        .rfind(|c| c.command == "ADD" && c.name == net)
        .map(|c| c.stdin)
        .unwrap_or_else(|| panic!("no ADD of {net}"))
}

fn wait_for_event(thick: &Node, reason: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = thick.mock.store().list_kind("v1", "Event", Some("default"));
        if let Some(e) = events.iter().find(|e| e["reason"] == reason && e["type"] == "Warning") {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "no {reason} event: {events:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const UID: &str = "33333333-3333-3333-3333-333333333333";

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn a_nad_is_fetched_on_first_use_then_served_from_the_cache_and_kept_right() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|t| {
        vec![nad("default", "net-a", &fake(t, "net-a", json!({"tag": "v1"}))), pod("default", "p", UID, Some("net-a"))]
    });
    assert_eq!(nad_gets(&thick, "net-a"), 0, "nothing is read before a pod asks");

    let first = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &first);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(nad_gets(&thick, "net-a"), 1);
    assert_eq!(last_add_stdin(&thick, "net-a")["tag"], "v1");
    assert_eq!(thick.shim("DEL", &first).code, 0);

    thick.mock.clear_journal();
    let second = thick.sandbox("default", "p", UID);
    assert_eq!(thick.shim("ADD", &second).code, 0);
    let reads: Vec<String> = thick
        .mock
        .journal()
        .iter()
        .filter(|e| e.method == "GET" && !e.query.as_deref().unwrap_or("").contains("watch="))
        .map(|e| e.path.clone())
        .collect();
    assert!(reads.is_empty(), "the second ADD read from the API server: {reads:?}");
    assert_eq!(thick.shim("DEL", &second).code, 0);

    // Modified between two ADDs: the watch drops the cached copy, the next ADD fetches it.
    thick.mock.store().upsert(nad("default", "net-a", &fake(&thick, "net-a", json!({"tag": "v2"})))).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let third = thick.sandbox("default", "p", UID);
    assert_eq!(thick.shim("ADD", &third).code, 0);
    assert_eq!(last_add_stdin(&thick, "net-a")["tag"], "v2");
    assert_eq!(thick.shim("DEL", &third).code, 0);

    // Deleted: the reference's error, and no delegate runs.
    thick.mock.store().delete_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "default", "net-a").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let fourth = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &fourth);
    assert_eq!(add.code, 1, "{add:?}");
    assert!(
        add.json()["msg"].as_str().unwrap().contains(
            "cannot find a network-attachment-definition (net-a) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"net-a\" not found"
        ),
        "{add:?}"
    );
    wait_for_event(&thick, "NoNetworkFound");
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn a_nad_over_the_size_limit_is_refused_with_a_clear_error() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|t| {
        vec![
            nad("default", "huge", &fake(t, "huge", json!({"pad": "x".repeat(2 << 20)}))),
            pod("default", "p", UID, Some("huge")),
        ]
    });
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("cannot find a network-attachment-definition (huge) in namespace (default)"), "{msg}");
    assert!(msg.contains("is refused: its config is 2.0 MiB, more than the 1.5 MiB multus-rs accepts"), "{msg}");
    let event = wait_for_event(&thick, "NoNetworkFound");
    assert!(event["message"].as_str().unwrap().contains("is refused"), "{event}");
    assert!(fake_cni::read_calls(thick.path("calls")).iter().all(|c| c.command != "ADD"), "no delegate may run");
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn a_pod_whose_annotations_exceed_the_api_limit_is_refused_and_a_big_legal_one_works() {
    if !require(skip()) {
        return;
    }
    let big_args: serde_json::Map<String, Value> =
        (0..2500).map(|i| (format!("key-{i:05}"), json!(format!("value-{i:060}")))).collect();
    let legal = json!([{"name": "net-a", "cni-args": big_args}]).to_string();
    assert!(legal.len() > 200_000 && legal.len() < 256 << 10);
    let mut oversized = pod("default", "too-big", UID, Some("net-a"));
    oversized["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(300 << 10));
    let mut thick = start(move |t| {
        vec![nad("default", "net-a", &fake(t, "net-a", json!({}))), pod("default", "big", UID, Some(&legal)), oversized]
    });

    let sandbox = thick.sandbox("default", "big", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}");
    let stdin = last_add_stdin(&thick, "net-a");
    assert_eq!(stdin["args"]["cni"]["key-02499"], json!(format!("value-{:060}", 2499)));
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);

    let sandbox = thick.sandbox("default", "too-big", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("pod default/too-big has 300.") && msg.contains("more than the 256.0 KiB an API server allows"),
        "{msg}"
    );
    let event = wait_for_event(&thick, "PodTooLarge");
    assert_eq!(event["involvedObject"]["name"], "too-big");
    // The runtime's DEL of the refused pod is fine.
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
}
