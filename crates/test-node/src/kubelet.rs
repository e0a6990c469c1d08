//! The fake kubelet (crates/fake-kubelet): the pod-resources gRPC API on a unix socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::announce::spawn_announcing;
use crate::cleanup::stop_child;

/// A running `fake-kubelet`, stopped by PID on drop.
pub struct FakeKubelet {
    child: Child,
    socket: PathBuf,
}

impl FakeKubelet {
    /// Start `bin --socket <socket> <args…>` and wait for its `listening on unix://…` line.
    pub fn start(bin: &Path, socket: &Path, args: &[String]) -> Result<Self, String> {
        Self::start_with_stderr(bin, socket, args, Stdio::null())
    }

    /// [`FakeKubelet::start`] with its stderr (its log) written to the file `log`.
    pub fn start_logged(bin: &Path, socket: &Path, args: &[String], log: &Path) -> Result<Self, String> {
        let file = std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        Self::start_with_stderr(bin, socket, args, file.into())
    }

    fn start_with_stderr(bin: &Path, socket: &Path, args: &[String], stderr: Stdio) -> Result<Self, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("--socket").arg(socket).args(args);
        let (child, first) = spawn_announcing(&mut cmd, stderr).map_err(|e| format!("start fake-kubelet: {e}"))?;
        let mut kubelet = Self { child, socket: socket.to_path_buf() };
        if !first.starts_with("listening on unix://") {
            stop_child(&mut kubelet.child, Duration::from_secs(5));
            return Err(format!("fake-kubelet said {first:?}"));
        }
        Ok(kubelet)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The process (a test that signals it and waits for its exit).
    pub fn process(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}
