//! Thick targets: a shim binary, a daemon started by a command, a daemon-config template, and
//! the API server they talk to (`kube-mock`, started here, or an existing one).
//!
//! The same description runs multus-rs (the default, from the cargo target dir) and the Go
//! multus thick plugin (binaries given by the user; the Go daemon only supports in-cluster
//! config, so `in_cluster: true` starts `kube-mock --tls --token … --in-cluster-dir …` and
//! passes `KUBERNETES_SERVICE_HOST`/`PORT`; see README.md for the bind-mount wrapper).

use crate::model::{Case, DeviceSpec, NadSpec, PodSpec, Step};
use crate::runner::{CaseEnv, Runner, StepOutcome};
use crate::sys::{self, Netns, Proc};
use crate::target::{Target, cargo_bin_dir, merge_patch, render_str, render_value};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// The daemon uses in-cluster config (Go multus): TLS + token + service-account dir.
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
            api_server: vec![
                "{{bin}}/kube-mock".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--kubeconfig-out".into(),
                "{{kubeconfig}}".into(),
            ],
            kubeconfig: None,
            in_cluster: false,
            fake_cni: default_fake(),
            cluster_network: default_cluster(),
            plugins_dir: default_plugins(),
            kubectl: default_kubectl(),
            ready_timeout: default_ready(),
            fake_kubelet: Some("{{bin}}/fake-kubelet".into()),
        }
    }
}

/// A running thick environment, shared by every case of a run.
pub struct ThickRt {
    pub spec: ThickSpec,
    pub tmp: tempfile::TempDir,
    pub shim: PathBuf,
    pub shim_config: Value,
    pub capabilities: Vec<String>,
    pub kubeconfig: PathBuf,
    api: Option<Proc>,
    daemon: Option<Proc>,
    /// The fake kubelet (when the spec names one that exists).
    kubelet: Option<Proc>,
    /// Device-plugin device-info files written for the current case.
    dp_files: Vec<PathBuf>,
    host: Option<Netns>,
    fake: Option<PathBuf>,
    bridge: bool,
    vars: BTreeMap<String, String>,
    namespaces: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Host-side veths present when the case started (only new ones count as leaks).
    veths_before: Vec<String>,
    /// The endpoint that answered 200 at the last start: `/readyz`, or `/healthz` for a daemon
    /// without `/readyz` (Go v4.2.x answers 404 there).
    pub ready_endpoint: Option<&'static str>,
}

fn dir(p: &Path, sub: &str) -> anyhow::Result<PathBuf> {
    let d = p.join(sub);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

impl ThickRt {
    pub fn start(target: &Target) -> anyhow::Result<ThickRt> {
        let spec = target.thick.clone().unwrap_or_else(ThickSpec::multus_rs);
        let tmp = tempfile::Builder::new().prefix("cniconf-thick-").tempdir()?;
        let t = tmp.path().to_path_buf();
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
            vars.insert(k.to_string(), dir(&t, sub)?.display().to_string());
        }
        vars.insert(
            "kubeconfig".into(),
            spec.kubeconfig.clone().unwrap_or_else(|| t.join("kubeconfig").display().to_string()),
        );
        vars.insert("daemon_config".into(), t.join("daemon-config.json").display().to_string());
        let r = |s: &str| render_str(s, &|k| vars.get(k).map(|v| Value::String(v.clone())));
        let shim = PathBuf::from(r(&spec.shim));
        let kubeconfig = PathBuf::from(r("{{kubeconfig}}"));
        let bindir = PathBuf::from(&vars["bindir"]);

        // Delegates: fake-cni (records calls) and, when root, bridge in a scratch host netns.
        let fake = PathBuf::from(r(&spec.fake_cni));
        let fake = fake.exists().then(|| {
            let _ = std::os::unix::fs::symlink(&fake, bindir.join("fake-cni"));
            fake
        });
        let plugins = PathBuf::from(&spec.plugins_dir);
        let bridge_possible = sys::is_root() && plugins.join("bridge").exists();
        let bridge = match spec.cluster_network.as_str() {
            "bridge" => {
                anyhow::ensure!(bridge_possible, "cluster_network bridge needs root and {}/bridge", plugins.display());
                true
            }
            "fake" => false,
            _ => bridge_possible || fake.is_none(),
        };
        let mut host = None;
        let netd = PathBuf::from(&vars["netd"]);
        let cluster = if bridge {
            let h = Netns::create(&sys::unique("cch")).map_err(anyhow::Error::msg)?;
            for p in ["bridge", "host-local"] {
                let w = bindir.join(p);
                std::fs::write(
                    &w,
                    format!("#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n", h.name, plugins.join(p).display()),
                )?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755))?;
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
        std::fs::write(netd.join("10-cluster.conflist"), serde_json::to_vec_pretty(&cluster)?)?;

        let mut rt = ThickRt {
            spec: spec.clone(),
            shim,
            shim_config: Value::Null,
            capabilities: Vec::new(),
            kubeconfig,
            api: None,
            daemon: None,
            kubelet: None,
            dp_files: Vec::new(),
            host,
            fake,
            bridge,
            vars,
            namespaces: Default::default(),
            veths_before: Vec::new(),
            ready_endpoint: None,
            tmp,
        };
        rt.start_api()?;
        rt.start_kubelet()?;
        rt.write_daemon_config()?;
        rt.start_daemon()?;
        rt.load_shim_config();
        Ok(rt)
    }

    fn r(&self, s: &str) -> String {
        render_str(s, &|k| self.vars.get(k).map(|v| Value::String(v.clone())))
    }

    fn start_api(&mut self) -> anyhow::Result<()> {
        if self.spec.api_server.is_empty() {
            anyhow::ensure!(self.spec.kubeconfig.is_some(), "thick target without api_server needs kubeconfig");
            return Ok(());
        }
        let mut argv: Vec<String> = self.spec.api_server.iter().map(|a| self.r(a)).collect();
        if self.spec.in_cluster {
            for a in ["--tls", "--token", "conformance-token", "--in-cluster-dir", &self.vars["sa"]] {
                argv.push(a.to_string());
            }
        }
        let log = std::fs::File::create(self.tmp.path().join("api-server.log"))?;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", argv[0]))?;
        let out = child.stdout.take();
        let mut proc = Proc { name: "api-server".into(), child };
        let mut line = String::new();
        if let Some(out) = out {
            let mut reader = BufReader::new(out);
            reader.read_line(&mut line)?;
            // Keep draining so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
        }
        let url = line.trim().strip_prefix("listening on ").map(str::to_string);
        let Some(url) = url else {
            proc.stop();
            anyhow::bail!("API server did not print `listening on <url>` (got {line:?})");
        };
        let hostport = url.split("://").nth(1).unwrap_or("").trim_end_matches('/').to_string();
        let (host, port) = hostport.rsplit_once(':').unwrap_or((&hostport, "443"));
        self.vars.insert("api_url".into(), url.clone());
        self.vars.insert("api_host".into(), host.to_string());
        self.vars.insert("api_port".into(), port.to_string());
        self.api = Some(proc);
        Ok(())
    }

    /// Start the fake kubelet (if the spec names one that exists) with an empty script.
    fn start_kubelet(&mut self) -> anyhow::Result<()> {
        let Some(bin) = self.spec.fake_kubelet.as_ref().map(|b| PathBuf::from(self.r(b))) else { return Ok(()) };
        if !bin.is_file() {
            return Ok(());
        }
        let kubelet_dir = dir(self.tmp.path(), "kubelet")?;
        let socket = kubelet_dir.join("kubelet.sock");
        let script = self.tmp.path().join("kubelet-script.json");
        std::fs::write(&script, b"{}")?;
        let log = std::fs::File::create(self.tmp.path().join("fake-kubelet.log"))?;
        let mut child = Command::new(&bin)
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))?;
        let out = child.stdout.take();
        let mut proc = Proc { name: "fake-kubelet".into(), child };
        let mut line = String::new();
        if let Some(out) = out {
            let mut reader = BufReader::new(out);
            reader.read_line(&mut line)?;
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
        }
        if !line.starts_with("listening on ") {
            proc.stop();
            anyhow::bail!("fake-kubelet did not print `listening on <socket>` (got {line:?})");
        }
        self.vars.insert("kubelet_dir".into(), kubelet_dir.display().to_string());
        self.vars.insert("kubelet_socket".into(), socket.display().to_string());
        self.vars.insert("kubelet_script".into(), script.display().to_string());
        self.kubelet = Some(proc);
        Ok(())
    }

    /// Whether cases can give pods devices (a fake kubelet runs).
    pub fn serves_devices(&self) -> bool {
        self.kubelet.is_some()
    }

    fn write_daemon_config(&mut self) -> anyhow::Result<()> {
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
        let overlay = render_value(&self.spec.daemon_config, &|k| self.vars.get(k).map(|v| Value::String(v.clone())));
        if !overlay.is_null() {
            merge_patch(&mut conf, &overlay);
        }
        std::fs::write(&self.vars["daemon_config"], serde_json::to_vec_pretty(&conf)?)?;
        // The overlay may move the socket or the directories: follow the effective config.
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

    pub fn start_daemon(&mut self) -> anyhow::Result<()> {
        let argv: Vec<String> = self.spec.daemon.iter().map(|a| self.r(a)).collect();
        anyhow::ensure!(!argv.is_empty(), "empty daemon command");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.tmp.path().join("daemon.log"))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        if Path::new(&self.spec.plugins_dir).is_dir() {
            cmd.env("CNI_PATH", &self.spec.plugins_dir);
        }
        if self.spec.in_cluster {
            cmd.env("KUBERNETES_SERVICE_HOST", &self.vars["api_host"])
                .env("KUBERNETES_SERVICE_PORT", &self.vars["api_port"])
                .env("MULTUS_SERVICEACCOUNT_DIR", &self.vars["sa"]);
        }
        for (k, v) in &self.spec.daemon_env {
            cmd.env(k, self.r(v));
        }
        let child = cmd.spawn().map_err(|e| anyhow::anyhow!("starting {}: {e}", argv[0]))?;
        let mut proc = Proc { name: "daemon".into(), child };
        let deadline = Instant::now() + Duration::from_secs(self.spec.ready_timeout);
        match wait_ready(&self.socket(), deadline, &mut || proc.running()) {
            Ok(endpoint) => self.ready_endpoint = Some(endpoint),
            Err(why) => {
                proc.stop();
                anyhow::bail!("{why}; log: {}", self.daemon_log_tail());
            }
        }
        self.daemon = Some(proc);
        Ok(())
    }

    /// The daemon's socket (`<socketDir>/multus.sock` of the effective daemon config).
    pub fn socket(&self) -> PathBuf {
        Path::new(&self.vars["socket_dir"]).join("multus.sock")
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
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

    pub fn records_delegates(&self) -> bool {
        self.fake.is_some()
    }

    pub fn creates_interfaces(&self) -> bool {
        self.bridge
    }

    pub fn cni_path(&self) -> String {
        self.vars["bindir"].clone()
    }

    pub fn extra_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    pub fn can_run(&self, case: &Case) -> Option<String> {
        if case.applies.contains(&crate::model::Applies::Interface) && !self.bridge {
            return Some(
                "the cluster network is fake-cni (creates no interfaces); run as root with /usr/lib/cni/bridge".into(),
            );
        }
        if case.applies.contains(&crate::model::Applies::Ipam) && !self.bridge {
            return Some("the cluster network owns no IPAM state (fake-cni)".into());
        }
        if case.setup.devices.iter().any(|d| d.device_info) && !sys::is_root() {
            return Some(format!("writes the device plugin's device-info under {DP_DEVINFO_DIR} (needs root)"));
        }
        None
    }

    pub fn var(&self, key: &str, _which: &str, env: &CaseEnv) -> Option<Value> {
        match key {
            "pod_namespace" => Some(Value::String(env.id.clone())),
            "ipam_dir" if self.bridge => Some(Value::String(self.vars["ipam"].clone())),
            // Multus keeps libcni's result cache under its cniDir; a case network is net1.
            "cache_dir" => Some(Value::String(self.vars["cni_dir"].clone())),
            "net_ifname" => Some(Value::String("net1".into())),
            k => self.vars.get(k).map(|v| Value::String(v.clone())),
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
        let mut cmd = Command::new(&self.spec.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("kubectl: {e}"))?;
        if let Some(mut sin) = child.stdin.take() {
            let _ = sin.write_all(stdin.unwrap_or_default());
        }
        let out = child.wait_with_output().map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn pod_object(&self, env: &CaseEnv, att: &str, spec: &PodSpec) -> Option<Value> {
        let a = env.attachments.get(att)?;
        let ns = spec.namespace.clone().unwrap_or_else(|| env.id.clone());
        let annotations: BTreeMap<String, String> =
            spec.annotations.iter().map(|(k, v)| (k.clone(), self.render_case(env, v))).collect();
        Some(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": a.pod, "namespace": ns, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "conformance.invalid/none"}]}}))
    }

    fn render_case(&self, env: &CaseEnv, s: &str) -> String {
        render_str(s, &|k| match k {
            "id" | "pod_namespace" => Some(Value::String(env.id.clone())),
            _ => self.vars.get(k).map(|v| Value::String(v.clone())),
        })
    }

    fn nad_object(&self, env: &CaseEnv, nad: &NadSpec) -> Value {
        let ns = nad.namespace.clone().unwrap_or_else(|| env.id.clone());
        let mut config = match nad.delegate.as_deref() {
            Some("fake") | None => {
                json!({"cniVersion": "1.0.0", "name": nad.name, "type": "fake-cni", "fake": {"recordDir": self.vars["records"], "subnet": "10.77.0.0/16"}})
            }
            Some(other) => json!({"cniVersion": "1.0.0", "name": nad.name, "type": other}),
        };
        if let Some(p) = &nad.config {
            let p = render_value(p, &|k| match k {
                "id" => Some(Value::String(env.id.clone())),
                _ => self.vars.get(k).map(|v| Value::String(v.clone())),
            });
            merge_patch(&mut config, &p);
        }
        let annotations: BTreeMap<String, String> =
            nad.annotations.iter().map(|(k, v)| (k.clone(), self.render_case(env, v))).collect();
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": nad.name, "namespace": ns, "annotations": annotations},
            "spec": {"config": config.to_string()}})
    }

    /// The fake kubelet's script for the case's `setup.devices` (an empty one clears it), and
    /// the device plugin's device-info files the case asks for.
    fn script_devices(&mut self, env: &CaseEnv, devices: &[DeviceSpec], fail: Option<&str>) -> Result<(), String> {
        let Some(script) = self.vars.get("kubelet_script").cloned() else {
            return if devices.is_empty() && fail.is_none() {
                Ok(())
            } else {
                Err("no fake kubelet runs for setup.devices / setup.kubelet_fail".into())
            };
        };
        let mut pods: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for d in devices {
            let pod =
                env.attachments.get(&d.attachment).map(|a| a.pod.clone()).ok_or("device of an unknown attachment")?;
            let resource = self.render_case(env, &d.resource);
            let ids: Vec<String> = d.ids.iter().map(|i| self.render_case(env, i)).collect();
            if d.device_info {
                for id in &ids {
                    let file = Path::new(DP_DEVINFO_DIR).join(format!(
                        "{}-{}-device.json",
                        resource.replace('/', "-"),
                        id.replace('/', "-")
                    ));
                    if file.exists() {
                        return Err(format!("{} exists already; not overwriting it", file.display()));
                    }
                    std::fs::create_dir_all(DP_DEVINFO_DIR).map_err(|e| format!("{DP_DEVINFO_DIR}: {e}"))?;
                    let info = json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": id}});
                    std::fs::write(&file, info.to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
                    self.dp_files.push(file);
                }
            }
            pods.entry(pod).or_default().push(json!({"resourceName": resource, "deviceIds": ids}));
        }
        let pods: Vec<Value> = pods
            .into_iter()
            .map(|(name, devices)| {
                json!({"namespace": env.id, "name": name, "containers": [{"name": "c", "devices": devices}]})
            })
            .collect();
        let mut body = json!({"pods": pods});
        if let Some(fail) = fail {
            let (code, message) = fail.split_once(':').unwrap_or((fail, "fake-kubelet: configured failure"));
            body["fail"] = json!({"code": code, "message": message});
        }
        std::fs::write(&script, body.to_string()).map_err(|e| format!("{script}: {e}"))
    }

    fn apply(&self, items: Vec<Value>) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        let mut namespaces: Vec<String> = items
            .iter()
            .filter_map(|i| i.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let mut created = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.retain(|n| created.insert(n.clone()));
        drop(created);
        let mut all: Vec<Value> = namespaces
            .into_iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
            .collect();
        all.extend(items);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": all});
        self.kubectl(&["create", "--validate=false", "-f", "-"], Some(list.to_string().as_bytes())).map(|_| ())
    }

    pub fn ensure_pod(&mut self, env: &CaseEnv, att: &str, spec: &PodSpec) -> Result<(), String> {
        let obj = self.pod_object(env, att, spec).ok_or("no attachment")?;
        self.apply(vec![obj])
    }

    fn host_veths(&self) -> Vec<String> {
        self.host.as_ref().map(|h| sys::veths(&h.name)).unwrap_or_default()
    }

    /// Seed the case's objects. `network` (rendered config and capability arguments) becomes a
    /// NAD named like the network, selected by every default pod's annotation with the
    /// capability arguments as selection fields (`portMappings`, `bandwidth`, `ips`, `mac`, …).
    pub fn prepare_case(
        &mut self,
        case: &Case,
        env: &mut CaseEnv,
        network: Option<&(Value, Value)>,
    ) -> Result<(), String> {
        self.veths_before = self.host_veths();
        self.script_devices(env, &case.setup.devices, case.setup.kubelet_fail.as_deref())?;
        let mut items: Vec<Value> = case.setup.nads.iter().map(|n| self.nad_object(env, n)).collect();
        let mut default_annotations = BTreeMap::new();
        if let Some((config, caps)) = network {
            let name = config.get("name").and_then(Value::as_str).unwrap_or("net").to_lowercase();
            items.push(json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": env.id}, "spec": {"config": config.to_string()}}));
            let mut selection = json!({"name": name});
            if let (Some(m), Value::Object(c)) = (selection.as_object_mut(), caps) {
                m.extend(c.clone());
            }
            default_annotations.insert("k8s.v1.cni.cncf.io/networks".to_string(), json!([selection]).to_string());
        }
        let pods: Vec<PodSpec> = match &case.setup.pods {
            Some(p) => p.clone(),
            None => env
                .attachments
                .keys()
                .map(|a| PodSpec { attachment: a.clone(), namespace: None, annotations: default_annotations.clone() })
                .collect(),
        };
        for p in &pods {
            if let Some(o) = self.pod_object(env, &p.attachment, p) {
                items.push(o);
            }
        }
        self.apply(items)?;
        if !pods.is_empty() || !case.setup.nads.is_empty() {
            // Let the daemon's informers see the objects (ADD also retries NotFound for 2.5 s).
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    pub fn finish_case(&mut self, case: &Case, env: &mut CaseEnv) {
        if !case.setup.devices.is_empty() || case.setup.kubelet_fail.is_some() {
            let _ = self.script_devices(env, &[], None);
        }
        for f in self.dp_files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
        if self.daemon.is_none() {
            let _ = self.start_daemon();
        }
    }

    pub fn check(&self, name: &str, step: &Step, env: &CaseEnv, r: &Runner) -> StepOutcome {
        let w = |k: &str| step.with.get(k).cloned();
        let ws = |k: &str| step.with.get(k).and_then(Value::as_str).map(|s| r.render(env, s));
        let att = env.attachments.get(&step.attachment);
        match name {
            "annotation" => {
                let Some(att) = att else { return StepOutcome::Fail("no attachment".into()) };
                let key = ws("key").unwrap_or_else(|| "k8s.v1.cni.cncf.io/network-status".into());
                let pod = match self.kubectl(&["get", "pod", "-n", &env.id, &att.pod, "-o", "json"], None) {
                    Ok(s) => serde_json::from_str::<Value>(&s).unwrap_or(Value::Null),
                    Err(e) => return StepOutcome::Fail(e),
                };
                let val = pod
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(&key))
                    .and_then(Value::as_str)
                    .map(String::from);
                let want = w("exists").and_then(|v| v.as_bool()).unwrap_or(true);
                match (val, want) {
                    (None, false) => StepOutcome::Ok,
                    (None, true) => StepOutcome::Fail(format!("pod has no annotation {key}")),
                    (Some(v), false) => StepOutcome::Fail(format!("pod has annotation {key}: {v}")),
                    (Some(v), true) => {
                        let parsed: Value = serde_json::from_str(&v).unwrap_or(Value::Null);
                        if let Some(names) = w("names").and_then(|x| x.as_array().cloned()) {
                            let got: Vec<String> = parsed
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|e| e.get("name").and_then(Value::as_str).map(String::from))
                                        .collect()
                                })
                                .unwrap_or_default();
                            let want: Vec<String> =
                                names.iter().filter_map(|n| n.as_str().map(|n| r.render(env, n))).collect();
                            if got != want {
                                return StepOutcome::Fail(format!("network-status names {got:?}, expected {want:?}"));
                            }
                        }
                        if let Some(ifs) = w("interfaces").and_then(|x| x.as_array().cloned()) {
                            let got: Vec<String> = parsed
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|e| e.get("interface").and_then(Value::as_str).map(String::from))
                                        .collect()
                                })
                                .unwrap_or_default();
                            let want: Vec<String> =
                                ifs.iter().filter_map(|n| n.as_str().map(|n| r.render(env, n))).collect();
                            if got != want {
                                return StepOutcome::Fail(format!(
                                    "network-status interfaces {got:?}, expected {want:?}"
                                ));
                            }
                        }
                        if let Some(Value::Object(want)) = w("device_info") {
                            for (iface, want) in want {
                                let iface = r.render(env, &iface);
                                let want = r.render_json(env, &want);
                                let entry = parsed.as_array().and_then(|a| {
                                    a.iter()
                                        .find(|e| e.get("interface").and_then(Value::as_str) == Some(iface.as_str()))
                                });
                                let Some(entry) = entry else {
                                    return StepOutcome::Fail(format!("network-status has no entry for {iface}: {v}"));
                                };
                                let got = entry.get("device-info").filter(|g| !g.is_null());
                                let ok = match want.as_str() {
                                    Some("$present") => got.is_some(),
                                    Some("$absent") => got.is_none(),
                                    _ => got == Some(&want),
                                };
                                if !ok {
                                    return StepOutcome::Fail(format!(
                                        "network-status device-info of {iface} is {}, expected {want}",
                                        got.map_or_else(|| "absent".to_string(), Value::to_string)
                                    ));
                                }
                            }
                        }
                        if w("default_first").and_then(|v| v.as_bool()) == Some(true)
                            && parsed.pointer("/0/default").and_then(Value::as_bool) != Some(true)
                        {
                            return StepOutcome::Fail(format!("first network-status entry is not marked default: {v}"));
                        }
                        if w("ips").and_then(|v| v.as_bool()) == Some(true)
                            && !parsed.as_array().is_some_and(|a| {
                                a.iter().all(|e| e.get("ips").and_then(Value::as_array).is_some_and(|i| !i.is_empty()))
                            })
                        {
                            return StepOutcome::Fail(format!("a network-status entry has no ips: {v}"));
                        }
                        StepOutcome::Ok
                    }
                }
            }
            "cache-file" => {
                let Some(att) = att else { return StepOutcome::Fail("no attachment".into()) };
                let p = Path::new(&self.vars["cni_dir"]).join(&att.cid);
                let want = w("exists").and_then(|v| v.as_bool()).unwrap_or(true);
                match (p.exists(), want) {
                    (true, true) | (false, false) => StepOutcome::Ok,
                    (got, _) => {
                        StepOutcome::Fail(format!("delegate cache {} exists={got}, expected {want}", p.display()))
                    }
                }
            }
            "device-info-file" => {
                // The per-attachment file Multus named in the delegate's
                // runtimeConfig.CNIDeviceInfoFile (from the fake-cni record of its ADD).
                let Some(att) = att else { return StepOutcome::Fail("no attachment".into()) };
                let network = ws("network");
                let calls = crate::checks::recorded_calls(Path::new(&self.vars["records"]));
                let file = calls
                    .iter()
                    .filter(|c| c.get("containerId").and_then(Value::as_str) == Some(att.cid.as_str()))
                    .filter(|c| c.get("command").and_then(Value::as_str) == Some("ADD"))
                    .filter(|c| network.as_deref().is_none_or(|n| c.get("name").and_then(Value::as_str) == Some(n)))
                    .find_map(|c| c.pointer("/stdin/runtimeConfig/CNIDeviceInfoFile").and_then(Value::as_str))
                    .map(String::from);
                let Some(file) = file else {
                    return StepOutcome::Fail(
                        "no recorded ADD carries runtimeConfig.CNIDeviceInfoFile (declare the capability)".into(),
                    );
                };
                let want = w("exists").and_then(|v| v.as_bool()).unwrap_or(true);
                let exists = Path::new(&file).exists();
                if exists != want {
                    return StepOutcome::Fail(format!("device-info file {file} exists={exists}, expected {want}"));
                }
                if let (true, Some(id)) = (exists, ws("pci_address")) {
                    let content: Value =
                        std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
                    if content.pointer("/pci/pci-address").and_then(Value::as_str) != Some(id.as_str()) {
                        return StepOutcome::Fail(format!(
                            "device-info file {file} holds {content}, expected PCI {id}"
                        ));
                    }
                }
                StepOutcome::Ok
            }
            "multus-conf" => {
                let p = Path::new(&self.vars["netd"]).join("00-multus.conf");
                let Ok(text) = std::fs::read_to_string(&p) else {
                    return StepOutcome::Fail(format!("{} not written", p.display()));
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    return StepOutcome::Fail(format!("00-multus.conf is not JSON: {text}"));
                };
                for (k, want) in &step.with {
                    if v.get(k) != Some(want) {
                        return StepOutcome::Fail(format!("00-multus.conf {k} = {:?}, expected {want}", v.get(k)));
                    }
                }
                StepOutcome::Ok
            }
            "no-host-veth" => {
                if self.host.is_none() {
                    return StepOutcome::Skip("cluster network is not bridge".into());
                }
                // A deleted netns is torn down asynchronously (its veths with it).
                let deadline = Instant::now() + Duration::from_secs(3);
                loop {
                    let new: Vec<String> =
                        self.host_veths().into_iter().filter(|v| !self.veths_before.contains(v)).collect();
                    if new.is_empty() {
                        return StepOutcome::Ok;
                    }
                    if Instant::now() > deadline {
                        return StepOutcome::Fail(format!("host-side veth(s) left behind: {new:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            _ => StepOutcome::Skip(format!("unknown check {name}")),
        }
    }

    pub fn action(&mut self, name: &str, step: &Step, env: &mut CaseEnv, _r: &Runner) -> StepOutcome {
        match name {
            "stop-daemon" => {
                self.stop_daemon();
                StepOutcome::Ok
            }
            "start-daemon" => match self.start_daemon() {
                Ok(()) => StepOutcome::Ok,
                Err(e) => StepOutcome::Fail(e.to_string()),
            },
            "delete-pod" => {
                let Some(att) = env.attachments.get(&step.attachment) else {
                    return StepOutcome::Fail("no attachment".into());
                };
                match self.kubectl(&["delete", "pod", "-n", &env.id, &att.pod, "--wait=false"], None) {
                    Ok(_) => {
                        std::thread::sleep(Duration::from_millis(300));
                        StepOutcome::Ok
                    }
                    Err(e) => StepOutcome::Fail(e),
                }
            }
            "clear-records" => {
                let _ = std::fs::remove_file(Path::new(&self.vars["records"]).join("calls.jsonl"));
                StepOutcome::Ok
            }
            _ => StepOutcome::Skip(format!("unknown action {name}")),
        }
    }
}

/// Where device plugins leave device-info files for Multus to copy (multus-thick.md §5.13).
pub const DP_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

/// The daemon's readiness endpoint, and the liveness one v4.2.x daemons answer instead.
pub const READYZ: &str = "/readyz";
pub const HEALTHZ: &str = "/healthz";

/// Wait until the daemon behind `sock` is ready: `/readyz` answers 200, or — for a daemon
/// that answers 404 there because it has no `/readyz` (Go multus v4.2.x) — `/healthz`
/// answers 200, as the shim does. `alive` reports whether the daemon process still runs.
/// Returns the endpoint that answered 200.
pub fn wait_ready(sock: &Path, deadline: Instant, alive: &mut dyn FnMut() -> bool) -> Result<&'static str, String> {
    let mut endpoint = READYZ;
    let mut last = "no socket yet".to_string();
    loop {
        if !alive() {
            return Err(format!("daemon exited during startup (last probe: {last})"));
        }
        if sock.exists() {
            match http_status(sock, endpoint) {
                Some(200) => return Ok(endpoint),
                Some(404) if endpoint == READYZ => {
                    endpoint = HEALTHZ;
                    last = format!("{READYZ} answered 404, using {HEALTHZ}");
                    continue;
                }
                Some(code) => last = format!("{endpoint} answered {code}"),
                None => last = format!("{endpoint}: no HTTP answer"),
            }
        }
        if Instant::now() > deadline {
            return Err(format!("daemon not ready at {} (last probe: {last})", sock.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP request over the daemon's unix socket (the shim's own client); the status code.
pub fn http_status(sock: &Path, path: &str) -> Option<u16> {
    multus_api::client::post(sock, path, b"null", Some(Duration::from_secs(2))).ok().map(|r| r.status)
}

impl Drop for ThickRt {
    fn drop(&mut self) {
        self.stop_daemon();
        if let Some(mut a) = self.api.take() {
            a.stop();
        }
        if let Some(mut k) = self.kubelet.take() {
            k.stop();
        }
        for f in self.dp_files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
        let _ = &self.host;
    }
}
