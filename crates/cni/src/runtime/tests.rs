//! Runtime semantics against the recording fake: no processes, no root.

use super::*;
use crate::error::CniError;
use crate::exec::testing::{RecordingExec, Reply};
use serde_json::json;

const BRIDGE_RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"00:11:22:33:44:55"},{"name":"veth1","mac":"55:44:33:22:11:11"},{"name":"eth0","mac":"99:88:77:66:55:44","sandbox":"/var/run/netns/ctr"}],"ips":[{"address":"10.1.0.5/16","gateway":"10.1.0.1","interface":2}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],"dns":{}}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    fake: RecordingExec,
    rt: CniRuntime<RecordingExec>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let fake = RecordingExec::new();
    let rt = CniRuntime::new(
        vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        dir.path().join("cache"),
        fake.clone(),
    );
    Fixture { _dir: dir, fake, rt }
}

fn list(v: Value) -> NetConfList {
    NetConfList::from_value(v).unwrap()
}

fn chain(version: &str) -> NetConfList {
    list(json!({
        "cniVersion": version,
        "name": "dbnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "x-unknown": {"kept": true}, "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
            {"type": "tuning", "capabilities": {"mac": true, "portMappings": false, "bandwidth": true},
             "sysctl": {"net.core.somaxconn": "500"}, "name": "ignored-name", "cniVersion": "0.1.0"}
        ]
    }))
}

fn rt_conf() -> RuntimeConf {
    RuntimeConf::new("ctr-1", "/var/run/netns/ctr", "eth0")
        .with_arg("IgnoreUnknown", "1")
        .with_arg("K8S_POD_NAME", "pod-a")
        .with_capability("mac", json!("00:11:22:33:44:66"))
        .with_capability("portMappings", json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]))
        .with_capability("ips", json!(["10.1.0.9/16"]))
}

#[tokio::test]
async fn add_chains_results_and_filters_runtime_config() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let result = f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.unwrap();
    assert_eq!(result.ips.len(), 1);

    let calls = f.fake.calls();
    assert_eq!(f.fake.commands(), vec![("bridge".into(), "ADD".into()), ("tuning".into(), "ADD".into())]);
    let first = calls[0].stdin_json();
    assert!(first.get("prevResult").is_none());
    assert!(first.get("runtimeConfig").is_none(), "bridge declares no capabilities");
    assert_eq!(first["x-unknown"], json!({"kept": true}));
    insta::assert_json_snapshot!("add_second_plugin_request", calls[1].stdin_json());
    // Keys come out sorted, as Go re-marshals a map.
    let raw = String::from_utf8(calls[1].stdin.clone()).unwrap();
    assert!(raw.starts_with(r#"{"capabilities":"#), "{raw}");
}

#[tokio::test]
async fn add_passes_prev_result_in_the_version_the_plugin_answered() {
    let f = fixture();
    // A plugin answering in the wrong version: libcni does not convert between plugins.
    f.fake.on(
        "bridge",
        Command::Add,
        Reply::stdout(r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/16"}]}"#),
    );
    f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.unwrap();
    let prev = f.fake.calls()[1].stdin_json()["prevResult"].clone();
    assert_eq!(prev, json!({"cniVersion":"0.3.1","ips":[{"address":"10.1.0.5/16","version":"4"}]}));
}

#[tokio::test]
async fn add_result_without_version_takes_the_config_version() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(r#"{"ips":[{"address":"10.1.0.5/16"}]}"#));
    f.fake.on("tuning", Command::Add, Reply::with(|c| Ok(c.stdin_json()["prevResult"].to_string().into_bytes())));
    let r = f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.unwrap();
    assert_eq!(r.cni_version, Version::V1_0_0);
}

#[tokio::test]
async fn env_has_all_six_variables_in_libcni_order() {
    let f = fixture();
    f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.unwrap();
    let env = &f.fake.calls()[0].env;
    assert_eq!(
        env,
        &vec![
            ("CNI_COMMAND".to_string(), "ADD".to_string()),
            ("CNI_CONTAINERID".into(), "ctr-1".into()),
            ("CNI_NETNS".into(), "/var/run/netns/ctr".into()),
            ("CNI_ARGS".into(), "IgnoreUnknown=1;K8S_POD_NAME=pod-a".into()),
            ("CNI_IFNAME".into(), "eth0".into()),
            ("CNI_PATH".into(), "/opt/cni/bin:/usr/lib/cni".into()),
        ]
    );
    f.fake.clear_calls();
    f.rt.status_network_list(&chain("1.1.0")).await.unwrap();
    let env = &f.fake.calls()[0].env;
    assert_eq!(env[0], ("CNI_COMMAND".into(), "STATUS".into()));
    for (k, v) in &env[1..5] {
        assert_eq!(v, "", "{k} must be set and empty");
    }
    assert_eq!(env[5].1, "/opt/cni/bin:/usr/lib/cni");
}

#[tokio::test]
async fn validation_happens_before_any_exec() {
    let f = fixture();
    let cases = [
        (RuntimeConf::new("", "/n", "eth0"), 3),
        (RuntimeConf::new("-bad", "/n", "eth0"), 4),
        (RuntimeConf::new("ok", "/n", "way-too-long-interface"), 4),
        (RuntimeConf::new("ok", "/n", "a/b"), 4),
    ];
    for (rt, code) in cases {
        let e = f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Validation(_)), "{e:?}");
        assert_eq!(e.to_cni_error().code, code);
    }
    let bad_name = list(json!({"cniVersion":"1.0.0","name":"bad name","plugins":[{"type":"bridge"}]}));
    let e = f.rt.add_network_list(&bad_name, &rt_conf()).await.unwrap_err();
    assert_eq!(e.to_cni_error().code, 7);
    // A type with a path separator, in the *second* plugin: nothing runs at all.
    let traversal =
        list(json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"../../bin/sh"}]}));
    let e = f.rt.add_network_list(&traversal, &rt_conf()).await.unwrap_err();
    assert_eq!(e.to_string(), r#"plugin type="../../bin/sh" failed (add): invalid plugin name"#);
    // A missing second plugin, too.
    f.fake.not_found("tuning");
    assert!(f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.is_err());
    assert!(f.fake.calls().is_empty());
}

#[tokio::test]
async fn failed_add_reports_the_plugin_and_writes_no_cache() {
    let f = fixture();
    f.fake.on("tuning", Command::Add, Reply::error(CniError::with_details(999, "sysctl failed", "EPERM")));
    let rt = rt_conf();
    let e = f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap_err();
    assert_eq!(e.to_string(), r#"plugin type="tuning" name="ignored-name" failed (add): sysctl failed; EPERM"#);
    assert_eq!(e.to_cni_error(), CniError::with_details(999, "sysctl failed", "EPERM"));
    assert!(!f.rt.cache_file_path("dbnet", &rt).unwrap().exists());
}

#[tokio::test]
async fn unparsable_add_output_is_bad_output() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout("not json"));
    let e = f.rt.add_network_list(&chain("1.0.0"), &rt_conf()).await.unwrap_err();
    assert!(matches!(e.exec_error(), Some(ExecError::BadOutput { .. })), "{e:?}");
    assert_eq!(e.to_cni_error().code, 999);
}

#[tokio::test]
async fn del_runs_in_reverse_with_the_cached_result_then_drops_the_cache() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let rt = rt_conf();
    let l = chain("1.0.0");
    f.rt.add_network_list(&l, &rt).await.unwrap();
    let path = f.rt.cache_file_path("dbnet", &rt).unwrap();
    assert!(path.exists());
    f.fake.clear_calls();

    f.rt.del_network_list(&l, &rt).await.unwrap();
    assert_eq!(f.fake.commands(), vec![("tuning".into(), "DEL".into()), ("bridge".into(), "DEL".into())]);
    let calls = f.fake.calls();
    assert_eq!(calls[0].stdin_json()["prevResult"], calls[1].stdin_json()["prevResult"]);
    insta::assert_json_snapshot!("del_first_plugin_request", calls[1].stdin_json());
    assert!(!path.exists());

    // A second DEL: no cache, no prevResult, still fine.
    f.fake.clear_calls();
    f.rt.del_network_list(&l, &rt).await.unwrap();
    assert!(f.fake.calls().iter().all(|c| c.stdin_json().get("prevResult").is_none()));
}

#[tokio::test]
async fn del_converts_the_cached_result_and_skips_it_below_0_4_0() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let rt = rt_conf();
    f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap();
    f.fake.clear_calls();
    // Config changed to 0.4.0 while the container ran: the cached 1.0.0 result is converted.
    f.rt.del_network_list(&chain("0.4.0"), &rt).await.unwrap();
    let prev = f.fake.calls()[0].stdin_json()["prevResult"].clone();
    assert_eq!(prev["cniVersion"], "0.4.0");
    assert_eq!(prev["ips"][0]["version"], "4");

    f.fake.on(
        "bridge",
        Command::Add,
        Reply::stdout(r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/16"}]}"#),
    );
    f.rt.add_network_list(&chain("0.3.1"), &rt).await.unwrap();
    f.fake.clear_calls();
    f.rt.del_network_list(&chain("0.3.1"), &rt).await.unwrap();
    assert!(f.fake.calls().iter().all(|c| c.stdin_json().get("prevResult").is_none()));
    assert!(!f.rt.cache_file_path("dbnet", &rt).unwrap().exists());
}

#[tokio::test]
async fn del_stops_at_the_first_failure_and_keeps_the_cache() {
    let f = fixture();
    let rt = rt_conf();
    f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap();
    f.fake.clear_calls();
    f.fake.on("tuning", Command::Del, Reply::error(CniError::new(11, "busy")));
    let e = f.rt.del_network_list(&chain("1.0.0"), &rt).await.unwrap_err();
    assert_eq!(e.to_string(), r#"plugin type="tuning" name="ignored-name" failed (delete): busy"#);
    assert_eq!(f.fake.commands(), vec![("tuning".into(), "DEL".into())]);
    assert!(f.rt.cache_file_path("dbnet", &rt).unwrap().exists());
}

#[tokio::test]
async fn corrupt_cache_is_dropped_on_del_and_fatal_on_check() {
    let f = fixture();
    let rt = rt_conf();
    let path = f.rt.cache_file_path("dbnet", &rt).unwrap();
    cache::write_atomic(&path, br#"{"kind":"cniCacheV1","result":{"cniVersion":"7.7.7"}}"#).unwrap();
    let e = f.rt.check_network_list(&chain("1.0.0"), &rt).await.unwrap_err();
    assert!(matches!(e, RuntimeError::CachedResult { .. }), "{e:?}");
    assert!(f.fake.calls().is_empty());
    f.rt.del_network_list(&chain("1.0.0"), &rt).await.unwrap();
    assert!(f.fake.calls().iter().all(|c| c.stdin_json().get("prevResult").is_none()));
    assert!(!path.exists());
}

#[tokio::test]
async fn legacy_cache_is_readable() {
    let f = fixture();
    let rt = rt_conf();
    let path = f.rt.cache_file_path("dbnet", &rt).unwrap();
    cache::write_atomic(&path, br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.9.0.2/24"}]}"#).unwrap();
    let r = f.rt.get_cached_result("dbnet", &rt).unwrap().unwrap();
    assert_eq!(r.cni_version, Version::V0_4_0);
    f.rt.check_network_list(&chain("1.0.0"), &rt).await.unwrap();
    assert_eq!(
        f.fake.calls()[0].stdin_json()["prevResult"],
        json!({"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24"}]})
    );
    assert!(f.rt.get_network_list_cached_config("dbnet", &rt).is_err());
}

#[tokio::test]
async fn check_rules() {
    let f = fixture();
    let rt = rt_conf();
    let e = f.rt.check_network_list(&chain("0.3.1"), &rt).await.unwrap_err();
    assert_eq!(e.to_string(), r#"configuration version "0.3.1" does not support the CHECK command"#);
    let mut disabled = chain("0.3.1");
    disabled.disable_check = true;
    assert!(f.rt.check_network_list(&disabled, &rt).await.is_err(), "refused even with disableCheck");
    let mut disabled = chain("1.0.0");
    disabled.disable_check = true;
    f.rt.check_network_list(&disabled, &rt).await.unwrap();
    assert!(f.fake.calls().is_empty());

    // No cache: CHECK still runs, without prevResult.
    f.rt.check_network_list(&chain("1.0.0"), &rt).await.unwrap();
    assert_eq!(f.fake.commands(), vec![("bridge".into(), "CHECK".into()), ("tuning".into(), "CHECK".into())]);
    assert!(f.fake.calls()[0].stdin_json().get("prevResult").is_none());

    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap();
    f.fake.clear_calls();
    f.fake.on("bridge", Command::Check, Reply::error(CniError::new(999, "veth missing")));
    let e = f.rt.check_network_list(&chain("1.0.0"), &rt).await.unwrap_err();
    assert_eq!(e.to_cni_error().msg, "veth missing");
    assert_eq!(f.fake.calls().len(), 1, "stops at the first failure");
    assert_eq!(f.fake.calls()[0].stdin_json()["prevResult"]["ips"][0]["address"], "10.1.0.5/16");
}

#[tokio::test]
async fn status_shapes_and_rules() {
    let f = fixture();
    f.rt.status_network_list(&chain("1.0.0")).await.unwrap();
    assert!(f.fake.calls().is_empty(), "no STATUS below 1.1.0");

    f.rt.status_network_list(&chain("1.1.0")).await.unwrap();
    insta::assert_json_snapshot!("status_request", f.fake.calls()[1].stdin_json());
    f.fake.clear_calls();

    f.fake.on("bridge", Command::Status, Reply::error(CniError::with_details(51, "no IPs left", "pool empty")));
    let e = f.rt.status_network_list(&chain("1.1.0")).await.unwrap_err();
    assert_eq!(e.to_cni_error(), CniError::with_details(51, "no IPs left", "pool empty"));
    assert_eq!(f.fake.calls().len(), 1, "stops at the first failure");
}

#[tokio::test]
async fn gc_request_shapes() {
    let f = fixture();
    let l = chain("1.1.0");
    f.rt.gc_network_list(&l, None).await.unwrap();
    let none = f.fake.calls()[0].stdin_json();
    assert!(none.get("cni.dev/valid-attachments").is_none() && none.get("cni.dev/attachments").is_none());
    assert!(none.get("runtimeConfig").is_none() && none.get("prevResult").is_none());
    f.fake.clear_calls();

    f.rt.gc_network_list(&l, Some(&[])).await.unwrap();
    let empty = f.fake.calls()[0].stdin_json();
    assert_eq!(empty["cni.dev/valid-attachments"], json!([]));
    assert_eq!(empty["cni.dev/attachments"], json!([]));
    f.fake.clear_calls();

    let valid = [ValidAttachment::new("ctr-1", "eth0"), ValidAttachment::new("ctr-2", "net1")];
    f.rt.gc_network_list(&l, Some(&valid)).await.unwrap();
    assert_eq!(f.fake.commands(), vec![("bridge".into(), "GC".into()), ("tuning".into(), "GC".into())]);
    insta::assert_json_snapshot!("gc_request", f.fake.calls()[1].stdin_json());
    let env = &f.fake.calls()[0].env;
    assert!(env[1..5].iter().all(|(_, v)| v.is_empty()));
}

#[tokio::test]
async fn gc_deletes_stale_attachments_then_gcs_every_plugin() {
    let f = fixture();
    let l = chain("1.1.0");
    let keep = RuntimeConf::new("keep", "/var/run/netns/a", "eth0");
    let stale = RuntimeConf::new("stale", "/var/run/netns/b", "eth0").with_arg("K8S_POD_NAME", "gone");
    f.rt.add_network_list(&l, &keep).await.unwrap();
    f.rt.add_network_list(&l, &stale).await.unwrap();
    // Another network's attachment is left alone.
    let other = list(json!({"cniVersion":"1.1.0","name":"other","plugins":[{"type":"bridge"}]}));
    f.rt.add_network_list(&other, &stale).await.unwrap();
    f.fake.clear_calls();
    f.fake.on("bridge", Command::Gc, Reply::error(CniError::new(999, "gc broke")));

    let e = f.rt.gc_network_list(&l, Some(&[ValidAttachment::new("keep", "eth0")])).await.unwrap_err();
    assert_eq!(
        f.fake.commands(),
        vec![
            ("tuning".into(), "DEL".into()),
            ("bridge".into(), "DEL".into()),
            ("bridge".into(), "GC".into()),
            ("tuning".into(), "GC".into()),
        ],
        "keeps going past the failing GC"
    );
    let del = &f.fake.calls()[0];
    assert_eq!(del.env_var("CNI_CONTAINERID"), Some("stale"));
    assert_eq!(del.env_var("CNI_NETNS"), Some("/var/run/netns/b"));
    assert_eq!(del.env_var("CNI_ARGS"), Some("K8S_POD_NAME=gone"));
    assert!(del.stdin_json().get("prevResult").is_some());
    assert_eq!(e.to_string(), r#"plugin type="bridge" failed (gc): gc broke"#);
    let left: Vec<_> =
        f.rt.cached_attachments(None).unwrap().into_iter().map(|a| (a.network_name, a.container_id)).collect();
    assert_eq!(left, vec![("dbnet".to_string(), "keep".to_string()), ("other".into(), "stale".into())]);

    // disableGC: nothing at all.
    let mut disabled = l.clone();
    disabled.disable_gc = true;
    f.fake.clear_calls();
    f.rt.gc_network_list(&disabled, None).await.unwrap();
    assert!(f.fake.calls().is_empty());

    // Below 1.1.0: the synthesised DELs only.
    f.rt.gc_network_list(&chain("1.0.0"), None).await.unwrap();
    assert_eq!(f.fake.commands(), vec![("tuning".into(), "DEL".into()), ("bridge".into(), "DEL".into())]);
    assert_eq!(f.rt.cached_attachments(Some("dbnet")).unwrap().len(), 0);
}

/// The cache file of a Multus ADD, rebuilt from the Go capture's inputs, is byte-identical.
#[tokio::test]
async fn cache_file_matches_the_go_capture() {
    const CAPTURE: &[u8] = include_bytes!("testdata/mock-cluster-net-cid-pod1-eth0");
    let CacheFile::V1(captured) = CacheEntry::parse(CAPTURE) else { panic!() };
    let f = fixture();
    let result = captured.result.clone().unwrap().to_string();
    f.fake.on("bridge", Command::Add, Reply::stdout(result));
    let conf = PluginConf::from_bytes(&captured.config).unwrap();
    let rt = captured.runtime_conf();
    f.rt.add_network_with_bytes(&conf, &captured.config, &rt).await.unwrap();
    let path = f.rt.cache_file_path("mock-cluster-net", &rt).unwrap();
    assert!(path.ends_with("results/mock-cluster-net-cid-pod1-eth0"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), String::from_utf8_lossy(CAPTURE));

    let (config, cached_rt) =
        f.rt.get_network_list_cached_config("mock-cluster-net", &RuntimeConf::new("cid-pod1", "", "eth0"))
            .unwrap()
            .unwrap();
    assert_eq!(config, captured.config);
    assert_eq!(cached_rt.args, captured.cni_args);
}

#[tokio::test]
async fn cache_file_snapshot() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let rt = rt_conf().with_capability("io.kubernetes.cri.pod-annotations", json!({"z": "<&>", "a": "1"}));
    let bytes = br#"{"cniVersion":"1.0.0","name":"dbnet","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#;
    f.rt.add_network_list_with_bytes(&chain("1.0.0"), bytes, &rt).await.unwrap();
    let path = f.rt.cache_file_path("dbnet", &rt).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // Same top-level key order as the Go capture, nested maps sorted, Go's HTML escaping.
    insta::assert_snapshot!("cache_file", text);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn update_cached_result_rewrites_the_result() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let rt = rt_conf();
    assert!(!f.rt.update_cached_result("dbnet", &rt, |_| {}).unwrap());
    f.rt.add_network_list(&chain("1.0.0"), &rt).await.unwrap();
    let updated =
        f.rt.update_cached_result("dbnet", &rt, |r| {
            r.as_object_mut().unwrap().remove("routes");
        })
        .unwrap();
    assert!(updated);
    let r = f.rt.get_cached_result("dbnet", &rt).unwrap().unwrap();
    assert!(r.routes.is_empty());
    assert_eq!(r.ips.len(), 1);
    let CacheFile::V1(entry) = f.rt.read_cache_file("dbnet", &rt).unwrap().unwrap() else { panic!() };
    assert_eq!(entry.cni_args, rt.args);
}

#[tokio::test]
async fn single_plugin_configs_run_as_one_plugin_lists() {
    let f = fixture();
    f.fake.on("bridge", Command::Add, Reply::stdout(BRIDGE_RESULT));
    let conf = PluginConf::from_value(json!({"cniVersion":"1.0.0","name":"single","type":"bridge"})).unwrap();
    let rt = rt_conf();
    f.rt.add_network(&conf, &rt).await.unwrap();
    f.rt.check_network(&conf, &rt).await.unwrap();
    f.rt.del_network(&conf, &rt).await.unwrap();
    assert_eq!(
        f.fake.commands(),
        vec![("bridge".into(), "ADD".into()), ("bridge".into(), "CHECK".into()), ("bridge".into(), "DEL".into())]
    );
    assert_eq!(f.fake.calls()[0].stdin_json()["name"], "single");
    assert!(!f.rt.cache_file_path("single", &rt).unwrap().exists());
}

#[tokio::test]
async fn version_info_probe() {
    let f = fixture();
    let info = f.rt.version_info("bridge").await.unwrap();
    assert!(info.supports("1.1.0"));
    let call = &f.fake.calls()[0];
    assert_eq!(call.env_var("CNI_NETNS"), Some("dummy"));
    assert_eq!(call.stdin_json(), json!({"cniVersion": version::CURRENT}));
    f.fake.on("old", Command::Version, Reply::error(CniError::new(4, "unknown CNI_COMMAND: VERSION")));
    assert_eq!(f.rt.version_info("old").await.unwrap().supported_versions, vec!["0.1.0"]);
}

#[test]
fn build_config_pure_functions() {
    let plugin = PluginConf::from_value(
        json!({"type":"portmap","capabilities":{"portMappings":true},"runtimeConfig":{"old":1}}),
    )
    .unwrap();
    // No supplied capability: the plugin's own runtimeConfig is left as written (libcni only
    // injects a non-empty one).
    let c = build_plugin_config("n", "1.0.0", &plugin, None, &RuntimeConf::default());
    assert_eq!(c["runtimeConfig"], json!({"old": 1}));
    assert_eq!(c["capabilities"], json!({"portMappings": true}), "capabilities are not stripped");
    let rt = RuntimeConf::default().with_capability("portMappings", json!([]));
    let c = build_plugin_config("n", "1.0.0", &plugin, None, &rt);
    assert_eq!(c["runtimeConfig"], json!({"portMappings": []}));
    assert_eq!(c["name"], "n");
}
