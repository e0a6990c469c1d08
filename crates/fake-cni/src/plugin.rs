//! The fake as a [`cni::skel::Plugin`].

use crate::options::{DEFAULT_STATUS_MSG, DEFAULT_SUBNET, FakeOptions};
use cni::error::code;
use cni::result::{Interface, IpConfig, Route};
use cni::skel::{Plugin, Request};
use cni::{CniError, CniResult, Version};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fake's [`Plugin`] implementation, one per invocation: [`crate::run`] hands it to
/// [`cni::skel::run_with`] after the record, signal and garbage modes had their turn.
pub struct FakePlugin {
    /// The merged `"fake"` object (config over `FAKE_CNI_CONFIG`).
    pub options: FakeOptions,
    /// An invalid `"fake"` object: every command (except VERSION) reports it.
    pub options_error: Option<CniError>,
}

impl FakePlugin {
    fn common(&self, req: &Request) -> Result<(), CniError> {
        if let Some(e) = &self.options_error {
            return Err(e.clone());
        }
        if self.options.fails_on(req.command().as_str()) {
            return Err(self.options.failure());
        }
        Ok(())
    }

    /// This plugin's own contribution to the result, labelled 1.1.0.
    fn own_result(&self, req: &Request) -> Result<CniResult, CniError> {
        if let Some(literal) = &self.options.result {
            return CniResult::from_value_with_default(literal, Some(req.cni_version)).map_err(|e| {
                CniError::with_details(code::INVALID_NETWORK_CONFIG, "fake-cni: invalid fake.result", e.to_string())
            });
        }
        auto_result(&self.options, &req.env.container_id, &req.env.ifname, &req.env.netns)
    }
}

impl Plugin for FakePlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.common(req)?;
        let own = self.own_result(req)?;
        match req.prev_result() {
            None => Ok(own),
            Some(prev) => append(prev?, own),
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.common(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.common(req)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.common(req)?;
        match self.options.status_code {
            Some(c) => {
                Err(CniError::new(c, self.options.status_msg.clone().unwrap_or_else(|| DEFAULT_STATUS_MSG.to_string())))
            }
            None => Ok(()),
        }
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.common(req)?;
        req.valid_attachments().map(|_| ())
    }

    fn supported_versions(&self) -> Vec<String> {
        self.options
            .supported_versions
            .clone()
            .unwrap_or_else(|| cni::version::ALL.iter().map(|s| s.to_string()).collect())
    }

    fn about(&self) -> String {
        "fake-cni: a scriptable fake CNI plugin for tests".to_string()
    }
}

/// `prev` followed by `own`: interfaces appended, `own`'s interface indexes shifted past
/// `prev`'s, IPs and routes appended, DNS taken from `own` when it has any. Labelled 1.1.0.
pub fn append(prev: CniResult, own: CniResult) -> Result<CniResult, CniError> {
    let internal = |e: cni::result::ResultError| CniError::new(code::INTERNAL, e.to_string());
    let mut out = prev.convert_to(Version::V1_1_0).map_err(internal)?;
    let own = own.convert_to(Version::V1_1_0).map_err(internal)?;
    let shift = u32::try_from(out.interfaces.len()).unwrap_or(u32::MAX);
    out.interfaces.extend(own.interfaces);
    out.ips.extend(own.ips.into_iter().map(|ip| IpConfig { interface: ip.interface.map(|i| i + shift), ..ip }));
    out.routes.extend(own.routes);
    if !own.dns.is_empty() {
        out.dns = own.dns;
    }
    Ok(out)
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A locally administered unicast MAC, `02:xx:xx:xx:xx:xx`, derived from the attachment.
pub fn mac_for(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(&["mac", container_id, ifname]).to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2], h[3], h[4])
}

fn host_bits(net: &IpNet) -> u32 {
    u32::from(net.max_prefix_len() - net.prefix_len())
}

fn nth_host(net: &IpNet, n: u128) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(n as u32))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(n))),
    }
}

fn offset_of(net: &IpNet, ip: IpAddr) -> Option<u128> {
    if !net.contains(&ip) {
        return None;
    }
    Some(match (net.network(), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n)),
        (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n),
        _ => return None,
    })
}

/// Why a subnet has no address to give.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Fewer than four addresses: nothing besides the network and broadcast addresses.
    #[error("subnet {0} is too small")]
    TooSmall(IpNet),
    /// The only usable address is the gateway's.
    #[error("subnet {0} has no address left besides the gateway")]
    OnlyTheGateway(IpNet),
    /// The address could not take the subnet's prefix length.
    #[error(transparent)]
    Prefix(#[from] ipnet::PrefixLenError),
}

/// An address of `subnet` chosen from the attachment: never the network address, the last
/// address (broadcast) or `gateway`. Only the low 64 host bits are used.
pub fn address_for(
    subnet: &IpNet,
    gateway: Option<IpAddr>,
    container_id: &str,
    ifname: &str,
) -> Result<IpNet, AddressError> {
    let net = subnet.trunc();
    let bits = host_bits(&net).min(64);
    let size: u128 = 1u128 << bits;
    if size < 4 {
        return Err(AddressError::TooSmall(net));
    }
    // Candidates are offsets 1 ..= size-2, minus the gateway's.
    let gw_offset = gateway.and_then(|gw| offset_of(&net, gw)).filter(|o| (1..size - 1).contains(o));
    let count = size - 2 - u128::from(gw_offset.is_some());
    if count == 0 {
        return Err(AddressError::OnlyTheGateway(net));
    }
    let mut offset = 1 + u128::from(fnv1a(&["ip", container_id, ifname])) % count;
    if gw_offset.is_some_and(|g| offset >= g) {
        offset += 1;
    }
    Ok(IpNet::new(nth_host(&net, offset), net.prefix_len())?)
}

/// The automatic result: one interface `ifname` in `netns`, one address from the subnet,
/// the gateway, routes via the gateway. Labelled 1.1.0 (skel converts it).
pub fn auto_result(opts: &FakeOptions, container_id: &str, ifname: &str, netns: &str) -> Result<CniResult, CniError> {
    let bad = |details: String| {
        CniError::with_details(code::INVALID_NETWORK_CONFIG, "fake-cni: invalid fake config", details)
    };
    let default_subnet: IpNet = DEFAULT_SUBNET.parse().map_err(|e: ipnet::AddrParseError| bad(e.to_string()))?;
    let subnet = opts.subnet.unwrap_or(default_subnet).trunc();
    let gateway = match opts.gateway.as_deref() {
        Some("") => None,
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| bad(format!("gateway {s:?} is not an IP address")))?),
        None => Some(nth_host(&subnet, 1)),
    };
    let address = address_for(&subnet, gateway, container_id, ifname).map_err(|e| bad(e.to_string()))?;
    let mut r = CniResult::empty(Version::V1_1_0);
    r.interfaces.push(Interface {
        name: ifname.to_string(),
        mac: mac_for(container_id, ifname),
        mtu: opts.mtu,
        sandbox: netns.to_string(),
        ..Default::default()
    });
    r.ips.push(IpConfig { interface: Some(0), address, gateway });
    let default_dst: IpNet = if subnet.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" }
        .parse()
        .map_err(|e: ipnet::AddrParseError| bad(e.to_string()))?;
    let dsts = opts.routes.clone().unwrap_or_else(|| if gateway.is_some() { vec![default_dst] } else { vec![] });
    r.routes = dsts.into_iter().map(|dst| Route::new(dst.trunc(), gateway)).collect();
    r.dns = opts.dns.clone().unwrap_or_default();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_and_locally_administered() {
        let m = mac_for("ctr-1", "eth0");
        assert_eq!(m, mac_for("ctr-1", "eth0"));
        assert_ne!(m, mac_for("ctr-1", "net1"));
        assert_ne!(m, mac_for("ctr-2", "eth0"));
        assert!(m.starts_with("02:") && m.len() == 17, "{m}");
        // Pinned: changing the derivation changes every snapshot downstream.
        assert_eq!(fnv1a(&["a"]), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn addresses_avoid_network_gateway_and_broadcast() {
        let net: IpNet = "10.0.0.0/30".parse().unwrap();
        let gw = Some("10.0.0.1".parse().unwrap());
        for i in 0..50 {
            let a = address_for(&net, gw, &format!("c{i}"), "eth0").unwrap();
            assert_eq!(a.to_string(), "10.0.0.2/30");
        }
        let net: IpNet = "10.1.0.0/24".parse().unwrap();
        for i in 0..500 {
            let a = address_for(&net, gw, &format!("c{i}"), "eth0").unwrap();
            let last = a.addr().to_string().rsplit('.').next().unwrap().parse::<u8>().unwrap();
            assert!((1..255).contains(&last), "{a}");
            assert!(net.contains(&a.addr()));
        }
        assert!(address_for(&"10.0.0.0/31".parse().unwrap(), None, "c", "eth0").is_err());
        let a6 = address_for(&"fd00::/64".parse().unwrap(), None, "c", "eth0").unwrap();
        assert_eq!(a6.prefix_len(), 64);
    }

    #[test]
    fn append_shifts_interface_indexes() {
        let opts = FakeOptions::default();
        let first = auto_result(&opts, "c", "eth0", "/ns").unwrap();
        let second = auto_result(&opts, "c", "eth0", "/ns").unwrap();
        let both = append(first, second).unwrap();
        assert_eq!(both.interfaces.len(), 2);
        assert_eq!(both.ips[1].interface, Some(1));
        assert_eq!(both.routes.len(), 2);
    }
}
