//! `cluster-node`: the node agent inside every node container of `cluster-e2e` (see
//! `cluster_e2e::agent`). Each command prints one JSON line; a failed command exits 1 with
//! `{"error": …}`.

use clap::{Parser, Subcommand};
use cluster_e2e::agent;
use cluster_e2e::plan::{Generation, NAMESPACE, PodRef};
use serde_json::json;

#[derive(Parser)]
#[command(name = "cluster-node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct Pod {
    #[arg(long)]
    name: String,
    #[arg(long)]
    uid: String,
    #[arg(long)]
    container_id: String,
    #[arg(long, default_value = NAMESPACE)]
    namespace: String,
}

impl Pod {
    fn pod(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            container_id: self.container_id.clone(),
            node: hostname(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// PID 1: reap orphans; SIGTERM stops the daemon.
    Init,
    /// The DaemonSet's init container: install the shim into /opt/cni/bin.
    Install,
    /// Start multus-daemon with the generation's config; returns once ready.
    DaemonStart {
        #[arg(long, value_parser = parse_generation)]
        generation: Generation,
    },
    /// SIGTERM the daemon and wait for it to end.
    DaemonStop,
    /// The runtime's ADD (new netns + shim; DEL and cleanup on failure).
    Add(Pod),
    /// The runtime's DEL (shim, then the netns removed).
    Del(Pod),
    /// Attach a pod as the Go thick plugin did and leave its cache files.
    SeedGo(Pod),
    /// Leases, caches, namespaces and the daemon.
    State,
    /// The runtime's GC: every attachment but these containers' is to go.
    Gc {
        /// Container IDs still valid (comma-separated; empty: none).
        #[arg(long, default_value = "")]
        valid: String,
    },
    /// Write the 00-multus.conf the Go daemon leaves.
    SeedGoConfig,
    /// The daemon's reclaiming log lines since it last started.
    ReclaimLog,
}

fn parse_generation(s: &str) -> Result<Generation, String> {
    Generation::parse(s).ok_or_else(|| format!("unknown generation {s:?} (old or new)"))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<serde_json::Value> = match cli.command {
        Cmd::Init => agent::init(),
        Cmd::Install => agent::install().map(|out| json!({"installed": out})),
        Cmd::DaemonStart { generation } => agent::daemon_start(generation, &hostname()),
        Cmd::DaemonStop => agent::daemon_stop(),
        Cmd::Add(pod) => Ok(json!(agent::add(&pod.pod()))),
        Cmd::Del(pod) => Ok(json!(agent::del(&pod.pod()))),
        Cmd::SeedGo(pod) => agent::seed_go(&pod.pod()).map(|()| json!({"seeded": pod.name})),
        Cmd::State => Ok(agent::state()),
        Cmd::Gc { valid } => {
            let valid: Vec<String> = valid.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
            Ok(json!(agent::gc(&valid)))
        }
        Cmd::SeedGoConfig => agent::seed_go_config().map(|()| json!({"seeded": "00-multus.conf"})),
        Cmd::ReclaimLog => Ok(agent::reclaim_log()),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({"error": format!("{e:#}")}));
            std::process::exit(1);
        }
    }
}
