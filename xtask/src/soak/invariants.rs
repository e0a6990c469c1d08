//! Invariants checked between and after steps: resources, processes, markers, teardown.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::time::Instant;

use super::check::{self, ProcStats, SoakProcess};
use super::node::{Node, Sandbox};
use super::plan::{self, Fault};
use super::runner::*;

impl Runner {
    /// Read the daemon's fds/RSS/threads into the peaks; violations of the bounds.
    pub(super) fn sample(&mut self) -> Vec<String> {
        let Some(stats) = self.node.daemon_pid().and_then(check::proc_stats) else {
            return vec!["the daemon's /proc entry is unreadable".into()];
        };
        let ProcStats { fds, rss_kb, threads } = stats;
        let s = &mut self.summary;
        s.peak_fds = s.peak_fds.max(fds);
        s.peak_rss_kib = s.peak_rss_kib.max(rss_kb);
        s.peak_threads = s.peak_threads.max(threads);
        let mut errs = Vec::new();
        if fds > self.max_fds {
            errs.push(format!("daemon has {fds} open fds (bound {})", self.max_fds));
        }
        if rss_kb > self.max_rss_kib {
            errs.push(format!("daemon RSS {} KiB (bound {} KiB)", rss_kb, self.max_rss_kib));
        }
        errs
    }

    /// After every step: the daemon answers and is bounded; every file and bridge port belongs
    /// to an attached sandbox, and each attached sandbox has all of its leases.
    pub(super) fn global_checks(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        self.summary.invariant_checks += 4;
        if !self.node.daemon_running() {
            errs.push("the daemon is not running".into());
        } else if let Err(e) = check::healthz(&self.node) {
            errs.push(e);
        }
        errs.extend(self.sample());
        self.process_and_marker_checks();
        let attached: Vec<&Sandbox> = self.slots.iter().flatten().filter(|s| s.attached).map(|s| &s.sb).collect();
        for f in check::state_files(&self.node) {
            if !attached.iter().any(|sb| f.text.contains(&sb.container_id)) {
                let key = f.path.display().to_string();
                if self.known_leaks.insert(key.clone()) {
                    errs.push(format!("leak: {key} belongs to no attached sandbox"));
                }
            }
        }
        let bridges = [
            (self.node.env.var("CLUSTER_BRIDGE").to_string(), attached.len()),
            (
                self.node.env.var("NAD_BRIDGE").to_string(),
                attached.iter().map(|sb| sb.networks.iter().filter(|n| *n == plan::BRIDGE_NAD).count()).sum(),
            ),
        ];
        for (bridge, want) in bridges {
            match check::bridge_ports(&bridge) {
                Ok(ports) if ports.len() > want => {
                    let key = format!("bridge {bridge}: {} ports for {want} attachments: {ports:?}", ports.len());
                    if self.known_leaks.insert(format!("bridge {bridge} ports {}", ports.len())) {
                        errs.push(format!("leak: {key}"));
                    }
                }
                Ok(ports) if ports.len() < want => {
                    errs.push(format!("bridge {bridge}: {} ports for {want} attachments", ports.len()))
                }
                Ok(_) => {}
                Err(e) => errs.push(format!("listing the ports of {bridge}: {e:#}")),
            }
        }
        errs
    }

    /// After every step: no process of the run may work for a sandbox that is gone (reported
    /// once each, to the fault kind of the sandbox's ADD), and no watched marker may appear.
    /// Found problems go to `late`.
    pub(super) fn process_and_marker_checks(&mut self) {
        self.summary.invariant_checks += 2;
        let exclude: Vec<i32> = self.node.daemon_pid().into_iter().collect();
        let live: BTreeSet<&str> = self.slots.iter().flatten().map(|s| s.sb.container_id.as_str()).collect();
        let suspect = |p: &SoakProcess, known: &BTreeSet<(i32, u64)>| {
            !known.contains(&(p.pid, p.start)) && p.container.as_deref().is_none_or(|c| !live.contains(c))
        };
        let mut suspects: Vec<SoakProcess> = check::soak_processes(&self.node.marker, &self.node.bin_dir, &exclude)
            .into_iter()
            .filter(|p| suspect(p, &self.known_procs))
            .collect();
        if !suspects.is_empty() {
            // A delegate of the orphan reconciler, or one being killed, is gone a moment later.
            std::thread::sleep(PROCESS_GRACE);
            let again = check::soak_processes(&self.node.marker, &self.node.bin_dir, &exclude);
            suspects.retain(|p| again.contains(p));
        }
        for p in suspects {
            self.known_procs.insert((p.pid, p.start));
            let (kind, pod) = p
                .container
                .as_ref()
                .and_then(|c| self.owners.get(c).cloned())
                .unwrap_or_else(|| ("no pod".to_string(), "no pod".to_string()));
            self.summary.leaked_processes.push(format!("{p} ({kind}, {pod}, found after a later step)"));
            self.late.push((kind, format!("a process of {pod} outlives its pod: {p}")));
        }
        let now = Instant::now();
        for w in &mut self.marker_watches {
            for m in check::markers_of(&self.node, &w.container) {
                if w.existing.insert(m.clone()) {
                    let after = now.duration_since(w.deleted_at).as_millis();
                    self.summary
                        .late_markers
                        .push(format!("{m} ({}, {}: seen {after} ms after its DEL)", w.kind, w.pod));
                    self.late.push((
                        w.kind.clone(),
                        format!(
                            "a delegate's child of {} wrote {m} after the pod's DEL had completed (seen {after} ms after)",
                            w.pod
                        ),
                    ));
                }
            }
        }
        self.marker_watches.retain(|w| now < w.deadline);
    }

    /// DEL every sandbox left, then nothing may remain: no file, no bridge port, no process;
    /// and no watched marker appears any more.
    pub(super) fn teardown(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        for slot in 0..self.slots.len() {
            let Some(Slot { sb, .. }) = self.slots[slot].take() else { continue };
            self.summary.teardown_dels += 1;
            match self.node.shim("DEL", &sb) {
                Ok(out) if !out.success => errs.push(format!("{}: DEL failed: {}", sb.pod, out.describe())),
                Ok(_) => {}
                Err(e) => errs.push(format!("{}: DEL: {e:#}", sb.pod)),
            }
            self.summary.invariant_checks += 1;
            match check::leftovers(&self.node, &sb) {
                Ok(left) => errs.extend(left.into_iter().map(|l| format!("{}: DEL left {l}", sb.pod))),
                Err(e) => errs.push(format!("{}: {e:#}", sb.pod)),
            }
            self.node.remove_sandbox(&sb);
        }
        // The children of deleted pods' delegates have had their time to write their markers.
        if let Some(last) = self.marker_watches.iter().map(|w| w.deadline).max() {
            std::thread::sleep(last.saturating_duration_since(Instant::now()));
        }
        errs.extend(self.global_checks());
        // Everything is deleted now: whatever remains is a leak nothing reclaimed.
        self.summary.leaks_at_end =
            check::state_files(&self.node).into_iter().map(|f| f.path.display().to_string()).collect();
        for bridge in [self.node.env.var("CLUSTER_BRIDGE").to_string(), self.node.env.var("NAD_BRIDGE").to_string()] {
            for port in check::bridge_ports(&bridge).unwrap_or_default() {
                self.summary.leaks_at_end.push(format!("port {port} of bridge {bridge}"));
            }
        }
        let exclude: Vec<i32> = self.node.daemon_pid().into_iter().collect();
        for p in check::soak_processes(&self.node.marker, &self.node.bin_dir, &exclude) {
            self.summary.leaks_at_end.push(format!("process {p}"));
        }
        for l in &self.summary.leaks_at_end {
            errs.push(format!("left at the end: {l}"));
        }
        errs
    }
}

impl Node {
    pub(super) fn inject_checked(&self, fault: Option<&Fault>) -> Result<()> {
        fault.map_or(Ok(()), |f| self.inject(f).with_context(|| format!("injecting {}", f.kind())))
    }
    pub(super) fn clear_checked(&self, fault: Option<&Fault>) -> Result<()> {
        fault.map_or(Ok(()), |f| self.clear(f).with_context(|| format!("clearing {}", f.kind())))
    }
}
