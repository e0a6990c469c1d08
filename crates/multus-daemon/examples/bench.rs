//! Thick-plugin benchmark against the physical limit: the delegates' own cost, measured side by
//! side in the same run. Run through `cargo xtask bench` (release binaries, static shim and
//! daemon); it measures, it does not assert.
//!
//! Every multus figure has its bare counterpart from the same run: the same Debian
//! bridge/host-local conflist (the cluster network) and macvlan/host-local NADs the daemon
//! runs, executed directly through the cni runtime (as a libcni runtime would) in real network
//! namespaces, sequentially and at the same concurrency as the multus run.
//!
//! - sequential ADD+DEL and ADD alone, cluster network only and +2 NADs (medians, ratios);
//! - throughput at `--concurrency` (8) ways, both shapes (pods/s, ratio) and CPU per pod by
//!   process (daemon, its plugins, shims, the mock API server, the caller);
//! - storms of 64 and 200 pods at once: errors and the daemon's peak RSS;
//! - daemon idle RSS and its growth over `--cycles` sequential ADD/DEL cycles;
//! - shim exec time and peak RSS;
//! - the fixed per-pod cost broken down: shim process, readiness round trip, socket + parse,
//!   daemon work besides the delegates, the delegates, the status write;
//! - `parallelDelegates`: ADD of pods with +2 and +4 NADs, sequential vs parallel daemon;
//! - memory bounded by design (`--only memory` runs just this): daemon RSS and ready time on a
//!   node of 110 pods whose API server also holds 10,000 NADs of 1 KB in 1,000 namespaces, or 40
//!   NADs of 1 MB (a pod using four of them, then all deleted); the API requests of a pod's ADD and
//!   DEL; RSS after a storm once idle. Every API request but watches costs 2 ms.
//!
//! Arguments: `--bins DIR` (fake-cni), `--shim PATH`, `--daemon PATH`, `--iterations N`
//! (sequential rounds), `--pods N` (throughput pods per side), `--cycles N` (RSS growth),
//! `--concurrency N`, `--storms 64,200`, `--compare-shim PATH` (a second shim against the same
//! daemon, interleaved), `--out FILE` (JSON report; its `table` is what `cargo xtask bench`
//! prints), `--only memory|storms|throughput` (one section, e.g. to compare builds).

use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

struct Args {
    bins: PathBuf,
    shim: PathBuf,
    /// A second shim measured against the same daemon, interleaved (e.g. an earlier build).
    compare_shim: Option<PathBuf>,
    daemon: PathBuf,
    iterations: usize,
    pods: usize,
    cycles: usize,
    concurrency: usize,
    storms: Vec<usize>,
    out: Option<PathBuf>,
    /// `--only memory|storms|throughput`: just that section.
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut bins = PathBuf::from("target/release");
    let (mut shim, mut daemon, mut out, mut compare_shim, mut only) = (None, None, None, None, None);
    let (mut iterations, mut pods, mut cycles, mut concurrency) = (30, 160, 1000, 8);
    let mut storms = vec![64, 200];
    let num = |v: Option<String>, d: usize| v.and_then(|n| n.parse().ok()).unwrap_or(d);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bins" => bins = args.next().map(PathBuf::from).unwrap_or(bins),
            "--shim" => shim = args.next().map(PathBuf::from),
            "--compare-shim" => compare_shim = args.next().map(PathBuf::from),
            "--daemon" => daemon = args.next().map(PathBuf::from),
            "--iterations" => iterations = num(args.next(), iterations),
            "--pods" => pods = num(args.next(), pods),
            "--cycles" => cycles = num(args.next(), cycles),
            "--concurrency" => concurrency = num(args.next(), concurrency).max(1),
            "--storms" => {
                storms = args.next().unwrap_or_default().split(',').filter_map(|n| n.trim().parse().ok()).collect()
            }
            "--out" => out = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            // cargo bench passes --bench; ignore unknown flags.
            _ => {}
        }
    }
    // Symlinks made to these binaries must not depend on the working directory.
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let bins = abs(bins);
    let shim = shim.map(abs).unwrap_or_else(|| bins.join("multus-shim"));
    let daemon = daemon.map(abs).unwrap_or_else(|| bins.join("multus-daemon"));
    let compare_shim = compare_shim.map(abs);
    Args {
        bins,
        shim,
        compare_shim,
        daemon,
        iterations: iterations.max(1),
        pods,
        cycles,
        concurrency,
        storms,
        out,
        only,
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

fn stats(mut samples: Vec<f64>) -> Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let pct = |p: f64| samples.get(((n as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    json!({"n": samples.len(), "mean_ms": round(mean), "p50_ms": round(pct(0.5)), "p99_ms": round(pct(0.99)), "max_ms": round(pct(1.0))})
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// CPU time (ms) from a `/proc/.../stat` line: own (user+system) and reaped children's.
fn stat_cpu(stat: &str) -> (f64, f64) {
    let tick = 1000.0 / clock_ticks();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    ((at(11) + at(12)) * tick, (at(13) + at(14)) * tick)
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |t| t as f64)
}

/// CPU spent so far by each party of a run (ms).
#[derive(Clone, Copy, Default)]
struct Cpu {
    daemon: f64,
    daemon_children: f64,
    mock: f64,
    caller: f64,
    caller_children: f64,
}

impl Cpu {
    fn now(daemon_pid: Option<u32>) -> Self {
        let (daemon, daemon_children) = daemon_pid
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .map_or((0.0, 0.0), |s| stat_cpu(&s));
        let (me, caller_children) = std::fs::read_to_string("/proc/self/stat").map_or((0.0, 0.0), |s| stat_cpu(&s));
        // kube-mock runs in this process on threads named after it.
        let mock = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter(|s| s.contains("(kube-mock)"))
            .map(|s| stat_cpu(&s).0)
            .sum();
        Self { daemon, daemon_children, mock, caller: me - mock, caller_children }
    }

    fn since(self, before: Self, pods: usize) -> Value {
        let per = |a: f64, b: f64| round((a - b) / pods.max(1) as f64);
        let d = (
            per(self.daemon, before.daemon),
            per(self.daemon_children, before.daemon_children),
            per(self.mock, before.mock),
            per(self.caller, before.caller),
            per(self.caller_children, before.caller_children),
        );
        json!({"daemon_ms": d.0, "daemon_plugins_ms": d.1, "mock_api_ms": d.2, "caller_ms": d.3, "caller_children_ms": d.4,
               "total_ms": round(d.0 + d.1 + d.2 + d.3 + d.4)})
    }
}

// ---------------------------------------------------------------------------------------------
// Processes, namespaces, links

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Namespaces and links made by the bench, removed when dropped (also on a panic).
#[derive(Default)]
struct Cleanup {
    netns: Mutex<Vec<String>>,
    links: Mutex<Vec<String>>,
}

impl Cleanup {
    fn netns(&self, name: String) -> String {
        assert!(ip(&["netns", "add", &name]), "ip netns add {name}");
        self.netns.lock().unwrap().push(name.clone());
        format!("/var/run/netns/{name}")
    }

    fn netns_many(&self, tag: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| self.netns(format!("mb{}{tag}{i}", std::process::id() % 100_000))).collect()
    }

    fn drop_netns(&self, paths: &[String]) {
        for p in paths {
            let name = p.rsplit('/').next().unwrap_or_default().to_string();
            ip(&["netns", "del", &name]);
            self.netns.lock().unwrap().retain(|n| *n != name);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in self.netns.lock().unwrap().iter() {
            ip(&["netns", "del", ns]);
        }
        for l in self.links.lock().unwrap().iter() {
            ip(&["link", "del", l]);
        }
    }
}

fn shim_run(shim: &Path, env: &[(&str, String)], stdin: &[u8]) -> (i32, String) {
    let mut cmd = Command::new(shim);
    cmd.env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Ok(mut child) = cmd.spawn() else { return (-1, "cannot spawn the shim".into()) };
    let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
    match child.wait_with_output() {
        Ok(out) => (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) => (-1, e.to_string()),
    }
}

fn bench_shim_exec(shim: &Path, n: usize) -> Value {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (code, _) = shim_run(shim, &[("CNI_COMMAND", "VERSION".into())], b"");
        samples.push(ms(t.elapsed()));
        assert_eq!(code, 0, "shim VERSION failed");
    }
    // Peak RSS of the shim alone: a child's rusage also counts the pages it shared with this
    // (much larger) parent before exec, so measure through GNU time's small process instead.
    let peak_rss_kib = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(shim)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdout(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr).trim().lines().last().and_then(|l| l.trim().parse::<u64>().ok())
        });
    let size = std::fs::metadata(shim).map(|m| m.len()).unwrap_or(0);
    let linked = Command::new("ldd").arg(shim).output().map(|o| o.stdout).unwrap_or_default();
    json!({"exec": stats(samples), "peak_rss_kib": peak_rss_kib.map_or(json!("needs /usr/bin/time (apt-get install time)"), |k| json!(k)),
           "binary_bytes": size, "static": !String::from_utf8_lossy(&linked).contains("=>")})
}

// ---------------------------------------------------------------------------------------------
// A node: kube-mock + multus-daemon, and the same networks for the bare runs

/// Pod shapes: how many NADs besides the cluster network.
const SHAPES: [(&str, usize); 3] = [("plain", 0), ("nad2", 2), ("nad4", 4)];

struct Node {
    dir: tempfile::TempDir,
    mock: MockApiServer,
    daemon: Child,
    pid: u32,
    ready_ms: f64,
    metrics_port: u16,
    /// The multus config the runtime passes the shim.
    stdin: Vec<u8>,
    /// The cluster network's conflist and the NADs' conflists, as the bare runs use them.
    primary: Value,
    nads: Vec<Value>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.daemon.wait();
    }
}

impl Node {
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/multus.sock")
    }

    /// The pod for `shape` and index `i` (the seed has `pods_per_shape` of each).
    fn pod_name(shape: &str, i: usize) -> String {
        format!("{shape}-{i}")
    }

    fn env(&self, cmd: &str, cid: &str, netns: &str, pod: &str) -> Vec<(&'static str, String)> {
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
    fn multus_pod(&self, shim: &Path, cid: &str, netns: &str, pod: &str) -> Result<(f64, f64), String> {
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
    fn direct(&self, cmd: &str, cid: &str, netns: &str, pod: &str) -> Result<f64, String> {
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

    fn bare(&self, nads: usize) -> Bare {
        let mut nets =
            vec![(cni::NetConfList::from_bytes(self.primary.to_string().as_bytes()).unwrap(), "eth0".to_string())];
        for (k, nad) in self.nads.iter().take(nads).enumerate() {
            nets.push((cni::NetConfList::from_bytes(nad.to_string().as_bytes()).unwrap(), format!("net{}", k + 1)));
        }
        Bare {
            runtime: cni::runtime::CniRuntime::new(
                vec![self.dir.path().join("bin")],
                self.dir.path().join("bare-cache"),
                cni::exec::RawExec::new(),
            ),
            nets,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        }
    }

    fn metrics(&self) -> String {
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
fn metric(text: &str, name: &str, filter: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| filter.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Mean (ms) of a histogram between two scrapes.
fn histogram_mean_ms(before: &str, after: &str, name: &str, filter: &[&str]) -> f64 {
    let d = |suffix: &str| {
        let n = format!("{name}{suffix}");
        metric(after, &n, filter) - metric(before, &n, filter)
    };
    let count = d("_count");
    if count > 0.0 { round(d("_sum") * 1000.0 / count) } else { 0.0 }
}

/// The delegates run directly, as a libcni runtime runs a pod's networks.
struct Bare {
    runtime: cni::runtime::CniRuntime,
    nets: Vec<(cni::NetConfList, String)>,
    rt: tokio::runtime::Runtime,
}

impl Bare {
    fn add(&self, cid: &str, netns: &str) -> Result<(), String> {
        for (list, ifname) in &self.nets {
            let conf = cni::runtime::RuntimeConf::new(cid, netns, ifname.as_str());
            self.rt.block_on(self.runtime.add_network_list(list, &conf)).map_err(|e| format!("bare ADD: {e}"))?;
        }
        Ok(())
    }

    fn del(&self, cid: &str, netns: &str) -> Result<(), String> {
        for (list, ifname) in self.nets.iter().rev() {
            let conf = cni::runtime::RuntimeConf::new(cid, netns, ifname.as_str());
            self.rt.block_on(self.runtime.del_network_list(list, &conf)).map_err(|e| format!("bare DEL: {e}"))?;
        }
        Ok(())
    }

    fn pod(&self, cid: &str, netns: &str) -> Result<(f64, f64), String> {
        let t = Instant::now();
        self.add(cid, netns)?;
        let add = ms(t.elapsed());
        self.del(cid, netns)?;
        Ok((add, ms(t.elapsed())))
    }
}

fn pod(name: &str, networks: Option<&str>) -> Value {
    let mut ann = serde_json::Map::new();
    if let Some(n) = networks {
        ann.insert("k8s.v1.cni.cncf.io/networks".into(), json!(n));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "annotations": ann},
           "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}})
}

fn nad(name: &str, config: &Value) -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"config": config.to_string()}})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(19_091, |a| a.port())
}

/// kube-mock (TLS, token) + multus-daemon (in-cluster mode, as the DaemonSet runs) with a
/// bridge/host-local cluster network and four macvlan/host-local NADs on `master`.
/// `tag` keeps the bridges and subnets of two nodes apart; `extra` goes into the daemon config.
fn start_node(args: &Args, cleanup: &Cleanup, tag: u8, master: &str, pods_per_shape: usize, extra: Value) -> Node {
    start_node_with(args, cleanup, tag, master, pods_per_shape, extra, Vec::new(), None)
}

/// [`start_node`] with more objects in the API server and, when given, a latency on every
/// API request but watches (what a real API server's round trip costs).
#[allow(clippy::too_many_arguments)]
fn start_node_with(
    args: &Args,
    cleanup: &Cleanup,
    tag: u8,
    master: &str,
    pods_per_shape: usize,
    extra: Value,
    extra_seed: Vec<Value>,
    latency: Option<Duration>,
) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["net.d", "cni", "run", "bin", "ipam"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let ipam_dir = dir.path().join("ipam").to_string_lossy().into_owned();
    let bridge = format!("mbb{tag}x{}", std::process::id() % 100_000);
    cleanup.links.lock().unwrap().push(bridge.clone());
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
    let mock = MockApiServer::start_blocking(MockConfig {
        seed,
        tls: true,
        token: Some("bench".into()),
        ..Default::default()
    })
    .expect("kube-mock");
    if let Some(delay) = latency {
        for verb in ["get", "list", "create", "update", "patch", "delete"] {
            mock.faults().add_latency(kube_mock::RequestMatcher::verb(verb), delay).expect("latency fault");
        }
    }
    mock.write_in_cluster_dir(&dir.path().join("sa")).unwrap();
    for p in ["bridge", "host-local", "macvlan"] {
        let _ = std::os::unix::fs::symlink(format!("/usr/lib/cni/{p}"), dir.path().join("bin").join(p));
    }
    let _ = std::os::unix::fs::symlink(args.bins.join("fake-cni"), dir.path().join("bin/fake-cni"));
    std::fs::write(dir.path().join("net.d/10-primary.conflist"), primary.to_string()).unwrap();
    let p = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
    let metrics_port = free_port();
    let mut daemon_config = json!({"cniVersion": "1.0.0", "binDir": p("bin"), "cniDir": p("cni"), "cniConfigDir": p("net.d"),
        "multusAutoconfigDir": p("net.d"), "socketDir": p("run"), "daemonSocketDir": p("run"), "logLevel": "error",
        "metricsPort": metrics_port});
    if let (Some(c), Some(e)) = (daemon_config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    std::fs::write(dir.path().join("daemon-config.json"), daemon_config.to_string()).unwrap();
    let started = Instant::now();
    let daemon = Command::new(&args.daemon)
        .arg("-config")
        .arg(dir.path().join("daemon-config.json"))
        .env("KUBERNETES_SERVICE_HOST", mock.addr().ip().to_string())
        .env("KUBERNETES_SERVICE_PORT", mock.addr().port().to_string())
        .env("MULTUS_SERVICEACCOUNT_DIR", dir.path().join("sa"))
        .env_remove("KUBECONFIG")
        .env("MULTUS_NODE_NAME", "node1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start multus-daemon");
    let pid = daemon.id();
    let socket = dir.path().join("run/multus.sock");
    let conf_file = dir.path().join("net.d/00-multus.conf");
    let mut ready_ms = 0.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ready = multus_api::client::post(&socket, "/readyz", b"null", Some(Duration::from_secs(1)))
            .map(|r| r.status == 200)
            .unwrap_or(false);
        if ready && ready_ms == 0.0 {
            ready_ms = ms(started.elapsed());
        }
        if ready && conf_file.exists() {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let stdin = std::fs::read(&conf_file).expect("00-multus.conf");
    Node { dir, mock, daemon, pid, ready_ms, metrics_port, stdin, primary, nads }
}

// ---------------------------------------------------------------------------------------------
// Measurements

static SEQ: AtomicU64 = AtomicU64::new(0);

fn cid(tag: &str) -> String {
    format!("{tag}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Sequential ADD+DEL, bare and through multus, interleaved (alternating which goes first).
fn sequential(args: &Args, node: &Node, cleanup: &Cleanup, shape: &str, nads: usize) -> Value {
    let bare = node.bare(nads);
    let ns = cleanup.netns_many(&format!("s{shape}"), 2);
    let pod = Node::pod_name(shape, 0);
    let (mut b_add, mut b_pair, mut m_add, mut m_pair) = (vec![], vec![], vec![], vec![]);
    for i in 0..args.iterations + 3 {
        let run_bare = || bare.pod(&cid("bare"), &ns[0]).expect("bare pod");
        let run_multus = || node.multus_pod(&args.shim, &cid("thick"), &ns[1], &pod).expect("multus pod");
        let (b, m) = if i % 2 == 0 {
            let b = run_bare();
            (b, run_multus())
        } else {
            let m = run_multus();
            (run_bare(), m)
        };
        // The first rounds warm the page cache and the daemon's caches.
        if i >= 3 {
            b_add.push(b.0);
            b_pair.push(b.1);
            m_add.push(m.0);
            m_pair.push(m.1);
        }
    }
    cleanup.drop_netns(&ns);
    let (ba, bp, ma, mp) = (median(&b_add), median(&b_pair), median(&m_add), median(&m_pair));
    json!({"nads": nads, "bare_add_del": stats(b_pair), "multus_add_del": stats(m_pair), "bare_add": stats(b_add), "multus_add": stats(m_add),
           "add_del_p50_ratio": round(mp / bp), "add_p50_ratio": round(ma / ba), "add_p50_extra_ms": round(ma - ba),
           "add_del_p50_extra_ms": round(mp - bp)})
}

/// `pods` pods through `concurrency` workers; each worker has its own namespace.
fn concurrent(
    concurrency: usize,
    pods: usize,
    netns: &[String],
    work: impl Fn(usize, &str) -> Result<(), String> + Sync,
) -> (f64, usize, Vec<String>) {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for (w, ns) in netns.iter().enumerate().take(concurrency) {
            let (next, errors, work) = (&next, &errors, &work);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= pods {
                        return;
                    }
                    if let Err(e) = work(w, ns) {
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.into_inner().unwrap();
    (elapsed, errors.len(), errors)
}

/// Throughput at `concurrency` ways, bare and through multus, two alternating rounds each.
fn throughput(args: &Args, node: &Node, cleanup: &Cleanup, shape: &str, nads: usize) -> Value {
    let c = args.concurrency;
    let ns = cleanup.netns_many(&format!("t{shape}"), c);
    let per_round = (args.pods / 2).max(c);
    let bares: Vec<Bare> = (0..c).map(|_| node.bare(nads)).collect();
    let (mut b_time, mut m_time, mut b_err, mut m_err) = (0.0, 0.0, 0, 0);
    let mut first_errors = Vec::new();
    let (mut b_cpu, mut m_cpu) = (None, None);
    for _round in 0..2 {
        let before = Cpu::now(Some(node.pid));
        let (t, e, errs) = concurrent(c, per_round, &ns, |w, ns| bares[w].pod(&cid("tb"), ns).map(|_| ()));
        b_cpu.get_or_insert_with(|| Cpu::now(Some(node.pid)).since(before, per_round));
        (b_time, b_err) = (b_time + t, b_err + e);
        first_errors.extend(errs.into_iter().take(2));
        let before = Cpu::now(Some(node.pid));
        let (t, e, errs) = concurrent(c, per_round, &ns, |w, ns| {
            node.multus_pod(&args.shim, &cid("tm"), ns, &Node::pod_name(shape, w)).map(|_| ())
        });
        m_cpu.get_or_insert_with(|| Cpu::now(Some(node.pid)).since(before, per_round));
        (m_time, m_err) = (m_time + t, m_err + e);
        first_errors.extend(errs.into_iter().take(2));
    }
    cleanup.drop_netns(&ns);
    let pods = (per_round * 2) as f64;
    let (b, m) = (pods / b_time, pods / m_time);
    json!({"nads": nads, "concurrency": c, "pods_per_side": pods, "bare_pods_per_s": round(b), "multus_pods_per_s": round(m),
           "ratio": round(m / b), "bare_errors": b_err, "multus_errors": m_err, "first_errors": first_errors,
           "cpu_per_pod_bare": b_cpu, "cpu_per_pod_multus": m_cpu})
}

/// `n` ADDs at once, then `n` DELs at once; errors and the daemon's peak RSS (sampled).
fn storm(args: &Args, node: &Node, cleanup: &Cleanup, n: usize) -> Value {
    let ns = cleanup.netns_many(&format!("x{n}x"), n);
    let cids: Vec<String> = (0..n).map(|_| cid("storm")).collect();
    let peak = AtomicU64::new(rss_kib(node.pid));
    let done = AtomicBool::new(false);
    let phase = |cmd: &'static str| -> (f64, usize, Vec<String>) {
        let barrier = Barrier::new(n);
        let errors = Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            for i in 0..n {
                let (barrier, errors, ns, cid) = (&barrier, &errors, &ns[i], &cids[i]);
                s.spawn(move || {
                    barrier.wait();
                    let (code, out) =
                        shim_run(&args.shim, &node.env(cmd, cid, ns, &Node::pod_name("plain", i)), &node.stdin);
                    if code != 0 {
                        errors.lock().unwrap().push(out);
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap();
        (started.elapsed().as_secs_f64(), errors.len(), errors.into_iter().take(3).collect())
    };
    let ((add_s, add_err, add_first), (del_s, del_err_exit, _)) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(node.pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let add = phase("ADD");
        let del = phase("DEL");
        done.store(true, Ordering::SeqCst);
        (add, del)
    });
    // DEL always exits 0 (as Go's shim): a DEL that failed leaves its delegate cache behind.
    let cni_dir = node.dir.path().join("cni");
    let del_left = cids.iter().filter(|c| multus::cache::cache_path(&cni_dir, c).exists()).count();
    let right_after = rss_kib(node.pid);
    // What the burst took should go back once the daemon is idle.
    std::thread::sleep(Duration::from_secs(3));
    let idle_after = rss_kib(node.pid);
    cleanup.drop_netns(&ns);
    json!({"pods": n, "add_errors": add_err, "del_errors": del_err_exit + del_left, "add_s": round(add_s), "del_s": round(del_s),
           "add_pods_per_s": round(n as f64 / add_s), "first_errors": add_first,
           "daemon_peak_rss_kib": peak.load(Ordering::SeqCst), "daemon_hwm_kib": proc_status_kib(node.pid, "VmHWM:"),
           "daemon_rss_right_after_kib": right_after, "daemon_rss_idle_after_kib": idle_after})
}

/// RSS before and after `cycles` sequential ADD/DEL cycles of a cluster-network-only pod.
fn growth(args: &Args, node: &Node, cleanup: &Cleanup) -> Value {
    let ns = cleanup.netns_many("g", 1);
    let pod = Node::pod_name("plain", 0);
    let before = rss_kib(node.pid);
    let started = Instant::now();
    let mut errors = 0;
    for _ in 0..args.cycles {
        if node.multus_pod(&args.shim, &cid("cycle"), &ns[0], &pod).is_err() {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss_kib(node.pid);
    cleanup.drop_netns(&ns);
    let growth = after as i64 - before as i64;
    json!({"cycles": args.cycles, "errors": errors, "rss_before_kib": before, "rss_after_kib": after, "growth_kib": growth,
           "growth_kib_per_1000": round(growth as f64 * 1000.0 / args.cycles.max(1) as f64), "elapsed_s": round(elapsed)})
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Where the fixed per-pod cost goes (cluster network only, sequential). Means throughout, so
/// that the bench's timings and the daemon's histograms (sum/count) subtract cleanly.
fn profile(args: &Args, node: &Node, cleanup: &Cleanup, shim_exec_ms: f64) -> Value {
    let ns = cleanup.netns_many("p", 2);
    let pod = Node::pod_name("plain", 0);
    let socket = node.socket();
    let bare = node.bare(0);
    let before = node.metrics();
    let (mut shim_add, mut shim_del, mut direct_add, mut direct_del, mut readyz, mut bare_add, mut bare_del) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..args.iterations * 2 {
        let t = Instant::now();
        let _ = multus_api::client::post(&socket, multus_api::path::READYZ, b"null", Some(Duration::from_secs(5)));
        readyz.push(ms(t.elapsed()));
        let (add, pair) = node.multus_pod(&args.shim, &cid("ps"), &ns[0], &pod).expect("profile pod");
        shim_add.push(add);
        shim_del.push(pair - add);
        let c = cid("pd");
        direct_add.push(node.direct("ADD", &c, &ns[0], &pod).expect("direct ADD"));
        direct_del.push(node.direct("DEL", &c, &ns[0], &pod).expect("direct DEL"));
        let (add, pair) = bare.pod(&cid("pb"), &ns[1]).expect("bare pod");
        bare_add.push(add);
        bare_del.push(pair - add);
    }
    let after = node.metrics();
    cleanup.drop_netns(&ns);
    let hist = |name: &str, filter: &[&str]| histogram_mean_ms(&before, &after, name, filter);
    let command =
        |verb: &str| hist("multus_command_duration_seconds", &["outcome=\"success\"", &format!("command=\"{verb}\"")]);
    let delegate = |verb: &str| hist("multus_delegate_duration_seconds", &[&format!("verb=\"{verb}\"")]);
    let status = hist("multus_apiserver_write_duration_seconds", &["kind=\"network_status\""]);
    let (sa, da, ba) = (mean(&shim_add), mean(&direct_add), mean(&bare_add));
    let (sd, dd, bd) = (mean(&shim_del), mean(&direct_del), mean(&bare_del));
    let (ca, cd, ga, gd) = (command("ADD"), command("DEL"), delegate("ADD"), delegate("DEL"));
    json!({
        "rounds": args.iterations * 2,
        "add_mean_ms": {"via_shim": round(sa), "direct_post": round(da), "daemon_command": ca, "delegate_in_daemon": ga, "bare": round(ba)},
        "del_mean_ms": {"via_shim": round(sd), "direct_post": round(dd), "daemon_command": cd, "delegate_in_daemon": gd, "bare": round(bd)},
        "add_breakdown_ms": {
            "shim_process_and_gate": round(sa - da),
            "shim_exec_version_alone": round(shim_exec_ms),
            "readyz_round_trip": round(mean(&readyz)),
            "socket_http_parse_handoff": round(da - ca),
            "daemon_besides_delegates_and_status": round(ca - ga - status),
            "status_write": status,
            "delegate_in_daemon_minus_bare": round(ga - ba),
            "total_over_bare": round(sa - ba),
        },
        "del_breakdown_ms": {
            "shim_process": round(sd - dd),
            "socket_http_parse_handoff": round(dd - cd),
            "daemon_besides_delegates": round(cd - gd),
            "delegate_in_daemon_minus_bare": round(gd - bd),
            "total_over_bare": round(sd - bd),
        },
    })
}

/// `--compare-shim`: ADD+DEL of a cluster-network-only pod through the shim and through the
/// other shim, interleaved with the bare delegates, against the same daemon.
fn compare_shims(args: &Args, other: &Path, node: &Node, cleanup: &Cleanup) -> Value {
    let ns = cleanup.netns_many("c", 3);
    let pod = Node::pod_name("plain", 0);
    let bare = node.bare(0);
    let (mut a, mut b, mut z) = ((vec![], vec![]), (vec![], vec![]), (vec![], vec![]));
    for i in 0..args.iterations * 2 + 3 {
        let ra = node.multus_pod(&args.shim, &cid("ca"), &ns[0], &pod).expect("shim");
        let rb = node.multus_pod(other, &cid("cb"), &ns[1], &pod).expect("other shim");
        let rz = bare.pod(&cid("cz"), &ns[2]).expect("bare");
        if i >= 3 {
            for (v, r) in [(&mut a, ra), (&mut b, rb), (&mut z, rz)] {
                v.0.push(r.0);
                v.1.push(r.1);
            }
        }
    }
    cleanup.drop_netns(&ns);
    let side = |v: &(Vec<f64>, Vec<f64>)| {
        json!({"add_p50_ms": round(median(&v.0)), "add_mean_ms": round(mean(&v.0)),
               "add_del_p50_ms": round(median(&v.1)), "add_del_mean_ms": round(mean(&v.1))})
    };
    json!({"shim": args.shim, "other_shim": other, "rounds": args.iterations * 2,
           "this_shim": side(&a), "other": side(&b), "bare": side(&z),
           "add_del_p50_ratio_this": round(median(&a.1) / median(&z.1)), "add_del_p50_ratio_other": round(median(&b.1) / median(&z.1))})
}

/// ADD and ADD+DEL of pods with several NADs on the sequential daemon and on one with
/// `parallelDelegates`.
fn parallel_delegates(args: &Args, seq: &Node, par: &Node, cleanup: &Cleanup) -> Value {
    let mut out = serde_json::Map::new();
    for (shape, nads) in [("nad2", 2), ("nad4", 4)] {
        let ns = cleanup.netns_many(&format!("q{shape}"), 3);
        let bare = seq.bare(nads);
        let pod = Node::pod_name(shape, 0);
        let (mut s_add, mut p_add, mut s_pair, mut p_pair, mut b_add) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..args.iterations + 2 {
            let s = seq.multus_pod(&args.shim, &cid("qs"), &ns[0], &pod).expect("sequential daemon");
            let p = par.multus_pod(&args.shim, &cid("qp"), &ns[1], &pod).expect("parallel daemon");
            let b = bare.pod(&cid("qb"), &ns[2]).expect("bare");
            if i >= 2 {
                s_add.push(s.0);
                s_pair.push(s.1);
                p_add.push(p.0);
                p_pair.push(p.1);
                b_add.push(b.0);
            }
        }
        cleanup.drop_netns(&ns);
        let (sa, pa) = (median(&s_add), median(&p_add));
        out.insert(
            shape.into(),
            json!({"nads": nads, "sequential_add_p50_ms": round(sa), "parallel_add_p50_ms": round(pa),
                   "bare_sequential_add_p50_ms": round(median(&b_add)),
                   "sequential_add_del_p50_ms": round(median(&s_pair)), "parallel_add_del_p50_ms": round(median(&p_pair)),
                   "add_p50_ratio": round(pa / sa)}),
        );
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Memory bounded by what the node uses, not by what the cluster holds

/// A macvlan NAD of about `bytes` bytes of config text in `namespace` (padded with an unused key).
fn sized_nad(namespace: &str, name: &str, master: &str, bytes: usize) -> Value {
    let mut config = json!({"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": master, "mode": "bridge",
        "ipam": {}, "padding": ""});
    let pad = bytes.saturating_sub(config.to_string().len());
    config["padding"] = json!("x".repeat(pad));
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config.to_string()}})
}

/// The API requests the daemon sent since the journal was last cleared (watches excluded),
/// by kind: reads, the network-status write, events, anything else.
fn api_requests(node: &Node) -> Value {
    let entries = node.mock.journal();
    let (mut reads, mut status, mut events, mut other) = (0, 0, 0, 0);
    for e in &entries {
        let query = e.query.as_deref().unwrap_or("");
        if query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1") {
            continue;
        }
        if e.path.contains("/events") {
            events += 1;
        } else if e.path.ends_with("/status") {
            status += 1;
        } else if e.method == "GET" {
            reads += 1;
        } else {
            other += 1;
        }
    }
    json!({"total": reads + status + events + other, "reads": reads, "status_writes": status, "events": events, "other": other,
           "paths": entries.iter().filter(|e| !e.query.as_deref().unwrap_or("").contains("watch=")).map(|e| format!("{} {}", e.method, e.path)).collect::<Vec<_>>()})
}

/// One command through the shim, then the API requests it caused (events are sent off the
/// request path: counted after they had time to go out).
fn requests_of(node: &Node, shim: &Path, cmd: &str, cid: &str, netns: &str, pod: &str) -> Value {
    node.mock.clear_journal();
    let (code, out) = shim_run(shim, &node.env(cmd, cid, netns, pod), &node.stdin);
    assert_eq!(code, 0, "{cmd} failed: {out}");
    std::thread::sleep(Duration::from_millis(500));
    api_requests(node)
}

/// RSS and ready time of a daemon on a node with 110 pods, against an API server that also
/// holds 10,000 small NADs of other tenants, or 40 NADs of 1 MB (then deleted); the API
/// requests of a pod's ADD and DEL. Every API request but watches costs `latency`.
fn memory_bounded(args: &Args, cleanup: &Cleanup, master: &str) -> Value {
    let latency = Some(Duration::from_millis(2));
    // 3 shapes × 37 pods = 111 pods on the node.
    let pods = 37;
    let settle = |node: &Node| {
        std::thread::sleep(Duration::from_secs(2));
        json!({"ready_ms": round(node.ready_ms), "rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")})
    };
    let mut out = serde_json::Map::new();

    eprintln!("bench: memory: no other NADs; API requests per ADD and DEL");
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), Vec::new(), latency);
    out.insert("no_nads".into(), settle(&node));
    let ns = cleanup.netns_many("r", 1);
    let mut requests = serde_json::Map::new();
    for (label, pod) in [("nad2", Node::pod_name("nad2", 0)), ("plain", Node::pod_name("plain", 0))] {
        let (first, second) = (cid("rq"), cid("rq"));
        requests.insert(format!("{label}_first_add"), requests_of(&node, &args.shim, "ADD", &first, &ns[0], &pod));
        requests.insert(format!("{label}_first_del"), requests_of(&node, &args.shim, "DEL", &first, &ns[0], &pod));
        requests.insert(format!("{label}_next_add"), requests_of(&node, &args.shim, "ADD", &second, &ns[0], &pod));
        requests.insert(format!("{label}_next_del"), requests_of(&node, &args.shim, "DEL", &second, &ns[0], &pod));
    }
    cleanup.drop_netns(&ns);
    out.insert("requests".into(), Value::Object(requests));
    eprintln!("bench: memory: a {pods}-way storm, then idle");
    out.insert("storm".into(), storm(args, &node, cleanup, pods));
    drop(node);

    eprintln!("bench: memory: 10,000 NADs of 1 KB in 1,000 namespaces");
    let many: Vec<Value> =
        (0..10_000).map(|i| sized_nad(&format!("tenant-{}", i % 1000), &format!("net-{i}"), master, 1024)).collect();
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), many, latency);
    out.insert("nads_10k_1kb".into(), settle(&node));
    drop(node);

    eprintln!("bench: memory: 40 NADs of 1 MB in one namespace, then deleted");
    let mut big: Vec<Value> = (0..40).map(|i| sized_nad("tenant-big", &format!("big-{i}"), master, 1 << 20)).collect();
    // A pod that uses four of them.
    big.push(pod("big-user", Some("tenant-big/big-0,tenant-big/big-1,tenant-big/big-2,tenant-big/big-3")));
    let node = start_node_with(args, cleanup, 3, master, pods, json!({}), big, latency);
    out.insert("nads_40_1mb".into(), settle(&node));
    let ns = cleanup.netns_many("u", 1);
    let before = rss_kib(node.pid);
    let used = node.multus_pod(&args.shim, &cid("big"), &ns[0], "big-user");
    let right_after = rss_kib(node.pid);
    std::thread::sleep(Duration::from_secs(3));
    cleanup.drop_netns(&ns);
    out.insert(
        "pod_using_4_big_nads".into(),
        json!({"ok": used.is_ok(), "error": used.err(), "rss_before_kib": before, "rss_right_after_kib": right_after,
               "rss_idle_after_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );
    for i in 0..40 {
        let _ = node.mock.store().delete_kind(
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
            "tenant-big",
            &format!("big-{i}"),
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    out.insert(
        "nads_40_1mb_deleted".into(),
        json!({"rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );
    drop(node);
    Value::Object(out)
}

/// The memory-bounded section's rows.
fn memory_rows(m: &Value, rows: &mut Vec<Value>) {
    let rss = |p: &str| mb(f(m, &format!("{p}/rss_kib")) as u64);
    let peak = |p: &str| mb(f(m, &format!("{p}/hwm_kib")) as u64);
    let na = || "—".to_string();
    rows.push(row(
        "daemon RSS after start, 110 pods, no other NADs",
        na(),
        format!("{} (peak {})", rss("/no_nads"), peak("/no_nads")),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row(
        "daemon RSS after start, + 10,000 NADs of 1 KB in 1,000 namespaces",
        na(),
        format!("{} (peak {})", rss("/nads_10k_1kb"), peak("/nads_10k_1kb")),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row(
        "daemon ready, 10,000 NADs in the cluster",
        na(),
        format!("{:.0} ms", f(m, "/nads_10k_1kb/ready_ms")),
        na(),
        "≤ 1 s",
    ));
    rows.push(row(
        "daemon RSS after start, + 40 NADs of 1 MB in one namespace",
        na(),
        format!("{} (peak {})", rss("/nads_40_1mb"), peak("/nads_40_1mb")),
        na(),
        "≤ 20 MB",
    ));
    let u = &m["pod_using_4_big_nads"];
    rows.push(row(
        "ADD+DEL of a pod using 4 of the 1 MB NADs",
        na(),
        format!(
            "{}; RSS {} before, {} right after, {} 3 s later (peak {})",
            if u["ok"].as_bool() == Some(true) { "ok".to_string() } else { format!("failed: {}", u["error"]) },
            mb(f(u, "/rss_before_kib") as u64),
            mb(f(u, "/rss_right_after_kib") as u64),
            mb(f(u, "/rss_idle_after_kib") as u64),
            mb(f(u, "/hwm_kib") as u64)
        ),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row("daemon RSS after deleting the 40 NADs of 1 MB", na(), rss("/nads_40_1mb_deleted"), na(), "≤ 20 MB"));
    let s = &m["storm"];
    rows.push(row(
        &format!("{}-way storm on that node (ADD then DEL), then idle", f(s, "/pods")),
        na(),
        format!(
            "{} errors; RSS peak {}, {} right after, {} 3 s later",
            f(s, "/add_errors") + f(s, "/del_errors"),
            mb(f(s, "/daemon_peak_rss_kib") as u64),
            mb(f(s, "/daemon_rss_right_after_kib") as u64),
            mb(f(s, "/daemon_rss_idle_after_kib") as u64)
        ),
        na(),
        "≤ 20 MB",
    ));
    for (key, label) in [
        ("nad2_first_add", "ADD, +2 NADs, first use on the node"),
        ("nad2_next_add", "ADD, +2 NADs, again"),
        ("nad2_first_del", "DEL, +2 NADs"),
        ("plain_first_add", "ADD, cluster network only"),
        ("plain_first_del", "DEL, cluster network only"),
    ] {
        let r = &m["requests"][key];
        rows.push(row(
            &format!("API requests: {label}"),
            na(),
            format!(
                "{} ({} reads, {} status writes, {} events)",
                f(r, "/total"),
                f(r, "/reads"),
                f(r, "/status_writes"),
                f(r, "/events")
            ),
            na(),
            "no more than before",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Report

fn row(measure: &str, bare: String, multus: String, ratio: String, target: &str) -> Value {
    json!({"measure": measure, "bare": bare, "multus": multus, "ratio": ratio, "target": target})
}

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The throughput rows (both shapes).
fn throughput_rows(r: &Value, rows: &mut Vec<Value>) {
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let t = &r["throughput"][shape];
        rows.push(row(
            &format!("{}-way throughput, {label}", f(t, "/concurrency")),
            format!("{:.1} pods/s", f(t, "/bare_pods_per_s")),
            format!("{:.1} pods/s", f(t, "/multus_pods_per_s")),
            format!("{:.2}×", f(t, "/ratio")),
            "≥ 0.9×",
        ));
        rows.push(row(
            &format!("CPU per pod at {}-way, {label}", f(t, "/concurrency")),
            format!("{:.1} ms", f(t, "/cpu_per_pod_bare/total_ms")),
            format!("{:.1} ms", f(t, "/cpu_per_pod_multus/total_ms")),
            format!("{:.2}×", f(t, "/cpu_per_pod_multus/total_ms") / f(t, "/cpu_per_pod_bare/total_ms")),
            "—",
        ));
    }
}

fn table(r: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    if r["sequential"].is_null() && !r["memory_bounded"].is_null() {
        // `--only memory`
        memory_rows(&r["memory_bounded"], &mut rows);
        return rows;
    }
    if r["sequential"].is_null() && !r["throughput"].is_null() {
        // `--only throughput`
        throughput_rows(r, &mut rows);
        return rows;
    }
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let s = &r["sequential"][shape];
        rows.push(row(
            &format!("ADD+DEL, {label} (median)"),
            format!("{:.1} ms", f(s, "/bare_add_del/p50_ms")),
            format!("{:.1} ms", f(s, "/multus_add_del/p50_ms")),
            format!("{:.2}×", f(s, "/add_del_p50_ratio")),
            "≤ 1.10×",
        ));
    }
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let s = &r["sequential"][shape];
        rows.push(row(
            &format!("ADD only, {label} (median)"),
            format!("{:.1} ms", f(s, "/bare_add/p50_ms")),
            format!("{:.1} ms", f(s, "/multus_add/p50_ms")),
            format!("{:.2}× (+{:.1} ms)", f(s, "/add_p50_ratio"), f(s, "/add_p50_extra_ms")),
            "—",
        ));
    }
    throughput_rows(r, &mut rows);
    if let Some(storms) = r["storms"].as_array() {
        for s in storms {
            rows.push(row(
                &format!("{}-way storm (ADD then DEL)", f(s, "/pods")),
                "—".into(),
                format!(
                    "{} errors, daemon peak {}, {} 3 s later, ADDs in {:.1} s",
                    f(s, "/add_errors") + f(s, "/del_errors"),
                    mb(f(s, "/daemon_peak_rss_kib") as u64),
                    mb(f(s, "/daemon_rss_idle_after_kib") as u64),
                    f(s, "/add_s")
                ),
                "—".into(),
                "0 errors, ≤ 20 MB",
            ));
        }
    }
    let c = &r["shim_comparison"];
    if !c.is_null() {
        rows.push(row(
            "ADD+DEL, cluster network only, this shim vs --compare-shim (median)",
            format!("{:.1} ms", f(c, "/bare/add_del_p50_ms")),
            format!("{:.1} ms this, {:.1} ms other", f(c, "/this_shim/add_del_p50_ms"), f(c, "/other/add_del_p50_ms")),
            format!("{:.2}× this, {:.2}× other", f(c, "/add_del_p50_ratio_this"), f(c, "/add_del_p50_ratio_other")),
            "—",
        ));
    }
    rows.push(row("daemon idle RSS", "—".into(), mb(f(r, "/daemon/idle_rss_kib") as u64), "—".into(), "≤ 10 MB"));
    let g = &r["growth"];
    rows.push(row(
        &format!("daemon RSS growth over {} ADD/DEL cycles", f(g, "/cycles")),
        "—".into(),
        format!(
            "{:+} KiB ({:+.0} KiB per 1,000; {} errors)",
            f(g, "/growth_kib"),
            f(g, "/growth_kib_per_1000"),
            f(g, "/errors")
        ),
        "—".into(),
        "≤ 1 MB / 1,000",
    ));
    rows.push(row(
        "shim exec (VERSION, mean)",
        "—".into(),
        format!("{:.2} ms", f(r, "/shim/exec/mean_ms")),
        "—".into(),
        "≤ 2 ms",
    ));
    rows.push(row("shim peak RSS", "—".into(), mb(f(r, "/shim/peak_rss_kib") as u64), "—".into(), "≤ 3 MB"));
    if !r["memory_bounded"].is_null() {
        memory_rows(&r["memory_bounded"], &mut rows);
    }
    for shape in ["nad2", "nad4"] {
        let p = &r["parallel_delegates"][shape];
        if p.is_null() {
            continue;
        }
        rows.push(row(
            &format!("ADD with +{} NADs: parallelDelegates vs sequential (median)", f(p, "/nads")),
            format!("{:.1} ms (sequential daemon)", f(p, "/sequential_add_p50_ms")),
            format!("{:.1} ms (parallel daemon)", f(p, "/parallel_add_p50_ms")),
            format!("{:.2}×", f(p, "/add_p50_ratio")),
            "—",
        ));
    }
    rows
}

fn main() {
    let args = parse_args();
    for b in [&args.daemon, &args.shim] {
        if !b.exists() {
            eprintln!("bench: {} not found; build with `cargo xtask bench`", b.display());
            std::process::exit(2);
        }
    }
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    report.insert("binaries".into(), json!({"shim": args.shim, "daemon": args.daemon}));
    eprintln!("bench: shim exec ({})", args.shim.display());
    let shim = bench_shim_exec(&args.shim, 300);
    let shim_exec = f(&shim, "/exec/mean_ms");
    report.insert("shim".into(), shim);
    if !is_root() || !Path::new("/usr/lib/cni/macvlan").exists() {
        report.insert("skipped".into(), json!("needs root and /usr/lib/cni (containernetworking-plugins)"));
        return finish(&args, report, started);
    }
    let cleanup = Cleanup::default();
    let master = format!("mbm{}", std::process::id() % 100_000);
    // The macvlan NADs' master: a veth end (the dummy module may be missing in a container).
    let peer = format!("{master}p");
    assert!(ip(&["link", "add", &master, "type", "veth", "peer", "name", &peer]), "ip link add {master} type veth");
    cleanup.links.lock().unwrap().push(master.clone());
    assert!(ip(&["link", "set", &master, "up"]) && ip(&["link", "set", &peer, "up"]));
    let pods_per_shape = args.storms.iter().copied().max().unwrap_or(0).max(args.concurrency).max(1);
    if args.only.as_deref() == Some("memory") {
        report.insert("memory_bounded".into(), memory_bounded(&args, &cleanup, &master));
        return finish(&args, report, started);
    }
    if args.only.as_deref() == Some("storms") {
        let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
        let storms: Vec<Value> = args.storms.iter().map(|&n| storm(&args, &node, &cleanup, n)).collect();
        report.insert("storms".into(), Value::Array(storms));
        return finish(&args, report, started);
    }
    if args.only.as_deref() == Some("throughput") {
        let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
        let mut throughput_report = serde_json::Map::new();
        for (shape, nads) in [("plain", 0), ("nad2", 2)] {
            eprintln!("bench: {}-way throughput, {shape} ({} pods each side)", args.concurrency, args.pods);
            throughput_report.insert(shape.into(), throughput(&args, &node, &cleanup, shape, nads));
        }
        report.insert("throughput".into(), Value::Object(throughput_report));
        return finish(&args, report, started);
    }

    let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
    std::thread::sleep(Duration::from_secs(1));
    report.insert(
        "daemon".into(),
        json!({"ready_ms": round(node.ready_ms), "idle_rss_kib": rss_kib(node.pid), "hwm_after_start_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );

    let mut sequential_report = serde_json::Map::new();
    for (shape, nads) in [("plain", 0), ("nad2", 2)] {
        eprintln!("bench: sequential ADD+DEL, {shape} ({} rounds each side)", args.iterations);
        sequential_report.insert(shape.into(), sequential(&args, &node, &cleanup, shape, nads));
    }
    report.insert("sequential".into(), Value::Object(sequential_report));

    eprintln!("bench: profile of the fixed per-pod cost");
    report.insert("profile".into(), profile(&args, &node, &cleanup, shim_exec));

    if let Some(other) = &args.compare_shim {
        eprintln!("bench: this shim vs {}", other.display());
        report.insert("shim_comparison".into(), compare_shims(&args, other, &node, &cleanup));
    }

    eprintln!("bench: RSS growth over {} ADD/DEL cycles", args.cycles);
    report.insert("growth".into(), growth(&args, &node, &cleanup));

    let mut throughput_report = serde_json::Map::new();
    for (shape, nads) in [("plain", 0), ("nad2", 2)] {
        eprintln!("bench: {}-way throughput, {shape} ({} pods each side)", args.concurrency, args.pods);
        throughput_report.insert(shape.into(), throughput(&args, &node, &cleanup, shape, nads));
    }
    report.insert("throughput".into(), Value::Object(throughput_report));

    let mut storms = Vec::new();
    for &n in &args.storms {
        eprintln!("bench: {n}-way storm");
        storms.push(storm(&args, &node, &cleanup, n));
    }
    report.insert("storms".into(), Value::Array(storms));
    report.insert(
        "daemon_after".into(),
        json!({"rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );

    drop(node);

    // Two fresh daemons, alike but for the key, so that neither carries the load above.
    eprintln!("bench: parallelDelegates");
    let seq = start_node(&args, &cleanup, 1, &master, 1, json!({"parallelDelegates": false}));
    let par = start_node(&args, &cleanup, 2, &master, 1, json!({"parallelDelegates": true}));
    report.insert("parallel_delegates".into(), parallel_delegates(&args, &seq, &par, &cleanup));
    drop((seq, par));

    report.insert("memory_bounded".into(), memory_bounded(&args, &cleanup, &master));
    finish(&args, report, started);
}

fn finish(args: &Args, mut report: serde_json::Map<String, Value>, started: Instant) {
    report.insert("elapsed_s".into(), json!(round(started.elapsed().as_secs_f64())));
    let mut value = Value::Object(report);
    let rows = table(&value);
    value["table"] = Value::Array(rows);
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    if let Some(out) = &args.out {
        let _ = std::fs::write(out, serde_json::to_vec_pretty(&value).unwrap_or_default());
    }
}
