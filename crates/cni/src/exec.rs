//! Finding and running a plugin binary (cni.md §4.2, §4.3).
//!
//! - [`find_in_path`]: libcni's `invoke.FindInPath`, a little stricter.
//! - [`RawExec`]: runs one plugin process: writes the request to stdin and **closes** it, reads
//!   stdout and stderr concurrently until both end, waits, and reads the outcome with
//!   [`interpret_output`] — the one place where libcni's rules for a failed run live.
//!   A spawn failing with `ETXTBSY` (a binary being replaced) is retried, each attempt a fresh
//!   process; when every attempt fails that way the run fails (the Go daemon's chroot executor
//!   reports success with empty output instead).
//! - Plugin processes never outlive their purpose, nor does anything they start. Every run is
//!   an *invocation* contained on its own ([`contain`](self#containment)): a cgroup v2 (or v1
//!   freezer) per invocation that the plugin joins before `exec`, so `setsid` or a double fork
//!   cannot escape it. A timeout, or a request dropped before its plugin finished, kills the
//!   whole invocation and reaps the plugin; when the plugin exits, whatever it left running is
//!   killed (with a warning), and output pipes held open by such leftovers are given
//!   [`EXIT_GRACE`] and then taken as they are, so the plugin's result is not lost. Each plugin
//!   also leads its own process group and gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies when the
//!   daemon dies instead of finishing an ADD nobody will clean up; what it had started stays in
//!   its cgroup until the next daemon instance calls [`RawExec::reap_leftovers`]. Because the
//!   parent-death signal follows the *thread* that forked the process, every plugin is forked
//!   by one dedicated thread that lives as long as the process (see [`start_spawner`]); the
//!   thread a caller runs on does not matter.
//! - A plugin's stderr, and its stdout where an error message echoes it, are kept to their
//!   first and last 2 KiB with a `[… N bytes cut …]` marker ([`cut_middle`]): a plugin writing
//!   gigabytes does not make megabytes of error text and log.
//! - `chrootDir`: [`RawExec::with_chroot_dir`] runs plugins with their root changed (in the
//!   child, never in the daemon) and their working directory set to the new `/`;
//!   [`validate_chroot_dir`] checks the directory up front. Lookup rules: [`chroot`](self#chroot).
//! - [`Exec`]: the seam higher layers are written against, so tests can fake plugin runs
//!   (`testing::RecordingExec`, behind the `testing` feature).
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
//!
//! # Containment
//!
//! One container per plugin invocation, the best available of: a cgroup v2 under the daemon's
//! own cgroup (the plugin is created inside it with `clone3(CLONE_INTO_CGROUP)`: moving a
//! process into a cgroup costs an RCU grace period, milliseconds, per start), a cgroup in the
//! v1 freezer hierarchy, or (no writable cgroup) the process group plus child subreaper and a
//! `/proc` walk. What each guarantees: [`Containment`]. Each
//! executor works in a *scope* ([`RawExec::with_scope`], `<own cgroup>/multus-delegates-<scope>/`)
//! so that parallel daemons never touch each other's plugins; a daemon calls
//! [`RawExec::reap_leftovers`] at start to kill what a killed predecessor's plugins had
//! started.

mod background;
mod child;
mod chroot;
mod clone;
mod clone3;
mod contain;
mod error;
mod group;
mod output;
mod raw;
mod spawner;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use chroot::{ChrootError, validate_chroot_dir};
pub use contain::{ContainedProcess, Containment, INVOCATION_ENV, Leftovers, sanitize_scope};
pub use error::{ExecError, go_quote, signal_name};
pub use output::{KEPT_HEAD, KEPT_TAIL, cut_middle, cut_middle_str};
pub use raw::{EXIT_GRACE, MAX_PLUGIN_STDERR, MAX_PLUGIN_STDOUT, RawExec, TEXT_BUSY_RETRIES};
pub use spawner::{THREAD_NAME as SPAWNER_THREAD_NAME, start_spawner};

use crate::error::CniError;
use crate::result::CniResult;
use crate::version::Version;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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
    /// A request with the executor's default timeout.
    pub fn new(path: &'a Path, env: Vec<(String, String)>, stdin: &'a [u8]) -> Self {
        Self { path, env, stdin, timeout: None }
    }

    /// Run with this timeout instead of the executor's default (`None`: the default).
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
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal.
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
///
/// Texts that end up in the error are cut to their first and last 2 KiB ([`cut_middle`]):
/// stderr, stdout that is not an error object, and an error object's `msg` and `details`.
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
                stderr: String::from_utf8_lossy(&cut_middle(stderr)).into_owned(),
            });
        }
    };
    if stdout.is_empty() {
        return Err(ExecError::NoErrorOutput {
            status,
            stderr: String::from_utf8_lossy(&cut_middle(stderr)).into_owned(),
        });
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
        Ok(w) => Err(ExecError::Plugin(CniError::with_details(
            w.code,
            cut_middle_str(&w.msg).into_owned(),
            cut_middle_str(&w.details).into_owned(),
        ))),
        Err(e) => Err(ExecError::BadErrorOutput {
            status,
            stdout: String::from_utf8_lossy(&cut_middle(&stdout)).into_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

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
}
