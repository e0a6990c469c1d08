//! [`RawExec`]: the real executor, one plugin process per run (see the [parent module](super)
//! for how processes are started, killed and confined).

use super::{Exec, ExecError, ExecFuture, PluginRequest, child, chroot, find_in_path, interpret_output, spawner};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Extra spawn attempts after `ETXTBSY`, one second apart (libcni's `RawExec`).
pub const TEXT_BUSY_RETRIES: u32 = 5;
const TEXT_BUSY_DELAY: Duration = Duration::from_secs(1);

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
