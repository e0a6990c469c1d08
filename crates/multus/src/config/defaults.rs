//! Default values and well-known names of the daemon config.

use std::path::PathBuf;

/// Default path of the daemon config file (`-config` flag default).
pub const DEFAULT_DAEMON_CONFIG_PATH: &str = "/etc/cni/net.d/multus.d/daemon-config.json";
/// Default server socket directory (`socketDir`, and the shim's `daemonSocketDir`).
pub const DEFAULT_SOCKET_DIR: &str = "/run/multus/";
/// File name of the server socket inside the socket directory.
pub const SOCKET_FILE_NAME: &str = "multus.sock";
/// `multusConfigFile` value selecting config generation.
pub const AUTO_CONFIG: &str = "auto";
/// Per-request defaults (§2.4).
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// Per-request default of `confDir`: on-disk CNI configs for NADs with an empty spec and for networks named by file.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// Per-request default of `cniDir`: the delegate cache and libcni result cache.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// Per-request default of `multusNamespace`.
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
/// The namespace `globalNamespaces` stands for when it is empty.
pub const DEFAULT_NON_ISOLATED_NAMESPACE: &str = "default";
/// Per-request default of `systemNamespaces` (its only entry).
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kube-system";
/// `perNodeCertificate.certDuration` default.
pub const DEFAULT_CERT_DURATION: &str = "10m";
/// The key stripped from requests in auto mode.
pub const READINESS_INDICATOR_KEY: &str = "readinessindicatorfile";

/// The path of the server socket in `dir` (`<dir>/multus.sock`).
pub fn socket_path(dir: &str) -> PathBuf {
    PathBuf::from(dir).join(SOCKET_FILE_NAME)
}
