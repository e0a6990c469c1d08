//! ADD results of every spec version and libcni's conversion rules between them (cni.md §3).
//!
//! One version-independent model ([`CniResult`]) holds the union of what every version can say.
//! Parsing reads the shape of the version the result claims; encoding writes the shape of the
//! version the result is labelled with; [`CniResult::convert_to`] relabels and drops exactly what
//! the target version cannot express, as libcni's converters do. Keys are written in
//! alphabetical order, which is what the Go reference's results look like on the wire.

use crate::version::Version;
use ipnet::IpNet;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// An interface entry (0.3.0+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// The interface's name (in the container's namespace when `sandbox` is set).
    pub name: String,
    /// Hardware address, as the plugin printed it.
    pub mac: String,
    /// 1.1.0
    pub mtu: Option<u32>,
    /// Netns path for container-side interfaces; empty for host-side ones.
    pub sandbox: String,
    /// 1.1.0
    pub socket_path: String,
    /// 1.1.0
    pub pci_id: String,
}

/// An address entry. `interface` is an index into the result's interfaces (absent in IPAM results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Index into the result's `interfaces` of the interface the address is on.
    pub interface: Option<u32>,
    /// Address and prefix length.
    pub address: IpNet,
    /// The gateway of this subnet, if any.
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    /// An IPv4 address (decides `ip4` vs `ip6` in 0.1.0/0.2.0 results).
    pub fn is_v4(&self) -> bool {
        self.address.addr().is_ipv4()
    }
}

/// A route. The extras (`mtu` … `scope`) are 1.1.0 fields that libcni carries in every version ≥ 0.3.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network; prefix length 0 for a default route.
    pub dst: IpNet,
    /// Next hop; `None`: the interface's gateway or a direct route.
    pub gw: Option<IpAddr>,
    /// Path MTU.
    pub mtu: Option<u32>,
    /// Advertised MSS.
    pub advmss: Option<u32>,
    /// Route metric.
    pub priority: Option<u32>,
    /// Routing table ID.
    pub table: Option<u32>,
    /// Route scope (as `rtnetlink` numbers it).
    pub scope: Option<u32>,
}

impl Route {
    /// A route without the 1.1.0 extras.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }

    /// A default route is one whose destination has prefix length 0.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    fn strip_extras(&mut self) {
        self.mtu = None;
        self.advmss = None;
        self.priority = None;
        self.table = None;
        self.scope = None;
    }
}

/// DNS settings; empty fields are omitted on the wire, and an all-empty object is omitted entirely.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Dns {
    /// `domain`: the local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `nameservers`: resolver addresses, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `options`: resolver options (`ndots:2`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// `search`: the search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

impl Dns {
    /// Nothing set: the object is left out of the result.
    pub fn is_empty(&self) -> bool {
        self.domain.is_empty() && self.nameservers.is_empty() && self.options.is_empty() && self.search.is_empty()
    }
}

/// A result of any version, labelled with the version whose shape it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniResult {
    /// The version whose shape the result is written in.
    pub cni_version: Version,
    /// Interfaces the plugin created or used (0.3.0+).
    pub interfaces: Vec<Interface>,
    /// Assigned addresses.
    pub ips: Vec<IpConfig>,
    /// Routes to install.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// Why a result could not be parsed or converted; ADD reports these with code 6 (decoding failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The bytes are not JSON.
    #[error("failed to parse result: {0}")]
    Json(String),
    /// The result claims a version this implementation has no shape for.
    #[error("unsupported CNI result version {0:?}")]
    UnsupportedVersion(String),
    /// Valid JSON, but not a result of the claimed version.
    #[error("failed to parse result: {0}")]
    Invalid(String),
    /// The target version cannot be produced from the result's version.
    #[error("no converter for CNI result version {from} to {to}")]
    NoConverter {
        /// The result's version.
        from: String,
        /// The version asked for.
        to: String,
    },
    /// Converting to 0.1.0/0.2.0 needs at least one address, and the result has none.
    #[error("cannot convert: no valid IP addresses")]
    NoIpAddresses,
}

impl From<ResultError> for crate::CniError {
    fn from(e: ResultError) -> Self {
        crate::CniError::new(crate::error::code::DECODING_FAILURE, e.to_string())
    }
}

/// Shape family of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 0.1.0, 0.2.0: `ip4`/`ip6`
    Legacy,
    /// 0.3.0, 0.3.1, 0.4.0: `ips[].version`
    V04,
    /// 1.0.0, 1.1.0
    V1,
}

fn shape_of(v: Version) -> Option<Shape> {
    match (v.major, v.minor, v.patch) {
        (0, 1, 0) | (0, 2, 0) => Some(Shape::Legacy),
        (0, 3, 0) | (0, 3, 1) | (0, 4, 0) => Some(Shape::V04),
        (1, 0, 0) | (1, 1, 0) => Some(Shape::V1),
        _ => None,
    }
}

impl CniResult {
    /// An empty result of the given version.
    pub fn empty(cni_version: Version) -> Self {
        Self { cni_version, interfaces: vec![], ips: vec![], routes: vec![], dns: Dns::default() }
    }

    /// Parse a result that must carry its own `cniVersion`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ResultError> {
        Self::from_json_with_default(bytes, None)
    }

    /// Parse a result; a missing or empty `cniVersion` takes `default_version`
    /// (libcni's `fixupResultVersion`), or 0.1.0 when none is given.
    pub fn from_json_with_default(bytes: &[u8], default_version: Option<Version>) -> Result<Self, ResultError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ResultError::Json(e.to_string()))?;
        Self::from_value_with_default(&value, default_version)
    }

    /// [`Self::from_json`] of an already decoded value.
    pub fn from_value(value: &Value) -> Result<Self, ResultError> {
        Self::from_value_with_default(value, None)
    }

    /// [`Self::from_json_with_default`] of an already decoded value.
    pub fn from_value_with_default(value: &Value, default_version: Option<Version>) -> Result<Self, ResultError> {
        let obj = value.as_object().ok_or_else(|| ResultError::Invalid("result is not a JSON object".into()))?;
        let version = match obj.get("cniVersion") {
            None | Some(Value::Null) => default_version.unwrap_or(Version::V0_1_0),
            Some(Value::String(s)) if s.is_empty() => default_version.unwrap_or(Version::V0_1_0),
            Some(Value::String(s)) => Version::parse(s).map_err(|_| ResultError::UnsupportedVersion(s.clone()))?,
            Some(other) => {
                return Err(ResultError::Invalid(format!("cniVersion must be a string, got {other}")));
            }
        };
        let shape = shape_of(version).ok_or_else(|| ResultError::UnsupportedVersion(version.to_string()))?;
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| ResultError::Invalid(format!("dns: {e}")))?,
        };
        let mut result = CniResult { cni_version: version, dns, ..CniResult::empty(version) };
        match shape {
            Shape::Legacy => {
                for key in ["ip4", "ip6"] {
                    if let Some(ipc) = obj.get(key).filter(|v| !v.is_null()) {
                        let ipc =
                            ipc.as_object().ok_or_else(|| ResultError::Invalid(format!("{key} is not an object")))?;
                        let address = parse_net(ipc.get("ip"), &format!("{key}.ip"))?
                            .ok_or_else(|| ResultError::Invalid(format!("{key}.ip is required")))?;
                        let gateway = parse_ip(ipc.get("gateway"), &format!("{key}.gateway"))?;
                        result.ips.push(IpConfig { interface: None, address, gateway });
                        if let Some(routes) = ipc.get("routes") {
                            result.routes.extend(parse_routes(routes)?);
                        }
                    }
                }
            }
            Shape::V04 | Shape::V1 => {
                if let Some(list) = obj.get("interfaces").filter(|v| !v.is_null()) {
                    let list =
                        list.as_array().ok_or_else(|| ResultError::Invalid("interfaces is not a list".into()))?;
                    for item in list {
                        result.interfaces.push(parse_interface(item)?);
                    }
                }
                if let Some(list) = obj.get("ips").filter(|v| !v.is_null()) {
                    let list = list.as_array().ok_or_else(|| ResultError::Invalid("ips is not a list".into()))?;
                    for item in list {
                        result.ips.push(parse_ip_config(item)?);
                    }
                }
                if let Some(routes) = obj.get("routes") {
                    result.routes = parse_routes(routes)?;
                }
            }
        }
        Ok(result)
    }

    /// Relabel as `to`, dropping what `to` cannot express (cni.md §3.6).
    pub fn convert_to(&self, to: Version) -> Result<CniResult, ResultError> {
        let target = shape_of(to)
            .ok_or_else(|| ResultError::NoConverter { from: self.cni_version.to_string(), to: to.to_string() })?;
        shape_of(self.cni_version)
            .ok_or_else(|| ResultError::NoConverter { from: self.cni_version.to_string(), to: to.to_string() })?;
        let mut out = self.clone();
        out.cni_version = to;
        match target {
            Shape::V1 => {}
            Shape::V04 => {
                for iface in &mut out.interfaces {
                    iface.mtu = None;
                    iface.socket_path.clear();
                    iface.pci_id.clear();
                }
            }
            Shape::Legacy => {
                let first_v4 = out.ips.iter().find(|ip| ip.is_v4()).cloned();
                let first_v6 = out.ips.iter().find(|ip| !ip.is_v4()).cloned();
                if first_v4.is_none() && first_v6.is_none() {
                    return Err(ResultError::NoIpAddresses);
                }
                out.interfaces.clear();
                out.ips = first_v4.into_iter().chain(first_v6).map(|ip| IpConfig { interface: None, ..ip }).collect();
                let has_v4 = out.ips.iter().any(|ip| ip.is_v4());
                let has_v6 = out.ips.iter().any(|ip| !ip.is_v4());
                out.routes.retain(|r| if r.dst.addr().is_ipv4() { has_v4 } else { has_v6 });
                for r in &mut out.routes {
                    r.strip_extras();
                }
            }
        }
        Ok(out)
    }

    /// Convert to the version given as a string (e.g. a config's `cniVersion`; empty means 0.1.0).
    pub fn convert_to_str(&self, to: &str) -> Result<CniResult, ResultError> {
        let v = Version::parse_or_default(Some(to))
            .map_err(|_| ResultError::NoConverter { from: self.cni_version.to_string(), to: to.to_string() })?;
        self.convert_to(v)
    }

    /// The JSON object in the shape of `self.cni_version`.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), Value::String(self.cni_version.to_string()));
        if !self.dns.is_empty() {
            obj.insert("dns".into(), serde_json::to_value(&self.dns).unwrap_or(Value::Null));
        }
        let shape = shape_of(self.cni_version).unwrap_or(Shape::V1);
        if shape == Shape::Legacy {
            for (key, v4) in [("ip4", true), ("ip6", false)] {
                if let Some(ip) = self.ips.iter().find(|ip| ip.is_v4() == v4) {
                    let mut ipc = Map::new();
                    if let Some(gw) = ip.gateway {
                        ipc.insert("gateway".into(), Value::String(gw.to_string()));
                    }
                    ipc.insert("ip".into(), Value::String(ip.address.to_string()));
                    let routes: Vec<Value> = self
                        .routes
                        .iter()
                        .filter(|r| r.dst.addr().is_ipv4() == v4)
                        .map(|r| {
                            let mut m = Map::new();
                            m.insert("dst".into(), Value::String(r.dst.to_string()));
                            if let Some(gw) = r.gw {
                                m.insert("gw".into(), Value::String(gw.to_string()));
                            }
                            Value::Object(m)
                        })
                        .collect();
                    if !routes.is_empty() {
                        ipc.insert("routes".into(), Value::Array(routes));
                    }
                    obj.insert(key.into(), Value::Object(ipc));
                }
            }
            return Value::Object(obj);
        }
        if !self.interfaces.is_empty() {
            let list = self.interfaces.iter().map(|i| interface_to_value(i, shape == Shape::V1)).collect();
            obj.insert("interfaces".into(), Value::Array(list));
        }
        if !self.ips.is_empty() {
            let list = self
                .ips
                .iter()
                .map(|ip| {
                    let mut m = Map::new();
                    m.insert("address".into(), Value::String(ip.address.to_string()));
                    if let Some(gw) = ip.gateway {
                        m.insert("gateway".into(), Value::String(gw.to_string()));
                    }
                    if let Some(i) = ip.interface {
                        m.insert("interface".into(), json!(i));
                    }
                    if shape == Shape::V04 {
                        m.insert("version".into(), Value::String(if ip.is_v4() { "4" } else { "6" }.into()));
                    }
                    Value::Object(m)
                })
                .collect();
            obj.insert("ips".into(), Value::Array(list));
        }
        if !self.routes.is_empty() {
            obj.insert("routes".into(), Value::Array(self.routes.iter().map(route_to_value).collect()));
        }
        Value::Object(obj)
    }

    /// Compact JSON in the labelled version's shape.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// 4-space indented JSON, as Go's `types.PrintResult` writes it.
    pub fn to_json_pretty(&self) -> String {
        crate::json::to_string_pretty4(&self.to_value())
    }

    /// Index of the first interface that lives in a sandbox (the container side).
    pub fn first_sandbox_interface(&self) -> Option<usize> {
        self.interfaces.iter().position(|i| !i.sandbox.is_empty())
    }
}

fn interface_to_value(i: &Interface, v1: bool) -> Value {
    let mut m = Map::new();
    if !i.mac.is_empty() {
        m.insert("mac".into(), Value::String(i.mac.clone()));
    }
    if let Some(mtu) = i.mtu.filter(|m| v1 && *m != 0) {
        m.insert("mtu".into(), json!(mtu));
    }
    m.insert("name".into(), Value::String(i.name.clone()));
    if v1 && !i.pci_id.is_empty() {
        m.insert("pciID".into(), Value::String(i.pci_id.clone()));
    }
    if !i.sandbox.is_empty() {
        m.insert("sandbox".into(), Value::String(i.sandbox.clone()));
    }
    if v1 && !i.socket_path.is_empty() {
        m.insert("socketPath".into(), Value::String(i.socket_path.clone()));
    }
    Value::Object(m)
}

fn route_to_value(r: &Route) -> Value {
    let mut m = Map::new();
    if let Some(v) = r.advmss.filter(|v| *v != 0) {
        m.insert("advmss".into(), json!(v));
    }
    m.insert("dst".into(), Value::String(r.dst.to_string()));
    if let Some(gw) = r.gw {
        m.insert("gw".into(), Value::String(gw.to_string()));
    }
    if let Some(v) = r.mtu.filter(|v| *v != 0) {
        m.insert("mtu".into(), json!(v));
    }
    if let Some(v) = r.priority.filter(|v| *v != 0) {
        m.insert("priority".into(), json!(v));
    }
    if let Some(v) = r.scope {
        m.insert("scope".into(), json!(v));
    }
    if let Some(v) = r.table {
        m.insert("table".into(), json!(v));
    }
    Value::Object(m)
}

fn parse_net(v: Option<&Value>, what: &str) -> Result<Option<IpNet>, ResultError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            parse_cidr(s).map(Some).ok_or_else(|| ResultError::Invalid(format!("{what}: invalid CIDR address {s:?}")))
        }
        Some(other) => Err(ResultError::Invalid(format!("{what}: expected a string, got {other}"))),
    }
}

/// Parse `addr/prefix`, keeping host bits (results carry host addresses with their prefix).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok()
}

fn parse_ip(v: Option<&Value>, what: &str) -> Result<Option<IpAddr>, ResultError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| ResultError::Invalid(format!("{what}: invalid IP address {s:?}")))
        }
        Some(other) => Err(ResultError::Invalid(format!("{what}: expected a string, got {other}"))),
    }
}

fn parse_u32(v: Option<&Value>, what: &str) -> Result<Option<u32>, ResultError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ResultError::Invalid(format!("{what}: expected an unsigned integer, got {n}"))),
        Some(other) => Err(ResultError::Invalid(format!("{what}: expected a number, got {other}"))),
    }
}

fn parse_str(v: Option<&Value>, what: &str) -> Result<String, ResultError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ResultError::Invalid(format!("{what}: expected a string, got {other}"))),
    }
}

fn parse_interface(v: &Value) -> Result<Interface, ResultError> {
    let o = v.as_object().ok_or_else(|| ResultError::Invalid("interface entry is not an object".into()))?;
    Ok(Interface {
        name: parse_str(o.get("name"), "interfaces[].name")?,
        mac: parse_str(o.get("mac"), "interfaces[].mac")?,
        mtu: parse_u32(o.get("mtu"), "interfaces[].mtu")?,
        sandbox: parse_str(o.get("sandbox"), "interfaces[].sandbox")?,
        socket_path: parse_str(o.get("socketPath"), "interfaces[].socketPath")?,
        pci_id: parse_str(o.get("pciID"), "interfaces[].pciID")?,
    })
}

fn parse_ip_config(v: &Value) -> Result<IpConfig, ResultError> {
    let o = v.as_object().ok_or_else(|| ResultError::Invalid("ips entry is not an object".into()))?;
    let address = parse_net(o.get("address"), "ips[].address")?
        .ok_or_else(|| ResultError::Invalid("ips[].address is required".into()))?;
    // The interface index is an int in Go; a negative value is invalid.
    let interface = match o.get("interface") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ResultError::Invalid(format!("ips[].interface: invalid index {n}")))?,
        ),
        Some(other) => {
            return Err(ResultError::Invalid(format!("ips[].interface: expected a number, got {other}")));
        }
    };
    Ok(IpConfig { interface, address, gateway: parse_ip(o.get("gateway"), "ips[].gateway")? })
}

fn parse_routes(v: &Value) -> Result<Vec<Route>, ResultError> {
    if v.is_null() {
        return Ok(vec![]);
    }
    let list = v.as_array().ok_or_else(|| ResultError::Invalid("routes is not a list".into()))?;
    list.iter()
        .map(|r| {
            let o = r.as_object().ok_or_else(|| ResultError::Invalid("route entry is not an object".into()))?;
            let dst = parse_net(o.get("dst"), "routes[].dst")?
                .ok_or_else(|| ResultError::Invalid("routes[].dst is required".into()))?;
            Ok(Route {
                dst,
                gw: parse_ip(o.get("gw"), "routes[].gw")?,
                mtu: parse_u32(o.get("mtu"), "routes[].mtu")?,
                advmss: parse_u32(o.get("advmss"), "routes[].advmss")?,
                priority: parse_u32(o.get("priority"), "routes[].priority")?,
                table: parse_u32(o.get("table"), "routes[].table")?,
                scope: parse_u32(o.get("scope"), "routes[].scope")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_the_captured_multus_response_result() {
        let raw = br#"{"cniVersion":"1.1.0","interfaces":[{"mac":"46:4a:94:d6:3e:37","name":"mcbr0"},{"mac":"aa:a4:6d:9c:a4:cf","name":"vethb03b71ca"},{"mac":"d6:e8:4a:b7:85:f7","name":"eth0","sandbox":"/var/run/netns/e2e-pod1"}],"ips":[{"address":"10.244.0.2/16","gateway":"10.244.0.1","interface":2}],"routes":[{"dst":"0.0.0.0/0"}]}"#;
        let r = CniResult::from_json(raw).unwrap();
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.first_sandbox_interface(), Some(2));
        // Byte-identical round trip: our key order is the Go reference's.
        assert_eq!(r.to_json().as_bytes(), &raw[..]);
    }

    #[test]
    fn legacy_routes_are_hoisted_and_put_back_by_family() {
        let raw = br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]},"ip6":{"ip":"2001:db8::5/64","routes":[{"dst":"::/0"}]}}"#;
        let r = CniResult::from_json(raw).unwrap();
        assert_eq!(r.routes.len(), 2);
        let up = r.convert_to(v("1.0.0")).unwrap();
        assert!(up.interfaces.is_empty());
        let down = up.convert_to(v("0.1.0")).unwrap();
        assert_eq!(down.to_value()["ip4"]["routes"][0]["gw"], "10.1.0.1");
        assert_eq!(down.to_value()["ip6"]["routes"][0]["dst"], "::/0");
    }

    #[test]
    fn down_conversion_to_legacy_needs_an_ip() {
        let r = CniResult::empty(v("1.0.0"));
        assert_eq!(r.convert_to(v("0.2.0")), Err(ResultError::NoIpAddresses));
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert!(matches!(CniResult::from_json(br#"{"cniVersion":"0.9.0"}"#), Err(ResultError::UnsupportedVersion(_))));
        let r = CniResult::empty(v("1.0.0"));
        assert!(matches!(r.convert_to(v("1.2.3")), Err(ResultError::NoConverter { .. })));
    }

    #[test]
    fn versionless_result_takes_the_default() {
        let r = CniResult::from_json_with_default(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, Some(v("1.0.0"))).unwrap();
        assert_eq!(r.cni_version, v("1.0.0"));
    }
}
