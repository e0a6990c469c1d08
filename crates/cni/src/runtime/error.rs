//! [`RuntimeError`]: what can go wrong running a network, and the CNI error object each failure
//! is reported as.

use crate::conf::PluginConf;
use crate::env::Command;
use crate::error::{CniError, code};
use crate::exec::ExecError;

/// The word libcni uses for a command in its error messages.
fn verb(command: Command) -> &'static str {
    match command {
        Command::Add => "add",
        Command::Del => "delete",
        Command::Check => "check",
        Command::Status => "status",
        Command::Gc => "gc",
        Command::Version => "version",
    }
}

/// Errors of [`CniRuntime`](super::CniRuntime).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A plugin could not be found or run, or failed.
    #[error("plugin {} failed ({}): {error}", describe(plugin_type, plugin_name.as_deref()), verb(*command))]
    Plugin {
        /// The plugin's `type`.
        plugin_type: String,
        /// The plugin object's own `name`, if it has one.
        plugin_name: Option<String>,
        /// The command that failed.
        command: Command,
        /// How it failed.
        error: ExecError,
    },
    /// Container ID, network name or interface name refused before anything ran.
    #[error("{0}")]
    Validation(CniError),
    /// The configuration cannot be run (bad `cniVersion`, no plugins).
    #[error("{0}")]
    Config(String),
    /// CHECK on a config older than 0.4.0, where the command does not exist.
    #[error("configuration version {version:?} does not support the CHECK command")]
    CheckNotSupported {
        /// The config's `cniVersion`.
        version: String,
    },
    /// CHECK needs the cached result and it could not be read.
    #[error("failed to get network {network:?} cached result: {reason}")]
    CachedResult {
        /// The network's name.
        network: String,
        /// Why the cache could not be read or converted.
        reason: String,
    },
    /// Reading or writing the result cache failed.
    #[error("failed to {action} network {network:?} cached result: {source}")]
    Cache {
        /// The network's name.
        network: String,
        /// What was attempted: `set`, `update` or `list`.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// GC's synthesised DEL of a stale attachment failed.
    #[error("failed to delete stale attachment {container_id} {ifname}: {error}")]
    StaleAttachment {
        /// The stale attachment's container.
        container_id: String,
        /// The stale attachment's interface.
        ifname: String,
        /// Why its DEL failed.
        error: Box<RuntimeError>,
    },
    /// A plugin's VERSION answer could not be decoded.
    #[error("plugin type={plugin_type:?}: {error}")]
    VersionInfo {
        /// The plugin asked.
        plugin_type: String,
        /// Why its answer could not be decoded.
        error: CniError,
    },
    /// Several failures (GC keeps going); joined with newlines like Go's `errors.Join`.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Multiple(Vec<RuntimeError>),
}

fn describe(plugin_type: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("type={plugin_type:?} name={n:?}"),
        _ => format!("type={plugin_type:?}"),
    }
}

impl RuntimeError {
    pub(super) fn plugin(plugin: &PluginConf, command: Command, error: ExecError) -> Self {
        Self::Plugin {
            plugin_type: plugin.plugin_type().to_string(),
            plugin_name: plugin.name().map(str::to_string),
            command,
            error,
        }
    }

    /// The underlying exec error of a plugin failure.
    pub fn exec_error(&self) -> Option<&ExecError> {
        match self {
            Self::Plugin { error, .. } => Some(error),
            Self::StaleAttachment { error, .. } => error.exec_error(),
            _ => None,
        }
    }

    /// The CNI error object to report.
    ///
    /// - A plugin's own error object comes back **unchanged** (code, msg, details) — e.g. STATUS's
    ///   50/51.
    /// - Other plugin failures: the code of [`ExecError::to_cni_error`] (0 for a failed
    ///   process, 999 for lookup/parse failures) with this error's full message.
    /// - Name validation: the validation error (codes 3, 4, 7 as `skel` would report them).
    /// - CHECK on < 0.4.0: code 1 (as `skel` reports it); bad configuration: code 7; a lone
    ///   wrapped failure keeps its code; everything else (cache I/O, several failures): 999.
    pub fn to_cni_error(&self) -> CniError {
        match self {
            Self::Plugin { error: ExecError::Plugin(e), .. } => e.clone(),
            Self::Plugin { error, .. } => CniError::new(error.to_cni_error().code, self.to_string()),
            Self::Validation(e) => e.clone(),
            Self::Config(_) => CniError::new(code::INVALID_NETWORK_CONFIG, self.to_string()),
            Self::CheckNotSupported { .. } => CniError::new(code::INCOMPATIBLE_CNI_VERSION, self.to_string()),
            Self::StaleAttachment { error, .. } => CniError::new(error.to_cni_error().code, self.to_string()),
            Self::Multiple(errors) if errors.len() == 1 => errors[0].to_cni_error(),
            Self::VersionInfo { error, .. } => CniError::new(error.code, self.to_string()),
            Self::CachedResult { .. } | Self::Cache { .. } | Self::Multiple(_) => {
                CniError::new(code::INTERNAL, self.to_string())
            }
        }
    }
}

impl From<&RuntimeError> for CniError {
    fn from(e: &RuntimeError) -> Self {
        e.to_cni_error()
    }
}

impl From<RuntimeError> for CniError {
    fn from(e: RuntimeError) -> Self {
        e.to_cni_error()
    }
}
