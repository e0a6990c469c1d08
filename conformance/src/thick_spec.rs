//! What a thick target is made of (a target file's `thick:` section): the shim, the daemon
//! command and config overlay, the API server, the delegates and the fake kubelet. Pure data;
//! `driver::thick::node` starts it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThickSpec {
    #[serde(default = "default_name")]
    pub name: String,
    /// The shim binary (templated: `{{bin}}` = cargo target dir).
    pub shim: String,
    /// Command starting the daemon (`{{daemon_config}}`, `{{kubeconfig}}`, `{{bin}}`, `{{tmp}}`).
    pub daemon: Vec<String>,
    /// Extra environment of the daemon.
    #[serde(default)]
    pub daemon_env: BTreeMap<String, String>,
    /// Overlay onto the generated daemon config (JSON merge patch).
    #[serde(default)]
    pub daemon_config: Value,
    /// Command starting the API server; must print `listening on <url>` first. Empty with
    /// `kubeconfig` set: use an existing API server.
    #[serde(default)]
    pub api_server: Vec<String>,
    /// An existing kubeconfig (for kubectl and the daemon) instead of starting a server.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// The daemon uses in-cluster config (Go multus): the API server gets TLS and a token and
    /// writes the service-account files into `{{sa}}`; the daemon gets
    /// `KUBERNETES_SERVICE_HOST`/`PORT` and no `KUBECONFIG`, so the target's command must make
    /// `{{sa}}` appear at `/var/run/secrets/kubernetes.io/serviceaccount` (see
    /// `targets/go-multus-thick.yaml`).
    #[serde(default)]
    pub in_cluster: bool,
    /// The fake delegate binary (records calls).
    #[serde(default = "default_fake")]
    pub fake_cni: String,
    /// Cluster network: `bridge` (Debian's bridge + host-local in a scratch netns; root),
    /// `fake` (fake-cni), or `auto` (bridge when possible).
    #[serde(default = "default_cluster")]
    pub cluster_network: String,
    /// Where the reference plugins live (bridge, host-local).
    #[serde(default = "default_plugins")]
    pub plugins_dir: String,
    /// kubectl, used to seed pods and NADs and read annotations (works against any server).
    #[serde(default = "default_kubectl")]
    pub kubectl: String,
    /// Seconds to wait for the daemon's socket and `00-multus.conf`.
    #[serde(default = "default_ready")]
    pub ready_timeout: u64,
    /// A scriptable kubelet pod-resources server (`fake-kubelet`) started on
    /// `{{kubelet_socket}}` (in `{{kubelet_dir}}`) with a script the cases rewrite
    /// (`setup.devices`); the generated daemon config names it as `kubeletPodResourcesSocket`
    /// (multus-rs; a daemon with the kubelet's fixed path needs `{{kubelet_dir}}` mounted on
    /// `/var/lib/kubelet/pod-resources`). Unset, or the binary missing: no device cases.
    #[serde(default)]
    pub fake_kubelet: Option<String>,
    /// The daemon makes a running pod's networks follow its selection annotation (multus-rs:
    /// the harness writes `"dynamicNetworks": true` into its config). Unset: the
    /// `multus-dynamic` cases report `unsupported`.
    #[serde(default)]
    pub dynamic_networks: bool,
}

fn default_name() -> String {
    "multus-rs".into()
}
fn default_fake() -> String {
    "{{bin}}/fake-cni".into()
}
fn default_cluster() -> String {
    "auto".into()
}
fn default_plugins() -> String {
    "/usr/lib/cni".into()
}
fn default_kubectl() -> String {
    "kubectl".into()
}
fn default_ready() -> u64 {
    60
}

impl ThickSpec {
    /// multus-rs from the cargo target dir.
    pub fn multus_rs() -> ThickSpec {
        ThickSpec {
            name: default_name(),
            shim: "{{bin}}/multus-shim".into(),
            daemon: vec![
                "{{bin}}/multus-daemon".into(),
                "-config".into(),
                "{{daemon_config}}".into(),
                "--kubeconfig".into(),
                "{{kubeconfig}}".into(),
            ],
            daemon_env: BTreeMap::new(),
            daemon_config: Value::Null,
            // kube-mock's binary on a free local port, writing the node's kubeconfig.
            api_server: std::iter::once("{{bin}}/kube-mock".to_string())
                .chain(test_node::api_binary::kube_mock_args(std::path::Path::new("{{kubeconfig}}"), &[], &[]))
                .collect(),
            kubeconfig: None,
            in_cluster: false,
            fake_cni: default_fake(),
            cluster_network: default_cluster(),
            plugins_dir: default_plugins(),
            kubectl: default_kubectl(),
            ready_timeout: default_ready(),
            fake_kubelet: Some("{{bin}}/fake-kubelet".into()),
            dynamic_networks: true,
        }
    }
}
