//! `cargo xtask e2e`'s command line and the names every e2e run shares.

use std::path::PathBuf;

pub const NAMESPACE: &str = "multus-e2e";
pub const DEFAULT_CLUSTER: &str = "multus-rs-e2e";
/// Any image with iproute2 (`ip -j`) and `sleep`.
pub const DEFAULT_POD_IMAGE: &str = "docker.io/nicolaka/netshoot:v0.13";
/// Plugins kind nodes lack (kindnet ships bridge, host-local, ptp, portmap, loopback).
pub const EXTRA_PLUGINS: [&str; 3] = ["macvlan", "static", "tuning"];
/// The case pods of fixtures/e2e/objects/20-pods.yaml.
#[cfg_attr(not(test), allow(dead_code))]
pub const CASE_PODS: [&str; 4] = ["macvlan", "two-nads", "default-route", "static-ip"];

#[derive(clap::Args, Clone, Debug)]
pub struct E2eArgs {
    /// Run on this machine instead of kind.
    #[arg(long)]
    pub local: bool,
    /// With --local: run the manifest's DaemonSet with docker, from the project's image, on a
    /// node made in the run directory (cniVersion 1.0.0 in its daemon config, for CHECK).
    #[arg(long, requires = "local")]
    pub container: bool,
    /// With --local: play the kubelet through CRI against a private containerd (Debian's), which
    /// loads 00-multus.conf and runs multus-shim itself; every case, plus the runtime's own.
    #[arg(long, requires = "local", conflicts_with = "container")]
    pub cri: bool,
    /// With --local: a cluster of this many nodes, each a Docker container (testcontainers) with
    /// its own network namespace and CNI directories, one kube-mock for all: a rolling upgrade
    /// under load, a node lost and back, an API partition (crates/cluster-e2e).
    #[arg(long, requires = "local", conflicts_with_all = ["container", "cri"], value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: Option<u16>,
    /// With --container: run the manifest unchanged but for the image (as a cluster switching
    /// from the Go image would).
    #[arg(long, requires = "container")]
    pub upstream: bool,
    /// With --container: the manifest to run and apply (default
    /// deployments/multus-daemonset-thick-plugin.yml), e.g. the Go project's own; every image in
    /// it is replaced by multus-rs's.
    #[arg(long, requires = "container")]
    pub manifest: Option<PathBuf>,
    /// Keep the kind cluster afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Print every command instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    /// kind cluster name.
    #[arg(long, default_value = DEFAULT_CLUSTER)]
    pub cluster: String,
    /// Image of the test pods (kind): needs iproute2 and sleep.
    #[arg(long, default_value = DEFAULT_POD_IMAGE)]
    pub pod_image: String,
    /// How many pods the "many pods at once" case creates.
    #[arg(long, default_value_t = 8)]
    pub many: usize,
    /// Skip `cargo build` (use what target/ holds).
    #[arg(long)]
    pub no_build: bool,
}
