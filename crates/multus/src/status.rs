//! The `k8s.v1.cni.cncf.io/network-status` annotation (spec §5.17).
//!
//! Entries are built per delegate from its raw result with the NAD client's rules and formatted
//! exactly as the Go reference does: `[` + entries joined by `,` + `]`, each entry
//! `json.MarshalIndent(entry, "", "    ")` with Go's escaping of `<`, `>`, `&`, U+2028 and U+2029.
//!
//! Decisions (spec §13):
//!
//! * **nil gateways** — the reference writes `"gateway": ["<nil>"]` for a default route without a
//!   `gw` (Go prints a nil `net.IP` as `<nil>`). That is a bug: we omit gateways that are absent;
//!   an entry whose default routes all lack a gateway has no `gateway` key.
//! * **quirk 22** — the reference skips the entries when the pod *name* equals a system namespace
//!   (it meant the namespace). Both variants are wrong for users (pods in `kube-system` also want
//!   their status), so the daemon skips nothing: every delegate gets its entries.
//! * **quirk 23** — a result without interfaces but with IPs (e.g. a 0.2.0 result, or a plugin that
//!   reports no interface) yields one entry without `interface`/`mac` instead of being lost; a
//!   result with neither interfaces nor IPs yields no entry, as before. With several sandbox
//!   interfaces exactly one entry is marked `default` for the master (the reference could mark
//!   more than one). Entries describe the raw result (before the default-route edits of §5.15),
//!   as in the reference.
//! * `device-info` is the JSON of the delegate's `CNIDeviceInfoFile`, passed through as written
//!   by the device plugin / CNI (the reference re-encodes it through its struct, dropping unknown
//!   keys).

use cni::result::CniResult;
use cni::version::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// A delegate result that cannot be turned into a network-status entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The result could not be read or converted to CNI 1.1.0.
    #[error("error converting result: {0}")]
    Result(String),
}

/// DNS as the NAD client writes it (Go `types.DNS` field order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDns {
    /// `nameservers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `search`: search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options`: resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One entry of the annotation (field order is the wire order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `name`: the network (`<namespace>/<nad>`, or the config name for file-based networks).
    pub name: String,
    /// `interface` in the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// `ips` of the interface (addresses without prefix length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `mac` of the interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `mtu` of the interface, when the result reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `default`: the entry of the cluster (master) network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// `dns` from the result.
    #[serde(default)]
    pub dns: StatusDns,
    /// `device-info`: the contents of the device-info file, when the network has a device.
    #[serde(rename = "device-info", default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<Value>,
    /// `gateway`: the gateways of the result's default routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 addresses print as IPv4.
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Entries for one delegate's result (`CreateNetworkStatuses` of the NAD client, with the fixes
/// documented in the module).
///
/// * `name`: the delegate display name;
/// * `is_master`: whether the delegate is the master (sets `default`);
/// * `device_info`: the parsed `CNIDeviceInfoFile`, if readable.
pub fn network_statuses(
    result: &CniResult,
    name: &str,
    is_master: bool,
    device_info: Option<&Value>,
) -> Result<Vec<NetworkStatus>, StatusError> {
    let result = result.convert_to(Version::V1_1_0).map_err(|e| StatusError::Result(e.to_string()))?;
    let gateways: Vec<String> =
        result.routes.iter().filter(|r| r.is_default()).filter_map(|r| r.gw).map(go_ip_string).collect();
    let dns = StatusDns {
        nameservers: result.dns.nameservers.clone(),
        domain: result.dns.domain.clone(),
        search: result.dns.search.clone(),
        options: result.dns.options.clone(),
    };
    let base = NetworkStatus {
        name: name.to_string(),
        dns,
        device_info: device_info.cloned(),
        gateway: gateways,
        ..NetworkStatus::default()
    };
    let ip_string = |i: usize| go_ip_string(result.ips[i].address.addr());

    if result.interfaces.len() == 1 || (result.interfaces.is_empty() && !result.ips.is_empty()) {
        // One entry: the (last) sandbox interface, every IP.
        let mut entry = NetworkStatus { default: is_master, ..base };
        if let Some(iface) = result.interfaces.iter().rev().find(|i| !i.sandbox.is_empty()) {
            entry.interface = iface.name.clone();
            entry.mac = iface.mac.clone();
            entry.mtu = iface.mtu.filter(|m| *m != 0);
        }
        entry.ips = (0..result.ips.len()).map(ip_string).collect();
        return Ok(vec![entry]);
    }

    // Several interfaces: one entry per sandbox interface.
    let sandbox: Vec<usize> =
        (0..result.interfaces.len()).filter(|&i| !result.interfaces[i].sandbox.is_empty()).collect();
    if sandbox.is_empty() {
        return Ok(Vec::new());
    }
    let default_iface = sandbox
        .iter()
        .copied()
        .find(|&i| result.ips.iter().any(|ip| ip.interface == Some(i as u32) && ip.gateway.is_some()))
        .unwrap_or(sandbox[0]);
    let mut entries: Vec<NetworkStatus> = sandbox
        .iter()
        .map(|&i| {
            let iface = &result.interfaces[i];
            NetworkStatus {
                interface: iface.name.clone(),
                mac: iface.mac.clone(),
                mtu: iface.mtu.filter(|m| *m != 0),
                default: is_master && i == default_iface,
                ..base.clone()
            }
        })
        .collect();
    for (n, ip) in result.ips.iter().enumerate() {
        match ip.interface {
            Some(idx) => {
                if let Some(pos) = sandbox.iter().position(|&s| s as u32 == idx) {
                    entries[pos].ips.push(ip_string(n));
                }
            }
            None => {
                if let Some(last) = entries.last_mut() {
                    last.ips.push(ip_string(n));
                }
            }
        }
    }
    Ok(entries)
}

/// Entries from a raw result JSON (any supported version; an unknown version is an error).
pub fn network_statuses_from_json(
    raw: &Value,
    name: &str,
    is_master: bool,
    device_info: Option<&Value>,
) -> Result<Vec<NetworkStatus>, StatusError> {
    let result = CniResult::from_value(raw).map_err(|e| StatusError::Result(e.to_string()))?;
    network_statuses(&result, name, is_master, device_info)
}

/// The annotation value, byte-identical to the reference's format.
pub fn format_network_status(entries: &[NetworkStatus]) -> String {
    let parts: Vec<String> = entries.iter().map(|e| cni::json::go_escape(cni::json::to_string_pretty4(e))).collect();
    format!("[{}]", parts.join(","))
}

/// Parse an annotation value (e.g. to read back what was written).
pub fn parse_network_status(annotation: &str) -> Result<Vec<NetworkStatus>, serde_json::Error> {
    serde_json::from_str(annotation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: Value) -> CniResult {
        CniResult::from_value(&v).unwrap()
    }

    /// The annotation of the captured Go v4.2.4 ADD (apiserver-requests-ADD-pod1.jsonl), with our
    /// nil-gateway fix applied: the master's `"gateway": ["\u003cnil\u003e"]` is omitted.
    const CAPTURED_FIXED: &str = "[{\n    \"name\": \"mock-cluster-net\",\n    \"interface\": \"eth0\",\n    \"ips\": [\n        \"10.244.0.2\"\n    ],\n    \"mac\": \"d6:e8:4a:b7:85:f7\",\n    \"default\": true,\n    \"dns\": {}\n},{\n    \"name\": \"default/macvlan-net\",\n    \"interface\": \"net1\",\n    \"ips\": [\n        \"192.168.100.2\"\n    ],\n    \"mac\": \"c2:25:0d:6f:65:9f\",\n    \"dns\": {}\n},{\n    \"name\": \"default/bridge-net\",\n    \"interface\": \"net2\",\n    \"ips\": [\n        \"192.168.200.2\"\n    ],\n    \"mac\": \"aa:37:00:00:53:88\",\n    \"dns\": {}\n}]";

    fn captured_entries() -> Vec<NetworkStatus> {
        let master = res(
            json!({"cniVersion":"1.1.0","interfaces":[{"mac":"46:4a:94:d6:3e:37","name":"mcbr0"},{"mac":"aa:a4:6d:9c:a4:cf","name":"vethb03b71ca"},{"mac":"d6:e8:4a:b7:85:f7","name":"eth0","sandbox":"/var/run/netns/e2e-pod1"}],"ips":[{"address":"10.244.0.2/16","gateway":"10.244.0.1","interface":2}],"routes":[{"dst":"0.0.0.0/0"}]}),
        );
        let macvlan = res(
            json!({"cniVersion":"1.0.0","interfaces":[{"mac":"c2:25:0d:6f:65:9f","name":"net1","sandbox":"/var/run/netns/e2e-pod1"}],"ips":[{"address":"192.168.100.2/24","gateway":"192.168.100.1","interface":0}]}),
        );
        let bridge = res(
            json!({"cniVersion":"1.0.0","interfaces":[{"mac":"22:ad:7b:df:9c:33","name":"mbr1"},{"mac":"22:ad:7b:df:9c:33","name":"vethc7ab2f1c"},{"mac":"aa:37:00:00:53:88","name":"net2","sandbox":"/var/run/netns/e2e-pod1"}],"ips":[{"address":"192.168.200.2/24","gateway":"192.168.200.1","interface":2}]}),
        );
        let mut all = network_statuses(&master, "mock-cluster-net", true, None).unwrap();
        all.extend(network_statuses(&macvlan, "default/macvlan-net", false, None).unwrap());
        all.extend(network_statuses(&bridge, "default/bridge-net", false, None).unwrap());
        all
    }

    #[test]
    fn golden_captured_annotation_with_nil_gateway_fix() {
        let captured = include_str!("../tests/data/network-status-pod1.json").trim_end();
        // The capture differs from our output only by the nil gateway.
        let go_bug = ",\n    \"gateway\": [\n        \"\\u003cnil\\u003e\"\n    ]";
        assert!(captured.contains(go_bug));
        assert_eq!(captured.replacen(go_bug, "", 1), CAPTURED_FIXED);
        let entries = captured_entries();
        assert_eq!(format_network_status(&entries), CAPTURED_FIXED);
        // and it reads back
        assert_eq!(parse_network_status(CAPTURED_FIXED).unwrap(), entries);
    }

    #[test]
    fn snapshot_network_status() {
        insta::assert_snapshot!(format_network_status(&captured_entries()));
    }

    #[test]
    fn gateways_dns_mtu_device_info_and_escaping() {
        let r = res(json!({"cniVersion":"1.1.0",
            "interfaces":[{"name":"net1","mac":"02:00:00:00:00:01","mtu":9000,"sandbox":"/ns"}],
            "ips":[{"address":"10.1.1.11/24","interface":0},{"address":"fd00::b/64","interface":0}],
            "routes":[{"dst":"0.0.0.0/0","gw":"10.1.1.254"},{"dst":"::/0","gw":"fd00::1"},{"dst":"10.9.0.0/16","gw":"10.1.1.1"},{"dst":"::/0"}],
            "dns":{"nameservers":["10.96.0.10"],"domain":"a<b>&c","search":["s"],"options":["ndots:5"]}}));
        let dev = json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.0"}});
        let e = network_statuses(&r, "ns/sriov", false, Some(&dev)).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].gateway, vec!["10.1.1.254", "fd00::1"]);
        assert_eq!(e[0].ips, vec!["10.1.1.11", "fd00::b"]);
        assert_eq!(e[0].mtu, Some(9000));
        let s = format_network_status(&e);
        let expected = "[{\n    \"name\": \"ns/sriov\",\n    \"interface\": \"net1\",\n    \"ips\": [\n        \"10.1.1.11\",\n        \"fd00::b\"\n    ],\n    \"mac\": \"02:00:00:00:00:01\",\n    \"mtu\": 9000,\n    \"dns\": {\n        \"nameservers\": [\n            \"10.96.0.10\"\n        ],\n        \"domain\": \"a\\u003cb\\u003e\\u0026c\",\n        \"search\": [\n            \"s\"\n        ],\n        \"options\": [\n            \"ndots:5\"\n        ]\n    },\n    \"device-info\": {\n        \"type\": \"pci\",\n        \"version\": \"1.1.0\",\n        \"pci\": {\n            \"pci-address\": \"0000:af:06.0\"\n        }\n    },\n    \"gateway\": [\n        \"10.1.1.254\",\n        \"fd00::1\"\n    ]\n}]";
        assert_eq!(s, expected);
        assert_eq!(parse_network_status(&s).unwrap()[0].dns.domain, "a<b>&c");
    }

    #[test]
    fn several_interfaces() {
        let r = res(json!({"cniVersion":"1.0.0",
            "interfaces":[{"name":"host0"},{"name":"a","sandbox":"/ns","mac":"02:00:00:00:00:0a"},{"name":"b","sandbox":"/ns"}],
            "ips":[{"address":"10.0.0.2/24","interface":1},{"address":"10.0.1.2/24","gateway":"10.0.1.1","interface":2},{"address":"10.0.2.2/24"},{"address":"10.0.3.2/24","interface":0}],
            "routes":[{"dst":"0.0.0.0/0","gw":"10.0.1.1"}]}));
        let e = network_statuses(&r, "x", true, None).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].interface.as_str(), e[0].ips.clone(), e[0].default),
            ("a", vec!["10.0.0.2".to_string()], false)
        );
        assert_eq!(e[1].interface, "b");
        assert_eq!(e[1].ips, vec!["10.0.1.2", "10.0.2.2"]);
        assert!(e[1].default);
        assert_eq!(e[0].gateway, vec!["10.0.1.1"]);
        // non-master: nothing is default
        assert!(network_statuses(&r, "x", false, None).unwrap().iter().all(|s| !s.default));
        // no IP with a gateway: the first sandbox interface is default
        let r =
            res(json!({"cniVersion":"1.0.0","interfaces":[{"name":"a","sandbox":"/ns"},{"name":"b","sandbox":"/ns"}]}));
        let e = network_statuses(&r, "x", true, None).unwrap();
        assert!(e[0].default && !e[1].default);
        // no sandbox interface at all
        let r = res(
            json!({"cniVersion":"1.0.0","interfaces":[{"name":"a"},{"name":"b"}],"ips":[{"address":"10.0.0.2/24"}]}),
        );
        assert!(network_statuses(&r, "x", true, None).unwrap().is_empty());
    }

    #[test]
    fn legacy_results_and_unknown_versions() {
        // §12.5 item 69
        let e = network_statuses_from_json(
            &json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]},"dns":{"nameservers":["1.1.1.1"]}}),
            "legacy",
            true,
            None,
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].ips, vec!["10.1.0.5"]);
        assert_eq!(e[0].gateway, vec!["10.1.0.1"]);
        assert!(e[0].default);
        assert_eq!(e[0].dns.nameservers, vec!["1.1.1.1"]);
        assert!(network_statuses_from_json(&json!({"cniVersion":"1.2.3"}), "x", false, None).is_err());
        // nothing at all → no entry
        assert!(network_statuses_from_json(&json!({"cniVersion":"1.0.0"}), "x", true, None).unwrap().is_empty());
    }

    #[test]
    fn empty_list_format() {
        assert_eq!(format_network_status(&[]), "[]");
    }
}
