//! Work inside a pod's network namespace.
//!
//! `setns` changes the calling thread's namespace, so every operation runs on a fresh thread
//! that enters the namespace, does its work and exits; a pooled (tokio) thread never changes
//! namespace. Sockets opened on that thread (netlink, the `if_nametoindex` ioctl) belong to it.

use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("failed to open netns {path:?}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("failed to enter netns {path:?}: {source}")]
    Enter { path: String, source: nix::Error },
    #[error("netns worker thread failed: {0}")]
    Thread(String),
    #[error("{0}")]
    Command(String),
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
            let outcome = File::open(&path)
                .map_err(|source| NetnsError::Open { path: path.clone(), source })
                .and_then(|ns| {
                    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { path, source })
                })
                .and_then(|()| f());
            let _ = tx.send(outcome);
        })
        .map_err(|e| NetnsError::Thread(e.to_string()))?;
    rx.await.map_err(|_| NetnsError::Thread("worker exited without an answer".into()))?
}

/// Whether a link named `ifname` exists in the namespace (the delegate clash check).
pub async fn link_exists(netns_path: &str, ifname: &str) -> Result<bool, NetnsError> {
    let ifname = ifname.to_string();
    run_in(netns_path, move || Ok(nix::net::if_::if_nametoindex(ifname.as_str()).is_ok())).await
}

/// Whether the namespace path can be opened at all.
pub fn openable(netns_path: &str) -> bool {
    !netns_path.is_empty() && Path::new(netns_path).exists() && File::open(netns_path).is_ok()
}

/// Delete the default routes (of the given families) that use `ifname`.
pub async fn delete_default_routes(netns_path: &str, ifname: &str, v4: bool, v6: bool) -> Result<(), NetnsError> {
    let ifname = ifname.to_string();
    run_in(netns_path, move || {
        crate::routes::delete_default_routes(&ifname, v4, v6).map_err(|e| NetnsError::Command(e.to_string()))
    })
    .await
}

/// Add a default route via `gateway` on `ifname` (an existing identical route is fine).
pub async fn add_default_route(netns_path: &str, ifname: &str, gateway: IpAddr) -> Result<(), NetnsError> {
    let ifname = ifname.to_string();
    run_in(netns_path, move || {
        crate::routes::add_default_route(&ifname, gateway).map_err(|e| NetnsError::Command(e.to_string()))
    })
    .await
}
