//! The ADD failure table (spec §5.18) and the DEL edge cases (§6.1), end to end through the
//! shim and the daemon, with fake-cni delegates that record every call. Each case asserts the
//! exact outcome and that nothing is left behind: no delegate cache, no result cache, and every
//! delegate that was added got its DEL. Needs root (the daemon enters the pod's netns).

use serde_json::{Value, json};
use test_node::*;

fn skip() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    missing_bins()
}

/// A fake delegate config recording into `<tmp>/calls`.
fn fake(thick: &Node, name: &str, extra: Value) -> Value {
    let mut fake = json!({"recordDir": thick.path("calls").to_string_lossy(), "subnet": "10.77.0.0/24"});
    if let (Some(f), Some(e)) = (fake.as_object_mut(), extra.as_object()) {
        f.extend(e.clone());
    }
    json!({"cniVersion": "1.0.0", "name": name, "type": "fake-cni", "fake": fake})
}

/// (command, network name, ifname) of every recorded delegate call, in order.
fn calls(thick: &Node) -> Vec<(String, String, String)> {
    fake_cni::read_calls(thick.path("calls"))
        .into_iter()
        .filter(|c| c.command != "VERSION")
        .map(|c| (c.command, c.name, c.ifname))
        .collect()
}

fn call(cmd: &str, net: &str, ifname: &str) -> (String, String, String) {
    (cmd.into(), net.into(), ifname.into())
}

/// A daemon whose cluster network is a fake delegate, with `seed` in the API server.
fn start(seed: impl FnOnce(&Node) -> Vec<Value> + 'static) -> Node {
    start_with_deny(seed, &[])
}

fn start_with_deny(seed: impl FnOnce(&Node) -> Vec<Value> + 'static, deny: &[&str]) -> Node {
    NodeBuilder::default()
        .seed_with(seed)
        .deny(deny)
        .fake_delegates(&["fake-cni"])
        .primary_with("10-cluster.conf", |node| fake(node, "cluster-net", json!({})))
        .started()
        .build()
}

fn assert_no_leftovers(thick: &Node, sandbox: &PodSandbox) {
    assert!(!thick.path("cni").join(&sandbox.container_id).exists(), "delegate cache left behind");
    assert!(thick.files_under("cni/results").is_empty(), "result caches left: {:?}", thick.files_under("cni/results"));
}

const UID: &str = "22222222-2222-2222-2222-222222222222";

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn missing_nad_fails_before_any_delegate_runs() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![pod("default", "p", UID, Some("no-such-nad"))]);
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    let err = add.json();
    assert!(
        err["msg"].as_str().unwrap().contains(
            "cannot find a network-attachment-definition (no-such-nad) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"no-such-nad\" not found"
        ),
        "{err}"
    );
    assert!(calls(&thick).is_empty(), "no delegate may run: {:?}", calls(&thick));
    assert_no_leftovers(&thick, &sandbox);
    // The NoNetworkFound warning event is sent off the request path.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let events = thick.mock.store().list_kind("v1", "Event", Some("default"));
        if events.iter().any(|e| e["reason"] == "NoNetworkFound" && e["type"] == "Warning") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no NoNetworkFound event: {events:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn failing_delegate_rolls_back_every_delegate_including_itself() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|t| {
        vec![
            nad("default", "good", &fake(t, "good", json!({}))),
            nad(
                "default",
                "bad",
                &fake(t, "bad", json!({"failOn": ["ADD"], "failCode": 11, "failMsg": "expected plugin failure"})),
            ),
            pod("default", "p", UID, Some("good,bad")),
        ]
    });
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains(&format!("[default/p/{UID}:bad]: error adding container to network \"bad\"")), "{msg}");
    assert!(msg.contains("expected plugin failure"), "{msg}");
    assert_eq!(
        calls(&thick),
        vec![
            call("ADD", "cluster-net", "eth0"),
            call("ADD", "good", "net1"),
            call("ADD", "bad", "net2"),
            call("DEL", "bad", "net2"),
            call("DEL", "good", "net1"),
            call("DEL", "cluster-net", "eth0"),
        ]
    );
    assert_no_leftovers(&thick, &sandbox);
    // The runtime's own DEL after a failed ADD is still fine.
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn missing_plugin_binary_fails_and_rolls_back() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| {
        vec![
            nad(
                "default",
                "noplugin",
                &json!({"cniVersion": "1.0.0", "name": "noplugin", "type": "does-not-exist-plugin"}),
            ),
            pod("default", "p", UID, Some("noplugin")),
        ]
    });
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    assert!(add.json()["msg"].as_str().unwrap().contains("failed to find plugin \"does-not-exist-plugin\""), "{add:?}");
    assert_eq!(calls(&thick), vec![call("ADD", "cluster-net", "eth0"), call("DEL", "cluster-net", "eth0")]);
    assert_no_leftovers(&thick, &sandbox);
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn uid_mismatch_fails_the_add() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![pod("default", "p", UID, None)]);
    let sandbox = thick.sandbox("default", "p", "33333333-0000-0000-0000-000000000000");
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains(&format!(
            "expected pod UID \"33333333-0000-0000-0000-000000000000\" but got \"{UID}\" from Kube API"
        )),
        "{msg}"
    );
    assert!(calls(&thick).is_empty());
    assert_no_leftovers(&thick, &sandbox);
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn pod_not_found_answers_the_placeholder_result() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![]);
    let sandbox = thick.sandbox("default", "ghost", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}");
    let r = add.json();
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["interfaces"][0]["sandbox"], sandbox.netns_path());
    assert_eq!(r["ips"][0]["address"], "0.0.0.0/0");
    assert!(calls(&thick).is_empty(), "no delegate runs for an unknown pod");
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn api_server_down_during_add_rolls_back_and_during_del_still_deletes() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|t| {
        vec![
            nad("default", "good", &fake(t, "good", json!({}))),
            nad("default", "unused", &fake(t, "unused", json!({}))),
            pod("default", "p", UID, Some("good")),
            pod("default", "q", UID, Some("unused")),
        ]
    });
    // The node uses the NAD once (it is fetched and cached).
    let sandbox = thick.sandbox("default", "p", UID);
    assert_eq!(thick.shim("ADD", &sandbox).code, 0);
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
    std::fs::remove_file(thick.path("calls/calls.jsonl")).unwrap();
    // ADD with the API server down: the pod and NAD come from the node's caches, the delegates
    // run, the status write fails, and everything is rolled back.
    thick.api_down();
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 1, "{add:?}");
    assert!(add.json()["msg"].as_str().unwrap().contains("error setting the networks status"), "{add:?}");
    assert_eq!(
        calls(&thick),
        vec![
            call("ADD", "cluster-net", "eth0"),
            call("ADD", "good", "net1"),
            call("DEL", "good", "net1"),
            call("DEL", "cluster-net", "eth0"),
        ]
    );
    assert_no_leftovers(&thick, &sandbox);

    // A NAD this node never used cannot be fetched: the ADD fails before any delegate runs
    // (the watch caches of the Go daemon would run them, then fail at the status write).
    std::fs::remove_file(thick.path("calls/calls.jsonl")).unwrap();
    let other = thick.sandbox("default", "q", UID);
    let add = thick.shim("ADD", &other);
    assert_eq!(add.code, 1, "{add:?}");
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("cannot find a network-attachment-definition (unused) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"unused\": failed to get it from the API server"),
        "{msg}"
    );
    assert!(calls(&thick).is_empty(), "no delegate may run: {:?}", calls(&thick));
    assert_no_leftovers(&thick, &other);

    // With the API server back, ADD works; then DEL with the API server down again.
    thick.api_up();
    let _ = std::fs::remove_file(thick.path("calls/calls.jsonl"));
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}\n{}", thick.daemon_log());
    thick.api_down();
    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    let dels: Vec<_> = calls(&thick).into_iter().filter(|c| c.0 == "DEL").collect();
    assert_eq!(dels, vec![call("DEL", "good", "net1"), call("DEL", "cluster-net", "eth0")]);
    assert_no_leftovers(&thick, &sandbox);
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn daemon_not_running_add_fails_in_bounded_time_and_del_exits_zero() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![pod("default", "p", UID, None)]);
    let sandbox = thick.sandbox("default", "p", UID);
    thick.stop_daemon();
    let stdin = std::fs::read(thick.multus_conf()).unwrap();
    let add = thick.shim_with("ADD", &sandbox, &stdin, &[("MULTUS_SHIM_READY_WAIT_MS", "300")]);
    assert_eq!(add.code, 1, "{add:?}");
    let err = add.json();
    assert_eq!(err["code"], 999);
    assert!(err["msg"].as_str().unwrap().starts_with("CmdAdd (shim): "), "{err}");
    let del = thick.shim("DEL", &sandbox);
    assert_eq!((del.code, del.stdout.as_str()), (0, ""), "{del:?}");
    let mut conf: Value = serde_json::from_slice(&stdin).unwrap();
    conf["cniVersion"] = json!("1.1.0");
    let status = thick.shim_with("STATUS", &sandbox, conf.to_string().as_bytes(), &[]);
    assert_eq!(status.code, 1);
    assert_eq!(status.json()["code"], 50, "STATUS with the daemon down answers 'not available'");
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn malformed_stdin_and_missing_env_never_reach_the_daemon() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![pod("default", "p", UID, None)]);
    let sandbox = thick.sandbox("default", "p", UID);
    let bad = thick.shim_with("ADD", &sandbox, b"not json", &[]);
    assert_eq!((bad.code, bad.json()["code"].as_u64()), (1, Some(6)), "{bad:?}");
    let stdin = std::fs::read(thick.multus_conf()).unwrap();
    let mut no_netns = thick.shim_with("ADD", &sandbox, &stdin, &[("CNI_NETNS", "")]);
    assert_eq!(no_netns.code, 1);
    assert_eq!(no_netns.json()["code"], 4, "{no_netns:?}");
    no_netns.stdout.clear();
    assert!(calls(&thick).is_empty());
}

#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn del_edge_cases() {
    if !require(skip()) {
        return;
    }
    let mut thick =
        start(|t| vec![nad("default", "good", &fake(t, "good", json!({}))), pod("default", "p", UID, Some("good"))]);
    // Never added, pod known: the delegates are recomputed from the pod and each gets a DEL
    // (plugins answer success for what they never had), as the Go daemon does.
    let never = thick.sandbox("default", "p", UID);
    assert_eq!(thick.shim("DEL", &never).code, 0);
    assert_eq!(calls(&thick), vec![call("DEL", "good", "net1"), call("DEL", "cluster-net", "eth0")]);
    std::fs::remove_file(thick.path("calls/calls.jsonl")).unwrap();

    // NAD deleted since ADD, netns gone: DEL still runs every delegate from the cache.
    let sandbox = thick.sandbox("default", "p", UID);
    assert_eq!(thick.shim("ADD", &sandbox).code, 0);
    thick
        .mock
        .store()
        .delete_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "default", "good")
        .expect("delete NAD");
    ip(&["netns", "del", &sandbox.netns]);
    std::fs::remove_file(thick.path("calls/calls.jsonl")).unwrap();
    let del = thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    assert_eq!(calls(&thick), vec![call("DEL", "good", "net1"), call("DEL", "cluster-net", "eth0")]);
    assert_no_leftovers(&thick, &sandbox);

    // A corrupt cache: success, nothing run (there is nothing to learn from it).
    let corrupt = thick.sandbox("default", "p", UID);
    std::fs::write(thick.path("cni").join(&corrupt.container_id), b"[{not json").unwrap();
    std::fs::remove_file(thick.path("calls/calls.jsonl")).ok();
    assert_eq!(thick.shim("DEL", &corrupt).code, 0);
    assert!(calls(&thick).is_empty());

    // A DEL without CNI_ARGS (runtime bug) still deletes from the cache.
    let sandbox = thick.sandbox("default", "p", UID);
    thick.mock.store().create(nad("default", "good", &fake(&thick, "good", json!({})))).expect("re-create NAD");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(thick.shim("ADD", &sandbox).code, 0, "{}", thick.daemon_log());
    let stdin = std::fs::read(thick.multus_conf()).unwrap();
    let del = thick.shim_with("DEL", &sandbox, &stdin, &[("CNI_ARGS", "")]);
    assert_eq!(del.code, 0);
    assert_no_leftovers(&thick, &sandbox);
}

/// A request exactly as the Go shim sends it (its whole environment in `env`, stdin in base64)
/// gets the Go daemon's reply shape: `{"Result": <1.1.0 result>}`.
#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn go_shim_request_gets_the_go_reply_shape() {
    if !require(skip()) {
        return;
    }
    let mut thick =
        start(|t| vec![nad("default", "good", &fake(t, "good", json!({}))), pod("default", "p", UID, Some("good"))]);
    let mut sandbox = thick.sandbox("default", "p", UID);
    sandbox.container_id = "cid-go-shim".into();
    let stdin = std::fs::read(thick.multus_conf()).unwrap();
    let body = json!({
        "env": {
            "CNI_ARGS": sandbox.cni_args(), "CNI_COMMAND": "ADD", "CNI_CONTAINERID": sandbox.container_id,
            "CNI_IFNAME": "eth0", "CNI_NETNS": sandbox.netns_path(), "CNI_PATH": "/opt/cni/bin",
            "HOME": "/root", "PATH": "/usr/sbin:/usr/bin", "XDG_RUNTIME_DIR": ""
        },
        "config": multus_api::encode_base64(&stdin)
    });
    let socket = thick.path("run/multus.sock");
    let probe = multus_api::client::post(&socket, "/healthz", b"null", None).unwrap();
    assert_eq!(probe.status, 200);
    let reply = multus_api::client::post(&socket, "/cni", body.to_string().as_bytes(), None).unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let text = String::from_utf8(reply.body).unwrap();
    let netns = sandbox.netns_path();
    insta::assert_snapshot!("go_shim_add_reply", text.replace(&netns, "<netns>"));
    let del = json!({"env": {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": sandbox.container_id, "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0", "CNI_ARGS": sandbox.cni_args()}, "config": multus_api::encode_base64(&stdin)});
    let reply = multus_api::client::post(&socket, "/cni", del.to_string().as_bytes(), None).unwrap();
    assert_eq!((reply.status, reply.body.len()), (200, 0));
    assert_no_leftovers(&thick, &sandbox);
}

/// `/delegate`: hot-plug one network into a running pod, then remove it; STATUS keeps the
/// delegate's error code.
#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn delegate_api_hot_plugs_and_removes_a_network() {
    if !require(skip()) {
        return;
    }
    let mut thick = start(|_| vec![pod("default", "p", UID, None)]);
    let sandbox = thick.sandbox("default", "p", UID);
    let socket = thick.path("run/multus.sock");
    let mut config = fake(&thick, "hotplug", json!({}));
    config["capabilities"] = json!({"mac": true});
    let request = |command: &str, config: &Value| {
        json!({
            "env": {"CNI_COMMAND": command, "CNI_CONTAINERID": sandbox.container_id, "CNI_NETNS": sandbox.netns_path(),
                    "CNI_IFNAME": "net5", "CNI_ARGS": format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_UID={UID}")},
            "config": multus_api::encode_base64(config.to_string().as_bytes()),
            "interfaceAttributes": {"mac": "02:00:00:00:00:05", "cni-args": null}
        })
        .to_string()
    };
    let add = multus_api::client::post(&socket, "/delegate", request("ADD", &config).as_bytes(), None).unwrap();
    assert_eq!(add.status, 200, "{}", String::from_utf8_lossy(&add.body));
    let reply: Value = serde_json::from_slice(&add.body).unwrap();
    assert_eq!(reply["Result"]["interfaces"][0]["name"], "net5");
    let recorded = fake_cni::read_calls(thick.path("calls"));
    let add_call = recorded.iter().find(|c| c.command == "ADD").expect("ADD recorded");
    assert!(add_call.args.contains("MAC=02:00:00:00:00:05"), "{}", add_call.args);
    assert_eq!(add_call.stdin["runtimeConfig"]["mac"], "02:00:00:00:00:05");
    assert!(add_call.stdin.get("socketDir").is_none(), "the daemon config is not injected into the delegate");

    let del = multus_api::client::post(&socket, "/delegate", request("DEL", &config).as_bytes(), None).unwrap();
    assert_eq!(del.status, 200, "{}", String::from_utf8_lossy(&del.body));
    assert!(thick.files_under("cni/results").is_empty());

    let mut down = fake(&thick, "hotplug", json!({"statusCode": 50}));
    down["cniVersion"] = json!("1.1.0");
    let status = multus_api::client::post(&socket, "/delegate", request("STATUS", &down).as_bytes(), None).unwrap();
    assert_eq!(status.status, 400);
    assert_eq!(status.content_type, "application/json");
    let err: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(err["code"], 50);
}

/// With the Go daemon's ClusterRole (`update` but no `patch` on `pods/status`), the status is
/// written with GET + PUT instead of the single PATCH.
#[test]
#[ignore = "needs root (network namespaces) and the workspace binaries"]
fn status_write_falls_back_to_put_without_patch_rights() {
    if !require(skip()) {
        return;
    }
    let mut thick = start_with_deny(|_| vec![pod("default", "p", UID, None)], &["patch:pods/status"]);
    let sandbox = thick.sandbox("default", "p", UID);
    let add = thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}\n{}", thick.daemon_log());
    let pod = thick.pod_object("default", "p");
    let status = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"].as_str().expect("annotation");
    assert!(status.contains("\"cluster-net\""), "{status}");
    let methods: Vec<String> = thick
        .mock
        .journal()
        .into_iter()
        .filter(|j| j.path.ends_with("/pods/p/status"))
        .map(|j| j.method.clone())
        .collect();
    assert_eq!(methods, vec!["PATCH", "PUT"]);
    assert_eq!(thick.shim("DEL", &sandbox).code, 0);
}
