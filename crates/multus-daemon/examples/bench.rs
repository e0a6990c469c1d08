//! Thick-plugin benchmark: what a node pays for multus-rs. Run through `cargo xtask bench`
//! (release binaries, static shim); it measures, it does not assert.
//!
//! - shim: wall time and peak RSS of one `multus-shim` execution (VERSION, no daemon);
//! - daemon: time from exec to `/readyz` 200, RSS idle and after load;
//! - overhead: ADD+DEL of a pod whose only network is a bridge + host-local conflist, run
//!   directly through the cni runtime (the bare delegates) and through shim + daemon (root and
//!   Debian's plugins needed; skipped with a reason otherwise);
//! - throughput: 8 concurrent runtimes doing ADD+DEL of pods with three networks (fake-cni).
//!
//! Arguments: `--bins DIR` (multus-daemon, multus-shim, fake-cni), `--shim PATH` (e.g. the
//! static build), `--iterations N`, `--out FILE` (JSON report).

use kube_mock::{MockApiServer, MockConfig};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Args {
    bins: PathBuf,
    shim: PathBuf,
    daemon: PathBuf,
    iterations: usize,
    out: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut bins = PathBuf::from("target/release");
    let mut shim = None;
    let mut daemon = None;
    let mut iterations = 30;
    let mut out = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bins" => bins = args.next().map(PathBuf::from).unwrap_or(bins),
            "--shim" => shim = args.next().map(PathBuf::from),
            "--daemon" => daemon = args.next().map(PathBuf::from),
            "--iterations" => iterations = args.next().and_then(|n| n.parse().ok()).unwrap_or(iterations),
            "--out" => out = args.next().map(PathBuf::from),
            // cargo bench passes --bench; ignore unknown flags.
            _ => {}
        }
    }
    // Symlinks made to these binaries must not depend on the working directory.
    let bins = std::fs::canonicalize(&bins).unwrap_or(bins);
    let shim = shim.map(|s| std::fs::canonicalize(&s).unwrap_or(s)).unwrap_or_else(|| bins.join("multus-shim"));
    let daemon = daemon.map(|s| std::fs::canonicalize(&s).unwrap_or(s)).unwrap_or_else(|| bins.join("multus-daemon"));
    Args { bins, shim, daemon, iterations, out }
}

fn stats(mut samples: Vec<f64>) -> Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let pct = |p: f64| samples.get(((n as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    json!({"n": samples.len(), "mean_ms": round(mean), "p50_ms": round(pct(0.5)), "p99_ms": round(pct(0.99)), "max_ms": round(pct(1.0))})
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

struct Cleanup {
    netns: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
    }
}

fn shim_run(shim: &Path, env: &[(&str, String)], stdin: &[u8]) -> (i32, String) {
    let mut cmd = Command::new(shim);
    cmd.env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn shim");
    let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
    let out = child.wait_with_output().expect("shim output");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
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

struct Node {
    dir: tempfile::TempDir,
    _mock: MockApiServer,
    cleanup: Cleanup,
    daemon_pid: u32,
    ready_ms: f64,
}

impl Node {
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }
}

/// kube-mock + multus-daemon (kubeconfig mode) with `primary` as the cluster network.
fn start_node(bins: &Path, daemon: &Path, seed: Vec<Value>, primary: impl FnOnce(&Path) -> Value) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["net.d", "cni", "run", "bin", "ipam"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    // In-cluster mode over TLS with a token, as the DaemonSet runs.
    let mock = MockApiServer::start_blocking(MockConfig {
        seed,
        tls: true,
        token: Some("bench".into()),
        ..Default::default()
    })
    .expect("kube-mock");
    mock.write_in_cluster_dir(&dir.path().join("sa")).unwrap();
    for p in ["bridge", "host-local"] {
        let _ = std::os::unix::fs::symlink(format!("/usr/lib/cni/{p}"), dir.path().join("bin").join(p));
    }
    let _ = std::os::unix::fs::symlink(bins.join("fake-cni"), dir.path().join("bin/fake-cni"));
    let conf = primary(dir.path());
    std::fs::write(dir.path().join("net.d/10-primary.conflist"), conf.to_string()).unwrap();
    let p = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
    let daemon_config = json!({"cniVersion": "1.0.0", "binDir": p("bin"), "cniDir": p("cni"), "cniConfigDir": p("net.d"),
        "multusAutoconfigDir": p("net.d"), "socketDir": p("run"), "daemonSocketDir": p("run"), "logLevel": "error"});
    std::fs::write(dir.path().join("daemon-config.json"), daemon_config.to_string()).unwrap();
    let started = Instant::now();
    let child = Command::new(daemon)
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
    let pid = child.id();
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
    Node {
        dir,
        _mock: mock,
        cleanup: Cleanup { netns: vec![], links: vec![], children: vec![child] },
        daemon_pid: pid,
        ready_ms,
    }
}

fn pod(name: &str, uid: &str, networks: Option<&str>) -> Value {
    let mut ann = serde_json::Map::new();
    if let Some(n) = networks {
        ann.insert("k8s.v1.cni.cncf.io/networks".into(), json!(n));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": uid, "annotations": ann},
           "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}})
}

fn nad(name: &str, config: &Value) -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"config": config.to_string()}})
}

fn cni_env(cmd: &str, cid: &str, netns: &str, pod: &str, uid: &str, path: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", cmd.into()),
        ("CNI_CONTAINERID", cid.into()),
        ("CNI_NETNS", netns.into()),
        ("CNI_IFNAME", "eth0".into()),
        (
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}"
            ),
        ),
        ("CNI_PATH", path.into()),
    ]
}

fn netns_add(cleanup: &mut Cleanup, name: &str) -> String {
    let out = Command::new("ip").args(["netns", "add", name]).output().expect("ip netns add");
    assert!(out.status.success(), "ip netns add {name}");
    cleanup.netns.push(name.to_string());
    format!("/var/run/netns/{name}")
}

fn netns_del(cleanup: &mut Cleanup, name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    cleanup.netns.retain(|n| n != name);
}

/// ADD+DEL of a bridge pod: bare delegates vs shim + daemon.
fn bench_overhead(args: &Args) -> Value {
    if !is_root() || !Path::new("/usr/lib/cni/bridge").exists() {
        return json!({"skipped": "needs root and /usr/lib/cni (containernetworking-plugins)"});
    }
    let n = args.iterations;
    let bridge = format!("mbb{}", std::process::id() % 100_000);
    let seed: Vec<Value> = (0..n).map(|i| pod(&format!("bench-{i}"), &format!("uid-{i}"), None)).collect();
    let primary = |dir: &Path| {
        json!({"cniVersion": "1.0.0", "name": "bench-net", "plugins": [{"type": "bridge", "bridge": bridge,
            "ipam": {"type": "host-local", "subnet": "10.231.0.0/16", "dataDir": dir.join("ipam").to_string_lossy()}}]})
    };
    let mut node = start_node(&args.bins, &args.daemon, seed, primary);
    node.cleanup.links.push(bridge.clone());
    let list_bytes = std::fs::read(node.dir.path().join("net.d/10-primary.conflist")).unwrap();
    let list = cni::NetConfList::from_bytes(&list_bytes).unwrap();
    let runtime = cni::runtime::CniRuntime::new(
        vec![node.dir.path().join("bin")],
        node.dir.path().join("bare-cache"),
        cni::exec::RawExec::new(),
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stdin = std::fs::read(node.dir.path().join("net.d/00-multus.conf")).unwrap();
    let (mut bare, mut thick) = (Vec::new(), Vec::new());
    for i in 0..n {
        // Bare delegates, as a libcni runtime runs them.
        let ns = format!("mbn{}b{i}", std::process::id() % 100_000);
        let path = netns_add(&mut node.cleanup, &ns);
        let conf = cni::runtime::RuntimeConf::new(format!("bare-{i}"), &path, "eth0");
        let t = Instant::now();
        rt.block_on(runtime.add_network_list(&list, &conf)).expect("bare ADD");
        rt.block_on(runtime.del_network_list(&list, &conf)).expect("bare DEL");
        bare.push(ms(t.elapsed()));
        netns_del(&mut node.cleanup, &ns);

        // The same network through multus-shim and multus-daemon.
        let ns = format!("mbn{}t{i}", std::process::id() % 100_000);
        let path = netns_add(&mut node.cleanup, &ns);
        let (pod_name, uid, cid) = (format!("bench-{i}"), format!("uid-{i}"), format!("thick-{i}"));
        let t = Instant::now();
        let (code, out) = shim_run(&args.shim, &cni_env("ADD", &cid, &path, &pod_name, &uid, &node.p("bin")), &stdin);
        assert_eq!(code, 0, "ADD through multus failed: {out}");
        let (code, _) = shim_run(&args.shim, &cni_env("DEL", &cid, &path, &pod_name, &uid, &node.p("bin")), &stdin);
        assert_eq!(code, 0);
        thick.push(ms(t.elapsed()));
        netns_del(&mut node.cleanup, &ns);
    }
    let bare_mean = bare.iter().sum::<f64>() / bare.len().max(1) as f64;
    let thick_mean = thick.iter().sum::<f64>() / thick.len().max(1) as f64;
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (bare_p50, thick_p50) = (median(&bare), median(&thick));
    let rss_after = rss_kib(node.daemon_pid);
    json!({"bare_add_del": stats(bare), "multus_add_del": stats(thick),
           "overhead_ms": round(thick_mean - bare_mean), "overhead_pct": round((thick_mean - bare_mean) / bare_mean * 100.0),
           "overhead_p50_ms": round(thick_p50 - bare_p50), "overhead_p50_pct": round((thick_p50 - bare_p50) / bare_p50 * 100.0),
           "daemon_rss_kib_after": rss_after})
}

/// Daemon start, idle memory, and 8-way throughput with three fake networks per pod.
fn bench_daemon(args: &Args) -> Value {
    let pods = args.iterations * 4;
    let fake = |name: &str, dir: &Path| json!({"cniVersion": "1.0.0", "name": name, "type": "fake-cni", "fake": {"subnet": "10.99.0.0/16"}, "x-dir": dir.to_string_lossy()});
    let tmp = tempfile::tempdir().unwrap();
    let mut seed: Vec<Value> =
        (0..pods).map(|i| pod(&format!("p-{i}"), &format!("u-{i}"), Some("net-a,net-b"))).collect();
    seed.push(nad("net-a", &fake("net-a", tmp.path())));
    seed.push(nad("net-b", &fake("net-b", tmp.path())));
    let node = start_node(
        &args.bins,
        &args.daemon,
        seed,
        |_| json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [{"type": "fake-cni", "fake": {"subnet": "10.98.0.0/16"}}]}),
    );
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss_kib(node.daemon_pid);
    if !is_root() {
        return json!({"ready_ms": round(node.ready_ms), "idle_rss_kib": idle,
                      "throughput": {"skipped": "needs root (the daemon enters each pod's netns)"}});
    }
    let mut cleanup = Cleanup { netns: vec![], links: vec![], children: vec![] };
    let paths: Vec<String> =
        (0..pods).map(|i| netns_add(&mut cleanup, &format!("mbd{}x{i}", std::process::id() % 100_000))).collect();
    let stdin = Arc::new(std::fs::read(node.dir.path().join("net.d/00-multus.conf")).unwrap());
    let next = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(paths);
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (next, paths, stdin, shim, bin) =
                (next.clone(), paths.clone(), stdin.clone(), args.shim.clone(), node.p("bin"));
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= paths.len() {
                        return lat;
                    }
                    let (name, uid, cid) = (format!("p-{i}"), format!("u-{i}"), format!("c-{i}"));
                    let t = Instant::now();
                    let (code, out) = shim_run(&shim, &cni_env("ADD", &cid, &paths[i], &name, &uid, &bin), &stdin);
                    assert_eq!(code, 0, "{out}");
                    lat.push(ms(t.elapsed()));
                    let (code, _) = shim_run(&shim, &cni_env("DEL", &cid, &paths[i], &name, &uid, &bin), &stdin);
                    assert_eq!(code, 0);
                }
            })
        })
        .collect();
    let mut add_latency = Vec::new();
    for w in workers {
        add_latency.extend(w.join().expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let loaded = rss_kib(node.daemon_pid);
    json!({"ready_ms": round(node.ready_ms), "idle_rss_kib": idle, "rss_after_load_kib": loaded,
           "throughput": {"pods": pods, "concurrency": 8, "networks_per_pod": 3,
                          "pods_per_s": round(pods as f64 / elapsed), "add_latency": stats(add_latency)}})
}

fn main() {
    let args = parse_args();
    for b in ["multus-daemon", "fake-cni"] {
        if !args.bins.join(b).exists() {
            eprintln!(
                "bench: {} not found; build with `cargo build --release --workspace --bins`",
                args.bins.join(b).display()
            );
            std::process::exit(2);
        }
    }
    eprintln!("bench: shim exec ({})", args.shim.display());
    let shim = bench_shim_exec(&args.shim, 300);
    eprintln!("bench: daemon start, idle memory, throughput");
    let daemon = bench_daemon(&args);
    eprintln!("bench: ADD+DEL overhead over the bare delegates");
    let overhead = bench_overhead(&args);
    let report = json!({"binaries": {"shim": args.shim, "daemon": args.daemon}, "shim": shim, "daemon": daemon, "overhead": overhead,
        "reference_go_v4_2_4": {"shim_exec_ms": 17, "shim_rss_mib": 27, "daemon_rss_mib": "42-50", "add_del_ms_bridge": 160, "bare_bridge_add_del_ms": 60, "pods_per_s_8way": "12-20"}});
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    if let Some(out) = &args.out {
        let _ = std::fs::write(out, serde_json::to_vec_pretty(&report).unwrap_or_default());
    }
}
