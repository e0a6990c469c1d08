//! The figures of a cluster run, computed from what the load generator recorded and what the
//! nodes hold; the goals, judged; the text summary. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    Add,
    Del,
}

/// Who attached the pod a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddedBy {
    /// Seeded with the Go thick plugin's cache files.
    Go,
    /// The node's daemon before it was replaced.
    Old,
    /// The replacing daemon.
    New,
}

/// One runtime call as the load generator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub node: String,
    pub pod: String,
    pub op: Op,
    /// Milliseconds since the scenario began, when the call started.
    pub at_ms: u64,
    pub millis: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub added_by: AddedBy,
}

/// A span of one node's time (its daemon restarting, the node down, cut off).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    pub node: String,
    pub from_ms: u64,
    pub to_ms: u64,
}

impl Window {
    /// Whether `call` ran at some time within the window (on any node).
    fn overlaps(&self, call: &Call) -> bool {
        call.at_ms <= self.to_ms && call.at_ms + call.millis >= self.from_ms
    }

    /// Whether `call` ran on the window's node within it.
    fn covers(&self, call: &Call) -> bool {
        call.node == self.node && self.overlaps(call)
    }
}

/// The rolling upgrade's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollFigures {
    pub adds: usize,
    pub adds_failed: usize,
    /// Failed ADDs that did not overlap their node's restart window (goal 0).
    pub adds_failed_outside_restart: usize,
    pub dels: usize,
    pub dels_failed: usize,
    /// DELs of pods the previous version attached (Go-seeded or the old daemon's).
    pub dels_of_previous: usize,
    pub dels_of_previous_failed: usize,
    /// Of those, the pods attached with the Go thick plugin's cache files.
    pub dels_of_go: usize,
    pub dels_of_go_failed: usize,
    /// The longest ADD per node, and the longest that overlapped the node's restart.
    pub longest_add_ms: BTreeMap<String, u64>,
    pub longest_add_during_restart_ms: BTreeMap<String, u64>,
    /// Each node's restart window (SIGTERM to the new daemon's ready), milliseconds.
    pub restart_ms: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

pub fn roll_figures(calls: &[Call], restarts: &[Window]) -> RollFigures {
    let mut f = RollFigures::default();
    for w in restarts {
        f.restart_ms.insert(w.node.clone(), w.to_ms.saturating_sub(w.from_ms));
    }
    for c in calls {
        let in_restart = restarts.iter().any(|w| w.covers(c));
        match c.op {
            Op::Add => {
                f.adds += 1;
                let longest = f.longest_add_ms.entry(c.node.clone()).or_default();
                *longest = (*longest).max(c.millis);
                if in_restart {
                    let longest = f.longest_add_during_restart_ms.entry(c.node.clone()).or_default();
                    *longest = (*longest).max(c.millis);
                }
                if !c.ok {
                    f.adds_failed += 1;
                    if !in_restart {
                        f.adds_failed_outside_restart += 1;
                    }
                }
            }
            Op::Del => {
                f.dels += 1;
                let previous = c.added_by != AddedBy::New;
                let go = c.added_by == AddedBy::Go;
                f.dels_of_previous += usize::from(previous);
                f.dels_of_go += usize::from(go);
                if !c.ok {
                    f.dels_failed += 1;
                    f.dels_of_previous_failed += usize::from(previous);
                    f.dels_of_go_failed += usize::from(go);
                }
            }
        }
        if let (false, Some(e)) = (c.ok, &c.error)
            && f.errors.len() < 10
        {
            f.errors.push(format!("{} {:?} {}: {e}", c.node, c.op, c.pod));
        }
    }
    f
}

/// Calls of other nodes that failed while `window`'s node was down or cut off (goal 0).
pub fn failed_elsewhere(calls: &[Call], window: &Window) -> usize {
    calls.iter().filter(|c| c.node != window.node && !c.ok && window.overlaps(c)).count()
}

// -------------------------------------------------------------------------------------------
// The whole run

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

    fn call(node: &str, op: Op, at_ms: u64, millis: u64, ok: bool, added_by: AddedBy) -> Call {
        Call {
            node: node.into(),
            pod: "p".into(),
            op,
            at_ms,
            millis,
            ok,
            error: (!ok).then(|| "boom".into()),
            added_by,
        }
    }

    #[test]
    fn failures_inside_a_restart_window_are_told_apart() {
        let calls = vec![
            call("node1", Op::Add, 100, 50, true, AddedBy::Old),
            call("node1", Op::Add, 900, 3000, false, AddedBy::New),
            call("node2", Op::Add, 1000, 10, false, AddedBy::Old),
            call("node1", Op::Del, 5000, 10, true, AddedBy::Go),
            call("node2", Op::Del, 5000, 10, false, AddedBy::New),
        ];
        let restarts = vec![Window { node: "node1".into(), from_ms: 1000, to_ms: 2000 }];
        let f = roll_figures(&calls, &restarts);
        assert_eq!((f.adds, f.adds_failed, f.adds_failed_outside_restart), (3, 2, 1));
        assert_eq!((f.dels, f.dels_failed, f.dels_of_previous, f.dels_of_previous_failed), (2, 1, 1, 0));
        assert_eq!(f.longest_add_ms["node1"], 3000);
        assert_eq!(f.longest_add_during_restart_ms["node1"], 3000);
        assert_eq!(f.restart_ms["node1"], 1000);
        assert_eq!(f.errors.len(), 3);
        assert_eq!((f.dels_of_go, f.dels_of_go_failed), (1, 0));
    }

    #[test]
    fn only_other_nodes_count_against_an_outage() {
        let calls = vec![
            call("node1", Op::Add, 100, 50, false, AddedBy::New),
            call("node2", Op::Add, 120, 50, false, AddedBy::New),
            call("node2", Op::Add, 5000, 50, false, AddedBy::New),
        ];
        assert_eq!(failed_elsewhere(&calls, &Window { node: "node1".into(), from_ms: 0, to_ms: 1000 }), 1);
    }

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
