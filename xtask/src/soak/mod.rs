//! `cargo xtask soak`: random ADD/CHECK/DEL sequences over many pods against the real daemon and
//! shim, with Debian's plugins in real network namespaces, while faults are injected: delegates
//! that crash, hang or print garbage (fake-cni), an API server that is down, slow, failing or
//! dropping watches (kube-mock), `kill -9` of the daemon mid-ADD and mid-DEL, and a read-only or
//! full cache directory. After every step the invariants are checked (see `docs/reliability.md`).
//!
//! The sequence depends only on the seed (see [`plan`]); a failing run writes it to a file that
//! `--replay` runs again, and prints the seed and count that regenerate it.

mod check;
mod node;
mod plan;
mod summary;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{self, Bins, ShimOutput, step};
use crate::util::{target_dir, with_cleanup};
use check::ProcStats;
use node::{Node, Sandbox, run_shim};
use plan::{Command, Fault, Op, Planner, ReplayFile};
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

struct Runner {
    node: Node,
    slots: Vec<Option<Slot>>,
    summary: Summary,
    known_leaks: BTreeSet<String>,
    max_fds: u64,
    max_rss_kib: u64,
    /// Failed daemon starts since the last step was judged (violations).
    restart_problems: Vec<String>,
}

pub fn run(args: SoakArgs) -> Result<()> {
    if let Err(why) = harness::real_delegates_available() {
        bail!("cannot run the soak: {why}");
    }
    let (seed, pods, fault_rate, replay) = match &args.replay {
        Some(file) => {
            let r: ReplayFile = serde_json::from_str(
                &std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
            )
            .with_context(|| format!("{} is not a soak replay file", file.display()))?;
            (r.seed, r.pods, r.fault_rate, Some(r.ops))
        }
        None => {
            let seed = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
            });
            (seed, args.pods.max(1), args.fault_rate.clamp(0.0, 1.0), None)
        }
    };
    if !args.no_build {
        step(format!("building ({})", harness::profile()));
        Bins::build_cmd().run()?;
    }
    with_cleanup(|| soak(&args, seed, pods, fault_rate, replay))
}

fn soak(args: &SoakArgs, seed: u64, pods: usize, fault_rate: f64, replay: Option<Vec<Op>>) -> Result<()> {
    step(format!("soak: seed {seed}, {pods} pods, fault rate {fault_rate}"));
    let node = Node::start()?;
    step(format!("run directory {}", node.env.run.display()));
    let mut r = Runner {
        node,
        slots: (0..pods).map(|_| None).collect(),
        summary: Summary { seed, pods, fault_rate, profile: harness::profile(), ..Summary::default() },
        known_leaks: BTreeSet::new(),
        max_fds: args.max_fds,
        max_rss_kib: args.max_rss_mib * 1024,
        restart_problems: Vec::new(),
    };
    let started = Instant::now();
    let mut planner = Planner::new(seed, pods, fault_rate);
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
        let mut errs = match r.step(&op) {
            Ok(errs) => errs,
            Err(e) => vec![format!("the step could not be carried out: {e:#}")],
        };
        errs.append(&mut r.restart_problems);
        errs.extend(r.global_checks());
        // Keep going with a daemon even after one would not start (each failure is reported).
        if !r.node.daemon_running() {
            match r.node.ensure_daemon(&[]) {
                Ok(problems) => errs.extend(problems),
                Err(e) => {
                    errs.push(format!("{e:#}"));
                    println!("FAIL {op}");
                    r.summary.violations.extend(errs.into_iter().map(|e| format!("after {op}: {e}")));
                    failed = true;
                    break;
                }
            }
        }
        r.summary.ops_run += 1;
        if !errs.is_empty() {
            println!("FAIL {op}");
            for e in &errs {
                println!("       {e}");
            }
            r.summary.violations.extend(errs.into_iter().map(|e| format!("after {op}: {e}")));
            failed = true;
            if !args.keep_going {
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
    let end = r.teardown();
    if !end.is_empty() {
        println!("FAIL teardown");
        for e in &end {
            println!("       {e}");
        }
        r.summary.violations.extend(end.into_iter().map(|e| format!("at the end: {e}")));
        failed = true;
    }
    r.summary.seconds = started.elapsed().as_secs_f64();
    r.summary.daemon_restarts = r.node.restarts;
    r.summary.leaks = r.known_leaks.iter().cloned().collect();
    if failed {
        let dir = target_dir().join("soak");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("soak-{seed}.ops.json"));
        let replay = ReplayFile { seed, pods, fault_rate, ops: done.clone() };
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
            "soak failed: {} violation(s), {} leak(s). Replay:\n  cargo xtask soak --replay {}\nor regenerate:\n  cargo xtask soak --seed {seed} --ops {} --pods {pods} --fault-rate {fault_rate}\n(logs: {}/soak-{seed}.*.log)",
            r.summary.violations.len(),
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

    /// Run the shim; for a kill fault, `kill -9` the daemon `after_ms` into the call and restart it.
    fn shim(&mut self, command: Command, sb: &Sandbox, fault: Option<&Fault>) -> Result<ShimOutput> {
        let Some(Fault::KillDaemon { after_ms }) = fault else {
            return self.node.shim(command.as_str(), sb);
        };
        let (c, conf) = self.node.shim_command(command.as_str(), sb)?;
        let call = std::thread::spawn(move || run_shim(c, conf));
        std::thread::sleep(Duration::from_millis(*after_ms));
        self.sample();
        let when = if call.is_finished() { "kill after the operation" } else { "kill during the operation" };
        Summary::bump(&mut self.summary.outcomes, when);
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
        let Some(sb) = self.prepare(op)? else { return Ok(Vec::new()) };
        let fault = op.fault.as_ref();
        self.record_fault(fault);
        self.node.inject_checked(fault)?;
        let out = self.shim(op.command, &sb, fault);
        self.node.clear_checked(fault)?;
        self.judge(op, sb, out?)
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
        let mut errs = Vec::new();
        match op.command {
            Command::Add => {
                let delegate_fault = fault.and_then(Fault::delegate_nad);
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
                    if fault.is_none() {
                        errs.push(format!("ADD failed without an injected fault: {}", out.describe()));
                    }
                    // A daemon killed mid-ADD cannot roll back: the runtime's DEL does.
                    if !matches!(fault, Some(Fault::KillDaemon { .. })) {
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
                }
            }
            Command::Check => {
                if out.success {
                    Summary::bump(&mut self.summary.outcomes, "CHECK ok");
                } else {
                    Summary::bump(&mut self.summary.outcomes, "CHECK failed");
                    if fault.is_none() {
                        errs.push(format!("CHECK failed without an injected fault: {}", out.describe()));
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

    /// DEL every sandbox left, then nothing may remain: no file, no bridge port.
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
        errs.extend(self.global_checks());
        // Everything is deleted now: whatever remains is a leak nothing reclaimed.
        self.summary.leaks_at_end =
            check::state_files(&self.node).into_iter().map(|f| f.path.display().to_string()).collect();
        for bridge in [self.node.env.var("CLUSTER_BRIDGE").to_string(), self.node.env.var("NAD_BRIDGE").to_string()] {
            for port in check::bridge_ports(&bridge).unwrap_or_default() {
                self.summary.leaks_at_end.push(format!("port {port} of bridge {bridge}"));
            }
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
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
