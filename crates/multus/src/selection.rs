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
mod tests;
