//! Telling an uninstall from a restart when the daemon is stopped.
//!
//! `00-multus.conf` is kept across a restart (rolling update, crash, node reboot, the pod
//! deleted for the DaemonSet to re-create): the Go daemon deletes it, and pods created while it
//! is gone silently get only the primary network. But after an uninstall a kept file sends
//! every pod ADD to a shim whose daemon never comes back (each ADD waits 60 s and fails). So on
//! SIGTERM the daemon decides, from two kinds of evidence:
//!
//! 1. **Its owner** (when `MULTUS_POD_NAME` and `MULTUS_POD_NAMESPACE` name its pod, as the
//!    shipped manifest sets them through the downward API): the DaemonSet that controls the
//!    pod is watched from start-up. Gone (a `kubectl delete ds`, a Helm uninstall, an
//!    operator removing it: with the default Background propagation the DaemonSet disappears
//!    before its pods are told to stop) or being deleted (Foreground: `deletionTimestamp` set
//!    while its pods go) → **uninstall**. Present → **restart** (a rolling update, a deleted
//!    pod, a drained or rebooting node: the DaemonSet brings a daemon back). At SIGTERM the
//!    DaemonSet is asked once more (bounded); when the API server is slow or unreachable
//!    then, what the watch saw last decides: a DaemonSet deletion reaches the watch before the
//!    kubelet stops the pod, since the pod's deletion follows it.
//! 2. **Its rights**: credentials refused (401: the ServiceAccount was deleted), rights gone
//!    (403: the ClusterRole or its binding was deleted) or the NetworkAttachmentDefinition CRD
//!    gone (404) → **uninstall** (`kubectl delete -f` of the manifest removes these before the
//!    DaemonSet).
//!
//! Anything else (both unknown: no pod identity, API down since start) is read as a restart.
//! The explicit path is `multus-install uninstall` on the node (docs/deploy.md), and
//! `cleanupConfigOnExit: true` restores the Go behaviour of always removing the file.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::watcher;
use std::time::Duration;
use tokio::sync::watch;

/// The daemon's own pod (downward API), for the owner evidence.
pub const POD_NAME_ENV: &str = "MULTUS_POD_NAME";
/// The daemon's own pod's namespace (downward API).
pub const POD_NAMESPACE_ENV: &str = "MULTUS_POD_NAMESPACE";

/// How the daemon's stop is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Keep `00-multus.conf`: the daemon comes back.
    Restart,
    /// Remove it: Multus is being removed from the cluster (or `cleanupConfigOnExit`).
    Uninstall,
}

/// What is known of the DaemonSet that controls the daemon's pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    /// Not known (yet): no answer from the API server so far.
    Unknown,
    /// The pod has no DaemonSet controller (run by hand, a static pod): no owner evidence.
    NotOwned,
    /// The DaemonSet exists and is not being deleted.
    Present {
        /// `namespace/name`, for the log.
        name: String,
    },
    /// The DaemonSet has a `deletionTimestamp` (Foreground deletion).
    BeingDeleted {
        /// `namespace/name`.
        name: String,
    },
    /// The DaemonSet is gone.
    Gone {
        /// `namespace/name`.
        name: String,
    },
}

impl OwnerState {
    /// What this state says about the stop, if anything.
    fn verdict(&self) -> Option<Exit> {
        match self {
            Self::Unknown | Self::NotOwned => None,
            Self::Present { .. } => Some(Exit::Restart),
            Self::BeingDeleted { .. } | Self::Gone { .. } => Some(Exit::Uninstall),
        }
    }
}

impl std::fmt::Display for OwnerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => write!(f, "its DaemonSet is not known"),
            Self::NotOwned => write!(f, "its pod has no DaemonSet"),
            Self::Present { name } => write!(f, "its DaemonSet {name} exists"),
            Self::BeingDeleted { name } => write!(f, "its DaemonSet {name} is being deleted"),
            Self::Gone { name } => write!(f, "its DaemonSet {name} is gone"),
        }
    }
}

/// The DaemonSet controlling a pod, watched in the background.
#[derive(Clone)]
pub struct OwnerWatch {
    client: kube::Client,
    /// Known once the pod was read.
    owner: watch::Receiver<Option<(String, String)>>,
    state: watch::Receiver<OwnerState>,
}

/// Our pod's identity from the environment, if the manifest passes it.
pub fn own_pod_from_env() -> Option<(String, String)> {
    let name = std::env::var(POD_NAME_ENV).ok().filter(|s| !s.is_empty())?;
    let namespace = std::env::var(POD_NAMESPACE_ENV).ok().filter(|s| !s.is_empty())?;
    Some((namespace, name))
}

impl OwnerWatch {
    /// Find the DaemonSet controlling pod `namespace/name` and follow it until the process ends.
    pub fn start(client: kube::Client, namespace: String, name: String) -> Self {
        let (state_tx, state) = watch::channel(OwnerState::Unknown);
        let (owner_tx, owner) = watch::channel(None);
        tokio::spawn(follow(client.clone(), namespace, name, owner_tx, state_tx));
        Self { client, owner, state }
    }

    /// What the watch saw last.
    pub fn last_seen(&self) -> OwnerState {
        self.state.borrow().clone()
    }

    /// Ask the API server now (bounded by `timeout`); on no answer, what the watch saw last.
    pub async fn now(&self, timeout: Duration) -> OwnerState {
        let Some((namespace, name)) = self.owner.borrow().clone() else { return self.last_seen() };
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
        let full = format!("{namespace}/{name}");
        match tokio::time::timeout(timeout, api.get_opt(&name)).await {
            Ok(Ok(None)) => OwnerState::Gone { name: full },
            Ok(Ok(Some(ds))) if ds.metadata.deletion_timestamp.is_some() => OwnerState::BeingDeleted { name: full },
            Ok(Ok(Some(_))) => OwnerState::Present { name: full },
            Ok(Err(e)) => {
                tracing::info!("cannot read DaemonSet {full} at stop ({e}); going by what its watch saw last");
                self.last_seen()
            }
            Err(_) => {
                tracing::info!(
                    "DaemonSet {full} not read within {timeout:?} at stop; going by what its watch saw last"
                );
                self.last_seen()
            }
        }
    }
}

/// Read the pod's controller (retrying with backoff while the API server cannot answer), then
/// watch that DaemonSet by name.
async fn follow(
    client: kube::Client,
    namespace: String,
    name: String,
    owner_tx: watch::Sender<Option<(String, String)>>,
    state_tx: watch::Sender<OwnerState>,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut pause = Duration::from_secs(1);
    let owner = loop {
        match pods.get_opt(&name).await {
            Ok(Some(pod)) => {
                let controller = pod
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.controller == Some(true) && o.kind == "DaemonSet");
                match controller {
                    Some(o) => break o.name,
                    None => {
                        state_tx.send_replace(OwnerState::NotOwned);
                        return;
                    }
                }
            }
            Ok(None) => {
                tracing::info!("pod {namespace}/{name} ({POD_NAME_ENV}) not found: no DaemonSet to follow");
                state_tx.send_replace(OwnerState::NotOwned);
                return;
            }
            Err(e) => {
                tracing::debug!("reading pod {namespace}/{name} for its DaemonSet: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    };
    let full = format!("{namespace}/{owner}");
    tracing::info!("following DaemonSet {full} to tell an uninstall from a restart at stop");
    owner_tx.send_replace(Some((namespace.clone(), owner.clone())));
    let api: Api<DaemonSet> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={owner}"));
    let mut stream = watcher::watcher(api, config).boxed();
    let mut seen_in_list = false;
    let mut backoff = Duration::from_millis(500);
    while let Some(event) = stream.next().await {
        let next = match event {
            Ok(watcher::Event::Init) => {
                seen_in_list = false;
                continue;
            }
            Ok(watcher::Event::InitApply(ds) | watcher::Event::Apply(ds)) => {
                seen_in_list = true;
                if ds.metadata.deletion_timestamp.is_some() {
                    OwnerState::BeingDeleted { name: full.clone() }
                } else {
                    OwnerState::Present { name: full.clone() }
                }
            }
            Ok(watcher::Event::InitDone) if seen_in_list => continue,
            Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => OwnerState::Gone { name: full.clone() },
            Err(e) => {
                tracing::debug!("DaemonSet {full} watch: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let changed = *state_tx.borrow() != next;
        if changed {
            if next.verdict() == Some(Exit::Uninstall) {
                tracing::warn!("{next}: this daemon will remove 00-multus.conf when it is stopped");
            }
            state_tx.send_replace(next);
        }
    }
}

/// Decide at SIGTERM (module docs), asking the API server for at most `timeout`.
pub async fn decide(client: kube::Client, owner: Option<&OwnerWatch>, timeout: Duration) -> Exit {
    let owner_now = async {
        match owner {
            Some(w) => w.now(timeout).await,
            None => OwnerState::Unknown,
        }
    };
    let (rights, owner_now) = tokio::join!(probe(client, timeout), owner_now);
    match (rights, owner_now.verdict()) {
        (Exit::Uninstall, _) => Exit::Uninstall,
        (_, Some(Exit::Uninstall)) => {
            tracing::warn!("{owner_now}: Multus is being uninstalled");
            Exit::Uninstall
        }
        (_, Some(Exit::Restart)) => {
            tracing::info!("{owner_now}: treating the stop as a restart");
            Exit::Restart
        }
        (_, None) => {
            if owner.is_none() {
                tracing::info!(
                    "{POD_NAME_ENV}/{POD_NAMESPACE_ENV} not set: an uninstall is recognised by the API server refusing the daemon only"
                );
            }
            Exit::Restart
        }
    }
}

/// Ask the API server (bounded by `timeout`) whether the daemon's credentials and rights are
/// still there. Listing NADs is in both the Go and the multus-rs ClusterRole.
pub async fn probe(client: kube::Client, timeout: Duration) -> Exit {
    let api: Api<DynamicObject> = Api::all_with(client, &crate::kube::nad_resource());
    match tokio::time::timeout(timeout, api.list_metadata(&ListParams::default().limit(1))).await {
        Ok(Err(kube::Error::Api(status))) if matches!(status.code, 401 | 403 | 404) => {
            tracing::warn!(
                "the API server refuses the daemon ({} {}): Multus is being uninstalled",
                status.code,
                status.reason
            );
            Exit::Uninstall
        }
        Ok(Ok(_)) => Exit::Restart,
        Ok(Err(e)) => {
            tracing::info!("cannot ask the API server whether this is an uninstall ({e})");
            Exit::Restart
        }
        Err(_) => {
            tracing::info!("the API server did not answer within {timeout:?}");
            Exit::Restart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_or_deleting_owner_means_uninstall() {
        let name = || "kube-system/kube-multus-ds".to_string();
        assert_eq!(OwnerState::Gone { name: name() }.verdict(), Some(Exit::Uninstall));
        assert_eq!(OwnerState::BeingDeleted { name: name() }.verdict(), Some(Exit::Uninstall));
        assert_eq!(OwnerState::Present { name: name() }.verdict(), Some(Exit::Restart));
        assert_eq!(OwnerState::Unknown.verdict(), None);
        assert_eq!(OwnerState::NotOwned.verdict(), None);
    }
}
