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
use serde_json::Value;

use crate::plan::{self, Generation, PodRef, node_paths};
use crate::report::{self, AddedBy, Leftovers, NodeLossReport, PartitionReport, Report, Window};
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
    // The runtime starts with the node and sends its GC (no sandbox survived the reboot) while
    // the DaemonSet's pod starts: the shim and 00-multus.conf are still on the disk, and the
    // shim waits for the daemon, so GC and the orphan reconciler's first pass race as on a node.
    let (gc, booted_ok) = tokio::join!(victim.agent(&["gc", "--valid", ""]), victim.boot(Generation::New));
    booted_ok?;
    let gc: crate::agent::CallOutcome = serde_json::from_value(gc?)?;
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
