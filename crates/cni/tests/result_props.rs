//! Properties of result version conversion and encoding (cni.md §3.5, §3.6).
//!
//! Results are generated inside the subset a given version can express:
//! - 0.1.0/0.2.0: at most one IPv4 and one IPv6 address (IPv4 first), no interfaces, no
//!   interface indexes, routes only for a family that has an address (IPv4 routes first), no
//!   route extras;
//! - 0.3.x/0.4.0: interfaces without `mtu`/`socketPath`/`pciID`, everything else;
//! - 1.x: everything.

use cni::result::{CniResult, Dns, Interface, IpConfig, Route};
use cni::version::{ALL, Version};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Legacy,
    V04,
    V1,
}

fn family(v: Version) -> Family {
    if v < Version::V0_3_0 {
        Family::Legacy
    } else if v < Version::V1_0_0 {
        Family::V04
    } else {
        Family::V1
    }
}

fn versions() -> Vec<Version> {
    ALL.iter().map(|v| Version::parse(v).unwrap()).collect()
}

fn v4net() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap()))
}

fn v6net() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, p)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), p).unwrap()))
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9:/._<&> -]{0,12}"
}

fn nonzero() -> impl Strategy<Value = Option<u32>> {
    proptest::option::of(1u32..100_000)
}

fn dns() -> impl Strategy<Value = Dns> {
    (
        text(),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(domain, nameservers, options, search)| Dns { domain, nameservers, options, search })
}

fn route(dst: impl Strategy<Value = IpNet>, extras: bool) -> impl Strategy<Value = Route> {
    (
        dst,
        proptest::option::of(ip()),
        nonzero(),
        nonzero(),
        nonzero(),
        proptest::option::of(0u32..300),
        proptest::option::of(0u32..300),
    )
        .prop_map(move |(dst, gw, mtu, advmss, priority, table, scope)| {
            let mut r = Route::new(dst, gw);
            if extras {
                r.mtu = mtu;
                r.advmss = advmss;
                r.priority = priority;
                r.table = table;
                r.scope = scope;
            }
            r
        })
}

fn interface(v1: bool) -> impl Strategy<Value = Interface> {
    (text(), text(), nonzero(), text(), text(), text()).prop_map(
        move |(name, mac, mtu, sandbox, socket_path, pci_id)| {
            let mut i = Interface { name, mac, sandbox, ..Interface::default() };
            if v1 {
                i.mtu = mtu;
                i.socket_path = socket_path;
                i.pci_id = pci_id;
            }
            i
        },
    )
}

/// A result `version` can express exactly.
fn result_in(version: Version) -> BoxedStrategy<CniResult> {
    match family(version) {
        Family::Legacy => (
            proptest::option::of((v4net(), proptest::option::of(ip()))),
            proptest::option::of((v6net(), proptest::option::of(ip()))),
            proptest::collection::vec(route(v4net(), false), 0..3),
            proptest::collection::vec(route(v6net(), false), 0..3),
            dns(),
        )
            .prop_filter("legacy results need an address", |(a, b, ..)| a.is_some() || b.is_some())
            .prop_map(move |(v4, v6, r4, r6, dns)| {
                let mut r = CniResult::empty(version);
                r.dns = dns;
                if let Some((address, gateway)) = v4 {
                    r.ips.push(IpConfig { interface: None, address, gateway });
                    r.routes.extend(r4);
                }
                if let Some((address, gateway)) = v6 {
                    r.ips.push(IpConfig { interface: None, address, gateway });
                    r.routes.extend(r6);
                }
                r
            })
            .boxed(),
        fam => {
            let v1 = fam == Family::V1;
            (
                proptest::collection::vec(interface(v1), 0..4),
                proptest::collection::vec(
                    (prop_oneof![v4net(), v6net()], proptest::option::of(ip()), proptest::option::of(0u32..4)),
                    0..4,
                ),
                proptest::collection::vec(route(prop_oneof![v4net(), v6net()], true), 0..4),
                dns(),
            )
                .prop_map(move |(interfaces, ips, routes, dns)| CniResult {
                    cni_version: version,
                    interfaces,
                    ips: ips
                        .into_iter()
                        .map(|(address, gateway, interface)| IpConfig { interface, address, gateway })
                        .collect(),
                    routes,
                    dns,
                })
                .boxed()
        }
    }
}

/// (lower, higher) version pairs, lower ≤ higher.
fn version_pair() -> impl Strategy<Value = (Version, Version)> {
    (0..ALL.len(), 0..ALL.len()).prop_map(|(a, b)| {
        let vs = versions();
        (vs[a.min(b)], vs[a.max(b)])
    })
}

fn check_shape(r: &CniResult, json: &Value) -> Result<(), TestCaseError> {
    let obj = json.as_object().unwrap();
    prop_assert_eq!(obj["cniVersion"].as_str().unwrap(), r.cni_version.to_string());
    match family(r.cni_version) {
        Family::Legacy => {
            for key in ["ips", "interfaces", "routes"] {
                prop_assert!(!obj.contains_key(key), "{} in a legacy result", key);
            }
            prop_assert_eq!(obj.contains_key("ip4"), r.ips.iter().any(|i| i.is_v4()));
            prop_assert_eq!(obj.contains_key("ip6"), r.ips.iter().any(|i| !i.is_v4()));
        }
        fam => {
            prop_assert!(!obj.contains_key("ip4") && !obj.contains_key("ip6"));
            for (ip, j) in r.ips.iter().zip(obj.get("ips").and_then(Value::as_array).into_iter().flatten()) {
                match fam {
                    Family::V04 => prop_assert_eq!(j["version"].as_str(), Some(if ip.is_v4() { "4" } else { "6" })),
                    _ => prop_assert!(j.get("version").is_none()),
                }
            }
            if fam == Family::V04 {
                for i in obj.get("interfaces").and_then(Value::as_array).into_iter().flatten() {
                    for key in ["mtu", "socketPath", "pciID"] {
                        prop_assert!(i.get(key).is_none(), "1.1-only {} in a {} result", key, r.cni_version);
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Converting up and back down keeps exactly what the lower version can express.
    #[test]
    fn up_then_down_is_identity_on_the_lower_subset(
        (lo, hi, r) in version_pair().prop_flat_map(|(lo, hi)| (Just(lo), Just(hi), result_in(lo)))
    ) {
        let up = r.convert_to(hi).unwrap();
        prop_assert_eq!(up.cni_version, hi);
        let down = up.convert_to(lo).unwrap();
        prop_assert_eq!(down, r);
    }

    /// Down-conversion is a projection: doing it again after a round trip changes nothing.
    #[test]
    fn down_conversion_is_a_projection(
        (lo, hi, r) in version_pair().prop_flat_map(|(lo, hi)| (Just(lo), Just(hi), result_in(hi)))
    ) {
        if let Ok(down) = r.convert_to(lo) {
            let again = down.convert_to(hi).unwrap().convert_to(lo).unwrap();
            prop_assert_eq!(again, down);
        } else {
            // Only a legacy target can refuse, and only for lack of an address.
            prop_assert!(family(lo) == Family::Legacy && r.ips.is_empty());
        }
    }

    /// Every expressible result serialises in the version it claims and parses back unchanged.
    #[test]
    fn encodes_in_its_own_version_and_round_trips(
        r in (0..ALL.len()).prop_flat_map(|i| result_in(versions()[i]))
    ) {
        let json = r.to_json();
        let value: Value = serde_json::from_str(&json).unwrap();
        check_shape(&r, &value)?;
        prop_assert_eq!(CniResult::from_json(json.as_bytes()).unwrap(), r.clone());
        prop_assert_eq!(CniResult::from_json(r.to_json_pretty().as_bytes()).unwrap(), r);
    }
}
