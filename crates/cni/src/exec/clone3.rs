//! The `clone3` system call as plugins are started with it: into a cgroup, with a pidfd (see
//! [`super::clone`] for why), and the probe telling whether this kernel and hierarchy allow it.

use super::contain::procfs::PidFd;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `CLONE_INTO_CGROUP` (not in the libc crate).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args`, version 2 (with `cgroup`, Linux ≥ 5.7).
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[allow(unsafe_code)]
pub(super) fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `clone3` with `args`: the child's view is `Ok(0)`.
#[allow(unsafe_code)]
pub(super) fn clone3(args: &mut CloneArgs) -> io::Result<i32> {
    // SAFETY: clone3 without CLONE_VM duplicates the process like fork; `args` is a valid
    // clone_args of the size passed.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::from_mut(args), size_of::<CloneArgs>()) };
    if pid < 0 { Err(io::Error::last_os_error()) } else { Ok(pid as i32) }
}

pub(super) fn clone_args(cgroup: &OwnedFd, pidfd: &mut RawFd) -> CloneArgs {
    CloneArgs {
        flags: CLONE_INTO_CGROUP | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::from_mut(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    }
}

/// Start a child in `cgroup` that exits at once: whether plugins can be started this way.
#[allow(unsafe_code)]
pub(crate) fn probe(cgroup: &OwnedFd) -> io::Result<()> {
    let mut pidfd: RawFd = -1;
    let mut args = clone_args(cgroup, &mut pidfd);
    if clone3(&mut args)? == 0 {
        // SAFETY: in the child: only _exit.
        unsafe { libc::_exit(0) }
    }
    let fd = PidFd::from(own(pidfd));
    fd.reap_blocking();
    Ok(())
}
