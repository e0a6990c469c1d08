//! What a soak run did: printed at the end and written as JSON by `--out`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a run did; printed and written by `--out`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub pods: usize,
    pub fault_rate: f64,
    pub profile: String,
    pub ops_run: u64,
    pub seconds: f64,
    /// Operations by command.
    pub operations: BTreeMap<String, u64>,
    /// Outcomes: `ADD ok`, `ADD failed`, `CHECK skipped` (its ADD had failed), …
    pub outcomes: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    pub invariant_checks: u64,
    /// DELs under a cache fault that left something the orphan reconciler then removed (the
    /// namespace gone).
    pub deferred_cleanups: u64,
    /// What those DELs left, for the first few.
    pub deferred_examples: Vec<String>,
    /// Sandboxes removed at the end (DEL without faults, then nothing may remain).
    pub teardown_dels: u64,
    /// Leftovers (ports, files) that belonged to no attached sandbox after some step: each one
    /// is a leak, even if the orphan reconciler removed it later.
    pub leaks: Vec<String>,
    /// What was left after the final DELs: leaks nothing reclaimed.
    pub leaks_at_end: Vec<String>,
    /// Every invariant violation, with the operation it followed.
    pub violations: Vec<String>,
    pub daemon_restarts: u64,
    pub peak_rss_kib: u64,
    pub peak_fds: u64,
    pub peak_threads: u64,
    /// Set when the run failed: the operations to replay.
    pub replay_file: Option<PathBuf>,
}

impl Summary {
    pub fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
        *map.entry(key.into()).or_default() += 1;
    }

    pub fn print(&self) {
        println!("soak summary (seed {}, {} pods, fault rate {}):", self.seed, self.pods, self.fault_rate);
        println!("  operations: {} in {:.0} s {:?}", self.ops_run, self.seconds, self.operations);
        println!("  outcomes:   {:?}", self.outcomes);
        println!("  faults:     {} {:?}", self.faults.values().sum::<u64>(), self.faults);
        println!("  invariant checks: {}", self.invariant_checks);
        println!("  DELs under a cache fault finished by the orphan reconciler: {}", self.deferred_cleanups);
        for e in &self.deferred_examples {
            println!("    e.g. {e}");
        }
        println!("  teardown DELs: {}", self.teardown_dels);
        println!("  daemon restarts: {}", self.daemon_restarts);
        println!(
            "  daemon peak: RSS {:.1} MiB, {} fds, {} threads",
            self.peak_rss_kib as f64 / 1024.0,
            self.peak_fds,
            self.peak_threads
        );
        println!("  leaks at the end: {}", self.leaks_at_end.len());
        for l in &self.leaks_at_end {
            println!("    {l}");
        }
        println!("  leaks seen after a step: {}", self.leaks.len());
        for l in &self.leaks {
            println!("    {l}");
        }
        println!("  violations: {}", self.violations.len());
        for v in &self.violations {
            println!("    {v}");
        }
    }
}
