//! The I/O edge: running a plugin process with an exact environment, network namespaces that
//! remove themselves, and `ip -j` queries.

use crate::expect::Observation;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `PATH` given to plugins (they may run `ip`, `iptables`, …).
pub const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique on this host for this process: `cc<pid>x<n>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Run `program` with exactly `env` (no inherited variables), `stdin`, and a timeout after
/// which the process is killed (SIGKILL) and reaped.
pub fn run_process(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Duration,
) -> Observation {
    let start = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match cmd.spawn() {
        Ok(child) => observe(child, stdin, start, timeout),
        Err(e) => not_started(program, &e),
    }
}

/// What a process that could not be started is observed to do.
pub fn not_started(program: &Path, e: &std::io::Error) -> Observation {
    Observation {
        exit: Some(127),
        stderr: format!("cni-conformance: cannot start {}: {e}", program.display()),
        ..Default::default()
    }
}

/// Watch `child` (started at `start`, stdout and stderr piped) to its end: `stdin` written
/// if its stdin is still open, killed (SIGKILL) and reaped after `timeout`.
pub fn observe(mut child: Child, stdin: &[u8], start: Instant, timeout: Duration) -> Observation {
    let input = stdin.to_vec();
    let mut sin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(p) = sin.as_mut() {
            let _ = p.write_all(&input);
        }
        drop(sin);
    });
    let mut sout = child.stdout.take();
    let mut serr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(p) = sout.as_mut() {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(p) = serr.as_mut() {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(3)),
            Err(_) => break None,
        }
    };
    let _ = writer.join();
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Observation {
        exit: if timed_out { None } else { status.and_then(|s| s.code()) },
        signal: if timed_out { None } else { status.and_then(|s| s.signal()) },
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

/// Why a helper command (`ip …`) did not do its job. Cloneable: link-type probes are
/// remembered with their outcome.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SysError {
    #[error("{program}: {reason}")]
    Start { program: String, reason: String },
    #[error("{program} {args}: {stderr}")]
    Failed { program: String, args: String, stderr: String },
    #[error("ip -j output: {0}")]
    IpJson(String),
}

/// Run a helper command (`ip …`), returning stdout or an error with stderr.
pub fn cmd(program: &str, args: &[&str]) -> Result<String, SysError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| SysError::Start { program: program.to_string(), reason: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SysError::Failed {
            program: program.to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A network namespace created by the harness and deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    deleted: bool,
}

impl Netns {
    pub fn create(name: &str) -> Result<Netns, SysError> {
        cmd("ip", &["netns", "add", name])?;
        let _ = cmd("ip", &["-n", name, "link", "set", "lo", "up"]);
        Ok(Netns { name: name.to_string(), deleted: false })
    }
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
    /// Delete now (the path stops existing); drop does nothing afterwards.
    pub fn delete(&mut self) -> Result<(), SysError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        cmd("ip", &["netns", "del", &self.name]).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.delete();
        // A plugin that opens or locks a deleted netns path with O_CREAT (sbr 1.1.1 does)
        // leaves an empty regular file under that name: ours, so remove it.
        let path = self.path();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A script named `name` in `dir` that runs `real` inside the netns `netns` (`ip netns exec`),
/// so that what a plugin creates on its host side lands there and not on the real host.
pub fn write_netns_wrapper(dir: &Path, name: &str, real: &Path, netns: &str) -> std::io::Result<()> {
    let wrapper = dir.join(name);
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec ip netns exec {netns} {} \"$@\"\n", real.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
}

/// Whether the kernel can create links of `kind` (`veth`, `macvlan`, `ipvlan`, `vlan`,
/// `vrf`, `dummy`, `bridge`, `tuntap`, …): tried once in a scratch netns, remembered.
pub fn link_kind_supported(kind: &str) -> Result<(), SysError> {
    static SEEN: std::sync::Mutex<Vec<(String, Result<(), SysError>)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = seen.iter().find(|(k, _)| k == kind) {
        return r.clone();
    }
    let r = probe_link_kind(kind);
    seen.push((kind.to_string(), r.clone()));
    r
}

fn probe_link_kind(kind: &str) -> Result<(), SysError> {
    let ns = Netns::create(&unique("cck"))?;
    let n = ns.name.as_str();
    let add = |args: &[&str]| {
        let mut a = vec!["-n", n];
        a.extend_from_slice(args);
        cmd("ip", &a).map(|_| ())
    };
    match kind {
        "tuntap" | "tap" => add(&["tuntap", "add", "mode", "tap", "name", "probe0"]),
        "veth" => add(&["link", "add", "probe0", "type", "veth", "peer", "name", "probe1"]),
        "macvlan" | "ipvlan" | "macvtap" | "ipvtap" | "vlan" => {
            add(&["link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])?;
            let mut args = vec!["link", "add", "probe2", "link", "probe0", "type", kind];
            if kind == "vlan" {
                args.extend(["id", "5"]);
            }
            add(&args)
        }
        "vrf" => add(&["link", "add", "probe0", "type", "vrf", "table", "10"]),
        other => add(&["link", "add", "probe0", "type", other]),
    }
}

/// Names of the veth links in netns `ns` (empty when it cannot be listed).
pub fn veths(ns: &str) -> Vec<String> {
    match ip_json(ns, &["link", "show"]) {
        Ok(Value::Array(l)) => l
            .iter()
            .filter(|x| x.pointer("/linkinfo/info_kind").and_then(Value::as_str) == Some("veth"))
            .filter_map(|x| x.get("ifname").and_then(Value::as_str).map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// `ip -j [-d] -n <ns> <args>` parsed.
pub fn ip_json(netns: &str, args: &[&str]) -> Result<Value, SysError> {
    let mut a = vec!["-j", "-d", "-n", netns];
    a.extend_from_slice(args);
    let out = cmd("ip", &a)?;
    if out.trim().is_empty() {
        return Ok(Value::Array(vec![]));
    }
    serde_json::from_str(&out).map_err(|e| SysError::IpJson(e.to_string()))
}
