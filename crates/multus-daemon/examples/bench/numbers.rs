//! Numbers: statistics, units, and what /proc says about a process.

use serde_json::Value;
use serde_json::json;
use std::time::Duration;

pub fn stats(mut samples: Vec<f64>) -> Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let pct = |p: f64| samples.get(((n as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    json!({"n": samples.len(), "mean_ms": round(mean), "p50_ms": round(pct(0.5)), "p99_ms": round(pct(0.99)), "max_ms": round(pct(1.0))})
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

pub fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// CPU time (ms) from a `/proc/.../stat` line: own (user+system) and reaped children's.
pub fn stat_cpu(stat: &str) -> (f64, f64) {
    let tick = 1000.0 / clock_ticks();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    ((at(11) + at(12)) * tick, (at(13) + at(14)) * tick)
}

pub fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |t| t as f64)
}

/// CPU spent so far by each party of a run (ms).
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub daemon: f64,
    pub daemon_children: f64,
    pub mock: f64,
    pub caller: f64,
    pub caller_children: f64,
}

impl Cpu {
    pub fn now(daemon_pid: Option<u32>) -> Self {
        let (daemon, daemon_children) = daemon_pid
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .map_or((0.0, 0.0), |s| stat_cpu(&s));
        let (me, caller_children) = std::fs::read_to_string("/proc/self/stat").map_or((0.0, 0.0), |s| stat_cpu(&s));
        // kube-mock runs in this process on threads named after it.
        let mock = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter(|s| s.contains("(kube-mock)"))
            .map(|s| stat_cpu(&s).0)
            .sum();
        Self { daemon, daemon_children, mock, caller: me - mock, caller_children }
    }

    pub fn since(self, before: Self, pods: usize) -> Value {
        let per = |a: f64, b: f64| round((a - b) / pods.max(1) as f64);
        let d = (
            per(self.daemon, before.daemon),
            per(self.daemon_children, before.daemon_children),
            per(self.mock, before.mock),
            per(self.caller, before.caller),
            per(self.caller_children, before.caller_children),
        );
        json!({"daemon_ms": d.0, "daemon_plugins_ms": d.1, "mock_api_ms": d.2, "caller_ms": d.3, "caller_children_ms": d.4,
               "total_ms": round(d.0 + d.1 + d.2 + d.3 + d.4)})
    }
}
