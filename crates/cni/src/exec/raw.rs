//! [`RawExec`]: the real executor, one plugin process per run (see the [parent module](super)
//! for how processes are started, killed and confined, and [`Containment`] for the
//! containment of everything a plugin starts).

use super::contain::{self, Containment, Invocation, Leftovers, ScopeRef};
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

/// SIGKILL the process group a started (and not yet reaped) plugin leads. After the leader has
/// been reaped its pid, and so the group id, may belong to someone else: then nothing is sent.
pub(super) fn kill_process_group(child: &tokio::process::Child) {
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
        contain::in_background(contain::Chore::Finish(inv));
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
mod tests {
    use super::*;
    use crate::error::CniError;
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

    /// A plugin writing 64 MiB to stderr fails with an error of a few KiB: its first and last
    /// 2 KiB and a marker counting the bytes cut (before: 1 MiB of it, in the error and the log).
    #[tokio::test]
    async fn a_flood_on_stderr_makes_a_short_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_script(
            dir.path(),
            "flood",
            "cat >/dev/null; echo FIRST >&2; head -c 67108864 /dev/zero | tr '\\0' x >&2; echo LAST >&2; exit 1",
        );
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        let text = e.to_string();
        assert!(text.len() < 6 * 1024, "{} bytes of error", text.len());
        let cut = 64 * 1024 * 1024 + 11 - MAX_PLUGIN_STDERR;
        assert!(text.contains(&format!("[… {cut} bytes cut …]")), "{}", &text[..text.len().min(300)]);
        assert!(text.starts_with(r#"netplugin failed: "FIRST\nxxx"#), "{}", &text[..40]);
        assert!(text.ends_with(r#"xxxLAST\n""#), "{}", &text[text.len() - 40..]);
        assert_eq!(e.to_cni_error().msg.len(), text.len());

        // Stdout that is not an error object is echoed the same way.
        let p = write_script(dir.path(), "garbage", "cat >/dev/null; head -c 8388608 /dev/zero | tr '\\0' y; exit 1");
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        assert!(matches!(e, ExecError::BadErrorOutput { .. }), "{e:?}");
        assert!(e.to_string().len() < 6 * 1024 && e.to_string().contains("bytes cut"));

        // And so is an error object's msg.
        let p = write_script(
            dir.path(),
            "longmsg",
            "cat >/dev/null; printf '{\"code\":7,\"msg\":\"'; head -c 1048576 /dev/zero | tr '\\0' m; printf '\"}'; exit 1",
        );
        let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
        let obj = e.plugin_error().unwrap();
        assert_eq!(obj.code, 7);
        assert!(obj.msg.len() < 5 * 1024 && obj.msg.contains("bytes cut"), "{}", obj.msg.len());
    }

    /// A plugin that exits 0 with its result, but leaves a child holding its stdout, is done:
    /// the run returns its result within the exit grace (before: at the timeout, failed), and
    /// the child is killed.
    #[tokio::test]
    async fn a_child_holding_stdout_does_not_hold_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child");
        let p = write_script(
            dir.path(),
            "leaves",
            &format!("cat >/dev/null; (sleep 300) & echo $! > {}; echo '{{}}'", pidfile.display()),
        );
        let start = Instant::now();
        let out = RawExec::with_timeout(Duration::from_secs(10)).run(PluginRequest::new(&p, env(), b"{}")).await;
        assert_eq!(out.unwrap(), b"{}\n");
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z');
        if running {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        assert!(!running, "the plugin's child {pid} survived the run");
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
}
