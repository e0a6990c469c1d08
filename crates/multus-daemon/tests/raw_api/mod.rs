//! What the raw-server tests share (`bounded_responses.rs`, `api_faults.rs`): an API server that
//! must send what wiremock cannot (endless or cut bodies) reads requests by hand, and both watch
//! the daemon's memory in /proc.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Reads one request head (and its body, up to 1 MiB): (method, target).
pub fn read_head(stream: &TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    Some((method, target))
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:`, `RssAnon:`); 0 when the process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
