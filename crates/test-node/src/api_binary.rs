//! kube-mock run as its binary, for a node outside the test process (xtask's local runs):
//! its command line, the address it announces on its first line of stdout, and the running
//! process ([`KubeMockProcess`]), with typed errors since xtask shows them to a user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::announce::spawn_with_first_line;
use crate::cleanup::stop_child;

/// How long kube-mock has to print its address, and then to write its kubeconfig.
const ADDRESS_WITHIN: Duration = Duration::from_secs(20);
const KUBECONFIG_WITHIN: Duration = Duration::from_secs(10);
/// SIGTERM's grace before SIGKILL when kube-mock is stopped.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The arguments of `kube-mock` listening on a free local port, writing a kubeconfig for
/// itself to `kubeconfig_out`, seeded from `seeds`, with `extra` (e.g. `--tls`) last.
pub fn kube_mock_args(kubeconfig_out: &Path, seeds: &[PathBuf], extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
        "--kubeconfig-out".to_string(),
        kubeconfig_out.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    for s in seeds {
        args.extend(["--seed".to_string(), s.display().to_string()]);
    }
    args
}

/// The URL in kube-mock's (or fake-kubelet's) first line, `listening on <url>`.
pub fn listening_url(first_line: &str) -> Result<String, String> {
    first_line
        .strip_prefix("listening on ")
        .map(|url| url.trim().to_string())
        .ok_or_else(|| format!("unexpected first line: {first_line:?}"))
}

/// Why kube-mock's binary did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("opening kube-mock's log {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("starting {bin}: {source}")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("kube-mock did not print its address within {0:?}")]
    NoAddress(Duration),
    #[error("kube-mock exited before printing its address")]
    ExitedEarly,
    #[error("reading kube-mock's stdout: {0}")]
    Read(std::io::Error),
    #[error("kube-mock: {0}")]
    FirstLine(String),
    #[error("kube-mock did not write its kubeconfig {path} within {within:?}")]
    NoKubeconfig { path: PathBuf, within: Duration },
}

/// A running kube-mock binary: its URL and kubeconfig; stopped by PID (SIGTERM, SIGKILL
/// after 3 s) on drop.
pub struct KubeMockProcess {
    child: Child,
    url: String,
    kubeconfig: PathBuf,
}

impl KubeMockProcess {
    /// Start `bin` with [`kube_mock_args`], stderr appended to `log`, and wait until it has
    /// announced its address and written its kubeconfig. It runs in its own process group, so
    /// a terminal's Ctrl-C reaches only the caller, which stops it in its own order.
    pub fn start(
        bin: &Path,
        kubeconfig_out: &Path,
        seeds: &[PathBuf],
        extra: &[String],
        log: &Path,
    ) -> Result<Self, ApiStartError> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ApiStartError::Log { path: log.to_path_buf(), source })?;
        let mut command = Command::new(bin);
        command.args(kube_mock_args(kubeconfig_out, seeds, extra)).process_group(0);
        let (child, first) = spawn_with_first_line(&mut command, log_file.into())
            .map_err(|source| ApiStartError::Spawn { bin: bin.to_path_buf(), source })?;
        // From here on a failure drops `me`, which stops the process.
        let mut me = Self { child, url: String::new(), kubeconfig: kubeconfig_out.to_path_buf() };
        let first = first
            .recv_timeout(ADDRESS_WITHIN)
            .map_err(|_| ApiStartError::NoAddress(ADDRESS_WITHIN))?
            .ok_or(ApiStartError::ExitedEarly)?
            .map_err(ApiStartError::Read)?;
        me.url = listening_url(&first).map_err(ApiStartError::FirstLine)?;
        let deadline = Instant::now() + KUBECONFIG_WITHIN;
        while !me.kubeconfig.exists() {
            if Instant::now() >= deadline {
                return Err(ApiStartError::NoKubeconfig { path: me.kubeconfig.clone(), within: KUBECONFIG_WITHIN });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    /// `http://127.0.0.1:<port>` (or `https://…` with `--tls`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for KubeMockProcess {
    fn drop(&mut self) {
        stop_child(&mut self.child, STOP_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_the_announced_address() {
        let args = kube_mock_args(Path::new("/r/kc"), &[PathBuf::from("/s.yaml")], &["--tls".into()]);
        assert_eq!(args.join(" "), "--listen 127.0.0.1:0 --kubeconfig-out /r/kc --tls --seed /s.yaml");
        assert_eq!(listening_url("listening on http://127.0.0.1:5\n").unwrap(), "http://127.0.0.1:5");
        assert!(listening_url("hello").is_err());
    }

    #[test]
    fn a_binary_that_prints_nothing_is_a_typed_error_and_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            KubeMockProcess::start(Path::new("/bin/true"), &dir.path().join("kc"), &[], &[], &dir.path().join("log"))
                .err()
                .expect("no address");
        assert!(matches!(err, ApiStartError::ExitedEarly), "{err}");
        let err = KubeMockProcess::start(
            &dir.path().join("absent"),
            &dir.path().join("kc"),
            &[],
            &[],
            &dir.path().join("log"),
        )
        .err()
        .expect("no binary");
        assert!(matches!(err, ApiStartError::Spawn { .. }), "{err}");
    }

    #[test]
    fn the_binary_starts_announces_and_stops() {
        let bin = crate::bin("kube-mock");
        if !crate::require(bin.is_none().then_some("kube-mock is not built beside the tests")) {
            return;
        }
        let bin = bin.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc");
        let mock = KubeMockProcess::start(&bin, &kc, &[], &[], &dir.path().join("log")).unwrap();
        assert!(mock.url().starts_with("http://127.0.0.1:"), "{}", mock.url());
        assert!(kc.exists());
        let pid = nix::unistd::Pid::from_raw(mock.pid() as i32);
        drop(mock);
        assert!(nix::sys::signal::kill(pid, None).is_err(), "kube-mock still runs after drop");
    }
}
