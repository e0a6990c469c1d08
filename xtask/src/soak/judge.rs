//! Judging a step: the shim's answer and what the operation left; GC and the daemon pod's stop.

use anyhow::{Result, bail};
use std::time::{Duration, Instant};

use super::check;
use super::node::{self, Sandbox};
use super::plan::{self, Command, Fault, Op};
use super::runner::*;
use super::summary::Summary;
use crate::harness::ShimOutput;

impl Runner {
    /// Judge the shim's answer and what the operation left; the violations.
    pub(super) fn judge(&mut self, op: &Op, sb: Sandbox, out: ShimOutput) -> Result<Vec<String>> {
        let fault = op.fault.as_ref();
        let excused = fault.is_some_and(Fault::excuses_failure);
        let mut errs = Vec::new();
        match op.command {
            Command::Add => {
                let delegate_fault = fault.and_then(Fault::delegate_nad);
                let latency = self.last_latency;
                if matches!(fault, Some(Fault::StdoutHolder)) {
                    errs.extend(self.stdout_holder(&sb, &out, latency));
                } else if fault.is_none() && out.success && latency > Duration::ZERO {
                    self.summary.latency("no fault", latency.as_millis() as u64);
                }
                if out.success {
                    Summary::bump(&mut self.summary.outcomes, "ADD ok");
                    if let Some(nad) = delegate_fault {
                        errs.push(format!("ADD succeeded although delegate {nad} was made to fail"));
                    }
                    self.summary.invariant_checks += 1;
                    errs.extend(check::verify_attached(&self.node, &sb)?);
                    if let Some(s) = self.slots[op.slot].as_mut() {
                        s.attached = true;
                    }
                } else {
                    Summary::bump(&mut self.summary.outcomes, "ADD failed");
                    // (The stdout-holder's failure is reported by stdout_holder.)
                    if !excused && !matches!(fault, Some(Fault::StdoutHolder)) {
                        errs.push(format!("ADD failed without a fault that excuses it: {}", out.describe()));
                    }
                    // A daemon killed mid-ADD cannot roll back: the runtime's DEL does.
                    if !fault.is_some_and(Fault::kills_daemon) {
                        self.summary.invariant_checks += 1;
                        errs.extend(
                            check::leftovers(&self.node, &sb)?.into_iter().map(|l| format!("failed ADD left {l}")),
                        );
                    }
                    // What a runtime does after a failed ADD.
                    let del = self.node.shim("DEL", &sb)?;
                    if !del.success {
                        errs.push(format!("DEL after the failed ADD failed: {}", del.describe()));
                    }
                    self.summary.invariant_checks += 1;
                    errs.extend(
                        check::leftovers(&self.node, &sb)?
                            .into_iter()
                            .map(|l| format!("DEL after the failed ADD left {l}")),
                    );
                    if let Some(f @ Fault::Grandchild { .. }) = fault {
                        errs.extend(self.after_pod_gone(&sb, f.kind()));
                    }
                }
            }
            Command::Check => {
                if out.success {
                    Summary::bump(&mut self.summary.outcomes, "CHECK ok");
                } else {
                    Summary::bump(&mut self.summary.outcomes, "CHECK failed");
                    if !excused {
                        errs.push(format!("CHECK failed without a fault that excuses it: {}", out.describe()));
                    }
                }
                self.summary.invariant_checks += 1;
                errs.extend(check::verify_attached(&self.node, &sb)?);
            }
            Command::Del => {
                Summary::bump(&mut self.summary.outcomes, if out.success { "DEL ok" } else { "DEL failed" });
                if !out.success {
                    errs.push(format!("DEL failed: {}", out.describe()));
                }
                self.summary.invariant_checks += 1;
                let left = check::leftovers(&self.node, &sb)?;
                match fault {
                    Some(f) if !left.is_empty() && f.blocks_cache_writes() => {
                        errs.extend(self.reconciled(f, &sb, &left)?);
                    }
                    _ => errs.extend(left.into_iter().map(|l| format!("DEL left {l}"))),
                }
                self.node.remove_sandbox(&sb);
            }
            Command::Burst => bail!("a burst is judged by its parts"),
        }
        Ok(errs)
    }

    /// The ADD through the stdout-holder: it must succeed well within the delegate timeout
    /// (the delegate answered and exited at once; only its child holds the pipe), and the child
    /// must be gone once the ADD answered. The violations.
    pub(super) fn stdout_holder(&mut self, sb: &Sandbox, out: &ShimOutput, latency: Duration) -> Vec<String> {
        self.summary.latency("stdout-holder", latency.as_millis() as u64);
        let mut errs = Vec::new();
        if !out.success {
            errs.push(format!(
                "the ADD through {} failed after {} ms (the delegate answered and exited 0 at once; its child held stdout): {}",
                plan::STDOUT_NAD,
                latency.as_millis(),
                out.describe()
            ));
        } else if latency > STDOUT_HOLDER_BOUND {
            errs.push(format!(
                "the ADD through {} took {} ms (bound {} ms: the delegate answered at once; its child held stdout)",
                plan::STDOUT_NAD,
                latency.as_millis(),
                STDOUT_HOLDER_BOUND.as_millis()
            ));
        }
        for p in check::processes_left(&self.node, &sb.container_id, PROCESS_GRACE) {
            self.known_procs.insert((p.pid, p.start));
            self.summary.leaked_processes.push(format!("{p} (stdout-holder, {} after its ADD)", sb.pod));
            errs.push(format!("the delegate's child still runs after the ADD answered: {p}"));
        }
        errs
    }

    /// A sandbox whose delegate left a child is gone (its DEL completed): no process of it may
    /// run, and no marker may appear from now on (watched until [`MARKER_WATCH`] is over).
    pub(super) fn after_pod_gone(&mut self, sb: &Sandbox, kind: &str) -> Vec<String> {
        let mut errs = Vec::new();
        self.summary.invariant_checks += 1;
        for p in check::processes_left(&self.node, &sb.container_id, PROCESS_GRACE) {
            self.known_procs.insert((p.pid, p.start));
            self.summary.leaked_processes.push(format!("{p} ({kind}, {} after its DEL)", sb.pod));
            errs.push(format!("a process outlives its pod's DEL: {p}"));
        }
        let now = Instant::now();
        self.marker_watches.push(MarkerWatch {
            container: sb.container_id.clone(),
            pod: sb.pod.clone(),
            kind: kind.to_string(),
            existing: check::markers_of(&self.node, &sb.container_id),
            deleted_at: now,
            deadline: now + MARKER_WATCH,
        });
        errs
    }

    /// A node-level fault before the operation; the violations.
    pub(super) fn before_operation(&mut self, fault: &Fault, op: &Op) -> Result<Vec<String>> {
        match fault {
            Fault::Gc { listed } => self.gc(listed, op.slot),
            Fault::DaemonsetDelete { delete } => self.stop_daemon_pod(*delete, None),
            Fault::SlowApiAtStop { delete, millis } => self.stop_daemon_pod(*delete, Some(*millis)),
            _ => Ok(Vec::new()),
        }
    }

    /// The runtime's GC with the sandboxes of `listed` as the valid attachments: every other
    /// sandbox must be gone everywhere (the runtime then forgets it: namespace and pod object
    /// removed), the listed ones intact, and a CHECK of each must pass.
    pub(super) fn gc(&mut self, listed: &[usize], checked_by_op: usize) -> Result<Vec<String>> {
        let mut errs = Vec::new();
        let valid: Vec<Sandbox> = listed
            .iter()
            .filter_map(|s| self.slots.get(*s).and_then(Option::as_ref).map(|slot| slot.sb.clone()))
            .collect();
        let out = self.node.shim_gc(&valid.iter().collect::<Vec<_>>())?;
        Summary::bump(&mut self.summary.outcomes, if out.success { "GC ok" } else { "GC failed" });
        if !out.success {
            errs.push(format!("GC listing {} sandbox(es) failed: {}", valid.len(), out.describe()));
        }
        for slot in 0..self.slots.len() {
            if listed.contains(&slot) {
                continue;
            }
            let Some(Slot { sb, attached }) = self.slots[slot].take() else { continue };
            Summary::bump(&mut self.summary.outcomes, "GC: unlisted sandbox forgotten");
            self.summary.invariant_checks += 1;
            let what = if attached { "attached" } else { "failed" };
            errs.extend(
                check::leftovers(&self.node, &sb)?
                    .into_iter()
                    .map(|l| format!("GC did not delete the unlisted ({what}) sandbox {}: {l}", sb.pod)),
            );
            for p in check::processes_left(&self.node, &sb.container_id, PROCESS_GRACE) {
                self.known_procs.insert((p.pid, p.start));
                self.summary.leaked_processes.push(format!("{p} (gc, {} unlisted)", sb.pod));
                errs.push(format!("a process of the unlisted sandbox {} runs after GC: {p}", sb.pod));
            }
            self.node.remove_sandbox(&sb);
        }
        for &slot in listed {
            let Some(Slot { sb, attached: true }) = self.slots.get(slot).and_then(Option::as_ref) else { continue };
            let sb = sb.clone();
            self.summary.invariant_checks += 1;
            errs.extend(
                check::verify_attached(&self.node, &sb)?.into_iter().map(|e| format!("after GC (listed): {e}")),
            );
            if slot != checked_by_op {
                let check = self.node.shim("CHECK", &sb)?;
                Summary::bump(
                    &mut self.summary.outcomes,
                    if check.success { "GC: CHECK ok" } else { "GC: CHECK failed" },
                );
                if !check.success {
                    errs.push(format!("CHECK of the listed {} after GC failed: {}", sb.pod, check.describe()));
                }
            }
        }
        Ok(errs)
    }

    /// The kubelet stops the daemon's pod (SIGTERM) after its DaemonSet was deleted (`delete`)
    /// or with the DaemonSet there; with `slow_ms`, every API request is delayed that long
    /// (past the daemon's 3 s decision window) at the stop, and a deletion happens before the
    /// slowness (the daemon's watch must have seen it). 00-multus.conf must be removed after a
    /// deletion and kept otherwise. Then Multus is (re)installed and the daemon started.
    pub(super) fn stop_daemon_pod(&mut self, delete: bool, slow_ms: Option<u64>) -> Result<Vec<String>> {
        let kind = if slow_ms.is_some() { "slow-api-at-stop" } else { "daemonset-delete" };
        let mut errs = Vec::new();
        // A daemon reads its pod's DaemonSet at start; the stop comes later (as for a running pod).
        if !self.node.wait_daemon_log(self.node.log_offset(), "following DaemonSet", Duration::from_secs(20)) {
            errs.push("the daemon did not start to follow its DaemonSet within 20 s of its start".to_string());
        }
        let mark = self.node.daemon_log_len();
        if delete {
            self.node.delete_daemonset()?;
        }
        if let Some(ms) = slow_ms {
            if delete
                && !self.node.wait_daemon_log(
                    mark,
                    "will remove 00-multus.conf when it is stopped",
                    Duration::from_secs(10),
                )
            {
                errs.push("the daemon's watch did not see its DaemonSet deleted within 10 s".to_string());
            }
            self.node.admin("POST", "/faults", &serde_json::json!({"type": "latency", "matcher": {}, "millis": ms}))?;
        }
        let stopped = self.node.terminate_daemon();
        if slow_ms.is_some() {
            self.node.admin("DELETE", "/faults", &serde_json::Value::Null)?;
        }
        self.node.restarts += 1;
        let kept = self.node.env.multus_conf_path().exists();
        let said: Vec<String> = node::log_since(&self.node.env.daemon_log(), mark)
            .lines()
            .filter(|l| l.contains("00-multus.conf") || l.contains("DaemonSet") || l.contains("uninstall"))
            .map(|l| l.split_once("multus_daemon::uninstall: ").map_or(l, |(_, m)| m).trim().to_string())
            .collect();
        match stopped {
            Ok(took) => self.summary.latency(&format!("{kind}: SIGTERM to exit"), took.as_millis() as u64),
            Err(e) => errs.push(e),
        }
        let ds = if delete { "deleted" } else { "present" };
        Summary::bump(
            &mut self.summary.outcomes,
            format!("{kind}: DaemonSet {ds}, 00-multus.conf {}", if kept { "kept" } else { "removed" }),
        );
        if kept == delete {
            errs.push(format!(
                "SIGTERM with the DaemonSet {ds}{}: 00-multus.conf was {} (expected: {}); the daemon said: {}",
                slow_ms.map(|ms| format!(" and the API server slow ({ms} ms per request)")).unwrap_or_default(),
                if kept { "kept" } else { "removed" },
                if delete { "removed" } else { "kept" },
                if said.is_empty() { "nothing about it".to_string() } else { said.join(" | ") }
            ));
        }
        if delete {
            self.node.install_daemonset()?;
        }
        errs.extend(self.node.ensure_daemon(&[])?);
        Ok(errs)
    }
}
