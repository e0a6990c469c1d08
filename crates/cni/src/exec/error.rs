//! Why running a plugin failed, in libcni's words ([`ExecError`]), and the Go formatting those
//! words need.

use crate::error::{CniError, code};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why running a plugin failed.
///
/// `Clone` so that test doubles can hand out the same scripted error more than once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// The plugin type is empty, contains `/`, or is `.`/`..`.
    #[error("{reason}")]
    InvalidName {
        /// The type as given.
        name: String,
        /// What is wrong with it (libcni's words).
        reason: &'static str,
    },
    /// No plugin directory was configured (libcni's `CNI_PATH` empty).
    #[error("no paths provided")]
    NoPaths,
    /// No plugin directory holds a regular file of that name.
    #[error("failed to find plugin {plugin:?} in path {}", go_path_list(dirs))]
    NotFound {
        /// The plugin type looked up.
        plugin: String,
        /// The directories searched, in order.
        dirs: Vec<PathBuf>,
    },
    /// The process could not be started (after the `ETXTBSY` retries). `chroot`: the root it
    /// was started in, if any (a binary present there whose interpreter or loader is not).
    #[error("failed to start plugin {}{}: {source}", plugin.display(), in_chroot(chroot.as_deref()))]
    Spawn {
        /// The binary.
        plugin: PathBuf,
        /// The root it was started in (`chrootDir`), if any.
        chroot: Option<PathBuf>,
        /// The last spawn error.
        source: Arc<io::Error>,
    },
    /// Talking to or waiting for a started process failed.
    #[error("failed to run plugin {}: {source}", plugin.display())]
    Io {
        /// The binary.
        plugin: PathBuf,
        /// The failed pipe or wait operation.
        source: Arc<io::Error>,
    },
    /// The run took longer than its timeout; the plugin and everything it started (its
    /// invocation's cgroup) were killed.
    #[error("plugin {} timed out after {after:?} and was killed", plugin.display())]
    Timeout {
        /// The binary.
        plugin: PathBuf,
        /// The timeout that expired.
        after: Duration,
    },
    /// The plugin died from a signal (not from our timeout).
    #[error("plugin {} was killed by signal {}{}", plugin.display(), signal_name(*signal), stderr_suffix(stderr))]
    Signaled {
        /// The binary.
        plugin: PathBuf,
        /// The signal number.
        signal: i32,
        /// What the plugin wrote to stderr before it died.
        stderr: String,
    },
    /// Non-zero exit with an error object on stdout: the plugin's own words.
    #[error(transparent)]
    Plugin(CniError),
    /// Non-zero exit and nothing on stdout.
    #[error("{}", no_error_output_msg(*status, stderr))]
    NoErrorOutput {
        /// The exit code.
        status: i32,
        /// The plugin's stderr (libcni puts it into the message).
        stderr: String,
    },
    /// Non-zero exit and something on stdout that is not an error object.
    #[error("netplugin failed but error parsing its diagnostic message {}: {reason}", go_quote(stdout))]
    BadErrorOutput {
        /// The exit code.
        status: i32,
        /// What the plugin printed instead of an error object.
        stdout: String,
        /// Why it is not an error object.
        reason: String,
    },
    /// The plugin wrote more than [`MAX_PLUGIN_STDOUT`](super::MAX_PLUGIN_STDOUT) to stdout; it was killed.
    #[error("plugin {} wrote more than {limit} bytes to stdout and was killed", plugin.display())]
    OutputTooLarge {
        /// The binary.
        plugin: PathBuf,
        /// The cap, in bytes.
        limit: usize,
    },
    /// Exit 0, but stdout is not the result that was expected.
    #[error("failed to parse the output of plugin {}: {reason}", plugin.display())]
    BadOutput {
        /// The binary.
        plugin: PathBuf,
        /// Why the output was refused.
        reason: String,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c\n\t\x1b"), r#""a\"b\\c\n\t\x1b""#);
        assert_eq!(go_quote("é"), "\"é\"");
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
}
