//! The keys each parser reads (for reference documentation and `multusctl`; a unit test checks
//! every list against its parser).

use super::defaults::READINESS_INDICATOR_KEY;

/// Top-level keys [`DaemonConfig::from_map`](crate::config::DaemonConfig::from_map) reads (the **D** view).
pub const DAEMON_CONFIG_KEYS: &[&str] = &[
    "chrootDir",
    "cniVersion",
    "connectionLimit",
    "enablePprof",
    "logFile",
    "logLevel",
    "logOptions",
    "logToStderr",
    "metricsPort",
    "multusConfigFile",
    "perNodeCertificate",
    READINESS_INDICATOR_KEY,
    "socketDir",
];

/// Keys [`NetConf::from_map`](crate::config::NetConf::from_map) reads from the effective request config (the **R** view).
pub const NETCONF_KEYS: &[&str] = &[
    "auxiliaryCNIChainName",
    "binDir",
    "capabilities",
    "clusterNetwork",
    "cniDir",
    "cniVersion",
    "confDir",
    "daemonSocketDir",
    "defaultNetworks",
    "delegates",
    "globalNamespaces",
    "kubeconfig",
    "logFile",
    "logLevel",
    "logOptions",
    "logToStderr",
    "multusNamespace",
    "name",
    "namespaceIsolation",
    "prevResult",
    READINESS_INDICATOR_KEY,
    "retryDeleteOnError",
    "runtimeConfig",
    "systemNamespaces",
    "type",
];

/// Keys of the `logOptions` object.
pub const LOG_OPTIONS_KEYS: &[&str] = &["compress", "maxAge", "maxBackups", "maxSize"];

/// Keys of the `perNodeCertificate` object.
pub const PER_NODE_CERTIFICATE_KEYS: &[&str] = &["bootstrapKubeconfig", "certDir", "certDuration", "enabled"];
