//! What `/proc` says about processes, and pidfds (a handle on one exact process: signalling
//! or reaping it can never hit a recycled pid).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgid: i32,
}

/// `/proc/<pid>/stat`, if the process exists.
pub(crate) fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may contain anything, so split after the last ')'.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgid })
}

/// When a process started (field 22 of `/proc/<pid>/stat`, clock ticks after boot): with the
/// pid, it names one process for good.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// The command name of a process (`/proc/<pid>/comm`), `?` when it is gone.
pub(crate) fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// The value of `key` in a process's initial environment (`/proc/<pid>/environ`).
pub(crate) fn environ_value(pid: i32, key: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

/// The children of a process, from `/proc/<pid>/task/*/children` (every thread's: an orphan
/// is handed to one thread of its new parent). `None` when the kernel lacks the file
/// (`CONFIG_PROC_CHILDREN`).
pub(crate) fn children(pid: i32) -> Option<Vec<i32>> {
    // A process that is gone has no children.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Some(Vec::new()) };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok())),
            // The thread exited meanwhile.
            Err(_) if !task.path().exists() => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(_) => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Every pid in `/proc`.
pub(crate) fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Children of `parent` found by scanning every process (when `children` is unsupported).
pub(crate) fn children_by_scan(parent: i32) -> Vec<i32> {
    all_pids().into_iter().filter(|&p| stat(p).is_some_and(|s| s.ppid == parent)).collect()
}

/// A pidfd: one exact process, whatever happens to its pid.
#[derive(Debug)]
pub(crate) struct PidFd(OwnedFd);

/// What trying to reap a process answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reap {
    /// It was our zombie child and is gone now.
    Reaped,
    /// Still running.
    Alive,
    /// Not our child (someone else reaps it), or already reaped.
    NotOurs,
}

impl From<OwnedFd> for PidFd {
    fn from(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

impl From<PidFd> for OwnedFd {
    fn from(fd: PidFd) -> Self {
        fd.0
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PidFd {
    /// `pidfd_open(pid)` (Linux ≥ 5.3).
    #[allow(unsafe_code)]
    pub(crate) fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: a plain system call with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// SIGKILL this process (`pidfd_send_signal`); an exited process is not an error.
    pub(crate) fn kill(&self) {
        Self::borrowed_kill(self.0.as_fd());
    }

    /// SIGKILL the process of a pidfd owned elsewhere.
    #[allow(unsafe_code)]
    pub(crate) fn borrowed_kill(fd: BorrowedFd<'_>) {
        // SAFETY: a plain system call; the info pointer may be null.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Wait until the process exits and reap it (if it is this process's child).
    pub(crate) fn reap_blocking(&self) {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        while let Err(nix::errno::Errno::EINTR) = waitid(Id::PIDFd(self.0.as_fd()), WaitPidFlag::WEXITED) {}
    }

    /// Reap this process if it is our exited child; never blocks.
    pub(crate) fn try_reap(&self) -> Reap {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        match waitid(Id::PIDFd(self.0.as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
            Ok(WaitStatus::StillAlive) => Reap::Alive,
            Ok(_) => Reap::Reaped,
            Err(_) => Reap::NotOurs,
        }
    }
}

/// SIGKILL a process by pid, preferring a pidfd (kernels without pidfds: plain `kill`).
pub(crate) fn kill_pid(pid: i32, pidfd: Option<&PidFd>) {
    match pidfd {
        Some(fd) => fd.kill(),
        None => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert_eq!(s.ppid, nix::unistd::getppid().as_raw());
        assert!(!comm(me).is_empty());
        assert_eq!(comm(-5), "?");
        assert!(stat(-5).is_none());
        assert_eq!(environ_value(me, "PATH"), std::env::var("PATH").ok().filter(|_| environ_has_path()));
    }

    /// The initial environment holds PATH (the test harness runs with one).
    fn environ_has_path() -> bool {
        std::fs::read("/proc/self/environ").is_ok_and(|e| e.split(|b| *b == 0).any(|x| x.starts_with(b"PATH=")))
    }

    #[test]
    fn children_and_pidfd_reap() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let me = std::process::id() as i32;
        let kids = children(me).unwrap_or_else(|| children_by_scan(me));
        assert!(kids.contains(&pid), "{kids:?} lacks {pid}");
        let fd = PidFd::open(pid).unwrap();
        assert_eq!(fd.try_reap(), Reap::Alive);
        fd.kill();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fd.try_reap() == Reap::Alive {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Reaped through the pidfd: the Child's own wait finds nothing left.
        assert!(child.try_wait().is_err() || child.try_wait().unwrap().is_some());
    }
}
