//! What a plugin process does between `fork` and `exec`, in the child.
//!
//! - Its own process group (`setpgid(0, 0)`, through `process_group(0)`), so a timeout or a
//!   cancelled request can kill the plugin *and everything it forked* with one `killpg`.
//! - `PR_SET_PDEATHSIG(SIGKILL)`, so a plugin never outlives a killed daemon and finishes an ADD
//!   after the runtime's DEL. The signal fires when the *thread* that forked the child exits,
//!   which is why every plugin is forked by the spawner thread ([`super::spawner`]), which lives
//!   as long as the process. The parent may already be gone by the time the child sets the
//!   signal; `getppid()` compared with the pid recorded before `fork` closes that race.
//! - With a chroot directory: `chroot(dir)` then `chdir("/")`. The Go daemon leaves the working
//!   directory outside the new root (shell plugins then fail in `getcwd`, upstream #1308); this
//!   is a deliberate difference.
//!
//! Not covered: the processes a plugin forks are not the daemon's children, so the parent-death
//! signal does not reach them when the daemon dies; a timeout or a cancellation does, through
//! the process group.

use nix::sys::signal::Signal;
use nix::unistd::{Pid, chdir, chroot, getppid};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Everything the child needs, prepared in the parent (the child must not allocate: another
/// thread may have held the allocator's lock at the moment of `fork`).
#[derive(Debug, Clone)]
pub(crate) struct ChildSetup {
    /// This process, recorded before `fork`: the child's expected parent.
    parent: Pid,
    /// The new root, if any.
    root: Option<CString>,
}

impl ChildSetup {
    pub(crate) fn new(chroot_dir: Option<&Path>) -> io::Result<Self> {
        let root = chroot_dir
            .map(|dir| CString::new(dir.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the chroot directory contains a NUL byte"))?;
        Ok(Self { parent: Pid::this(), root })
    }

    /// Runs in the child, after `fork` and before `exec`: async-signal-safe system calls only
    /// (`prctl`, `getppid`, `chroot`, `chdir`), no allocation. An error aborts the start; the
    /// parent's spawn then fails with that `errno`.
    pub(crate) fn apply(&self) -> io::Result<()> {
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
