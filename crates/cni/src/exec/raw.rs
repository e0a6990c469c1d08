//! [`RawExec`]: the real executor, one plugin process per run (see the [parent module](super)
//! for how processes are started, killed and confined, and [`Containment`] for the
//! containment of everything a plugin starts).

use super::contain::{self, Containment, Invocation, Leftovers, ScopeRef};
use super::group::kill_group_of;
use super::output::{Capture, KEPT_HEAD, KEPT_TAIL};
use super::{
    Exec, ExecError, ExecFuture, PluginRequest, ProcessExit, child, chroot, clone, find_in_path, interpret_output,
    spawner,
};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Extra spawn attempts after `ETXTBSY`, one second apart (libcni's `RawExec`).
pub const TEXT_BUSY_RETRIES: u32 = 5;
const TEXT_BUSY_DELAY: Duration = Duration::from_secs(1);

/// How long the plugin's stdout and stderr may stay open after the plugin exited.
///
/// When a plugin exits, the kernel closes its ends of the pipes: the daemon sees end-of-file
/// at once, unless a process the plugin started (and did not wait for) still holds them. Such
/// a process gets this long to finish — a helper exiting just behind its parent on a busy
/// node needs a few scheduler ticks, not more — and is then killed as a leftover, and what the
/// pipes hold is taken. 200 ms is far below any runtime's CNI timeout and invisible next to a
/// pod's start; only a plugin that leaves a process holding its output pays it (before, it
/// paid the whole timeout, 120 s by default, and failed).
pub const EXIT_GRACE: Duration = Duration::from_millis(200);
/// After the leftovers were killed, how long reading the pipes to their end may still take
/// (they end at once, unless a holder escaped the containment; then what was read is kept).
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);

/// Runs plugin processes with tokio (see the module documentation for how processes are
/// started, killed and confined).
#[derive(Debug, Clone, Default)]
pub struct RawExec {
    /// Default per-plugin timeout (a request's own timeout wins). `None`: wait forever, as libcni.
    pub timeout: Option<Duration>,
    /// Added to the child's environment before the request's `CNI_*` variables.
    pub extra_env: Vec<(String, String)>,
    /// Run every plugin with its root changed to this directory (`chrootDir`). Check it with
    /// [`validate_chroot_dir`](super::validate_chroot_dir) first.
    pub chroot_dir: Option<PathBuf>,
    text_busy: TextBusyRetry,
    /// Where invocations are contained (default: a scope private to this process).
    scope: ScopeRef,
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

/// The most a plugin may write to stdout. A CNI result is a few kilobytes; a plugin printing
/// without end must not take the daemon's memory with it.
pub const MAX_PLUGIN_STDOUT: usize = 16 * 1024 * 1024;
/// The most of a plugin's stderr that is kept: its first and last 2 KiB, joined by a marker
/// counting the bytes cut between them (see [`cut_middle`](super::cut_middle)). The rest is
/// read and dropped, so the plugin never blocks on a full pipe.
pub const MAX_PLUGIN_STDERR: usize = KEPT_HEAD + KEPT_TAIL;

/// Read `pipe` to its end into `buf`, keeping at most `limit` bytes. `Ok(false)` when there
/// was more.
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    limit: usize,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    if let Some(pipe) = pipe {
        let mut bounded = pipe.take(limit as u64 + 1);
        bounded.read_to_end(buf).await?;
        if buf.len() > limit {
            buf.truncate(limit);
            return Ok(false);
        }
    }
    Ok(true)
}

/// A started plugin process. Dropped before it was reaped (a cancelled request), it takes its
/// whole process group down and is reaped in the background (the invocation's own drop kills
/// the rest of its processes).
struct PluginProcess(Started);

enum Started {
    /// Through `tokio::process::Command` (`kill_on_drop`).
    Tokio(tokio::process::Child),
    /// Through `clone3` into its cgroup.
    Clone(clone::PluginChild),
}

type Input = Box<dyn AsyncWrite + Send + Unpin>;
type Output = Box<dyn AsyncRead + Send + Unpin>;

impl PluginProcess {
    /// The pid while the process is not reaped.
    fn id(&self) -> Option<u32> {
        match &self.0 {
            Started::Tokio(c) => c.id(),
            Started::Clone(c) => c.id(),
        }
    }

    fn start_kill(&mut self) {
        match &mut self.0 {
            Started::Tokio(c) => drop(c.start_kill()),
            Started::Clone(c) => c.start_kill(),
        }
    }

    async fn wait(&mut self) -> io::Result<ProcessExit> {
        match &mut self.0 {
            Started::Tokio(c) => c.wait().await.map(ProcessExit::from),
            Started::Clone(c) => c.wait().await,
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        kill_group_of(self.id());
    }
}

/// End an invocation off the async workers. With nothing left running (the common case: one
/// read of `cgroup.events`), its cgroup is removed in the background and nothing is awaited;
/// otherwise the kill, which waits until the processes are gone, is awaited.
async fn finish(inv: Invocation) -> contain::Finished {
    if inv.is_empty_now() {
        inv.finish_in_background();
        return contain::Finished::default();
    }
    tokio::task::spawn_blocking(move || inv.finish()).await.unwrap_or_default()
}

impl RawExec {
    /// No timeout (as libcni), no extra environment, no chroot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Kill every plugin that runs longer than `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout: Some(timeout), ..Self::default() }
    }

    /// Run plugins chrooted into `dir` (the daemon's `chrootDir`).
    pub fn with_chroot_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.chroot_dir = Some(dir.into());
        self
    }

    /// Contain this executor's invocations in the scope `name` (made safe with
    /// [`sanitize_scope`](super::sanitize_scope)): cgroups under
    /// `<own cgroup>/multus-delegates-<scope>/`. Executors of different scopes never touch
    /// each other's processes, [`RawExec::reap_leftovers`] included; a daemon derives the name
    /// from its socket path. Without a scope, the executor uses one private to this process.
    pub fn with_scope(mut self, name: &str) -> Self {
        self.scope = ScopeRef::get(&contain::sanitize_scope(name), self.scope.limit());
        self
    }

    /// Use the best containment mechanism available that is not better than `limit` (tests,
    /// or an operator who does not want cgroups touched: [`Containment::ProcessGroup`]).
    pub fn with_containment(mut self, limit: Containment) -> Self {
        self.scope = ScopeRef::get(self.scope.name(), limit);
        self
    }

    /// The scope name (empty: the process's private scope).
    pub fn scope(&self) -> &str {
        self.scope.name()
    }

    /// The containment mechanism in use. The first call (or the first run) chooses it and
    /// logs it: a few file-system calls and one short-lived trial process.
    pub fn containment(&self) -> Containment {
        self.scope.containment()
    }

    /// The directory that holds this executor's invocation cgroups
    /// (`<own cgroup>/multus-delegates-<scope>`; `None` in process-group mode).
    pub fn scope_dir(&self) -> Option<PathBuf> {
        self.scope.dir()
    }

    /// Kill what an earlier instance left running in this executor's scope — a daemon killed
    /// with `kill -9` takes its plugins with it (parent-death signal), but not what they
    /// started — wait until it is gone (at most 10 s per cgroup) and remove its cgroups.
    /// Invocations running in this process are never touched. Blocking: a daemon calls it at
    /// start, before it serves (from async code, inside `spawn_blocking`/`block_in_place`).
    pub fn reap_leftovers(&self) -> Leftovers {
        self.scope.reap_leftovers()
    }

    fn spawn_error(&self, plugin: &Path, source: io::Error) -> ExecError {
        ExecError::Spawn { plugin: plugin.to_path_buf(), chroot: self.chroot_dir.clone(), source: Arc::new(source) }
    }

    fn command(&self, req: &PluginRequest<'_>, inv: &Invocation) -> Result<tokio::process::Command, ExecError> {
        let setup = child::ChildSetup::new(self.chroot_dir.as_deref(), inv.join_fd())
            .map_err(|e| self.spawn_error(req.path, e))?;
        let mut cmd = tokio::process::Command::new(req.path);
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((key, value)) = inv.env_tag() {
            cmd.env(key, value);
        }
        setup.install(&mut cmd);
        Ok(cmd)
    }

    /// Start the plugin once: inside its cgroup with `clone3` where the invocation has one that
    /// allows it, else through `tokio::process::Command` (the child moves itself in).
    async fn start(
        &self,
        req: &PluginRequest<'_>,
        inv: &Invocation,
    ) -> io::Result<(PluginProcess, Option<Input>, Option<Output>, Option<Output>)> {
        // A path without `/` is looked up in PATH by `Command`; keep that behaviour.
        let has_slash = req.path.as_os_str().as_encoded_bytes().contains(&b'/');
        if let Some(cgroup) = inv.clone_into().filter(|_| has_slash) {
            let setup = child::ChildSetup::new(self.chroot_dir.as_deref(), None)?;
            let vars = self.extra_env.iter().chain(&req.env).map(|(k, v)| (k.as_str(), v.as_str()));
            let prepared = clone::Prepared::new(req.path, vars.chain(inv.env_tag()), setup, cgroup)?;
            let raw = spawner::spawn_clone(prepared).await?;
            let (child, stdin, stdout, stderr) = clone::PluginChild::new(raw)?;
            return Ok((
                PluginProcess(Started::Clone(child)),
                Some(Box::new(stdin)),
                Some(Box::new(stdout)),
                Some(Box::new(stderr)),
            ));
        }
        let command = self.command(req, inv).map_err(|e| match e {
            ExecError::Spawn { source, .. } => io::Error::new(source.kind(), source.to_string()),
            other => io::Error::other(other.to_string()),
        })?;
        let mut child = spawner::spawn(command).await?;
        let stdin = child.stdin.take().map(|p| Box::new(p) as Input);
        let stdout = child.stdout.take().map(|p| Box::new(p) as Output);
        let stderr = child.stderr.take().map(|p| Box::new(p) as Output);
        Ok((PluginProcess(Started::Tokio(child)), stdin, stdout, stderr))
    }

    /// Spawn (on the spawner thread), retrying `ETXTBSY` with a fresh process each time.
    async fn spawn(
        &self,
        req: &PluginRequest<'_>,
        inv: &Invocation,
    ) -> Result<(PluginProcess, Option<Input>, Option<Output>, Option<Output>), ExecError> {
        let mut retries = 0;
        loop {
            match self.start(req, inv).await {
                Ok(started) => return Ok(started),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && retries < self.text_busy.retries => {
                    retries += 1;
                    tracing::debug!(plugin = %req.path.display(), retries, "text file busy, retrying");
                    tokio::time::sleep(self.text_busy.delay).await;
                }
                Err(e) => return Err(self.spawn_error(req.path, e)),
            }
        }
    }

    /// Run one plugin to completion (or until the timeout kills it and everything it started).
    ///
    /// The plugin runs in an invocation of its own (see [`Containment`]). Once it has exited,
    /// its stdout and stderr get [`EXIT_GRACE`] to end; then, and whenever processes it
    /// started are still running, those are killed (with a warning naming them) and the
    /// plugin's result is read as usual. A timeout, or the request being dropped, kills the
    /// whole invocation. Nothing the plugin started outlives the run.
    pub async fn run(&self, req: PluginRequest<'_>) -> Result<Vec<u8>, ExecError> {
        let timeout = req.timeout.or(self.timeout);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let timed_out = || ExecError::Timeout { plugin: req.path.to_path_buf(), after: timeout.unwrap_or_default() };

        let mut inv = self.scope.invocation();
        let spawned = match deadline {
            Some(d) => tokio::time::timeout_at(d, self.spawn(&req, &inv)).await.map_err(|_| timed_out()),
            None => Ok(self.spawn(&req, &inv).await),
        };
        let (mut process, stdin, stdout, stderr) = match spawned {
            Ok(Ok(p)) => p,
            Ok(Err(e)) | Err(e) => {
                drop(finish(inv).await);
                return Err(e);
            }
        };
        inv.set_plugin(process.id());
        let pid = process.id();
        let input = req.stdin;
        let io_error = |e: io::Error| ExecError::Io { plugin: req.path.to_path_buf(), source: Arc::new(e) };

        let mut out = Vec::new();
        let mut err = Capture::new(KEPT_HEAD, KEPT_TAIL);
        // Processes killed because they held the pipes after the plugin exited.
        let mut stragglers = Vec::new();
        let inv_ref = &inv;
        // `None`: the timeout expired. Otherwise the exit status and, unless the pipes never
        // ended, how reading them went.
        let exchange = {
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
            let out = &mut out;
            let read_out = async move {
                let fits = read_bounded(stdout, MAX_PLUGIN_STDOUT, out).await;
                if matches!(fits, Ok(false)) {
                    // It would block on the full pipe until the timeout: stop it now.
                    inv_ref.signal();
                    kill_group_of(pid);
                }
                fits
            };
            let read_err = err.drain(stderr);
            let io = async {
                let ((), out, err) = tokio::join!(write, read_out, read_err);
                (out, err)
            };
            let wait = process.wait();
            tokio::pin!(io, wait);
            let mut io_done = None;
            let until_exit = async {
                loop {
                    tokio::select! {
                        status = &mut wait => break status,
                        r = &mut io, if io_done.is_none() => io_done = Some(r),
                    }
                }
            };
            let status = match deadline {
                Some(d) => tokio::time::timeout_at(d, until_exit).await.ok(),
                None => Some(until_exit.await),
            };
            match status {
                None => None,
                Some(status) => {
                    if io_done.is_none() {
                        io_done = tokio::time::timeout(EXIT_GRACE, &mut io).await.ok();
                    }
                    if io_done.is_none() {
                        // Something the plugin started holds its output: it is a leftover.
                        stragglers = inv_ref.members();
                        inv_ref.signal();
                        io_done = tokio::time::timeout(DRAIN_AFTER_KILL, &mut io).await.ok();
                    }
                    Some((status, io_done))
                }
            }
        };
        let Some((status, io_done)) = exchange else {
            // SIGKILL the whole invocation and reap the plugin: no zombie, no leftovers. The
            // leader is also killed directly, so the wait is bounded even if the rest failed.
            inv.signal();
            kill_group_of(process.id());
            process.start_kill();
            let _ = process.wait().await;
            inv.plugin_reaped();
            let done = finish(inv).await;
            if !done.killed.is_empty() {
                tracing::debug!(plugin = %req.path.display(), "timed out: killed {}", contain::list(&done.killed));
            }
            return Err(timed_out());
        };
        inv.plugin_reaped();
        let done = finish(inv).await;
        let mut left = stragglers;
        left.extend(done.killed.into_iter().filter(|p| Some(p.pid) != pid.and_then(|p| i32::try_from(p).ok())));
        left.sort_by_key(|p| p.pid);
        left.dedup_by_key(|p| p.pid);
        if !left.is_empty() {
            tracing::warn!(
                plugin = %req.path.display(),
                "the plugin exited but left processes running; killed them: {}",
                contain::list(&left)
            );
        }
        let exit = status.map_err(io_error)?;
        let (fits, err_read) = io_done.unwrap_or((Ok(true), Ok(())));
        if !fits.map_err(io_error)? {
            return Err(ExecError::OutputTooLarge { plugin: req.path.to_path_buf(), limit: MAX_PLUGIN_STDOUT });
        }
        err_read.map_err(io_error)?;
        let err = err.into_bytes();
        let result = interpret_output(req.path, exit, out, &err);
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

#[cfg(test)]
mod tests;
