//! The files the Go thick plugin (v4.2.4) leaves for a pod: its delegate cache
//! `<cniDir>/<containerID>` and libcni's result caches `<cniDir>/results/<net>-<cid>-<ifname>`.
//! A node seeded with them stands for a node the Go DaemonSet ran on before the roll; the shapes
//! are those of the captured files (`crates/multus/tests/data/cache-cid-pod1.json`, and the
//! result caches beside it in the reference captures). Pure: bytes in, bytes out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::plan::PodRef;

/// One delegate Go ran for a pod.
#[derive(Debug, Clone)]
pub struct GoDelegate {
    /// The config bytes as Go passed them to the plugin.
    pub conf_bytes: Vec<u8>,
    /// The cache's `Name`: the network name for the cluster network, `namespace/name` for a NAD.
    pub entry_name: String,
    pub ifname: String,
}

impl GoDelegate {
    fn conf(&self) -> Value {
        serde_json::from_slice(&self.conf_bytes).unwrap_or(Value::Null)
    }

    fn network_name(&self) -> String {
        self.conf()["name"].as_str().unwrap_or_default().to_string()
    }
}

/// Go's delegate cache: a JSON list, the cluster network first (the master), with the
/// `CNINetworkConfigList` zero value Go's encoder writes for a single-plugin delegate.
pub fn delegate_cache(delegates: &[GoDelegate]) -> Vec<u8> {
    let entries: Vec<Value> = delegates
        .iter()
        .map(|d| {
            let conf = d.conf();
            json!({
                "Conf": {
                    "cniVersion": conf["cniVersion"],
                    "ipam": {"type": conf["ipam"]["type"]},
                    "name": conf["name"],
                    "type": conf["type"],
                },
                "ConfList": {},
                "CNINetworkConfigList": {
                    "Name": "", "CNIVersion": "", "DisableCheck": false, "DisableGC": false,
                    "LoadOnlyInlinedPlugins": false, "Plugins": null, "Bytes": null
                },
                "Name": d.entry_name,
                "IsFilterV4Gateway": false,
                "IsFilterV6Gateway": false,
                "Bytes": STANDARD.encode(&d.conf_bytes),
            })
        })
        .collect();
    serde_json::to_vec(&entries).unwrap_or_default()
}

/// The result cache's file name under `<cniDir>/results`.
pub fn result_cache_name(delegate: &GoDelegate, pod: &PodRef) -> String {
    format!("{}-{}-{}", delegate.network_name(), pod.container_id, delegate.ifname)
}

/// libcni's `cniCacheV1` result cache for one delegate, as the Go daemon's libcni writes it.
pub fn result_cache(delegate: &GoDelegate, pod: &PodRef, netns: &str, result: &Value) -> Vec<u8> {
    let doc = json!({
        "kind": "cniCacheV1",
        "containerId": pod.container_id,
        "config": STANDARD.encode(&delegate.conf_bytes),
        "ifName": delegate.ifname,
        "networkName": delegate.network_name(),
        "netns": netns,
        "cniArgs": go_cni_args(pod),
        "result": result,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// CNI_ARGS as the Go daemon passes them to delegates (`IgnoreUnknown=true` first).
pub fn go_cni_args(pod: &PodRef) -> Vec<[String; 2]> {
    [
        ("IgnoreUnknown", "true"),
        ("K8S_POD_NAMESPACE", pod.namespace.as_str()),
        ("K8S_POD_NAME", pod.name.as_str()),
        ("K8S_POD_INFRA_CONTAINER_ID", pod.container_id.as_str()),
        ("K8S_POD_UID", pod.uid.as_str()),
    ]
    .iter()
    .map(|(k, v)| [k.to_string(), v.to_string()])
    .collect()
}

/// The same, as the environment variable.
pub fn go_cni_args_env(pod: &PodRef) -> String {
    go_cni_args(pod).iter().map(|[k, v]| format!("{k}={v}")).collect::<Vec<_>>().join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegates() -> Vec<GoDelegate> {
        vec![
            GoDelegate {
                conf_bytes: crate::plan::cluster_network(0).to_string().into_bytes(),
                entry_name: "cluster".into(),
                ifname: "eth0".into(),
            },
            GoDelegate {
                conf_bytes: crate::plan::nad_config().to_string().into_bytes(),
                entry_name: format!("{}/{}", crate::plan::NAMESPACE, crate::plan::NAD),
                ifname: "net1".into(),
            },
        ]
    }

    #[test]
    fn the_delegate_cache_has_the_captured_go_shape() {
        let golden: Value =
            serde_json::from_slice(include_bytes!("../../multus/tests/data/cache-cid-pod1.json")).unwrap();
        let ours: Value = serde_json::from_slice(&delegate_cache(&delegates())).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&ours[0]), keys(&golden[0]));
        assert_eq!(ours[0]["CNINetworkConfigList"], golden[0]["CNINetworkConfigList"]);
        assert_eq!(keys(&ours[0]["Conf"]), keys(&golden[0]["Conf"]));
        assert_eq!(ours[1]["Name"], "multus-cluster/net-a");
    }

    #[test]
    fn multus_reads_what_go_leaves_for_a_seeded_pod() {
        let bytes = delegate_cache(&delegates());
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        let decoded = STANDARD.decode(parsed[1]["Bytes"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, crate::plan::nad_config().to_string().into_bytes());
    }

    #[test]
    fn result_caches_are_named_and_shaped_as_libcni_writes_them() {
        let pod = PodRef::new("node1", "go", 1);
        let d = &delegates()[1];
        assert_eq!(result_cache_name(d, &pod), format!("net-a-{}-net1", pod.container_id));
        let doc: Value =
            serde_json::from_slice(&result_cache(d, &pod, "/var/run/netns/x", &json!({"cniVersion": "1.0.0"})))
                .unwrap();
        assert_eq!(doc["kind"], "cniCacheV1");
        assert_eq!(doc["cniArgs"][0], json!(["IgnoreUnknown", "true"]));
        assert_eq!(doc["networkName"], "net-a");
        assert!(go_cni_args_env(&pod).starts_with("IgnoreUnknown=true;K8S_POD_NAMESPACE=multus-cluster;"));
    }
}
