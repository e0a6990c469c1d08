//! Device IDs through the real processes: the multus-daemon binary (in-cluster mode against
//! kube-mock over TLS) reading the pod's devices from the `fake-kubelet` binary (the kubelet's
//! pod-resources v1 gRPC API on a unix socket, named by `kubeletPodResourcesSocket`), the
//! multus-shim binary invoked like a runtime, and fake-cni delegates that record the config
//! they get. The daemon opens each pod's network namespace, so these need root; as root they
//! also play the device plugin and write its device-info files under
//! `/var/run/k8s.cni.cncf.io/devinfo/dp` (with resource names of this test only, removed again).

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use test_node::*;

const DP_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

fn prerequisites() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces, /var/run/k8s.cni.cncf.io)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2".into());
    }
    missing_bins().or_else(|| {
        bin("fake-kubelet").is_none().then(|| "needs the fake-kubelet binary (cargo build -p fake-kubelet)".into())
    })
}

/// The device plugin's device-info files this test wrote (removed on drop).
#[derive(Default)]
struct DeviceInfoFiles(Vec<PathBuf>);

impl DeviceInfoFiles {
    fn write(&mut self, resource: &str, device_id: &str) {
        std::fs::create_dir_all(DP_DEVINFO_DIR).unwrap();
        let file = Path::new(DP_DEVINFO_DIR).join(format!("{}-{device_id}-device.json", resource.replace('/', "-")));
        assert!(!file.exists(), "{} exists already", file.display());
        let info = json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": device_id}});
        std::fs::write(&file, info.to_string()).unwrap();
        self.0.push(file);
    }
}

impl Drop for DeviceInfoFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn resource_nad(namespace: &str, name: &str, resource: &str, records: &Path) -> Value {
    let config = json!({"cniVersion": "1.0.0", "name": name, "type": "sriov",
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true},
        "fake": {"recordDir": records, "subnet": "10.216.0.0/24", "gateway": ""}});
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
        "spec": {"config": config.to_string()}
    })
}

/// A node with fake-cni as the cluster network and as `sriov`, fake-kubelet started with
/// `kubelet_args`, and the daemon pointed at it.
fn node(seed: Vec<Value>, kubelet_args: &[String]) -> Node {
    let mut thick = Node::new(seed);
    thick.install_plugins(&[], &["fake-cni", "sriov"]);
    thick.write_primary(
        "10-cluster.conflist",
        &json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
            {"type": "fake-cni", "fake": {"recordDir": thick.path("records"), "subnet": "10.217.0.0/24"}}]}),
    );
    thick.start_fake_kubelet(kubelet_args);
    thick.start_daemon();
    thick
}

fn status_entries(thick: &Node, pod: &PodSandbox) -> Vec<Value> {
    let obj = thick.pod_object(&pod.namespace, &pod.name);
    let text = obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"].as_str().unwrap_or("[]").to_string();
    serde_json::from_str(&text).expect("network-status is JSON")
}

#[test]
#[ignore = "needs root (network namespaces, /var/run/k8s.cni.cncf.io) and the multus-shim, fake-cni and fake-kubelet binaries"]
fn device_ids_reach_the_delegates_and_the_status_annotation_and_del_removes_their_files() {
    if !require(prerequisites()) {
        return;
    }
    let resource = format!("test.example/{}", unique("vf"));
    let (vf0, vf1) = ("0000:af:06.0", "0000:af:06.1");
    let mut dp = DeviceInfoFiles::default();
    dp.write(&resource, vf0);
    dp.write(&resource, vf1);

    let uid = "0d1e2f30-0000-4000-8000-00000000d001";
    let records_dir = tempfile::tempdir().unwrap();
    let records = records_dir.path();
    let seed = vec![
        resource_nad("default", "vf-a", &resource, records),
        resource_nad("default", "vf-b", &resource, records),
        resource_nad("default", "vf-c", &resource, records),
        pod("default", "sriov-pod", uid, Some("vf-a,vf-b,vf-c")),
    ];
    // Reported unsorted: the daemon hands them out sorted.
    let kubelet = [format!("--device=default/sriov-pod/c:{resource}={vf1},{vf0}")];
    let mut thick = node(seed, &kubelet);
    let pod = thick.sandbox("default", "sriov-pod", uid);

    let add = thick.shim("ADD", &pod);
    assert_eq!(add.code, 0, "ADD failed: {add:?}\n{}", thick.daemon_log());

    let adds: Vec<fake_cni::Call> =
        fake_cni::read_calls(records).into_iter().filter(|c| c.command == "ADD" && c.argv0 == "sriov").collect();
    let by_name = |n: &str| adds.iter().find(|c| c.name == n).unwrap_or_else(|| panic!("no ADD of {n}: {adds:?}"));
    let (a, b, c) = (by_name("vf-a"), by_name("vf-b"), by_name("vf-c"));
    assert_eq!((a.ifname.as_str(), b.ifname.as_str(), c.ifname.as_str()), ("net1", "net2", "net3"));
    // The same resource: two distinct IDs in selection order, then none left.
    assert_eq!((a.device_id(), a.runtime_device_id()), (Some(vf0), Some(vf0)));
    assert_eq!(a.config_value("pciBusID"), Some(&json!(vf0)));
    assert_eq!((b.device_id(), b.runtime_device_id()), (Some(vf1), Some(vf1)));
    assert_eq!((c.device_id(), c.runtime_device_id(), c.device_info_file()), (None, None, None));
    let file_a = a.device_info_file().expect("CNIDeviceInfoFile for vf-a").to_string();
    let file_b = b.device_info_file().expect("CNIDeviceInfoFile for vf-b").to_string();
    assert_eq!(file_a, format!("/var/run/k8s.cni.cncf.io/devinfo/cni/default-vf-a-{}_net1", pod.container_id));
    let copied: Value = serde_json::from_slice(&std::fs::read(&file_a).expect("device-info copied")).unwrap();
    assert_eq!(copied["pci"]["pci-address"], vf0);

    let status = status_entries(&thick, &pod);
    let entry = |ifname: &str| {
        status.iter().find(|e| e["interface"] == ifname).unwrap_or_else(|| panic!("no {ifname} in {status:?}"))
    };
    assert_eq!(entry("net1")["name"], "default/vf-a");
    assert_eq!(entry("net1")["device-info"], json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": vf0}}));
    assert_eq!(entry("net2")["device-info"]["pci"]["pci-address"], vf1);
    assert!(entry("net3").get("device-info").is_none(), "no device, no device-info: {status:?}");
    assert!(entry("eth0").get("device-info").is_none());

    let del = thick.shim("DEL", &pod);
    assert_eq!(del.code, 0, "DEL failed: {del:?}\n{}", thick.daemon_log());
    // DEL runs each delegate with the config its ADD got (from the delegate cache).
    let dels: Vec<fake_cni::Call> =
        fake_cni::read_calls(records).into_iter().filter(|c| c.command == "DEL" && c.argv0 == "sriov").collect();
    assert_eq!(dels.len(), 3, "{dels:?}");
    assert_eq!(dels.iter().find(|c| c.name == "vf-b").and_then(|c| c.device_id()), Some(vf1));
    for f in [&file_a, &file_b] {
        assert!(!Path::new(f).exists(), "DEL left {f}");
    }
}

#[test]
#[ignore = "needs root (network namespaces, /var/run/k8s.cni.cncf.io) and the multus-shim, fake-cni and fake-kubelet binaries"]
fn a_failing_kubelet_fails_the_add_before_any_selected_delegate_runs() {
    if !require(prerequisites()) {
        return;
    }
    let uid = "0d1e2f30-0000-4000-8000-00000000d002";
    let records_dir = tempfile::tempdir().unwrap();
    let records = records_dir.path();
    let seed = vec![
        resource_nad("default", "vf-a", "intel.com/sriov", records),
        pod("default", "sriov-pod", uid, Some("vf-a")),
    ];
    let mut thick = node(seed, &["--fail".into(), "unavailable:kubelet is restarting".into()]);
    let pod = thick.sandbox("default", "sriov-pod", uid);

    let add = thick.shim("ADD", &pod);
    assert_ne!(add.code, 0, "ADD succeeded without the kubelet: {add:?}");
    let error: Value = add.json();
    let msg = error["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("ResourceClient") && msg.contains("kubelet is restarting"), "error: {error}");
    assert!(
        fake_cni::read_calls(records).iter().all(|c| c.command != "ADD"),
        "the NAD's delegate ran: {:?}",
        fake_cni::read_calls(records)
    );
    let del = thick.shim("DEL", &pod);
    assert_eq!(del.code, 0, "DEL after the failed ADD: {del:?}");
}
