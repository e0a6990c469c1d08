//! What the soak looks at: links in a pod's namespace, bridge ports on the host, files in the
//! daemon's cniDir and host-local's data dir, and the daemon process itself.

use anyhow::Result;
use std::path::{Path, PathBuf};

use super::node::{Node, Sandbox};
use super::plan::{BRIDGE_NAD, MACVLAN_NAD};
pub use super::procs::{ProcStats, SoakProcess, proc_stats, soak_processes};
use crate::harness::{self, Iface};
use crate::util::Cmd;
use crate::util::walk_files as walk;

/// Interfaces other than `lo` in a namespace.
pub fn links(netns: &str) -> Result<Vec<Iface>> {
    let out = Cmd::new("ip").args(["-n", netns, "-j", "addr", "show"]).output()?;
    Ok(harness::parse_ip_addr(&out)?.into_iter().filter(|i| i.name != "lo").collect())
}

/// Ports of a host bridge.
pub fn bridge_ports(bridge: &str) -> Result<Vec<String>> {
    let out = Cmd::new("ip").args(["-j", "link", "show", "master", bridge]).output()?;
    let v: serde_json::Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}

/// A file the daemon or a delegate left: its path, and its name and content for attribution.
pub struct StateFile {
    pub path: PathBuf,
    pub text: String,
    /// Under host-local's data dir (a lease).
    pub lease: bool,
}

/// Every file in cniDir and the IPAM dir, but host-local's bookkeeping (`lock`,
/// `last_reserved_ip.*`) and the soak's own filler.
pub fn state_files(node: &Node) -> Vec<StateFile> {
    let mut out = Vec::new();
    for (dir, lease) in [(&node.env.cni_dir_host, false), (&node.env.ipam_dir_host, true)] {
        walk(dir, &mut |p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name == "lock" || name.starts_with("last_reserved_ip") || name.starts_with(".soak-") {
                return;
            }
            let content = std::fs::read(p).map(|c| String::from_utf8_lossy(&c).into_owned()).unwrap_or_default();
            out.push(StateFile { path: p.to_path_buf(), text: format!("{}\n{content}", p.display()), lease });
        });
    }
    out
}

/// The interfaces a successful ADD gives the sandbox: (name, address prefix).
pub fn expected_links(sb: &Sandbox) -> Vec<(String, &'static str)> {
    let mut v = vec![("eth0".to_string(), "10.248.0.")];
    for (i, net) in sb.networks.iter().enumerate() {
        let prefix = match net.as_str() {
            BRIDGE_NAD => "10.249.0.",
            MACVLAN_NAD => "10.250.0.",
            _ => continue, // fake-cni makes no link
        };
        v.push((format!("net{}", i + 1), prefix));
    }
    v
}

/// Everything the sandbox should have after a successful ADD; the problems found.
pub fn verify_attached(node: &Node, sb: &Sandbox) -> Result<Vec<String>> {
    let mut errs = Vec::new();
    let have = links(&sb.netns)?;
    let want = expected_links(sb);
    for (name, prefix) in &want {
        match have.iter().find(|i| &i.name == name) {
            None => errs.push(format!("{}: no interface {name} after a successful ADD", sb.pod)),
            Some(i) if !i.addrs.iter().any(|a| a.starts_with(prefix)) => {
                errs.push(format!("{}: {name} has {:?}, expected an address in {prefix}*", sb.pod, i.addrs))
            }
            Some(_) => {}
        }
    }
    for extra in have.iter().filter(|i| !want.iter().any(|(n, _)| n == &i.name)) {
        errs.push(format!("{}: unexpected interface {}", sb.pod, extra.name));
    }
    let files = state_files(node);
    let mine: Vec<&StateFile> = files.iter().filter(|f| f.text.contains(&sb.container_id)).collect();
    let leases = mine.iter().filter(|f| f.lease).count();
    if leases != want.len() {
        errs.push(format!("{}: {leases} host-local lease(s), expected {}", sb.pod, want.len()));
    }
    if !mine.iter().any(|f| !f.lease) {
        errs.push(format!("{}: no delegate cache in cniDir after a successful ADD", sb.pod));
    }
    Ok(errs)
}

/// What the sandbox still has (links in its namespace, files naming it).
pub fn leftovers(node: &Node, sb: &Sandbox) -> Result<Vec<String>> {
    let mut left: Vec<String> =
        links(&sb.netns)?.into_iter().map(|i| format!("link {} in {}", i.name, sb.netns)).collect();
    left.extend(
        state_files(node)
            .into_iter()
            .filter(|f| f.text.contains(&sb.container_id))
            .map(|f| f.path.display().to_string()),
    );
    Ok(left)
}

/// Files that name the sandbox (its namespace may be gone).
pub fn files_left(node: &Node, sb: &Sandbox) -> Vec<String> {
    state_files(node)
        .into_iter()
        .filter(|f| f.text.contains(&sb.container_id))
        .map(|f| f.path.display().to_string())
        .collect()
}

/// Does the daemon answer `/healthz`?
pub fn healthz(node: &Node) -> Result<(), String> {
    match multus_api::client::post(
        &node.env.socket(),
        multus_api::path::HEALTHZ,
        b"null",
        Some(std::time::Duration::from_secs(5)),
    ) {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("/healthz answered {}", r.status)),
        Err(e) => Err(format!("/healthz: {e}")),
    }
}

/// The run's processes working for `container`.
pub fn processes_of(node: &Node, container: &str) -> Vec<SoakProcess> {
    let exclude: Vec<i32> = node.daemon_pid().into_iter().collect();
    soak_processes(&node.marker, &node.bin_dir, &exclude)
        .into_iter()
        .filter(|p| p.container.as_deref() == Some(container))
        .collect()
}

/// The run's processes of `container` that are still there after up to `grace` (a process
/// being killed and reaped may show for a moment).
pub fn processes_left(node: &Node, container: &str, grace: std::time::Duration) -> Vec<SoakProcess> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        let left = processes_of(node, container);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Marker files the `grandchild` delegates' children wrote for `container`.
pub fn markers_of(node: &Node, container: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(&node.markers_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(container))
        .collect()
}

/// `GET /healthz` on the daemon's socket: the status, and how long the answer took.
pub fn timed_healthz(node: &Node, timeout: std::time::Duration) -> (Result<u16, String>, std::time::Duration) {
    let started = std::time::Instant::now();
    let r = multus_api::client::request(&node.env.socket(), "GET", multus_api::path::HEALTHZ, b"", Some(timeout))
        .map(|r| r.status)
        .map_err(|e| e.to_string());
    (r, started.elapsed())
}

/// Open `n` connections to the daemon's socket, each with a `/cni` request whose head is sent
/// and whose body never completes: each holds one of the daemon's connection places until it
/// is dropped (the body timeout is 10 s). The connections made (fewer when a connect failed).
pub fn hold_connections(socket: &Path, n: usize) -> Vec<std::os::unix::net::UnixStream> {
    use std::io::Write;
    // Enough descriptors for the flood, whatever the shell's soft limit.
    if let Ok((soft, hard)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        let want = (n as u64 + 512).min(hard);
        if soft < want {
            let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, want, hard);
        }
    }
    let head = "POST /cni HTTP/1.1\r\nHost: dummy\r\nUser-Agent: multus-soak\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else { break };
        let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(1)));
        if s.write_all(head.as_bytes()).is_err() {
            break;
        }
        out.push(s);
    }
    out
}
