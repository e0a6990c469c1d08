use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn live(network: &str, ifname: &str) -> LiveAttachment {
    LiveAttachment { network: network.into(), ifname: ifname.into(), is_master: false }
}

fn master() -> LiveAttachment {
    LiveAttachment { network: "cluster".into(), ifname: "eth0".into(), is_master: true }
}

fn want(network: &str, position: usize) -> WantedAttachment {
    WantedAttachment { network: network.into(), ifname_request: None, position }
}

fn named(network: &str, ifname: &str, position: usize) -> WantedAttachment {
    WantedAttachment { network: network.into(), ifname_request: Some(ifname.into()), position }
}

fn added(plan: &HotplugPlan) -> Vec<(&str, &str)> {
    plan.add.iter().map(|(w, i)| (w.network.as_str(), i.as_str())).collect()
}

#[test]
fn adding_a_network_plugs_it_on_its_position() {
    let plan = plan_hotplug(&[master(), live("ns/a", "net1")], &[want("ns/a", 1), want("ns/b", 2)]).unwrap();
    assert!(plan.remove.is_empty());
    assert_eq!(added(&plan), vec![("ns/b", "net2")]);
}

#[test]
fn removing_the_first_network_keeps_the_second_on_its_interface() {
    let plan = plan_hotplug(&[master(), live("ns/a", "net1"), live("ns/b", "net2")], &[want("ns/b", 1)]).unwrap();
    assert_eq!(plan.remove, vec![live("ns/a", "net1")]);
    assert!(plan.add.is_empty());
}

#[test]
fn a_network_selected_twice_is_two_attachments() {
    let plan = plan_hotplug(&[master(), live("ns/a", "net1")], &[want("ns/a", 1), want("ns/a", 2)]).unwrap();
    assert_eq!(added(&plan), vec![("ns/a", "net2")]);
    let plan = plan_hotplug(&[master(), live("ns/a", "net1"), live("ns/a", "net2")], &[want("ns/a", 1)]).unwrap();
    assert_eq!(plan.remove, vec![live("ns/a", "net2")]);
}

#[test]
fn a_new_attachment_never_takes_a_live_or_a_removed_interface() {
    let plan =
        plan_hotplug(&[master(), live("ns/a", "net1"), live("ns/b", "net2")], &[want("ns/c", 1), want("ns/b", 2)])
            .unwrap();
    assert_eq!(plan.remove, vec![live("ns/a", "net1")]);
    assert_eq!(added(&plan), vec![("ns/c", "net3")]);
}

#[test]
fn a_named_interface_is_kept_moved_or_refused() {
    let live_set = [master(), live("ns/a", "data0"), live("ns/b", "net2")];
    // Same network, same name: kept.
    assert!(plan_hotplug(&live_set, &[named("ns/a", "data0", 1), want("ns/b", 2)]).unwrap().is_empty());
    // Another network asks for a name a kept attachment has: refused, nothing done.
    assert_eq!(
        plan_hotplug(&live_set, &[named("ns/a", "data0", 1), named("ns/c", "net2", 2), want("ns/b", 3)]),
        Err(HotplugError::InterfaceInUse { ifname: "net2".into(), network: "ns/b".into() })
    );
    // The cluster network's interface is never given away.
    assert!(matches!(plan_hotplug(&live_set, &[named("ns/c", "eth0", 1)]), Err(HotplugError::InterfaceInUse { .. })));
    // A name freed by a removal in the same change may be taken (its DEL runs first).
    let plan = plan_hotplug(&live_set, &[named("ns/c", "data0", 1), want("ns/b", 2)]).unwrap();
    assert_eq!(plan.remove, vec![live("ns/a", "data0")]);
    assert_eq!(added(&plan), vec![("ns/c", "data0")]);
    assert_eq!(
        plan_hotplug(&live_set, &[named("ns/c", "x", 1), named("ns/d", "x", 2)]),
        Err(HotplugError::DuplicateInterface("x".into()))
    );
}

#[test]
fn the_cluster_network_is_never_removed() {
    let plan = plan_hotplug(&[master(), live("ns/a", "net1")], &[]).unwrap();
    assert_eq!(plan.remove, vec![live("ns/a", "net1")]);
}

/// Live attachments (distinct interfaces) and a selection over a few networks and names.
fn scenario() -> impl Strategy<Value = (Vec<LiveAttachment>, Vec<WantedAttachment>)> {
    let network = prop_oneof![Just("ns/a"), Just("ns/b"), Just("ns/c")];
    let name = prop_oneof![Just("net1"), Just("net2"), Just("net3"), Just("net4"), Just("data0"), Just("data1")];
    let live = proptest::collection::btree_map(name.clone(), network.clone(), 0..5).prop_map(|m| {
        let mut v: Vec<LiveAttachment> = m.into_iter().map(|(i, n)| live(n, i)).collect();
        v.push(master());
        v
    });
    let wanted = proptest::collection::vec((network, proptest::option::weighted(0.3, name)), 0..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (n, ifname))| WantedAttachment {
                network: n.into(),
                ifname_request: ifname.map(str::to_string),
                position: i + 1,
            })
            .collect()
    });
    (live, wanted)
}

fn counts<'a>(networks: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut m = BTreeMap::new();
    for n in networks {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

proptest! {
    #[test]
    fn the_plan_reaches_the_selection_without_clashes_and_is_then_done((live_set, wanted) in scenario()) {
        let Ok(plan) = plan_hotplug(&live_set, &wanted) else { return Ok(()) };
        prop_assert!(plan.remove.iter().all(|r| !r.is_master));
        let mut after: Vec<LiveAttachment> = live_set.iter().filter(|l| !plan.remove.contains(l)).cloned().collect();
        after.extend(plan.add.iter().map(|(w, i)| live(&w.network, i)));
        let names: BTreeSet<&str> = after.iter().map(|a| a.ifname.as_str()).collect();
        prop_assert_eq!(names.len(), after.len(), "two attachments on one interface: {:?}", after);
        prop_assert!(after.iter().any(|a| a.is_master));
        let have = counts(after.iter().filter(|a| !a.is_master).map(|a| a.network.as_str()));
        prop_assert_eq!(have, counts(wanted.iter().map(|w| w.network.as_str())));
        for w in &wanted {
            if let Some(name) = &w.ifname_request {
                prop_assert!(after.iter().any(|a| &a.ifname == name && a.network == w.network));
            }
        }
        let again = plan_hotplug(&after, &wanted).unwrap();
        prop_assert!(again.is_empty(), "not idempotent: {:?}", again);
    }

    /// Without named interfaces, nothing moves that could stay.
    #[test]
    fn unnamed_selections_change_only_the_difference((live_set, wanted) in scenario()) {
        let wanted: Vec<WantedAttachment> = wanted.into_iter().map(|w| WantedAttachment { ifname_request: None, ..w }).collect();
        let plan = plan_hotplug(&live_set, &wanted).unwrap();
        let live_counts = counts(live_set.iter().filter(|l| !l.is_master).map(|l| l.network.as_str()));
        let wanted_counts = counts(wanted.iter().map(|w| w.network.as_str()));
        let removed = counts(plan.remove.iter().map(|r| r.network.as_str()));
        let added_counts = counts(plan.add.iter().map(|(w, _)| w.network.as_str()));
        for n in ["ns/a", "ns/b", "ns/c"] {
            let (l, w) = (live_counts.get(n).copied().unwrap_or(0), wanted_counts.get(n).copied().unwrap_or(0));
            prop_assert_eq!(removed.get(n).copied().unwrap_or(0), l.saturating_sub(w));
            prop_assert_eq!(added_counts.get(n).copied().unwrap_or(0), w.saturating_sub(l));
        }
    }
}

fn delegate(name: &str, is_master: bool, ifname_request: &str) -> Delegate {
    let mut d = Delegate::from_bytes(
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"bridge"}}"#).into_bytes(),
        false,
    )
    .unwrap();
    d.name = name.into();
    d.is_master = is_master;
    d.ifname_request = ifname_request.into();
    d
}

#[test]
fn the_cache_after_a_change_names_every_interface_so_a_del_finds_them() {
    // eth0 cluster, net1 a, net2 b; the new selection drops a and adds c.
    let cached = vec![delegate("cluster", true, ""), delegate("ns/a", false, ""), delegate("ns/b", false, "")];
    let live = live_attachments(&cached, "eth0");
    assert_eq!(live.iter().map(|l| l.ifname.as_str()).collect::<Vec<_>>(), ["eth0", "net1", "net2"]);
    let resolved = vec![delegate("cluster", true, ""), delegate("ns/b", false, ""), delegate("ns/c", false, "")];
    let wanted = wanted_attachments(&resolved);
    assert_eq!(wanted.iter().map(|w| w.position).collect::<Vec<_>>(), [1, 2]);
    let plan = plan_hotplug(&live, &wanted).unwrap();
    let after = delegates_after(&cached, "eth0", &plan, &resolved);
    let names: Vec<(&str, &str)> = after.iter().map(|d| (d.name.as_str(), d.ifname_request.as_str())).collect();
    // b keeps net2 though it is now delegate 1; c cannot take net1 (just removed) nor net2.
    assert_eq!(names, [("cluster", ""), ("ns/b", "net2"), ("ns/c", "net3")]);
    assert_eq!(after.iter().map(|d| d.hotplugged).collect::<Vec<_>>(), [false, false, true]);
    // The mark survives the cache file (an extension key the Go reader ignores).
    let reread = crate::cache::parse_cache(&crate::cache::serialize_delegates(&after)).unwrap();
    assert_eq!(reread.iter().map(|d| d.hotplugged).collect::<Vec<_>>(), [false, false, true]);
    // Read back as a DEL would: the same interfaces, and nothing left to do.
    let live_after = live_attachments(&after, "eth0");
    assert_eq!(live_after.iter().map(|l| l.ifname.as_str()).collect::<Vec<_>>(), ["eth0", "net2", "net3"]);
    assert!(plan_hotplug(&live_after, &wanted).unwrap().is_empty());
}
