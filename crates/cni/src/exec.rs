//! Finding and running a plugin binary (cni.md §4.2, §4.3).
//!
//! - [`find_in_path`]: libcni's `invoke.FindInPath`, a little stricter.
//! - [`RawExec`]: runs one plugin process: writes the request to stdin and **closes** it, reads
//!   stdout and stderr concurrently until both end, waits, and reads the outcome with
//!   [`interpret_output`] — the one place where libcni's rules for a failed run live.
//!   A spawn failing with `ETXTBSY` (a binary being replaced) is retried, each attempt a fresh
//!   process; when every attempt fails that way the run fails (the Go daemon's chroot executor
//!   reports success with empty output instead).
//! - Plugin processes never outlive their purpose. Each is the leader of its own process group:
//!   a timeout, or a request dropped before its plugin finished, kills the whole group (SIGKILL)
//!   — the plugin and anything it forked — and reaps the plugin. Each gets
//!   `PR_SET_PDEATHSIG(SIGKILL)`, so it dies when the daemon dies instead of finishing an ADD
//!   nobody will clean up. Because that signal follows the *thread* that forked the process,
//!   every plugin is forked by one dedicated thread that lives as long as the process (see
//!   [`start_spawner`]); the thread a caller runs on does not matter.
//! - `chrootDir`: [`RawExec::with_chroot_dir`] runs plugins with their root changed (in the
//!   child, never in the daemon) and their working directory set to the new `/`;
//!   [`validate_chroot_dir`] checks the directory up front. Lookup rules: [`chroot`](self#chroot).
//! - [`Exec`]: the seam higher layers are written against, so tests can fake plugin runs
//!   ([`testing::RecordingExec`], behind the `testing` feature).
//!
//! # chroot
//!
//! Plugins are looked up in the daemon's view, as the Go daemon does, and the path found is
//! executed inside the root. A plugin counts as found only where it is a regular file in both
//! views (inside the root resolved as the kernel will: symlinks and `..` stay inside), so a
//! plugin missing inside the root fails with libcni's `failed to find plugin "x" in path [...]`
//! (Go fails later, at exec). Other differences from Go, on purpose: the working directory is
//! the new root (Go leaves it outside, so shell plugins fail in `getcwd`, upstream #1308), and
//! `ETXTBSY` is retried with a fresh process each time.

mod child;
mod chroot;
mod spawner;

pub use chroot::{ChrootError, validate_chroot_dir};
pub use spawner::{THREAD_NAME as SPAWNER_THREAD_NAME, start_spawner};

use crate::error::{CniError, code};
use crate::result::CniResult;
use crate::version::Version;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Extra spawn attempts after `ETXTBSY`, one second apart (libcni's `RawExec`).
pub const TEXT_BUSY_RETRIES: u32 = 5;
const TEXT_BUSY_DELAY: Duration = Duration::from_secs(1);

/// Why running a plugin failed.
///
/// `Clone` so that test doubles can hand out the same scripted error more than once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// The plugin type is empty, contains `/`, or is `.`/`..`.
    #[error("{reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("no paths provided")]
    NoPaths,
    #[error("failed to find plugin {plugin:?} in path {}", go_path_list(dirs))]
    NotFound { plugin: String, dirs: Vec<PathBuf> },
    /// The process could not be started (after the `ETXTBSY` retries). `chroot`: the root it
    /// was started in, if any (a binary present there whose interpreter or loader is not).
    #[error("failed to start plugin {}{}: {source}", plugin.display(), in_chroot(chroot.as_deref()))]
    Spawn { plugin: PathBuf, chroot: Option<PathBuf>, source: Arc<io::Error> },
    /// Talking to or waiting for a started process failed.
    #[error("failed to run plugin {}: {source}", plugin.display())]
    Io { plugin: PathBuf, source: Arc<io::Error> },
    #[error("plugin {} timed out after {after:?} and was killed", plugin.display())]
    Timeout { plugin: PathBuf, after: Duration },
    /// The plugin died from a signal (not from our timeout).
    #[error("plugin {} was killed by signal {}{}", plugin.display(), signal_name(*signal), stderr_suffix(stderr))]
    Signaled { plugin: PathBuf, signal: i32, stderr: String },
    /// Non-zero exit with an error object on stdout: the plugin's own words.
    #[error(transparent)]
    Plugin(CniError),
    /// Non-zero exit and nothing on stdout.
    #[error("{}", no_error_output_msg(*status, stderr))]
    NoErrorOutput { status: i32, stderr: String },
    /// Non-zero exit and something on stdout that is not an error object.
    #[error("netplugin failed but error parsing its diagnostic message {}: {reason}", go_quote(stdout))]
    BadErrorOutput { status: i32, stdout: String, reason: String },
    /// The plugin wrote more than [`MAX_PLUGIN_STDOUT`] to stdout; it was killed.
    #[error("plugin {} wrote more than {limit} bytes to stdout and was killed", plugin.display())]
    OutputTooLarge { plugin: PathBuf, limit: usize },
    /// Exit 0, but stdout is not the result that was expected.
    #[error("failed to parse the output of plugin {}: {reason}", plugin.display())]
    BadOutput { plugin: PathBuf, reason: String },
}

fn no_error_output_msg(status: i32, stderr: &str) -> String {
    if stderr.is_empty() {
        format!("netplugin failed with no error message: exit status {status}")
    } else {
        format!("netplugin failed: {}", go_quote(stderr))
    }
}

fn in_chroot(dir: Option<&Path>) -> String {
    dir.map(|d| format!(" (chroot {})", d.display())).unwrap_or_default()
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(": {}", go_quote(stderr)) }
}

/// `SIGKILL`, `SIGSEGV`, … or the number.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map(|s| s.as_str().to_string()).unwrap_or_else(|_| signal.to_string())
}

/// Go's `%v` of a `[]string`: `[/a /b]`.
fn go_path_list(dirs: &[PathBuf]) -> String {
    let items: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%q`: a double-quoted string with Go escapes (what libcni's messages quote stderr with).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ExecError {
    /// The CNI error object a runtime reports for this failure.
    ///
    /// Mapping (libcni's, made explicit):
    /// - [`ExecError::Plugin`]: the plugin's error object, unchanged (code, msg, details).
    /// - Failures of the plugin *process* ([`NoErrorOutput`](Self::NoErrorOutput),
    ///   [`BadErrorOutput`](Self::BadErrorOutput), [`Signaled`](Self::Signaled),
    ///   [`Timeout`](Self::Timeout), [`Spawn`](Self::Spawn), [`Io`](Self::Io)): code **0**, as
    ///   libcni's `RawExec.pluginErr` builds an untyped error object for every failed run.
    /// - Failures of the *runtime* around the process ([`InvalidName`](Self::InvalidName),
    ///   [`NoPaths`](Self::NoPaths), [`NotFound`](Self::NotFound),
    ///   [`BadOutput`](Self::BadOutput)): code **999**, which is what a Go `skel`-based caller
    ///   (such as Multus) reports for a plain Go error.
    pub fn to_cni_error(&self) -> CniError {
        match self {
            Self::Plugin(e) => e.clone(),
            Self::NoErrorOutput { .. }
            | Self::BadErrorOutput { .. }
            | Self::Signaled { .. }
            | Self::Timeout { .. }
            | Self::Spawn { .. }
            | Self::Io { .. }
            | Self::OutputTooLarge { .. } => CniError::new(code::UNKNOWN, self.to_string()),
            Self::InvalidName { .. } | Self::NoPaths | Self::NotFound { .. } | Self::BadOutput { .. } => {
                CniError::new(code::INTERNAL, self.to_string())
            }
        }
    }

    /// The plugin's own error object, if it printed one.
    pub fn plugin_error(&self) -> Option<&CniError> {
        match self {
            Self::Plugin(e) => Some(e),
            _ => None,
        }
    }
}

impl From<&ExecError> for CniError {
    fn from(e: &ExecError) -> Self {
        e.to_cni_error()
    }
}

impl From<ExecError> for CniError {
    fn from(e: ExecError) -> Self {
        e.to_cni_error()
    }
}

/// Reject plugin types that could name something other than a file in a plugin directory.
///
/// libcni rejects an empty type and one containing `/`. We also reject `.` and `..` outright
/// (libcni would merely fail to find them, since they resolve to directories): stricter, and the
/// error says what is wrong.
pub fn check_plugin_name(plugin_type: &str) -> Result<(), ExecError> {
    let invalid = |reason| Err(ExecError::InvalidName { name: plugin_type.to_string(), reason });
    if plugin_type.is_empty() {
        return invalid("no plugin name provided");
    }
    if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return invalid("invalid plugin name");
    }
    Ok(())
}

/// libcni's `FindInPath`: the first `dir/plugin_type` that is a regular file (symlinks
/// followed; the execute bit is not checked — a non-executable hit fails at spawn).
pub fn find_in_path(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
    find_in_path_where(plugin_type, dirs, |_| true)
}

/// [`find_in_path`] with an extra condition on each candidate.
fn find_in_path_where(plugin_type: &str, dirs: &[PathBuf], also: impl Fn(&Path) -> bool) -> Result<PathBuf, ExecError> {
    check_plugin_name(plugin_type)?;
    if dirs.is_empty() {
        return Err(ExecError::NoPaths);
    }
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()) && also(p))
        .ok_or_else(|| ExecError::NotFound { plugin: plugin_type.to_string(), dirs: dirs.to_vec() })
}

/// One plugin invocation.
#[derive(Debug, Clone)]
pub struct PluginRequest<'a> {
    /// The binary, as returned by [`Exec::find_plugin`].
    pub path: &'a Path,
    /// The `CNI_*` variables. The child's environment is the caller's plus these (later keys win).
    pub env: Vec<(String, String)>,
    /// The request config.
    pub stdin: &'a [u8],
    /// Overrides the executor's default timeout.
    pub timeout: Option<Duration>,
}

impl<'a> PluginRequest<'a> {
    pub fn new(path: &'a Path, env: Vec<(String, String)>, stdin: &'a [u8]) -> Self {
        Self { path, env, stdin, timeout: None }
    }

    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The last value of an environment variable of the request.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// How a plugin process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessExit {
    Code(i32),
    Signal(i32),
}

impl From<std::process::ExitStatus> for ProcessExit {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Self::Code(c),
            (None, Some(s)) => Self::Signal(s),
            // Stopped/continued cannot be reported by wait(); treat as a generic failure.
            (None, None) => Self::Code(-1),
        }
    }
}

/// libcni's reading of a finished plugin run (`RawExec.ExecPlugin` + `pluginErr`):
/// exit 0 → stdout; death by signal → [`ExecError::Signaled`]; otherwise stdout empty →
/// [`ExecError::NoErrorOutput`] (carrying stderr), stdout an error object →
/// [`ExecError::Plugin`], anything else → [`ExecError::BadErrorOutput`].
///
/// Like Go's `json.Unmarshal` into `types.Error`, any JSON object is an error object: missing
/// `code`/`msg` read as 0/"" (a plugin printing `{}` fails with code 0 and no message).
pub fn interpret_output(
    plugin: &Path,
    exit: ProcessExit,
    stdout: Vec<u8>,
    stderr: &[u8],
) -> Result<Vec<u8>, ExecError> {
    let status = match exit {
        ProcessExit::Code(0) => return Ok(stdout),
        ProcessExit::Code(c) => c,
        ProcessExit::Signal(signal) => {
            return Err(ExecError::Signaled {
                plugin: plugin.to_path_buf(),
                signal,
                stderr: String::from_utf8_lossy(stderr).into_owned(),
            });
        }
    };
    if stdout.is_empty() {
        return Err(ExecError::NoErrorOutput { status, stderr: String::from_utf8_lossy(stderr).into_owned() });
    }
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(default)]
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<Wire>(&stdout) {
        Ok(w) => Err(ExecError::Plugin(CniError::with_details(w.code, w.msg, w.details))),
        Err(e) => Err(ExecError::BadErrorOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Parse an ADD result as libcni's `ExecPluginWithResult` does: a result without `cniVersion`
/// takes the request config's version (`fixupResultVersion`).
pub fn parse_result(plugin: &Path, config_version: Option<Version>, stdout: &[u8]) -> Result<CniResult, ExecError> {
    CniResult::from_json_with_default(stdout, config_version)
        .map_err(|e| ExecError::BadOutput { plugin: plugin.to_path_buf(), reason: e.to_string() })
}

/// A boxed plugin run, so [`Exec`] stays dyn-compatible.
pub type ExecFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ExecError>> + Send + 'a>>;

/// Runs plugins. The real implementation is [`RawExec`]; tests use a fake.
pub trait Exec: Send + Sync {
    /// Run one plugin; on success, its stdout.
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a>;

    /// Locate a plugin binary. Defaults to [`find_in_path`]; fakes may invent paths.
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        find_in_path(plugin_type, dirs)
    }
}

impl<T: Exec + ?Sized> Exec for Arc<T> {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        (**self).exec(req)
    }
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        (**self).find_plugin(plugin_type, dirs)
    }
}

impl<T: Exec + ?Sized> Exec for Box<T> {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        (**self).exec(req)
    }
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        (**self).find_plugin(plugin_type, dirs)
    }
}

impl<T: Exec + ?Sized> Exec for &T {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        (**self).exec(req)
    }
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        (**self).find_plugin(plugin_type, dirs)
    }
}

/// Runs plugin processes with tokio (see the module documentation for how processes are
/// started, killed and confined).
#[derive(Debug, Clone, Default)]
pub struct RawExec {
    /// Default per-plugin timeout (a request's own timeout wins). `None`: wait forever, as libcni.
    pub timeout: Option<Duration>,
    /// Added to the child's environment before the request's `CNI_*` variables.
    pub extra_env: Vec<(String, String)>,
    /// Run every plugin with its root changed to this directory (`chrootDir`). Check it with
    /// [`validate_chroot_dir`] first.
    pub chroot_dir: Option<PathBuf>,
    text_busy: TextBusyRetry,
}

/// How `ETXTBSY` at spawn is retried.
#[derive(Debug, Clone, Copy)]
struct TextBusyRetry {
    retries: u32,
    delay: Duration,
}

impl Default for TextBusyRetry {
    fn default() -> Self {
        Self { retries: TEXT_BUSY_RETRIES, delay: TEXT_BUSY_DELAY }
    }
}

/// SIGKILL the process group a started (and not yet reaped) plugin leads. After the leader has
/// been reaped its pid, and so the group id, may belong to someone else: then nothing is sent.
fn kill_process_group(child: &tokio::process::Child) {
    kill_group_of(child.id());
}

/// SIGKILL the process group led by `pid` (plugins run in their own group).
fn kill_group_of(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // ESRCH (already gone) is fine: nothing left to stop.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// The most a plugin may write to stdout. A CNI result is a few kilobytes; a plugin printing
/// without end must not take the daemon's memory with it.
pub const MAX_PLUGIN_STDOUT: usize = 16 * 1024 * 1024;
/// The most of a plugin's stderr that is kept (the rest is read and dropped, so the plugin
/// never blocks on a full pipe).
pub const MAX_PLUGIN_STDERR: usize = 1024 * 1024;

/// Read `pipe` to its end, keeping at most `limit` bytes. `Ok(None)` when there was more.
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        let mut bounded = pipe.take(limit as u64 + 1);
        bounded.read_to_end(&mut buf).await?;
        if buf.len() > limit {
            return Ok(None);
        }
    }
    Ok(Some(buf))
}

/// A started plugin process. Dropped before it was reaped (a cancelled request), it takes its
/// whole process group down; `kill_on_drop` then has the leader reaped in the background.
struct PluginProcess(tokio::process::Child);

impl Drop for PluginProcess {
    fn drop(&mut self) {
        kill_process_group(&self.0);
    }
}

impl RawExec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout: Some(timeout), ..Self::default() }
    }

    /// Run plugins chrooted into `dir` (the daemon's `chrootDir`).
    pub fn with_chroot_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.chroot_dir = Some(dir.into());
        self
    }

    fn spawn_error(&self, plugin: &Path, source: io::Error) -> ExecError {
        ExecError::Spawn { plugin: plugin.to_path_buf(), chroot: self.chroot_dir.clone(), source: Arc::new(source) }
    }

    fn command(&self, req: &PluginRequest<'_>) -> Result<tokio::process::Command, ExecError> {
        let setup = child::ChildSetup::new(self.chroot_dir.as_deref()).map_err(|e| self.spawn_error(req.path, e))?;
        let mut cmd = tokio::process::Command::new(req.path);
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        setup.install(&mut cmd);
        Ok(cmd)
    }

    /// Spawn (on the spawner thread), retrying `ETXTBSY` with a fresh process each time.
    async fn spawn(&self, req: &PluginRequest<'_>) -> Result<PluginProcess, ExecError> {
        let mut retries = 0;
        loop {
            match spawner::spawn(self.command(req)?).await {
                Ok(child) => return Ok(PluginProcess(child)),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && retries < self.text_busy.retries => {
                    retries += 1;
                    tracing::debug!(plugin = %req.path.display(), retries, "text file busy, retrying");
                    tokio::time::sleep(self.text_busy.delay).await;
                }
                Err(e) => return Err(self.spawn_error(req.path, e)),
            }
        }
    }

    /// Run one plugin to completion (or until the timeout kills it and its process group).
    pub async fn run(&self, req: PluginRequest<'_>) -> Result<Vec<u8>, ExecError> {
        let timeout = req.timeout.or(self.timeout);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let timed_out = || ExecError::Timeout { plugin: req.path.to_path_buf(), after: timeout.unwrap_or_default() };

        let spawned = match deadline {
            Some(d) => tokio::time::timeout_at(d, self.spawn(&req)).await.map_err(|_| timed_out())?,
            None => self.spawn(&req).await,
        };
        let mut process = spawned?;
        let child = &mut process.0;
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let pid = child.id();
        let input = req.stdin;

        let io_error = |e: io::Error| ExecError::Io { plugin: req.path.to_path_buf(), source: Arc::new(e) };
        let finished = async {
            let write = async move {
                if let Some(mut pipe) = stdin {
                    // A plugin may exit without reading its input: EPIPE is not our failure.
                    match pipe.write_all(input).await {
                        Ok(()) | Err(_) => {}
                    }
                    // Dropping the pipe closes it: the plugin sees EOF.
                    drop(pipe);
                }
            };
            let read_out = async move {
                let out = read_bounded(stdout, MAX_PLUGIN_STDOUT).await;
                if matches!(out, Ok(None)) {
                    // It would block on the full pipe until the timeout: stop it now.
                    kill_group_of(pid);
                }
                out
            };
            let read_err = async move {
                let Some(pipe) = stderr else { return Ok::<_, io::Error>(Vec::new()) };
                let mut buf = Vec::new();
                let mut kept = pipe.take(MAX_PLUGIN_STDERR as u64);
                kept.read_to_end(&mut buf).await?;
                tokio::io::copy(&mut kept.into_inner(), &mut tokio::io::sink()).await?;
                Ok(buf)
            };
            let ((), out, err) = tokio::join!(write, read_out, read_err);
            let status = child.wait().await;
            (status, out, err)
        };
        let outcome = match deadline {
            Some(d) => tokio::time::timeout_at(d, finished).await.ok(),
            None => Some(finished.await),
        };
        let Some((status, out, err)) = outcome else {
            // SIGKILL the plugin and whatever it forked, and reap it: no zombie, no leftovers.
            // The leader is also killed directly, so the wait is bounded even if the group kill
            // failed.
            kill_process_group(&process.0);
            let _ = process.0.start_kill();
            let _ = process.0.wait().await;
            return Err(timed_out());
        };
        let status = status.map_err(io_error)?;
        let Some(out) = out.map_err(io_error)? else {
            return Err(ExecError::OutputTooLarge { plugin: req.path.to_path_buf(), limit: MAX_PLUGIN_STDOUT });
        };
        let err = err.map_err(io_error)?;
        let result = interpret_output(req.path, status.into(), out, &err);
        if result.is_ok() && !err.is_empty() {
            // libcni copies a successful plugin's stderr to the runtime's stderr.
            tracing::debug!(plugin = %req.path.display(), stderr = %String::from_utf8_lossy(&err), "plugin stderr");
        }
        result
    }

    /// [`RawExec::run`] for synchronous callers: runs on a private current-thread runtime (on a
    /// helper thread when called from inside a tokio runtime, where blocking on another runtime
    /// is not allowed).
    pub fn run_blocking(&self, req: PluginRequest<'_>) -> Result<Vec<u8>, ExecError> {
        let path = req.path.to_path_buf();
        let run = move || -> Result<Vec<u8>, ExecError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| self.spawn_error(&path, e))?;
            rt.block_on(self.run(req))
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| match s.spawn(run).join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        } else {
            run()
        }
    }
}

impl Exec for RawExec {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        Box::pin(self.run(req))
    }

    /// [`find_in_path`]; with a chroot directory, the plugin must also be a regular file inside
    /// it (see the module documentation).
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        match &self.chroot_dir {
            None => find_in_path(plugin_type, dirs),
            Some(root) => chroot::find_in_path_and_root(plugin_type, dirs, root),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {
    //! A recording fake executor: scripted replies per plugin type (and command), every call
    //! recorded with its type, environment and stdin. No processes, no files.
    //!
    //! ```
    //! use cni::exec::testing::{RecordingExec, Reply};
    //! use cni::env::Command;
    //! let exec = RecordingExec::new();
    //! exec.on("bridge", Command::Add, Reply::stdout(r#"{"cniVersion":"1.0.0"}"#));
    //! exec.on_any("portmap", Reply::error(cni::CniError::new(11, "try later")));
    //! // … run a CniRuntime with exec.clone(), then inspect exec.calls()
    //! ```
    //!
    //! Without a matching rule a plugin behaves like a well-mannered no-op: ADD echoes its
    //! `prevResult` (or answers an empty result of the config's version), VERSION answers every
    //! version, everything else succeeds silently.

    use super::*;
    use crate::env::Command;
    use serde_json::Value;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// One recorded plugin run.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ExecCall {
        pub plugin_type: String,
        pub path: PathBuf,
        pub env: Vec<(String, String)>,
        pub stdin: Vec<u8>,
    }

    impl ExecCall {
        /// The last value of an environment variable.
        pub fn env_var(&self, key: &str) -> Option<&str> {
            self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        }

        /// `CNI_COMMAND`.
        pub fn command(&self) -> &str {
            self.env_var("CNI_COMMAND").unwrap_or("")
        }

        /// stdin as JSON (`Null` when it is not JSON).
        pub fn stdin_json(&self) -> Value {
            serde_json::from_slice(&self.stdin).unwrap_or(Value::Null)
        }
    }

    type Handler = Arc<dyn Fn(&ExecCall) -> Result<Vec<u8>, ExecError> + Send + Sync>;

    /// What a faked plugin does.
    #[derive(Clone)]
    pub enum Reply {
        /// Exit 0 with this stdout.
        Stdout(Vec<u8>),
        /// Fail with this error.
        Fail(ExecError),
        /// Pretend a process ended like this; read with the real rules ([`interpret_output`]).
        Process { exit: ProcessExit, stdout: Vec<u8>, stderr: Vec<u8> },
        /// Compute the outcome from the call.
        With(Handler),
        /// Never finish: a request with a timeout fails with [`ExecError::Timeout`] when it
        /// expires; without one it stays pending until dropped.
        Hang,
    }

    impl std::fmt::Debug for Reply {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::Stdout(s) => f.debug_tuple("Stdout").field(&String::from_utf8_lossy(s)).finish(),
                Self::Fail(e) => f.debug_tuple("Fail").field(e).finish(),
                Self::Process { exit, .. } => f.debug_struct("Process").field("exit", exit).finish_non_exhaustive(),
                Self::With(_) => f.write_str("With(..)"),
                Self::Hang => f.write_str("Hang"),
            }
        }
    }

    impl Reply {
        pub fn stdout(s: impl Into<Vec<u8>>) -> Self {
            Self::Stdout(s.into())
        }
        /// Exit 0 with no output (DEL/CHECK/STATUS/GC success).
        pub fn ok() -> Self {
            Self::Stdout(Vec::new())
        }
        /// A plugin error object on stdout with exit 1.
        pub fn error(e: CniError) -> Self {
            Self::Fail(ExecError::Plugin(e))
        }
        pub fn with(f: impl Fn(&ExecCall) -> Result<Vec<u8>, ExecError> + Send + Sync + 'static) -> Self {
            Self::With(Arc::new(f))
        }
    }

    #[derive(Debug)]
    struct Rule {
        plugin_type: String,
        command: Option<Command>,
        reply: Reply,
        once: bool,
    }

    #[derive(Debug, Default)]
    struct State {
        rules: Vec<Rule>,
        calls: Vec<ExecCall>,
        missing: HashSet<String>,
    }

    /// The fake. Clones share state: keep one, give a clone to the code under test.
    #[derive(Debug, Clone, Default)]
    pub struct RecordingExec {
        state: Arc<Mutex<State>>,
    }

    impl RecordingExec {
        pub fn new() -> Self {
            Self::default()
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        fn push(&self, plugin_type: &str, command: Option<Command>, reply: Reply, once: bool) -> &Self {
            self.state().rules.push(Rule { plugin_type: plugin_type.to_string(), command, reply, once });
            self
        }

        /// Every `command` call to `plugin_type` gets `reply` (a later rule overrides an earlier one).
        pub fn on(&self, plugin_type: &str, command: Command, reply: Reply) -> &Self {
            self.push(plugin_type, Some(command), reply, false)
        }

        /// Every call to `plugin_type`, whatever the command.
        pub fn on_any(&self, plugin_type: &str, reply: Reply) -> &Self {
            self.push(plugin_type, None, reply, false)
        }

        /// The next `command` call only (one-shot rules are used first, in order).
        pub fn once(&self, plugin_type: &str, command: Command, reply: Reply) -> &Self {
            self.push(plugin_type, Some(command), reply, true)
        }

        /// [`Exec::find_plugin`] fails with [`ExecError::NotFound`] for this type.
        pub fn not_found(&self, plugin_type: &str) -> &Self {
            self.state().missing.insert(plugin_type.to_string());
            self
        }

        /// Every call so far, in order.
        pub fn calls(&self) -> Vec<ExecCall> {
            self.state().calls.clone()
        }

        /// `(plugin type, CNI_COMMAND)` of every call, in order.
        pub fn commands(&self) -> Vec<(String, String)> {
            self.state().calls.iter().map(|c| (c.plugin_type.clone(), c.command().to_string())).collect()
        }

        pub fn clear_calls(&self) {
            self.state().calls.clear();
        }

        fn reply_for(&self, call: &ExecCall) -> Option<Reply> {
            let command: Option<Command> = call.command().parse().ok();
            let matches = |r: &Rule| r.plugin_type == call.plugin_type && (r.command.is_none() || r.command == command);
            let mut state = self.state();
            if let Some(i) = state.rules.iter().position(|r| r.once && matches(r)) {
                return Some(state.rules.remove(i).reply);
            }
            state.rules.iter().rev().find(|r| !r.once && matches(r)).map(|r| r.reply.clone())
        }
    }

    /// The no-rule behaviour described in the module docs.
    pub fn default_reply(call: &ExecCall) -> Result<Vec<u8>, ExecError> {
        match call.command() {
            "ADD" => {
                let conf = call.stdin_json();
                let out = match conf.get("prevResult") {
                    Some(prev) if !prev.is_null() => prev.clone(),
                    _ => {
                        serde_json::json!({ "cniVersion": conf.get("cniVersion").cloned().unwrap_or(Value::from("")) })
                    }
                };
                Ok(out.to_string().into_bytes())
            }
            "VERSION" => Ok(serde_json::to_vec(&crate::version::VersionInfo::all()).unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }

    impl Exec for RecordingExec {
        fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
            let call = ExecCall {
                plugin_type: req.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                path: req.path.to_path_buf(),
                env: req.env.clone(),
                stdin: req.stdin.to_vec(),
            };
            self.state().calls.push(call.clone());
            let reply = self.reply_for(&call);
            Box::pin(async move {
                match reply {
                    None => default_reply(&call),
                    Some(Reply::Stdout(s)) => Ok(s),
                    Some(Reply::Fail(e)) => Err(e),
                    Some(Reply::Process { exit, stdout, stderr }) => {
                        interpret_output(&call.path, exit, stdout, &stderr)
                    }
                    Some(Reply::With(f)) => f(&call),
                    Some(Reply::Hang) => match req.timeout {
                        Some(t) => {
                            tokio::time::sleep(t).await;
                            Err(ExecError::Timeout { plugin: call.path.clone(), after: t })
                        }
                        None => std::future::pending().await,
                    },
                }
            })
        }

        /// Same name rules as [`find_in_path`], but nothing is looked up on disk: the plugin
        /// "lives" in the first directory.
        fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
            check_plugin_name(plugin_type)?;
            let first = dirs.first().ok_or(ExecError::NoPaths)?;
            if self.state().missing.contains(plugin_type) {
                return Err(ExecError::NotFound { plugin: plugin_type.to_string(), dirs: dirs.to_vec() });
            }
            Ok(first.join(plugin_type))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn env() -> Vec<(String, String)> {
        vec![("CNI_COMMAND".into(), "ADD".into()), ("CNI_IFNAME".into(), "eth0".into())]
    }

    #[test]
    fn find_in_path_follows_libcni() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        std::fs::create_dir(a.path().join("bridge")).unwrap(); // a directory is not a hit
        std::fs::write(b.path().join("bridge"), "").unwrap();
        std::fs::write(a.path().join("tuning"), "").unwrap();
        std::fs::write(b.path().join("tuning"), "").unwrap();
        std::os::unix::fs::symlink(b.path().join("bridge"), a.path().join("link")).unwrap();
        assert_eq!(find_in_path("bridge", &dirs).unwrap(), b.path().join("bridge"));
        assert_eq!(find_in_path("tuning", &dirs).unwrap(), a.path().join("tuning"));
        assert_eq!(find_in_path("link", &dirs).unwrap(), a.path().join("link"));

        assert_eq!(find_in_path("", &dirs).unwrap_err().to_string(), "no plugin name provided");
        for bad in ["../bridge", "a/b", "/bin/sh", ".", ".."] {
            assert!(
                matches!(find_in_path(bad, &dirs), Err(ExecError::InvalidName { reason: "invalid plugin name", .. })),
                "{bad}"
            );
        }
        assert_eq!(find_in_path("bridge", &[]).unwrap_err().to_string(), "no paths provided");
        let e = find_in_path("nope", &[PathBuf::from("/x"), PathBuf::from("/y")]).unwrap_err();
        assert_eq!(e.to_string(), r#"failed to find plugin "nope" in path [/x /y]"#);
        assert_eq!(e.to_cni_error().code, code::INTERNAL);
    }

    #[test]
    fn interpret_output_reads_failures_like_libcni() {
        let p = Path::new("/p");
        assert_eq!(interpret_output(p, ProcessExit::Code(0), b"out".to_vec(), b"").unwrap(), b"out");
        let e = interpret_output(p, ProcessExit::Code(1), br#"{"code":7,"msg":"bad","details":"d"}"#.to_vec(), b"")
            .unwrap_err();
        assert_eq!(e.to_cni_error(), CniError::with_details(7, "bad", "d"));
        assert_eq!(e.to_string(), "bad; d");

        let e = interpret_output(p, ProcessExit::Code(2), vec![], b"").unwrap_err();
        assert_eq!(e.to_string(), "netplugin failed with no error message: exit status 2");
        assert_eq!(e.to_cni_error().code, 0);
        let e = interpret_output(p, ProcessExit::Code(1), vec![], b"oops\n").unwrap_err();
        assert_eq!(e.to_string(), r#"netplugin failed: "oops\n""#);

        let e = interpret_output(p, ProcessExit::Code(1), b"garbage".to_vec(), b"").unwrap_err();
        assert!(matches!(e, ExecError::BadErrorOutput { status: 1, .. }));
        assert!(e.to_string().starts_with(r#"netplugin failed but error parsing its diagnostic message "garbage": "#));
        assert_eq!(e.to_cni_error().code, 0);

        // Any JSON object is an error object, as for Go's json.Unmarshal.
        let e = interpret_output(p, ProcessExit::Code(1), b"{}".to_vec(), b"").unwrap_err();
        assert_eq!(e.to_cni_error(), CniError::new(0, ""));

        let e = interpret_output(p, ProcessExit::Signal(9), vec![], b"").unwrap_err();
        assert_eq!(e.to_string(), "plugin /p was killed by signal SIGKILL");
    }

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c\n\t\x1b"), r#""a\"b\\c\n\t\x1b""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }

    #[tokio::test]
    async fn runs_a_plugin_and_passes_env_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(
            dir.path(),
            "ok",
            r#"in=$(cat); printf '{"cmd":"%s","if":"%s","in":%s,"extra":"%s"}' "$CNI_COMMAND" "$CNI_IFNAME" "$in" "$EXTRA""#,
        );
        let exec = RawExec {
            timeout: None,
            extra_env: vec![("EXTRA".into(), "x".into()), ("CNI_IFNAME".into(), "lost".into())],
            ..RawExec::default()
        };
        let out = exec.run(PluginRequest::new(&p, env(), br#"{"a":1}"#)).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"cmd":"ADD","if":"eth0","in":{"a":1},"extra":"x"}));
    }

    #[tokio::test]
    async fn endless_output_is_cut_off_and_the_plugin_killed() {
        let dir = tempfile::tempdir().unwrap();
        // 64 MiB of stdout (4× the cap) and as much stderr: neither may reach the daemon's memory.
        let p = write_script(
            dir.path(),
            "flood",
            "cat >/dev/null; head -c 67108864 /dev/zero >&2 & head -c 67108864 /dev/zero; wait",
        );
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(e, ExecError::OutputTooLarge { limit: MAX_PLUGIN_STDOUT, .. }), "{e}");
        let chatty = write_script(dir.path(), "chatty", "cat >/dev/null; head -c 8388608 /dev/zero >&2; echo '{}'");
        let out = RawExec::new().run(PluginRequest::new(&chatty, env(), b"{}")).await.unwrap();
        assert_eq!(out, b"{}\n", "a long stderr is drained and dropped past the cap");
    }

    #[tokio::test]
    async fn error_object_and_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(
            dir.path(),
            "fail",
            r#"cat >/dev/null; echo '{"code":11,"msg":"try again"}'; echo log >&2; exit 1"#,
        );
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert_eq!(e.plugin_error(), Some(&CniError::new(11, "try again")));
    }

    #[tokio::test]
    async fn garbage_on_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "garbage", "echo 'not json'; exit 3");
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(&e, ExecError::BadErrorOutput { status: 3, stdout, .. } if stdout == "not json\n"), "{e:?}");
    }

    #[tokio::test]
    async fn nothing_on_stdout_but_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "stderr", "echo 'it broke' >&2; exit 1");
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(&e, ExecError::NoErrorOutput { status: 1, stderr } if stderr == "it broke\n"), "{e:?}");
        assert_eq!(e.to_cni_error().msg, r#"netplugin failed: "it broke\n""#);
    }

    #[tokio::test]
    async fn timeout_kills_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let p = write_script(dir.path(), "slow", &format!("echo $$ > {}; exec sleep 60", pidfile.display()));
        let start = Instant::now();
        let e = RawExec::with_timeout(Duration::from_millis(500))
            .run(PluginRequest::new(&p, env(), b"{}"))
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
        // Killed and reaped: the pid no longer exists (not even as a zombie).
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let gone = !Path::new(&format!("/proc/{pid}")).exists();
        assert!(gone, "plugin process {pid} still exists");
    }

    #[tokio::test]
    async fn request_timeout_overrides_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "slow", "exec sleep 60");
        let req = PluginRequest::new(&p, env(), b"{}").with_timeout(Some(Duration::from_millis(200)));
        let e = RawExec::with_timeout(Duration::from_secs(3600)).run(req).await.unwrap_err();
        assert!(matches!(e, ExecError::Timeout { after, .. } if after == Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn death_by_signal_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "killed", "echo dying >&2; kill -9 $$");
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(&e, ExecError::Signaled { signal: 9, stderr, .. } if stderr == "dying\n"), "{e:?}");
        assert_eq!(e.to_cni_error().code, 0);
    }

    #[tokio::test]
    async fn large_output_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        // 2 MiB on stdout and 1 MiB on stderr, before reading 1 MiB of stdin.
        let p =
            write_script(dir.path(), "big", "head -c 2097152 /dev/zero; head -c 1048576 /dev/zero >&2; cat >/dev/null");
        let input = vec![b' '; 1 << 20];
        let out =
            RawExec::with_timeout(Duration::from_secs(60)).run(PluginRequest::new(&p, env(), &input)).await.unwrap();
        assert_eq!(out.len(), 2 << 20);
    }

    #[tokio::test]
    async fn plugin_that_never_reads_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "deaf", "echo '{}'");
        let input = vec![b' '; 4 << 20];
        let out =
            RawExec::with_timeout(Duration::from_secs(60)).run(PluginRequest::new(&p, env(), &input)).await.unwrap();
        assert_eq!(out, b"{}\n");
    }

    #[tokio::test]
    async fn stdin_is_closed_after_writing() {
        let dir = tempfile::tempdir().unwrap();
        // `cat` only finishes when it sees EOF.
        let p = write_script(dir.path(), "cat", "cat");
        let out =
            RawExec::with_timeout(Duration::from_secs(30)).run(PluginRequest::new(&p, env(), b"hello")).await.unwrap();
        assert_eq!(out, b"hello");
    }

    #[tokio::test]
    async fn spawn_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not-executable");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(e, ExecError::Spawn { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn text_file_busy_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "busy", "echo ok");
        // An open write handle makes exec fail with ETXTBSY until it is closed.
        let handle = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(handle);
        });
        let out =
            RawExec::with_timeout(Duration::from_secs(30)).run(PluginRequest::new(&p, env(), b"{}")).await.unwrap();
        assert_eq!(out, b"ok\n");
        closer.join().unwrap();
    }

    #[tokio::test]
    async fn text_file_busy_on_every_attempt_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "busy", "echo ok");
        let _writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let exec =
            RawExec { text_busy: TextBusyRetry { retries: 2, delay: Duration::from_millis(10) }, ..RawExec::default() };
        let e = exec.run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        // Not Go's "success with empty output": the run fails, naming the cause.
        assert!(
            matches!(&e, ExecError::Spawn { source, chroot: None, .. } if source.raw_os_error() == Some(libc::ETXTBSY)),
            "{e:?}"
        );
        assert!(e.to_string().starts_with(&format!("failed to start plugin {}: ", p.display())), "{e}");
    }

    #[test]
    fn spawn_errors_name_the_chroot() {
        let e = ExecError::Spawn {
            plugin: "/opt/cni/bin/x".into(),
            chroot: Some("/hostroot".into()),
            source: Arc::new(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        assert_eq!(
            e.to_string(),
            "failed to start plugin /opt/cni/bin/x (chroot /hostroot): No such file or directory (os error 2)"
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_kills_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let p = write_script(dir.path(), "slow", &format!("echo $$ > {}; exec sleep 60", pidfile.display()));
        let exec = RawExec::new();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(500), exec.run(PluginRequest::new(&p, env(), b"{}"))).await;
        assert!(cancelled.is_err());
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // Killed on drop; tokio reaps it in the background. Gone or a zombie: not running.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running =
                stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')) && !stat.is_empty();
            if !running {
                break;
            }
            assert!(Instant::now() < deadline, "plugin {pid} still running after cancellation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn blocking_variant_outside_and_inside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(dir.path(), "ok", "cat");
        let exec = RawExec::with_timeout(Duration::from_secs(30));
        assert_eq!(exec.run_blocking(PluginRequest::new(&p, env(), b"x")).unwrap(), b"x");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(async { exec.run_blocking(PluginRequest::new(&p, env(), b"y")) });
        assert_eq!(out.unwrap(), b"y");
    }

    #[tokio::test]
    async fn recording_fake_scripts_and_records() {
        use crate::env::Command;
        use testing::{RecordingExec, Reply};
        let fake = RecordingExec::new();
        fake.on("bridge", Command::Add, Reply::stdout("A"));
        fake.once("bridge", Command::Add, Reply::stdout("first"));
        fake.on_any("bad", Reply::error(CniError::new(50, "down")));
        fake.not_found("gone");
        let dirs = [PathBuf::from("/opt/cni/bin")];
        let path = fake.find_plugin("bridge", &dirs).unwrap();
        assert_eq!(path, Path::new("/opt/cni/bin/bridge"));
        assert!(matches!(fake.find_plugin("gone", &dirs), Err(ExecError::NotFound { .. })));
        assert!(matches!(fake.find_plugin("../x", &dirs), Err(ExecError::InvalidName { .. })));
        assert_eq!(fake.exec(PluginRequest::new(&path, env(), b"{}")).await.unwrap(), b"first");
        assert_eq!(fake.exec(PluginRequest::new(&path, env(), b"{}")).await.unwrap(), b"A");
        let bad = PathBuf::from("/opt/cni/bin/bad");
        assert_eq!(fake.exec(PluginRequest::new(&bad, env(), b"{}")).await.unwrap_err().to_cni_error().code, 50);
        // No rule: ADD echoes prevResult.
        let other = PathBuf::from("/opt/cni/bin/other");
        let out = fake
            .exec(PluginRequest::new(
                &other,
                env(),
                br#"{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","ips":[]}}"#,
            ))
            .await
            .unwrap();
        assert_eq!(out, br#"{"cniVersion":"1.0.0","ips":[]}"#);
        let calls = fake.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[0].plugin_type, "bridge");
        assert_eq!(calls[0].command(), "ADD");
        assert_eq!(calls[0].env_var("CNI_IFNAME"), Some("eth0"));
    }
}
