//! `cluster-e2e`: a cluster of Multus nodes in Docker containers on this machine; the rolling
//! upgrade, node loss and API partition scenarios (see `cluster_e2e::driver`). Run by
//! `cargo xtask e2e --local --nodes N`, which builds the binaries first. Exit 0 when every goal
//! holds, 1 when one does not, 2 when the cluster could not be run.

use std::path::PathBuf;

use clap::Parser;
use cluster_e2e::driver::{self, Settings};

#[derive(Parser)]
#[command(name = "cluster-e2e")]
struct Cli {
    /// Nodes (containers).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Directory of the workspace's binaries (multus-daemon, multus-shim, multus-install,
    /// passthru, kube-mock, cluster-node).
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Debian's CNI plugins.
    #[arg(long, default_value = "/usr/lib/cni")]
    plugin_dir: PathBuf,
    /// Where the report, the image context and the daemons' logs go.
    #[arg(long, default_value = "target/cluster-e2e")]
    out: PathBuf,
    #[arg(long, default_value = "multus-rs-cluster:e2e")]
    tag: String,
    /// Pods each node keeps live under load.
    #[arg(long, default_value_t = 4)]
    per_node: usize,
    /// Pods per node attached by "Go" before the roll.
    #[arg(long, default_value_t = 3)]
    seeded_per_node: usize,
    /// How long a node is cut off the API server.
    #[arg(long, default_value_t = 60)]
    partition_seconds: u64,
    /// Seconds of load between the steps of a scenario.
    #[arg(long, default_value_t = 8)]
    settle_seconds: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let settings = Settings {
        nodes: cli.nodes.max(1),
        bin_dir: cli.bin_dir,
        plugin_dir: cli.plugin_dir,
        out: cli.out,
        tag: cli.tag,
        per_node: cli.per_node,
        seeded_per_node: cli.seeded_per_node,
        partition_seconds: cli.partition_seconds,
        settle_seconds: cli.settle_seconds,
    };
    match driver::run(&settings).await {
        Ok(report) => {
            print!("{}", cluster_e2e::report::render(&report));
            println!("report: {}", settings.out.join("report.json").display());
            std::process::exit(if report.failures.is_empty() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("cluster-e2e: {e:#}");
            std::process::exit(2);
        }
    }
}
