//! Work inside a pod's network namespace: the production [`Netns`] seam.
//!
//! `setns` changes the calling thread's namespace, so every operation runs on a fresh thread
//! that enters the namespace, does its work and exits; a pooled (tokio) thread never changes
//! namespace. Sockets opened on that thread (netlink, the `if_nametoindex` ioctl) belong to it.
//!
//! The namespace path comes from the runtime, so it is opened without blocking (a FIFO must not
//! hang a request) and checked to be a network-namespace file (nsfs) before `setns`.

use crate::seams::{BoxFuture, Netns, NetnsError, NetnsPresence};
use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::net::IpAddr;

/// The node's network namespaces, entered on dedicated threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNetns;

/// Open `path` as a namespace file (see [`multus_node::netns::open`]).
pub fn open_netns(path: &str) -> Result<File, NetnsError> {
    Ok(multus_node::netns::open(path)?)
}

/// Run `f` on a new thread inside the network namespace at `netns_path`.
pub async fn run_in<T, F>(netns_path: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, NetnsError> + Send + 'static,
{
    let path = netns_path.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-worker".into())
        .spawn(move || {
            let outcome = open_netns(&path)
                .and_then(|ns| {
                    setns(&ns, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| NetnsError::Enter { path: path.clone(), reason: e.to_string() })
                })
                .and_then(|()| f());
            // The receiver is gone only when the request was dropped; nothing to report to.
            let _ = tx.send(outcome);
        })
        .map_err(|e| NetnsError::Thread(e.to_string()))?;
    rx.await.map_err(|_| NetnsError::Thread("worker exited without an answer".into()))?
}

impl Netns for HostNetns {
    fn presence(&self, netns: &str) -> NetnsPresence {
        multus_node::netns::presence(netns)
    }

    fn link_exists<'a>(&'a self, netns: &'a str, ifname: &'a str) -> BoxFuture<'a, Result<bool, NetnsError>> {
        let ifname = ifname.to_string();
        Box::pin(run_in(netns, move || Ok(nix::net::if_::if_nametoindex(ifname.as_str()).is_ok())))
    }

    fn delete_default_routes<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        v4: bool,
        v6: bool,
    ) -> BoxFuture<'a, Result<(), NetnsError>> {
        let ifname = ifname.to_string();
        Box::pin(run_in(netns, move || {
            crate::routes::delete_default_routes(&ifname, v4, v6).map_err(|e| NetnsError::Route(e.to_string()))
        }))
    }

    fn add_default_route<'a>(
        &'a self,
        netns: &'a str,
        ifname: &'a str,
        gateway: IpAddr,
    ) -> BoxFuture<'a, Result<(), NetnsError>> {
        let ifname = ifname.to_string();
        Box::pin(run_in(netns, move || {
            crate::routes::add_default_route(&ifname, gateway).map_err(|e| NetnsError::Route(e.to_string()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn link_checks_in_the_own_namespace() {
        // Entering one's own namespace needs CAP_SYS_ADMIN; without it the error is typed.
        match HostNetns.link_exists("/proc/self/ns/net", "lo").await {
            Ok(found) => assert!(found),
            Err(e) => assert!(matches!(e, NetnsError::Enter { .. }), "{e}"),
        }
    }
}
