//! `multusctl attachments`: what the delegate cache of a node holds, and which attachments
//! nobody will delete.
//!
//! The attachments and the "network namespace gone" verdict come from the daemon's own orphan
//! reconciler ([`multus_node::attachments::attachments`], [`multus_node::attachments::judge`],
//! the daemon's namespace check [`multus_node::netns::presence`]): what this lists as orphaned
//! by namespace is what the reconciler deletes (unless `orphanReconcile` is off or the runtime's
//! last GC listed the container). A pod that is gone from the API server is reported too, when
//! one is reachable; the reconciler does not act on that alone, because a runtime still owns the
//! sandbox until its namespace is gone.

use cni::runtime::{CacheEntry, CniRuntime};
use multus::cache::{CacheRead, read_cache};
use multus_node::attachments::{self as reconcile, Verdict};
use multus_node::netns::NetnsPresence;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

/// The pod an attachment was made for (from the ADD's `CNI_ARGS`, as libcni recorded them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// One network of an attachment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedNetwork {
    /// Display name (`namespace/nad`, or the config name of a file-based network).
    pub name: String,
    pub network_name: String,
    /// From libcni's result cache (absent when none was written: the ADD did not get there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Plugged into the running pod by `dynamicNetworks`, not by the runtime's ADD.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hotplugged: bool,
}

/// The state of the namespace an attachment lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetnsState {
    Present,
    Absent,
    /// Cannot be checked here (permissions, not a namespace file).
    Unknown,
    /// No result cache recorded one.
    NotRecorded,
}

/// Whether the attachment's pod still exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PodState {
    Exists,
    Gone,
    /// A pod of that name exists with another UID (the attachment's pod was deleted).
    Replaced {
        uid: String,
    },
    NotChecked,
}

/// One delegate cache file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodIdentity>,
    pub networks: Vec<AttachedNetwork>,
    /// When the delegate cache was written (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    pub netns_state: NetnsState,
    pub pod_state: PodState,
    /// The delegate cache cannot be read: a DEL deletes nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_error: Option<String>,
    pub orphaned: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphan_reasons: Vec<String>,
}

impl Attachment {
    /// A one-word state for tables.
    pub fn state_text(&self) -> String {
        match (&self.cache_error, self.netns_state) {
            (Some(e), _) => format!("CACHE UNREADABLE: {e}"),
            (None, NetnsState::Present) => "alive".into(),
            (None, NetnsState::Unknown) => "netns not checkable here".into(),
            (None, NetnsState::NotRecorded) => "no netns recorded".into(),
            (None, NetnsState::Absent) => "netns gone".into(),
        }
    }
}

/// A libcni result cache whose container has no delegate cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultOnly {
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodIdentity>,
    pub network_name: String,
    pub interface: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

/// Everything found in a `cniDir`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentReport {
    pub cni_dir: String,
    pub attachments: Vec<Attachment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results_without_cache: Vec<ResultOnly>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl AttachmentReport {
    /// The pods to look up in the API server.
    pub fn pods(&self) -> BTreeSet<(String, String)> {
        self.attachments.iter().filter_map(|a| a.pod.as_ref()).map(|p| (p.namespace.clone(), p.name.clone())).collect()
    }

    /// Record what the API server said: `Some(uid)` exists, `None` gone. Pods not in `found`
    /// stay not checked.
    pub fn apply_pod_lookups(&mut self, found: &BTreeMap<(String, String), Option<String>>) {
        for a in &mut self.attachments {
            let Some(pod) = &a.pod else { continue };
            let Some(answer) = found.get(&(pod.namespace.clone(), pod.name.clone())) else { continue };
            a.pod_state = match answer {
                None => PodState::Gone,
                Some(uid) if !pod.uid.is_empty() && uid != &pod.uid => PodState::Replaced { uid: uid.clone() },
                Some(_) => PodState::Exists,
            };
            match &a.pod_state {
                PodState::Gone => a.orphan_reasons.push("pod gone".into()),
                PodState::Replaced { uid } => a.orphan_reasons.push(format!("pod recreated (now uid {uid})")),
                _ => {}
            }
            a.orphaned = !a.orphan_reasons.is_empty();
        }
    }
}

fn pod_of(cni_args: &[(String, String)]) -> Option<PodIdentity> {
    let get = |k: &str| cni_args.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (namespace, name) = (get("K8S_POD_NAMESPACE"), get("K8S_POD_NAME"));
    (!namespace.is_empty() || !name.is_empty()).then(|| PodIdentity { namespace, name, uid: get("K8S_POD_UID") })
}

fn result_ips(entry: &CacheEntry) -> Vec<String> {
    let ips = entry.result.as_ref().and_then(|r| r.get("ips")).and_then(Value::as_array);
    ips.map(|list| list.iter().filter_map(|ip| ip.get("address").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Read `cni_dir` (delegate caches and libcni result caches). `now` is the reference for ages.
pub fn scan(cni_dir: &Path, now: SystemTime) -> std::io::Result<AttachmentReport> {
    let runtime = CniRuntime::new(Vec::new(), cni_dir, cni::exec::RawExec::new());
    let mut notes = Vec::new();
    let results = runtime.cached_attachments(None).unwrap_or_else(|e| {
        notes.push(format!("cannot read the libcni result caches: {e}"));
        Vec::new()
    });
    let found = reconcile::attachments(cni_dir, &results)?;
    let mut by_container: BTreeMap<&str, Vec<&CacheEntry>> = BTreeMap::new();
    for r in &results {
        by_container.entry(r.container_id.as_str()).or_default().push(r);
    }
    let mut attachments = Vec::new();
    for a in &found {
        let mut recorded: Vec<&CacheEntry> = by_container.get(a.container_id.as_str()).cloned().unwrap_or_default();
        let (networks, cache_error) = match read_cache(cni_dir, &a.container_id) {
            CacheRead::Found { delegates, .. } => {
                let networks = delegates
                    .iter()
                    .map(|d| {
                        // Each result cache belongs to one delegate: take the first of its network.
                        let hit = recorded.iter().position(|r| r.network_name == d.network_name());
                        let result = hit.map(|i| recorded.remove(i));
                        AttachedNetwork {
                            name: d.name.clone(),
                            network_name: d.network_name().to_string(),
                            interface: result.map(|r| r.ifname.clone()),
                            ips: result.map(result_ips).unwrap_or_default(),
                            hotplugged: d.hotplugged,
                        }
                    })
                    .collect();
                (networks, None)
            }
            CacheRead::Missing => (Vec::new(), Some("removed while reading".to_string())),
            CacheRead::Unreadable(e) | CacheRead::Invalid(e) => (Vec::new(), Some(e)),
        };
        let presence = if a.netns.is_empty() { NetnsPresence::Unknown } else { multus_node::netns::presence(&a.netns) };
        let netns_state = match (a.netns.is_empty(), presence) {
            (true, _) => NetnsState::NotRecorded,
            (false, NetnsPresence::Present) => NetnsState::Present,
            (false, NetnsPresence::Absent) => NetnsState::Absent,
            (false, NetnsPresence::Unknown) => NetnsState::Unknown,
        };
        let mut orphan_reasons = Vec::new();
        if reconcile::judge(a, presence, None) == Verdict::Orphan {
            orphan_reasons.push("network namespace gone".to_string());
        }
        if let Some(e) = &cache_error {
            orphan_reasons.push(format!("delegate cache unreadable, a DEL deletes nothing ({e})"));
        }
        let modified =
            std::fs::metadata(multus::cache::cache_path(cni_dir, &a.container_id)).and_then(|m| m.modified()).ok();
        attachments.push(Attachment {
            container_id: a.container_id.clone(),
            pod: pod_of(&a.cni_args),
            networks,
            created: modified.map(rfc3339),
            age_seconds: modified.map(|m| now.duration_since(m).map(|d| d.as_secs()).unwrap_or(0)),
            netns: (!a.netns.is_empty()).then(|| a.netns.clone()),
            netns_state,
            pod_state: PodState::NotChecked,
            cache_error,
            orphaned: !orphan_reasons.is_empty(),
            orphan_reasons,
        });
    }
    attachments.sort_by(|a, b| (&a.pod, &a.container_id).cmp(&(&b.pod, &b.container_id)));
    let cached: BTreeSet<&str> = found.iter().map(|a| a.container_id.as_str()).collect();
    let results_without_cache = results
        .iter()
        .filter(|r| !cached.contains(r.container_id.as_str()))
        .map(|r| ResultOnly {
            container_id: r.container_id.clone(),
            pod: pod_of(&r.cni_args),
            network_name: r.network_name.clone(),
            interface: r.ifname.clone(),
            netns: r.netns.clone(),
            ips: result_ips(r),
        })
        .collect();
    Ok(AttachmentReport { cni_dir: cni_dir.display().to_string(), attachments, results_without_cache, notes })
}
