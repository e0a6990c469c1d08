//! Reclaiming attachments nobody will delete (issue: nothing lost under faults).
//!
//! A runtime that lost a sandbox (node crash, a DEL dropped while no daemon listened, a daemon
//! killed mid-ADD) never sends the DEL that would release its interfaces, IP leases and caches.
//! The reconciler finds them: a delegate cache `<cniDir>/<containerID>`
//! - whose network namespace (recorded in libcni's result caches) no longer exists, or
//! - whose pod (recorded in the ADD's `CNI_ARGS`) the API server no longer has — or has
//!   under another UID, a new pod of the same name — seen so on a live GET, and still so at
//!   least `podGoneConfirmSeconds` after it was first seen (a mirror pod of a static pod may be
//!   missing for a moment; a pod's own sandbox is gone long before that).
//!
//! It runs that attachment's DEL from the cache, exactly as the runtime's DEL would, under the
//! sandbox lock.
//!
//! Safe by construction:
//! - an attachment whose namespace still exists, or whose namespace is unknown or cannot be
//!   checked, is never touched unless the API server says its pod is gone; an API server that
//!   cannot be asked reclaims nothing;
//! - an attachment the runtime's last GC listed as valid is never touched;
//! - every decision is logged and counted (`multus_reconcile_attachments_total{action}`);
//! - `orphanReconcile: {"mode": "dry-run"}` only reports; `"off"` disables it;
//! - at most `maxPerPass` DELs per pass, one at a time, so a node full of stale caches cannot
//!   starve real requests.
//!
//! It runs once at start-up (after the watch caches synced) and then every `intervalSeconds`.

use crate::commands::del;
use crate::commands::effective::effective_config;
use crate::daemon::Daemon;
use crate::request::{CniRequest, RequestError};
use crate::seams::{NetnsPresence, PodLookup};
use multus::config::DaemonConfig;
pub use multus_node::attachments::{Attachment, Verdict, attachments, judge};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The daemon-config key (a multus-rs extension).
pub const CONFIG_KEY: &str = "orphanReconcile";

/// What the reconciler does with an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// DEL it.
    On,
    /// Log and count it only.
    DryRun,
    /// Do not run at all.
    Off,
}

/// `orphanReconcile`: `{"mode": "on"|"dry-run"|"off", "intervalSeconds": N, "maxPerPass": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `mode` (default on).
    pub mode: Mode,
    /// `intervalSeconds`: time between passes (default 300 s).
    pub interval: Duration,
    /// `maxPerPass`: orphans deleted per pass at most (default 32), so that a node with many
    /// leftovers does not run a burst of DELs; the rest wait for the next pass.
    pub max_per_pass: usize,
    /// `podGoneConfirmSeconds`: how long an attachment's pod must stay gone, from the first
    /// pass that saw it gone, before the attachment is reclaimed (default 60 s; 0: at once).
    pub pod_gone_confirm: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::On,
            interval: Duration::from_secs(300),
            max_per_pass: 32,
            pod_gone_confirm: Duration::from_secs(60),
        }
    }
}

impl Settings {
    /// Read the key; absent → the defaults; malformed → an error naming it (a typo must not
    /// silently turn the reconciler on or off).
    pub fn from_config(config: &DaemonConfig) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        let Some(value) = config.raw.get(CONFIG_KEY) else { return Ok(settings) };
        let object = value.as_object().ok_or(SettingsError::NotAnObject)?;
        for (key, v) in object {
            match key.as_str() {
                "mode" => {
                    settings.mode = match v.as_str() {
                        Some("on") => Mode::On,
                        Some("dry-run") => Mode::DryRun,
                        Some("off") => Mode::Off,
                        _ => return Err(SettingsError::Mode),
                    }
                }
                "intervalSeconds" => {
                    let secs = v.as_u64().filter(|s| *s > 0).ok_or(SettingsError::Interval)?;
                    settings.interval = Duration::from_secs(secs);
                }
                "maxPerPass" => {
                    let n = v.as_u64().filter(|n| *n > 0).ok_or(SettingsError::MaxPerPass)?;
                    settings.max_per_pass = usize::try_from(n).unwrap_or(usize::MAX);
                }
                "podGoneConfirmSeconds" => {
                    let secs = v.as_u64().ok_or(SettingsError::PodGoneConfirm)?;
                    settings.pod_gone_confirm = Duration::from_secs(secs);
                }
                other => return Err(SettingsError::UnknownKey(other.to_string())),
            }
        }
        Ok(settings)
    }
}

/// Why `orphanReconcile` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The value is not an object.
    #[error("{CONFIG_KEY}: must be an object")]
    NotAnObject,
    /// `mode` is not one of the three.
    #[error("{CONFIG_KEY}: mode must be \"on\", \"dry-run\" or \"off\"")]
    Mode,
    /// `intervalSeconds` is not a number > 0.
    #[error("{CONFIG_KEY}: intervalSeconds must be > 0")]
    Interval,
    /// `maxPerPass` is not a number > 0.
    #[error("{CONFIG_KEY}: maxPerPass must be > 0")]
    MaxPerPass,
    /// `podGoneConfirmSeconds` is not a number >= 0.
    #[error("{CONFIG_KEY}: podGoneConfirmSeconds must be a number >= 0")]
    PodGoneConfirm,
    /// A key the reconciler does not know (a typo must not go unnoticed).
    #[error("{CONFIG_KEY}: unknown key {0:?}")]
    UnknownKey(String),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Orphans deleted (or, in dry-run mode, that would have been).
    pub reclaimed: Vec<String>,
    /// Orphans whose DEL failed (kept; tried again next pass).
    pub failed: Vec<String>,
    /// Orphans left for the next pass (`maxPerPass` reached).
    pub deferred: usize,
}

/// Attachments whose pod was seen gone, with when that was first seen (kept across passes).
#[derive(Debug, Default)]
pub struct PodsSeenGone(BTreeMap<String, std::time::Instant>);

impl PodsSeenGone {
    /// How many attachments wait for their pod's absence to be confirmed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the API server says of an attachment's pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodAnswer {
    /// Gone (or replaced by another pod of the same name).
    Gone,
    /// Still there.
    Present,
    /// The cache names no pod: nothing to ask.
    NoIdentity,
    /// The API server did not answer (unreachable, erroring or slower than 5 s).
    NoAnswer,
}

/// Whether the API server still has the attachment's pod.
async fn pod_answer(d: &Daemon, attachment: &Attachment) -> PodAnswer {
    let get = |key: &str| attachment.cni_args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let (Some(namespace), Some(name)) = (get("K8S_POD_NAMESPACE"), get("K8S_POD_NAME")) else {
        return PodAnswer::NoIdentity;
    };
    if namespace.is_empty() || name.is_empty() {
        return PodAnswer::NoIdentity;
    }
    let uid = get("K8S_POD_UID").filter(|u| !u.is_empty());
    match tokio::time::timeout(Duration::from_secs(5), d.cluster().lookup_pod(namespace, name)).await {
        Ok(Ok(PodLookup::NotFound)) => PodAnswer::Gone,
        // Another pod of the same name (a StatefulSet's next pod) is not this attachment's; a
        // static pod's mirror has a UID of its own.
        Ok(Ok(PodLookup::Found(pod))) if uid.is_some_and(|u| u != pod.uid) && !pod.is_static() => PodAnswer::Gone,
        Ok(Ok(PodLookup::Found(_))) => PodAnswer::Present,
        _ => PodAnswer::NoAnswer,
    }
}

/// One pass over every delegate cache. `stdin` is what a runtime would send the shim (the
/// node's `00-multus.conf`); the daemon config is merged over it as for a request. Pods seen
/// gone are remembered only for this pass (see [`reconcile_pass`]).
pub async fn reconcile_once(d: &Daemon, settings: Settings, stdin: &[u8]) -> PassReport {
    reconcile_pass(d, settings, stdin, &mut PodsSeenGone::default()).await
}

/// [`reconcile_once`], remembering in `seen_gone` which pods were seen gone and since when.
pub async fn reconcile_pass(d: &Daemon, settings: Settings, stdin: &[u8], seen_gone: &mut PodsSeenGone) -> PassReport {
    let mut report = PassReport::default();
    if settings.mode == Mode::Off {
        return report;
    }
    let conf = match effective_config(d, stdin) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("orphan reconcile skipped: {e}");
            return report;
        }
    };
    let results = d.runtime(&conf).cached_attachments(None).unwrap_or_else(|e| {
        tracing::warn!("orphan reconcile: cannot read the result caches: {e}");
        Vec::new()
    });
    let found = match attachments(Path::new(&conf.cni_dir), &results) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("orphan reconcile: cannot list {}: {e}", conf.cni_dir);
            return report;
        }
    };
    let gc_valid = d.gc_valid_containers();
    seen_gone.0.retain(|cid, _| found.iter().any(|a| &a.container_id == cid));
    // Judge every attachment by its namespace first, and reclaim those orphans before any pod
    // is looked up: with the API server down, each lookup may cost its full timeout, and a
    // vanished namespace needs no API server to prove.
    let mut judged: Vec<(Attachment, Verdict)> = found
        .into_iter()
        .map(|attachment| {
            let presence = if attachment.netns.is_empty() {
                NetnsPresence::Unknown
            } else {
                d.netns().presence(&attachment.netns)
            };
            let verdict = judge(&attachment, presence, gc_valid.as_ref());
            (attachment, verdict)
        })
        .collect();
    judged.sort_by_key(|(_, verdict)| *verdict != Verdict::Orphan);
    // Once the API server leaves one question unanswered, the pass asks no more.
    let mut api_answers = true;
    for (attachment, mut verdict) in judged {
        if api_answers && matches!(verdict, Verdict::Alive | Verdict::Unknown) {
            match pod_answer(d, &attachment).await {
                PodAnswer::Gone => {
                    let first =
                        *seen_gone.0.entry(attachment.container_id.clone()).or_insert_with(std::time::Instant::now);
                    verdict = if first.elapsed() >= settings.pod_gone_confirm {
                        Verdict::PodGone
                    } else {
                        Verdict::PodGonePending
                    };
                }
                PodAnswer::Present => {
                    seen_gone.0.remove(&attachment.container_id);
                }
                PodAnswer::NoIdentity => {}
                PodAnswer::NoAnswer => {
                    tracing::debug!("orphan reconcile: the API server did not answer; no more pod lookups this pass");
                    api_answers = false;
                }
            }
        }
        let count = |action: &str| d.metrics.reconcile.with_label_values(&[action]).inc();
        if !matches!(verdict, Verdict::Orphan | Verdict::PodGone) {
            count(verdict.label());
            continue;
        }
        let why = match verdict {
            Verdict::PodGone => "its pod is gone from the API server",
            _ => "its network namespace is gone",
        };
        if report.reclaimed.len() + report.failed.len() >= settings.max_per_pass {
            report.deferred += 1;
            count("deferred");
            continue;
        }
        if settings.mode == Mode::DryRun {
            tracing::warn!(container = %attachment.container_id, netns = %attachment.netns,
                "orphan attachment ({why}); dry-run: not deleting");
            count("would_delete");
            report.reclaimed.push(attachment.container_id);
            continue;
        }
        let request = match del_request(stdin, &attachment) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(container = %attachment.container_id, "orphan attachment: its cache makes no valid DEL: {e}");
                count("failed");
                report.failed.push(attachment.container_id);
                continue;
            }
        };
        let _not_during_gc = d.share_gc_gate().await;
        let _sandbox = d.lock_sandbox(&request.container_id).await;
        // The runtime may have deleted it meanwhile (the lock was free only now).
        if !multus::cache::cache_path(Path::new(&conf.cni_dir), &request.container_id).exists() {
            continue;
        }
        match del::run(d, &request, &conf).await {
            Ok(()) => {
                tracing::warn!(container = %request.container_id, netns = %attachment.netns,
                    "deleted an orphan attachment ({why})");
                count("deleted");
                seen_gone.0.remove(&request.container_id);
                report.reclaimed.push(request.container_id);
            }
            Err(e) => {
                tracing::error!(container = %request.container_id, "orphan attachment: DEL failed (next pass retries): {e}");
                count("failed");
                report.failed.push(request.container_id);
            }
        }
    }
    report
}

/// The DEL the runtime would have sent for `attachment`, with `stdin` as its config.
pub(crate) fn del_request(stdin: &[u8], attachment: &Attachment) -> Result<CniRequest, RequestError> {
    CniRequest::del_from_cache(
        stdin,
        &attachment.container_id,
        &attachment.netns,
        &attachment.ifname,
        &attachment.cni_args,
    )
}

/// What the node's runtime would send the shim: `00-multus.conf`, or a minimal config when it
/// cannot be read (DEL from the delegate cache needs nothing else).
pub fn runtime_stdin(config: &DaemonConfig) -> Vec<u8> {
    let path = multus::generate::GeneratorConfig::from_map(&config.raw).ok().map(|g| g.multus_conf_path());
    if let Some(bytes) = path.and_then(|p| std::fs::read(p).ok()) {
        return bytes;
    }
    let minimal = serde_json::json!({
        "cniVersion": config.cni_version, "name": "multus-cni-network", "type": "multus-shim",
        "clusterNetwork": "orphan-reconcile",
    });
    serde_json::to_vec(&minimal).unwrap_or_default()
}

/// Run passes until `shutdown`: first now, then every `settings.interval`. A pass in progress
/// is never cut off (a DEL stopped halfway would itself leave what it came to remove).
pub async fn run_periodically(
    d: std::sync::Arc<Daemon>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if settings.mode == Mode::Off {
        tracing::info!("orphan reconcile is off");
        return;
    }
    let mut seen_gone = PodsSeenGone::default();
    loop {
        let stdin = runtime_stdin(&d.config);
        let report = reconcile_pass(&d, settings, &stdin, &mut seen_gone).await;
        if report != PassReport::default() {
            tracing::info!("orphan reconcile pass: {report:?}");
        }
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = shutdown_requested(&mut shutdown) => return,
        }
    }
}

/// Resolves once shutdown was requested (the guard is dropped before returning: `Send`).
async fn shutdown_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone: the daemon is exiting anyway.
    let _ = rx.wait_for(|s| *s).await;
}

/// Remove the temporary files atomic writes leave when the daemon dies mid-write (cniDir, its
/// result caches, the CNI config directory). Only at start-up, before anything writes there.
pub fn remove_stale_temp_files(config: &DaemonConfig) {
    let mut dirs = Vec::new();
    let cni_dir = config.raw.get("cniDir").and_then(Value::as_str).unwrap_or(multus::config::DEFAULT_CNI_DIR);
    dirs.push(Path::new(cni_dir).to_path_buf());
    dirs.push(Path::new(cni_dir).join("results"));
    if let Ok(generator) = multus::generate::GeneratorConfig::from_map(&config.raw) {
        dirs.push(Path::new(&generator.cni_config_dir).to_path_buf());
    }
    for dir in dirs {
        match cni::runtime::remove_stale_temp_files(&dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} temporary files a previous run left in {}", dir.display()),
            Err(e) => tracing::warn!("cannot clean temporary files in {}: {e}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_strict() {
        let config =
            |v: Value| DaemonConfig::from_map(serde_json::json!({CONFIG_KEY: v}).as_object().unwrap().clone()).unwrap();
        assert_eq!(Settings::from_config(&DaemonConfig::from_bytes(b"{}").unwrap()).unwrap(), Settings::default());
        let s = Settings::from_config(&config(
            serde_json::json!({"mode": "dry-run", "intervalSeconds": 10, "maxPerPass": 2}),
        ))
        .unwrap();
        assert_eq!((s.mode, s.interval, s.max_per_pass), (Mode::DryRun, Duration::from_secs(10), 2));
        assert!(Settings::from_config(&config(serde_json::json!({"mode": "yes"}))).is_err());
        assert!(Settings::from_config(&config(serde_json::json!({"intervalSecs": 1}))).is_err());
        assert!(Settings::from_config(&config(serde_json::json!("on"))).is_err());
    }
}
