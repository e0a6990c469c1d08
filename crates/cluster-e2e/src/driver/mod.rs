//! The host side: build the image, start the cluster, and run the three scenarios one after the
//! other on the same cluster, with the load generator on every node:
//!
//! 1. **rolling upgrade**: every node starts on the "old" daemon, with pods the Go thick plugin
//!    attached (its cache files, [`crate::gocache`]); the daemon is replaced node by node under
//!    load; then every pod the previous version attached is deleted;
//! 2. **node loss**: a node's container is killed mid-ADDs; its pods are deleted from the API
//!    while it is down; it comes back with the same disk and its daemon reclaims what they left;
//! 3. **API partition**: a node is cut off the API server's network while pods are deleted on it;
//!    then it is reconnected and the requests it makes while recovering are counted.
//!
//! Leases and caches are checked against the pods that are live after each scenario, and at the
//! end, with every pod deleted, every node must hold nothing.

pub mod cluster;
pub mod image;
pub mod load;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::plan::{self, Generation, PodRef, node_paths};
use crate::report::{self, AddedBy, RollFigures, Window};
use cluster::{Cluster, Node};
use load::{LivePod, Shared, lock};

#[derive(Debug, Clone)]
pub struct Settings {
    pub nodes: usize,
    pub bin_dir: PathBuf,
    pub plugin_dir: PathBuf,
    pub out: PathBuf,
    pub tag: String,
    /// Pods kept live per node by the load generator.
    pub per_node: usize,
    /// Pods per node attached "by Go" before the roll.
    pub seeded_per_node: usize,
    pub partition_seconds: u64,
    /// Seconds of load between the steps of a scenario.
    pub settle_seconds: u64,
}

/// What a node holds that no live pod explains.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Leftovers {
    pub leases: usize,
    pub caches: usize,
    pub results: usize,
    pub netns: usize,
    /// The container IDs the leftovers belong to.
    pub containers: std::collections::BTreeSet<String>,
    pub detail: Vec<String>,
}

impl Leftovers {
    pub fn total(&self) -> usize {
        self.leases + self.caches + self.results + self.netns
    }

    /// Compare a node's `state` with the container IDs of its live pods.
    pub fn of(state: &Value, live: &std::collections::BTreeSet<String>) -> Self {
        let mut l = Leftovers::default();
        let strings = |key: &str| -> Vec<String> {
            state[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        for lease in state["leases"].as_array().into_iter().flatten() {
            let holder = lease["containerId"].as_str().unwrap_or_default();
            if !live.contains(holder) {
                l.leases += 1;
                l.containers.insert(holder.to_string());
                l.detail.push(format!(
                    "lease {}/{} of {holder}",
                    lease["network"].as_str().unwrap_or(""),
                    lease["ip"].as_str().unwrap_or("")
                ));
            }
        }
        for cache in strings("caches") {
            if !live.contains(&cache) {
                l.caches += 1;
                l.containers.insert(cache.clone());
                l.detail.push(format!("cache {cache}"));
            }
        }
        for result in strings("results") {
            if !live.iter().any(|id| result.contains(id.as_str())) {
                l.results += 1;
                l.detail.push(format!("result cache {result}"));
            }
        }
        let live_netns: Vec<String> = live.iter().map(|id| format!("cni-{id}")).collect();
        for ns in strings("netns") {
            if !live_netns.contains(&ns) {
                l.netns += 1;
                l.detail.push(format!("netns {ns}"));
            }
        }
        l.detail.truncate(20);
        l
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollReport {
    pub nodes: usize,
    pub go_seeded_pods: usize,
    pub figures: RollFigures,
    pub leftovers: Leftovers,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLossReport {
    pub node: String,
    /// ADDs in flight on the node when it was killed (they fail: the node is gone).
    pub adds_in_flight_lost: usize,
    pub dead_pods: usize,
    /// Calls on the other nodes that failed while it was down (goal 0).
    pub failed_elsewhere: usize,
    pub calls_elsewhere: usize,
    /// What its disk held for the dead pods when it came back, before the daemon started.
    pub left_at_boot: Leftovers,
    /// Milliseconds from the daemon's start until the dead pods' leftovers were gone.
    pub reclaimed_ms: Option<u64>,
    /// The runtime's GC right after the daemon started (valid attachments: none).
    pub gc_ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_error: Option<String>,
    /// Of the sandboxes left at boot, how many the daemon's log says the orphan reconciler
    /// removed, and how many GC did.
    pub reclaimed_by_reconciler: usize,
    pub reclaimed_by_gc: usize,
    pub left_after: Leftovers,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionReport {
    pub node: String,
    pub seconds: u64,
    pub dels: usize,
    pub dels_failed: usize,
    pub longest_del_ms: u64,
    pub failed_elsewhere: usize,
    /// From reconnecting until an ADD on the node succeeded.
    pub recovered_ms: Option<u64>,
    /// From reconnecting until the node's pod watch delivered a new pod again (its ADD made no
    /// `get pods`).
    pub watch_current_ms: Option<u64>,
    /// The watches the node had open before the cut (`watch pods`, …), and those it made again
    /// after reconnecting (the others went on on their connections).
    pub watched: Vec<String>,
    pub watches_made_again: Vec<String>,
    /// Requests the API server received per node from reconnecting until the watch was current
    /// (at least 30 s), and the cut-off node's own, per request.
    pub recovery_window_seconds: u64,
    pub requests_by_node: std::collections::BTreeMap<String, u64>,
    pub requests_of_node: Value,
    pub leftovers: Leftovers,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub roll: RollReport,
    pub node_loss: Option<NodeLossReport>,
    pub partition: Option<PartitionReport>,
    /// Every node after every pod was deleted.
    pub final_leftovers: std::collections::BTreeMap<String, Leftovers>,
    pub failures: Vec<String>,
}

impl Report {
    /// The goals; each miss is a line.
    pub fn judge(&mut self) {
        let mut f = Vec::new();
        let r = &self.roll;
        if r.figures.adds_failed_outside_restart > 0 {
            f.push(format!(
                "rolling upgrade: {} ADDs failed outside the restart windows",
                r.figures.adds_failed_outside_restart
            ));
        }
        if r.figures.dels_of_previous_failed > 0 {
            f.push(format!(
                "rolling upgrade: {} DELs of the previous version's pods failed",
                r.figures.dels_of_previous_failed
            ));
        }
        if r.leftovers.total() > 0 {
            f.push(format!("rolling upgrade: leftovers {:?}", r.leftovers));
        }
        if let Some(n) = &self.node_loss {
            if n.failed_elsewhere > 0 {
                f.push(format!("node loss: {} calls failed on the other nodes", n.failed_elsewhere));
            }
            if n.left_after.total() > 0 {
                f.push(format!("node loss: {} not reclaimed: {:?}", n.node, n.left_after));
            }
            if !n.gc_ok {
                f.push(format!("node loss: the runtime's GC failed: {}", n.gc_error.as_deref().unwrap_or("")));
            }
        }
        if let Some(p) = &self.partition {
            if p.dels_failed > 0 {
                f.push(format!("partition: {} DELs failed on the cut-off node", p.dels_failed));
            }
            if p.failed_elsewhere > 0 {
                f.push(format!("partition: {} calls failed on the other nodes", p.failed_elsewhere));
            }
            if p.recovered_ms.is_none() {
                f.push(format!("partition: {} did not recover", p.node));
            }
            if p.watch_current_ms.is_none() {
                f.push(format!("partition: {}'s pod watch did not catch up within 150 s", p.node));
            }
            if p.leftovers.total() > 0 {
                f.push(format!("partition: leftovers {:?}", p.leftovers));
            }
        }
        for (node, l) in &self.final_leftovers {
            if l.total() > 0 {
                f.push(format!("{node} holds {l:?} with every pod deleted"));
            }
        }
        self.failures = f;
    }
}

struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(shared: &Arc<Shared>, cluster: &Cluster, per_node: usize) -> Self {
        shared.stop.store(false, Ordering::SeqCst);
        let tasks = cluster
            .nodes
            .iter()
            .map(|n| tokio::spawn(load::run_node(shared.clone(), cluster.api.clone(), n.clone(), per_node)))
            .collect();
        Self { shared: shared.clone(), tasks }
    }

    async fn stop(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn leftovers(node: &Node, shared: &Shared) -> Result<Leftovers> {
    Ok(Leftovers::of(&node.state().await?, &shared.live_ids(&node.name)))
}

async fn sum_leftovers(cluster: &Cluster, shared: &Shared) -> Result<Leftovers> {
    let mut all = Leftovers::default();
    for n in &cluster.nodes {
        let l = leftovers(n, shared).await?;
        all.leases += l.leases;
        all.caches += l.caches;
        all.results += l.results;
        all.netns += l.netns;
        all.containers.extend(l.containers);
        all.detail.extend(l.detail.into_iter().map(|d| format!("{}: {d}", n.name)));
    }
    Ok(all)
}

fn say(shared: &Shared, what: &str) {
    eprintln!("[{:>7.1}s] {what}", shared.now_ms() as f64 / 1000.0);
}

/// The whole run; the report, judged.
pub async fn run(settings: &Settings) -> Result<Report> {
    std::fs::create_dir_all(&settings.out)?;
    let context = settings.out.join("image");
    image::write_context(&context, &settings.bin_dir, &settings.plugin_dir)?;
    image::build(&context, &settings.tag)?;
    let run_name = format!("mcl{}", std::process::id());
    let cluster = Cluster::start(&settings.tag, settings.nodes, &run_name).await?;
    let shared = Shared::new();
    say(&shared, &format!("{} nodes up on the old daemon", cluster.nodes.len()));
    let result = scenarios(&cluster, &shared, settings).await;
    for n in &cluster.nodes {
        for (path, name) in
            [(node_paths::LOG, "multus-daemon.log"), (node_paths::STDERR_LOG, "multus-daemon.stderr.log")]
        {
            let mut log = Vec::new();
            if n.container.copy_file_from(path, &mut log).await.is_ok() {
                let _ = std::fs::write(settings.out.join(format!("{}-{name}", n.name)), log);
            }
        }
    }
    let mut report = result?;
    report.judge();
    std::fs::write(settings.out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

async fn scenarios(cluster: &Cluster, shared: &Arc<Shared>, s: &Settings) -> Result<Report> {
    let mut report = Report::default();
    for n in &cluster.nodes {
        lock(&shared.generation).insert(n.name.clone(), Generation::Old);
    }

    // --- What the Go pair left: pods attached by it on every node.
    for n in &cluster.nodes {
        for _ in 0..s.seeded_per_node {
            let pod = PodRef::new(&n.name, "go", shared.next_seq());
            cluster.api.create_pod(&pod).await?;
            n.agent(&["seed-go", "--name", &pod.name, "--uid", &pod.uid, "--container-id", &pod.container_id]).await?;
            shared.push_live(&n.name, LivePod { pod, added_by: AddedBy::Go });
        }
    }
    report.roll.go_seeded_pods = s.seeded_per_node * cluster.nodes.len();
    report.roll.nodes = cluster.nodes.len();

    // --- 1. Rolling upgrade under load.
    let settle = Duration::from_secs(s.settle_seconds);
    let mut restarts = Vec::new();
    let load = Load::start(shared, cluster, s.per_node);
    tokio::time::sleep(settle).await;
    for n in &cluster.nodes {
        say(shared, &format!("rolling {}", n.name));
        let from_ms = shared.now_ms();
        n.agent(&["daemon-stop"]).await?;
        n.boot(Generation::New).await?;
        lock(&shared.generation).insert(n.name.clone(), Generation::New);
        restarts.push(Window { node: n.name.clone(), from_ms, to_ms: shared.now_ms() });
        tokio::time::sleep(settle).await;
    }
    load.stop().await;
    // Every pod the previous version attached goes now.
    for n in &cluster.nodes {
        let previous: Vec<LivePod> = {
            let mut live = lock(&shared.live);
            let q = live.entry(n.name.clone()).or_default();
            let (prev, new): (Vec<_>, Vec<_>) = q.drain(..).partition(|p| p.added_by != AddedBy::New);
            q.extend(new);
            prev
        };
        for p in &previous {
            load::del_one(shared, &cluster.api, n, p).await;
        }
    }
    report.roll.figures = report::roll_figures(&shared.calls(), &restarts);
    report.roll.leftovers = sum_leftovers(cluster, shared).await?;
    say(shared, &format!("roll done: {:?}", report.roll.figures));

    // --- 2. Node loss.
    if cluster.nodes.len() > 1 {
        report.node_loss = Some(node_loss(cluster, shared, s).await?);
    }

    // --- 3. API partition.
    report.partition = Some(partition(cluster, shared, s).await?);

    // --- Everything deleted: nothing may remain.
    for n in &cluster.nodes {
        for p in shared.take_all(&n.name) {
            load::del_one(shared, &cluster.api, n, &p).await;
        }
        report.final_leftovers.insert(n.name.clone(), leftovers(n, shared).await?);
    }
    Ok(report)
}

async fn node_loss(cluster: &Cluster, shared: &Arc<Shared>, s: &Settings) -> Result<NodeLossReport> {
    let victim = cluster.nodes[1].clone();
    let mut r = NodeLossReport { node: victim.name.clone(), ..Default::default() };
    let load = Load::start(shared, cluster, s.per_node);
    tokio::time::sleep(Duration::from_secs(s.settle_seconds)).await;
    let calls_before = shared.calls().len();
    let from_ms = shared.now_ms();
    say(shared, &format!("killing {}", victim.name));
    victim.kill()?;
    shared.pause(&victim.name, true);
    let dead = shared.take_all(&victim.name);
    r.dead_pods = dead.len();
    // The node controller's eviction: the dead node's pods are deleted from the API.
    for p in &dead {
        cluster.api.delete_pod(&p.pod).await?;
    }
    tokio::time::sleep(Duration::from_secs(s.settle_seconds)).await;
    say(shared, &format!("{} back", victim.name));
    victim.power_on().await?;
    // Its disk before the daemon runs (what the dead pods left), then the DaemonSet's pod.
    r.left_at_boot = leftovers(&victim, shared).await?;
    let booted = Instant::now();
    victim.boot(Generation::New).await?;
    // The runtime starts too and sends its GC: no sandbox survived the reboot.
    let gc: crate::agent::CallOutcome = serde_json::from_value(victim.agent(&["gc", "--valid", ""]).await?)?;
    r.gc_ok = gc.ok;
    r.gc_error = gc.error;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = leftovers(&victim, shared).await?;
        if l.total() == 0 {
            r.reclaimed_ms = Some(u64::try_from(booted.elapsed().as_millis()).unwrap_or(0));
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = victim.agent(&["reclaim-log"]).await?;
    let mentions = |key: &str, id: &str| {
        log[key].as_array().into_iter().flatten().any(|l| l.as_str().is_some_and(|l| l.contains(id)))
    };
    for id in &r.left_at_boot.containers {
        if mentions("gc", id) {
            r.reclaimed_by_gc += 1;
        } else if mentions("reconciler", id) {
            r.reclaimed_by_reconciler += 1;
        }
    }
    let to_ms = shared.now_ms();
    shared.pause(&victim.name, false);
    tokio::time::sleep(Duration::from_secs(s.settle_seconds)).await;
    load.stop().await;
    let calls = shared.calls();
    let window = Window { node: victim.name.clone(), from_ms, to_ms };
    r.failed_elsewhere = report::failed_elsewhere(&calls, &window);
    r.calls_elsewhere = calls[calls_before..].iter().filter(|c| c.node != victim.name && c.at_ms <= to_ms).count();
    r.adds_in_flight_lost =
        calls[calls_before..].iter().filter(|c| c.node == victim.name && !c.ok && c.at_ms <= to_ms).count();
    r.left_after = leftovers(&victim, shared).await?;
    say(shared, &format!("node loss done: {r:?}"));
    Ok(r)
}

async fn partition(cluster: &Cluster, shared: &Arc<Shared>, s: &Settings) -> Result<PartitionReport> {
    let victim = cluster.nodes.last().context("no node")?.clone();
    let mut r = PartitionReport { node: victim.name.clone(), seconds: s.partition_seconds, ..Default::default() };
    let load = Load::start(shared, cluster, s.per_node);
    tokio::time::sleep(Duration::from_secs(s.settle_seconds)).await;
    // The node's kubelet is cut off too: no new pods reach it, but its pods are torn down.
    shared.pause(&victim.name, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls_before = shared.calls().len();
    say(shared, &format!("cutting {} off the API server for {} s", victim.name, s.partition_seconds));
    let from_ms = shared.now_ms();
    cluster.disconnect(&victim)?;
    let cut = Instant::now();
    let live = shared.take_all(&victim.name);
    let spacing = Duration::from_secs(s.partition_seconds) / u32::try_from(live.len() + 1).unwrap_or(1);
    for p in &live {
        tokio::time::sleep(spacing).await;
        load::del_one(shared, &cluster.api, &victim, p).await;
    }
    let rest = Duration::from_secs(s.partition_seconds).saturating_sub(cut.elapsed());
    tokio::time::sleep(rest).await;
    // Count from the moment it is back; what it watched before the cut is in the counts so far.
    let before_counts = cluster.api.admin("DELETE", "requests", None).await?;
    cluster.connect(&victim)?;
    let back = Instant::now();
    say(shared, &format!("{} reconnected", victim.name));
    let to_ms = shared.now_ms();
    // Recovered: an ADD on the node works (from a live GET if need be); current: the node's pod
    // watch delivers a new pod again, so its ADD asks the API server nothing (no `get pods`).
    // A partition keeps the node's address, so its watch connections may survive it (TCP
    // retransmits) or time out and be made again; either way the watch cache must catch up.
    let user = plan::node_user(&victim.name);
    let watched: Vec<String> = before_counts["byUserRequest"][&user]
        .as_object()
        .map(|m| m.keys().filter(|k| k.starts_with("watch ")).cloned().collect())
        .unwrap_or_default();
    let node_gets = |counts: &Value| counts["byUserRequest"][&user]["get pods"].as_u64().unwrap_or(0);
    let deadline = back + Duration::from_secs(150);
    while Instant::now() < deadline {
        let before = node_gets(&cluster.api.admin("GET", "requests", None).await?);
        let ok = load::add_one(shared, &cluster.api, &victim, "recover").await;
        let after = node_gets(&cluster.api.admin("GET", "requests", None).await?);
        let at = u64::try_from(back.elapsed().as_millis()).unwrap_or(0);
        if ok && r.recovered_ms.is_none() {
            r.recovered_ms = Some(at);
        }
        if ok && after == before {
            r.watch_current_ms = Some(at);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // At least 30 s after reconnecting: everything the node asked meanwhile.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(back.elapsed())).await;
    let counts = cluster.api.admin("GET", "requests", None).await?;
    let mine = &counts["byUserRequest"][&user];
    for w in &watched {
        if mine[w].as_u64().unwrap_or(0) > 0 {
            r.watches_made_again.push(w.clone());
        }
    }
    r.recovery_window_seconds = back.elapsed().as_secs();
    for n in &cluster.nodes {
        let user = plan::node_user(&n.name);
        r.requests_by_node.insert(n.name.clone(), counts["byUser"][&user].as_u64().unwrap_or(0));
    }
    r.requests_of_node = counts["byUserRequest"][&user].clone();
    r.watched = watched;
    shared.pause(&victim.name, false);
    tokio::time::sleep(Duration::from_secs(s.settle_seconds)).await;
    load.stop().await;
    let calls = shared.calls();
    let mine: Vec<_> = calls[calls_before..]
        .iter()
        .filter(|c| c.node == victim.name && c.op == report::Op::Del && c.at_ms >= from_ms && c.at_ms <= to_ms)
        .collect();
    r.dels = mine.len();
    r.dels_failed = mine.iter().filter(|c| !c.ok).count();
    r.longest_del_ms = mine.iter().map(|c| c.millis).max().unwrap_or(0);
    r.failed_elsewhere = report::failed_elsewhere(&calls, &Window { node: victim.name.clone(), from_ms, to_ms });
    r.leftovers = leftovers(&victim, shared).await?;
    say(shared, &format!("partition done: {r:?}"));
    Ok(r)
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let r = &report.roll;
    let f = &r.figures;
    let mut out = format!(
        "rolling upgrade ({} nodes, {} pods attached by Go before it):\n  ADDs {} (failed {}, outside the restart windows {}), DELs {} (failed {}), of the previous version's pods {} (failed {}; Go's {}, failed {})\n  restart windows (ms) {:?}\n  longest ADD per node (ms) {:?}, during its restart {:?}\n  leftovers after: {} leases, {} caches\n",
        r.nodes,
        r.go_seeded_pods,
        f.adds,
        f.adds_failed,
        f.adds_failed_outside_restart,
        f.dels,
        f.dels_failed,
        f.dels_of_previous,
        f.dels_of_previous_failed,
        f.dels_of_go,
        f.dels_of_go_failed,
        f.restart_ms,
        f.longest_add_ms,
        f.longest_add_during_restart_ms,
        r.leftovers.leases,
        r.leftovers.caches,
    );
    if let Some(n) = &report.node_loss {
        out += &format!(
            "node loss ({}): {} dead pods, {} ADDs lost with the node; other nodes: {} calls, {} failed\n  on its disk at boot: {} leases, {} caches, {} result caches of {} sandboxes; reclaimed {} ms after the daemon started (orphan reconciler {}, the runtime's GC {}; GC {}); left: {}\n",
            n.node,
            n.dead_pods,
            n.adds_in_flight_lost,
            n.calls_elsewhere,
            n.failed_elsewhere,
            n.left_at_boot.leases,
            n.left_at_boot.caches,
            n.left_at_boot.results,
            n.left_at_boot.containers.len(),
            n.reclaimed_ms.map_or("never".into(), |m| m.to_string()),
            n.reclaimed_by_reconciler,
            n.reclaimed_by_gc,
            if n.gc_ok { "ok" } else { "failed" },
            n.left_after.total(),
        );
    }
    if let Some(p) = &report.partition {
        out += &format!(
            "API partition ({}, {} s): {} DELs from the cache (failed {}, longest {} ms); other nodes' failures {}\n  first ADD after reconnecting: {}; its pod watch current again after {}; watches made again {:?}\n  requests in the {} s after reconnecting per node {:?}, the cut-off node's {}; leftovers {}\n",
            p.node,
            p.seconds,
            p.dels,
            p.dels_failed,
            p.longest_del_ms,
            p.failed_elsewhere,
            p.recovered_ms.map_or("never".into(), |m| format!("{m} ms")),
            p.watch_current_ms.map_or("never".into(), |m| format!("{m} ms")),
            p.watches_made_again,
            p.recovery_window_seconds,
            p.requests_by_node,
            p.requests_of_node,
            p.leftovers.total(),
        );
    }
    let left: usize = report.final_leftovers.values().map(Leftovers::total).sum();
    out += &format!("every pod deleted: {left} leftovers on {} nodes\n", report.final_leftovers.len());
    if report.failures.is_empty() {
        out += "PASS\n";
    } else {
        for f in &report.failures {
            out += &format!("FAIL: {f}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    #[test]
    fn leftovers_are_what_no_live_pod_explains() {
        let live: BTreeSet<String> = ["aaaaaaaaaaaaaaaa1111".to_string()].into();
        let state = json!({
            "leases": [{"network": "net-a", "ip": "10.250.0.2", "containerId": "aaaaaaaaaaaaaaaa1111"},
                       {"network": "cluster", "ip": "10.244.0.3", "containerId": "bbbb"}],
            "caches": ["aaaaaaaaaaaaaaaa1111", "bbbb"],
            "results": ["net-a-aaaaaaaaaaaaaaaa1111-net1", "cluster-bbbb-eth0"],
            "netns": ["cni-aaaaaaaaaaaaaaaa1111", "cni-bbbb"],
        });
        let l = Leftovers::of(&state, &live);
        assert_eq!((l.leases, l.caches, l.results, l.netns), (1, 1, 1, 1));
        assert_eq!(l.total(), 4);
    }

    #[test]
    fn a_clean_run_passes_and_a_leak_fails() {
        let mut report = Report::default();
        report.judge();
        assert!(report.failures.is_empty());
        report.final_leftovers.insert("node1".into(), Leftovers { leases: 1, ..Default::default() });
        report.judge();
        assert_eq!(report.failures.len(), 1);
        assert!(render(&report).contains("FAIL: node1 holds"));
    }
}
