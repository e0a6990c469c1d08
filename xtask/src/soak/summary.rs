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
    /// The fault kinds that could be drawn (`--faults`).
    pub fault_kinds: Vec<String>,
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
    /// Violations by the fault kind they belong to (`no fault` for plain operations).
    pub violations_by_kind: BTreeMap<String, u64>,
    /// The first few violations of each kind.
    pub violation_examples: BTreeMap<String, Vec<String>>,
    /// Processes of the run that outlived their pod (pid, command line, sandbox).
    pub leaked_processes: Vec<String>,
    /// Marker files written by a delegate's child after its pod's DEL had completed.
    pub late_markers: Vec<String>,
    /// Latencies (ms): ADDs by kind (`no fault`: single ADDs that succeeded; `stdout-holder`),
    /// a disconnected ADD's kill until nothing of it is left, a SIGTERM until the daemon exited,
    /// a second daemon's start until its refusal.
    pub latency_ms: BTreeMap<String, Latency>,
    #[serde(skip)]
    pub latencies: BTreeMap<String, Vec<u64>>,
    pub daemon_restarts: u64,
    pub peak_rss_kib: u64,
    pub peak_fds: u64,
    pub peak_threads: u64,
    /// Set when the run failed: the operations to replay.
    pub replay_file: Option<PathBuf>,
}

/// Latency figures of a set of operations, in ms.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Latency {
    pub count: usize,
    pub min: u64,
    pub median: u64,
    pub p95: u64,
    pub max: u64,
    /// Every value, for small sets (at most 50).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<u64>,
}

impl Latency {
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
        Self {
            count: v.len(),
            min: v.first().copied().unwrap_or(0),
            median: at(0.5),
            p95: at(0.95),
            max: v.last().copied().unwrap_or(0),
            values: if values.len() <= 50 { values.to_vec() } else { Vec::new() },
        }
    }
}

/// How many examples of each violation kind the summary keeps, and how long each may be.
const EXAMPLES_PER_KIND: usize = 4;
const EXAMPLE_CHARS: usize = 600;

impl Summary {
    pub fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
        *map.entry(key.into()).or_default() += 1;
    }

    /// Record a violation that belongs to fault kind `kind`.
    pub fn violation(&mut self, kind: &str, text: String) {
        Self::bump(&mut self.violations_by_kind, kind);
        let examples = self.violation_examples.entry(kind.to_string()).or_default();
        if examples.len() < EXAMPLES_PER_KIND {
            let mut short: String = text.chars().take(EXAMPLE_CHARS).collect();
            if short.len() < text.len() {
                short.push_str(" […]");
            }
            examples.push(short);
        }
        self.violations.push(text);
    }

    pub fn latency(&mut self, kind: &str, ms: u64) {
        self.latencies.entry(kind.to_string()).or_default().push(ms);
    }

    /// Turn the recorded latencies into figures (at the end).
    pub fn finish(&mut self) {
        self.latency_ms = self.latencies.iter().map(|(k, v)| (k.clone(), Latency::of(v))).collect();
    }

    pub fn print(&self) {
        println!("soak summary (seed {}, {} pods, fault rate {}):", self.seed, self.pods, self.fault_rate);
        println!("  operations: {} in {:.0} s {:?}", self.ops_run, self.seconds, self.operations);
        println!("  outcomes:   {:?}", self.outcomes);
        println!("  faults:     {} {:?}", self.faults.values().sum::<u64>(), self.faults);
        if self.fault_kinds.len() < super::plan::CLASSIC_KINDS.len() + super::plan::ISSUE21_KINDS.len() {
            println!("  fault kinds enabled: {}", self.fault_kinds.join(","));
        }
        for (k, l) in &self.latency_ms {
            println!(
                "  latency ({k}): {} times, min {} ms, median {} ms, p95 {} ms, max {} ms",
                l.count, l.min, l.median, l.p95, l.max
            );
        }
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
        println!("  processes that outlived their pod: {}", self.leaked_processes.len());
        for p in self.leaked_processes.iter().take(10) {
            println!("    {p}");
        }
        println!("  markers written after their pod's DEL: {}", self.late_markers.len());
        for m in self.late_markers.iter().take(10) {
            println!("    {m}");
        }
        println!("  violations: {} {:?}", self.violations.len(), self.violations_by_kind);
        for (kind, examples) in &self.violation_examples {
            println!("    [{kind}] {} violation(s), e.g.:", self.violations_by_kind.get(kind).copied().unwrap_or(0));
            for e in examples {
                println!("      {e}");
            }
        }
    }
}
