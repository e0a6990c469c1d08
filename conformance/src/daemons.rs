//! Helper daemons a target needs for a case (the dhcp plugin's `dhcp daemon`, a DHCP server):
//! started inside the case's scratch host netns after its `host_setup`, watched until ready,
//! and stopped by PID when the case ends — on drop too, so a failing case leaves none behind.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One daemon of a target file (`host_daemons:`), templated like `host_setup`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostDaemon {
    /// Program and arguments (templated: `{{tmp}}`, `{{short}}`, `{{plugin}}` …).
    pub argv: Vec<String>,
    /// A path that exists once the daemon serves (its socket); without one, the daemon
    /// counts as ready when it is still running a moment after its start.
    #[serde(default)]
    pub ready_path: Option<String>,
    /// Where the program comes from, for the "cannot run here" reason (`apt-get install …`).
    #[serde(default)]
    pub package: Option<String>,
}

/// Why a daemon did not come up.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("starting {program}: {reason}")]
    Start { program: String, reason: String },
    #[error("{program} exited ({status}) before it was ready: {log}")]
    Exited { program: String, status: String, log: String },
    #[error("{program} not ready after {secs} s ({path} missing): {log}")]
    NotReady { program: String, secs: u64, path: String, log: String },
}

/// How long a daemon may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon without a ready path must stay up to count as started.
const SETTLE: Duration = Duration::from_millis(200);

/// A started daemon; stopped (SIGKILL to its PID, then reaped) on drop.
#[derive(Debug)]
pub struct Running {
    pub program: String,
    child: Child,
    log: PathBuf,
}

impl Running {
    /// Start `argv` (rendered) inside netns `netns` (`ip netns exec`, which execs the program:
    /// the child's PID is the daemon's), its output in `log`; wait until `ready` exists.
    pub fn start(netns: &str, argv: &[String], ready: Option<&Path>, log: PathBuf) -> Result<Running, DaemonError> {
        let program = argv.first().cloned().unwrap_or_default();
        let start_err = |e: std::io::Error| DaemonError::Start { program: program.clone(), reason: e.to_string() };
        let out = File::create(&log).map_err(start_err)?;
        let err = out.try_clone().map_err(start_err)?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(start_err)?;
        let mut running = Running { program, child, log };
        running.wait_ready(ready)?;
        Ok(running)
    }

    fn wait_ready(&mut self, ready: Option<&Path>) -> Result<(), DaemonError> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DaemonError::Exited {
                    program: self.program.clone(),
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            match ready {
                Some(p) if p.exists() => return Ok(()),
                None if start.elapsed() >= SETTLE => return Ok(()),
                Some(p) if start.elapsed() > READY_TIMEOUT => {
                    return Err(DaemonError::NotReady {
                        program: self.program.clone(),
                        secs: READY_TIMEOUT.as_secs(),
                        path: p.display().to_string(),
                        log: self.log_tail(),
                    });
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The PID the daemon runs as.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of the daemon's output (for failure reasons).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a daemon's program cannot run here (`None`: it can): an absolute path that is no file,
/// or a name found on no directory of `PATH` (and `/usr/sbin`, `/sbin`, where Debian puts
/// dnsmasq). A templated program (`{{plugin}}`) is the target's own binary: always available.
pub fn missing_program(d: &HostDaemon) -> Option<String> {
    let program = d.argv.first()?;
    if program.contains("{{") {
        return None;
    }
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|dir| dir.join(program).is_file())
    };
    (!found).then(|| match &d.package {
        Some(pkg) => format!("needs `{program}` (Debian package {pkg}), which is not installed here"),
        None => format!("needs `{program}`, which is not installed here"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(argv: &[&str], package: Option<&str>) -> HostDaemon {
        HostDaemon {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ready_path: None,
            package: package.map(String::from),
        }
    }

    #[test]
    fn programs_are_found_or_named_with_their_package() {
        assert_eq!(missing_program(&daemon(&["sh", "-c", "true"], None)), None);
        assert_eq!(missing_program(&daemon(&["{{plugin}}", "daemon"], None)), None);
        let why = missing_program(&daemon(&["no-such-daemon-26c"], Some("no-such-pkg"))).unwrap();
        assert!(why.contains("no-such-daemon-26c") && why.contains("Debian package no-such-pkg"), "{why}");
        assert!(missing_program(&daemon(&["/nonexistent/dhcpd"], None)).is_some());
    }
}
