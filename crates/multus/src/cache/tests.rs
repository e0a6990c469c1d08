use super::*;
use crate::delegate::{load_delegate, load_delegate_from_conflist};
use crate::model::NetworkSelectionElement;

const GOLDEN: &[u8] = include_bytes!("../../tests/data/cache-cid-pod1.json");

#[test]
fn a_conflist_entry_without_plugins_is_refused() {
    // Found by the fuzzer (fuzz/regressions/delegate_cache/conflist-without-plugins.json).
    let input = include_bytes!("../../../../fuzz/regressions/delegate_cache/conflist-without-plugins.json");
    let e = parse_cache(input).unwrap_err();
    assert!(e.to_string().contains("a conflist without plugins"), "{e}");
}

#[test]
fn reads_the_captured_go_cache() {
    let ds = parse_cache(GOLDEN).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(
        ds.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["mock-cluster-net", "default/macvlan-net", "default/bridge-net"]
    );
    assert!(ds[0].is_master && !ds[1].is_master);
    assert!(ds.iter().all(|d| !d.is_conflist()));
    assert_eq!(ds[1].network_name(), "macvlan-net");
    assert_eq!(ds[1].plugin_type(), "macvlan");
    assert_eq!(
        std::str::from_utf8(ds[1].bytes()).unwrap(),
        r#"{"cniVersion": "1.0.0", "name": "macvlan-net", "type": "macvlan", "master": "mveth0", "mode": "bridge", "ipam": {"type": "host-local", "subnet": "192.168.100.0/24", "dataDir": "/work/ref/run/var/lib/cni/networks"}}"#
    );
}

#[test]
fn golden_write_matches_the_go_file_except_legacy_key() {
    // What we write for the same delegates equals the Go v4.2.4 file minus `CNINetworkConfigList`.
    let ds = parse_cache(GOLDEN).unwrap();
    let ours: Value = serde_json::from_slice(&serialize_delegates(&ds)).unwrap();
    let mut go: Value = serde_json::from_slice(GOLDEN).unwrap();
    for e in go.as_array_mut().unwrap() {
        e.as_object_mut().unwrap().shift_remove("CNINetworkConfigList");
    }
    assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&go).unwrap());
}

fn sample() -> Vec<Delegate> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("10-kindnet.conflist");
    std::fs::write(
        &path,
        r#"{"cniVersion":"0.3.1","name":"kindnet","plugins":[{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"10.244.1.0/24"}]]},"mtu":1500},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("kindnet")).unwrap();
    std::fs::write(
        dir.path().join("kindnet/50-tuning.conf"),
        r#"{"type":"tuning","sysctl":{"net.ipv4.conf.all.log_martians":"1"}}"#,
    )
    .unwrap();
    let list = crate::delegate::load_conflist_file(&path).unwrap();
    let mut master = load_delegate_from_conflist(&list, None, "", "").unwrap();
    master.is_master = true;
    master.filter_v4_gateway = true;
    master.filter_v6_gateway = true;
    let el: NetworkSelectionElement = serde_json::from_value(json!({
        "name":"macvlan-conf","namespace":"default","interface":"macvlan1","mac":"c2:b0:57:49:47:f1",
        "ips":["10.1.1.11/24"],"default-route":["10.1.1.254"],"infiniband-guid":"c2:b0:57:49:47:f1:00:01",
        "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
        "bandwidth":{"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4}
    }))
    .unwrap();
    let mut nad = load_delegate(
        br#"{ "cniVersion": "0.3.1", "name": "macvlan-conf", "type": "macvlan", "master": "eth0", "capabilities": {"ips": true, "mac": true}, "ipam": {"type": "static"}, "dns": {"nameservers": ["10.96.0.10"]} }"#,
        Some(&el),
        "0000:af:06.0",
        "intel.com/sriov",
    )
    .unwrap();
    nad.filter_v6_gateway = true;
    vec![master, nad]
}

#[test]
fn snapshot_cache_file() {
    let s = String::from_utf8(serialize_delegates(&sample())).unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    insta::assert_json_snapshot!(v);
    // what is in Bytes
    let bytes: Vec<String> = sample().iter().map(|d| String::from_utf8(d.bytes().to_vec()).unwrap()).collect();
    insta::assert_json_snapshot!("cache_file_bytes", bytes);
}

/// With `dynamicNetworks`: the master records the selection, a plugged-in entry its mark (keys
/// the Go reader ignores); everything else is as without them.
#[test]
fn snapshot_cache_file_with_dynamic_networks() {
    let mut delegates = sample();
    delegates[0].selection = Some("macvlan-conf".into());
    delegates[1].hotplugged = true;
    let v: Value = serde_json::from_slice(&serialize_delegates(&delegates)).unwrap();
    insta::assert_json_snapshot!(v);
    let reread = parse_cache(&serialize_delegates(&delegates)).unwrap();
    assert_eq!((reread[0].selection.as_deref(), reread[1].hotplugged), (Some("macvlan-conf"), true));
}

#[test]
fn write_read_round_trip_atomic_and_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cni_dir = dir.path().join("var/lib/cni/multus");
    let ds = sample();
    let path = write_cache(&cni_dir, "cid1", &ds).unwrap();
    assert_eq!(path, cni_dir.join("cid1"));
    assert_eq!(std::fs::metadata(&cni_dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // no temporary file left behind
    assert_eq!(std::fs::read_dir(&cni_dir).unwrap().count(), 1);
    let CacheRead::Found { delegates, .. } = read_cache(&cni_dir, "cid1") else { panic!() };
    assert_eq!(delegates, ds);
    assert!(delegates[0].is_conflist());
    // lossless conflist bytes with the subdirectory plugin (v4.2.x DEL bug fixed)
    let v: Value = serde_json::from_slice(delegates[0].bytes()).unwrap();
    assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/run/cni-ipam-state");
    assert_eq!(v["plugins"][2]["type"], "tuning");
    // overwrite in place
    write_cache(&cni_dir, "cid1", &ds[..1]).unwrap();
    let CacheRead::Found { delegates, .. } = read_cache(&cni_dir, "cid1") else { panic!() };
    assert_eq!(delegates.len(), 1);
    remove_cache(&cni_dir, "cid1").unwrap();
    remove_cache(&cni_dir, "cid1").unwrap();
    assert_eq!(read_cache(&cni_dir, "cid1"), CacheRead::Missing);
}

#[test]
fn write_to_an_invalid_path_fails() {
    // §12.3 item 20
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let e = write_cache(&file.join("sub"), "cid", &sample()).unwrap_err();
    assert!(e.to_string().starts_with("saveScratchNetConf: failed to create the multus data directory("), "{e}");
}

#[test]
fn go_reader_view_of_our_file() {
    // The fields the Go daemon relies on: ConfList.plugins marks conflists, Bytes is the config.
    let v: Value = serde_json::from_slice(&serialize_delegates(&sample())).unwrap();
    assert_eq!(v[0]["ConfList"]["plugins"].as_array().unwrap().len(), 3);
    assert_eq!(v[1]["ConfList"], json!({}));
    assert_eq!(v[1]["Name"], "default/macvlan-conf");
    assert_eq!(v[1]["default-route"], json!(["10.1.1.254"]));
    assert_eq!(v[1]["deviceID"], "0000:af:06.0");
    let b = B64.decode(v[1]["Bytes"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["pciBusID"], "0000:af:06.0");
}

#[test]
fn legacy_conflist_entry_restored_losslessly() {
    // A v4.2.x conflist entry: lossy Bytes (plugin keys dropped, housekeeping deviceID kept)
    // + CNINetworkConfigList with the raw plugin bytes.
    let list_bytes = br#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","datastore_type":"kubernetes","kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
    let p0 = br#"{"type":"calico","datastore_type":"kubernetes","kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"}}"#;
    let p1 = br#"{"type":"portmap","capabilities":{"portMappings":true}}"#;
    let lossy = br#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","ipam":{},"dns":{},"deviceID":"d1","pciBusID":"d1","args":{"cni":{"x":"y"}}},{"type":"portmap","capabilities":{"portMappings":true},"ipam":{},"dns":{},"deviceID":"d1","pciBusID":"d1"}]}"#;
    let file = json!([{
        "Conf":{"cniVersion":"","ipam":{}},
        "ConfList":{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","ipam":{},"dns":{}},{"type":"portmap","capabilities":{"portMappings":true},"ipam":{},"dns":{}}]},
        "CNINetworkConfigList":{"Name":"k8s-pod-network","CNIVersion":"0.3.1","DisableCheck":false,"DisableGC":false,"LoadOnlyInlinedPlugins":false,
            "Plugins":[{"Network":{"type":"calico"},"Bytes":B64.encode(p0)},{"Network":{"type":"portmap"},"Bytes":B64.encode(p1)}],
            "Bytes":B64.encode(list_bytes)},
        "Name":"k8s-pod-network","IsFilterV4Gateway":false,"IsFilterV6Gateway":false,"deviceID":"d1","resourceName":"r",
        "Bytes":B64.encode(lossy)
    }]);
    let ds = parse_cache(file.to_string().as_bytes()).unwrap();
    assert!(ds[0].is_conflist());
    let v: Value = serde_json::from_slice(ds[0].bytes()).unwrap();
    assert_eq!(v["plugins"][0]["kubernetes"]["kubeconfig"], "/etc/cni/net.d/calico-kubeconfig");
    assert_eq!(v["plugins"][0]["deviceID"], "d1");
    assert_eq!(v["plugins"][0]["args"], json!({"cni":{"x":"y"}}));
    assert_eq!(v["plugins"][1]["pciBusID"], "d1");
    assert!(v["plugins"][0].get("ipam").is_none());
}

#[test]
fn invalid_caches() {
    for bad in
        [&b"{"[..], b"[]", b"{}", br#"[{"Name":"x"}]"#, br#"[{"Bytes":"!!!"}]"#, br#"[{"Bytes":"eyJ4IjoxfQ=="}]"#]
    {
        assert!(parse_cache(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn del_error_and_cache_removal() {
    assert_eq!(combine_del_errors(&[]), None);
    assert_eq!(combine_del_errors(&["a".into(), "b".into()]).unwrap(), "errors: a / b");
    assert!(should_remove_cache(false, &["x".into()]));
    assert!(should_remove_cache(true, &[]));
    assert!(!should_remove_cache(true, &["boom".into()]));
    assert!(should_remove_cache(true, &["open /x: no such file or directory".into()]));
}

#[test]
fn del_decision_table() {
    let ds = parse_cache(GOLDEN).unwrap();
    let found = CacheRead::Found { path: "/c/x".into(), delegates: ds.clone() };
    assert!(matches!(del_decision(found.clone(), false), DelSource::UseCache { .. }));
    assert!(matches!(del_decision(found, true), DelSource::UseCache { .. }));
    assert_eq!(del_decision(CacheRead::Missing, true), DelSource::Recompute);
    let DelSource::Nothing { reason } = del_decision(CacheRead::Missing, false) else { panic!() };
    assert!(reason.starts_with("Multus: failed to get the cached delegates file: "));
    assert!(reason.ends_with(", cannot properly delete"));
    for r in [CacheRead::Invalid("bad".into()), CacheRead::Unreadable("perm".into())] {
        assert!(matches!(del_decision(r.clone(), true), DelSource::Nothing { .. }));
        assert!(matches!(del_decision(r, false), DelSource::Nothing { .. }));
    }
}
