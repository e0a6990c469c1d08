//! Default-route edits over rtnetlink, for the `default-route` selection field (spec §5.15).
//!
//! These functions act on the network namespace of the calling thread, so they are only called
//! from [`crate::netns::run_in`]'s dedicated thread. The Go daemon uses netlink too; shelling
//! out to `ip` would tie the daemon to a binary its `FROM scratch` image does not have.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::io;
use std::net::IpAddr;

/// A route netlink socket in the calling thread's network namespace.
struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { socket, sequence: 0 })
    }

    /// Send one request and collect the answers until DONE or the ACK.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut request = NetlinkMessage::from(message);
        self.sequence += 1;
        request.header.flags = flags;
        request.header.sequence_number = self.sequence;
        request.finalize();
        let mut buf = vec![0u8; request.header.length as usize];
        request.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = message.header.length as usize;
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
            }
        }
    }
}

fn if_index(ifname: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(ifname).map_err(|e| io::Error::other(format!("link {ifname:?} not found: {e}")))
}

fn is_default_route_on(route: &RouteMessage, index: u32) -> bool {
    route.header.destination_prefix_length == 0
        && route.header.table == RouteHeader::RT_TABLE_MAIN
        && route.attributes.iter().any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index))
}

/// Delete the main-table default routes of the given families that leave through `ifname`.
pub fn delete_default_routes(ifname: &str, v4: bool, v6: bool) -> io::Result<()> {
    let index = if_index(ifname)?;
    let mut rtnl = Rtnl::open()?;
    for (family, wanted) in [(AddressFamily::Inet, v4), (AddressFamily::Inet6, v6)] {
        if !wanted {
            continue;
        }
        let mut query = RouteMessage::default();
        query.header.address_family = family;
        let routes = rtnl.request(RouteNetlinkMessage::GetRoute(query), NLM_F_REQUEST | NLM_F_DUMP)?;
        for route in routes {
            if let RouteNetlinkMessage::NewRoute(route) = route
                && is_default_route_on(&route, index)
            {
                match rtnl.request(RouteNetlinkMessage::DelRoute(route), NLM_F_REQUEST | NLM_F_ACK) {
                    Ok(_) => {}
                    // Gone meanwhile: that is what we wanted.
                    Err(e) if e.raw_os_error() == Some(libc_esrch()) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// `ESRCH`, which the kernel answers for a route that no longer exists.
fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

/// Add (or replace) the default route via `gateway` through `ifname` in the main table.
pub fn add_default_route(ifname: &str, gateway: IpAddr) -> io::Result<()> {
    let index = if_index(ifname)?;
    let mut route = RouteMessage::default();
    route.header.address_family = if gateway.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    route.header.destination_prefix_length = 0;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    route.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    route.attributes.push(RouteAttribute::Oif(index));
    let mut rtnl = Rtnl::open()?;
    rtnl.request(RouteNetlinkMessage::NewRoute(route), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)
        .map(|_| ())
}
