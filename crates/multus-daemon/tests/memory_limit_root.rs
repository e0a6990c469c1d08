//! The daemon under the DaemonSet's memory limit (issue 22): the limit read from the shipped
//! manifest, the daemon in a memory cgroup of that size and every delegate it runs inside the
//! same cgroup (as in the DaemonSet's container), then a 200-way ADD storm with Debian's bridge
//! and host-local, and the big-NAD cases (40 NADs of 1 MB selected by pods, then deleted). No
//! OOM kill, no failed ADD or DEL; the cgroup's peak is printed. cgroup v1 (`memory.limit_in_bytes`,
//! `memory.max_usage_in_bytes`, `memory.oom_control`) or v2 (`memory.max`, `memory.peak`,
//! `memory.events`). The daemon runs with the manifest's `connectionLimit` too. Needs root:
//! #[ignore]d, run by CI with --include-ignored.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_node::*;

/// The daemon container's memory limit in the shipped manifest (`limits:` → `memory:` after
/// `- name: kube-multus`).
fn manifest_limit() -> u64 {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/multus-daemonset-thick-plugin.yml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let container = text.split("- name: kube-multus\n").nth(1).expect("the daemon container");
    let limits = container.split("limits:").nth(1).expect("its limits");
    let memory = limits.lines().find_map(|l| l.trim().strip_prefix("memory:")).expect("a memory limit").trim();
    let mi: u64 = memory.strip_suffix("Mi").and_then(|n| n.parse().ok()).expect("a limit in Mi");
    mi << 20
}

/// The `connectionLimit` of the shipped manifest's daemon config, if it sets one.
fn manifest_connection_limit() -> Option<u64> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/multus-daemonset-thick-plugin.yml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let at = text.find("\"connectionLimit\":")?;
    let value = text[at..].split(':').nth(1)?.trim_start();
    value.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// A memory cgroup made for the test, removed on drop (after the processes in it are gone).
struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// Why it cannot be made here, or the cgroup.
    fn create(limit: u64) -> Result<Self, String> {
        let name = unique("multus-memtest-");
        let v1 = Path::new("/sys/fs/cgroup/memory");
        if v1.join("memory.limit_in_bytes").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let cg = Self { dir, v2: false };
            std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string())
                .map_err(|e| format!("cannot set the limit: {e}"))?;
            return Ok(cg);
        }
        let root = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
            let dir = root.join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let cg = Self { dir, v2: true };
            std::fs::write(cg.dir.join("memory.max"), limit.to_string())
                .map_err(|e| format!("cannot set the limit: {e}"))?;
            let _ = std::fs::write(cg.dir.join("memory.swap.max"), "0");
            return Ok(cg);
        }
        Err("needs a writable memory cgroup (v1 memory controller or v2 with memory)".into())
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn keyed(&self, file: &str, key: &str) -> u64 {
        self.read(file).lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    }

    /// The most the cgroup (daemon and delegates) ever used, in bytes.
    fn peak(&self) -> u64 {
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        self.read(file).trim().parse().unwrap_or(0)
    }

    fn oom_kills(&self) -> u64 {
        if self.v2 { self.keyed("memory.events", "oom_kill ") } else { self.keyed("memory.oom_control", "oom_kill ") }
    }

    /// Anonymous memory now (what cannot be reclaimed without swap; page cache is).
    fn anon(&self) -> u64 {
        if self.v2 { self.keyed("memory.stat", "anon ") } else { self.keyed("memory.stat", "total_rss ") }
    }

    fn procs(&self) -> usize {
        self.read("cgroup.procs").lines().count()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.procs() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The daemon's peak and current RSS.
fn daemon_memory(thick: &Node) -> String {
    let pid = thick.daemon_pid().unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ")
    };
    format!("{}, {}, {}, {}", field("VmHWM:"), field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

fn skip() -> Option<String> {
    root_skip_reason()
}

/// Run `op` for every sandbox at once (one thread each), as a kubelet starting a node's pods.
fn storm(thick: &Node, command: &str, sandboxes: &[PodSandbox]) -> Vec<ShimRun> {
    std::thread::scope(|s| {
        let runs: Vec<_> = sandboxes.iter().map(|p| s.spawn(move || thick.shim(command, p))).collect();
        runs.into_iter().map(|r| r.join().expect("shim thread")).collect()
    })
}

#[test]
#[ignore = "needs root (memory cgroup, network namespaces), iproute2 and /usr/lib/cni"]
fn the_daemon_and_its_delegates_stay_inside_the_manifests_memory_limit() {
    if !require(skip()) {
        return;
    }
    // MULTUS_MEMTEST_LIMIT_MIB: another limit, to measure (e.g. a large one shows the peaks).
    let limit = std::env::var("MULTUS_MEMTEST_LIMIT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(manifest_limit, |mi| mi << 20);
    let cgroup = match MemoryCgroup::create(limit) {
        Ok(c) => c,
        Err(why) => {
            require(Some(why));
            return;
        }
    };
    let mut thick = Node::new(vec![]);
    let bridge = unique("mmb");
    thick.cleanup.record_link(&bridge);
    thick.install_plugins(&["bridge", "host-local"], &["fake-cni"]);
    thick.write_primary(
        "10-cluster.conflist",
        &json!({"cniVersion": "1.0.0", "name": "mem-cluster-net", "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": false, "ipMasq": false,
             "ipam": thick.ipam("10.230.0.0/16")}]}),
    );
    thick.daemon_config["logLevel"] = json!("error");
    // The manifest's connectionLimit; MULTUS_MEMTEST_CONNECTION_LIMIT another one (`none`: unset).
    let connection_limit = match std::env::var("MULTUS_MEMTEST_CONNECTION_LIMIT") {
        Ok(l) if l == "none" => None,
        Ok(l) => Some(l.parse::<u64>().expect("MULTUS_MEMTEST_CONNECTION_LIMIT: a number or none")),
        Err(_) => manifest_connection_limit(),
    };
    if let Some(l) = connection_limit {
        thick.daemon_config["connectionLimit"] = json!(l);
    }
    eprintln!("connectionLimit: {connection_limit:?}");
    thick.daemon_cgroup = Some(cgroup.dir.clone());
    thick.start_daemon();
    eprintln!("daemon at start: {}", daemon_memory(&thick));
    // The cgroup's peak includes page cache, which the kernel reclaims at the limit; sample the
    // anonymous memory (daemon and delegates) for the figure that matters.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let anon_peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (sampling, anon_peak, cg) =
            (sampling.clone(), anon_peak.clone(), MemoryCgroup { dir: cgroup.dir.clone(), v2: cgroup.v2 });
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                anon_peak.fetch_max(cg.anon(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            std::mem::forget(cg); // the test's own MemoryCgroup removes the directory
        })
    };

    // 1. A 200-way ADD storm (a node rebooting with its pods), then as many DELs.
    const PODS: usize = 200;
    let mut sandboxes = Vec::with_capacity(PODS);
    for i in 0..PODS {
        let (name, uid) = (format!("storm-{i}"), format!("22000000-0000-0000-0000-{i:012}"));
        thick.mock.store().create(pod("default", &name, &uid, None)).expect("seed");
        sandboxes.push(thick.sandbox("default", &name, &uid));
    }
    let started = Instant::now();
    let adds = storm(&thick, "ADD", &sandboxes);
    let add_time = started.elapsed();
    let failed: Vec<_> = adds.iter().filter(|r| r.code != 0).collect();
    assert!(
        failed.is_empty(),
        "{} of {PODS} ADDs failed (OOM kills: {}), first: {:?}\n{}",
        failed.len(),
        cgroup.oom_kills(),
        failed[0],
        thick.daemon_log()
    );
    assert_eq!(thick.leases().len(), PODS);
    let dels = storm(&thick, "DEL", &sandboxes);
    assert!(dels.iter().all(|r| r.code == 0));
    assert_eq!(thick.leases().len(), 0, "every lease released");
    let storm_peak = cgroup.peak();
    let storm_anon = anon_peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("daemon after the storm: {}", daemon_memory(&thick));
    assert_eq!(cgroup.oom_kills(), 0, "OOM kill in the storm (peak {} MiB)", storm_peak >> 20);

    // 2. Big NADs: 40 of 1 MB in one namespace, 20 pods selecting two each, then all deleted.
    let pad = "x".repeat(1_000_000);
    for i in 0..40 {
        let config = json!({"cniVersion": "1.0.0", "name": format!("big-{i}"), "type": "fake-cni",
            "fake": {"subnet": "10.231.0.0/16"}, "x-padding": pad});
        thick.mock.store().create(nad("tenant", &format!("big-{i}"), &config)).expect("a 1 MB NAD");
    }
    let mut big_pods = Vec::new();
    for i in 0..20 {
        let (name, uid) = (format!("big-{i}"), format!("22000000-0000-0000-0001-{i:012}"));
        let selection = format!("big-{},big-{}", 2 * i, 2 * i + 1);
        thick.mock.store().create(pod("tenant", &name, &uid, Some(&selection))).expect("seed");
        big_pods.push(thick.sandbox("tenant", &name, &uid));
    }
    let adds = storm(&thick, "ADD", &big_pods);
    let failed: Vec<_> = adds.iter().filter(|r| r.code != 0).collect();
    assert!(failed.is_empty(), "{} big-NAD ADDs failed, first: {:?}", failed.len(), failed.first());
    eprintln!("daemon after the big-NAD ADDs: {}", daemon_memory(&thick));
    assert!(storm(&thick, "DEL", &big_pods).iter().all(|r| r.code == 0));
    for i in 0..40 {
        thick
            .mock
            .store()
            .delete_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "tenant", &format!("big-{i}"))
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let peak = cgroup.peak();
    eprintln!("daemon after the big NADs were deleted: {}", daemon_memory(&thick));
    assert_eq!(cgroup.oom_kills(), 0, "OOM kill with the big NADs (peak {} MiB)", peak >> 20);
    assert!(thick.ready(), "the daemon is alive and ready:\n{}", thick.daemon_log());
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let mib = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "memory limit {} MiB: {PODS}-way storm ({add_time:?} for the ADDs): anonymous peak {:.1} MiB, cgroup peak \
         {:.1} MiB with page cache; with the big NADs: anonymous peak {:.1} MiB, cgroup peak {:.1} MiB; 0 OOM kills",
        limit >> 20,
        mib(storm_anon),
        mib(storm_peak),
        mib(anon_peak.load(std::sync::atomic::Ordering::Relaxed)),
        mib(peak)
    );
    thick.stop_daemon();
    drop(thick);
    drop(cgroup);
}
