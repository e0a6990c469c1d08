//! `cargo xtask soak`: random ADD/CHECK/DEL sequences over many pods against the real daemon and
//! shim, with Debian's plugins in real network namespaces, while faults are injected: delegates
//! that crash, hang or print garbage (fake-cni), an API server that is down, slow, failing or
//! dropping watches (kube-mock), `kill -9` of the daemon mid-ADD and mid-DEL, and a read-only or
//! full cache directory; and the leak paths of issue 21: a shim killed mid-ADD, delegates that
//! leave children behind or hold their stdout, a DEL with non-UTF-8 arguments, a second daemon
//! starting while the first is busy, the runtime's GC, and Multus uninstalled (its DaemonSet
//! deleted) with the API server fast or slow. After every step the invariants are checked (see
//! `docs/reliability.md`): no lease, link, cache file or process outlives its pod.
//!
//! The sequence depends only on the seed (see [`plan`]); a failing run writes it to a file that
//! `--replay` runs again, and prints the seed and count that regenerate it.

mod check;
mod node;
mod plan;
mod summary;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{self, Bins, ShimOutput, step};
use crate::util::{target_dir, with_cleanup};
use check::{ProcStats, SoakProcess};
use node::{Node, Sandbox, run_shim};
use plan::{Command, Fault, Op, Planner, ReplayFile, Via};
use summary::Summary;

#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// Seed of the operation sequence (default: from the clock; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 1000)]
    pub ops: u64,
    /// Stop after this long (e.g. 90s, 30m, 1h), whichever comes first.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Pod slots (at most this many sandboxes exist at once).
    #[arg(long, default_value_t = 12)]
    pub pods: usize,
    /// Probability that an operation runs under an injected fault.
    #[arg(long, default_value_t = 0.3)]
    pub fault_rate: f64,
    /// Run the operations of this file (written by a failing run) instead of planning.
    #[arg(long, conflicts_with = "seed")]
    pub replay: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Record every violation and go on (default: stop at the first).
    #[arg(long)]
    pub keep_going: bool,
    /// Bound on the daemon's open fds.
    #[arg(long, default_value_t = 128)]
    pub max_fds: u64,
    /// Bound on the daemon's RSS, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_rss_mib: u64,
    /// Skip `cargo build` (use what target/ holds).
    #[arg(long)]
    pub no_build: bool,
    /// The fault kinds that may be drawn: comma-separated kinds, or `all`, `classic` (the kinds
    /// before issue 21), `issue21`, `none`.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Run this multus-daemon binary instead of the build's (e.g. an older commit's, to see
    /// what the soak finds there). The shim, kube-mock and fake-cni stay the build's.
    #[arg(long)]
    pub daemon_bin: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?} (e.g. 90s, 30m, 1h)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {s:?} (s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

/// One slot's sandbox and whether its ADD succeeded (it then holds interfaces and files).
struct Slot {
    sb: Sandbox,
    attached: bool,
}

/// A deleted sandbox whose delegate left a child that writes a marker: none may appear after
/// the DEL completed (`existing` were there before), until `deadline`.
struct MarkerWatch {
    container: String,
    pod: String,
    kind: String,
    existing: BTreeSet<String>,
    deleted_at: Instant,
    deadline: Instant,
}

/// How long after a DEL the children of a `grandchild` delegate are watched for a marker.
const MARKER_WATCH: Duration = Duration::from_millis(node::GRANDCHILD_KILL_SLEEP_MS + 2000);
/// A process of a gone pod may show this long (being killed and reaped) before it counts.
const PROCESS_GRACE: Duration = Duration::from_secs(1);
/// How long a disconnected ADD may take to be finished and undone by the daemon.
const UNDO_BOUND: Duration = Duration::from_secs(15);
/// The ADD through the stdout-holder must answer this fast (the delegate timeout is 2 s).
const STDOUT_HOLDER_BOUND: Duration = Duration::from_millis(node::DELEGATE_TIMEOUT_SECS * 1000 / 2);
/// The background child's `argv[1]` (fake-cni's `child::CHILD_ARG`).
const FAKE_CNI_CHILD_ARG: &str = "spawned-child";
/// Connections held open (request head sent, body unfinished) during the takeover attempt:
/// with the ADDs' own, more than the daemon's 512 connection places.
const FLOOD_CONNECTIONS: usize = 512;
/// `/healthz` must answer this fast while ADDs are in flight.
const HEALTHZ_BOUND: Duration = Duration::from_secs(1);

struct Runner {
    node: Node,
    slots: Vec<Option<Slot>>,
    summary: Summary,
    known_leaks: BTreeSet<String>,
    max_fds: u64,
    max_rss_kib: u64,
    /// Failed daemon starts since the last step was judged (violations).
    restart_problems: Vec<String>,
    /// Violations found outside a step's own judgement, with the fault kind they belong to
    /// (a process or a marker of a pod deleted earlier).
    late: Vec<(String, String)>,
    /// Every sandbox ever made: container ID → (fault kind of its ADD, pod), to attribute them.
    owners: HashMap<String, (String, String)>,
    /// Processes already reported (pid, start time).
    known_procs: BTreeSet<(i32, u64)>,
    marker_watches: Vec<MarkerWatch>,
    /// How long the last single operation's shim call took.
    last_latency: Duration,
    second_daemons: u64,
}

/// The fault kind a step's violations belong to.
fn op_kind(op: &Op) -> String {
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

pub fn run(args: SoakArgs) -> Result<()> {
    if let Err(why) = harness::real_delegates_available() {
        bail!("cannot run the soak: {why}");
    }
    let (seed, pods, fault_rate, kinds, replay) = match &args.replay {
        Some(file) => {
            let r: ReplayFile = serde_json::from_str(
                &std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
            )
            .with_context(|| format!("{} is not a soak replay file", file.display()))?;
            (r.seed, r.pods, r.fault_rate, r.faults, Some(r.ops))
        }
        None => {
            let seed = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
            });
            let kinds = plan::parse_fault_kinds(&args.faults).map_err(|e| anyhow!("--faults: {e}"))?;
            (seed, args.pods.max(1), args.fault_rate.clamp(0.0, 1.0), kinds, None)
        }
    };
    if !args.no_build {
        step(format!("building ({})", harness::profile()));
        Bins::build_cmd().run()?;
    }
    with_cleanup(|| soak(&args, seed, pods, fault_rate, &kinds, replay))
}

fn soak(
    args: &SoakArgs,
    seed: u64,
    pods: usize,
    fault_rate: f64,
    kinds: &[String],
    replay: Option<Vec<Op>>,
) -> Result<()> {
    let all = plan::CLASSIC_KINDS.len() + plan::ISSUE21_KINDS.len();
    let faults_arg = if kinds.len() == all { String::new() } else { format!(" --faults {}", kinds.join(",")) };
    step(format!("soak: seed {seed}, {pods} pods, fault rate {fault_rate}, {} of {all} fault kinds", kinds.len()));
    let node = Node::start(args.daemon_bin.as_deref())?;
    step(format!("run directory {}", node.env.run.display()));
    let mut r = Runner {
        node,
        slots: (0..pods).map(|_| None).collect(),
        summary: Summary {
            seed,
            pods,
            fault_rate,
            fault_kinds: kinds.to_vec(),
            profile: harness::profile(),
            ..Summary::default()
        },
        known_leaks: BTreeSet::new(),
        max_fds: args.max_fds,
        max_rss_kib: args.max_rss_mib * 1024,
        restart_problems: Vec::new(),
        late: Vec::new(),
        owners: HashMap::new(),
        known_procs: BTreeSet::new(),
        marker_watches: Vec::new(),
        last_latency: Duration::ZERO,
        second_daemons: 0,
    };
    let started = Instant::now();
    let mut planner = Planner::with_faults(seed, pods, fault_rate, kinds);
    let mut replay = replay.map(|ops| ops.into_iter());
    let limit = if replay.is_some() { u64::MAX } else { args.ops };
    let mut done: Vec<Op> = Vec::new();
    let mut failed = false;
    while (done.len() as u64) < limit && args.duration.is_none_or(|d| started.elapsed() < d) {
        let op = match replay.as_mut() {
            Some(ops) => match ops.next() {
                Some(op) => op,
                None => break,
            },
            None => planner.next_op(),
        };
        done.push(op.clone());
        let kind = op_kind(&op);
        let mut errs = match r.step(&op) {
            Ok(errs) => errs,
            Err(e) => vec![format!("the step could not be carried out: {e:#}")],
        };
        errs.append(&mut r.restart_problems);
        errs.extend(r.global_checks());
        // Keep going with a daemon even after one would not start (each failure is reported).
        let mut fatal = false;
        if !r.node.daemon_running() {
            match r.node.ensure_daemon(&[]) {
                Ok(problems) => errs.extend(problems),
                Err(e) => {
                    errs.push(format!("{e:#}"));
                    fatal = true;
                }
            }
        }
        let mut problems: Vec<(String, String)> = errs.into_iter().map(|e| (kind.clone(), e)).collect();
        problems.append(&mut r.late);
        if !fatal {
            r.summary.ops_run += 1;
        }
        if !problems.is_empty() {
            println!("FAIL {op}");
            for (k, e) in &problems {
                println!("       [{k}] {e}");
            }
            for (k, e) in problems {
                r.summary.violation(&k, format!("after {op}: [{k}] {e}"));
            }
            failed = true;
            if fatal || !args.keep_going {
                break;
            }
        }
        if r.summary.ops_run.is_multiple_of(100) {
            println!(
                "    {} ops, {:.0} s, {} faults, {} restarts, {} violations",
                r.summary.ops_run,
                started.elapsed().as_secs_f64(),
                r.summary.faults.values().sum::<u64>(),
                r.node.restarts,
                r.summary.violations.len()
            );
        }
    }
    // The end: every sandbox left is deleted (no faults), then nothing may remain at all.
    let mut end: Vec<(String, String)> = r.teardown().into_iter().map(|e| ("teardown".to_string(), e)).collect();
    end.append(&mut r.late);
    if !end.is_empty() {
        println!("FAIL teardown");
        for (k, e) in &end {
            println!("       [{k}] {e}");
        }
        for (k, e) in end {
            r.summary.violation(&k, format!("at the end: [{k}] {e}"));
        }
        failed = true;
    }
    r.summary.finish();
    r.summary.seconds = started.elapsed().as_secs_f64();
    r.summary.daemon_restarts = r.node.restarts;
    r.summary.leaks = r.known_leaks.iter().cloned().collect();
    if failed {
        let dir = target_dir().join("soak");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("soak-{seed}.ops.json"));
        let replay = ReplayFile { seed, pods, fault_rate, faults: kinds.to_vec(), ops: done.clone() };
        std::fs::write(&file, serde_json::to_vec_pretty(&replay)?)?;
        for (log, name) in
            [(r.node.env.daemon_log(), "daemon"), (r.node.env.run.join("logs/kube-mock.log"), "kube-mock")]
        {
            let _ = std::fs::copy(&log, dir.join(format!("soak-{seed}.{name}.log")));
        }
        r.summary.replay_file = Some(file);
    }
    r.summary.print();
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(&r.summary)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if failed {
        let file = r.summary.replay_file.clone().unwrap_or_default();
        println!("the operations run, in order:");
        for op in &done {
            println!("  {op}");
        }
        bail!(
            "soak failed: {} violation(s) {:?}, {} leak(s). Replay:\n  cargo xtask soak --replay {}\nor regenerate:\n  cargo xtask soak --seed {seed} --ops {} --pods {pods} --fault-rate {fault_rate}{faults_arg}\n(logs: {}/soak-{seed}.*.log)",
            r.summary.violations.len(),
            r.summary.violations_by_kind,
            r.summary.leaks.len(),
            file.display(),
            done.len(),
            target_dir().join("soak").display()
        );
    }
    println!("soak: {} operations, no violations, no leaks", r.summary.ops_run);
    Ok(())
}

impl Runner {
    fn record_fault(&mut self, fault: Option<&Fault>) {
        if let Some(f) = fault {
            Summary::bump(&mut self.summary.faults, f.kind());
        }
    }

    /// Run the shim; for a kill fault, `kill -9` the daemon `after_ms` into the call (or, for a
    /// `grandchild` through a kill, once the delegate's child runs) and restart it; for a
    /// non-UTF-8 DEL, with invalid bytes in `CNI_ARGS`.
    fn shim(&mut self, command: Command, sb: &Sandbox, fault: Option<&Fault>) -> Result<ShimOutput> {
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
    fn kill_during(&mut self, call: std::thread::JoinHandle<Result<ShimOutput>>, what: &str) -> Result<ShimOutput> {
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
    fn step(&mut self, op: &Op) -> Result<Vec<String>> {
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
    fn burst(&mut self, op: &Op) -> Result<Vec<String>> {
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
    fn prepare(&mut self, op: &Op) -> Result<Option<Sandbox>> {
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

    /// Judge the shim's answer and what the operation left; the violations.
    fn judge(&mut self, op: &Op, sb: Sandbox, out: ShimOutput) -> Result<Vec<String>> {
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
    fn stdout_holder(&mut self, sb: &Sandbox, out: &ShimOutput, latency: Duration) -> Vec<String> {
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
    fn after_pod_gone(&mut self, sb: &Sandbox, kind: &str) -> Vec<String> {
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
    fn before_operation(&mut self, fault: &Fault, op: &Op) -> Result<Vec<String>> {
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
    fn gc(&mut self, listed: &[usize], checked_by_op: usize) -> Result<Vec<String>> {
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
    fn stop_daemon_pod(&mut self, delete: bool, slow_ms: Option<u64>) -> Result<Vec<String>> {
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

    /// An ADD through `slower-net` whose shim is killed (SIGKILL, by PID) `after_ms` in, as a
    /// runtime's timeout or a crash does. The runtime then sends DEL (`send_del`) or not; either
    /// way the daemon must finish and undo the ADD, and within [`UNDO_BOUND`] nothing of the
    /// sandbox may be left: links, files, processes, the network-status annotation. The
    /// runtime forgets the sandbox (the planner freed its slot).
    fn client_disconnect(&mut self, op: &Op, sb: Sandbox, after_ms: u64, send_del: bool) -> Result<Vec<String>> {
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
    fn saturation(&mut self, op: &Op, sb: Sandbox, extra: u32) -> Result<Vec<String>> {
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
    fn reconciled(&mut self, fault: &Fault, sb: &Sandbox, left: &[String]) -> Result<Vec<String>> {
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

    /// Read the daemon's fds/RSS/threads into the peaks; violations of the bounds.
    fn sample(&mut self) -> Vec<String> {
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
    fn global_checks(&mut self) -> Vec<String> {
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
    fn process_and_marker_checks(&mut self) {
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
    fn teardown(&mut self) -> Vec<String> {
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
    fn inject_checked(&self, fault: Option<&Fault>) -> Result<()> {
        fault.map_or(Ok(()), |f| self.inject(f).with_context(|| format!("injecting {}", f.kind())))
    }
    fn clear_checked(&self, fault: Option<&Fault>) -> Result<()> {
        fault.map_or(Ok(()), |f| self.clear(f).with_context(|| format!("clearing {}", f.kind())))
    }
}

#[cfg(test)]
mod tests;
