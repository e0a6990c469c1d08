//! The soak's state between steps, and a step: the shim under a fault, a burst, a sandbox.

use anyhow::{Result, anyhow, bail};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::check;
use super::node::{self, Node, Sandbox, run_shim};
use super::plan::{Command, Fault, Op, Via};
use super::summary::Summary;
use crate::harness::ShimOutput;

/// One slot's sandbox and whether its ADD succeeded (it then holds interfaces and files).
pub(super) struct Slot {
    pub(super) sb: Sandbox,
    pub(super) attached: bool,
}

/// A deleted sandbox whose delegate left a child that writes a marker: none may appear after
/// the DEL completed (`existing` were there before), until `deadline`.
pub(super) struct MarkerWatch {
    pub(super) container: String,
    pub(super) pod: String,
    pub(super) kind: String,
    pub(super) existing: BTreeSet<String>,
    pub(super) deleted_at: Instant,
    pub(super) deadline: Instant,
}

/// How long after a DEL the children of a `grandchild` delegate are watched for a marker.
pub(super) const MARKER_WATCH: Duration = Duration::from_millis(node::GRANDCHILD_KILL_SLEEP_MS + 2000);
/// A process of a gone pod may show this long (being killed and reaped) before it counts.
pub(super) const PROCESS_GRACE: Duration = Duration::from_secs(1);
/// How long a disconnected ADD may take to be finished and undone by the daemon.
pub(super) const UNDO_BOUND: Duration = Duration::from_secs(15);
/// The ADD through the stdout-holder must answer this fast (the delegate timeout is 2 s).
pub(super) const STDOUT_HOLDER_BOUND: Duration = Duration::from_millis(node::DELEGATE_TIMEOUT_SECS * 1000 / 2);
/// The background child's `argv[1]` (fake-cni's `child::CHILD_ARG`).
pub(super) const FAKE_CNI_CHILD_ARG: &str = "spawned-child";
/// Connections held open (request head sent, body unfinished) during the takeover attempt:
/// with the ADDs' own, more than the daemon's 512 connection places.
pub(super) const FLOOD_CONNECTIONS: usize = 512;
/// `/healthz` must answer this fast while ADDs are in flight.
pub(super) const HEALTHZ_BOUND: Duration = Duration::from_secs(1);

pub(super) struct Runner {
    pub(super) node: Node,
    pub(super) slots: Vec<Option<Slot>>,
    pub(super) summary: Summary,
    pub(super) known_leaks: BTreeSet<String>,
    pub(super) max_fds: u64,
    pub(super) max_rss_kib: u64,
    /// Failed daemon starts since the last step was judged (violations).
    pub(super) restart_problems: Vec<String>,
    /// Violations found outside a step's own judgement, with the fault kind they belong to
    /// (a process or a marker of a pod deleted earlier).
    pub(super) late: Vec<(String, String)>,
    /// Every sandbox ever made: container ID → (fault kind of its ADD, pod), to attribute them.
    pub(super) owners: HashMap<String, (String, String)>,
    /// Processes already reported (pid, start time).
    pub(super) known_procs: BTreeSet<(i32, u64)>,
    pub(super) marker_watches: Vec<MarkerWatch>,
    /// How long the last single operation's shim call took.
    pub(super) last_latency: Duration,
    pub(super) second_daemons: u64,
}

/// The fault kind a step's violations belong to.
pub(super) fn op_kind(op: &Op) -> String {
    if op.command == Command::Burst {
        let kinds: BTreeSet<&str> = op.parallel.iter().filter_map(|o| o.fault.as_ref().map(Fault::kind)).collect();
        return match kinds.len() {
            0 => "no fault".into(),
            1 => kinds.into_iter().next().unwrap_or_default().into(),
            _ => "burst".into(),
        };
    }
    op.fault.as_ref().map_or("no fault", Fault::kind).to_string()
}

impl Runner {
    pub(super) fn record_fault(&mut self, fault: Option<&Fault>) {
        if let Some(f) = fault {
            Summary::bump(&mut self.summary.faults, f.kind());
        }
    }

    /// Run the shim; for a kill fault, `kill -9` the daemon `after_ms` into the call (or, for a
    /// `grandchild` through a kill, once the delegate's child runs) and restart it; for a
    /// non-UTF-8 DEL, with invalid bytes in `CNI_ARGS`.
    pub(super) fn shim(&mut self, command: Command, sb: &Sandbox, fault: Option<&Fault>) -> Result<ShimOutput> {
        match fault {
            Some(Fault::KillDaemon { after_ms }) => {
                let (c, shim) = (self.node.shim_call(command.as_str(), sb)?, self.node.shim_bin());
                let call = std::thread::spawn(move || run_shim(&c, &shim));
                std::thread::sleep(Duration::from_millis(*after_ms));
                self.kill_during(call, "")
            }
            Some(Fault::Grandchild { via: Via::KillDaemon, .. }) => {
                let (c, shim) = (self.node.shim_call(command.as_str(), sb)?, self.node.shim_bin());
                let call = std::thread::spawn(move || run_shim(&c, &shim));
                // The kill must come after the delegate started its child (which the delegate's
                // parent-death signal does not reach).
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut seen = false;
                while !call.is_finished() && Instant::now() < deadline {
                    seen = check::processes_of(&self.node, &sb.container_id)
                        .iter()
                        .any(|p| p.cmdline.contains(FAKE_CNI_CHILD_ARG));
                    if seen {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.kill_during(call, if seen { "grandchild: " } else { "grandchild (child not seen): " })
            }
            Some(Fault::NonUtf8Del { in_pod_name }) => {
                use std::os::unix::ffi::OsStrExt;
                let c = self.node.shim_call(command.as_str(), sb)?;
                let args = if *in_pod_name {
                    let mut name = sb.pod.clone().into_bytes();
                    name.extend_from_slice(b"\xff\xfe");
                    Node::cni_args(sb, &name)
                } else {
                    let mut args = Node::cni_args(sb, sb.pod.as_bytes());
                    args.extend_from_slice(b";K8S_POD_LABEL=\xff\xfe");
                    args
                };
                run_shim(&c.env("CNI_ARGS", std::ffi::OsStr::from_bytes(&args)), &self.node.shim_bin())
            }
            _ => self.node.shim(command.as_str(), sb),
        }
    }

    /// `kill -9` the daemon while `call` (a shim) may still run, restart it, and wait for the call.
    pub(super) fn kill_during(
        &mut self,
        call: std::thread::JoinHandle<Result<ShimOutput>>,
        what: &str,
    ) -> Result<ShimOutput> {
        self.sample();
        let when = if call.is_finished() { "kill after the operation" } else { "kill during the operation" };
        Summary::bump(&mut self.summary.outcomes, format!("{what}{when}"));
        let restart = self.node.kill_and_restart();
        let out = call.join().map_err(|_| anyhow!("the shim thread panicked"))?;
        match restart {
            Ok(problems) => self.restart_problems.extend(problems),
            Err(e) => return Err(e),
        }
        out
    }

    /// Run one operation; the violations it showed.
    pub(super) fn step(&mut self, op: &Op) -> Result<Vec<String>> {
        if op.command == Command::Burst {
            return self.burst(op);
        }
        Summary::bump(&mut self.summary.operations, op.command.as_str());
        let fault = op.fault.as_ref();
        let mut errs = Vec::new();
        // Node-level faults come first; the operation then runs as usual and must succeed.
        if let Some(f) = fault.filter(|f| f.before_operation()) {
            self.record_fault(Some(f));
            errs.extend(self.before_operation(f, op)?);
        }
        let Some(sb) = self.prepare(op)? else { return Ok(errs) };
        match fault {
            Some(f) if f.before_operation() => {}
            Some(f @ Fault::ClientDisconnect { after_ms, send_del }) => {
                self.record_fault(Some(f));
                errs.extend(self.client_disconnect(op, sb, *after_ms, *send_del)?);
                return Ok(errs);
            }
            Some(f @ Fault::SaturationTakeover { extra }) => {
                self.record_fault(Some(f));
                errs.extend(self.saturation(op, sb, *extra)?);
                return Ok(errs);
            }
            _ => self.record_fault(fault),
        }
        let injected = fault.filter(|f| !f.before_operation());
        self.node.inject_checked(injected)?;
        let started = Instant::now();
        let out = self.shim(op.command, &sb, injected);
        self.last_latency = started.elapsed();
        self.node.clear_checked(injected)?;
        errs.extend(self.judge(op, sb, out?)?);
        Ok(errs)
    }

    /// Several operations on distinct pods at once (the runtime works on many pods in
    /// parallel); only delegate faults, which belong to one pod.
    pub(super) fn burst(&mut self, op: &Op) -> Result<Vec<String>> {
        Summary::bump(&mut self.summary.operations, "BURST");
        let mut jobs = Vec::new();
        for sub in &op.parallel {
            Summary::bump(&mut self.summary.operations, sub.command.as_str());
            self.record_fault(sub.fault.as_ref());
            if let Some(sb) = self.prepare(sub)? {
                jobs.push((sub, sb));
            }
        }
        let node = &self.node;
        let outs: Vec<Result<ShimOutput>> = std::thread::scope(|s| {
            let calls: Vec<_> =
                jobs.iter().map(|(sub, sb)| s.spawn(move || node.shim(sub.command.as_str(), sb))).collect();
            calls.into_iter().map(|c| c.join().unwrap_or_else(|_| Err(anyhow!("the shim thread panicked")))).collect()
        });
        let mut errs = Vec::new();
        self.last_latency = Duration::ZERO; // not comparable: parallel work
        for ((sub, sb), out) in jobs.into_iter().zip(outs) {
            errs.extend(self.judge(sub, sb, out?)?.into_iter().map(|e| format!("{sub}: {e}")));
        }
        Ok(errs)
    }

    /// The sandbox the operation works on: made (ADD), looked up (CHECK: `None` when its ADD
    /// failed), or taken out of its slot (DEL).
    pub(super) fn prepare(&mut self, op: &Op) -> Result<Option<Sandbox>> {
        let slot = op.slot;
        if slot >= self.slots.len() {
            bail!("slot {slot} does not exist ({} pods)", self.slots.len());
        }
        match op.command {
            Command::Add => {
                if self.slots[slot].is_some() {
                    bail!("slot {slot} already holds a sandbox");
                }
                let sb = self.node.new_sandbox(
                    &format!("s{slot}-{}", op.index),
                    &format!("{}{}", self.node.netns_prefix, op.index),
                    &op.networks,
                )?;
                self.owners.insert(sb.container_id.clone(), (op_kind(op), sb.pod.clone()));
                self.slots[slot] = Some(Slot { sb: sb.clone(), attached: false });
                Ok(Some(sb))
            }
            Command::Check => match self.slots[slot].as_ref() {
                Some(Slot { sb, attached: true }) => Ok(Some(sb.clone())),
                _ => {
                    Summary::bump(&mut self.summary.outcomes, "CHECK skipped");
                    Ok(None)
                }
            },
            Command::Del => match self.slots[slot].take() {
                Some(Slot { sb, .. }) => Ok(Some(sb)),
                None => bail!("slot {slot} holds no sandbox to DEL"),
            },
            Command::Burst => bail!("a burst inside a burst"),
        }
    }
}
