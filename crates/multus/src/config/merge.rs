//! R: the daemon config merged over the shim's config of a request (§2.4).

use super::defaults::*;
use super::error::ConfigError;
use super::fields::{FieldError, object_from_bytes};
use serde_json::{Map, Value};

/// The effective per-request config (§2.4): every top-level key of the daemon config replaces
/// the client's (shallow). With `ignore_readiness` (auto mode) `readinessindicatorfile` is
/// deleted from the client and not copied from the daemon. An empty daemon config outside auto
/// mode returns the client bytes verbatim.
pub fn merge_request_config(
    client: &[u8],
    daemon_raw: &Map<String, Value>,
    ignore_readiness: bool,
) -> Result<Vec<u8>, ConfigError> {
    if daemon_raw.is_empty() && !ignore_readiness {
        return Ok(client.to_vec());
    }
    let mut cni = object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
    if ignore_readiness {
        cni.shift_remove(READINESS_INDICATOR_KEY);
    }
    for (key, value) in daemon_raw {
        if ignore_readiness && key == READINESS_INDICATOR_KEY {
            continue;
        }
        cni.insert(key.clone(), value.clone());
    }
    serde_json::to_vec(&cni).map_err(|e| ConfigError::ClientConfig(FieldError::Json(e.to_string())))
}

/// [`merge_request_config`] with the daemon config as bytes, exactly like the reference: empty
/// daemon bytes return the client bytes verbatim; unparsable daemon bytes are
/// "failed to unmarshall CNI override config: …".
pub fn merge_request_config_bytes(
    client: &[u8],
    daemon: &[u8],
    ignore_readiness: bool,
) -> Result<Vec<u8>, ConfigError> {
    if daemon.is_empty() {
        return Ok(client.to_vec());
    }
    // The client config is parsed first, as in the reference.
    object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
    let daemon_raw = object_from_bytes(daemon).map_err(ConfigError::OverrideConfig)?;
    if daemon_raw.is_empty() {
        // Go re-serialises the client even for `{}`; keep the observable result (a parsed and
        // re-serialised client) for that case.
        let mut cni = object_from_bytes(client).map_err(ConfigError::ClientConfig)?;
        if ignore_readiness {
            cni.shift_remove(READINESS_INDICATOR_KEY);
        }
        return serde_json::to_vec(&cni).map_err(|e| ConfigError::ClientConfig(FieldError::Json(e.to_string())));
    }
    merge_request_config(client, &daemon_raw, ignore_readiness)
}
