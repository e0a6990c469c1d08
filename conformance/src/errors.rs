//! Typed errors of running cases; their texts are what reports show.

use crate::stdout_json::StdoutJsonError;
use crate::sys::SysError;
use serde_json::Value;

/// Why a case's environment could not be set up (a case failure: "setup failed: …").
#[derive(Debug, thiserror::Error)]
pub enum CaseSetupError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Daemon(#[from] crate::daemons::DaemonError),
}

/// The thick target's API objects and fake kubelet script.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KubeError {
    #[error("kubectl: {0}")]
    Kubectl(String),
    #[error("kubectl {args}: {stderr}")]
    Refused { args: String, stderr: String },
    #[error("no fake kubelet runs for setup.devices / setup.kubelet_fail")]
    NoKubelet,
    #[error("device of an unknown attachment")]
    UnknownDeviceAttachment,
    #[error("no attachment")]
    NoAttachment,
    #[error("{0} exists already; not overwriting it")]
    DeviceInfoExists(String),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// Why the plugins chained before the target (`prev_plugins`) did not give a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Lookup(String),
    #[error("{plugin} ADD: exit {exit:?}, stdout {stdout:?}")]
    Failed { plugin: Value, exit: Option<i32>, stdout: String },
    #[error(transparent)]
    Output(#[from] StdoutJsonError),
    #[error("no prev_plugins")]
    Empty,
}
