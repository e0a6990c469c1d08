//! multus-daemon as test-node's [`DaemonProcess`], also on xtask's cleanup stack: shared with
//! the cleanup action, so the end of the run or a Ctrl-C stops it while xtask may still stop,
//! kill or restart it itself.

use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use test_node::DaemonProcess;

use crate::util::{Deferred, defer};

type Slot = Arc<Mutex<Option<DaemonProcess>>>;

/// A running multus-daemon whose stop is registered with [`defer`].
pub struct StackedDaemon {
    slot: Slot,
    guard: Deferred,
    pid: u32,
}

impl StackedDaemon {
    /// Start `command` (stdin closed, stdout discarded, stderr appended to `log`) in its own
    /// process group, so a terminal's Ctrl-C reaches only xtask, which stops it in order.
    pub fn spawn(mut command: Command, log: &Path) -> Result<Self> {
        let program = command.get_program().to_string_lossy().into_owned();
        command.stdin(Stdio::null()).process_group(0);
        let daemon = DaemonProcess::spawn(command, log).with_context(|| format!("starting {program}"))?;
        let pid = daemon.pid();
        let slot: Slot = Arc::new(Mutex::new(Some(daemon)));
        let guard = {
            let slot = slot.clone();
            defer(format!("stop multus-daemon (pid {pid})"), move || drop(lock(&slot).take()))
        };
        Ok(Self { slot, guard, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Has not exited (and was not stopped by the cleanup stack).
    pub fn running(&self) -> bool {
        lock(&self.slot).as_mut().is_some_and(|d| d.exited().is_none())
    }

    /// SIGKILL by PID (a crash) and reap; off the cleanup stack.
    pub fn kill(self) {
        if let Some(d) = self.take() {
            d.kill();
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; off the cleanup stack.
    pub fn stop(self, grace: Duration) {
        if let Some(d) = self.take() {
            d.stop(grace);
        }
    }

    /// SIGTERM, as the kubelet stops its pod; how long it took to exit, `None` when it did
    /// not within `timeout` and was killed. Off the cleanup stack.
    pub fn terminate(self, timeout: Duration) -> Option<Duration> {
        let mut d = self.take()?;
        let started = std::time::Instant::now();
        let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if d.wait_exit(timeout).is_some() {
            return Some(started.elapsed());
        }
        d.kill();
        None
    }

    /// The process, its cleanup action dismissed (`None` if the cleanup stack took it first).
    fn take(self) -> Option<DaemonProcess> {
        let d = lock(&self.slot).take();
        self.guard.dismiss();
        d
    }
}

/// The slot, even after a panic elsewhere held its lock.
fn lock(slot: &Mutex<Option<DaemonProcess>>) -> MutexGuard<'_, Option<DaemonProcess>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}
