//! The node's attachments: every delegate cache in the CNI cache directory with what libcni's
//! result caches recorded about it (container, namespace, interface, `CNI_ARGS`), and the
//! verdict on each (pure). The daemon's orphan reconciler acts on the verdicts; `multusctl
//! attachments` shows them.

use crate::netns::NetnsPresence;
use cni::runtime::CacheEntry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One attachment the daemon knows of (a delegate cache file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The container ID, which names the delegate cache file.
    pub container_id: String,
    /// The namespace recorded by libcni's result caches; empty when none recorded one.
    pub netns: String,
    /// The master's interface name (`CNI_IFNAME` of the ADD).
    pub ifname: String,
    /// The ADD's `CNI_ARGS` as libcni recorded them.
    pub cni_args: Vec<(String, String)>,
}

/// What to do with one attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its namespace is gone: DEL it.
    Orphan,
    /// Its pod is gone from the API server, confirmed: DEL it.
    PodGone,
    /// Its pod is gone from the API server, not yet for `podGoneConfirmSeconds`.
    PodGonePending,
    /// Its namespace exists: it is alive.
    Alive,
    /// No namespace recorded, or it cannot be checked: leave it.
    Unknown,
    /// The runtime's last GC listed it as valid.
    ProtectedByGc,
}

impl Verdict {
    /// The metric label of the verdict.
    pub fn label(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::PodGone => "pod_gone",
            Self::PodGonePending => "pod_gone_pending",
            Self::Alive => "alive",
            Self::Unknown => "unknown",
            Self::ProtectedByGc => "protected_by_gc",
        }
    }
}

/// Every delegate cache in `cni_dir` with what the result caches recorded about it (pure
/// reading; no decision).
pub fn attachments(cni_dir: &Path, results: &[CacheEntry]) -> std::io::Result<Vec<Attachment>> {
    let entries = match std::fs::read_dir(cni_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut by_container: BTreeMap<&str, Vec<&CacheEntry>> = BTreeMap::new();
    for r in results {
        by_container.entry(r.container_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !entry.file_type()?.is_file() || cni::validate::validate_container_id(&name).is_err() {
            continue;
        }
        let recorded = by_container.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
        // The master's result cache carries the request's interface (delegate 0 of the cache);
        // any entry carries the netns.
        let master_network = match multus::cache::read_cache(cni_dir, &name) {
            multus::cache::CacheRead::Found { delegates, .. } => {
                delegates.first().map(|d| d.network_name().to_string())
            }
            _ => None,
        };
        let master = recorded.iter().find(|r| Some(r.network_name.as_str()) == master_network.as_deref());
        let netns = recorded.iter().map(|r| r.netns.as_str()).find(|n| !n.is_empty()).unwrap_or("").to_string();
        out.push(Attachment {
            container_id: name,
            netns,
            ifname: master.map(|r| r.ifname.clone()).unwrap_or_else(|| "eth0".into()),
            cni_args: master.or(recorded.first()).map(|r| r.cni_args.clone()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The verdict on one attachment (pure).
pub fn judge(attachment: &Attachment, netns: NetnsPresence, gc_valid: Option<&BTreeSet<String>>) -> Verdict {
    if gc_valid.is_some_and(|valid| valid.contains(&attachment.container_id)) {
        return Verdict::ProtectedByGc;
    }
    if attachment.netns.is_empty() {
        return Verdict::Unknown;
    }
    match netns {
        NetnsPresence::Absent => Verdict::Orphan,
        NetnsPresence::Present => Verdict::Alive,
        NetnsPresence::Unknown => Verdict::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(netns: &str) -> Attachment {
        Attachment { container_id: "c1".into(), netns: netns.into(), ifname: "eth0".into(), cni_args: vec![] }
    }

    #[test]
    fn only_a_gone_namespace_makes_an_orphan() {
        assert_eq!(judge(&attachment("/run/netns/x"), NetnsPresence::Absent, None), Verdict::Orphan);
        assert_eq!(judge(&attachment("/run/netns/x"), NetnsPresence::Present, None), Verdict::Alive);
        assert_eq!(judge(&attachment("/run/netns/x"), NetnsPresence::Unknown, None), Verdict::Unknown);
        assert_eq!(judge(&attachment(""), NetnsPresence::Absent, None), Verdict::Unknown);
        let valid: BTreeSet<String> = ["c1".to_string()].into();
        assert_eq!(judge(&attachment("/run/netns/x"), NetnsPresence::Absent, Some(&valid)), Verdict::ProtectedByGc);
    }
}
