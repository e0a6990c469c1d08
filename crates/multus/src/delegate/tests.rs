use super::*;
use serde_json::json;
use std::path::Path;

fn el(v: Value) -> NetworkSelectionElement {
    serde_json::from_value(v).unwrap()
}

fn bytes_json(d: &Delegate) -> Value {
    serde_json::from_slice(d.bytes()).unwrap()
}

#[test]
fn single_config_kept_verbatim_without_injection() {
    let raw = br#"{"cniVersion": "1.0.0", "name": "n", "type": "bridge", "x": 1}"#;
    let d = load_delegate(raw, None, "", "").unwrap();
    assert_eq!(d.bytes(), raw);
    assert!(!d.is_conflist());
    assert_eq!(d.name, "n");
    assert_eq!(d.plugin_type(), "bridge");
}

#[test]
fn conflist_detection_and_errors() {
    let d = load_delegate(br#"{"name":"l","plugins":[{"type":"a"},{"type":"b"}]}"#, None, "", "").unwrap();
    assert!(d.is_conflist());
    assert_eq!(d.name, "l");
    assert_eq!(
        load_delegate(br#"{"name":"x"}"#, None, "", "").unwrap_err().to_string(),
        "LoadDelegateNetConf: failed with: LoadDelegateNetConfList: delegate must have the 'type' or 'plugin' field"
    );
    assert_eq!(
        load_delegate(br#"{"name":"x","plugins":[{"name":"y"}]}"#, None, "", "").unwrap_err().to_string(),
        "LoadDelegateNetConf: failed with: LoadDelegateNetConfList: a plugin delegate must have the 'type' field"
    );
    assert_eq!(
        load_delegate(br#"{"name":"x","plugins":[]}"#, None, "", "").unwrap_err(),
        DelegateError::PluginWithoutType
    );
    assert!(matches!(load_delegate(br#"{"name":"x","plugins":7}"#, None, "", ""), Err(DelegateError::ConfList(_))));
    assert!(matches!(load_delegate(b"{bad", None, "", ""), Err(DelegateError::Unmarshal(_))));
    assert!(matches!(load_delegate(b"[1]", None, "", ""), Err(DelegateError::Unmarshal(_))));
    assert!(matches!(load_delegate(br#"{"type":3}"#, None, "", ""), Err(DelegateError::Unmarshal(_))));
}

#[test]
fn device_id_injection_single_and_every_plugin() {
    // §12.5 item 66
    let d = load_delegate(br#"{"name":"n","type":"sriov"}"#, None, "0000:af:06.0", "intel.com/sriov").unwrap();
    let v = bytes_json(&d);
    assert_eq!(v["deviceID"], "0000:af:06.0");
    assert_eq!(v["pciBusID"], "0000:af:06.0");
    assert_eq!(d.device_id, "0000:af:06.0");
    assert_eq!(d.resource_name, "intel.com/sriov");

    let d = load_delegate(
        br#"{"name":"l","plugins":[{"type":"sriov","k":1},{"type":"tuning"}]}"#,
        None,
        "0000:af:06.1",
        "r",
    )
    .unwrap();
    let v = bytes_json(&d);
    for p in v["plugins"].as_array().unwrap() {
        assert_eq!(p["deviceID"], "0000:af:06.1");
        assert_eq!(p["pciBusID"], "0000:af:06.1");
    }
    assert_eq!(v["plugins"][0]["k"], 1);
}

#[test]
fn element_device_id_ignored_when_resource_device_id_exists() {
    let e = el(json!({"name":"nad","namespace":"ns","deviceID":"from-element"}));
    let d = load_delegate(br#"{"name":"n","type":"t"}"#, Some(&e), "from-resource", "r").unwrap();
    assert_eq!(d.device_id, "from-resource");
    let d = load_delegate(br#"{"name":"n","type":"t"}"#, Some(&e), "", "").unwrap();
    assert_eq!(d.device_id, "from-element");
    assert_eq!(d.resource_name, "");
    // the element's device ID is a capability arg, not injected into the config
    assert!(bytes_json(&d).get("deviceID").is_none());
}

#[test]
fn cni_args_injection() {
    // §12.5 item 67
    let e = el(json!({"name":"nad","namespace":"ns","cni-args":{"a":"1","b":true}}));
    let d = load_delegate(br#"{"name":"n","type":"t"}"#, Some(&e), "", "").unwrap();
    assert_eq!(bytes_json(&d)["args"], json!({"cni":{"a":"1","b":true}}));

    let d = load_delegate(br#"{"name":"n","type":"t","args":{"cni":{"a":"0","keep":1},"other":2}}"#, Some(&e), "", "")
        .unwrap();
    assert_eq!(bytes_json(&d)["args"], json!({"cni":{"a":"1","keep":1,"b":true},"other":2}));

    let d = load_delegate(br#"{"name":"n","type":"t","args":{"other":2}}"#, Some(&e), "", "").unwrap();
    assert_eq!(bytes_json(&d)["args"], json!({"other":2,"cni":{"a":"1","b":true}}));

    let d = load_delegate(
        br#"{"name":"l","plugins":[{"type":"a"},{"type":"b","args":{"cni":{"z":0}}}]}"#,
        Some(&e),
        "",
        "",
    )
    .unwrap();
    let v = bytes_json(&d);
    assert_eq!(v["plugins"][0]["args"], json!({"cni":{"a":"1","b":true}}));
    assert_eq!(v["plugins"][1]["args"], json!({"cni":{"z":0,"a":"1","b":true}}));
}

#[test]
fn cni_args_into_odd_shapes_is_an_error_not_a_panic() {
    let e = el(json!({"name":"nad","cni-args":{"a":"1"}}));
    for raw in [
        r#"{"name":"n","type":"t","args":"str"}"#,
        r#"{"name":"n","type":"t","args":{"cni":[1]}}"#,
        r#"{"name":"l","plugins":[{"type":"a"},3]}"#,
        r#"{"name":"l","plugins":[{"type":"a","args":5}]}"#,
    ] {
        assert!(matches!(load_delegate(raw.as_bytes(), Some(&e), "", ""), Err(DelegateError::Inject(_))), "{raw}");
    }
}

#[test]
fn selection_fields_copied() {
    // §12.5 items 70-71
    let e = el(json!({
        "name":"nad","namespace":"ns","interface":"macvlan1","mac":"c2:b0:57:49:47:f1",
        "ips":["10.1.1.11/24"],"infiniband-guid":"c2:b0:57:49:47:f1:00:01",
        "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
        "bandwidth":{"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4},
        "default-route":["10.1.1.254"]
    }));
    let d = load_delegate(br#"{"name":"n","type":"t"}"#, Some(&e), "", "").unwrap();
    assert_eq!(d.name, "ns/nad");
    assert_eq!(d.network_name(), "n");
    assert_eq!(d.ifname_request, "macvlan1");
    assert_eq!(d.mac_request, "c2:b0:57:49:47:f1");
    assert_eq!(d.ip_request, vec!["10.1.1.11/24"]);
    assert_eq!(d.infiniband_guid_request, "c2:b0:57:49:47:f1:00:01");
    assert_eq!(d.port_mappings_request.len(), 1);
    assert_eq!(d.bandwidth_request.as_ref().unwrap().egress_burst, 4);
    assert_eq!(d.default_route, Some(vec!["10.1.1.254".parse().unwrap()]));

    for (gw, expect) in [
        (json!(null), None),
        (json!([]), Some(vec![])),
        (json!(["10.0.0.1", "fd00::1"]), Some(vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()])),
    ] {
        let mut v = json!({"name":"nad"});
        if !gw.is_null() {
            v["default-route"] = gw;
        }
        let d = load_delegate(br#"{"name":"n","type":"t"}"#, Some(&el(v)), "", "").unwrap();
        assert_eq!(d.default_route, expect);
    }
    // deprecated interfaceRequest
    let d =
        load_delegate(br#"{"name":"n","type":"t"}"#, Some(&el(json!({"name":"x","interfaceRequest":"old0"}))), "", "")
            .unwrap();
    assert_eq!(d.ifname_request, "old0");
}

#[test]
fn libcni_invalid_configs_refused_at_load() {
    // conflist without a name
    assert!(matches!(load_delegate(br#"{"plugins":[{"type":"a"}]}"#, None, "", ""), Err(DelegateError::Invalid(_))));
    // second plugin without a type
    assert!(matches!(
        load_delegate(br#"{"name":"l","plugins":[{"type":"a"},{"x":1}]}"#, None, "", ""),
        Err(DelegateError::Invalid(_))
    ));
}

#[test]
fn nad_config_name_injection() {
    // §12.4 item 48
    let b = config_from_nad("mynad", r#"{"type":"mynet"}"#, Path::new("/nonexistent")).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap(), json!({"type":"mynet","name":"mynad"}));
    let b = config_from_nad("mynad", r#"{"type":"mynet","name":""}"#, Path::new("/x")).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["name"], "mynad");
    let raw = r#"{"type":"mynet", "name":"keep"}"#;
    assert_eq!(config_from_nad("mynad", raw, Path::new("/x")).unwrap(), raw.as_bytes());
    assert!(
        config_from_nad("mynad", "[1]", Path::new("/x"))
            .unwrap_err()
            .to_string()
            .starts_with("failed to unmarshal Spec.Config")
    );
    assert!(config_from_nad("mynad", "{", Path::new("/x")).is_err());
}

#[test]
fn nad_with_empty_spec_reads_conf_dir() {
    // §12.4 item 47
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-a.conf"), r#"{"name":"other","type":"x"}"#).unwrap();
    std::fs::write(dir.path().join("20-b.conflist"), r#"{"name":"mynad","plugins":[{"type":"y"}]}"#).unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "junk").unwrap();
    let b = config_from_nad("mynad", "", dir.path()).unwrap();
    assert!(String::from_utf8(b).unwrap().contains(r#""type":"y""#));
    assert!(
        config_from_nad("nope", "", dir.path())
            .unwrap_err()
            .to_string()
            .starts_with("no network available in the name nope")
    );
    std::fs::write(dir.path().join("05-bad.conf"), "{bad").unwrap();
    assert!(
        config_from_nad("mynad", "", dir.path()).unwrap_err().to_string().starts_with("Error loading CNI config file")
    );
    std::fs::write(dir.path().join("05-bad.conf"), r#"{"name":"mynad"}"#).unwrap();
    assert!(
        config_from_nad("mynad", "", dir.path())
            .unwrap_err()
            .to_string()
            .ends_with("no 'type'; perhaps this is a .conflist?")
    );
    assert!(
        config_from_nad("mynad", "", Path::new("/nonexistent/dir"))
            .unwrap_err()
            .to_string()
            .starts_with("No networks found in")
    );
}

#[test]
fn conflist_file_subdirectory_loading_is_lossless() {
    // §12.5 item 72, §5.6
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("10-net.conflist");
    std::fs::write(
        &path,
        r#"{"cniVersion":"0.4.0","name":"kindnet","x-list":"keep","plugins":[{"type":"calico","kubernetes":{"kubeconfig":"/k"},"datastore_type":"kubernetes"}]}"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("kindnet")).unwrap();
    std::fs::write(dir.path().join("kindnet/20-tuning.conf"), r#"{"type":"tuning","sysctl":{"a":"1"}}"#).unwrap();
    std::fs::write(
        dir.path().join("kindnet/10-portmap.conf"),
        r#"{"type":"portmap","capabilities":{"portMappings":true}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("kindnet/ignored.json"), r#"{"type":"nope"}"#).unwrap();
    let list = load_conflist_file(&path).unwrap();
    let d = load_delegate_from_conflist(&list, None, "", "").unwrap();
    let v = bytes_json(&d);
    assert_eq!(v["x-list"], "keep");
    let types: Vec<&str> = v["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["calico", "portmap", "tuning"]);
    assert_eq!(v["plugins"][0]["kubernetes"]["kubeconfig"], "/k");
    assert_eq!(v["plugins"][0]["datastore_type"], "kubernetes");
    assert_eq!(v["plugins"][2]["sysctl"]["a"], "1");
    assert!(d.config().capabilities().contains_key("portMappings"));

    // loadOnlyInlinedPlugins disables the subdirectory
    std::fs::write(&path, r#"{"name":"kindnet","loadOnlyInlinedPlugins":true,"plugins":[{"type":"calico"}]}"#).unwrap();
    assert_eq!(load_conflist_file(&path).unwrap().plugins.len(), 1);
    // no inline plugins, only the subdirectory
    std::fs::write(&path, r#"{"name":"kindnet"}"#).unwrap();
    assert_eq!(load_conflist_file(&path).unwrap().plugins.len(), 2);
    std::fs::write(&path, r#"{"name":"empty"}"#).unwrap();
    assert_eq!(load_conflist_file(&path).unwrap_err().to_string(), "no plugin configs found");
}

#[test]
fn cni_version_injection_is_lossless() {
    let mut d =
        load_delegate(br#"{"name":"l","plugins":[{"type":"a","kubernetes":{"k":1}}],"x":2}"#, None, "", "").unwrap();
    assert!(d.inject_cni_version_if_missing("0.3.1").unwrap());
    let v = bytes_json(&d);
    assert_eq!(v["cniVersion"], "0.3.1");
    assert_eq!(v["plugins"][0]["kubernetes"]["k"], 1);
    assert_eq!(v["x"], 2);
    assert!(!d.inject_cni_version_if_missing("1.0.0").unwrap());
    let mut single = load_delegate(br#"{"name":"n","type":"t"}"#, None, "", "").unwrap();
    assert!(!single.inject_cni_version_if_missing("1.0.0").unwrap());
}
