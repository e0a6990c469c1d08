//! What a plugin process does between `fork` and `exec`, in the child.
//!
//! - It is in its invocation's cgroup before it runs a line of the plugin, so that everything
//!   it will ever start is in that cgroup and nothing escapes a kill, `setsid` and double
//!   forks included (see `contain.rs`): created there (`clone3(CLONE_INTO_CGROUP)`, see
//!   `clone.rs`), or — cgroup v1, older kernels — moving itself in first thing by writing `0`
//!   to the cgroup's `cgroup.procs` (opened by the parent before the fork).
//! - Its own process group (`setpgid(0, 0)`, through `process_group(0)`), so a timeout or a
//!   cancelled request can also kill the plugin's group with one `killpg` (the whole
//!   containment when no cgroup can be used).
//! - `PR_SET_PDEATHSIG(SIGKILL)`, so a plugin never outlives a killed daemon and finishes an ADD
//!   after the runtime's DEL. The signal fires when the *thread* that forked the child exits,
//!   which is why every plugin is forked by the spawner thread ([`super::spawner`]), which lives
//!   as long as the process. The parent may already be gone by the time the child sets the
//!   signal; `getppid()` compared with the pid recorded before `fork` closes that race.
//! - With a chroot directory: `chroot(dir)` then `chdir("/")`. The Go daemon leaves the working
//!   directory outside the new root (shell plugins then fail in `getcwd`, upstream #1308); this
//!   is a deliberate difference.
//!
//! The parent-death signal reaches only the plugin itself, not what it forked: those stay in
//! the invocation's cgroup, which the next daemon instance empties
//! ([`RawExec::reap_leftovers`](super::RawExec::reap_leftovers)).

use nix::sys::signal::Signal;
use nix::unistd::{Pid, chdir, chroot, getppid};
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Everything the child needs, prepared in the parent (the child must not allocate: another
/// thread may have held the allocator's lock at the moment of `fork`).
#[derive(Debug, Clone)]
pub(crate) struct ChildSetup {
    /// This process, recorded before `fork`: the child's expected parent.
    parent: Pid,
    /// The new root, if any.
    root: Option<CString>,
    /// The invocation cgroup's `cgroup.procs`, opened (close-on-exec) before the fork. Shared,
    /// so it stays open until the command is dropped after the spawn.
    cgroup_procs: Option<Arc<OwnedFd>>,
}

impl ChildSetup {
    pub(crate) fn new(chroot_dir: Option<&Path>, cgroup_procs: Option<Arc<OwnedFd>>) -> io::Result<Self> {
        let root = chroot_dir
            .map(|dir| CString::new(dir.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the chroot directory contains a NUL byte"))?;
        Ok(Self { parent: Pid::this(), root, cgroup_procs })
    }

    /// Runs in the child, after `fork` and before `exec`: async-signal-safe system calls only
    /// (`write`, `prctl`, `getppid`, `chroot`, `chdir`), no allocation. An error aborts the
    /// start; the parent's spawn then fails with that `errno`.
    pub(crate) fn apply(&self) -> io::Result<()> {
        if let Some(procs) = &self.cgroup_procs {
            // "0": the writing process. Before anything else, so nothing escapes the cgroup.
            nix::unistd::write(&**procs, b"0")?;
        }
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        if getppid() != self.parent {
            // The daemon died between fork and prctl: the signal will never come.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if let Some(root) = &self.root {
            chroot(root.as_c_str())?;
            chdir(c"/")?;
        }
        Ok(())
    }

    /// Make `cmd` start its process as described in the module documentation.
    #[allow(unsafe_code)]
    pub(crate) fn install(self, cmd: &mut tokio::process::Command) {
        cmd.process_group(0);
        // SAFETY: `apply` runs between fork and exec; it makes only async-signal-safe system
        // calls on data prepared before the fork and does not allocate.
        unsafe {
            cmd.pre_exec(move || self.apply());
        }
    }
}
