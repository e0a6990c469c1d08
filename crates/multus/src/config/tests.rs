use super::*;
use serde_json::json;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `daemon-config.json` of the Go v4.2.4 reference capture.
pub(crate) const REF_DAEMON_CONFIG: &str = r#"{
    "cniVersion": "1.0.0",
    "logLevel": "verbose",
    "logToStderr": true,
    "logFile": "/tmp/multus-ref-state/log/multus-daemon.log",
    "binDir": "/usr/lib/cni",
    "cniDir": "/tmp/multus-ref-state/var/lib/cni/multus",
    "confDir": "/tmp/multus-ref-state/etc/cni/multus/net.d",
    "cniConfigDir": "/tmp/multus-ref-state/etc/cni/net.d",
    "multusAutoconfigDir": "/tmp/multus-ref-state/etc/cni/net.d",
    "multusConfigFile": "auto",
    "socketDir": "/tmp/multus-ref/run",
    "daemonSocketDir": "/tmp/multus-ref/run"
}
"#;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn merged(client: Value, daemon: Value, ignore: bool) -> Value {
    let out = merge_request_config(&serde_json::to_vec(&client).unwrap(), &obj(daemon), ignore).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn key_set(keys: &[&str]) -> std::collections::BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn key_lists_are_what_the_parsers_read() {
    let read = key_audit::keys_read(|| {
        DaemonConfig::from_bytes(b"{}").unwrap();
    });
    assert_eq!(read, key_set(DAEMON_CONFIG_KEYS));
    let read = key_audit::keys_read(|| {
        NetConf::from_bytes(br#"{"clusterNetwork":"c"}"#).unwrap();
    });
    assert_eq!(read, key_set(NETCONF_KEYS));
    let read = key_audit::keys_read(|| {
        LogOptions::from_map(&Map::new()).unwrap();
    });
    assert_eq!(read, key_set(LOG_OPTIONS_KEYS));
    let read = key_audit::keys_read(|| {
        PerNodeCertificate::from_map(&Map::new()).unwrap();
    });
    assert_eq!(read, key_set(PER_NODE_CERTIFICATE_KEYS));
    let read = key_audit::keys_read(|| {
        crate::generate::GeneratorConfig::from_bytes(b"{}").unwrap();
    });
    assert_eq!(read, key_set(crate::generate::GENERATOR_KEYS));
}

#[test]
fn daemon_config_reference_file() {
    let d = DaemonConfig::from_bytes(REF_DAEMON_CONFIG.as_bytes()).unwrap();
    assert!(d.is_auto_mode());
    assert_eq!(d.socket_dir, "/tmp/multus-ref/run");
    assert_eq!(d.socket_path(), PathBuf::from("/tmp/multus-ref/run/multus.sock"));
    assert_eq!(d.cni_version, "1.0.0");
    assert_eq!(d.log_level, "verbose");
    assert!(d.log_to_stderr);
    assert_eq!(d.log_file, "/tmp/multus-ref-state/log/multus-daemon.log");
    assert_eq!(d.chroot_dir, "");
    assert_eq!(d.raw.len(), 12);
    assert_eq!(d.connection_limit().unwrap(), None);
}

#[test]
fn daemon_config_defaults() {
    let d = DaemonConfig::from_bytes(b"{}").unwrap();
    assert_eq!(d.socket_dir, DEFAULT_SOCKET_DIR);
    assert_eq!(d.multus_config_file, "auto");
    assert!(d.is_auto_mode());
    assert!(!d.log_to_stderr);
    assert!(!d.enable_pprof);
    assert_eq!(d.metrics_port, None);
    assert_eq!(d.per_node_certificate, None);
    let d = DaemonConfig::from_bytes(br#"{"multusConfigFile":"/tmp/x.conf","socketDir":null}"#).unwrap();
    assert!(!d.is_auto_mode());
    assert_eq!(d.socket_dir, DEFAULT_SOCKET_DIR);
}

#[test]
fn daemon_config_all_d_keys() {
    let d = DaemonConfig::from_bytes(
        br#"{"chrootDir":"/hostroot","connectionLimit":3,"metricsPort":9091,"enablePprof":true,
            "perNodeCertificate":{"enabled":true,"bootstrapKubeconfig":"/b","certDir":"/c"},
            "logOptions":{"maxAge":1,"compress":false},"readinessindicatorfile":"/r"}"#,
    )
    .unwrap();
    assert_eq!(d.chroot_dir, "/hostroot");
    assert_eq!(d.connection_limit().unwrap(), Some(3));
    assert_eq!(d.metrics_port, Some(9091));
    assert!(d.enable_pprof);
    let cert = d.per_node_certificate.clone().unwrap();
    assert!(cert.enabled);
    assert_eq!(cert.bootstrap_kubeconfig, "/b");
    assert_eq!(cert.cert_dir, "/c");
    assert_eq!(cert.cert_duration_or_default(), "10m");
    let lo = d.log_options.clone().unwrap();
    assert_eq!(lo.max_age, Some(1));
    assert_eq!(lo.max_size, None);
    assert_eq!(lo.effective(), EffectiveLogOptions { max_age: 1, max_size: 100, max_backups: 5, compress: false });
    assert_eq!(d.readiness_indicator_file, "/r");
}

#[test]
fn daemon_config_errors() {
    for (input, needle) in [
        (&b"not json"[..], "failed to unmarshall the daemon configuration"),
        (b"[]", "expected a JSON object"),
        (br#"{"socketDir":1}"#, "\"socketDir\""),
        (br#"{"connectionLimit":"3"}"#, "\"connectionLimit\""),
        (br#"{"connectionLimit":1.5}"#, "\"connectionLimit\""),
        (br#"{"metricsPort":70000}"#, "metricsPort"),
        (br#"{"logToStderr":"true"}"#, "\"logToStderr\""),
        (br#"{"perNodeCertificate":{"enabled":1}}"#, "perNodeCertificate: key \"enabled\""),
        (br#"{"logOptions":{"maxAge":"x"}}"#, "logOptions: key \"maxAge\""),
    ] {
        let err = DaemonConfig::from_bytes(input).unwrap_err().to_string();
        assert!(err.contains(needle), "{err} should contain {needle}");
    }
    for bad in [0, -1] {
        let d = DaemonConfig::from_bytes(format!(r#"{{"connectionLimit":{bad}}}"#).as_bytes()).unwrap();
        assert_eq!(d.connection_limit(), Err(ConfigError::ConnectionLimit(bad)));
    }
}

// §12.1 item 6
#[test]
fn merge_overrides_and_adds_every_daemon_key() {
    let out = merged(
        json!({"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim",
               "readinessindicatorfile":"/client","keep":1}),
        json!({"cniVersion":"1.0.0","readinessindicatorfile":"/daemon","binDir":"/b",
               "nested":{"a":1}}),
        false,
    );
    assert_eq!(
        out,
        json!({"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus-shim",
               "readinessindicatorfile":"/daemon","keep":1,"binDir":"/b","nested":{"a":1}})
    );
}

// §12.1 item 7
#[test]
fn merge_in_auto_mode_drops_readiness_indicator() {
    let out = merged(
        json!({"readinessindicatorfile":"/client","name":"n"}),
        json!({"readinessindicatorfile":"/daemon","cniVersion":"0.4.0"}),
        true,
    );
    assert_eq!(out, json!({"name":"n","cniVersion":"0.4.0"}));
}

#[test]
fn merge_is_shallow_and_keeps_client_order() {
    let client = br#"{"a":1,"runtimeConfig":{"portMappings":[],"x":1},"b":2}"#;
    let daemon = obj(json!({"runtimeConfig":{"y":2},"c":3}));
    let out = merge_request_config(client, &daemon, false).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":1,"runtimeConfig":{"y":2},"b":2,"c":3}"#);
}

#[test]
fn merge_empty_daemon_config() {
    let client = b"{ \"b\": 1,  \"a\": 2 }";
    assert_eq!(merge_request_config(client, &Map::new(), false).unwrap(), client.to_vec());
    // Even invalid client bytes pass through untouched (the reference does the same).
    assert_eq!(merge_request_config(b"xx", &Map::new(), false).unwrap(), b"xx".to_vec());
    // Auto mode still strips the readiness indicator.
    let out = merge_request_config(br#"{"readinessindicatorfile":"/x","a":1}"#, &Map::new(), true).unwrap();
    assert_eq!(out, br#"{"a":1}"#.to_vec());
}

#[test]
fn merge_errors() {
    let daemon = obj(json!({"a":1}));
    for bad in [&b"{"[..], b"null", b"[1]", b"\"s\""] {
        let err = merge_request_config(bad, &daemon, false).unwrap_err().to_string();
        assert!(err.starts_with("failed to unmarshall CNI config: "), "{err}");
    }
    let err = merge_request_config_bytes(b"{}", b"{", false).unwrap_err().to_string();
    assert!(err.starts_with("failed to unmarshall CNI override config: "), "{err}");
    assert_eq!(merge_request_config_bytes(b"zz", b"", true).unwrap(), b"zz".to_vec());
    assert_eq!(merge_request_config_bytes(br#"{"a":1}"#, br#"{"b":2}"#, false).unwrap(), br#"{"a":1,"b":2}"#.to_vec());
}

fn netconf(v: Value) -> Result<NetConf, ConfigError> {
    NetConf::from_bytes(&serde_json::to_vec(&v).unwrap())
}

// §12.5 item 62
#[test]
fn netconf_valid_and_defaults() {
    let c = netconf(json!({"name":"multus-cni-network","type":"multus-shim",
        "cniVersion":"0.3.1","clusterNetwork":"/etc/cni/net.d/10-x.conflist"}))
    .unwrap();
    assert_eq!(c.bin_dir, DEFAULT_BIN_DIR);
    assert_eq!(c.conf_dir, DEFAULT_CONF_DIR);
    assert_eq!(c.cni_dir, DEFAULT_CNI_DIR);
    assert!(c.log_to_stderr);
    assert_eq!(c.multus_namespace, "kube-system");
    assert_eq!(c.non_isolated_namespaces, vec!["default"]);
    assert_eq!(c.system_namespaces, vec!["kube-system"]);
    assert_eq!(c.readiness_indicator_file, ""); // §12.5 item 65
    assert!(!c.namespace_isolation);
    assert!(!c.retry_delete_on_error);
    assert_eq!(c.plugin_type, "multus-shim");
    assert_eq!(c.daemon_socket_dir_or_default(), DEFAULT_SOCKET_DIR);
    assert!(!c.uses_static_delegates());
    assert_eq!(c.raw.len(), 4);
}

#[test]
fn netconf_invalid_json() {
    let err = NetConf::from_bytes(b"{\"name\":").unwrap_err().to_string();
    assert!(err.starts_with("LoadNetConf: failed to load netconf: "), "{err}");
}

// §12.5 item 62: log keys
#[test]
fn netconf_log_keys() {
    let c = netconf(json!({"clusterNetwork":"x","logFile":"/var/log/multus.log",
        "logLevel":"debug","logToStderr":false,
        "logOptions":{"maxAge":5,"maxSize":100,"maxBackups":5,"compress":true}}))
    .unwrap();
    assert_eq!(c.log_file, "/var/log/multus.log");
    assert_eq!(c.log_level, "debug");
    assert!(!c.log_to_stderr);
    assert_eq!(
        c.log_options,
        Some(LogOptions { max_age: Some(5), max_size: Some(100), max_backups: Some(5), compress: Some(true) })
    );
}

// §12.5 item 63
#[test]
fn netconf_global_namespaces() {
    let c = netconf(json!({"clusterNetwork":"x","namespaceIsolation":true,
        "globalNamespaces":" kube-system, donkey-kong ,default"}))
    .unwrap();
    assert!(c.namespace_isolation);
    assert_eq!(c.non_isolated_namespaces, vec!["kube-system", "donkey-kong", "default"]);
    assert!(c.is_non_isolated_namespace("donkey-kong"));
    assert!(!c.is_non_isolated_namespace("other"));
    // An explicit list replaces "default".
    let c = netconf(json!({"clusterNetwork":"x","globalNamespaces":"a"})).unwrap();
    assert_eq!(c.non_isolated_namespaces, vec!["a"]);
}

// §12.5 item 64
#[test]
fn netconf_delegates_and_prev_result() {
    let c = netconf(json!({"cniVersion":"0.3.1","delegates":[
        {"type":"weave-net","cniVersion":"0.3.1"},
        {"name":"l","plugins":[{"type":"bridge"}]}],
        "prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.5/32"}]}}))
    .unwrap();
    assert!(c.uses_static_delegates());
    assert_eq!(c.delegates.len(), 2);
    assert_eq!(c.delegates[0]["type"], "weave-net");
    assert!(c.prev_result.is_some());

    for v in [json!({}), json!({"kubeconfig":"/k"}), json!({"delegates":[]})] {
        assert_eq!(netconf(v), Err(ConfigError::NoDelegates));
    }
    assert_eq!(
        ConfigError::NoDelegates.to_string(),
        "LoadNetConf: at least one delegate/clusterNetwork must be specified"
    );
    let err = netconf(json!({"delegates":[{"name":"x"}]})).unwrap_err().to_string();
    assert!(err.contains("delegate must have the 'type' or 'plugin' field"), "{err}");
    assert!(err.starts_with("LoadNetConf: failed to load delegate 0 config: "), "{err}");
    for bad in [json!({"plugins":[]}), json!({"plugins":[{"x":1}]})] {
        let err = netconf(json!({"delegates":[{"type":"a"}, bad]})).unwrap_err().to_string();
        assert!(err.contains("delegate 1 config"), "{err}");
        assert!(err.contains("a plugin delegate must have the 'type' field"), "{err}");
    }
    // With clusterNetwork the static delegates are not used and not checked.
    assert!(netconf(json!({"clusterNetwork":"x","delegates":[{"name":"x"}]})).is_ok());
    let err = netconf(json!({"cniVersion":"0.3.1","delegates":[{"type":"a"}],"prevResult":{"ips":"x"}}))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("LoadNetConf: could not parse prevResult: "), "{err}");
}

// §12.5 item 65
#[test]
fn netconf_readiness_and_system_namespaces() {
    let c = netconf(json!({"clusterNetwork":"x","readinessindicatorfile":"/ready",
        "systemNamespaces":["kube-system","kube-public"],"multusNamespace":"multus"}))
    .unwrap();
    assert_eq!(c.readiness_indicator_file, "/ready");
    assert!(c.is_system_namespace("kube-public"));
    assert!(!c.is_system_namespace("default"));
    assert_eq!(c.multus_namespace, "multus");
    let c = netconf(json!({"clusterNetwork":"x","systemNamespaces":[]})).unwrap();
    assert!(!c.is_system_namespace("kube-system"));
}

#[test]
fn netconf_all_r_keys() {
    let c = netconf(json!({"cniVersion":"1.0.0","name":"n","type":"multus-shim",
        "clusterNetwork":"cn","defaultNetworks":["a","b"],"runtimeConfig":{"portMappings":[]},
        "capabilities":{"portMappings":true,"bandwidth":false,"odd":"yes"},
        "auxiliaryCNIChainName":"aux","retryDeleteOnError":true,"daemonSocketDir":"/d",
        "kubeconfig":"/k","binDir":"/b","confDir":"/c","cniDir":"/cd","unknown":{"x":1}}))
    .unwrap();
    assert_eq!(c.cni_version, "1.0.0");
    assert_eq!(c.name, "n");
    assert_eq!(c.default_networks, vec!["a", "b"]);
    assert_eq!(c.runtime_config, Some(json!({"portMappings":[]})));
    assert_eq!(c.capabilities, BTreeMap::from([("bandwidth".to_string(), false), ("portMappings".to_string(), true)]));
    assert_eq!(c.auxiliary_cni_chain_name, "aux");
    assert!(c.retry_delete_on_error);
    assert_eq!(c.daemon_socket_dir_or_default(), "/d");
    assert_eq!(c.kubeconfig, "/k");
    assert_eq!((c.bin_dir.as_str(), c.conf_dir.as_str(), c.cni_dir.as_str()), ("/b", "/c", "/cd"));
    assert_eq!(c.raw["unknown"], json!({"x":1}));
}

#[test]
fn netconf_wrong_types_name_the_key() {
    for (v, key) in [
        (json!({"clusterNetwork":1}), "\"clusterNetwork\""),
        (json!({"clusterNetwork":"x","defaultNetworks":"a"}), "\"defaultNetworks\""),
        (json!({"clusterNetwork":"x","defaultNetworks":[1]}), "\"defaultNetworks[0]\""),
        (json!({"delegates":{"type":"x"}}), "\"delegates\""),
        (json!({"delegates":[1]}), "\"delegates[0]\""),
        (json!({"clusterNetwork":"x","runtimeConfig":[]}), "\"runtimeConfig\""),
        (json!({"clusterNetwork":"x","capabilities":[]}), "\"capabilities\""),
        (json!({"clusterNetwork":"x","namespaceIsolation":"true"}), "\"namespaceIsolation\""),
        (json!({"clusterNetwork":"x","prevResult":"r"}), "\"prevResult\""),
    ] {
        let err = netconf(v).unwrap_err().to_string();
        assert!(err.contains(key), "{err} should name {key}");
    }
    // null means absent, as in Go.
    let c = netconf(json!({"clusterNetwork":"x","binDir":null,"logToStderr":null})).unwrap();
    assert_eq!(c.bin_dir, DEFAULT_BIN_DIR);
    assert!(c.log_to_stderr);
}

#[test]
fn shim_config() {
    let s = ShimConfig::from_bytes(
        br#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim",
                "capabilities":{"x":"odd"},"plugins":7,"logLevel":"debug"}"#,
    )
    .unwrap();
    assert_eq!(s.cni_version, "0.3.1");
    assert_eq!(s.daemon_socket_dir, "/run/multus/");
    assert_eq!(s.socket_path(), PathBuf::from("/run/multus/multus.sock"));
    assert_eq!(s.log_level, "debug");
    assert!(!s.log_to_stderr);
    let s =
        ShimConfig::from_bytes(br#"{"daemonSocketDir":"/host/run/multus","logFile":"/l","logToStderr":true}"#).unwrap();
    assert_eq!(s.socket_path(), PathBuf::from("/host/run/multus/multus.sock"));
    assert_eq!(s.log_file, "/l");
    assert!(s.log_to_stderr);
    let s = ShimConfig::from_bytes(br#"{"daemonSocketDir":"","logFile":null}"#).unwrap();
    assert_eq!(s.daemon_socket_dir, DEFAULT_SOCKET_DIR);
    assert!(ShimConfig::from_bytes(b"{").is_err());
    let err = ShimConfig::from_bytes(br#"{"logToStderr":"yes"}"#).unwrap_err().to_string();
    assert!(err.starts_with("invalid multus-shim configuration: "), "{err}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,8}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn keyed_object() -> impl Strategy<Value = Map<String, Value>> {
        let key =
            prop_oneof![Just("readinessindicatorfile".to_string()), Just("cniVersion".to_string()), "[a-z]{1,3}",];
        prop::collection::btree_map(key, value(), 0..6).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn merge_never_panics_on_arbitrary_bytes(
            client in prop::collection::vec(any::<u8>(), 0..64),
            daemon in keyed_object(),
            ignore in any::<bool>(),
        ) {
            let _ = merge_request_config(&client, &daemon, ignore);
        }

        #[test]
        fn merge_contains_every_daemon_key(
            client in keyed_object(),
            daemon in keyed_object(),
            ignore in any::<bool>(),
        ) {
            let bytes = serde_json::to_vec(&client).unwrap();
            let out = merge_request_config(&bytes, &daemon, ignore).unwrap();
            let out: Map<String, Value> = serde_json::from_slice(&out).unwrap();
            for (k, v) in &daemon {
                if ignore && k == READINESS_INDICATOR_KEY {
                    prop_assert!(!out.contains_key(k));
                } else {
                    prop_assert_eq!(out.get(k), Some(v));
                }
            }
            for (k, v) in &client {
                if !daemon.contains_key(k) && (!ignore || k != READINESS_INDICATOR_KEY) {
                    prop_assert_eq!(out.get(k), Some(v));
                }
            }
        }

        #[test]
        fn netconf_never_panics(v in keyed_object()) {
            let _ = NetConf::from_map(v.clone());
            let _ = DaemonConfig::from_map(v);
        }
    }
}
