//! STATUS and GC (spec §7): both ask the cluster network, without pod context.
//!
//! GC: the valid attachments are the runtime's list when it sent one (stdin
//! `cni.dev/valid-attachments`, which the Go daemon ignores), else every attachment in the
//! result cache.

use super::resolve_settings;
use crate::daemon::Daemon;
use crate::error::CommandError;
use cni::runtime::ValidAttachment;
use multus::config::NetConf;
use multus::delegate::Delegate;
use multus::resolve;
use serde_json::Value;
use std::path::Path;

/// The cluster network as a delegate (no pod, no default networks).
fn cluster_delegate(d: &Daemon, conf: &NetConf) -> Result<Delegate, CommandError> {
    let resolved = resolve::resolve_cluster_network(&resolve_settings(conf), d.cluster())?;
    resolved.delegates.into_iter().next().ok_or(CommandError::NoClusterNetwork)
}

/// STATUS: the cluster network's STATUS; a delegate's CNI error keeps its code.
pub async fn status(d: &Daemon, conf: &NetConf) -> Result<(), CommandError> {
    let delegate = cluster_delegate(d, conf)?;
    let rt = d.runtime(conf);
    let list = delegate.config().to_list();
    super::observed(d, cni::Command::Status, &delegate, rt.status_network_list(&list))
        .await
        .map_err(|e| CommandError::Status(e.to_cni_error()))
}

/// GC of the cluster network.
pub async fn gc(d: &Daemon, conf: &NetConf) -> Result<(), CommandError> {
    let delegate = cluster_delegate(d, conf)?;
    let valid = match runtime_valid_attachments(conf)? {
        Some(v) => {
            d.set_gc_valid_containers(v.iter().map(|a| a.container_id.clone()).collect());
            v
        }
        None => {
            all_cached_attachments(Path::new(&conf.cni_dir)).map_err(|e| CommandError::GcAttachments(e.to_string()))?
        }
    };
    let rt = d.runtime(conf);
    let list = delegate.config().to_list();
    super::observed(d, cni::Command::Gc, &delegate, rt.gc_network_list(&list, Some(&valid)))
        .await
        .map_err(|e| CommandError::Gc(e.to_string()))
}

/// The runtime's valid-attachment list (`cni.dev/valid-attachments`, or the legacy key), if
/// it sent one. `null` is the empty list (libcni sends a nil list so when no sandbox is left);
/// a malformed list is an error: guessing would delete live attachments.
fn runtime_valid_attachments(conf: &NetConf) -> Result<Option<Vec<ValidAttachment>>, CommandError> {
    let Some(value) =
        conf.raw.get(cni::skel::VALID_ATTACHMENTS_KEY).or_else(|| conf.raw.get(cni::skel::LEGACY_ATTACHMENTS_KEY))
    else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(Some(Vec::new()));
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| CommandError::Gc(format!("invalid {}: {e}", cni::skel::VALID_ATTACHMENTS_KEY)))
}

/// Every `(containerId, ifName)` in `<cniDir>/results`; a missing directory means none.
/// Unreadable entries are skipped with a warning (they cannot be protected, but one bad file
/// must not stop the collection).
fn all_cached_attachments(cni_dir: &Path) -> std::io::Result<Vec<ValidAttachment>> {
    let dir = cni_dir.join("results");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
        let v = match parsed {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("GC: skipping the result cache {}: {e}", path.display());
                continue;
            }
        };
        let cid = v.get("containerId").and_then(Value::as_str).unwrap_or("");
        let ifname = v.get("ifName").and_then(Value::as_str).unwrap_or("");
        if !cid.is_empty() && !ifname.is_empty() {
            out.push(ValidAttachment::new(cid, ifname));
        }
    }
    Ok(out)
}
