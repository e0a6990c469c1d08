//! The `CNI_*` environment of one plugin invocation (cni.md §1.2) and the `skel` checks on it.

use crate::error::{CniError, code};
use crate::validate;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// `CNI_COMMAND` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Release what ADD set up (must succeed when it is already gone).
    Del,
    /// Verify that an attachment is still as ADD left it (spec ≥ 0.4.0).
    Check,
    /// Is the plugin ready to serve ADDs (spec 1.1.0)?
    Status,
    /// Clean up everything not in the valid attachments (spec 1.1.0).
    Gc,
    /// Report the spec versions the plugin supports.
    Version,
}

impl Command {
    /// The value as written in `CNI_COMMAND`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }

    /// Which variables `skel` requires for this command.
    pub fn requires(&self, var: &str) -> bool {
        use Command::*;
        match var {
            "CNI_CONTAINERID" | "CNI_IFNAME" => matches!(self, Add | Check | Del),
            "CNI_NETNS" => matches!(self, Add | Check),
            "CNI_PATH" => matches!(self, Add | Check | Del | Gc | Status),
            _ => false,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `CNI_COMMAND` this implementation does not know; the message is libcni's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI_COMMAND: {0}")]
pub struct UnknownCommand(pub String);

impl FromStr for Command {
    type Err = UnknownCommand;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            other => return Err(UnknownCommand(other.to_string())),
        })
    }
}

/// The variables a runtime passes. Unset and empty are the same thing (libcni always exports all six).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: path of the container's network namespace.
    pub netns: String,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// `CNI_ARGS`, unparsed (see [`crate::args::CniArgs`]).
    pub args: String,
    /// `CNI_PATH` as given (`:`-separated).
    pub path: String,
}

/// The variable names, in the order `skel` reports missing ones.
pub const CNI_VARS: [&str; 6] = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];

impl PluginEnv {
    /// Read and check the environment the way `skel` does: presence per command (code 4, listing
    /// every missing variable), unknown command (code 4), then container ID and interface name
    /// validation for ADD/CHECK/DEL.
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, CniError> {
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let command_str = get("CNI_COMMAND");
        if command_str.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT_VARIABLES,
                "required env variables [CNI_COMMAND] missing",
            ));
        }
        let command: Command = command_str
            .parse()
            .map_err(|e: UnknownCommand| CniError::new(code::INVALID_ENVIRONMENT_VARIABLES, e.to_string()))?;
        let missing: Vec<&str> =
            CNI_VARS.iter().copied().filter(|v| command.requires(v) && get(v).is_empty()).collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT_VARIABLES,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        let out = Self {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
        };
        if matches!(command, Command::Add | Command::Check | Command::Del) {
            validate::validate_container_id(&out.container_id)?;
            validate::validate_interface_name(&out.ifname)?;
        }
        Ok(out)
    }

    /// Read from the current process environment.
    pub fn from_process() -> Result<Self, CniError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&env)
    }

    /// `CNI_PATH` split into directories.
    pub fn path_dirs(&self) -> Vec<std::path::PathBuf> {
        split_path(&self.path)
    }

    /// All six variables, always set (empty when unused), as libcni exports them.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), self.command.as_str().into()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns.clone()),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            ("CNI_ARGS".into(), self.args.clone()),
            ("CNI_PATH".into(), self.path.clone()),
        ]
    }
}

/// Split a `:`-separated path list, dropping empty entries.
pub fn split_path(path: &str) -> Vec<std::path::PathBuf> {
    path.split(':').filter(|p| !p.is_empty()).map(std::path::PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lists_every_missing_variable() {
        let e = PluginEnv::from_map(&env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0")]))
            .unwrap_err();
        assert_eq!(e.code, 4);
        assert_eq!(e.msg, "required env variables [CNI_NETNS,CNI_PATH] missing");
    }

    #[test]
    fn unknown_command_is_code_4() {
        let e = PluginEnv::from_map(&env(&[("CNI_COMMAND", "FOO")])).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: FOO"));
    }

    #[test]
    fn status_needs_no_attachment_variables() {
        let e = PluginEnv::from_map(&env(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")])).unwrap();
        assert_eq!(e.command, Command::Status);
    }

    #[test]
    fn bad_ifname_is_code_4() {
        let e = PluginEnv::from_map(&env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "way-too-long-ifname"),
            ("CNI_PATH", "/x"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, 4);
    }
}
