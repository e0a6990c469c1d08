//! Fuzz targets for every decoder that takes bytes from outside the daemon: the socket request,
//! CNI configs and results of every version, the Multus request config and NAD configs,
//! selection annotations, `CNI_ARGS`, delegate cache files, and kube-mock's protobuf bodies.
//!
//! Each [`Target`] is a plain function over bytes. It must never panic: a panic is a crash
//! the fuzzer reports. Besides "no panic", targets check round trips where the code promises
//! one (what we print, we parse back).
//!
//! `cargo xtask fuzz` builds the `multus-fuzz` binary (feature `libfuzzer`) with coverage
//! instrumentation on the stable toolchain and runs libFuzzer per target. `cargo test -p
//! multus-fuzz` replays the [`seeds`](Target::seeds) and every input kept under
//! `fuzz/regressions/<target>/` (crashes found by the fuzzer, kept after their fix).

use cni::version::{self, Version};
use cni::{CniArgs, CniResult, NetConfList, NetworkConfig, PluginConf};
use serde_json::json;

/// One fuzz target.
pub struct Target {
    /// The name used on the command line and for corpus directories.
    pub name: &'static str,
    /// What it feeds the bytes to.
    pub about: &'static str,
    /// Run one input. Panics only on a bug.
    pub run: fn(&[u8]),
    /// Valid inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "api_request",
        about: "socket request body (multus_api::Request::from_json) and error bodies",
        run: api_request,
        seeds: api_request_seeds,
    },
    Target {
        name: "cni_config",
        about: "CNI configs and conflists (cni::conf, skel::decode_config)",
        run: cni_config,
        seeds: cni_config_seeds,
    },
    Target {
        name: "cni_result",
        about: "CNI results of every version and their conversions (cni::result)",
        run: cni_result,
        seeds: cni_result_seeds,
    },
    Target {
        name: "multus_config",
        about: "the shim's config merged with the daemon's, NetConf, NAD delegate configs",
        run: multus_config,
        seeds: multus_config_seeds,
    },
    Target {
        name: "selection",
        about: "selection and default-network annotations (multus::selection)",
        run: selection,
        seeds: selection_seeds,
    },
    Target { name: "cni_args", about: "CNI_ARGS (cni::args, multus::k8s_args)", run: cni_args, seeds: cni_args_seeds },
    Target {
        name: "delegate_cache",
        about: "delegate cache files, ours and Go's (multus::cache::parse_cache)",
        run: delegate_cache,
        seeds: delegate_cache_seeds,
    },
    Target {
        name: "kube_protobuf",
        about: "kube-mock's protobuf request bodies (kube_mock::protobuf)",
        run: kube_protobuf,
        seeds: kube_protobuf_seeds,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// All target names.
pub fn target_names() -> Vec<&'static str> {
    TARGETS.iter().map(|t| t.name).collect()
}

fn all_versions() -> impl Iterator<Item = Version> {
    version::ALL.iter().filter_map(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Targets

/// The body of `/cni` and `/delegate`; also how the shim reads an error body.
pub fn api_request(data: &[u8]) {
    let _ = multus_api::ErrorBody::parse(data);
    if let Ok(request) = multus_api::Request::from_json(data) {
        let _ = request.describe();
        let again = multus_api::Request::from_json(&request.to_json()).expect("a request we encode decodes again");
        assert_eq!(again, request, "request round trip");
    }
}

/// Network configs as libcni and `skel` read them.
pub fn cni_config(data: &[u8]) {
    let _ = cni::skel::decode_config(data);
    if let Ok(plugin) = PluginConf::from_bytes(data) {
        let _ = (plugin.plugin_type(), plugin.name(), plugin.cni_version(), plugin.capabilities());
        PluginConf::from_bytes(&plugin.to_bytes()).expect("a plugin config we print parses again");
    }
    if let Ok(list) = NetConfList::from_bytes(data) {
        let _ = list.capabilities();
        NetConfList::from_bytes(&list.to_bytes()).expect("a conflist we print parses again");
    }
    if let Ok(config) = NetworkConfig::from_bytes(data) {
        let _ = (config.name(), config.cni_version(), config.capabilities());
        let _ = config.to_list();
    }
}

/// A result in any version (a delegate's stdout, a cached result, `prevResult`), converted
/// to every version and printed.
pub fn cni_result(data: &[u8]) {
    let defaults = std::iter::once(None).chain(all_versions().map(Some));
    for default in defaults {
        let Ok(result) = CniResult::from_json_with_default(data, default) else { continue };
        for to in all_versions() {
            let Ok(converted) = result.convert_to(to) else { continue };
            let printed = converted.to_json();
            let _ = converted.to_json_pretty();
            CniResult::from_json(printed.as_bytes())
                .unwrap_or_else(|e| panic!("a {to} result we print parses again: {e}: {printed}"));
        }
    }
}

/// The daemon's side of a request config: the shim's stdin merged under the daemon config,
/// parsed as the Multus NetConf; and the same bytes as a NAD's delegate config.
pub fn multus_config(data: &[u8]) {
    const DAEMON: &[u8] = br#"{"cniVersion":"0.3.1","chrootDir":"/hostroot","socketDir":"/host/run/multus/","confDir":"/host/etc/cni/net.d","binDir":"/opt/cni/bin","logLevel":"verbose","clusterNetwork":"cluster-net","readinessindicatorfile":"/x"}"#;
    for ignore_readiness in [false, true] {
        if let Ok(merged) = multus::config::merge_request_config_bytes(data, DAEMON, ignore_readiness) {
            let _ = multus::config::NetConf::from_bytes(&merged);
        }
    }
    let _ = multus::config::NetConf::from_bytes(data);
    let _ = multus::config::DaemonConfig::from_bytes(data);
    let _ = multus::config::ShimConfig::from_bytes(data);
    let element = multus::model::NetworkSelectionElement {
        name: "n".into(),
        interface: "net1".into(),
        mac: "02:00:00:00:00:01".into(),
        ips: vec!["10.1.1.5/24".into()],
        cni_args: Some(json!({"a": 1}).as_object().cloned().unwrap_or_default()),
        ..Default::default()
    };
    let _ = multus::delegate::load_delegate(data, None, "", "");
    let _ = multus::delegate::load_delegate(data, Some(&element), "0000:00:01.0", "vendor/nic");
    for conflist in [false, true] {
        let _ = multus::delegate::Delegate::from_bytes(data.to_vec(), conflist);
    }
}

/// Annotations arrive as strings from the API server.
pub fn selection(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = multus::selection::parse_network_selection(text, "default");
    let _ = multus::selection::parse_default_network(text, "kube-system");
    let _ = multus::selection::parse_network_object_name(text);
    let _ = multus::selection::validate_ip_request(text);
    let _ = multus::selection::parse_hardware_addr(text);
}

/// `CNI_ARGS` arrives as a JSON string in the request's `env`.
pub fn cni_args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(args) = CniArgs::parse(text) {
        let printed = args.to_string();
        let again = CniArgs::parse(&printed).expect("CNI_ARGS we print parse again");
        assert_eq!(again, args, "CNI_ARGS round trip");
    }
    let _ = CniArgs::parse_strict(text, &["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID"]);
    let _ = multus::k8s_args::parse_server_args(text);
    let _ = multus::k8s_args::parse_multus_args(text);
}

/// A delegate cache file as read on DEL (it may have been written by the Go daemon, or
/// damaged by a crash).
pub fn delegate_cache(data: &[u8]) {
    if let Ok(delegates) = multus::cache::parse_cache(data) {
        let written = multus::cache::serialize_delegates(&delegates);
        let again = multus::cache::parse_cache(&written).expect("a cache we write parses again");
        assert_eq!(again.len(), delegates.len(), "cache round trip keeps every delegate");
    }
}

/// What kube-mock decodes from a client's protobuf body.
pub fn kube_protobuf(data: &[u8]) {
    let _ = kube_mock::protobuf::decode_envelope(data);
    let _ = kube_mock::protobuf::decode_object(data);
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn bytes(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

const MULTUS_CONF: &str = r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim","capabilities":{"portMappings":true,"bandwidth":true},"logLevel":"verbose","logToStderr":true,"clusterNetwork":"/host/etc/cni/net.d/10-flannel.conflist","kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},"delegates":[{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}]}"#;
const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"mynet","disableCheck":false,"plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.22.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}]}},{"type":"tuning","capabilities":{"mac":true},"sysctl":{"net.ipv4.conf.all.log_martians":"1"}}]}"#;
const PLUGIN: &str = r#"{"cniVersion":"0.4.0","name":"macvlan-conf","type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"10.10.0.1/24","gateway":"10.10.0.254"}]},"prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.1.0.5/24","interface":0}]}}"#;

fn api_request_seeds() -> Vec<Vec<u8>> {
    let shim_request = multus_api::Request::from_env(
        [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "3f6955aa"),
            ("CNI_NETNS", "/var/run/netns/cni-1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=u"),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
        MULTUS_CONF.as_bytes().to_vec(),
    );
    let mut seeds = bytes(&[
        "null",
        "{}",
        r#"{"env":{"CNI_COMMAND":"DEL","CNI_CONTAINERID":"c"},"config":null}"#,
        r#"{"env":{"CNI_COMMAND":"ADD"},"config":"e30=","interfaceAttributes":{"ips":["10.1.1.5/24"],"mac":"02:00:00:00:00:01","cni-args":{"a":[1,2.5,"x",null,true]}}}"#,
        r#"{"code":50,"msg":"plugin not available","details":"x"}"#,
        "ContainerID:\"c\" ERRORED: boom\n",
    ]);
    seeds.push(shim_request.to_json());
    seeds.push(include_bytes!("../../crates/multus-api/tests/go_capture_request.json").to_vec());
    seeds
}

fn cni_config_seeds() -> Vec<Vec<u8>> {
    bytes(&[
        MULTUS_CONF,
        CONFLIST,
        PLUGIN,
        r#"{"name":"x","type":"y"}"#,
        r#"{"cniVersions":["0.4.0","1.1.0"],"name":"n","plugins":[]}"#,
    ])
}

fn cni_result_seeds() -> Vec<Vec<u8>> {
    let go_reply: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../crates/multus-api/tests/go_capture_add_reply.json"))
            .unwrap_or_default();
    let mut seeds = bytes(&[
        r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00::5/64"},"dns":{"nameservers":["8.8.8.8"],"domain":"x","search":["a"],"options":["ndots:5"]}}"#,
        r#"{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:04","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","address":"10.244.1.4/24","gateway":"10.244.1.1","interface":0},{"version":"6","address":"fd00::4/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{}}"#,
        r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","mtu":1500,"sandbox":"/x","socketPath":"/s","pciID":"0000:00:01.0"}],"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}],"routes":[{"dst":"10.0.0.0/8","gw":"10.0.0.1","mtu":1400,"advmss":1360,"priority":10,"table":100,"scope":253}],"dns":{"nameservers":["10.0.0.10"]}}"#,
        r#"{"ips":[{"address":"10.0.0.2/24"}]}"#,
    ]);
    if let Some(result) = go_reply.get("Result") {
        seeds.push(result.to_string().into_bytes());
    }
    seeds
}

fn multus_config_seeds() -> Vec<Vec<u8>> {
    bytes(&[
        MULTUS_CONF,
        CONFLIST,
        PLUGIN,
        r#"{"cniVersion":"1.0.0","name":"n","type":"multus-shim","readinessindicatorfile":"/r"}"#,
    ])
}

fn selection_seeds() -> Vec<Vec<u8>> {
    bytes(&[
        r#"[{"name":"macvlan-conf","namespace":"ns1","interface":"net1","ips":["10.1.1.5/24","fd00::5/64"],"mac":"02:00:00:00:00:01","infiniband-guid":"c2:11:22:33:44:55:66:77","default-route":["10.1.1.1"],"cni-args":{"a":1},"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000,"ingressBurst":10}}]"#,
        "macvlan-conf,ns2/bridge-conf@net2, sriov",
        "ns/name@if",
        "10.1.1.5/24",
        "02:00:00:00:00:01",
        "",
    ])
}

fn cni_args_seeds() -> Vec<Vec<u8>> {
    bytes(&[
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=3f69;K8S_POD_UID=f0bf",
        "IgnoreUnknown=true;MAC=02:00:00:00:00:01;IP=10.1.1.5/24,fd00::5/64",
        "a=b=c;;=",
    ])
}

fn delegate_cache_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![include_bytes!("../../crates/multus/tests/data/cache-cid-pod1.json").to_vec()];
    if let Ok(delegate) = multus::delegate::Delegate::from_bytes(CONFLIST.as_bytes().to_vec(), true) {
        seeds.push(multus::cache::serialize_delegates(&[delegate]));
    }
    seeds
}

fn kube_protobuf_seeds() -> Vec<Vec<u8>> {
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;
    let envelope = |kind: &str, raw: Vec<u8>| {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some("v1".into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = kube_mock::protobuf::PROTOBUF_MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("default".into()),
            uid: Some("f0bf".into()),
            annotations: [("k8s.v1.cni.cncf.io/networks".to_string(), "macvlan-conf".to_string())].into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            node_name: Some("node1".into()),
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.244.1.4".into()),
            ..Default::default()
        }),
    };
    let event = core::Event {
        metadata: Some(meta::ObjectMeta {
            name: Some("e".into()),
            namespace: Some("default".into()),
            ..Default::default()
        }),
        involved_object: Some(core::ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web-0".into()),
            ..Default::default()
        }),
        reason: Some("AddedInterface".into()),
        message: Some("Add eth0 [10.244.1.4/24]".into()),
        r#type: Some("Normal".into()),
        ..Default::default()
    };
    vec![envelope("Pod", pod.encode_to_vec()), envelope("Event", event.encode_to_vec()), envelope("ConfigMap", vec![])]
}
