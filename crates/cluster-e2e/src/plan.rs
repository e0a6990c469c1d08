//! What a cluster is made of, as data: node names, the files each node gets, the pods the load
//! generator creates. Pure, so the whole layout is unit-tested without Docker.

use serde_json::{Value, json};

/// Namespace of every pod the cluster run creates.
pub const NAMESPACE: &str = "multus-cluster";
/// The NetworkAttachmentDefinition every pod selects (one secondary interface, `net1`).
pub const NAD: &str = "net-a";
/// The node's primary network name (its file in `/etc/cni/net.d`).
pub const CLUSTER_NETWORK: &str = "cluster";
/// kube-mock's port (its name on the cluster's network is the run's, `<run>-kube-mock`).
pub const API_PORT: u16 = 6443;

/// Paths inside a node container.
pub mod node_paths {
    pub const BIN_DIR: &str = "/usr/src/multus-cni/bin";
    pub const CNI_BIN: &str = "/opt/cni/bin";
    pub const NET_D: &str = "/etc/cni/net.d";
    pub const CNI_DIR: &str = "/var/lib/cni/multus";
    pub const LEASES: &str = "/var/lib/cni/networks";
    pub const SOCKET_DIR: &str = "/run/multus";
    pub const NETNS_DIR: &str = "/run/netns";
    pub const KUBECONFIG: &str = "/etc/multus-e2e/kubeconfig";
    pub const DAEMON_CONFIG_DIR: &str = "/etc/multus-e2e";
    pub const STATE_DIR: &str = "/run/multus-e2e";
    /// The daemon's `logFile`.
    pub const LOG: &str = "/var/log/multus-daemon.log";
    /// Its stdout and stderr (a panic, an early exit before logging starts).
    pub const STDERR_LOG: &str = "/var/log/multus-daemon.stderr.log";
    pub const AGENT: &str = "/usr/bin/cluster-node";
}

/// `node1`, `node2`, …
pub fn node_name(index: usize) -> String {
    format!("node{}", index + 1)
}

/// The user a node's daemon authenticates as (its client certificate's CN), as kubelets do.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// Which daemon a node runs. Both are this build's binary: the "old" one runs the Go reference's
/// daemon-config.json (its keys only) on top of the state the Go thick plugin leaves; the "new"
/// one adds what an upgrade turns on: CNI 1.1.0 (the runtime's GC reaches the daemon), a fast
/// orphan reconciler and `dynamicNetworks` (caches made without `selection` must not rewire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    Old,
    New,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Old => "old",
            Generation::New => "new",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "old" => Some(Generation::Old),
            "new" => Some(Generation::New),
            _ => None,
        }
    }
}

/// The node's daemon-config.json for a generation: the old one has exactly the keys of the Go
/// reference's daemon config; the new one runs the orphan reconciler every 5 s and acts at once,
/// so a rebooted node's leftovers are reclaimed within the run.
pub fn daemon_config(generation: Generation) -> Value {
    use node_paths::*;
    let mut config = json!({
        "cniVersion": "1.0.0",
        "logLevel": "verbose",
        "logToStderr": true,
        "logFile": LOG,
        "binDir": CNI_BIN,
        "cniDir": CNI_DIR,
        "confDir": "/etc/cni/multus/net.d",
        "cniConfigDir": NET_D,
        "multusAutoconfigDir": NET_D,
        "multusConfigFile": "auto",
        "socketDir": SOCKET_DIR,
        "daemonSocketDir": SOCKET_DIR,
    });
    if generation == Generation::New {
        config["cniVersion"] = json!("1.1.0");
        config["orphanReconcile"] = json!({"intervalSeconds": 5, "podGoneConfirmSeconds": 0});
        config["dynamicNetworks"] = json!(true);
    }
    config
}

/// The `00-multus.conf` the Go daemon leaves for the old config (its key order, compact, as
/// captured from v4.2.4).
pub fn go_multus_conf() -> String {
    use node_paths::*;
    let conf = json!({
        "binDir": CNI_BIN,
        "cniVersion": "1.0.0",
        "logFile": LOG,
        "logLevel": "verbose",
        "logToStderr": true,
        "name": "multus-cni-network",
        "clusterNetwork": cluster_network_path(),
        "type": "multus-shim",
        "cniDir": CNI_DIR,
        "daemonSocketDir": SOCKET_DIR,
    });
    conf.to_string()
}

pub fn multus_conf_path() -> String {
    format!("{}/00-multus.conf", node_paths::NET_D)
}

pub fn daemon_config_path(generation: Generation) -> String {
    format!("{}/daemon-config-{}.json", node_paths::DAEMON_CONFIG_DIR, generation.as_str())
}

/// The node's primary network: a bridge with a per-node /24 (a single-plugin file, as Go caches
/// it byte for byte; Go drops keys of a conflist, spec §13).
pub fn cluster_network(node_index: usize) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": CLUSTER_NETWORK,
        "type": "bridge",
        "bridge": "cbr0",
        "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("10.244.{}.0/24", node_index)}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}
    })
}

pub fn cluster_network_path() -> String {
    format!("{}/10-{CLUSTER_NETWORK}.conf", node_paths::NET_D)
}

/// The NAD's CNI config: a second bridge on every node (node-local, so the same range on every
/// node never clashes).
pub fn nad_config() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NAD,
        "type": "bridge",
        "bridge": "br-a",
        "ipam": {"type": "host-local", "subnet": "10.250.0.0/16"}
    })
}

/// The objects every node needs before the first pod: the namespace and the NAD.
pub fn cluster_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": NAD, "namespace": NAMESPACE},
            "spec": {"config": nad_config().to_string()}
        }),
    ]
}

/// One pod of the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub node: String,
}

impl PodRef {
    /// Pod `seq` of `node`: unique names, UIDs and container IDs for the whole run.
    pub fn new(node: &str, tag: &str, seq: usize) -> Self {
        let name = format!("{node}-{tag}-{seq}");
        let uid = format!("{:08x}-0000-4000-8000-{:012x}", fnv(&name) as u32, seq);
        let container_id = format!("{:016x}{:016x}", mix(fnv(&name)), mix(fnv(&format!("{name}/sandbox"))));
        Self { namespace: NAMESPACE.into(), name, uid, container_id, node: node.into() }
    }

    /// CNI_ARGS as the kubelet's runtime sets them.
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            self.namespace, self.name, self.container_id, self.uid
        )
    }

    /// The network namespace's name under /run/netns.
    pub fn netns_name(&self) -> String {
        format!("cni-{}", self.container_id)
    }

    /// The pod object: scheduled on its node, selecting the NAD.
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name, "namespace": self.namespace, "uid": self.uid,
                "annotations": {"k8s.v1.cni.cncf.io/networks": NAD},
            },
            "spec": {"nodeName": self.node, "containers": [{"name": "c", "image": "pause"}]}
        })
    }
}

/// FNV-1a: stable, dependency-free hashing for test identifiers.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

/// splitmix64's finalizer: FNV of names that differ in one digit differ in few bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// Rewrites the `server:` of a kubeconfig (kube-mock writes the address it listens on).
pub fn with_server(kubeconfig: &str, server: &str) -> String {
    kubeconfig
        .lines()
        .map(|l| {
            let trimmed = l.trim_start();
            if trimmed.starts_with("server:") {
                let indent = &l[..l.len() - trimmed.len()];
                format!("{indent}server: {server}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key set of the Go reference's daemon-config.json (v4.2.4 capture).
    const GO_DAEMON_CONFIG_KEYS: [&str; 12] = [
        "cniVersion",
        "logLevel",
        "logToStderr",
        "logFile",
        "binDir",
        "cniDir",
        "confDir",
        "cniConfigDir",
        "multusAutoconfigDir",
        "multusConfigFile",
        "socketDir",
        "daemonSocketDir",
    ];

    #[test]
    fn the_old_config_has_the_go_keys_and_the_new_one_adds_the_upgrade() {
        let old = daemon_config(Generation::Old);
        let keys: Vec<&str> = old.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, GO_DAEMON_CONFIG_KEYS);
        let mut new = daemon_config(Generation::New);
        assert_eq!(new["cniVersion"], "1.1.0");
        assert_eq!(new["dynamicNetworks"], true);
        for k in ["orphanReconcile", "dynamicNetworks"] {
            new.as_object_mut().unwrap().remove(k);
        }
        new["cniVersion"] = json!("1.0.0");
        assert_eq!(old, new);
        assert_eq!(Generation::parse("new"), Some(Generation::New));
        assert_eq!(Generation::parse("x"), None);
    }

    #[test]
    fn gos_multus_conf_has_the_captured_key_order() {
        let conf: Value = serde_json::from_str(&go_multus_conf()).unwrap();
        let keys: Vec<&str> = conf.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "binDir",
                "cniVersion",
                "logFile",
                "logLevel",
                "logToStderr",
                "name",
                "clusterNetwork",
                "type",
                "cniDir",
                "daemonSocketDir"
            ]
        );
        assert_eq!(conf["clusterNetwork"], "/etc/cni/net.d/10-cluster.conf");
        assert!(!go_multus_conf().contains(' '), "compact, as Go writes it");
    }

    #[test]
    fn the_server_is_replaced_and_nothing_else() {
        let k = "clusters:\n- cluster:\n    server: https://0.0.0.0:6443\n    certificate-authority-data: X\n";
        let out = with_server(k, "https://kube-mock:6443");
        assert_eq!(
            out,
            "clusters:\n- cluster:\n    server: https://kube-mock:6443\n    certificate-authority-data: X\n"
        );
    }

    #[test]
    fn the_pod_object_selects_the_nad_on_its_node() {
        let p = PodRef::new("node2", "load", 7);
        let o = p.object();
        assert_eq!(o["spec"]["nodeName"], "node2");
        assert_eq!(o["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"], NAD);
        assert!(p.cni_args().contains("K8S_POD_UID="));
        assert_eq!(p.container_id.len(), 32);
    }

    proptest! {
        #[test]
        fn pod_identities_are_unique(a in 0usize..5000, b in 0usize..5000, n in 0usize..3) {
            prop_assume!(a != b);
            let node = node_name(n);
            let (x, y) = (PodRef::new(&node, "load", a), PodRef::new(&node, "load", b));
            prop_assert_ne!(&x.name, &y.name);
            prop_assert_ne!(&x.uid, &y.uid);
            prop_assert_ne!(&x.container_id[..12], &y.container_id[..12]);
        }
    }
}
