//! Shared plumbing: commands as data, processes stopped by PID, a cleanup stack that also runs on
//! Ctrl-C, the workspace's paths, and a tiny HTTP client for the mock API server.

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Commands as data (printed by --dry-run, asserted by unit tests)

/// One external command: program, arguments, extra environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Self { program: program.into(), args: Vec::new(), env: Vec::new() }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
    /// Run with inherited output; fail on a non-zero exit.
    pub fn run(&self) -> Result<()> {
        let status = self.command().status().with_context(|| format!("running {self}"))?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }
    /// Run capturing stdout; fail (with stderr) on a non-zero exit.
    pub fn output(&self) -> Result<String> {
        let out = self.command().stdin(Stdio::null()).output().with_context(|| format!("running {self}"))?;
        if !out.status.success() {
            bail!("`{self}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
    /// Run, ignoring failures (cleanup).
    pub fn run_quiet(&self) -> bool {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={} ", shell_quote(v))?;
        }
        write!(f, "{}", shell_quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

/// Is `program` on PATH (or an existing path)?
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---------------------------------------------------------------------------------------------
// Cleanup stack, run in reverse order at the end, on error, and on SIGINT/SIGTERM

type Action = Box<dyn FnOnce() + Send>;
static CLEANUP: Mutex<Vec<(u64, String, Action)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Handle of one registered cleanup action.
#[must_use = "the handle runs or dismisses the action"]
pub struct Deferred(u64);

/// Register `action` (described by `what`) to run at cleanup time.
pub fn defer(what: impl Into<String>, action: impl FnOnce() + Send + 'static) -> Deferred {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if STOPPING.load(Ordering::SeqCst) {
        // Created after the cleanup started (Ctrl-C raced us): undo it right away.
        action();
        return Deferred(id);
    }
    CLEANUP.lock().unwrap_or_else(|e| e.into_inner()).push((id, what.into(), Box::new(action)));
    Deferred(id)
}

impl Deferred {
    /// Run the action now (and not again later).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn run_now(self) {
        let entry = {
            let mut stack = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
            stack.iter().position(|(id, _, _)| *id == self.0).map(|i| stack.remove(i))
        };
        if let Some((_, _, action)) = entry {
            action();
        }
    }
    /// Forget the action (the resource is gone already).
    pub fn dismiss(self) {
        let mut stack = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
        stack.retain(|(id, _, _)| *id != self.0);
    }
}

/// Run every registered action, newest first.
pub fn cleanup_all(verbose: bool) {
    loop {
        let entry = CLEANUP.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some((_, what, action)) = entry else { break };
        if verbose {
            eprintln!("cleanup: {what}");
        }
        action();
    }
}

/// On SIGINT/SIGTERM: run the cleanup stack and exit 130. Our children run in their own process
/// groups, so the terminal's Ctrl-C reaches only us and we stop them in order.
pub fn install_signal_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            });
            eprintln!("\ninterrupted: cleaning up");
            STOPPING.store(true, Ordering::SeqCst);
            cleanup_all(true);
            std::process::exit(130);
        });
    });
}

/// Run `body`, then the cleanup stack whatever happened.
pub fn with_cleanup<T>(body: impl FnOnce() -> Result<T>) -> Result<T> {
    install_signal_handler();
    let result = body();
    cleanup_all(std::env::var_os("XTASK_VERBOSE_CLEANUP").is_some());
    result
}

// ---------------------------------------------------------------------------------------------
// Processes we start, stopped by PID only

/// A background process started by us, in its own process group.
#[derive(Clone)]
pub struct Proc {
    #[allow(dead_code)]
    pub name: String,
    pub pid: i32,
    reaped: Arc<AtomicBool>,
}

impl Proc {
    /// Start `cmd` with stdout piped (returned) and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &Cmd, log: &Path) -> Result<(Self, std::process::ChildStdout, Deferred)> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut command = cmd.command();
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file).process_group(0);
        let mut child = command.spawn().with_context(|| format!("starting {cmd}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let proc = Self { name: name.to_string(), pid: child.id() as i32, reaped: Arc::new(AtomicBool::new(false)) };
        drop(child); // reaped through waitpid by PID
        let p = proc.clone();
        let guard = defer(format!("stop {name} (pid {})", proc.pid), move || p.stop(Duration::from_secs(3)));
        Ok((proc, stdout, guard))
    }

    /// Still running (not exited)?
    pub fn running(&self) -> bool {
        if self.reaped.load(Ordering::SeqCst) {
            return false;
        }
        match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => true,
            _ => {
                self.reaped.store(true, Ordering::SeqCst);
                false
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
    pub fn stop(&self, grace: Duration) {
        if !self.running() {
            return;
        }
        let pid = Pid::from_raw(self.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILL and reap.
    pub fn kill(&self) {
        if !self.running() {
            return;
        }
        let pid = Pid::from_raw(self.pid);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        self.reaped.store(true, Ordering::SeqCst);
    }
}

/// Poll `check` every 50 ms until it yields `Some`, or fail after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Workspace paths

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { workspace_root().join(d) }
        }
        None => workspace_root().join("target"),
    }
}

pub fn cargo_cmd() -> Cmd {
    Cmd::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP client for the mock API server (plain HTTP on loopback)

/// GET `path` from `base` (`http://127.0.0.1:<port>`) and parse the JSON body.
pub fn http_get_json(base: &str, path: &str) -> Result<serde_json::Value> {
    let hostport = base.strip_prefix("http://").context("only http:// URLs are supported here")?;
    let hostport = hostport.trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(hostport).with_context(|| format!("connecting to {hostport}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // HTTP/1.0: no chunked encoding, the body ends at EOF.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nAccept: application/json\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    if status != 200 {
        bail!("GET {path}: HTTP {status}: {}", body.trim());
    }
    serde_json::from_str(body).with_context(|| format!("GET {path}: body is not JSON"))
}

/// Call `f` with every file under `dir` (recursive; unreadable directories are passed over).
pub fn walk_files(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk_files(&p, f);
        } else {
            f(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_print_as_shell() {
        let c = Cmd::new("kubectl").args(["apply", "-f", "dir with space/"]).env("KUBECONFIG", "/k");
        assert_eq!(c.to_string(), "KUBECONFIG=/k kubectl apply -f 'dir with space/'");
    }

    #[test]
    fn deferred_actions_run_once_newest_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let g1 = defer("one", move || a.lock().unwrap().push(1));
        let g2 = defer("two", move || b.lock().unwrap().push(2));
        g2.run_now();
        g1.run_now();
        assert_eq!(*log.lock().unwrap(), vec![2, 1]);
    }

    #[test]
    fn processes_are_stopped_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _out, guard) = Proc::spawn("sleep", &Cmd::new("sleep").arg("30"), &dir.path().join("log")).unwrap();
        assert!(p.running());
        guard.run_now();
        assert!(!p.running());
    }
}
