//! The host around the soak's node: log files, HTTP to kube-mock's admin API, unix sockets
//! and the processes holding them, network namespaces by prefix.

use anyhow::{Context, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::util::Cmd;

/// What `path` holds after its first `offset` bytes (lossily decoded).
pub fn log_since(path: &Path, offset: u64) -> String {
    use std::io::Seek;
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    if f.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One HTTP/1.0 exchange with `base` (`http://host:port`).
pub fn http(base: &str, method: &str, path: &str, body: &Value) -> Result<(u16, String)> {
    let hostport = base.strip_prefix("http://").context("only http:// is supported")?.trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(hostport).with_context(|| format!("connecting to {hostport}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let payload = if body.is_null() { String::new() } else { body.to_string() };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
    Ok((status, rest.to_string()))
}

/// `/proc/net/unix` lines of sockets bound in `path`'s directory (diagnostics).
pub fn unix_sockets_in(path: &Path) -> Vec<String> {
    let dir = path.parent().map(|d| format!("{}/", d.display())).unwrap_or_default();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(7).is_some_and(|p| p.starts_with(&dir)))
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Processes with a descriptor on a unix socket bound in `path`'s directory (the daemon binds
/// under a temporary name and renames, and `/proc/net/unix` shows the name bound): `pid (comm)`.
pub fn socket_holders(path: &Path) -> Vec<String> {
    let dir = path.parent().map(|d| format!("{}/", d.display())).unwrap_or_default();
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else { return Vec::new() };
    // Num RefCount Protocol Flags Type St Inode Path
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[7].starts_with(&dir)).then(|| format!("socket:[{}]", f[6]))
        })
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let held =
            std::fs::read_dir(e.path().join("fd")).into_iter().flatten().flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| inodes.iter().any(|i| t.to_string_lossy() == *i))
            });
        if held {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let ppid = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1).map(str::to_string)))
                .unwrap_or_default();
            out.push(format!("{pid} ({}, ppid {ppid})", comm.trim()));
        }
    }
    out
}

pub fn delete_netns_with_prefix(prefix: &str) {
    let Ok(rd) = std::fs::read_dir("/var/run/netns") else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            Cmd::new("ip").args(["netns", "del", &name]).run_quiet();
        }
    }
}
