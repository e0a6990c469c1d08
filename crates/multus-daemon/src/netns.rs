//! Work inside a pod's network namespace.
//!
//! `setns` changes the calling thread's namespace, so every operation runs on a fresh thread
//! that enters the namespace, does its work and exits; a pooled (tokio) thread never changes
//! namespace. Child processes started from that thread (`ip route …`) inherit its namespace.

use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

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

fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Command(format!("running ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Command(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Delete the default routes (of the given families) that use `ifname`.
pub async fn delete_default_routes(netns_path: &str, ifname: &str, v4: bool, v6: bool) -> Result<(), NetnsError> {
    let ifname = ifname.to_string();
    run_in(netns_path, move || {
        for (flag, enabled) in [("-4", v4), ("-6", v6)] {
            if !enabled {
                continue;
            }
            // Several default routes may exist (metrics); delete until none is left.
            for _ in 0..16 {
                let listed = ip(&[flag, "route", "show", "default", "dev", &ifname])?;
                if listed.trim().is_empty() {
                    break;
                }
                ip(&[flag, "route", "del", "default", "dev", &ifname])?;
            }
        }
        Ok(())
    })
    .await
}

/// Add a default route via `gateway` on `ifname` (an existing identical route is fine).
pub async fn add_default_route(netns_path: &str, ifname: &str, gateway: IpAddr) -> Result<(), NetnsError> {
    let ifname = ifname.to_string();
    run_in(netns_path, move || {
        let flag = if gateway.is_ipv4() { "-4" } else { "-6" };
        ip(&[flag, "route", "replace", "default", "via", &gateway.to_string(), "dev", &ifname]).map(|_| ())
    })
    .await
}
