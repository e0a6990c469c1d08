//! `multusctl explain`: the plan the daemon makes for a pod's ADD, and why it fails when it does.
//!
//! The plan comes from the daemon's own planning functions, called the way the daemon calls
//! them (`crates/multus-daemon/src/commands/add.rs`): [`ResolveSettings::from_netconf`] of the
//! effective request config, [`resolve::resolve_add_delegates`] for the delegate list (cluster
//! network, default networks, default-network override, selection annotation, gateway check,
//! auxiliary chain) and [`plan::plan_all`](multus::plan::plan_all) for each delegate's interface name, `CNI_ARGS` and
//! capability arguments. So the explanation cannot drift from what the daemon does.
//!
//! What the daemon only learns while it runs is predicted here and marked as such: an interface
//! name used twice in the plan (the second delegate fails the netns clash check and the ADD is
//! rolled back), a plugin binary missing from the node's `binDir`, and the routes `default-route`
//! removes and adds. When resolution fails, the daemon stops at the first failing network; each
//! selected network is then also resolved on its own, so that every broken one is named.

mod planner;
mod report;

pub use report::{
    AnnotationSummary, Binary, ConfigSummary, CurrentStatus, DeviceEntry, DeviceState, EventNote, Explanation,
    NetworkEntry, NetworkState, Outcome, PluginEntry, PodSummary, Problem, Role, RouteEntry, Settings, Severity,
};

use crate::node::NodeConfig;
use multus::error::PodRef;
use multus::k8s_args::{K8sArgs, PodIdentity};
use multus::model::{DEFAULT_NETWORK_ANNOTATION, NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, NadLookup, PodInfo};
use multus::plan::{PlanContext, RuntimeConfig};
use multus::resolve::{self, DeviceIdSource, DeviceLookupError, ResolveSettings};
use planner::Planner;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Everything an explanation is made from.
pub struct ExplainRequest<'a> {
    pub pod: &'a PodInfo,
    pub nads: &'a dyn NadLookup,
    pub node: &'a NodeConfig,
    /// The pod's device IDs per resource name; `None`: not looked up.
    pub devices: Option<&'a BTreeMap<String, Vec<String>>>,
    /// Directories searched for plugin binaries; `None`: binaries are not checked.
    pub plugin_dirs: Option<&'a [PathBuf]>,
    /// `CNI_IFNAME` of the request (the runtime's: `eth0`).
    pub ifname: &'a str,
    /// `CNI_CONTAINERID` (also `K8S_POD_INFRA_CONTAINER_ID`): unknown before the pod runs.
    pub container_id: &'a str,
}

/// Devices for the resolver: a given map, or none (offline, not looked up).
struct Devices<'a>(Option<&'a BTreeMap<String, Vec<String>>>);

impl DeviceIdSource for Devices<'_> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(self.0.and_then(|m| m.get(resource_name).cloned()).unwrap_or_default())
    }
}

/// Explain the ADD of `req.pod`.
pub fn explain(req: &ExplainRequest<'_>) -> Explanation {
    let pod = req.pod;
    let mut ex = Explanation {
        pod: PodSummary {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            node: pod.node_name.clone(),
        },
        config: ConfigSummary {
            daemon_config: req.node.daemon_config_source.clone(),
            request_config: req.node.request_config_source.clone(),
            notes: req.node.notes.clone(),
            error: None,
            settings: None,
            plugin_dirs: req.plugin_dirs.map(|d| d.iter().map(|p| p.display().to_string()).collect()),
        },
        annotations: AnnotationSummary {
            networks: pod.annotation(NETWORKS_ANNOTATION).map(str::to_string),
            default_network: pod.annotation(DEFAULT_NETWORK_ANNOTATION).map(str::to_string),
        },
        outcome: Outcome { succeeds: true, summary: String::new(), error: None, failing_network: None },
        networks: Vec::new(),
        problems: Vec::new(),
        events: Vec::new(),
        current_status: current_status(pod),
    };
    let conf = match &req.node.effective {
        Ok(c) => c,
        Err(e) => {
            ex.config.error = Some(e.clone());
            ex.outcome = Outcome {
                succeeds: false,
                summary: if req.node.notes.is_empty() {
                    "the daemon cannot parse the request config: every ADD on this node fails".into()
                } else {
                    "the request config cannot be parsed; see the notes on how it was found (give --daemon-config and --multus-conf for a node's)".into()
                },
                error: Some(format!("Multus: error loading netconf: {e}")),
                failing_network: None,
            };
            return ex;
        }
    };
    let settings = ResolveSettings::from_netconf(conf);
    let runtime_config = conf.runtime_config.as_ref().map(RuntimeConfig::from_value);
    ex.config.settings = Some(Settings {
        cni_version: conf.cni_version.clone(),
        cluster_network: conf.cluster_network.clone(),
        default_networks: conf.default_networks.clone(),
        multus_namespace: conf.multus_namespace.clone(),
        system_namespaces: conf.system_namespaces.clone(),
        namespace_isolation: conf.namespace_isolation,
        global_namespaces: conf.non_isolated_namespaces.clone(),
        auxiliary_cni_chain_name: conf.auxiliary_cni_chain_name.clone(),
        bin_dir: conf.bin_dir.clone(),
        conf_dir: conf.conf_dir.clone(),
        cni_dir: conf.cni_dir.clone(),
        runtime_config: conf.runtime_config.clone(),
    });
    let who = PodRef::new(&pod.namespace, &pod.name, &pod.uid);
    let args = K8sArgs {
        pod: PodIdentity { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: Some(pod.uid.clone()) },
        infra_container_id: req.container_id.to_string(),
        ip: None,
    };
    let ctx = PlanContext {
        container_id: req.container_id,
        ifname: req.ifname,
        args: &args,
        runtime_config: runtime_config.as_ref(),
        process_cni_args: None,
    };
    let planner = Planner { req, settings: &settings, who: &who, ctx: &ctx };
    match resolve::resolve_add_delegates(&settings, Some(&who), Some(pod), req.nads, &mut Devices(req.devices)) {
        Ok(resolved) => planner.planned(&mut ex, resolved),
        Err(e) => planner.failed(&mut ex, &e),
    }
    ex.problems.sort_by_key(|p| p.severity);
    // A network selected twice has its problems twice.
    let mut seen = BTreeSet::new();
    ex.problems.retain(|p| seen.insert((p.code, p.network.clone(), p.message.clone())));
    ex
}

fn current_status(pod: &PodInfo) -> Option<Vec<CurrentStatus>> {
    let text = pod.annotation(NETWORK_STATUS_ANNOTATION)?;
    let entries = multus::status::parse_network_status(text).ok()?;
    Some(
        entries
            .into_iter()
            .map(|e| CurrentStatus { name: e.name, interface: e.interface, ips: e.ips, default: e.default })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus::config::{DaemonConfig, NetConf};
    use multus::model::Nad;
    use serde_json::{Value, json};

    type Nads = BTreeMap<(String, String), Nad>;

    fn node(conf: Value) -> NodeConfig {
        NodeConfig {
            daemon_config_source: "test".into(),
            request_config_source: "test".into(),
            daemon: DaemonConfig::from_bytes(b"{}").unwrap(),
            effective: NetConf::from_bytes(conf.to_string().as_bytes()).map_err(|e| e.to_string()),
            notes: Vec::new(),
        }
    }

    fn nads(list: &[(&str, &str)]) -> Nads {
        list.iter()
            .map(|(ns, name)| {
                let config = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge"}).to_string();
                let nad = Nad { namespace: ns.to_string(), name: name.to_string(), config, ..Default::default() };
                ((ns.to_string(), name.to_string()), nad)
            })
            .collect()
    }

    fn pod(ns: &str, annotations: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: "p".into(),
            uid: "u".into(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn run(pod: &PodInfo, nads: &Nads, node: &NodeConfig) -> Explanation {
        explain(&ExplainRequest {
            pod,
            nads,
            node,
            devices: None,
            plugin_dirs: None,
            ifname: "eth0",
            container_id: "c",
        })
    }

    fn roles(ex: &Explanation) -> Vec<(Role, Option<&str>)> {
        ex.networks.iter().map(|n| (n.role, n.interface.as_deref())).collect()
    }

    #[test]
    fn roles_follow_the_resolvers_order() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("10-cluster.conflist");
        std::fs::write(&cluster, r#"{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge"}]}"#).unwrap();
        std::fs::create_dir(dir.path().join("aux")).unwrap();
        std::fs::write(dir.path().join("aux/10-tuning.conf"), r#"{"type":"tuning"}"#).unwrap();
        let node = node(json!({"cniVersion": "1.0.0", "clusterNetwork": cluster, "defaultNetworks": ["extra"],
            "auxiliaryCNIChainName": "aux"}));
        let n = nads(&[("kube-system", "extra"), ("kube-system", "alt"), ("default", "a")]);

        let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt"), (NETWORKS_ANNOTATION, "a")]);
        let ex = run(&p, &n, &node);
        assert!(ex.outcome.succeeds, "{:?}", ex.outcome);
        assert_eq!(
            roles(&ex),
            [
                (Role::DefaultNetworkOverride, Some("eth0")),
                (Role::DefaultNetwork, Some("net1")),
                (Role::Selected, Some("net2")),
                (Role::AuxiliaryChain, Some("net3")),
            ]
        );
        assert_eq!(
            ex.networks[3].plugins.iter().map(|p| p.plugin_type.as_str()).collect::<Vec<_>>(),
            ["passthru", "tuning"]
        );

        // No default networks for a system namespace.
        let ex = run(&pod("kube-system", &[(NETWORKS_ANNOTATION, "default/a")]), &n, &node);
        assert_eq!(
            roles(&ex),
            [
                (Role::ClusterNetwork, Some("eth0")),
                (Role::Selected, Some("net1")),
                (Role::AuxiliaryChain, Some("net2"))
            ]
        );
        assert_eq!(ex.networks[0].source.as_deref(), Some(format!("file {}", cluster.display()).as_str()));

        // Static delegates when there is no cluster network.
        let node =
            super::tests::node(json!({"delegates": [{"name": "s1", "type": "bridge"}, {"name": "s2", "type": "ptp"}]}));
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "a")]), &n, &node);
        assert_eq!(
            roles(&ex),
            [
                (Role::StaticDelegate, Some("eth0")),
                (Role::StaticDelegate, Some("net1")),
                (Role::Selected, Some("net2"))
            ]
        );
    }

    #[test]
    fn a_broken_cluster_network_fails_every_pod_and_the_selection_is_not_looked_at() {
        let node = node(json!({"clusterNetwork": "/nonexistent/cluster.conflist"}));
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "a,b")]), &nads(&[("default", "a")]), &node);
        assert!(ex.fails());
        assert!(ex.outcome.error.as_deref().unwrap().contains("failed to get clusterNetwork"), "{:?}", ex.outcome);
        let states: Vec<(Role, NetworkState)> = ex.networks.iter().map(|n| (n.role, n.state)).collect();
        assert_eq!(
            states,
            [
                (Role::ClusterNetwork, NetworkState::Failed),
                (Role::Selected, NetworkState::NotChecked),
                (Role::Selected, NetworkState::NotChecked)
            ]
        );
    }

    #[test]
    fn every_failing_selected_network_is_named() {
        let node = node(json!({"clusterNetwork": "cluster"}));
        let n = nads(&[("kube-system", "cluster"), ("default", "ok")]);
        let mut bad = n.clone();
        bad.insert(
            ("default".into(), "broken".into()),
            Nad { namespace: "default".into(), name: "broken".into(), config: "{".into(), ..Default::default() },
        );
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "missing,ok,broken")]), &bad, &node);
        let states: Vec<(&str, NetworkState)> = ex.networks.iter().map(|n| (n.reference.as_str(), n.state)).collect();
        assert_eq!(
            states,
            [
                ("cluster", NetworkState::Resolves),
                ("default/missing", NetworkState::Failed),
                ("default/ok", NetworkState::Resolves),
                ("default/broken", NetworkState::Failed),
            ]
        );
        assert_eq!(ex.outcome.failing_network.as_deref(), Some("default/missing"));
        assert!(
            ex.networks[3].reason.as_deref().unwrap().starts_with("its config is refused: "),
            "{:?}",
            ex.networks[3]
        );
        assert!(
            ex.problems.iter().any(|p| p.code == "network-fails" && p.network.as_deref() == Some("default/broken"))
        );
        // The event the daemon emits for the first one.
        assert_eq!(ex.events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["NoNetworkFound"]);

        // A selection that does not parse.
        let ex = run(&pod("default", &[(NETWORKS_ANNOTATION, "[{")]), &n, &node);
        assert!(ex.fails());
        assert_eq!(ex.networks.last().unwrap().state, NetworkState::Failed);
    }

    #[test]
    fn an_unparsable_request_config_fails_every_add() {
        let ex = run(&pod("default", &[]), &nads(&[]), &node(json!({"name": "no cluster network"})));
        assert!(ex.fails());
        assert_eq!(
            ex.config.error.as_deref(),
            Some("LoadNetConf: at least one delegate/clusterNetwork must be specified")
        );
        assert!(ex.networks.is_empty());
    }

    #[test]
    fn a_malformed_mac_request_fails_the_plan_and_the_current_status_is_shown() {
        let node = node(json!({"clusterNetwork": "cluster"}));
        let n = nads(&[("kube-system", "cluster"), ("default", "a")]);
        let status = r#"[{"name":"cluster","interface":"eth0","ips":["10.0.0.5"],"default":true,"dns":{}}]"#;
        let p = pod(
            "default",
            &[(NETWORKS_ANNOTATION, r#"[{"name":"a","mac":"not-a-mac"}]"#), (NETWORK_STATUS_ANNOTATION, status)],
        );
        let ex = run(&p, &n, &node);
        // The selection parser already refuses the MAC: the daemon fails before planning.
        assert!(ex.fails());
        assert_eq!(ex.current_status.as_ref().unwrap()[0].interface, "eth0");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use multus::config::{DaemonConfig, NetConf};
    use multus::model::Nad;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Any annotation and NAD config gives an explanation, and "fails" agrees with the outcome.
        #[test]
        fn explain_never_panics(
            networks in "[a-z0-9/@, \\[\\]{}\":-]{0,40}",
            default_net in proptest::option::of("[a-z/]{0,8}"),
            config in "[a-z{}\":, \\[\\]]{0,40}",
            isolation: bool,
        ) {
            let node = NodeConfig {
                daemon_config_source: String::new(),
                request_config_source: String::new(),
                daemon: DaemonConfig::from_bytes(b"{}").unwrap(),
                effective: NetConf::from_bytes(
                    serde_json::json!({"clusterNetwork": "c", "namespaceIsolation": isolation}).to_string().as_bytes(),
                )
                .map_err(|e| e.to_string()),
                notes: Vec::new(),
            };
            let mut nads = BTreeMap::new();
            for (ns, name, config) in [("kube-system", "c", r#"{"name":"c","type":"bridge"}"#.to_string()), ("default", "a", config.clone()), ("x", "b", config)] {
                nads.insert((ns.to_string(), name.to_string()), Nad { namespace: ns.into(), name: name.into(), config, ..Default::default() });
            }
            let mut annotations = BTreeMap::new();
            annotations.insert(NETWORKS_ANNOTATION.to_string(), networks);
            if let Some(d) = default_net {
                annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
            }
            let pod = PodInfo { namespace: "default".into(), name: "p".into(), annotations, ..Default::default() };
            let ex = explain(&ExplainRequest { pod: &pod, nads: &nads, node: &node, devices: None, plugin_dirs: None, ifname: "eth0", container_id: "c" });
            if !ex.outcome.succeeds {
                prop_assert!(ex.fails());
                prop_assert!(ex.outcome.error.is_some());
            }
            let _ = crate::render::explanation(&ex);
        }
    }
}
