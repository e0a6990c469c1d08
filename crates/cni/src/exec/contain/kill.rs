//! What a kill of contained processes waits for, and what it reports: the processes killed,
//! those that outlived the wait, and what a reap of leftovers found.

use super::procfs;
use std::fmt;
use std::time::{Duration, Instant};

/// How long a kill waits for the cgroup to empty before giving up (a process stuck in an
/// uninterruptible sleep, say on a hung NFS mount, cannot die before it wakes).
pub(crate) const KILL_PATIENCE: Duration = Duration::from_secs(10);

/// A process that was killed (or could not be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainedProcess {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`/proc/<pid>/comm`; `?` when it was already gone).
    pub comm: String,
}

impl fmt::Display for ContainedProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.pid, self.comm)
    }
}

/// Joins processes as `1 (a), 2 (b)`.
pub(crate) fn list(procs: &[ContainedProcess]) -> String {
    procs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// What [`RawExec::reap_leftovers`](crate::exec::RawExec::reap_leftovers) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Processes of earlier invocations in this scope that were still running, now killed.
    pub killed: Vec<ContainedProcess>,
    /// Processes that were still there when the wait for them ended (stuck in the kernel).
    pub survivors: Vec<ContainedProcess>,
    /// Invocation cgroups removed (empty ones included).
    pub cgroups_removed: usize,
}

impl Leftovers {
    /// Nothing was found.
    pub fn is_empty(&self) -> bool {
        self.killed.is_empty() && self.survivors.is_empty() && self.cgroups_removed == 0
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "killed {} process(es)", self.killed.len())?;
        if !self.killed.is_empty() {
            write!(f, " [{}]", list(&self.killed))?;
        }
        write!(f, ", removed {} cgroup(s)", self.cgroups_removed)?;
        if !self.survivors.is_empty() {
            write!(f, "; still running after {:?}: [{}]", KILL_PATIENCE, list(&self.survivors))?;
        }
        Ok(())
    }
}

/// Kill `found` (pidfds first, so a recycled pid is never hit) and wait until `rescan` finds
/// nothing, bounded; reaps those that are this process's children, except `spare`.
pub(super) fn kill_and_wait(
    found: &[i32],
    spare: Option<i32>,
    rescan: impl Fn() -> Vec<i32>,
) -> (Vec<ContainedProcess>, Vec<ContainedProcess>) {
    let deadline = Instant::now() + KILL_PATIENCE;
    let mut seen: Vec<(ContainedProcess, Option<procfs::PidFd>)> = Vec::new();
    let mut current = found.to_vec();
    let mut delay = Duration::from_micros(500);
    loop {
        for &pid in &current {
            if !seen.iter().any(|(p, _)| p.pid == pid) {
                seen.push((ContainedProcess { pid, comm: procfs::comm(pid) }, procfs::PidFd::open(pid).ok()));
            }
            let fd = seen.iter().find(|(p, _)| p.pid == pid).and_then(|(_, fd)| fd.as_ref());
            procfs::kill_pid(pid, fd);
        }
        for (p, fd) in &mut seen {
            if Some(p.pid) != spare
                && let Some(f) = fd
                && f.try_reap() != procfs::Reap::Alive
            {
                *fd = None;
            }
        }
        // A zombie that is not ours is dead: its parent reaps it.
        current = rescan().into_iter().filter(|&p| procfs::stat(p).is_some_and(|s| s.state != 'Z')).collect();
        if current.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let survivors = current.iter().map(|&pid| ContainedProcess { pid, comm: procfs::comm(pid) }).collect();
            return (seen.into_iter().map(|(p, _)| p).collect(), survivors);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    (seen.into_iter().map(|(p, _)| p).collect(), Vec::new())
}
