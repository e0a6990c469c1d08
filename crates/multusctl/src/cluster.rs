//! The API server: a client built like the daemon builds its own
//! ([`multus_node::client::build_client`]), and the reads the commands need.

use crate::objects::{NadSet, nad_from_value};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use multus::model::PodInfo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the cluster credentials come from, in order: `--kubeconfig`, `$KUBECONFIG` (its first
/// file), the in-cluster service account (`KUBERNETES_SERVICE_HOST`), `~/.kube/config`.
pub fn kubeconfig_source(explicit: Option<&Path>) -> Option<Option<PathBuf>> {
    if let Some(p) = explicit {
        return Some(Some(p.to_path_buf()));
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let first = std::env::split_paths(&env).next()?;
        return Some(Some(first));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Some(None);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?.join(".kube/config");
    home.is_file().then_some(Some(home))
}

/// A client, or `None` when no credentials are configured.
pub async fn client(explicit: Option<&Path>) -> anyhow::Result<Option<kube::Client>> {
    let Some(source) = kubeconfig_source(explicit) else { return Ok(None) };
    Ok(Some(multus_node::client::build_client(source.as_deref()).await?))
}

/// A pod as the daemon sees it, `None` when it does not exist.
pub async fn get_pod(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<Option<PodInfo>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = api.get_opt(name).await?;
    Ok(pod.and_then(|p| multus_node::objects::pod_info(&p)).map(|(_, info)| info))
}

/// Pods of a namespace (all namespaces with `None`).
pub async fn list_pods(client: &kube::Client, namespace: Option<&str>) -> anyhow::Result<Vec<PodInfo>> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let pods = api.list(&ListParams::default()).await?;
    Ok(pods.items.iter().filter_map(multus_node::objects::pod_info).map(|(_, info)| info).collect())
}

/// NetworkAttachmentDefinitions of a namespace (all namespaces with `None`).
pub async fn list_nads(client: &kube::Client, namespace: Option<&str>) -> anyhow::Result<NadSet> {
    let resource = multus_node::objects::nad_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let list = api.list(&ListParams::default()).await?;
    let mut out = NadSet::new();
    for obj in list.items {
        let value = serde_json::to_value(&obj)?;
        match nad_from_value(&value) {
            Ok(nad) => {
                out.insert((nad.namespace.clone(), nad.name.clone()), nad);
            }
            // The daemon's cache would hold it with an empty config; say so instead of failing.
            Err(e) => anyhow::bail!("NetworkAttachmentDefinition {:?}: {e}", obj.metadata.name),
        }
    }
    Ok(out)
}

/// NADs of several namespaces.
pub async fn nads_of(client: &kube::Client, namespaces: &BTreeSet<String>) -> anyhow::Result<NadSet> {
    let mut out = NadSet::new();
    for ns in namespaces {
        out.extend(list_nads(client, Some(ns)).await?);
    }
    Ok(out)
}

/// The UID of each pod that exists (`None`: gone).
pub async fn pod_uids(
    client: &kube::Client,
    pods: &BTreeSet<(String, String)>,
) -> anyhow::Result<BTreeMap<(String, String), Option<String>>> {
    let mut out = BTreeMap::new();
    for (ns, name) in pods {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod = api.get_opt(name).await?;
        out.insert((ns.clone(), name.clone()), pod.map(|p| p.metadata.uid.unwrap_or_default()));
    }
    Ok(out)
}
