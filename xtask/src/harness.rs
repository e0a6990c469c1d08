//! A node on this machine: kube-mock + multus-daemon + multus-shim run as a container runtime
//! would, with one network namespace per pod. Shared by `demo` and `e2e --local`.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_node::{DaemonProcess, PodSandbox, ShimCall, ShimRun};

mod daemon;
pub use daemon::StackedDaemon;

use crate::fixtures::{self, Vars};
use crate::util::walk_files as walk;
use crate::util::{Cmd, cargo_cmd, defer, have, is_root, target_dir};

/// Debian's containernetworking-plugins.
pub const SYSTEM_CNI_DIR: &str = "/usr/lib/cni";
/// Delegates the fixtures use.
pub const PLUGINS: [&str; 5] = ["bridge", "macvlan", "host-local", "static", "tuning"];
/// The node the daemon serves (`MULTUS_NODE_NAME`) and the fixture pods are on.
pub const NODE: &str = "node1";

/// Can the real delegates run here? `Err(reason)` when not.
pub fn real_delegates_available() -> Result<(), String> {
    if !is_root() {
        return Err("not running as root (network namespaces and links need CAP_NET_ADMIN)".into());
    }
    if !have("ip") {
        return Err("`ip` (iproute2) is not installed".into());
    }
    if let Some(p) = PLUGINS.iter().find(|p| !Path::new(SYSTEM_CNI_DIR).join(p).exists()) {
        return Err(format!("{SYSTEM_CNI_DIR}/{p} is missing (apt-get install containernetworking-plugins)"));
    }
    Ok(())
}

/// The profile a command builds with when `MULTUS_XTASK_PROFILE` names none: `release`, unless
/// the command chose another at its start ([`use_default_profile`]).
static DEFAULT_PROFILE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Make `profile` the default of this xtask run (the demo's: `demo`). Called once, first.
pub fn use_default_profile(profile: &'static str) {
    let _ = DEFAULT_PROFILE.set(profile);
}

/// The cargo profile of the binaries the demo and the local e2e run: what
/// `MULTUS_XTASK_PROFILE` names (CI uses `dev` to reuse the test build instead of a second,
/// optimised one), else the command's default (`release`; the demo's `demo`).
pub fn profile() -> String {
    std::env::var("MULTUS_XTASK_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PROFILE.get().copied().unwrap_or("release").to_string())
}

/// The binaries the local node runs.
#[derive(Clone, Debug)]
pub struct Bins {
    pub daemon: PathBuf,
    pub shim: PathBuf,
    pub kube_mock: PathBuf,
    pub fake_cni: PathBuf,
}

impl Bins {
    pub fn release() -> Self {
        let profile = profile();
        let d = target_dir().join(if profile == "dev" { "debug" } else { profile.as_str() });
        Self {
            daemon: d.join("multus-daemon"),
            shim: d.join("multus-shim"),
            kube_mock: d.join("kube-mock"),
            fake_cni: d.join("fake-cni"),
        }
    }
    pub fn build_cmd() -> Cmd {
        cargo_cmd().args([
            "build",
            "--profile",
            profile().as_str(),
            "-p",
            "multus-daemon",
            "-p",
            "multus-shim",
            "-p",
            "kube-mock",
            "-p",
            "fake-cni",
        ])
    }
}

/// Progress line.
pub fn step(msg: impl AsRef<str>) {
    println!("==> {}", msg.as_ref());
}

/// One pod as the runtime sees it.
#[derive(Clone, Debug)]
pub struct PodRun {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns: String,
    pub netns_path: String,
}

/// What one shim invocation did.
#[derive(Debug)]
pub struct ShimOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<ShimRun> for ShimOutput {
    fn from(run: ShimRun) -> Self {
        Self { success: run.success(), stdout: run.stdout, stderr: run.stderr }
    }
}

impl ShimOutput {
    pub fn describe(&self) -> String {
        let out = if self.stdout.trim().is_empty() { &self.stderr } else { &self.stdout };
        out.trim().to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: String,
    pub state: String,
    pub addrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = &self.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev {}", self.dev)
    }
}

/// Interfaces, addresses and routes inside a network namespace.
#[derive(Debug, Default, Clone)]
pub struct NetnsView {
    pub ifaces: Vec<Iface>,
    pub routes: Vec<Route>,
}

impl NetnsView {
    pub fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }
    pub fn default_routes(&self) -> Vec<&Route> {
        self.routes.iter().filter(|r| r.dst == "default").collect()
    }
}

/// Parse `ip -j addr` (global IPv4/IPv6 addresses, link-local IPv6 left out).
pub fn parse_ip_addr(json: &str) -> Result<Vec<Iface>> {
    let v: Value = serde_json::from_str(json).context("parsing `ip -j addr`")?;
    let mut out = Vec::new();
    for l in v.as_array().context("`ip -j addr` is not a list")? {
        let addrs = l["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|ai| ai["scope"].as_str() != Some("link"))
                    .filter_map(|ai| Some(format!("{}/{}", ai["local"].as_str()?, ai["prefixlen"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Iface {
            name: l["ifname"].as_str().unwrap_or_default().to_string(),
            mac: l["address"].as_str().unwrap_or_default().to_string(),
            state: l["operstate"].as_str().unwrap_or_default().to_string(),
            addrs,
        });
    }
    Ok(out)
}

/// Parse `ip -j route`.
pub fn parse_ip_route(json: &str) -> Result<Vec<Route>> {
    let v: Value = serde_json::from_str(json).context("parsing `ip -j route`")?;
    Ok(v.as_array()
        .context("`ip -j route` is not a list")?
        .iter()
        .map(|r| Route {
            dst: r["dst"].as_str().unwrap_or_default().to_string(),
            gateway: r["gateway"].as_str().map(str::to_string),
            dev: r["dev"].as_str().unwrap_or_default().to_string(),
        })
        .collect())
}

/// One entry of the `k8s.v1.cni.cncf.io/network-status` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    pub name: String,
    pub interface: String,
    pub ips: Vec<String>,
    pub mac: String,
    pub default: bool,
    pub gateway: Vec<String>,
}

pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// The pod's network-status annotation, parsed (`None` when absent).
pub fn network_status(pod: &Value) -> Result<Option<Vec<StatusEntry>>> {
    let Some(text) = pod["metadata"]["annotations"][NETWORK_STATUS].as_str() else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(text).context("network-status is not JSON")?;
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    Ok(Some(
        v.as_array()
            .context("network-status is not a list")?
            .iter()
            .map(|e| StatusEntry {
                name: e["name"].as_str().unwrap_or_default().to_string(),
                interface: e["interface"].as_str().unwrap_or_default().to_string(),
                ips: strs(&e["ips"]),
                mac: e["mac"].as_str().unwrap_or_default().to_string(),
                default: e["default"].as_bool().unwrap_or(false),
                gateway: strs(&e["gateway"]),
            })
            .collect(),
    ))
}

/// A local node: run directory, mock API server, daemon, pods.
pub struct LocalEnv {
    pub run: PathBuf,
    pub vars: Vars,
    pub real: bool,
    pub bins: Bins,
    pub kubeconfig: PathBuf,
    pub api: String,
    pub fixture: PathBuf,
    pub id: u32,
    /// Host paths (they differ from the daemon's view when it runs in a container).
    pub conf_dir_host: PathBuf,
    pub socket_path: PathBuf,
    pub cni_dir_host: PathBuf,
    pub ipam_dir_host: PathBuf,
    daemon: Option<StackedDaemon>,
    daemon_starts: u32,
}

impl LocalEnv {
    /// Make the run directory, host links (real mode) or fake delegates (fake mode).
    pub fn new(kind: &str, fixture: &Path, namespace: &str, real: bool) -> Result<Self> {
        let id = std::process::id();
        let run = tempfile::Builder::new()
            .prefix(&format!("multus-{kind}-{id}-"))
            .tempdir()
            .context("creating the run directory")?
            .keep();
        {
            let run = run.clone();
            let _ = defer(format!("remove {}", run.display()), move || {
                let _ = std::fs::remove_dir_all(&run);
            });
        }
        for d in ["net.d", "cni", "multus-net.d", "ipam", "bin", "logs"] {
            std::fs::create_dir_all(run.join(d))?;
        }
        let bins = Bins::release();
        let bin_dir = if real {
            PathBuf::from(SYSTEM_CNI_DIR)
        } else {
            // One fake-cni copy per delegate type the fixtures name.
            for p in PLUGINS {
                std::fs::copy(&bins.fake_cni, run.join("bin").join(p))
                    .with_context(|| format!("installing fake-cni as {p}"))?;
            }
            run.join("bin")
        };
        let short = id % 1_000_000;
        let mut vars = Vars::new();
        let mut set = |k: &str, v: String| {
            vars.insert(k.to_string(), v);
        };
        set("RUN_DIR", run.display().to_string());
        set("BIN_DIR", bin_dir.display().to_string());
        set("IPAM_DIR", run.join("ipam").display().to_string());
        set("CLUSTER_BRIDGE", format!("mcb{short}"));
        set("NAD_BRIDGE", format!("mnb{short}"));
        set("MACVLAN_MASTER", format!("mvm{short}"));
        set("NAMESPACE", namespace.to_string());
        set("POD_IMAGE", "registry.invalid/pause:3.10".to_string());
        set("MANY", "0".to_string());
        let env = Self {
            conf_dir_host: run.join("net.d"),
            socket_path: run.join("run/multus/multus.sock"),
            cni_dir_host: run.join("cni"),
            ipam_dir_host: run.join("ipam"),
            kubeconfig: run.join("kubeconfig"),
            run,
            vars,
            real,
            bins,
            api: String::new(),
            fixture: fixture.to_path_buf(),
            id: short,
            daemon: None,
            daemon_starts: 0,
        };
        if real {
            env.make_host_links()?;
        }
        Ok(env)
    }

    pub fn var(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or_default()
    }

    /// The macvlan master: one end of a veth pair (this kernel has no `dummy` links). The
    /// bridges are made by the bridge plugin; they are removed at cleanup.
    fn make_host_links(&self) -> Result<()> {
        let master = self.var("MACVLAN_MASTER").to_string();
        let peer = format!("mvp{}", self.id);
        Cmd::new("ip").args(["link", "add", &master, "type", "veth", "peer", "name", &peer]).output()?;
        {
            let master = master.clone();
            let _ = defer(format!("delete veth {master}"), move || {
                Cmd::new("ip").args(["link", "del", &master]).run_quiet();
            });
        }
        Cmd::new("ip").args(["link", "set", &master, "up"]).output()?;
        Cmd::new("ip").args(["link", "set", &peer, "up"]).output()?;
        // The bridges are made here rather than by the bridge plugin, with a fixed MAC: a bridge
        // with a kernel-chosen MAC takes the lowest MAC of its ports, so it changes whenever pods
        // come and go, and the bridge plugin's CHECK (which compares the bridge's MAC with the
        // cached result) then fails for every older pod.
        for (n, b) in
            [self.var("CLUSTER_BRIDGE").to_string(), self.var("NAD_BRIDGE").to_string()].into_iter().enumerate()
        {
            Cmd::new("ip").args(["link", "add", &b, "type", "bridge"]).output()?;
            {
                let b = b.clone();
                let _ = defer(format!("delete bridge {b}"), move || {
                    Cmd::new("ip").args(["link", "del", &b]).run_quiet();
                });
            }
            let mac = format!(
                "02:6d:{:02x}:{:02x}:{:02x}:{:02x}",
                (self.id >> 16) & 0xff,
                (self.id >> 8) & 0xff,
                self.id & 0xff,
                n + 1
            );
            Cmd::new("ip").args(["link", "set", &b, "address", &mac, "up"]).output()?;
        }
        Ok(())
    }

    /// Start kube-mock's binary with `seeds`; remember its URL; its PID. It stays on the
    /// cleanup stack (stopped at the end or on Ctrl-C).
    pub fn start_mock(&mut self, seeds: &[PathBuf], extra: &[String]) -> Result<u32> {
        let log = self.run.join("logs/kube-mock.log");
        let mock = test_node::KubeMockProcess::start(&self.bins.kube_mock, &self.kubeconfig, seeds, extra, &log)?;
        self.api = mock.url().to_string();
        let pid = mock.pid();
        let _ = defer(format!("stop kube-mock (pid {pid})"), move || drop(mock));
        Ok(pid)
    }

    /// Write the primary CNI config into the autoconfig dir and the daemon config.
    pub fn write_configs(&self) -> Result<PathBuf> {
        let primary = fixtures::render_file(&self.fixture.join("cluster-net.conflist"), &self.vars)?;
        let name = serde_json::from_str::<Value>(&primary)?["name"].as_str().unwrap_or("cluster").to_string();
        std::fs::write(self.conf_dir_host.join(format!("10-{name}.conflist")), primary)?;
        let daemon_config = self.run.join("daemon-config.json");
        std::fs::write(&daemon_config, fixtures::render_file(&self.fixture.join("daemon-config.json"), &self.vars)?)?;
        Ok(daemon_config)
    }

    pub fn socket(&self) -> PathBuf {
        self.socket_path.clone()
    }

    pub fn multus_conf_path(&self) -> PathBuf {
        self.conf_dir_host.join("00-multus.conf")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.run.join("logs/multus-daemon.log")
    }

    /// Start multus-daemon (kubeconfig mode, `MULTUS_NODE_NAME=node1`) and wait until it serves
    /// `/readyz` and has written `00-multus.conf`.
    pub fn start_daemon(&mut self) -> Result<()> {
        let mut cmd = DaemonProcess::command(&self.bins.daemon, &self.run.join("daemon-config.json"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).env("MULTUS_NODE_NAME", NODE).env("RUST_LOG", "info");
        let daemon = StackedDaemon::spawn(cmd, &self.daemon_log())?;
        let alive = || daemon.running();
        let log = self.daemon_log();
        self.wait_daemon(&alive, &|| tail(&log, 20))?;
        self.daemon = Some(daemon);
        Ok(())
    }

    /// Count a daemon start (network namespaces of later pods get a new name prefix).
    pub fn daemon_started(&mut self) {
        self.daemon_starts += 1;
    }

    /// Wait until the daemon serves `/readyz` and has written `00-multus.conf` (60 s).
    pub fn wait_daemon(&mut self, alive: &dyn Fn() -> bool, log_tail: &dyn Fn() -> String) -> Result<()> {
        self.daemon_started();
        let socket = self.socket();
        let conf = self.multus_conf_path();
        let log = self.daemon_log();
        // `alive`: the daemon's process (or container) still runs; once it is gone, fail at once.
        test_node::wait_ready(&socket, Some(&conf), Duration::from_secs(60), Duration::from_millis(50), alive)
            .map_err(|e| {
                match e {
                    test_node::NotReady::Exited => {
                        anyhow::anyhow!("multus-daemon exited; last log lines:\n{}", log_tail())
                    }
                    e => anyhow::anyhow!("{e}"),
                }
                .context(format!("daemon log: {}", log.display()))
            })?;
        Ok(())
    }

    /// Stop the daemon: SIGKILL (a crash) when `hard`, else SIGTERM with its 10 s grace.
    pub fn stop_daemon(&mut self, hard: bool) {
        if let Some(daemon) = self.daemon.take() {
            if hard {
                daemon.kill();
            } else {
                daemon.stop(Duration::from_secs(15));
            }
        }
    }

    pub fn multus_conf(&self) -> Result<String> {
        std::fs::read_to_string(self.multus_conf_path()).context("reading 00-multus.conf")
    }

    /// `kubectl --kubeconfig <this node's kubeconfig> <args>`.
    pub fn kubectl(&self, args: &[&str]) -> Cmd {
        kubectl(&self.kubeconfig, args)
    }

    /// GET a pod from the mock API server.
    pub fn get_pod(&self, namespace: &str, name: &str) -> Result<Value> {
        if self.api.starts_with("https://") {
            // TLS (in-cluster style) mock: let kubectl do the TLS.
            let out = self.kubectl(&["-n", namespace, "get", "pod", name, "-o", "json"]).output()?;
            return serde_json::from_str(&out).context("kubectl get pod: not JSON");
        }
        crate::util::http_get_json(&self.api, &format!("/api/v1/namespaces/{namespace}/pods/{name}"))
    }

    /// A sandbox for a pod: its UID from the API, a container ID, and (real mode) a network
    /// namespace under /var/run/netns.
    pub fn sandbox(&self, namespace: &str, name: &str) -> Result<PodRun> {
        let pod = self.get_pod(namespace, name)?;
        let uid = pod["metadata"]["uid"].as_str().context("pod has no uid")?.to_string();
        let container_id = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let netns = format!("multus-{}-{}-{name}", self.id, self.daemon_starts);
        // The daemon opens the namespace (interface-name checks, default-route edits), so it
        // must exist even with fake delegates; without root there is none to give.
        if self.real || (is_root() && have("ip")) {
            PodSandbox::try_create(namespace, name, &uid, container_id.clone(), netns.clone())?;
            let ns = netns.clone();
            let _ = defer(format!("delete netns {netns}"), move || {
                Cmd::new("ip").args(["netns", "del", &ns]).run_quiet();
            });
        }
        Ok(PodRun {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid,
            container_id,
            netns_path: format!("/var/run/netns/{netns}"),
            netns,
        })
    }

    /// Run multus-shim exactly as a runtime does: CNI_* environment, stdin = 00-multus.conf.
    pub fn shim(&self, command: &str, pod: &PodRun) -> Result<ShimOutput> {
        let conf = self.multus_conf()?;
        let cni_path = format!(
            "{}:{}",
            self.bins.shim.parent().map(|p| p.display().to_string()).unwrap_or_default(),
            self.var("BIN_DIR")
        );
        let args = test_node::cni_args(&pod.namespace, &pod.name, &pod.container_id, &pod.uid);
        let call = ShimCall::new(command)
            .system_path()
            .attachment(&pod.container_id, &pod.netns_path, "eth0", args)
            .cni_path(cni_path)
            .stdin(conf);
        Ok(call.run(&self.bins.shim).context("starting multus-shim")?.into())
    }

    /// Interfaces, addresses and routes inside the pod's namespace.
    pub fn inspect(&self, pod: &PodRun) -> Result<NetnsView> {
        if !self.real {
            return Ok(NetnsView::default());
        }
        let addr = Cmd::new("ip").args(["-n", &pod.netns, "-j", "addr", "show"]).output()?;
        let route = Cmd::new("ip").args(["-n", &pod.netns, "-j", "route", "show"]).output()?;
        Ok(NetnsView { ifaces: parse_ip_addr(&addr)?, routes: parse_ip_route(&route)? })
    }

    /// Files under the delegate cache dir and the host-local data dir that mention the container.
    pub fn leftovers(&self, pod: &PodRun) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [&self.cni_dir_host, &self.ipam_dir_host] {
            walk(dir, &mut |p: &Path| {
                let name_hit = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(&pod.container_id));
                let content_hit =
                    std::fs::read(p).map(|c| String::from_utf8_lossy(&c).contains(&pod.container_id)).unwrap_or(false);
                if name_hit || content_hit {
                    found.push(p.display().to_string());
                }
            });
        }
        found
    }
}

/// `kubectl --kubeconfig <kubeconfig> <args>`: how every local run talks to its API server.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Cmd {
    Cmd::new("kubectl").arg("--kubeconfig").arg(kubeconfig.display().to_string()).args(args.iter().copied())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests;
