//! The figures of a cluster run, computed from what the load generator recorded. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    fn covers(&self, call: &Call) -> bool {
        call.node == self.node && call.at_ms <= self.to_ms && call.at_ms + call.millis >= self.from_ms
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
    calls
        .iter()
        .filter(|c| c.node != window.node && !c.ok && c.at_ms <= window.to_ms && c.at_ms + c.millis >= window.from_ms)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
