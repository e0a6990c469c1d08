//! The test node a thick target runs against, shared by every case of a run: the API server
//! (`kube-mock`, started here, or an existing one), an optional fake kubelet, the daemon with
//! its generated config, the cluster network's delegates, and the shim's config. Its
//! interface is small — `start`, the shim's binary, config and variables, `stop_daemon` /
//! `start_daemon`, drop. Its processes are started, probed and stopped by the shared
//! test-node crate (the one launcher of a test node); what stays here is what a thick target
//! adds: templated commands, the generated daemon config and the cluster network.

use crate::sys::{self, Netns, SysError};
use crate::target::{Target, cargo_bin_dir};
use crate::template::{merge_patch, render_str, render_value};
use crate::thick_spec::ThickSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use test_node::api_binary::listening_url;
use test_node::{Cleanup, DaemonProcess, FakeKubelet, ProbeNotReady, spawn_announcing, wait_ready_as_shim};

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("cluster_network bridge needs root and {0}/bridge")]
    BridgeImpossible(String),
    #[error("thick target without api_server needs kubeconfig")]
    NoKubeconfig,
    #[error("starting {what}: {error}")]
    Start { what: String, error: std::io::Error },
    #[error("API server did not print `listening on <url>` (got {line:?})")]
    NoAnnouncement { line: String },
    #[error("{0}")]
    Kubelet(String),
    #[error("empty daemon command")]
    EmptyDaemonCommand,
    #[error("{why}; log: {log}")]
    NotReady { why: ProbeNotReady, log: String },
}

/// A running thick node.
pub struct ThickNode {
    pub spec: ThickSpec,
    pub tmp: tempfile::TempDir,
    pub shim: PathBuf,
    pub shim_config: Value,
    pub capabilities: Vec<String>,
    pub kubeconfig: PathBuf,
    /// The API server's process (when started here), stopped at drop.
    api: Cleanup,
    daemon: Option<DaemonProcess>,
    /// The fake kubelet (when the spec names one that exists).
    kubelet: Option<FakeKubelet>,
    /// The scratch host netns of a bridge cluster network.
    pub host: Option<Netns>,
    pub fake: Option<PathBuf>,
    pub bridge: bool,
    /// Paths and addresses of the node (`{{bindir}}`, `{{records}}`, `{{api_url}}`, …).
    pub vars: BTreeMap<String, String>,
    /// The endpoint that answered 200 at the last start: `/readyz`, or `/healthz` for a daemon
    /// without `/readyz` (Go v4.2.x answers 404 there).
    pub ready_endpoint: Option<&'static str>,
}

fn dir(p: &Path, sub: &str) -> Result<PathBuf, NodeError> {
    let d = p.join(sub);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The node's directories and files under its temp dir, as template variables.
fn layout(spec: &ThickSpec, t: &Path) -> Result<BTreeMap<String, String>, NodeError> {
    let mut vars = BTreeMap::new();
    vars.insert("bin".to_string(), cargo_bin_dir().display().to_string());
    vars.insert("tmp".to_string(), t.display().to_string());
    for (k, sub) in [
        ("bindir", "bin"),
        ("netd", "net.d"),
        ("socket_dir", "run"),
        ("cni_dir", "cni"),
        ("conf_dir", "conf.d"),
        ("records", "records"),
        ("ipam", "ipam"),
        ("sa", "sa"),
    ] {
        vars.insert(k.to_string(), dir(t, sub)?.display().to_string());
    }
    vars.insert(
        "kubeconfig".into(),
        spec.kubeconfig.clone().unwrap_or_else(|| t.join("kubeconfig").display().to_string()),
    );
    vars.insert("daemon_config".into(), t.join("daemon-config.json").display().to_string());
    Ok(vars)
}

fn render(vars: &BTreeMap<String, String>, s: &str) -> String {
    render_str(s, &|k| vars.get(k).map(|v| Value::String(v.clone())))
}

/// The cluster network's delegates.
struct ClusterNetwork {
    fake: Option<PathBuf>,
    bridge: bool,
    host: Option<Netns>,
}

/// fake-cni (records calls) and, when root, bridge + host-local in a scratch host netns;
/// writes `10-cluster.conflist`.
fn cluster_network(spec: &ThickSpec, vars: &mut BTreeMap<String, String>) -> Result<ClusterNetwork, NodeError> {
    let bindir = PathBuf::from(&vars["bindir"]);
    let fake = PathBuf::from(render(vars, &spec.fake_cni));
    let fake = fake.exists().then(|| {
        let _ = std::os::unix::fs::symlink(&fake, bindir.join("fake-cni"));
        fake
    });
    let plugins = PathBuf::from(&spec.plugins_dir);
    let bridge_possible = sys::is_root() && plugins.join("bridge").exists();
    let bridge = match spec.cluster_network.as_str() {
        "bridge" => {
            if !bridge_possible {
                return Err(NodeError::BridgeImpossible(plugins.display().to_string()));
            }
            true
        }
        "fake" => false,
        _ => bridge_possible || fake.is_none(),
    };
    let mut host = None;
    let cluster = if bridge {
        let h = Netns::create(&sys::unique("cch"))?;
        for p in ["bridge", "host-local"] {
            sys::write_netns_wrapper(&bindir, p, &plugins.join(p), &h.name)?;
        }
        vars.insert("host_netns".into(), h.name.clone());
        host = Some(h);
        json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
            {"type": "bridge", "bridge": "ccbr0", "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": vars["ipam"]}}]})
    } else {
        json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
            {"type": "fake-cni", "fake": {"recordDir": vars["records"], "subnet": "10.88.0.0/16"}}]})
    };
    let netd = PathBuf::from(&vars["netd"]);
    std::fs::write(netd.join("10-cluster.conflist"), serde_json::to_vec_pretty(&cluster)?)?;
    Ok(ClusterNetwork { fake, bridge, host })
}

impl ThickNode {
    pub fn start(target: &Target) -> Result<ThickNode, NodeError> {
        let spec = target.thick.clone().unwrap_or_else(ThickSpec::multus_rs);
        let tmp = tempfile::Builder::new().prefix("cniconf-thick-").tempdir()?;
        let mut vars = layout(&spec, tmp.path())?;
        let shim = PathBuf::from(render(&vars, &spec.shim));
        let kubeconfig = PathBuf::from(render(&vars, "{{kubeconfig}}"));
        let cluster = cluster_network(&spec, &mut vars)?;
        let mut node = ThickNode {
            spec,
            shim,
            shim_config: Value::Null,
            capabilities: Vec::new(),
            kubeconfig,
            api: Cleanup::default(),
            daemon: None,
            kubelet: None,
            host: cluster.host,
            fake: cluster.fake,
            bridge: cluster.bridge,
            vars,
            ready_endpoint: None,
            tmp,
        };
        node.start_api()?;
        node.start_kubelet()?;
        node.write_daemon_config()?;
        node.start_daemon()?;
        node.load_shim_config();
        Ok(node)
    }

    fn r(&self, s: &str) -> String {
        render(&self.vars, s)
    }

    fn start_api(&mut self) -> Result<(), NodeError> {
        if self.spec.api_server.is_empty() {
            return if self.spec.kubeconfig.is_some() { Ok(()) } else { Err(NodeError::NoKubeconfig) };
        }
        let mut argv: Vec<String> = self.spec.api_server.iter().map(|a| self.r(a)).collect();
        if self.spec.in_cluster {
            for a in ["--tls", "--token", "conformance-token", "--in-cluster-dir", &self.vars["sa"]] {
                argv.push(a.to_string());
            }
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let log = std::fs::File::create(self.tmp.path().join("api-server.log"))?;
        let (mut child, line) = spawn_announcing(&mut cmd, log.into())
            .map_err(|error| NodeError::Start { what: argv[0].clone(), error })?;
        let Ok(url) = listening_url(line.trim()) else {
            test_node::stop_child(&mut child, Duration::from_secs(5));
            return Err(NodeError::NoAnnouncement { line });
        };
        let hostport = url.split("://").nth(1).unwrap_or("").trim_end_matches('/').to_string();
        let (host, port) = hostport.rsplit_once(':').unwrap_or((&hostport, "443"));
        self.vars.insert("api_url".into(), url.clone());
        self.vars.insert("api_host".into(), host.to_string());
        self.vars.insert("api_port".into(), port.to_string());
        self.api.children.push(child);
        Ok(())
    }

    /// Start the fake kubelet (if the spec names one that exists) with an empty script.
    fn start_kubelet(&mut self) -> Result<(), NodeError> {
        let Some(bin) = self.spec.fake_kubelet.as_ref().map(|b| PathBuf::from(self.r(b))) else { return Ok(()) };
        if !bin.is_file() {
            return Ok(());
        }
        let kubelet_dir = dir(self.tmp.path(), "kubelet")?;
        let socket = kubelet_dir.join("kubelet.sock");
        let script = self.tmp.path().join("kubelet-script.json");
        std::fs::write(&script, b"{}")?;
        let args = ["--config".to_string(), script.display().to_string()];
        let log = self.tmp.path().join("fake-kubelet.log");
        let kubelet = FakeKubelet::start_logged(&bin, &socket, &args, &log).map_err(NodeError::Kubelet)?;
        self.vars.insert("kubelet_dir".into(), kubelet_dir.display().to_string());
        self.vars.insert("kubelet_socket".into(), socket.display().to_string());
        self.vars.insert("kubelet_script".into(), script.display().to_string());
        self.kubelet = Some(kubelet);
        Ok(())
    }

    /// Whether cases can give pods devices (a fake kubelet runs).
    pub fn serves_devices(&self) -> bool {
        self.kubelet.is_some()
    }

    fn write_daemon_config(&mut self) -> Result<(), NodeError> {
        let mut conf = json!({
            "cniVersion": "1.1.0",
            "logLevel": "debug",
            "logToStderr": true,
            "socketDir": self.vars["socket_dir"],
            "multusConfigFile": "auto",
            "multusAutoconfigDir": self.vars["netd"],
            "cniConfigDir": self.vars["netd"],
            "binDir": self.vars["bindir"],
            "cniDir": self.vars["cni_dir"],
            "confDir": self.vars["conf_dir"],
        });
        if let (Some(socket), Some(m)) = (self.vars.get("kubelet_socket"), conf.as_object_mut()) {
            m.insert("kubeletPodResourcesSocket".into(), json!(socket));
        }
        if let (true, Some(m)) = (self.spec.dynamic_networks, conf.as_object_mut()) {
            m.insert("dynamicNetworks".into(), json!(true));
        }
        let overlay = render_value(&self.spec.daemon_config, &|k| self.vars.get(k).map(|v| Value::String(v.clone())));
        if !overlay.is_null() {
            merge_patch(&mut conf, &overlay);
        }
        std::fs::write(&self.vars["daemon_config"], serde_json::to_vec_pretty(&conf)?)?;
        self.follow_effective_config(&conf)
    }

    /// The overlay may move the socket or the directories: follow the effective config.
    fn follow_effective_config(&mut self, conf: &Value) -> Result<(), NodeError> {
        let cluster = Path::new(&self.vars["netd"]).join("10-cluster.conflist");
        for (var, key) in [("socket_dir", "socketDir"), ("netd", "cniConfigDir"), ("cni_dir", "cniDir")] {
            if let Some(v) = conf.get(key).and_then(Value::as_str) {
                self.vars.insert(var.to_string(), v.to_string());
            }
        }
        let moved = Path::new(&self.vars["netd"]).join("10-cluster.conflist");
        if moved != cluster && !moved.exists() {
            std::fs::create_dir_all(&self.vars["netd"])?;
            std::fs::copy(&cluster, &moved)?;
        }
        Ok(())
    }

    pub fn start_daemon(&mut self) -> Result<(), NodeError> {
        let argv: Vec<String> = self.spec.daemon.iter().map(|a| self.r(a)).collect();
        if argv.is_empty() {
            return Err(NodeError::EmptyDaemonCommand);
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if Path::new(&self.spec.plugins_dir).is_dir() {
            cmd.env("CNI_PATH", &self.spec.plugins_dir);
        }
        if self.spec.in_cluster {
            // As in a pod: the API server's address, and the service account only at the fixed
            // path (the target's wrapper mounts `{{sa}}` there); no kubeconfig, no override of
            // the service-account directory, whatever the harness's own environment says.
            cmd.env("KUBERNETES_SERVICE_HOST", &self.vars["api_host"])
                .env("KUBERNETES_SERVICE_PORT", &self.vars["api_port"])
                .env_remove("KUBECONFIG")
                .env_remove("MULTUS_SERVICEACCOUNT_DIR");
        }
        for (k, v) in &self.spec.daemon_env {
            cmd.env(k, self.r(v));
        }
        let mut daemon = DaemonProcess::spawn_all_output_logged(cmd, &self.tmp.path().join("daemon.log"))
            .map_err(|error| NodeError::Start { what: argv[0].clone(), error })?;
        let deadline = Instant::now() + Duration::from_secs(self.spec.ready_timeout);
        match wait_ready_as_shim(&self.socket(), deadline, &mut || daemon.exited().is_none()) {
            Ok(endpoint) => self.ready_endpoint = Some(endpoint),
            Err(why) => {
                daemon.stop(Duration::from_secs(5));
                return Err(NodeError::NotReady { why, log: self.daemon_log_tail() });
            }
        }
        self.daemon = Some(daemon);
        Ok(())
    }

    /// The daemon's process id (the target's command, e.g. a wrapper that execs the daemon).
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(DaemonProcess::pid)
    }

    /// Whether the daemon runs (it does unless a case stopped it).
    pub fn daemon_running(&self) -> bool {
        self.daemon.is_some()
    }

    /// The daemon's socket (`<socketDir>/multus.sock` of the effective daemon config).
    pub fn socket(&self) -> PathBuf {
        Path::new(&self.vars["socket_dir"]).join("multus.sock")
    }

    pub fn stop_daemon(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
    }

    pub fn daemon_log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.tmp.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The shim's stdin: the generated `00-multus.conf` (waited for briefly), with the case's
    /// `cniVersion` and the socket dir; a hand-made equivalent when the daemon wrote none.
    fn load_shim_config(&mut self) {
        let path = Path::new(&self.vars["netd"]).join("00-multus.conf");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conf = Value::Null;
        while Instant::now() < deadline {
            if let Ok(b) = std::fs::read(&path)
                && let Ok(v) = serde_json::from_slice::<Value>(&b)
            {
                conf = v;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !conf.is_object() {
            conf = json!({"name": "multus-cni-network", "type": "multus-shim", "clusterNetwork": Path::new(&self.vars["netd"]).join("10-cluster.conflist")});
        }
        self.capabilities = conf
            .get("capabilities")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        if let Some(m) = conf.as_object_mut() {
            m.insert("cniVersion".into(), json!("{{version}}"));
            m.insert("daemonSocketDir".into(), json!(self.vars["socket_dir"]));
        }
        self.shim_config = conf;
    }

    /// Veths of the cluster network's scratch host netns.
    pub fn host_veths(&self) -> Vec<String> {
        self.host.as_ref().map(|h| sys::veths(&h.name)).unwrap_or_default()
    }
}

impl Drop for ThickNode {
    fn drop(&mut self) {
        // The daemon first, then the API server and the kubelet it talks to.
        self.stop_daemon();
        std::mem::take(&mut self.api);
        self.kubelet.take();
    }
}
