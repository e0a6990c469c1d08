//! A private containerd (1.6, Debian's) for one e2e run: its own root, state, sockets and CNI
//! directories under the run directory, so it never touches the machine's own containerd (the one
//! Docker Engine uses) or /etc/cni.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{Cmd, Proc, wait_for};

/// Everything this containerd owns lives under `dir`.
#[derive(Debug, Clone)]
pub struct ContainerdPaths {
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub sandbox_image: String,
}

impl ContainerdPaths {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// containerd's config (version 2, as 1.6 reads it): CRI with runc, the `native` snapshotter
    /// (works on any file system, no overlay needed), CNI from the run's directories with
    /// `max_conf_num = 1` (as the kubelet's nodes run it: the first config file is the network),
    /// and the plugins that would reach outside the run directory disabled.
    pub fn config_toml(&self) -> String {
        let d = self.dir.display();
        format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
"#,
            image = self.sandbox_image,
            bin = self.bin_dir.display(),
            conf = self.conf_dir.display(),
        )
    }
}

/// The running instance (stopped by PID). The process handle is shared with the run's cleanup,
/// which must remove the sandboxes before it stops containerd (see `super::CriNode`).
pub struct Containerd {
    pub paths: ContainerdPaths,
    pub(super) process: Arc<Mutex<Option<Proc>>>,
}

impl Containerd {
    pub fn new(paths: ContainerdPaths) -> Result<Self> {
        std::fs::create_dir_all(&paths.dir).with_context(|| format!("creating {}", paths.dir.display()))?;
        std::fs::write(paths.config(), paths.config_toml())?;
        Ok(Self { paths, process: Arc::new(Mutex::new(None)) })
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Proc>> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start containerd and wait until its socket accepts connections (30 s).
    pub fn start(&mut self) -> Result<()> {
        if self.current().as_ref().is_some_and(Proc::running) {
            bail!("containerd is already running");
        }
        let _ = std::fs::remove_file(self.paths.socket());
        let cmd = Cmd::new("containerd").arg("--config").arg(self.paths.config().display().to_string());
        let (proc, stdout, guard) = Proc::spawn("containerd", &cmd, &self.paths.log())?;
        // Stopped by the run's own cleanup, after the sandboxes are gone.
        guard.dismiss();
        *self.current() = Some(proc.clone());
        // containerd logs to stderr (the log file); keep its stdout drained all the same.
        std::thread::spawn(move || std::io::copy(&mut { stdout }, &mut std::io::sink()));
        let socket = self.paths.socket();
        let log = self.paths.log();
        let watched = proc.clone();
        wait_for("containerd's socket", Duration::from_secs(30), || {
            if !watched.running() {
                bail!("containerd exited; last log lines:\n{}", crate::harness::tail(&log, 20));
            }
            Ok(std::os::unix::net::UnixStream::connect(&socket).ok().map(|_| ()))
        })?;
        Ok(())
    }

    /// SIGTERM (containerd leaves its sandboxes running: their shims outlive it), then SIGKILL
    /// after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(proc) = self.current().take() {
            proc.stop(grace);
        }
    }

    /// `ctr images import` of an OCI archive into the CRI's namespace, unpacked for the CRI's
    /// snapshotter.
    pub fn import_image(&self, archive: &Path) -> Result<String> {
        Cmd::new("ctr")
            .args(["--address", &self.paths.socket().display().to_string(), "--namespace", "k8s.io"])
            .args(["images", "import", "--snapshotter", "native", &archive.display().to_string()])
            .output()
            .context("ctr images import")
    }
}

/// The shim processes (`containerd-shim-runc-v2 ... -address <socket>`) this containerd started:
/// they outlive containerd, so a run that stops early stops them by PID.
pub fn own_shims(socket: &Path) -> Vec<i32> {
    let want = socket.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                && args.windows(2).any(|w| w[0] == b"-address" && w[1] == want.as_bytes())
        })
        .collect()
}

/// Mount points under `dir` (deepest first): what a stopped containerd may leave mounted.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> =
        text.lines().filter_map(|l| l.split(' ').nth(4)).map(PathBuf::from).filter(|p| p.starts_with(dir)).collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_everything_under_the_run_directory() {
        let paths = ContainerdPaths {
            dir: "/tmp/run-1/containerd".into(),
            bin_dir: "/tmp/run-1/cri-bin".into(),
            conf_dir: "/tmp/run-1/net.d".into(),
            sandbox_image: "multus-rs.invalid/sandbox-pause:e2e".into(),
        };
        let toml = paths.config_toml();
        for line in toml.lines().filter(|l| l.contains("= \"/")) {
            assert!(line.contains("\"/tmp/run-1/"), "a path outside the run directory: {line}");
        }
        assert!(toml.contains("max_conf_num = 1"));
        assert!(toml.contains("snapshotter = \"native\""));
        assert!(toml.contains("sandbox_image = \"multus-rs.invalid/sandbox-pause:e2e\""));
    }
}
