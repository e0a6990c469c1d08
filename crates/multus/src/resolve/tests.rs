use super::*;
use crate::model::Nad;
use serde_json::Value;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

type Nads = BTreeMap<(String, String), Nad>;

fn nads(list: &[(&str, &str, &str)]) -> Nads {
    list.iter()
        .map(|(ns, name, config)| {
            (
                (ns.to_string(), name.to_string()),
                Nad {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    config: config.to_string(),
                    ..Default::default()
                },
            )
        })
        .collect()
}

fn with_resource(mut n: Nads, ns: &str, name: &str, resource: &str) -> Nads {
    let nad = n.get_mut(&(ns.to_string(), name.to_string())).unwrap();
    nad.annotations.insert(crate::model::RESOURCE_NAME_ANNOTATION.into(), resource.into());
    n
}

fn pod(ns: &str, annotations: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        namespace: ns.into(),
        name: "pod1".into(),
        uid: "uid1".into(),
        annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn who() -> PodRef {
    PodRef::new("default", "pod1", "uid1")
}

/// A confDir with a cluster network file; returns (tempdir, settings).
fn setup() -> (tempfile::TempDir, ResolveSettings) {
    let dir = tempfile::tempdir().unwrap();
    let conflist = dir.path().join("10-cluster.conflist");
    std::fs::write(&conflist, r#"{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","k":1}]}"#)
        .unwrap();
    let settings = ResolveSettings {
        cni_version: "1.0.0".into(),
        cluster_network: conflist.display().to_string(),
        conf_dir: dir.path().join("multus.d"),
        ..Default::default()
    };
    (dir, settings)
}

const MACVLAN: &str = r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","capabilities":{"ips":true}}"#;

fn names(r: &Resolved) -> Vec<&str> {
    r.delegates.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn comma_annotation_and_missing_nad() {
    // §12.4 item 44
    let (_d, s) = setup();
    let n = nads(&[("default", "macvlan-net", MACVLAN), ("other", "bridge-net", r#"{"type":"bridge"}"#)]);
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net@macvlan1, other/bridge-net")]);
    let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["cluster", "default/macvlan-net", "other/bridge-net"]);
    assert!(r.delegates[0].is_master && r.delegates[0].is_conflist());
    assert_eq!(r.delegates[1].ifname_request, "macvlan1");
    assert_eq!(r.delegates[1].network_name(), "macvlan-net");
    assert!(r.warnings.is_empty());

    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net,no-such-nad")]);
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition (no-such-nad) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"no-such-nad\" not found"
    );
    assert_eq!(e.network(), Some("default/no-such-nad"));
    assert_eq!(e.warnings().len(), 1);
    assert_eq!(e.warnings()[0].reason, "NoNetworkFound");
    assert!(e.warnings()[0].event);
    assert_eq!(
        e.warnings()[0].message,
        "cannot find a network-attachment-definition (no-such-nad) in namespace (default): networkattachmentdefinition.k8s.cni.cncf.io \"no-such-nad\" not found"
    );
}

#[test]
fn json_annotation_default_route_and_errors() {
    // §12.4 items 45-46
    let (_d, s) = setup();
    let n = nads(&[("default", "macvlan-net", MACVLAN), ("kube-system", "sys-net", r#"{"type":"ipvlan"}"#)]);
    let p = pod(
        "default",
        &[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"macvlan-net","ips":["10.1.1.11/24"],"default-route":["10.1.1.254"]},{"name":"sys-net","namespace":"kube-system"}]"#,
        )],
    );
    let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["cluster", "default/macvlan-net", "kube-system/sys-net"]);
    let flags: Vec<(bool, bool)> = r.delegates.iter().map(|d| (d.filter_v4_gateway, d.filter_v6_gateway)).collect();
    assert_eq!(flags, [(true, true), (false, true), (true, true)]);
    assert_eq!(r.delegates[1].default_route, Some(vec!["10.1.1.254".parse().unwrap()]));

    let p = pod("default", &[(NETWORKS_ANNOTATION, r#"[{"name":"macvlan-net""#)]);
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().starts_with("Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: "), "{e}");

    // ECMP
    let p = pod(
        "default",
        &[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"macvlan-net","default-route":["10.1.1.254"]},{"name":"sys-net","namespace":"kube-system","default-route":["10.2.2.254"]}]"#,
        )],
    );
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Multus: [default/pod1/uid1]: error loading k8s delegates k8s args: multus does not support ECMP for default-route"
    );
}

#[test]
fn nad_with_empty_spec_and_name_injection() {
    // §12.4 items 47-48
    let (_d, s) = setup();
    std::fs::create_dir_all(&s.conf_dir).unwrap();
    std::fs::write(s.conf_dir.join("10-ondisk.conf"), r#"{"cniVersion":"1.0.0","name":"ondisk","type":"ptp"}"#)
        .unwrap();
    let n =
        nads(&[("default", "ondisk", ""), ("default", "mini", r#"{"type":"mynet"}"#), ("default", "missing-file", "")]);
    let p = pod("default", &[(NETWORKS_ANNOTATION, "ondisk,mini")]);
    let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
    assert_eq!(r.delegates[1].plugin_type(), "ptp");
    assert_eq!(r.delegates[2].network_name(), "mini");
    let p = pod("default", &[(NETWORKS_ANNOTATION, "missing-file")]);
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(
        e.to_string()
            .ends_with(&format!("no network available in the name missing-file in cni dir {}", s.conf_dir.display())),
        "{e}"
    );
    std::fs::write(s.conf_dir.join("05-bad.conf"), "{not json").unwrap();
    let p = pod("default", &[(NETWORKS_ANNOTATION, "ondisk")]);
    assert!(resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).is_err());
}

#[test]
fn cluster_network_from_nad_and_default_networks() {
    // §12.3 item 31, §12.4 item 49
    let (_d, mut s) = setup();
    s.cluster_network = "cluster-nad".into();
    s.default_networks = vec!["extra-nad".into()];
    let n = nads(&[
        ("kube-system", "cluster-nad", r#"{"cniVersion":"1.0.0","name":"c","type":"bridge"}"#),
        ("kube-system", "extra-nad", MACVLAN),
    ]);
    let r = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["kube-system/cluster-nad", "kube-system/extra-nad"]);
    assert!(r.delegates[0].is_master && !r.delegates[1].is_master);
    let r = resolve_add_delegates(&s, Some(&who()), Some(&pod("kube-system", &[])), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["kube-system/cluster-nad"]);

    s.default_networks = vec!["nope".into()];
    let e = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Multus: [default/pod1/uid1]: failed to get clusterNetwork/defaultNetworks: getNetDelegate: cannot find network: nope"
    );
    // the miss emits NoNetworkFound
    assert!(e.warnings().iter().any(|w| w.event && w.reason == "NoNetworkFound"));

    s.cluster_network = "nope".into();
    let e = resolve_add_delegates(&s, Some(&who()), Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Multus: [default/pod1/uid1]: failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork nope in namespace kube-system"
    );
    assert_eq!(e.network(), Some("nope"));
}

#[test]
fn cluster_network_from_file_dir_and_name() {
    // §12.4 item 50
    let (d, mut s) = setup();
    let n = nads(&[]);
    // file path (conflist) done in setup
    let r = resolve_cluster_network(&s, &n).unwrap();
    assert_eq!(names(&r), ["cluster"]);
    // single-plugin file
    let conf = d.path().join("20-single.conf");
    std::fs::write(&conf, r#"{"cniVersion":"1.0.0","name":"single","type":"ptp"}"#).unwrap();
    s.cluster_network = conf.display().to_string();
    assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["single"]);
    std::fs::write(&conf, r#"{"cniVersion":"1.0.0","name":"single"}"#).unwrap();
    let e = resolve_cluster_network(&s, &n).unwrap_err();
    assert!(e.to_string().starts_with(
        "Multus: failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork"
    ));
    assert!(e.warnings().iter().any(|w| w.message.contains("perhaps this is a .conflist?")));
    // directory: first file, no name matching
    s.cluster_network = d.path().display().to_string();
    assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["cluster"]);
    let empty = d.path().join("emptydir");
    std::fs::create_dir(&empty).unwrap();
    s.cluster_network = empty.display().to_string();
    assert!(resolve_cluster_network(&s, &n).is_err());
    // a name from confDir
    std::fs::create_dir_all(&s.conf_dir).unwrap();
    std::fs::write(
        s.conf_dir.join("10-named.conflist"),
        r#"{"cniVersion":"1.0.0","name":"named","plugins":[{"type":"ptp"}]}"#,
    )
    .unwrap();
    s.cluster_network = "named".into();
    let r = resolve_cluster_network(&s, &n).unwrap();
    assert_eq!(names(&r), ["named"]);
    assert!(r.delegates[0].is_conflist());
    // nonexistent path, bad confDir
    s.cluster_network = "/nonexistent/x.conf".into();
    assert!(
        resolve_cluster_network(&s, &n).unwrap_err().warnings()[0]
            .message
            .contains("stat /nonexistent/x.conf: no such file or directory")
    );
    s.cluster_network = "named".into();
    s.conf_dir = "/nonexistent".into();
    assert!(resolve_cluster_network(&s, &n).is_err());
}

#[test]
fn default_network_annotation_replaces_master() {
    // §12.4 item 51, §5.7
    let (_d, s) = setup();
    let n = nads(&[
        ("kube-system", "alt", r#"{"cniVersion":"1.0.0","name":"alt","type":"ptp"}"#),
        ("default", "macvlan-net", MACVLAN),
    ]);
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt@ext0"), (NETWORKS_ANNOTATION, "macvlan-net")]);
    let r = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["kube-system/alt", "default/macvlan-net"]);
    assert!(r.delegates[0].is_master);
    assert_eq!(r.delegates[0].ifname_request, "ext0");
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt,alt")]);
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().contains("TryLoadPodDelegates: error in loading K8s cluster default network from pod annotation: tryLoadK8sPodDefaultNetwork: more than one default network is specified"), "{e}");
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "missing")]);
    let e = resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().contains("tryLoadK8sPodDefaultNetwork: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition (missing) in namespace (kube-system)"), "{e}");
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "")]);
    assert!(resolve_add_delegates(&s, Some(&who()), Some(&p), &n, &mut NoDevices).is_err());
}

#[test]
fn settings_from_an_effective_config() {
    let conf = crate::config::NetConf::from_bytes(
        br#"{"cniVersion":"1.0.0","clusterNetwork":"/etc/cni/net.d/10-c.conflist","defaultNetworks":["d1"],
                "multusNamespace":"multus","confDir":"/c","systemNamespaces":["s1","s2"],"namespaceIsolation":true,
                "globalNamespaces":"g1, g2","auxiliaryCNIChainName":"aux","delegates":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    assert_eq!(
        ResolveSettings::from_netconf(&conf),
        ResolveSettings {
            cni_version: "1.0.0".into(),
            cluster_network: "/etc/cni/net.d/10-c.conflist".into(),
            default_networks: vec!["d1".into()],
            multus_namespace: "multus".into(),
            conf_dir: PathBuf::from("/c"),
            system_namespaces: vec!["s1".into(), "s2".into()],
            namespace_isolation: true,
            global_namespaces: vec!["g1".into(), "g2".into()],
            auxiliary_cni_chain_name: "aux".into(),
            static_delegates: vec![json!({"type":"bridge"})],
        }
    );
    // The request defaults are the resolver's defaults.
    let conf = crate::config::NetConf::from_bytes(br#"{"clusterNetwork":"c"}"#).unwrap();
    assert_eq!(
        ResolveSettings::from_netconf(&conf),
        ResolveSettings { cluster_network: "c".into(), ..ResolveSettings::default() }
    );
}

#[test]
fn nad_keys_name_every_nad_resolution_may_need() {
    let settings = ResolveSettings {
        cluster_network: "k8s-pod-network".into(),
        default_networks: vec!["extra".into(), "/etc/cni/net.d/x.conf".into()],
        ..Default::default()
    };
    let p = pod(
        "default",
        &[(NETWORKS_ANNOTATION, "a, other/b@net9, a"), (DEFAULT_NETWORK_ANNOTATION, "kube-system/primary")],
    );
    let k = |ns: &str, n: &str| (ns.to_string(), n.to_string());
    assert_eq!(
        nad_keys(&settings, Some(&p)),
        vec![
            k("kube-system", "k8s-pod-network"),
            k("kube-system", "extra"),
            k("kube-system", "primary"),
            k("default", "a"),
            k("other", "b")
        ]
    );
    // No default networks in a system namespace; a path names no NAD; no pod, no annotations.
    let sys = pod("kube-system", &[(NETWORKS_ANNOTATION, "x")]);
    assert_eq!(nad_keys(&settings, Some(&sys)), vec![k("kube-system", "k8s-pod-network"), k("kube-system", "x")]);
    let (_dir, file_settings) = setup();
    assert!(nad_keys(&file_settings, None).is_empty());
    // Namespace isolation stops at the first element it refuses, as resolution does.
    let isolated = ResolveSettings { namespace_isolation: true, ..file_settings };
    let p = pod("default", &[(NETWORKS_ANNOTATION, "a,other/b,c")]);
    assert_eq!(nad_keys(&isolated, Some(&p)), vec![k("default", "a")]);
}

#[test]
fn the_networks_of_one_pod_have_a_size_limit() {
    let (_dir, settings) = setup();
    let big = format!(r#"{{"cniVersion":"1.0.0","type":"macvlan","pad":"{}"}}"#, "x".repeat(1 << 20));
    let plugins: Vec<String> = (0..1000).map(|_| r#"{"type":"tuning"}"#.to_string()).collect();
    let many = format!(r#"{{"cniVersion":"1.0.0","plugins":[{}]}}"#, plugins.join(","));
    let n = nads(&[("default", "big", &big), ("default", "many", &many)]);
    // Three uses of a 1 MiB NAD fit, five do not.
    let ok = pod("default", &[(NETWORKS_ANNOTATION, "big,big,big")]);
    assert_eq!(
        resolve_add_delegates(&settings, Some(&who()), Some(&ok), &n, &mut NoDevices).unwrap().delegates.len(),
        4
    );
    let over = pod("default", &[(NETWORKS_ANNOTATION, "big,big,big,big,big")]);
    let e = resolve_add_delegates(&settings, Some(&who()), Some(&over), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().contains("the networks of one pod may use together"), "{e}");
    // cni-args that every one of 1000 plugins would get are refused before they are copied.
    let args = json!({"blob": "y".repeat(10_000)});
    let annotation = json!([{"name": "many", "cni-args": args}]).to_string();
    let p = pod("default", &[(NETWORKS_ANNOTATION, annotation.as_str())]);
    let e = resolve_add_delegates(&settings, Some(&who()), Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().contains("the delegate config would be 100"), "{e}");
}

#[test]
fn a_missing_nad_can_say_why() {
    struct Refusing;
    impl NadLookup for Refusing {
        fn get_nad(&self, _: &str, _: &str) -> Option<Nad> {
            None
        }
        fn missing_reason(&self, _: &str, name: &str) -> Option<String> {
            Some(format!("{name} is too large"))
        }
    }
    let (_dir, settings) = setup();
    let p = pod("default", &[(NETWORKS_ANNOTATION, "big")]);
    let e = resolve_add_delegates(&settings, Some(&who()), Some(&p), &Refusing, &mut NoDevices).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("cannot find a network-attachment-definition (big) in namespace (default): big is too large"),
        "{e}"
    );
    assert_eq!(
        e.warnings()[0].message,
        "cannot find a network-attachment-definition (big) in namespace (default): big is too large"
    );
}

#[test]
fn namespace_isolation() {
    // §12.4 item 54
    let (_d, mut s) = setup();
    s.namespace_isolation = true;
    let n = nads(&[("kube-system", "net1", MACVLAN), ("test", "local", MACVLAN)]);
    let p = pod("test", &[(NETWORKS_ANNOTATION, "local,kube-system/net1")]);
    let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut NoDevices).unwrap_err();
    assert!(e.to_string().ends_with(": GetNetworkDelegates: namespace isolation enabled, annotation violates permission, pod is in namespace test but refers to target namespace kube-system"), "{e}");
    assert!(e.to_string().starts_with(
        "Multus: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: "
    ));
    s.global_namespaces = vec!["kube-system".into(), "donkey-kong".into()];
    let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut NoDevices).unwrap();
    assert_eq!(r.delegates.len(), 3);
}

#[test]
fn device_ids_consumed_per_resource_and_shared_with_the_override() {
    let (_d, s) = setup();
    let sriov = r#"{"cniVersion":"1.0.0","type":"sriov"}"#;
    let n = nads(&[
        ("default", "a", sriov),
        ("default", "b", sriov),
        ("default", "c", sriov),
        ("kube-system", "alt", sriov),
    ]);
    let n = with_resource(n, "default", "a", "intel.com/sriov");
    let n = with_resource(n, "default", "b", "intel.com/sriov");
    let n = with_resource(n, "default", "c", "intel.com/sriov");
    let n = with_resource(n, "kube-system", "alt", "intel.com/sriov");
    let mut devices: BTreeMap<String, Vec<String>> =
        [("intel.com/sriov".to_string(), vec!["0000:01".to_string(), "0000:02".to_string()])].into();
    let p = pod("default", &[(NETWORKS_ANNOTATION, "a,b,c")]);
    let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut devices).unwrap();
    let ids: Vec<&str> = r.delegates.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["", "0000:01", "0000:02", ""]);
    let v: Value = serde_json::from_slice(r.delegates[1].bytes()).unwrap();
    assert_eq!(v["pciBusID"], "0000:01");
    assert_eq!(r.delegates[1].resource_name, "intel.com/sriov");
    assert_eq!(r.delegates[3].resource_name, "");

    // the default-network override takes from the same pool (no duplicate)
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt"), (NETWORKS_ANNOTATION, "a")]);
    let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut devices).unwrap();
    let ids: Vec<&str> = r.delegates.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["0000:01", "0000:02"]);

    // a failing resource client fails the resolution
    struct Broken;
    impl DeviceIdSource for Broken {
        fn device_ids(&mut self, _: &str) -> Result<Vec<String>, DeviceLookupError> {
            Err(DeviceLookupError::resource_map("kubelet socket unavailable"))
        }
    }
    let p = pod("default", &[(NETWORKS_ANNOTATION, "a")]);
    let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut Broken).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "getKubernetesDelegate: failed to get resourceMap from ResourceClient: kubelet socket unavailable"
        ),
        "{e}"
    );
    let mut unreachable: Result<BTreeMap<String, Vec<String>>, _> =
        Err(DeviceLookupError::client("dial unix /var/lib/kubelet/pod-resources/kubelet.sock: timeout"));
    let e = resolve_add_delegates(&s, None, Some(&p), &n, &mut unreachable).unwrap_err();
    assert!(e.to_string().ends_with("getKubernetesDelegate: failed to get a ResourceClient instance: dial unix /var/lib/kubelet/pod-resources/kubelet.sock: timeout"), "{e}");

    // Only networks with a resource name ask for devices: the probe tells whether to look.
    let mut probe = DeviceProbe::default();
    resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut probe).unwrap();
    assert!(!probe.asked);
    resolve_add_delegates(&s, None, Some(&p), &n, &mut probe).unwrap();
    assert!(probe.asked);

    // A network whose resource has no device left runs without one, and an event says so.
    let mut none: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let r = resolve_add_delegates(&s, None, Some(&p), &n, &mut none).unwrap();
    assert!(r.warnings.iter().any(|w| w.reason == Warning::NO_DEVICE && w.event), "{:?}", r.warnings);
}

#[test]
fn auxiliary_chain() {
    let (d, mut s) = setup();
    s.auxiliary_cni_chain_name = "vendor-cni-chain".into();
    let n = nads(&[]);
    // no subdirectory: only passthru → not appended
    let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
    assert_eq!(r.delegates.len(), 1);
    std::fs::create_dir(d.path().join("vendor-cni-chain")).unwrap();
    std::fs::write(d.path().join("vendor-cni-chain/10-tuning.conf"), r#"{"type":"tuning","sysctl":{"x":"1"}}"#)
        .unwrap();
    let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["cluster", "vendor-cni-chain"]);
    let aux = &r.delegates[1];
    assert!(!aux.is_master && aux.is_conflist());
    let v: Value = serde_json::from_slice(aux.bytes()).unwrap();
    assert_eq!(
        v,
        json!({"cniVersion":"1.0.0","name":"vendor-cni-chain","plugins":[{"type":"passthru","name":"passthru-cni"},{"type":"tuning","sysctl":{"x":"1"}}]})
    );
    assert_eq!(crate::plan::interface_name(aux, 1, "eth0"), "net1");
    // invalid name → silently disabled (log warning)
    s.auxiliary_cni_chain_name = "bad/name".into();
    let r = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap();
    assert_eq!(r.delegates.len(), 1);
    assert!(r.warnings.iter().any(|w| w.reason == "AuxiliaryChainDisabled" && !w.event));
    // cluster network not a path
    s.auxiliary_cni_chain_name = "vendor-cni-chain".into();
    s.cluster_network = "cluster-nad".into();
    let n = nads(&[("kube-system", "cluster-nad", MACVLAN)]);
    let e = resolve_add_delegates(&s, None, Some(&pod("default", &[])), &n, &mut NoDevices).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Multus: auxiliary chain used but ClusterNetwork must be a path, and it is not a path: cluster-nad"
    );
}

#[test]
fn del_recompute_keeps_what_resolved() {
    let (_d, s) = setup();
    let n = nads(&[("default", "macvlan-net", MACVLAN)]);
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net")]);
    let r = resolve_del_delegates(&s, None, &p, &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["cluster", "default/macvlan-net"]);
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan-net,gone")]);
    let r = resolve_del_delegates(&s, None, &p, &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["cluster"]);
    assert!(r.warnings.iter().any(|w| w.message.starts_with("Multus: failed to get delegates: ")
        && w.message.ends_with(", but continue to delete clusterNetwork")));
    let mut bad = s.clone();
    bad.cluster_network = "/nonexistent.conflist".into();
    assert!(resolve_del_delegates(&bad, None, &p, &n, &mut NoDevices).is_err());
}

#[test]
fn static_delegates_and_status_resolution() {
    let s = ResolveSettings {
        static_delegates: vec![
            json!({"cniVersion":"1.0.0","name":"a","type":"bridge"}),
            json!({"cniVersion":"1.0.0","name":"b","type":"ptp"}),
        ],
        ..Default::default()
    };
    let n = nads(&[]);
    let r = resolve_add_delegates(&s, None, None, &n, &mut NoDevices).unwrap();
    assert_eq!(names(&r), ["a", "b"]);
    assert!(r.delegates[0].is_master && !r.delegates[1].is_master);
    let plans = crate::plan::plan_all(
        &r.delegates,
        &crate::plan::PlanContext { ifname: "eth0", ..Default::default() },
        crate::plan::Operation::Add,
    )
    .unwrap();
    assert_eq!(plans.iter().map(|p| p.ifname.as_str()).collect::<Vec<_>>(), ["eth0", "net1"]);
    assert_eq!(names(&resolve_cluster_network(&s, &n).unwrap()), ["a"]);
    let bad = ResolveSettings { static_delegates: vec![json!({"name":"x"})], ..Default::default() };
    assert_eq!(
        resolve_cluster_network(&bad, &n).unwrap_err().to_string(),
        "Multus: error loading netconf: LoadNetConf: failed to load delegate 0 config: LoadDelegateNetConf: failed with: LoadDelegateNetConfList: delegate must have the 'type' or 'plugin' field"
    );
    assert!(resolve_cluster_network(&ResolveSettings::default(), &n).is_err());
}
