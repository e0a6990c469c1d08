//! A node on this machine: kube-mock in this process (TLS, a token, in-cluster files), a
//! directory tree, delegates, an optional fake kubelet, and multus-daemon as a real process
//! (in-cluster mode) — everything removed again on drop.

mod files;

use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::bins::bin;
use crate::cleanup::Cleanup;
use crate::daemon::{DaemonProcess, ready};
use crate::kubelet::FakeKubelet;
use crate::netns::{PodSandbox, pod_addresses, unique};
use crate::objects::NODE_NAME;
use crate::shim::{ShimCall, ShimRun};

/// How the node's pods reach the shim. Today the test plays the container runtime and runs
/// the shim itself; a CRI runtime driving it (issue #24) becomes a second variant here, and
/// [`Node::shim_call`] dispatches on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Caller {
    #[default]
    DirectShim,
}

/// A running (or about to run) daemon with its API server and directories.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub mock: MockApiServer,
    /// Namespaces, links and extra processes of this node, removed on drop.
    pub cleanup: Cleanup,
    /// The daemon's config (`daemon-config.json`), written at each [`Node::start_daemon`].
    pub daemon_config: Value,
    /// Extra environment for the daemon process (e.g. its pod's identity).
    pub daemon_env: Vec<(String, String)>,
    /// A cgroup directory the daemon joins between fork and exec (its `cgroup.procs`); the
    /// delegates it runs inherit it, as in a container.
    pub daemon_cgroup: Option<PathBuf>,
    pub caller: Caller,
    /// The multus-daemon and multus-shim binaries (default: beside the running program).
    pub daemon_bin: Option<PathBuf>,
    pub shim_bin: Option<PathBuf>,
    /// How long the last daemon start took until `/readyz` first answered.
    pub ready_after: Duration,
    daemon: Option<DaemonProcess>,
    kubelet: Option<FakeKubelet>,
}

impl Drop for Node {
    fn drop(&mut self) {
        // The daemon first: no request of it sees the kubelet or the API server vanish.
        self.daemon.take();
        self.kubelet.take();
    }
}

impl Node {
    /// A node whose API server is seeded with `seed` (the daemon not started yet).
    pub fn new(seed: Vec<Value>) -> Self {
        Self::with_deny(seed, &[])
    }

    /// As [`Node::new`], with RBAC-like deny rules (`verb:resource`, e.g. `patch:pods/status`).
    pub fn with_deny(seed: Vec<Value>, deny: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mock = MockApiServer::start_blocking(MockConfig {
            tls: true,
            token: Some("test-token".into()),
            seed,
            deny: deny.iter().map(|d| d.parse().expect("deny rule")).collect(),
            ..Default::default()
        })
        .expect("start kube-mock");
        for d in ["net.d", "multus-net.d", "cni", "run", "sa", "ipam", "log"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        mock.write_in_cluster_dir(&dir.path().join("sa")).expect("in-cluster files");
        let p = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
        let daemon_config = json!({
            "cniVersion": "1.0.0",
            "logLevel": "debug",
            "logToStderr": true,
            "binDir": p("bin"),
            "cniDir": p("cni"),
            "confDir": p("multus-net.d"),
            "cniConfigDir": p("net.d"),
            "multusAutoconfigDir": p("net.d"),
            "multusConfigFile": "auto",
            "socketDir": p("run"),
            "daemonSocketDir": p("run"),
        });
        Self {
            dir,
            mock,
            cleanup: Cleanup::default(),
            daemon_config,
            daemon_env: Vec::new(),
            daemon_cgroup: None,
            caller: Caller::default(),
            daemon_bin: None,
            shim_bin: None,
            ready_after: Duration::ZERO,
            daemon: None,
            kubelet: None,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn multus_conf(&self) -> PathBuf {
        self.path("net.d/00-multus.conf")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("run/multus.sock")
    }

    /// Start `fake-kubelet` with `args` and point the daemon's config at its socket.
    pub fn start_fake_kubelet(&mut self, args: &[String]) {
        let socket = self.path("kubelet/kubelet.sock");
        let kubelet = FakeKubelet::start(&bin("fake-kubelet").expect("fake-kubelet binary"), &socket, args)
            .unwrap_or_else(|e| panic!("{e}"));
        self.daemon_config["kubeletPodResourcesSocket"] = json!(socket);
        self.kubelet = Some(kubelet);
    }

    /// Start the daemon in in-cluster mode and wait for `00-multus.conf` and the socket.
    pub fn start_daemon(&mut self) {
        self.start_daemon_polling(Duration::from_millis(50));
    }

    /// [`Node::start_daemon`] checking readiness every `poll` (a benchmark's ready time).
    pub fn start_daemon_polling(&mut self, poll: Duration) {
        let config_path = self.path("daemon-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&self.daemon_config).unwrap()).unwrap();
        let addr = self.mock.addr();
        let daemon_bin = self.daemon_bin.clone().or_else(|| bin("multus-daemon")).expect("multus-daemon binary");
        let mut command = DaemonProcess::command(&daemon_bin, &config_path);
        if let Some(cgroup) = &self.daemon_cgroup {
            files::join_cgroup_at_exec(&mut command, cgroup);
        }
        command
            .env("KUBERNETES_SERVICE_HOST", addr.ip().to_string())
            .env("KUBERNETES_SERVICE_PORT", addr.port().to_string())
            .env("MULTUS_SERVICEACCOUNT_DIR", self.path("sa"))
            .env("MULTUS_NODE_NAME", NODE_NAME)
            .env_remove("KUBECONFIG")
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)));
        // A fresh log per start, as the tests read "this daemon's" log.
        let log = self.path("log/daemon.log");
        let _ = std::fs::remove_file(&log);
        let mut daemon = DaemonProcess::spawn(command, &log).expect("start multus-daemon");
        let waited = daemon.wait_ready_every(&self.socket(), Some(&self.multus_conf()), Duration::from_secs(30), poll);
        self.daemon = Some(daemon);
        self.ready_after = waited.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stop the daemon (SIGTERM by PID) and wait for it.
    pub fn stop_daemon(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(30));
        }
    }

    pub fn restart_daemon(&mut self) {
        self.stop_daemon();
        self.start_daemon();
    }

    /// The running daemon's PID.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(DaemonProcess::pid)
    }

    /// The daemon's process, handed over: the node no longer stops it.
    pub fn take_daemon(&mut self) -> Option<Child> {
        self.daemon.take().map(DaemonProcess::into_child)
    }

    /// The API server goes down (its port closes) / comes back on the same port.
    pub fn api_down(&self) {
        self.mock.runtime_handle().block_on(self.mock.stop_listening());
    }

    pub fn api_up(&self) {
        self.mock.runtime_handle().block_on(self.mock.try_resume_listening()).expect("resume listening");
    }

    pub fn ready(&self) -> bool {
        ready(&self.socket())
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("log/daemon.log")).unwrap_or_default()
    }

    /// Create a pod network namespace (removed on drop).
    pub fn sandbox(&mut self, namespace: &str, name: &str, uid: &str) -> PodSandbox {
        let netns = unique("mrt");
        self.cleanup.record_netns(&netns);
        PodSandbox::create(namespace, name, uid, netns)
    }

    /// The shim invocation a runtime makes for `pod` (stdin still empty).
    pub fn shim_call(&self, command: &str, pod: &PodSandbox) -> ShimCall {
        match self.caller {
            Caller::DirectShim => ShimCall::new(command)
                .attachment(&pod.container_id, &pod.netns_path(), "eth0", pod.cni_args())
                .cni_path(self.path("bin")),
        }
    }

    /// Run the shim as a runtime would, with `00-multus.conf` as stdin.
    pub fn shim(&self, command: &str, pod: &PodSandbox) -> ShimRun {
        let stdin = std::fs::read(self.multus_conf()).expect("00-multus.conf");
        self.shim_with(command, pod, &stdin, &[])
    }

    pub fn shim_with(&self, command: &str, pod: &PodSandbox, stdin: &[u8], extra_env: &[(&str, &str)]) -> ShimRun {
        let call = extra_env.iter().fold(self.shim_call(command, pod).stdin(stdin), |c, (k, v)| c.env(k, v));
        call.run(&self.shim_path()).expect("run multus-shim")
    }

    /// Start the shim as [`Node::shim_with`] does and return it running (stdin written and
    /// closed), for tests that kill it mid-command.
    pub fn spawn_shim(
        &self,
        command: &str,
        pod: &PodSandbox,
        stdin: &[u8],
        extra_env: &[(&str, &std::ffi::OsStr)],
    ) -> Child {
        let call = extra_env.iter().fold(self.shim_call(command, pod).stdin(stdin), |c, (k, v)| c.env(k, v));
        call.spawn(&self.shim_path()).expect("spawn multus-shim")
    }

    /// Interfaces in the pod's namespace (name → IPv4 CIDRs), loopback excluded.
    pub fn pod_addresses(&self, pod: &PodSandbox) -> Vec<(String, Vec<String>)> {
        pod_addresses(&pod.netns)
    }

    pub fn pod_object(&self, namespace: &str, name: &str) -> Value {
        self.mock.store().get_kind("v1", "Pod", namespace, name).expect("pod in the mock")
    }

    /// Files left in a directory of the node (recursively), for leak checks.
    pub fn files_under(&self, rel: &str) -> Vec<PathBuf> {
        files::walk(&self.path(rel))
    }

    /// A host-local IPAM section for `subnet` keeping its leases under this node's `ipam/`.
    pub fn ipam(&self, subnet: &str) -> Value {
        json!({"type": "host-local", "subnet": subnet, "dataDir": self.path("ipam").to_string_lossy()})
    }

    /// The addresses host-local holds under `ipam/` (one lease file per reserved address).
    pub fn leases(&self) -> Vec<String> {
        self.files_under("ipam")
            .into_iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// Write the primary config into the autoconfig directory.
    pub fn write_primary(&self, file: &str, config: &Value) {
        std::fs::write(self.path(&format!("net.d/{file}")), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    }

    /// Link Debian's real plugins (and fake-cni under several names) into `<dir>/bin`.
    pub fn install_plugins(&self, real: &[&str], fakes: &[&str]) {
        files::install_plugins(&self.path("bin"), real, fakes);
    }

    /// The shim this node's pods are run with.
    pub fn shim_path(&self) -> PathBuf {
        self.shim_bin.clone().or_else(|| bin("multus-shim")).expect("multus-shim binary")
    }

    /// The directory of this node, for callers that keep their own files in it.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}
