//! The command rules in process, through the socket API's handler, with recording fakes of
//! every seam: the ADD failure table (spec §5.18) with its rollback rules, the DEL edge cases
//! (§6.1), CHECK, STATUS/GC and `/delegate`. No root, no processes, no API server: these run
//! everywhere. `failures_root.rs` proves the same rules against real plugins.

use cni::Command;
use cni::exec::testing::Reply as PluginReply;
use multus::config::DaemonConfig;
use multus::model::{Nad, PodInfo};
use multus_daemon::handler::Handler;
use multus_daemon::seams::ClusterError;
use multus_daemon::server::{Api, Caller, Reply};
use multus_daemon::testing::FakeNode;
use serde_json::{Value, json};
use std::path::PathBuf;

const UID: &str = "11111111-2222-3333-4444-555555555555";
const NETNS: &str = "/var/run/netns/pod";

struct Node {
    fake: FakeNode,
    handler: Handler,
    dir: tempfile::TempDir,
}

impl Node {
    /// A daemon whose cluster network is the NAD `kube-system/cluster-net` (type `bridge`),
    /// with `extra` merged into its config.
    fn new(extra: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = json!({
            "cniVersion": "1.0.0",
            "clusterNetwork": "cluster-net",
            "cniDir": dir.path().join("cni"),
            "binDir": dir.path().join("bin"),
            "confDir": dir.path().join("net.d"),
            "multusConfigFile": "auto",
        });
        config.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        let fake = FakeNode::new(DaemonConfig::from_bytes(config.to_string().as_bytes()).unwrap());
        fake.cluster.add_nad(nad("kube-system", "cluster-net", "bridge"));
        // The pod's namespace exists while the pod lives (tests remove it to model a lost one).
        fake.netns.add_netns(NETNS);
        let handler = Handler::new(fake.daemon.clone());
        Self { fake, handler, dir }
    }

    fn cni_dir(&self) -> PathBuf {
        self.dir.path().join("cni")
    }

    fn cache(&self, container_id: &str) -> PathBuf {
        self.cni_dir().join(container_id)
    }

    fn result_caches(&self) -> Vec<String> {
        match std::fs::read_dir(self.cni_dir().join("results")) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// `(plugin type, command)` of every delegate call.
    fn calls(&self) -> Vec<(String, String)> {
        self.fake.exec.commands().into_iter().filter(|(_, c)| c != "VERSION").collect()
    }

    async fn cni(&self, command: &str, container_id: &str, pod: &str, extra_env: &[(&str, &str)]) -> Reply {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID={UID}");
        let mut env = vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", container_id.to_string()),
            ("CNI_NETNS", NETNS.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_ARGS", args),
        ];
        for (k, v) in extra_env {
            env.retain(|(key, _)| key != k);
            env.push((k, v.to_string()));
        }
        let stdin = json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim"});
        let request = multus_api::Request::from_env(env, stdin.to_string().into_bytes());
        self.handler.cni(request.to_json(), Caller::detached()).await
    }

    async fn add(&self, container_id: &str, pod: &str) -> Reply {
        self.cni("ADD", container_id, pod, &[]).await
    }

    async fn del(&self, container_id: &str, pod: &str) -> Reply {
        self.cni("DEL", container_id, pod, &[]).await
    }
}

fn nad(namespace: &str, name: &str, plugin: &str) -> Nad {
    Nad {
        namespace: namespace.into(),
        name: name.into(),
        config: json!({"cniVersion": "1.0.0", "type": plugin}).to_string(),
        annotations: Default::default(),
    }
}

fn pod(name: &str, networks: Option<&str>) -> PodInfo {
    PodInfo {
        namespace: "default".into(),
        name: name.into(),
        uid: UID.into(),
        annotations: networks
            .map(|n| [(multus::model::NETWORKS_ANNOTATION.to_string(), n.to_string())].into())
            .unwrap_or_default(),
        node_name: "node-1".into(),
        resource_version: "1".into(),
        claim_status: Value::Null,
    }
}

/// A result with one interface in the pod and one address.
fn result(ifname: &str, address: &str) -> PluginReply {
    PluginReply::stdout(
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": ifname, "mac": "0a:58:0a:00:00:02", "sandbox": NETNS}],
            "ips": [{"address": address, "gateway": "10.0.0.1", "interface": 0}],
        })
        .to_string(),
    )
}

fn with_resource(mut nad: Nad, resource: &str) -> Nad {
    nad.annotations.insert(multus::model::RESOURCE_NAME_ANNOTATION.into(), resource.into());
    nad
}

fn body(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn pair(plugin: &str, command: &str) -> (String, String) {
    (plugin.to_string(), command.to_string())
}

fn assert_no_leftovers(node: &Node, container_id: &str) {
    assert!(!node.cache(container_id).exists(), "delegate cache left behind");
    assert!(node.result_caches().is_empty(), "result caches left: {:?}", node.result_caches());
}

#[tokio::test]
async fn add_runs_every_delegate_writes_one_status_and_answers_the_master_result() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("macvlan-net")));
    node.fake.cluster.add_nad(nad("default", "macvlan-net", "macvlan"));
    node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
    node.fake.exec.on("macvlan", Command::Add, result("net1", "10.1.0.2/24"));
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["Result"]["cniVersion"], "1.1.0");
    assert_eq!(answer["Result"]["ips"][0]["address"], "10.0.0.2/24");
    assert_eq!(node.calls(), vec![pair("bridge", "ADD"), pair("macvlan", "ADD")]);
    let writes = node.fake.cluster.status_writes();
    assert_eq!(writes.len(), 1, "one status write per ADD");
    let statuses = multus::status::parse_network_status(&writes[0].1).unwrap();
    let names: Vec<_> = statuses.iter().map(|s| (s.name.as_str(), s.interface.as_str())).collect();
    assert_eq!(names, vec![("kube-system/cluster-net", "eth0"), ("default/macvlan-net", "net1")]);
    let events: Vec<_> = node.fake.cluster.events().into_iter().map(|e| (e.reason, e.message)).collect();
    assert_eq!(events[1], ("AddedInterface".into(), "Add net1 [10.1.0.2/24] from default/macvlan-net".into()));
    assert!(node.cache("c1").exists(), "the delegate cache is kept for DEL");

    // The DEL runs from the cache in reverse order and removes it.
    let reply = node.del("c1", "p").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(node.calls()[2..], [pair("macvlan", "DEL"), pair("bridge", "DEL")]);
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn missing_nad_fails_before_any_delegate_runs() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("nope")));
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).contains(&format!(
            "ERRORED: error configuring pod [default/p] networking: Multus: [default/p/{UID}]: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition (nope) in namespace (default)"
        )),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());
    let events = node.fake.cluster.events();
    assert_eq!(events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), vec!["NoNetworkFound"]);
    assert!(events[0].warning);
    assert_no_leftovers(&node, "c1");
    assert!(node.fake.cluster.status_writes().is_empty());
}

#[tokio::test]
async fn failing_delegate_rolls_back_every_delegate_including_itself() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("good,bad,never")));
    for (name, plugin) in [("good", "macvlan"), ("bad", "ipvlan"), ("never", "ptp")] {
        node.fake.cluster.add_nad(nad("default", name, plugin));
    }
    node.fake.exec.on("ipvlan", Command::Add, PluginReply::error(cni::CniError::new(11, "no parent")));
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).contains(&format!(
            "[default/p/{UID}:bad]: error adding container to network \"bad\": plugin type=\"ipvlan\" name=\"bad\" failed (add): no parent"
        )),
        "{}",
        body(&reply)
    );
    assert_eq!(
        node.calls(),
        vec![
            pair("bridge", "ADD"),
            pair("macvlan", "ADD"),
            pair("ipvlan", "ADD"),
            pair("ipvlan", "DEL"),
            pair("macvlan", "DEL"),
            pair("bridge", "DEL"),
        ]
    );
    assert_no_leftovers(&node, "c1");
    assert!(node.fake.cluster.status_writes().is_empty());
}

#[tokio::test]
async fn missing_plugin_binary_fails_and_rolls_back() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("gone")));
    node.fake.cluster.add_nad(nad("default", "gone", "nosuchplugin"));
    node.fake.exec.not_found("nosuchplugin");
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(body(&reply).contains("failed to find plugin \"nosuchplugin\" in path"), "{}", body(&reply));
    assert_eq!(node.calls(), vec![pair("bridge", "ADD"), pair("bridge", "DEL")]);
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn uid_mismatch_fails_the_add_but_not_for_static_pods() {
    let node = Node::new(json!({}));
    let mut other = pod("p", None);
    other.uid = "another-uid".into();
    node.fake.cluster.add_pod(other.clone());
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).ends_with(&format!(
            "Multus: [default/p/{UID}]: expected pod UID \"{UID}\" but got \"another-uid\" from Kube API\n"
        )),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());

    other.annotations.insert(multus::model::CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    node.fake.cluster.add_pod(other);
    assert_eq!(node.add("c2", "p").await.status, 200);
    let args = node.fake.exec.calls()[0].env_var("CNI_ARGS").unwrap().to_string();
    assert!(args.contains(&format!("K8S_POD_UID={UID}")), "a static pod's delegates see the runtime's UID: {args}");
}

#[tokio::test]
async fn pod_not_found_answers_the_placeholder_result_without_running_anything() {
    let node = Node::new(json!({}));
    let reply = node.add("c1", "ghost").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["Result"]["ips"][0]["address"], "0.0.0.0/0");
    assert_eq!(answer["Result"]["interfaces"][0]["name"], "eth0");
    assert!(node.calls().is_empty());
    assert!(!node.cache("c1").exists());
}

#[tokio::test]
async fn api_server_down_during_add_fails_and_after_the_delegates_rolls_back() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    node.fake.cluster.fail_lookups(Some(ClusterError::PodLookup("connection refused".into())));
    let reply = node.add("c1", "p").await;
    assert!(
        body(&reply).ends_with(&format!("Multus: [default/p/{UID}]: error waiting for pod: connection refused\n")),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());

    // The lookup works (watch cache) but the status write cannot reach the API server: unlike
    // the Go daemon, the ADD is rolled back instead of leaving interfaces for a later DEL.
    node.fake.cluster.fail_lookups(None);
    node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
    node.fake.cluster.fail_status_writes(Some(ClusterError::StatusWrite("connection refused".into())));
    let reply = node.add("c2", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply)
            .ends_with(&format!("Multus: [default/p/{UID}]: error setting the networks status: connection refused\n")),
        "{}",
        body(&reply)
    );
    assert_eq!(node.calls(), vec![pair("bridge", "ADD"), pair("bridge", "DEL")]);
    assert_no_leftovers(&node, "c2");
}

#[tokio::test]
async fn del_works_from_the_cache_without_the_api_server_or_cni_args() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
    assert_eq!(node.add("c1", "p").await.status, 200);
    node.fake.exec.clear_calls();
    node.fake.cluster.fail_lookups(Some(ClusterError::PodLookup("connection refused".into())));
    node.fake.cluster.remove_pod("default", "p");
    let reply = node.cni("DEL", "c1", "p", &[("CNI_ARGS", ""), ("CNI_NETNS", "")]).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(node.calls(), vec![pair("macvlan", "DEL"), pair("bridge", "DEL")]);
    assert!(node.fake.cluster.lookups().len() == 1, "DEL from the cache needs no pod lookup");
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn del_edge_cases() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));

    // Never added, pod known: the delegates are recomputed from the pod and each gets a DEL.
    assert_eq!(node.del("never", "p").await.status, 200);
    assert_eq!(node.calls(), vec![pair("macvlan", "DEL"), pair("bridge", "DEL")]);
    node.fake.exec.clear_calls();

    // Never added, pod unknown: nothing to learn what to delete; success, nothing run.
    assert_eq!(node.del("never2", "ghost").await.status, 200);
    assert!(node.calls().is_empty());

    // A corrupt cache: success, nothing run.
    std::fs::create_dir_all(node.cni_dir()).unwrap();
    std::fs::write(node.cache("corrupt"), b"[{not json").unwrap();
    assert_eq!(node.del("corrupt", "p").await.status, 200);
    assert!(node.calls().is_empty());

    // Every delegate gets its DEL even when one fails; the errors are combined; the cache is
    // removed (retryDeleteOnError is off).
    assert_eq!(node.add("c1", "p").await.status, 200);
    node.fake.exec.clear_calls();
    node.fake.exec.on("macvlan", Command::Del, PluginReply::error(cni::CniError::new(11, "busy")));
    let reply = node.del("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).ends_with(
            "ERRORED: errors: DelegateDel: error invoking DelegateDel - \"net-a\": plugin type=\"macvlan\" name=\"net-a\" failed (delete): busy\n"
        ),
        "{}",
        body(&reply)
    );
    assert_eq!(node.calls(), vec![pair("macvlan", "DEL"), pair("bridge", "DEL")]);
    assert!(!node.cache("c1").exists());
}

/// With the pod's namespace gone, a delegate whose DEL fails is released outside it instead
/// (its IPAM, its result cache), and the DEL succeeds (issue 21: host-device and sbr fail their
/// DEL once the namespace is gone, before releasing their IPAM).
#[tokio::test]
async fn a_failed_del_with_the_netns_gone_releases_the_delegates_ipam() {
    let node = Node::new(json!({"retryDeleteOnError": true}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    let mut with_ipam = nad("default", "net-a", "host-device");
    with_ipam.config =
        json!({"cniVersion": "1.0.0", "type": "host-device", "ipam": {"type": "host-local"}}).to_string();
    node.fake.cluster.add_nad(with_ipam);
    assert_eq!(node.add("c1", "p").await.status, 200);
    node.fake.exec.clear_calls();
    node.fake.exec.on("host-device", Command::Del, PluginReply::error(cni::CniError::new(11, "netns gone")));
    node.fake.netns.remove_netns(NETNS);
    let reply = node.del("c1", "p").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(node.calls(), vec![pair("host-device", "DEL"), pair("host-local", "DEL"), pair("bridge", "DEL")]);
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn retry_delete_on_error_keeps_the_cache_until_every_del_succeeded() {
    let node = Node::new(json!({"retryDeleteOnError": true}));
    node.fake.cluster.add_pod(pod("p", None));
    assert_eq!(node.add("c1", "p").await.status, 200);
    node.fake.exec.once("bridge", Command::Del, PluginReply::error(cni::CniError::new(11, "busy")));
    assert_eq!(node.del("c1", "p").await.status, 400);
    assert!(node.cache("c1").exists(), "kept for the retry");
    assert_eq!(node.del("c1", "p").await.status, 200);
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn a_second_add_stops_at_the_clash_check_and_keeps_the_first_attachment() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
    assert_eq!(node.add("c1", "p").await.status, 200);
    let first_cache = std::fs::read(node.cache("c1")).unwrap();
    let first_results = node.result_caches();
    node.fake.netns.add_link(NETNS, "eth0");
    node.fake.exec.clear_calls();
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).contains(
            "DelegateAdd: cannot set \"bridge\" interface name to \"eth0\": validateIfName: interface name eth0 already exists"
        ),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty(), "no delegate ran and nothing was rolled back: {:?}", node.calls());
    assert_eq!(std::fs::read(node.cache("c1")).unwrap(), first_cache, "the first ADD's cache survives");
    assert_eq!(node.result_caches(), first_results);
}

#[tokio::test]
async fn an_unopenable_netns_fails_the_add_cleanly() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    node.fake.netns.unopenable(NETNS);
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(body(&reply).contains("DelegateAdd: failed to open netns"), "{}", body(&reply));
    assert!(node.calls().is_empty());
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn default_route_requests_edit_the_pod_routes_and_the_result_cache() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some(r#"[{"name":"net-a","default-route":["10.1.0.1"]}]"#)));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
    node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
    node.fake.exec.on("macvlan", Command::Add, result("net1", "10.1.0.2/24"));
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(
        node.fake.netns.route_edits(),
        vec![
            format!("del {NETNS} eth0 v4=true v6=true"),
            format!("del {NETNS} net1 v4=true v6=true"),
            format!("add {NETNS} net1 10.1.0.1"),
        ]
    );
}

#[tokio::test]
async fn request_values_that_are_paths_never_reach_the_file_system() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    let victim = node.dir.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    for id in ["../victim", "/etc/passwd", "a/../../victim"] {
        for command in ["ADD", "DEL", "CHECK"] {
            let reply = node.cni(command, id, "p", &[]).await;
            assert_eq!(reply.status, 400, "{command} {id}");
            assert!(body(&reply).starts_with("could not extract the CNI command args: invalid CNI_CONTAINERID"));
        }
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn a_missing_uid_is_recovered_from_the_pod_cache() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    let args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p";
    let reply = node.cni("ADD", "c1", "p", &[("CNI_ARGS", args)]).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let reply = node.cni("ADD", "c2", "ghost", &[("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=ghost")]).await;
    assert_eq!(
        body(&reply),
        "could not extract the kubernetes runtime args: missing pod UID; attempted to recover it from the K8s API, but failed: pod default/ghost not found in the cache\n"
    );
}

#[tokio::test]
async fn bad_cni_args_fail_the_add_with_the_reference_text() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    let reply = node
        .cni(
            "ADD",
            "c1",
            "p",
            &[("CNI_ARGS", &format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_UID={UID};Foo=bar"))],
        )
        .await;
    assert!(
        body(&reply).ends_with(
            "ERRORED: error configuring pod [default/p] networking: Multus: error getting k8s args: ARGS: unknown args [\"Foo\"]\n"
        ),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn check_checks_every_cached_delegate() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
    assert_eq!(node.add("c1", "p").await.status, 200);
    node.fake.exec.clear_calls();
    assert_eq!(node.cni("CHECK", "c1", "p", &[]).await.status, 200);
    assert_eq!(node.calls(), vec![pair("bridge", "CHECK"), pair("macvlan", "CHECK")]);
    node.fake.exec.on("macvlan", Command::Check, PluginReply::error(cni::CniError::new(11, "drifted")));
    let reply = node.cni("CHECK", "c1", "p", &[]).await;
    assert!(body(&reply).contains("DelegateCheck: error invoking DelegateCheck - \"net-a\""), "{}", body(&reply));
    // Never added (or already deleted): the CHECK fails without running anything.
    node.fake.exec.clear_calls();
    let reply = node.cni("CHECK", "c9", "p", &[]).await;
    assert!(
        body(&reply).ends_with("ERRORED: CHECK: container c9 has no attachment (never added, or already deleted)\n"),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn status_keeps_the_delegate_error_code_and_gc_honours_the_runtime_list() {
    let node = Node::new(json!({}));
    // STATUS and GC exist from CNI 1.1.0 on.
    let mut cluster = nad("kube-system", "cluster-net", "bridge");
    cluster.config = json!({"cniVersion": "1.1.0", "type": "bridge"}).to_string();
    node.fake.cluster.add_nad(cluster);
    node.fake.exec.on("bridge", Command::Status, PluginReply::error(cni::CniError::new(50, "not ready")));
    let request = multus_api::Request::from_env(
        [("CNI_COMMAND", "STATUS")],
        br#"{"cniVersion":"1.1.0","name":"multus-cni-network","type":"multus-shim"}"#.to_vec(),
    );
    let reply = node.handler.cni(request.to_json(), Caller::detached()).await;
    assert_eq!((reply.status, reply.content_type), (400, Some("application/json")));
    let error = cni::CniError::from_json(&reply.body).unwrap();
    assert_eq!(error.code, 50);

    let stdin = json!({
        "cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus-shim",
        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}],
    });
    let request = multus_api::Request::from_env([("CNI_COMMAND", "GC")], stdin.to_string().into_bytes());
    let reply = node.handler.cni(request.to_json(), Caller::detached()).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let gc = node.fake.exec.calls().into_iter().find(|c| c.command() == "GC").unwrap();
    assert_eq!(gc.stdin_json()["cni.dev/valid-attachments"], json!([{"containerID": "keep", "ifname": "eth0"}]));

    // libcni sends a nil list as null: no attachment is valid any more.
    let stdin = json!({"cniVersion": "1.1.0", "name": "n", "type": "multus-shim", "cni.dev/valid-attachments": null});
    let request = multus_api::Request::from_env([("CNI_COMMAND", "GC")], stdin.to_string().into_bytes());
    let reply = node.handler.cni(request.to_json(), Caller::detached()).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let gc = node.fake.exec.calls().into_iter().filter(|c| c.command() == "GC").nth(1).unwrap();
    assert_eq!(gc.stdin_json()["cni.dev/valid-attachments"], json!([]));

    let stdin = json!({"cniVersion": "1.1.0", "name": "n", "type": "multus-shim", "cni.dev/valid-attachments": "junk"});
    let request = multus_api::Request::from_env([("CNI_COMMAND", "GC")], stdin.to_string().into_bytes());
    let reply = node.handler.cni(request.to_json(), Caller::detached()).await;
    assert!(body(&reply).contains("error in GC command: invalid cni.dev/valid-attachments"), "{}", body(&reply));
}

#[tokio::test]
async fn delegate_api_hot_plugs_and_removes_a_network() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    node.fake.exec.on("macvlan", Command::Add, result("net5", "10.5.0.2/24"));
    let hot_plug = |command: &str, ifname: &str, pod: &str| {
        let env = [
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", "c1".to_string()),
            ("CNI_NETNS", NETNS.to_string()),
            ("CNI_IFNAME", ifname.to_string()),
            ("CNI_ARGS", format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID={UID}")),
        ];
        let mut request = multus_api::Request::from_env(
            env,
            json!({"cniVersion": "1.0.0", "name": "hot", "type": "macvlan"}).to_string().into_bytes(),
        );
        request.interface_attributes =
            Some(multus_api::InterfaceAttributes { mac: "02:00:00:00:00:05".into(), ..Default::default() });
        request.to_json()
    };
    let reply = node.handler.delegate(hot_plug("ADD", "net5", "p"), Caller::detached()).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["Result"]["interfaces"][0]["name"], "net5");
    let add = &node.fake.exec.calls()[0];
    assert!(add.env_var("CNI_ARGS").unwrap().contains("MAC=02:00:00:00:00:05"));
    assert_eq!(add.env_var("CNI_IFNAME"), Some("net5"));
    assert!(node.fake.cluster.status_writes().is_empty(), "hot-plug writes no status");

    let reply = node.handler.delegate(hot_plug("DEL", "net5", "p"), Caller::detached()).await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(node.calls(), vec![pair("macvlan", "ADD"), pair("macvlan", "DEL")]);

    let reply = node.handler.delegate(hot_plug("ADD", "net6", "ghost"), Caller::detached()).await;
    assert!(
        body(&reply).ends_with(&format!("Multus: [default/ghost/{UID}]: pod default/ghost not found\n")),
        "{}",
        body(&reply)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_whose_caller_went_away_is_undone() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", None));
    // The delegate takes a while; the caller gives up meanwhile.
    node.fake.exec.on(
        "bridge",
        Command::Add,
        PluginReply::with(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok(br#"{"cniVersion":"1.0.0"}"#.to_vec())
        }),
    );
    let abandoned = tokio::time::timeout(std::time::Duration::from_millis(20), node.add("c1", "p")).await;
    assert!(abandoned.is_err(), "the caller timed out");
    // The API server is away while the ADD finishes and is undone (soak finding: the status
    // removal was skipped when the pod cache was reconnecting).
    node.fake.cluster.fail_lookups(Some(ClusterError::PodLookup("connection refused".into())));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    node.fake.cluster.fail_lookups(None);
    // A DEL of the same sandbox waits for the ADD (sandbox lock), which undoes itself first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.calls() != vec![pair("bridge", "ADD"), pair("bridge", "DEL")] {
        assert!(std::time::Instant::now() < deadline, "not undone: {:?}", node.calls());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The network-status it wrote goes too, also when the API server answers only later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.fake.cluster.status_writes().last().map(|(_, v)| v.as_str())
        != Some(multus_daemon::testing::REMOVED_STATUS)
    {
        assert!(std::time::Instant::now() < deadline, "status not removed: {:?}", node.fake.cluster.status_writes());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn networks_with_a_resource_name_get_the_pods_devices_in_order() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("vf-a,vf-b,vf-c")));
    for name in ["vf-a", "vf-b", "vf-c"] {
        let mut vf = nad("default", name, "sriov");
        vf.config = json!({"cniVersion": "1.0.0", "type": "sriov", "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}}).to_string();
        node.fake.cluster.add_nad(with_resource(vf, "intel.com/sriov_vf"));
    }
    node.fake.devices.give("default/p", "intel.com/sriov_vf", &["0000:af:06.0", "0000:af:06.1"]);
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(node.fake.devices.lookups(), vec!["default/p"], "one lookup per ADD");
    let sriov: Vec<_> = node.fake.exec.calls().into_iter().filter(|c| c.plugin_type == "sriov").collect();
    let ids: Vec<Value> = sriov.iter().map(|c| c.stdin_json()["deviceID"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!("0000:af:06.0"), json!("0000:af:06.1"), Value::Null],
        "in order, each once, then none left"
    );
    assert_eq!(sriov[0].stdin_json()["runtimeConfig"]["deviceID"], "0000:af:06.0");
    assert_eq!(sriov[0].stdin_json()["pciBusID"], "0000:af:06.0");
    let info = sriov[0].stdin_json()["runtimeConfig"]["CNIDeviceInfoFile"].as_str().unwrap().to_string();
    assert_eq!(info, "/var/run/k8s.cni.cncf.io/devinfo/cni/default-vf-a-c1_net1");
    assert_eq!(
        node.fake.devices.copies(),
        vec![
            ("intel.com/sriov_vf".into(), "0000:af:06.0".into(), info),
            (
                "intel.com/sriov_vf".into(),
                "0000:af:06.1".into(),
                "/var/run/k8s.cni.cncf.io/devinfo/cni/default-vf-b-c1_net2".into()
            ),
        ]
    );
    let no_device: Vec<_> = node
        .fake
        .cluster
        .events()
        .into_iter()
        .filter(|e| e.reason == "NoDeviceForNetwork")
        .map(|e| e.message)
        .collect();
    assert_eq!(
        no_device,
        vec![
            "network default/vf-c asks for a device of resource \"intel.com/sriov_vf\", but the pod has none left for it"
        ]
    );
}

#[tokio::test]
async fn a_failing_device_lookup_fails_the_add_before_anything_runs() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("vf-a")));
    node.fake.cluster.add_nad(with_resource(nad("default", "vf-a", "sriov"), "intel.com/sriov_vf"));
    node.fake.devices.fail(Some(multus_daemon::seams::DeviceLookupError::client(
        "cannot read the device-plugin checkpoint /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint: No such file or directory (os error 2)",
    )));
    let reply = node.add("c1", "p").await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply).contains(
            "getKubernetesDelegate: failed to get a ResourceClient instance: cannot read the device-plugin checkpoint"
        ),
        "{}",
        body(&reply)
    );
    assert!(node.calls().is_empty());
    assert_no_leftovers(&node, "c1");
}

#[tokio::test]
async fn pods_without_device_networks_never_look_devices_up() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
    node.fake.devices.fail(Some(multus_daemon::seams::DeviceLookupError::client("would fail")));
    assert_eq!(node.add("c1", "p").await.status, 200);
    assert!(node.fake.devices.lookups().is_empty());
}

/// The value of one sample line of the scrape (`name{labels} value`).
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_delegates_rollbacks_dels_and_status_writes() {
    let node = Node::new(json!({}));
    node.fake.cluster.add_pod(pod("p", Some("net-a")));
    node.fake.cluster.add_pod(pod("q", Some("bad")));
    node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
    node.fake.cluster.add_nad(nad("default", "bad", "ipvlan"));
    node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
    node.fake.exec.on("ipvlan", Command::Add, PluginReply::error(cni::CniError::new(11, "no parent")));
    assert_eq!(node.add("c1", "p").await.status, 200);
    assert_eq!(node.add("c2", "q").await.status, 400);
    assert_eq!(node.del("c1", "p").await.status, 200);
    assert_eq!(node.del("gone", "ghost").await.status, 200);

    let scrape = String::from_utf8(node.fake.daemon.metrics.render()).unwrap();
    let expect = [
        (
            r#"multus_delegate_duration_seconds_count{network="kube-system/cluster-net",plugin="bridge",verb="ADD"}"#,
            2.0,
        ),
        (
            r#"multus_delegate_duration_seconds_count{network="kube-system/cluster-net",plugin="bridge",verb="DEL"}"#,
            2.0,
        ),
        (r#"multus_delegate_failures_total{network="default/bad",plugin="ipvlan",verb="ADD"}"#, 1.0),
        (r#"multus_add_rollbacks_total{outcome="clean"}"#, 1.0),
        (r#"multus_del_total{source="cache"}"#, 1.0),
        (r#"multus_del_total{source="nothing"}"#, 1.0),
        (r#"multus_apiserver_writes_total{kind="network_status",outcome="success"}"#, 1.0),
        (r#"multus_command_duration_seconds_count{command="ADD",endpoint="cni",outcome="failure"}"#, 1.0),
        (r#"multus_command_duration_seconds_count{command="ADD",endpoint="cni",outcome="success"}"#, 1.0),
        (r#"multus_command_duration_seconds_count{command="DEL",endpoint="cni",outcome="success"}"#, 2.0),
        ("multus_requests_in_flight", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&scrape, series), Some(value), "{series}\n{scrape}");
    }
    assert!(!scrape.contains("c1") && !scrape.contains("default/p"), "no container IDs or pod names in labels");
}

mod reconcile {
    use super::*;
    use multus_daemon::reconcile::{Mode, Settings, reconcile_once};

    fn stdin() -> Vec<u8> {
        json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim"}).to_string().into_bytes()
    }

    fn settings(mode: Mode) -> Settings {
        Settings { mode, ..Settings::default() }
    }

    #[tokio::test]
    async fn an_attachment_whose_netns_is_gone_is_deleted_from_its_cache() {
        let node = Node::new(json!({}));
        node.fake.cluster.add_pod(pod("p", Some("net-a")));
        node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
        node.fake.netns.add_netns(NETNS);
        assert_eq!(node.add("c1", "p").await.status, 200);
        node.fake.exec.clear_calls();

        // Alive: nothing happens.
        let report = reconcile_once(&node.fake.daemon, settings(Mode::On), &stdin()).await;
        assert!(report.reclaimed.is_empty() && node.calls().is_empty(), "{report:?}");

        // The sandbox is gone and nobody sent the DEL.
        node.fake.netns.remove_netns(NETNS);
        let report = reconcile_once(&node.fake.daemon, settings(Mode::DryRun), &stdin()).await;
        assert_eq!(report.reclaimed, vec!["c1"]);
        assert!(node.calls().is_empty(), "dry-run deletes nothing");
        assert!(node.cache("c1").exists());

        let report = reconcile_once(&node.fake.daemon, settings(Mode::On), &stdin()).await;
        assert_eq!(report.reclaimed, vec!["c1"]);
        assert_eq!(node.calls(), vec![pair("macvlan", "DEL"), pair("bridge", "DEL")]);
        let del = &node.fake.exec.calls()[0];
        assert_eq!(del.env_var("CNI_NETNS"), Some(NETNS));
        assert!(del.env_var("CNI_ARGS").unwrap().contains("K8S_POD_NAME=p"), "the ADD's pod identity");
        assert_no_leftovers(&node, "c1");
        let scrape = String::from_utf8(node.fake.daemon.metrics.render()).unwrap();
        assert_eq!(sample(&scrape, r#"multus_reconcile_attachments_total{action="deleted"}"#), Some(1.0));
        assert_eq!(sample(&scrape, r#"multus_reconcile_attachments_total{action="would_delete"}"#), Some(1.0));
    }

    #[tokio::test]
    async fn the_runtimes_gc_list_and_unknown_namespaces_protect_an_attachment() {
        let node = Node::new(json!({}));
        node.fake.cluster.add_pod(pod("p", None));
        assert_eq!(node.add("keep", "p").await.status, 200);
        node.fake.daemon.set_gc_valid_containers(["keep".to_string()].into());
        // A delegate cache without any result cache: its namespace is unknown.
        std::fs::copy(node.cache("keep"), node.cache("noresult")).unwrap();
        node.fake.exec.clear_calls();
        let report = reconcile_once(&node.fake.daemon, settings(Mode::On), &stdin()).await;
        assert!(report.reclaimed.is_empty(), "{report:?}");
        assert!(node.calls().is_empty());
        assert!(node.cache("keep").exists() && node.cache("noresult").exists());
    }

    /// Issue 21: the API server no longer has the pod (its DEL was lost while the namespace
    /// lingers): reclaimed once the absence is confirmed, never while the API server cannot
    /// say, and a new pod of the same name does not protect the old one's attachment.
    #[tokio::test]
    async fn an_attachment_whose_pod_is_gone_is_deleted_once_confirmed() {
        use multus_daemon::reconcile::{PodsSeenGone, reconcile_pass};
        let node = Node::new(json!({}));
        node.fake.cluster.add_pod(pod("p", Some("net-a")));
        node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
        assert_eq!(node.add("c1", "p").await.status, 200);
        node.fake.exec.clear_calls();
        let confirm = Settings { pod_gone_confirm: std::time::Duration::from_millis(300), ..settings(Mode::On) };
        let mut seen = PodsSeenGone::default();

        // An API server that cannot answer proves nothing.
        node.fake.cluster.remove_pod("default", "p");
        node.fake.cluster.fail_lookups(Some(ClusterError::PodLookup("connection refused".into())));
        let report = reconcile_pass(&node.fake.daemon, confirm, &stdin(), &mut seen).await;
        assert!(report.reclaimed.is_empty() && seen.is_empty(), "{report:?}");

        // Gone: first seen, then confirmed on a later pass.
        node.fake.cluster.fail_lookups(None);
        let report = reconcile_pass(&node.fake.daemon, confirm, &stdin(), &mut seen).await;
        assert!(report.reclaimed.is_empty(), "not before the confirmation: {report:?}");
        assert_eq!(seen.len(), 1);
        assert!(node.calls().is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        let report = reconcile_pass(&node.fake.daemon, confirm, &stdin(), &mut seen).await;
        assert_eq!(report.reclaimed, vec!["c1"]);
        assert_eq!(node.calls(), vec![pair("macvlan", "DEL"), pair("bridge", "DEL")]);
        assert_no_leftovers(&node, "c1");
        assert!(seen.is_empty());

        // A pod of the same name with another UID: the attachment was the old pod's.
        node.fake.cluster.add_pod(pod("p", Some("net-a")));
        assert_eq!(node.add("c2", "p").await.status, 200);
        let mut replaced = pod("p", Some("net-a"));
        replaced.uid = "another-uid".into();
        node.fake.cluster.add_pod(replaced);
        let now = Settings { pod_gone_confirm: std::time::Duration::ZERO, ..settings(Mode::On) };
        let report = reconcile_pass(&node.fake.daemon, now, &stdin(), &mut seen).await;
        assert_eq!(report.reclaimed, vec!["c2"]);
        assert_no_leftovers(&node, "c2");
    }

    /// Found by the soak (cache-read-only, seed 20261210 #936): a GC listed the sandbox as
    /// valid, then the runtime's DEL could not remove its caches (read-only `cniDir`), and the
    /// stale GC listing kept the reconciler off it after its namespace was gone. A DEL
    /// withdraws the listing.
    #[tokio::test]
    async fn a_dels_leftovers_are_not_protected_by_an_earlier_gc_listing() {
        let node = Node::new(json!({}));
        node.fake.cluster.add_pod(pod("p", Some("net-a")));
        node.fake.cluster.add_nad(nad("default", "net-a", "macvlan"));
        assert_eq!(node.add("c1", "p").await.status, 200);
        let gc_stdin = json!({
            "cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus-shim",
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
        });
        let gc = multus_api::Request::from_env([("CNI_COMMAND", "GC")], gc_stdin.to_string().into_bytes());
        assert_eq!(node.handler.cni(gc.to_json(), Caller::detached()).await.status, 200);

        // What a read-only cniDir leaves: the DEL ran its delegates, the files stay.
        let saved = tempfile::tempdir().unwrap();
        let copy = |from: &std::path::Path, to: &std::path::Path| {
            std::fs::create_dir_all(to.join("results")).unwrap();
            std::fs::copy(from.join("c1"), to.join("c1")).unwrap();
            for name in std::fs::read_dir(from.join("results")).unwrap() {
                let name = name.unwrap().file_name();
                std::fs::copy(from.join("results").join(&name), to.join("results").join(&name)).unwrap();
            }
        };
        copy(&node.cni_dir(), saved.path());
        assert_eq!(node.del("c1", "p").await.status, 200);
        copy(saved.path(), &node.cni_dir());
        node.fake.netns.remove_netns(NETNS);
        node.fake.exec.clear_calls();

        let report = reconcile_once(&node.fake.daemon, settings(Mode::On), &stdin()).await;
        assert_eq!(report.reclaimed, vec!["c1"], "{report:?}");
        assert_no_leftovers(&node, "c1");
    }

    /// Found by the soak (cache-read-only under API faults): with the API server silent, every
    /// live attachment's pod lookup cost its 5 s timeout, so a pass over many sandboxes held
    /// the orphans (and the GC gate) for minutes. Namespace orphans go first; after one
    /// unanswered lookup the pass asks no more.
    #[tokio::test]
    async fn a_silent_api_server_costs_one_lookup_per_pass_and_namespace_orphans_go_first() {
        let node = Node::new(json!({}));
        for i in 0..5 {
            let (cid, name, netns) = (format!("c{i}"), format!("p{i}"), format!("/var/run/netns/pod{i}"));
            node.fake.cluster.add_pod(pod(&name, None));
            node.fake.netns.add_netns(&netns);
            assert_eq!(node.cni("ADD", &cid, &name, &[("CNI_NETNS", &netns)]).await.status, 200);
        }
        node.fake.netns.remove_netns("/var/run/netns/pod3");
        node.fake.cluster.fail_lookups(Some(ClusterError::PodLookup("connection refused".into())));
        let before = node.fake.cluster.lookups().len();
        let report = reconcile_once(&node.fake.daemon, settings(Mode::On), &stdin()).await;
        assert_eq!(report.reclaimed, vec!["c3"], "the namespace orphan needs no API server");
        assert!(!node.cache("c3").exists());
        assert!(!node.result_caches().iter().any(|r| r.contains("-c3-")), "{:?}", node.result_caches());
        let asked: Vec<_> =
            node.fake.cluster.lookups()[before..].iter().filter(|(_, name)| name != "p3").cloned().collect();
        assert_eq!(asked.len(), 1, "one unanswered question ends the pod questions: {asked:?}");
        for cid in ["c0", "c1", "c2", "c4"] {
            assert!(node.cache(cid).exists(), "{cid}: an unanswered question deletes nothing");
        }
    }

    #[tokio::test]
    async fn a_pass_deletes_at_most_max_per_pass() {
        let node = Node::new(json!({}));
        node.fake.cluster.add_pod(pod("p", None));
        for cid in ["c1", "c2", "c3"] {
            assert_eq!(node.add(cid, "p").await.status, 200);
        }
        node.fake.netns.remove_netns(NETNS);
        let limited = Settings { max_per_pass: 2, ..settings(Mode::On) };
        let report = reconcile_once(&node.fake.daemon, limited, &stdin()).await;
        assert_eq!((report.reclaimed.len(), report.deferred), (2, 1));
        let report = reconcile_once(&node.fake.daemon, limited, &stdin()).await;
        assert_eq!((report.reclaimed.len(), report.deferred), (1, 0));
        for cid in ["c1", "c2", "c3"] {
            assert_no_leftovers(&node, cid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// parallelDelegates: the delegates of a pod run at once; answer, annotation and rollback as in
// the sequential daemon.

mod parallel_delegates {
    use super::*;
    use cni::exec::testing::RecordingExec;
    use cni::exec::{Exec, ExecError, ExecFuture, PluginRequest};
    use multus_daemon::daemon::{Daemon, Seams};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Holds the ADDs of some plugins for a while (tokio time: paused in these tests) and
    /// records the order in which ADDs finish.
    struct Delaying {
        inner: RecordingExec,
        delays: HashMap<&'static str, Duration>,
        finished: Arc<Mutex<Vec<String>>>,
    }

    impl Exec for Delaying {
        fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
            let plugin = req.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let is_add = req.env.iter().any(|(k, v)| k == "CNI_COMMAND" && v == "ADD");
            let delay = self.delays.get(plugin.as_str()).copied().filter(|_| is_add).unwrap_or_default();
            let run = self.inner.exec(req);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let out = run.await;
                if is_add {
                    self.finished.lock().unwrap().push(plugin);
                }
                out
            })
        }

        fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
            self.inner.find_plugin(plugin_type, dirs)
        }
    }

    /// A node whose pod `p` asks for `networks`; ADDs of `bridge` (the cluster network) take
    /// 100 ms, `macvlan` 200 ms, the others no time.
    fn node(parallel: bool, networks: &str) -> (Node, Arc<Mutex<Vec<String>>>) {
        let mut node = Node::new(json!({"parallelDelegates": parallel}));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let exec = Delaying {
            inner: node.fake.exec.clone(),
            delays: [("bridge", Duration::from_millis(100)), ("macvlan", Duration::from_millis(200))].into(),
            finished: finished.clone(),
        };
        let seams = Seams {
            exec: Arc::new(exec),
            cluster: Arc::new(node.fake.cluster.clone()),
            netns: Arc::new(node.fake.netns.clone()),
            devices: Arc::new(node.fake.devices.clone()),
        };
        let daemon = Daemon::with_process_env(node.fake.daemon.config.clone(), seams, None, None);
        node.handler = Handler::new(Arc::new(daemon));
        node.fake.cluster.add_pod(pod("p", Some(networks)));
        for (name, plugin) in [("slow", "macvlan"), ("fast", "ipvlan"), ("bad", "ptp")] {
            node.fake.cluster.add_nad(nad("default", name, plugin));
        }
        node.fake.exec.on("bridge", Command::Add, result("eth0", "10.0.0.2/24"));
        node.fake.exec.on("macvlan", Command::Add, result("net1", "10.1.0.2/24"));
        node.fake.exec.on("ipvlan", Command::Add, result("net2", "10.2.0.2/24"));
        node.fake.exec.on("ptp", Command::Add, PluginReply::error(cni::CniError::new(11, "no parent")));
        (node, finished)
    }

    fn adds(node: &Node) -> Vec<(String, String)> {
        node.calls().into_iter().filter(|(_, c)| c == "ADD").collect()
    }

    fn dels(node: &Node) -> Vec<(String, String)> {
        node.calls().into_iter().filter(|(_, c)| c == "DEL").collect()
    }

    #[tokio::test(start_paused = true)]
    async fn answer_and_status_keep_the_annotation_order_whatever_finishes_first() {
        let (node, finished) = node(true, "slow,fast");
        let started = tokio::time::Instant::now();
        let reply = node.add("c1", "p").await;
        assert_eq!(reply.status, 200, "{}", body(&reply));
        // All three ran at once: the ADD took the slowest delegate's time, not the sum.
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        assert_eq!(*finished.lock().unwrap(), ["ipvlan", "bridge", "macvlan"]);
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(answer["Result"]["ips"][0]["address"], "10.0.0.2/24", "the cluster network's result");
        let writes = node.fake.cluster.status_writes();
        assert_eq!(writes.len(), 1);
        let statuses = multus::status::parse_network_status(&writes[0].1).unwrap();
        let names: Vec<_> = statuses.iter().map(|s| (s.name.as_str(), s.interface.as_str())).collect();
        assert_eq!(names, [("kube-system/cluster-net", "eth0"), ("default/slow", "net1"), ("default/fast", "net2")]);
        let events: Vec<_> = node.fake.cluster.events().into_iter().map(|e| e.message).collect();
        assert!(events[1].starts_with("Add net1 ") && events[2].starts_with("Add net2 "), "{events:?}");

        // DEL is unchanged: from the cache, last first.
        let reply = node.del("c1", "p").await;
        assert_eq!(reply.status, 200, "{}", body(&reply));
        assert_eq!(dels(&node), [pair("ipvlan", "DEL"), pair("macvlan", "DEL"), pair("bridge", "DEL")]);
        assert_no_leftovers(&node, "c1");
    }

    #[tokio::test(start_paused = true)]
    async fn off_by_default_the_delegates_run_one_after_the_other() {
        let (node, finished) = node(false, "slow,fast");
        let started = tokio::time::Instant::now();
        let reply = node.add("c1", "p").await;
        assert_eq!(reply.status, 200, "{}", body(&reply));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(*finished.lock().unwrap(), ["bridge", "macvlan", "ipvlan"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delegate_rolls_back_every_delegate_that_ran_last_first() {
        let (node, _) = node(true, "slow,bad,fast");
        let reply = node.add("c1", "p").await;
        assert_eq!(reply.status, 400);
        assert!(
            body(&reply).contains(&format!(
                "[default/p/{UID}:bad]: error adding container to network \"bad\": plugin type=\"ptp\" name=\"bad\" failed (add): no parent"
            )),
            "{}",
            body(&reply)
        );
        let mut added = adds(&node);
        added.sort();
        assert_eq!(added, [pair("bridge", "ADD"), pair("ipvlan", "ADD"), pair("macvlan", "ADD"), pair("ptp", "ADD")]);
        // The failed one included, in reverse annotation order, whatever order they finished in.
        assert_eq!(
            dels(&node),
            [pair("ipvlan", "DEL"), pair("ptp", "DEL"), pair("macvlan", "DEL"), pair("bridge", "DEL")]
        );
        assert_no_leftovers(&node, "c1");
        assert!(node.fake.cluster.status_writes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_delegate_stopped_by_the_clash_check_is_not_deleted() {
        let (node, _) = node(true, "slow,fast");
        node.fake.netns.add_link(NETNS, "net2");
        let reply = node.add("c1", "p").await;
        assert_eq!(reply.status, 400);
        assert!(body(&reply).contains("interface name net2 already exists"), "{}", body(&reply));
        assert!(!adds(&node).contains(&pair("ipvlan", "ADD")));
        assert_eq!(dels(&node), [pair("macvlan", "DEL"), pair("bridge", "DEL")]);
        assert_no_leftovers(&node, "c1");
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_write_failing_rolls_everything_back() {
        let (node, _) = node(true, "slow,fast");
        node.fake.cluster.fail_status_writes(Some(ClusterError::StatusWrite("API server down".into())));
        let reply = node.add("c1", "p").await;
        assert_eq!(reply.status, 400, "{}", body(&reply));
        assert_eq!(dels(&node), [pair("ipvlan", "DEL"), pair("macvlan", "DEL"), pair("bridge", "DEL")]);
        assert_no_leftovers(&node, "c1");
    }
}
