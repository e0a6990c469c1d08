//! Test harness for the daemon: a mock API server, a daemon process, a shim invoked like a
//! runtime, and network namespaces and links that are removed again whatever happens.
#![allow(dead_code)]

use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call (interface names must stay ≤ 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// Path of a workspace binary built next to this test's daemon binary.
pub fn bin(name: &str) -> Option<PathBuf> {
    let daemon = PathBuf::from(env!("CARGO_BIN_EXE_multus-daemon"));
    let p = daemon.parent()?.join(name);
    p.exists().then_some(p)
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Why a root test cannot run here, if it cannot.
pub fn root_skip_reason() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for p in ["/usr/lib/cni/bridge", "/usr/lib/cni/macvlan", "/usr/lib/cni/host-local"] {
        if !Path::new(p).exists() {
            return Some(format!("needs {p} (apt-get install containernetworking-plugins)"));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2".into());
    }
    missing_bins()
}

/// Tests that need what this machine may lack are `#[ignore = "<reason>"]`, so a plain run
/// reports them as skipped; CI runs them with `--include-ignored` where everything is
/// installed. Run that way, a missing prerequisite is a failure, never a silent pass.
pub fn require(missing: Option<String>) {
    if let Some(reason) = missing {
        panic!(
            "this test {reason}; it is #[ignore]d for machines without it — install it or run without --include-ignored"
        );
    }
}

pub fn missing_bins() -> Option<String> {
    for b in ["multus-shim", "fake-cni"] {
        if bin(b).is_none() {
            return Some(format!("needs the {b} binary (cargo build --workspace --bins)"));
        }
    }
    None
}

pub fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("running ip")
}

/// Things created on the host that must go away again.
#[derive(Default)]
pub struct Cleanup {
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            // By PID: the child we started, nothing else.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
    }
}

/// The output of one shim invocation.
#[derive(Debug)]
pub struct ShimRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ShimRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("shim stdout is not JSON ({e}): {self:?}"))
    }
}

/// A pod as the runtime sees it.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns: String,
}

impl PodSandbox {
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            self.namespace, self.name, self.container_id, self.uid
        )
    }
}

/// A running daemon with its API server and directories.
pub struct Thick {
    pub dir: tempfile::TempDir,
    pub mock: MockApiServer,
    pub cleanup: Cleanup,
    pub daemon_config: Value,
    /// Extra environment for the daemon process (e.g. its pod's identity).
    pub daemon_env: Vec<(String, String)>,
    /// A cgroup directory the daemon is moved into right after it starts (its `cgroup.procs`);
    /// the delegates it runs inherit it, as in a container.
    pub daemon_cgroup: Option<PathBuf>,
}

impl Thick {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn multus_conf(&self) -> PathBuf {
        self.path("net.d/00-multus.conf")
    }

    /// Start a TLS mock API server with a token, seeded with `seed`.
    pub fn new(seed: Vec<Value>) -> Self {
        Self::with_deny(seed, &[])
    }

    /// As [`Thick::new`], with RBAC-like deny rules (`verb:resource`, e.g. `patch:pods/status`).
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
        Self { dir, mock, cleanup: Cleanup::default(), daemon_config, daemon_env: Vec::new(), daemon_cgroup: None }
    }

    /// Write the primary config into the autoconfig directory.
    pub fn write_primary(&self, file: &str, config: &Value) {
        std::fs::write(self.path(&format!("net.d/{file}")), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    }

    /// Link the real plugins (and fake-cni under several names) into `<tmp>/bin`.
    pub fn install_plugins(&self, real: &[&str], fakes: &[&str]) {
        let bin_dir = self.path("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        for p in real {
            let _ = std::os::unix::fs::symlink(format!("/usr/lib/cni/{p}"), bin_dir.join(p));
        }
        if let Some(fake) = bin("fake-cni") {
            for name in fakes {
                let _ = std::os::unix::fs::symlink(&fake, bin_dir.join(name));
            }
        }
    }

    /// Start the daemon in in-cluster mode and wait for `00-multus.conf` and the socket.
    pub fn start_daemon(&mut self) {
        let config_path = self.path("daemon-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&self.daemon_config).unwrap()).unwrap();
        let addr = self.mock.addr();
        let log = std::fs::File::create(self.path("log/daemon.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_multus-daemon"));
        if let Some(cgroup) = &self.daemon_cgroup {
            join_cgroup_at_exec(&mut command, cgroup);
        }
        let child = command
            .arg("-config")
            .arg(&config_path)
            .env("KUBERNETES_SERVICE_HOST", addr.ip().to_string())
            .env("KUBERNETES_SERVICE_PORT", addr.port().to_string())
            .env("MULTUS_SERVICEACCOUNT_DIR", self.path("sa"))
            .env("MULTUS_NODE_NAME", "node1")
            .env_remove("KUBECONFIG")
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start multus-daemon");
        self.cleanup.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.multus_conf().exists() && self.ready() {
                return;
            }
            if let Some(Ok(Some(status))) = self.cleanup.children.last_mut().map(|c| c.try_wait()) {
                panic!("multus-daemon exited early with {status}:\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("multus-daemon did not become ready:\n{}", self.daemon_log());
    }

    /// The API server goes down (its port closes) / comes back on the same port.
    pub fn api_down(&self) {
        self.mock.runtime_handle().block_on(self.mock.stop_listening());
    }

    pub fn api_up(&self) {
        self.mock.runtime_handle().block_on(self.mock.try_resume_listening()).expect("resume listening");
    }

    pub fn ready(&self) -> bool {
        multus_api::client::post(&self.path("run/multus.sock"), "/readyz", b"null", Some(Duration::from_secs(2)))
            .map(|r| r.status == 200)
            .unwrap_or(false)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("log/daemon.log")).unwrap_or_default()
    }

    /// Stop the daemon (by PID) and wait for it.
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.cleanup.children.pop() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// Create a pod network namespace (removed on drop).
    pub fn sandbox(&mut self, namespace: &str, name: &str, uid: &str) -> PodSandbox {
        let netns = unique("mrt");
        let out = ip(&["netns", "add", &netns]);
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        self.cleanup.netns.push(netns.clone());
        let _ = ip(&["-n", &netns, "link", "set", "lo", "up"]);
        PodSandbox {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            container_id: unique("cid-"),
            netns,
        }
    }

    /// Run the shim as a runtime would, with `00-multus.conf` as stdin.
    pub fn shim(&self, command: &str, pod: &PodSandbox) -> ShimRun {
        let stdin = std::fs::read(self.multus_conf()).expect("00-multus.conf");
        self.shim_with(command, pod, &stdin, &[])
    }

    pub fn shim_with(&self, command: &str, pod: &PodSandbox, stdin: &[u8], extra_env: &[(&str, &str)]) -> ShimRun {
        let extra: Vec<(&str, &std::ffi::OsStr)> =
            extra_env.iter().map(|(k, v)| (*k, std::ffi::OsStr::new(*v))).collect();
        let child = self.spawn_shim(command, pod, stdin, &extra);
        let out = child.wait_with_output().unwrap();
        ShimRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Start the shim as [`Thick::shim_with`] does and return it running (stdin written and
    /// closed), for tests that kill it mid-command.
    pub fn spawn_shim(
        &self,
        command: &str,
        pod: &PodSandbox,
        stdin: &[u8],
        extra_env: &[(&str, &std::ffi::OsStr)],
    ) -> Child {
        let mut cmd = Command::new(bin("multus-shim").expect("multus-shim binary"));
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.container_id)
            .env("CNI_NETNS", pod.netns_path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", pod.cni_args())
            .env("CNI_PATH", self.path("bin"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn multus-shim");
        // The shim may exit before reading stdin (e.g. missing env): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child
    }

    /// Interfaces in the pod's namespace (name → IPv4 CIDRs), loopback excluded.
    pub fn pod_addresses(&self, pod: &PodSandbox) -> Vec<(String, Vec<String>)> {
        let out = ip(&["-n", &pod.netns, "-j", "addr"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["ifname"] != "lo")
            .map(|l| {
                let name = l["ifname"].as_str().unwrap_or("").to_string();
                let addrs = l["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["family"] == "inet")
                    .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
                    .collect();
                (name, addrs)
            })
            .collect()
    }

    pub fn pod_object(&self, namespace: &str, name: &str) -> Value {
        self.mock.store().get_kind("v1", "Pod", namespace, name).expect("pod in the mock")
    }

    /// Files left in a directory (recursively), for leak checks.
    pub fn files_under(&self, rel: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(rel), &mut out);
        out
    }

    /// A host-local IPAM section for `subnet` keeping its leases under this test's `ipam/`.
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
}

pub fn pod(namespace: &str, name: &str, uid: &str, networks: Option<&str>) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(n) = networks {
        annotations.insert("k8s.v1.cni.cncf.io/networks".into(), json!(n));
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "annotations": annotations},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    })
}

pub fn nad(namespace: &str, name: &str, config: &Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config.to_string()}
    })
}

/// Make `command`'s process join `cgroup` between fork and exec, so it starts inside it (and
/// reads its limits there).
#[allow(unsafe_code)]
fn join_cgroup_at_exec(command: &mut Command, cgroup: &Path) {
    use std::os::unix::process::CommandExt;
    let procs = std::fs::OpenOptions::new().write(true).open(cgroup.join("cgroup.procs")).expect("cgroup.procs");
    // SAFETY: only write(2) on a descriptor opened before the fork; no allocation.
    unsafe {
        command.pre_exec(move || nix::unistd::write(&procs, b"0").map(drop).map_err(std::io::Error::from));
    }
}
