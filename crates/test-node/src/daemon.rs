//! multus-daemon as a real process: started with a config file, its stderr in a log file,
//! ready once it serves `/readyz` and has written its `00-multus.conf`, stopped by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cleanup::stop_child;
use crate::probe::{READYZ, http_status};

/// Does the daemon behind `socket` answer `/readyz` with 200?
pub fn ready(socket: &Path) -> bool {
    http_status(socket, READYZ) == Some(200)
}

/// Why a daemon did not get ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Its process exited.
    Exited,
    /// Still not ready after this long.
    TimedOut(Duration),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited => write!(f, "multus-daemon exited"),
            Self::TimedOut(t) => write!(f, "multus-daemon did not serve /readyz and write its config within {t:?}"),
        }
    }
}

impl std::error::Error for NotReady {}

/// Wait (polling every `poll`, at most `timeout`) until the daemon behind `socket` answers
/// `/readyz` and `conf`, when given, is written; stop at once when `alive` says it is gone.
/// When `/readyz` first answered (a benchmark's ready time).
pub fn wait_ready(
    socket: &Path,
    conf: Option<&Path>,
    timeout: Duration,
    poll: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<Instant, NotReady> {
    let deadline = Instant::now() + timeout;
    let mut ready_at = None;
    while Instant::now() < deadline {
        if ready(socket) {
            let at = *ready_at.get_or_insert_with(Instant::now);
            if conf.is_none_or(|c| std::fs::metadata(c).is_ok_and(|m| m.len() > 0)) {
                return Ok(at);
            }
        }
        if !alive() {
            return Err(NotReady::Exited);
        }
        std::thread::sleep(poll);
    }
    Err(NotReady::TimedOut(timeout))
}

/// A running multus-daemon, stopped (SIGTERM, then SIGKILL after 5 s) on drop.
pub struct DaemonProcess {
    /// Always `Some` until [`DaemonProcess::into_child`] takes it.
    child: Option<Child>,
    log: PathBuf,
    started: Instant,
}

impl DaemonProcess {
    /// `bin -config <config>`; the caller adds arguments and environment to the command.
    pub fn command(bin: &Path, config: &Path) -> Command {
        let mut c = Command::new(bin);
        c.arg("-config").arg(config);
        c
    }

    /// Start `command` with stdout discarded and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        command.stdout(Stdio::null()).stderr(file);
        Self::start(command, log)
    }

    /// Start `command` with stdin closed and both stdout and stderr appended to `log` (a
    /// daemon that is not multus-rs, or a wrapper command, may write either).
    pub fn spawn_all_output_logged(mut command: Command, log: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        Self::start(command, log)
    }

    fn start(mut command: Command, log: &Path) -> std::io::Result<Self> {
        let started = Instant::now();
        let child = command.spawn()?;
        Ok(Self { child: Some(child), log: log.to_path_buf(), started })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `timeout` until `socket` answers `/readyz` and `conf` (when given) exists;
    /// the log when the daemon exits or does not get there.
    pub fn wait_ready(&mut self, socket: &Path, conf: Option<&Path>, timeout: Duration) -> Result<(), String> {
        self.wait_ready_every(socket, conf, timeout, Duration::from_millis(50)).map(drop)
    }

    /// [`DaemonProcess::wait_ready`] polling every `poll`; the time from the start until
    /// `/readyz` first answered (as precise as `poll`, for benchmarks).
    pub fn wait_ready_every(
        &mut self,
        socket: &Path,
        conf: Option<&Path>,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Duration, String> {
        let started = self.started;
        match wait_ready(socket, conf, timeout, poll, || self.exited().is_none()) {
            Ok(at) => Ok(at.duration_since(started)),
            Err(NotReady::Exited) => {
                let status = self.exited().map(|s| s.to_string()).unwrap_or_default();
                Err(format!("multus-daemon exited early with {status}:\n{}", self.log()))
            }
            Err(NotReady::TimedOut(_)) => Err(format!("multus-daemon did not become ready:\n{}", self.log())),
        }
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM by PID and wait (SIGKILL after `grace`).
    pub fn stop(mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, grace);
        }
    }

    /// SIGKILL by PID and reap: a crash, no shutdown work.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process, no longer stopped on drop (for tests that signal it themselves).
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the daemon's process")
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop_child(child, Duration::from_secs(5));
        }
    }
}
