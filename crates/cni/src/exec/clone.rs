//! Starting a plugin directly inside its invocation cgroup: `clone3(CLONE_INTO_CGROUP |
//! CLONE_PIDFD)` (Linux ≥ 5.7, cgroup v2).
//!
//! Why not `fork` and then write `0` to the cgroup's `cgroup.procs` in the child: moving a
//! process between cgroups takes the kernel's global `cgroup_threadgroup_rwsem` for writing,
//! and that waits for an RCU grace period whenever no other move happened just before (the
//! semaphore is made cheap for its many readers — every `fork` — at the expense of writers;
//! the cgroup2 mount option `favordynmods` reverses that, system-wide). Measured on Linux 6.18:
//! 9–20 ms per plugin start when starts are tens of milliseconds apart, 25 µs back to back.
//! A process created *in* the cgroup is not moved: no grace period, no lock taken for writing.
//! That is the difference between a bridge ADD+DEL at +60 % and at +1 %.
//!
//! The child does what `std::process::Command` does before `exec` for our commands — stdio
//! onto 0/1/2, an empty signal mask, `SIGPIPE` back to its default, its own process group —
//! then [`ChildSetup::apply`] (parent-death signal, chroot), then `execve`. Its `errno` at a
//! failure comes back through a close-on-exec pipe, so a spawn fails exactly as `Command`'s.
//! The parent waits through the pidfd (readable once the process exits, and reaped with
//! `waitid(P_PIDFD)`: never a recycled pid).
//!
//! Between `clone3` and `execve` the child only makes system calls on memory prepared before
//! the clone: no allocation, no lock (another thread may have held one at the clone).

use super::ProcessExit;
use super::background;
use super::child::ChildSetup;
use super::clone3::{clone_args, clone3, own};
use super::contain::procfs::PidFd;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// A plugin start, prepared by the caller (everything the child needs, allocated up front).
pub(crate) struct Prepared {
    path: CString,
    env: Vec<CString>,
    setup: ChildSetup,
    /// The invocation cgroup's directory.
    cgroup: Arc<OwnedFd>,
}

impl Prepared {
    /// The process environment, then `overrides` in order (later keys win).
    pub(crate) fn new<'a>(
        path: &Path,
        overrides: impl Iterator<Item = (&'a str, &'a str)>,
        setup: ChildSetup,
        cgroup: Arc<OwnedFd>,
    ) -> io::Result<Self> {
        let nul = || io::Error::new(io::ErrorKind::InvalidInput, "nul byte found in provided data");
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (k, v) in overrides {
            vars.retain(|(key, _)| key.as_bytes() != k.as_bytes());
            vars.push((k.into(), v.into()));
        }
        let env = vars
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| nul())
            })
            .collect::<io::Result<Vec<_>>>()?;
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| nul())?;
        Ok(Self { path, env, setup, cgroup })
    }
}

/// A started plugin: its pid, pidfd and the parent's ends of its stdio pipes.
#[derive(Debug)]
pub(crate) struct RawChild {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

impl RawChild {
    /// SIGKILL it and reap it in the background (a request cancelled during the start).
    pub(crate) fn abandon(self) {
        let fd = PidFd::from(self.pidfd);
        fd.kill();
        background::run(move || fd.reap_blocking());
    }
}

/// A close-on-exec pipe whose ends are not 0, 1 or 2 (so that moving the child's ends onto
/// those never overwrites another).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let raw = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    Ok(own(raw))
}

/// Start the plugin (on the spawner thread: the parent-death signal follows the forking
/// thread).
#[allow(unsafe_code)]
pub(crate) fn spawn(p: &Prepared) -> io::Result<RawChild> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    // Prepared before the clone: the child must not allocate.
    let argv: [*const libc::c_char; 2] = [p.path.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let stdio = [(in_r.as_raw_fd(), 0), (out_w.as_raw_fd(), 1), (err_w.as_raw_fd(), 2)];
    let report = report_w.as_raw_fd();

    let mut pidfd: RawFd = -1;
    let mut args = clone_args(&p.cgroup, &mut pidfd);
    let pid = clone3(&mut args)?;
    if pid == 0 {
        // SAFETY: the child, between clone and exec: async-signal-safe system calls on data
        // prepared before the clone (see the module documentation).
        unsafe {
            let fail = |errno: i32| -> ! {
                let bytes = errno.to_ne_bytes();
                libc::write(report, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127)
            };
            let errno = || *libc::__errno_location();
            for (from, to) in stdio {
                if libc::dup2(from, to) < 0 {
                    fail(errno());
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                fail(errno());
            }
            if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
                fail(errno());
            }
            if libc::setpgid(0, 0) < 0 {
                fail(errno());
            }
            if let Err(e) = p.setup.apply() {
                fail(e.raw_os_error().unwrap_or(libc::EINVAL));
            }
            libc::execve(p.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(errno())
        }
    }
    let pidfd = PidFd::from(own(pidfd));
    drop((in_r, out_w, err_w, report_w));
    // The child's errno, if it failed before exec; nothing (end of file) once exec closed it.
    let mut buf = [0u8; 4];
    let mut got = 0;
    let mut report = std::fs::File::from(report_r);
    while got < buf.len() {
        match io::Read::read(&mut report, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                pidfd.kill();
                pidfd.reap_blocking();
                return Err(e);
            }
        }
    }
    if got > 0 {
        pidfd.reap_blocking();
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
    }
    Ok(RawChild { pid, pidfd: pidfd.into(), stdin: in_w, stdout: out_r, stderr: err_r })
}

/// A started plugin, waited for through its pidfd on the caller's runtime. Dropped before it
/// was reaped, it is killed and reaped in the background.
#[derive(Debug)]
pub(crate) struct PluginChild {
    pid: i32,
    /// `None` once reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl PluginChild {
    /// Register a started child with the current runtime; its stdio as tokio pipes.
    pub(crate) fn new(
        raw: RawChild,
    ) -> io::Result<(
        Self,
        tokio::net::unix::pipe::Sender,
        tokio::net::unix::pipe::Receiver,
        tokio::net::unix::pipe::Receiver,
    )> {
        use tokio::net::unix::pipe::{Receiver, Sender};
        let RawChild { pid, pidfd, stdin, stdout, stderr } = raw;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it (and its number) until
        // it is dropped or taken back with into_inner.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        let child = Self { pid, pidfd: Some(registered.map_err(io::Error::from)?) };
        Ok((child, Sender::from_owned_fd(stdin)?, Receiver::from_owned_fd(stdout)?, Receiver::from_owned_fd(stderr)?))
    }

    /// The pid while the process is not reaped.
    pub(crate) fn id(&self) -> Option<u32> {
        self.pidfd.as_ref().and_then(|_| u32::try_from(self.pid).ok())
    }

    /// SIGKILL it (nothing once reaped).
    pub(crate) fn start_kill(&self) {
        if let Some(fd) = &self.pidfd {
            PidFd::borrowed_kill(fd.get_ref().as_fd());
        }
    }

    /// Wait for the exit and reap.
    pub(crate) async fn wait(&mut self) -> io::Result<ProcessExit> {
        let Some(fd) = &self.pidfd else {
            return Err(io::Error::other("the plugin process was already reaped"));
        };
        let exit = wait_pidfd(fd).await?;
        self.pidfd = None;
        Ok(exit)
    }
}

/// Wait until the process of `fd` exits, and reap it.
async fn wait_pidfd(fd: &AsyncFd<OwnedFd>) -> io::Result<ProcessExit> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    loop {
        let mut ready = fd.readable().await?;
        match waitid(Id::PIDFd(fd.get_ref().as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
            Ok(WaitStatus::StillAlive) => ready.clear_ready(),
            Ok(WaitStatus::Exited(_, code)) => return Ok(ProcessExit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(ProcessExit::Signal(signal as i32)),
            Ok(_) => return Ok(ProcessExit::Code(-1)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Drop for PluginChild {
    fn drop(&mut self) {
        let Some(fd) = self.pidfd.take() else { return };
        let fd = PidFd::from(fd.into_inner());
        fd.kill();
        background::run(move || fd.reap_blocking());
    }
}
