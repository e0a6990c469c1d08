//! The node the soak runs against: kube-mock, multus-daemon (owned here so it can be killed and
//! restarted by PID), the shim run as a runtime does, Debian's plugins plus fake-cni delegates,
//! a tmpfs cniDir (for the read-only and full faults), and the faults themselves.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::host::{delete_netns_with_prefix, http};
pub use super::host::{log_since, socket_holders, unix_sockets_in};
use super::plan::{
    BRIDGE_NAD, CRASH_NAD, ERROR_NAD, FAKE_NAD, GARBAGE_NAD, HANG_NAD, MACVLAN_NAD, SLOW_NAD, SLOWER_NAD,
    SPAWN_HANG_NAD, SPAWN_HANG_SETSID_NAD, SPAWN_SLOW_NAD, SPAWN_SLOW_SETSID_NAD, STDOUT_NAD,
};
use crate::fixtures;
use crate::harness::{self, LocalEnv, ShimOutput, StackedDaemon, tail};
use crate::util::{Cmd, defer};
use test_node::ShimCall;

pub const NAMESPACE: &str = "multus-soak";
/// The daemon's per-delegate timeout in the soak (the hang fault sleeps past it).
pub const DELEGATE_TIMEOUT_SECS: u64 = 2;
/// How often the daemon's orphan reconciler runs in the soak.
pub const RECONCILE_INTERVAL_SECS: u64 = 2;
/// Size of the tmpfs mounted as cniDir.
const CACHE_TMPFS: &str = "size=16m";
pub use super::procs::MARKER_VAR;
/// How long the children of the `grandchild` NADs sleep before writing their marker: after a
/// delegate timeout (2 s) or a daemon restart and the runtime's DEL.
pub const GRANDCHILD_HANG_SLEEP_MS: u64 = 3500;
pub const GRANDCHILD_KILL_SLEEP_MS: u64 = 5000;
/// How long the child of the `stdout-holder` NAD keeps the delegate's stdout open.
pub const STDOUT_HOLD_MS: u64 = 6000;
/// The daemon's DaemonSet and the namespace of its pod (the manifest's).
pub const DS_NAMESPACE: &str = "kube-system";
pub const DS_NAME: &str = "kube-multus-ds";

/// One sandbox as the runtime knows it.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub pod: String,
    pub uid: String,
    pub container_id: String,
    pub netns: String,
    pub networks: Vec<String>,
}

impl Sandbox {
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }
}

pub struct Node {
    pub env: LocalEnv,
    daemon: Option<StackedDaemon>,
    pub restarts: u64,
    pub bin_dir: PathBuf,
    /// Prefix of every network namespace the soak makes.
    pub netns_prefix: String,
    pub(super) filler: PathBuf,
    /// `MULTUS_SOAK_RUN=<value>` in the daemon's environment ([`MARKER_VAR`]).
    pub marker: String,
    /// Where the children of the `grandchild` NADs write their markers.
    pub markers_dir: PathBuf,
    /// The daemon's own pod (`kube-system/<name>`, controlled by the DaemonSet).
    pub own_pod: String,
    /// DaemonSet installs so far (each reinstall names the daemon's pod anew).
    installs: u32,
    /// Length of the daemon log when the running daemon was started.
    log_offset: u64,
}

impl Node {
    /// Make the run directory, links, tmpfs cniDir, kube-mock with the namespace and NADs, the
    /// configs, and start the daemon.
    pub fn start(daemon_bin: Option<&Path>) -> Result<Self> {
        let fixture = fixtures::fixtures_dir().join("e2e");
        let mut env = LocalEnv::new("soak", &fixture, NAMESPACE, true)?;
        let netns_prefix = format!("msoak{}-", env.id);
        {
            let prefix = netns_prefix.clone();
            let _ = defer(format!("delete network namespaces {prefix}*"), move || delete_netns_with_prefix(&prefix));
        }
        // cniDir on a tmpfs of its own: remounting it read-only or filling it touches nothing else.
        let cni_dir = env.cni_dir_host.clone();
        Cmd::new("mount")
            .args(["-t", "tmpfs", "-o", CACHE_TMPFS, "multus-soak-cache"])
            .arg(cni_dir.display().to_string())
            .output()?;
        {
            let dir = cni_dir.clone();
            let _ = defer(format!("unmount {}", dir.display()), move || {
                Cmd::new("umount").arg("-l").arg(dir.display().to_string()).run_quiet();
            });
        }
        // The binaries are copied first: a rebuild during a long run must not change what a
        // daemon restart executes.
        let snapshot = env.run.join("soak-bins");
        std::fs::create_dir_all(&snapshot)?;
        if let Some(daemon) = daemon_bin {
            env.bins.daemon = daemon.to_path_buf();
        }
        for bin in [&mut env.bins.daemon, &mut env.bins.shim, &mut env.bins.kube_mock, &mut env.bins.fake_cni] {
            let copy = snapshot.join(bin.file_name().context("binary name")?);
            std::fs::copy(&*bin, &copy).with_context(|| format!("copying {}", bin.display()))?;
            *bin = copy;
        }
        // binDir: Debian's plugins and fake-cni side by side.
        let bin_dir = env.run.join("soak-bin");
        std::fs::create_dir_all(&bin_dir)?;
        for p in ["bridge", "host-local", "macvlan", "loopback"] {
            std::os::unix::fs::symlink(Path::new(harness::SYSTEM_CNI_DIR).join(p), bin_dir.join(p))?;
        }
        std::fs::copy(&env.bins.fake_cni, bin_dir.join("fake-cni")).context("installing fake-cni")?;

        env.start_mock(&[], &[])?;
        env.write_configs()?;
        let config_path = env.run.join("daemon-config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
        config["binDir"] = json!(bin_dir.display().to_string());
        config["delegateTimeoutSeconds"] = json!(DELEGATE_TIMEOUT_SECS);
        config["orphanReconcile"] = json!({"mode": "on", "intervalSeconds": RECONCILE_INTERVAL_SECS});
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;

        let filler = env.run.join("cni").join(".soak-filler");
        let marker = format!("{}-{}", env.id, uuid::Uuid::new_v4().simple());
        let markers_dir = env.run.join("soak-markers");
        std::fs::create_dir_all(&markers_dir)?;
        {
            // Whatever the run's delegates left running goes at the end (by PID, found by the
            // marker in their environment), also on failure and Ctrl-C.
            let (marker, bin_dir) = (marker.clone(), bin_dir.clone());
            let _ = defer("kill the processes the run's delegates left", move || {
                for p in super::procs::soak_processes(&marker, &bin_dir, &[]) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), nix::sys::signal::Signal::SIGKILL);
                }
            });
        }
        let mut node = Self {
            env,
            daemon: None,
            restarts: 0,
            bin_dir,
            netns_prefix,
            filler,
            marker,
            markers_dir,
            own_pod: String::new(),
            installs: 0,
            log_offset: 0,
        };
        node.create_objects()?;
        node.install_daemonset()?;
        node.start_daemon()?;
        Ok(node)
    }

    fn create_objects(&self) -> Result<()> {
        self.admin(
            "POST",
            "/objects",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        )?;
        let ipam = |subnet: &str| json!({"type": "host-local", "dataDir": self.env.var("IPAM_DIR"), "ranges": [[{"subnet": subnet}]]});
        let fake =
            |name: &str, fake: Value| json!({"cniVersion": "1.0.0", "name": name, "type": "fake-cni", "fake": fake});
        let nads = [
            (
                BRIDGE_NAD,
                json!({"cniVersion": "1.0.0", "name": BRIDGE_NAD, "type": "bridge", "bridge": self.env.var("NAD_BRIDGE"),
                       "isGateway": false, "ipMasq": false, "ipam": ipam("10.249.0.0/24")}),
            ),
            (
                MACVLAN_NAD,
                json!({"cniVersion": "1.0.0", "name": MACVLAN_NAD, "type": "macvlan", "master": self.env.var("MACVLAN_MASTER"),
                       "mode": "bridge", "ipam": ipam("10.250.0.0/24")}),
            ),
            (FAKE_NAD, fake(FAKE_NAD, json!({"subnet": "10.77.0.0/16"}))),
            (SLOW_NAD, fake(SLOW_NAD, json!({"subnet": "10.78.0.0/16", "sleepMs": 300, "sleepOn": ["ADD", "DEL"]}))),
            (SLOWER_NAD, fake(SLOWER_NAD, json!({"subnet": "10.79.0.0/16", "sleepMs": 1500, "sleepOn": ["ADD"]}))),
            (
                STDOUT_NAD,
                fake(
                    STDOUT_NAD,
                    json!({"subnet": "10.80.0.0/16", "holdStdout": {"on": ["ADD"], "ms": STDOUT_HOLD_MS}}),
                ),
            ),
            (CRASH_NAD, fake(CRASH_NAD, json!({"signalOn": ["ADD"], "signal": "KILL"}))),
            (HANG_NAD, fake(HANG_NAD, json!({"sleepMs": (DELEGATE_TIMEOUT_SECS + 8) * 1000, "sleepOn": ["ADD"]}))),
            (GARBAGE_NAD, fake(GARBAGE_NAD, json!({"garbageOn": ["ADD"]}))),
            (ERROR_NAD, fake(ERROR_NAD, json!({"failOn": ["ADD"], "failMsg": "soak: injected delegate error"}))),
        ];
        let touch = format!("{}/{{containerId}}-{{ifname}}-{{pid}}", self.markers_dir.display());
        let spawn = |name: &str, setsid: bool, child_ms: u64, delegate_ms: u64| {
            (
                name.to_string(),
                fake(
                    name,
                    json!({"subnet": "10.81.0.0/16", "sleepMs": delegate_ms, "sleepOn": ["ADD"],
                           "spawn": {"on": ["ADD"], "setsid": setsid, "sleepMs": child_ms, "touch": touch}}),
                ),
            )
        };
        let hang_ms = (DELEGATE_TIMEOUT_SECS + 8) * 1000;
        let spawning = [
            spawn(SPAWN_HANG_NAD, false, GRANDCHILD_HANG_SLEEP_MS, hang_ms),
            spawn(SPAWN_HANG_SETSID_NAD, true, GRANDCHILD_HANG_SLEEP_MS, hang_ms),
            spawn(SPAWN_SLOW_NAD, false, GRANDCHILD_KILL_SLEEP_MS, 1500),
            spawn(SPAWN_SLOW_SETSID_NAD, true, GRANDCHILD_KILL_SLEEP_MS, 1500),
        ];
        let nads = nads.into_iter().map(|(n, c)| (n.to_string(), c)).chain(spawning);
        for (name, config) in nads {
            self.admin(
                "POST",
                "/objects",
                &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"config": config.to_string()}}),
            )?;
        }
        Ok(())
    }

    /// Multus "installed": the DaemonSet `kube-system/kube-multus-ds` and the daemon's own pod,
    /// controlled by it (as the manifest runs it; the daemon follows that DaemonSet to tell an
    /// uninstall from a restart). Each install names the pod anew.
    pub fn install_daemonset(&mut self) -> Result<()> {
        let ds = self.admin(
            "POST",
            "/objects",
            &json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": DS_NAME, "namespace": DS_NAMESPACE},
                    "spec": {"selector": {"matchLabels": {"name": "multus"}},
                             "template": {"metadata": {"labels": {"name": "multus"}},
                                          "spec": {"containers": [{"name": "kube-multus", "image": "multus-rs"}]}}}}),
        )?;
        let uid = ds["metadata"]["uid"].as_str().context("the created DaemonSet has no uid")?.to_string();
        self.installs += 1;
        let pod = format!("{DS_NAME}-soak{}", self.installs);
        self.admin(
            "POST",
            "/objects",
            &json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": DS_NAMESPACE, "labels": {"name": "multus"},
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": DS_NAME,
                                                      "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"nodeName": harness::NODE, "containers": [{"name": "kube-multus", "image": "multus-rs"}]}}),
        )?;
        self.own_pod = pod;
        Ok(())
    }

    /// `kubectl delete ds kube-multus-ds` (Background propagation: the DaemonSet goes at once,
    /// its pods right after).
    pub fn delete_daemonset(&self) -> Result<()> {
        self.admin(
            "DELETE",
            "/objects",
            &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "namespace": DS_NAMESPACE, "name": DS_NAME,
                    "propagationPolicy": "Background"}),
        )?;
        Ok(())
    }

    /// The daemon's program, arguments and environment (beyond the soak's own), as the
    /// DaemonSet's pod runs it.
    fn daemon_invocation(&self) -> (String, Vec<String>, Vec<(String, String)>) {
        let args = vec![
            "-config".to_string(),
            self.env.run.join("daemon-config.json").display().to_string(),
            "--kubeconfig".to_string(),
            self.env.kubeconfig.display().to_string(),
        ];
        let env = [
            ("MULTUS_NODE_NAME", harness::NODE.to_string()),
            ("MULTUS_POD_NAME", self.own_pod.clone()),
            ("MULTUS_POD_NAMESPACE", DS_NAMESPACE.to_string()),
            (MARKER_VAR, self.marker.clone()),
            // The uninstall decision's lines and each request's end (with its container, which
            // tells when a disconnected ADD was undone) are info; the rest stays quiet.
            ("RUST_LOG", "warn,multus_daemon::uninstall=info,multus_daemon::handler=info".to_string()),
        ];
        (self.env.bins.daemon.display().to_string(), args, env.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn daemon_command(&self) -> std::process::Command {
        let (program, args, env) = self.daemon_invocation();
        let mut c = std::process::Command::new(program);
        c.args(args).envs(env);
        c
    }

    /// Start the daemon and wait until it is ready.
    pub fn start_daemon(&mut self) -> Result<()> {
        self.log_offset = std::fs::metadata(self.env.daemon_log()).map(|m| m.len()).unwrap_or(0);
        let daemon = StackedDaemon::spawn(self.daemon_command(), &self.env.daemon_log())?;
        // Not LocalEnv::wait_daemon: a daemon that exits at once must fail the start at once
        // (the retry then comes while the shim still re-sends its DEL), not after 60 s.
        let (socket, conf) = (self.env.socket(), self.env.multus_conf_path());
        let ready =
            test_node::wait_ready(&socket, Some(&conf), Duration::from_secs(60), Duration::from_millis(50), || {
                daemon.running()
            });
        match ready {
            Ok(_) => {
                self.daemon = Some(daemon);
                Ok(())
            }
            Err(test_node::NotReady::Exited) => {
                daemon.kill(); // reaped already: only off the cleanup stack
                bail!("multus-daemon exited at start: {}", tail(&self.env.daemon_log(), 1))
            }
            Err(e) => {
                daemon.kill();
                Err(e.into())
            }
        }
    }

    /// Where in the daemon log the running daemon's lines begin.
    pub fn log_offset(&self) -> u64 {
        self.log_offset
    }

    /// The daemon log's length now (for [`log_since`]).
    pub fn daemon_log_len(&self) -> u64 {
        std::fs::metadata(self.env.daemon_log()).map(|m| m.len()).unwrap_or(0)
    }

    /// Wait (at most `timeout`) until the daemon logged `text` after `offset`.
    pub fn wait_daemon_log(&self, offset: u64, text: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if log_since(&self.env.daemon_log(), offset).contains(text) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to the daemon (by PID), as the kubelet stops its pod; wait for it to exit (40 s,
    /// then SIGKILL). How long it took; `Err` when it had to be killed.
    pub fn terminate_daemon(&mut self) -> Result<Duration, String> {
        let Some(daemon) = self.daemon.take() else { return Ok(Duration::ZERO) };
        if let Some(took) = daemon.terminate(Duration::from_secs(40)) {
            return Ok(took);
        }
        Err(format!("the daemon did not exit within 40 s of SIGTERM (killed): {}", tail(&self.env.daemon_log(), 3)))
    }

    /// Start a second daemon with the same config and environment while the first one runs,
    /// and wait (at most `timeout`) for it to exit. Its exit code (`None`: it was still
    /// running and was killed) and what it printed.
    pub fn second_daemon(&self, n: u64, timeout: Duration) -> Result<(Option<i32>, String, Duration)> {
        use std::os::unix::process::CommandExt;
        let log = self.env.run.join(format!("logs/second-daemon-{n}.log"));
        let out = std::fs::File::create(&log)?;
        let (program, args, env) = self.daemon_invocation();
        let mut c = std::process::Command::new(program);
        c.args(args).envs(env).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let started = std::time::Instant::now();
        let mut child = c.spawn().context("starting the second daemon")?;
        let code = loop {
            if let Some(status) = child.try_wait()? {
                break status.code();
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = started.elapsed();
        Ok((code, std::fs::read_to_string(&log).unwrap_or_default(), elapsed))
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|d| d.pid() as i32)
    }

    pub fn daemon_running(&self) -> bool {
        self.daemon.as_ref().is_some_and(StackedDaemon::running)
    }

    /// `kill -9` the daemon (by PID) and start it again. A start that fails is retried (and
    /// reported: the problems found on the way are returned).
    pub fn kill_and_restart(&mut self) -> Result<Vec<String>> {
        let holders_before = if let Some(daemon) = self.daemon.take() {
            daemon.kill();
            socket_holders(&self.env.socket())
        } else {
            Vec::new()
        };
        self.restarts += 1;
        self.ensure_daemon(&holders_before)
    }

    /// Start the daemon if it is not running; up to 5 attempts. The problems seen.
    pub fn ensure_daemon(&mut self, holders_after_kill: &[String]) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for attempt in 1..=5 {
            if self.daemon_running() {
                return Ok(problems);
            }
            if let Some(daemon) = self.daemon.take() {
                daemon.kill();
            }
            let holders = socket_holders(&self.env.socket());
            match self.start_daemon() {
                Ok(()) => return Ok(problems),
                Err(e) => {
                    let socket = self.env.socket();
                    let now = std::os::unix::net::UnixStream::connect(&socket).map(|_| "accepted").unwrap_or("refused");
                    problems.push(format!(
                        "daemon start {attempt} failed: {e:#}; processes holding the socket right after the kill: {holders_after_kill:?}, before this start: {holders:?}; a connect now: {now}; sockets bound in its directory now: {:?}",
                        unix_sockets_in(&socket)
                    ));
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        bail!("the daemon does not start: {}", problems.join("\n"))
    }

    /// The `CNI_ARGS` of a sandbox, with `pod_name` as its pod's name.
    pub fn cni_args(sb: &Sandbox, pod_name: &[u8]) -> Vec<u8> {
        let mut args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME=").into_bytes();
        args.extend_from_slice(pod_name);
        args.extend_from_slice(
            format!(";K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}", sb.container_id, sb.uid).as_bytes(),
        );
        args
    }

    /// The shim's invocation exactly as a runtime makes it, `00-multus.conf` on stdin.
    pub fn shim_call(&self, command: &str, sb: &Sandbox) -> Result<ShimCall> {
        use std::os::unix::ffi::OsStrExt;
        let conf = self.env.multus_conf()?;
        let args = Self::cni_args(sb, sb.pod.as_bytes());
        let args = std::ffi::OsStr::from_bytes(&args);
        Ok(self.runtime_call(command).attachment(&sb.container_id, &sb.netns_path(), "eth0", args).stdin(conf))
    }

    /// The shim as a runtime starts it: a clean environment with `CNI_COMMAND` and `CNI_PATH`,
    /// bounded waits.
    fn runtime_call(&self, command: &str) -> ShimCall {
        ShimCall::new(command)
            .system_path()
            .cni_path(&self.bin_dir)
            // Bounded so that a wedged daemon shows up as a failed step, not a stuck soak.
            .env("MULTUS_SHIM_CNI_TIMEOUT_MS", "90000")
            .env("MULTUS_SHIM_READY_WAIT_MS", "60000")
    }

    /// The shim binary the runtime runs.
    pub fn shim_bin(&self) -> PathBuf {
        self.env.bins.shim.clone()
    }

    pub fn shim(&self, command: &str, sb: &Sandbox) -> Result<ShimOutput> {
        run_shim(&self.shim_call(command, sb)?, &self.env.bins.shim)
    }

    /// The runtime's CNI GC (libcni: `CNI_COMMAND=GC` and `CNI_PATH` only; the config as CNI
    /// 1.1.0 with `cni.dev/valid-attachments` naming `valid`, interface eth0).
    pub fn shim_gc(&self, valid: &[&Sandbox]) -> Result<ShimOutput> {
        let mut stdin: Value = serde_json::from_str(&self.env.multus_conf()?).context("00-multus.conf is not JSON")?;
        stdin["cniVersion"] = json!("1.1.0");
        stdin["cni.dev/valid-attachments"] =
            valid.iter().map(|sb| json!({"containerID": sb.container_id, "ifname": "eth0"})).collect();
        run_shim(&self.runtime_call("GC").stdin(stdin.to_string()), &self.env.bins.shim)
    }

    /// The pod's `network-status` annotation, if it has one (`Ok(None)` also when the pod is gone).
    pub fn network_status(&self, sb: &Sandbox) -> Result<Option<String>> {
        let pods =
            self.admin("GET", &format!("/objects?apiVersion=v1&kind=Pod&namespace={NAMESPACE}"), &Value::Null)?;
        let items = pods.as_array().or_else(|| pods["items"].as_array()).cloned().unwrap_or_default();
        Ok(items
            .iter()
            .find(|p| p["metadata"]["name"] == sb.pod.as_str() && p["metadata"]["uid"] == sb.uid.as_str())
            .and_then(|p| p["metadata"]["annotations"][harness::NETWORK_STATUS].as_str().map(str::to_string)))
    }

    /// Create the pod object (on node1, selecting `networks`) and the sandbox's namespace.
    pub fn new_sandbox(&self, pod: &str, netns: &str, networks: &[String]) -> Result<Sandbox> {
        let mut meta = json!({"name": pod, "namespace": NAMESPACE});
        if !networks.is_empty() {
            meta["annotations"] = json!({"k8s.v1.cni.cncf.io/networks": networks.join(",")});
        }
        let created = self.admin(
            "POST",
            "/objects",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                    "spec": {"nodeName": harness::NODE, "containers": [{"name": "app", "image": "registry.invalid/pause:3.10"}]}}),
        )?;
        let uid = created["metadata"]["uid"].as_str().context("the created pod has no uid")?.to_string();
        Cmd::new("ip").args(["netns", "add", netns]).output()?;
        Cmd::new("ip").args(["-n", netns, "link", "set", "lo", "up"]).output()?;
        Ok(Sandbox {
            pod: pod.to_string(),
            uid,
            container_id: format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
            netns: netns.to_string(),
            networks: networks.to_vec(),
        })
    }

    pub fn remove_netns(&self, sb: &Sandbox) {
        Cmd::new("ip").args(["netns", "del", &sb.netns]).run_quiet();
    }

    /// What a runtime does after the last DEL: the namespace goes, then the pod object.
    pub fn remove_sandbox(&self, sb: &Sandbox) {
        self.remove_netns(sb);
        let _ = self.admin(
            "DELETE",
            "/objects",
            &json!({"apiVersion": "v1", "kind": "Pod", "namespace": NAMESPACE, "name": sb.pod}),
        );
    }

    // ------------------------------------------------------------------------------------------
    // Faults

    pub fn admin(&self, method: &str, path: &str, body: &Value) -> Result<Value> {
        let (status, text) = http(&self.env.api, method, &format!("/_mock{path}"), body)?;
        if status != 200 && status != 201 {
            bail!("kube-mock {method} {path}: HTTP {status}: {}", text.trim());
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("kube-mock {method} {path}: not JSON"))
    }
}

/// Run a prepared shim invocation.
pub fn run_shim(call: &ShimCall, shim: &Path) -> Result<ShimOutput> {
    Ok(call.run(shim).context("starting multus-shim")?.into())
}
