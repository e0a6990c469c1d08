//! STATUS and GC (spec §7), without pod context.
//!
//! STATUS asks the cluster network.
//!
//! GC without a valid-attachment list (the Go shim's runtime, `cnitool gc`) does what the Go
//! daemon does: GC of the cluster network, every cached attachment counting as valid.
//!
//! GC with the runtime's `cni.dev/valid-attachments` (which the Go daemon ignores) reaches
//! every network the daemon attached, not only the cluster network:
//! 1. every sandbox with a delegate cache whose container the runtime no longer lists is
//!    DELeted from its cache, exactly as the runtime's DEL would have (cluster, default and
//!    NAD networks, device-info files);
//! 2. then every network found in the result caches (and the cluster network) gets libcni's
//!    `GCNetworkList` with the attachments still valid on it: result caches of containers the
//!    runtime no longer lists are DELeted, and a network that speaks CNI ≥ 1.1 gets its own
//!    GC, so its IPAM plugin drops leases the daemon never knew about.
//!
//! A network whose valid attachments cannot all be named (a listed sandbox without a readable
//! delegate cache, or a cached delegate without a result cache) is not sent GC: its plugin
//! would release what the daemon cannot prove gone. GC holds the daemon's GC gate, so no ADD,
//! DEL or CHECK runs meanwhile (CNI: GC is exclusive).
//!
//! A stale attachment whose delegate DEL fails does not fail the GC (see [`reportable`]).

use super::{del, resolve_settings};
use crate::daemon::Daemon;
use crate::error::{CommandError, GcError};
use crate::request::CniRequest;
use cni::conf::{NetConfList, NetworkConfig};
use cni::runtime::{CacheEntry, ValidAttachment};
use multus::config::NetConf;
use multus::delegate::Delegate;
use multus::resolve;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
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

/// GC (module docs). The caller holds the GC gate.
pub async fn gc(d: &Daemon, req: &CniRequest, conf: &NetConf) -> Result<(), CommandError> {
    let delegate = cluster_delegate(d, conf)?;
    let rt = d.runtime(conf);
    let cluster = delegate.config().to_list();
    let Some(valid) = runtime_valid_attachments(conf)? else {
        let valid =
            all_cached_attachments(Path::new(&conf.cni_dir)).map_err(|e| CommandError::GcAttachments(e.to_string()))?;
        return super::observed(d, cni::Command::Gc, &delegate, rt.gc_network_list(&cluster, Some(&valid)))
            .await
            .map_err(|e| CommandError::Gc(GcError::ClusterNetwork(e.to_string())));
    };
    let valid_containers: BTreeSet<String> = valid.iter().map(|a| a.container_id.clone()).collect();
    d.set_gc_valid_containers(valid_containers.clone());
    let mut errors = Vec::new();

    // 1. Sandboxes the runtime no longer has.
    let cni_dir = Path::new(&conf.cni_dir);
    let results = rt.cached_attachments(None).map_err(|e| CommandError::GcAttachments(e.to_string()))?;
    let known =
        crate::reconcile::attachments(cni_dir, &results).map_err(|e| CommandError::GcAttachments(e.to_string()))?;
    for attachment in known.iter().filter(|a| !valid_containers.contains(&a.container_id)) {
        let request = match crate::reconcile::del_request(&req.config, attachment) {
            Ok(r) => r,
            Err(e) => {
                d.metrics.reconcile.with_label_values(&["gc_failed"]).inc();
                errors.push(format!("deleting stale attachment {}: {e}", attachment.container_id));
                continue;
            }
        };
        let _sandbox = d.lock_sandbox(&request.container_id).await;
        if !multus::cache::cache_path(cni_dir, &request.container_id).exists() {
            continue;
        }
        match del::run(d, &request, conf).await {
            Ok(()) => {
                tracing::info!(container = %request.container_id, "GC: deleted an attachment the runtime no longer lists");
                d.metrics.reconcile.with_label_values(&["gc_deleted"]).inc();
            }
            Err(e) => {
                d.metrics.reconcile.with_label_values(&["gc_failed"]).inc();
                errors.push(format!("deleting stale attachment {}: {e}", request.container_id));
            }
        }
    }

    // 2. Every network the daemon attached, with what is still valid on it.
    let results = rt.cached_attachments(None).map_err(|e| CommandError::GcAttachments(e.to_string()))?;
    let unnameable = unnameable_networks(cni_dir, &valid_containers, &results);
    let mut networks: BTreeMap<String, NetConfList> = BTreeMap::new();
    for entry in &results {
        if let Ok(config) = NetworkConfig::from_bytes(&entry.config) {
            networks.entry(entry.network_name.clone()).or_insert_with(|| config.into_list());
        }
    }
    networks.remove(&cluster.name);
    // The cluster network: the runtime's list names its attachments directly.
    if let Err(e) = super::observed(d, cni::Command::Gc, &delegate, rt.gc_network_list(&cluster, Some(&valid))).await {
        errors.extend(reportable(d, &cluster.name, e));
    }
    for (name, list) in networks {
        if let Some(why) = unnameable.covers(&name) {
            tracing::warn!(network = %name, "GC: not sent to this network: {why}");
            continue;
        }
        let still_valid: Vec<ValidAttachment> = results
            .iter()
            .filter(|e| e.network_name == name && valid_containers.contains(&e.container_id))
            .map(|e| ValidAttachment::new(&e.container_id, &e.ifname))
            .collect();
        if let Err(e) = rt.gc_network_list(&list, Some(&still_valid)).await {
            errors.extend(reportable(d, &name, e).into_iter().map(|e| format!("network {name:?}: {e}")));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(CommandError::Gc(GcError::Failures(errors))) }
}

/// The part of a network's GC failure the runtime is told about. A stale attachment whose
/// delegate DEL fails is logged and counted (`gc_failed`) but does not fail the GC, as a
/// delegate's failing DEL does not fail Multus's DEL (quirk Q11): its result cache stays, so
/// the next GC tries again, and one broken plugin does not turn every GC on the node into an
/// error. Failures of the GC verb itself, and of finding a plugin, are reported.
fn reportable(d: &Daemon, network: &str, error: cni::runtime::RuntimeError) -> Vec<String> {
    use cni::runtime::RuntimeError;
    let errors = match error {
        RuntimeError::Multiple(errors) => errors,
        other => vec![other],
    };
    let mut reported = Vec::new();
    for error in errors {
        if let RuntimeError::StaleAttachment { .. } = error {
            d.metrics.reconcile.with_label_values(&["gc_failed"]).inc();
            tracing::warn!(network, "GC: {error} (kept; the next GC tries again)");
        } else {
            reported.push(error.to_string());
        }
    }
    reported
}

/// Networks whose valid attachments the daemon cannot all name (module docs).
enum Unnameable {
    /// None: every valid sandbox's delegates have result caches.
    None,
    /// A valid sandbox has no readable delegate cache: any network may hold its attachments.
    All(String),
    /// These networks have a valid delegate without a result cache.
    Some(BTreeSet<String>, String),
}

impl Unnameable {
    /// Why `network` must not get GC, if it must not.
    fn covers(&self, network: &str) -> Option<&str> {
        match self {
            Self::None => None,
            Self::All(why) => Some(why),
            Self::Some(names, why) => names.contains(network).then_some(why.as_str()),
        }
    }
}

fn unnameable_networks(cni_dir: &Path, valid: &BTreeSet<String>, results: &[CacheEntry]) -> Unnameable {
    let mut missing = BTreeSet::new();
    for container in valid {
        let delegates = match multus::cache::read_cache(cni_dir, container) {
            multus::cache::CacheRead::Found { delegates, .. } => delegates,
            _ => {
                return Unnameable::All(format!(
                    "sandbox {container} is listed as valid but has no readable delegate cache, so its networks are unknown"
                ));
            }
        };
        for delegate in delegates {
            let name = delegate.network_name();
            if !results.iter().any(|e| &e.container_id == container && e.network_name == name) {
                missing.insert(name.to_string());
            }
        }
    }
    if missing.is_empty() {
        Unnameable::None
    } else {
        Unnameable::Some(missing, "a valid sandbox's attachment to it has no result cache (interface unknown)".into())
    }
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
        .map_err(|e| CommandError::Gc(GcError::InvalidValidAttachments { reason: e.to_string() }))
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
