//! What resolution reads of the Multus config.

use serde_json::Value;
use std::path::PathBuf;

/// The parts of the Multus config that resolution reads (the daemon fills it from its NetConf).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveSettings {
    /// `cniVersion` of the request, given to configs loaded from files and to the auxiliary chain.
    pub cni_version: String,
    /// Empty: use `static_delegates`.
    pub cluster_network: String,
    /// `defaultNetworks`: networks attached to every pod outside `system_namespaces`.
    pub default_networks: Vec<String>,
    /// `multusNamespace`: where NADs named without a namespace by the config are looked up.
    pub multus_namespace: String,
    /// `confDir`: CNI configs for NADs with an empty spec and networks named by file.
    pub conf_dir: PathBuf,
    /// `systemNamespaces`: namespaces whose pods get no `default_networks`.
    pub system_namespaces: Vec<String>,
    /// `namespaceIsolation`: selections may only name NADs of the pod's namespace or of `global_namespaces`.
    pub namespace_isolation: bool,
    /// Already split and trimmed (`["default"]` when unset).
    pub global_namespaces: Vec<String>,
    /// `auxiliaryCNIChainName`: the auxiliary chain appended as the last delegate; empty → none.
    pub auxiliary_cni_chain_name: String,
    /// The `delegates` list, used when `cluster_network` is empty (first = master).
    pub static_delegates: Vec<Value>,
}

impl Default for ResolveSettings {
    fn default() -> Self {
        Self {
            cni_version: String::new(),
            cluster_network: String::new(),
            default_networks: Vec::new(),
            multus_namespace: "kube-system".into(),
            conf_dir: PathBuf::from("/etc/cni/multus/net.d"),
            system_namespaces: vec!["kube-system".into()],
            namespace_isolation: false,
            global_namespaces: vec!["default".into()],
            auxiliary_cni_chain_name: String::new(),
            static_delegates: Vec::new(),
        }
    }
}

impl ResolveSettings {
    /// The settings of an effective request config (§2.4), as every ADD, DEL, STATUS and GC
    /// resolves with them; one mapping so that the daemon and `multusctl explain` cannot differ.
    pub fn from_netconf(conf: &crate::config::NetConf) -> Self {
        Self {
            cni_version: conf.cni_version.clone(),
            cluster_network: conf.cluster_network.clone(),
            default_networks: conf.default_networks.clone(),
            multus_namespace: conf.multus_namespace.clone(),
            conf_dir: PathBuf::from(&conf.conf_dir),
            system_namespaces: conf.system_namespaces.clone(),
            namespace_isolation: conf.namespace_isolation,
            global_namespaces: conf.non_isolated_namespaces.clone(),
            auxiliary_cni_chain_name: conf.auxiliary_cni_chain_name.clone(),
            static_delegates: conf.delegates.iter().map(|m| Value::Object(m.clone())).collect(),
        }
    }
}
