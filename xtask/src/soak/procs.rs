//! The processes of a soak run, found in /proc by its marker variable or its bin dir, and
//! their resource use.

use std::path::Path;

/// Set in the daemon's environment, so every delegate it runs and everything those start carry
/// it (`MULTUS_SOAK_RUN=<run id>`): how the soak finds the processes of its run.
pub const MARKER_VAR: &str = "MULTUS_SOAK_RUN";

/// The daemon's open fds, RSS (KiB) and threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub fds: u64,
    pub rss_kb: u64,
    pub threads: u64,
}

pub fn proc_stats(pid: i32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcStats { fds, rss_kb: field("VmRSS:"), threads: field("Threads:") })
}

/// A process of the run: started from its bin dir, or carrying its marker variable (every
/// delegate the daemon runs, and whatever a delegate starts, inherits the daemon's environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakProcess {
    pub pid: i32,
    /// Start time (clock ticks since boot): with the pid, names the process across scans.
    pub start: u64,
    pub ppid: i32,
    pub cmdline: String,
    /// Its `CNI_CONTAINERID`, if it has one: the sandbox it works for.
    pub container: Option<String>,
}

impl std::fmt::Display for SoakProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} (ppid {}) `{}`", self.pid, self.ppid, self.cmdline)?;
        if let Some(c) = &self.container {
            write!(f, " CNI_CONTAINERID={}", short(c))?;
        }
        Ok(())
    }
}

/// The first 12 characters of a container ID.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Every live (not zombie) process whose environment holds `MULTUS_SOAK_RUN=<marker>` or whose
/// `argv[0]` is in `bin_dir`, but those in `exclude` (the daemon).
pub fn soak_processes(marker: &str, bin_dir: &Path, exclude: &[i32]) -> Vec<SoakProcess> {
    let wanted = format!("{}={marker}", MARKER_VAR);
    let bin_prefix = format!("{}/", bin_dir.display());
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid == me || exclude.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid … starttime(22nd field)
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            continue;
        }
        let ppid = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let start = fields.get(19).and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline: Vec<String> = std::fs::read(e.path().join("cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let marked = vars.contains(&wanted.as_bytes());
        let from_bin = cmdline.first().is_some_and(|a| a.starts_with(&bin_prefix));
        if !marked && !from_bin {
            continue;
        }
        let container = vars
            .iter()
            .find_map(|v| v.strip_prefix(b"CNI_CONTAINERID="))
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .filter(|c| !c.is_empty());
        out.push(SoakProcess { pid, start, ppid, cmdline: cmdline.join(" "), container });
    }
    out
}
