//! A node: kube-mock + multus-daemon, and the same networks for the bare runs.

use serde_json::Value;
use serde_json::json;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use crate::args::Args;
use crate::host::{Cleanup, shim_run};
use crate::numbers::{ms, round};

/// Pod shapes: how many NADs besides the cluster network.
pub const SHAPES: [(&str, usize); 3] = [("plain", 0), ("nad2", 2), ("nad4", 4)];

/// The bench's node: a [`test_node::Node`] (kube-mock, directories, the daemon process) and
/// what the bench measures it with.
pub struct Node {
    pub base: test_node::Node,
    pub pid: u32,
    pub ready_ms: f64,
    pub metrics_port: u16,
    /// The multus config the runtime passes the shim.
    pub stdin: Vec<u8>,
    /// The cluster network's conflist and the NADs' conflists, as the bare runs use them.
    pub primary: Value,
    pub nads: Vec<Value>,
    /// host-local's data directory (named in the NADs, so made before the node).
    _ipam: tempfile::TempDir,
}

impl Node {
    pub fn p(&self, rel: &str) -> String {
        self.base.path(rel).to_string_lossy().into_owned()
    }

    pub fn socket(&self) -> PathBuf {
        self.base.socket()
    }

    /// The pod for `shape` and index `i` (the seed has `pods_per_shape` of each).
    pub fn pod_name(shape: &str, i: usize) -> String {
        format!("{shape}-{i}")
    }

    pub fn env(&self, cmd: &str, cid: &str, netns: &str, pod: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", cmd.into()),
            ("CNI_CONTAINERID", cid.into()),
            ("CNI_NETNS", netns.into()),
            ("CNI_IFNAME", "eth0".into()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{pod}"
                ),
            ),
            ("CNI_PATH", self.p("bin")),
        ]
    }

    /// ADD+DEL through shim and daemon; the ADD's and the pair's time, or the failure.
    pub fn multus_pod(&self, shim: &Path, cid: &str, netns: &str, pod: &str) -> Result<(f64, f64), String> {
        let t = Instant::now();
        let (code, out) = shim_run(shim, &self.env("ADD", cid, netns, pod), &self.stdin);
        let add = ms(t.elapsed());
        if code != 0 {
            return Err(format!("ADD through multus failed: {out}"));
        }
        let (code, out) = shim_run(shim, &self.env("DEL", cid, netns, pod), &self.stdin);
        if code != 0 {
            return Err(format!("DEL through multus failed: {out}"));
        }
        Ok((add, ms(t.elapsed())))
    }

    /// The same request the shim sends, posted directly (no shim process, no readiness probe).
    pub fn direct(&self, cmd: &str, cid: &str, netns: &str, pod: &str) -> Result<f64, String> {
        let body = multus_api::Request::from_env(self.env(cmd, cid, netns, pod), self.stdin.clone()).to_json();
        let t = Instant::now();
        let reply =
            multus_api::client::post(&self.socket(), multus_api::path::CNI, &body, Some(Duration::from_secs(120)))
                .map_err(|e| e.to_string())?;
        let took = ms(t.elapsed());
        if reply.status != 200 {
            return Err(format!("{cmd} answered {}: {}", reply.status, String::from_utf8_lossy(&reply.body)));
        }
        Ok(took)
    }

    pub fn bare(&self, nads: usize) -> Bare {
        let mut nets =
            vec![(cni::NetConfList::from_bytes(self.primary.to_string().as_bytes()).unwrap(), "eth0".to_string())];
        for (k, nad) in self.nads.iter().take(nads).enumerate() {
            nets.push((cni::NetConfList::from_bytes(nad.to_string().as_bytes()).unwrap(), format!("net{}", k + 1)));
        }
        Bare {
            runtime: cni::runtime::CniRuntime::new(
                vec![self.base.path("bin")],
                self.base.path("bare-cache"),
                cni::exec::RawExec::new(),
            ),
            nets,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        }
    }

    pub fn metrics(&self) -> String {
        let mut s = match std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) {
            Ok(s) => s,
            Err(_) => return String::new(),
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }
}

/// Sum of a metric's samples whose labels contain every `filter` (e.g. `verb="ADD"`).
pub fn metric(text: &str, name: &str, filter: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| filter.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Mean (ms) of a histogram between two scrapes.
pub fn histogram_mean_ms(before: &str, after: &str, name: &str, filter: &[&str]) -> f64 {
    let d = |suffix: &str| {
        let n = format!("{name}{suffix}");
        metric(after, &n, filter) - metric(before, &n, filter)
    };
    let count = d("_count");
    if count > 0.0 { round(d("_sum") * 1000.0 / count) } else { 0.0 }
}

/// The delegates run directly, as a libcni runtime runs a pod's networks.
pub struct Bare {
    pub runtime: cni::runtime::CniRuntime,
    pub nets: Vec<(cni::NetConfList, String)>,
    pub rt: tokio::runtime::Runtime,
}

impl Bare {
    pub fn add(&self, cid: &str, netns: &str) -> Result<(), String> {
        for (list, ifname) in &self.nets {
            let conf = cni::runtime::RuntimeConf::new(cid, netns, ifname.as_str());
            self.rt.block_on(self.runtime.add_network_list(list, &conf)).map_err(|e| format!("bare ADD: {e}"))?;
        }
        Ok(())
    }

    pub fn del(&self, cid: &str, netns: &str) -> Result<(), String> {
        for (list, ifname) in self.nets.iter().rev() {
            let conf = cni::runtime::RuntimeConf::new(cid, netns, ifname.as_str());
            self.rt.block_on(self.runtime.del_network_list(list, &conf)).map_err(|e| format!("bare DEL: {e}"))?;
        }
        Ok(())
    }

    pub fn pod(&self, cid: &str, netns: &str) -> Result<(f64, f64), String> {
        let t = Instant::now();
        self.add(cid, netns)?;
        let add = ms(t.elapsed());
        self.del(cid, netns)?;
        Ok((add, ms(t.elapsed())))
    }
}

/// A pod of the bench's namespace (UID `uid-<name>`).
pub fn pod(name: &str, networks: Option<&str>) -> Value {
    test_node::pod("default", name, &format!("uid-{name}"), networks)
}

pub fn nad(name: &str, config: &Value) -> Value {
    test_node::nad("default", name, config)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(19_091, |a| a.port())
}

/// kube-mock (TLS, token) + multus-daemon (in-cluster mode, as the DaemonSet runs) with a
/// bridge/host-local cluster network and four macvlan/host-local NADs on `master`.
/// `tag` keeps the bridges and subnets of two nodes apart; `extra` goes into the daemon config.
pub fn start_node(args: &Args, cleanup: &Cleanup, tag: u8, master: &str, pods_per_shape: usize, extra: Value) -> Node {
    start_node_with(args, cleanup, tag, master, pods_per_shape, extra, Vec::new(), None)
}

/// [`start_node`] with more objects in the API server and, when given, a latency on every
/// API request but watches (what a real API server's round trip costs).
#[allow(clippy::too_many_arguments)]
pub fn start_node_with(
    args: &Args,
    cleanup: &Cleanup,
    tag: u8,
    master: &str,
    pods_per_shape: usize,
    extra: Value,
    extra_seed: Vec<Value>,
    latency: Option<Duration>,
) -> Node {
    // The NADs name host-local's data directory, and the node is made with its seed.
    let ipam = tempfile::tempdir().expect("tempdir");
    let ipam_dir = ipam.path().to_string_lossy().into_owned();
    let bridge = format!("mbb{tag}x{}", std::process::id() % 100_000);
    cleanup.record_link(&bridge);
    let primary = json!({"cniVersion": "1.0.0", "name": "bench-net", "plugins": [{"type": "bridge", "bridge": bridge,
        "ipam": {"type": "host-local", "subnet": format!("10.{}.0.0/16", 200 + tag), "dataDir": ipam_dir}}]});
    let nads: Vec<Value> = (1..=4)
        .map(|k| {
            json!({"cniVersion": "1.0.0", "name": format!("mv-{k}"), "plugins": [{"type": "macvlan", "master": master, "mode": "bridge",
                "ipam": {"type": "host-local", "subnet": format!("10.{}.0.0/16", 210 + tag * 5 + k), "dataDir": ipam_dir}}]})
        })
        .collect();
    let mut seed: Vec<Value> = nads.iter().enumerate().map(|(k, c)| nad(&format!("mv-{}", k + 1), c)).collect();
    for (shape, n) in SHAPES {
        let networks = (n > 0).then(|| (1..=n).map(|k| format!("mv-{k}")).collect::<Vec<_>>().join(","));
        seed.extend((0..pods_per_shape).map(|i| pod(&Node::pod_name(shape, i), networks.as_deref())));
    }
    seed.extend(extra_seed);
    let mut base = test_node::Node::new(seed);
    base.daemon_bin = Some(args.daemon.clone());
    base.shim_bin = Some(args.shim.clone());
    if let Some(delay) = latency {
        for verb in ["get", "list", "create", "update", "patch", "delete"] {
            base.mock.faults().add_latency(kube_mock::RequestMatcher::verb(verb), delay).expect("latency fault");
        }
    }
    base.install_plugins(&["bridge", "host-local", "macvlan"], &[]);
    let _ = std::os::unix::fs::symlink(args.bins.join("fake-cni"), base.path("bin/fake-cni"));
    base.write_primary("10-primary.conflist", &primary);
    let p = |rel: &str| base.path(rel).to_string_lossy().into_owned();
    let metrics_port = free_port();
    let mut daemon_config = json!({"cniVersion": "1.0.0", "binDir": p("bin"), "cniDir": p("cni"), "cniConfigDir": p("net.d"),
        "multusAutoconfigDir": p("net.d"), "socketDir": p("run"), "daemonSocketDir": p("run"), "logLevel": "error",
        "metricsPort": metrics_port});
    if let (Some(c), Some(e)) = (daemon_config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    base.daemon_config = daemon_config;
    base.start_daemon_polling(Duration::from_micros(500));
    let pid = base.daemon_pid().expect("the daemon's PID");
    let ready_ms = ms(base.ready_after);
    let stdin = std::fs::read(base.multus_conf()).expect("00-multus.conf");
    Node { base, pid, ready_ms, metrics_port, stdin, primary, nads, _ipam: ipam }
}
