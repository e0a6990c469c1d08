//! The leak scenarios of issue 21: a disconnected ADD, saturation with a takeover attempt, and
//! what the orphan reconciler must finish.

use anyhow::{Context, Result, anyhow};
use std::time::{Duration, Instant};

use super::check;
use super::node::{self, Sandbox};
use super::plan::{self, Fault, Op};
use super::runner::*;
use super::summary::Summary;
use crate::harness::ShimOutput;

impl Runner {
    /// An ADD through `slower-net` whose shim is killed (SIGKILL, by PID) `after_ms` in, as a
    /// runtime's timeout or a crash does. The runtime then sends DEL (`send_del`) or not; either
    /// way the daemon must finish and undo the ADD, and within [`UNDO_BOUND`] nothing of the
    /// sandbox may be left: links, files, processes, the network-status annotation. The
    /// runtime forgets the sandbox (the planner freed its slot).
    pub(super) fn client_disconnect(
        &mut self,
        op: &Op,
        sb: Sandbox,
        after_ms: u64,
        send_del: bool,
    ) -> Result<Vec<String>> {
        let mut errs = Vec::new();
        let mark = self.node.daemon_log_len();
        let c = self.node.shim_call("ADD", &sb)?;
        let started = Instant::now();
        let mut child = c.spawn(&self.node.shim_bin()).context("starting multus-shim")?;
        std::thread::sleep(Duration::from_millis(after_ms).saturating_sub(started.elapsed()));
        let answered = child.try_wait()?.is_some();
        if !answered {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let out = child.wait_with_output()?;
        let out = ShimOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if answered {
            // The runtime had its answer before the kill; it gives the pod up now: DEL.
            Summary::bump(&mut self.summary.outcomes, "client-disconnect: ADD answered before the kill");
            if out.success {
                self.summary.invariant_checks += 1;
                errs.extend(check::verify_attached(&self.node, &sb)?);
            } else {
                errs.push(format!("ADD failed without a fault that excuses it: {}", out.describe()));
            }
            let del = self.node.shim("DEL", &sb)?;
            if !del.success {
                errs.push(format!("DEL failed: {}", del.describe()));
            }
            self.summary.invariant_checks += 1;
            errs.extend(check::leftovers(&self.node, &sb)?.into_iter().map(|l| format!("DEL left {l}")));
        } else {
            Summary::bump(
                &mut self.summary.outcomes,
                format!("client-disconnect: shim killed mid-ADD, {}", if send_del { "then DEL" } else { "no DEL" }),
            );
            if send_del {
                let del = self.node.shim("DEL", &sb)?;
                if !del.success {
                    errs.push(format!("the runtime's DEL after the disconnect failed: {}", del.describe()));
                }
            }
            // The daemon finishes the ADD, then undoes it (its log names the container).
            let tag = format!("container={}", sb.container_id);
            let finished = |log: &str| {
                log.lines().any(|l| {
                    l.contains(&tag)
                        && (l.contains("abandoned ADD was undone")
                            || l.contains("undoing the abandoned ADD failed")
                            || (l.contains("ADD finished CNI request") && l.contains(", err:")))
                })
            };
            let deadline = started + UNDO_BOUND;
            let mut left;
            loop {
                let log = node::log_since(&self.node.env.daemon_log(), mark);
                // (A request the daemon never received leaves nothing to wait for.)
                let never_came = started.elapsed() > Duration::from_secs(3) && !log.contains(&tag);
                let done = finished(&log) || send_del || never_came;
                left = check::leftovers(&self.node, &sb)?;
                if self.node.network_status(&sb)?.is_some() {
                    left.push("the network-status annotation".to_string());
                }
                left.extend(
                    check::processes_of(&self.node, &sb.container_id).into_iter().map(|p| format!("process {p}")),
                );
                if (done && left.is_empty()) || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let log = node::log_since(&self.node.env.daemon_log(), mark);
            if log.lines().any(|l| l.contains(&tag) && l.contains("caller went away")) {
                Summary::bump(&mut self.summary.outcomes, "client-disconnect: the daemon saw the caller go");
            }
            self.summary.invariant_checks += 1;
            if left.is_empty() {
                self.summary.latency(
                    "client-disconnect: kill to clean",
                    (started.elapsed().as_millis() as u64).saturating_sub(after_ms),
                );
            } else {
                errs.push(format!(
                    "{} s after the shim was killed {after_ms} ms into the ADD ({}), the sandbox still has: {}",
                    UNDO_BOUND.as_secs(),
                    if send_del { "the runtime sent DEL" } else { "no DEL" },
                    left.join(", ")
                ));
            }
        }
        self.slots[op.slot] = None;
        self.node.remove_sandbox(&sb);
        Ok(errs)
    }

    /// Slow ADDs in flight (this one and `extra` more pods through `slower-net`), the rest of the
    /// daemon's connection places held by [`FLOOD_CONNECTIONS`] unfinished requests, while a
    /// second daemon starts with the same config: it must exit 3 naming the owner lock, the
    /// first keeps its socket (same inode) and answers `/healthz` within [`HEALTHZ_BOUND`]
    /// before and after (the probe lane), and every ADD succeeds (then the extra pods are
    /// deleted again).
    pub(super) fn saturation(&mut self, op: &Op, sb: Sandbox, extra: u32) -> Result<Vec<String>> {
        use std::os::unix::fs::MetadataExt;
        let mut errs = Vec::new();
        let mut pods = vec![sb.clone()];
        for k in 0..extra {
            let x = self.node.new_sandbox(
                &format!("x{}-{k}", op.index),
                &format!("{}{}x{k}", self.node.netns_prefix, op.index),
                &[plan::SLOWER_NAD.to_string()],
            )?;
            self.owners.insert(x.container_id.clone(), (op_kind(op), x.pod.clone()));
            pods.push(x);
        }
        self.second_daemons += 1;
        let n = self.second_daemons;
        let socket = self.node.env.socket();
        let inode_before = std::fs::metadata(&socket).map(|m| m.ino()).ok();
        let pid_before = self.node.daemon_pid();
        let node = &self.node;
        let (outs, before, second, after, busy) = std::thread::scope(|s| {
            let calls: Vec<_> = pods
                .iter()
                .map(|p| {
                    s.spawn(move || {
                        let t = Instant::now();
                        node.shim("ADD", p).map(|o| (o, t.elapsed()))
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(400));
            // Every connection place taken: slow requests hold the ones the ADDs do not.
            let flood = check::hold_connections(&socket, FLOOD_CONNECTIONS);
            let before = check::timed_healthz(node, HEALTHZ_BOUND * 3);
            let busy_at_start = calls.iter().filter(|c| !c.is_finished()).count();
            let second = node.second_daemon(n, Duration::from_secs(30));
            let busy_at_end = calls.iter().filter(|c| !c.is_finished()).count();
            let after = check::timed_healthz(node, HEALTHZ_BOUND * 3);
            let flooded = flood.len();
            drop(flood);
            let outs: Vec<Result<(ShimOutput, Duration)>> = calls
                .into_iter()
                .map(|c| c.join().unwrap_or_else(|_| Err(anyhow!("the shim thread panicked"))))
                .collect();
            (outs, before, second, after, (busy_at_start, busy_at_end, flooded))
        });
        Summary::bump(
            &mut self.summary.outcomes,
            format!("saturation-takeover: {} of {} ADDs in flight when the second daemon exited", busy.1, pods.len()),
        );
        if busy.2 < FLOOD_CONNECTIONS {
            errs.push(format!(
                "only {} of {FLOOD_CONNECTIONS} connections to the daemon could be opened (its socket refused more)",
                busy.2
            ));
        }
        for (when, (status, took)) in [("before", before), ("after", after)] {
            self.summary.latency("saturation-takeover: /healthz", took.as_millis() as u64);
            match status {
                Ok(200) if took <= HEALTHZ_BOUND => {}
                Ok(code) => errs.push(format!(
                    "/healthz {when} the second daemon's start, with {} ADDs in flight: {code} in {} ms (bound {} ms)",
                    busy.0,
                    took.as_millis(),
                    HEALTHZ_BOUND.as_millis()
                )),
                Err(e) => errs.push(format!(
                    "/healthz {when} the second daemon's start, with {} ADDs in flight: {e} after {} ms",
                    busy.0,
                    took.as_millis()
                )),
            }
        }
        match second {
            Ok((code, output, took)) => {
                self.summary.latency("saturation-takeover: second daemon's refusal", took.as_millis() as u64);
                let last = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                if code != Some(3) {
                    errs.push(format!(
                        "the second daemon {} (expected: exit 3): {last}",
                        code.map_or("was still running after 30 s (killed)".to_string(), |c| format!("exited {c}"))
                    ));
                } else if !output.contains("another daemon is serving") || !output.contains("multus.sock.lock") {
                    errs.push(format!("the second daemon exited 3, but not refused by the owner lock: {last}"));
                }
            }
            Err(e) => errs.push(format!("the second daemon could not be run: {e:#}")),
        }
        let inode_after = std::fs::metadata(&socket).map(|m| m.ino()).ok();
        if inode_after != inode_before || inode_before.is_none() {
            errs.push(format!("the daemon's socket changed: inode {inode_before:?} before, {inode_after:?} after"));
        }
        if self.node.daemon_pid() != pid_before || !self.node.daemon_running() {
            errs.push("the first daemon is no longer running".to_string());
        }
        // The ADDs: this op's is judged as usual; the extra pods must be attached, then go.
        let mut outs = outs.into_iter();
        let own = outs.next().context("no outcome for the operation's own ADD")??;
        self.last_latency = Duration::ZERO;
        errs.extend(self.judge(op, sb, own.0)?);
        for (x, out) in pods.iter().skip(1).zip(outs) {
            let (out, _) = out?;
            Summary::bump(&mut self.summary.operations, "ADD");
            Summary::bump(&mut self.summary.outcomes, if out.success { "ADD ok" } else { "ADD failed" });
            if out.success {
                self.summary.invariant_checks += 1;
                errs.extend(check::verify_attached(&self.node, x)?);
            } else {
                errs.push(format!("the ADD of {} failed while the second daemon started: {}", x.pod, out.describe()));
            }
            let del = self.node.shim("DEL", x)?;
            Summary::bump(&mut self.summary.operations, "DEL");
            if !del.success {
                errs.push(format!("DEL of {} failed: {}", x.pod, del.describe()));
            }
            self.summary.invariant_checks += 1;
            errs.extend(check::leftovers(&self.node, x)?.into_iter().map(|l| format!("DEL of {} left {l}", x.pod)));
            self.node.remove_sandbox(x);
        }
        Ok(errs)
    }

    /// A DEL under a cache fault could not remove everything, and the shim's DEL exits 0, so
    /// no runtime sends it again: the runtime removes the namespace, and the daemon's orphan
    /// reconciler must then remove what is left. The violations.
    pub(super) fn reconciled(&mut self, fault: &Fault, sb: &Sandbox, left: &[String]) -> Result<Vec<String>> {
        self.summary.deferred_cleanups += 1;
        if self.summary.deferred_examples.len() < 10 {
            let run = format!("{}/", self.node.env.run.display());
            let left: Vec<String> = left.iter().map(|l| l.replace(&run, "")).collect();
            self.summary.deferred_examples.push(format!("{} {}: {}", fault.kind(), sb.pod, left.join(", ")));
        }
        self.node.remove_netns(sb);
        self.summary.invariant_checks += 1;
        let wait = Duration::from_secs(node::RECONCILE_INTERVAL_SECS * 3 + 2);
        let deadline = Instant::now() + wait;
        let mut files = check::files_left(&self.node, sb);
        while !files.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            files = check::files_left(&self.node, sb);
        }
        if files.is_empty() {
            return Ok(Vec::new());
        }
        // Would a second DEL have helped? (It tells a lost cache from a reconciler that missed it.)
        let again = self.node.shim("DEL", sb)?;
        let after = check::files_left(&self.node, sb);
        Ok(vec![format!(
            "DEL under {} left {}; {} s after its namespace was removed the reconciler had not removed {}; a second DEL {}",
            fault.kind(),
            left.join(", "),
            wait.as_secs(),
            files.join(", "),
            if after.is_empty() { "did".to_string() } else { format!("did not ({})", again.describe()) }
        )])
    }
}
