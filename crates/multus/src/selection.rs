//! Network selection annotations (spec §5.7–§5.9).
//!
//! - [`parse_network_selection`]: `k8s.v1.cni.cncf.io/networks`, JSON or comma form (§5.8).
//! - [`parse_default_network`]: `v1.multus-cni.io/default-network` (§5.7).
//! - [`check_namespace_isolation`]: `namespaceIsolation` / `globalNamespaces` (§5.9).
//!
//! Error texts follow the Go reference. Deliberate differences:
//!
//! - Field names of the JSON form match case-insensitively and `null` means "absent", as with
//!   Go's `encoding/json`; a `null` *element* is an error (Go dereferences a nil pointer).
//! - `default-route` entries must be IP addresses (Go turns `""` into a nil IP silently).
//! - A default-network annotation that parses to zero elements (`[]`, `null`) is an error
//!   (Go indexes element 0 and panics).

use crate::model::NetworkSelectionElement;
use regex::Regex;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::LazyLock;

/// A network-selection or default-network annotation that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The annotation is malformed; the text is the reference's.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> SelectionError {
    SelectionError::Invalid(msg.into())
}

/// DNS-1123 label: what the comma form accepts as namespace and name.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest interface name (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

static NAME_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(NAME_PATTERN).expect("valid regex"));

/// Parse `k8s.v1.cni.cncf.io/networks`. An empty annotation selects nothing. Elements without a
/// namespace get `default_namespace`; the deprecated `interfaceRequest` fills an empty
/// `interface`.
pub fn parse_network_selection(
    annotation: &str,
    default_namespace: &str,
) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
    if annotation.is_empty() {
        return Ok(Vec::new());
    }
    let elements = parse_annotation(annotation, default_namespace)?;
    if elements.len() > MAX_NETWORKS_PER_POD {
        return Err(invalid(format!(
            "the pod requests {} networks; at most {MAX_NETWORKS_PER_POD} are allowed",
            elements.len()
        )));
    }
    Ok(elements)
}

/// The most networks one pod may request. The Go daemon has no limit (an annotation fits tens
/// of thousands, each a delegate run and an interface); real pods use a handful, large SR-IOV
/// pods a few dozen.
pub const MAX_NETWORKS_PER_POD: usize = 128;

/// Parse `v1.multus-cni.io/default-network` with the same parser, defaulting the namespace to
/// `multus_namespace`. Exactly one element is required.
pub fn parse_default_network(
    annotation: &str,
    multus_namespace: &str,
) -> Result<NetworkSelectionElement, SelectionError> {
    const PREFIX: &str = "tryLoadK8sPodDefaultNetwork:";
    if annotation.is_empty() {
        return Err(invalid(format!(
            "{PREFIX} failed to parse CRD object: parsePodNetworkAnnotation: pod annotation does \
             not have \"network\" as key"
        )));
    }
    let mut elements = parse_annotation(annotation, multus_namespace)
        .map_err(|e| invalid(format!("{PREFIX} failed to parse CRD object: {e}")))?;
    match elements.len() {
        1 => Ok(elements.remove(0)),
        0 => Err(invalid(format!("{PREFIX} no default network is specified: {annotation}"))),
        _ => Err(invalid(format!("{PREFIX} more than one default network is specified: {annotation}"))),
    }
}

/// Namespace isolation (call only when `namespaceIsolation` is enabled): every element in a
/// namespace other than the pod's must be in `global_namespaces` (the split `globalNamespaces`,
/// see [`crate::config::NetConf::non_isolated_namespaces`]).
pub fn check_namespace_isolation(
    pod_namespace: &str,
    elements: &[NetworkSelectionElement],
    global_namespaces: &[String],
) -> Result<(), SelectionError> {
    for element in elements {
        let ns = element.namespace.as_str();
        if ns != pod_namespace && !global_namespaces.iter().any(|g| g == ns) {
            return Err(invalid(format!(
                "GetNetworkDelegates: namespace isolation enabled, annotation violates \
                 permission, pod is in namespace {pod_namespace} but refers to target namespace \
                 {ns}"
            )));
        }
    }
    Ok(())
}

fn parse_annotation(annotation: &str, default_namespace: &str) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
    let mut elements = if annotation.contains(['[', '{', '"']) {
        parse_json_form(annotation)?
    } else {
        annotation
            .split(',')
            .map(|item| {
                let (namespace, name, interface) = parse_network_object_name(item.trim())
                    .map_err(|e| invalid(format!("parsePodNetworkAnnotation: {e}")))?;
                Ok(NetworkSelectionElement { name, namespace, interface, ..Default::default() })
            })
            .collect::<Result<Vec<_>, SelectionError>>()?
    };
    for element in &mut elements {
        validate_element(element, default_namespace)?;
    }
    Ok(elements)
}

/// One comma-form item `[<namespace>/]<name>[@<ifname>]` → (namespace, name, ifname), each
/// possibly empty.
pub fn parse_network_object_name(item: &str) -> Result<(String, String, String), SelectionError> {
    const PREFIX: &str = "parsePodNetworkObjectName:";
    let slash: Vec<&str> = item.split('/').collect();
    let (namespace, rest) = match slash.as_slice() {
        [name] => (String::new(), *name),
        [ns, name] => (ns.trim().to_string(), *name),
        _ => {
            return Err(invalid(format!("{PREFIX} Invalid network object (failed at '/')")));
        }
    };
    let at: Vec<&str> = rest.split('@').collect();
    let (name, interface) = match at.as_slice() {
        [name] => (name.trim().to_string(), String::new()),
        [name, ifname] => (name.trim().to_string(), ifname.trim().to_string()),
        _ => {
            return Err(invalid(format!("{PREFIX} Invalid network object (failed at '@')")));
        }
    };
    for part in [&namespace, &name] {
        if !part.is_empty() && !NAME_RE.is_match(part) {
            return Err(invalid(format!("{PREFIX} Failed to match {part} with regex '{NAME_PATTERN}'")));
        }
    }
    if !interface.is_empty()
        && (interface.len() > MAX_IFNAME_LEN || interface.contains([' ', '\t', '\n', '\u{0b}', '\u{0c}', '\r', '/']))
    {
        return Err(invalid(format!("{PREFIX} Failed to match interface name {interface}")));
    }
    Ok((namespace, name, interface))
}

const ELEMENT_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "interface",
    "interfaceRequest",
    "ips",
    "mac",
    "infiniband-guid",
    "portMappings",
    "bandwidth",
    "deviceID",
    "cni-args",
    "default-route",
];
const PORT_MAPPING_FIELDS: &[&str] = &["hostPort", "containerPort", "protocol", "hostIP"];
const BANDWIDTH_FIELDS: &[&str] = &["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

/// Go's `encoding/json` object decoding: exact field name first, else a case-insensitive match;
/// `null` leaves the field unset; the last occurrence wins.
fn normalize_object(obj: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let target = fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(&key)))
            .map_or(key, |f| (*f).to_string());
        out.insert(target, value);
    }
    out
}

fn parse_json_form(annotation: &str) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
    let fail = |msg: String| {
        invalid(format!(
            "parsePodNetworkAnnotation: failed to parse pod Network Attachment Selection \
             Annotation JSON format: {msg}"
        ))
    };
    let items = match serde_json::from_str::<Value>(annotation) {
        Err(e) => return Err(fail(e.to_string())),
        Ok(Value::Null) => return Ok(Vec::new()),
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(fail("expected a JSON array of network selection elements".into()));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(obj) = item else {
                return Err(fail(format!("element {i}: expected a JSON object")));
            };
            let mut obj = normalize_object(obj, ELEMENT_FIELDS);
            if let Some(Value::Array(mappings)) = obj.get_mut("portMappings") {
                for m in mappings.iter_mut() {
                    if let Value::Object(o) = m {
                        *o = normalize_object(std::mem::take(o), PORT_MAPPING_FIELDS);
                    }
                }
            }
            if let Some(Value::Object(b)) = obj.get_mut("bandwidth") {
                *b = normalize_object(std::mem::take(b), BANDWIDTH_FIELDS);
            }
            // `cni-args` moves into the element as it is: deserialising it again would hold a
            // second copy of what may be most of a 256 KiB annotation.
            let cni_args = match obj.shift_remove("cni-args") {
                None => None,
                Some(Value::Object(args)) => Some(args),
                Some(other) => {
                    let e = serde_json::from_value::<Map<String, Value>>(other)
                        .err()
                        .map_or_else(String::new, |e| e.to_string());
                    return Err(fail(format!("element {i}: {e}")));
                }
            };
            let mut element = serde_json::from_value::<NetworkSelectionElement>(Value::Object(obj))
                .map_err(|e| fail(format!("element {i}: {e}")))?;
            element.cni_args = cni_args;
            Ok(element)
        })
        .collect()
}

fn validate_element(element: &mut NetworkSelectionElement, default_namespace: &str) -> Result<(), SelectionError> {
    if element.namespace.is_empty() {
        element.namespace = default_namespace.to_string();
    }
    if !element.mac.is_empty() {
        parse_hardware_addr(&element.mac)
            .map_err(|e| invalid(format!("parsePodNetworkAnnotation: failed to mac: {e}")))?;
    }
    if !element.infiniband_guid.is_empty() {
        parse_hardware_addr(&element.infiniband_guid)
            .map_err(|e| invalid(format!("parsePodNetworkAnnotation: failed to validate infiniband GUID: {e}")))?;
    }
    for ip in &element.ips {
        validate_ip_request(ip)?;
    }
    if element.interface.is_empty() && !element.interface_request.is_empty() {
        element.interface = element.interface_request.clone();
    }
    Ok(())
}

/// A requested IP: an address, or an address with a prefix length when it contains `/`.
pub fn validate_ip_request(ip: &str) -> Result<(), SelectionError> {
    if ip.contains('/') {
        ip.parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| invalid(format!("failed to parse CIDR {ip:?}: invalid CIDR address: {ip}")))
    } else {
        ip.parse::<IpAddr>().map(|_| ()).map_err(|_| invalid(format!("failed to parse IP address {ip:?}")))
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 bytes as `xx:xx:…`, `xx-xx-…` or `xxxx.xxxx.…`.
/// The error text is Go's (`address <s>: invalid MAC address`).
pub fn parse_hardware_addr(s: &str) -> Result<Vec<u8>, SelectionError> {
    parse_mac_bytes(s.as_bytes()).ok_or_else(|| invalid(format!("address {s}: invalid MAC address")))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Two hex digits at the start of `s`; if `s` is longer, its third byte must be `sep`.
fn xtoi2(s: &[u8], sep: Option<u8>) -> Option<u8> {
    if s.len() > 2 && Some(s[2]) != sep {
        return None;
    }
    Some((hex(*s.first()?)? << 4) | hex(*s.get(1)?)?)
}

fn parse_mac_bytes(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() < 14 {
        return None;
    }
    let valid_len = |n: usize| matches!(n, 6 | 8 | 20);
    if s[2] == b':' || s[2] == b'-' {
        if !(s.len() + 1).is_multiple_of(3) {
            return None;
        }
        let n = (s.len() + 1) / 3;
        if !valid_len(n) {
            return None;
        }
        (0..n).map(|i| xtoi2(&s[i * 3..], Some(s[2]))).collect()
    } else if s[4] == b'.' {
        if !(s.len() + 1).is_multiple_of(5) {
            return None;
        }
        let n = 2 * (s.len() + 1) / 5;
        if !valid_len(n) {
            return None;
        }
        let mut hw = Vec::with_capacity(n);
        for x in (0..s.len()).step_by(5) {
            hw.push(xtoi2(&s[x..x + 2], None)?);
            hw.push(xtoi2(&s[x + 2..], Some(s[4]))?);
        }
        Some(hw)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bandwidth, PortMapping};
    use serde_json::json;

    fn sel(s: &str) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
        parse_network_selection(s, "podns")
    }

    fn err(s: &str) -> String {
        sel(s).unwrap_err().to_string()
    }

    fn el(ns: &str, name: &str, ifname: &str) -> NetworkSelectionElement {
        NetworkSelectionElement {
            namespace: ns.into(),
            name: name.into(),
            interface: ifname.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_may_request_at_most_max_networks() {
        let list = |n: usize| (0..n).map(|i| format!("net{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(
            parse_network_selection(&list(MAX_NETWORKS_PER_POD), "default").unwrap().len(),
            MAX_NETWORKS_PER_POD
        );
        let e = parse_network_selection(&list(MAX_NETWORKS_PER_POD + 1), "default").unwrap_err();
        assert!(e.to_string().contains("at most 128"), "{e}");
    }

    #[test]
    fn empty_annotation_selects_nothing() {
        assert_eq!(sel("").unwrap(), vec![]);
        // No `[`, `{` or `"`: the comma form, so this names a network "null".
        assert_eq!(sel("null").unwrap(), vec![el("podns", "null", "")]);
        assert!(sel("[null][").unwrap_err().to_string().contains("JSON"));
        assert_eq!(sel("[]").unwrap(), vec![]);
    }

    // §12.4 item 57 (accepted forms) and §5.8 examples
    #[test]
    fn comma_form_accepts() {
        assert_eq!(sel("net1").unwrap(), vec![el("podns", "net1", "")]);
        assert_eq!(sel("default/net1").unwrap(), vec![el("default", "net1", "")]);
        assert_eq!(sel("net1@my_interface").unwrap(), vec![el("podns", "net1", "my_interface")]);
        assert_eq!(sel("default/net1@my_interface").unwrap(), vec![el("default", "net1", "my_interface")]);
        assert_eq!(
            sel(" macvlan-conf , kube-system/sriov@net5,a-b-1 @ x ").unwrap(),
            vec![el("podns", "macvlan-conf", ""), el("kube-system", "sriov", "net5"), el("podns", "a-b-1", "x")]
        );
        // Exactly 15 bytes is fine.
        assert_eq!(sel("n@abcdefghijklmno").unwrap()[0].interface, "abcdefghijklmno");
    }

    // §5.8: an empty item is kept (the NAD lookup fails later)
    #[test]
    fn comma_form_empty_items() {
        assert_eq!(sel("net1,").unwrap(), vec![el("podns", "net1", ""), el("podns", "", "")]);
        assert_eq!(sel(" ").unwrap(), vec![el("podns", "", "")]);
        assert_eq!(sel("/net1").unwrap(), vec![el("podns", "net1", "")]);
        assert_eq!(sel("net1@").unwrap(), vec![el("podns", "net1", "")]);
    }

    // §12.4 item 57 (rejected forms)
    #[test]
    fn comma_form_rejects() {
        assert_eq!(
            err("ns/net1/foo"),
            "parsePodNetworkAnnotation: parsePodNetworkObjectName: Invalid network object \
             (failed at '/')"
        );
        assert_eq!(
            err("net1@eth0@eth1"),
            "parsePodNetworkAnnotation: parsePodNetworkObjectName: Invalid network object \
             (failed at '@')"
        );
        assert_eq!(
            err("ns@x/net1"),
            "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match ns@x with \
             regex '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
        );
        assert_eq!(
            err("net1@my interface"),
            "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match interface \
             name my interface"
        );
        assert_eq!(
            err("net1@abcdefghijklmnop"),
            "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match interface \
             name abcdefghijklmnop"
        );
        for bad in ["Net1", "-net", "net-", "net_1", "ns./net", "net1@a\tb", "ok,BAD"] {
            assert!(sel(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    // §12.4 items 45, 46
    #[test]
    fn json_form() {
        let got = sel(r#"[{"name":"macvlan-conf","ips":["10.1.1.11/24"],
            "default-route":["10.1.1.254"]},
            {"name":"sriov","namespace":"other","interface":"net5","mac":"c2:b0:57:49:47:f1",
             "infiniband-guid":"c2:b0:57:49:47:f1:00:01","deviceID":"0000:03:00.1",
             "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
             "bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":2000,"egressBurst":20},
             "cni-args":{"foo":"bar"}}]"#)
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].namespace, "podns");
        assert_eq!(got[0].ips, vec!["10.1.1.11/24"]);
        assert_eq!(got[0].default_route, Some(vec!["10.1.1.254".parse::<IpAddr>().unwrap()]));
        let e = &got[1];
        assert_eq!((e.namespace.as_str(), e.interface.as_str()), ("other", "net5"));
        assert_eq!(e.mac, "c2:b0:57:49:47:f1");
        assert_eq!(e.device_id, "0000:03:00.1");
        assert_eq!(
            e.port_mappings,
            vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() }]
        );
        assert_eq!(
            e.bandwidth,
            Some(Bandwidth { ingress_rate: 1000, ingress_burst: 10, egress_rate: 2000, egress_burst: 20 })
        );
        assert_eq!(e.cni_args.as_ref().unwrap()["foo"], json!("bar"));
        assert_eq!(e.default_route, None);
        // An empty default-route list is kept as present.
        assert_eq!(sel(r#"[{"name":"a","default-route":[]}]"#).unwrap()[0].default_route, Some(vec![]));
    }

    #[test]
    fn json_form_go_decoding_rules() {
        // interfaceRequest alias, case-insensitive keys, null = absent, unknown keys ignored,
        // last duplicate wins.
        let got = sel(r#"[{"Name":"a","NAMESPACE":"ns","interfaceRequest":"eth9","ips":null,
                 "ipam-claim-reference":"x","name":"b",
                 "PortMappings":[{"HostPort":1,"containerport":2}]}]"#)
        .unwrap();
        assert_eq!(got[0].name, "b");
        assert_eq!(got[0].namespace, "ns");
        assert_eq!(got[0].interface, "eth9");
        assert_eq!(got[0].requested_interface(), "eth9");
        assert_eq!(got[0].port_mappings[0].host_port, 1);
        assert_eq!(got[0].port_mappings[0].container_port, 2);
        let got = sel(r#"[{"name":"a","interface":"e1","interfaceRequest":"e2"}]"#).unwrap();
        assert_eq!(got[0].interface, "e1");
        // Names are not validated in the JSON form.
        assert_eq!(sel(r#"[{"name":"Not_Valid"}]"#).unwrap()[0].name, "Not_Valid");
    }

    #[test]
    fn json_form_errors() {
        const JSON_PREFIX: &str = "parsePodNetworkAnnotation: failed to parse pod Network \
                                   Attachment Selection Annotation JSON format: ";
        for bad in [
            "[{\"name\":",
            "{\"name\":\"a\"}",
            "\"a\"",
            "[1]",
            "[null]",
            r#"[{"name":1}]"#,
            r#"[{"name":"a","ips":"10.0.0.1"}]"#,
            r#"[{"name":"a","default-route":["nope"]}]"#,
            r#"[{"name":"a","bandwidth":{"ingressRate":1.5}}]"#,
            "[{\"name\":\"a\"}] trailing",
        ] {
            let e = err(bad);
            assert!(e.starts_with(JSON_PREFIX), "{bad}: {e}");
        }
        assert_eq!(
            err(r#"[{"name":"a","ips":["10.0.0.1/33"]}]"#),
            "failed to parse CIDR \"10.0.0.1/33\": invalid CIDR address: 10.0.0.1/33"
        );
        assert_eq!(err(r#"[{"name":"a","ips":["10.0.0.300"]}]"#), "failed to parse IP address \"10.0.0.300\"");
        assert_eq!(
            err(r#"[{"name":"a","mac":"c2:b0:57:49:47"}]"#),
            "parsePodNetworkAnnotation: failed to mac: address c2:b0:57:49:47: invalid MAC address"
        );
        assert_eq!(
            err(r#"[{"name":"a","infiniband-guid":"zz"}]"#),
            "parsePodNetworkAnnotation: failed to validate infiniband GUID: address zz: invalid \
             MAC address"
        );
    }

    #[test]
    fn hardware_addresses_like_go() {
        for ok in [
            "00:00:5e:00:53:01",
            "02:00:5e:10:00:00:00:01",
            "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
            "00-00-5e-00-53-01",
            "0000.5e00.5301",
            "0200.5e10.0000.0001",
            "0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001",
            "AB:cd:EF:01:02:03",
        ] {
            assert!(parse_hardware_addr(ok).is_ok(), "{ok}");
        }
        assert_eq!(parse_hardware_addr("0000.5e00.5301").unwrap(), vec![0, 0, 0x5e, 0, 0x53, 1]);
        for bad in [
            "",
            "00:00:5e:00:53",
            "00:00:5e:00:53:01:02",
            "00-00:5e:00:53:01",
            "00:00:5e:00:53:0g",
            "0000.5e00.53011",
            "0000:5e00:5301",
            "00:00:5e:00:53:1",
            "é0:00:5e:00:53:01",
        ] {
            assert!(parse_hardware_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_requests() {
        for ok in ["10.1.1.1", "10.1.1.1/24", "2001:db8::1", "2001:db8::1/64", "::ffff:1.2.3.4"] {
            assert!(validate_ip_request(ok).is_ok(), "{ok}");
        }
        for bad in ["", "10.1.1", "10.1.1.1/", "10.1.1.1/40", "fe80::1%eth0", "01.1.1.1", "x/8"] {
            assert!(validate_ip_request(bad).is_err(), "{bad}");
        }
    }

    // §5.7, §13 item 25
    #[test]
    fn default_network() {
        let d = parse_default_network("openshift-sdn", "kube-system").unwrap();
        assert_eq!(d, el("kube-system", "openshift-sdn", ""));
        let d = parse_default_network("ns/net@eth1", "kube-system").unwrap();
        assert_eq!(d, el("ns", "net", "eth1"));
        let d = parse_default_network(r#"[{"name":"x","mac":"02:00:00:00:00:01"}]"#, "m").unwrap();
        assert_eq!((d.namespace.as_str(), d.mac.as_str()), ("m", "02:00:00:00:00:01"));
        assert_eq!(
            parse_default_network("a,b", "m").unwrap_err().to_string(),
            "tryLoadK8sPodDefaultNetwork: more than one default network is specified: a,b"
        );
        let e = parse_default_network("", "m").unwrap_err().to_string();
        assert!(e.contains("pod annotation does not have \"network\" as key"), "{e}");
        let e = parse_default_network("[]", "m").unwrap_err().to_string();
        assert!(e.contains("no default network is specified"), "{e}");
        let e = parse_default_network("A/b", "m").unwrap_err().to_string();
        assert!(e.starts_with("tryLoadK8sPodDefaultNetwork: failed to parse CRD object: "), "{e}");
    }

    // §12.4 item 54
    #[test]
    fn namespace_isolation() {
        let elements = sel("kube-system/net1").unwrap();
        let default_only = vec!["default".to_string()];
        assert_eq!(
            check_namespace_isolation("test", &elements, &default_only).unwrap_err().to_string(),
            "GetNetworkDelegates: namespace isolation enabled, annotation violates permission, \
             pod is in namespace test but refers to target namespace kube-system"
        );
        let global: Vec<String> = "kube-system,donkey-kong".split(',').map(String::from).collect();
        assert!(check_namespace_isolation("test", &elements, &global).is_ok());
        // Same namespace is always allowed; "default" is allowed by the default list.
        let elements = parse_network_selection("net1,default/net2", "test").unwrap();
        assert!(check_namespace_isolation("test", &elements, &default_only).is_ok());
        assert!(check_namespace_isolation("test", &elements, &global).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const LABEL: &str = "[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?";

        proptest! {
            #[test]
            fn never_panics(s in any::<String>()) {
                let _ = parse_network_selection(&s, "ns");
                let _ = parse_default_network(&s, "ns");
            }

            #[test]
            fn never_panics_on_annotation_like_input(s in "[\\[\\]{}\",:a-z0-9/@. -]{0,40}") {
                let _ = parse_network_selection(&s, "ns");
            }

            #[test]
            fn json_elements_never_panic(v in prop::collection::vec(
                prop::collection::btree_map(
                    prop::sample::select(ELEMENT_FIELDS.to_vec()),
                    prop_oneof![
                        Just(Value::Null),
                        any::<i64>().prop_map(|n| json!(n)),
                        ".{0,20}".prop_map(Value::String),
                        prop::collection::vec(".{0,20}".prop_map(Value::String), 0..3)
                            .prop_map(Value::Array),
                        Just(json!({"ingressRate": 1, "hostPort": "x"})),
                    ],
                    0..5,
                ),
                0..3,
            )) {
                let s = serde_json::to_string(&v).unwrap();
                let _ = parse_network_selection(&s, "ns");
            }

            #[test]
            fn mac_parser_never_panics(s in any::<String>()) {
                let _ = parse_hardware_addr(&s);
            }

            #[test]
            fn comma_form_round_trips(
                items in prop::collection::vec(
                    (prop::option::of(LABEL), LABEL, prop::option::of("[a-zA-Z0-9_.-]{1,15}")),
                    1..4,
                ),
            ) {
                let annotation = items
                    .iter()
                    .map(|(ns, name, ifname)| {
                        let mut s = String::new();
                        if let Some(ns) = ns {
                            s.push_str(ns);
                            s.push('/');
                        }
                        s.push_str(name);
                        if let Some(ifname) = ifname {
                            s.push('@');
                            s.push_str(ifname);
                        }
                        s
                    })
                    .collect::<Vec<_>>()
                    .join(" , ");
                let got = parse_network_selection(&annotation, "dflt").unwrap();
                prop_assert_eq!(got.len(), items.len());
                for (e, (ns, name, ifname)) in got.iter().zip(&items) {
                    prop_assert_eq!(&e.namespace, ns.as_deref().unwrap_or("dflt"));
                    prop_assert_eq!(&e.name, name);
                    prop_assert_eq!(&e.interface, ifname.as_deref().unwrap_or(""));
                }
            }
        }
    }
}
