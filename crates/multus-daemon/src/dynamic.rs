//! Networks that follow the pod (`"dynamicNetworks": true`, a multus-rs extension; off by
//! default, so nothing changes for Go-compatible deployments).
//!
//! When the selection annotation of a pod this daemon attached changes, its sandbox gets the
//! difference: the new networks are plugged in, the dropped ones unplugged
//! ([`crate::commands::hotplug`]), under the sandbox lock the runtime's ADD and DEL take, so a
//! change that arrives during the runtime's ADD is applied after it.
//!
//! Each pass (woken by any change in the node's pod watch cache) looks at every delegate cache:
//! a sandbox is acted on only when its namespace exists, its pod is in the cache with the UID
//! its ADD recorded, and the annotation differs from the one last applied to it. At first sight
//! (a start, a new sandbox) that is the selection its delegate cache records (written by the ADD
//! and by every complete change), so a change made during the runtime's ADD or while the daemon
//! was down is applied, and nothing else is: a cache that records none (the Go daemon's) is
//! taken as it is, and a changed `defaultNetworks` never rewires running pods. A change that
//! failed is retried with a growing backoff (5 s doubling to 5 min) while the annotation stays
//! the same, never in a tight loop; a Warning event on the pod says why.
//!
//! Not to be enabled together with the multus-dynamic-networks-controller, which hot-plugs
//! through `/delegate` itself (that endpoint keeps working for it).

use crate::commands::effective::effective_config;
use crate::commands::hotplug::{Applied, reconcile};
use crate::daemon::Daemon;
use crate::request::CniRequest;
use crate::seams::{NetnsPresence, PodEvent};
use multus::config::DaemonConfig;
use multus::model::NETWORKS_ANNOTATION;
use multus_node::attachments::{Attachment, attachments};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The daemon-config key.
pub const CONFIG_KEY: &str = "dynamicNetworks";

const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// A pass also runs this often without pod changes (retries that came due).
const IDLE_PASS: Duration = Duration::from_secs(5);
/// Pod updates come in bursts (the daemon's own status writes among them).
const SETTLE: Duration = Duration::from_millis(200);

/// `dynamicNetworks` is a boolean; absent is false.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CONFIG_KEY}: must be true or false")]
pub struct SettingsError;

/// Whether `dynamicNetworks` is on.
pub fn enabled(config: &DaemonConfig) -> Result<bool, SettingsError> {
    match config.raw.get(CONFIG_KEY) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or(SettingsError),
    }
}

/// What the loop remembers of a sandbox.
#[derive(Debug, Clone)]
struct Seen {
    /// The annotation last applied (or tried).
    annotation: String,
    /// When to try again a change that failed, and how long the wait after that will be.
    retry: Option<(Instant, Duration)>,
}

/// Run passes until `shutdown` turns true.
pub async fn run(d: Arc<Daemon>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(mut changes) = d.cluster().pod_changes() else {
        tracing::warn!("{CONFIG_KEY}: no pod watch (no API server configured): networks will not follow pods");
        return;
    };
    tracing::info!("{CONFIG_KEY}: networks follow their pods' selection annotations");
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        tokio::select! {
            _ = changes.changed() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(IDLE_PASS) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        pass(&d, &mut seen).await;
    }
}

fn arg<'a>(attachment: &'a Attachment, key: &str) -> Option<&'a str> {
    attachment.cni_args.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// One look at every sandbox of the node.
async fn pass(d: &Daemon, seen: &mut HashMap<String, Seen>) {
    let stdin = crate::reconcile::runtime_stdin(&d.config);
    let conf = match effective_config(d, &stdin) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{CONFIG_KEY}: pass skipped: {e}");
            return;
        }
    };
    let results = d.runtime(&conf).cached_attachments(None).unwrap_or_default();
    let Ok(found) = attachments(Path::new(&conf.cni_dir), &results) else { return };
    seen.retain(|cid, _| found.iter().any(|a| &a.container_id == cid));
    for attachment in found {
        let (Some(namespace), Some(name)) = (arg(&attachment, "K8S_POD_NAMESPACE"), arg(&attachment, "K8S_POD_NAME"))
        else {
            continue;
        };
        // The node's own pods only (the watch is node-scoped), and this very pod.
        let Some(pod) = d.cluster().cached_pod(namespace, name) else { continue };
        if arg(&attachment, "K8S_POD_UID").is_some_and(|uid| uid != pod.uid) && !pod.is_static() {
            continue;
        }
        let annotation = pod.annotation(NETWORKS_ANNOTATION).unwrap_or("").to_string();
        match seen.get(&attachment.container_id) {
            Some(s) if s.annotation == annotation && s.retry.is_none_or(|(at, _)| Instant::now() < at) => continue,
            Some(_) => {}
            // First sight (a start, a new sandbox): the cache says which selection the sandbox
            // was made for. None recorded (a cache of the Go daemon's, or of a daemon without
            // dynamicNetworks): what it has now is its baseline.
            None => {
                let recorded = match multus::cache::read_cache(Path::new(&conf.cni_dir), &attachment.container_id) {
                    multus::cache::CacheRead::Found { delegates, .. } => {
                        delegates.first().and_then(|m| m.selection.clone())
                    }
                    _ => None,
                };
                if recorded.is_none_or(|r| r == annotation) {
                    seen.insert(attachment.container_id.clone(), Seen { annotation, retry: None });
                    continue;
                }
            }
        }
        if attachment.netns.is_empty() || d.netns().presence(&attachment.netns) != NetnsPresence::Present {
            continue;
        }
        let Ok(request) = CniRequest::add_from_cache(
            &stdin,
            &attachment.container_id,
            &attachment.netns,
            &attachment.ifname,
            &attachment.cni_args,
        ) else {
            continue;
        };
        let outcome = {
            let _not_during_gc = d.share_gc_gate().await;
            let _sandbox = d.lock_sandbox(&attachment.container_id).await;
            // The runtime may have deleted it while we waited for the lock.
            if !multus::cache::cache_path(Path::new(&conf.cni_dir), &attachment.container_id).exists() {
                continue;
            }
            reconcile(d, &request, &conf).await
        };
        let previous = seen.get(&attachment.container_id).filter(|s| s.annotation == annotation).cloned();
        let failure = match outcome {
            Ok(applied) => {
                log_applied(&pod.namespace, &pod.name, &applied);
                let text: Vec<String> = applied.failed.iter().map(|(net, e)| format!("{net}: {e}")).collect();
                (!text.is_empty()).then(|| text.join("; "))
            }
            Err(e) => Some(e.to_string()),
        };
        let retry = failure.map(|e| {
            let wait = previous.and_then(|p| p.retry).map_or(FIRST_RETRY, |(_, w)| (w * 2).min(MAX_RETRY));
            tracing::warn!(pod = %format!("{namespace}/{name}"), "{CONFIG_KEY}: {e} (retrying in {wait:?})");
            d.cluster().emit(PodEvent {
                pod: pod.clone(),
                warning: true,
                reason: "DynamicNetworkFailed".into(),
                message: format!("the change of {NETWORKS_ANNOTATION} could not be applied: {e}"),
            });
            (Instant::now() + wait, wait)
        });
        seen.insert(attachment.container_id.clone(), Seen { annotation, retry });
    }
}

fn log_applied(namespace: &str, name: &str, applied: &Applied) {
    for (network, ifname) in &applied.added {
        tracing::info!(pod = %format!("{namespace}/{name}"), "{CONFIG_KEY}: plugged {network} in as {ifname}");
    }
    for (network, ifname) in &applied.removed {
        tracing::info!(pod = %format!("{namespace}/{name}"), "{CONFIG_KEY}: unplugged {network} ({ifname})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(raw: serde_json::Value) -> DaemonConfig {
        DaemonConfig::from_map(raw.as_object().cloned().unwrap_or_default()).unwrap()
    }

    #[test]
    fn the_key_is_off_unless_true_and_a_non_boolean_is_refused() {
        assert_eq!(enabled(&config(serde_json::json!({}))), Ok(false));
        assert_eq!(enabled(&config(serde_json::json!({"dynamicNetworks": true}))), Ok(true));
        assert_eq!(enabled(&config(serde_json::json!({"dynamicNetworks": false}))), Ok(false));
        assert_eq!(enabled(&config(serde_json::json!({"dynamicNetworks": "yes"}))), Err(SettingsError));
    }
}
