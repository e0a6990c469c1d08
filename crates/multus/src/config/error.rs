//! Why a configuration was rejected.

use super::fields::FieldError;
use crate::delegate::DelegateError;

/// Why a daemon, shim or request configuration was rejected; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The daemon config file is not a JSON object or has a key of the wrong type.
    #[error("failed to unmarshall the daemon configuration: {0}")]
    Daemon(FieldError),
    /// `connectionLimit` ≤ 0 (a server start-up error in the reference).
    #[error("connectionLimit must be greater than 0, got {0}")]
    ConnectionLimit(i64),
    /// The shim's stdin config could not be parsed as a JSON object (§2.4).
    #[error("failed to unmarshall CNI config: {0}")]
    ClientConfig(FieldError),
    /// The daemon config bytes given to [`merge_request_config_bytes`](crate::config::merge_request_config_bytes) are not a JSON object.
    #[error("failed to unmarshall CNI override config: {0}")]
    OverrideConfig(FieldError),
    /// The effective request config is not valid Multus configuration.
    #[error("LoadNetConf: failed to load netconf: {0}")]
    NetConf(FieldError),
    /// `prevResult` is not a valid result of the config's `cniVersion`.
    #[error("LoadNetConf: could not parse prevResult: {0}")]
    PrevResult(String),
    /// Neither `clusterNetwork` nor a non-empty `delegates` list is given.
    #[error("LoadNetConf: at least one delegate/clusterNetwork must be specified")]
    NoDelegates,
    /// Entry `index` of `delegates` is not a valid CNI config.
    #[error("LoadNetConf: failed to load delegate {index} config: {reason}")]
    Delegate {
        /// Position in `delegates`.
        index: usize,
        /// Why it was rejected.
        reason: DelegateError,
    },
    /// The shim's stdin config.
    #[error("invalid multus-shim configuration: {0}")]
    Shim(String),
}
