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
mod faults;
mod host;
mod invariants;
mod judge;
mod node;
mod plan;
mod procs;
mod rng;
mod runner;
mod scenarios;
mod summary;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{self, Bins, step};
use crate::util::{target_dir, with_cleanup};
use node::Node;
use plan::{Op, Planner, ReplayFile};
use runner::*;
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

#[cfg(test)]
mod tests;
