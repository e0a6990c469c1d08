//! The CNI 1.1.0 opt-in (`overlays/cni-1.1.0`, upstream multus-cni#1475) against the shipped
//! manifest's config: multus-rs runs with each daemon config (its node paths replaced by the
//! harness's temp dirs) over a 1.1.0 primary of fake-cni, and a runtime (the `cni` crate, with
//! libcni's rules) runs STATUS and GC with the `00-multus.conf` the daemon wrote. With the
//! shipped `cniVersion: 0.3.1` no STATUS or GC reaches the delegate; with the opt-in both do.
//! (That the overlay renders into the manifest's ConfigMap is `xtask/src/manifests.rs`'s test.)

use multus_conformance::Target;
use multus_conformance::records::recorded_calls;
use multus_conformance::target::{Kind, cargo_bin_dir};
use multus_conformance::thick::{ThickRt, ThickSpec};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `daemon-config.json` of the shipped manifest's ConfigMap.
fn shipped_daemon_config() -> Value {
    let text = std::fs::read_to_string(repo().join("deployments/multus-daemonset-thick-plugin.yml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "multus-daemon-config")
        .expect("the ConfigMap");
    serde_json::from_str(cm["data"]["daemon-config.json"].as_str().unwrap()).unwrap()
}

/// `daemon-config.json` as the overlay's patch replaces it.
fn opt_in_daemon_config() -> Value {
    let text = std::fs::read_to_string(repo().join("overlays/cni-1.1.0/kustomization.yaml")).unwrap();
    let k: Value = serde_saphyr::from_str(&text).unwrap();
    let ops: Value = serde_saphyr::from_str(k["patches"][0]["patch"].as_str().unwrap()).unwrap();
    assert_eq!(ops[0]["path"], "/data/daemon-config.json");
    serde_json::from_str(ops[0]["value"].as_str().unwrap()).unwrap()
}

/// What a runtime reaches with a daemon running `config`: `00-multus.conf`'s `cniVersion`,
/// and the commands the delegate got from the runtime's STATUS and GC.
fn runtime_reaches(config: &Value) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (netd, records) = (dir.path().join("net.d"), dir.path().join("records"));
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::create_dir_all(&records).unwrap();
    let primary = json!({"cniVersion": "1.1.0", "name": "cluster", "plugins": [
        {"type": "fake-cni", "fake": {"recordDir": records, "subnet": "10.88.0.0/16"}}]});
    std::fs::write(netd.join("10-cluster.conflist"), primary.to_string()).unwrap();
    // The manifest's settings; the node's paths (host mounts, chroot) become the harness's.
    let mut overlay = config.clone();
    let m = overlay.as_object_mut().unwrap();
    for key in ["chrootDir", "socketDir"] {
        m.remove(key);
    }
    m.insert("cniConfigDir".into(), json!(netd));
    m.insert("multusAutoconfigDir".into(), json!(netd));
    let spec = ThickSpec {
        daemon_config: overlay,
        cluster_network: "fake".into(),
        fake_kubelet: None,
        ready_timeout: 30,
        ..ThickSpec::multus_rs()
    };
    let target = Target { kind: Kind::Thick, thick: Some(spec), ..Target::default() };
    let node = ThickRt::start(&target).unwrap_or_else(|e| panic!("the daemon did not start with {config}: {e}"));
    let bytes = std::fs::read(netd.join("00-multus.conf")).expect("00-multus.conf");
    let mut conf: Value = serde_json::from_slice(&bytes).unwrap();
    // A node's shim finds the daemon at the default /run/multus/; this one is in a temp dir.
    conf["daemonSocketDir"] = json!(node.socket().parent().unwrap());
    let version = conf["cniVersion"].as_str().unwrap_or_default().to_string();
    let list = cni::conf::NetworkConfig::from_bytes(conf.to_string().as_bytes()).unwrap().into_list();
    let runtime = cni::runtime::CniRuntime::new(
        vec![cargo_bin_dir()],
        dir.path().join("cache"),
        cni::exec::RawExec::with_timeout(std::time::Duration::from_secs(30)),
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(runtime.status_network_list(&list))
        .unwrap_or_else(|e| panic!("STATUS: {e}\n{}", node.daemon_log_tail()));
    rt.block_on(runtime.gc_network_list(&list, Some(&[])))
        .unwrap_or_else(|e| panic!("GC: {e}\n{}", node.daemon_log_tail()));
    drop(node);
    let commands = recorded_calls(&records).iter().map(|c| c["command"].as_str().unwrap_or("").to_string()).collect();
    (version, commands)
}

/// The binaries the harness runs, when one is not built.
fn missing() -> Option<String> {
    test_node::missing_bins()
        .or_else(|| test_node::bin("kube-mock").is_none().then(|| "needs the kube-mock binary".to_string()))
}

#[test]
fn the_opt_in_is_the_shipped_config_with_cni_1_1_0() {
    let (shipped, opt_in) = (shipped_daemon_config(), opt_in_daemon_config());
    assert_eq!(shipped["cniVersion"], "0.3.1");
    let mut expected = shipped;
    expected["cniVersion"] = json!("1.1.0");
    assert_eq!(opt_in, expected, "overlays/cni-1.1.0 must change cniVersion and nothing else");
}

#[test]
fn with_the_shipped_config_no_status_or_gc_reaches_the_delegate() {
    if !test_node::require(missing()) {
        return;
    }
    let (version, commands) = runtime_reaches(&shipped_daemon_config());
    assert_eq!(version, "0.3.1");
    assert!(commands.is_empty(), "a runtime sends no STATUS or GC below 1.1.0: {commands:?}");
}

#[test]
fn with_the_opt_in_status_and_gc_reach_the_delegate() {
    if !test_node::require(missing()) {
        return;
    }
    let (version, commands) = runtime_reaches(&opt_in_daemon_config());
    assert_eq!(version, "1.1.0");
    assert_eq!(commands, ["STATUS", "GC"], "the runtime's STATUS and GC, passed on to the cluster network");
}
