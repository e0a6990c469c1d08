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
use std::os::unix::fs::OpenOptionsExt;

/// The node's network namespaces, entered on dedicated threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNetns;

/// Open `path` as a namespace file: non-blocking (a FIFO or device must not hang the caller)
/// and on nsfs (a regular file or directory is refused before `setns` sees it).
pub fn open_netns(path: &str) -> Result<File, NetnsError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| NetnsError::Open { path: path.to_string(), reason: e.to_string() })?;
    let fs = nix::sys::statfs::fstatfs(&file)
        .map_err(|e| NetnsError::Open { path: path.to_string(), reason: e.to_string() })?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(NetnsError::NotANamespace { path: path.to_string() });
    }
    Ok(file)
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
        match open_netns(netns) {
            Ok(_) => NetnsPresence::Present,
            Err(NetnsError::Open { .. }) if !std::path::Path::new(netns).exists() => NetnsPresence::Absent,
            Err(_) => NetnsPresence::Unknown,
        }
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

    #[test]
    fn a_fifo_or_a_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = open_netns(fifo.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, NetnsError::NotANamespace { .. }), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(open_netns(file.to_str().unwrap()), Err(NetnsError::NotANamespace { .. })));
        assert!(matches!(open_netns("/nonexistent/netns"), Err(NetnsError::Open { .. })));
    }

    #[test]
    fn the_own_namespace_file_is_accepted() {
        open_netns("/proc/self/ns/net").unwrap();
    }

    #[tokio::test]
    async fn link_checks_in_the_own_namespace() {
        // Entering one's own namespace needs CAP_SYS_ADMIN; without it the error is typed.
        match HostNetns.link_exists("/proc/self/ns/net", "lo").await {
            Ok(found) => assert!(found),
            Err(e) => assert!(matches!(e, NetnsError::Enter { .. }), "{e}"),
        }
    }
}
