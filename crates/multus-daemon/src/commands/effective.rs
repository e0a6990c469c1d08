//! The configuration a command runs with: the daemon config merged over the config the
//! runtime sent (§2.4). Below every command and the reconciler, which computes it for the
//! runtime's DELs it replays.

use crate::daemon::Daemon;
use crate::error::CommandError;
use multus::config::NetConf;

/// The daemon config merged over `stdin` (what the runtime sent the shim), parsed.
pub fn effective_config(d: &Daemon, stdin: &[u8]) -> Result<NetConf, CommandError> {
    let merged = d.config.merge_request_config(stdin).map_err(CommandError::ConfigMerge)?;
    NetConf::from_bytes(&merged).map_err(CommandError::NetConf)
}
