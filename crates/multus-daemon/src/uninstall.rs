//! Telling an uninstall from a restart when the daemon is stopped.
//!
//! `00-multus.conf` is kept across a restart (rolling update, crash, node reboot): the Go
//! daemon deletes it, and pods created while it is gone silently get only the primary network.
//! But after an uninstall a kept file sends every pod ADD to a shim whose daemon never comes
//! back. So on SIGTERM the daemon asks the API server whether it still may act for Multus:
//!
//! - its credentials are refused (401: the ServiceAccount was deleted), its rights are gone
//!   (403: the ClusterRole or its binding was deleted) or the NetworkAttachmentDefinition CRD is
//!   (404) → this is an uninstall: remove the file, and the runtime goes back to the node's
//!   primary configuration;
//! - anything else (success, API server unreachable, timeout) → a restart: keep the file.
//!
//! `kubectl delete -f deployments/multus-daemonset-thick-plugin.yml` deletes the RBAC objects
//! before the DaemonSet (file order), so its pods are told to stop after their rights went. The
//! explicit, deterministic path is `multus-install uninstall` on the node (docs/deploy.md), and
//! `cleanupConfigOnExit: true` restores the Go behaviour of always removing the file.

use kube::api::{Api, DynamicObject, ListParams};
use std::time::Duration;

/// How the daemon's stop is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Keep `00-multus.conf`: the daemon comes back.
    Restart,
    /// Remove it: Multus is being removed from the cluster (or `cleanupConfigOnExit`).
    Uninstall,
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
            tracing::info!("cannot ask the API server whether this is an uninstall ({e}); treating it as a restart");
            Exit::Restart
        }
        Err(_) => {
            tracing::info!("the API server did not answer within {timeout:?}; treating the stop as a restart");
            Exit::Restart
        }
    }
}
