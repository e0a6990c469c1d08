//! Networks that follow the pod (`dynamicNetworks`): which attachments to add and which to remove
//! when a running pod's selection annotation changes. Pure: the daemon feeds it the attachments
//! its delegate cache holds for the sandbox and the networks the new annotation selects.
//!
//! An attachment is a network (`namespace/name`) on an interface. A network selected twice is two
//! attachments. Matching keeps every live attachment that the new selection still asks for:
//! first the ones whose interface the selection names, then, network by network, the others in
//! interface order; a selection naming an interface that a kept attachment has is refused
//! ([`HotplugError::InterfaceInUse`]), nothing running is moved. What is left over on the live side is removed; what is left over on the
//! selection side is added, on the interface the selection names, or else `net<position>` as
//! Multus numbers a pod's delegates, moved to the next free `net<k>` when a live interface (or
//! another new one) has that name: a live interface is never reused. The cluster network (the
//! master attachment) is never touched.

use std::collections::BTreeSet;

use crate::delegate::Delegate;
use crate::plan::interface_name;

/// An attachment the sandbox has now (from the delegate cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LiveAttachment {
    /// `namespace/name` of the network (the NAD) or the cluster network's name.
    pub network: String,
    /// The interface inside the pod.
    pub ifname: String,
    /// The cluster network (`eth0`): never added or removed here.
    pub is_master: bool,
}

/// An attachment the new selection asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedAttachment {
    /// `namespace/name` of the network.
    pub network: String,
    /// The `interface` the selection element names, if any.
    pub ifname_request: Option<String>,
    /// Its position among the pod's delegates (the cluster network is 0): `net<position>`.
    pub position: usize,
}

/// What to do to make the sandbox match the selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotplugPlan {
    /// Live attachments the selection no longer asks for (DEL), in interface order.
    pub remove: Vec<LiveAttachment>,
    /// New attachments (ADD): the wanted attachment and the interface it gets.
    pub add: Vec<(WantedAttachment, String)>,
}

impl HotplugPlan {
    /// Nothing to add or remove.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

/// Why a selection cannot be applied to a running pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HotplugError {
    /// Two selection elements name the same interface.
    #[error("interface {0:?} is requested twice")]
    DuplicateInterface(String),
    /// The selection names the interface of the cluster network, or one that another live
    /// attachment keeps.
    #[error("interface {ifname:?} is in use by network {network:?}")]
    InterfaceInUse {
        /// The interface asked for.
        ifname: String,
        /// The network that has it.
        network: String,
    },
}

/// The plan that turns `live` into `wanted` (see the module docs).
pub fn plan_hotplug(live: &[LiveAttachment], wanted: &[WantedAttachment]) -> Result<HotplugPlan, HotplugError> {
    let mut requested = BTreeSet::new();
    for w in wanted {
        if let Some(name) = &w.ifname_request
            && !requested.insert(name.clone())
        {
            return Err(HotplugError::DuplicateInterface(name.clone()));
        }
    }
    let mut candidates: Vec<&LiveAttachment> = live.iter().filter(|l| !l.is_master).collect();
    candidates.sort_by(|a, b| (interface_order(&a.ifname), &a.ifname).cmp(&(interface_order(&b.ifname), &b.ifname)));
    let mut kept = vec![false; candidates.len()];
    let mut matched = vec![false; wanted.len()];
    // Exact matches first: a named interface on the same network stays.
    for (wi, w) in wanted.iter().enumerate() {
        let Some(name) = &w.ifname_request else { continue };
        if let Some(ci) = (0..candidates.len())
            .find(|&ci| !kept[ci] && candidates[ci].network == w.network && &candidates[ci].ifname == name)
        {
            kept[ci] = true;
            matched[wi] = true;
        }
    }
    // Then unnamed selections take the remaining live attachments of their network, in order
    // (a live interface stays where it is even when another element now asks for its name: that
    // element is refused rather than the running attachment moved).
    for (wi, w) in wanted.iter().enumerate() {
        if matched[wi] || w.ifname_request.is_some() {
            continue;
        }
        if let Some(ci) = (0..candidates.len()).find(|&ci| !kept[ci] && candidates[ci].network == w.network) {
            kept[ci] = true;
            matched[wi] = true;
        }
    }
    let remove: Vec<LiveAttachment> =
        candidates.iter().zip(&kept).filter(|(_, k)| !**k).map(|(c, _)| (*c).clone()).collect();
    // Interfaces that stay taken: the master's and every kept one. Removed ones free their names
    // only after their DEL, which runs first; a requested name may take one of them.
    let mut taken: BTreeSet<String> = live.iter().filter(|l| l.is_master).map(|l| l.ifname.clone()).collect();
    taken.extend(candidates.iter().zip(&kept).filter(|(_, k)| **k).map(|(c, _)| c.ifname.clone()));
    for w in wanted.iter().zip(&matched).filter(|(_, m)| !**m).map(|(w, _)| w) {
        if let Some(name) = &w.ifname_request
            && let Some(holder) = live.iter().find(|l| &l.ifname == name && taken.contains(name))
        {
            return Err(HotplugError::InterfaceInUse { ifname: name.clone(), network: holder.network.clone() });
        }
    }
    // Names a new unnamed attachment must not take: taken ones, requested ones, and (so that a
    // removal and an addition never race for one name) the removed ones.
    let mut reserved = taken.clone();
    reserved.extend(requested.iter().cloned());
    reserved.extend(remove.iter().map(|r| r.ifname.clone()));
    let mut add = Vec::new();
    for w in wanted.iter().zip(&matched).filter(|(_, m)| !**m).map(|(w, _)| w) {
        let ifname = match &w.ifname_request {
            Some(name) => name.clone(),
            None => {
                let mut k = w.position.max(1);
                while reserved.contains(&format!("net{k}")) {
                    k += 1;
                }
                format!("net{k}")
            }
        };
        reserved.insert(ifname.clone());
        add.push((w.clone(), ifname));
    }
    Ok(HotplugPlan { remove, add })
}

/// The attachments a sandbox has, from its cached delegates, on the interfaces their DEL uses
/// (`cni_ifname` for the master).
pub fn live_attachments(cached: &[Delegate], cni_ifname: &str) -> Vec<LiveAttachment> {
    cached
        .iter()
        .enumerate()
        .map(|(index, d)| LiveAttachment {
            network: d.name.clone(),
            ifname: interface_name(d, index, cni_ifname),
            is_master: d.is_master,
        })
        .collect()
}

/// What a pod's resolved delegates (the new selection, master first) ask for.
pub fn wanted_attachments(resolved: &[Delegate]) -> Vec<WantedAttachment> {
    resolved
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_master)
        .map(|(position, d)| WantedAttachment {
            network: d.name.clone(),
            ifname_request: Some(d.ifname_request.clone()).filter(|n| !n.is_empty()),
            position,
        })
        .collect()
}

/// The sandbox's delegates once `plan` is applied: the cached ones it keeps, then the added
/// ones (from `resolved`, by position). Every non-master delegate's interface is written into its
/// `ifname_request`: a DEL names interfaces by position, and removing one delegate must not
/// rename the others (nor may a later DEL of an added one guess its name).
pub fn delegates_after(
    cached: &[Delegate],
    cni_ifname: &str,
    plan: &HotplugPlan,
    resolved: &[Delegate],
) -> Vec<Delegate> {
    let mut out: Vec<Delegate> = Vec::new();
    for (index, d) in cached.iter().enumerate() {
        let ifname = interface_name(d, index, cni_ifname);
        if plan.remove.iter().any(|r| r.network == d.name && r.ifname == ifname && !d.is_master) {
            continue;
        }
        let mut kept = d.clone();
        if !kept.is_master {
            kept.ifname_request = ifname;
        }
        out.push(kept);
    }
    for (wanted, ifname) in &plan.add {
        if let Some(d) = resolved.get(wanted.position) {
            let mut added = d.clone();
            added.ifname_request = ifname.clone();
            added.hotplugged = true;
            out.push(added);
        }
    }
    out
}

/// `net<k>` sorts by `k` (net2 before net10); other names after, by name.
fn interface_order(ifname: &str) -> (u8, usize) {
    match ifname.strip_prefix("net").and_then(|k| k.parse::<usize>().ok()) {
        Some(k) => (0, k),
        None => (1, 0),
    }
}

#[cfg(test)]
mod tests;
