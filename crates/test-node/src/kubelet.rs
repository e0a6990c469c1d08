//! The fake kubelet (crates/fake-kubelet): the pod-resources gRPC API on a unix socket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cleanup::stop_child;

/// A running `fake-kubelet`, stopped by PID on drop.
pub struct FakeKubelet {
    child: Child,
    socket: PathBuf,
}

impl FakeKubelet {
    /// Start `bin --socket <socket> <args…>` and wait for its `listening on unix://…` line.
    pub fn start(bin: &Path, socket: &Path, args: &[String]) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start fake-kubelet: {e}"))?;
        let mut first = String::new();
        let stdout = child.stdout.take().ok_or("fake-kubelet's stdout")?;
        let _ = BufReader::new(stdout).read_line(&mut first);
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
